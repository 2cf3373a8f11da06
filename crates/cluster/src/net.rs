//! Raft transport: one TCP connection per openraft client (each replication stream and each
//! vote round has its own), length-prefixed postcard messages, request then response.
//!
//! Snapshots travel as journal frames: the sender asks the receiver where its inbound journal
//! ends (and the last frame's time and checksum, to check that the prefixes agree), then
//! streams the frames the receiver lacks; the receiver stores them in a file and hands it to
//! openraft, which installs it through the state machine.

use crate::{NodeId, SnapshotData, TypeConfig};
use journal::Journal;
use openraft::error::{
    Fatal, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft, Snapshot, SnapshotMeta, Vote};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest message accepted from a peer.
const MESSAGE_MAX: usize = 64 << 20;
/// Snapshot chunk size.
const CHUNK: usize = 1 << 20;

#[derive(Serialize, Deserialize)]
enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    SnapshotBegin {
        vote: Vote<NodeId>,
        meta: SnapshotMeta<NodeId, BasicNode>,
        upto: u64,
    },
    SnapshotChunk(Vec<u8>),
    SnapshotEnd,
}

#[derive(Serialize, Deserialize)]
enum Response {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Where the receiver's journal ends, with the last frame's (timestamp, payload crc).
    SnapshotBegin {
        written: u64,
        last: Option<(u64, u32)>,
    },
    SnapshotChunk,
    SnapshotEnd(Result<SnapshotResponse<NodeId>, String>),
}

async fn write_msg<T: Serialize>(s: &mut TcpStream, m: &T) -> std::io::Result<()> {
    let body = postcard::to_stdvec(m).map_err(std::io::Error::other)?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&body);
    s.write_all(&buf).await
}

async fn read_msg<T: for<'de> Deserialize<'de>>(s: &mut TcpStream) -> std::io::Result<T> {
    let mut h = [0_u8; 4];
    s.read_exact(&mut h).await?;
    let n = u32::from_le_bytes(h) as usize;
    if n > MESSAGE_MAX {
        return Err(std::io::Error::other(format!(
            "message of {n} bytes exceeds {MESSAGE_MAX}"
        )));
    }
    let mut body = vec![0_u8; n];
    s.read_exact(&mut body).await?;
    postcard::from_bytes(&body).map_err(std::io::Error::other)
}

/// The last frame of `journal` at or below `seq`: (timestamp, crc32 of the payload).
fn frame_digest(journal: &Journal, seq: u64) -> Option<(u64, u32)> {
    if seq == 0 {
        return None;
    }
    let mut r = journal.reader(seq).ok()?;
    let f = r.poll().ok()??;
    (f.sequence == seq).then(|| (f.timestamp_ns, crc32fast::hash(f.payload)))
}

/// The addresses the peers' configured names resolve to: the only sources the Raft port takes
/// connections from. A name that does not resolve is left out (with a warning): that peer is
/// refused until this node restarts.
pub async fn peer_addresses(
    peers: &std::collections::BTreeMap<NodeId, String>,
) -> std::collections::HashSet<std::net::IpAddr> {
    let mut ips = std::collections::HashSet::new();
    for (id, addr) in peers {
        match tokio::net::lookup_host(addr.as_str()).await {
            Ok(found) => ips.extend(found.map(|a| a.ip())),
            Err(e) => {
                tracing::warn!(peer = id, %addr, error = %e, "peer address does not resolve; its Raft connections are refused")
            }
        }
    }
    ips
}

