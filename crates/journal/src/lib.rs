//! # journal — the appliance's sequenced, memory-mapped event store
//!
//! An append-only journal of frames (`length, template id, flags, sequence,
//! timestamp, checksum` + an opaque SBE payload) kept in fixed-size,
//! pre-allocated segment files (`memmap2`) in one directory (default
//! `/dev/shm/<name>`). The byte layout, durability modes and recovery rules
//! are specified in `docs/journal-format.md`.
//!
//! * **One writer**: the [`Sequencer`]. Producers on any thread hand events to
//!   it through a bounded lock-free MPSC hand-off ([`Publisher::try_publish`],
//!   preallocated slots, back-pressure via [`PublishError::Full`]); the
//!   sequencer's [`Sequencer::do_work`] duty cycle drains them, stamps a
//!   gap-free sequence (from 1) and a timestamp from an injected [`Clock`], and
//!   appends. A single-writer owner can call [`Sequencer::append`] directly.
//! * **Written vs committed**: written = appended by the sequencer;
//!   committed = visible to readers. With [`CommitPolicy::FollowWritten`]
//!   committed follows written after each batch (after `msync` in
//!   [`Durability::Sync`]); with [`CommitPolicy::Manual`] an external
//!   component (replication quorum) calls [`Journal::commit_to`].
//! * **Readers**: any number, each with its own cursor and its own read-only
//!   mappings; no locks; publication is a Release store / Acquire load of the
//!   committed position. Readers start at any sequence using the sparse index
//!   persisted in each segment header and return zero-copy [`FrameView`]s.
//!   [`Journal::open_read_only`] works from another process.
//! * **Retention / back-pressure**: registered readers publish the segment
//!   they are on; a segment is deleted only when all of them have passed it
//!   *and* [`RetentionPolicy`] allows. If a roll would exceed `segments_max`,
//!   the append fails with [`AppendError::BackPressure`]; nothing is
//!   overwritten.
//! * **Crash safety**: reopening as writer scans every segment (commit marker,
//!   CRC-32, sequence contiguity), zeroes a torn tail and continues from the
//!   next sequence.
//! * **Waiting**: [`WaitStrategy`] (`BusySpin`, `SpinThenYield`, default
//!   `Backoff`) and a reusable [`IdleStrategy::idle`]`(work_count)`. Every
//!   journal and hand-off has a [`Doorbell`] that its producer rings after
//!   publishing; an idler registered with [`IdleStrategy::wait_on`] is woken
//!   from its back-off park at once instead of sleeping it out.
//!
//! ```
//! use journal::{Journal, JournalConfig};
//! let dir = tempfile::tempdir().unwrap();
//! let (journal, mut sequencer) = Journal::open(JournalConfig::in_dir(dir.path())).unwrap();
//! let publisher = journal.publisher().unwrap();
//! publisher.try_publish(7, b"new order").unwrap();
//! assert_eq!(sequencer.do_work().unwrap(), 1);
//! sequencer.append(8, b"direct").unwrap();
//! let mut reader = journal.reader(1).unwrap();
//! let f = reader.poll().unwrap().unwrap();
//! assert_eq!((f.sequence, f.template_id, f.payload), (1, 7, &b"new order"[..]));
//! ```
//!
//! ## Model checking
//! The hand-off and the committed-position publication are model-checked
//! with loom:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p journal --test loom --release
//! ```
//!
//! (Add `CARGO_TARGET_DIR=target/loom` to keep the loom build from
//! invalidating the normal build artifacts in a shared target directory.)

#![warn(missing_docs)]

mod clock;
mod config;
mod doorbell;
mod error;
mod format;
pub mod handoff;
mod idle;
mod journal;
mod reader;
mod sequencer;
mod sync;

pub use clock::{Clock, ExternalClock, SystemClock, TestClock};
pub use config::{
    CommitPolicy, Durability, JournalConfig, RetentionPolicy, INDEX_ENTRIES_LIMIT,
    READERS_MAX_LIMIT, SEGMENTS_MAX_LIMIT, SEGMENT_SIZE_MAX, SEGMENT_SIZE_MIN,
};
pub use doorbell::{Doorbell, Registration, DOORBELL_WAITERS_MAX};
pub use error::{AppendError, CommitError, OpenError, PublishError, ReadError, ReaderError};
pub use format::{
    frame_checksum, segment_file_name, segment_path, SegmentHeader, CONTROL_FILE,
    FLAG_END_OF_BATCH, FLAG_PADDING, FORMAT_VERSION, FRAME_ALIGN, FRAME_HEADER_LEN,
    SEGMENT_HEADER_LEN, TEMPLATE_BATCH_END,
};
pub use handoff::Publisher;
pub use idle::{IdleStrategy, WaitStrategy};
pub use journal::Journal;
pub use reader::{FrameView, Reader};
pub use sequencer::Sequencer;

/// The in-process written/committed position cells (a `Release` store /
/// `Acquire` load pair), exposed for the loom model test (`tests/loom.rs`);
/// `Journal` uses exactly this type.
#[doc(hidden)]
pub mod model {
    use crate::sync::{AtomicU64, Ordering};

    /// The committed position cell.
    #[derive(Debug)]
    pub struct Position(AtomicU64);

    impl Position {
        /// New cell at `v`.
        pub fn new(v: u64) -> Self {
            Self(AtomicU64::new(v))
        }
        /// Writer side: publish after the frame bytes are written.
        #[inline]
        pub fn publish(&self, seq: u64) {
            self.0.store(seq, Ordering::Release)
        }
        /// Reader side: everything at or below the result is readable.
        #[inline]
        pub fn load(&self) -> u64 {
            self.0.load(Ordering::Acquire)
        }
        /// Gate side (`commit_to`): raise to `seq` if higher (monotonic),
        /// Release; returns the value afterwards.
        pub fn publish_max(&self, seq: u64) -> u64 {
            let mut cur = self.0.load(Ordering::Relaxed);
            while cur < seq {
                match self
                    .0
                    .compare_exchange_weak(cur, seq, Ordering::Release, Ordering::Relaxed)
                {
                    Ok(_) => return seq,
                    Err(actual) => cur = actual,
                }
            }
            cur
        }
    }
}

#[cfg(test)]
mod tests;

/// Helpers shared by the crash-test writer binary, integration tests and
/// benchmarks. Not part of the supported API.
#[doc(hidden)]
pub mod testkit {
    /// Deterministic payload for `seq` (length 0..=300 varies with `seq`).
    pub fn payload_for(seq: u64, buf: &mut Vec<u8>) {
        let len = (seq.wrapping_mul(2_654_435_761) % 301) as usize;
        buf.clear();
        let mut x = seq ^ 0x9E37_79B9_7F4A_7C15;
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.push(x as u8);
        }
    }

    /// Template id used for `seq` by the crash writer.
    pub fn template_for(seq: u64) -> u16 {
        (seq % 97) as u16
    }
}
