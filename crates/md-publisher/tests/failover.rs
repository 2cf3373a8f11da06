//! Market data survives a change of leader: packets are a function of the journal, and a
//! standby publisher takes over with the same sequence numbers.
//!
//! In a cluster every node holds the same outbound journal and runs a publisher on it; only the
//! leader's sends. These tests grow a real outbound journal while publishers read it (a seeded
//! workload through the matching agent, one inbound event per step) and publish on real
//! multicast on the loopback interface (IP_MULTICAST_IF 127.0.0.1, TTL 1, loop on; a group per
//! test and per process). They prove that:
//! - two publishers that read the same journal with different batch sizes (1 frame and 1 000
//!   frames per duty cycle), at different moments, with different heartbeat and snapshot timers
//!   and different sending-time settings send the same incremental packets, byte for byte, in
//!   the same order, on every incremental channel (heartbeats, which carry no sequence number of
//!   their own, are the only packets that differ);
//! - when the active publisher dies and a standby one on the same journal is activated, a
//!   consumer given both retransmission addresses ends with books equal to the engine's and to
//!   the new leader's, without skipping a packet: when the standby had read further than the
//!   dead leader, the packets never multicast come from the standby's history (built while it
//!   was passive) after the consumer's request to the dead server goes unanswered; when it had
//!   read less, its packets repeat what the consumer has and are dropped as duplicates;
//! - a demoted publisher sends nothing (no packet, no heartbeat) and frees its retransmission
//!   port, keeps building its history, and when promoted again names the next sequence number
//!   in its heartbeats, serves the packets it built meanwhile and carries on from there.

mod common;

use md_consumer::{Consumer, ConsumerConfig};
use md_core::{is_heartbeat_packet, Channel, FeedGroups, PacketMessages};
use md_publisher::{FaultConfig, NetConfig, PublisherAgent, PublisherConfig, SendingTime};
use rand::{Rng, SeedableRng};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

/// A UDP port free on 127.0.0.1 right now (for a retransmission server bound later).
fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

fn publisher_config(groups: FeedGroups, retransmit_port: u16) -> PublisherConfig {
    let mut net = NetConfig::loopback(groups);
    net.retransmit_bind = SocketAddrV4::new(Ipv4Addr::LOCALHOST, retransmit_port);
    let mut c = PublisherConfig::new(net);
    c.heartbeat_interval = Duration::from_millis(5);
    c.snapshot_interval = Duration::from_millis(2);
    c
}

/// Every datagram received on the incremental channels of one feed.
struct Capture {
    sockets: Vec<(Channel, UdpSocket)>,
    data: [Vec<Vec<u8>>; 3],
    heartbeats: usize,
    /// The sequence number the newest heartbeat of each channel named.
    heartbeat_seq: [u32; 3],
    buf: Vec<u8>,
}

impl Capture {
    fn open(groups: FeedGroups) -> Capture {
        let sockets = Channel::INCREMENTAL
            .iter()
            .map(|c| {
                let s = md_consumer::join_multicast(groups.get(*c), Ipv4Addr::LOCALHOST, 8 << 20);
                (*c, s.unwrap())
            })
            .collect();
        Capture {
            sockets,
            data: Default::default(),
            heartbeats: 0,
            heartbeat_seq: [0; 3],
            buf: vec![0; 65_536],
        }
    }

    fn drain(&mut self) {
        for (c, s) in &self.sockets {
            while let Ok(n) = s.recv(&mut self.buf) {
                let p = &self.buf[..n];
                if is_heartbeat_packet(p) {
                    self.heartbeats += 1;
                    self.heartbeat_seq[c.index()] = PacketMessages::new(p).unwrap().0.seq;
                } else {
                    self.data[c.index()].push(p.to_vec());
                }
            }
        }
    }
}

/// Runs `agent` until it has read the whole outbound journal and closed its packets (at the
/// end of a batch), stepping the matching agent on when the journal ends inside a batch.
fn catch_up(agent: &mut PublisherAgent, engine: &mut common::Engine) {
    loop {
        let end = engine.outbound().written_seq();
        if agent.next_journal_seq() > end && agent.core().at_event_boundary() {
            return;
        }
        if agent.do_work().unwrap() == 0 && agent.next_journal_seq() > end {
            assert!(engine.advance() > 0, "the journal ends inside a batch");
        }
    }
}

