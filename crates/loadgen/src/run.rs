//! One load run against one FIX acceptor: N sessions, an open-loop sender, a receiver thread per
//! session that checks every report, and optionally a market-data listener.
//!
//! Latency is measured from each request's *planned* send time (`t0 + k / rate`), not from
//! when the sender got round to it, so a stall delays the clock of every request queued behind
//! it (no coordinated omission). The sender sends everything that is due in one write per
//! session; it sleeps through a gap to the next request but its last 40 µs (timer slack 1 µs)
//! and yields through those, so at moderate rates it leaves the CPU to the target (a sender
//! that yield-spun through every gap held one of the machine's two vCPUs at 10,000/s). A late
//! wake-up only delays sends, which the planned-time clock charges to the target: the
//! measurement stays conservative, the same for every target.
//!
//! Phases: the fill phase (the stream's book-building orders, not measured), the measured
//! stream, then every order still open is cancelled, so each order must end in exactly one
//! terminal state. A cancel or move of an order that is not open and idle at its planned time
//! (its NewOrderSingle or an earlier request still unanswered, or already filled) is skipped and
//! counted: the FIX protocol names orders by ClOrdID, and a request against a ClOrdID that has
//! not been confirmed yet is a protocol error, not load.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use fix_codec::{Frame, Writer};
use hdrhistogram::Histogram;

use crate::fixmsg::{self, Inbound};
use crate::plan::{Cmd, Kind, Plan};
use crate::transport::Transport;

const UNSENT: u8 = 0;
const PENDING: u8 = 1;
const OPEN: u8 = 2;
const BUSY: u8 = 3;
const CLOSED: u8 = 4;

/// Violations kept as text; the rest are only counted.
const VIOLATIONS_KEPT_MAX: usize = 20;
const READ_BUFFER_BYTES: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct RunConfig {
    pub addr: SocketAddr,
    /// SenderCompID of each session.
    pub comp_ids: Vec<String>,
    /// Offered rate of the measured phase, requests per second; 0 = as fast as the window allows.
    pub rate: f64,
    /// Rate of the (unmeasured) fill phase.
    pub fill_rate: f64,
    /// Requests in flight at most when `rate` is 0.
    pub window: usize,
    /// Measured-phase requests sent before recording starts.
    pub warmup_cmds: usize,
    /// Multicast group and first port of the target's market data, if it publishes any.
    pub market_data: Option<(Ipv4Addr, u16)>,
    /// The target's market-data retransmission servers (unicast), first the one to ask: the
    /// listener recovers the packets it missed from them, as a real consumer would (trades are
    /// only on the incremental feed, so a gap closed by a snapshot loses them).
    pub market_data_retransmit: Vec<std::net::SocketAddr>,
    /// The target matches orders (fills are checked: both sides, market-data trade counts).
    pub matching: bool,
    /// How long to wait for answers after the last request.
    pub drain_timeout: Duration,
    /// TLS client configuration, or plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Waits a while for a request due in `ahead_ns`: sleeps through all but the last 40 µs of the
/// gap, yields through those (the caller loops until the request is due).
pub(crate) fn pace(ahead_ns: u64) {
    if ahead_ns > 60_000 {
        std::thread::sleep(Duration::from_nanos(ahead_ns - 40_000));
    } else {
        std::thread::yield_now();
    }
}

/// Makes the calling thread's sleeps precise to about a microsecond (Linux timer slack; the
/// default of 50 µs would make every paced send late).
pub(crate) fn precise_sleeps() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer and touches only the calling thread.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong, 0, 0, 0);
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug)]
pub struct Outcome {
    pub sent: u64,
    pub answered: u64,
    pub skipped: u64,
    pub measured: u64,
    pub measured_secs: f64,
    /// Requests answered per second over the measured phase.
    pub throughput: f64,
    /// Request → first answer (all of D, F, G), nanoseconds.
    pub latency: Histogram<u64>,
    /// NewOrderSingle → first ExecutionReport, nanoseconds.
    pub latency_new: Histogram<u64>,
    /// NewOrderSingle (planned send) → first market-data message naming the order, nanoseconds.
    pub latency_md: Histogram<u64>,
    pub rejects: u64,
    pub cancel_rejects: u64,
    pub errors: u64,
    pub fills: u64,
    pub md_trades: u64,
    pub violations: u64,
    pub violation_texts: Vec<String>,
    pub request_bytes: usize,
    pub report_bytes: usize,
}

/// Rounds of the final cancel-all phase (the first, and retries of refused cancels).
const CANCEL_ROUNDS: usize = 4;
/// Pause before retry round `r`: `r` times this.
const CANCEL_RETRY_PAUSE: Duration = Duration::from_millis(100);

