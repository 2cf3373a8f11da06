//! The FIX message store on the order path: one `save` + `flush` per sent ExecutionReport (what
//! the gateway does around each socket write), on a real file in `TMPDIR`, 200,000 messages of
//! 220 bytes; percentiles from an HDR histogram, then the mean.
//!
//! cargo bench -p fix-bench --bench store

use fix_session::{FileStore, Store};
use hdrhistogram::Histogram;
use std::time::Instant;

const MESSAGES: u64 = 200_000;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::open(dir.path(), "BENCH", MESSAGES as usize + 1, false, 0).unwrap();
    let msg = vec![b'x'; 220];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
    let start = Instant::now();
    for seq in 1..=MESSAGES {
        let t = Instant::now();
        store.save(seq, &msg).unwrap();
        store.flush().unwrap();
        hist.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    let total = start.elapsed();
    println!(
        "store save+flush ({} in {}): n={} p50={} ns p99={} ns p99.9={} ns max={} ns mean={:.0} ns",
        std::env::var("TMPDIR").unwrap_or_else(|_| "/tmp".into()),
        dir.path().display(),
        MESSAGES,
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        hist.max(),
        total.as_nanos() as f64 / MESSAGES as f64
    );
}
