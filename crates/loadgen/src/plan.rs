//! Turns the matching benchmark's order stream into a FIX replay plan.
//!
//! The workload refers to orders by the engine order id its private engine assigned; FIX refers
//! to them by ClOrdID. The plan replays the stream through a local [`Engine`] with the
//! workload's own configuration to learn which new order each cancel and move targets, and gives
//! every order a slot. ClOrdIDs are command indexes, so a report names its command directly.

use std::collections::HashMap;

use matching::engine::Engine;
use matching::types::{CommandKind, Event, OrderType, Output, Sink, TimeInForce};
use matching::workload::{self, WorkloadConfig};

/// An instrument as the target acceptor knows it.
#[derive(Clone, Debug)]
pub struct Instrument {
    pub symbol: String,
    pub tick_size: i64,
    pub lot_size: u64,
    pub price_decimals: u32,
    pub reference_price: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    New,
    Cancel,
    Replace,
}

/// One FIX request of the replay. Prices and quantities are in the target's units.
#[derive(Clone, Copy, Debug)]
pub struct Cmd {
    pub kind: Kind,
    pub slot: u32,
    pub price: i64,
    pub quantity: u64,
}

/// What stays fixed for an order's life.
#[derive(Clone, Copy, Debug)]
pub struct OrderInfo {
    pub session: u16,
    pub instrument: u16,
    /// FIX Side: b'1' buy, b'2' sell.
    pub side: u8,
    /// FIX OrdType: b'1' market, b'2' limit.
    pub ord_type: u8,
    /// FIX TimeInForce.
    pub tif: u8,
}

pub struct Plan {
    pub instruments: Vec<Instrument>,
    pub sessions: usize,
    pub orders: Vec<OrderInfo>,
    pub cmds: Vec<Cmd>,
    /// The first `fill_cmds` commands build the books (not measured).
    pub fill_cmds: usize,
}

/// Instruments matching the workload's own (used when the load generator starts the target):
/// tick 1, lot 1, prices in hundredths.
pub fn native_instruments(cfg: &WorkloadConfig) -> Vec<Instrument> {
    workload::engine_config_for(cfg)
        .products
        .iter()
        .enumerate()
        .map(|(i, p)| Instrument {
            symbol: format!("SYM{i}"),
            tick_size: 1,
            lot_size: 1,
            price_decimals: 2,
            reference_price: p.reference_price,
        })
        .collect()
}

struct LastAccepted(Option<u64>);

impl Sink for LastAccepted {
    fn emit(&mut self, o: &Output) {
        if let Event::Accepted { order_id, .. } = o.event {
            self.0 = Some(order_id);
        }
    }
}

fn fix_tif(t: TimeInForce) -> u8 {
    match t {
        TimeInForce::Day => b'0',
        TimeInForce::Gtc => b'1',
        TimeInForce::Ioc => b'3',
        TimeInForce::Fok => b'4',
    }
}

/// Builds the plan from a generated or recorded stream. Workload instrument `i` maps onto
/// `targets[i % targets.len()]` with prices scaled by the ratio of reference prices and rounded
/// to the tick; workload account `a` trades on session `(a - 1) % sessions`.
pub fn build(
    cfg: &WorkloadConfig,
    preamble: &[matching::types::Command],
    commands: &[matching::types::Command],
    targets: &[Instrument],
    sessions: usize,
) -> Plan {
    assert!(sessions > 0 && sessions <= usize::from(u16::MAX));
    assert!(!targets.is_empty());
    let engine_config = workload::engine_config_for(cfg);
    let starts: Vec<i64> = engine_config
        .products
        .iter()
        .map(|p| p.reference_price)
        .collect();
    let mut engine = Engine::new(engine_config);
    let map_price = |instrument: usize, p: i64| -> i64 {
        let t = &targets[instrument % targets.len()];
        let start = starts[instrument].max(1);
        let scaled = i128::from(p) * i128::from(t.reference_price) / i128::from(start);
        let ticks = (scaled + i128::from(t.tick_size) / 2) / i128::from(t.tick_size);
        (ticks.max(1) * i128::from(t.tick_size)) as i64
    };
    let mut slots: HashMap<u64, u32> = HashMap::new();
    let mut orders = Vec::new();
    let mut workload_instrument = Vec::new();
    let mut cmds = Vec::with_capacity(preamble.len() + commands.len());
    let mut fill_cmds = 0;
    let mut sink = LastAccepted(None);
    for (phase, list) in [preamble, commands].into_iter().enumerate() {
        for c in list {
            sink.0 = None;
            engine.process(c, &mut sink);
            match c.kind {
                CommandKind::NewOrder {
                    account_id,
                    instrument_id,
                    side,
                    order_type,
                    price,
                    quantity,
                    time_in_force,
                    ..
                } => {
                    let slot = orders.len() as u32;
                    let target = instrument_id as usize % targets.len();
                    workload_instrument.push(instrument_id as usize);
                    orders.push(OrderInfo {
                        session: ((account_id.max(1) - 1) as usize % sessions) as u16,
                        instrument: target as u16,
                        side: if side == matching::types::Side::Buy {
                            b'1'
                        } else {
                            b'2'
                        },
                        ord_type: if order_type == OrderType::Market {
                            b'1'
                        } else {
                            b'2'
                        },
                        tif: fix_tif(time_in_force),
                    });
                    if let Some(id) = sink.0 {
                        slots.insert(id, slot);
                    }
                    cmds.push(Cmd {
                        kind: Kind::New,
                        slot,
                        price: map_price(instrument_id as usize, price),
                        quantity: quantity * targets[target].lot_size,
                    });
                }
                CommandKind::Cancel { order_id, .. } => {
                    let slot = *slots
                        .get(&order_id)
                        .expect("a cancel of an order the stream created");
                    cmds.push(Cmd {
                        kind: Kind::Cancel,
                        slot,
                        price: 0,
                        quantity: 0,
                    });
                }
                CommandKind::Replace {
                    order_id,
                    new_price,
                    new_quantity,
                    ..
                } => {
                    let slot = *slots
                        .get(&order_id)
                        .expect("a move of an order the stream created");
                    let info = orders[slot as usize];
                    let t = &targets[usize::from(info.instrument)];
                    cmds.push(Cmd {
                        kind: Kind::Replace,
                        slot,
                        price: map_price(workload_instrument[slot as usize], new_price),
                        quantity: new_quantity * t.lot_size,
                    });
                }
                _ => continue,
            }
            if phase == 0 {
                fill_cmds = cmds.len();
            }
        }
    }
    Plan {
        instruments: targets.to_vec(),
        sessions,
        orders,
        cmds,
        fill_cmds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cancel_and_move_targets_an_earlier_new_order() {
        let cfg = WorkloadConfig {
            seed: 7,
            instruments: 2,
            accounts: 4,
            resting_per_instrument: 50,
            commands: 2_000,
            zipf_s: 1.0,
        };
        let w = workload::generate(&cfg);
        let plan = build(&cfg, &w.preamble, &w.commands, &native_instruments(&cfg), 3);
        assert_eq!(plan.fill_cmds, 100);
        let mut seen = vec![false; plan.orders.len()];
        for c in &plan.cmds {
            match c.kind {
                Kind::New => seen[c.slot as usize] = true,
                _ => assert!(seen[c.slot as usize], "{c:?}"),
            }
            assert!(c.kind == Kind::Cancel || c.quantity > 0);
        }
        assert!(plan.orders.iter().all(|o| usize::from(o.session) < 3));
    }
}
