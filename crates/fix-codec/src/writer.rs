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

    /// Appends `tag=value|`.
    #[inline]
    pub fn field(&mut self, tag: u32, value: &[u8]) {
        write_u64(&mut self.body, u64::from(tag));
        self.body.push(b'=');
        self.body.extend_from_slice(value);
        self.body.push(SOH);
    }

    /// Appends an unsigned integer field.
    #[inline]
    pub fn field_u64(&mut self, tag: u32, value: u64) {
        write_u64(&mut self.body, u64::from(tag));
        self.body.push(b'=');
        write_u64(&mut self.body, value);
        self.body.push(SOH);
    }

    /// Appends a fixed-point decimal `mantissa / 10^decimals`.
    #[inline]
    pub fn field_decimal(&mut self, tag: u32, mantissa: i128, decimals: u32) {
        write_u64(&mut self.body, u64::from(tag));
        self.body.push(b'=');
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
}
