//! Each engine book event becomes the right market data, and the consumer follows.
//!
//! Engine outputs are encoded by the matching agent's own outbound encoder
//! (`matching_agent::outbound::encode`) into SBE frames, as the outbound journal holds them, and
//! handed to the publisher core one by one: adds on both sides, an in-place quantity reduction
//! (`OrderModified`, priority kept), a partial and a full execution with their trade, a delete,
//! a halt and a reopen, across enough price levels to push one out of a 2-level L2. The test
//! checks the L3 messages and rptSeq, the L2 entries (deletes before news, a level entering
//! from below the top N), the L1 changes, the trading status on every channel, the candle that
//! closes a second later, and that a consumer fed the packets ends with the same books. It also
//! proves the publisher refuses to continue when the engine's stated level totals disagree
//! with its rebuilt book (a broken invariant is a crash, not silent divergence).

use matching::{Event, Output, Side as ESide, TradingStatus};
use matching_agent::{inbound::Context, outbound};
use md_consumer::{ConsumerConfig, MdClient};
use md_core::{Action, Channel, FeedGroups, MdMsg, PacketMessages, Side, Status};
use md_publisher::{CoreConfig, MdCore};
use std::net::Ipv4Addr;
use std::time::Instant;

const T0: u64 = 1_763_769_600_000_000_000;

struct Rig {
    core: MdCore,
    packets: Vec<(Channel, Vec<u8>)>,
    levels: std::collections::BTreeMap<(u8, i64), (u64, u32)>,
    t: u64,
}

impl Rig {
    fn new() -> Rig {
        let cfg = CoreConfig {
            l2_depth: 2,
            ..CoreConfig::default()
        };
        let products = [matching::ProductConfig::simple(1, "ACME", 100)];
        Rig {
            core: MdCore::new(cfg, &products),
            packets: Vec::new(),
            levels: Default::default(),
            t: T0,
        }
    }

    fn frame(&mut self, event: Event) {
        let mut buf = [0_u8; outbound::ENCODED_LEN_MAX];
        let out = Output {
            sequence: 1,
            timestamp_ns: self.t,
            event,
        };
        let (template, len) = outbound::encode(&out, &Context::default(), &mut buf).unwrap();
        self.core.set_time(self.t);
        self.core
            .on_frame(self.t, template, &buf[..len], true, &mut self.packets);
        self.t += 1_000;
    }

    /// A book event with the engine's level totals computed the way the engine states them.
    fn level(&mut self, side: ESide, price: i64, dq: i64, dn: i32) -> (u64, u32) {
        let e = self.levels.entry((side as u8, price)).or_insert((0, 0));
        e.0 = (e.0 as i64 + dq) as u64;
        e.1 = (e.1 as i32 + dn) as u32;
        *e
    }

    fn add(&mut self, order_id: u64, side: ESide, price: i64, quantity: u64) {
        let (level_quantity, level_order_count) = self.level(side, price, quantity as i64, 1);
        self.frame(Event::OrderAdded {
            instrument_id: 1,
            order_id,
            side,
            price,
            quantity,
            level_quantity,
            level_order_count,
        });
    }