#[test]
fn publishers_with_different_batching_and_timers_send_identical_incremental_packets() {
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = common::start_engine(tmp.path(), 31, 3_000, 1);
    let groups_a = FeedGroups::on_group(common::group(81), 41_110);
    let groups_b = FeedGroups::on_group(common::group(82), 41_120);
    let mut ca = publisher_config(groups_a, 0);
    ca.batch_max = 1;
    ca.heartbeat_interval = Duration::from_millis(1);
    ca.snapshot_interval = Duration::from_millis(1);
    ca.sending_time = SendingTime::Wall;
    let mut cb = publisher_config(groups_b, 0);
    cb.batch_max = 1_000;
    cb.heartbeat_interval = Duration::from_millis(3);
    cb.snapshot_interval = Duration::from_millis(7);
    cb.sending_time = SendingTime::Journal;
    let mut cap_a = Capture::open(groups_a);
    let mut cap_b = Capture::open(groups_b);
    let mut a = PublisherAgent::open(ca, engine.products(), engine.outbound()).unwrap();
    let mut b = PublisherAgent::open(cb, engine.products(), engine.outbound()).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    while !engine.is_done() {
        engine.advance();
        // A reads one frame per duty cycle and lags; B reads everything now and then.
        a.do_work().unwrap();
        if rng.gen_range(0..8) == 0 {
            b.do_work().unwrap();
        }
        if rng.gen_range(0..100) == 0 {
            // Let the timers fire in the middle of the stream.
            std::thread::sleep(Duration::from_millis(3));
            a.do_work().unwrap();
            b.do_work().unwrap();
        }
        cap_a.drain();
        cap_b.drain();
    }
    let end = engine.outbound().written_seq();
    assert_eq!(end, engine.outbound().written_seq());
    catch_up(&mut a, &mut engine);
    catch_up(&mut b, &mut engine);
    std::thread::sleep(Duration::from_millis(20));
    cap_a.drain();
    cap_b.drain();

    for c in Channel::INCREMENTAL {
        let (pa, pb) = (&cap_a.data[c.index()], &cap_b.data[c.index()]);
        assert!(pa.len() > 150, "{c:?}: {} packets", pa.len());
        assert_eq!(pa.len(), pb.len(), "{c:?}");
        assert_eq!(
            pa.len() as u32,
            a.core().last_seq(c),
            "{c:?}: a datagram was lost"
        );
        for (i, (x, y)) in pa.iter().zip(pb).enumerate() {
            assert_eq!(PacketMessages::new(x).unwrap().0.seq, i as u32 + 1, "{c:?}");
            assert!(x == y, "{c:?}: packet {} differs", i + 1);
        }
    }
    assert_eq!(a.core().stats().events_split, 0);
    assert_eq!(b.core().stats().events_split, 0);
    // The timers did fire while the journal was read: heartbeats and snapshots went out in
    // between, on both, and did not disturb the incremental numbering.
    assert!(cap_a.heartbeats > 0 && cap_b.heartbeats > 0);
    assert!(a.core().last_seq(Channel::Snapshot) > 10);
    assert!(b.core().last_seq(Channel::Snapshot) > 0);
}

