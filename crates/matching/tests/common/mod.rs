//! Shared test harness: a small engine with funded accounts and command builders.
#![allow(dead_code)]

pub mod model;

use matching::*;

pub const INSTR: u32 = 0;
pub const INSTR2: u32 = 1;
pub const CASH: i128 = 1_000_000_000;
pub const POS: i128 = 1_000_000;

pub fn config() -> EngineConfig {
    let mut p0 = ProductConfig::simple(INSTR, "ACME", 1_000);
    p0.tick_size = 5;
    p0.lot_size = 10;
    p0.band = Band::Ticks(40); // 1000 +- 200
    p0.quantity_max = 100_000;
    let p1 = ProductConfig::simple(INSTR2, "BETA", 500);
    EngineConfig {
        orders_max: 1024,
        order_id_window: 4096,
        levels_per_side_max: 64,
        accounts_max: 16,
        instruments_max: 4,
        default_limits: AccountLimits::UNLIMITED,
        products: vec![p0, p1],
    }
}

pub struct H {
    pub e: Engine,
    pub seq: u64,
    pub out: Vec<Output>,
    pub all: Vec<Output>,
}

impl H {
    /// Accounts 1..=4 funded with cash and positions in both instruments.
    pub fn new() -> H {
        Self::with_config(config())
    }
    pub fn with_config(c: EngineConfig) -> H {
        let mut h = H {
            e: Engine::new(c),
            seq: 0,
            out: Vec::new(),
            all: Vec::new(),
        };
        for a in 1..=4 {
            h.run(CommandKind::Deposit {
                account_id: a,
                asset: Asset::Cash,
                amount: CASH,
            });
            for i in [INSTR, INSTR2] {
                h.run(CommandKind::Deposit {
                    account_id: a,
                    asset: Asset::Position(i),
                    amount: POS,
                });
            }
        }
        h
    }
    /// Runs one command; returns its events and checks every invariant.
    pub fn run(&mut self, kind: CommandKind) -> Vec<Event> {
        self.seq += 1;
        self.out.clear();
        let c = Command {
            sequence: self.seq,
            timestamp_ns: self.seq * 1000,
            kind,
        };
        self.e.process(&c, &mut self.out);
        self.e.check_invariants().unwrap();
        self.all.extend_from_slice(&self.out);
        self.out.iter().map(|o| o.event).collect()
    }
    #[allow(clippy::too_many_arguments)]
    pub fn order_full(
        &mut self,
        account: u32,
        instrument: u32,
        side: Side,
        order_type: OrderType,
        price: i64,
        qty: u64,
        tif: TimeInForce,
        stp: StpMode,
    ) -> Vec<Event> {
        self.run(CommandKind::NewOrder {
            session_id: account + 100,
            account_id: account,
            client_order_id: self.seq + 1,
            instrument_id: instrument,
            side,
            order_type,
            price,
            quantity: qty,
            time_in_force: tif,
            stp_mode: stp,
        })
    }
    pub fn limit(
        &mut self,
        account: u32,
        side: Side,
        price: i64,
        qty: u64,
        tif: TimeInForce,
    ) -> Vec<Event> {
        self.order_full(
            account,
            INSTR,
            side,
            OrderType::Limit,
            price,
            qty,
            tif,
            StpMode::None,
        )
    }
    pub fn gtc(&mut self, account: u32, side: Side, price: i64, qty: u64) -> u64 {
        let ev = self.limit(account, side, price, qty, TimeInForce::Gtc);
        accepted_id(&ev).expect("accepted")
    }
    pub fn market(&mut self, account: u32, side: Side, qty: u64) -> Vec<Event> {
        self.order_full(
            account,
            INSTR,
            side,
            OrderType::Market,
            0,
            qty,
            TimeInForce::Ioc,
            StpMode::None,
        )
    }
    pub fn cancel(&mut self, account: u32, order_id: u64) -> Vec<Event> {
        self.run(CommandKind::Cancel {
            session_id: account + 100,
            account_id: account,
            client_order_id: 9_000 + self.seq,
            order_id,
        })
    }
    pub fn replace(&mut self, account: u32, order_id: u64, price: i64, qty: u64) -> Vec<Event> {
        self.run(CommandKind::Replace {
            session_id: account + 100,
            account_id: account,
            client_order_id: 9_000 + self.seq,
            order_id,
            new_client_order_id: 10_000 + self.seq,
            new_price: price,
            new_quantity: qty,
        })
    }
    pub fn cash(&self, a: u32) -> (i128, i128) {
        self.e.cash(a).unwrap()
    }
    pub fn pos(&self, a: u32) -> (i64, i64) {
        self.e.position(a, INSTR).unwrap()
    }
}

