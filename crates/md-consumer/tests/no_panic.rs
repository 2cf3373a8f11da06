//! The consumer never panics on what the network delivers.
//!
//! A property test builds plausible packets (valid headers and messages for a few instruments,
//! with arbitrary sequence numbers, rptSeqs, order ids, prices, quantities and snapshot chunk
//! numbers: deletes of unknown orders, executions larger than the order, levels beyond the
//! depth, chunks out of order, retransmission rejects), mutates some of them (truncation, bit
//! flips) and mixes in arbitrary bytes, then feeds them on arbitrary channels to an
//! [`MdClient`] and asks it for gap requests. The client must only count and resync, never
//! panic; its bounded structures stay bounded.

use md_consumer::{ConsumerConfig, MdClient};
use md_core::*;
use proptest::prelude::*;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn msg() -> impl Strategy<Value = MdMsg> {
    prop_oneof![
        (0..3_u32, 0..6_u32, 0..8_u64, side(), 0..5_i64, 0..4_u64).prop_map(
            |(i, r, o, s, p, q)| MdMsg::OrderAdded {
                time_ns: 0,
                instrument_id: i,
                rpt_seq: r,
                order_id: o,
                side: s,
                price: p,
                quantity: q
            }
        ),
        (0..3_u32, 0..6_u32, 0..8_u64, side(), 0..5_i64, 0..4_u64).prop_map(
            |(i, r, o, s, p, q)| MdMsg::OrderModified {
                time_ns: 0,
                instrument_id: i,
                rpt_seq: r,
                order_id: o,
                side: s,
                price: p,
                quantity: q
            }
        ),
        (0..3_u32, 0..6_u32, 0..8_u64, side(), 0..5_i64).prop_map(|(i, r, o, s, p)| {
            MdMsg::OrderDeleted {
                time_ns: 0,
                instrument_id: i,
                rpt_seq: r,
                order_id: o,
                side: s,
                price: p,
            }
        }),
        (
            0..3_u32,
            0..6_u32,
            0..8_u64,
            side(),
            0..5_i64,
            0..4_u64,
            0..4_u64
        )
            .prop_map(|(i, r, o, s, p, q, left)| MdMsg::OrderExecuted {
                time_ns: 0,
                instrument_id: i,
                rpt_seq: r,
                order_id: o,
                side: s,
                price: p,
                quantity: q,
                remaining_qty: left
            }),
        (
            0..3_u32,
            0..6_u32,
            proptest::collection::vec((side(), 0..3_u8, 0..80_i64, 0..4_u64), 0..8)
        )
            .prop_map(|(i, r, es)| MdMsg::LevelUpdate {
                time_ns: 0,
                instrument_id: i,
                rpt_seq: r,
                entries: es
                    .into_iter()
                    .map(|(side, a, price, quantity)| LevelEntry {
                        side,
                        action: [Action::New, Action::Change, Action::Delete][a as usize],
                        price,
                        quantity,
                        order_count: 1
                    })
                    .collect()
            }),
        (0..3_u32, prop_oneof![0..6_u32, Just(u32::MAX)], 0..5_i64).prop_map(|(i, r, p)| {
            MdMsg::BestBidOffer {
                time_ns: 0,
                instrument_id: i,
                rpt_seq: r,
                bbo: Bbo {
                    bid: Some(PriceLevel {
                        price: p,
                        quantity: 1,
                        order_count: 1,
                    }),
                    ask: None,
                },
            }
        }),
        (
            0..3_u32,
            0..4_u16,
            0..4_u16,
            prop_oneof![0..6_u32, Just(u32::MAX)],
            proptest::collection::vec((side(), 0..8_u64, 0..5_i64, 0..3_u64), 0..6)
        )
            .prop_map(|(i, chunk, chunks, s, os)| MdMsg::Snapshot(SnapshotChunk {
                time_ns: 0,
                instrument_id: i,
                last_seq: [s; 3],
                rpt_seq: [s; 3],
                chunk,
                chunks,
                status: Status::Open,
                levels: vec![
                    SnapshotLevel {
                        side: Side::Buy,
                        price: 1,
                        quantity: 1,
                        order_count: 1
                    };
                    (s % 3) as usize
                ],
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
        (
            0..5_u8,
            0..10_u32,
            prop_oneof![0..12_u32, Just(u32::MAX - 3)]
        )
            .prop_map(|(c, f, o)| MdMsg::RetransmitReject {
                channel: c,
                first_seq: f,
                count: 1,
                oldest_available: o,
                newest_available: o + 3,
                reason: RejectReason::NotAvailable
            }),
        Just(MdMsg::EndOfSession { time_ns: 1 }),
    ]
}

fn packet() -> impl Strategy<Value = (u8, Vec<u8>)> {
    let built = (
        0..5_u8,
        prop_oneof![0..12_u32, Just(u32::MAX - 1), Just(u32::MAX)],
        proptest::collection::vec(msg(), 1..4),
        any::<Option<(prop::sample::Index, u8)>>(),
    )
        .prop_map(|(c, seq, msgs, flip)| {
            let mut b = PacketBuilder::new(4096);
            let mut buf = [0_u8; 1024];
            for m in &msgs {
                let n = m.encode(&mut buf).unwrap();
                b.push(&buf[..n]);
            }
            let mut p = b.finish(seq, 0).to_vec();
            if let Some((i, bit)) = flip {
                let i = i.index(p.len());
                p[i] ^= 1 << (bit % 8);
            }
            (c, p)
        });
    prop_oneof![8 => built, 1 => (0..5_u8, proptest::collection::vec(any::<u8>(), 0..80))]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn arbitrary_packet_sequences_never_panic(
        packets in proptest::collection::vec(packet(), 1..40),
        from_start in any::<bool>(),
        retransmit in any::<bool>(),
    ) {
        let mut cfg = ConsumerConfig::new(FeedGroups::on_group(Ipv4Addr::new(239, 0, 0, 1), 1));
        cfg.from_session_start = from_start;
        cfg.l2_depth_max = 4;
        cfg.orders_per_instrument_max = 6;
        cfg.instruments_max = 2;
        cfg.pending_packets_max = 5;
        cfg.replay_packets_max = 5;
        cfg.snapshot_chunks_max = 2;
        cfg.retransmit_timeout = Duration::ZERO;
        let mut c = MdClient::new(cfg, retransmit);
        let now = Instant::now();
        for (ch, p) in &packets {
            let channel = Channel::from_u8(*ch).unwrap_or(Channel::L3);
            c.on_packet(channel, p, now);
            for r in c.gap_requests(now) {
                prop_assert!(r.count > 0);
            }
        }
        prop_assert!(c.instruments().count() <= 2);
        for (_, i) in c.instruments() {
            prop_assert!(i.l3.order_count() <= 6);
            prop_assert!(i.l2.levels(Side::Buy).len() <= 4);
        }
    }
}
