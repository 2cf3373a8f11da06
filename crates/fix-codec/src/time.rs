//! UTCTIMESTAMP (`YYYYMMDD-HH:MM:SS[.sss]`) to and from nanoseconds since the Unix epoch.

/// Length of `YYYYMMDD-HH:MM:SS.sss`.
pub const TIMESTAMP_MS_LEN: usize = 21;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (the civil-calendar algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn put2(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// Formats `unix_ns` as `YYYYMMDD-HH:MM:SS.sss` (years 0..=9999).
pub fn format_ms(unix_ns: u64, out: &mut [u8; TIMESTAMP_MS_LEN]) {
    let secs = unix_ns / NS_PER_SEC;
    let ms = ((unix_ns % NS_PER_SEC) / 1_000_000) as u32;
    let days = (secs / 86_400) as i64;
    let sod = (secs % 86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u32;
    put2(&mut out[0..2], y / 100);
    put2(&mut out[2..4], y % 100);
    put2(&mut out[4..6], m);
    put2(&mut out[6..8], d);
    out[8] = b'-';
    put2(&mut out[9..11], sod / 3600);
    out[11] = b':';
    put2(&mut out[12..14], (sod / 60) % 60);
    out[14] = b':';
    put2(&mut out[15..17], sod % 60);
    out[17] = b'.';
    out[18] = b'0' + (ms / 100) as u8;
    put2(&mut out[19..21], ms % 100);
}

fn digits(v: &[u8]) -> Option<u32> {
    let mut n = 0_u32;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(b - b'0');
    }
    Some(n)
}

/// Parses `YYYYMMDD` into days since the epoch, checking the calendar.
pub fn parse_date(v: &[u8]) -> Option<i64> {
    if v.len() != 8 {
        return None;
    }
    let y = digits(&v[0..4])?;
    let m = digits(&v[4..6])?;
    let d = digits(&v[6..8])?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(i64::from(y), m, d))
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Parses `HH:MM:SS[.sss]` into nanoseconds since midnight (a leap second 60 is accepted).
pub fn parse_time_of_day(v: &[u8]) -> Option<u64> {
    if v.len() != 8 && v.len() != 12 {
        return None;
    }
    if v[2] != b':' || v[5] != b':' {
        return None;
    }
    let h = digits(&v[0..2])?;
    let mi = digits(&v[3..5])?;
    let s = digits(&v[6..8])?;
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut ns = (u64::from(h) * 3600 + u64::from(mi) * 60 + u64::from(s)) * NS_PER_SEC;
    if v.len() == 12 {
        if v[8] != b'.' {
            return None;
        }
        ns += u64::from(digits(&v[9..12])?) * 1_000_000;
    }
    Some(ns)
}

/// Whether `v` is a valid UTCTIMESTAMP (calendar and clock ranges checked), without converting.
#[inline]
pub fn is_timestamp(v: &[u8]) -> bool {
    if (v.len() != 17 && v.len() != 21) || v[8] != b'-' || v[11] != b':' || v[14] != b':' {
        return false;
    }
    let d = |i: usize| -> Option<u32> {
        let (a, b) = (v[i].wrapping_sub(b'0'), v[i + 1].wrapping_sub(b'0'));
        (a < 10 && b < 10).then(|| u32::from(a) * 10 + u32::from(b))
    };
    let (Some(c), Some(yy), Some(m), Some(day), Some(h), Some(mi), Some(sec)) =
        (d(0), d(2), d(4), d(6), d(9), d(12), d(15))
    else {
        return false;
    };
    if !(1..=12).contains(&m) || day == 0 || day > days_in_month(c * 100 + yy, m) {
        return false;
    }
    if h > 23 || mi > 59 || sec > 60 {
        return false;
    }
    v.len() == 17 || (v[17] == b'.' && v[18..21].iter().all(u8::is_ascii_digit))
}

/// Parses a UTCTIMESTAMP into nanoseconds since the epoch (dates before 1970 are refused).
pub fn parse_timestamp(v: &[u8]) -> Option<u64> {
    if v.len() < 17 || v[8] != b'-' {
        return None;
    }
    let days = parse_date(&v[..8])?;
    let tod = parse_time_of_day(&v[9..])?;
    if days < 0 {
        return None;
    }
    (days as u64)
        .checked_mul(86_400 * NS_PER_SEC)?
        .checked_add(tod)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_known_values() {
        let mut out = [0_u8; TIMESTAMP_MS_LEN];
        format_ms(0, &mut out);
        assert_eq!(&out, b"19700101-00:00:00.000");
        let t = 1_763_778_600_123_000_000; // 2025-11-22 02:30:00.123
        format_ms(t, &mut out);
        assert_eq!(&out, b"20251122-02:30:00.123");
        assert_eq!(parse_timestamp(&out), Some(t));
        assert_eq!(
            parse_timestamp(b"20251122-02:30:00"),
            Some(1_763_778_600_000_000_000)
        );
        assert_eq!(
            parse_timestamp(b"20240229-00:00:00"),
            Some(1_709_164_800 * NS_PER_SEC)
        );
    }

    #[test]
    fn is_timestamp_agrees_with_parse() {
        for v in [
            &b"20251122-02:30:00"[..],
            b"20251122-02:30:00.123",
            b"20240229-23:59:60",
            b"20250229-00:00:00",
            b"20251322-02:30:00",
            b"20251122-24:00:00",
            b"20251122-02:30:00.1x3",
            b"2025112a-02:30:00",
            b"20251122 02:30:00",
        ] {
            assert_eq!(is_timestamp(v), parse_timestamp(v).is_some(), "{v:?}");
        }
    }

    #[test]
    fn bad_timestamps() {
        for bad in [
            &b"20251322-02:30:00"[..],
            b"20250230-02:30:00",
            b"20251122 02:30:00",
            b"20251122-24:00:00",
            b"20251122-02:30:00.1",
            b"2025112-02:30:00",
            b"",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }
}
