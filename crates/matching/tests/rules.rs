//! Every trading rule of the engine, exercised through the public interface only: matching
//! across levels and FIFO within a level, partial fills, each time in force, market orders
//! and the collar, cancel/replace priority, each self-trade-prevention mode, mass cancels,
//! each reject reason, funds reservation / release / settlement, daily limits, halts and day
//! expiry. The harness checks `Engine::check_invariants` after every single command.

mod common;
use common::*;
use matching::*;
use Side::{Buy, Sell};
use TimeInForce::{Day, Fok, Gtc, Ioc};

#[test]
fn matches_across_levels_at_maker_prices() {
    let mut h = H::new();
    h.gtc(1, Sell, 1000, 10);
    h.gtc(1, Sell, 1005, 20);
    h.gtc(1, Sell, 1010, 30);
    let ev = h.limit(2, Buy, 1010, 50, Gtc);
    assert_eq!(trades(&ev), vec![(1000, 10), (1005, 20), (1010, 20)]);
    assert_eq!(h.e.best(INSTR, Sell), Some((1010, 10)));
    assert_eq!(h.e.best(INSTR, Buy), None);
    // The taker's last fill reports it complete.
    let last_taker = ev.iter().rev().find_map(|e| match e {
        Event::Filled {
            liquidity: Liquidity::Taker,
            leaves_quantity,
            cumulative_quantity,
            ..
        } => Some((*leaves_quantity, *cumulative_quantity)),
        _ => None,
    });
    assert_eq!(last_taker, Some((0, 50)));
    // Exec ids and trade ids are consecutive counters.
    let ids: Vec<(u64, u64)> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Filled {
                exec_id, trade_id, ..
            } => Some((*exec_id, *trade_id)),
            _ => None,
        })
        .collect();
    assert_eq!(ids, vec![(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3)]);
}

#[test]
fn fifo_within_a_level() {
    let mut h = H::new();
    let a = h.gtc(1, Sell, 1000, 10);
    let b = h.gtc(2, Sell, 1000, 10);
    let c = h.gtc(3, Sell, 1000, 10);
    let ev = h.limit(4, Buy, 1000, 20, Gtc);
    assert_eq!(makers(&ev), vec![a, b]);
    let left: Vec<u64> = h.e.orders(INSTR, Sell).iter().map(|o| o.order_id).collect();
    assert_eq!(left, vec![c]);
}

#[test]
fn partial_fill_rests_the_remainder() {
    let mut h = H::new();
    let m = h.gtc(1, Sell, 1000, 10);
    let ev = h.limit(2, Buy, 1000, 30, Gtc);
    assert_eq!(trades(&ev), vec![(1000, 10)]);
    assert!(ev.iter().any(|e| matches!(e, Event::OrderExecuted { order_id, leaves_quantity: 0, level_order_count: 0, .. } if *order_id == m)));
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::OrderAdded {
            quantity: 20,
            price: 1000,
            side: Buy,
            ..
        }
    )));
    assert_eq!(h.e.levels(INSTR, Buy), vec![(1000, 20, 1)]);
    // Partial fill of a resting order keeps it at the head.
    let ev = h.limit(3, Sell, 1000, 10, Ioc);
    assert_eq!(trades(&ev), vec![(1000, 10)]);
    assert_eq!(h.e.levels(INSTR, Buy), vec![(1000, 10, 1)]);
}

#[test]
fn ioc_cancels_its_remainder() {
    let mut h = H::new();
    h.gtc(1, Sell, 1000, 10);
    let ev = h.limit(2, Buy, 1005, 30, Ioc);
    let id = accepted_id(&ev).unwrap();
    assert_eq!(trades(&ev), vec![(1000, 10)]);
    assert_eq!(cancels(&ev), vec![(id, CancelReason::IocRemainder, 20)]);
    assert!(h.e.levels(INSTR, Buy).is_empty());
}

