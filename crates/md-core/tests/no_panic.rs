//! Decoding network input never panics.
//!
//! Property tests feed arbitrary bytes, arbitrary bodies behind valid market-data headers, and
//! truncated and bit-flipped valid messages and packets to the packet parser
//! ([`PacketMessages`]) and the message decoder ([`MdMsg::decode`]); each must answer a value or
//! an error. A round-trip property checks that every message kind decodes to what was encoded.

use md_core::msg::Candle;
use md_core::*;
use proptest::prelude::*;

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn message() -> impl Strategy<Value = MdMsg> {
    prop_oneof![
        any::<u64>().prop_map(|t| MdMsg::Heartbeat { time_ns: t }),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            side(),
            any::<i64>(),
            any::<u64>()
        )
            .prop_map(
                |(time_ns, instrument_id, rpt_seq, order_id, side, price, quantity)| {
                    MdMsg::OrderAdded {
                        time_ns,
                        instrument_id,
                        rpt_seq,
                        order_id,
                        side,
                        price,
                        quantity,
                    }
                }
            ),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            side(),
            any::<i64>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(
                    time_ns,
                    instrument_id,
                    rpt_seq,
                    order_id,
                    side,
                    price,
                    quantity,
                    remaining_qty,
                )| MdMsg::OrderExecuted {
                    time_ns,
                    instrument_id,
                    rpt_seq,
                    order_id,
                    side,
                    price,
                    quantity,
                    remaining_qty
                }
            ),
        (
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(
                (side(), any::<i64>(), any::<u64>(), any::<u32>(), 0..3_u8),
                0..20
            )
        )
            .prop_map(|(instrument_id, rpt_seq, es)| MdMsg::LevelUpdate {
                time_ns: 5,
                instrument_id,
                rpt_seq,
                entries: es
                    .into_iter()
                    .map(|(side, price, quantity, order_count, a)| LevelEntry {
                        side,
                        action: [Action::New, Action::Change, Action::Delete][a as usize],
                        price,
                        quantity,
                        order_count
                    })
                    .collect()
            }),
        (
            any::<Option<i64>>(),
            any::<u64>(),
            any::<Option<i64>>(),
            any::<u32>()
        )
            .prop_map(|(b, q, a, n)| MdMsg::BestBidOffer {
                time_ns: 1,
                instrument_id: 2,
                rpt_seq: 3,
                bbo: Bbo {
                    bid: b.filter(|p| *p != i64::MIN).map(|price| PriceLevel {
                        price,
                        quantity: q,
                        order_count: n
                    }),
                    ask: a.filter(|p| *p != i64::MIN).map(|price| PriceLevel {
                        price,
                        quantity: q,
                        order_count: n
                    }),
                }
            }),
        (any::<i64>(), any::<i64>(), any::<u64>(), 0..5_usize).prop_map(|(o, h, v, iv)| {
            MdMsg::Candle {
                instrument_id: 1,
                rpt_seq: 9,
                candle: Candle {
                    interval: CandleInterval::ALL[iv],
                    start_ns: 60,
                    open: o,
                    high: h,
                    low: o,
                    close: h,
                    volume: v,
                    trade_count: 3,
                },
            }
        }),
        (
            proptest::collection::vec((side(), any::<i64>(), any::<u64>(), any::<u32>()), 0..10),
            proptest::collection::vec((side(), any::<u64>(), any::<i64>(), any::<u64>()), 0..30)
        )
            .prop_map(|(ls, os)| MdMsg::Snapshot(SnapshotChunk {
                time_ns: 1,
                instrument_id: 4,
                last_seq: [1, 2, 3],
                rpt_seq: [4, 5, 6],
                chunk: 0,
                chunks: 1,
                status: Status::Open,
                levels: ls
                    .into_iter()
                    .map(|(side, price, quantity, order_count)| SnapshotLevel {
                        side,
                        price,
                        quantity,
                        order_count
                    })
                    .collect(),
                orders: os
                    .into_iter()
                    .map(|(side, order_id, price, quantity)| SnapshotOrder {
                        side,
                        order_id,
                        price,
                        quantity
                    })
                    .collect(),
            })),
        (any::<u32>(), any::<u16>()).prop_map(|(first_seq, count)| MdMsg::RetransmitRequest {
            channel: 3,
            first_seq,
            count
        }),
    ]
}

fn walk_packet(bytes: &[u8]) {
    if let Ok((_, msgs)) = PacketMessages::new(bytes) {
        for m in msgs.flatten() {
            let _ = MdMsg::decode(m);
            let _ = sbe_market_data::message_to_json(m);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        walk_packet(&bytes);
        let _ = MdMsg::decode(&bytes);
    }

    #[test]
    fn arbitrary_bodies_behind_valid_headers_never_panic(
        template in prop_oneof![1..5_u16, 10..15_u16, Just(20_u16), 30..32_u16, Just(40_u16), 50..52_u16, any::<u16>()],
        block_length in any::<u16>(),
        version in 0..3_u16,
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut m = Vec::new();
        m.extend_from_slice(&block_length.to_le_bytes());
        m.extend_from_slice(&template.to_le_bytes());
        m.extend_from_slice(&102_u16.to_le_bytes());
        m.extend_from_slice(&version.to_le_bytes());
        m.extend_from_slice(&body);
        let _ = MdMsg::decode(&m);
        let _ = sbe_market_data::message_to_json(&m);
    }

    #[test]
    fn messages_round_trip_and_their_mutations_never_panic(
        msg in message(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bit in 0..8_u8,
    ) {
        let mut buf = vec![0_u8; 4096];
        let len = msg.encode(&mut buf).unwrap();
        let bytes = &buf[..len];
        prop_assert_eq!(&MdMsg::decode(bytes).unwrap(), &msg);

        let mut p = PacketBuilder::new(8192);
        prop_assert!(p.push(bytes));
        let packet = p.finish(3, 4).to_vec();
        let (h, mut msgs) = PacketMessages::new(&packet).unwrap();
        prop_assert_eq!(h.seq, 3);
        prop_assert_eq!(msgs.next().unwrap().unwrap(), bytes);

        let _ = MdMsg::decode(&bytes[..cut.index(len)]);
        walk_packet(&packet[..cut.index(packet.len())]);
        let mut flipped = packet.clone();
        let i = flip.index(flipped.len());
        flipped[i] ^= 1 << bit;
        walk_packet(&flipped);
    }
}
