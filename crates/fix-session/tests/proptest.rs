//! Property test: random message streams never panic the session and never rewind it.
//!
//! A stream of Logon, Heartbeat, TestRequest, ResendRequest, SequenceReset (both modes),
//! Logout, orders and garbage field values, with random MsgSeqNums, PossDupFlags and time
//! steps, is fed to one session. Properties: no panic; the expected inbound number never
//! decreases while no reset is asked for; every byte the session writes frames as FIX 4.2 with
//! a correct checksum; and after a Disconnect outcome the test reconnects and continues.

use fix_codec::{check_frame, time, Dictionary, Frame, Parser, Writer};
use fix_session::{MemoryStore, Outcome, Session, SessionConfig};
use proptest::prelude::*;
use std::sync::Arc;

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_763_778_600 * SEC;

fn raw(msg_type: &str, seq: u64, poss_dup: bool, now: u64, body: &str) -> Vec<u8> {
    let mut t = [0_u8; 21];
    time::format_ms(now, &mut t);
    let mut w = Writer::new(256);
    w.begin(msg_type.as_bytes());
    w.field(49, b"CLIENT");
    w.field(56, b"EXCH");
    w.field_u64(34, seq);
    if poss_dup {
        w.field(43, b"Y");
        w.field(122, &t);
    }
    w.field(52, &t);
    w.raw(body.replace('|', "\x01").as_bytes());
    let mut out = Vec::new();
    w.finish(b"FIX.4.2", &mut out);
    out
}

const KINDS: [(&str, &str); 10] = [
    ("A", "98=0|108=30|"),
    ("0", ""),
    ("1", "112=X|"),
    ("2", "7=1|16=0|"),
    ("4", "123=Y|36=7|"),
    ("4", "36=3|"),
    ("5", ""),
    ("D", "11=A|21=1|55=X|54=1|60=20251122-02:30:00|40=1|"),
    ("D", "11=A|21=1|55=X|54=9X|60=20251122-02:30:00|40=1|"),
    ("A", "98=0|108=30|141=Y|"),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn random_streams(steps in proptest::collection::vec((0..KINDS.len(), 0..6_u64, any::<bool>(), 0..40_u64), 1..60)) {
        let dict = Arc::new(Dictionary::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fix-dictionaries/FIX42.xml")).unwrap());
        let mut s = Session::new(SessionConfig::new("EXCH", "CLIENT"), dict, MemoryStore::new());
        let mut parser = Parser::new(128);
        let mut out = Vec::new();
        let mut now = T0;
        s.on_connect(now).unwrap();
        let mut next = 1_u64;
        for (kind, seq_delta, poss_dup, dt) in steps {
            now += dt * SEC;
            let (t, body) = KINDS[kind];
            let seq = (s.next_target_seq() + seq_delta).saturating_sub(2).max(1);
            let m = raw(t, seq, poss_dup, now, body);
            let before = s.next_target_seq();
            let outcome = {
                let msg = parser.parse(&m).unwrap();
                s.on_message(&msg, now, &mut out).unwrap()
            };
            let reset_asked = body.contains("141=Y");
            if !reset_asked && s.is_connected() {
                prop_assert!(s.next_target_seq() >= before);
            }
            let _ = s.on_timer(now, &mut out).unwrap();
            let mut pos = 0;
            while pos < out.len() {
                match check_frame(&out[pos..], b"FIX.4.2", 1 << 20) {
                    Frame::Complete { len } => pos += len,
                    other => prop_assert!(false, "bad output frame {:?}", other),
                }
            }
            out.clear();
            if matches!(outcome, Outcome::Disconnect(_)) {
                s.on_disconnect(now).unwrap();
                s.on_connect(now).unwrap();
            }
            next += 1;
        }
        prop_assert!(next > 0);
    }
}
