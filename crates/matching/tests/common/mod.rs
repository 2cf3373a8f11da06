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
    pub fn limit(&mut self, account: u32, side: Side, price: i64, qty: u64, tif: TimeInForce) -> Vec<Event> {
        self.order_full(account, INSTR, side, OrderType::Limit, price, qty, tif, StpMode::None)
    }
    pub fn gtc(&mut self, account: u32, side: Side, price: i64, qty: u64) -> u64 {
        let ev = self.limit(account, side, price, qty, TimeInForce::Gtc);
        accepted_id(&ev).expect("accepted")
    }
    pub fn market(&mut self, account: u32, side: Side, qty: u64) -> Vec<Event> {
        self.order_full(account, INSTR, side, OrderType::Market, 0, qty, TimeInForce::Ioc, StpMode::None)
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
            Event::Trade { price, quantity, .. } => Some((*price, *quantity)),
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
