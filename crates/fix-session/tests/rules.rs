//! The session rules of the FIX 4.2 specification, one test per rule, on the pure state machine.
//!
//! A scripted counterparty builds messages with the codec's writer; each is framed, parsed and
//! handed to `Session::on_message` with an explicit time, and the test reads back the messages
//! the session wrote (and the outcome: carry on, deliver, disconnect). Time only moves when a test
//! moves it, so heartbeat, TestRequest and time-out rules are checked to the nanosecond. The
//! dictionary is the real `fix-dictionaries/FIX42.xml`; the restart test uses the on-disk store.

use fix_codec::{check_frame, time, Dictionary, Frame, Parser, Writer};
use fix_session::{
    ct_eq, FileStore, MemoryStore, Outcome, Session, SessionConfig, SessionState, Store,
};
use std::sync::Arc;

const SEC: u64 = 1_000_000_000;
const T0: u64 = 1_763_778_600 * SEC; // 2025-11-22 02:30:00 UTC

fn dict() -> Arc<Dictionary> {
    Arc::new(
        Dictionary::from_file(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fix-dictionaries/FIX42.xml"
        ))
        .unwrap(),
    )
}

fn ts(ns: u64) -> String {
    let mut b = [0_u8; time::TIMESTAMP_MS_LEN];
    time::format_ms(ns, &mut b);
    String::from_utf8(b.to_vec()).unwrap()
}

/// One received message as (tag, value) pairs.
#[derive(Debug, Clone)]
struct Got(Vec<(u32, String)>);

impl Got {
    fn get(&self, tag: u32) -> Option<&str> {
        self.0
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| v.as_str())
    }
    fn msg_type(&self) -> &str {
        self.get(35).unwrap()
    }
    fn seq(&self) -> u64 {
        self.get(34).unwrap().parse().unwrap()
    }
}

struct Harness<S: Store> {
    s: Session<S>,
    parser: Parser,
    out: Vec<u8>,
    now: u64,
    /// The counterparty's next MsgSeqNum.
    seq: u64,
}

fn config() -> SessionConfig {
    let mut c = SessionConfig::new("EXCH", "CLIENT");
    c.heartbeat_secs_min = 5;
    c.heartbeat_secs_max = 60;
    c
}

fn harness(c: SessionConfig) -> Harness<MemoryStore> {
    Harness::with_store(c, MemoryStore::new())
}

impl<S: Store> Harness<S> {
    fn with_store(c: SessionConfig, store: S) -> Self {
        let mut s = Session::new(c, dict(), store);
        s.on_connect(T0).unwrap();
        Harness {
            s,
            parser: Parser::new(256),
            out: Vec::new(),
            now: T0,
            seq: 1,
        }
    }

    /// Builds a message from the counterparty: header from the harness, `fields` after it.
    fn build(&self, msg_type: &str, seq: u64, header_extra: &str, fields: &str) -> Vec<u8> {
        let mut w = Writer::new(512);
        w.begin(msg_type.as_bytes());
        let hdr = format!(
            "49=CLIENT|56=EXCH|34={seq}|{header_extra}52={}|",
            ts(self.now)
        );
        for kv in hdr
            .split('|')
            .chain(fields.split('|'))
            .filter(|s| !s.is_empty())
        {
            let (k, v) = kv.split_once('=').unwrap();
            w.raw(format!("{k}={v}\x01").as_bytes());
        }
        let mut out = Vec::new();
        w.finish(b"FIX.4.2", &mut out);
        out
    }

    fn deliver(&mut self, raw: &[u8]) -> Outcome {
        assert_eq!(
            check_frame(raw, b"FIX.4.2", 8192),
            Frame::Complete { len: raw.len() }
        );
        let m = self.parser.parse(raw).unwrap();
        self.s.on_message(&m, self.now, &mut self.out).unwrap()
    }

    /// Sends the counterparty's next message in sequence.
    fn send(&mut self, msg_type: &str, fields: &str) -> Outcome {
        let raw = self.build(msg_type, self.seq, "", fields);
        self.seq += 1;
        self.deliver(&raw)
    }

