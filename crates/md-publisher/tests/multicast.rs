//! Real multicast sockets on the loopback interface, with faults injected at the publisher.
//!
//! Each test publishes a real outbound journal (a seeded workload through the matching agent)
//! over UDP multicast on 127.0.0.1 (IP_MULTICAST_IF, TTL 1, loop on; a group per test and per
//! process, so tests and concurrent test runs do not hear each other). The publisher drops,
//! duplicates and reorders packets from a seed. The tests prove that:
//! - a consumer that starts with the session recovers every lost packet by retransmission and
//!   ends with L1, L2 and L3 books equal to the publisher's and the engine's;
//! - with feeds A and B losing packets independently, the consumer arbitrates (drops the second
//!   copy) and still ends equal;
//! - a consumer started in the middle of the session converges from the snapshot channel;
//! - a request beyond the bounded history is answered "not available" (with the range still
//!   held), a request inside it with the original packets byte for byte, and a requester over
//!   its rate gets "rate limited".
//!
//! Multicast on loopback works in this sandbox without any setup (`lo` has no MULTICAST flag,
//! but with IP_MULTICAST_IF = 127.0.0.1 and a receiver joined on 127.0.0.1 Linux delivers the
//! datagrams locally); see docs/market-data-format.md, "Running on loopback".

mod common;

use md_consumer::{Consumer, ConsumerConfig};
use md_core::{Channel, FeedGroups, MdMsg, PacketMessages, RejectReason};
use md_publisher::{FaultConfig, NetConfig, PublisherAgent, PublisherConfig};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn publisher_config(group: Ipv4Addr, port: u16) -> PublisherConfig {
    let mut c = PublisherConfig::new(NetConfig::loopback(FeedGroups::on_group(group, port)));
    c.heartbeat_interval = Duration::from_millis(5);
    c.snapshot_interval = Duration::from_millis(2);
    c.batch_max = 128;
    c
}

fn consumer_config(
    p: &PublisherConfig,
    agent: &PublisherAgent,
    from_start: bool,
) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(p.net.feed_a);
    c.feed_b = p.net.feed_b;
    c.retransmit_server = Some(agent.retransmit_addr());
    c.from_session_start = from_start;
    c.retransmit_timeout = Duration::from_millis(10);
    c
}

/// Runs publisher and consumer in turns until the journal is published and the consumer has
/// applied everything the publisher sent on every channel and is in sync.
fn run_until_converged(agent: &mut PublisherAgent, consumer: &mut Consumer, journal_end: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let work = agent.do_work().unwrap();
        consumer.poll();
        let published = agent.next_journal_seq() > journal_end;
        let caught_up = Channel::INCREMENTAL
            .iter()
            .all(|c| consumer.client().applied_seq(*c) == agent.core().last_seq(*c));
        if published && caught_up && consumer.client().is_synced() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence: consumer {:?}, publisher {:?} {:?}",
            consumer.client().stats(),
            agent.net_stats(),
            agent.retransmit_stats()
        );
        if work == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

