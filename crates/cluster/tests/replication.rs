//! Three nodes in one process, each with its own journal and Raft files, talking over real
//! loopback TCP: replication, failover, catch-up by snapshot after a node is wiped.

use cluster::{Cluster, ClusterConfig, NodeId, Proposer};
use journal::{ExternalClock, IdleStrategy, Journal, JournalConfig, WaitStrategy};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct N {
    cluster: Option<Cluster>,
    journal: Journal,
    stop: Arc<AtomicBool>,
    proposer: Option<std::thread::JoinHandle<()>>,
}

async fn start(id: NodeId, peers: &BTreeMap<NodeId, String>, dir: &Path, snapshot_every: u64) -> N {
    let clock = Arc::new(ExternalClock::new(0));
    let mut jc = JournalConfig::in_dir(dir.join("inbound"));
    jc.strictly_increasing_timestamps = true;
    let (journal, seq) = Journal::open_with_clock(jc, clock.clone()).unwrap();
    let mut c = ClusterConfig::new(id, peers.clone(), dir.to_path_buf());
    c.log_fsync = false;
    // Loose enough that a loaded CI machine does not elect spuriously; the test still copes
    // when it does (see `publish_all`).
    c.heartbeat_ms = 100;
    c.election_min_ms = 800;
    c.election_max_ms = 1600;
    c.snapshot_every = snapshot_every;
    c.keep_logs = 0;
    c.batch_frames_max = 7;
    let (cluster, mut proposer): (Cluster, Proposer) =
        Cluster::start(c, journal.clone(), seq, clock)
            .await
            .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let proposer = std::thread::spawn(move || {
        proposer.run(&s, &mut IdleStrategy::new(WaitStrategy::default()));
    });
    N {
        cluster: Some(cluster),
        journal,
        stop,
        proposer: Some(proposer),
    }
}

impl N {
    async fn kill(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(p) = self.proposer.take() {
            p.join().unwrap();
        }
        if let Some(c) = self.cluster.take() {
            c.shutdown().await;
        }
    }
}

fn frames(j: &Journal) -> Vec<(u64, u64, u16, Vec<u8>)> {
    let mut r = j.reader(1).unwrap();
    std::iter::from_fn(|| {
        r.poll().unwrap().map(|f| {
            (
                f.sequence,
                f.timestamp_ns,
                f.template_id,
                f.payload.to_vec(),
            )
        })
    })
    .collect()
}