/// Serves peers' RPCs for `raft` on `listener` until the task is dropped. Connections from
/// any address but the peers' (`allowed`) are closed unread: whoever can reach the port could
/// otherwise vote, append entries (orders) or install a snapshot.
pub async fn serve(
    listener: TcpListener,
    allowed: std::collections::HashSet<std::net::IpAddr>,
    raft: Raft<TypeConfig>,
    journal: Journal,
    dir: PathBuf,
) -> std::io::Result<()> {
    let mut last_warning: Option<std::time::Instant> = None;
    loop {
        let (mut s, peer) = listener.accept().await?;
        if !allowed.contains(&peer.ip()) {
            // At most one warning a second, however many such connections arrive.
            if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                last_warning = Some(std::time::Instant::now());
                tracing::warn!(%peer, "Raft connection from an address that is not a peer's, closed");
            }
            drop(s);
            continue;
        }
        let _ = s.set_nodelay(true);
        let (raft, journal, dir) = (raft.clone(), journal.clone(), dir.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_conn(&mut s, &raft, &journal, &dir).await {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    tracing::debug!(%peer, error = %e, "raft connection closed");
                }
            }
        });
    }
}

/// A snapshot being received: (leader's vote, meta, first sequence, last sequence, file, path).
type Incoming = (
    Vote<NodeId>,
    SnapshotMeta<NodeId, BasicNode>,
    u64,
    u64,
    std::fs::File,
    PathBuf,
);

async fn serve_conn(
    s: &mut TcpStream,
    raft: &Raft<TypeConfig>,
    journal: &Journal,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    // One snapshot in progress per connection.
    let mut incoming: Option<Incoming> = None;
    loop {
        let req: Request = read_msg(s).await?;
        let resp = match req {
            Request::Append(r) => Response::Append(raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(raft.vote(r).await),
            Request::SnapshotBegin { vote, meta, upto } => {
                let written = journal.written_seq();
                // One file per transfer: a retried transfer on a new connection must not write
                // into the file of one still draining.
                static TRANSFERS: std::sync::atomic::AtomicU64 =
                    std::sync::atomic::AtomicU64::new(0);
                let n = TRANSFERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let path = dir.join(format!("snapshot.incoming.{n}"));
                let file = std::fs::File::create(&path)?;
                incoming = Some((vote, meta, written + 1, upto, file, path));
                Response::SnapshotBegin {
                    written,
                    last: frame_digest(journal, written),
                }
            }
            Request::SnapshotChunk(bytes) => {
                let Some((_, _, _, _, f, _)) = incoming.as_mut() else {
                    return Err(std::io::Error::other("snapshot chunk without a begin"));
                };
                std::io::Write::write_all(f, &bytes)?;
                Response::SnapshotChunk
            }
            Request::SnapshotEnd => {
                let Some((vote, meta, from, upto, f, path)) = incoming.take() else {
                    return Err(std::io::Error::other("snapshot end without a begin"));
                };
                f.sync_all()?;
                drop(f);
                let snapshot = Snapshot {
                    meta,
                    snapshot: Box::new(SnapshotData::Received { path, from, upto }),
                };
                Response::SnapshotEnd(
                    raft.install_full_snapshot(vote, snapshot)
                        .await
                        .map_err(|e| e.to_string()),
                )
            }
        };
        write_msg(s, &resp).await?;
    }
}

/// Creates one client per target. Peers are reached at the addresses of this node's
/// configuration (the membership's addresses are only a fallback), so a node can be moved, or
/// reached through a different route from each peer, by configuration alone.
#[derive(Clone, Default)]
pub struct Network {
    pub peers: std::sync::Arc<std::collections::BTreeMap<NodeId, String>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: self
                .peers
                .get(&target)
                .cloned()
                .unwrap_or_else(|| node.addr.clone()),
            conn: None,
        }
    }
}

/// A connection to one peer, opened on first use and after any error.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    conn: Option<TcpStream>,
}

