//! Profiling driver (not a benchmark): `cargo bench -p matching --bench profile --no-run`, then
//! run the binary under `valgrind --tool=callgrind --toggle-collect=*replay*` to count the
//! instructions of the measured commands only. `PROFILE_WORKLOAD=single|multi100`,
//! `PROFILE_COMMANDS` (default 200,000), `PROFILE_BATCH=1` replays through `process_batch`.

use matching::workload::{self, WorkloadConfig};
use matching::*;

#[inline(never)]
fn replay(e: &mut Engine, commands: &[Command], batch: bool, sink: &mut CountingSink) {
    if batch {
        for chunk in commands.chunks(256) {
            e.process_batch(chunk, sink);
        }
    } else {
        for c in commands {
            e.process(c, sink);
        }
    }
}

fn main() {
    let n: u64 = std::env::var("PROFILE_COMMANDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let cfg = match std::env::var("PROFILE_WORKLOAD").as_deref() {
        Ok("multi100") => WorkloadConfig::multi(2, 100, n),
        _ => WorkloadConfig::single(1, n),
    };
    let batch = std::env::var("PROFILE_BATCH").is_ok();
    let w = workload::generate(&cfg);
    let mut e = Engine::new(w.engine_config.clone());
    let mut sink = CountingSink::default();
    for c in &w.preamble {
        e.process(c, &mut sink);
    }
    let repeat: usize = std::env::var("PROFILE_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let base = e.snapshot();
    if std::env::var("PROFILE_HASH").is_ok() {
        // Checksum of every output byte and of the final snapshot, to compare builds.
        let mut e = Engine::restore(&base).unwrap();
        let mut out = Vec::new();
        let mut h = crc32fast::Hasher::new();
        for chunk in w.commands.chunks(256) {
            out.clear();
            if batch {
                e.process_batch(chunk, &mut out);
            } else {
                for c in chunk {
                    e.process(c, &mut out);
                }
            }
            h.update(&encode_outputs(&out));
        }
        let outputs = h.finalize();
        let snapshot = crc32fast::hash(&e.snapshot());
        println!("outputs crc {outputs:08x}, final snapshot crc {snapshot:08x}");
        return;
    }
    let mut rates = Vec::new();
    let mut sink = CountingSink::default();
    for _ in 0..repeat {
        let mut e = Engine::restore(&base).unwrap();
        sink = CountingSink::default();
        let t0 = std::time::Instant::now();
        replay(&mut e, &w.commands, batch, &mut sink);
        let dt = t0.elapsed().as_secs_f64();
        rates.push(w.commands.len() as f64 / dt / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "{} commands, {} outputs, {} trades, M commands/s sorted: {:.2?}",
        w.commands.len(),
        sink.outputs,
        sink.trades,
        rates
    );
}
