//! `serve --demo`: simulated clients trading at a gentle rate, and a live terminal view.
//!
//! The simulated clients enter orders exactly as a gateway session does: SBE events into the
//! sequencer's hand-off, under their own session ids, for the demo accounts of the
//! configuration. They quote around each instrument's last price, cross the spread now and
//! then, and cancel their resting orders periodically (a session mass cancel), so the book stays
//! alive and bounded. The view follows the outbound journal for trades and reads the replica for
//! the books.

use crate::config::Config;
use crate::replica::Replica;
use journal::{Journal, Publisher};
use matching::{
    CommandKind, MassCancelReason, MassCancelScope, OrderType, Side, StpMode, TimeInForce,
};
use sbe_order_entry as sbe;
use sbe_order_entry::{message_header_codec::ENCODED_LENGTH as HDR, ReadBuf};
use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Session ids of the simulated clients (gateway sessions use small numbers, HTTP uses 0).
pub const DEMO_SESSION_BASE: u32 = 60_000;

/// Runs the simulated clients until `stop`: about `rate` orders per second in total.
pub fn clients(
    config: Config,
    publisher: Publisher,
    replica: Arc<RwLock<Replica>>,
    rate: u32,
    stop: Arc<AtomicBool>,
) {
    let accounts: Vec<u32> = config.accounts.iter().map(|a| a.id).collect();
    if accounts.is_empty() {
        return;
    }
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut next = Instant::now();
    let mut client_order_id: u64 = 1;
    let mut buf = [0_u8; matching_agent::inbound::ENCODED_LEN_MAX];
    let mut sent: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += interval;
        let r = rnd();
        let slot = (r % accounts.len() as u64) as usize;
        let session_id = DEMO_SESSION_BASE + slot as u32;
        let account_id = accounts[slot];
        let kind = if sent % 500 == 499 {
            CommandKind::MassCancel {
                scope: MassCancelScope::Session(session_id),
                reason: MassCancelReason::User,
            }
        } else {
            let ins = &config.instruments[((r >> 8) % config.instruments.len() as u64) as usize];
            let reference = {
                let rep = replica.read().expect("replica lock");
                let p = rep.engine.reference_price(ins.id);
                if p > 0 {
                    p
                } else {
                    ins.reference_price
                }
            };
            let side = if (r >> 16) % 2 == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            // Passive quotes a few ticks away; one order in five crosses.
            let ticks = ((r >> 20) % 8) as i64 + 1;
            let crossing = (r >> 28) % 5 == 0;
            let away = if crossing { -(ticks / 2) } else { ticks };
            let price = match side {
                Side::Buy => reference - away * ins.tick_size,
                Side::Sell => reference + away * ins.tick_size,
            }
            .max(ins.tick_size);
            let lots = 1 + (r >> 32) % 10;
            CommandKind::NewOrder {
                session_id,
                account_id,
                client_order_id,
                instrument_id: ins.id,
                side,
                order_type: OrderType::Limit,
                price,
                quantity: lots * ins.lot_size,
                time_in_force: if crossing {
                    TimeInForce::Ioc
                } else {
                    TimeInForce::Day
                },
                stp_mode: StpMode::CancelIncoming,
            }
        };
        client_order_id += 1;
        sent += 1;
        if let Ok((t, len)) = matching_agent::inbound::encode(&kind, 0, &mut buf) {
            // A full hand-off means the sequencer is behind: skip, as a throttled client would.
            let _ = publisher.try_publish(t, &buf[..len]);
        }
    }
}

/// Prints the live view every second until `stop`.
pub fn view(
    config: Config,
    inbound: Journal,
    outbound: Journal,
    replica: Arc<RwLock<Replica>>,
    stop: Arc<AtomicBool>,
) {
    let tty = std::io::stdout().is_terminal();
    let mut reader = match outbound.reader(outbound.committed_seq() + 1) {
        Ok(r) => r,
        Err(_) => return,
    };
    let mut trades: VecDeque<String> = VecDeque::new();
    let mut trade_count = 0_u64;
    let mut last_seq = inbound.committed_seq();
    let mut last_tick = Instant::now();
    let scale = config.instruments.first().map_or(1, |i| i.price_scale);
    let fmt = |p: i64| crate::http::format_units(p.into(), scale);
    while !stop.load(Ordering::Acquire) {
        while let Ok(Some(f)) = reader.poll() {
            if f.template_id == sbe::trade_event_codec::SBE_TEMPLATE_ID {
                let Ok(h) = sbe::MessageHeaderDecoder::default().wrap(ReadBuf::new(f.payload), 0)
                else {
                    continue;
                };
                let Ok(d) = sbe::trade_event_codec::TradeEventDecoder::default().header(h, HDR)
                else {
                    continue;
                };
                let sym = config
                    .instruments
                    .iter()
                    .find(|i| i.id == d.instrument_id())
                    .map_or("?", |i| i.symbol.as_str());
                trade_count += 1;
                trades.push_front(format!(
                    "{sym:<8} {:>6} @ {:>10}  ({} aggressor)",
                    d.quantity(),
                    fmt(d.price()),
                    d.aggressor_side()
                ));
                trades.truncate(6);
            }
        }
        if last_tick.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let seq = inbound.committed_seq();
        let rate = (seq - last_seq) as f64 / last_tick.elapsed().as_secs_f64();
        last_seq = seq;
        last_tick = Instant::now();
        let mut out = String::new();
        if tty {
            out.push_str("\x1b[2J\x1b[H");
        }
        out.push_str(&format!("exchange appliance demo | {rate:>7.0} orders/s | {trade_count} trades | inbound seq {seq}\n\n"));
        out.push_str(&format!(
            "{:<8} {:>18} {:>18} {:>12}\n",
            "symbol", "bid", "ask", "last"
        ));
        {
            let rep = replica.read().expect("replica lock");
            for ins in &config.instruments {
                let q = |s| {
                    rep.engine
                        .best(ins.id, s)
                        .map_or("-".to_string(), |(p, q)| format!("{q} x {}", fmt(p)))
                };
                out.push_str(&format!(
                    "{:<8} {:>18} {:>18} {:>12}\n",
                    ins.symbol,
                    q(Side::Buy),
                    q(Side::Sell),
                    fmt(rep.engine.reference_price(ins.id))
                ));
            }
        }
        out.push_str("\nlast trades\n");
        for t in &trades {
            out.push_str(&format!("  {t}\n"));
        }
        let mut so = std::io::stdout().lock();
        let _ = so.write_all(out.as_bytes());
        let _ = so.flush();
    }
}