    fn send_at(&mut self, msg_type: &str, seq: u64, header_extra: &str, fields: &str) -> Outcome {
        let raw = self.build(msg_type, seq, header_extra, fields);
        self.deliver(&raw)
    }

    fn logon(&mut self) {
        assert_eq!(self.send("A", "98=0|108=30|"), Outcome::LoggedOn);
        let got = self.take();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].msg_type(), "A");
    }

    fn timer(&mut self) -> Outcome {
        self.s.on_timer(self.now, &mut self.out).unwrap()
    }

    /// Every message the session wrote since the last call, checked for framing.
    fn take(&mut self) -> Vec<Got> {
        let mut res = Vec::new();
        let mut pos = 0;
        while pos < self.out.len() {
            let Frame::Complete { len } = check_frame(&self.out[pos..], b"FIX.4.2", 1 << 20) else {
                panic!("the session wrote a bad frame");
            };
            let m = self.parser.parse(&self.out[pos..pos + len]).unwrap();
            assert_eq!(m.get(49), Some(&b"EXCH"[..]));
            assert_eq!(m.get(56), Some(&b"CLIENT"[..]));
            assert!(
                m.get(52).unwrap().len() == 21,
                "SendingTime with milliseconds"
            );
            res.push(Got(m
                .fields()
                .iter()
                .map(|f| (f.tag, String::from_utf8_lossy(m.value(f)).into_owned()))
                .collect()));
            pos += len;
        }
        self.out.clear();
        res
    }
}

fn types(got: &[Got]) -> Vec<&str> {
    got.iter().map(Got::msg_type).collect()
}

// ------------------------------------------------------------------ Logon

#[test]
fn logon_is_answered_with_logon_and_the_same_heartbeat_interval() {
    let mut h = harness(config());
    assert_eq!(h.send("A", "98=0|108=30|"), Outcome::LoggedOn);
    let got = h.take();
    assert_eq!(types(&got), ["A"]);
    assert_eq!(got[0].get(108), Some("30"));
    assert_eq!(got[0].get(98), Some("0"));
    assert_eq!(got[0].seq(), 1);
    assert_eq!(h.s.state(), SessionState::Active);
    assert_eq!(h.s.next_target_seq(), 2);
}

#[test]
fn a_first_message_other_than_logon_disconnects() {
    let mut h = harness(config());
    assert!(matches!(h.send("0", ""), Outcome::Disconnect(_)));
    assert!(h.take().is_empty());
}

#[test]
fn unknown_comp_ids_on_logon_disconnect_silently() {
    let mut h = harness(SessionConfig::new("EXCH", "SOMEONE_ELSE"));
    assert!(matches!(
        h.send("A", "98=0|108=30|"),
        Outcome::Disconnect(_)
    ));
    assert!(h.take().is_empty());
}

#[test]
fn heartbeat_interval_out_of_bounds_is_refused() {
    for hb in ["1", "61", "-5"] {
        let mut h = harness(config());
        assert!(
            matches!(
                h.send("A", &format!("98=0|108={hb}|")),
                Outcome::Disconnect(_)
            ),
            "{hb}"
        );
        let got = h.take();
        if hb != "-5" {
            assert_eq!(types(&got), ["5"]);
            assert!(got[0].get(58).unwrap().contains("HeartBtInt"));
        }
    }
}

#[test]
fn the_password_in_raw_data_is_checked() {
    let mut c = config();
    c.password = Some(b"s3cret".to_vec());
    let mut h = harness(c.clone());
    assert!(matches!(
        h.send("A", "98=0|108=30|95=5|96=wrong|"),
        Outcome::Disconnect(_)
    ));
    assert_eq!(types(&h.take()), ["5"]);
    let mut h = harness(c.clone());
    assert!(matches!(
        h.send("A", "98=0|108=30|"),
        Outcome::Disconnect(_)
    ));
    let mut h = harness(c);
    assert_eq!(
        h.send("A", "98=0|108=30|95=6|96=s3cret|"),
        Outcome::LoggedOn
    );
    assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"abc", b"ab"));
}

