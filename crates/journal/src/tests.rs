//! Unit tests over real files (tempdirs).

use crate::format::*;
use crate::*;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn cfg(dir: &Path) -> JournalConfig {
    let mut c = JournalConfig::in_dir(dir);
    c.segment_size = 64 * 1024;
    c.index_entries_max = 64;
    c.index_stride = 4;
    c.payload_len_max = 1024;
    c.handoff_slots = 64;
    c
}

fn payload(seq: u64) -> Vec<u8> {
    let len = (seq * 37 % 200) as usize;
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

fn fill(seq: &mut Sequencer<impl Clock>, from: u64, to: u64) {
    for s in from..=to {
        assert_eq!(seq.append((s % 7) as u16, &payload(s)).unwrap(), s);
    }
}

fn read_all(j: &Journal, from: u64) -> Vec<u64> {
    let mut r = j.reader_with(from, WaitStrategy::BusySpin, true).unwrap();
    let mut out = Vec::new();
    while let Some(f) = r.poll().unwrap() {
        assert_eq!(
            f.payload,
            &payload(f.sequence)[..],
            "payload of {}",
            f.sequence
        );
        assert_eq!(f.template_id, (f.sequence % 7) as u16);
        out.push(f.sequence);
    }
    out
}

/// (offset, frame_length) of every data frame in a segment file.
fn frames_in(path: &Path) -> Vec<(usize, usize)> {
    let b = std::fs::read(path).unwrap();
    let h = SegmentHeader::decode(&b).unwrap();
    let mut off = h.data_offset as usize;
    let mut v = Vec::new();
    while off + FRAME_HEADER_LEN <= b.len() {
        let len = get_u32(&b, off) as usize;
        if len == 0 || get_u16(&b, off + 6) & FLAG_PADDING != 0 {
            break;
        }
        v.push((off, len));
        off += align_up(len, 8);
    }
    v
}

/// Wait (bounded) for a condition made true by the segment helper thread.
fn eventually(cond: impl Fn() -> bool) {
    let t = std::time::Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "condition not reached"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn segs(dir: &Path) -> Vec<u64> {
    crate::journal::list_segments(dir).unwrap()
}

fn patch(path: &Path, at: usize, bytes: &[u8]) {
    let mut b = std::fs::read(path).unwrap();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, b).unwrap();
}

#[test]
fn roundtrip_publisher_and_direct_with_test_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock::new(1_000, 10));
    let (j, mut s) = Journal::open_with_clock(cfg(dir.path()), clock.clone()).unwrap();
    let p = j.publisher().unwrap();
    p.try_publish(1, &payload(1)[..]).unwrap();
    p.try_publish(2, &payload(2)[..]).unwrap();
    assert_eq!(s.do_work().unwrap(), 2);
    assert_eq!(s.do_work().unwrap(), 0);
    assert_eq!(s.append(3, &payload(3)).unwrap(), 3);
    assert_eq!((j.written_seq(), j.committed_seq()), (3, 3));
    let mut r = j.reader(1).unwrap();
    let mut ts = Vec::new();
    while let Some(f) = r.poll().unwrap() {
        assert_eq!(f.payload, &payload(f.sequence)[..]);
        assert_eq!(f.template_id as u64, f.sequence);
        ts.push(f.timestamp_ns);
    }
    assert_eq!(ts, vec![1_000, 1_010, 1_020]);
    assert_eq!(segs(dir.path()), vec![0]);
    // Default location helper.
    assert!(JournalConfig::new("x").dir.ends_with("x"));
}

#[test]
fn publisher_full_and_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.handoff_slots = 4;
    let (j, mut s) = Journal::open(c).unwrap();
    let p = j.publisher().unwrap();
    for i in 0..4 {
        p.try_publish(0, &[i]).unwrap();
    }
    assert_eq!(p.try_publish(0, &[9]), Err(PublishError::Full));
    assert!(matches!(
        p.try_publish(0, &[0; 1025]),
        Err(PublishError::TooLarge {
            len: 1025,
            max: 1024
        })
    ));
    assert!(matches!(
        s.append(0, &[0; 1025]),
        Err(AppendError::TooLarge { .. })
    ));
    assert_eq!(s.do_work().unwrap(), 4);
    p.try_publish(0, &[9]).unwrap();
    assert_eq!(s.do_work().unwrap(), 1);
    let mut r = j.reader(1).unwrap();
    let got: Vec<u8> = std::iter::from_fn(|| r.poll().unwrap().map(|f| f.payload[0])).collect();
    assert_eq!(got, vec![0, 1, 2, 3, 9]);
}