#[test]
fn fok_fills_whole_or_nothing() {
    let mut h = H::new();
    h.gtc(1, Sell, 1000, 10);
    h.gtc(1, Sell, 1005, 10);
    let before = h.e.levels(INSTR, Sell);
    let ev = h.limit(2, Buy, 1005, 30, Fok);
    let id = accepted_id(&ev).unwrap();
    assert!(trades(&ev).is_empty());
    assert_eq!(cancels(&ev), vec![(id, CancelReason::FokNotFillable, 30)]);
    assert_eq!(h.e.levels(INSTR, Sell), before);
    // The limit bounds the check too.
    let ev = h.limit(2, Buy, 1000, 20, Fok);
    assert!(trades(&ev).is_empty());
    let ev = h.limit(2, Buy, 1005, 20, Fok);
    assert_eq!(trades(&ev), vec![(1000, 10), (1005, 10)]);
    assert_eq!(h.cash(2).1, 0, "nothing stays reserved");
}

#[test]
fn day_orders_expire_and_gtc_orders_survive_the_day() {
    let mut h = H::new();
    let day = accepted_id(&h.limit(1, Buy, 990, 10, Day)).unwrap();
    let gtc = h.gtc(1, Buy, 985, 10);
    let ev = h.run(CommandKind::StartTradingDay { trading_day: 2 });
    assert_eq!(ev[0], Event::TradingDayStarted { trading_day: 2 });
    assert_eq!(cancels(&ev), vec![(day, CancelReason::DayExpiry, 10)]);
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::OrderDeleted { order_id, .. } if *order_id == day)));
    assert!(h.e.order(gtc).is_some());
    assert!(h.e.order(day).is_none());
    assert_eq!(h.cash(1).1, 985 * 10);
}

#[test]
fn market_orders_walk_the_book_but_stop_at_the_collar() {
    let mut h = H::new();
    h.gtc(1, Sell, 1100, 10);
    h.gtc(1, Sell, 1200, 10);
    // Band moves to 900 +- 200 = [700, 1100]: the 1200 ask is beyond the collar.
    h.run(CommandKind::SetReferencePrice {
        instrument_id: INSTR,
        price: 900,
    });
    let cash_before = h.cash(2).0;
    let ev = h.market(2, Buy, 30);
    let id = accepted_id(&ev).unwrap();
    assert_eq!(trades(&ev), vec![(1100, 10)]);
    assert_eq!(cancels(&ev), vec![(id, CancelReason::MarketRemainder, 20)]);
    assert_eq!(h.e.levels(INSTR, Sell), vec![(1200, 10, 1)]);
    // Reserved at the collar (1100), paid 1100 x 10, the rest released.
    assert_eq!(h.cash(2), (cash_before - 1100 * 10, 0));
    // Band now centres on the last trade (1100): [900, 1300]; a market sell into an empty
    // bid side cancels whole.
    let ev = h.market(3, Sell, 10);
    assert_eq!(cancels(&ev)[0].1, CancelReason::MarketRemainder);
}

#[test]
fn market_buy_reserves_at_the_collar_and_releases_the_difference() {
    let mut h = H::new();
    h.gtc(1, Sell, 1000, 10);
    let before = h.cash(2).0;
    let ev = h.market(2, Buy, 10);
    assert_eq!(trades(&ev), vec![(1000, 10)]);
    assert_eq!(h.cash(2), (before - 1000 * 10, 0));
    assert_eq!(h.pos(2), (POS as i64 + 10, 0));
}

#[test]
fn market_order_without_reference_price_is_rejected() {
    let mut c = config();
    c.products[1].reference_price = 0;
    let mut h = H::with_config(c);
    let ev = h.order_full(1, INSTR2, Buy, OrderType::Market, 0, 10, Ioc, StpMode::None);
    assert_eq!(rejected(&ev), Some(RejectReason::NoReferencePrice));
    // Limit orders trade without a band until a reference exists.
    let ev = h.order_full(1, INSTR2, Sell, OrderType::Limit, 7, 10, Gtc, StpMode::None);
    assert!(accepted_id(&ev).is_some());
}