#[test]
fn reset_seq_num_flag_starts_both_sides_at_one() {
    let mut h = harness(config());
    h.logon();
    h.send("0", "");
    h.send("0", "");
    h.s.on_disconnect(h.now).unwrap();
    h.s.on_connect(h.now).unwrap();
    h.seq = 1;
    assert_eq!(h.send("A", "98=0|108=30|141=Y|"), Outcome::LoggedOn);
    let got = h.take();
    assert_eq!(got[0].get(141), Some("Y"));
    assert_eq!(got[0].seq(), 1);
    assert_eq!(h.s.next_target_seq(), 2);
}

#[test]
fn a_logon_with_a_high_seq_num_is_accepted_then_a_resend_is_requested() {
    let mut h = harness(config());
    assert_eq!(h.send_at("A", 5, "", "98=0|108=30|"), Outcome::LoggedOn);
    let got = h.take();
    assert_eq!(types(&got), ["A", "2"]);
    assert_eq!(got[1].get(7), Some("1"));
    assert_eq!(got[1].get(16), Some("0"));
}

#[test]
fn a_logon_with_a_low_seq_num_is_logged_out() {
    let mut h = harness(config());
    h.logon();
    h.send("0", "");
    h.s.on_disconnect(h.now).unwrap();
    h.s.on_connect(h.now).unwrap();
    assert!(matches!(
        h.send_at("A", 1, "", "98=0|108=30|"),
        Outcome::Disconnect(_)
    ));
    let got = h.take();
    assert_eq!(types(&got), ["5"]);
    assert_eq!(
        got[0].get(58),
        Some("MsgSeqNum too low, expecting 3 but received 1")
    );
}

#[test]
fn no_logon_within_the_timeout_disconnects() {
    let mut h = harness(config());
    h.now += 4 * SEC;
    assert_eq!(h.timer(), Outcome::Handled);
    h.now += SEC;
    assert!(matches!(h.timer(), Outcome::Disconnect(_)));
}

// ------------------------------------------------------------------ Heartbeats

#[test]
fn a_test_request_is_answered_with_its_id() {
    let mut h = harness(config());
    h.logon();
    h.send("1", "112=PING-7|");
    let got = h.take();
    assert_eq!(types(&got), ["0"]);
    assert_eq!(got[0].get(112), Some("PING-7"));
}

#[test]
fn heartbeats_test_requests_and_the_silent_peer() {
    let mut h = harness(config());
    h.logon();
    h.now += 30 * SEC - 1;
    h.timer();
    assert!(h.take().is_empty());
    h.now += 1;
    h.timer();
    assert_eq!(types(&h.take()), ["0"]);
    // 30 s + 20% of silence: a TestRequest.
    h.now = T0 + 36 * SEC;
    h.timer();
    let got = h.take();
    assert_eq!(types(&got), ["1"]);
    let id = got[0].get(112).unwrap().to_string();
    // Answered: all is well.
    h.send("0", &format!("112={id}|"));
    h.now += 29 * SEC;
    h.timer();
    assert!(!types(&h.take()).contains(&"5"));
    // Silence again: TestRequest, then nothing for an interval: Logout and disconnect.
    h.now += 8 * SEC;
    h.timer();
    assert_eq!(
        types(&h.take()),
        ["1"],
        "a TestRequest also counts as a heartbeat"
    );
    h.now += 30 * SEC;
    assert!(matches!(h.timer(), Outcome::Disconnect(_)));
}

// ------------------------------------------------------------------ MsgSeqNum