struct Shared {
    plan: Arc<Plan>,
    /// Index of the first cancel of the final cancel-all phase: the cancel of order `slot` in
    /// round `r` is `base + r * orders + slot`.
    base: usize,
    origin: Instant,
    origin_unix_ns: u64,
    planned_ns: Vec<AtomicU64>,
    answered: Vec<AtomicBool>,
    state: Vec<AtomicU8>,
    /// Per session: our MsgSeqNum → the request index it carried (`u32::MAX`: none), so a
    /// BusinessMessageReject (which names only RefSeqNum) finds its request.
    seq_to_cmd: Vec<Vec<AtomicU32>>,
    /// Command index that gave each order its current ClOrdID.
    current_cl: Vec<AtomicU64>,
    measure_from: AtomicUsize,
    measure_to: AtomicUsize,
    /// When the last measured request got its first answer.
    last_measured_answer_ns: AtomicU64,
    answered_count: AtomicU64,
    logged_on: AtomicUsize,
    /// Our Logout went out: the acceptor's Logout and its closing the socket are expected.
    logout_sent: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
    fn unix_ns(&self, now_ns: u64) -> u64 {
        self.origin_unix_ns + now_ns
    }
    fn note_seq(&self, session: usize, seq: u64, index: usize) {
        if let Some(a) = self.seq_to_cmd[session].get(seq as usize) {
            a.store(index as u32, Ordering::Release);
        }
    }
    fn slot_of(&self, index: usize) -> Option<usize> {
        if index < self.base {
            Some(self.plan.cmds[index].slot as usize)
        } else if index < self.base + CANCEL_ROUNDS * self.plan.orders.len() {
            Some((index - self.base) % self.plan.orders.len())
        } else {
            None
        }
    }
}

/// A session's outbound side: the socket, the next MsgSeqNum, a reused buffer.
struct Outbound {
    stream: Transport,
    seq: u64,
    writer: Writer,
    buf: Vec<u8>,
    comp_id: Vec<u8>,
}