#[test]
fn replace_reducing_quantity_keeps_priority() {
    let mut h = H::new();
    let a = h.gtc(1, Sell, 1000, 30);
    let b = h.gtc(2, Sell, 1000, 10);
    let ev = h.replace(1, a, 1000, 20);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Replaced {
            priority_kept: true,
            leaves_quantity: 20,
            ..
        }
    )));
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::OrderModified {
            quantity: 20,
            level_quantity: 30,
            level_order_count: 2,
            ..
        }
    )));
    let ids: Vec<u64> = h.e.orders(INSTR, Sell).iter().map(|o| o.order_id).collect();
    assert_eq!(ids, vec![a, b]);
    assert_eq!(h.pos(1).1, 20, "released 10 of the reserved position");
}

#[test]
fn replace_increasing_quantity_or_changing_price_loses_priority() {
    let mut h = H::new();
    let a = h.gtc(1, Sell, 1000, 10);
    let b = h.gtc(2, Sell, 1000, 10);
    let ev = h.replace(1, a, 1000, 20);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Replaced {
            priority_kept: false,
            ..
        }
    )));
    let ids: Vec<u64> = h.e.orders(INSTR, Sell).iter().map(|o| o.order_id).collect();
    assert_eq!(ids, vec![b, a]);
    // Price change away and back: goes behind again.
    h.replace(2, b, 1005, 10);
    h.replace(2, b, 1000, 10);
    let ids: Vec<u64> = h.e.orders(INSTR, Sell).iter().map(|o| o.order_id).collect();
    assert_eq!(ids, vec![a, b]);
}

#[test]
fn replace_that_becomes_marketable_matches() {
    let mut h = H::new();
    h.gtc(1, Sell, 1010, 10);
    let bid = h.gtc(2, Buy, 1000, 30);
    let ev = h.replace(2, bid, 1010, 30);
    assert_eq!(trades(&ev), vec![(1010, 10)]);
    // The rest rests at the new price with the same order id.
    assert_eq!(h.e.levels(INSTR, Buy), vec![(1010, 20, 1)]);
    assert_eq!(h.e.order(bid).unwrap().cumulative_quantity, 10);
    // Total quantity semantics: 30 total with 10 filled leaves 20; asking for 10 is refused.
    let ev = h.replace(2, bid, 1010, 10);
    assert_eq!(rejected(&ev), Some(RejectReason::QuantityBelowFilled));
    let ev = h.replace(2, bid, 1010, 20);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Replaced {
            leaves_quantity: 10,
            priority_kept: true,
            ..
        }
    )));
}

#[test]
fn replace_buy_adjusts_cash_reservation() {
    let mut h = H::new();
    let bid = h.gtc(1, Buy, 1000, 10);
    assert_eq!(h.cash(1), (CASH - 10_000, 10_000));
    h.replace(1, bid, 1100, 20);
    assert_eq!(h.cash(1), (CASH - 22_000, 22_000));
    h.cancel(1, bid);
    assert_eq!(h.cash(1), (CASH, 0));
}

fn stp_setup() -> (H, u64, u64) {
    let mut h = H::new();
    let own = h.gtc(1, Sell, 1000, 10);
    let other = h.gtc(2, Sell, 1000, 10);
    (h, own, other)
}

#[test]
fn stp_none_allows_self_trade() {
    let (mut h, own, _) = stp_setup();
    let ev = h.order_full(
        1,
        INSTR,
        Buy,
        OrderType::Limit,
        1000,
        10,
        Gtc,
        StpMode::None,
    );
    assert_eq!(makers(&ev), vec![own]);
}

#[test]
fn stp_cancel_resting_cancels_own_and_keeps_matching() {
    let (mut h, own, other) = stp_setup();
    let ev = h.order_full(
        1,
        INSTR,
        Buy,
        OrderType::Limit,
        1000,
        10,
        Gtc,
        StpMode::CancelResting,
    );
    assert_eq!(cancels(&ev), vec![(own, CancelReason::SelfTrade, 10)]);
    assert_eq!(makers(&ev), vec![other]);
}