async fn leader(nodes: &[N], deadline: Duration) -> usize {
    let until = Instant::now() + deadline;
    loop {
        for (i, n) in nodes.iter().enumerate() {
            if let Some(c) = &n.cluster {
                let give_up = AtomicBool::new(false);
                if c.status().role == cluster::Role::Leader
                    && tokio::time::timeout(
                        Duration::from_millis(500),
                        c.wait_until_leader(&give_up),
                    )
                    .await
                        == Ok(true)
                {
                    for (j, m) in nodes.iter().enumerate() {
                        if let Some(o) = &m.cluster {
                            o.set_serving(j == i);
                        }
                    }
                    return i;
                }
            }
        }
        assert!(Instant::now() < until, "no leader elected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn publish(n: &N, from: u32, to: u32) {
    let p = n.journal.publisher().unwrap();
    for k in from..to {
        while p.try_publish((k % 50) as u16, &k.to_le_bytes()).is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Publishes events `from..to` (payload = id) through the serving leader until the leader's
/// journal holds them all, as a client would: events a deposed leader took but could not
/// commit are sent again to the next one (the lost ones are always a suffix of what was sent,
/// so the journal stays in id order). Returns the leader.
async fn publish_all(nodes: &[N], from: u32, to: u32) -> usize {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let l = leader(nodes, Duration::from_secs(30)).await;
        let have = payload_ids(&nodes[l].journal).last().map_or(0, |x| x + 1);
        if have >= to {
            return l;
        }
        publish(&nodes[l], have.max(from), to).await;
        let settle = Instant::now() + Duration::from_secs(10);
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let c = nodes[l].cluster.as_ref().unwrap();
            if payload_ids(&nodes[l].journal).last().map_or(0, |x| x + 1) >= to {
                return l;
            }
            if c.status().role != cluster::Role::Leader || Instant::now() > settle {
                break;
            }
        }
        assert!(Instant::now() < until, "could not publish {from}..{to}");
    }
}

async fn wait_seq(nodes: &[N], seq: u64) {
    let until = Instant::now() + Duration::from_secs(20);
    while nodes
        .iter()
        .filter(|n| n.cluster.is_some())
        .any(|n| n.journal.committed_seq() < seq)
    {
        assert!(
            Instant::now() < until,
            "journals stuck at {:?}, want {seq}",
            nodes
                .iter()
                .map(|n| n.journal.committed_seq())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn payload_ids(j: &Journal) -> Vec<u32> {
    frames(j)
        .iter()
        .map(|f| u32::from_le_bytes(f.3[..4].try_into().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicates_fails_over_and_catches_up_a_wiped_node_by_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let peers: BTreeMap<NodeId, String> = (1..=3)
        .map(|i| (i, format!("127.0.0.1:{}", loopback_ports::port())))
        .collect();
    let dirs: Vec<PathBuf> = (1..=3).map(|i| tmp.path().join(format!("n{i}"))).collect();
    let mut nodes = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        nodes.push(start(i as u64 + 1, &peers, d, 40).await);
    }
    // Events handed to nodes that do not serve are dropped, never proposed (not even when one
    // of them serves later): ids 100_000.. must never appear.
    for n in &nodes {
        publish(n, 100_000, 100_005).await;
    }
    let until = Instant::now() + Duration::from_secs(10);
    while nodes
        .iter()
        .map(|n| {
            n.cluster
                .as_ref()
                .unwrap()
                .discarded
                .load(Ordering::Relaxed)
        })
        .sum::<u64>()
        < 15
    {
        assert!(
            Instant::now() < until,
            "events of non-serving nodes not dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let l = publish_all(&nodes, 0, 500).await;
    wait_seq(&nodes, 500).await;
    let reference = frames(&nodes[l].journal);
    assert_eq!(reference.len(), 500);
    assert_eq!(payload_ids(&nodes[l].journal), (0..500).collect::<Vec<_>>());
    for n in &nodes {
        assert_eq!(frames(&n.journal), reference, "journals differ");
    }
    // Timestamps come from the leader's clock, one per event, strictly increasing on every
    // node although a batch is stamped with one clock reading.
    assert!(reference.windows(2).all(|w| w[0].1 < w[1].1));

    // The leader dies; a follower takes over and the sequence continues without a gap.
    nodes[l].kill().await;
    let t0 = Instant::now();
    let rest: Vec<usize> = (0..3).filter(|&i| i != l).collect();
    let l2 = publish_all(&nodes, 500, 900).await;
    assert!(rest.contains(&l2));
    assert!(t0.elapsed() < Duration::from_secs(30), "no new leader");
    let until = Instant::now() + Duration::from_secs(20);
    while rest.iter().any(|&i| nodes[i].journal.committed_seq() < 900) {
        assert!(Instant::now() < until, "stuck after failover");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = frames(&nodes[l2].journal);
    assert_eq!(
        payload_ids(&nodes[l2].journal),
        (0..900).collect::<Vec<_>>()
    );
    for &i in &rest {
        assert_eq!(frames(&nodes[i].journal), after);
    }

    // The dead node's data is wiped; it rejoins with the same id and catches up: the log was
    // compacted (snapshot every 40 entries, none kept), so it gets a snapshot.
    let st = nodes[l2].cluster.as_ref().unwrap().status();
    assert!(
        st.purged_index.is_some(),
        "the log was not compacted: {st:?}"
    );
    std::fs::remove_dir_all(&dirs[l]).unwrap();
    nodes[l] = start(l as u64 + 1, &peers, &dirs[l], 40).await;
    let l3 = publish_all(&nodes, 900, 1000).await;
    wait_seq(&nodes, 1000).await;
    let fin = frames(&nodes[l3].journal);
    assert_eq!(
        payload_ids(&nodes[l3].journal),
        (0..1000).collect::<Vec<_>>()
    );
    for n in &nodes {
        assert_eq!(frames(&n.journal), fin);
    }
    for n in &mut nodes {
        n.kill().await;
    }
}

/// The Raft port takes connections only from the peers' addresses: one from another address
/// (127.0.0.2, a loopback address that is not a peer's) is closed at once, unread, while a
/// peer's stays open waiting for its request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raft_port_refuses_connections_from_addresses_that_are_not_peers() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", loopback_ports::port());
    let peers: BTreeMap<NodeId, String> = [(1, addr.clone())].into_iter().collect();
    let mut node = start(1, &peers, dir.path(), 1_000).await;
    let target: std::net::SocketAddr = addr.parse().unwrap();
    let connect_from = |ip: [u8; 4]| async move {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind((std::net::Ipv4Addr::from(ip), 0).into()).unwrap();
        s.connect(target).await.unwrap()
    };
    let mut buf = [0_u8; 16];

    let mut stranger = connect_from([127, 0, 0, 2]).await;
    let read = tokio::time::timeout(Duration::from_secs(5), stranger.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a stranger's connection is closed at once: {read:?}"
    );

    let mut peer = connect_from([127, 0, 0, 1]).await;
    let read = tokio::time::timeout(Duration::from_millis(500), peer.read(&mut buf)).await;
    assert!(
        read.is_err(),
        "a peer's connection waits for its request: {read:?}"
    );
    node.kill().await;
}