#[test]
fn a_seq_num_too_high_asks_for_a_resend_once() {
    let mut h = harness(config());
    h.logon();
    assert_eq!(
        h.send_at("D", 5, "", "11=A|21=1|55=X|54=1|60=20251122-02:30:00|40=1|"),
        Outcome::Handled
    );
    let got = h.take();
    assert_eq!(types(&got), ["2"]);
    assert_eq!((got[0].get(7), got[0].get(16)), (Some("2"), Some("0")));
    assert_eq!(h.s.next_target_seq(), 2);
    // More messages inside the gap do not repeat the request.
    h.send_at("0", 6, "", "");
    assert!(h.take().is_empty());
    // The resend arrives (possible duplicates), filling the gap.
    let orig = format!("122={}|", ts(h.now));
    h.send_at("4", 2, &format!("43=Y|{orig}"), "123=Y|36=5|");
    assert_eq!(h.s.next_target_seq(), 5);
    assert_eq!(
        h.send_at(
            "D",
            5,
            &format!("43=Y|{orig}"),
            "11=A|21=1|55=X|54=1|60=20251122-02:30:00|40=1|"
        ),
        Outcome::Application
    );
}

#[test]
fn a_seq_num_too_low_without_poss_dup_logs_out() {
    let mut h = harness(config());
    h.logon();
    h.send("0", "");
    assert!(matches!(h.send_at("0", 2, "", ""), Outcome::Disconnect(_)));
    let got = h.take();
    assert_eq!(types(&got), ["5"]);
    assert_eq!(
        got[0].get(58),
        Some("MsgSeqNum too low, expecting 3 but received 2")
    );
}

#[test]
fn a_poss_dup_already_seen_is_ignored() {
    let mut h = harness(config());
    h.logon();
    h.send("0", "");
    let orig = format!("122={}|", ts(h.now - SEC));
    assert_eq!(
        h.send_at("0", 2, &format!("43=Y|{orig}"), ""),
        Outcome::Handled
    );
    assert!(h.take().is_empty());
    assert_eq!(h.s.next_target_seq(), 3);
}

#[test]
fn poss_dup_without_orig_sending_time_is_rejected() {
    let mut h = harness(config());
    h.logon();
    h.send_at("0", 2, "43=Y|", "");
    let got = h.take();
    assert_eq!(types(&got), ["3"]);
    assert_eq!(got[0].get(373), Some("1"));
    assert_eq!(got[0].get(371), Some("122"));
    assert_eq!(got[0].get(45), Some("2"));
    assert_eq!(
        h.s.next_target_seq(),
        3,
        "a rejected message still consumes its number"
    );
}

#[test]
fn orig_sending_time_after_sending_time_is_rejected_and_logged_out() {
    let mut h = harness(config());
    h.logon();
    let later = format!("43=Y|122={}|", ts(h.now + 10 * SEC));
    assert!(matches!(
        h.send_at("0", 2, &later, ""),
        Outcome::Disconnect(_)
    ));
    let got = h.take();
    assert_eq!(types(&got), ["3", "5"]);
    assert_eq!(got[0].get(373), Some("10"));
}

#[test]
fn sending_time_far_from_now_is_rejected_and_logged_out() {
    let mut h = harness(config());
    h.logon();
    let raw = h.build("0", 2, "", "");
    h.now += 121 * SEC;
    assert!(matches!(h.deliver(&raw), Outcome::Disconnect(_)));
    let got = h.take();
    assert_eq!(types(&got), ["3", "5"]);
    assert_eq!((got[0].get(373), got[0].get(371)), (Some("10"), Some("52")));
}

#[test]
fn a_comp_id_problem_after_logon_is_rejected_and_logged_out() {
    let mut h = harness(config());
    h.logon();
    let raw = h.build("0", 2, "", "");
    let raw = String::from_utf8(raw)
        .unwrap()
        .replace("49=CLIENT", "49=CLIENX");
    // Keep the checksum right.
    let body_end = raw.len() - 7;
    let sum = raw.as_bytes()[..body_end]
        .iter()
        .fold(0u8, |a, &b| a.wrapping_add(b));
    let raw = format!("{}10={sum:03}\x01", &raw[..body_end]);
    assert!(matches!(h.deliver(raw.as_bytes()), Outcome::Disconnect(_)));
    let got = h.take();
    assert_eq!(types(&got), ["3", "5"]);
    assert_eq!(got[0].get(373), Some("9"));
}

// ------------------------------------------------------------------ Rejects

