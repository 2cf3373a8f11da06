//! Shared by the integration tests: a real outbound journal from the matching agent running a
//! seeded workload, and comparisons of books against the engine's.

#![allow(dead_code)]

use journal::{Journal, JournalConfig, TestClock};
use matching::workload::{self, WorkloadConfig};
use matching_agent::{inbound, AgentConfig, MatchingAgent};
use md_consumer::MdClient;
use md_core::{Channel, PriceLevel, Side};
use md_publisher::MdCore;
use std::path::Path;

pub fn small_journal(dir: &Path) -> JournalConfig {
    let mut c = JournalConfig::in_dir(dir);
    c.segment_size = 1 << 20;
    c.segments_max = 256;
    c
}

pub fn workload(seed: u64, commands: u64) -> workload::Workload {
    workload::generate(&WorkloadConfig {
        seed,
        instruments: 3,
        accounts: 200,
        resting_per_instrument: 100,
        commands,
        zipf_s: 1.0,
    })
}

/// The inbound journal (SBE events of the workload) and the matching agent that turned it into
/// the outbound journal, run to the end.
pub struct Engine {
    pub workload: workload::Workload,
    pub inbound: Journal,
    pub agent: MatchingAgent,
}

impl Engine {
    pub fn outbound(&self) -> &Journal {
        self.agent.outbound_journal()
    }
    pub fn products(&self) -> &[matching::ProductConfig] {
        &self.workload.engine_config.products
    }
}

/// Writes the workload as SBE inbound events (clock from 2025-11-22, 1 µs per event) and runs
/// the matching agent over all of them.
pub fn run_engine(dir: &Path, seed: u64, commands: u64) -> Engine {
    let mut e = start_engine(dir, seed, commands, 256);
    while !e.is_done() {
        assert!(e.advance() > 0);
    }
    e
}

/// Writes the workload's inbound journal in full but leaves the matching agent (`batch_max`
/// inbound events per [`Engine::advance`]) to be stepped, so the outbound journal grows while
/// publishers read it.
pub fn start_engine(dir: &Path, seed: u64, commands: u64, batch_max: usize) -> Engine {
    let w = workload(seed, commands);
    let clock = TestClock::new(1_763_769_600_000_000_000, 1_000);
    let (inbound, mut seq) =
        Journal::open_with_clock(small_journal(&dir.join("in")), clock).unwrap();
    let mut buf = [0_u8; inbound::ENCODED_LEN_MAX];
    // Batches of 1 to 8 events, as a sequencer under varying load publishes them: market-data
    // packets close at the end of each batch.
    let mut batch: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut x = seed | 1;
    let mut size = 1;
    for c in w.preamble.iter().chain(w.commands.iter()) {
        let (t, len) = inbound::encode(&c.kind, 0, &mut buf).unwrap();
        batch.push((t, buf[..len].to_vec()));
        if batch.len() >= size {
            seq.append_batch(batch.iter().map(|(t, p)| (*t, &p[..])))
                .unwrap();
            batch.clear();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size = 1 + (x % 8) as usize;
        }
    }
    seq.append_batch(batch.iter().map(|(t, p)| (*t, &p[..])))
        .unwrap();
    let mut config = AgentConfig::new(w.engine_config.clone(), small_journal(&dir.join("out")));
    config.batch_max = batch_max;
    let agent = MatchingAgent::open(config, &inbound).unwrap();
    Engine {
        workload: w,
        inbound,
        agent,
    }
}

impl Engine {
    /// Runs the matching agent's duty cycle once; returns the inbound events processed.
    pub fn advance(&mut self) -> usize {
        self.agent.do_work().unwrap()
    }

    /// Every inbound event has been processed.
    pub fn is_done(&self) -> bool {
        self.agent.processed_seq() >= self.inbound.written_seq()
    }
}

fn engine_side(s: Side) -> matching::Side {
    match s {
        Side::Buy => matching::Side::Buy,
        Side::Sell => matching::Side::Sell,
    }
}

/// The engine's L3 of one side: (order id, price, open quantity), best first, FIFO.
pub fn engine_l3(e: &matching::Engine, id: u32, side: Side) -> Vec<(u64, i64, u64)> {
    e.orders(id, engine_side(side))
        .iter()
        .map(|o| (o.order_id, o.price, o.leaves_quantity))
        .collect()
}

pub fn engine_l2(e: &matching::Engine, id: u32, side: Side, depth: usize) -> Vec<PriceLevel> {
    e.levels(id, engine_side(side))
        .into_iter()
        .take(depth)
        .map(|(price, quantity, order_count)| PriceLevel {
            price,
            quantity,
            order_count,
        })
        .collect()
}

/// Asserts that the publisher's books, the consumer's books and the engine's books are equal
/// for every instrument, on L1, L2 and L3; returns the number of resting orders compared.
pub fn assert_books_equal(engine: &matching::Engine, core: &MdCore, client: &MdClient) -> usize {
    let depth = core.config().l2_depth;
    let mut orders = 0;
    for id in core.instrument_ids() {
        let p = core.instrument(id).unwrap();
        let c = client
            .instrument(id)
            .unwrap_or_else(|| panic!("consumer never saw instrument {id}"));
        for ch in Channel::INCREMENTAL {
            assert!(c.is_synced(ch), "instrument {id} not in sync on {ch:?}");
        }
        for side in [Side::Buy, Side::Sell] {
            let e3 = engine_l3(engine, id, side);
            let p3: Vec<_> = p
                .book
                .orders(side)
                .iter()
                .map(|o| (o.order_id, o.price, o.quantity))
                .collect();
            let c3: Vec<_> =
                c.l3.orders(side)
                    .iter()
                    .map(|o| (o.order_id, o.price, o.quantity))
                    .collect();
            assert_eq!(p3, e3, "publisher L3 of {id} {side:?}");
            assert_eq!(c3, e3, "consumer L3 of {id} {side:?}");
            orders += e3.len();
            let e2 = engine_l2(engine, id, side, depth);
            assert_eq!(
                p.published_l2(side),
                &e2[..],
                "publisher L2 of {id} {side:?}"
            );
            assert_eq!(c.l2.levels(side), e2, "consumer L2 of {id} {side:?}");
        }
        let best = |side| engine_l2(engine, id, side, 1).first().copied();
        assert_eq!(
            p.published_bbo().bid,
            best(Side::Buy),
            "publisher L1 bid of {id}"
        );
        assert_eq!(
            p.published_bbo().ask,
            best(Side::Sell),
            "publisher L1 ask of {id}"
        );
        assert_eq!(c.bbo, p.published_bbo(), "consumer L1 of {id}");
        for ch in Channel::INCREMENTAL {
            assert_eq!(
                c.rpt_seq(ch),
                p.rpt_seq()[ch.index()],
                "rptSeq of {id} on {ch:?}"
            );
        }
    }
    orders
}

/// A multicast group private to this test process and test: 239.<a>.<b>.<test> with a and b
/// from the process id, so that two test runs on the same host (two agents running the suite
/// at once) do not hear each other's packets.
pub fn group(test: u8) -> std::net::Ipv4Addr {
    let pid = std::process::id();
    std::net::Ipv4Addr::new(
        239,
        100 + (pid % 100) as u8,
        ((pid / 100) % 250) as u8,
        test,
    )
}
