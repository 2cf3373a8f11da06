//! The FIX 4.2 gateway: the only crate with sockets.
//!
//! - Listeners (TCP with TCP_NODELAY, and TLS through rustls) accept connections under a
//!   per-IP connection cap and a cap on connections that have not logged on (per IP and in
//!   total); a TLS handshake must finish in time and a Logon must arrive in time.
//! - Each connection is one tokio task: it frames and parses inbound bytes (`fix-codec`),
//!   drives the configured session's state machine (`fix-session`), applies the session's
//!   governor rate limit, and turns NewOrderSingle, OrderCancelRequest and
//!   OrderCancelReplaceRequest into SBE events handed to the sequencer (the inbound journal);
//!   OrderStatusRequest is answered from the gateway's own view.
//! - One router thread reads the outbound journal and sends ExecutionReports and
//!   OrderCancelRejects through the sessions (stored for resends, even while a client is away).
//!   A connection whose unsent bytes pass `outbound_bytes_max` is a slow consumer and is dropped.
//!
//! Orders are acknowledged only by the engine's results, which exist only after the inbound
//! event was sequenced into the journal.
//!
//! With `replicated_sessions` (a cluster), the FIX session state is also derived from the
//! inbound journal (`SessionCheckpointEvent`s), so a gateway started on another node's copy of
//! the journals, with an empty store, resumes every session: see the `replicated` module.

mod config;
mod events;
mod orders;
mod replicated;
mod router;
mod server;
mod shared;

pub use config::{
    tls_from_pem_files, tls_server_config, GatewayConfig, InstrumentEntry, PipelineAssist,
    RateLimit, RateLimitAction, ReplicatedSessions, SessionEntry,
};
pub use shared::GatewayStats;

use crate::orders::{ClOrdId, Entry, Order, Request, SessionOrders, CL_ORD_ID_LEN_MAX};
use crate::shared::{Shared, Slot, SlotInner};
use fix_codec::Dictionary;
use fix_session::{FileStore, Session};
use journal::Journal;
use sbe_order_entry as sbe;
use sbe_order_entry::{message_header_codec::ENCODED_LENGTH as HDR, ReadBuf};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Operating errors of the gateway (protocol faults are answered on the wire, not here).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    #[error("dictionary: {0}")]
    Dictionary(#[from] fix_codec::DictionaryError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("journal: {0}")]
    Journal(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("configuration: {0}")]
    Config(String),
}

/// Nanoseconds since the Unix epoch (the only clock the gateway reads).
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Why a connection closes after a send failed: the session's MsgSeqNum reservation ran out
/// (it sent a Logout saying so) or the message store failed.
pub(crate) fn close_reason(session: &Session<FileStore>, stats: &GatewayStats) -> &'static str {
    if session.sender_seq_exhausted() {
        stats
            .seq_reservation_exhausted
            .fetch_add(1, Ordering::Relaxed);
        "sender MsgSeqNum reservation exhausted"
    } else {
        "message store failure"
    }
}

