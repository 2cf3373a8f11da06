//! Gateway configuration: listeners, sessions, instruments and every bound.

use fix_session::SessionConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// What happens when a session exceeds its message rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimitAction {
    /// The application message is refused with a BusinessMessageReject (380=0, Text says why);
    /// session-level messages are still processed.
    Reject,
    /// The session is logged out and disconnected.
    Logout,
}

/// A per-session message rate (governor's GCRA): `per_second` sustained, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
    pub action: RateLimitAction,
}

/// One configured FIX session.
#[derive(Clone, Debug)]
pub struct SessionEntry {
    /// The session number carried in SBE events (1..; 0 is the operator).
    pub session_id: u32,
    /// The engine account every order of this session trades for.
    pub account_id: u32,
    pub fix: SessionConfig,
    /// Publish a MassCancelEvent (scope Session, reason Disconnect) when the connection drops.
    pub cancel_on_disconnect: bool,
    pub rate_limit: RateLimit,
}

/// A tradable symbol and how its FIX prices and quantities map to the engine's integers.
#[derive(Clone, Debug)]
pub struct InstrumentEntry {
    pub symbol: String,
    pub instrument_id: u32,
    /// Decimal places of the engine's price mantissa (price_scale = 10^price_decimals).
    pub price_decimals: u32,
    /// Price mantissas must be multiples of this.
    pub tick_size: i64,
    /// Quantities must be multiples of this.
    pub lot_size: u64,
}

/// FIX session state derived from the replicated inbound journal (high availability).
///
/// The gateway publishes `SessionCheckpointEvent`s into the inbound journal (at start, at
/// logon, every `checkpoint_interval_ms` while something changed, at disconnect, and when the
/// next outbound MsgSeqNum passes half of the reserved window). A gateway started on a copy of
/// the journals (a new leader, with an empty or stale `store_dir`) resumes every session from
/// them: its outbound numbers jump past every reservation, its inbound numbers are those of the
/// last checkpoint, and ExecutionReports the old leader may not have delivered are sent again
/// with PossResend(97)=Y. See `docs/fix-rules-of-engagement.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicatedSessions {
    /// Outbound MsgSeqNums reserved per checkpoint: the gateway never sends a number at or
    /// above the published reservation (it logs the session out instead).
    pub sender_seq_reservation: u32,
    /// How often the checkpoint of a session that changed is published.
    pub checkpoint_interval_ms: u64,
    /// ExecutionReports per session kept at start for redelivery (the newest); older ones
    /// cannot be redelivered (counted in `GatewayStats::redelivery_truncated`).
    pub redelivery_reports_max: usize,
    /// Checkpoints per session kept at start to find where redelivery begins.
    pub redelivery_checkpoints_max: usize,
    /// At start, how long to wait for the start checkpoints (the new reservations) to be in
    /// the inbound journal before anything is sent.
    pub start_commit_timeout_ms: u64,
}

impl Default for ReplicatedSessions {
    fn default() -> Self {
        Self {
            sender_seq_reservation: 1_000_000,
            checkpoint_interval_ms: 1_000,
            redelivery_reports_max: 10_000,
            redelivery_checkpoints_max: 10_000,
            start_commit_timeout_ms: 10_000,
        }
    }
}

/// A turn of the stages that carry a published order to the outbound journal, taken by a
/// connection task on its own thread. Implementations must never block: when another thread is
/// running those stages, return at once (that thread does the work).
pub trait PipelineAssist: Send + Sync {
    /// Runs one bounded turn if no other thread is running one: the work done, or None when
    /// another thread is in a turn.
    fn assist(&self) -> Option<usize>;
    /// The bell the router thread parks on with an assist (it is not woken by every commit,
    /// only when results are left for it): the pipeline's own threads must ring it after
    /// every turn of theirs that produced results. Called once, at the gateway's start.
    fn set_router_bell(&self, bell: Arc<journal::Doorbell>);
}

