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
}

impl Listener {
    pub fn start(
        group: Ipv4Addr,
        port: u16,
        origin: Instant,
        instruments: usize,
    ) -> anyhow::Result<Listener> {
        let mut cfg = ConsumerConfig::new(FeedGroups::on_group(group, port));
        cfg.from_session_start = true;
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
                        let at = *stop_at.get_or_insert_with(Instant::now);
                        // Wait (bounded) until the consumer has applied the trades expected.
                        let done = match w.lock().expect("want lock").as_ref() {
                            Some(want) => trades(&consumer) == *want,
                            None => true,
                        };
                        if done || at.elapsed() > Duration::from_secs(5) {
                            return Seen {
                                first_seen,
                                trades: trades(&consumer),
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

    /// Stops listening, after the consumer caught up with `want` trades per instrument (or 5 s).
    pub fn finish(self, want: Option<&[u64]>) -> Seen {
        *self.want.lock().expect("want lock") = want.map(<[u64]>::to_vec);
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("market-data thread")
    }
}