#[test]
fn stp_cancel_incoming_keeps_resting() {
    let (mut h, own, _) = stp_setup();
    let ev = h.order_full(
        1,
        INSTR,
        Buy,
        OrderType::Limit,
        1000,
        10,
        Gtc,
        StpMode::CancelIncoming,
    );
    let id = accepted_id(&ev).unwrap();
    assert_eq!(cancels(&ev), vec![(id, CancelReason::SelfTrade, 10)]);
    assert!(h.e.order(own).is_some());
    assert_eq!(h.cash(1).1, 0);
}

#[test]
fn stp_cancel_both() {
    let (mut h, own, other) = stp_setup();
    let ev = h.order_full(
        1,
        INSTR,
        Buy,
        OrderType::Limit,
        1000,
        10,
        Gtc,
        StpMode::CancelBoth,
    );
    let id = accepted_id(&ev).unwrap();
    assert_eq!(
        cancels(&ev),
        vec![
            (own, CancelReason::SelfTrade, 10),
            (id, CancelReason::SelfTrade, 10)
        ]
    );
    assert!(h.e.order(other).is_some());
    assert!(trades(&ev).is_empty());
}

#[test]
fn stp_applies_after_fills_against_others() {
    let mut h = H::new();
    let other = h.gtc(2, Sell, 1000, 10);
    let own = h.gtc(1, Sell, 1005, 10);
    let ev = h.order_full(
        1,
        INSTR,
        Buy,
        OrderType::Limit,
        1005,
        30,
        Ioc,
        StpMode::CancelIncoming,
    );
    assert_eq!(makers(&ev), vec![other]);
    let id = accepted_id(&ev).unwrap();
    assert_eq!(cancels(&ev), vec![(id, CancelReason::SelfTrade, 20)]);
    assert!(h.e.order(own).is_some());
}

#[test]
fn mass_cancel_by_session_account_instrument_and_all() {
    let mut h = H::new();
    let a1 = h.gtc(1, Buy, 990, 10);
    let a2 = h.gtc(2, Buy, 990, 10);
    let a3 = h.gtc(3, Sell, 1010, 10);
    let b1 = accepted_id(&h.order_full(
        1,
        INSTR2,
        Buy,
        OrderType::Limit,
        495,
        10,
        Gtc,
        StpMode::None,
    ))
    .unwrap();
    let b4 = accepted_id(&h.order_full(
        4,
        INSTR2,
        Sell,
        OrderType::Limit,
        505,
        10,
        Gtc,
        StpMode::None,
    ))
    .unwrap();

    let ev = h.run(CommandKind::MassCancel {
        scope: MassCancelScope::Session(101),
        reason: MassCancelReason::Disconnect,
    });
    assert_eq!(
        cancels(&ev),
        vec![
            (a1, CancelReason::MassCancelDisconnect, 10),
            (b1, CancelReason::MassCancelDisconnect, 10)
        ]
    );
    assert!(matches!(
        ev.last(),
        Some(Event::MassCancelCompleted {
            cancelled_count: 2,
            ..
        })
    ));
    let ev = h.run(CommandKind::MassCancel {
        scope: MassCancelScope::Account(2),
        reason: MassCancelReason::User,
    });
    assert_eq!(cancels(&ev), vec![(a2, CancelReason::MassCancelUser, 10)]);
    let ev = h.run(CommandKind::MassCancel {
        scope: MassCancelScope::Instrument(INSTR2),
        reason: MassCancelReason::Admin,
    });
    assert_eq!(cancels(&ev), vec![(b4, CancelReason::MassCancelAdmin, 10)]);
    let ev = h.run(CommandKind::MassCancel {
        scope: MassCancelScope::All,
        reason: MassCancelReason::Admin,
    });
    assert_eq!(cancels(&ev), vec![(a3, CancelReason::MassCancelAdmin, 10)]);
    assert_eq!(h.e.resting_orders(), 0);
    for a in 1..=4 {
        assert_eq!(h.cash(a), (CASH, 0));
    }
}

