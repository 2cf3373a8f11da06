//! The replicated state machine: the inbound journal itself.
//!
//! Applying a committed entry appends its frames to the local inbound journal, stamped with
//! the timestamp the leader gave the batch (through [`journal::ExternalClock`]; the journal
//! keeps timestamps non-decreasing), so every node's inbound journal is byte-identical at
//! every committed position and the matching agent reading it produces byte-identical
//! outputs. Sequence numbers are assigned here, in log order: gap-free by construction, and
//! independent of which leader proposed the batch.
//!
//! `sm.meta` (two-slot file) records the last applied log id, the membership and the journal
//! sequence reached; it is written after the frames, so after a crash the journal may be ahead
//! of it: re-applied entries then skip the frames the journal already holds (counted by
//! sequence). A journal *behind* the metadata means the journal was lost (e.g. `/dev/shm` after
//! a reboot with the Raft files on disk): the node refuses to start and must be re-seeded.
//!
//! Snapshots are the journal too: a snapshot at log id L is "the journal up to the sequence
//! reached at L", built without copying anything (the journal is append-only), and sent to a
//! lagging node as the frames it lacks (see `net`).

use crate::{Batch, Entry, NodeId, SnapshotData, TypeConfig};
use journal::{ExternalClock, Journal, Sequencer};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) fn sm_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageError::IO {
        source: StorageIOError::new(
            ErrorSubject::StateMachine,
            ErrorVerb::Write,
            openraft::AnyError::error(e.to_string()),
        ),
    }
}

/// Iterates over the frames packed in a batch: `[template u16][len u32][payload]`.
pub fn frames(packed: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at + 6 > packed.len() {
            return None;
        }
        let t = u16::from_le_bytes([packed[at], packed[at + 1]]);
        let n = u32::from_le_bytes(packed[at + 2..at + 6].try_into().expect("4")) as usize;
        let body = packed.get(at + 6..at + 6 + n)?;
        at += 6 + n;
        Some((t, body))
    })
}

