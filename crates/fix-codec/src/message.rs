//! Zero-copy parsing of a framed message into (tag, value range) pairs.

use crate::{parse_u64, DATA_PAIRS, SOH};

/// One field: its tag (0 when the tag is not a number) and the value's byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FieldRef {
    pub tag: u32,
    pub start: u32,
    pub end: u32,
}

/// Tags below this are found through a direct table; others by a scan.
pub const TAG_INDEX_LEN: usize = 1024;

/// Why a framed message could not be split into fields. Such a message is garbled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("a field has no '=' or no SOH")]
    Structure,
    #[error("more than {0} fields")]
    TooManyFields(usize),
    #[error("a data field's length does not match its bytes")]
    DataLength,
    #[error("the message does not start 8=, 9=, 35=")]
    Header,
}

/// Position of the first SOH, eight bytes at a time (the zero-byte bit trick on `x ^ 0x01..`).
#[inline]
fn find_soh(hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= hay.len() {
        let w = u64::from_le_bytes(hay[i..i + 8].try_into().expect("8 bytes"));
        let x = w ^ LO; // SOH bytes become zero
        let z = x.wrapping_sub(LO) & !x & HI;
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    hay[i..].iter().position(|&b| b == SOH).map(|p| i + p)
}

/// One bit per length tag of [`DATA_PAIRS`] (all below 384): a single test per field.
const DATA_LENGTH_TAGS: [u64; 6] = {
    let mut bits = [0_u64; 6];
    let mut i = 0;
    while i < DATA_PAIRS.len() {
        let t = DATA_PAIRS[i].0;
        bits[(t / 64) as usize] |= 1 << (t % 64);
        i += 1;
    }
    bits
};

/// The data tag a length tag announces (see [`DATA_PAIRS`]).
#[inline]
fn data_tag_of(tag: u32) -> Option<u32> {
    if tag < 384 && DATA_LENGTH_TAGS[(tag / 64) as usize] & (1 << (tag % 64)) != 0 {
        DATA_PAIRS.iter().find(|(l, _)| *l == tag).map(|&(_, d)| d)
    } else {
        None
    }
}

/// A tag of one to three digits (no leading zero) followed by `=` at `pos`: the common case,
/// decided from four bytes at once. Returns the tag and the position of the `=`.
#[inline(always)]
fn short_tag(buf: &[u8], pos: usize) -> Option<(u32, usize)> {
    let &[b0, b1, b2, b3] = buf.get(pos..pos + 4)?.first_chunk::<4>()?;
    let d0 = b0.wrapping_sub(b'0');
    let d1 = b1.wrapping_sub(b'0');
    let d2 = b2.wrapping_sub(b'0');
    if d0 == 0 || d0 >= 10 {
        None
    } else if b1 == b'=' {
        Some((u32::from(d0), pos + 1))
    } else if d1 >= 10 {
        None
    } else if b2 == b'=' {
        Some((u32::from(d0) * 10 + u32::from(d1), pos + 2))
    } else if d2 < 10 && b3 == b'=' {
        Some((
            u32::from(d0) * 100 + u32::from(d1) * 10 + u32::from(d2),
            pos + 3,
        ))
    } else {
        None
    }
}

/// Any other tag at `pos`: up to nine digits without a leading zero, else tag 0 (an invalid
/// tag number, rejected by validation). Returns the tag and the position of the `=`.
#[cold]
fn long_tag(buf: &[u8], pos: usize) -> Result<(u32, usize), ParseError> {
    let mut i = pos;
    let mut tag: u32 = 0;
    while i < buf.len() {
        let d = buf[i].wrapping_sub(b'0');
        if d >= 10 {
            break;
        }
        tag = tag.wrapping_mul(10).wrapping_add(u32::from(d));
        i += 1;
    }
    let digits = i - pos;
    if i < buf.len() && buf[i] == b'=' && digits > 0 && digits <= 9 && buf[pos] != b'0' {
        return Ok((tag, i));
    }
    // Find '=' (a SOH first means the field has none).
    while i < buf.len() && buf[i] != b'=' {
        if buf[i] == SOH {
            return Err(ParseError::Structure);
        }
        i += 1;
    }
    if i >= buf.len() {
        return Err(ParseError::Structure);
    }
    Ok((0, i))
}

/// Reusable parser state: the field array and the tag table, allocated once.
pub struct Parser {
    fields: Box<[FieldRef]>,
    len: usize,
    /// Position + 1 of the first occurrence of each small tag; 0 = absent.
    index: Box<[u16; TAG_INDEX_LEN]>,
}

impl Parser {
    /// A parser for messages of at most `fields_max` fields (at most 65534).
    pub fn new(fields_max: usize) -> Parser {
        let fields_max = fields_max.clamp(4, usize::from(u16::MAX) - 1);
        Parser {
            fields: vec![FieldRef::default(); fields_max].into_boxed_slice(),
            len: 0,
            index: Box::new([0; TAG_INDEX_LEN]),
        }
    }

    /// Splits `buf` (one whole framed message) into fields.
    pub fn parse<'a>(&'a mut self, buf: &'a [u8]) -> Result<Message<'a>, ParseError> {
        for f in &self.fields[..self.len] {
            if (f.tag as usize) < TAG_INDEX_LEN {
                self.index[f.tag as usize] = 0;
            }
        }
        self.len = 0;
        let mut n = 0_usize;
        let mut pos = 0_usize;
        let mut pending_data: Option<(u32, usize)> = None;
        let result = loop {
            if pos >= buf.len() {
                break Ok(());
            }
            if n == self.fields.len() {
                break Err(ParseError::TooManyFields(self.fields.len()));
            }
            let (tag, eq) = match short_tag(buf, pos) {
                Some(t) => t,
                None => match long_tag(buf, pos) {
                    Ok(t) => t,
                    Err(e) => break Err(e),
                },
            };
            let value_start = eq + 1;
            let value_end = match pending_data {
                Some((data_tag, len)) if data_tag == tag => match value_start.checked_add(len) {
                    Some(end) if end < buf.len() && buf[end] == SOH => end,
                    _ => break Err(ParseError::DataLength),
                },
                _ => match find_soh(&buf[value_start..]) {
                    Some(p) => value_start + p,
                    None => break Err(ParseError::Structure),
                },
            };
            pending_data = None;
            if let Some(data_tag) = data_tag_of(tag) {
                if let Some(len) = parse_u64(&buf[value_start..value_end]) {
                    pending_data = Some((data_tag, len as usize));
                }
            }
            if (tag as usize) < TAG_INDEX_LEN && self.index[tag as usize] == 0 {
                self.index[tag as usize] = (n + 1) as u16;
            }
            self.fields[n] = FieldRef {
                tag,
                start: value_start as u32,
                end: value_end as u32,
            };
            n += 1;
            pos = value_end + 1;
        };
        // Recorded even on failure, so the next parse clears what this one indexed.
        self.len = n;
        result?;
        let fields = &self.fields[..n];
        if n < 4 || fields[0].tag != 8 || fields[1].tag != 9 || fields[2].tag != 35 {
            return Err(ParseError::Header);
        }
        Ok(Message {
            buf,
            fields,
            index: &self.index,
        })
    }
}

/// A parsed message: views into the receive buffer.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    buf: &'a [u8],
    fields: &'a [FieldRef],
    index: &'a [u16; TAG_INDEX_LEN],
}

