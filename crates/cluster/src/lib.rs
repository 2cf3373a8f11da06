//! # cluster — the sequenced inbound journal, replicated with Raft
//!
//! Three (or five) appliances form a cluster. The leader's gateway and HTTP API publish
//! inbound events into the journal's hand-off as always; here a [`Proposer`] takes them from
//! the hand-off instead of the sequencer, packs them into batches stamped with the leader's
//! clock and proposes each batch as one Raft log entry ([openraft]). An entry is committed once
//! a majority holds it (durably with `log_fsync`); only then does each node's state machine
//! ([`sm::StateMachine`]) append its frames to the local inbound journal, assigning the
//! sequence numbers in log order. Every node's inbound journal is therefore the same sequence of
//! identical frames, the matching agent behind it (which only ever reads committed frames)
//! produces byte-identical outbound journals, and nothing downstream (ExecutionReports, market
//! data) can exist for an event that is not committed.
//!
//! Why openraft: it is maintained, used in production (Databend, CnosDB, others), has a
//! storage API that lets the application own the state machine and the log format, supports
//! pipelined replication, membership changes and application-defined snapshot transfer, and
//! runs on tokio, which the appliance already uses. raft-rs (TiKV) is the other mature choice
//! but leaves the whole event loop, transport and timing to the application.
//!
//! Failure handling lives in the appliance (`serve` in cluster mode): a node becomes the
//! serving leader only after its state machine has applied everything committed before its
//! term (`ensure_linearizable`), and a serving leader that loses leadership or the majority's
//! acknowledgements for longer than the fence time stops (fail-stop; the supervisor restarts it
//! as a follower).

pub mod net;
pub mod sm;
pub mod store;

use journal::{ExternalClock, IdleStrategy, Journal, Sequencer};
use openraft::{BasicNode, Raft, ServerState};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A node's id in the cluster.
pub type NodeId = u64;

/// One Raft log entry's application data: inbound frames in hand-off order, packed as
/// `[template u16][len u32][payload]`, with the leader's timestamp for all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub ts_ns: u64,
    pub frames: bytes::Bytes,
}

impl std::fmt::Display for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch({} bytes @{})", self.frames.len(), self.ts_ns)
    }
}

/// What applying an entry returns: the journal sequence reached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub last_seq: u64,
}

/// A snapshot is a position in the inbound journal.
#[derive(Debug)]
pub enum SnapshotData {
    /// This node's journal up to `upto` (frames are read when the snapshot is sent).
    Local { journal: Journal, upto: u64 },
    /// Frames `from..=upto` received from the leader into `path`.
    Received { path: PathBuf, from: u64, upto: u64 },
}

openraft::declare_raft_types!(
    /// The appliance's Raft types.
    pub TypeConfig:
        D = Batch,
        R = Applied,
        NodeId = NodeId,
        Node = BasicNode,
        SnapshotData = SnapshotData,
);

/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;

/// Cluster settings of one node.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub node_id: NodeId,
    /// Every voter's Raft address by id: this node listens on its own, and reaches the others
    /// at theirs.
    pub peers: BTreeMap<NodeId, String>,
    /// Raft log and state-machine metadata.
    pub dir: PathBuf,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// fdatasync the Raft log before acknowledging an append.
    pub log_fsync: bool,
    /// Log entries between snapshots (then older entries are purged).
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, for followers slightly behind.
    pub keep_logs: u64,
    /// Inbound events per Raft entry at most.
    pub batch_frames_max: usize,
    /// Proposed entries not yet committed at most: while that many are in flight the proposer
    /// waits and the events gather in the hand-off, so the next entry carries them all (batch
    /// size adapts to the commit latency: one event per entry when idle, many under load).
    pub inflight_entries_max: usize,
    /// A serving leader that has had no acknowledgement from a majority for this long steps
    /// down.
    pub fence_ms: u64,
}

impl ClusterConfig {
    /// Defaults for a node: 100 ms heartbeats, 500-1000 ms election timeouts.
    pub fn new(node_id: NodeId, peers: BTreeMap<NodeId, String>, dir: PathBuf) -> Self {
        ClusterConfig {
            node_id,
            peers,
            dir,
            heartbeat_ms: 100,
            election_min_ms: 500,
            election_max_ms: 1000,
            log_fsync: true,
            snapshot_every: 50_000,
            keep_logs: 5_000,
            batch_frames_max: 512,
            inflight_entries_max: 4,
            fence_ms: 1000,
        }
    }
}

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error("cluster configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("raft: {0}")]
    Raft(String),
}

/// The node's role as seen by the appliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