#[test]
fn a_structural_fault_is_rejected_with_ref_fields_and_consumes_the_seq_num() {
    let mut h = harness(config());
    h.logon();
    h.send("D", "11=A|21=1|55=X|54=Q|60=20251122-02:30:00|40=1|");
    let got = h.take();
    assert_eq!(types(&got), ["3"]);
    assert_eq!(got[0].get(45), Some("2"));
    assert_eq!(got[0].get(371), Some("54"));
    assert_eq!(got[0].get(372), Some("D"));
    assert_eq!(got[0].get(373), Some("5"));
    assert_eq!(h.send("0", ""), Outcome::Handled);
    assert!(h.take().is_empty(), "the next number is in sequence");
}

#[test]
fn faults_without_a_fix42_code_are_named_in_text() {
    let mut h = harness(config());
    h.logon();
    h.send("D", "11=A|21=1|55=X|55=Y|54=1|60=20251122-02:30:00|40=1|");
    let got = h.take();
    assert_eq!(got[0].get(373), None);
    assert_eq!(got[0].get(371), Some("55"));
    assert!(got[0].get(58).unwrap().contains("(SessionRejectReason 13)"));
}

#[test]
fn an_invalid_msg_type_is_rejected_with_reason_11() {
    let mut h = harness(config());
    h.logon();
    h.send("ZZ", "");
    let got = h.take();
    assert_eq!((got[0].msg_type(), got[0].get(373)), ("3", Some("11")));
}

#[test]
fn an_unsupported_application_message_gets_a_business_reject() {
    let mut h = harness(config());
    h.logon();
    assert_eq!(h.send("R", "131=Q1|"), Outcome::Handled);
    let got = h.take();
    assert_eq!(types(&got), ["j"]);
    assert_eq!(
        (got[0].get(380), got[0].get(372), got[0].get(45)),
        (Some("3"), Some("R"), Some("2"))
    );
    assert_eq!(h.s.next_target_seq(), 3);
}

#[test]
fn a_valid_application_message_is_delivered() {
    let mut h = harness(config());
    h.logon();
    assert_eq!(
        h.send("D", "11=A|21=1|55=X|54=1|60=20251122-02:30:00|40=1|38=5|"),
        Outcome::Application
    );
}

// ------------------------------------------------------------------ Resend

fn send_exec(h: &mut Harness<impl Store>, id: &str) {
    let now = h.now;
    h.s.send_app(b"8", now, &mut h.out, |w| {
        w.field(37, id.as_bytes());
        w.field(17, id.as_bytes());
        w.field(20, b"0");
        w.field(150, b"0");
        w.field(39, b"0");
        w.field(55, b"X");
        w.field(54, b"1");
        w.field(151, b"1");
        w.field(14, b"0");
        w.field(6, b"0");
    })
    .unwrap();
}

#[test]
fn a_resend_request_resends_application_messages_and_gap_fills_session_ones() {
    let mut h = harness(config());
    h.logon(); // our 1: Logon
    send_exec(&mut h, "E1"); // 2
    h.send("1", "112=T|"); // our 3: Heartbeat
    send_exec(&mut h, "E2"); // 4
    let sent = h.take();
    let orig_time = sent[0].get(52).unwrap().to_string();
    h.now += 2 * SEC;
    h.send("2", "7=1|16=0|");
    let got = h.take();
    assert_eq!(types(&got), ["4", "8", "4", "8"]);
    assert_eq!(
        (
            got[0].seq(),
            got[0].get(123),
            got[0].get(36),
            got[0].get(43)
        ),
        (1, Some("Y"), Some("2"), Some("Y"))
    );
    assert_eq!(
        (got[1].seq(), got[1].get(43), got[1].get(17)),
        (2, Some("Y"), Some("E1"))
    );
    assert_eq!(got[1].get(122), Some(orig_time.as_str()));
    assert_ne!(got[1].get(52), Some(orig_time.as_str()));
    assert_eq!((got[2].seq(), got[2].get(36)), (3, Some("4")));
    assert_eq!((got[3].seq(), got[3].get(17)), (4, Some("E2")));
    assert_eq!(h.s.next_sender_seq(), 5, "resending takes no new numbers");
}