#[test]
fn with_loss_duplication_and_reordering_the_consumer_books_equal_the_publisher_and_engine() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::run_engine(tmp.path(), 21, 5_000);
    let mut pc = publisher_config(common::group(11), 41_010);
    pc.faults = Some(FaultConfig {
        seed: 5,
        loss_ppm: 50_000,
        duplicate_ppm: 20_000,
        reorder_ppm: 20_000,
    });
    let mut agent = PublisherAgent::open(pc.clone(), engine.products(), engine.outbound()).unwrap();
    let mut consumer = Consumer::open(consumer_config(&pc, &agent, true)).unwrap();
    run_until_converged(&mut agent, &mut consumer, engine.outbound().written_seq());
    let orders = common::assert_books_equal(engine.agent.engine(), agent.core(), consumer.client());
    assert!(orders > 50);
    let net = agent.net_stats();
    let cs = consumer.client().stats();
    assert!(net.injected_losses > 20, "{net:?}");
    assert!(
        net.injected_duplicates > 5 && net.injected_reorders > 5,
        "{net:?}"
    );
    assert!(
        cs.gaps_detected > 0 && cs.retransmit_requests > 0 && cs.duplicates > 0,
        "{cs:?}"
    );
    assert!(agent.retransmit_stats().packets_resent > 0);
    assert_eq!(cs.packets_skipped, 0, "{cs:?}");
    // The candles the consumer received are the ones the publisher closed.
    for id in agent.core().instrument_ids() {
        let mine = agent.core().instrument(id).unwrap();
        let total: usize = md_core::CandleInterval::ALL
            .iter()
            .map(|iv| mine.candles.closed(*iv).len())
            .sum();
        assert_eq!(
            consumer.client().instrument(id).unwrap().candles().len(),
            total.min(256)
        );
    }

    // End of session reaches the consumer.
    agent.end_session();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !consumer.client().session_ended() {
        agent.do_work().unwrap();
        consumer.poll();
        assert!(Instant::now() < deadline, "end of session not seen");
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn feeds_a_and_b_are_arbitrated_and_independent_losses_are_covered() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::run_engine(tmp.path(), 22, 3_000);
    let mut pc = publisher_config(common::group(21), 41_020);
    pc.net.feed_b = Some(FeedGroups::on_group(common::group(22), 41_030));
    pc.faults = Some(FaultConfig {
        seed: 6,
        loss_ppm: 50_000,
        duplicate_ppm: 0,
        reorder_ppm: 10_000,
    });
    let mut agent = PublisherAgent::open(pc.clone(), engine.products(), engine.outbound()).unwrap();
    let mut consumer = Consumer::open(consumer_config(&pc, &agent, true)).unwrap();
    run_until_converged(&mut agent, &mut consumer, engine.outbound().written_seq());
    common::assert_books_equal(engine.agent.engine(), agent.core(), consumer.client());
    let cs = consumer.client().stats();
    // Nearly every packet arrives twice (once per feed): the second copy is dropped.
    let sent: u32 = Channel::ALL.iter().map(|c| agent.core().last_seq(*c)).sum();
    assert!(cs.duplicates > u64::from(sent) / 2, "{cs:?} of {sent}");
    assert_eq!(cs.packets_skipped, 0);
    // A packet lost on one feed is taken from the other: retransmission is asked for far
    // fewer packets than were lost (only those lost on both, about 5% of 5%).
    let lost = agent.net_stats().injected_losses;
    assert!(lost > 20, "{lost}");
    assert!(
        cs.retransmit_requests * 4 < lost,
        "{} requests for {lost} losses",
        cs.retransmit_requests
    );
}

#[test]
fn a_consumer_started_late_converges_from_the_snapshot_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::run_engine(tmp.path(), 23, 4_000);
    let mut pc = publisher_config(common::group(31), 41_040);
    pc.faults = Some(FaultConfig {
        seed: 7,
        loss_ppm: 20_000,
        duplicate_ppm: 10_000,
        reorder_ppm: 10_000,
    });
    let mut agent = PublisherAgent::open(pc.clone(), engine.products(), engine.outbound()).unwrap();
    let end = engine.outbound().written_seq();
    // Publish the first half with nobody listening.
    while agent.next_journal_seq() <= end / 2 {
        agent.do_work().unwrap();
    }
    let mut consumer = Consumer::open(consumer_config(&pc, &agent, false)).unwrap();
    run_until_converged(&mut agent, &mut consumer, end);
    common::assert_books_equal(engine.agent.engine(), agent.core(), consumer.client());
    let cs = consumer.client().stats();
    assert!(cs.snapshots_applied >= 3, "{cs:?}");
    assert!(consumer.client().applied_seq(Channel::L3) > 0);
}

fn request(
    sock: &UdpSocket,
    server: SocketAddr,
    channel: Channel,
    first_seq: u32,
    count: u16,
) -> Vec<Vec<u8>> {
    let mut buf = [0_u8; 64];
    let len = MdMsg::RetransmitRequest {
        channel: channel as u8,
        first_seq,
        count,
    }
    .encode(&mut buf)
    .unwrap();
    sock.send_to(&buf[..len], server).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut out = Vec::new();
    let mut rb = vec![0_u8; 65_536];
    while let Ok((n, _)) = sock.recv_from(&mut rb) {
        out.push(rb[..n].to_vec());
    }
    out
}

