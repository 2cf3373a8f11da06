//! Market-data benchmarks (not part of CI): `cargo bench -p md-publisher --bench md`.
//!
//! 1. Publish throughput: the publisher core over a real outbound journal (a seeded workload
//!    through the matching agent), alone and with every packet sent to loopback multicast.
//! 2. Fairness: 8 local subscribers (blocking threads) receive the same packets by multicast and
//!    by the TCP fan-out (shuffled order per update); per packet, the spread between the first
//!    and the last receive time (p50/p99) and how often each subscriber was first.
//! 3. Engine-to-consumer latency: a live pipeline (inbound journal stamped by the system clock,
//!    the matching agent, the publisher agent, a multicast consumer, each on its own thread);
//!    per market-data message, the consumer's receive time minus the inbound journal timestamp
//!    of the command that caused it (the command's intended time: paced sends, so no
//!    coordinated omission). Journals on /dev/shm-backed temp dirs, no fsync.
//!
//! Arguments: `--quick` for a short run, `--throughput-only` for part 1 alone.

use hdrhistogram::Histogram;
use journal::{IdleStrategy, Journal, JournalConfig, TestClock, WaitStrategy};
use matching::workload::{self, WorkloadConfig};
use matching_agent::{inbound, AgentConfig, MatchingAgent};
use md_consumer::{Consumer, ConsumerConfig};
use md_core::{Channel, FeedGroups, MdMsg, PacketBuilder, PacketMessages};
use md_publisher::net::Network;
use md_publisher::{
    CoreConfig, MdCore, NetConfig, PacketSink, PublisherAgent, PublisherConfig, TcpConfig,
};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SUBSCRIBERS: usize = 8;

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn journal_config(dir: &Path) -> JournalConfig {
    let mut c = JournalConfig::in_dir(dir);
    c.segment_size = 64 << 20;
    c.segments_max = 256;
    c
}

fn workload(commands: u64) -> workload::Workload {
    workload::generate(&WorkloadConfig {
        seed: 42,
        instruments: 4,
        accounts: 2_000,
        resting_per_instrument: 500,
        commands,
        zipf_s: 1.0,
    })
}

