//! Framing: one whole message at the front of a receive buffer.
//!
//! A FIX message is `8=<BeginString>|9=<BodyLength>|<body>10=<CheckSum>|` where the body runs
//! from the byte after the BodyLength's SOH up to and including the SOH before `10=`, and the
//! checksum is the sum of every byte before `10=` modulo 256, written as three digits.
//! [`check`] inspects only the bytes it needs, never copies, and decides from the BodyLength
//! alone whether a message may be buffered at all.

use crate::{checksum, SOH};

/// What the front of a receive buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole, well-formed message of `len` bytes starts at offset 0.
    Complete { len: usize },
    /// More bytes are needed; `need` is the total length once the header is known (0 if not yet).
    Incomplete { need: usize },
    /// The first `skip` bytes are garbled and must be dropped (no sequence number is consumed).
    Garbled { skip: usize, reason: Garble },
    /// A message with another BeginString: the FIX rules say disconnect.
    WrongBeginString,
    /// The BodyLength exceeds the configured maximum: disconnect before buffering it.
    TooLarge { body_len: usize },
}

/// Why bytes were dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Garble {
    /// Bytes before a message start (`8=`).
    Junk,
    /// BodyLength is not a number, or the message does not end with `10=nnn|` where it says.
    BodyLength,
    /// CheckSum does not match the bytes.
    CheckSum,
}

/// Length of the trailer `10=nnn|`.
pub const TRAILER_LEN: usize = 7;
/// Digits accepted in a BodyLength.
const BODY_LENGTH_DIGITS_MAX: usize = 7;

/// Examines the front of `buf` for one message with BeginString `begin_string` (e.g.
/// `b"FIX.4.2"`) whose body is at most `body_len_max` bytes.
pub fn check(buf: &[u8], begin_string: &[u8], body_len_max: usize) -> Frame {
    if buf.is_empty() {
        return Frame::Incomplete { need: 0 };
    }
    // "8="
    let head = &buf[..buf.len().min(2)];
    if head != &b"8="[..head.len()] {
        return junk(buf);
    }
    if buf.len() < 2 {
        return Frame::Incomplete { need: 0 };
    }
    // BeginString value up to SOH.
    let bs_end = 2 + begin_string.len();
    let avail = &buf[2..buf.len().min(bs_end)];
    if avail != &begin_string[..avail.len()] {
        return if buf[2..].starts_with(b"FIX") || begin_string.starts_with(&buf[2..]) {
            wrong_or_junk(buf)
        } else {
            junk(buf)
        };
    }
    if buf.len() <= bs_end {
        return Frame::Incomplete { need: 0 };
    }
    if buf[bs_end] != SOH {
        return wrong_or_junk(buf);
    }
    // "9=" digits SOH
    let p = bs_end + 1;
    let nine = &buf[p..buf.len().min(p + 2)];
    if nine != &b"9="[..nine.len()] {
        return garbled_body_length(buf);
    }
    if buf.len() < p + 2 {
        return Frame::Incomplete { need: 0 };
    }
    let digits_start = p + 2;
    let mut i = digits_start;
    let mut body_len: usize = 0;
    loop {
        if i >= buf.len() {
            return Frame::Incomplete { need: 0 };
        }
        let b = buf[i];
        if b == SOH {
            break;
        }
        if !b.is_ascii_digit() || i - digits_start >= BODY_LENGTH_DIGITS_MAX {
            return garbled_body_length(buf);
        }
        body_len = body_len * 10 + usize::from(b - b'0');
        i += 1;
    }
    if i == digits_start {
        return garbled_body_length(buf);
    }
    if body_len > body_len_max {
        return Frame::TooLarge { body_len };
    }
    let body_start = i + 1;
    let body_end = body_start + body_len;
    let total = body_end + TRAILER_LEN;
    if buf.len() < total {
        return Frame::Incomplete { need: total };
    }
    let t = &buf[body_end..total];
    if &t[..3] != b"10="
        || t[6] != SOH
        || !t[3].is_ascii_digit()
        || !t[4].is_ascii_digit()
        || !t[5].is_ascii_digit()
        || body_len == 0
        || buf[body_end - 1] != SOH
    {
        return garbled_body_length(buf);
    }
    let stated =
        u32::from(t[3] - b'0') * 100 + u32::from(t[4] - b'0') * 10 + u32::from(t[5] - b'0');
    if stated != u32::from(checksum(&buf[..body_end])) {
        return Frame::Garbled {
            skip: total,
            reason: Garble::CheckSum,
        };
    }
    Frame::Complete { len: total }
}