#[test]
fn resend_ranges_are_capped_and_rate_limited() {
    let mut c = config();
    c.resend_range_max = 3;
    c.resend_requests_max = 2;
    let mut h = harness(c);
    h.logon();
    for i in 0..10 {
        send_exec(&mut h, &format!("E{i}"));
    }
    h.take();
    h.send("2", "7=2|16=0|");
    let got = h.take();
    assert_eq!(got.len(), 3);
    assert_eq!(got.iter().map(Got::seq).collect::<Vec<_>>(), [2, 3, 4]);
    h.send("2", "7=5|16=0|");
    assert_eq!(h.take().len(), 3);
    assert!(matches!(h.send("2", "7=1|16=0|"), Outcome::Disconnect(_)));
    assert_eq!(types(&h.take()), ["5"]);
}

#[test]
fn a_corrupted_stored_message_is_gap_filled_not_resent() {
    struct Corrupting(MemoryStore);
    impl Store for Corrupting {
        fn next_sender_seq(&self) -> u64 {
            self.0.next_sender_seq()
        }
        fn next_target_seq(&self) -> u64 {
            self.0.next_target_seq()
        }
        fn set_next_sender_seq(&mut self, s: u64) -> std::io::Result<()> {
            self.0.set_next_sender_seq(s)
        }
        fn set_next_target_seq(&mut self, s: u64) -> std::io::Result<()> {
            self.0.set_next_target_seq(s)
        }
        fn save(&mut self, seq: u64, m: &[u8]) -> std::io::Result<()> {
            let mut m = m.to_vec();
            let i = m.len() / 2;
            m[i] ^= 0x20;
            self.0.save(seq, &m)
        }
        fn load(&mut self, seq: u64, out: &mut Vec<u8>) -> std::io::Result<bool> {
            self.0.load(seq, out)
        }
        fn reset(&mut self, now: u64) -> std::io::Result<()> {
            self.0.reset(now)
        }
        fn created_ns(&self) -> u64 {
            self.0.created_ns()
        }
    }
    let mut h = Harness::with_store(config(), Corrupting(MemoryStore::new()));
    h.logon();
    send_exec(&mut h, "E1");
    h.take();
    h.send("2", "7=1|16=0|");
    let got = h.take();
    assert_eq!(types(&got), ["4"]);
    assert_eq!(got[0].get(36), Some("3"));
}

#[test]
fn a_restart_resumes_numbers_and_serves_resends_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = FileStore::open(dir.path(), "EXCH-CLIENT", 1000, false, T0).unwrap();
        let mut h = Harness::with_store(config(), store);
        h.logon();
        send_exec(&mut h, "E1");
        send_exec(&mut h, "E2");
    }
    let store = FileStore::open(dir.path(), "EXCH-CLIENT", 1000, false, T0).unwrap();
    let mut h = Harness::with_store(config(), store);
    assert_eq!((h.s.next_sender_seq(), h.s.next_target_seq()), (4, 2));
    h.seq = 2;
    h.logon();
    h.send("2", "7=2|16=3|");
    let got = h.take();
    assert_eq!(types(&got), ["8", "8"]);
    assert_eq!((got[0].get(17), got[1].get(17)), (Some("E1"), Some("E2")));
}

// ------------------------------------------------------------------ SequenceReset

#[test]
fn sequence_reset_gap_fill_moves_forward_only() {
    let mut h = harness(config());
    h.logon();
    h.send("4", "123=Y|36=10|");
    assert_eq!(h.s.next_target_seq(), 10);
    h.seq = 10;
    h.send("4", "123=Y|36=9|");
    let got = h.take();
    assert_eq!(
        (got[0].msg_type(), got[0].get(373), got[0].get(371)),
        ("3", Some("5"), Some("36"))
    );
}