pub fn accepted_id(ev: &[Event]) -> Option<u64> {
    ev.iter().find_map(|e| match e {
        Event::Accepted { order_id, .. } => Some(*order_id),
        _ => None,
    })
}

pub fn rejected(ev: &[Event]) -> Option<RejectReason> {
    ev.iter().find_map(|e| match e {
        Event::Rejected { reason, .. } => Some(*reason),
        Event::CancelRejected { reason, .. } => Some(*reason),
        Event::AdminRejected { reason } => Some(*reason),
        _ => None,
    })
}

pub fn trades(ev: &[Event]) -> Vec<(i64, u64)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Trade {
                price, quantity, ..
            } => Some((*price, *quantity)),
            _ => None,
        })
        .collect()
}

pub fn cancels(ev: &[Event]) -> Vec<(u64, CancelReason, u64)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Cancelled {
                order_id,
                reason,
                cancelled_quantity,
                ..
            } => Some((*order_id, *reason, *cancelled_quantity)),
            _ => None,
        })
        .collect()
}

pub fn makers(ev: &[Event]) -> Vec<u64> {
    ev.iter()
        .filter_map(|e| match e {
            Event::OrderExecuted { order_id, .. } => Some(*order_id),
            _ => None,
        })
        .collect()
}

/// A seeded random stream of every command type over a small price grid, so that orders
/// cross, collide with their own account (STP), hit limits and get rejected for every reason.
/// Starts with the harness deposits. Order ids in cancels/replaces are drawn near the ids the
/// engine has handed out (it assigns them sequentially from 1).
pub fn random_commands(seed: u64, n: usize) -> Vec<Command> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n + 16);
    let mut seq = 0u64;
    let mut push = |kind: CommandKind, out: &mut Vec<Command>| {
        seq += 1;
        out.push(Command {
            sequence: seq,
            timestamp_ns: seq * 1000,
            kind,
        });
    };
    for a in 1..=4 {
        push(
            CommandKind::Deposit {
                account_id: a,
                asset: Asset::Cash,
                amount: 5_000_000,
            },
            &mut out,
        );
        for i in [INSTR, INSTR2] {
            push(
                CommandKind::Deposit {
                    account_id: a,
                    asset: Asset::Position(i),
                    amount: 5_000,
                },
                &mut out,
            );
        }
    }
    let mut max_id = 1u64;
    for _ in 0..n {
        let r = rng.gen_range(0..1000);
        let account = rng.gen_range(1..=5);
        let kind = if r < 550 {
            max_id += 1;
            let instrument = if rng.gen_range(0..5) == 0 {
                INSTR2
            } else {
                INSTR
            };
            let (mid, tick) = if instrument == INSTR {
                (1000, 5)
            } else {
                (500, 1)
            };
            let mut price = mid + tick * rng.gen_range(-12..=12);
            if rng.gen_range(0..50) == 0 {
                price += rng.gen_range(-3..=3) * 100 + rng.gen_range(0..2);
            }
            let lot = if instrument == INSTR { 10 } else { 1 };
            let mut quantity = lot * rng.gen_range(1..=30);
            if rng.gen_range(0..60) == 0 {
                quantity = rng.gen_range(0..25);
            }
            CommandKind::NewOrder {
                session_id: account + 100 * rng.gen_range(1..=2),
                account_id: account,
                client_order_id: rng.gen(),
                instrument_id: if rng.gen_range(0..200) == 0 {
                    3
                } else {
                    instrument
                },
                side: if rng.gen() { Side::Buy } else { Side::Sell },
                order_type: if rng.gen_range(0..12) == 0 {
                    OrderType::Market
                } else {
                    OrderType::Limit
                },
                price,
                quantity,
                time_in_force: TimeInForce::from_u8(rng.gen_range(0..4)).unwrap(),
                stp_mode: StpMode::from_u8(rng.gen_range(0..4)).unwrap(),
            }
        } else if r < 700 {
            CommandKind::Cancel {
                session_id: account + 100,
                account_id: account,
                client_order_id: rng.gen(),
                order_id: rng.gen_range(max_id.saturating_sub(40).max(1)..=max_id + 1),
            }
        } else if r < 940 {
            let price = 1000 + 5 * rng.gen_range(-12..=12);
            CommandKind::Replace {
                session_id: account + 100,
                account_id: account,
                client_order_id: rng.gen(),
                order_id: rng.gen_range(max_id.saturating_sub(40).max(1)..=max_id + 1),
                new_client_order_id: rng.gen(),
                new_price: if rng.gen_range(0..4) == 0 {
                    price / 2
                } else {
                    price
                },
                new_quantity: 10 * rng.gen_range(1..=40),
            }
        } else if r < 950 {
            let scope = match rng.gen_range(0..4) {
                0 => MassCancelScope::Session(account + 100),
                1 => MassCancelScope::Account(account),
                2 => MassCancelScope::Instrument(rng.gen_range(0..3)),
                _ => MassCancelScope::All,
            };
            CommandKind::MassCancel {
                scope,
                reason: MassCancelReason::from_u8(rng.gen_range(0..3)).unwrap(),
            }
        } else if r < 960 {
            CommandKind::SetTradingStatus {
                instrument_id: rng.gen_range(0..2),
                status: if rng.gen_range(0..3) == 0 {
                    TradingStatus::Halted
                } else {
                    TradingStatus::Open
                },
            }
        } else if r < 968 {
            let instrument_id = rng.gen_range(0..2);
            CommandKind::SetReferencePrice {
                instrument_id,
                price: if instrument_id == 0 {
                    1000 + 5 * rng.gen_range(-8..=8)
                } else {
                    500 + rng.gen_range(-8..=8)
                },
            }
        } else if r < 978 {
            CommandKind::Deposit {
                account_id: account,
                asset: if rng.gen() {
                    Asset::Cash
                } else {
                    Asset::Position(rng.gen_range(0..2))
                },
                amount: rng.gen_range(0..200_000),
            }
        } else if r < 988 {
            CommandKind::Withdraw {
                account_id: account,
                asset: if rng.gen() {
                    Asset::Cash
                } else {
                    Asset::Position(rng.gen_range(0..2))
                },
                amount: rng.gen_range(0..500_000),
            }
        } else if r < 995 {
            CommandKind::SetAccountLimits {
                account_id: account,
                limits: AccountLimits {
                    order_quantity_max: rng.gen_range(100..400),
                    order_notional_max: rng.gen_range(50_000..400_000),
                    daily_quantity_max: rng.gen_range(500..5_000),
                    daily_notional_max: rng.gen_range(500_000..5_000_000),
                },
            }
        } else {
            CommandKind::StartTradingDay {
                trading_day: rng.gen_range(1..100),
            }
        };
        push(kind, &mut out);
    }
    out
}

/// Runs commands through a fresh engine, returning the outputs.
pub fn run_all(e: &mut Engine, commands: &[Command]) -> Vec<Output> {
    let mut out = Vec::new();
    for c in commands {
        e.process(c, &mut out);
    }
    out
}
