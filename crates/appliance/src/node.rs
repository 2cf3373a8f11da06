//! `serve`: starts every agent on its thread and stops them in order.
//!
//! Threads: the sequencer (inbound journal writer), the matching agent, the query replica, the
//! reporter, and a small tokio runtime for HTTP. Shutdown (SIGINT/SIGTERM or `Node::stop`):
//! stop taking requests, let the sequencer drain its hand-off, let the matching agent drain
//! the inbound journal, let the replica and the reporter catch up, flush, return.

use crate::config::Config;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::replica::{self, Pending, Replica};
use crate::reporter;
use anyhow::Context as _;
use journal::{IdleStrategy, Journal};
use matching::Engine;
use matching_agent::{AgentConfig, MatchingAgent};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

/// A running appliance.
pub struct Node {
    pub http_addr: SocketAddr,
    stop_input: Arc<AtomicBool>,
    stop_seq: Arc<AtomicBool>,
    stop_match: Arc<AtomicBool>,
    stop_followers: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
    sequencer: Option<JoinHandle<anyhow::Result<()>>>,
    matching: Option<JoinHandle<anyhow::Result<()>>>,
    followers: Vec<JoinHandle<anyhow::Result<()>>>,
    demo: Vec<JoinHandle<anyhow::Result<()>>>,
    runtime: Option<tokio::runtime::Runtime>,
    /// Cluster mode: Raft's own runtime.
    raft_runtime: Option<tokio::runtime::Runtime>,
    http: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    gateway: Arc<std::sync::Mutex<Option<gateway::Gateway>>>,
    pub fix_tcp_addr: Option<SocketAddr>,
    pub fix_tls_addr: Option<SocketAddr>,
    /// This node's cluster membership (cluster mode).
    pub cluster: Option<Arc<cluster::Cluster>>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
}

/// The sequencer and the matching agent as one duty cycle, run by its own thread or, between
/// its turns, by a FIX I/O thread that has just published orders ([`DutyAssist`]).
struct Duty {
    sequencer: journal::Sequencer,
    agent: MatchingAgent,
    metrics: Arc<Metrics>,
    /// An error met on an I/O thread's turn, for the duty's own thread to report (it stops the
    /// node); no further turn is taken meanwhile.
    error: Option<anyhow::Error>,
    /// The sequencer's hand-off batch: a turn that drained this many may have left some.
    drain_batch_max: usize,
    /// The hand-off's doorbell, which the duty's own thread parks on.
    bell: Option<Arc<journal::Doorbell>>,
    /// The gateway router's bell (with the assist): rung after the duty thread's own turns.
    router_bell: Option<Arc<journal::Doorbell>>,
}

impl Duty {
    /// One turn: the work done, and whether some may be left (a full hand-off batch, or
    /// journaled events the matching agent's batch did not reach).
    fn turn(&mut self) -> anyhow::Result<(usize, bool)> {
        let sequenced = self.sequencer.do_work()?;
        let n = sequenced + self.agent.do_work()?;
        self.metrics
            .matching_seq
            .store(self.agent.processed_seq(), Ordering::Relaxed);
        let left = sequenced >= self.drain_batch_max
            || self.agent.processed_seq() < self.sequencer.written_seq();
        Ok((n, left))
    }
}

/// A FIX I/O thread's turn of the duty cycle: only when its thread is not in one (never waits).
struct DutyAssist(Arc<std::sync::Mutex<Duty>>);

impl gateway::PipelineAssist for DutyAssist {
    fn set_router_bell(&self, bell: Arc<journal::Doorbell>) {
        if let Ok(mut duty) = self.0.lock() {
            duty.router_bell = Some(bell);
        }
    }

    fn assist(&self) -> Option<usize> {
        let Ok(mut duty) = self.0.try_lock() else {
            return None;
        };
        if duty.error.is_some() {
            return Some(0);
        }
        match duty.turn() {
            Ok((n, left)) => {
                if left {
                    // The duty's thread takes the rest (woken only if it is parked).
                    if let Some(bell) = duty.bell.as_ref() {
                        bell.ring();
                    }
                }
                Some(n)
            }
            Err(e) => {
                duty.error = Some(e);
                Some(0)
            }
        }
    }
}