#[test]
fn cancel_releases_and_reports_unknown_closed_and_foreign_orders() {
    let mut h = H::new();
    let id = h.gtc(1, Sell, 1000, 10);
    assert_eq!(h.pos(1), (POS as i64 - 10, 10));
    assert_eq!(rejected(&h.cancel(2, id)), Some(RejectReason::NotOwner));
    let ev = h.cancel(1, id);
    assert_eq!(cancels(&ev), vec![(id, CancelReason::User, 10)]);
    assert_eq!(h.pos(1), (POS as i64, 0));
    assert_eq!(
        rejected(&h.cancel(1, id)),
        Some(RejectReason::AlreadyClosed)
    );
    assert_eq!(
        rejected(&h.cancel(1, 999)),
        Some(RejectReason::UnknownOrder)
    );
    assert_eq!(
        rejected(&h.replace(1, id, 1000, 10)),
        Some(RejectReason::AlreadyClosed)
    );
    assert_eq!(
        rejected(&h.replace(1, 999, 1000, 10)),
        Some(RejectReason::UnknownOrder)
    );
    let ev = h.replace(1, 999, 1000, 10);
    assert!(matches!(
        ev[0],
        Event::CancelRejected {
            is_replace: true,
            ..
        }
    ));
}

#[test]
fn fills_settle_cash_and_positions() {
    let mut h = H::new();
    h.gtc(1, Sell, 1000, 10);
    // Buyer bids 1100, fills at 1000: pays 10_000 and gets its excess 1_000 back.
    h.limit(2, Buy, 1100, 10, Gtc);
    assert_eq!(h.cash(1), (CASH + 10_000, 0));
    assert_eq!(h.pos(1), (POS as i64 - 10, 0));
    assert_eq!(h.cash(2), (CASH - 10_000, 0));
    assert_eq!(h.pos(2), (POS as i64 + 10, 0));
    assert_eq!(h.e.daily(1), Some((10, 10_000)));
    assert_eq!(h.e.daily(2), Some((10, 10_000)));
    // A resting buy that fills releases exactly its reservation.
    h.gtc(3, Buy, 1000, 20);
    h.limit(4, Sell, 1000, 10, Ioc);
    assert_eq!(h.cash(3), (CASH - 20_000, 10_000));
}

#[test]
fn funds_cannot_back_two_orders() {
    let mut h = H::new();
    h.run(CommandKind::Deposit {
        account_id: 7,
        asset: Asset::Cash,
        amount: 15_000,
    });
    h.run(CommandKind::Deposit {
        account_id: 7,
        asset: Asset::Position(INSTR),
        amount: 10,
    });
    assert!(accepted_id(&h.limit(7, Buy, 1000, 10, Gtc)).is_some());
    assert_eq!(
        rejected(&h.limit(7, Buy, 1000, 10, Gtc)),
        Some(RejectReason::InsufficientCash)
    );
    assert!(accepted_id(&h.limit(7, Sell, 1100, 10, Gtc)).is_some());
    assert_eq!(
        rejected(&h.limit(7, Sell, 1100, 10, Gtc)),
        Some(RejectReason::InsufficientPosition)
    );
    // Market buy reserves at the collar: 1200 x 10 = 12_000 > 5_000 available.
    assert_eq!(
        rejected(&h.market(7, Buy, 10)),
        Some(RejectReason::InsufficientCash)
    );
}