#[test]
fn sequence_reset_reset_mode_ignores_seq_num_and_never_rewinds() {
    let mut h = harness(config());
    h.logon();
    h.send_at("4", 99, "", "36=20|");
    assert_eq!(h.s.next_target_seq(), 20);
    assert!(h.take().is_empty());
    h.send_at("4", 1, "", "36=5|");
    let got = h.take();
    assert_eq!((got[0].msg_type(), got[0].get(373)), ("3", Some("5")));
    assert_eq!(h.s.next_target_seq(), 20);
}

#[test]
fn a_gap_fill_with_a_low_seq_num_needs_poss_dup() {
    let mut h = harness(config());
    h.logon();
    h.send("0", "");
    assert!(matches!(
        h.send_at("4", 2, "", "123=Y|36=5|"),
        Outcome::Disconnect(_)
    ));
}

// ------------------------------------------------------------------ Logout

#[test]
fn a_logout_from_the_peer_is_answered_then_disconnected() {
    let mut h = harness(config());
    h.logon();
    assert!(matches!(h.send("5", ""), Outcome::Disconnect(_)));
    assert_eq!(types(&h.take()), ["5"]);
}

#[test]
fn our_logout_waits_for_the_answer_or_times_out() {
    let mut h = harness(config());
    h.logon();
    let now = h.now;
    h.s.logout(Some(b"end of day"), now, &mut h.out).unwrap();
    let got = h.take();
    assert_eq!(
        (got[0].msg_type(), got[0].get(58)),
        ("5", Some("end of day"))
    );
    assert!(matches!(h.send("5", ""), Outcome::Disconnect(_)));
    assert!(h.take().is_empty(), "the answer is not answered");
    let mut h = harness(config());
    h.logon();
    let now = h.now;
    h.s.logout(None, now, &mut h.out).unwrap();
    h.now += 2 * SEC;
    assert!(matches!(h.timer(), Outcome::Disconnect(_)));
}

#[test]
fn reset_on_logout_and_daily_schedule() {
    let mut c = config();
    c.reset_on_logout = true;
    let mut h = harness(c);
    h.logon();
    h.send("5", "");
    assert_eq!((h.s.next_sender_seq(), h.s.next_target_seq()), (1, 1));

    let mut c = config();
    c.reset_time_utc_secs = Some(3 * 3600); // 03:00 UTC, T0 is 02:30
    let mut h = harness(c);
    h.logon();
    h.s.on_disconnect(h.now).unwrap();
    h.now += 10 * 60 * SEC;
    h.s.on_connect(h.now).unwrap();
    assert_eq!(h.s.next_target_seq(), 2, "same period");
    h.s.on_disconnect(h.now).unwrap();
    h.now += 30 * 60 * SEC;
    h.s.on_connect(h.now).unwrap();
    assert_eq!(
        (h.s.next_sender_seq(), h.s.next_target_seq()),
        (1, 1),
        "a new period"
    );
}

// ------------------------------------------------------------------ Replicated sessions

#[test]
fn a_message_that_would_reach_the_sender_limit_is_replaced_by_a_logout() {
    let mut h = harness(config());
    // Numbers 1 and 2 are below the limit: 1 for the Logon answer, 2 kept for the Logout.
    h.s.set_sender_seq_limit(3);
    h.logon();
    let err =
        h.s.send_app(b"8", h.now, &mut h.out, |w| w.field(11, b"X"))
            .unwrap_err();
    assert!(err.to_string().contains("reservation"), "{err}");
    assert!(h.s.sender_seq_exhausted());
    let got = h.take();
    assert_eq!(types(&got), ["5"], "the Logout instead of the report");
    assert_eq!(got[0].seq(), 2);
    assert!(got[0].get(58).unwrap().contains("reservation exhausted"));
    assert_eq!(h.s.state(), SessionState::LogoutSent);
    // Nothing else goes out, not even a second Logout.
    assert!(h.s.send_app(b"8", h.now, &mut h.out, |_| {}).is_err());
    assert!(h.take().is_empty());
    assert_eq!(h.s.next_sender_seq(), 3);
}