/// A leader A (losing 3% of its multicast packets), a standby B on the same journal and host,
/// and a consumer told both retransmission addresses, A first. A dies after `kill_at` inbound
/// events; before that, whichever of the two is named by `standby_ahead` reads 200 more events
/// than the other.
fn fail_over(seed: u64, test_group: u8, port: u16, standby_ahead: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = common::start_engine(tmp.path(), seed, 3_000, 1);
    let groups = FeedGroups::on_group(common::group(test_group), port);
    let mut ca = publisher_config(groups, free_udp_port());
    ca.batch_max = 64;
    ca.faults = Some(FaultConfig {
        seed,
        loss_ppm: 30_000,
        duplicate_ppm: 0,
        reorder_ppm: 0,
    });
    let mut cb = publisher_config(groups, free_udp_port());
    cb.batch_max = 7;
    let addr = |c: &PublisherConfig| SocketAddr::V4(c.net.retransmit_bind);
    let (addr_a, addr_b) = (addr(&ca), addr(&cb));
    let mut a = PublisherAgent::open(ca, engine.products(), engine.outbound()).unwrap();
    let mut b = PublisherAgent::open_standby(cb, engine.products(), engine.outbound()).unwrap();
    assert!(a.is_active() && !b.is_active());
    assert_eq!(a.retransmit_addr(), addr_a);

    let mut cc = ConsumerConfig::new(groups);
    cc.from_session_start = true;
    cc.retransmit_server = Some(addr_a);
    cc.retransmit_alternates = vec![addr_b];
    cc.retransmit_timeout = Duration::from_millis(10);
    let mut consumer = Consumer::open(cc).unwrap();

    let kill_at = 1_200;
    for _ in 0..kill_at {
        engine.advance();
        a.do_work().unwrap();
        b.do_work().unwrap();
        consumer.poll();
    }
    let settle = |a: &mut PublisherAgent, consumer: &mut Consumer| {
        // Let the consumer take what A sent and recover A's own losses from A.
        for _ in 0..20 {
            a.do_work().unwrap();
            consumer.poll();
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    settle(&mut a, &mut consumer);
    // One of them reads ahead of the other before A dies.
    for _ in 0..200 {
        engine.advance();
        if standby_ahead {
            b.do_work().unwrap();
        } else {
            a.do_work().unwrap();
            consumer.poll();
        }
    }
    let ahead = if standby_ahead { &mut b } else { &mut a };
    catch_up(ahead, &mut engine);
    if !standby_ahead {
        // A has read the whole journal so far: its duty cycle now only answers requests.
        settle(&mut a, &mut consumer);
    }
    // What both built is the same, byte for byte, whether it was sent or not.
    let mut compared = 0;
    for c in Channel::INCREMENTAL {
        let newest = a.core().last_seq(c).min(b.core().last_seq(c));
        for seq in 1..=newest {
            assert_eq!(a.history(c).get(seq), b.history(c).get(seq), "{c:?} {seq}");
            compared += 1;
        }
    }
    assert!(compared > 150, "{compared}");
    let l3 = Channel::L3;
    let (sent_by_a, built_by_b) = (a.core().last_seq(l3), b.core().last_seq(l3));
    if standby_ahead {
        assert!(built_by_b > sent_by_a, "{built_by_b} {sent_by_a}");
    } else {
        assert!(built_by_b < sent_by_a, "{built_by_b} {sent_by_a}");
    }
    let dup_before = consumer.client().stats().duplicates;
    drop(a);

    b.activate().unwrap();
    assert!(b.is_active());
    assert_eq!(b.retransmit_addr(), addr_b);
    while !engine.is_done() {
        engine.advance();
        b.do_work().unwrap();
        consumer.poll();
    }
    let end = engine.outbound().written_seq();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let work = b.do_work().unwrap();
        consumer.poll();
        let caught_up = Channel::INCREMENTAL
            .iter()
            .all(|c| consumer.client().applied_seq(*c) == b.core().last_seq(*c));
        if b.next_journal_seq() > end && caught_up && consumer.client().is_synced() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence: consumer {:?}, B {:?} {:?}",
            consumer.client().stats(),
            b.net_stats(),
            b.retransmit_stats()
        );
        if work == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let orders = common::assert_books_equal(engine.agent.engine(), b.core(), consumer.client());
    assert!(orders > 50, "{orders}");
    let cs = consumer.client().stats();
    assert_eq!(cs.packets_skipped, 0, "{cs:?}");
    assert_eq!(cs.instrument_desyncs, 0, "{cs:?}");
    if standby_ahead {
        // L3 packets sent_by_a + 1 ..= built_by_b were built by B on standby and never
        // multicast by anyone: the consumer asked the dead A first, then B, which served them
        // from its history.
        assert!(b.retransmit_stats().packets_resent >= u64::from(built_by_b - sent_by_a));
        assert_eq!(consumer.retransmit_server_in_use(l3), Some(addr_b));
    } else {
        // B multicast again, with the same numbers, the L3 packets built_by_b + 1 ..= sent_by_a
        // the consumer had from A: all dropped as duplicates.
        assert!(
            cs.duplicates - dup_before >= u64::from(sent_by_a - built_by_b),
            "{cs:?}: B's repeats of A's packets were not dropped as duplicates"
        );
    }
}

#[test]
fn a_standby_ahead_of_the_dead_leader_serves_the_packets_it_never_sent() {
    fail_over(32, 83, 41_130, true);
}

#[test]
fn a_standby_behind_the_dead_leader_repeats_packets_consumers_drop_as_duplicates() {
    fail_over(33, 84, 41_140, false);
}

#[test]
fn a_demoted_publisher_goes_silent_frees_its_port_and_resumes_the_numbering_when_promoted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut engine = common::start_engine(tmp.path(), 34, 2_000, 1);
    let groups = FeedGroups::on_group(common::group(85), 41_150);
    let port = free_udp_port();
    let mut cap = Capture::open(groups);
    let mut a = PublisherAgent::open(
        publisher_config(groups, port),
        engine.products(),
        engine.outbound(),
    )
    .unwrap();
    let run = |a: &mut PublisherAgent, engine: &mut common::Engine, events: usize| {
        for _ in 0..events {
            engine.advance();
            a.do_work().unwrap();
        }
        catch_up(a, engine);
        // Long enough for heartbeats to fall due.
        std::thread::sleep(Duration::from_millis(12));
        a.do_work().unwrap();
    };
    run(&mut a, &mut engine, 1_200);
    std::thread::sleep(Duration::from_millis(5));
    cap.drain();
    let before = Channel::INCREMENTAL.map(|c| a.core().last_seq(c));
    for c in Channel::INCREMENTAL {
        assert_eq!(cap.data[c.index()].len() as u32, before[c.index()], "{c:?}");
    }
    let heartbeats = cap.heartbeats;
    assert!(heartbeats > 0);

    a.deactivate();
    assert!(!a.is_active());
    // The retransmission port is free again (the new leader may bind it on this host).
    drop(UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).unwrap());
    run(&mut a, &mut engine, 300);
    std::thread::sleep(Duration::from_millis(5));
    cap.drain();
    let built = Channel::INCREMENTAL.map(|c| a.core().last_seq(c));
    assert!(built[Channel::L3.index()] > before[Channel::L3.index()]);
    for c in Channel::INCREMENTAL {
        // Nothing was sent: neither the packets built nor heartbeats.
        assert_eq!(cap.data[c.index()].len() as u32, before[c.index()], "{c:?}");
    }
    assert_eq!(cap.heartbeats, heartbeats);

    a.activate().unwrap();
    std::thread::sleep(Duration::from_millis(5));
    cap.drain();
    // The activation heartbeats name the next packet of each channel.
    for c in Channel::INCREMENTAL {
        assert_eq!(cap.heartbeat_seq[c.index()], built[c.index()] + 1, "{c:?}");
    }
    // The packets built on standby are served from the history, byte for byte (asked for
    // 50 at a time, so that the answers fit the socket's receive buffer).
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut buf = vec![0_u8; 65_536];
    let mut first = before[Channel::L3.index()] + 1;
    while first <= built[Channel::L3.index()] {
        let count = (built[Channel::L3.index()] - first + 1).min(50) as u16;
        let mut req = [0_u8; 64];
        let n = md_core::MdMsg::RetransmitRequest {
            channel: Channel::L3 as u8,
            first_seq: first,
            count,
        }
        .encode(&mut req)
        .unwrap();
        sock.send_to(&req[..n], a.retransmit_addr()).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < usize::from(count) {
            assert!(
                Instant::now() < deadline,
                "{} of {count} packets",
                got.len()
            );
            a.do_work().unwrap();
            while let Ok(n) = sock.recv(&mut buf) {
                got.push(buf[..n].to_vec());
            }
        }
        for p in &got {
            assert_eq!(
                Some(p.as_slice()),
                a.history(Channel::L3).get(first),
                "{first}"
            );
            first += 1;
        }
    }
    // And the stream goes on from there.
    run(&mut a, &mut engine, 200);
    std::thread::sleep(Duration::from_millis(5));
    cap.drain();
    let l3 = &cap.data[Channel::L3.index()];
    let resumed = PacketMessages::new(&l3[before[Channel::L3.index()] as usize])
        .unwrap()
        .0
        .seq;
    assert_eq!(resumed, built[Channel::L3.index()] + 1);
}