#[test]
fn a_request_beyond_history_is_answered_not_available() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::run_engine(tmp.path(), 24, 2_000);
    let mut pc = publisher_config(common::group(41), 41_050);
    pc.retransmit.history_packets_max = 16;
    // No heartbeats while we probe: the history must stay where it is.
    pc.heartbeat_interval = Duration::from_secs(3_600);
    pc.retransmit.burst_packets = 40;
    pc.retransmit.packets_per_second = 1;
    let mut agent = PublisherAgent::open(pc, engine.products(), engine.outbound()).unwrap();
    let end = engine.outbound().written_seq();
    // Until the last event's packets are closed too (a read that finds nothing more does it).
    while agent.next_journal_seq() <= end || !agent.core().at_event_boundary() {
        agent.do_work().unwrap();
    }
    let newest = agent.core().last_seq(Channel::L3);
    assert!(newest > 100, "{newest}");
    let oldest = newest - 15;
    let server = agent.retransmit_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();

    // The server answers from its own duty cycle: run it on a thread while we ask.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let t = std::thread::spawn(move || {
        while !s2.load(std::sync::atomic::Ordering::Acquire) {
            if agent.do_work().unwrap() == 0 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        agent
    });

    let reject = |answers: &[Vec<u8>]| -> MdMsg {
        assert_eq!(answers.len(), 1, "one answer expected");
        let (h, mut msgs) = PacketMessages::new(&answers[0]).unwrap();
        assert_eq!(h.seq, 0, "a reject travels in packet 0");
        MdMsg::decode(msgs.next().unwrap().unwrap()).unwrap()
    };
    match reject(&request(&sock, server, Channel::L3, 1, 5)) {
        MdMsg::RetransmitReject {
            reason,
            oldest_available,
            newest_available,
            first_seq,
            channel,
            ..
        } => {
            assert_eq!(reason, RejectReason::NotAvailable);
            assert_eq!((first_seq, channel), (1, Channel::L3 as u8));
            assert_eq!((oldest_available, newest_available), (oldest, newest));
        }
        other => panic!("{other:?}"),
    }
    // Not sent yet.
    assert!(matches!(
        reject(&request(&sock, server, Channel::L3, newest + 1, 1)),
        MdMsg::RetransmitReject {
            reason: RejectReason::NotAvailable,
            ..
        }
    ));
    // Inside the history: the original packets, in order (clipped at the newest).
    let answers = request(&sock, server, Channel::L3, oldest + 10, 20);
    let seqs: Vec<u32> = answers
        .iter()
        .map(|p| PacketMessages::new(p).unwrap().0.seq)
        .collect();
    assert_eq!(seqs, (oldest + 10..=newest).collect::<Vec<_>>());
    // Malformed and unknown-channel requests.
    sock.send_to(&[1, 2, 3], server).unwrap();
    let mut rb = [0_u8; 256];
    let (n, _) = sock.recv_from(&mut rb).unwrap();
    assert!(matches!(
        reject(&[rb[..n].to_vec()]),
        MdMsg::RetransmitReject {
            reason: RejectReason::InvalidRequest,
            ..
        }
    ));
    assert!(matches!(
        reject(&request(&sock, server, Channel::Snapshot, oldest, 1)),
        MdMsg::RetransmitReject {
            reason: RejectReason::UnknownChannel,
            ..
        }
    ));
    // The bucket held 40 packets and refills at 1/s: 6 were served, 34 remain.
    assert_eq!(request(&sock, server, Channel::L3, oldest, 16).len(), 16);
    assert_eq!(request(&sock, server, Channel::L3, oldest, 16).len(), 16);
    assert!(matches!(
        reject(&request(&sock, server, Channel::L3, oldest, 16)),
        MdMsg::RetransmitReject {
            reason: RejectReason::RateLimited,
            ..
        }
    ));
    // Another requester has its own bucket.
    let other = UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(request(&other, server, Channel::L3, oldest, 16).len(), 16);

    stop.store(true, std::sync::atomic::Ordering::Release);
    let agent = t.join().unwrap();
    let rs = agent.retransmit_stats();
    assert!(
        rs.not_available >= 2 && rs.rate_limited >= 1 && rs.invalid >= 2,
        "{rs:?}"
    );
}