/// A point-in-time view for `/v1/cluster`, `/healthz` and the metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub node_id: NodeId,
    pub role: Role,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub millis_since_quorum_ack: Option<u64>,
    pub voters: Vec<NodeId>,
    /// Matched log index per follower (leader only).
    pub replication: BTreeMap<NodeId, Option<u64>>,
    /// This node takes orders (leader, caught up, promoted by the appliance).
    pub serving: bool,
    /// Sequence of the last frame in the local inbound journal.
    pub journal_seq: u64,
    /// Journal sequence of the latest Raft snapshot.
    pub snapshot_seq: u64,
}

/// A running cluster node.
pub struct Cluster {
    raft: Raft<TypeConfig>,
    config: ClusterConfig,
    serving: Arc<AtomicBool>,
    journal: Journal,
    sm: sm::StateMachine,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    forwarder: tokio::task::JoinHandle<()>,
    /// Batches the leader proposed that were refused (leadership lost before commit).
    pub refused: Arc<AtomicU64>,
    /// Events found in the hand-off while not serving, dropped unproposed.
    pub discarded: Arc<AtomicU64>,
}

/// Drains the journal's hand-off on the leader and proposes batches (an agent: call
/// [`Proposer::do_work`] in a duty cycle on its own thread).
pub struct Proposer {
    rx: journal::handoff::Receiver,
    tx: tokio::sync::mpsc::UnboundedSender<Batch>,
    serving: Arc<AtomicBool>,
    inflight: Arc<std::sync::atomic::AtomicUsize>,
    inflight_max: usize,
    discarded: Arc<AtomicU64>,
    batch_max: usize,
    buf: Vec<u8>,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Proposer {
    /// Proposes what the hand-off holds (while this node is the serving leader). Returns the
    /// number of events proposed.
    pub fn do_work(&mut self) -> usize {
        if !self.serving.load(Ordering::Acquire) {
            // Published while this node was not (or no longer) serving: never acknowledged,
            // and must not be proposed if it serves again later (a FIX client resends such an
            // order to the leader it reconnects to). Dropped.
            let mut n = 0;
            while self.rx.try_recv(|_, _| ()).is_some() {
                n += 1;
            }
            if n > 0 {
                self.discarded.fetch_add(n, Ordering::Relaxed);
            }
            return 0;
        }
        if self.inflight.load(Ordering::Acquire) >= self.inflight_max {
            return 0;
        }
        let mut n = 0;
        while n < self.batch_max {
            let buf = &mut self.buf;
            if self.rx.try_recv(|t, p| sm::pack(buf, t, p)).is_none() {
                break;
            }
            n += 1;
        }
        if n > 0 {
            let frames = bytes::Bytes::copy_from_slice(&self.buf);
            self.buf.clear();
            self.inflight.fetch_add(1, Ordering::AcqRel);
            // The receiver lives as long as the cluster; a send error means it is shutting
            // down and nothing can be proposed any more.
            let _ = self.tx.send(Batch {
                ts_ns: now_ns(),
                frames,
            });
        }
        n
    }

    /// Runs the duty cycle until `stop`. The idler is woken by the hand-off's producers when it
    /// parks.
    pub fn run(&mut self, stop: &AtomicBool, idle: &mut IdleStrategy) {
        idle.wait_on(&self.rx.doorbell());
        while !stop.load(Ordering::Acquire) {
            let n = self.do_work();
            idle.idle(n);
        }
    }
}

impl Cluster {
    /// Starts this node on the current tokio runtime: opens the Raft log and the state machine
    /// over the inbound journal written by `sequencer` (whose clock is `clock`), listens for
    /// peers on this node's address, and initialises the cluster's membership when the log is
    /// new. Returns the node and the proposer that must run on its own thread.
    pub async fn start(
        config: ClusterConfig,
        journal: Journal,
        mut sequencer: Sequencer<Arc<ExternalClock>>,
        clock: Arc<ExternalClock>,
    ) -> Result<(Cluster, Proposer), ClusterError> {
        let Some(addr) = config.peers.get(&config.node_id).cloned() else {
            return Err(ClusterError::Config(format!(
                "node {} is not among the peers {:?}",
                config.node_id,
                config.peers.keys().collect::<Vec<_>>()
            )));
        };
        let rx = sequencer.take_handoff().ok_or_else(|| {
            ClusterError::Config("the inbound journal's hand-off was already taken".into())
        })?;
        let log = store::LogStore::open(&config.dir.join("raft"), config.log_fsync)?;
        let sm =
            sm::StateMachine::open(&config.dir.join("raft"), journal.clone(), sequencer, clock)?;
        let rc = openraft::Config {
            cluster_name: "appliance".into(),
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_min_ms,
            election_timeout_max: config.election_max_ms,
            install_snapshot_timeout: 30_000,
            max_payload_entries: 256,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.keep_logs,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ClusterError::Config(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|e| ClusterError::Config(format!("binding the Raft address {addr}: {e}")))?;
        let network = net::Network {
            peers: Arc::new(config.peers.clone()),
        };
        let raft = Raft::new(config.node_id, Arc::new(rc), network, log, sm.clone())
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let allowed = net::peer_addresses(&config.peers).await;
        let server = tokio::spawn(net::serve(
            listener,
            allowed,
            raft.clone(),
            journal.clone(),
            config.dir.join("raft"),
        ));
        if !raft
            .is_initialized()
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?
        {
            let members: BTreeMap<NodeId, BasicNode> = config
                .peers
                .iter()
                .map(|(id, a)| (*id, BasicNode { addr: a.clone() }))
                .collect();
            // Every node of a new cluster initialises with the same membership (log id 0): the
            // same entry everywhere. A node that already learnt it from a peer refuses, which
            // is fine.
            if let Err(e) = raft.initialize(members).await {
                tracing::info!(error = %e, "cluster membership already initialised");
            }
        }
        let (tx, mut brx) = tokio::sync::mpsc::unbounded_channel::<Batch>();
        let refused = Arc::new(AtomicU64::new(0));
        let inflight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let forwarder = {
            let (raft, refused, inflight) = (raft.clone(), refused.clone(), inflight.clone());
            tokio::spawn(async move {
                while let Some(b) = brx.recv().await {
                    match raft.client_write_ff(b).await {
                        Ok(done) => {
                            let (refused, inflight) = (refused.clone(), inflight.clone());
                            tokio::spawn(async move {
                                if !matches!(done.await, Ok(Ok(_))) {
                                    refused.fetch_add(1, Ordering::Relaxed);
                                }
                                inflight.fetch_sub(1, Ordering::AcqRel);
                            });
                        }
                        Err(e) => {
                            inflight.fetch_sub(1, Ordering::AcqRel);
                            tracing::error!(error = %e, "raft stopped; proposals end");
                            return;
                        }
                    }
                }
            })
        };
        let serving = Arc::new(AtomicBool::new(false));
        let discarded = Arc::new(AtomicU64::new(0));
        let proposer = Proposer {
            rx,
            tx,
            serving: serving.clone(),
            inflight,
            inflight_max: config.inflight_entries_max.max(1),
            discarded: discarded.clone(),
            batch_max: config.batch_frames_max.max(1),
            buf: Vec::with_capacity(64 * 1024),
        };
        Ok((
            Cluster {
                raft,
                config,
                serving,
                journal,
                sm,
                server,
                forwarder,
                refused,
                discarded,
            },
            proposer,
        ))
    }

    /// The Raft handle.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// This node's configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Whether this node currently takes orders.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// Waits until this node is the leader and has applied every entry committed before its
    /// term; returns false if `give_up` is set first.
    pub async fn wait_until_leader(&self, give_up: &AtomicBool) -> bool {
        let mut m = self.raft.metrics();
        loop {
            if give_up.load(Ordering::Acquire) {
                return false;
            }
            let leader = m.borrow().state == ServerState::Leader;
            if leader && self.raft.ensure_linearizable().await.is_ok() {
                return true;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), m.changed()).await;
        }
    }

