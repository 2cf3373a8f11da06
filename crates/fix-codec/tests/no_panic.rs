//! Property tests: no input makes the framer, the parser or the validator panic.
//!
//! Arbitrary bytes, and mutations of a valid NewOrderSingle (bytes flipped, inserted, cut, SOHs
//! moved) are fed through `check_frame`, then every complete frame through `Parser::parse` and
//! `Dictionary::validate`. The properties: no panic; the framer's answers are consistent (a
//! Complete length never exceeds the buffer, a Garbled skip is at least one byte and at most the
//! buffer); and a frame is only Complete when its checksum verifies.

use fix_codec::{check_frame, checksum, Dictionary, Frame, Parser, ValidationOptions, Writer};
use proptest::prelude::*;

fn valid() -> Vec<u8> {
    let mut w = Writer::new(512);
    w.begin(b"D");
    w.raw(b"49=CLIENT\x0156=EXCH\x0134=2\x0152=20261122-02:30:00.000\x01");
    w.raw(b"11=A1\x0121=1\x0155=ACME\x0154=1\x0160=20261122-02:30:00\x0138=100\x0140=2\x0144=10.25\x01");
    w.raw(b"78=1\x0179=X\x0180=1\x0195=2\x0196=ab\x01");
    let mut out = Vec::new();
    w.finish(b"FIX.4.2", &mut out);
    out
}

fn drive(buf: &[u8], dict: &Dictionary) {
    let mut parser = Parser::new(64);
    let mut pos = 0;
    let mut guard = 0;
    while pos < buf.len() {
        guard += 1;
        assert!(guard <= buf.len() + 1);
        let rest = &buf[pos..];
        match check_frame(rest, b"FIX.4.2", 1024) {
            Frame::Complete { len } => {
                assert!(len <= rest.len());
                let body_end = len - 7;
                let stated = std::str::from_utf8(&rest[body_end + 3..body_end + 6])
                    .unwrap()
                    .parse::<u32>()
                    .unwrap();
                assert_eq!(stated, u32::from(checksum(&rest[..body_end])));
                if let Ok(m) = parser.parse(&rest[..len]) {
                    let _ = dict.validate(&m, &ValidationOptions::default());
                    let _ = m.get(11);
                    let _ = m.seq_num();
                }
                pos += len;
            }
            Frame::Garbled { skip, .. } => {
                assert!(skip >= 1 && skip <= rest.len());
                pos += skip;
            }
            Frame::Incomplete { .. } | Frame::WrongBeginString | Frame::TooLarge { .. } => break,
        }
    }
}

fn dict() -> Dictionary {
    Dictionary::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fix-dictionaries/FIX42.xml"
    ))
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
        drive(&buf, &dict());
    }

    #[test]
    fn mutated_messages(edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0..3_u8), 1..6)) {
        let mut m = valid();
        for (at, byte, kind) in edits {
            let i = usize::from(at) % (m.len() + 1);
            match kind {
                0 if i < m.len() => m[i] = byte,
                1 => m.insert(i, if byte % 3 == 0 { 1 } else { byte }),
                _ if i < m.len() => { m.remove(i); }
                _ => {}
            }
        }
        // Fix the checksum half the time so the parser and validator see the mutation.
        let mut fixed = m.clone();
        if fixed.len() > 7 && fixed.ends_with(b"\x01") {
            let n = fixed.len();
            let sum = checksum(&fixed[..n - 7]);
            if &fixed[n - 7..n - 4] == b"10=" {
                fixed[n - 4] = b'0' + sum / 100;
                fixed[n - 3] = b'0' + (sum / 10) % 10;
                fixed[n - 2] = b'0' + sum % 10;
            }
        }
        let d = dict();
        drive(&m, &d);
        drive(&fixed, &d);
        let mut two = valid();
        two.extend_from_slice(&fixed);
        two.extend_from_slice(&valid());
        drive(&two, &d);
    }
}