/// A running gateway.
pub struct Gateway {
    shared: Arc<Shared>,
    pub tcp_addr: Option<SocketAddr>,
    pub tls_addr: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    router: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// Loads the dictionary, opens the session stores, rebuilds the order maps from the
    /// journals, binds the listeners and starts the accept tasks (on the current tokio
    /// runtime) and the router thread.
    pub async fn start(
        config: GatewayConfig,
        inbound: &Journal,
        outbound: &Journal,
    ) -> Result<Gateway, GatewayError> {
        let dict = Arc::new(Dictionary::from_file(&config.dictionary_path)?);
        for i in &config.instruments {
            if i.tick_size <= 0 || i.lot_size == 0 || i.price_decimals > 18 || i.symbol.is_empty() {
                return Err(GatewayError::Config(format!(
                    "instrument {}: tick_size and lot_size must be positive, price_decimals at most 18",
                    i.symbol
                )));
            }
        }
        if config.body_len_max == 0
            || config.fields_max < 8
            || config.outbound_bytes_max == 0
            || config.router_batch_max == 0
        {
            return Err(GatewayError::Config("body_len_max, fields_max, outbound_bytes_max and router_batch_max must be positive".into()));
        }
        if let Some(r) = &config.replicated_sessions {
            if r.sender_seq_reservation == 0 {
                return Err(GatewayError::Config(
                    "replicated_sessions.sender_seq_reservation must be positive".into(),
                ));
            }
            // A sequence reset moves the numbers back under the reservations of the journal;
            // a takeover would then jump past what the client expects. Not supported together.
            if let Some(e) = config.sessions.iter().find(|e| {
                e.fix.reset_on_logon
                    || e.fix.reset_on_logout
                    || e.fix.reset_on_disconnect
                    || e.fix.reset_time_utc_secs.is_some()
            }) {
                return Err(GatewayError::Config(format!(
                    "session {}: sequence resets cannot be combined with replicated sessions",
                    e.session_id
                )));
            }
        }
        let now = now_ns();
        let mut ids = std::collections::HashSet::new();
        let mut slots = Vec::new();
        for e in &config.sessions {
            if e.session_id == 0 || e.session_id >= 1 << 24 || !ids.insert(e.session_id) {
                return Err(GatewayError::Config(format!(
                    "session id {} invalid or repeated",
                    e.session_id
                )));
            }
            let name = format!("{}-{}", e.fix.sender_comp_id, e.fix.target_comp_id);
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            {
                return Err(GatewayError::Config(format!(
                    "CompIDs of session {} must be [A-Za-z0-9._]",
                    e.session_id
                )));
            }
            let store = FileStore::open(
                &config.store_dir,
                &name,
                config.store_messages_max,
                config.store_sync,
                now,
            )?;
            let inner = SlotInner {
                session: Session::new(e.fix.clone(), Arc::clone(&dict), store),
                orders: SessionOrders::with_period(
                    e.session_id,
                    e.account_id,
                    e.cancel_on_disconnect,
                    config.orders_per_session_max,
                    e.fix.period_start_ns(now),
                ),
                conn: None,
                scratch: Vec::with_capacity(4096),
                logged_on: false,
                flush_pending: false,
                ha: None,
            };
            slots.push(Slot::new(e.clone(), inner));
        }
        let publisher = inbound
            .publisher()
            .ok_or_else(|| GatewayError::Journal("the inbound journal is read-only".into()))?;
        std::fs::create_dir_all(&config.store_dir)?;
        let cursor_path = config.store_dir.join("router.cursor");
        let cursor_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&cursor_path)?;
        let raw = std::fs::read(&cursor_path)?;
        let mut cursor = if raw.len() >= 8 {
            u64::from_le_bytes(raw[..8].try_into().expect("8 bytes"))
        } else {
            0
        };
        let replicated = config.replicated_sessions;
        let tcp_listen = config.tcp_listen;
        let tls_listen = config.tls_listen;
        let tls = config.tls.clone();
        let shared = Arc::new(Shared::new(
            config,
            slots,
            publisher,
            cursor_file,
            outbound.doorbell(),
        ));
        if let Some(r) = replicated {
            cursor = start_replicated(&shared, &r, inbound, outbound, cursor)?;
        } else {
            rebuild(&shared, inbound, outbound, cursor, None)?;
        }
        shared.save_cursor(cursor);
        shared.routed_seq.store(cursor, Ordering::Release);