/// Bytes up to the next plausible message start.
fn next_start(buf: &[u8]) -> usize {
    // A message starts with "8=FIX" after a SOH (or at the very start, excluded here).
    match find(&buf[1..], b"\x018=") {
        Some(p) => p + 2,
        None => {
            // Keep a trailing SOH (and a partial "8") that may begin the next message.
            let n = buf.len();
            let keep_last =
                buf[n - 1] == SOH || (n >= 2 && buf[n - 2] == SOH && buf[n - 1] == b'8');
            if keep_last {
                n - 1
            } else {
                n
            }
        }
    }
    .max(1)
}

fn junk(buf: &[u8]) -> Frame {
    Frame::Garbled {
        skip: next_start(buf),
        reason: Garble::Junk,
    }
}

fn garbled_body_length(buf: &[u8]) -> Frame {
    Frame::Garbled {
        skip: next_start(buf),
        reason: Garble::BodyLength,
    }
}

fn wrong_or_junk(buf: &[u8]) -> Frame {
    // "8=FIX..." with another version: a real message from a peer speaking another version.
    if buf.len() >= 5 && &buf[2..5] == b"FIX" {
        Frame::WrongBeginString
    } else if buf.len() < 5 {
        Frame::Incomplete { need: 0 }
    } else {
        junk(buf)
    }
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Writer;

    const BS: &[u8] = b"FIX.4.2";

    fn heartbeat() -> Vec<u8> {
        let mut w = Writer::new(256);
        w.begin(b"0");
        w.field(49, b"CLIENT");
        w.field(56, b"EXCH");
        w.field_u64(34, 2);
        w.field(52, b"20261122-02:30:00.000");
        let mut out = Vec::new();
        w.finish(BS, &mut out);
        out
    }

    #[test]
    fn a_whole_message_is_complete() {
        let m = heartbeat();
        assert_eq!(check(&m, BS, 4096), Frame::Complete { len: m.len() });
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let m = heartbeat();
        for n in 0..m.len() {
            match check(&m[..n], BS, 4096) {
                Frame::Incomplete { .. } => {}
                other => panic!("prefix {n}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_wrong_checksum_is_garbled_and_skipped_whole() {
        let mut m = heartbeat();
        let n = m.len();
        m[n - 2] = if m[n - 2] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            check(&m, BS, 4096),
            Frame::Garbled {
                skip: n,
                reason: Garble::CheckSum
            }
        );
    }

    #[test]
    fn a_wrong_body_length_is_garbled_up_to_the_next_message() {
        let good = heartbeat();
        let text = String::from_utf8(good.clone()).unwrap();
        let bad = text.replacen("9=", "9=1", 1); // claims 10x the bytes... or more
        let mut buf = bad.clone().into_bytes();
        buf.truncate(bad.len()); // it is short of its claim: Incomplete until more arrives
        let mut both = buf.clone();
        both.extend_from_slice(&good);
        both.extend_from_slice(&[b'x'; 2000]);
        match check(&both, BS, 4096) {
            Frame::Garbled {
                skip,
                reason: Garble::BodyLength,
            } => {
                assert_eq!(&both[skip..skip + good.len()], &good[..]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_size_cap_applies_before_the_body_arrives() {
        assert_eq!(
            check(b"8=FIX.4.2\x019=99999\x01", BS, 4096),
            Frame::TooLarge { body_len: 99999 }
        );
    }

    #[test]
    fn another_version_is_reported() {
        assert_eq!(
            check(b"8=FIX.4.4\x019=5\x0135=0\x0110=000\x01", BS, 4096),
            Frame::WrongBeginString
        );
    }

    #[test]
    fn junk_before_a_message_is_skipped() {
        let mut buf = b"garbage\x01".to_vec();
        buf.extend_from_slice(&heartbeat());
        match check(&buf, BS, 4096) {
            Frame::Garbled {
                skip,
                reason: Garble::Junk,
            } => assert_eq!(skip, 8),
            other => panic!("{other:?}"),
        }
    }
}