    /// Starts (or stops) taking orders: the proposer drains the hand-off only while serving.
    pub fn set_serving(&self, on: bool) {
        self.serving.store(on, Ordering::Release);
    }

    /// True when this node is serving but is no longer a leader with a live majority: it must
    /// stop (fail-stop) so that nothing is acknowledged by two leaders.
    pub fn must_step_down(&self) -> bool {
        if !self.is_serving() {
            return false;
        }
        let m = self.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return true;
        }
        let voters = m.membership_config.membership().voter_ids().count();
        voters > 1
            && m.millis_since_quorum_ack
                .is_none_or(|ms| ms > self.config.fence_ms)
    }

    /// A point-in-time status.
    pub fn status(&self) -> Status {
        let m = self.raft.metrics().borrow().clone();
        let role = match m.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Shutdown,
        };
        let voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        Status {
            node_id: m.id,
            role,
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            voters: voters.into_iter().collect(),
            replication: m
                .replication
                .as_ref()
                .map(|r| r.iter().map(|(k, v)| (*k, v.map(|l| l.index))).collect())
                .unwrap_or_default(),
            serving: self.is_serving(),
            journal_seq: self.journal.written_seq(),
            snapshot_seq: self.sm.snapshot_seq(),
        }
    }

    /// Stops Raft and the transport.
    pub async fn shutdown(&self) {
        self.set_serving(false);
        let _ = self.raft.shutdown().await;
        self.server.abort();
        self.forwarder.abort();
    }
}