#[test]
fn below_the_sender_limit_nothing_changes() {
    let mut h = harness(config());
    h.s.set_sender_seq_limit(4);
    h.logon();
    assert_eq!(h.s.send_app(b"8", h.now, &mut h.out, |_| {}).unwrap(), 2);
    assert!(!h.s.sender_seq_exhausted());
    h.s.set_sender_seq_limit(100);
    assert_eq!(h.s.send_app(b"8", h.now, &mut h.out, |_| {}).unwrap(), 3);
    assert_eq!(types(&h.take()), ["8", "8"]);
}

#[test]
fn resumed_numbers_move_the_sender_forward_only_and_set_the_target() {
    let mut h = harness(config());
    h.s.on_disconnect(h.now).unwrap();
    h.s.resume_seq_nums(50, 7).unwrap();
    assert_eq!((h.s.next_sender_seq(), h.s.next_target_seq()), (50, 7));
    h.s.resume_seq_nums(10, 3).unwrap();
    assert_eq!((h.s.next_sender_seq(), h.s.next_target_seq()), (50, 3));
    // The counterparty, expecting 20, logs on with 3 and is asked to resend what it sent after
    // the target; it sees our Logon at 50 and asks for 20.. (answered by a gap fill).
    h.s.on_connect(h.now).unwrap();
    h.seq = 5;
    assert_eq!(h.send("A", "98=0|108=30|"), Outcome::LoggedOn);
    let got = h.take();
    assert_eq!(types(&got), ["A", "2"]);
    assert_eq!((got[0].seq(), got[1].get(7)), (50, Some("3")));
    assert_eq!(h.send_at("2", 6, "", "7=20|16=0|"), Outcome::Handled);
    let got = h.take();
    assert_eq!(types(&got), ["4"]);
    assert_eq!((got[0].seq(), got[0].get(36)), (20, Some("52")));
}

#[test]
fn a_long_run_of_numbers_the_store_does_not_hold_is_one_gap_fill_whatever_the_cap() {
    let mut c = config();
    c.resend_range_max = 3;
    let mut h = harness(c);
    h.s.on_disconnect(h.now).unwrap();
    // Taken over from another node: a million numbers this store never held.
    h.s.resume_seq_nums(1_000_000, 1).unwrap();
    h.s.on_connect(h.now).unwrap();
    h.logon();
    for i in 0..5 {
        send_exec(&mut h, &format!("E{i}"));
    }
    h.take();
    h.send("2", "7=7|16=0|");
    let got = h.take();
    assert_eq!(
        types(&got),
        ["4", "8", "8", "8"],
        "the cap counts stored messages"
    );
    assert_eq!((got[0].seq(), got[0].get(36)), (7, Some("1000001")));
    assert_eq!(
        got[1..].iter().map(Got::seq).collect::<Vec<_>>(),
        [1_000_001, 1_000_002, 1_000_003]
    );
    // The rest on the next request.
    h.send("2", "7=1000004|16=0|");
    let got = h.take();
    assert_eq!(
        got.iter().map(Got::seq).collect::<Vec<_>>(),
        [1_000_004, 1_000_005]
    );
}

#[test]
fn a_resent_message_keeps_its_poss_resend_flag() {
    let mut h = harness(config());
    h.logon();
    let now = h.now;
    h.s.send_app(b"8", now, &mut h.out, |w| {
        w.field(97, b"Y");
        w.field(37, b"1");
        w.field(17, b"E1");
        w.field(20, b"0");
        w.field(150, b"0");
        w.field(39, b"0");
        w.field(55, b"X");
        w.field(54, b"1");
        w.field(151, b"1");
        w.field(14, b"0");
        w.field(6, b"0");
    })
    .unwrap();
    send_exec(&mut h, "E2");
    h.take();
    h.send("2", "7=2|16=0|");
    let got = h.take();
    assert_eq!(types(&got), ["8", "8"]);
    assert_eq!((got[0].get(43), got[0].get(97)), (Some("Y"), Some("Y")));
    assert_eq!((got[1].get(43), got[1].get(97)), (Some("Y"), None));
}