fn tmpdir() -> tempfile::TempDir {
    if Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

struct Counting {
    packets: u64,
    bytes: u64,
}

impl PacketSink for Counting {
    fn packet(&mut self, _: Channel, _: u32, bytes: &[u8]) {
        self.packets += 1;
        self.bytes += bytes.len() as u64;
    }
    fn heartbeat(&mut self, channel: Channel, bytes: &[u8]) {
        self.packet(channel, 0, bytes);
    }
}

fn throughput(commands: u64) {
    let dir = tmpdir();
    let w = workload(commands);
    let clock = TestClock::new(1_763_769_600_000_000_000, 1_000);
    let (inbound, mut seq) =
        Journal::open_with_clock(journal_config(&dir.path().join("in")), clock).unwrap();
    let mut buf = [0_u8; inbound::ENCODED_LEN_MAX];
    for c in w.preamble.iter().chain(w.commands.iter()) {
        let (t, len) = inbound::encode(&c.kind, 0, &mut buf).unwrap();
        seq.append(t, &buf[..len]).unwrap();
    }
    let mut agent = MatchingAgent::open(
        AgentConfig::new(
            w.engine_config.clone(),
            journal_config(&dir.path().join("out")),
        ),
        &inbound,
    )
    .unwrap();
    while agent.processed_seq() < inbound.written_seq() {
        agent.do_work().unwrap();
    }
    let out = agent.outbound_journal();
    let products = w.engine_config.products.clone();

    let run = |sink: &mut dyn PacketSink| -> (u64, u64, Duration) {
        let mut core = MdCore::new(CoreConfig::default(), &products);
        let mut r = out.reader(1).unwrap();
        let start = Instant::now();
        let mut n = 0_u64;
        while let Some(f) = r.poll().unwrap() {
            core.set_time(f.timestamp_ns);
            core.on_frame(
                f.timestamp_ns,
                f.template_id,
                f.payload,
                f.end_of_batch,
                sink,
            );
            n += 1;
        }
        core.flush(sink);
        (n, core.stats().messages, start.elapsed())
    };
    let mut counting = Counting {
        packets: 0,
        bytes: 0,
    };
    let (frames, messages, t) = run(&mut counting);
    println!(
        "throughput core only: {frames} journal frames -> {messages} messages in {} packets ({} bytes) in {:.3} s: {:.0} messages/s, {:.0} frames/s",
        counting.packets,
        counting.bytes,
        t.as_secs_f64(),
        messages as f64 / t.as_secs_f64(),
        frames as f64 / t.as_secs_f64()
    );
    let net = NetConfig::loopback(FeedGroups::on_group(Ipv4Addr::new(239, 78, 0, 1), 42_000));
    let mut network = Network::open(&net, 65_536, TcpConfig::default(), None).unwrap();
    let (_, messages, t) = run(&mut network);
    let s = network.stats();
    println!(
        "throughput core + multicast send (loopback, no receiver): {messages} messages, {} datagrams in {:.3} s: {:.0} messages/s, {:.0} datagrams/s ({} send errors)",
        s.packets_sent,
        t.as_secs_f64(),
        messages as f64 / t.as_secs_f64(),
        s.packets_sent as f64 / t.as_secs_f64(),
        s.send_errors
    );
}

/// Receive times (ns since `base`) of each packet id per subscriber; u64::MAX = not received.
type Times = Vec<Vec<u64>>;

fn report(name: &str, times: &Times, packets: usize) {
    let mut spread = Histogram::<u64>::new(3).unwrap();
    let mut firsts = vec![0_u64; times.len()];
    let mut complete = 0;
    for p in 0..packets {
        let ts: Vec<u64> = times.iter().map(|t| t[p]).collect();
        if ts.contains(&u64::MAX) {
            continue;
        }
        complete += 1;
        let min = *ts.iter().min().unwrap();
        let max = *ts.iter().max().unwrap();
        spread.record(max - min).unwrap();
        let first = ts.iter().position(|t| *t == min).unwrap();
        firsts[first] += 1;
    }
    println!(
        "fairness {name}: {complete}/{packets} packets reached all {} subscribers; spread first-to-last p50 {:.1} us, p99 {:.1} us, max {:.1} us; times first per subscriber {:?}",
        times.len(),
        spread.value_at_quantile(0.5) as f64 / 1e3,
        spread.value_at_quantile(0.99) as f64 / 1e3,
        spread.max() as f64 / 1e3,
        firsts
    );
}

fn packet_with_id(b: &mut PacketBuilder, id: u32) -> Vec<u8> {
    b.reset();
    let mut m = [0_u8; 64];
    let n = MdMsg::Heartbeat { time_ns: 0 }.encode(&mut m).unwrap();
    assert!(b.push(&m[..n]));
    b.finish(id, 0).to_vec()
}

fn fairness_multicast(packets: usize, pace: Duration) {
    let groups = FeedGroups::on_group(Ipv4Addr::new(239, 78, 1, 1), 42_100);
    let base = Instant::now();
    let ready = Arc::new(std::sync::Barrier::new(SUBSCRIBERS + 1));
    let handles: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let ready = ready.clone();
            std::thread::spawn(move || {
                let s =
                    md_consumer::join_multicast(groups.l3, Ipv4Addr::LOCALHOST, 4 << 20).unwrap();
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let mut times = vec![u64::MAX; packets];
                let mut buf = [0_u8; 2048];
                ready.wait();
                while let Ok((n, _)) = s.recv_from(&mut buf) {
                    let t = base.elapsed().as_nanos() as u64;
                    if let Ok((h, _)) = PacketMessages::new(&buf[..n]) {
                        if (h.seq as usize) < packets {
                            times[h.seq as usize] = t;
                        }
                    }
                }
                times
            })
        })
        .collect();
    ready.wait();
    let net = NetConfig::loopback(groups);
    let mut network = Network::open(&net, 16, TcpConfig::default(), None).unwrap();
    let mut b = PacketBuilder::new(1400);
    let sock = network.socket().expect("active").try_clone().unwrap();
    for id in 0..packets {
        let p = packet_with_id(&mut b, id as u32);
        sock.send_to(&p, groups.l3).unwrap();
        spin_for(pace);
    }
    let _ = &mut network;
    let times: Times = handles.into_iter().map(|h| h.join().unwrap()).collect();
    report("multicast (one send, 8 joined sockets)", &times, packets);
}