#[test]
fn every_new_order_reject_reason() {
    let mut h = H::new();
    let o = |h: &mut H, acct: u32, ins: u32, price: i64, qty: u64| {
        rejected(&h.order_full(
            acct,
            ins,
            Buy,
            OrderType::Limit,
            price,
            qty,
            Gtc,
            StpMode::None,
        ))
    };
    assert_eq!(
        o(&mut h, 1, 3, 1000, 10),
        Some(RejectReason::UnknownInstrument)
    );
    assert_eq!(
        o(&mut h, 1, 99, 1000, 10),
        Some(RejectReason::UnknownInstrument)
    );
    assert_eq!(
        o(&mut h, 9, INSTR, 1000, 10),
        Some(RejectReason::UnknownAccount)
    );
    assert_eq!(
        o(&mut h, 999, INSTR, 1000, 10),
        Some(RejectReason::UnknownAccount)
    );
    assert_eq!(
        o(&mut h, 1, INSTR, 1000, 0),
        Some(RejectReason::ZeroQuantity)
    );
    assert_eq!(
        o(&mut h, 1, INSTR, 1000, 15),
        Some(RejectReason::QuantityOffLot)
    );
    assert_eq!(
        o(&mut h, 1, INSTR, 1000, 100_010),
        Some(RejectReason::QuantityAboveInstrumentMax)
    );
    assert_eq!(
        o(&mut h, 1, INSTR, 0, 10),
        Some(RejectReason::PriceNotPositive)
    );
    assert_eq!(
        o(&mut h, 1, INSTR, 1001, 10),
        Some(RejectReason::PriceOffTick)
    );
    assert_eq!(
        o(&mut h, 1, INSTR, 1205, 10),
        Some(RejectReason::PriceOutsideBand)
    );
    assert_eq!(
        o(&mut h, 1, INSTR, 795, 10),
        Some(RejectReason::PriceOutsideBand)
    );
    assert_eq!(o(&mut h, 1, INSTR, 1200, 10), None, "band edges are inside");
    h.run(CommandKind::SetTradingStatus {
        instrument_id: INSTR,
        status: TradingStatus::Halted,
    });
    assert_eq!(
        o(&mut h, 1, INSTR, 1000, 10),
        Some(RejectReason::InstrumentHalted)
    );
    h.run(CommandKind::SetTradingStatus {
        instrument_id: INSTR,
        status: TradingStatus::Open,
    });
    let limits = AccountLimits {
        order_quantity_max: 100,
        order_notional_max: 50_000,
        daily_quantity_max: 150,
        daily_notional_max: 120_000,
    };
    h.run(CommandKind::SetAccountLimits {
        account_id: 2,
        limits,
    });
    assert_eq!(
        o(&mut h, 2, INSTR, 1000, 110),
        Some(RejectReason::OrderQuantityAboveLimit)
    );
    assert_eq!(
        o(&mut h, 2, INSTR, 1000, 60),
        Some(RejectReason::OrderNotionalAboveLimit)
    );
}

#[test]
fn daily_limits_and_their_reset() {
    let mut h = H::new();
    let limits = AccountLimits {
        order_quantity_max: 100,
        order_notional_max: i128::MAX,
        daily_quantity_max: 150,
        daily_notional_max: 1_000_000,
    };
    h.run(CommandKind::SetAccountLimits {
        account_id: 2,
        limits,
    });
    h.gtc(1, Sell, 1000, 100);
    h.gtc(1, Sell, 1000, 100);
    assert!(trades(&h.limit(2, Buy, 1000, 100, Ioc)).len() == 1);
    assert_eq!(
        rejected(&h.limit(2, Buy, 1000, 60, Ioc)),
        Some(RejectReason::DailyQuantityLimit)
    );
    assert!(accepted_id(&h.limit(2, Buy, 1000, 50, Ioc)).is_some());
    h.run(CommandKind::StartTradingDay { trading_day: 2 });
    assert_eq!(h.e.daily(2), Some((0, 0)));
    let limits = AccountLimits {
        daily_notional_max: 15_000,
        ..limits
    };
    h.run(CommandKind::SetAccountLimits {
        account_id: 2,
        limits,
    });
    assert!(accepted_id(&h.limit(2, Buy, 1000, 10, Ioc)).is_some());
    assert_eq!(
        rejected(&h.limit(2, Buy, 1000, 10, Ioc)),
        Some(RejectReason::DailyNotionalLimit)
    );
}

