//! State shared by the connection tasks and the router thread.

use crate::config::{GatewayConfig, SessionEntry};
use crate::orders::{Instruments, SessionOrders};
use fix_session::{FileStore, Session};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// How long a connection task waits for the pipeline's own thread to end its turn before it
/// takes one itself (`Shared::assist_pipeline`).
const ASSIST_WAIT_MAX: std::time::Duration = std::time::Duration::from_micros(50);

/// The connection attached to a session.
pub(crate) struct Conn {
    pub id: u64,
    /// Bytes waiting to be written.
    pub out: Vec<u8>,
    /// Set when the connection must close once `out` is written.
    pub close: Option<&'static str>,
    /// Plain TCP connections: a second handle on the socket (non-blocking, like tokio's), so
    /// the router thread writes reports itself instead of waking the connection's task for
    /// each (one thread hand-off fewer on the way back to the client). `None` for TLS, whose
    /// record layer belongs to the task.
    pub direct: Option<std::net::TcpStream>,
    /// The task has taken bytes out of `out` and is writing them: nobody else writes to the
    /// socket until it is done, or the bytes would leave out of order.
    pub writing: bool,
}

impl Conn {
    /// Writes what `out` holds straight to the socket when that is allowed (a direct handle,
    /// the task not writing, no close pending), without blocking; keeps what the socket does
    /// not take. True when the connection's task must still be woken (bytes left, a close).
    pub fn write_direct(&mut self, aborted: bool) -> bool {
        use std::io::Write as _;
        if aborted || self.writing || self.close.is_some() {
            return true;
        }
        let Some(socket) = self.direct.as_mut() else {
            return true;
        };
        let mut written = 0;
        while written < self.out.len() {
            match socket.write(&self.out[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Would block, or an error the task will meet on its own write or read.
                Err(_) => break,
            }
        }
        self.out.drain(..written);
        !self.out.is_empty()
    }
}

pub(crate) struct SlotInner {
    pub session: Session<FileStore>,
    pub orders: SessionOrders,
    pub conn: Option<Conn>,
    pub scratch: Vec<u8>,
    pub logged_on: bool,
    /// In the router's list of connections to write at the end of its batch.
    pub flush_pending: bool,
    /// Replicated sessions only: reservation, checkpoints, takeover redelivery.
    pub ha: Option<crate::replicated::SlotReplication>,
}

/// One configured session.
pub(crate) struct Slot {
    pub entry: SessionEntry,
    inner: Mutex<SlotInner>,
    pub notify: tokio::sync::Notify,
    pub limiter: DefaultDirectRateLimiter,
}

impl Slot {
    pub fn new(entry: SessionEntry, inner: SlotInner) -> Slot {
        let per_second = NonZeroU32::new(entry.rate_limit.per_second.max(1)).expect("non-zero");
        let burst = NonZeroU32::new(entry.rate_limit.burst.max(1)).expect("non-zero");
        Slot {
            limiter: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
            entry,
            inner: Mutex::new(inner),
            notify: tokio::sync::Notify::new(),
        }
    }

    /// Closes the router's direct handle on connection `conn_id`'s socket, so that when the
    /// connection's task ends (however: detach, abort, a runtime shutting down) the socket
    /// closes with it. Never panics (it runs in a destructor).
    pub fn drop_direct(&self, conn_id: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            if let Some(c) = inner.conn.as_mut().filter(|c| c.id == conn_id) {
                c.direct = None;
            }
        }
    }

    /// The session's state. A poisoned lock (a panic while holding it) is a broken invariant.
    pub fn lock(&self) -> MutexGuard<'_, SlotInner> {
        self.inner.lock().expect("session lock poisoned")
    }
}

