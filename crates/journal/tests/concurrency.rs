//! Concurrency test: one sequencer thread fed by 4 producer threads through
//! the lock-free hand-off, plus three concurrent registered readers, over
//! many frames (1M in debug builds, 4M in release; override with
//! `JOURNAL_STRESS_FRAMES`). Retention is `KeepLast(3)` with a tight
//! `segments_max`, so the sequencer regularly hits back-pressure from the
//! slowest reader and must wait rather than overwrite. Proves: every reader
//! sees the identical gap-free sequence 1..=N, each producer's messages
//! appear in its own order, nothing is lost or duplicated, and no reader ever
//! observes reclaimed data.

use journal::{
    AppendError, IdleStrategy, Journal, JournalConfig, PublishError, RetentionPolicy, WaitStrategy,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PRODUCERS: u64 = 4;
const READERS: usize = 3;

fn frames() -> u64 {
    let default = if cfg!(debug_assertions) {
        1_000_000
    } else {
        4_000_000
    };
    let n = std::env::var("JOURNAL_STRESS_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    n / PRODUCERS * PRODUCERS
}

fn msg(producer: u64, counter: u64, buf: &mut [u8; 64]) -> usize {
    buf[0] = producer as u8;
    buf[1..9].copy_from_slice(&counter.to_le_bytes());
    let len = 9 + (counter % 48) as usize;
    for (i, b) in buf[9..len].iter_mut().enumerate() {
        *b = (counter as u8).wrapping_add(i as u8) ^ producer as u8;
    }
    len
}

#[test]
fn four_producers_one_sequencer_three_readers() {
    let n = frames();
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::Builder::new()
            .prefix("journal-stress")
            .tempdir_in("/dev/shm")
            .unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let mut cfg = JournalConfig::in_dir(dir.path());
    cfg.segment_size = 1 << 20;
    cfg.segments_max = 6;
    cfg.retention = RetentionPolicy::KeepLast(3);
    cfg.payload_len_max = 64;
    cfg.handoff_slots = 1024;
    let (journal, mut sequencer) = Journal::open(cfg).unwrap();
    let started = Instant::now();

    // Readers first (registered from sequence 1, before anything is written).
    let readers: Vec<_> = (0..READERS)
        .map(|i| {
            let mut r = journal
                .reader_with(1, WaitStrategy::default(), i == 0)
                .unwrap();
            std::thread::spawn(move || {
                let mut next_counter = [0u64; PRODUCERS as usize];
                let mut hash = 0xcbf2_9ce4_8422_2325u64;
                let mut buf = [0u8; 64];
                for expect in 1..=n {
                    let f = r.next_timeout(Duration::from_secs(60)).expect("frame");
                    assert_eq!(f.sequence, expect, "reader {i}: gap or reorder");
                    let p = f.payload[0] as u64;
                    let c = u64::from_le_bytes(f.payload[1..9].try_into().unwrap());
                    assert_eq!(
                        c, next_counter[p as usize],
                        "reader {i}: producer {p} out of order"
                    );
                    let len = msg(p, c, &mut buf);
                    assert_eq!(f.payload, &buf[..len], "reader {i}: payload");
                    assert_eq!(f.template_id as u64, p);
                    next_counter[p as usize] += 1;
                    hash = (hash ^ f.sequence ^ (p << 56) ^ (c << 8)).wrapping_mul(0x100_0000_01b3);
                }
                assert!(r.poll().unwrap().is_none(), "reader {i}: extra frames");
                assert!(next_counter.iter().all(|&c| c == n / PRODUCERS));
                hash
            })
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let back_pressure = Arc::new(AtomicU64::new(0));
    let seq_thread = {
        let stop = stop.clone();
        let bp = back_pressure.clone();
        std::thread::spawn(move || {
            let mut idle = IdleStrategy::default();
            loop {
                match sequencer.do_work() {
                    Ok(0) if stop.load(Ordering::Acquire) => break,
                    Ok(w) => idle.idle(w),
                    Err(AppendError::BackPressure { .. }) => {
                        bp.fetch_add(1, Ordering::Relaxed);
                        idle.idle(0);
                    }
                    Err(e) => panic!("sequencer: {e}"),
                }
            }
            sequencer.written_seq()
        })
    };

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let publisher = journal.publisher().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                let mut idle = IdleStrategy::new(WaitStrategy::SpinThenYield { spins_max: 20 });
                for c in 0..n / PRODUCERS {
                    let len = msg(p, c, &mut buf);
                    loop {
                        match publisher.try_publish(p as u16, &buf[..len]) {
                            Ok(()) => break,
                            Err(PublishError::Full) => idle.idle(0),
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let hashes: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    stop.store(true, Ordering::Release);
    let written = seq_thread.join().unwrap();
    assert_eq!(written, n);
    assert_eq!(journal.committed_seq(), n);
    assert!(
        hashes.windows(2).all(|w| w[0] == w[1]),
        "readers disagree: {hashes:?}"
    );
    eprintln!(
        "concurrency: {n} frames, {} back-pressure events, {:?}",
        back_pressure.load(Ordering::Relaxed),
        started.elapsed()
    );
}
