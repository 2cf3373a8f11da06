//! Configuration: TOML through serde, with the embedded default as the base.
//!
//! A user file is merged over the embedded default (tables key by key, arrays replaced whole),
//! then deserialised with unknown keys refused, then checked for meaning. Every error names the
//! key and the problem.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The embedded default configuration, with comments.
pub const DEFAULT_TOML: &str = include_str!("default-config.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data: DataConfig,
    pub journal: JournalSection,
    pub snapshots: SnapshotSection,
    pub reporter: ReporterSection,
    pub threads: ThreadsConfig,
    pub http: HttpConfig,
    pub fix: FixConfig,
    pub market_data: MarketDataConfig,
    pub cluster: ClusterSection,
    pub engine: EngineSection,
    pub instruments: Vec<InstrumentConfig>,
    pub accounts: Vec<AccountConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DurabilityName {
    Memory,
    Async,
    Sync,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    pub segment_size_bytes: u64,
    pub segments_max: u64,
    pub durability: DurabilityName,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReporterSection {
    pub postgres_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSection {
    pub every_events: u64,
    pub keep_max: usize,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IdleName {
    Backoff,
    SpinYield,
    BusySpin,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreadsConfig {
    pub idle: IdleName,
    pub sequencer_and_matching_together: bool,
    /// With `sequencer_and_matching_together`: FIX connection tasks run the sequencer +
    /// matching duty cycle and the router after reading orders (`gateway::PipelineAssist`).
    pub io_assist: bool,
    /// Nice value (0..=19) of the threads off the order path: the replica, the reporters and
    /// the SSE feeder. Under overload the order path's threads get the CPU first.
    pub off_path_nice: i32,
    pub sequencer: AgentThread,
    pub matching: AgentThread,
    pub market_data: AgentThread,
    pub replica: AgentThread,
    pub reporter: AgentThread,
}

/// One agent's thread: its idle strategy ("" = `threads.idle`) and CPU (-1 = not pinned).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentThread {
    pub idle: String,
    pub cpu: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    pub body_bytes_max: usize,
    pub concurrency_max: usize,
    pub request_timeout_ms: u64,
    pub header_read_timeout_ms: u64,
    pub connections_max: usize,
    pub order_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixConfig {
    pub enabled: bool,
    pub comp_id: String,
    pub tcp_listen: String,
    pub tls_listen: String,
    pub tls_cert: String,
    pub tls_key: String,
    pub dictionary: String,
    pub heartbeat_secs_min: u64,
    pub heartbeat_secs_max: u64,
    pub sending_time_tolerance_secs: u64,
    pub logon_timeout_ms: u64,
    pub tls_handshake_timeout_ms: u64,
    pub connections_per_ip_max: usize,
    pub unauthenticated_per_ip_max: usize,
    pub unauthenticated_max: usize,
    pub body_bytes_max: usize,
    pub outbound_bytes_max: usize,
    pub store_sync: bool,
    /// The gateway's router writes ExecutionReports to plain TCP sockets itself (see
    /// `gateway::GatewayConfig::direct_write`).
    pub direct_write: bool,
    /// Microseconds a connection keeps polling its socket after handling messages before its
    /// I/O thread may park (`gateway::GatewayConfig::read_spin`); 0: park at once.
    pub read_spin_us: u64,
    pub sessions: Vec<FixSessionConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixSessionConfig {
    pub session_id: u32,
    pub target_comp_id: String,
    pub account: u32,
    #[serde(default)]
    pub password: String,
    pub cancel_on_disconnect: bool,
    pub reset_on_logon: bool,
    pub rate_per_second: u32,
    pub rate_burst: u32,
    pub rate_action: String,
}

/// Decimal places of a power-of-ten price scale (100 -> 2); validated before use.
fn decimals_of(mut scale: i64) -> u32 {
    let mut d = 0;
    while scale > 1 && scale % 10 == 0 {
        scale /= 10;
        d += 1;
    }
    d
}

/// The FIX 4.2 data dictionary built into the binary.
pub const FIX42_XML: &str = include_str!("../../../fix-dictionaries/FIX42.xml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketDataConfig {
    pub enabled: bool,
    pub group: std::net::Ipv4Addr,
    pub port: u16,
    pub group_b: String,
    pub retransmit_listen: std::net::SocketAddrV4,
    pub tcp_listen: String,
    pub l2_depth: usize,
    pub packet_size_max: usize,
    pub heartbeat_ms: u64,
    pub snapshot_interval_ms: u64,
    pub history_packets_max: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    pub enabled: bool,
    pub node_id: u64,
    pub peers: Vec<PeerConfig>,
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub log_fsync: bool,
    pub snapshot_every_entries: u64,
    pub fence_ms: u64,
    pub fix_sender_seq_reservation: u32,
    pub fix_checkpoint_interval_ms: u64,
}

/// One node of the cluster.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub id: u64,
    pub raft: String,
    #[serde(default)]
    pub http: String,
    #[serde(default)]
    pub fix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    pub orders_max: u32,
    pub levels_per_side_max: u32,
    pub accounts_max: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentConfig {
    pub id: u32,
    pub symbol: String,
    pub tick_size: i64,
    pub lot_size: u64,
    pub price_scale: i64,
    pub reference_price: i64,
    pub band_bps: u32,
    pub quantity_max: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub id: u32,
    pub api_key: String,
    #[serde(default)]
    pub cash: i64,
    #[serde(default)]
    pub positions: BTreeMap<String, i64>,
}

/// A configuration problem: the key it concerns and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

fn err<T>(key: impl Into<String>, problem: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        key: key.into(),
        problem: problem.into(),
    })
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(bv) if bv.is_table() && v.is_table() => merge(bv, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

impl Config {
    /// The embedded default.
    pub fn embedded() -> Config {
        Config::from_toml(DEFAULT_TOML, "embedded default")
            .expect("the embedded default configuration is valid")
    }

    /// Parses `text` (from `origin`, named in errors) merged over the embedded default.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut base: toml::Value = toml::from_str(DEFAULT_TOML).map_err(|e| ConfigError {
            key: "(embedded default)".into(),
            problem: e.to_string(),
        })?;
        let over: toml::Value = toml::from_str(text).map_err(|e| ConfigError {
            key: origin.to_string(),
            problem: e.message().to_string()
                + &e.span()
                    .map(|s| format!(" (at byte {})", s.start))
                    .unwrap_or_default(),
        })?;
        merge(&mut base, over);
        let config: Config = serde_path_to_error::deserialize(base).map_err(|e| {
            let path = e.path().to_string();
            ConfigError {
                key: if path == "." {
                    origin.to_string()
                } else {
                    format!("{origin}: {path}")
                },
                problem: e.into_inner().message().to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a file merged over the embedded default.
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            key: path.display().to_string(),
            problem: format!("cannot read: {e}"),
        })?;
        Config::from_toml(&text, &path.display().to_string())
    }

    /// Checks what types cannot: ranges, uniqueness, references.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.journal.segment_size_bytes < journal::SEGMENT_SIZE_MIN
            || self.journal.segment_size_bytes > journal::SEGMENT_SIZE_MAX
            || self.journal.segment_size_bytes % 4096 != 0
        {
            return err(
                "journal.segment_size_bytes",
                format!(
                    "must be a multiple of 4096 between {} and {}",
                    journal::SEGMENT_SIZE_MIN,
                    journal::SEGMENT_SIZE_MAX
                ),
            );
        }
        if !(0..=19).contains(&self.threads.off_path_nice) {
            return err("threads.off_path_nice", "between 0 and 19");
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i32;
        for (name, t) in [
            ("sequencer", &self.threads.sequencer),
            ("matching", &self.threads.matching),
            ("market_data", &self.threads.market_data),
            ("replica", &self.threads.replica),
            ("reporter", &self.threads.reporter),
        ] {
            if !["", "backoff", "spin-yield", "busy-spin"].contains(&t.idle.as_str()) {
                return err(
                    format!("threads.{name}.idle"),
                    "\"\", \"backoff\", \"spin-yield\" or \"busy-spin\"",
                );
            }
            if t.cpu < -1 || t.cpu >= cpus {
                return err(
                    format!("threads.{name}.cpu"),
                    format!("-1 (not pinned) or a CPU from 0 to {}", cpus - 1),
                );
            }
        }
        if self.snapshots.every_events == 0 {
            return err("snapshots.every_events", "must be positive");
        }
        if self.snapshots.keep_max == 0 {
            return err("snapshots.keep_max", "must be at least 1");
        }
        if self.journal.segments_max < 2 {
            return err("journal.segments_max", "must be at least 2");
        }
        if self.http.body_bytes_max < 256 || self.http.body_bytes_max > 1 << 20 {
            return err("http.body_bytes_max", "must be between 256 and 1048576");
        }
        if self.http.connections_max == 0 || self.http.header_read_timeout_ms == 0 {
            return err(
                "http.connections_max",
                "connections_max and header_read_timeout_ms must be positive",
            );
        }
        if self.http.concurrency_max == 0 {
            return err("http.concurrency_max", "must be positive");
        }
        if self.http.request_timeout_ms == 0 || self.http.order_timeout_ms == 0 {
            return err("http.request_timeout_ms", "timeouts must be positive");
        }
        if self.engine.orders_max == 0 || self.engine.orders_max >= 1 << 30 {
            return err("engine.orders_max", "must be between 1 and 2^30");
        }
        if self.engine.levels_per_side_max == 0 {
            return err("engine.levels_per_side_max", "must be positive");
        }
        if self.instruments.is_empty() {
            return err("instruments", "at least one instrument is needed");
        }
        let mut symbols = std::collections::BTreeSet::new();
        let mut ids = std::collections::BTreeSet::new();
        for (i, ins) in self.instruments.iter().enumerate() {
            let key = |f: &str| format!("instruments[{i}].{f}");
            if ins.id >= 4096 {
                return err(key("id"), "must be below 4096");
            }
            if !ids.insert(ins.id) {
                return err(key("id"), format!("id {} is used twice", ins.id));
            }
            if ins.symbol.is_empty()
                || ins.symbol.len() > 16
                || !ins
                    .symbol
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return err(key("symbol"), "1 to 16 characters among A-Z a-z 0-9 . -");
            }
            if !symbols.insert(ins.symbol.clone()) {
                return err(key("symbol"), format!("'{}' is used twice", ins.symbol));
            }
            if ins.tick_size <= 0 {
                return err(key("tick_size"), "must be positive");
            }
            if ins.lot_size == 0 {
                return err(key("lot_size"), "must be positive");
            }
            if ins.price_scale <= 0 {
                return err(key("price_scale"), "must be positive");
            }
            if ins.price_scale != self.instruments[0].price_scale {
                return err(
                    key("price_scale"),
                    "every instrument uses the same price_scale (one cash balance per account)",
                );
            }
            if ins.reference_price < 0 || ins.reference_price % ins.tick_size != 0 {
                return err(
                    key("reference_price"),
                    "must be a non-negative multiple of tick_size",
                );
            }
            if ins.band_bps == 0 || ins.band_bps > 10_000 {
                return err(key("band_bps"), "must be between 1 and 10000");
            }
            if ins.quantity_max == 0 {
                return err(key("quantity_max"), "must be positive");
            }
        }
        let mut account_ids = std::collections::BTreeSet::new();
        let mut keys = std::collections::BTreeSet::new();
        for (i, a) in self.accounts.iter().enumerate() {
            let key = |f: &str| format!("accounts[{i}].{f}");
            if a.id == 0 || a.id >= self.engine.accounts_max {
                return err(
                    key("id"),
                    format!(
                        "must be between 1 and engine.accounts_max - 1 ({})",
                        self.engine.accounts_max - 1
                    ),
                );
            }
            if !account_ids.insert(a.id) {
                return err(key("id"), format!("account {} is defined twice", a.id));
            }
            if a.api_key.len() < 8 {
                return err(key("api_key"), "must be at least 8 characters");
            }
            if !keys.insert(a.api_key.clone()) {
                return err(key("api_key"), "is used by two accounts");
            }
            if a.cash < 0 {
                return err(key("cash"), "must not be negative");
            }
            for (sym, qty) in &a.positions {
                if !symbols.contains(sym) {
                    return err(
                        key(&format!("positions.{sym}")),
                        "names no configured instrument",
                    );
                }
                if *qty < 0 {
                    return err(key(&format!("positions.{sym}")), "must not be negative");
                }
            }
        }
        self.publisher_config()?;
        self.validate_fix()?;
        self.validate_cluster()?;
        Ok(())
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        if !c.enabled {
            return Ok(());
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, p) in c.peers.iter().enumerate() {
            let key = |k: &str| format!("cluster.peers[{i}].{k}");
            if p.id == 0 || !ids.insert(p.id) {
                return err(key("id"), "must be a positive id, unique among the peers");
            }
            if p.raft.parse::<SocketAddr>().is_err() {
                return err(key("raft"), "an address:port");
            }
            for (k, v) in [("http", &p.http), ("fix", &p.fix)] {
                if !v.is_empty() && v.parse::<SocketAddr>().is_err() {
                    return err(key(k), "an address:port, or \"\"");
                }
            }
        }
        if !ids.contains(&c.node_id) {
            return err("cluster.node_id", "must be the id of one of cluster.peers");
        }
        if self.fix.enabled {
            if let Some(i) = self.fix.sessions.iter().position(|s| s.reset_on_logon) {
                return err(
                    format!("fix.sessions[{i}].reset_on_logon"),
                    "must be false in a cluster: sessions resume on the next leader from the \
                     replicated sequence numbers",
                );
            }
        }
        if c.peers.len() % 2 == 0 {
            return err(
                "cluster.peers",
                "an odd number of nodes (1, 3 or 5): an even one tolerates no more failures \
                 than the odd one below it",
            );
        }
        if c.heartbeat_ms == 0 || c.election_timeout_min_ms <= c.heartbeat_ms * 2 {
            return err(
                "cluster.election_timeout_min_ms",
                "must exceed twice cluster.heartbeat_ms (> 0)",
            );
        }
        if c.election_timeout_max_ms <= c.election_timeout_min_ms {
            return err(
                "cluster.election_timeout_max_ms",
                "must exceed cluster.election_timeout_min_ms",
            );
        }
        if c.snapshot_every_entries == 0 {
            return err("cluster.snapshot_every_entries", "must be positive");
        }
        if c.fix_sender_seq_reservation < 2 || c.fix_checkpoint_interval_ms == 0 {
            return err(
                "cluster.fix_sender_seq_reservation",
                "at least 2, with a positive fix_checkpoint_interval_ms",
            );
        }
        Ok(())
    }

    /// The cluster settings of this node (when `cluster.enabled`).
    pub fn cluster_config(&self) -> cluster::ClusterConfig {
        let c = &self.cluster;
        let peers = c.peers.iter().map(|p| (p.id, p.raft.clone())).collect();
        let mut cc = cluster::ClusterConfig::new(c.node_id, peers, self.data.dir.join("cluster"));
        cc.heartbeat_ms = c.heartbeat_ms;
        cc.election_min_ms = c.election_timeout_min_ms;
        cc.election_max_ms = c.election_timeout_max_ms;
        cc.log_fsync = c.log_fsync;
        cc.snapshot_every = c.snapshot_every_entries;
        cc.fence_ms = c.fence_ms;
        cc
    }

    /// The instrument id of a symbol.
    pub fn instrument_id(&self, symbol: &str) -> Option<u32> {
        self.instruments
            .iter()
            .find(|i| i.symbol == symbol)
            .map(|i| i.id)
    }

    /// The engine configuration these settings describe.
    pub fn engine_config(&self) -> matching::EngineConfig {
        let instruments_max = self.instruments.iter().map(|i| i.id + 1).max().unwrap_or(1);
        let products = self
            .instruments
            .iter()
            .map(|i| {
                let mut p = matching::ProductConfig::simple(i.id, &i.symbol, i.reference_price);
                p.tick_size = i.tick_size;
                p.lot_size = i.lot_size;
                p.price_scale = i.price_scale;
                p.band = matching::Band::Bps(i.band_bps);
                p.quantity_max = i.quantity_max;
                p
            })
            .collect();
        matching::EngineConfig {
            orders_max: self.engine.orders_max,
            order_id_window: (self.engine.orders_max * 2).next_power_of_two(),
            levels_per_side_max: self.engine.levels_per_side_max,
            accounts_max: self.engine.accounts_max,
            instruments_max,
            default_limits: matching::AccountLimits::UNLIMITED,
            products,
        }
    }

    fn journal_config(&self, name: &str) -> journal::JournalConfig {
        let mut c = journal::JournalConfig::in_dir(self.data.dir.join(name));
        c.segment_size = self.journal.segment_size_bytes;
        c.segments_max = self.journal.segments_max;
        c.durability = match self.journal.durability {
            DurabilityName::Memory => journal::Durability::Memory,
            DurabilityName::Async => journal::Durability::AsyncFlush {
                frames_max: 4096,
                interval_max: std::time::Duration::from_millis(10),
            },
            DurabilityName::Sync => journal::Durability::Sync,
        };
        c.reader_wait = self.wait_strategy();
        c
    }

    pub fn inbound_journal(&self) -> journal::JournalConfig {
        let mut c = self.journal_config("inbound");
        // Every event its own time (market-data packets close on a change of event time; a
        // cluster replica stamps a whole batch with the leader's one clock reading).
        c.strictly_increasing_timestamps = true;
        c
    }

    pub fn outbound_journal(&self) -> journal::JournalConfig {
        self.journal_config("outbound")
    }

    fn validate_fix(&self) -> Result<(), ConfigError> {
        let f = &self.fix;
        let ok_id = |s: &str| {
            !s.is_empty()
                && s.len() <= 32
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        };
        if !ok_id(&f.comp_id) {
            return err("fix.comp_id", "1 to 32 characters among A-Z a-z 0-9 . _ -");
        }
        for (k, v) in [
            ("fix.tcp_listen", &f.tcp_listen),
            ("fix.tls_listen", &f.tls_listen),
        ] {
            if !v.is_empty() && v.parse::<std::net::SocketAddr>().is_err() {
                return err(k, "an address:port, or \"\" for none");
            }
        }
        if f.tls_cert.is_empty() != f.tls_key.is_empty() {
            return err("fix.tls_cert", "give both tls_cert and tls_key, or neither");
        }
        if f.read_spin_us > 10_000 {
            return err("fix.read_spin_us", "at most 10000 (10 ms)");
        }
        if f.heartbeat_secs_min == 0 || f.heartbeat_secs_min > f.heartbeat_secs_max {
            return err(
                "fix.heartbeat_secs_min",
                "must be positive and at most heartbeat_secs_max",
            );
        }
        if f.body_bytes_max < 256 || f.outbound_bytes_max < 4096 {
            return err(
                "fix.body_bytes_max",
                "body_bytes_max at least 256, outbound_bytes_max at least 4096",
            );
        }
        for ins in &self.instruments {
            let mut s = ins.price_scale;
            while s > 1 && s % 10 == 0 {
                s /= 10;
            }
            if s != 1 {
                return err(
                    "instruments.price_scale",
                    "FIX prices are decimals: price_scale must be a power of ten",
                );
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        let mut comps = std::collections::BTreeSet::new();
        for (i, s) in f.sessions.iter().enumerate() {
            let key = |k: &str| format!("fix.sessions[{i}].{k}");
            if s.session_id == 0
                || s.session_id >= crate::demo::DEMO_SESSION_BASE
                || !ids.insert(s.session_id)
            {
                return err(
                    key("session_id"),
                    format!(
                        "unique, between 1 and {}",
                        crate::demo::DEMO_SESSION_BASE - 1
                    ),
                );
            }
            if !ok_id(&s.target_comp_id) || !comps.insert(s.target_comp_id.clone()) {
                return err(
                    key("target_comp_id"),
                    "unique, 1 to 32 characters among A-Z a-z 0-9 . _ -",
                );
            }
            if !self.accounts.iter().any(|a| a.id == s.account) {
                return err(
                    key("account"),
                    format!("account {} is not configured", s.account),
                );
            }
            if s.rate_per_second == 0 || s.rate_burst == 0 {
                return err(key("rate_per_second"), "rates must be positive");
            }
            if s.rate_action != "reject" && s.rate_action != "logout" {
                return err(key("rate_action"), "\"reject\" or \"logout\"");
            }
        }
        Ok(())
    }

    /// The gateway's configuration, but for TLS (see `node`).
    pub fn gateway_config(&self) -> gateway::GatewayConfig {
        let f = &self.fix;
        let dict = if f.dictionary.is_empty() {
            self.data.dir.join("FIX42.xml")
        } else {
            PathBuf::from(&f.dictionary)
        };
        let mut g = gateway::GatewayConfig::new(dict, self.data.dir.join("fix"));
        g.tcp_listen = f.tcp_listen.parse().ok();
        g.tls_listen = f.tls_listen.parse().ok();
        g.store_sync = f.store_sync;
        g.direct_write = f.direct_write;
        g.read_spin = std::time::Duration::from_micros(f.read_spin_us);
        g.body_len_max = f.body_bytes_max;
        g.logon_timeout_ms = f.logon_timeout_ms;
        g.tls_handshake_timeout_ms = f.tls_handshake_timeout_ms;
        g.connections_per_ip_max = f.connections_per_ip_max;
        g.unauthenticated_per_ip_max = f.unauthenticated_per_ip_max;
        g.unauthenticated_max = f.unauthenticated_max;
        g.outbound_bytes_max = f.outbound_bytes_max;
        g.router_wait = self.wait_strategy();
        g.instruments = self
            .instruments
            .iter()
            .map(|i| gateway::InstrumentEntry {
                symbol: i.symbol.clone(),
                instrument_id: i.id,
                price_decimals: decimals_of(i.price_scale),
                tick_size: i.tick_size,
                lot_size: i.lot_size,
            })
            .collect();
        g.sessions = f
            .sessions
            .iter()
            .map(|s| {
                let mut fix = fix_session::SessionConfig::new(&f.comp_id, &s.target_comp_id);
                fix.heartbeat_secs_min = f.heartbeat_secs_min;
                fix.heartbeat_secs_max = f.heartbeat_secs_max;
                fix.latency_secs_max = f.sending_time_tolerance_secs;
                fix.reset_on_logon = s.reset_on_logon;
                fix.logon_timeout_ms = f.logon_timeout_ms;
                fix.password = (!s.password.is_empty()).then(|| s.password.as_bytes().to_vec());
                gateway::SessionEntry {
                    session_id: s.session_id,
                    account_id: s.account,
                    fix,
                    cancel_on_disconnect: s.cancel_on_disconnect,
                    rate_limit: gateway::RateLimit {
                        per_second: s.rate_per_second,
                        burst: s.rate_burst,
                        action: if s.rate_action == "logout" {
                            gateway::RateLimitAction::Logout
                        } else {
                            gateway::RateLimitAction::Reject
                        },
                    },
                }
            })
            .collect();
        if self.cluster.enabled {
            g.replicated_sessions = Some(gateway::ReplicatedSessions {
                sender_seq_reservation: self.cluster.fix_sender_seq_reservation,
                checkpoint_interval_ms: self.cluster.fix_checkpoint_interval_ms,
                ..Default::default()
            });
        }
        g
    }

    /// The market-data publisher's configuration.
    pub fn publisher_config(&self) -> Result<md_publisher::PublisherConfig, ConfigError> {
        let m = &self.market_data;
        if m.port > u16::MAX - 20 {
            return err("market_data.port", "leaves no room for the channel ports");
        }
        let mut net =
            md_publisher::NetConfig::loopback(md_core::FeedGroups::on_group(m.group, m.port));
        if !m.group_b.is_empty() {
            let g: std::net::Ipv4Addr = m.group_b.parse().map_err(|_| ConfigError {
                key: "market_data.group_b".into(),
                problem: "not an IPv4 address".into(),
            })?;
            net.feed_b = Some(md_core::FeedGroups::on_group(g, m.port + 10));
        }
        net.retransmit_bind = m.retransmit_listen;
        if !m.tcp_listen.is_empty() {
            net.tcp_bind = Some(m.tcp_listen.parse().map_err(|_| ConfigError {
                key: "market_data.tcp_listen".into(),
                problem: "not an IPv4 address:port".into(),
            })?);
        }
        let mut c = md_publisher::PublisherConfig::new(net);
        c.core.l2_depth = m.l2_depth;
        c.core.packet_size_max = m.packet_size_max;
        c.core.instruments_max = self
            .instruments
            .iter()
            .map(|i| i.id as usize + 1)
            .max()
            .unwrap_or(1);
        c.heartbeat_interval = std::time::Duration::from_millis(m.heartbeat_ms.max(1));
        c.snapshot_interval = std::time::Duration::from_millis(m.snapshot_interval_ms.max(1));
        c.retransmit.history_packets_max = m.history_packets_max;
        c.idle = self.wait_strategy();
        c.validate().map_err(|e| ConfigError {
            key: "market_data".into(),
            problem: e.to_string(),
        })?;
        Ok(c)
    }

    pub fn snapshot_policy(&self) -> matching_agent::SnapshotPolicy {
        matching_agent::SnapshotPolicy {
            dir: self.data.dir.join("snapshots"),
            every_events: self.snapshots.every_events,
            keep_max: self.snapshots.keep_max,
        }
    }

    /// The idle strategy and CPU of one agent's thread.
    pub fn agent_thread(&self, t: &AgentThread) -> (journal::WaitStrategy, Option<usize>) {
        let idle = match t.idle.as_str() {
            "backoff" => journal::WaitStrategy::default(),
            "spin-yield" => journal::WaitStrategy::SpinThenYield { spins_max: 100 },
            "busy-spin" => journal::WaitStrategy::BusySpin,
            _ => self.wait_strategy(),
        };
        (idle, usize::try_from(t.cpu).ok())
    }

    pub fn wait_strategy(&self) -> journal::WaitStrategy {
        match self.threads.idle {
            IdleName::Backoff => journal::WaitStrategy::default(),
            IdleName::SpinYield => journal::WaitStrategy::SpinThenYield { spins_max: 100 },
            IdleName::BusySpin => journal::WaitStrategy::BusySpin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_valid() {
        let c = Config::embedded();
        assert_eq!(c.instruments.len(), 3);
        assert_eq!(c.instrument_id("GLOBEX"), Some(1));
        c.engine_config().validate().unwrap();
    }

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let c = Config::from_toml("[http]\nlisten = \"127.0.0.1:9999\"\n", "t.toml").unwrap();
        assert_eq!(c.http.listen.port(), 9999);
        assert_eq!(c.http.body_bytes_max, 16384);
        assert_eq!(c.instruments.len(), 3);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::from_toml("[http]\nlisten = 5\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("listen"), "{e}");
        let e = Config::from_toml("[http]\nlisen = \"x\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lisen"), "{e}");
        let e = Config::from_toml("[journal]\ndurability = \"fast\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("fast"), "{e}");
        let e = Config::from_toml(
            "[[instruments]]\nid = 0\nsymbol = \"A\"\ntick_size = 0\nlot_size = 1\nprice_scale = 1\nreference_price = 0\nband_bps = 1\nquantity_max = 1\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "instruments[0].tick_size: must be positive");
        let e = Config::from_toml("[threads]\noff_path_nice = 20\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "threads.off_path_nice: between 0 and 19");
        let e = Config::from_toml(
            "[[accounts]]\nid = 1\napi_key = \"long-enough\"\npositions = { NOPE = 1 }\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "accounts[0].positions.NOPE: names no configured instrument"
        );
        let e = Config::from_toml("[http\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.toml: "), "{e}");
    }
}