/// Everything the gateway needs at start-up.
#[derive(Clone)]
pub struct GatewayConfig {
    /// Plain TCP listen address, if any.
    pub tcp_listen: Option<SocketAddr>,
    /// TLS listen address and server configuration, if any.
    pub tls_listen: Option<SocketAddr>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The data dictionary file (QuickFIX format).
    pub dictionary_path: PathBuf,
    /// Directory of the per-session message stores.
    pub store_dir: PathBuf,
    pub store_messages_max: usize,
    /// fdatasync every stored message (power-loss durability of sent messages).
    pub store_sync: bool,
    /// The gateway's cursor into the outbound journal lives here too.
    pub sessions: Vec<SessionEntry>,
    pub instruments: Vec<InstrumentEntry>,
    /// Largest BodyLength accepted; larger messages disconnect before they are buffered.
    pub body_len_max: usize,
    /// Fields per message at most.
    pub fields_max: usize,
    /// ClOrdID length at most (bytes; ClOrdIDs are held inline, so values above 64 act as
    /// 64). A longer one is rejected.
    pub cl_ord_id_len_max: usize,
    /// Orders (and cancel/replace requests) remembered per session.
    pub orders_per_session_max: usize,
    /// A connection must send a valid Logon within this time.
    pub logon_timeout_ms: u64,
    /// Connections from one IP address at once.
    pub connections_per_ip_max: usize,
    /// Connections not yet logged on, from one IP address and in total.
    pub unauthenticated_per_ip_max: usize,
    pub unauthenticated_max: usize,
    /// A TLS handshake must complete within this time.
    pub tls_handshake_timeout_ms: u64,
    /// Bytes queued for one connection at most; past it the peer is a slow consumer and is
    /// disconnected.
    pub outbound_bytes_max: usize,
    /// Outbound journal frames the router handles per batch.
    pub router_batch_max: usize,
    /// How the router thread waits for engine results: back off to sleeping (the default,
    /// kind to small machines) or spin and yield (lowest latency, costs a core).
    pub router_wait: journal::WaitStrategy,
    /// Whether the matching agent's commits wake the router from its back-off park (the
    /// outbound journal's doorbell; default true). Off, a parked router sleeps out its park.
    pub router_doorbell: bool,
    /// Whether the router thread writes ExecutionReports to plain TCP sockets itself, at the
    /// end of each batch it handles (default true), instead of waking each connection's task
    /// to write them: one thread hand-off fewer per report. The task still writes whatever
    /// the socket does not take at once, and all TLS traffic.
    pub direct_write: bool,
    /// The stages between the hand-off and the outbound journal (sequencer, matching), for a
    /// connection task to run itself after it published orders: see [`PipelineAssist`]. With
    /// it, the task that read an order also routes the results (taking the router's turn when
    /// the router thread is not in the middle of one), so a lone order's ExecutionReport is
    /// written by the thread that read the order, with no thread hand-off at all. None (the
    /// default): the pipeline's own threads do all of it.
    pub pipeline_assist: Option<Arc<dyn PipelineAssist>>,
    /// After a connection's task handled messages, it keeps polling its socket this long
    /// (yielding to the runtime's other tasks between polls) before it lets its thread park:
    /// the next message of an active client is then read without a wake-up of the I/O thread
    /// (tens of microseconds on a VM). Zero (this type's default; the appliance sets 20 µs,
    /// `fix.read_spin_us`): park at once. Polling is gated per
    /// connection by how it pays: a poll that ends without a message makes the next 1, 3, 7,
    /// ... (at most 1,023) turns park at once, and one that catches a message starts over; so
    /// a client that answers within this time (a trading loop) is polled after every message,
    /// and one that sends less often costs one fruitless poll per thousand messages or so.
    pub read_spin: std::time::Duration,
    /// FIX session state derived from the replicated journal; None (the default) for one
    /// node, where the local stores are the truth.
    pub replicated_sessions: Option<ReplicatedSessions>,
}

impl GatewayConfig {
    /// Defaults with no listeners, sessions or instruments.
    pub fn new(dictionary_path: impl Into<PathBuf>, store_dir: impl Into<PathBuf>) -> Self {
        Self {
            tcp_listen: None,
            tls_listen: None,
            tls: None,
            dictionary_path: dictionary_path.into(),
            store_dir: store_dir.into(),
            store_messages_max: 1_000_000,
            store_sync: false,
            sessions: Vec::new(),
            instruments: Vec::new(),
            body_len_max: 4096,
            fields_max: 256,
            cl_ord_id_len_max: 64,
            orders_per_session_max: 1_000_000,
            logon_timeout_ms: 5_000,
            connections_per_ip_max: 16,
            unauthenticated_per_ip_max: 4,
            unauthenticated_max: 256,
            tls_handshake_timeout_ms: 5_000,
            outbound_bytes_max: 4 * 1024 * 1024,
            router_batch_max: 256,
            router_wait: journal::WaitStrategy::Backoff {
                spins_max: 2_000,
                yields_max: 200,
                park_min: std::time::Duration::from_micros(50),
                park_max: std::time::Duration::from_millis(1),
            },
            router_doorbell: true,
            direct_write: true,
            pipeline_assist: None,
            read_spin: std::time::Duration::ZERO,
            replicated_sessions: None,
        }
    }
}

/// Builds a rustls server configuration from PEM files (certificate chain, private key).
pub fn tls_from_pem_files(
    cert_chain: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, crate::GatewayError> {
    use std::io::BufReader;
    let bad = |m: String| crate::GatewayError::Tls(m);
    let mut r = BufReader::new(std::fs::File::open(cert_chain).map_err(|e| bad(e.to_string()))?);
    let certs = rustls_pemfile::certs(&mut r)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let mut r = BufReader::new(std::fs::File::open(key).map_err(|e| bad(e.to_string()))?);
    let key = rustls_pemfile::private_key(&mut r)
        .map_err(|e| bad(e.to_string()))?
        .ok_or_else(|| bad("no private key in the file".into()))?;
    tls_server_config(certs, key)
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3) from DER certificates.
pub fn tls_server_config(
    certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, crate::GatewayError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::GatewayError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| crate::GatewayError::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}
