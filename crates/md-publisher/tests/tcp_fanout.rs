//! The TCP fan-out for consumers without multicast: everyone gets everything, nobody is always
//! first.
//!
//! Eight `TcpConsumer`s connect to the publisher's fan-out and receive a real outbound journal
//! (a seeded workload through the matching agent). The test proves that each of them ends with
//! L1, L2 and L3 books equal to the publisher's and the engine's, and that the send order is
//! shuffled per update: over thousands of updates every subscriber is first about 1/8 of the
//! time (each between half and one and a half times its fair share), where a fixed order would
//! make subscriber 0 first every time.

mod common;

use md_consumer::{ConsumerConfig, TcpConsumer};
use md_core::{Channel, FeedGroups};
use md_publisher::{NetConfig, PublisherAgent, PublisherConfig};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

#[test]
fn every_tcp_subscriber_rebuilds_the_books_and_the_first_place_rotates() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::run_engine(tmp.path(), 31, 3_000);
    let group = FeedGroups::on_group(common::group(51), 41_060);
    let mut pc = PublisherConfig::new(NetConfig::loopback(group));
    pc.net.tcp_bind = Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    pc.tcp.shuffle_seed = 99;
    pc.batch_max = 8;
    pc.heartbeat_interval = Duration::from_millis(5);
    let mut agent = PublisherAgent::open(pc, engine.products(), engine.outbound()).unwrap();
    let addr = agent.tcp_addr().unwrap();
    let mut cc = ConsumerConfig::new(group);
    cc.from_session_start = true;
    cc.retransmit_timeout = Duration::from_millis(1);
    let mut subs: Vec<TcpConsumer> = (0..8)
        .map(|_| TcpConsumer::connect(addr, cc.clone()).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.net_stats().tcp_subscribers < 8 {
        agent.do_work().unwrap();
        assert!(Instant::now() < deadline);
    }
    let end = engine.outbound().written_seq();
    loop {
        let work = agent.do_work().unwrap();
        for s in &mut subs {
            s.poll_with(|_, _| {}).unwrap();
        }
        let done = agent.next_journal_seq() > end
            && subs.iter().all(|s| {
                Channel::INCREMENTAL
                    .iter()
                    .all(|c| s.client().applied_seq(*c) == agent.core().last_seq(*c))
                    && s.client().is_synced()
            });
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "TCP subscribers did not catch up"
        );
        if work == 0 {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    for s in &subs {
        common::assert_books_equal(engine.agent.engine(), agent.core(), s.client());
    }
    assert_eq!(agent.net_stats().tcp_dropped, 0);
    let firsts = agent.tcp_first_counts();
    let total: u64 = firsts.iter().sum();
    assert!(total > 1_000, "{total} updates");
    let fair = total / 8;
    for (i, f) in firsts.iter().enumerate() {
        assert!(
            *f > fair / 2 && *f < fair * 3 / 2,
            "subscriber {i} first {f} times of {total}: {firsts:?}"
        );
    }
}