fn spin_for(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::thread::yield_now();
    }
}

fn fairness_tcp(packets: usize, pace: Duration) {
    let mut net = NetConfig::loopback(FeedGroups::on_group(Ipv4Addr::new(239, 78, 2, 1), 42_200));
    net.tcp_bind = Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let tcp = TcpConfig {
        shuffle_seed: 7,
        ..TcpConfig::default()
    };
    let mut network = Network::open(&net, 16, tcp, None).unwrap();
    let addr = network.tcp_addr().unwrap();
    let base = Instant::now();
    let handles: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let mut times = vec![u64::MAX; packets];
                let mut buf = vec![0_u8; 1 << 16];
                let mut filled = 0;
                while let Ok(n) = s.read(&mut buf[filled..]) {
                    if n == 0 {
                        break;
                    }
                    let t = base.elapsed().as_nanos() as u64;
                    filled += n;
                    let mut at = 0;
                    while filled - at >= 2 {
                        let len = u16::from_le_bytes([buf[at], buf[at + 1]]) as usize;
                        if filled - at < 2 + len {
                            break;
                        }
                        if let Ok((h, _)) = PacketMessages::new(&buf[at + 3..at + 2 + len]) {
                            if (h.seq as usize) < packets {
                                times[h.seq as usize] = t;
                            }
                        }
                        at += 2 + len;
                    }
                    buf.copy_within(at..filled, 0);
                    filled -= at;
                }
                times
            })
        })
        .collect();
    while network.stats().tcp_subscribers < SUBSCRIBERS as u64 {
        network.poll_tcp();
    }
    let mut b = PacketBuilder::new(1400);
    for id in 0..packets {
        let p = packet_with_id(&mut b, id as u32);
        network.packet(Channel::L3, id as u32 + 1, &p);
        network.poll_tcp();
        spin_for(pace);
    }
    let times: Times = handles.into_iter().map(|h| h.join().unwrap()).collect();
    report(
        "TCP fan-out (shuffled per update, 8 connections)",
        &times,
        packets,
    );
    println!(
        "  publisher-side first counts {:?}",
        network.tcp_first_counts()
    );
}