#[test]
fn rolls_across_segments_and_continues_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (j, mut s) = Journal::open(cfg(dir.path())).unwrap();
        fill(&mut s, 1, 2000);
        assert!(s.active_segment() >= 3, "expected several segments");
        assert_eq!(read_all(&j, 1), (1..=2000).collect::<Vec<_>>());
    }
    let n = segs(dir.path()).len();
    assert!(n >= 4);
    // Every segment header chains base sequences.
    let (j, mut s) = Journal::open(cfg(dir.path())).unwrap();
    assert_eq!(s.written_seq(), 2000);
    fill(&mut s, 2001, 2500);
    assert_eq!(read_all(&j, 1), (1..=2500).collect::<Vec<_>>());
    // Read-only open (as another process would) sees the same.
    let ro = Journal::open_read_only(dir.path()).unwrap();
    assert_eq!(read_all(&ro, 1), (1..=2500).collect::<Vec<_>>());
    assert!(matches!(ro.commit_to(1), Err(CommitError::ReadOnly)));
    // A second writer is refused.
    assert!(matches!(
        Journal::open(cfg(dir.path())),
        Err(OpenError::Locked(_))
    ));
}

#[test]
fn reader_from_any_sequence_uses_sparse_index() {
    let dir = tempfile::tempdir().unwrap();
    let (j, mut s) = Journal::open(cfg(dir.path())).unwrap();
    fill(&mut s, 1, 1500);
    for from in [1u64, 2, 3, 4, 5, 63, 64, 65, 257, 700, 1234, 1499, 1500] {
        let r = j.reader_with(from, WaitStrategy::BusySpin, true).unwrap();
        // The sparse index positions at the last entry at or before `from`
        // (stride 4), not at the segment start.
        let base = r_base(&j, from);
        assert!(r.next_seq <= from && r.next_seq >= base);
        if from - base < 64 * 4 {
            assert!(
                from - r.next_seq < 4,
                "from {from}: positioned at {}",
                r.next_seq
            );
        }
        drop(r);
        assert_eq!(
            read_all(&j, from),
            (from..=1500).collect::<Vec<_>>(),
            "from {from}"
        );
    }
    // A reader positioned in the future waits for it.
    let mut r = j.reader(1503).unwrap();
    assert!(r.poll().unwrap().is_none());
    fill(&mut s, 1501, 1503);
    assert_eq!(r.poll().unwrap().unwrap().sequence, 1503);
}

/// Base sequence of the segment holding `seq`.
fn r_base(j: &Journal, seq: u64) -> u64 {
    let mut base = 1;
    for i in segs(j.dir()) {
        let h = crate::journal::read_segment_header(j.dir(), i).unwrap();
        if h.base_sequence <= seq {
            base = h.base_sequence;
        }
    }
    base
}

fn last_segment(dir: &Path) -> std::path::PathBuf {
    segment_path(dir, *segs(dir).last().unwrap())
}

fn torn_case(corrupt: impl FnOnce(&Path, &[(usize, usize)]) -> usize) {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_j, mut s) = Journal::open(cfg(dir.path())).unwrap();
        fill(&mut s, 1, 1000);
    }
    let last = last_segment(dir.path());
    let frames = frames_in(&last);
    let h = SegmentHeader::decode(&std::fs::read(&last).unwrap()).unwrap();
    let bad_idx = corrupt(&last, &frames);
    let expect_written = h.base_sequence + bad_idx as u64 - 1;
    let (j, mut s) = Journal::open(cfg(dir.path())).unwrap();
    assert_eq!(s.written_seq(), expect_written);
    assert_eq!(read_all(&j, 1), (1..=expect_written).collect::<Vec<_>>());
    // Everything from the torn frame on is zeroed.
    let b = std::fs::read(&last).unwrap();
    assert!(b[frames[bad_idx].0..].iter().all(|&x| x == 0));
    // Writer continues with the next sequence.
    fill(&mut s, expect_written + 1, expect_written + 50);
    assert_eq!(
        read_all(&j, 1),
        (1..=expect_written + 50).collect::<Vec<_>>()
    );
}

