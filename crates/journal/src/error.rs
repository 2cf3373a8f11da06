//! Error types, one enum per operation.

use std::path::PathBuf;

/// Errors from [`crate::Publisher::try_publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// Every hand-off slot is occupied; retry later (back-pressure).
    #[error("hand-off queue full")]
    Full,
    /// Payload larger than the configured slot payload maximum.
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Offered payload length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
}

/// Errors from [`crate::Journal::open`] / [`crate::Journal::open_read_only`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The configuration violates a bound.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// Another writer holds the journal's lock.
    #[error("journal at {0} is locked by another writer")]
    Locked(PathBuf),
    /// No journal exists at the path (read-only open).
    #[error("no journal at {0}")]
    NotFound(PathBuf),
    /// A segment or control file is not a valid journal file and cannot be
    /// treated as a torn tail.
    #[error("corrupt journal file {path}: {reason}")]
    Corrupt {
        /// Offending file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// Errors from [`crate::Sequencer::append`] and [`crate::Sequencer::do_work`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// Payload larger than `payload_len_max`.
    #[error("payload of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Offered payload length.
        len: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The journal cannot roll to a new segment: `segments_max` segments exist
    /// and none may be reclaimed (a registered reader still holds the oldest
    /// one, or retention keeps it). Nothing was written; retry later.
    #[error("journal full: {segments} segments live (max {max}); oldest is held by a reader or retention")]
    BackPressure {
        /// Live segments.
        segments: u64,
        /// Configured bound.
        max: u64,
    },
    /// An I/O error while rolling, flushing or reclaiming.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

/// Errors from [`crate::Journal::commit_to`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The journal's commit policy is not [`crate::CommitPolicy::Manual`].
    #[error("commit_to requires CommitPolicy::Manual")]
    NotManual,
    /// Cannot commit beyond the written position.
    #[error("cannot commit {seq}: only {written} written")]
    BeyondWritten {
        /// Requested sequence.
        seq: u64,
        /// Written position.
        written: u64,
    },
    /// The journal was opened read-only.
    #[error("journal is read-only")]
    ReadOnly,
}

/// Errors from [`crate::Journal::reader`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderError {
    /// All `readers_max` reader slots are taken.
    #[error("all {0} reader slots in use")]
    TooManyReaders(usize),
    /// The requested sequence has been reclaimed by retention.
    #[error("sequence {requested} no longer retained (oldest is {oldest})")]
    Trimmed {
        /// Requested start sequence.
        requested: u64,
        /// Oldest retained sequence.
        oldest: u64,
    },
    /// A segment file could not be opened or is invalid.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// Errors from reading frames ([`crate::Reader::poll`] and friends).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A committed frame failed verification (checksum, sequence, bounds).
    #[error("corrupt frame at sequence {seq} in segment {segment} offset {offset}: {reason}")]
    Corrupt {
        /// Expected sequence.
        seq: u64,
        /// Segment index.
        segment: u64,
        /// Byte offset of the frame in the segment file.
        offset: u64,
        /// What failed.
        reason: &'static str,
    },
    /// The next segment file is missing (reclaimed under an unregistered reader).
    #[error("segment {0} is missing")]
    SegmentMissing(u64),
    /// Failed to open the next segment.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// `next_timeout` elapsed without a frame.
    #[error("timed out waiting for a frame")]
    Timeout,
}
