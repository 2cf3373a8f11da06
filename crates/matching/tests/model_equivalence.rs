//! Property tests against a naive reference model (tests/common/model.rs: one flat Vec of
//! orders, re-sorted on every step). On random streams of every command type — new orders of
//! both types, every TIF and STP mode, cancels and replaces of live, dead and unknown ids, mass
//! cancels of every scope, halts, reference prices, deposits, withdrawals, limits and day
//! starts — the engine and the model must emit identical outputs command by command and hold
//! identical books and balances, and the engine's invariants (no negative balance, cash and
//! positions conserved, reservations equal to open orders, book structure) hold after every
//! command. Small capacities make the capacity rejects and order-id skipping reachable.

mod common;
use common::model::Model;
use common::*;
use matching::*;
use proptest::prelude::*;

fn small_config() -> EngineConfig {
    let mut c = config();
    c.orders_max = 24;
    c.order_id_window = 32;
    c.levels_per_side_max = 6;
    c.accounts_max = 8;
    c
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn kind() -> impl Strategy<Value = CommandKind> {
    let new_order = (
        1u32..=5,
        prop_oneof![9 => Just(INSTR), 2 => Just(INSTR2), 1 => Just(3u32)],
        side(),
        prop_oneof![8 => Just(OrderType::Limit), 1 => Just(OrderType::Market)],
        prop_oneof![8 => -10i64..=10, 1 => -60i64..=60],
        prop_oneof![10 => 1u64..=12, 1 => 0u64..=300],
        0u8..4,
        prop_oneof![3 => Just(0u8), 1 => 1u8..4],
        any::<u64>(),
        1u32..=2,
    )
        .prop_map(
            |(account, instrument, side, ot, off, lots, tif, stp, cl, sess)| {
                let (price, quantity) = if instrument == INSTR2 {
                    (500 + off, lots)
                } else {
                    // Odd offsets beyond the grid produce off-tick prices; lots of 10 except for
                    // the rare raw quantities.
                    (
                        1000 + off * 5 + i64::from(off.abs() > 40),
                        if lots > 12 { lots } else { lots * 10 },
                    )
                };
                CommandKind::NewOrder {
                    session_id: account + 100 * sess,
                    account_id: account,
                    client_order_id: cl,
                    instrument_id: instrument,
                    side,
                    order_type: ot,
                    price,
                    quantity,
                    time_in_force: TimeInForce::from_u8(tif).unwrap(),
                    stp_mode: StpMode::from_u8(stp).unwrap(),
                }
            },
        );
    let cancel = (1u32..=5, 0u64..40).prop_map(|(account, order_id)| CommandKind::Cancel {
        session_id: account + 100,
        account_id: account,
        client_order_id: 1,
        order_id,
    });
    let replace =
        (1u32..=5, 0u64..40, -4i64..=4, 1u64..=13).prop_map(|(account, order_id, off, lots)| {
            CommandKind::Replace {
                session_id: account + 100,
                account_id: account,
                client_order_id: 2,
                order_id,
                new_client_order_id: 3,
                new_price: 1000 + off * 5,
                new_quantity: lots * 10,
            }
        });
    let scope = prop_oneof![
        (100u32..=102).prop_map(MassCancelScope::Session),
        (1u32..=5).prop_map(MassCancelScope::Account),
        (0u32..5).prop_map(MassCancelScope::Instrument),
        Just(MassCancelScope::All),
    ];
    let mass = (scope, 0u8..3).prop_map(|(scope, r)| CommandKind::MassCancel {
        scope,
        reason: MassCancelReason::from_u8(r).unwrap(),
    });
    let admin = prop_oneof![
        (0u32..3, any::<bool>()).prop_map(|(i, h)| CommandKind::SetTradingStatus {
            instrument_id: i,
            status: if h {
                TradingStatus::Halted
            } else {
                TradingStatus::Open
            },
        }),
        (0u32..3, -10i64..=10).prop_map(|(i, off)| CommandKind::SetReferencePrice {
            instrument_id: i,
            price: if i == 0 { 1000 + off * 5 } else { 500 + off },
        }),
        (0u32..9, 0u8..3, 0i128..300_000).prop_map(|(a, k, amount)| CommandKind::Deposit {
            account_id: a,
            asset: if k == 0 {
                Asset::Cash
            } else {
                Asset::Position(u32::from(k) - 1)
            },
            amount,
        }),
        (0u32..9, 0u8..3, 0i128..300_000).prop_map(|(a, k, amount)| CommandKind::Withdraw {
            account_id: a,
            asset: if k == 0 {
                Asset::Cash
            } else {
                Asset::Position(u32::from(k) - 1)
            },
            amount,
        }),
        (
            1u32..=5,
            20u64..200,
            20_000i128..200_000,
            50u64..600,
            50_000i128..600_000
        )
            .prop_map(|(a, q, n, dq, dn)| CommandKind::SetAccountLimits {
                account_id: a,
                limits: AccountLimits {
                    order_quantity_max: q,
                    order_notional_max: n,
                    daily_quantity_max: dq,
                    daily_notional_max: dn,
                },
            }),
        (1u32..5).prop_map(|d| CommandKind::StartTradingDay { trading_day: d }),
    ];
    prop_oneof![
        50 => new_order,
        10 => cancel,
        18 => replace,
        2 => mass,
        6 => admin,
    ]
}

fn check_same(e: &Engine, m: &Model) -> Result<(), TestCaseError> {
    for instrument in [INSTR, INSTR2] {
        for s in [Side::Buy, Side::Sell] {
            let got: Vec<(u64, i64, u64)> = e
                .orders(instrument, s)
                .iter()
                .map(|o| (o.order_id, o.price, o.leaves_quantity))
                .collect();
            prop_assert_eq!(got, m.orders(instrument, s));
        }
    }
    for a in 0..8 {
        prop_assert_eq!(e.cash(a), m.cash(a));
        for i in [INSTR, INSTR2] {
            let p = e.position(a, i).unwrap();
            prop_assert_eq!(p, m.position(a, i));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_reference_model(kinds in prop::collection::vec(kind(), 1..250)) {
        let c = small_config();
        let mut e = Engine::new(c.clone());
        let mut m = Model::new(c);
        let mut seq = 0u64;
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        for a in 1..=4u32 {
            prefix.push(CommandKind::Deposit { account_id: a, asset: Asset::Cash, amount: 2_000_000 });
            prefix.push(CommandKind::Deposit { account_id: a, asset: Asset::Position(INSTR), amount: 500 });
            prefix.push(CommandKind::Deposit { account_id: a, asset: Asset::Position(INSTR2), amount: 50 });
        }
        let mut last_id = 0u64;
        for mut kind in prefix.into_iter().chain(kinds) {
            // Cancels and replaces name an order by distance back from the newest id, so
            // they mostly hit live orders (0 = one past the newest, i.e. unknown).
            match &mut kind {
                CommandKind::Cancel { order_id, account_id, .. }
                | CommandKind::Replace { order_id, account_id, .. } => {
                    *order_id = (last_id + 1).saturating_sub(*order_id);
                    // Account 5 keeps its value (mostly "not owner"); others act as the owner.
                    if *account_id != 5 {
                        if let Some(o) = e.order(*order_id) {
                            *account_id = o.account_id;
                        }
                    }
                }
                _ => {}
            }
            seq += 1;
            let cmd = Command { sequence: seq, timestamp_ns: seq * 10, kind };
            out.clear();
            e.process(&cmd, &mut out);
            let expect = m.process(&cmd);
            for o in &out {
                if let Event::Accepted { order_id, .. } = o.event {
                    last_id = order_id;
                }
            }
            prop_assert_eq!(&out, &expect, "command {:?}", cmd);
            if let Err(msg) = e.check_invariants() {
                return Err(TestCaseError::fail(format!("invariant after {cmd:?}: {msg}")));
            }
            check_same(&e, &m)?;
        }
    }

    #[test]
    fn snapshot_round_trip_at_any_point(kinds in prop::collection::vec(kind(), 1..120), cut in 0usize..120) {
        let c = small_config();
        let mut e = Engine::new(c);
        let mut seq = 0;
        let mut cmds = Vec::new();
        for a in 1..=4u32 {
            for kind in [
                CommandKind::Deposit { account_id: a, asset: Asset::Cash, amount: 2_000_000 },
                CommandKind::Deposit { account_id: a, asset: Asset::Position(INSTR), amount: 500 },
            ] {
                seq += 1;
                cmds.push(Command { sequence: seq, timestamp_ns: seq, kind });
            }
        }
        for kind in kinds {
            seq += 1;
            cmds.push(Command { sequence: seq, timestamp_ns: seq, kind });
        }
        let cut = cut.min(cmds.len());
        let full = encode_outputs(&run_all(&mut e, &cmds));
        let mut a = Engine::new(small_config());
        let mut out = run_all(&mut a, &cmds[..cut]);
        let mut b = Engine::restore(&a.snapshot()).unwrap();
        out.extend(run_all(&mut b, &cmds[cut..]));
        prop_assert_eq!(encode_outputs(&out), full);
        prop_assert_eq!(b.snapshot(), e.snapshot());
    }
}

#[test]
fn model_agrees_on_long_random_streams() {
    for seed in 0..3 {
        let cmds = random_commands(1000 + seed, 6_000);
        let mut e = Engine::new(config());
        let mut m = Model::new(config());
        let mut out = Vec::new();
        let (mut trades, mut rejects) = (0, 0);
        for c in &cmds {
            out.clear();
            e.process(c, &mut out);
            assert_eq!(out, m.process(c), "seed {seed} command {c:?}");
            trades += out
                .iter()
                .filter(|o| matches!(o.event, Event::Trade { .. }))
                .count();
            rejects += out
                .iter()
                .filter(|o| matches!(o.event, Event::Rejected { .. }))
                .count();
        }
        check_same(&e, &m).unwrap();
        assert!(
            trades > 200 && rejects > 100,
            "seed {seed}: {trades} trades {rejects} rejects"
        );
    }
}
