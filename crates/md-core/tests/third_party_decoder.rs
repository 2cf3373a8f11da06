//! Wire compatibility with an independent SBE implementation.
//!
//! One message of every market-data template, encoded by our codecs, is handed as hex to the
//! `sbe` package from PyPI (a separate SBE decoder written in Python, installed by `.ci/run`),
//! which gets nothing but `sbe-schemas/market-data.xml`. Every field it decodes, repeating
//! groups included, must equal what our decoder reads (through `message_to_json`): a firm
//! writing its own decoder from the schema reads the same values we meant.
//!
//! The test fails, rather than skips, when python3 or the package is missing.

use md_core::msg::{Candle, InstrumentDef};
use md_core::*;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

fn messages() -> Vec<MdMsg> {
    let mut symbol = [0_u8; 16];
    symbol[..6].copy_from_slice(b"BTCUSD");
    let level = |price, quantity, order_count| PriceLevel {
        price,
        quantity,
        order_count,
    };
    vec![
        MdMsg::Heartbeat {
            time_ns: 1_763_776_000_123_456_789,
        },
        MdMsg::EndOfSession { time_ns: 7 },
        MdMsg::InstrumentDefinition(InstrumentDef {
            instrument_id: 4_000_000_000,
            symbol,
            tick_size: 5,
            price_scale: 100,
            lot_size: 10,
            quantity_max: u64::MAX - 1,
            status: Status::Halted,
        }),
        MdMsg::TradingStatus {
            time_ns: 9,
            instrument_id: 2,
            rpt_seq: 77,
            status: Status::Open,
        },
        MdMsg::OrderAdded {
            time_ns: 10,
            instrument_id: 3,
            rpt_seq: 1,
            order_id: 123_456_789_012,
            side: Side::Buy,
            price: -250,
            quantity: 1_000,
        },
        MdMsg::OrderModified {
            time_ns: 11,
            instrument_id: 3,
            rpt_seq: 2,
            order_id: 5,
            side: Side::Sell,
            price: i64::MAX,
            quantity: 1,
        },
        MdMsg::OrderDeleted {
            time_ns: 12,
            instrument_id: 3,
            rpt_seq: 3,
            order_id: 6,
            side: Side::Buy,
            price: 99,
        },
        MdMsg::OrderExecuted {
            time_ns: 13,
            instrument_id: 3,
            rpt_seq: 4,
            order_id: 7,
            side: Side::Sell,
            price: 101,
            quantity: 3,
            remaining_qty: 2,
        },
        MdMsg::Trade {
            time_ns: 14,
            instrument_id: 3,
            rpt_seq: 5,
            trade_id: 88,
            price: 101,
            quantity: 3,
            maker_order_id: 7,
            taker_order_id: 9,
            aggressor_side: Side::Buy,
        },
        MdMsg::LevelUpdate {
            time_ns: 15,
            instrument_id: 3,
            rpt_seq: 6,
            entries: vec![
                LevelEntry {
                    side: Side::Sell,
                    action: Action::Delete,
                    price: 105,
                    quantity: 0,
                    order_count: 0,
                },
                LevelEntry {
                    side: Side::Buy,
                    action: Action::Change,
                    price: 99,
                    quantity: 40,
                    order_count: 3,
                },
                LevelEntry {
                    side: Side::Buy,
                    action: Action::New,
                    price: 98,
                    quantity: 1,
                    order_count: 1,
                },
            ],
        },
        MdMsg::BestBidOffer {
            time_ns: 16,
            instrument_id: 3,
            rpt_seq: 7,
            bbo: Bbo {
                bid: Some(level(99, 40, 3)),
                ask: Some(level(101, 2, 1)),
            },
        },
        MdMsg::BestBidOffer {
            time_ns: 17,
            instrument_id: 3,
            rpt_seq: 8,
            bbo: Bbo {
                bid: None,
                ask: Some(level(101, 2, 1)),
            },
        },
        MdMsg::Candle {
            instrument_id: 3,
            rpt_seq: 9,
            candle: Candle {
                interval: CandleInterval::FiveMinutes,
                start_ns: 1_763_776_200_000_000_000,
                open: 100,
                high: 110,
                low: 95,
                close: 101,
                volume: 12_345,
                trade_count: 17,
            },
        },
        MdMsg::Snapshot(SnapshotChunk {
            time_ns: 18,
            instrument_id: 3,
            last_seq: [10, 20, 30],
            rpt_seq: [9, 6, 5],
            chunk: 0,
            chunks: 2,
            status: Status::Open,
            levels: vec![
                SnapshotLevel {
                    side: Side::Buy,
                    price: 99,
                    quantity: 40,
                    order_count: 3,
                },
                SnapshotLevel {
                    side: Side::Sell,
                    price: 101,
                    quantity: 2,
                    order_count: 1,
                },
            ],
            orders: vec![
                SnapshotOrder {
                    side: Side::Buy,
                    order_id: 1,
                    price: 99,
                    quantity: 20,
                },
                SnapshotOrder {
                    side: Side::Sell,
                    order_id: 7,
                    price: 101,
                    quantity: 2,
                },
            ],
        }),
        MdMsg::RetransmitRequest {
            channel: 2,
            first_seq: 1_000,
            count: 50,
        },
        MdMsg::RetransmitReject {
            channel: 3,
            first_seq: 1,
            count: 5,
            oldest_available: 400,
            newest_available: 65_935,
            reason: RejectReason::NotAvailable,
        },
    ]
}

#[test]
fn an_independent_sbe_decoder_reads_our_bytes() {
    let mut encoded = Vec::new();
    for m in messages() {
        let mut buf = vec![0_u8; 1024];
        let n = m.encode(&mut buf).unwrap();
        buf.truncate(n);
        encoded.push(buf);
    }
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../sbe-schemas/market-data.xml"
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/python_sbe_decode.py"
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
        for m in &encoded {
            let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
            writeln!(stdin, "{hex}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Python SBE decoder failed (is `pip install sbe==0.4.3` done?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), encoded.len());
    let mut fields = 0;
    for (m, line) in encoded.iter().zip(lines) {
        let theirs: Value = serde_json::from_str(line).unwrap();
        let mut ours: Value =
            serde_json::from_str(&sbe_market_data::message_to_json(m).unwrap()).unwrap();
        let name = ours.as_object_mut().unwrap().remove("$message").unwrap();
        assert_eq!(theirs["message"], name);
        assert_eq!(theirs["header"]["schemaId"], 102);
        let theirs = theirs["value"].as_object().unwrap();
        let ours = ours.as_object().unwrap();
        assert_eq!(
            theirs.keys().collect::<Vec<_>>(),
            ours.keys().collect::<Vec<_>>(),
            "fields of {name}"
        );
        for (k, v) in theirs {
            assert_eq!(v, &ours[k], "{name}.{k}");
            fields += 1;
        }
    }
    assert!(fields > 100, "only {fields} fields compared");
}