#[test]
fn idle_incremental_channels_send_heartbeats_even_while_snapshots_flow() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::run_engine(tmp.path(), 25, 500);
    let mut pc = publisher_config(common::group(61), 41_070);
    pc.snapshot_interval = Duration::from_millis(1);
    pc.heartbeat_interval = Duration::from_millis(20);
    let mut agent = PublisherAgent::open(pc.clone(), engine.products(), engine.outbound()).unwrap();
    let end = engine.outbound().written_seq();
    while agent.next_journal_seq() <= end || !agent.core().at_event_boundary() {
        agent.do_work().unwrap();
    }
    let before: Vec<u32> = Channel::ALL
        .iter()
        .map(|c| agent.core().last_seq(*c))
        .collect();
    let heartbeats_before = agent.net_stats().heartbeats_sent;
    let receivers: Vec<UdpSocket> = Channel::INCREMENTAL
        .iter()
        .map(|c| md_consumer::join_multicast(pc.net.feed_a.get(*c), Ipv4Addr::LOCALHOST, 1 << 20))
        .collect::<Result<_, _>>()
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(100) {
        agent.do_work().unwrap();
        std::thread::sleep(Duration::from_micros(500));
    }
    let after: Vec<u32> = Channel::ALL
        .iter()
        .map(|c| agent.core().last_seq(*c))
        .collect();
    let mut buf = vec![0_u8; 65_536];
    for (c, r) in Channel::INCREMENTAL.iter().zip(&receivers) {
        // Heartbeats do not consume sequence numbers: the channel's numbering stays where the
        // journal left it, and each heartbeat names the next number.
        assert_eq!(after[c.index()], before[c.index()], "{c:?}");
        let mut heartbeats = 0;
        while let Ok(n) = r.recv(&mut buf) {
            assert!(
                md_core::is_heartbeat_packet(&buf[..n]),
                "{c:?}: a data packet"
            );
            let h = PacketMessages::new(&buf[..n]).unwrap().0;
            assert_eq!(h.seq, before[c.index()] + 1, "{c:?}");
            heartbeats += 1;
        }
        // About one heartbeat per 20 ms of silence.
        assert!(
            (2..=6).contains(&heartbeats),
            "{c:?}: {heartbeats} heartbeats in 100 ms"
        );
    }
    let sent = agent.net_stats().heartbeats_sent - heartbeats_before;
    assert!((6..=18).contains(&sent), "{sent} heartbeats in 100 ms");
    assert!(after[Channel::Snapshot.index()] - before[Channel::Snapshot.index()] > 20);
}

/// Every datagram one publisher run sends on the four channels of `groups`, in order.
fn capture_run(engine: &common::Engine, groups: FeedGroups) -> Vec<(Channel, Vec<u8>)> {
    let mut pc = PublisherConfig::new(NetConfig::loopback(groups));
    pc.sending_time = md_publisher::SendingTime::Journal;
    // Only journal-driven output: no timer may fire during the run.
    pc.heartbeat_interval = Duration::from_secs(3_600);
    pc.snapshot_interval = Duration::from_secs(3_600);
    let receivers: Vec<(Channel, UdpSocket)> = Channel::ALL
        .iter()
        .map(|c| {
            (
                *c,
                md_consumer::join_multicast(groups.get(*c), Ipv4Addr::LOCALHOST, 4 << 20).unwrap(),
            )
        })
        .collect();
    let mut agent = PublisherAgent::open(pc, engine.products(), engine.outbound()).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0_u8; 65_536];
    let mut drain = |out: &mut Vec<(Channel, Vec<u8>)>| {
        for (c, s) in &receivers {
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                out.push((*c, buf[..n].to_vec()));
            }
        }
    };
    let end = engine.outbound().written_seq();
    while agent.next_journal_seq() <= end || !agent.core().at_event_boundary() {
        agent.do_work().unwrap();
        drain(&mut out);
    }
    agent.end_session();
    std::thread::sleep(Duration::from_millis(20));
    drain(&mut out);
    // Sort by channel, keeping each channel's order: the interleaving of sockets in `drain` is
    // ours, not the publisher's.
    out.sort_by_key(|(c, _)| *c);
    out
}

#[test]
fn two_runs_over_the_same_journal_send_byte_identical_datagrams() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::run_engine(tmp.path(), 26, 2_000);
    let groups = FeedGroups::on_group(common::group(71), 41_080);
    let a = capture_run(&engine, groups);
    let b = capture_run(&engine, groups);
    assert!(a.len() > 50, "{} datagrams", a.len());
    assert_eq!(a.len(), b.len());
    assert!(a == b, "the datagram streams differ");
    // Sending times are journal times (the inbound clock starts at 2025-11-22), not wall.
    for (_, p) in &a {
        let h = PacketMessages::new(p).unwrap().0;
        assert!(h.sending_time_ns == 0 || h.sending_time_ns >= 1_763_769_600_000_000_000);
    }
}
