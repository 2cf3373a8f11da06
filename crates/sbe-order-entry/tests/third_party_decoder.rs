//! Wire compatibility with an independent SBE implementation.
//!
//! Messages encoded by our generated encoders are handed, as hex, to the `sbe` package from
//! PyPI (a separate SBE implementation in Python, installed by `.ci/run`), which is given only
//! `sbe-schemas/order-entry.xml`. Every field it decodes must equal what our own decoder reads
//! (through `message_to_json`). That decoder does not implement var-data, so var-data is
//! checked by the hand-written golden vectors in `golden.rs` instead.
//!
//! The test fails, rather than skips, when python3 or the package is missing: the proof is the
//! point. `.ci/run` installs `sbe==0.4.3`.

use sbe_order_entry::*;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

const HDR: usize = message_header_codec::ENCODED_LENGTH;

fn messages() -> Vec<Vec<u8>> {
    let mut out = Vec::new();

    let mut buf = vec![0_u8; 256];
    let mut enc = mass_cancel_event_codec::MassCancelEventEncoder::default()
        .wrap(WriteBuf::new(&mut buf), HDR)
        .unwrap();
    enc = enc.header(0).unwrap().parent().unwrap();
    enc.session_id(7);
    enc.account_id(42);
    enc.scope(MassCancelScope::Account);
    enc.reason(MassCancelReason::Admin);
    let mut g = enc.instruments_encoder(3, Default::default()).unwrap();
    for id in [10, 20, 4_000_000_000] {
        g.advance().unwrap();
        g.instrument_id(id);
    }
    let mut enc = g.parent().unwrap();
    enc.text(b"end of day").unwrap();
    let len = HDR + enc.encoded_length();
    out.push(buf[..len].to_vec());

    for (price, min_qty, side) in [
        (Some(-12_345_i64), Some(5_u64), Side::Sell),
        (None, None, Side::Buy),
    ] {
        let mut buf = vec![0_u8; 256];
        let mut enc = new_order_event_codec::NewOrderEventEncoder::default()
            .wrap(WriteBuf::new(&mut buf), HDR)
            .unwrap();
        enc = enc.header(0).unwrap().parent().unwrap();
        enc.price(price);
        enc.quantity(1_000_000);
        enc.client_order_id(u64::MAX - 1);
        enc.received_time(1_763_776_000_123_456_789);
        enc.session_id(3);
        enc.account_id(9);
        enc.instrument_id(1);
        enc.side(side);
        enc.ord_type(if price.is_some() {
            OrdType::Limit
        } else {
            OrdType::Market
        });
        enc.time_in_force(TimeInForce::ImmediateOrCancel);
        enc.stp_mode(StpMode::CancelBoth);
        let mut flags = OrderFlags::default();
        flags.set_possible_resend(true).set_from_http(true);
        enc.flags(flags);
        enc.min_qty(min_qty);
        enc.cl_ord_id(b"CL-1").unwrap();
        let len = HDR + enc.encoded_length();
        out.push(buf[..len].to_vec());
    }

    let mut buf = vec![0_u8; 256];
    let mut enc = order_filled_codec::OrderFilledEncoder::default()
        .wrap(WriteBuf::new(&mut buf), HDR)
        .unwrap();
    enc = enc.header(0).unwrap().parent().unwrap();
    enc.exec_id(1001);
    enc.trade_id(501);
    enc.order_id(77);
    enc.price(99_95);
    enc.quantity(300);
    enc.leaves_qty(700);
    enc.cum_qty(300);
    enc.client_order_id(12);
    enc.inbound_seq(123_456);
    let mut c = enc.contra_encoder().unwrap();
    c.order_id(78);
    c.account_id(2);
    let mut enc = c.parent().unwrap();
    enc.session_id(1);
    enc.account_id(3);
    enc.instrument_id(5);
    enc.side(Side::Buy);
    enc.liquidity(Liquidity::Taker);
    let mut f = ExecFlags::default();
    f.set_aggressor(true);
    enc.flags(f);
    let len = HDR + enc.encoded_length();
    out.push(buf[..len].to_vec());

    let mut buf = vec![0_u8; 256];
    let mut enc = cancel_rejected_codec::CancelRejectedEncoder::default()
        .wrap(WriteBuf::new(&mut buf), HDR)
        .unwrap();
    enc = enc.header(0).unwrap().parent().unwrap();
    enc.order_id(None);
    enc.client_order_id(5);
    enc.orig_client_order_id(4);
    enc.inbound_seq(8);
    enc.session_id(1);
    enc.account_id(2);
    enc.instrument_id(3);
    enc.reason(RejectReason::UnknownOrder);
    enc.response_to(CancelRejectResponseTo::Replace);
    enc.text(b"unknown order").unwrap();
    let len = HDR + enc.encoded_length();
    out.push(buf[..len].to_vec());

    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Our value for a field, in the shape the Python decoder gives (sets as lists of names).
fn same(name: &str, theirs: &Value, ours: &Value) -> bool {
    if theirs == ours {
        return true;
    }
    // Sets: the Python decoder lists the choices that are set; we render the raw bits.
    if let (Value::Array(choices), Value::Number(bits)) = (theirs, ours) {
        let bits = bits.as_u64().unwrap_or(0);
        let names: &[&str] = match name {
            "flags" if bits < 8 => &["possibleResend", "cancelOnDisconnect", "fromHttp"],
            _ => &[],
        };
        let mut expected: Vec<Value> = Vec::new();
        for (i, n) in names.iter().enumerate() {
            if bits & (1 << i) != 0 {
                expected.push(Value::String((*n).to_string()));
            }
        }
        let alt: &[&str] = &["orderComplete", "aggressor", "endOfMatchEvent"];
        let mut expected_alt: Vec<Value> = Vec::new();
        for (i, n) in alt.iter().enumerate() {
            if bits & (1 << i) != 0 {
                expected_alt.push(Value::String((*n).to_string()));
            }
        }
        return *choices == expected || *choices == expected_alt;
    }
    false
}

#[test]
fn an_independent_sbe_decoder_reads_our_bytes() {
    let msgs = messages();
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../sbe-schemas/order-entry.xml"
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/decode_with_python_sbe.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .arg(schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed (see .ci/run)");
    {
        let mut stdin = child.stdin.take().unwrap();
        for m in &msgs {
            writeln!(stdin, "{}", hex(m)).unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the Python SBE decoder failed (is `pip install sbe==0.4.3` done?): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = std::str::from_utf8(&output.stdout)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(lines.len(), msgs.len());
    let mut fields_compared = 0;
    for (m, line) in msgs.iter().zip(lines) {
        let theirs: Value = serde_json::from_str(line).unwrap();
        let ours: Value = serde_json::from_str(&message_to_json(m).unwrap()).unwrap();
        assert_eq!(theirs["message"], ours["$message"]);
        let (_, _, _, version) = peek_header(m).unwrap();
        assert_eq!(theirs["header"]["version"], version);
        let theirs = theirs["value"].as_object().unwrap();
        for (k, v) in theirs {
            match (v, &ours[k]) {
                (Value::Object(tv), Value::Object(ov)) => {
                    for (ck, cv) in tv {
                        assert_eq!(cv, &ov[ck], "{k}.{ck} in {line}");
                        fields_compared += 1;
                    }
                }
                (t, o) => {
                    assert!(same(k, t, o), "field {k}: theirs {t}, ours {o}");
                    fields_compared += 1;
                }
            }
        }
    }
    assert!(
        fields_compared > 50,
        "only {fields_compared} fields compared"
    );
}