#[test]
fn capacity_rejects() {
    let mut c = config();
    c.orders_max = 3;
    c.order_id_window = 4;
    c.levels_per_side_max = 2;
    let mut h = H::with_config(c);
    h.gtc(1, Buy, 1000, 10);
    h.gtc(1, Buy, 995, 10);
    assert_eq!(
        rejected(&h.limit(1, Buy, 990, 10, Gtc)),
        Some(RejectReason::LevelCapacity)
    );
    h.gtc(1, Buy, 995, 10);
    assert_eq!(
        rejected(&h.limit(1, Buy, 995, 10, Gtc)),
        Some(RejectReason::OrderCapacity)
    );
    // IOC orders never rest, so a full book still takes them.
    assert!(accepted_id(&h.limit(2, Sell, 1000, 10, Ioc)).is_some());
    // Ids skip entries still held by live orders in the small window.
    for _ in 0..5 {
        let id = h.gtc(2, Buy, 1000, 10);
        h.cancel(2, id);
    }
}

#[test]
fn halted_instrument_allows_cancels_only() {
    let mut h = H::new();
    let id = h.gtc(1, Buy, 1000, 10);
    h.run(CommandKind::SetTradingStatus {
        instrument_id: INSTR,
        status: TradingStatus::Halted,
    });
    assert_eq!(
        rejected(&h.replace(1, id, 1005, 10)),
        Some(RejectReason::InstrumentHalted)
    );
    assert_eq!(
        rejected(&h.market(2, Sell, 10)),
        Some(RejectReason::InstrumentHalted)
    );
    assert_eq!(cancels(&h.cancel(1, id)).len(), 1);
}

#[test]
fn replace_validations() {
    let mut h = H::new();
    let id = h.gtc(1, Buy, 1000, 10);
    assert_eq!(
        rejected(&h.replace(2, id, 1000, 10)),
        Some(RejectReason::NotOwner)
    );
    assert_eq!(
        rejected(&h.replace(1, id, 1003, 10)),
        Some(RejectReason::PriceOffTick)
    );
    assert_eq!(
        rejected(&h.replace(1, id, 1300, 10)),
        Some(RejectReason::PriceOutsideBand)
    );
    assert_eq!(
        rejected(&h.replace(1, id, 1000, 0)),
        Some(RejectReason::ZeroQuantity)
    );
    assert_eq!(
        rejected(&h.replace(1, id, 1000, 11)),
        Some(RejectReason::QuantityOffLot)
    );
    assert_eq!(
        rejected(&h.replace(1, id, 1000, 200_000)),
        Some(RejectReason::QuantityAboveInstrumentMax)
    );
    assert_eq!(rejected(&h.replace(1, id, 1000, 90_000)), None);
    h.run(CommandKind::Withdraw {
        account_id: 1,
        asset: Asset::Cash,
        amount: CASH - 90_000_000,
    });
    assert_eq!(
        rejected(&h.replace(1, id, 1200, 90_000)),
        Some(RejectReason::InsufficientCash)
    );
    assert_eq!(
        h.e.order(id).unwrap().price,
        1000,
        "a refused replace changes nothing"
    );
}

