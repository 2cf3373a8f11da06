//! Journal configuration: every size is bounded and validated.

use crate::format::{data_offset, FRAME_HEADER_LEN};
use crate::idle::WaitStrategy;
use crate::OpenError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Smallest allowed segment file.
pub const SEGMENT_SIZE_MIN: u64 = 64 * 1024;
/// Largest allowed segment file (offsets are stored as `u32`).
pub const SEGMENT_SIZE_MAX: u64 = 1 << 30;
/// Bound on `segments_max`.
pub const SEGMENTS_MAX_LIMIT: u64 = 1 << 20;
/// Bound on `readers_max`.
pub const READERS_MAX_LIMIT: usize = 1024;
/// Bound on `index_entries_max`.
pub const INDEX_ENTRIES_LIMIT: u32 = 1 << 20;

/// When data reaches the storage device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Never `msync`. Survives a process crash (the page cache / tmpfs keeps
    /// the pages) but not an OS crash or power loss.
    Memory,
    /// The writer issues a non-blocking `msync(MS_ASYNC)` of the dirty range
    /// every `frames_max` frames or after `interval_max`, whichever first, and
    /// of the whole segment when it rolls. The writer never waits.
    AsyncFlush {
        /// Flush after this many frames.
        frames_max: u32,
        /// Flush after this much time since the last flush.
        interval_max: Duration,
    },
    /// `msync(MS_SYNC)` of every batch before it counts as written (and
    /// therefore before it can be committed).
    Sync,
}

/// How the committed position (what readers may see) advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CommitPolicy {
    /// Committed follows written at the end of each sequencer batch (after
    /// the `msync` in [`Durability::Sync`]).
    #[default]
    FollowWritten,
    /// An external component (e.g. a replication quorum) calls
    /// [`crate::Journal::commit_to`].
    Manual,
}

/// Which old segments may be deleted (only ever after all registered readers
/// have moved past them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RetentionPolicy {
    /// Never delete; the journal reports back-pressure at `segments_max`.
    #[default]
    KeepAll,
    /// Keep at most the newest `n` segments (including the active one).
    KeepLast(u64),
}

/// Journal configuration. Build with [`JournalConfig::new`] or
/// [`JournalConfig::in_dir`] and adjust fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JournalConfig {
    /// Directory holding `journal.ctl` and the segment files.
    pub dir: PathBuf,
    /// Bytes per pre-allocated segment file (header + index + frames).
    pub segment_size: u64,
    /// Maximum number of segment files alive at once.
    pub segments_max: u64,
    /// Maximum payload bytes per frame (also the hand-off slot size).
    pub payload_len_max: u32,
    /// Hand-off slots (power of two).
    pub handoff_slots: usize,
    /// Maximum registered readers.
    pub readers_max: usize,
    /// Sparse index: one entry every `index_stride` frames.
    pub index_stride: u32,
    /// Sparse index capacity per segment.
    pub index_entries_max: u32,
    /// Maximum messages drained per `do_work` call (one commit per batch).
    pub drain_batch_max: usize,
    /// Durability mode.
    pub durability: Durability,
    /// Commit policy.
    pub commit_policy: CommitPolicy,
    /// Retention policy.
    pub retention: RetentionPolicy,
    /// Default wait strategy for readers created from this journal.
    pub reader_wait: WaitStrategy,
    /// Prepare the next segment file (allocate + pre-fault, as
    /// `<index>.seg.tmp`) on a helper thread, so a roll only writes a header
    /// and renames. Costs one spare segment of space.
    pub preallocate_next: bool,
    /// Stamp frames strictly increasing (`max(clock, previous + 1)`) instead of
    /// non-decreasing (`max(clock, previous)`): every frame then has its own
    /// time. For an inbound journal, where a frame is an event and consumers
    /// tell events apart by time; an outbound journal stamps all the results of
    /// one event with that event's time.
    pub strictly_increasing_timestamps: bool,
}

impl JournalConfig {
    /// Defaults in `/dev/shm/<name>` if `/dev/shm` exists, else in the
    /// system temp dir.
    pub fn new(name: &str) -> Self {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        Self::in_dir(base.join(name))
    }

    /// Defaults in an explicit directory.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            segment_size: 64 * 1024 * 1024,
            segments_max: 64,
            payload_len_max: 4096,
            handoff_slots: 4096,
            readers_max: 16,
            index_stride: 64,
            index_entries_max: 16 * 1024,
            drain_batch_max: 256,
            durability: Durability::Memory,
            commit_policy: CommitPolicy::FollowWritten,
            retention: RetentionPolicy::KeepAll,
            reader_wait: WaitStrategy::default(),
            preallocate_next: true,
            strictly_increasing_timestamps: false,
        }
    }

    /// Check every bound.
    pub fn validate(&self) -> Result<(), OpenError> {
        let bad = |m: String| Err(OpenError::InvalidConfig(m));
        if !(SEGMENT_SIZE_MIN..=SEGMENT_SIZE_MAX).contains(&self.segment_size)
            || self.segment_size % 4096 != 0
        {
            return bad(format!(
                "segment_size {} must be a multiple of 4096 in {SEGMENT_SIZE_MIN}..={SEGMENT_SIZE_MAX}",
                self.segment_size
            ));
        }
        if !(2..=SEGMENTS_MAX_LIMIT).contains(&self.segments_max) {
            return bad(format!("segments_max must be in 2..={SEGMENTS_MAX_LIMIT}"));
        }
        if !(1..=INDEX_ENTRIES_LIMIT).contains(&self.index_entries_max) || self.index_stride == 0 {
            return bad("index_entries_max must be in 1..=2^20, index_stride > 0".into());
        }
        if (self.segment_size as usize) <= data_offset(self.index_entries_max) {
            return bad("sparse index does not fit in the segment".into());
        }
        let data = self.segment_size as usize - data_offset(self.index_entries_max);
        let frame_max = FRAME_HEADER_LEN + self.payload_len_max as usize;
        if self.payload_len_max == 0
            || self.payload_len_max as usize > crate::handoff::SLOT_PAYLOAD_MAX
            || frame_max > data
        {
            return bad(format!(
                "payload_len_max {} must be in 1..=2^20 and a frame must fit a segment ({data} data bytes)",
                self.payload_len_max
            ));
        }
        if !self.handoff_slots.is_power_of_two()
            || !(2..=crate::handoff::SLOTS_MAX).contains(&self.handoff_slots)
        {
            return bad("handoff_slots must be a power of two in 2..=2^20".into());
        }
        if !(1..=READERS_MAX_LIMIT).contains(&self.readers_max) {
            return bad(format!("readers_max must be in 1..={READERS_MAX_LIMIT}"));
        }
        if !(1..=65_536).contains(&self.drain_batch_max) {
            return bad("drain_batch_max must be in 1..=65536".into());
        }
        if let RetentionPolicy::KeepLast(n) = self.retention {
            if n < 1 {
                return bad("KeepLast needs n >= 1".into());
            }
        }
        if let Durability::AsyncFlush { frames_max, .. } = self.durability {
            if frames_max == 0 {
                return bad("AsyncFlush frames_max must be > 0".into());
            }
        }
        Ok(())
    }
}
