//! The query replica: a second copy of the matching engine, fed by the same inbound journal.
//!
//! The engine is deterministic, so a replica that applies the same inbound events holds the
//! same books, orders and balances as the matching core and produces the same outputs. The HTTP
//! API reads balances, books and live orders here, and learns the outcome of the orders it
//! entered from the replica's outputs, without ever touching the matching thread.

use crate::metrics::Metrics;
use journal::{IdleStrategy, Journal};
use matching::{Engine, Event, Output};
use matching_agent::inbound::{self, Inbound};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::oneshot;

/// The session id of orders entered over HTTP.
pub const HTTP_SESSION: u32 = 0;

/// What the engine did with one HTTP request (all outputs of its inbound event).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub inbound_seq: u64,
    pub timestamp_ns: u64,
    pub events: Vec<Event>,
}

/// Requests waiting for their outcome, by client order id.
#[derive(Default)]
pub struct Pending {
    waiting: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
}

impl Pending {
    pub fn register(&self, client_order_id: u64) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .expect("pending lock")
            .insert(client_order_id, tx);
        rx
    }

    pub fn forget(&self, client_order_id: u64) {
        self.waiting
            .lock()
            .expect("pending lock")
            .remove(&client_order_id);
    }

    fn resolve(&self, client_order_id: u64, outcome: Outcome) {
        if let Some(tx) = self
            .waiting
            .lock()
            .expect("pending lock")
            .remove(&client_order_id)
        {
            let _ = tx.send(outcome);
        }
    }
}

pub struct Replica {
    pub engine: Engine,
    pub processed_seq: u64,
}

/// Follows the inbound journal until `stop`, applying every event to the replica.
pub fn run(
    inbound: Journal,
    replica: Arc<RwLock<Replica>>,
    pending: Arc<Pending>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    mut idle: IdleStrategy,
) -> anyhow::Result<()> {
    let from = replica.read().expect("replica lock").processed_seq + 1;
    let mut reader = inbound.reader(from)?;
    let mut outputs: Vec<Output> = Vec::with_capacity(1024);
    loop {
        let mut n = 0;
        let processed = {
            let mut guard = replica.write().expect("replica lock");
            while n < 256 {
                let Some(f) = reader.poll()? else { break };
                let decoded = inbound::decode(f.sequence, f.timestamp_ns, f.template_id, f.payload);
                guard.processed_seq = f.sequence;
                n += 1;
                if let Ok(Inbound::Command(cmd, _)) = decoded {
                    outputs.clear();
                    guard.engine.process(&cmd, &mut outputs);
                    route(&cmd, &outputs, &pending);
                }
            }
            guard.processed_seq
        };
        metrics.replica_seq.store(processed, Ordering::Relaxed);
        if n == 0 && stop.load(Ordering::Acquire) {
            return Ok(());
        }
        idle.idle(n);
    }
}

/// Replays into the replica what the inbound journal holds now, on the calling thread: at
/// start-up, before the HTTP API serves, so that its queries answer from the recovered state
/// rather than from a replica still catching up on its own thread (a book read right after a
/// restart showed the state of the last checkpoint). Returns the sequence reached.
pub fn catch_up(inbound: &Journal, replica: &RwLock<Replica>) -> anyhow::Result<u64> {
    let mut guard = replica.write().expect("replica lock");
    let mut reader = inbound.reader(guard.processed_seq + 1)?;
    let mut outputs: Vec<Output> = Vec::with_capacity(1024);
    while let Some(f) = reader.poll()? {
        let decoded = inbound::decode(f.sequence, f.timestamp_ns, f.template_id, f.payload);
        guard.processed_seq = f.sequence;
        if let Ok(Inbound::Command(cmd, _)) = decoded {
            // No HTTP request waits for these yet: nothing to route.
            outputs.clear();
            guard.engine.process(&cmd, &mut outputs);
        }
    }
    Ok(guard.processed_seq)
}

/// Hands the outputs of an HTTP session's command to the request waiting for them.
fn route(cmd: &matching::Command, outputs: &[Output], pending: &Pending) {
    use matching::CommandKind;
    let key = match cmd.kind {
        CommandKind::NewOrder {
            session_id: HTTP_SESSION,
            client_order_id,
            ..
        }
        | CommandKind::Cancel {
            session_id: HTTP_SESSION,
            client_order_id,
            ..
        } => client_order_id,
        _ => return,
    };
    pending.resolve(
        key,
        Outcome {
            inbound_seq: cmd.sequence,
            timestamp_ns: cmd.timestamp_ns,
            events: outputs.iter().map(|o| o.event).collect(),
        },
    );
}