/// Counters for the admin side.
#[derive(Default)]
pub struct GatewayStats {
    pub connections_accepted: AtomicU64,
    pub connections_refused: AtomicU64,
    pub logons: AtomicU64,
    pub garbled: AtomicU64,
    pub rate_limited: AtomicU64,
    pub slow_consumers: AtomicU64,
    /// Direct report writes (the router's, plain TCP) the socket did not take whole: the rest
    /// was left to the connection's task. A client reading slowly shows up here first.
    pub socket_backlogs: AtomicU64,
    /// Router batches run by a connection's I/O thread right after it read orders (a pipeline
    /// assist, see `GatewayConfig::pipeline_assist`) that routed at least one result: reports
    /// that left without a thread hand-off.
    pub assisted_batches: AtomicU64,
    pub tls_handshake_failures: AtomicU64,
    pub publish_back_pressure: AtomicU64,
    pub router_errors: AtomicU64,
    /// 1 once the router thread has stopped other than by a shutdown (a panic while routing,
    /// which also poisons the router's state for the I/O threads' assists): no
    /// ExecutionReports go out any more. Health checks report the appliance failed.
    pub router_stopped: AtomicU64,
    /// PossDupFlag=Y orders, cancels and replaces whose ClOrdID was already known (journaled):
    /// ignored, not journaled again.
    pub poss_dup_ignored: AtomicU64,
    /// Replicated sessions: checkpoints published, reports sent again after a takeover,
    /// takeovers whose redelivery lacked reports older than `redelivery_reports_max`, and
    /// sessions logged out because their MsgSeqNum reservation ran out.
    pub checkpoints_published: AtomicU64,
    pub reports_redelivered: AtomicU64,
    pub redelivery_truncated: AtomicU64,
    pub seq_reservation_exhausted: AtomicU64,
}

#[derive(Default, Clone, Copy)]
struct IpCount {
    connections: usize,
    unauthenticated: usize,
}

pub(crate) struct Shared {
    pub config: GatewayConfig,
    pub instruments: Instruments,
    pub slots: Vec<Slot>,
    by_session_id: HashMap<u32, usize>,
    ips: Mutex<HashMap<IpAddr, IpCount>>,
    unauthenticated: AtomicUsize,
    pub next_conn_id: AtomicU64,
    pub stop: AtomicBool,
    /// `Gateway::abort`: connections drop without writing anything more.
    pub aborted: AtomicBool,
    pub stats: GatewayStats,
    pub publisher: journal::Publisher,
    cursor: std::fs::File,
    /// Every outbound result up to this sequence was handled by the router (sent or stored).
    pub routed_seq: AtomicU64,
    /// Replicated sessions: the last inbound sequence at start (journaled before this
    /// gateway); live results of events up to it carry PossResend=Y. 0 when not replicated.
    pub takeover_inbound_seq: AtomicU64,
    /// The router's state, set once at start (see [`crate::router::RouterCore`]).
    pub router: OnceLock<Mutex<crate::router::RouterCore>>,
    /// The outbound journal's doorbell (market data and other readers; the router thread's
    /// without a pipeline assist).
    pub outbound_bell: Arc<journal::Doorbell>,
    /// With a pipeline assist, the router thread parks on this bell instead: rung when results
    /// are left for it (by a connection task, or by the pipeline's own threads after their
    /// turns, see `PipelineAssist::set_router_bell`), not by every commit.
    pub router_bell: Arc<journal::Doorbell>,
}