impl<'a> Message<'a> {
    /// The whole message's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The fields in wire order.
    pub fn fields(&self) -> &'a [FieldRef] {
        self.fields
    }

    /// The value of a field.
    #[inline]
    pub fn value(&self, f: &FieldRef) -> &'a [u8] {
        &self.buf[f.start as usize..f.end as usize]
    }

    /// Position of the first occurrence of `tag`.
    #[inline]
    pub fn position(&self, tag: u32) -> Option<usize> {
        if (tag as usize) < TAG_INDEX_LEN {
            match self.index[tag as usize] {
                0 => None,
                i => Some(usize::from(i) - 1),
            }
        } else {
            self.fields.iter().position(|f| f.tag == tag)
        }
    }

    /// The value of the first occurrence of `tag`.
    #[inline]
    pub fn get(&self, tag: u32) -> Option<&'a [u8]> {
        self.position(tag).map(|i| self.value(&self.fields[i]))
    }

    /// The value of `tag` as an unsigned integer.
    #[inline]
    pub fn get_u64(&self, tag: u32) -> Option<u64> {
        self.get(tag).and_then(parse_u64)
    }

    /// Whether `tag` is `Y`.
    #[inline]
    pub fn get_flag(&self, tag: u32) -> bool {
        self.get(tag) == Some(b"Y")
    }

    /// MsgType(35).
    #[inline]
    pub fn msg_type(&self) -> &'a [u8] {
        self.value(&self.fields[2])
    }

    /// MsgSeqNum(34), when present and numeric.
    #[inline]
    pub fn seq_num(&self) -> Option<u64> {
        self.get_u64(34)
    }
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", crate::writer::printable(self.buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Vec<u8> {
        s.replace('|', "\x01").into_bytes()
    }

    #[test]
    fn fields_and_lookups() {
        let m = raw("8=FIX.4.2|9=20|35=D|11=A1|54=1|5000=x|10=000|");
        let mut p = Parser::new(64);
        let msg = p.parse(&m).unwrap();
        assert_eq!(msg.msg_type(), b"D");
        assert_eq!(msg.get(11), Some(&b"A1"[..]));
        assert_eq!(msg.get(5000), Some(&b"x"[..]));
        assert_eq!(msg.get(55), None);
        assert_eq!(msg.fields().len(), 7);
    }

    #[test]
    fn the_index_is_reset_between_messages() {
        let a = raw("8=FIX.4.2|9=5|35=D|11=A1|10=000|");
        let b = raw("8=FIX.4.2|9=5|35=0|10=000|");
        let mut p = Parser::new(64);
        p.parse(&a).unwrap();
        let msg = p.parse(&b).unwrap();
        assert_eq!(msg.get(11), None);
    }

    #[test]
    fn data_fields_may_hold_soh() {
        let m = raw("8=FIX.4.2|9=5|35=A|95=3|96=a|b|98=0|10=000|");
        let mut p = Parser::new(64);
        let msg = p.parse(&m).unwrap();
        assert_eq!(msg.get(96), Some(&b"a\x01b"[..]));
        assert_eq!(msg.get(98), Some(&b"0"[..]));
    }

    #[test]
    fn a_non_numeric_tag_is_tag_zero() {
        let m = raw("8=FIX.4.2|9=5|35=D|x1=A1|10=000|");
        let mut p = Parser::new(64);
        let msg = p.parse(&m).unwrap();
        assert_eq!(msg.fields()[3].tag, 0);
    }

    #[test]
    fn tags_of_every_length_and_leading_zeros() {
        let m = raw("8=FIX.4.2|9=5|35=D|1=a|22=b|333=c|4444=d|55555=e|0=f|012=g|7=|10=000|");
        let mut p = Parser::new(64);
        let msg = p.parse(&m).unwrap();
        let tags: Vec<u32> = msg.fields().iter().map(|f| f.tag).collect();
        assert_eq!(tags, [8, 9, 35, 1, 22, 333, 4444, 55555, 0, 0, 7, 10]);
        assert_eq!(msg.get(333), Some(&b"c"[..]));
        assert_eq!(msg.get(7), Some(&b""[..]));
        // Near the end of the buffer the fast path cannot read four bytes.
        let m = raw("8=FIX.4.2|9=5|35=D|1=|");
        assert_eq!(p.parse(&m).unwrap().get(1), Some(&b""[..]));
    }

    #[test]
    fn structure_errors() {
        let mut p = Parser::new(64);
        assert!(p.parse(&raw("8=FIX.4.2|9=5|35=D|11A1|10=000|")).is_err());
        assert!(p.parse(&raw("8=FIX.4.2|9=5|35=D|11=A1")).is_err());
        assert!(p.parse(&raw("8=FIX.4.2|35=D|9=5|10=000|")).is_err());
        let mut small = Parser::new(4);
        assert_eq!(
            small
                .parse(&raw("8=FIX.4.2|9=5|35=D|1=a|2=b|10=000|"))
                .unwrap_err(),
            ParseError::TooManyFields(4)
        );
    }
}

#[cfg(test)]
mod soh_tests {
    use super::find_soh;

    #[test]
    fn find_soh_matches_a_plain_search() {
        let mut v = [b'a'; 40];
        for p in 0..40 {
            v.iter_mut().for_each(|b| *b = b'a');
            v[p] = 1;
            if p + 3 < 40 {
                v[p + 3] = 1;
            }
            for start in 0..=p {
                assert_eq!(
                    find_soh(&v[start..]),
                    Some(p - start),
                    "p={p} start={start}"
                );
            }
        }
        assert_eq!(find_soh(b"no soh here at all"), None);
        assert_eq!(find_soh(&[0x81, 0x01]), Some(1));
        assert_eq!(
            find_soh(&[0x00, 0x02, 0x03, 0xff, 0x80, 0x7f, 0x01, 0x00, 0x01]),
            Some(6)
        );
    }
}
