//! Building messages: fields in order, then BodyLength and CheckSum.

use crate::{checksum, write_u64, SOH};

/// Builds one message at a time into a reusable body buffer.
pub struct Writer {
    body: Vec<u8>,
}

impl Writer {
    /// A writer whose body buffer starts with `capacity` bytes.
    pub fn new(capacity: usize) -> Writer {
        Writer {
            body: Vec::with_capacity(capacity),
        }
    }

    /// Starts a message of type `msg_type` (MsgType(35) is the body's first field).
    pub fn begin(&mut self, msg_type: &[u8]) {
        self.body.clear();
        self.field(35, msg_type);
    }

    /// Appends `tag=`: one to four digits from one small copy (every tag of a report), others
    /// through the general integer writer.
    #[inline]
    fn tag(&mut self, tag: u32) {
        let d = |v: u32| b'0' + (v % 10) as u8;
        match tag {
            0..=9 => self.body.extend_from_slice(&[d(tag), b'=']),
            10..=99 => self.body.extend_from_slice(&[d(tag / 10), d(tag), b'=']),
            100..=999 => self
                .body
                .extend_from_slice(&[d(tag / 100), d(tag / 10), d(tag), b'=']),
            1000..=9999 => self.body.extend_from_slice(&[
                d(tag / 1000),
                d(tag / 100),
                d(tag / 10),
                d(tag),
                b'=',
            ]),
            _ => {
                write_u64(&mut self.body, u64::from(tag));
                self.body.push(b'=');
            }
        }
    }

    /// Appends `tag=value|`.
    #[inline]
    pub fn field(&mut self, tag: u32, value: &[u8]) {
        self.tag(tag);
        self.body.extend_from_slice(value);
        self.body.push(SOH);
    }

    /// Appends an unsigned integer field.
    #[inline]
    pub fn field_u64(&mut self, tag: u32, value: u64) {
        self.tag(tag);
        write_u64(&mut self.body, value);
        self.body.push(SOH);
    }

    /// Appends a fixed-point decimal `mantissa / 10^decimals`.
    #[inline]
    pub fn field_decimal(&mut self, tag: u32, mantissa: i128, decimals: u32) {
        self.tag(tag);
        crate::decimal::write(&mut self.body, mantissa, decimals);
        self.body.push(SOH);
    }

    /// Appends a UTCTIMESTAMP with milliseconds.
    #[inline]
    pub fn field_time(&mut self, tag: u32, unix_ns: u64) {
        let mut t = [0_u8; crate::time::TIMESTAMP_MS_LEN];
        crate::time::format_ms(unix_ns, &mut t);
        self.field(tag, &t);
    }

    /// Appends the raw bytes of fields already in `tag=value|` form.
    pub fn raw(&mut self, fields: &[u8]) {
        self.body.extend_from_slice(fields);
    }

    /// The body written so far (from 35=).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Writes the whole message (BeginString, BodyLength, body, CheckSum) to the end of `out`;
    /// returns its length.
    pub fn finish(&self, begin_string: &[u8], out: &mut Vec<u8>) -> usize {
        let start = out.len();
        out.extend_from_slice(b"8=");
        out.extend_from_slice(begin_string);
        out.extend_from_slice(b"\x019=");
        write_u64(out, self.body.len() as u64);
        out.push(SOH);
        out.extend_from_slice(&self.body);
        let sum = checksum(&out[start..]);
        out.extend_from_slice(b"10=");
        out.push(b'0' + sum / 100);
        out.push(b'0' + (sum / 10) % 10);
        out.push(b'0' + sum % 10);
        out.push(SOH);
        out.len() - start
    }
}

/// A message with SOH shown as `|`, for logs and test failures.
pub fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| if b == SOH { '|' } else { b as char })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_length_and_checksum_follow_the_spec() {
        let mut w = Writer::new(64);
        w.begin(b"0");
        w.field(49, b"A");
        let mut out = Vec::new();
        let n = w.finish(b"FIX.4.2", &mut out);
        assert_eq!(n, out.len());
        // body = "35=0|49=A|" = 10 bytes
        let s = printable(&out);
        assert!(s.starts_with("8=FIX.4.2|9=10|35=0|49=A|10="), "{s}");
        let sum: u32 = out[..out.len() - 7].iter().map(|&b| u32::from(b)).sum();
        assert_eq!(&s[s.len() - 4..s.len() - 1], format!("{:03}", sum % 256));
    }

    #[test]
    fn tags_of_every_width() {
        let mut w = Writer::new(64);
        w.begin(b"D");
        for tag in [
            0, 1, 9, 10, 55, 99, 100, 372, 999, 1000, 5001, 9999, 10_000, 123_456,
        ] {
            w.field(tag, b"v");
        }
        w.field_u64(34, 7);
        w.field_decimal(44, 10125, 2);
        let body = printable(w.body());
        assert_eq!(
            body,
            "35=D|0=v|1=v|9=v|10=v|55=v|99=v|100=v|372=v|999=v|1000=v|5001=v|9999=v|\
             10000=v|123456=v|34=7|44=101.25|"
        );
    }
}
