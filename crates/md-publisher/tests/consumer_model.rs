//! The consumer's recovery logic against many seeded network histories (property test).
//!
//! One real outbound journal (a seeded workload through the matching agent) is published once
//! by the core, with a snapshot cycle over every instrument at the end. Each proptest case then
//! plays a different network to a fresh `MdClient`: packets lost, duplicated and reordered
//! within a window at random rates, the consumer joining at the start or in the middle, and a
//! simulated retransmission server that holds only the last `history` packets of each channel
//! (answering older requests "not available", in a packet numbered 0, as the real server does).
//! Whatever happened, the consumer must end with L1, L2 and L3 books equal to the publisher's
//! and the engine's: lost packets come back by retransmission, and where they cannot, the
//! instruments whose rptSeq jumped resync from the snapshots.

mod common;

use md_consumer::{ConsumerConfig, MdClient};
use md_core::{Channel, FeedGroups, MdMsg, PacketBuilder, PacketMessages, RejectReason};
use md_publisher::{CoreConfig, MdCore};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

type Packets = Vec<(Channel, u32, Vec<u8>)>;

fn publish(engine: &common::Engine) -> (MdCore, Packets, usize) {
    let mut core = MdCore::new(CoreConfig::default(), engine.products());
    let mut out: Vec<(Channel, Vec<u8>)> = Vec::new();
    let mut r = engine.outbound().reader(1).unwrap();
    let mut n = 0_u64;
    core.send_definitions(&mut out);
    while let Some(f) = r.poll().unwrap() {
        core.set_time(f.timestamp_ns);
        n += 1;
        // A snapshot about every 400 frames, where no packet is open.
        if n >= 400 && core.at_event_boundary() {
            n = 0;
            core.snapshot_next(&mut out);
        }
        core.on_frame(
            f.timestamp_ns,
            f.template_id,
            f.payload,
            f.end_of_batch,
            &mut out,
        );
    }
    core.flush(&mut out);
    let tail_start = out.len();
    for c in Channel::INCREMENTAL {
        core.heartbeat(c, &mut out);
    }
    for _ in core.instrument_ids().collect::<Vec<_>>() {
        core.snapshot_next(&mut out);
    }
    let packets = out
        .into_iter()
        .map(|(c, p)| {
            let seq = PacketMessages::new(&p).unwrap().0.seq;
            (c, seq, p)
        })
        .collect();
    (core, packets, tail_start)
}

fn reject(channel: Channel, first_seq: u32, oldest: u32, newest: u32) -> Vec<u8> {
    let mut buf = [0_u8; 64];
    let n = MdMsg::RetransmitReject {
        channel: channel as u8,
        first_seq,
        count: 1,
        oldest_available: oldest,
        newest_available: newest,
        reason: RejectReason::NotAvailable,
    }
    .encode(&mut buf)
    .unwrap();
    let mut b = PacketBuilder::new(256);
    assert!(b.push(&buf[..n]));
    b.finish(0, 0).to_vec()
}

#[derive(Debug, Clone)]
struct Net {
    seed: u64,
    loss_pct: u32,
    dup_pct: u32,
    window: usize,
    join_at_pct: usize,
    history: u32,
}

fn net() -> impl Strategy<Value = Net> {
    (
        any::<u64>(),
        0..20_u32,
        0..10_u32,
        1..12_usize,
        prop_oneof![Just(0_usize), 1..90_usize],
        prop_oneof![Just(1_000_000_u32), Just(1_u32), 2..200_u32],
    )
        .prop_map(
            |(seed, loss_pct, dup_pct, window, join_at_pct, history)| Net {
                seed,
                loss_pct,
                dup_pct,
                window,
                join_at_pct,
                history,
            },
        )
}

fn play(n: &Net, packets: &Packets, tail_start: usize) -> MdClient {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(n.seed);
    let start = packets.len() * n.join_at_pct / 100;
    let mut cfg = ConsumerConfig::new(FeedGroups::on_group(Ipv4Addr::new(239, 0, 0, 1), 1));
    cfg.from_session_start = start == 0;
    let mut c = MdClient::new(cfg, true);
    // Index of each channel's packets by sequence number (heartbeats are not numbered: each
    // names the next packet, and a server never resends one).
    let mut by_seq: [Vec<usize>; 4] = Default::default();
    for (i, (ch, seq, p)) in packets.iter().enumerate() {
        if md_core::is_heartbeat_packet(p) {
            assert_eq!(*seq as usize, by_seq[ch.index()].len() + 1);
            continue;
        }
        assert_eq!(*seq as usize, by_seq[ch.index()].len() + 1);
        by_seq[ch.index()].push(i);
    }
    let mut order: Vec<usize> = (start..packets.len()).collect();
    for w in order.chunks_mut(n.window) {
        w.shuffle(&mut rng);
    }
    let t0 = Instant::now();
    let mut step = 0_u64;
    // The newest packet sent per channel, as of the current delivery (for the history window).
    let mut sent = [0_u32; 4];
    let mut deliver = |c: &mut MdClient,
                       i: usize,
                       step: &mut u64,
                       rng: &mut rand_chacha::ChaCha8Rng,
                       lossy: bool| {
        let (ch, seq, p) = &packets[i];
        if !md_core::is_heartbeat_packet(p) {
            sent[ch.index()] = sent[ch.index()].max(*seq);
        }
        *step += 1;
        let now = t0 + Duration::from_millis(*step);
        if !lossy || rng.gen_range(0..100) >= n.loss_pct {
            c.on_packet(*ch, p, now);
            if lossy && rng.gen_range(0..100) < n.dup_pct {
                c.on_packet(*ch, p, now);
            }
        }
        for r in c.gap_requests(now + Duration::from_millis(100)) {
            let newest = sent[r.channel.index()];
            let oldest = newest.saturating_sub(n.history - 1).max(1);
            if r.first_seq < oldest {
                c.on_packet(
                    r.channel,
                    &reject(r.channel, r.first_seq, oldest, newest),
                    now,
                );
                continue;
            }
            let last = (r.first_seq + u32::from(r.count) - 1).min(newest);
            for s in r.first_seq..=last {
                let (_, _, p) = &packets[by_seq[r.channel.index()][s as usize - 1]];
                c.on_packet(r.channel, p, now);
            }
        }
    };
    for i in order {
        deliver(&mut c, i, &mut step, &mut rng, true);
    }
    // The tail: heartbeats and the final snapshot cycle again, without loss, so that the last
    // gaps show up and every instrument has a snapshot after them.
    let tail: Vec<usize> = (tail_start.max(start)..packets.len()).collect();
    for _ in 0..3 {
        for &i in &tail {
            deliver(&mut c, i, &mut step, &mut rng, false);
        }
    }
    c
}

#[test]
fn the_consumer_converges_under_any_seeded_loss_duplication_reordering_and_history() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::run_engine(tmp.path(), 41, 2_000);
    let (core, packets, tail_start) = publish(&engine);
    // A fixed seed: the same 512 networks on every run (a failure replays).
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 512,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let skipped_somewhere = std::cell::Cell::new(false);
    runner
        .run(&net(), |n| {
            let c = play(&n, &packets, tail_start);
            common::assert_books_equal(engine.agent.engine(), &core, &c);
            if c.stats().packets_skipped > 0 {
                skipped_somewhere.set(true);
            }
            Ok(())
        })
        .unwrap();
    // The cases exercised the "not available" path too, not only retransmission.
    assert!(skipped_somewhere.get());
}
