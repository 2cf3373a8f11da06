//! The publisher is a pure function of the outbound journal, and its packets rebuild the books.
//!
//! A seeded workload runs through the real matching agent into a real outbound journal. The
//! publisher's core reads it twice with sending times taken from the journal: the two packet
//! streams (every channel, snapshots included) must be byte-identical. The stream must also be
//! well formed (contiguous sequence numbers from 1 per channel, datagrams within
//! `packet_size_max`, every message decodable), and a consumer fed the packets (in order, then
//! shuffled within small windows and with duplicates, as a network would) must end with L1,
//! L2 and L3 books equal to the publisher's and to the engine's.

mod common;

use md_consumer::{ConsumerConfig, MdClient};
use md_core::{Channel, FeedGroups, MdMsg, PacketMessages};
use md_publisher::{CoreConfig, MdCore};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::net::Ipv4Addr;
use std::time::Instant;

type Packets = Vec<(Channel, Vec<u8>)>;

fn publish(config: &CoreConfig, engine: &common::Engine) -> (MdCore, Packets) {
    let mut core = MdCore::new(config.clone(), engine.products());
    let mut out: Packets = Vec::new();
    let mut r = engine.outbound().reader(1).unwrap();
    let mut n = 0_u64;
    core.send_definitions(&mut out);
    while let Some(f) = r.poll().unwrap() {
        core.set_time(f.timestamp_ns);
        n += 1;
        // A snapshot about every 1 500 frames, where no packet is open.
        if n >= 1_500 && core.at_event_boundary() {
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
    core.snapshot_next(&mut out);
    core.end_of_session(&mut out);
    (core, out)
}

fn client() -> MdClient {
    let mut c = ConsumerConfig::new(FeedGroups::on_group(Ipv4Addr::new(239, 0, 0, 1), 1));
    c.from_session_start = true;
    MdClient::new(c, false)
}

#[test]
fn the_same_journal_gives_byte_identical_packets_that_rebuild_the_books() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::run_engine(tmp.path(), 7, 4_000);
    let config = CoreConfig::default();
    let (core, a) = publish(&config, &engine);
    let (_, b) = publish(&config, &engine);
    assert_eq!(a.len(), b.len());
    assert!(a == b, "packet streams differ");

    // Well formed.
    let mut next = [1_u32; 4];
    let mut messages = 0;
    for (c, p) in &a {
        assert!(p.len() <= config.packet_size_max);
        let (h, msgs) = PacketMessages::new(p).unwrap();
        assert_eq!(h.seq, next[c.index()], "{c:?}");
        next[c.index()] += 1;
        for m in msgs {
            MdMsg::decode(m.unwrap()).unwrap();
            messages += 1;
        }
    }
    let stats = core.stats();
    assert!(stats.trades > 100, "{stats:?}");
    assert_eq!(stats.undecodable + stats.unknown_instrument, 0);
    assert!(messages as u64 >= stats.book_events + stats.trades);
    assert!(next.iter().all(|n| *n > 2), "{next:?}");

    // In order.
    let mut c = client();
    let now = Instant::now();
    for (ch, p) in &a {
        c.on_packet(*ch, p, now);
    }
    let orders = common::assert_books_equal(engine.agent.engine(), &core, &c);
    assert!(orders > 50, "only {orders} resting orders compared");
    assert!(c.session_ended());
    assert_eq!(c.stats().gaps_detected, 0);

    // Shuffled within windows of 8 and 5% duplicated.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut shuffled = a.clone();
    for w in shuffled.chunks_mut(8) {
        w.shuffle(&mut rng);
    }
    let mut c = client();
    for (ch, p) in &shuffled {
        c.on_packet(*ch, p, now);
        if rng.gen_range(0..100) < 5 {
            c.on_packet(*ch, p, now);
        }
    }
    common::assert_books_equal(engine.agent.engine(), &core, &c);
    assert!(c.stats().duplicates > 0);
    assert!(c.stats().gaps_detected > 0);
    assert_eq!(c.stats().packets_skipped, 0);
}

#[test]
fn a_consumer_that_misses_the_start_converges_from_a_snapshot_without_retransmission() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::run_engine(tmp.path(), 8, 3_000);
    let (core, packets) = publish(&CoreConfig::default(), &engine);
    // Join at the middle of the stream: the first half is never seen.
    let mut cfg = ConsumerConfig::new(FeedGroups::on_group(Ipv4Addr::new(239, 0, 0, 1), 1));
    cfg.from_session_start = false;
    let mut c = MdClient::new(cfg, false);
    let now = Instant::now();
    for (ch, p) in &packets[packets.len() / 2..] {
        c.on_packet(*ch, p, now);
    }
    common::assert_books_equal(engine.agent.engine(), &core, &c);
    assert!(c.stats().snapshots_applied >= 3, "{:?}", c.stats());

    // The snapshot channel lags: each snapshot packet arrives after the next 30 incremental
    // packets, so the consumer has already applied (and dropped, for instruments not yet in
    // sync) updates the snapshot does not hold. They must be replayed from its ring.
    let half = &packets[packets.len() / 2..];
    let mut delayed: Vec<(Channel, Vec<u8>)> = Vec::new();
    let mut held: Vec<(usize, (Channel, Vec<u8>))> = Vec::new();
    let mut incrementals = 0;
    for (ch, p) in half {
        if *ch == Channel::Snapshot {
            held.push((incrementals + 30, (*ch, p.clone())));
            continue;
        }
        delayed.push((*ch, p.clone()));
        incrementals += 1;
        while held.first().is_some_and(|(due, _)| *due <= incrementals) {
            delayed.push(held.remove(0).1);
        }
    }
    delayed.extend(held.into_iter().map(|(_, p)| p));
    let mut cfg = ConsumerConfig::new(FeedGroups::on_group(Ipv4Addr::new(239, 0, 0, 1), 1));
    cfg.from_session_start = false;
    let mut c = MdClient::new(cfg, false);
    for (ch, p) in &delayed {
        c.on_packet(*ch, p, now);
    }
    common::assert_books_equal(engine.agent.engine(), &core, &c);
}

