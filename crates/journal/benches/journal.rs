//! Journal benchmarks (not run in CI): append throughput and producer ->
//! reader hand-off latency compared with a crossbeam bounded channel and the
//! `disruptor` crate. Run with `cargo bench -p journal --bench journal`.
//!
//! Latency method: a paced producer sends one 64-byte message every
//! `PACE_NS` (intended send time t_i = start + i * pace); it stamps t_i in
//! the payload and the consumer records `now - t_i` into an HDR histogram, so
//! queueing behind a stalled pipeline is counted (no coordinated omission).
//! All consumers busy-spin (journal readers use `WaitStrategy::BusySpin`, the
//! disruptor uses `BusySpin`, the channel consumer spins on `try_recv`).

use hdrhistogram::Histogram;
use journal::{IdleStrategy, Journal, JournalConfig, PublishError, RetentionPolicy, WaitStrategy};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MSG: usize = 64;
const PACE_NS: u64 = 2_000;
const WARMUP: u64 = 50_000;
const MEASURED: u64 = 250_000;

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn bench_dir(tag: &str) -> tempfile::TempDir {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix(tag)
        .tempdir_in(base)
        .unwrap()
}

fn config(dir: &std::path::Path) -> JournalConfig {
    let mut c = JournalConfig::in_dir(dir);
    c.segment_size = 64 << 20;
    c.segments_max = 8;
    c.retention = RetentionPolicy::KeepLast(3);
    c.payload_len_max = 256;
    c.handoff_slots = 4096;
    c
}

fn throughput() {
    let frames = env_u64("JOURNAL_BENCH_FRAMES", 10_000_000);
    let payload = [0x5au8; MSG];
    println!("## append throughput: {frames} frames x {MSG}-byte payload, Durability::Memory, /dev/shm, 64 MiB segments");
    println!("| mode | frames/s | payload MB/s | journal MB/s (incl. 32 B header) |");
    println!("|---|---:|---:|---:|");
    let report = |name: &str, el: Duration| {
        let fps = frames as f64 / el.as_secs_f64();
        println!(
            "| {name} | {:.2} M | {:.0} | {:.0} |",
            fps / 1e6,
            fps * MSG as f64 / 1e6,
            fps * (MSG + 32) as f64 / 1e6
        );
    };
    {
        let dir = bench_dir("jbench-tp");
        let (_j, mut s) = Journal::open(config(dir.path())).unwrap();
        let t = Instant::now();
        for _ in 0..frames {
            s.append(1, &payload).unwrap();
        }
        report(
            "Sequencer::append (single writer, commit per frame)",
            t.elapsed(),
        );
    }
    {
        let dir = bench_dir("jbench-tpb");
        let (_j, mut s) = Journal::open(config(dir.path())).unwrap();
        let t = Instant::now();
        let mut left = frames;
        while left > 0 {
            let n = left.min(256);
            s.append_batch((0..n).map(|_| (1u16, &payload[..])))
                .unwrap();
            left -= n;
        }
        report("Sequencer::append_batch (256 per commit)", t.elapsed());
    }
    {
        let dir = bench_dir("jbench-tph");
        let (j, mut s) = Journal::open(config(dir.path())).unwrap();
        let p = j.publisher().unwrap();
        let t = Instant::now();
        let prod = std::thread::spawn(move || {
            for _ in 0..frames {
                while let Err(PublishError::Full) = p.try_publish(1, &payload) {
                    std::hint::spin_loop();
                }
            }
        });
        let mut done = 0;
        let mut idle = IdleStrategy::new(WaitStrategy::BusySpin);
        while done < frames as usize {
            let n = s.do_work().unwrap();
            done += n;
            idle.idle(n);
        }
        let el = t.elapsed();
        prod.join().unwrap();
        report(
            "Publisher -> hand-off -> Sequencer::do_work (2 threads)",
            el,
        );
    }
}