impl PeerClient {
    async fn call(&mut self, req: &Request, ttl: Duration) -> Result<Response, Unreachable> {
        let r = tokio::time::timeout(ttl, async {
            if self.conn.is_none() {
                let s = TcpStream::connect(&self.addr).await?;
                s.set_nodelay(true)?;
                self.conn = Some(s);
            }
            let s = self.conn.as_mut().expect("connected");
            write_msg(s, req).await?;
            read_msg::<Response>(s).await
        })
        .await;
        match r {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                self.conn = None;
                Err(Unreachable::new(&e))
            }
            Err(_) => {
                self.conn = None;
                Err(Unreachable::new(&std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no answer from node {} at {} within {ttl:?}",
                        self.target, self.addr
                    ),
                )))
            }
        }
    }

    fn unexpected(&self) -> Unreachable {
        Unreachable::new(&std::io::Error::other(format!(
            "node {} answered with the wrong message type",
            self.target
        )))
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

fn remote<E: std::error::Error>(
    target: NodeId,
    e: RaftError<NodeId, E>,
) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    RPCError::RemoteError(RemoteError::new(target, e))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self.call(&Request::Append(rpc), option.hard_ttl()).await? {
            Response::Append(r) => r.map_err(|e| remote(self.target, e)),
            _ => Err(self.unexpected().into()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.call(&Request::Vote(rpc), option.hard_ttl()).await? {
            Response::Vote(r) => r.map_err(|e| remote(self.target, e)),
            _ => Err(self.unexpected().into()),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let SnapshotData::Local { journal, upto } = *snapshot.snapshot else {
            return Err(StreamingError::Unreachable(Unreachable::new(
                &std::io::Error::other("only a local snapshot can be sent"),
            )));
        };
        let ttl = option.hard_ttl();
        let send = async {
            let begin = Request::SnapshotBegin {
                vote,
                meta: snapshot.meta.clone(),
                upto,
            };
            let (written, last) = match self.call(&begin, ttl).await? {
                Response::SnapshotBegin { written, last } => (written, last),
                _ => return Err(self.unexpected()),
            };
            if written > 0 && written <= upto && frame_digest(&journal, written) != last {
                tracing::error!(
                    target = self.target,
                    seq = written,
                    "the peer's inbound journal differs from ours at its last frame: it cannot \
                     catch up; re-seed it (remove its data directory)"
                );
                return Err(Unreachable::new(&std::io::Error::other(format!(
                    "node {} has a journal that diverges at sequence {written}",
                    self.target
                ))));
            }
            let mut reader = journal
                .reader(written + 1)
                .map_err(|e| Unreachable::new(&std::io::Error::other(e.to_string())))?;
            let mut chunk = Vec::with_capacity(CHUNK + 4096);
            let mut next = written + 1;
            while next <= upto {
                let f = reader
                    .poll()
                    .map_err(|e| Unreachable::new(&std::io::Error::other(e.to_string())))?;
                let Some(f) = f else {
                    return Err(Unreachable::new(&std::io::Error::other(format!(
                        "local journal ends before the snapshot's sequence {upto}"
                    ))));
                };
                chunk.extend_from_slice(&f.sequence.to_le_bytes());
                chunk.extend_from_slice(&f.timestamp_ns.to_le_bytes());
                chunk.extend_from_slice(&f.template_id.to_le_bytes());
                // Bit 31 of the length: the frame's end-of-batch mark (the market-data packets
                // close there, so a node installing the snapshot must keep it).
                let len = f.payload.len() as u32 | (u32::from(f.end_of_batch) << 31);
                chunk.extend_from_slice(&len.to_le_bytes());
                chunk.extend_from_slice(f.payload);
                next += 1;
                if chunk.len() >= CHUNK || next > upto {
                    let c = Request::SnapshotChunk(std::mem::take(&mut chunk));
                    match self.call(&c, ttl).await? {
                        Response::SnapshotChunk => {}
                        _ => return Err(self.unexpected()),
                    }
                }
            }
            match self.call(&Request::SnapshotEnd, ttl).await? {
                Response::SnapshotEnd(Ok(r)) => Ok(r),
                Response::SnapshotEnd(Err(e)) => Err(Unreachable::new(&std::io::Error::other(e))),
                _ => Err(self.unexpected()),
            }
        };
        tokio::select! {
            r = send => r.map_err(StreamingError::Unreachable),
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    /// 100 ms, then doubling up to 1 s while a peer stays unreachable (a restarted node is
    /// found again within a second; a dead one costs a few connection attempts a second).
    fn backoff(&self) -> Backoff {
        Backoff::new(
            (0_u32..).map(|i| Duration::from_millis(100 << i.min(3)).min(Duration::from_secs(1))),
        )
    }
}