#[test]
fn admin_commands_and_their_rejects() {
    let mut h = H::new();
    let r = |h: &mut H, k| rejected(&h.run(k));
    assert_eq!(
        r(
            &mut h,
            CommandKind::Deposit {
                account_id: 99,
                asset: Asset::Cash,
                amount: 1
            }
        ),
        Some(RejectReason::UnknownAccount)
    );
    assert_eq!(
        r(
            &mut h,
            CommandKind::Deposit {
                account_id: 1,
                asset: Asset::Cash,
                amount: 0
            }
        ),
        Some(RejectReason::InvalidAmount)
    );
    assert_eq!(
        r(
            &mut h,
            CommandKind::Deposit {
                account_id: 1,
                asset: Asset::Position(3),
                amount: 5
            }
        ),
        Some(RejectReason::UnknownInstrument)
    );
    assert_eq!(
        r(
            &mut h,
            CommandKind::Withdraw {
                account_id: 9,
                asset: Asset::Cash,
                amount: 5
            }
        ),
        Some(RejectReason::UnknownAccount)
    );
    assert_eq!(
        r(
            &mut h,
            CommandKind::Withdraw {
                account_id: 1,
                asset: Asset::Cash,
                amount: CASH + 1
            }
        ),
        Some(RejectReason::InsufficientCash)
    );
    assert_eq!(
        r(
            &mut h,
            CommandKind::Withdraw {
                account_id: 1,
                asset: Asset::Position(INSTR),
                amount: POS + 1
            }
        ),
        Some(RejectReason::InsufficientPosition)
    );
    assert_eq!(
        r(
            &mut h,
            CommandKind::SetTradingStatus {
                instrument_id: 3,
                status: TradingStatus::Open
            }
        ),
        Some(RejectReason::UnknownInstrument)
    );
    assert_eq!(
        r(
            &mut h,
            CommandKind::SetReferencePrice {
                instrument_id: INSTR,
                price: 1001
            }
        ),
        Some(RejectReason::PriceOffTick)
    );
    assert_eq!(
        r(
            &mut h,
            CommandKind::SetReferencePrice {
                instrument_id: INSTR,
                price: -5
            }
        ),
        Some(RejectReason::PriceNotPositive)
    );
    assert_eq!(
        r(
            &mut h,
            CommandKind::SetAccountLimits {
                account_id: 9,
                limits: AccountLimits::UNLIMITED
            }
        ),
        Some(RejectReason::UnknownAccount)
    );
    let ev = h.run(CommandKind::Withdraw {
        account_id: 1,
        asset: Asset::Cash,
        amount: 100,
    });
    assert_eq!(
        ev,
        vec![Event::AccountUpdated {
            account_id: 1,
            asset: Asset::Cash,
            available: CASH - 100,
            reserved: 0
        }]
    );
    // Reserved cash cannot be withdrawn.
    h.gtc(1, Buy, 1000, 10);
    assert_eq!(
        r(
            &mut h,
            CommandKind::Withdraw {
                account_id: 1,
                asset: Asset::Cash,
                amount: CASH - 100
            }
        ),
        Some(RejectReason::InsufficientCash)
    );
}

#[test]
fn book_events_carry_level_totals() {
    let mut h = H::new();
    let ev = h.limit(1, Buy, 1000, 10, Gtc);
    assert!(ev.contains(&Event::OrderAdded {
        instrument_id: INSTR,
        order_id: 1,
        side: Buy,
        price: 1000,
        quantity: 10,
        level_quantity: 10,
        level_order_count: 1
    }));
    let ev = h.limit(2, Buy, 1000, 20, Gtc);
    assert!(ev.contains(&Event::OrderAdded {
        instrument_id: INSTR,
        order_id: 2,
        side: Buy,
        price: 1000,
        quantity: 20,
        level_quantity: 30,
        level_order_count: 2
    }));
    let ev = h.cancel(1, 1);
    assert!(ev.contains(&Event::OrderDeleted {
        instrument_id: INSTR,
        order_id: 1,
        side: Buy,
        price: 1000,
        level_quantity: 20,
        level_order_count: 1
    }));
    let ev = h.limit(3, Sell, 1000, 5 * 2, Ioc);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::OrderExecuted {
            order_id: 2,
            quantity: 10,
            leaves_quantity: 10,
            level_quantity: 10,
            level_order_count: 1,
            ..
        }
    )));
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Trade {
            aggressor_side: Sell,
            buy_order_id: 2,
            sell_order_id: 3,
            price: 1000,
            quantity: 10,
            ..
        }
    )));
}

#[test]
fn documented_record_sizes_hold() {
    // docs/matching.md quotes 128 bytes per order slot in the order-proportional tables.
    assert_eq!(Engine::bytes_per_order_slot(), 128);
}