impl Shared {
    pub fn new(
        config: GatewayConfig,
        slots: Vec<Slot>,
        publisher: journal::Publisher,
        cursor: std::fs::File,
        outbound_bell: Arc<journal::Doorbell>,
    ) -> Shared {
        let by_session_id = slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.entry.session_id, i))
            .collect();
        Shared {
            instruments: Instruments::new(config.instruments.clone()),
            config,
            slots,
            by_session_id,
            ips: Mutex::new(HashMap::new()),
            unauthenticated: AtomicUsize::new(0),
            next_conn_id: AtomicU64::new(1),
            stop: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            stats: GatewayStats::default(),
            publisher,
            cursor,
            routed_seq: AtomicU64::new(0),
            takeover_inbound_seq: AtomicU64::new(0),
            router: OnceLock::new(),
            outbound_bell,
            router_bell: Arc::new(journal::Doorbell::new()),
        }
    }

    /// Called by a connection task after it handled messages: with a pipeline assist
    /// configured, runs the sequencer and matching stages and then the router on this thread,
    /// so the results of what was just published are routed, and written to direct
    /// connections, before this task reads again. The router's turn is taken only if its
    /// thread is not in one (never waited for), and first, so that thread cannot take these
    /// results away while the engine produces them (it would be woken for it, a thread
    /// hand-off); a turn of the stages' own thread in progress is waited out, spinning, for
    /// at most `ASSIST_WAIT_MAX`.
    pub fn assist_pipeline(&self) {
        let Some(assist) = self.config.pipeline_assist.as_ref() else {
            return;
        };
        if self.aborted.load(Ordering::Acquire) || self.stop.load(Ordering::Relaxed) {
            // What was published is the pipeline threads' (which the quiet publications did
            // not wake).
            self.publisher.doorbell().ring();
            return;
        }
        let router = self.router.get().and_then(|m| m.try_lock().ok());
        // The stages' own thread may be in a turn with these very events (it polls while it
        // backs off): its turns are short, so wait it out, then route what it produced here
        // (holding the router's turn, which its thread cannot take meanwhile).
        // The clock is read only once the stages are found busy.
        let mut deadline = None;
        let worked = loop {
            let Some(n) = assist.assist() else {
                let now = std::time::Instant::now();
                if now < *deadline.get_or_insert(now + ASSIST_WAIT_MAX) {
                    std::hint::spin_loop();
                    continue;
                }
                // Still busy: its thread goes on with what was published.
                self.publisher.doorbell().ring();
                break false;
            };
            break n > 0;
        };
        let left = match router {
            Some(mut core) => {
                let n = core.step(self);
                if n > 0 {
                    self.stats.assisted_batches.fetch_add(1, Ordering::Relaxed);
                }
                n >= self.config.router_batch_max
            }
            // The router thread is in a turn: it must look once more after it.
            None => worked,
        };
        // The results' other readers (market data) are woken now that the reports are on
        // their way, not before; the router thread only when results may be left for it.
        if worked {
            self.outbound_bell.ring();
        }
        if left {
            self.router_bell.ring();
        }
    }

    pub fn slot(&self, session_id: u32) -> Option<&Slot> {
        self.by_session_id.get(&session_id).map(|&i| &self.slots[i])
    }

    /// Index in `slots` of a configured session.
    pub fn slot_index(&self, session_id: u32) -> Option<usize> {
        self.by_session_id.get(&session_id).copied()
    }

    /// The session a Logon names: its SenderCompID is our TargetCompID and vice versa.
    pub fn slot_for_logon(&self, sender: &[u8], target: &[u8]) -> Option<&Slot> {
        self.slots.iter().find(|s| {
            s.entry.fix.target_comp_id.as_bytes() == sender
                && s.entry.fix.sender_comp_id.as_bytes() == target
        })
    }

    pub fn save_cursor(&self, seq: u64) {
        if self.cursor.write_all_at(&seq.to_le_bytes(), 0).is_err() {
            self.stats.router_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Admits a new connection from `ip`, or refuses it (per-IP and global caps).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpGuard> {
        let mut ips = self.ips.lock().expect("ip table poisoned");
        let c = ips.entry(ip).or_default();
        let total = self.unauthenticated.load(Ordering::Relaxed);
        if c.connections >= self.config.connections_per_ip_max
            || c.unauthenticated >= self.config.unauthenticated_per_ip_max
            || total >= self.config.unauthenticated_max
        {
            self.stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        c.connections += 1;
        c.unauthenticated += 1;
        self.unauthenticated.fetch_add(1, Ordering::Relaxed);
        self.stats
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        Some(IpGuard {
            shared: Arc::clone(self),
            ip,
            authenticated: false,
        })
    }
}

/// Holds a connection's place in the per-IP counts; released on drop.
pub(crate) struct IpGuard {
    shared: Arc<Shared>,
    ip: IpAddr,
    authenticated: bool,
}

impl IpGuard {
    /// The connection logged on: it no longer counts as unauthenticated.
    pub fn authenticated(&mut self) {
        if !self.authenticated {
            self.authenticated = true;
            let mut ips = self.shared.ips.lock().expect("ip table poisoned");
            if let Some(c) = ips.get_mut(&self.ip) {
                c.unauthenticated -= 1;
            }
            self.shared.unauthenticated.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        self.authenticated();
        let mut ips = self.shared.ips.lock().expect("ip table poisoned");
        if let Some(c) = ips.get_mut(&self.ip) {
            c.connections -= 1;
            if c.connections == 0 {
                ips.remove(&self.ip);
            }
        }
    }
}