        let mut tasks = Vec::new();
        let mut tcp_addr = None;
        let mut tls_addr = None;
        if let Some(addr) = tcp_listen {
            let l = tokio::net::TcpListener::bind(addr).await?;
            tcp_addr = Some(l.local_addr()?);
            tasks.push(tokio::spawn(server::accept_tcp(Arc::clone(&shared), l)));
        }
        if let Some(addr) = tls_listen {
            let cfg = tls.ok_or_else(|| {
                GatewayError::Config("tls_listen without a TLS configuration".into())
            })?;
            let l = tokio::net::TcpListener::bind(addr).await?;
            tls_addr = Some(l.local_addr()?);
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
            tasks.push(tokio::spawn(server::accept_tls(
                Arc::clone(&shared),
                l,
                acceptor,
            )));
        }
        let reader = outbound
            .reader(cursor + 1)
            .map_err(|e| GatewayError::Journal(e.to_string()))?;
        let committed = match replicated {
            Some(_) => {
                let takeover = shared.takeover_inbound_seq.load(Ordering::Relaxed);
                let r = inbound
                    .reader(takeover + 1)
                    .map_err(|e| GatewayError::Journal(e.to_string()))?;
                Some(router::Committed::new(r, takeover))
            }
            None => None,
        };
        if let Some(a) = shared.config.pipeline_assist.as_ref() {
            a.set_router_bell(Arc::clone(&shared.router_bell));
        }
        let core = router::RouterCore::new(&shared, reader, committed);
        if shared.router.set(std::sync::Mutex::new(core)).is_err() {
            unreachable!("the router's state is set once, here");
        }
        let s = Arc::clone(&shared);
        let router = std::thread::Builder::new()
            .name("gateway-router".into())
            .spawn(move || router::run(s))?;
        Ok(Gateway {
            shared,
            tcp_addr,
            tls_addr,
            tasks,
            router: Some(router),
        })
    }

    /// Counters.
    pub fn stats(&self) -> &GatewayStats {
        &self.shared.stats
    }

    /// Panics on a thread while it holds the router's state, as a bug in routing would: for
    /// tests of what follows (the router stops and says so).
    #[doc(hidden)]
    pub fn panic_while_routing_for_tests(&self) {
        let shared = self.shared.clone();
        let _ = std::thread::spawn(move || {
            let _held = shared.router.get().map(|m| m.lock());
            panic!("a routing bug, on purpose");
        })
        .join();
    }

    /// The next sequence numbers (sender, target) of a session.
    pub fn session_seq_nums(&self, session_id: u32) -> Option<(u64, u64)> {
        let slot = self.shared.slot(session_id)?;
        let inner = slot.lock();
        Some((
            inner.session.next_sender_seq(),
            inner.session.next_target_seq(),
        ))
    }

    /// Stops accepting, stops the router; connected sessions are dropped.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Stops at once, as a crash would: no Logout, nothing more written or published (no
    /// disconnect events, no checkpoints); the connections are dropped. For a node that must
    /// stop serving immediately (it lost the leadership) and for failover tests.
    pub fn abort(mut self) {
        self.shared.aborted.store(true, Ordering::Release);
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(r) = self.router.take() {
            let _ = r.join();
        }
        for slot in &self.shared.slots {
            slot.notify.notify_one();
        }
    }

    fn stop(&mut self) {
        if self.shared.aborted.load(Ordering::Acquire) {
            return;
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(r) = self.router.take() {
            let _ = r.join();
        }
        // Every connected session is logged out (a Logout with the reason, flushed before the
        // connection closes), as the FIX logout handshake asks of an acceptor going down.
        for slot in &self.shared.slots {
            let mut inner = slot.lock();
            let inner_ref = &mut *inner;
            if let Some(c) = inner_ref.conn.as_mut() {
                if inner_ref.logged_on {
                    let _ =
                        inner_ref
                            .session
                            .logout(Some(b"gateway shutdown"), now_ns(), &mut c.out);
                }
                c.close = Some("gateway shutdown");
            }
            drop(inner);
            slot.notify.notify_one();
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Rebuilds the per-session order maps from the journals: every order and request from the
/// inbound journal (their ClOrdIDs are in the events), then the outbound results up to the
/// router's cursor, applied without sending.
///
/// With `collect` (replicated sessions), the sessions' checkpoints are collected from the
/// inbound journal, the outbound results are rendered as the reports the router sent (kept
/// for a takeover's redelivery), and `cursor` is ignored when the journal holds checkpoints:
/// the router then starts after the outbound journal's end. Returns the last inbound sequence
/// read and the router's start position.
fn rebuild(
    shared: &Shared,
    inbound: &Journal,
    outbound: &Journal,
    cursor: u64,
    mut collect: Option<(
        &ReplicatedSessions,
        &mut std::collections::HashMap<u32, replicated::Collected>,
        &mut std::collections::HashSet<u32>,
    )>,
) -> Result<(u64, u64), GatewayError> {
    let now = now_ns();
    let jerr = |e: &dyn std::fmt::Display| GatewayError::Journal(e.to_string());
    // Fixed first: results appended while the journals are read are the router's.
    let outbound_end = outbound.committed_seq();
    let mut inbound_last = 0;
    let mut r = inbound.reader(1).map_err(|e| jerr(&e))?;
    while let Some(f) = r.poll().map_err(|e| jerr(&e))? {
        inbound_last = f.sequence;
        let Ok(h) = sbe::MessageHeaderDecoder::default().wrap(ReadBuf::new(f.payload), 0) else {
            continue;
        };
        match f.template_id {
            sbe::session_checkpoint_event_codec::SBE_TEMPLATE_ID => {
                let Some((config, collected, _)) = collect.as_mut() else {
                    continue;
                };
                let Ok(d) =
                    sbe::session_checkpoint_event_codec::SessionCheckpointEventDecoder::default()
                        .header(h, HDR)
                else {
                    continue;
                };
                if shared.slot(d.session_id()).is_none() {
                    continue;
                }
                collected.entry(d.session_id()).or_default().observe(
                    config,
                    u64::from(d.sender_seq_num_reserved()),
                    u64::from(d.next_sender_seq_num()),
                    u64::from(d.next_target_seq_num()),
                    d.routed_outbound_seq(),
                );
            }
            sbe::new_order_event_codec::SBE_TEMPLATE_ID => {
                let Ok(mut d) =
                    sbe::new_order_event_codec::NewOrderEventDecoder::default().header(h, HDR)
                else {
                    continue;
                };
                let (sid, key, iid, received) = (
                    d.session_id(),
                    d.client_order_id(),
                    d.instrument_id(),
                    d.received_time(),
                );
                let (Some(slot), Some(inst)) = (shared.slot(sid), shared.instruments.by_id(iid))
                else {
                    continue;
                };
                let order = Order {
                    cl_ord_id: ClOrdId::new(b""),
                    instrument: inst,
                    side: if d.side() == sbe::Side::Buy {
                        b'1'
                    } else {
                        b'2'
                    },
                    ord_type: if d.ord_type() == sbe::OrdType::Market {
                        b'1'
                    } else {
                        b'2'
                    },
                    tif: match d.time_in_force() {
                        sbe::TimeInForce::GoodTillCancel => b'1',
                        sbe::TimeInForce::ImmediateOrCancel => b'3',
                        sbe::TimeInForce::FillOrKill => b'4',
                        _ => b'0',
                    },
                    price: d.price(),
                    order_qty: d.quantity(),
                    cum_qty: 0,
                    notional: 0,
                    order_id: None,
                    status: b'A',
                    pending: None,
                };
                let Ok(cl) = d.cl_ord_id() else { continue };
                if cl.len() > CL_ORD_ID_LEN_MAX {
                    // Not one this gateway could have accepted.
                    continue;
                }
                let order = Order {
                    cl_ord_id: ClOrdId::new(cl),
                    ..order
                };
                let period = slot.entry.fix.period_start_ns(now);
                slot.lock()
                    .orders
                    .observe_key(key, cl, Entry::Order(order), received >= period);
            }
            sbe::cancel_order_event_codec::SBE_TEMPLATE_ID
            | sbe::replace_order_event_codec::SBE_TEMPLATE_ID => {
                let is_replace = f.template_id == sbe::replace_order_event_codec::SBE_TEMPLATE_ID;
                let (sid, key, target, received, cl) = if is_replace {
                    let Ok(mut d) =
                        sbe::replace_order_event_codec::ReplaceOrderEventDecoder::default()
                            .header(h, HDR)
                    else {
                        continue;
                    };
                    let v = (
                        d.session_id(),
                        d.client_order_id(),
                        d.orig_client_order_id(),
                        d.received_time(),
                    );
                    let Ok(cl) = d.cl_ord_id() else { continue };
                    (v.0, v.1, v.2, v.3, cl.to_vec())
                } else {
                    let Ok(mut d) =
                        sbe::cancel_order_event_codec::CancelOrderEventDecoder::default()
                            .header(h, HDR)
                    else {
                        continue;
                    };
                    let v = (
                        d.session_id(),
                        d.client_order_id(),
                        d.orig_client_order_id(),
                        d.received_time(),
                    );
                    let Ok(cl) = d.cl_ord_id() else { continue };
                    (v.0, v.1, v.2, v.3, cl.to_vec())
                };
                let Some(slot) = shared.slot(sid) else {
                    continue;
                };
                if cl.len() > CL_ORD_ID_LEN_MAX {
                    continue;
                }
                let current = received >= slot.entry.fix.period_start_ns(now);
                let mut inner = slot.lock();
                inner.orders.observe_key(
                    key,
                    &cl,
                    Entry::Request(Request {
                        cl_ord_id: ClOrdId::new(&cl),
                        target,
                    }),
                    current,
                );
                if let Some(Entry::Order(o)) = inner.orders.entries.get_mut(&target) {
                    o.pending = Some(key);
                }
            }
            sbe::session_event_codec::SBE_TEMPLATE_ID => {
                let Some((_, _, logged_on)) = collect.as_mut() else {
                    continue;
                };
                let Ok(d) = sbe::session_event_codec::SessionEventDecoder::default().header(h, HDR)
                else {
                    continue;
                };
                if d.event_type() == sbe::SessionEventType::LoggedOn {
                    logged_on.insert(d.session_id());
                } else {
                    logged_on.remove(&d.session_id());
                }
            }
            _ => {}
        }
    }
    // A takeover (checkpoints in the journal): everything in the outbound journal is history,
    // and whatever of it the client may have missed is redelivered.
    let cursor = match &collect {
        Some((_, collected, _)) if !collected.is_empty() => outbound_end,
        _ => cursor,
    };
    // Only the newest `redelivery_reports_max` reports of a session can be redelivered: count
    // them first, so the older ones are replayed without being rendered.
    let mut unrendered: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    if let Some((config, collected, _)) = collect.as_ref() {
        let mut r = outbound.reader(1).map_err(|e| jerr(&e))?;
        while let Some(f) = r.poll().map_err(|e| jerr(&e))? {
            if f.sequence > cursor {
                break;
            }
            if let Some(sid) = router::session_of(f.template_id, f.payload) {
                if collected.contains_key(&sid) {
                    *unrendered.entry(sid).or_default() += 1;
                }
            }
        }
        for n in unrendered.values_mut() {
            *n = n.saturating_sub(config.redelivery_reports_max);
        }
    }
    let mut r = outbound.reader(1).map_err(|e| jerr(&e))?;
    let mut writer = fix_codec::Writer::new(1024);
    while let Some(f) = r.poll().map_err(|e| jerr(&e))? {
        if f.sequence > cursor {
            break;
        }
        let older = router::session_of(f.template_id, f.payload)
            .and_then(|sid| unrendered.get_mut(&sid))
            .filter(|n| **n > 0)
            .map(|n| *n -= 1)
            .is_some();
        match collect.as_mut() {
            Some((config, collected, _)) if !older => {
                router::replay_rendered(shared, &f, &mut writer, &mut |sid, rendered| {
                    if let Some(c) = collected.get_mut(&sid) {
                        c.keep_report(config, rendered);
                    }
                });
            }
            Some(_) => {
                // Too old to be kept for redelivery.
                if let Some(sid) = router::session_of(f.template_id, f.payload) {
                    if let Some((_, collected, _)) = collect.as_mut() {
                        if let Some(c) = collected.get_mut(&sid) {
                            c.drop_report(f.sequence);
                        }
                    }
                }
                router::route(shared, &f, false, false);
            }
            None => {
                router::route(shared, &f, false, false);
            }
        }
    }
    Ok((inbound_last, cursor))
}

/// Start with replicated sessions: rebuilds, resumes every session from the journal's
/// checkpoints, publishes a start checkpoint with a new reservation for each and waits until
/// they are in the inbound journal (nothing is sent before). Returns the router's start.
fn start_replicated(
    shared: &Shared,
    config: &ReplicatedSessions,
    inbound: &Journal,
    outbound: &Journal,
    cursor: u64,
) -> Result<u64, GatewayError> {
    let mut collected = std::collections::HashMap::new();
    let mut logged_on = std::collections::HashSet::new();
    let (inbound_last, cursor) = rebuild(
        shared,
        inbound,
        outbound,
        cursor,
        Some((config, &mut collected, &mut logged_on)),
    )?;
    let takeover = !collected.is_empty();
    let window = u64::from(config.sender_seq_reservation);
    for slot in &shared.slots {
        let sid = slot.entry.session_id;
        let mut inner = slot.lock();
        let inner = &mut *inner;
        let mut ha = replicated::SlotReplication {
            config: *config,
            reserved: 0,
            published: (0, 0, 0),
            routed_floor: None,
            redelivery: None,
        };
        if let Some(c) = collected.remove(&sid) {
            // One past every reservation (and past this node's own store): never below what
            // any node sent, and always a gap, so the client asks for what it missed.
            let next_sender = inner.session.next_sender_seq().max(c.reserved_max) + 1;
            inner
                .session
                .resume_seq_nums(next_sender, c.last_target.max(1))?;
            ha.routed_floor = Some(c.last_routed);
            ha.redelivery = Some(c.redelivery);
        } else if takeover {
            // A session no checkpoint names (configured since): no node served it with
            // replicated sessions, so nothing is kept to redeliver; its checkpoints claim
            // nothing routed until its first ResendRequest here.
            ha.routed_floor = Some(0);
            ha.redelivery = Some(replicated::Redelivery::default());
        }
        let reserved = inner.session.next_sender_seq() + window;
        if !replicated::publish_checkpoint(
            shared,
            sid,
            &inner.session,
            &mut ha,
            reserved,
            sbe::SessionCheckpointReason::Start,
        ) {
            return Err(GatewayError::Journal(
                "the sequencer refused a start checkpoint".into(),
            ));
        }
        inner.session.set_sender_seq_limit(reserved);
        inner.ha = Some(ha);
        // Connected to the node that failed: its connection dropped, and nobody said so. Cancel
        // on disconnect applies as it would have there.
        if takeover && logged_on.contains(&sid) {
            let mut buf = [0_u8; 256];
            events::publish_session_event(
                shared,
                &inner.session,
                &inner.orders,
                sbe::SessionEventType::Disconnected,
                &mut buf,
            );
            if inner.orders.cancel_on_disconnect {
                events::publish_mass_cancel(shared, &inner.orders, &mut buf);
            }
        }
    }
    wait_for_checkpoints(shared, config, inbound, inbound_last)?;
    shared
        .takeover_inbound_seq
        .store(inbound_last, Ordering::Relaxed);
    Ok(cursor)
}

/// Waits until every session's start checkpoint is in the inbound journal after `from`.
fn wait_for_checkpoints(
    shared: &Shared,
    config: &ReplicatedSessions,
    inbound: &Journal,
    from: u64,
) -> Result<(), GatewayError> {
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_millis(config.start_commit_timeout_ms);
    let mut pending: std::collections::HashSet<u32> =
        shared.slots.iter().map(|s| s.entry.session_id).collect();
    let mut r = inbound
        .reader(from + 1)
        .map_err(|e| GatewayError::Journal(e.to_string()))?;
    while !pending.is_empty() {
        match r.poll().map_err(|e| GatewayError::Journal(e.to_string()))? {
            Some(f) if f.template_id == sbe::session_checkpoint_event_codec::SBE_TEMPLATE_ID => {
                let sid = sbe::MessageHeaderDecoder::default()
                    .wrap(ReadBuf::new(f.payload), 0)
                    .ok()
                    .and_then(|h| {
                        sbe::session_checkpoint_event_codec::SessionCheckpointEventDecoder::default(
                        )
                        .header(h, HDR)
                        .ok()
                    })
                    .map(|d| d.session_id());
                if let Some(sid) = sid {
                    pending.remove(&sid);
                }
            }
            Some(_) => {}
            None => {
                if std::time::Instant::now() >= deadline {
                    return Err(GatewayError::Journal(format!(
                        "the start checkpoints of {} session(s) are not in the inbound journal after {} ms",
                        pending.len(),
                        config.start_commit_timeout_ms
                    )));
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
    Ok(())
}