fn latency(commands: u64, pace: Duration, wait: WaitStrategy, label: &str) {
    let dir = tmpdir();
    let w = workload(commands);
    let (inbound, mut sequencer) = Journal::open(journal_config(&dir.path().join("in"))).unwrap();
    let mut buf = [0_u8; inbound::ENCODED_LEN_MAX];
    // The preamble (deposits, book filling) goes in before the clock starts.
    for c in &w.preamble {
        let (t, len) = inbound::encode(&c.kind, 0, &mut buf).unwrap();
        sequencer.append(t, &buf[..len]).unwrap();
    }
    let preamble_end = inbound.written_seq();
    let out_dir = dir.path().join("out");
    let stop = Arc::new(AtomicBool::new(false));
    let mut agent = MatchingAgent::open(
        AgentConfig::new(w.engine_config.clone(), journal_config(&out_dir)),
        &inbound,
    )
    .unwrap();
    while agent.processed_seq() < preamble_end {
        agent.do_work().unwrap();
    }
    let outbound = Journal::open_read_only(&out_dir).unwrap();
    let groups = FeedGroups::on_group(Ipv4Addr::new(239, 78, 3, 1), 42_300);
    let mut pc = PublisherConfig::new(NetConfig::loopback(groups));
    pc.snapshot_interval = Duration::from_millis(100);
    pc.idle = wait;
    let mut publisher = PublisherAgent::open(pc, &w.engine_config.products, &outbound).unwrap();
    // Skip the preamble's market data: measure only paced commands.
    while publisher.next_journal_seq() <= outbound.written_seq() {
        publisher.do_work().unwrap();
    }
    let skip_before = wall_ns();
    let mut cc = ConsumerConfig::new(groups);
    cc.retransmit_server = Some(publisher.retransmit_addr());
    let mut consumer = Consumer::open(cc).unwrap();

    let s1 = stop.clone();
    let matching = std::thread::spawn(move || {
        let mut idle = IdleStrategy::new(wait);
        while !s1.load(Ordering::Acquire) {
            let n = agent.do_work().unwrap();
            idle.idle(n);
        }
    });
    let s2 = stop.clone();
    let publishing = std::thread::spawn(move || {
        publisher.run(&s2).unwrap();
    });
    let s3 = stop.clone();
    let consuming = std::thread::spawn(move || {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        let mut idle = IdleStrategy::new(wait);
        while !s3.load(Ordering::Acquire) {
            let n = consumer.poll_with(|c, p| {
                if c == Channel::Snapshot {
                    return;
                }
                let now = wall_ns();
                if let Ok((h, msgs)) = PacketMessages::new(p) {
                    if h.seq == 0 {
                        return;
                    }
                    for m in msgs.flatten() {
                        let t = match MdMsg::decode(m) {
                            Ok(MdMsg::OrderAdded { time_ns, .. })
                            | Ok(MdMsg::OrderDeleted { time_ns, .. })
                            | Ok(MdMsg::OrderModified { time_ns, .. })
                            | Ok(MdMsg::OrderExecuted { time_ns, .. })
                            | Ok(MdMsg::Trade { time_ns, .. }) => time_ns,
                            _ => continue,
                        };
                        if t > skip_before {
                            let _ = hist.record(now.saturating_sub(t).max(1));
                        }
                    }
                }
            });
            idle.idle(n);
        }
        (hist, consumer.client().stats())
    });
    let start = Instant::now();
    let mut next = Instant::now();
    for c in &w.commands {
        while Instant::now() < next {
            std::thread::yield_now();
        }
        next += pace;
        let (t, len) = inbound::encode(&c.kind, 0, &mut buf).unwrap();
        sequencer.append(t, &buf[..len]).unwrap();
    }
    let sent_in = start.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    matching.join().unwrap();
    publishing.join().unwrap();
    let (hist, stats) = consuming.join().unwrap();
    println!(
        "latency engine-in -> consumer ({label}): {} commands at {:.0}/s, {} L3 messages measured: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us (consumer gaps {}, resend requests {})",
        w.commands.len(),
        w.commands.len() as f64 / sent_in.as_secs_f64(),
        hist.len(),
        hist.value_at_quantile(0.5) as f64 / 1e3,
        hist.value_at_quantile(0.99) as f64 / 1e3,
        hist.value_at_quantile(0.999) as f64 / 1e3,
        hist.max() as f64 / 1e3,
        stats.gaps_detected,
        stats.retransmit_requests
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (commands, packets) = if quick {
        (20_000, 2_000)
    } else {
        (200_000, 20_000)
    };
    println!(
        "machine: {} CPUs, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| s
                .lines()
                .find(|l| l.starts_with("model name"))
                .map(str::to_string))
            .unwrap_or_default()
    );
    throughput(commands);
    if std::env::args().any(|a| a == "--throughput-only") {
        return;
    }
    fairness_multicast(packets, Duration::from_micros(50));
    fairness_tcp(packets, Duration::from_micros(50));
    let lat_commands = if quick { 5_000 } else { 50_000 };
    latency(
        lat_commands,
        Duration::from_micros(100),
        WaitStrategy::default(),
        "idle: Backoff (default)",
    );
    latency(
        lat_commands,
        Duration::from_micros(100),
        WaitStrategy::SpinThenYield { spins_max: 100 },
        "idle: SpinThenYield",
    );
}