#[test]
fn torn_tail_corrupt_checksum() {
    torn_case(|p, frames| {
        let k = frames.len() / 2;
        let (off, _) = frames[k];
        let mut b = std::fs::read(p).unwrap();
        b[off + 24] ^= 0xff;
        std::fs::write(p, b).unwrap();
        k
    });
}

#[test]
fn torn_tail_partial_length() {
    torn_case(|p, frames| {
        let k = frames.len() - 1;
        let (off, len) = frames[k];
        // Length says more than was written: payload bytes beyond the real
        // frame are zero, checksum fails.
        patch(p, off, &((len as u32) + 64).to_le_bytes());
        k
    });
}

#[test]
fn torn_tail_uncommitted_last_frame() {
    torn_case(|p, frames| {
        let k = frames.len() - 1;
        let (off, _) = frames[k];
        // Body written, commit marker (length) not yet.
        patch(p, off, &[0, 0, 0, 0]);
        k
    });
}

#[test]
fn torn_tail_zeroed_middle() {
    torn_case(|p, frames| {
        let k = frames.len() / 3;
        let (off, len) = frames[k];
        patch(p, off, &vec![0u8; len]);
        k
    });
}

#[test]
fn corruption_in_earlier_segment_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_j, mut s) = Journal::open(cfg(dir.path())).unwrap();
        fill(&mut s, 1, 2000);
    }
    assert!(segs(dir.path()).len() >= 4);
    let p1 = segment_path(dir.path(), 1);
    let h = SegmentHeader::decode(&std::fs::read(&p1).unwrap()).unwrap();
    let frames = frames_in(&p1);
    let (off, _) = frames[10];
    let mut b = std::fs::read(&p1).unwrap();
    b[off + 40] ^= 1;
    std::fs::write(&p1, b).unwrap();
    let (j, s) = Journal::open(cfg(dir.path())).unwrap();
    let expect = h.base_sequence + 9;
    assert_eq!(s.written_seq(), expect);
    assert_eq!(segs(dir.path()), vec![0, 1]);
    assert_eq!(read_all(&j, 1), (1..=expect).collect::<Vec<_>>());
}

#[test]
fn corrupt_first_segment_header_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_j, mut s) = Journal::open(cfg(dir.path())).unwrap();
        fill(&mut s, 1, 10);
    }
    patch(&segment_path(dir.path(), 0), 0, b"garbage!");
    assert!(matches!(
        Journal::open(cfg(dir.path())),
        Err(OpenError::Corrupt { .. })
    ));
}

#[test]
fn truncated_segment_file_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_j, mut s) = Journal::open(cfg(dir.path())).unwrap();
        fill(&mut s, 1, 100);
    }
    let p = segment_path(dir.path(), 0);
    let frames = frames_in(&p);
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len((frames[50].0 + 10) as u64).unwrap();
    let (j, s) = Journal::open(cfg(dir.path())).unwrap();
    assert_eq!(s.written_seq(), 50);
    assert_eq!(read_all(&j, 1), (1..=50).collect::<Vec<_>>());
}

#[test]
fn keep_all_reports_back_pressure_at_segments_max() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.segments_max = 2;
    let (j, mut s) = Journal::open(c).unwrap();
    let mut seq = 0;
    let err = loop {
        match s.append(1, &[7u8; 200]) {
            Ok(q) => seq = q,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            AppendError::BackPressure {
                segments: 2,
                max: 2
            }
        ),
        "{err:?}"
    );
    assert_eq!(j.written_seq(), seq);
    // Queued messages stay queued under back-pressure.
    let p = j.publisher().unwrap();
    p.try_publish(1, &[1; 200]).unwrap();
    assert!(matches!(s.do_work(), Err(AppendError::BackPressure { .. })));
    assert!(matches!(s.do_work(), Err(AppendError::BackPressure { .. })));
    assert_eq!(j.written_seq(), seq);
}

