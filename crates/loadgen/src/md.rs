//! The market-data side of a run: a thread with the consumer library joined to the target's
//! multicast channels, noting when each engine order id is first named (order added, traded,
//! executed, deleted) and, from the consumer's own book-keeping, the trades per instrument.
//!
//! The thread polls its sockets and sleeps 50 µs when nothing arrived (a busy poll would take a
//! whole core from the two the appliance and the load generator share), so market-data latency
//! carries up to about 50 µs plus the timer slack of that sleep.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use md_consumer::{Consumer, ConsumerConfig};
use md_core::packet::PacketMessages;
use md_core::{FeedGroups, MdMsg};

/// How long the listener waits, once the run stops, for a consumer whose trade count stopped
/// moving, and in all.
const STALL_MAX: Duration = Duration::from_secs(5);
const CATCH_UP_MAX: Duration = Duration::from_secs(60);

pub struct Listener {
    stop: Arc<AtomicBool>,
    want: Arc<std::sync::Mutex<Option<Vec<u64>>>>,
    thread: std::thread::JoinHandle<Seen>,
}

/// Order ids are the engine's (not a hostile sender's): hashed with foldhash, not SipHash, as
/// this thread looks one up for every market-data message and shares the cores it measures.
pub type Ids = HashMap<u64, u64, foldhash::fast::RandomState>;

pub struct Seen {
    /// Engine order id → first time (ns since the run's origin) a message named it.
    pub first_seen: Ids,
    /// Trades per instrument, as the consumer applied them.
    pub trades: Vec<u64>,
    /// The consumer's counters (gaps, retransmissions, snapshot recoveries): what explains a
    /// trade count short of the fills.
    pub stats: md_consumer::ClientStats,
}

impl Listener {
    pub fn start(
        group: Ipv4Addr,
        port: u16,
        retransmit: &[std::net::SocketAddr],
        origin: Instant,
        instruments: usize,
    ) -> anyhow::Result<Listener> {
        let mut cfg = ConsumerConfig::new(FeedGroups::on_group(group, port));
        cfg.from_session_start = true;
        cfg.retransmit_server = retransmit.first().copied();
        cfg.retransmit_alternates = retransmit.iter().skip(1).copied().collect();
        let mut consumer = Consumer::open(cfg)?;
        let stop = Arc::new(AtomicBool::new(false));
        let want = Arc::new(std::sync::Mutex::new(None::<Vec<u64>>));
        let (s, w) = (stop.clone(), want.clone());
        let thread = std::thread::Builder::new()
            .name("loadgen-md".into())
            .spawn(move || {
                let mut first_seen =
                    Ids::with_capacity_and_hasher(1 << 20, foldhash::fast::RandomState::default());
                let trades = |c: &Consumer| -> Vec<u64> {
                    (0..instruments)
                        .map(|i| c.client().instrument(i as u32).map_or(0, |v| v.trades))
                        .collect()
                };
                let mut stop_at: Option<Instant> = None;
                // Once the run stops: the last time the consumer's trade count moved.
                let mut progress: Option<(Instant, Vec<u64>)> = None;
                loop {
                    let n = consumer.poll_with(|_, bytes| {
                        let now = origin.elapsed().as_nanos() as u64;
                        let Ok((_, msgs)) = PacketMessages::new(bytes) else {
                            return;
                        };
                        for m in msgs.flatten() {
                            let ids: [Option<u64>; 2] = match MdMsg::decode(m) {
                                Ok(MdMsg::OrderAdded { order_id, .. })
                                | Ok(MdMsg::OrderDeleted { order_id, .. })
                                | Ok(MdMsg::OrderExecuted { order_id, .. })
                                | Ok(MdMsg::OrderModified { order_id, .. }) => {
                                    [Some(order_id), None]
                                }
                                Ok(MdMsg::Trade {
                                    maker_order_id,
                                    taker_order_id,
                                    ..
                                }) => [Some(taker_order_id), Some(maker_order_id)],
                                _ => [None, None],
                            };
                            for id in ids.into_iter().flatten() {
                                first_seen.entry(id).or_insert(now);
                            }
                        }
                    });
                    if s.load(Ordering::Acquire) {
                        // Wait until the consumer has applied the trades expected: as long as
                        // it keeps applying some (a listener that fell behind at saturation,
                        // sharing the cores, catches up after the load stops), at most
                        // STALL_MAX without progress and CATCH_UP_MAX in all.
                        let now_trades = trades(&consumer);
                        let (since, last) =
                            progress.get_or_insert_with(|| (Instant::now(), now_trades.clone()));
                        if *last != now_trades {
                            *since = Instant::now();
                            *last = now_trades.clone();
                        }
                        let done = match w.lock().expect("want lock").as_ref() {
                            Some(want) => now_trades == *want,
                            None => true,
                        };
                        let stopped_at = *stop_at.get_or_insert_with(Instant::now);
                        if done
                            || since.elapsed() > STALL_MAX
                            || stopped_at.elapsed() > CATCH_UP_MAX
                        {
                            return Seen {
                                first_seen,
                                trades: now_trades,
                                stats: consumer.client().stats(),
                            };
                        }
                    }
                    if n == 0 {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
            })?;
        Ok(Listener { stop, want, thread })
    }

    /// Stops listening, after the consumer caught up with `want` trades per instrument (or
    /// stopped making progress: see `STALL_MAX`).
    pub fn finish(self, want: Option<&[u64]>) -> Seen {
        *self.want.lock().expect("want lock") = want.map(<[u64]>::to_vec);
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("market-data thread")
    }
}
