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

/// Writes `YYYYMMDD-HH:MM:SS` of the second `secs` (since the epoch; years 0..=9999).
fn format_second(secs: u64, out: &mut [u8]) {
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
}

thread_local! {
    /// The last second this thread formatted and its text: the stamps a thread writes come
    /// many to a second, and the calendar arithmetic is most of the cost of one.
    static LAST_SECOND: std::cell::Cell<(u64, [u8; 17])> =
        const { std::cell::Cell::new((u64::MAX, [0; 17])) };
}

/// Formats `unix_ns` as `YYYYMMDD-HH:MM:SS.sss` (years 0..=9999).
pub fn format_ms(unix_ns: u64, out: &mut [u8; TIMESTAMP_MS_LEN]) {
    let secs = unix_ns / NS_PER_SEC;
    let ms = ((unix_ns % NS_PER_SEC) / 1_000_000) as u32;
    let (cached, text) = LAST_SECOND.get();
    if cached == secs {
        out[..17].copy_from_slice(&text);
    } else {
        format_second(secs, &mut out[..17]);
        let mut text = [0_u8; 17];
        text.copy_from_slice(&out[..17]);
        LAST_SECOND.set((secs, text));
    }
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

/// Whether each of the eight bytes of `w` selected by `mask` (0xFF per byte) is an ASCII digit.
#[inline(always)]
fn digits_at(w: u64, mask: u64) -> bool {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const SIX: u64 = 0x0606_0606_0606_0606;
    // A byte is a digit when its high nibble is 3 and adding 6 leaves it there (0x30..=0x39).
    // No byte carries into the next: a byte whose high nibble is 3 plus 6 is at most 0x45.
    let high = HIGH & mask;
    (w & high) == (ZEROS & mask) && (((w & mask) + (SIX & mask)) & high) == (ZEROS & mask)
}

/// Two digits at byte `i` of `w` (known to be digits) as a number.
#[inline(always)]
fn two(w: u64, i: u32) -> u32 {
    let a = ((w >> (8 * i)) & 0x0F) as u32;
    let b = ((w >> (8 * (i + 1))) & 0x0F) as u32;
    a * 10 + b
}

/// Whether `v` is a valid UTCTIMESTAMP (calendar and clock ranges checked), without converting.
/// Eight bytes at a time: the date `YYYYMMDD` and the time `HH:MM:SS` are one load each.
#[inline]
pub fn is_timestamp(v: &[u8]) -> bool {
    if v.len() != 17 && v.len() != 21 {
        return false;
    }
    let (Some(date), Some(clock)) = (v.first_chunk::<8>(), v[9..].first_chunk::<8>()) else {
        return false;
    };
    let date = u64::from_le_bytes(*date);
    let clock = u64::from_le_bytes(*clock);
    // Bytes 2 and 5 of the clock are ':', the others digits.
    const COLONS: u64 = 0x0000_3A00_003A_0000;
    const COLON_MASK: u64 = 0x0000_FF00_00FF_0000;
    if v[8] != b'-'
        || clock & COLON_MASK != COLONS
        || !digits_at(date, u64::MAX)
        || !digits_at(clock, !COLON_MASK)
    {
        return false;
    }
    let (year, m, day) = (
        two(date, 0) * 100 + two(date, 2),
        two(date, 4),
        two(date, 6),
    );
    if !(1..=12).contains(&m) || day == 0 || day > days_in_month(year, m) {
        return false;
    }
    if two(clock, 0) > 23 || two(clock, 3) > 59 || two(clock, 6) > 60 {
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
    fn the_second_cache_never_answers_for_another_second() {
        // Stamps in and out of order across seconds, against the calendar arithmetic.
        let base = 1_763_778_600_000_000_000_u64;
        let mut out = [0_u8; TIMESTAMP_MS_LEN];
        for ns in [
            base,
            base + 999_000_000,
            base + 1_000_000_000,
            base + 5,
            base + 86_400_000_000_000,
            base + 1_000_000_001,
            0,
            base,
        ] {
            format_ms(ns, &mut out);
            let mut want = [0_u8; 17];
            format_second(ns / NS_PER_SEC, &mut want);
            assert_eq!(&out[..17], &want, "{ns}");
            assert_eq!(parse_timestamp(&out), Some(ns - ns % 1_000_000), "{ns}");
        }
    }

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

    /// The field-by-field definition `is_timestamp` must agree with (any year, unlike
    /// `parse_timestamp`, which refuses dates before 1970).
    fn reference(v: &[u8]) -> bool {
        v.len() >= 17
            && v[8] == b'-'
            && parse_date(&v[..8]).is_some()
            && parse_time_of_day(&v[9..]).is_some()
    }

    #[test]
    fn is_timestamp_agrees_with_the_reference_on_every_byte_change() {
        // Each position of valid stamps through every byte value: the word-at-a-time check
        // against the field-by-field parse.
        for base in [
            &b"20240229-23:59:60.999"[..],
            b"20251231-00:00:00",
            b"19991130-09:05:07.000",
        ] {
            let mut v = base.to_vec();
            for i in 0..v.len() {
                let keep = v[i];
                for b in 0..=255_u8 {
                    v[i] = b;
                    assert_eq!(is_timestamp(&v), reference(&v), "{v:?}");
                }
                v[i] = keep;
            }
        }
        for m in 0..=13 {
            for d in 0..=32 {
                for y in [1900, 2000, 2023, 2024] {
                    let v = format!("{y:04}{m:02}{d:02}-12:00:00");
                    assert_eq!(is_timestamp(v.as_bytes()), reference(v.as_bytes()), "{v}");
                }
            }
        }
        for h in 0..=25 {
            for mi in [0, 59, 60, 99] {
                for s in [0, 59, 60, 61] {
                    let v = format!("20250101-{h:02}:{mi:02}:{s:02}");
                    assert_eq!(is_timestamp(v.as_bytes()), reference(v.as_bytes()), "{v}");
                }
            }
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