#[test]
fn retention_waits_for_lagging_reader() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.segments_max = 3;
    c.retention = RetentionPolicy::KeepLast(2);
    let (j, mut s) = Journal::open(c.clone()).unwrap();
    let mut lagging = j.reader_with(1, WaitStrategy::BusySpin, true).unwrap();
    let body = |q: u64| vec![(q % 251) as u8; 300];
    let mut next = 1u64;
    let err = loop {
        match s.append(0, &body(next)) {
            Ok(q) => {
                assert_eq!(q, next);
                next += 1;
            }
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            AppendError::BackPressure {
                segments: 3,
                max: 3
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        segs(dir.path()),
        vec![0, 1, 2],
        "lagging reader holds segment 0"
    );
    // The lagging reader still sees intact data from 1.
    for q in 1..next {
        let f = lagging.poll().unwrap().unwrap();
        assert_eq!((f.sequence, f.payload), (q, &body(q)[..]));
    }
    assert!(lagging.poll().unwrap().is_none());
    // It now sits in segment 2, so 0 and 1 may go (KeepLast(2) = 2 and the new 3).
    s.append(0, &body(next)).unwrap();
    next += 1;
    eventually(|| segs(dir.path()) == vec![2, 3]); // unlinked by the helper thread
    assert_eq!(lagging.poll().unwrap().unwrap().sequence, next - 1);
    // A reader asking for reclaimed data is told so.
    assert!(matches!(j.reader(1), Err(ReaderError::Trimmed { .. })));
    // Without readers, KeepLast(2) keeps rolling forever.
    drop(lagging);
    for _ in 0..2000 {
        s.append(0, &body(next)).unwrap();
        next += 1;
    }
    eventually(|| segs(dir.path()).len() <= 2);
    let oldest = crate::journal::read_segment_header(dir.path(), segs(dir.path())[0])
        .unwrap()
        .base_sequence;
    let mut r = j.reader_with(oldest, WaitStrategy::BusySpin, true).unwrap();
    let mut expect = oldest;
    while let Some(f) = r.poll().unwrap() {
        assert_eq!((f.sequence, f.payload), (expect, &body(expect)[..]));
        expect += 1;
    }
    assert_eq!(expect, next);
}

#[test]
fn too_many_readers() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.readers_max = 2;
    let (j, _s) = Journal::open(c).unwrap();
    let a = j.reader(1).unwrap();
    let _b = j.reader(1).unwrap();
    assert!(matches!(j.reader(1), Err(ReaderError::TooManyReaders(2))));
    drop(a);
    assert!(j.reader(1).unwrap().is_registered());
}

#[test]
fn manual_commit_gate() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.commit_policy = CommitPolicy::Manual;
    {
        let (j, mut s) = Journal::open(c.clone()).unwrap();
        fill(&mut s, 1, 10);
        assert_eq!((j.written_seq(), j.committed_seq()), (10, 0));
        let mut r = j.reader(1).unwrap();
        assert!(r.poll().unwrap().is_none(), "nothing committed yet");
        assert_eq!(j.commit_to(4).unwrap(), 4);
        let got: Vec<u64> = std::iter::from_fn(|| r.poll().unwrap().map(|f| f.sequence)).collect();
        assert_eq!(got, vec![1, 2, 3, 4]);
        assert_eq!(j.commit_to(2).unwrap(), 4, "monotonic");
        assert_eq!(
            j.commit_to(11),
            Err(CommitError::BeyondWritten {
                seq: 11,
                written: 10
            })
        );
        // Commit from another thread (the replication quorum).
        let j2 = j.clone();
        std::thread::spawn(move || j2.commit_to(7).unwrap())
            .join()
            .unwrap();
        let got: Vec<u64> = std::iter::from_fn(|| r.poll().unwrap().map(|f| f.sequence)).collect();
        assert_eq!(got, vec![5, 6, 7]);
        // A cross-process reader sees the same committed position.
        let ro = Journal::open_read_only(dir.path()).unwrap();
        assert_eq!(ro.committed_seq(), 7);
        assert_eq!(ro.written_seq(), 10);
    }
    // After reopen, committed is restored (bounded by what was recovered).
    let (j, _s) = Journal::open(c).unwrap();
    assert_eq!((j.written_seq(), j.committed_seq()), (10, 7));
    // Default policy rejects commit_to.
    let dir2 = tempfile::tempdir().unwrap();
    let (j2, _s2) = Journal::open(cfg(dir2.path())).unwrap();
    assert_eq!(j2.commit_to(0), Err(CommitError::NotManual));
}

#[test]
fn durability_modes_roundtrip() {
    for d in [
        Durability::Memory,
        Durability::Sync,
        Durability::AsyncFlush {
            frames_max: 16,
            interval_max: Duration::from_millis(1),
        },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(dir.path());
        c.durability = d;
        {
            let (j, mut s) = Journal::open(c.clone()).unwrap();
            fill(&mut s, 1, 700);
            std::thread::sleep(Duration::from_millis(2));
            assert_eq!(s.do_work().unwrap(), 0);
            assert_eq!(read_all(&j, 1).len(), 700, "{d:?}");
        }
        let (j, _s) = Journal::open(c).unwrap();
        assert_eq!(read_all(&j, 1).len(), 700, "{d:?}");
    }
}