impl Outbound {
    fn push(&mut self, msg_type: &[u8], unix_ns: u64, body: impl FnOnce(&mut Writer)) -> usize {
        let seq = self.seq;
        self.seq += 1;
        fixmsg::write_message(
            &mut self.writer,
            msg_type,
            &self.comp_id,
            seq,
            unix_ns,
            body,
            &mut self.buf,
        )
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.stream.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

#[derive(Default)]
struct Track {
    cum: u64,
    terminal: bool,
}

/// What one receiver thread saw.
struct SessionResult {
    latency: Histogram<u64>,
    latency_new: Histogram<u64>,
    /// (engine order id, command index) of acknowledged new orders.
    order_ids: Vec<(u64, u32)>,
    /// Per instrument: buy fills, sell fills, buy quantity, sell quantity, buy and sell notional.
    fills: Vec<[i128; 6]>,
    rejects: u64,
    cancel_rejects: u64,
    errors: u64,
    violations: u64,
    violation_texts: Vec<String>,
    report_bytes: usize,
}

impl SessionResult {
    fn violation(&mut self, text: String) {
        self.violations += 1;
        if self.violation_texts.len() < VIOLATIONS_KEPT_MAX {
            self.violation_texts.push(text);
        }
    }
}

fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Runs the plan against the acceptor at `cfg.addr`.
pub fn run(plan: Arc<Plan>, cfg: &RunConfig) -> anyhow::Result<Outcome> {
    assert_eq!(cfg.comp_ids.len(), plan.sessions);
    let base = plan.cmds.len();
    let total = base + CANCEL_ROUNDS * plan.orders.len();
    let shared = Arc::new(Shared {
        plan: plan.clone(),
        base,
        origin: Instant::now(),
        origin_unix_ns: unix_now_ns(),
        planned_ns: (0..total).map(|_| AtomicU64::new(0)).collect(),
        answered: (0..total).map(|_| AtomicBool::new(false)).collect(),
        state: (0..plan.orders.len())
            .map(|_| AtomicU8::new(UNSENT))
            .collect(),
        current_cl: (0..plan.orders.len()).map(|_| AtomicU64::new(0)).collect(),
        seq_to_cmd: (0..plan.sessions)
            .map(|_| {
                (0..total + 4096)
                    .map(|_| AtomicU32::new(u32::MAX))
                    .collect()
            })
            .collect(),
        measure_from: AtomicUsize::new(usize::MAX),
        measure_to: AtomicUsize::new(usize::MAX),
        last_measured_answer_ns: AtomicU64::new(0),
        answered_count: AtomicU64::new(0),
        logged_on: AtomicUsize::new(0),
        logout_sent: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });

    // Market data first, so it hears the session from the first order.
    let md = match cfg.market_data {
        Some((group, port)) => Some(crate::md::Listener::start(
            group,
            port,
            &cfg.market_data_retransmit,
            shared.origin,
            plan.instruments.len(),
        )?),
        None => None,
    };

    let mut outs = Vec::new();
    let mut receivers = Vec::new();
    for (i, comp_id) in cfg.comp_ids.iter().enumerate() {
        let stream = Transport::connect(cfg.addr, cfg.tls.as_ref())
            .with_context(|| format!("connecting session {comp_id} to {}", cfg.addr))?;
        let read = stream.clone();
        let out = Arc::new(Mutex::new(Outbound {
            stream,
            seq: 1,
            writer: Writer::new(512),
            buf: Vec::with_capacity(64 * 1024),
            comp_id: comp_id.as_bytes().to_vec(),
        }));
        {
            let mut o = out.lock().expect("outbound lock");
            let now = shared.unix_ns(shared.now_ns());
            o.push(b"A", now, |w| {
                w.field(98, b"0");
                w.field(108, b"120");
                w.field(141, b"Y");
            });
            o.flush()?;
        }
        let (s, o) = (shared.clone(), out.clone());
        receivers.push(
            std::thread::Builder::new()
                .name(format!("loadgen-rx-{i}"))
                .spawn(move || receive(&s, i, read, &o))?,
        );
        outs.push(out);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.logged_on.load(Ordering::Acquire) < outs.len() {
        if Instant::now() > deadline {
            shared.stop.store(true, Ordering::Release);
            bail!("not every session logged on within 10 s");
        }
        std::thread::sleep(Duration::from_millis(2));
    }

    let mut sender = Sender {
        shared: &shared,
        outs: &outs,
        sent: 0,
        skipped: 0,
        request_bytes: 0,
    };
    // Fill phase, then drain. A write error ends the run; the receivers say why.
    let mut write_error = sender
        .phase(0..plan.fill_cmds, cfg.fill_rate, cfg.window)
        .err();
    sender.drain(if write_error.is_some() {
        Duration::ZERO
    } else {
        cfg.drain_timeout
    });
    // Measured phase.
    let measured_start = plan.fill_cmds;
    shared.measure_from.store(
        (measured_start + cfg.warmup_cmds).min(base),
        Ordering::Release,
    );
    shared.measure_to.store(base, Ordering::Release);
    let first_measured = (measured_start + cfg.warmup_cmds).min(base);
    if write_error.is_none() {
        write_error = sender
            .phase(measured_start..base, cfg.rate, cfg.window)
            .err();
    }
    let drained = sender.drain(if write_error.is_some() {
        Duration::ZERO
    } else {
        cfg.drain_timeout
    });
    let t_first = (first_measured..base)
        .map(|i| shared.planned_ns[i].load(Ordering::Acquire))
        .find(|&t| t > 0)
        .unwrap_or(0);
    let t_last = shared.last_measured_answer_ns.load(Ordering::Acquire);
    // Cancel whatever is still open: every order must reach a terminal state. A cancel the
    // acceptor refused (a BusinessMessageReject: it shed load) leaves its order open, and is
    // sent again under a new ClOrdID after a pause, up to CANCEL_ROUNDS times.
    for round in 0..CANCEL_ROUNDS {
        let open: Vec<usize> = (0..plan.orders.len())
            .filter(|&s| shared.state[s].load(Ordering::Acquire) == OPEN)
            .collect();
        if open.is_empty() || write_error.is_some() {
            break;
        }
        if round > 0 {
            std::thread::sleep(CANCEL_RETRY_PAUSE * round as u32);
        }
        write_error = sender.cancel_all(&open, round).err();
        sender.drain(cfg.drain_timeout);
    }
    let (sent, skipped, request_bytes) = (sender.sent, sender.skipped, sender.request_bytes);

    // Logout, then stop the receivers.
    shared.logout_sent.store(true, Ordering::Release);
    for o in &outs {
        let mut o = o.lock().expect("outbound lock");
        let now = shared.unix_ns(shared.now_ns());
        o.push(b"5", now, |_| {});
        let _ = o.flush();
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while receivers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    shared.stop.store(true, Ordering::Release);
    let mut results = Vec::new();
    for r in receivers {
        results.push(
            r.join()
                .map_err(|_| anyhow::anyhow!("a receiver panicked"))?,
        );
    }

    let mut out = Outcome {
        sent,
        answered: shared.answered_count.load(Ordering::Acquire),
        skipped,
        measured: 0,
        measured_secs: 0.0,
        throughput: 0.0,
        latency: new_hist(),
        latency_new: new_hist(),
        latency_md: new_hist(),
        rejects: 0,
        cancel_rejects: 0,
        errors: 0,
        fills: 0,
        md_trades: 0,
        violations: 0,
        violation_texts: Vec::new(),
        request_bytes,
        report_bytes: 0,
    };
    let mut fills = vec![[0_i128; 6]; plan.instruments.len()];
    let mut order_ids = HashMap::new();
    for r in results {
        out.latency.add(&r.latency).expect("same histogram bounds");
        out.latency_new
            .add(&r.latency_new)
            .expect("same histogram bounds");
        out.rejects += r.rejects;
        out.cancel_rejects += r.cancel_rejects;
        out.errors += r.errors;
        out.violations += r.violations;
        out.violation_texts.extend(r.violation_texts);
        out.report_bytes = out.report_bytes.max(r.report_bytes);
        for (f, g) in fills.iter_mut().zip(&r.fills) {
            for k in 0..6 {
                f[k] += g[k];
            }
        }
        order_ids.extend(r.order_ids);
    }
    let mut violation = |text: String| {
        out.violations += 1;
        if out.violation_texts.len() < VIOLATIONS_KEPT_MAX {
            out.violation_texts.push(text);
        }
    };
    if let Some(e) = write_error {
        violation(format!("sending failed: {e:#}"));
    }
    if !drained {
        violation(format!(
            "{} of {} requests unanswered {:?} after the last one",
            sent - shared.answered_count.load(Ordering::Acquire).min(sent),
            sent,
            cfg.drain_timeout
        ));
    }
    let not_closed = (0..plan.orders.len())
        .filter(|&s| {
            let st = shared.state[s].load(Ordering::Acquire);
            st != UNSENT && st != CLOSED
        })
        .count();
    if not_closed > 0 {
        violation(format!(
            "{not_closed} orders without a terminal state after the cancel-all phase"
        ));
    }
    if cfg.matching {
        for (i, f) in fills.iter().enumerate() {
            out.fills += (f[0] + f[1]) as u64;
            if f[0] != f[1] || f[2] != f[3] || f[4] != f[5] {
                violation(format!(
                    "instrument {i}: buy fills {} qty {} notional {} vs sell fills {} qty {} notional {}",
                    f[0], f[2], f[4], f[1], f[3], f[5]
                ));
            }
        }
    }
    if let Some(md) = md {
        let want: Vec<u64> = fills.iter().map(|f| f[0] as u64).collect();
        let seen = md.finish(if cfg.matching { Some(&want) } else { None });
        out.md_trades = seen.trades.iter().sum();
        if cfg.matching && seen.trades != want {
            let st = &seen.stats;
            violation(format!(
                "market-data trades per instrument {:?}, fills (buy side) per instrument {:?} \
                 (consumer: {} gaps, {} retransmit requests, {} packets never obtained, {} \
                 instrument desyncs, {} snapshots applied)",
                seen.trades,
                want,
                st.gaps_detected,
                st.retransmit_requests,
                st.packets_skipped,
                st.instrument_desyncs,
                st.snapshots_applied
            ));
        }
        let from = shared.measure_from.load(Ordering::Acquire);
        for (order_id, at) in seen.first_seen {
            if let Some(&index) = order_ids.get(&order_id) {
                let index = index as usize;
                if index >= from && index < base {
                    let planned = shared.planned_ns[index].load(Ordering::Acquire);
                    if planned > 0 {
                        out.latency_md
                            .saturating_record(at.saturating_sub(planned).max(1));
                    }
                }
            }
        }
    }
    out.measured = out.latency.len();
    let secs = t_last.saturating_sub(t_first) as f64 / 1e9;
    out.measured_secs = secs;
    out.throughput = if secs > 0.0 {
        out.measured as f64 / secs
    } else {
        0.0
    };
    Ok(out)
}

struct Sender<'a> {
    shared: &'a Shared,
    outs: &'a [Arc<Mutex<Outbound>>],
    sent: u64,
    skipped: u64,
    request_bytes: usize,
}

impl Sender<'_> {
    /// Sends `range` open-loop at `rate` (0: as fast as `window` allows).
    fn phase(
        &mut self,
        range: std::ops::Range<usize>,
        rate: f64,
        window: usize,
    ) -> anyhow::Result<()> {
        let s = self.shared;
        precise_sleeps();
        let interval_ns = if rate > 0.0 { 1e9 / rate } else { 0.0 };
        let t0 = s.now_ns() + 1_000_000;
        let mut dirty = vec![false; self.outs.len()];
        let outs = self.outs;
        let mut guards: Vec<Option<std::sync::MutexGuard<'_, Outbound>>> =
            Vec::with_capacity(outs.len());
        let mut next = range.start;
        let mut k = 0_u64;
        while next < range.end {
            let now = s.now_ns();
            let due = |k: u64| t0 + (k as f64 * interval_ns) as u64;
            if rate > 0.0 {
                let planned = due(k);
                if planned > now {
                    pace(planned - now);
                    continue;
                }
            } else {
                let in_flight = self
                    .sent
                    .saturating_sub(s.answered_count.load(Ordering::Acquire));
                if in_flight as usize >= window {
                    std::thread::yield_now();
                    continue;
                }
            }
            // Everything due now goes out in one write per session.
            guards.clear();
            guards.extend(outs.iter().map(|_| None));
            let unix = s.unix_ns(now);
            let mut batch = 0;
            while next < range.end && batch < 4096 {
                let planned = if rate > 0.0 { due(k) } else { now };
                if planned > now {
                    break;
                }
                if rate == 0.0
                    && self.sent as usize
                        >= window + s.answered_count.load(Ordering::Acquire) as usize
                {
                    break;
                }
                let cmd = s.plan.cmds[next];
                let info = s.plan.orders[cmd.slot as usize];
                let session = usize::from(info.session);
                let slot = cmd.slot as usize;
                let go = match cmd.kind {
                    Kind::New => {
                        s.state[slot].store(PENDING, Ordering::Release);
                        s.current_cl[slot].store(next as u64, Ordering::Release);
                        true
                    }
                    Kind::Cancel | Kind::Replace => s.state[slot]
                        .compare_exchange(OPEN, BUSY, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok(),
                };
                if go {
                    s.planned_ns[next].store(planned.max(1), Ordering::Release);
                    let g = guards[session]
                        .get_or_insert_with(|| outs[session].lock().expect("outbound lock"));
                    let orig = s.current_cl[slot].load(Ordering::Acquire);
                    let inst = &s.plan.instruments[usize::from(info.instrument)];
                    let msg_type: &[u8] = match cmd.kind {
                        Kind::New => b"D",
                        Kind::Cancel => b"F",
                        Kind::Replace => b"G",
                    };
                    let len = g.push(msg_type, unix, |w| {
                        fixmsg::write_request(w, next as u64, orig, &cmd, &info, inst, unix);
                    });
                    s.note_seq(session, g.seq - 1, next);
                    if cmd.kind == Kind::New && self.request_bytes == 0 {
                        self.request_bytes = len;
                    }
                    dirty[session] = true;
                    self.sent += 1;
                } else {
                    self.skipped += 1;
                }
                next += 1;
                k += 1;
                batch += 1;
            }
            for (i, g) in guards.iter_mut().enumerate() {
                if let Some(g) = g.as_mut() {
                    if dirty[i] {
                        g.flush().context("writing requests")?;
                        dirty[i] = false;
                    }
                }
            }
        }
        guards.clear();
        Ok(())
    }

    /// Waits until every sent request has its first answer; false on time-out.
    fn drain(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.shared.answered_count.load(Ordering::Acquire) < self.sent {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        true
    }

    /// Sends round `round` of the cancel-all phase: a cancel of each order in `slots` still
    /// open.
    fn cancel_all(&mut self, slots: &[usize], round: usize) -> anyhow::Result<()> {
        let s = self.shared;
        for &slot in slots {
            if s.state[slot]
                .compare_exchange(OPEN, BUSY, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            let index = s.base + round * s.plan.orders.len() + slot;
            let info = s.plan.orders[slot];
            let inst = &s.plan.instruments[usize::from(info.instrument)];
            let now = s.now_ns();
            s.planned_ns[index].store(now.max(1), Ordering::Release);
            let orig = s.current_cl[slot].load(Ordering::Acquire);
            let unix = s.unix_ns(now);
            let cmd = Cmd {
                kind: Kind::Cancel,
                slot: slot as u32,
                price: 0,
                quantity: 0,
            };
            let mut o = self.outs[usize::from(info.session)]
                .lock()
                .expect("outbound lock");
            o.push(b"F", unix, |w| {
                fixmsg::write_request(w, index as u64, orig, &cmd, &info, inst, unix);
            });
            s.note_seq(usize::from(info.session), o.seq - 1, index);
            o.flush().context("writing cancels")?;
            self.sent += 1;
        }
        Ok(())
    }
}

/// A session's receiver: frames, checks sequence numbers, follows every order.
fn receive(s: &Shared, session: usize, stream: Transport, out: &Mutex<Outbound>) -> SessionResult {
    let mut r = SessionResult {
        latency: new_hist(),
        latency_new: new_hist(),
        order_ids: Vec::new(),
        fills: vec![[0; 6]; s.plan.instruments.len()],
        rejects: 0,
        cancel_rejects: 0,
        errors: 0,
        violations: 0,
        violation_texts: Vec::new(),
        report_bytes: 0,
    };
    let mut tracks: HashMap<u32, Track> = HashMap::new();
    let mut buf = vec![0_u8; READ_BUFFER_BYTES];
    let (mut start, mut end) = (0_usize, 0_usize);
    let mut expected_seq = 1_u64;
    let mut logged_on = false;
    loop {
        // Frame whatever is buffered.
        loop {
            match fix_codec::check_frame(&buf[start..end], fixmsg::BEGIN, 65_536) {
                Frame::Complete { len } => {
                    let now = s.now_ns();
                    let msg = &buf[start..start + len];
                    let m = fixmsg::parse(msg);
                    if let Some(seq) = m.seq {
                        if seq != expected_seq {
                            r.violation(format!(
                                "session {session}: MsgSeqNum {seq}, expected {expected_seq}"
                            ));
                        }
                        expected_seq = seq + 1;
                    } else {
                        r.violation(format!("session {session}: message without MsgSeqNum"));
                    }
                    match m.msg_type {
                        b"A" if !logged_on => {
                            logged_on = true;
                            s.logged_on.fetch_add(1, Ordering::AcqRel);
                        }
                        b"0" => {}
                        b"5" if s.logout_sent.load(Ordering::Acquire) => return r,
                        b"5" => {
                            r.violation(format!(
                                "session {session}: Logout from the acceptor: {}",
                                String::from_utf8_lossy(m.text)
                            ));
                            return r;
                        }
                        b"1" => {
                            let mut o = out.lock().expect("outbound lock");
                            let id = m.test_req_id.to_vec();
                            o.push(b"0", s.unix_ns(now), |w| w.field(112, &id));
                            let _ = o.flush();
                        }
                        b"8" => {
                            if r.report_bytes == 0 && m.exec_type == b'0' {
                                r.report_bytes = len;
                            }
                            on_report(s, session, &m, now, &mut r, &mut tracks);
                        }
                        b"9" => on_cancel_reject(s, session, &m, now, &mut r),
                        b"j" => on_business_reject(s, session, &m, now, &mut r, &mut tracks),
                        other => {
                            r.errors += 1;
                            r.violation(format!(
                                "session {session}: unexpected MsgType {}: {}",
                                String::from_utf8_lossy(other),
                                fix_codec::writer::printable(msg)
                            ));
                        }
                    }
                    start += len;
                }
                Frame::Incomplete { .. } => break,
                other => {
                    r.violation(format!("session {session}: bad frame {other:?}"));
                    return r;
                }
            }
        }
        if start == end {
            start = 0;
            end = 0;
        } else if end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        match stream.read(&mut buf[end..]) {
            Ok(0) => {
                if !s.logout_sent.load(Ordering::Acquire) {
                    r.violation(format!(
                        "session {session}: the acceptor closed the connection"
                    ));
                }
                return r;
            }
            Ok(n) => end += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if s.stop.load(Ordering::Acquire) {
                    return r;
                }
            }
            Err(e) => {
                if !s.stop.load(Ordering::Acquire) {
                    r.violation(format!("session {session}: read error {e}"));
                }
                return r;
            }
        }
    }
}

/// The first answer to request `index`: counts it and records its latency.
fn first_answer(s: &Shared, index: usize, now: u64, r: &mut SessionResult) -> bool {
    if s.answered[index].swap(true, Ordering::AcqRel) {
        return false;
    }
    s.answered_count.fetch_add(1, Ordering::AcqRel);
    let planned = s.planned_ns[index].load(Ordering::Acquire);
    if planned > 0
        && index >= s.measure_from.load(Ordering::Acquire)
        && index < s.measure_to.load(Ordering::Acquire)
    {
        s.last_measured_answer_ns.fetch_max(now, Ordering::AcqRel);
        let ns = now.saturating_sub(planned).max(1);
        r.latency.saturating_record(ns);
        if s.plan.cmds[index].kind == Kind::New {
            r.latency_new.saturating_record(ns);
        }
    }
    true
}

fn on_report(
    s: &Shared,
    session: usize,
    m: &Inbound<'_>,
    now: u64,
    r: &mut SessionResult,
    tracks: &mut HashMap<u32, Track>,
) {
    let Some(index) = m.cl_ord_id.map(|c| c as usize) else {
        r.violation(format!(
            "session {session}: ExecutionReport without a numeric ClOrdID"
        ));
        return;
    };
    let Some(slot) = s.slot_of(index) else {
        r.violation(format!(
            "session {session}: ExecutionReport for unknown ClOrdID {index}"
        ));
        return;
    };
    let info = s.plan.orders[slot];
    if usize::from(info.session) != session {
        r.violation(format!(
            "session {session}: report for ClOrdID {index} of session {}",
            info.session
        ));
        return;
    }
    let first = first_answer(s, index, now, r);
    let is_new = index < s.base && s.plan.cmds[index].kind == Kind::New;
    if first && is_new {
        if let Some(id) = m.order_id {
            r.order_ids.push((id, index as u32));
        }
    }
    let t = tracks.entry(slot as u32).or_default();
    if t.terminal {
        r.violation(format!(
            "session {session}: report (150={}) for order {slot} after its terminal state",
            m.exec_type as char
        ));
        return;
    }
    match m.exec_type {
        b'1' | b'2' => {
            let last = m.last_shares.unwrap_or(0);
            if last == 0 || Some(t.cum + last) != m.cum_qty {
                r.violation(format!(
                    "session {session}: fill of order {slot}: LastShares {last}, CumQty {:?}, previous CumQty {}",
                    m.cum_qty, t.cum
                ));
            }
            t.cum += last;
            let inst = &s.plan.instruments[usize::from(info.instrument)];
            let px = m
                .last_px
                .and_then(|p| fixmsg::to_scale(p, inst.price_decimals))
                .unwrap_or(0);
            let f = &mut r.fills[usize::from(info.instrument)];
            let k = usize::from(info.side != b'1');
            f[k] += 1;
            f[2 + k] += i128::from(last);
            f[4 + k] += i128::from(last) * px;
        }
        b'8' => r.rejects += 1,
        _ => {}
    }
    if let (Some(l), Some(c), Some(q)) = (m.leaves_qty, m.cum_qty, m.order_qty) {
        let ok = match m.ord_status {
            b'0' | b'1' | b'2' => l + c == q,
            b'4' | b'8' | b'C' => l == 0,
            _ => true,
        };
        if !ok || c != t.cum {
            r.violation(format!(
                "session {session}: order {slot} status {}: LeavesQty {l} + CumQty {c} vs OrderQty {q}, fills seen {}",
                m.ord_status as char, t.cum
            ));
        }
    }
    if matches!(m.ord_status, b'2' | b'4' | b'8' | b'C') {
        t.terminal = true;
        s.state[slot].store(CLOSED, Ordering::Release);
    } else if m.exec_type == b'5' {
        s.current_cl[slot].store(index as u64, Ordering::Release);
        let _ = s.state[slot].compare_exchange(BUSY, OPEN, Ordering::AcqRel, Ordering::Acquire);
    } else if first && is_new {
        let _ = s.state[slot].compare_exchange(PENDING, OPEN, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// A request refused before it reached the engine (e.g. "Engine busy": the gateway sheds
/// load). It is an answer: a refused new order never existed (terminal), a refused cancel or
/// move leaves its order as it was. Counted as `errors`; a reject naming no request of ours is
/// a violation.
fn on_business_reject(
    s: &Shared,
    session: usize,
    m: &Inbound<'_>,
    now: u64,
    r: &mut SessionResult,
    tracks: &mut HashMap<u32, Track>,
) {
    r.errors += 1;
    let index = m
        .ref_seq
        .and_then(|q| s.seq_to_cmd[session].get(q as usize))
        .map(|a| a.load(Ordering::Acquire))
        .filter(|&i| i != u32::MAX)
        .map(|i| i as usize);
    let Some((index, slot)) = index.and_then(|i| s.slot_of(i).map(|slot| (i, slot))) else {
        r.violation(format!(
            "session {session}: BusinessMessageReject for RefSeqNum {:?}, not a request of ours: {}",
            m.ref_seq,
            String::from_utf8_lossy(m.text)
        ));
        return;
    };
    if !first_answer(s, index, now, r) {
        r.violation(format!(
            "session {session}: BusinessMessageReject for request {index} after its answer"
        ));
        return;
    }
    if index < s.base && s.plan.cmds[index].kind == Kind::New {
        tracks.entry(slot as u32).or_default().terminal = true;
        s.state[slot].store(CLOSED, Ordering::Release);
    } else {
        let _ = s.state[slot].compare_exchange(BUSY, OPEN, Ordering::AcqRel, Ordering::Acquire);
    }
}

fn on_cancel_reject(s: &Shared, session: usize, m: &Inbound<'_>, now: u64, r: &mut SessionResult) {
    let Some(slot) = m.cl_ord_id.and_then(|c| s.slot_of(c as usize)) else {
        r.violation(format!(
            "session {session}: OrderCancelReject for an unknown ClOrdID"
        ));
        return;
    };
    let index = m.cl_ord_id.unwrap_or(0) as usize;
    first_answer(s, index, now, r);
    r.cancel_rejects += 1;
    if m.text == b"Unknown order" {
        r.violation(format!(
            "session {session}: cancel/replace {index} of order {slot} refused as unknown"
        ));
    }
    let _ = s.state[slot].compare_exchange(BUSY, OPEN, Ordering::AcqRel, Ordering::Acquire);
}

#[cfg(test)]
mod tests {
    //! The checks catch what they claim to: a scripted acceptor that acknowledges everything
    //! passes; the same acceptor skipping one outbound MsgSeqNum, or sending a second terminal
    //! report for an order, fails the run.

    use super::*;
    use crate::plan::{build, native_instruments};
    use matching::workload::{generate, WorkloadConfig};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[derive(Clone, Copy, PartialEq)]
    enum Fault {
        None,
        SkipSeq,
        DoubleCancel,
    }

    /// Acknowledges D (150=0), F (150=4) and G (150=5) per session; answers Logout.
    fn fake_acceptor(listener: TcpListener, sessions: usize, fault: Fault) {
        for _ in 0..sessions {
            let (mut s, _) = listener.accept().unwrap();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0_u8; 65536];
                let mut seq = 1_u64;
                let mut w = Writer::new(512);
                let mut replies = 0;
                loop {
                    let mut out = Vec::new();
                    while let Frame::Complete { len } =
                        fix_codec::check_frame(&buf, fixmsg::BEGIN, 65536)
                    {
                        let msg: Vec<u8> = buf.drain(..len).collect();
                        let m = fixmsg::parse(&msg);
                        let mut reply = |t: &[u8], body: &dyn Fn(&mut Writer)| {
                            replies += 1;
                            if fault == Fault::SkipSeq && replies == 50 {
                                seq += 1;
                            }
                            fixmsg::write_message(&mut w, t, b"EXCH", seq, 0, body, &mut out);
                            seq += 1;
                        };
                        let cl = m.cl_ord_id.unwrap_or(0);
                        let qty = m.order_qty.unwrap_or(0);
                        match m.msg_type {
                            b"A" => reply(b"A", &|w| {
                                w.field(98, b"0");
                                w.field(108, b"120");
                            }),
                            b"5" => {
                                reply(b"5", &|_| {});
                                s.write_all(&out).unwrap();
                                return;
                            }
                            b"D" | b"G" => {
                                let et = if m.msg_type == b"D" { b"0" } else { b"5" };
                                reply(b"8", &|w| {
                                    w.field_u64(37, cl + 1);
                                    w.field_u64(11, cl);
                                    w.field(150, et);
                                    w.field(39, b"0");
                                    w.field_u64(38, qty);
                                    w.field_u64(151, qty);
                                    w.field(14, b"0");
                                })
                            }
                            b"F" => {
                                let n = if fault == Fault::DoubleCancel { 2 } else { 1 };
                                for _ in 0..n {
                                    reply(b"8", &|w| {
                                        w.field_u64(11, cl);
                                        w.field(150, b"4");
                                        w.field(39, b"4");
                                        w.field(151, b"0");
                                        w.field(14, b"0");
                                    });
                                }
                            }
                            _ => {}
                        }
                    }
                    if !out.is_empty() && s.write_all(&out).is_err() {
                        return;
                    }
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    }

    fn run_against(fault: Fault) -> Outcome {
        let cfg = WorkloadConfig {
            seed: 3,
            instruments: 1,
            accounts: 2,
            resting_per_instrument: 30,
            commands: 600,
            zipf_s: 1.0,
        };
        let w = generate(&cfg);
        let plan = Arc::new(build(
            &cfg,
            &w.preamble,
            &w.commands,
            &native_instruments(&cfg),
            2,
        ));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || fake_acceptor(listener, 2, fault));
        run(
            plan,
            &RunConfig {
                addr,
                comp_ids: vec!["A".into(), "B".into()],
                rate: 20_000.0,
                fill_rate: 20_000.0,
                window: 64,
                warmup_cmds: 100,
                market_data: None,
                market_data_retransmit: Vec::new(),
                matching: false,
                drain_timeout: Duration::from_secs(5),
                tls: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn an_acceptor_that_acknowledges_everything_passes() {
        let o = run_against(Fault::None);
        assert_eq!(o.violations, 0, "{:?}", o.violation_texts);
        assert_eq!(o.sent, o.answered);
        assert!(o.latency.len() > 100, "{}", o.latency.len());
    }

    #[test]
    fn a_sequence_gap_fails_the_run() {
        let o = run_against(Fault::SkipSeq);
        assert!(
            o.violation_texts.iter().any(|v| v.contains("MsgSeqNum")),
            "{:?}",
            o.violation_texts
        );
    }

    #[test]
    fn a_second_terminal_report_fails_the_run() {
        let o = run_against(Fault::DoubleCancel);
        assert!(
            o.violation_texts
                .iter()
                .any(|v| v.contains("after its terminal state")),
            "{:?}",
            o.violation_texts
        );
    }
}