/// The incremental data packets of a run over the whole journal where the caller also ends
/// events (as a reader that runs dry does), takes snapshots between events and sends
/// heartbeats, each with probability 1/`every` per frame, from `seed`. `mid_event` also ends
/// "events" where the journal has none (what the publisher must never do).
fn publish_with_interruptions(
    engine: &common::Engine,
    seed: u64,
    every: u32,
    mid_event: bool,
) -> [Vec<Vec<u8>>; 3] {
    let mut core = MdCore::new(CoreConfig::default(), engine.products());
    let mut out: Packets = Vec::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut r = engine.outbound().reader(1).unwrap();
    core.send_definitions(&mut out);
    while let Some(f) = r.poll().unwrap() {
        core.set_time(rng.gen());
        if core.at_event_boundary() {
            if rng.gen_range(0..every) == 0 {
                core.flush(&mut out);
            }
            if rng.gen_range(0..every) == 0 {
                core.snapshot_next(&mut out);
            }
        } else if mid_event && rng.gen_range(0..every) == 0 {
            core.flush(&mut out);
        }
        if rng.gen_range(0..every) == 0 {
            let c = Channel::INCREMENTAL[rng.gen_range(0..3)];
            core.heartbeat(c, &mut out);
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
    // The core notices when an event goes on after it was closed.
    assert_eq!(core.stats().events_split > 0, mid_event);
    let mut by_channel: [Vec<Vec<u8>>; 3] = Default::default();
    for (c, p) in out {
        if c != Channel::Snapshot && !md_core::is_heartbeat_packet(&p) {
            by_channel[c.index()].push(p);
        }
    }
    by_channel
}

#[test]
fn packet_boundaries_do_not_depend_on_where_reads_stopped_or_timers_fired() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = common::run_engine(tmp.path(), 9, 2_000);
    let quiet = publish_with_interruptions(&engine, 1, u32::MAX, false);
    for c in Channel::INCREMENTAL {
        assert!(
            quiet[c.index()].len() > 150,
            "{c:?}: {}",
            quiet[c.index()].len()
        );
    }
    for (seed, every) in [(2, 2), (3, 5), (4, 50)] {
        let busy = publish_with_interruptions(&engine, seed, every, false);
        assert!(busy == quiet, "seed {seed}: the packets differ");
    }
    // The comparison sees a packet closed inside an engine event.
    let broken = publish_with_interruptions(&engine, 5, 50, true);
    assert!(broken != quiet);
}
