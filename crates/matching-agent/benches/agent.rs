//! The production path of the matching core (not run in CI): the matching agent replaying a
//! recorded inbound journal of SBE events into a fresh outbound journal, decoding, matching,
//! encoding and appending every result, as the appliance's pipeline thread does.
//!
//! `cargo bench -p matching-agent --bench agent`. Environment:
//! `AGENT_BENCH_WORKLOAD=single|multi100` (default multi100: the matching bench's
//! 100-instrument Zipf stream, seed 2), `AGENT_BENCH_COMMANDS` (default 2,000,000),
//! `AGENT_BENCH_ROUNDS` (default 3). Journals are memory-backed files under `/dev/shm` when it
//! exists (durability `Memory`: no fsync).
//!
//! Per round: a fresh outbound journal; the preamble (deposits and the book-filling phase) is
//! processed untimed, then the measured commands in duty cycles of up to 256 events. Prints
//! events/s and the duty-cycle time per event (HDR histogram of each `do_work` call's time
//! divided by its events).

use std::time::Instant;

use hdrhistogram::Histogram;
use journal::{Journal, JournalConfig, TestClock};
use matching::workload::{self, WorkloadConfig};
use matching_agent::{inbound, AgentConfig, MatchingAgent};

fn journal_config(dir: &std::path::Path) -> JournalConfig {
    let mut c = JournalConfig::in_dir(dir);
    c.segment_size = 256 << 20;
    c.segments_max = 64;
    c
}

fn main() {
    let commands: u64 = std::env::var("AGENT_BENCH_COMMANDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let rounds: usize = std::env::var("AGENT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let name = std::env::var("AGENT_BENCH_WORKLOAD").unwrap_or_else(|_| "multi100".into());
    let cfg = match name.as_str() {
        "single" => WorkloadConfig::single(1, commands),
        _ => WorkloadConfig::multi(2, 100, commands),
    };
    let w = workload::generate(&cfg);
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    }
    .expect("a temporary directory");

    let inbound_dir = base.path().join("in");
    let clock = TestClock::new(1_763_769_600_000_000_000, 1_000);
    let (inbound, mut seq) =
        Journal::open_with_clock(journal_config(&inbound_dir), clock).expect("inbound journal");
    let mut buf = [0_u8; inbound::ENCODED_LEN_MAX];
    for c in w.preamble.iter().chain(&w.commands) {
        let (t, len) = inbound::encode(&c.kind, 0, &mut buf).expect("encodable command");
        seq.append(t, &buf[..len]).expect("append");
    }
    let preamble = w.preamble.len() as u64;
    let total = inbound.written_seq();
    println!(
        "## Matching agent: {name}, {} measured events after a preamble of {preamble} (journals in {})",
        total - preamble,
        base.path().display()
    );
    println!(
        "- engine prefetches (tables beyond L2): {}",
        matching::Engine::new(w.engine_config.clone()).prefetches()
    );

    for round in 0..rounds {
        let out_dir = base.path().join(format!("out-{round}"));
        let mut agent = MatchingAgent::open(
            AgentConfig::new(w.engine_config.clone(), journal_config(&out_dir)),
            &inbound,
        )
        .expect("agent");
        while agent.processed_seq() < preamble {
            agent.do_work().expect("do_work");
        }
        let first = agent.processed_seq();
        let mut per_event = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
        let start = Instant::now();
        while agent.processed_seq() < total {
            let t = Instant::now();
            let n = agent.do_work().expect("do_work");
            let ns = t.elapsed().as_nanos() as u64;
            if n > 0 {
                per_event.record((ns / n as u64).max(1)).unwrap();
            }
        }
        let elapsed = start.elapsed();
        let events = agent.processed_seq() - first;
        println!(
            "- round {round}: {:.2} M events/s ({events} events in {:.3} s, {} outbound frames); duty cycle per event p50 {} / p99 {} / max {} ns",
            events as f64 / elapsed.as_secs_f64() / 1e6,
            elapsed.as_secs_f64(),
            agent.outbound_journal().written_seq(),
            per_event.value_at_quantile(0.5),
            per_event.value_at_quantile(0.99),
            per_event.max(),
        );
        drop(agent);
        let _ = std::fs::remove_dir_all(&out_dir);
    }
}