#[test]
fn wait_strategies_wake_up_for_new_frames() {
    for w in [
        WaitStrategy::BusySpin,
        WaitStrategy::SpinThenYield { spins_max: 50 },
        WaitStrategy::default(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (j, mut s) = Journal::open(cfg(dir.path())).unwrap();
        let mut r = j.reader_with(1, w, true).unwrap();
        assert!(matches!(
            r.next_timeout(Duration::from_millis(5)),
            Err(ReadError::Timeout)
        ));
        let t = std::thread::spawn(move || {
            for q in 1..=100 {
                s.append((q % 7) as u16, &payload(q)).unwrap();
                if q % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        for q in 1..=100 {
            let f = r.next_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!((f.sequence, f.payload), (q, &payload(q)[..]));
        }
        t.join().unwrap();
        assert_eq!(r.next_blocking_or_none(), None);
    }
}

impl Reader {
    fn next_blocking_or_none(&mut self) -> Option<u64> {
        self.poll().unwrap().map(|f| f.sequence)
    }
}

#[test]
fn config_bounds_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    type Tweak = Box<dyn Fn(&mut JournalConfig)>;
    let bad: Vec<Tweak> = vec![
        Box::new(|c| c.segment_size = 1000),
        Box::new(|c| c.segment_size = SEGMENT_SIZE_MAX * 2),
        Box::new(|c| c.segments_max = 1),
        Box::new(|c| c.payload_len_max = 0),
        Box::new(|c| c.payload_len_max = 70_000),
        Box::new(|c| c.handoff_slots = 3),
        Box::new(|c| c.readers_max = 0),
        Box::new(|c| c.index_stride = 0),
        Box::new(|c| c.drain_batch_max = 0),
        Box::new(|c| c.retention = RetentionPolicy::KeepLast(0)),
        // The default sparse index does not fit the smallest segment (found by openraft's
        // storage suite: it used to overflow instead of answering).
        Box::new(|c| {
            c.segment_size = SEGMENT_SIZE_MIN;
            c.index_entries_max = 1 << 20;
        }),
    ];
    for f in bad {
        let mut c = cfg(dir.path());
        f(&mut c);
        assert!(
            matches!(c.validate(), Err(OpenError::InvalidConfig(_))),
            "{c:?}"
        );
    }
    assert!(cfg(dir.path()).validate().is_ok());
    assert!(JournalConfig::new("j").validate().is_ok());
}

#[test]
fn next_segment_is_preallocated_and_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = |i: u64| segment_path(dir.path(), i).with_extension("seg.tmp");
    {
        let (j, mut s) = Journal::open(cfg(dir.path())).unwrap();
        let t = std::time::Instant::now();
        while !tmp(1).exists() {
            assert!(t.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(1));
        }
        // A spare file is not a segment: readers and listings ignore it.
        assert_eq!(segs(dir.path()), vec![0]);
        fill(&mut s, 1, 600);
        assert!(s.active_segment() >= 1);
        assert_eq!(read_all(&j, 1).len(), 600);
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Without preallocation the roll creates the file itself.
    let mut c = cfg(dir.path());
    c.preallocate_next = false;
    let (j, mut s) = Journal::open(c).unwrap();
    fill(&mut s, 601, 1500);
    assert_eq!(read_all(&j, 1).len(), 1500);
    assert!(!tmp(s.active_segment() + 1).exists());
}

#[test]
fn timestamps_are_non_decreasing_even_if_the_clock_steps_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock::new(5_000, 1));
    {
        let (_j, mut s) = Journal::open_with_clock(cfg(dir.path()), clock.clone()).unwrap();
        s.append(0, b"a").unwrap();
        clock.set(100); // wall clock stepped back
        s.append(0, b"b").unwrap();
    }
    // Also across a reopen (recovery restores the last timestamp).
    clock.set(200);
    let (j, mut s) = Journal::open_with_clock(cfg(dir.path()), clock.clone()).unwrap();
    s.append(0, b"c").unwrap();
    clock.set(9_000);
    s.append(0, b"d").unwrap();
    let mut r = j.reader(1).unwrap();
    let ts: Vec<u64> = std::iter::from_fn(|| r.poll().unwrap().map(|f| f.timestamp_ns)).collect();
    assert_eq!(ts, vec![5_000, 5_000, 5_000, 9_000]);
    // Strictly increasing when configured.
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.strictly_increasing_timestamps = true;
    clock.set(100);
    let (j, mut s) = Journal::open_with_clock(c, clock.clone()).unwrap();
    for _ in 0..3 {
        clock.set(100);
        s.append(0, b"x").unwrap();
    }
    let mut r = j.reader(1).unwrap();
    let ts: Vec<u64> = std::iter::from_fn(|| r.poll().unwrap().map(|f| f.timestamp_ns)).collect();
    assert_eq!(ts, vec![100, 101, 102]);
}

#[test]
fn a_taken_handoff_feeds_its_taker_and_external_clock_stamps_replicated_frames() {
    let leader_dir = tempfile::tempdir().unwrap();
    let replica_dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(crate::ExternalClock::new(0));
    let strict = |d: &Path| {
        let mut c = cfg(d);
        c.strictly_increasing_timestamps = true;
        c
    };
    let (leader, mut ls) =
        Journal::open_with_clock(strict(leader_dir.path()), clock.clone()).unwrap();
    let mut rx = ls.take_handoff().expect("first take");
    assert!(ls.take_handoff().is_none());
    let p = leader.publisher().unwrap();
    p.try_publish(3, b"one").unwrap();
    p.try_publish(4, b"two").unwrap();
    // The sequencer no longer drains the hand-off...
    assert_eq!(ls.do_work().unwrap(), 0);
    assert_eq!(leader.written_seq(), 0);
    // ...its taker does, and appends once "replicated", with the leader's timestamp.
    let mut got = Vec::new();
    while let Some(()) = rx.try_recv(|t, b| got.push((t, b.to_vec()))) {}
    assert_eq!(got, vec![(3, b"one".to_vec()), (4, b"two".to_vec())]);
    let (replica, mut rs) =
        Journal::open_with_clock(strict(replica_dir.path()), clock.clone()).unwrap();
    for s in [&mut ls, &mut rs] {
        clock.set(1_000);
        s.append_batch(got.iter().map(|(t, b)| (*t, &b[..])))
            .unwrap();
        clock.set(500); // a later batch stamped earlier: clamped to the previous frame
        s.append(5, b"three").unwrap();
    }
    let frames = |j: &Journal| {
        let mut r = j.reader(1).unwrap();
        std::iter::from_fn(|| {
            r.poll().unwrap().map(|f| {
                (
                    f.sequence,
                    f.timestamp_ns,
                    f.template_id,
                    f.payload.to_vec(),
                )
            })
        })
        .collect::<Vec<_>>()
    };
    assert_eq!(frames(&leader), frames(&replica));
    assert_eq!(
        frames(&leader).iter().map(|f| f.1).collect::<Vec<_>>(),
        vec![1_000, 1_001, 1_002]
    );
}

#[test]
fn end_of_batch_marks_the_last_frame_of_each_publication_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let marks = |j: &Journal| -> Vec<bool> {
        // Checksums verified: the mark is covered by the rewritten checksum.
        let mut r = j.reader_with(1, WaitStrategy::BusySpin, true).unwrap();
        let mut v = Vec::new();
        while let Some(f) = r.poll().unwrap() {
            v.push(f.end_of_batch);
        }
        v
    };
    {
        let (j, mut seq) = Journal::open(cfg(dir.path())).unwrap();
        seq.append_batch([(1, &b"a"[..]), (1, b"b"), (1, b"c")])
            .unwrap();
        seq.append(1, b"d").unwrap();
        // Written, published unmarked, then more written and published marked.
        seq.write_batch([(1, &b"e"[..]), (1, b"f")]).unwrap();
        assert_eq!(j.committed_seq(), 4, "write_batch does not publish");
        seq.publish(false).unwrap();
        seq.write_batch([(1, &b"g"[..])]).unwrap();
        seq.publish(true).unwrap();
        // Nothing written since: nothing to mark.
        seq.publish(true).unwrap();
        // The hand-off's drain is one batch.
        let p = j.publisher().unwrap();
        for x in [b"h", b"i"] {
            p.try_publish(2, x).unwrap();
        }
        assert_eq!(seq.do_work().unwrap(), 2);
        assert_eq!(
            marks(&j),
            [false, false, true, true, false, false, true, false, true]
        );
    }
    // Recovery accepts the flag and keeps every frame.
    let (j, mut seq) = Journal::open(cfg(dir.path())).unwrap();
    assert_eq!(j.written_seq(), 9);
    seq.append(1, b"j").unwrap();
    assert_eq!(
        marks(&j),
        [false, false, true, true, false, false, true, false, true, true]
    );
}

