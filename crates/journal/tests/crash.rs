//! kill -9 crash test: a real writer process (`journal-crash-writer`) appends
//! variable-size frames across many small segments as fast as it can and
//! reports its committed sequence on stdout; the test SIGKILLs it at random
//! (seeded) moments, round after round, each new writer reopening (and so
//! recovering) the journal and continuing. After every round the test
//! reopens the journal itself and proves: every frame verifies (checksum),
//! the sequence is gap-free from 1, each payload equals the deterministic
//! function of its sequence, and every sequence the writer reported as
//! committed is present. Seed: `JOURNAL_CRASH_SEED`; rounds:
//! `JOURNAL_CRASH_ROUNDS` (default 24). A second test reads the journal
//! read-only from this process *while* the writer process is appending
//! (cross-process readers, lock-free, via the mapped control file).

use journal::testkit::{payload_for, template_for};
use journal::{Journal, WaitStrategy};
use rand::{Rng, SeedableRng};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn scratch_dir() -> tempfile::TempDir {
    if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::Builder::new()
            .prefix("journal-crash")
            .tempdir_in("/dev/shm")
            .unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

/// Read the journal read-only from 1 and verify every frame; returns the last
/// sequence.
fn verify_all(dir: &std::path::Path) -> u64 {
    let j = Journal::open_read_only(dir).unwrap();
    let mut r = j.reader_with(1, WaitStrategy::BusySpin, true).unwrap();
    let mut expect = 1u64;
    let mut buf = Vec::new();
    while let Some(f) = r.poll().unwrap() {
        assert_eq!(f.sequence, expect, "gap in sequence");
        payload_for(expect, &mut buf);
        assert_eq!(f.payload, &buf[..], "payload of {expect}");
        assert_eq!(f.template_id, template_for(expect));
        expect += 1;
    }
    expect - 1
}

#[test]
fn kill_dash_nine_rounds_recover_a_verified_gap_free_prefix() {
    let seed = env_u64("JOURNAL_CRASH_SEED", 0x5eed);
    let rounds = env_u64("JOURNAL_CRASH_ROUNDS", 24);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let dir = scratch_dir();
    let exe = env!("CARGO_BIN_EXE_journal-crash-writer");
    let started = Instant::now();
    let mut reported_max = 0u64;
    let mut last_len = 0u64;
    for round in 0..rounds {
        let mut child = Command::new(exe)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn writer");
        let stdout = child.stdout.take().unwrap();
        let max = Arc::new(AtomicU64::new(0));
        let lines = Arc::new(AtomicU64::new(0));
        let (m2, l2) = (max.clone(), lines.clone());
        let pump = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = line.trim().parse::<u64>() {
                    m2.fetch_max(v, Ordering::SeqCst);
                    l2.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        // Wait until the writer has opened (recovered) the journal.
        let t = Instant::now();
        while lines.load(Ordering::SeqCst) == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "writer did not start"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        // Recovery never loses what an earlier writer reported as committed.
        let first = max.load(Ordering::SeqCst);
        assert!(
            first >= reported_max,
            "round {round}: reopened at {first} < reported {reported_max}"
        );
        std::thread::sleep(Duration::from_micros(rng.gen_range(500..40_000)));
        child.kill().expect("SIGKILL"); // SIGKILL on unix
        let status = child.wait().unwrap();
        assert!(!status.success());
        pump.join().unwrap();
        reported_max = reported_max.max(max.load(Ordering::SeqCst));

        let last = verify_all(dir.path());
        // Reopening as writer recovers the same prefix (torn tail cut).
        {
            let (j, s) = Journal::open(journal::JournalConfig::in_dir(dir.path())).unwrap();
            assert!(
                s.written_seq() >= last,
                "writer recovered less than readers saw"
            );
            assert_eq!(j.committed_seq(), s.written_seq());
        }
        let last = verify_all(dir.path()).max(last);
        assert!(
            last >= reported_max,
            "round {round}: reported {reported_max} committed but only {last} present"
        );
        assert!(last >= last_len);
        last_len = last;
    }
    assert!(
        reported_max > 1000,
        "writer made too little progress: {reported_max}"
    );
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count();
    assert!(segments >= 4, "expected several segments, got {segments}");
    eprintln!(
        "crash test: {rounds} rounds, {last_len} frames, {segments} segments, {:?}",
        started.elapsed()
    );
}

#[test]
fn live_cross_process_reader_follows_the_writer() {
    let dir = scratch_dir();
    let total = 100_000u64;
    let exe = env!("CARGO_BIN_EXE_journal-crash-writer");
    let mut child = Command::new(exe)
        .arg(dir.path())
        .arg(total.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn writer");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap(); // journal created and recovered
    let pump = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let j = Journal::open_read_only(dir.path()).unwrap();
    assert!(j.is_read_only());
    let mut r = j.reader_with(1, WaitStrategy::default(), true).unwrap();
    assert!(!r.is_registered());
    let mut buf = Vec::new();
    let mut behind = 0u64;
    for expect in 1..=total {
        if j.committed_seq() < expect {
            behind += 1;
        }
        let f = r.next_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(f.sequence, expect);
        payload_for(expect, &mut buf);
        assert_eq!(f.payload, &buf[..]);
    }
    assert!(child.wait().unwrap().success());
    pump.join().unwrap().unwrap();
    assert_eq!(j.committed_seq(), total);
    eprintln!("live reader: waited for the writer {behind} times");
}