/// Per-call append latency across many segment rolls (16 MiB segments).
fn append_latency() {
    let frames = env_u64("JOURNAL_BENCH_ROLL_FRAMES", 3_000_000);
    let dir = bench_dir("jbench-roll");
    let mut c = config(dir.path());
    c.segment_size = 16 << 20;
    let (_j, mut s) = Journal::open(c).unwrap();
    let payload = [0x33u8; MSG];
    let mut h = new_hist();
    let mut t0 = Instant::now();
    for _ in 0..frames {
        s.append(1, &payload).unwrap();
        let t1 = Instant::now();
        h.record((t1 - t0).as_nanos().max(1) as u64).unwrap();
        t0 = t1;
    }
    println!(
        "## single-thread append call latency over {frames} frames, 16 MiB segments ({} rolls)",
        s.active_segment()
    );
    println!("| p50 ns | p99 ns | p99.99 ns | max ns |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} |",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.9999),
        h.max()
    );
}

fn stamp(buf: &mut [u8; MSG], t: u64) {
    buf[..8].copy_from_slice(&t.to_le_bytes());
}

fn read_stamp(p: &[u8]) -> u64 {
    u64::from_le_bytes(p[..8].try_into().unwrap())
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap()
}

/// Paced sender loop: calls `send(intended_ns)` for every message.
fn paced(base: Instant, total: u64, mut send: impl FnMut(u64)) {
    let start = base.elapsed().as_nanos() as u64 + 1_000_000;
    for i in 0..total {
        let intended = start + i * PACE_NS;
        while (base.elapsed().as_nanos() as u64) < intended {
            std::hint::spin_loop();
        }
        send(intended);
    }
}

fn record(h: &mut Histogram<u64>, i: u64, base: Instant, intended: u64) {
    if i >= WARMUP {
        let now = base.elapsed().as_nanos() as u64;
        h.record(now.saturating_sub(intended).max(1)).unwrap();
    }
}

fn lat_journal_three_threads() -> Histogram<u64> {
    lat_journal_three(WaitStrategy::BusySpin)
}

fn lat_journal_three(wait: WaitStrategy) -> Histogram<u64> {
    let dir = bench_dir("jbench-l3");
    let (j, mut s) = Journal::open(config(dir.path())).unwrap();
    let total = WARMUP + MEASURED;
    let base = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let seq = std::thread::spawn(move || {
        let mut idle = IdleStrategy::new(wait);
        s.run(&st, &mut idle).unwrap();
    });
    let mut r = j.reader_with(1, wait, false).unwrap();
    let reader = std::thread::spawn(move || {
        let mut h = new_hist();
        for i in 0..total {
            let f = r.next_blocking().unwrap();
            record(&mut h, i, base, read_stamp(f.payload));
        }
        h
    });
    let p = j.publisher().unwrap();
    let mut buf = [0u8; MSG];
    paced(base, total, |t| {
        stamp(&mut buf, t);
        while let Err(PublishError::Full) = p.try_publish(1, &buf) {
            std::hint::spin_loop();
        }
    });
    let h = reader.join().unwrap();
    stop.store(true, Ordering::Release);
    seq.join().unwrap();
    h
}

fn lat_journal_direct() -> Histogram<u64> {
    let dir = bench_dir("jbench-l2");
    let (j, mut s) = Journal::open(config(dir.path())).unwrap();
    let total = WARMUP + MEASURED;
    let base = Instant::now();
    let mut r = j.reader_with(1, WaitStrategy::BusySpin, false).unwrap();
    let reader = std::thread::spawn(move || {
        let mut h = new_hist();
        for i in 0..total {
            let f = r.next_blocking().unwrap();
            record(&mut h, i, base, read_stamp(f.payload));
        }
        h
    });
    let mut buf = [0u8; MSG];
    paced(base, total, |t| {
        stamp(&mut buf, t);
        s.append(1, &buf).unwrap();
    });
    reader.join().unwrap()
}

