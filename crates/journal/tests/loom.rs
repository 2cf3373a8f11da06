//! loom model test of the publication protocol (compiled only with
//! `--cfg loom`): proves under every interleaving loom explores that
//! (1) the Vyukov MPSC slot hand-off delivers each producer's message
//! exactly once, intact (no data race on the slot payload: the Release store
//! of the slot stamp / Acquire load pair orders it), in per-producer order,
//! and reports `Full` rather than overwriting; and (2) the committed-position
//! cell (`Release` publish / `Acquire` load, the same type the journal uses)
//! makes frame bytes written before publication visible to any reader that
//! observes the position, and `commit_to`-style `publish_max` is monotonic.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p journal --test loom --release`
#![cfg(loom)]

use journal::handoff;
use journal::model::Position;
use journal::PublishError;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

#[test]
fn handoff_two_producers_one_consumer() {
    loom::model(|| {
        let (p1, mut rx) = handoff::bounded(2, 8);
        let p2 = p1.clone();
        let t1 = thread::spawn(move || {
            p1.try_publish(1, &[1, 11]).unwrap();
        });
        let t2 = thread::spawn(move || {
            p2.try_publish(2, &[2, 22, 222]).unwrap();
        });
        let mut got = Vec::new();
        while got.len() < 2 {
            if let Some(m) = rx.try_recv(|t, p| (t, p.to_vec())) {
                got.push(m);
            } else {
                thread::yield_now();
            }
        }
        t1.join().unwrap();
        t2.join().unwrap();
        got.sort();
        assert_eq!(got, vec![(1, vec![1, 11]), (2, vec![2, 22, 222])]);
        assert!(rx.try_recv(|_, _| ()).is_none());
    });
}

#[test]
fn handoff_wraps_and_reports_full() {
    loom::model(|| {
        let (p, mut rx) = handoff::bounded(2, 4);
        let producer = thread::spawn(move || {
            let mut sent = 0u8;
            let mut fulls = 0;
            while sent < 3 {
                match p.try_publish(0, &[sent]) {
                    Ok(()) => sent += 1,
                    Err(PublishError::Full) => {
                        fulls += 1;
                        thread::yield_now();
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            fulls
        });
        let mut next = 0u8;
        while next < 3 {
            match rx.try_recv(|_, p| p[0]) {
                Some(v) => {
                    assert_eq!(v, next, "per-producer order");
                    next += 1;
                }
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
    });
}

struct Frame {
    bytes: UnsafeCell<[u8; 4]>,
}
// SAFETY: access is ordered by the Position publication under test.
unsafe impl Sync for Frame {}

#[test]
fn committed_position_publication() {
    loom::model(|| {
        let pos = Arc::new(Position::new(0));
        let frames = Arc::new([
            Frame {
                bytes: UnsafeCell::new([0; 4]),
            },
            Frame {
                bytes: UnsafeCell::new([0; 4]),
            },
        ]);
        let (pw, fw) = (pos.clone(), frames.clone());
        let writer = thread::spawn(move || {
            for (i, f) in fw.iter().enumerate() {
                // SAFETY: frame i is not yet published; only the writer touches it.
                f.bytes.with_mut(|b| unsafe { *b = [i as u8 + 1; 4] });
                pw.publish(i as u64 + 1);
            }
        });
        let (pr, fr) = (pos.clone(), frames.clone());
        let reader = thread::spawn(move || {
            let committed = pr.load();
            for f in fr.iter().take(committed as usize) {
                // SAFETY: published frames are immutable.
                let b = f.bytes.with(|b| unsafe { *b });
                assert_ne!(b, [0; 4], "saw a committed frame before its bytes");
            }
            committed
        });
        writer.join().unwrap();
        let seen = reader.join().unwrap();
        assert!(seen <= 2);
    });
}

#[test]
fn commit_gate_is_monotonic() {
    loom::model(|| {
        let pos = Arc::new(Position::new(0));
        let a = {
            let p = pos.clone();
            thread::spawn(move || p.publish_max(3))
        };
        let b = {
            let p = pos.clone();
            thread::spawn(move || p.publish_max(5))
        };
        let ra = a.join().unwrap();
        let rb = b.join().unwrap();
        assert!(ra >= 3 && rb == 5);
        assert_eq!(pos.load(), 5);
    });
}