    fn messages(&self, channel: Channel) -> Vec<MdMsg> {
        self.packets
            .iter()
            .filter(|(c, _)| *c == channel)
            .flat_map(|(_, p)| {
                let (_, msgs) = PacketMessages::new(p).unwrap();
                msgs.map(|m| MdMsg::decode(m.unwrap()).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

#[test]
fn book_events_become_l3_l2_l1_status_and_candles() {
    let mut r = Rig::new();
    r.add(1, ESide::Buy, 99, 10);
    r.add(2, ESide::Buy, 99, 5);
    r.add(3, ESide::Buy, 98, 7);
    r.add(4, ESide::Buy, 97, 3); // third bid level: not on a 2-level L2
    r.add(5, ESide::Sell, 101, 4);
    // Order 1 reduced in place to 6 (keeps priority ahead of order 2).
    let (lq, ln) = r.level(ESide::Buy, 99, -4, 0);
    r.frame(Event::OrderModified {
        instrument_id: 1,
        order_id: 1,
        side: ESide::Buy,
        price: 99,
        quantity: 6,
        level_quantity: lq,
        level_order_count: ln,
    });
    // A sell of 8 at 99: trades 6 with order 1 (gone), then 2 with order 2 (3 left).
    for (order_id, q, leaves, trade_id) in [(1, 6, 0, 1), (2, 2, 3, 2)] {
        r.frame(Event::Trade {
            instrument_id: 1,
            trade_id,
            price: 99,
            quantity: q,
            aggressor_side: ESide::Sell,
            buy_order_id: order_id,
            sell_order_id: 9,
        });
        let (lq, ln) = r.level(
            ESide::Buy,
            99,
            -(q as i64),
            if leaves == 0 { -1 } else { 0 },
        );
        r.frame(Event::OrderExecuted {
            instrument_id: 1,
            order_id,
            side: ESide::Buy,
            price: 99,
            quantity: q,
            leaves_quantity: leaves,
            trade_id,
            level_quantity: lq,
            level_order_count: ln,
        });
    }
    // Order 3 (the whole 98 level) cancelled: 97 enters the top 2.
    let (lq, ln) = r.level(ESide::Buy, 98, -7, -1);
    r.frame(Event::OrderDeleted {
        instrument_id: 1,
        order_id: 3,
        side: ESide::Buy,
        price: 98,
        level_quantity: lq,
        level_order_count: ln,
    });
    r.frame(Event::TradingStatusChanged {
        instrument_id: 1,
        status: TradingStatus::Halted,
    });
    r.t += 2_000_000_000; // the next event is 2 s later: the 1 s bar closes
    r.frame(Event::TradingStatusChanged {
        instrument_id: 1,
        status: TradingStatus::Open,
    });

    let l3 = r.messages(Channel::L3);
    let kinds: Vec<&str> = l3
        .iter()
        .map(|m| match m {
            MdMsg::OrderAdded { .. } => "add",
            MdMsg::OrderModified { .. } => "mod",
            MdMsg::OrderDeleted { .. } => "del",
            MdMsg::OrderExecuted { .. } => "exec",
            MdMsg::Trade { .. } => "trade",
            MdMsg::TradingStatus { .. } => "status",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "add", "add", "add", "add", "add", "mod", "trade", "exec", "trade", "exec", "del",
            "status", "status"
        ]
    );
    let rpts: Vec<u32> = l3
        .iter()
        .map(|m| m.instrument_rpt_seq().unwrap().1)
        .collect();
    assert_eq!(rpts, (1..=13).collect::<Vec<u32>>());

    // L2: the delete of 98 comes before 97's entry, in one message.
    let l2 = r.messages(Channel::L2);
    let last_update = l2
        .iter()
        .rev()
        .find_map(|m| match m {
            MdMsg::LevelUpdate { entries, .. } => Some(entries.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last_update.len(), 2);
    assert_eq!(
        (last_update[0].action, last_update[0].price),
        (Action::Delete, 98)
    );
    assert_eq!(
        (
            last_update[1].action,
            last_update[1].price,
            last_update[1].quantity
        ),
        (Action::New, 97, 3)
    );
    // Adding the 97 bid while 99 and 98 were the top 2 published nothing on L2.
    assert_eq!(
        l2.iter()
            .filter(|m| matches!(m, MdMsg::LevelUpdate { entries, .. } if entries.iter().any(|e| e.price == 97)))
            .count(),
        1
    );

    // L1: the best bid went 99x10, 99x15, 99x11 (modify), 99x5, 99x3, and the ask 101x4.
    let bids: Vec<(i64, u64)> = r
        .messages(Channel::L1)
        .iter()
        .filter_map(|m| match m {
            MdMsg::BestBidOffer { bbo, .. } => bbo.bid.map(|l| (l.price, l.quantity)),
            _ => None,
        })
        .collect();
    assert_eq!(
        bids,
        [(99, 10), (99, 15), (99, 15), (99, 11), (99, 5), (99, 3)]
    );
    // Status went out on all three incremental channels, twice.
    for c in Channel::INCREMENTAL {
        let st: Vec<Status> = r
            .messages(c)
            .iter()
            .filter_map(|m| match m {
                MdMsg::TradingStatus { status, .. } => Some(*status),
                _ => None,
            })
            .collect();
        assert_eq!(st, [Status::Halted, Status::Open], "{c:?}");
    }
    // The 1 s candle of the two trades closed and went out on L1.
    let candle = r
        .messages(Channel::L1)
        .iter()
        .find_map(|m| match m {
            MdMsg::Candle { candle, .. } => Some(*candle),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (
            candle.open,
            candle.high,
            candle.low,
            candle.close,
            candle.volume,
            candle.trade_count
        ),
        (99, 99, 99, 99, 8, 2)
    );

    // A consumer fed the packets ends with the same books and status.
    let mut cfg = ConsumerConfig::new(FeedGroups::on_group(Ipv4Addr::new(239, 0, 0, 1), 1));
    cfg.from_session_start = true;
    let mut client = MdClient::new(cfg, false);
    for (c, p) in &r.packets {
        client.on_packet(*c, p, Instant::now());
    }
    let mine = r.core.instrument(1).unwrap();
    let theirs = client.instrument(1).unwrap();
    assert_eq!(theirs.l3, mine.book);
    let ids: Vec<(u64, u64)> = theirs
        .l3
        .orders(Side::Buy)
        .iter()
        .map(|o| (o.order_id, o.quantity))
        .collect();
    assert_eq!(ids, [(2, 3), (4, 3)]);
    assert_eq!(theirs.l2.levels(Side::Buy), mine.published_l2(Side::Buy));
    assert_eq!(theirs.bbo, mine.published_bbo());
    assert_eq!(theirs.status, Some(Status::Open));
    assert_eq!(theirs.trades, 2);
    assert_eq!(theirs.candles().len(), 1);
}

#[test]
#[should_panic(expected = "differs from the engine's")]
fn a_level_total_that_disagrees_with_the_engine_stops_the_publisher() {
    let mut r = Rig::new();
    r.frame(Event::OrderAdded {
        instrument_id: 1,
        order_id: 1,
        side: ESide::Buy,
        price: 99,
        quantity: 10,
        level_quantity: 11,
        level_order_count: 1,
    });
}