fn lat_crossbeam() -> Histogram<u64> {
    let total = WARMUP + MEASURED;
    let base = Instant::now();
    let (tx, rx) = crossbeam_channel::bounded::<[u8; MSG]>(4096);
    let reader = std::thread::spawn(move || {
        let mut h = new_hist();
        let mut i = 0;
        while i < total {
            match rx.try_recv() {
                Ok(m) => {
                    record(&mut h, i, base, read_stamp(&m));
                    i += 1;
                }
                Err(_) => std::hint::spin_loop(),
            }
        }
        h
    });
    let mut buf = [0u8; MSG];
    paced(base, total, |t| {
        stamp(&mut buf, t);
        tx.send(buf).unwrap();
    });
    reader.join().unwrap()
}

fn lat_disruptor() -> Histogram<u64> {
    use disruptor::{build_single_producer, BusySpin, Producer};
    struct Ev {
        bytes: [u8; MSG],
    }
    let total = WARMUP + MEASURED;
    let base = Instant::now();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let mut h = Some(new_hist());
    let mut i = 0u64;
    let handler = move |e: &Ev, _seq: i64, _eob: bool| {
        let hist = h.as_mut().unwrap();
        record(hist, i, base, read_stamp(&e.bytes));
        i += 1;
        if i == total {
            tx.send(h.take().unwrap()).unwrap();
        }
    };
    let mut producer = build_single_producer(4096, || Ev { bytes: [0; MSG] }, BusySpin)
        .handle_events_with(handler)
        .build();
    let mut buf = [0u8; MSG];
    paced(base, total, |t| {
        stamp(&mut buf, t);
        producer.publish(|e| e.bytes = buf);
    });
    let h = rx.recv().unwrap();
    drop(producer);
    h
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    println!(
        "nproc = {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("loadavg at start: {}", load().trim());
    throughput();
    println!();
    append_latency();
    println!();
    println!(
        "## hand-off latency, {MSG}-byte message, paced 1 per {} us, {MEASURED} measured after {WARMUP} warm-up, busy-spin consumers",
        PACE_NS / 1000
    );
    // Interleaved rounds; per pipeline and percentile the median of the
    // rounds is reported (the machine is shared with other builds).
    let rounds = env_u64("JOURNAL_BENCH_ROUNDS", 3) as usize;
    type Run = (&'static str, fn() -> Histogram<u64>);
    let pipelines: Vec<Run> = vec![
        (
            "journal: producer appends directly, reader thread (2 threads)",
            lat_journal_direct,
        ),
        (
            "journal: producer -> hand-off -> sequencer -> reader (3 threads, busy-spin)",
            lat_journal_three_threads,
        ),
        (
            "journal: producer -> hand-off -> sequencer -> reader (3 threads, SpinThenYield(100))",
            || lat_journal_three(WaitStrategy::SpinThenYield { spins_max: 100 }),
        ),
        (
            "crossbeam_channel::bounded(4096), try_recv spin (2 threads)",
            lat_crossbeam,
        ),
        (
            "disruptor 4 single producer, BusySpin (2 threads)",
            lat_disruptor,
        ),
    ];
    let mut samples: Vec<Vec<[u64; 4]>> = vec![Vec::new(); pipelines.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in pipelines.iter().enumerate() {
            let h = f();
            samples[i].push([
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max(),
            ]);
        }
    }
    let median = |v: &Vec<[u64; 4]>, k: usize| {
        let mut x: Vec<u64> = v.iter().map(|a| a[k]).collect();
        x.sort_unstable();
        x[x.len() / 2]
    };
    let runs: Vec<(&str, [u64; 4])> = pipelines
        .iter()
        .zip(&samples)
        .map(|((name, _), v)| (*name, [0, 1, 2, 3].map(|k| median(v, k))))
        .collect();
    println!("loadavg at end: {}", load().trim());
    let base = runs[0].1;
    println!("median of {rounds} interleaved rounds per pipeline");
    println!(
        "| pipeline | p50 ns | p99 ns | p99.9 ns | max ns | p50 / p99 / p99.9 vs journal direct |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    for (name, m) in &runs {
        println!(
            "| {name} | {} | {} | {} | {} | {:.2}x / {:.2}x / {:.2}x |",
            m[0],
            m[1],
            m[2],
            m[3],
            m[0] as f64 / base[0] as f64,
            m[1] as f64 / base[1] as f64,
            m[2] as f64 / base[2] as f64,
        );
    }
}
