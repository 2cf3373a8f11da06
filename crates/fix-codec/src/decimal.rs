//! Exact fixed-point decimals: FIX prices and quantities into integer mantissas.

/// Why a decimal could not be taken exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("not a decimal number")]
    Format,
    #[error("more decimal places than the scale allows")]
    Precision,
    #[error("out of range")]
    Overflow,
}

/// Whether `v` is a FIX float: optional `-`, digits, optional `.` and digits, at least one digit.
pub fn is_decimal(v: &[u8]) -> bool {
    let v = v.strip_prefix(b"-").unwrap_or(v);
    let mut digits = 0;
    let mut dots = 0;
    for &b in v {
        if b.is_ascii_digit() {
            digits += 1;
        } else if b == b'.' {
            dots += 1;
        } else {
            return false;
        }
    }
    digits > 0 && dots <= 1
}

/// Parses `v` as `mantissa / 10^decimals` exactly; trailing zero decimals beyond the scale are
/// accepted, other extra decimals are [`DecimalError::Precision`].
pub fn parse(v: &[u8], decimals: u32) -> Result<i64, DecimalError> {
    if !is_decimal(v) {
        return Err(DecimalError::Format);
    }
    let (neg, v) = match v.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = match v.iter().position(|&b| b == b'.') {
        Some(p) => (&v[..p], &v[p + 1..]),
        None => (v, &v[..0]),
    };
    let mut m: i64 = 0;
    for &b in int {
        m = m
            .checked_mul(10)
            .and_then(|m| m.checked_add(i64::from(b - b'0')))
            .ok_or(DecimalError::Overflow)?;
    }
    for i in 0..decimals as usize {
        let d = frac.get(i).map_or(0, |&b| i64::from(b - b'0'));
        m = m
            .checked_mul(10)
            .and_then(|m| m.checked_add(d))
            .ok_or(DecimalError::Overflow)?;
    }
    if frac.iter().skip(decimals as usize).any(|&b| b != b'0') {
        return Err(DecimalError::Precision);
    }
    Ok(if neg { -m } else { m })
}

/// Writes `mantissa / 10^decimals` with exactly `decimals` places (none when 0).
pub fn write(out: &mut Vec<u8>, mantissa: i128, decimals: u32) {
    if mantissa < 0 {
        out.push(b'-');
    }
    let mut tmp = [0_u8; 48];
    let n = mantissa.unsigned_abs();
    // Every price and quantity fits 64 bits, whose divisions are instructions; a 128-bit
    // division is a library call per digit.
    let i = match u64::try_from(n) {
        Ok(n) => digits_into(&mut tmp, n, decimals),
        Err(_) => digits_into(&mut tmp, n, decimals),
    };
    out.extend_from_slice(&tmp[i..]);
}

/// Writes the digits of `n / 10^decimals` at the end of `tmp`; returns where they start.
#[inline]
fn digits_into<T>(tmp: &mut [u8; 48], mut n: T, decimals: u32) -> usize
where
    T: Copy + PartialEq + From<u8> + std::ops::Rem<Output = T> + std::ops::Div<Output = T>,
    u8: TryFrom<T>,
{
    let (zero, ten) = (T::from(0), T::from(10));
    let mut i = tmp.len();
    let mut k = 0;
    loop {
        if k == decimals && decimals > 0 {
            i -= 1;
            tmp[i] = b'.';
        }
        i -= 1;
        tmp[i] = b'0' + u8::try_from(n % ten).unwrap_or(0);
        n = n / ten;
        k += 1;
        if n == zero && k > decimals {
            break;
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_parsing() {
        assert_eq!(parse(b"101.25", 2), Ok(10125));
        assert_eq!(parse(b"101.250", 2), Ok(10125));
        assert_eq!(parse(b"101", 2), Ok(10100));
        assert_eq!(parse(b".5", 2), Ok(50));
        assert_eq!(parse(b"-1.5", 1), Ok(-15));
        assert_eq!(parse(b"101.255", 2), Err(DecimalError::Precision));
        assert_eq!(parse(b"1e5", 2), Err(DecimalError::Format));
        assert_eq!(parse(b"1.2.3", 2), Err(DecimalError::Format));
        assert_eq!(parse(b"", 2), Err(DecimalError::Format));
        assert_eq!(
            parse(b"99999999999999999999", 0),
            Err(DecimalError::Overflow)
        );
    }

    #[test]
    fn writing() {
        let w = |m, d| {
            let mut v = Vec::new();
            write(&mut v, m, d);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(w(10125, 2), "101.25");
        assert_eq!(w(5, 2), "0.05");
        assert_eq!(w(0, 2), "0.00");
        assert_eq!(w(-15, 1), "-1.5");
        assert_eq!(w(42, 0), "42");
        // Past 64 bits (notionals): the 128-bit path.
        assert_eq!(
            w(i128::from(u64::MAX) * 1000 + 7, 3),
            "18446744073709551615.007"
        );
        assert_eq!(w(-(1_i128 << 100), 0), "-1267650600228229401496703205376");
        assert_eq!(w(i128::from(u64::MAX), 2), "184467440737095516.15");
    }
}