/// The dirty kilobytes /proc/self/smaps gives for this process's mappings of files in `dir`.
fn dirty_kb_under(dir: &Path) -> u64 {
    smaps_kb_under(dir, &["Shared_Dirty:", "Private_Dirty:"])
}

/// The sum of `fields` (kilobytes) /proc/self/smaps gives for this process's mappings of files
/// in `dir`.
fn smaps_kb_under(dir: &Path, fields: &[&str]) -> u64 {
    let dir = dir.to_str().unwrap_or("/nonexistent");
    smaps_kb_where(|path| path.starts_with(dir), fields)
}

/// The sum of `fields` (kilobytes) /proc/self/smaps gives for this process's mappings of the
/// files whose path `select` accepts.
fn smaps_kb_where(select: impl Fn(&str) -> bool, fields: &[&str]) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let mut dirty = 0;
    let mut inside = false;
    for line in smaps.lines() {
        let mut it = line.split_whitespace();
        let first = it.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header line: range perms offset dev inode [path].
            inside = line.split_whitespace().nth(5).is_some_and(&select);
            continue;
        }
        if inside && fields.contains(&first) {
            dirty += it.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    dirty
}

#[test]
fn the_writer_has_pages_ahead_of_its_tail_faulted_in_and_no_more() {
    // Unsynced: the helper faults in (writable, so dirty) a window of up to PREFAULT_AHEAD
    // past the tail, not the whole segment. Synced: nothing ahead (msync cleans what the
    // batches wrote).
    for sync in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg(dir.path());
        c.segment_size = 16 << 20;
        c.index_entries_max = 4096;
        if sync {
            c.durability = Durability::Sync;
        }
        let (_j, mut seq) = Journal::open(c).unwrap();
        let payload = vec![7_u8; 1000];
        let mut written = 0_u64;
        while written < 3 << 20 {
            seq.append(1, &payload).unwrap();
            written += 1000 + FRAME_HEADER_LEN as u64;
        }
        let written_kb = written / 1024;
        // The helper works asynchronously: wait (bounded) for the window to appear.
        let mut dirty = 0;
        for _ in 0..200 {
            dirty = dirty_kb_under(dir.path());
            if sync || dirty >= written_kb + 1024 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if sync {
            assert!(
                dirty <= written_kb + 64,
                "synced: {dirty} KiB dirty for {written_kb} written"
            );
        } else {
            assert!(
                dirty >= written_kb + 1024 && dirty <= written_kb + 2 * 1024 + 256,
                "unsynced: {dirty} KiB dirty for {written_kb} written (16 MiB segment)"
            );
        }
    }
}

#[test]
fn a_reader_maps_the_pages_it_reads_not_its_whole_segment() {
    // The writer's mapping of a segment is populated (prepared ahead); a reader that mapped
    // all of it too stalled its thread for milliseconds at every roll.
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.segment_size = 16 << 20;
    c.index_entries_max = 4096;
    let (j, mut seq) = Journal::open(c).unwrap();
    for i in 0..64_u64 {
        seq.append(1, &i.to_le_bytes().repeat(100)).unwrap();
    }
    // Only the segment's own mappings: the helper may be preparing (populating) the next
    // segment's file meanwhile.
    let segment = segment_path(dir.path(), 0);
    let segment = segment.to_str().unwrap();
    let rss = || smaps_kb_where(|p| p == segment, &["Rss:"]);
    let before = rss();
    assert!(before >= 16 << 10, "the writer's mapping is populated");
    let mut r = j.reader(1).unwrap();
    let mut n = 0;
    while let Some(f) = r.poll().unwrap() {
        assert_eq!(f.payload.len(), 800);
        n += 1;
    }
    assert_eq!(n, 64);
    let added = rss() - before;
    assert!(
        added <= 1024,
        "the reader mapped {added} KiB of a 16 MiB segment to read 64 frames"
    );
}