/// Appends one frame to a packed batch.
pub fn pack(buf: &mut Vec<u8>, template: u16, payload: &[u8]) {
    buf.extend_from_slice(&template.to_le_bytes());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Meta {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, openraft::BasicNode>,
    /// Journal sequence reached after `last_applied`.
    seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapMeta {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    seq: u64,
}

struct Inner {
    sequencer: Sequencer<Arc<ExternalClock>>,
    meta: Meta,
    meta_file: crate::store::SlotFile,
    snap_file: crate::store::SlotFile,
    current: Option<SnapMeta>,
}

/// The state machine (shared with its snapshot builder).
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    clock: Arc<ExternalClock>,
    journal: Journal,
    dir: PathBuf,
    applied_index: Arc<AtomicU64>,
    snapshot_seq: Arc<AtomicU64>,
}

impl StateMachine {
    /// Opens the metadata in `dir` over the inbound journal written by `sequencer` (whose clock
    /// is `clock`). Fails when the journal is behind what the metadata says was applied.
    pub fn open(
        dir: &Path,
        journal: Journal,
        sequencer: Sequencer<Arc<ExternalClock>>,
        clock: Arc<ExternalClock>,
    ) -> std::io::Result<StateMachine> {
        std::fs::create_dir_all(dir)?;
        let meta_file = crate::store::SlotFile::open(&dir.join("sm.meta"))?;
        let snap_file = crate::store::SlotFile::open(&dir.join("snapshot.meta"))?;
        let meta: Meta = meta_file.read()?.unwrap_or_default();
        let current: Option<SnapMeta> = snap_file.read()?;
        let written = sequencer.written_seq();
        if written < meta.seq {
            return Err(std::io::Error::other(format!(
                "the inbound journal ends at sequence {written} but the cluster state machine \
                 applied up to {} (log {:?}): the journal was lost; re-seed this node (remove \
                 its data directory and let it catch up from the leader)",
                meta.seq, meta.last_applied
            )));
        }
        let applied_index = Arc::new(AtomicU64::new(meta.last_applied.map_or(0, |l| l.index)));
        let snapshot_seq = Arc::new(AtomicU64::new(current.as_ref().map_or(0, |s| s.seq)));
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(Inner {
                sequencer,
                meta,
                meta_file,
                snap_file,
                current,
            })),
            clock,
            journal,
            dir: dir.to_path_buf(),
            applied_index,
            snapshot_seq,
        })
    }

    /// Index of the last applied log entry.
    pub fn applied_index(&self) -> Arc<AtomicU64> {
        self.applied_index.clone()
    }

    /// Journal sequence of the current snapshot.
    pub fn snapshot_seq(&self) -> u64 {
        self.snapshot_seq.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends `(template, payload)` frames stamped `ts`, skipping those whose sequence the
    /// journal already holds (`next` is the sequence the first one gets).
    #[allow(clippy::result_large_err)] // openraft's error type
    fn append_frames<'a>(
        inner: &mut Inner,
        clock: &ExternalClock,
        ts: u64,
        next: u64,
        it: impl Iterator<Item = (u16, &'a [u8])>,
    ) -> Result<u64, StorageError<NodeId>> {
        clock.set(ts);
        let written = inner.sequencer.written_seq();
        let skip = (written + 1).saturating_sub(next) as usize;
        let mut count = 0_u64;
        let rest = it.inspect(|_| count += 1).skip(skip);
        inner.sequencer.append_batch(rest).map_err(sm_err)?;
        let end = next + count - 1;
        let now = inner.sequencer.written_seq();
        if now != end.max(written) {
            return Err(sm_err(format!(
                "replicated frames end at sequence {now}, expected {}",
                end.max(written)
            )));
        }
        Ok(end)
    }

    /// Appends frame `seq` of a snapshot (unless the journal holds it) with the end-of-batch
    /// mark it had in the sender's journal, so the journals stay identical, marks included.
    #[allow(clippy::result_large_err, clippy::too_many_arguments)] // openraft's error type
    fn append_snapshot_frame(
        inner: &mut Inner,
        clock: &ExternalClock,
        ts: u64,
        seq: u64,
        template: u16,
        payload: &[u8],
        end_of_batch: bool,
    ) -> Result<(), StorageError<NodeId>> {
        if seq <= inner.sequencer.written_seq() {
            return Ok(());
        }
        clock.set(ts);
        let s = inner
            .sequencer
            .write_batch(std::iter::once((template, payload)))
            .map_err(sm_err)?;
        inner.sequencer.publish(end_of_batch).map_err(sm_err)?;
        if s != seq {
            return Err(sm_err(format!("snapshot frame {seq} was appended as {s}")));
        }
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let mut inner = self.lock();
        let Meta {
            last_applied,
            membership,
            seq,
        } = inner.meta.clone();
        let id = match last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id.term, l.index),
            None => format!("0-0-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id: id,
        };
        // The journal must hold the frames durably before a snapshot lets the log go.
        inner.sequencer.flush().map_err(sm_err)?;
        let sm = SnapMeta {
            meta: meta.clone(),
            seq,
        };
        inner.snap_file.write(&sm, true).map_err(sm_err)?;
        inner.current = Some(sm);
        self.snapshot_seq.store(seq, Ordering::Relaxed);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotData::Local {
                journal: self.journal.clone(),
                upto: seq,
            }),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<NodeId>>,
            StoredMembership<NodeId, openraft::BasicNode>,
        ),
        StorageError<NodeId>,
    > {
        let inner = self.lock();
        Ok((inner.meta.last_applied, inner.meta.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<crate::Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let clock = self.clock.clone();
        let mut inner = self.lock();
        let mut out = Vec::new();
        for entry in entries {
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(Batch { ts_ns, frames: f }) => {
                    let next = inner.meta.seq + 1;
                    inner.meta.seq =
                        StateMachine::append_frames(&mut inner, &clock, *ts_ns, next, frames(f))?;
                }
                EntryPayload::Membership(m) => {
                    inner.meta.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                }
            }
            inner.meta.last_applied = Some(entry.log_id);
            out.push(crate::Applied {
                last_seq: inner.meta.seq,
            });
        }
        let meta = inner.meta.clone();
        inner.meta_file.write(&meta, false).map_err(sm_err)?;
        if let Some(l) = meta.last_applied {
            self.applied_index.store(l.index, Ordering::Release);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> StateMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<SnapshotData>, StorageError<NodeId>> {
        Ok(Box::new(SnapshotData::Received {
            path: self.dir.join("snapshot.incoming"),
            from: 1,
            upto: 0,
        }))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError<NodeId>> {
        let clock = self.clock.clone();
        let mut inner = self.lock();
        let upto = match *snapshot {
            SnapshotData::Received { path, from, upto } => {
                let bytes = std::fs::read(&path).map_err(sm_err)?;
                // Records: [seq u64][ts u64][template u16][len u32][payload]; bit 31 of len is
                // the frame's end-of-batch mark.
                let mut at = 0;
                let mut next = from;
                while at + 22 <= bytes.len() {
                    let seq = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8"));
                    let ts = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8"));
                    let t = u16::from_le_bytes([bytes[at + 16], bytes[at + 17]]);
                    let raw = u32::from_le_bytes(bytes[at + 18..at + 22].try_into().expect("4"));
                    let (n, end) = ((raw & !(1 << 31)) as usize, raw >> 31 == 1);
                    let Some(p) = bytes.get(at + 22..at + 22 + n) else {
                        return Err(sm_err("snapshot file truncated"));
                    };
                    if seq != next {
                        return Err(sm_err(format!(
                            "snapshot frame {seq} where {next} was expected"
                        )));
                    }
                    StateMachine::append_snapshot_frame(&mut inner, &clock, ts, seq, t, p, end)?;
                    next += 1;
                    at += 22 + n;
                }
                if next != upto + 1 && upto >= from {
                    return Err(sm_err(format!(
                        "snapshot ends at {} but promised {upto}",
                        next - 1
                    )));
                }
                let _ = std::fs::remove_file(&path);
                upto
            }
            SnapshotData::Local { journal, upto } => {
                // Another node's journal in this process (tests): copy what this one lacks.
                let from = inner.sequencer.written_seq() + 1;
                if from <= upto {
                    let mut r = journal.reader(from).map_err(sm_err)?;
                    let mut next = from;
                    while next <= upto {
                        let Some(f) = r.poll().map_err(sm_err)? else {
                            return Err(sm_err("the snapshot's journal ends before its sequence"));
                        };
                        let (seq, ts, t) = (f.sequence, f.timestamp_ns, f.template_id);
                        StateMachine::append_snapshot_frame(
                            &mut inner,
                            &clock,
                            ts,
                            seq,
                            t,
                            f.payload,
                            f.end_of_batch,
                        )?;
                        next += 1;
                    }
                }
                upto
            }
        };
        inner.sequencer.flush().map_err(sm_err)?;
        if inner.sequencer.written_seq() < upto {
            return Err(sm_err(format!(
                "after installing the snapshot the journal ends at {} below {upto}",
                inner.sequencer.written_seq()
            )));
        }
        inner.meta = Meta {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            seq: upto,
        };
        let m = inner.meta.clone();
        inner.meta_file.write(&m, true).map_err(sm_err)?;
        let sm = SnapMeta {
            meta: meta.clone(),
            seq: upto,
        };
        inner.snap_file.write(&sm, true).map_err(sm_err)?;
        inner.current = Some(sm);
        self.snapshot_seq.store(upto, Ordering::Relaxed);
        if let Some(l) = meta.last_log_id {
            self.applied_index.store(l.index, Ordering::Release);
        }
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.lock();
        Ok(inner.current.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(SnapshotData::Local {
                journal: self.journal.clone(),
                upto: s.seq,
            }),
        }))
    }
}