/// Who writes the inbound journal: the local sequencer, or Raft (cluster mode).
enum InboundWriter {
    Local(journal::Sequencer),
    Cluster(
        journal::Sequencer<Arc<journal::ExternalClock>>,
        Arc<journal::ExternalClock>,
    ),
}

fn spawn(
    name: &str,
    failed: &Arc<AtomicBool>,
    f: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    spawn_on(name, None, failed, f)
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it; the call only
    // reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Spawns a thread off the order path (replica, reporters, SSE feeder): [`spawn_on`] at nice
/// `nice` (`threads.off_path_nice`; Linux gives each thread its own nice value), so that on a
/// saturated machine the order path's threads get the CPU first. Best effort: a failure to
/// lower the priority is logged and the thread runs at the default one.
fn spawn_off_path(
    name: &str,
    cpu: Option<usize>,
    nice: i32,
    failed: &Arc<AtomicBool>,
    f: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    spawn_on(name, cpu, failed, move || {
        // SAFETY: setpriority only reads its arguments; `who` 0 is the calling thread.
        if nice > 0 && unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) } != 0 {
            let e = std::io::Error::last_os_error();
            tracing::warn!(error = %e, nice, "could not lower the thread's priority");
        }
        f()
    })
}

/// Spawns an agent thread, pinned to `cpu` when given; an error it returns marks the node
/// failed (`/healthz` answers 503).
fn spawn_on(
    name: &str,
    cpu: Option<usize>,
    failed: &Arc<AtomicBool>,
    f: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let failed = failed.clone();
    let n = name.to_string();
    Ok(std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let r = match cpu.map(pin) {
                Some(Err(e)) => Err(anyhow::anyhow!("pinning to CPU {}: {e}", cpu.unwrap_or(0))),
                _ => f(),
            };
            if let Err(e) = &r {
                tracing::error!(thread = %n, error = format!("{e:#}"), "thread stopped with an error");
                failed.store(true, Ordering::Release);
            }
            r
        })?)
}

/// Funds the configured demo accounts, once, when the inbound journal is new.
fn fund_accounts(config: &Config, seq: &mut journal::Sequencer) -> anyhow::Result<()> {
    funding_events(config, |t, b| {
        seq.append(t, b)?;
        Ok(())
    })
}

