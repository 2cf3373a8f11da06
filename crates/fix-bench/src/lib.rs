//! Shared inputs of the FIX benchmarks (`benches/`).

use fix_codec::Writer;

/// A NewOrderSingle as a client sends it, with sequence number `seq`, ClOrdID `cl` and
/// TimeInForce `tif`.
pub fn new_order_single(seq: u64, cl: &str, sending_time: &str, tif: &[u8]) -> Vec<u8> {
    let mut w = Writer::new(256);
    w.begin(b"D");
    w.field(49, b"CLIENT1");
    w.field(56, b"EXCH");
    w.field_u64(34, seq);
    w.field(52, sending_time.as_bytes());
    w.field(11, cl.as_bytes());
    w.field(1, b"ACCT-1");
    w.field(21, b"1");
    w.field(55, b"ACME");
    w.field(54, b"1");
    w.field(60, sending_time.as_bytes());
    w.field(38, b"100");
    w.field(40, b"2");
    w.field(44, b"100.25");
    w.field(59, tif);
    let mut out = Vec::new();
    w.finish(b"FIX.4.2", &mut out);
    out
}
