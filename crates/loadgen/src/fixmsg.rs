//! FIX 4.2 messages the load generator sends, and the fields it reads from what comes back.
//! Built with the gateway's own writer; read with a plain tag scan (no dictionary), so the
//! same code reads the appliance's and QuickFIX's reports.

use fix_codec::Writer;

use crate::plan::{Cmd, Instrument, Kind, OrderInfo};

pub const BEGIN: &[u8] = b"FIX.4.2";
pub const TARGET_COMP_ID: &[u8] = b"EXCH";

/// Appends one framed message to `out`.
pub fn write_message(
    w: &mut Writer,
    msg_type: &[u8],
    sender: &[u8],
    seq: u64,
    now_unix_ns: u64,
    body: impl FnOnce(&mut Writer),
    out: &mut Vec<u8>,
) -> usize {
    w.begin(msg_type);
    w.field(49, sender);
    w.field(56, TARGET_COMP_ID);
    w.field_u64(34, seq);
    w.field_time(52, now_unix_ns);
    body(w);
    w.finish(BEGIN, out)
}

/// The body of a request: ClOrdID is the command index, OrigClOrdID the index of the command
/// that gave the order its current ClOrdID.
pub fn write_request(
    w: &mut Writer,
    index: u64,
    orig_index: u64,
    cmd: &Cmd,
    info: &OrderInfo,
    instrument: &Instrument,
    now_unix_ns: u64,
) {
    w.field_u64(11, index);
    if cmd.kind != Kind::New {
        w.field_u64(41, orig_index);
    }
    if cmd.kind != Kind::Cancel {
        w.field(21, b"1");
    }
    w.field(55, instrument.symbol.as_bytes());
    w.field(54, &[info.side]);
    w.field_time(60, now_unix_ns);
    if cmd.kind != Kind::Cancel {
        w.field_u64(38, cmd.quantity);
        w.field(40, &[info.ord_type]);
        if info.ord_type == b'2' {
            w.field_decimal(44, i128::from(cmd.price), instrument.price_decimals);
        }
        w.field(59, &[info.tif]);
    }
}

/// The fields of an inbound message the checks need. Absent numbers are `None`.
#[derive(Default, Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub msg_type: &'a [u8],
    pub seq: Option<u64>,
    pub poss_dup: bool,
    pub cl_ord_id: Option<u64>,
    pub orig_cl_ord_id: Option<u64>,
    pub order_id: Option<u64>,
    pub exec_type: u8,
    pub ord_status: u8,
    pub last_shares: Option<u64>,
    pub last_px: Option<(i128, u32)>,
    pub cum_qty: Option<u64>,
    pub leaves_qty: Option<u64>,
    pub order_qty: Option<u64>,
    pub side: u8,
    pub text: &'a [u8],
    /// RefSeqNum(45) of a reject.
    pub ref_seq: Option<u64>,
    pub test_req_id: &'a [u8],
}

pub fn parse_u64(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n = 0_u64;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

/// A decimal as (mantissa, decimals): "100.25" is (10025, 2).
pub fn parse_decimal(v: &[u8]) -> Option<(i128, u32)> {
    let (neg, digits) = match v.first() {
        Some(b'-') => (true, &v[1..]),
        _ => (false, v),
    };
    let mut m = 0_i128;
    let mut decimals = None;
    for &b in digits {
        match b {
            b'.' if decimals.is_none() => decimals = Some(0),
            b'0'..=b'9' => {
                m = m.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
                if let Some(d) = decimals.as_mut() {
                    *d += 1;
                }
            }
            _ => return None,
        }
    }
    Some((if neg { -m } else { m }, decimals.unwrap_or(0)))
}

/// Scales a parsed decimal to `decimals` places (exact or `None`).
pub fn to_scale(v: (i128, u32), decimals: u32) -> Option<i128> {
    let (m, d) = v;
    if d <= decimals {
        m.checked_mul(10_i128.checked_pow(decimals - d)?)
    } else {
        let f = 10_i128.checked_pow(d - decimals)?;
        (m % f == 0).then_some(m / f)
    }
}

/// Reads the fields of one complete message.
pub fn parse(msg: &[u8]) -> Inbound<'_> {
    let mut r = Inbound::default();
    for field in msg.split(|&b| b == 1) {
        let Some(eq) = field.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (tag, v) = (&field[..eq], &field[eq + 1..]);
        let Some(tag) = parse_u64(tag) else { continue };
        let first = v.first().copied().unwrap_or(0);
        match tag {
            35 => r.msg_type = v,
            34 => r.seq = parse_u64(v),
            43 => r.poss_dup = first == b'Y',
            11 => r.cl_ord_id = parse_u64(v),
            41 => r.orig_cl_ord_id = parse_u64(v),
            37 => r.order_id = parse_u64(v),
            150 => r.exec_type = first,
            39 => r.ord_status = first,
            32 => r.last_shares = parse_u64(v),
            31 => r.last_px = parse_decimal(v),
            14 => r.cum_qty = parse_u64(v),
            151 => r.leaves_qty = parse_u64(v),
            38 => r.order_qty = parse_u64(v),
            54 => r.side = first,
            58 => r.text = v,
            45 => r.ref_seq = parse_u64(v),
            112 => r.test_req_id = v,
            _ => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_order_reads_back() {
        let mut w = Writer::new(256);
        let mut out = Vec::new();
        let cmd = Cmd {
            kind: Kind::Replace,
            slot: 0,
            price: 10025,
            quantity: 7,
        };
        let info = OrderInfo {
            session: 0,
            instrument: 0,
            side: b'2',
            ord_type: b'2',
            tif: b'1',
        };
        let inst = Instrument {
            symbol: "SYM0".into(),
            tick_size: 1,
            lot_size: 1,
            price_decimals: 2,
            reference_price: 10000,
        };
        let len = write_message(
            &mut w,
            b"G",
            b"LG1",
            9,
            1,
            |w| write_request(w, 42, 7, &cmd, &info, &inst, 1),
            &mut out,
        );
        assert_eq!(len, out.len());
        assert!(matches!(
            fix_codec::check_frame(&out, BEGIN, 4096),
            fix_codec::Frame::Complete { len: l } if l == len
        ));
        let m = parse(&out);
        assert_eq!(m.msg_type, b"G");
        assert_eq!(
            (m.seq, m.cl_ord_id, m.orig_cl_ord_id),
            (Some(9), Some(42), Some(7))
        );
        assert_eq!(m.order_qty, Some(7));
        assert_eq!(parse_decimal(b"100.25"), Some((10025, 2)));
        assert_eq!(to_scale((10025, 2), 4), Some(1_002_500));
        assert_eq!(to_scale((1_002_500, 4), 2), Some(10025));
        assert_eq!(to_scale((1_002_501, 4), 2), None);
    }
}