/// The deposits of the configured accounts, as inbound events handed to `emit`.
pub(crate) fn funding_events(
    config: &Config,
    mut emit: impl FnMut(u16, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut buf = [0_u8; matching_agent::inbound::ENCODED_LEN_MAX];
    for a in &config.accounts {
        let mut deposits = Vec::new();
        if a.cash > 0 {
            deposits.push((matching::Asset::Cash, i128::from(a.cash)));
        }
        for (sym, qty) in &a.positions {
            let id = config.instrument_id(sym).expect("validated");
            if *qty > 0 {
                deposits.push((matching::Asset::Position(id), i128::from(*qty)));
            }
        }
        for (asset, amount) in deposits {
            let kind = matching::CommandKind::Deposit {
                account_id: a.id,
                asset,
                amount,
            };
            let (t, len) = matching_agent::inbound::encode(&kind, 0, &mut buf)?;
            emit(t, &buf[..len])?;
        }
    }
    Ok(())
}

impl Node {
    /// Starts everything (returns once HTTP listens), and with `demo_rate` also the simulated clients (that many orders per
    /// second) and the live terminal view.
    pub fn start_with(mut config: Config, demo_rate: Option<u32>) -> anyhow::Result<Node> {
        let demo_sessions =
            if demo_rate.is_some() && config.fix.enabled && !config.fix.tcp_listen.is_empty() {
                crate::demo::add_fix_sessions(&mut config)
            } else {
                Vec::new()
            };
        std::fs::create_dir_all(&config.data.dir).with_context(|| {
            format!("creating the data directory {}", config.data.dir.display())
        })?;
        let (inbound, writer) = if config.cluster.enabled {
            // Frames are appended by the Raft state machine, with the leader's timestamps.
            let clock = Arc::new(journal::ExternalClock::new(0));
            let (j, s) = Journal::open_with_clock(config.inbound_journal(), clock.clone())
                .context("opening the inbound journal")?;
            (j, InboundWriter::Cluster(s, clock))
        } else {
            let (j, mut s) =
                Journal::open(config.inbound_journal()).context("opening the inbound journal")?;
            if s.written_seq() == 0 {
                fund_accounts(&config, &mut s).context("funding the demo accounts")?;
            }
            (j, InboundWriter::Local(s))
        };
        let publisher = inbound
            .publisher()
            .context("the inbound journal has no hand-off")?;
        let engine_config = config.engine_config();
        let mut agent_config = AgentConfig::new(engine_config.clone(), config.outbound_journal());
        agent_config.snapshots = Some(config.snapshot_policy());
        let agent =
            MatchingAgent::open(agent_config, &inbound).context("opening the matching agent")?;
        if let Some(seq) = agent.restored_from() {
            tracing::info!(
                inbound_seq = seq,
                "matching engine restored from a snapshot"
            );
        }
        let outbound = agent.outbound_journal().clone();
        let metrics = Arc::new(Metrics::default());
        let failed = Arc::new(AtomicBool::new(false));
        let stop_input = Arc::new(AtomicBool::new(false));
        let stop_seq = Arc::new(AtomicBool::new(false));
        let stop_match = Arc::new(AtomicBool::new(false));
        let stop_followers = Arc::new(AtomicBool::new(false));
        let (seq_idle, seq_cpu) = config.agent_thread(&config.threads.sequencer);
        let (match_idle, match_cpu) = config.agent_thread(&config.threads.matching);
        let (md_idle, md_cpu) = config.agent_thread(&config.threads.market_data);
        // The replica and the reporters are off the order path: with the back-off strategy they
        // yield only briefly before parking (no doorbell either), leaving the cores to the
        // agents that answer orders.
        let off_path = |w: journal::WaitStrategy| match w {
            journal::WaitStrategy::Backoff {
                spins_max,
                park_min,
                park_max,
                ..
            } => journal::WaitStrategy::Backoff {
                spins_max,
                yields_max: 10,
                park_min,
                park_max,
            },
            other => other,
        };
        let (replica_idle, replica_cpu) = config.agent_thread(&config.threads.replica);
        let (reporter_idle, reporter_cpu) = config.agent_thread(&config.threads.reporter);
        let (replica_idle, reporter_idle) = (off_path(replica_idle), off_path(reporter_idle));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("io")
            .enable_all()
            .build()?;
        // The agents on the order path (sequencer, matching, the gateway's router, market data)
        // are woken from their back-off park by the producer they wait on (doorbells). The
        // replica and the reporters are not: they sleep out their back-off, so a commit does
        // not wake four threads at once to compete with the router for the two cores.
        let spawn_matching = |agent: MatchingAgent| {
            let s = stop_match.clone();
            let m = metrics.clone();
            let bell = inbound.doorbell();
            spawn_on("matching", match_cpu, &failed, move || {
                let mut agent = agent;
                let mut idle = IdleStrategy::new(match_idle).waiting_on(&bell);
                loop {
                    let n = agent.do_work()?;
                    m.matching_seq
                        .store(agent.processed_seq(), Ordering::Relaxed);
                    if n == 0 && s.load(Ordering::Acquire) {
                        return Ok(());
                    }
                    idle.idle(n);
                }
            })
        };
        let mut raft_runtime = None;
        let mut io_assist = None;
        let (seq_thread, match_thread, cluster) = match writer {
            InboundWriter::Cluster(sequencer, clock) => {
                // Raft has a runtime of its own: heartbeats and votes never queue behind FIX
                // and HTTP tasks.
                let rrt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("raft")
                    .enable_all()
                    .build()?;
                let (cl, mut proposer) = rrt
                    .block_on(cluster::Cluster::start(
                        config.cluster_config(),
                        inbound.clone(),
                        sequencer,
                        clock,
                    ))
                    .context("starting the cluster node")?;
                raft_runtime = Some(rrt);
                let s = stop_seq.clone();
                // Also woken when an entry is applied (room for another in flight).
                let bell = inbound.doorbell();
                let seq_thread = spawn_on("proposer", seq_cpu, &failed, move || {
                    proposer.run(&s, &mut IdleStrategy::new(seq_idle).waiting_on(&bell));
                    Ok(())
                })?;
                (seq_thread, Some(spawn_matching(agent)?), Some(Arc::new(cl)))
            }
            InboundWriter::Local(sequencer) if config.threads.sequencer_and_matching_together => {
                // One duty cycle for both agents: the sequencer appends, then the matching
                // agent processes what was just committed, without a thread hand-off between
                // them. Its thread takes turns with the FIX I/O threads (`threads.io_assist`).
                // Drained in order on stop (the stop flags are set one after the other).
                let bell = sequencer.handoff_doorbell();
                let mut agent = agent;
                // With the assist, commits do not wake the outbound journal's readers by
                // themselves: the duty's thread rings after its turns, an I/O thread after
                // routing the results (the reports first, the wake-ups after).
                let io_assist_on = config.threads.io_assist;
                agent.set_ring_on_commit(!io_assist_on);
                let outbound_bell = agent.outbound_journal().doorbell();
                let duty = Arc::new(std::sync::Mutex::new(Duty {
                    sequencer,
                    agent,
                    metrics: metrics.clone(),
                    error: None,
                    drain_batch_max: config.inbound_journal().drain_batch_max,
                    bell: bell.clone(),
                    router_bell: None,
                }));
                let (s_seq, s_match) = (stop_seq.clone(), stop_match.clone());
                let d = duty.clone();
                let t = spawn_on("sequencer+matching", seq_cpu, &failed, move || {
                    let mut idle = IdleStrategy::new(seq_idle);
                    if let Some(bell) = bell {
                        idle.wait_on(&bell);
                    }
                    loop {
                        let n = match d.try_lock() {
                            Ok(mut duty) => {
                                if let Some(e) = duty.error.take() {
                                    return Err(e);
                                }
                                let (n, _) = duty.turn()?;
                                if n > 0 && io_assist_on {
                                    // Commits do not ring with the assist (see above).
                                    outbound_bell.ring();
                                    if let Some(b) = duty.router_bell.as_ref() {
                                        b.ring();
                                    }
                                }
                                if n == 0
                                    && s_seq.load(Ordering::Acquire)
                                    && s_match.load(Ordering::Acquire)
                                {
                                    duty.sequencer.flush()?;
                                    return Ok(());
                                }
                                n
                            }
                            // An I/O thread is taking a turn (and rings the bell when it
                            // leaves work behind): back off as if idle.
                            Err(std::sync::TryLockError::WouldBlock) => 0,
                            Err(std::sync::TryLockError::Poisoned(_)) => {
                                anyhow::bail!("the sequencer+matching duty panicked")
                            }
                        };
                        idle.idle(n);
                    }
                })?;
                if config.threads.io_assist {
                    io_assist =
                        Some(Arc::new(DutyAssist(duty)) as Arc<dyn gateway::PipelineAssist>);
                }
                (t, None, None)
            }
            InboundWriter::Local(mut sequencer) => {
                let s = stop_seq.clone();
                let seq_thread = spawn_on("sequencer", seq_cpu, &failed, move || {
                    sequencer.run(&s, &mut IdleStrategy::new(seq_idle))?;
                    sequencer.flush()?;
                    Ok(())
                })?;
                (seq_thread, Some(spawn_matching(agent)?), None)
            }
        };

        // The replica starts from the same snapshot as the matching agent when there is one.
        let (replica_engine, replica_seq) = match matching_agent::latest_snapshot(
            &config.snapshot_policy().dir,
            &engine_config,
            inbound.written_seq(),
            outbound.written_seq(),
        ) {
            Some((seq, _, engine)) => (engine, seq),
            None => (Engine::new(engine_config.clone()), 0),
        };
        let mut followers = Vec::new();
        let replica = Arc::new(RwLock::new(Replica {
            engine: replica_engine,
            processed_seq: replica_seq,
        }));
        let caught_up = replica::catch_up(&inbound, &replica)?;
        metrics.replica_seq.store(caught_up, Ordering::Relaxed);
        let pending = Arc::new(Pending::default());
        {
            let (j, r, p, m, s) = (
                inbound.clone(),
                replica.clone(),
                pending.clone(),
                metrics.clone(),
                stop_followers.clone(),
            );
            followers.push(spawn_off_path(
                "replica",
                replica_cpu,
                config.threads.off_path_nice,
                &failed,
                move || replica::run(j, r, p, m, s, IdleStrategy::new(replica_idle)),
            )?);
        }
        // In cluster mode the publisher runs only while this node is the serving leader.
        let md_active = Arc::new(AtomicBool::new(cluster.is_none()));
        if config.market_data.enabled {
            let md_config = config.publisher_config()?;
            let (j, s, m, active) = (
                outbound.clone(),
                stop_followers.clone(),
                metrics.clone(),
                md_active.clone(),
            );
            let products = engine_config.products.clone();
            // Single node: active at once (a bind error stops the start). Cluster mode: every
            // node builds the same packets and history from its identical outbound journal;
            // only the serving leader's publisher has sockets (activated on promotion).
            let mut p = if cluster.is_none() {
                md_publisher::PublisherAgent::open(md_config, &products, &j)
            } else {
                md_publisher::PublisherAgent::open_standby(md_config, &products, &j)
            }
            .context("opening the market-data publisher")?;
            if p.is_active() {
                tracing::info!(retransmit = %p.retransmit_addr(), "market data publishing");
            }
            let single = cluster.is_none();
            followers.push(spawn_on("market-data", md_cpu, &failed, move || {
                let mut idle = IdleStrategy::new(md_idle).waiting_on(&p.doorbell());
                let mut next_try = std::time::Instant::now();
                loop {
                    let on = active.load(Ordering::Acquire);
                    if on && !p.is_active() && std::time::Instant::now() >= next_try {
                        match p.activate() {
                            Ok(()) => tracing::info!(retransmit = %p.retransmit_addr(), "market data publishing"),
                            Err(e) => {
                                // Typically the old leader's port on the same host: retry.
                                tracing::warn!(error = %e, "market data: activation failed, retrying");
                                next_try = std::time::Instant::now() + std::time::Duration::from_millis(100);
                            }
                        }
                    } else if !on && p.is_active() {
                        p.deactivate();
                        tracing::info!("market data on standby");
                    }
                    let n = p.do_work()?;
                    let net = p.net_stats();
                    let rt = p.retransmit_stats();
                    m.md_packets.store(net.packets_sent, Ordering::Relaxed);
                    m.md_events_split
                        .store(p.core().stats().events_split, Ordering::Relaxed);
                    m.md_retransmit_requests
                        .store(rt.requests, Ordering::Relaxed);
                    m.md_packets_resent
                        .store(rt.packets_resent, Ordering::Relaxed);
                    m.md_seq.store(
                        p.next_journal_seq().saturating_sub(1),
                        Ordering::Relaxed,
                    );
                    if n == 0 && s.load(Ordering::Acquire) {
                        if !single {
                            // In a cluster the session goes on with the next leader.
                            return Ok(());
                        }
                        p.end_session();
                        // Let the repeated end-of-session markers go out.
                        let until =
                            std::time::Instant::now() + std::time::Duration::from_millis(300);
                        while std::time::Instant::now() < until {
                            let n = p.do_work()?;
                            idle.idle(n);
                        }
                        return Ok(());
                    }
                    idle.idle(n);
                }
            })?);
        }
        let db_path = config.data.dir.join("reporter.sqlite");
        {
            let symbols = {
                let max = config.instruments.iter().map(|i| i.id).max().unwrap_or(0) as usize;
                let mut v = vec![String::new(); max + 1];
                for i in &config.instruments {
                    v[i.id as usize] = i.symbol.clone();
                }
                v
            };
            let symbols_pg = symbols.clone();
            // Create the schema before HTTP can read it.
            reporter::open(&db_path).context("opening the reporting database")?;
            let (path, j, m, s) = (
                db_path.clone(),
                outbound.clone(),
                metrics.clone(),
                stop_followers.clone(),
            );
            let nice = config.threads.off_path_nice;
            followers.push(spawn_off_path(
                "reporter",
                reporter_cpu,
                nice,
                &failed,
                move || reporter::run(&path, j, symbols, m, s, IdleStrategy::new(reporter_idle)),
            )?);
            if !config.reporter.postgres_url.is_empty() {
                let (url, j, s) = (
                    config.reporter.postgres_url.clone(),
                    outbound.clone(),
                    stop_followers.clone(),
                );
                let symbols = symbols_pg;
                followers.push(spawn_off_path(
                    "reporter-postgres",
                    None,
                    nice,
                    &failed,
                    move || {
                        reporter::run_postgres(
                            &url,
                            j,
                            symbols,
                            s,
                            IdleStrategy::new(reporter_idle),
                        )
                    },
                )?);
            }
        }

        let demo_replica = replica.clone();
        let demo_publisher = publisher.clone();
        let gateway_slot: Arc<std::sync::Mutex<Option<gateway::Gateway>>> = Arc::default();
        let sup_metrics = metrics.clone();
        let state = Arc::new(AppState {
            config: config.clone(),
            publisher,
            inbound: inbound.clone(),
            outbound: outbound.clone(),
            replica,
            pending,
            metrics,
            db_path,
            next_client_order_id: AtomicU64::new(0),
            failed: failed.clone(),
            stream: tokio::sync::broadcast::channel(4096).0,
            gateway: gateway_slot.clone(),
            cluster: cluster.clone(),
            idempotency: Default::default(),
        });
        {
            let (st, s) = (state.clone(), stop_input.clone());
            followers.push(spawn_off_path(
                "sse-feeder",
                None,
                config.threads.off_path_nice,
                &failed,
                move || http::stream_feeder(st, s),
            )?);
        }
        let listener = std::net::TcpListener::bind(config.http.listen)
            .with_context(|| format!("binding HTTP to {}", config.http.listen))?;
        listener.set_nonblocking(true)?;
        let http_addr = listener.local_addr()?;
        let gateway = if config.fix.enabled && cluster.is_none() {
            let mut g = config.gateway_config();
            g.pipeline_assist = io_assist.clone();
            if config.fix.dictionary.is_empty() {
                std::fs::write(&g.dictionary_path, crate::config::FIX42_XML)
                    .with_context(|| format!("writing {}", g.dictionary_path.display()))?;
            }
            if g.tls_listen.is_some() {
                g.tls = Some(crate::tls::server_config(&config)?);
            }
            let gw = runtime
                .block_on(gateway::Gateway::start(g, &inbound, &outbound))
                .context("starting the FIX gateway")?;
            tracing::info!(tcp = ?gw.tcp_addr, tls = ?gw.tls_addr, "FIX acceptor listening");
            Some(gw)
        } else {
            None
        };
        let fix_tcp_addr = gateway.as_ref().and_then(|g| g.tcp_addr);
        let fix_tls_addr = gateway.as_ref().and_then(|g| g.tls_addr);
        *gateway_slot.lock().expect("gateway slot") = gateway;
        let mut demo = Vec::new();
        if let Some(rate) = demo_rate {
            match fix_tcp_addr {
                Some(addr) if !demo_sessions.is_empty() => {
                    let each = (rate / demo_sessions.len() as u32).max(1);
                    for (i, comp) in demo_sessions.iter().enumerate() {
                        let (c, r, s, comp) = (
                            config.clone(),
                            demo_replica.clone(),
                            stop_input.clone(),
                            comp.clone(),
                        );
                        demo.push(spawn("demo-fix-client", &failed, move || {
                            crate::demo::fix_client(c, addr, comp, r, each, 0x5EED + i as u64, s)
                        })?);
                    }
                }
                _ => {
                    let (c, p, r, s) = (
                        config.clone(),
                        demo_publisher.clone(),
                        demo_replica.clone(),
                        stop_input.clone(),
                    );
                    demo.push(spawn("demo-clients", &failed, move || {
                        crate::demo::clients(c, p, r, rate, s);
                        Ok(())
                    })?);
                }
            }
            let (c, i, o, r, s) = (
                config.clone(),
                inbound.clone(),
                outbound.clone(),
                demo_replica.clone(),
                stop_input.clone(),
            );
            demo.push(spawn("demo-view", &failed, move || {
                crate::demo::view(c, i, o, r, s);
                Ok(())
            })?);
        }
        let s = stop_input.clone();
        let http_config = config.http.clone();
        let server = runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener)?;
            http::serve(listener, http::router(state), http_config, s).await
        });
        let supervisor = cluster.as_ref().map(|cl| {
            runtime.spawn(crate::ha::supervise(crate::ha::Supervised {
                cluster: cl.clone(),
                config: config.clone(),
                inbound: inbound.clone(),
                outbound: outbound.clone(),
                metrics: sup_metrics.clone(),
                gateway: gateway_slot.clone(),
                md_active: md_active.clone(),
                stop: stop_input.clone(),
            }))
        });
        tracing::info!(%http_addr, data = %config.data.dir.display(), "appliance started");
        Ok(Node {
            http_addr,
            stop_input,
            stop_seq,
            stop_match,
            stop_followers,
            failed,
            sequencer: Some(seq_thread),
            matching: match_thread,
            followers,
            demo,
            runtime: Some(runtime),
            raft_runtime,
            http: Some(server),
            gateway: gateway_slot,
            fix_tcp_addr,
            fix_tls_addr,
            cluster,
            supervisor,
        })
    }

    /// True when a worker thread stopped with an error.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Stops in order and reports the first thread error: input (HTTP, FIX, demo) first, then
    /// the sequencer drains its hand-off, the matching agent drains the inbound journal, and the
    /// followers (replica, reporter, market data) catch up.
    pub fn stop(mut self) -> anyhow::Result<()> {
        fn join(
            h: Option<JoinHandle<anyhow::Result<()>>>,
            what: &str,
            first: &mut Option<anyhow::Error>,
        ) {
            if let Some(h) = h {
                match h.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        first.get_or_insert(e.context(format!("{what} thread")));
                    }
                    Err(_) => {
                        first.get_or_insert(anyhow::anyhow!("{what} thread panicked"));
                    }
                }
            }
        }
        let mut first = None;
        self.stop_input.store(true, Ordering::Release);
        if let Some(rt) = self.runtime.take() {
            if let Some(s) = self.supervisor.take() {
                let _ = rt.block_on(s);
            }
            if let Some(h) = self.http.take() {
                match rt.block_on(h) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        first.get_or_insert(e.context("http server"));
                    }
                    Err(e) => {
                        first.get_or_insert(anyhow::anyhow!("http server task: {e}"));
                    }
                }
            }
            // The demo clients log out while the acceptor still runs.
            for h in std::mem::take(&mut self.demo) {
                join(Some(h), "demo", &mut first);
            }
            // FIX sessions are closed by the gateway, then the runtime goes.
            let g = self.gateway.lock().expect("gateway slot").take();
            if let Some(g) = g {
                let _guard = rt.enter();
                g.shutdown();
                rt.block_on(tokio::time::sleep(std::time::Duration::from_millis(200)));
            }
            // Followers stop; what the proposer still holds is not committed and not lost to
            // a FIX client (it resends it to the next leader).
            if let (Some(cl), Some(rrt)) = (self.cluster.take(), self.raft_runtime.take()) {
                cl.set_serving(false);
                rrt.block_on(cl.shutdown());
                rrt.shutdown_timeout(std::time::Duration::from_secs(2));
            }
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        }
        for h in std::mem::take(&mut self.demo) {
            join(Some(h), "demo", &mut first);
        }
        self.stop_seq.store(true, Ordering::Release);
        if self.matching.is_none() {
            // Sequencer and matching share a thread: it drains both, in order.
            self.stop_match.store(true, Ordering::Release);
        }
        join(self.sequencer.take(), "sequencer", &mut first);
        self.stop_match.store(true, Ordering::Release);
        join(self.matching.take(), "matching", &mut first);
        self.stop_followers.store(true, Ordering::Release);
        for h in std::mem::take(&mut self.followers) {
            join(Some(h), "follower", &mut first);
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
