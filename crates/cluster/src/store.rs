//! The Raft log: an append-only file of checksummed records plus small metadata files.
//!
//! `log` holds records `[len u32][crc32 u32][postcard(Entry)]`; an index of every retained
//! entry's file offset lives in memory, with the entries themselves (the log is compacted by
//! snapshots, so what is retained is bounded). Reopening scans the file and cuts a torn tail
//! (a record whose length or checksum does not hold), like the journal does. `truncate` cuts
//! the file at the first removed record; `purge` only records the purged log id (`purged`)
//! and drops the entries from memory, and the file is rewritten without them once they are
//! the larger part of it. The vote and the committed log id are kept in two-slot files
//! ([`SlotFile`]) so a torn write leaves the previous value readable.
//!
//! Durability: with `fsync` every append is `fdatasync`ed before openraft is told it is
//! flushed (a majority then holds the entry on disk); without it the entry is in the page
//! cache when acknowledged, which survives the process being killed but not the machine. The
//! `fdatasync` runs on a flusher thread, not on Raft's task (heartbeats and votes go on while a
//! slow disk syncs), and one `fdatasync` completes every append written before it (group
//! commit): the appends' callbacks are completed in order after it.

use crate::{Entry, NodeId, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

fn io_err(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: std::io::Error,
) -> StorageError<NodeId> {
    StorageError::IO {
        source: StorageIOError::new(subject, verb, openraft::AnyError::new(&e)),
    }
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A value kept in two alternating slots of one file: each write goes to the slot not holding
/// the newest valid value, so a torn write never destroys the previous one.
pub(crate) struct SlotFile {
    file: File,
    path: PathBuf,
    counter: u64,
}

const SLOT_LEN: u64 = 4096;

impl SlotFile {
    pub(crate) fn open(path: &Path) -> std::io::Result<SlotFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut s = SlotFile {
            file,
            path: path.to_path_buf(),
            counter: 0,
        };
        s.counter = s.read_raw()?.map_or(0, |(c, _)| c);
        Ok(s)
    }

    /// (counter, payload) of the newest valid slot.
    fn read_raw(&self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        let len = self.file.metadata()?.len();
        let mut best: Option<(u64, Vec<u8>)> = None;
        for slot in 0..2 {
            let at = slot * SLOT_LEN;
            if len < at + 16 {
                continue;
            }
            let mut h = [0_u8; 16];
            self.file.read_exact_at(&mut h, at)?;
            let counter = u64::from_le_bytes(h[0..8].try_into().expect("8"));
            let n = u32::from_le_bytes(h[8..12].try_into().expect("4")) as u64;
            let crc = u32::from_le_bytes(h[12..16].try_into().expect("4"));
            if n > SLOT_LEN - 16 || len < at + 16 + n {
                continue;
            }
            let mut body = vec![0_u8; n as usize];
            self.file.read_exact_at(&mut body, at + 16)?;
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&h[0..12]);
            hasher.update(&body);
            if hasher.finalize() != crc || counter == 0 {
                continue;
            }
            if best.as_ref().is_none_or(|(c, _)| counter > *c) {
                best = Some((counter, body));
            }
        }
        Ok(best)
    }

    pub(crate) fn read<T: DeserializeOwned>(&self) -> std::io::Result<Option<T>> {
        match self.read_raw()? {
            None => Ok(None),
            Some((_, body)) => serde_json::from_slice(&body).map(Some).map_err(other),
        }
    }

    pub(crate) fn write<T: Serialize>(&mut self, value: &T, sync: bool) -> std::io::Result<()> {
        let body = serde_json::to_vec(value).map_err(other)?;
        if body.len() as u64 > SLOT_LEN - 16 {
            return Err(other(format!("{}: value too large", self.path.display())));
        }
        self.counter += 1;
        let mut rec = Vec::with_capacity(16 + body.len());
        rec.extend_from_slice(&self.counter.to_le_bytes());
        rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&rec);
        hasher.update(&body);
        rec.extend_from_slice(&hasher.finalize().to_le_bytes());
        rec.extend_from_slice(&body);
        let slot = self.counter % 2;
        self.file.write_all_at(&rec, slot * SLOT_LEN)?;
        if sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// What the log reader and the store share.
#[derive(Default)]
struct Entries {
    /// Retained entries by index, with their file offsets.
    map: BTreeMap<u64, (u64, Entry)>,
}

/// A reader over the retained entries (one per replication task).
#[derive(Clone)]
pub struct LogReader {
    entries: Arc<RwLock<Entries>>,
}

impl Entries {
    fn range(this: &RwLock<Entries>, range: impl RangeBounds<u64>) -> Vec<Entry> {
        let e = this.read().expect("log entries lock");
        e.map.range(range).map(|(_, (_, x))| x.clone()).collect()
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        Ok(Entries::range(&self.entries, range))
    }
}

/// The persistent Raft log of one node.
pub struct LogStore {
    dir: PathBuf,
    file: File,
    /// Bytes of valid records in `log`.
    end: u64,
    entries: Arc<RwLock<Entries>>,
    last_purged: Option<LogId<NodeId>>,
    vote: SlotFile,
    committed: SlotFile,
    purged: SlotFile,
    /// Appends waiting for the flusher thread's next `fdatasync` (with `fsync`).
    flusher: Option<std::sync::mpsc::Sender<LogFlushed<TypeConfig>>>,
    buf: Vec<u8>,
}

/// Completes queued append callbacks after one `fdatasync` for all of them.
fn start_flusher(file: File) -> std::io::Result<std::sync::mpsc::Sender<LogFlushed<TypeConfig>>> {
    let (tx, rx) = std::sync::mpsc::channel::<LogFlushed<TypeConfig>>();
    std::thread::Builder::new()
        .name("raft-log-flush".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let r = file.sync_data();
                for cb in batch {
                    cb.log_io_completed(match &r {
                        Ok(()) => Ok(()),
                        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                    });
                }
            }
        })?;
    Ok(tx)
}

const RECORD_HEADER: usize = 8;

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting a torn tail.
    pub fn open(dir: &Path, fsync: bool) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let purged = SlotFile::open(&dir.join("purged"))?;
        let last_purged: Option<LogId<NodeId>> = purged.read()?;
        let bytes = std::fs::read(&path)?;
        let mut map = BTreeMap::new();
        let mut at = 0_usize;
        while at + RECORD_HEADER <= bytes.len() {
            let n = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
            let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4"));
            let body_at = at + RECORD_HEADER;
            if n == 0 || body_at + n > bytes.len() {
                break;
            }
            let body = &bytes[body_at..body_at + n];
            if crc32fast::hash(body) != crc {
                break;
            }
            let Ok(entry) = postcard::from_bytes::<Entry>(body) else {
                break;
            };
            let index = entry.log_id.index;
            // A record for an index already present follows a truncation that was not
            // cut from the file (it always is; be safe anyway): the later record wins.
            map.split_off(&index);
            map.insert(index, (at as u64, entry));
            at = body_at + n;
        }
        if (at as u64) < bytes.len() as u64 {
            tracing::warn!(
                path = %path.display(),
                valid = at,
                len = bytes.len(),
                "raft log: cutting a torn tail"
            );
            file.set_len(at as u64)?;
            file.sync_data()?;
        }
        if let Some(p) = last_purged {
            map = map.split_off(&(p.index + 1));
        }
        let file_for_flusher = file.try_clone()?;
        Ok(LogStore {
            dir: dir.to_path_buf(),
            file,
            end: at as u64,
            entries: Arc::new(RwLock::new(Entries { map })),
            last_purged,
            vote: SlotFile::open(&dir.join("vote"))?,
            committed: SlotFile::open(&dir.join("committed"))?,
            purged,
            flusher: if fsync {
                Some(start_flusher(file_for_flusher)?)
            } else {
                None
            },
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Rewrites the file without the purged records, when they are most of it.
    fn compact(&mut self) -> std::io::Result<()> {
        let first = {
            let e = self.entries.read().expect("log entries lock");
            e.map.values().next().map(|(off, _)| *off)
        };
        let dead = first.unwrap_or(self.end);
        if dead < 64 << 20 || dead < self.end / 2 {
            return Ok(());
        }
        let tmp = self.dir.join("log.tmp");
        let bytes = {
            let mut b = vec![0_u8; (self.end - dead) as usize];
            self.file.read_exact_at(&mut b, dead)?;
            b
        };
        std::fs::write(&tmp, &bytes)?;
        File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, self.dir.join("log"))?;
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join("log"))?;
        if self.flusher.is_some() {
            // The old flusher finishes what it holds (on the old file, whose data the new one
            // already holds durably) and stops; the new one syncs the new file.
            self.flusher = Some(start_flusher(self.file.try_clone()?)?);
        }
        let mut e = self.entries.write().expect("log entries lock");
        for (off, _) in e.map.values_mut() {
            *off -= dead;
        }
        self.end -= dead;
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        Ok(Entries::range(&self.entries, range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let e = self.entries.read().expect("log entries lock");
        let last = e.map.values().next_back().map(|(_, x)| x.log_id);
        Ok(LogState {
            last_purged_log_id: self.last_purged,
            last_log_id: last.or(self.last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            entries: self.entries.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.vote
            .write(vote, true)
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        self.vote
            .read()
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Not synced: it is a hint that lets a restarted node apply sooner; losing it only
        // delays applying until the leader says so.
        self.committed
            .write(&committed, false)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self
            .committed
            .read::<Option<LogId<NodeId>>>()
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.buf.clear();
        let mut added = Vec::new();
        for entry in entries {
            let at = self.end + self.buf.len() as u64;
            let start = self.buf.len();
            self.buf.extend_from_slice(&[0_u8; RECORD_HEADER]);
            let body = postcard::to_extend(&entry, std::mem::take(&mut self.buf))
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, other(e)))?;
            self.buf = body;
            let n = (self.buf.len() - start - RECORD_HEADER) as u32;
            let crc = crc32fast::hash(&self.buf[start + RECORD_HEADER..]);
            self.buf[start..start + 4].copy_from_slice(&n.to_le_bytes());
            self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
            added.push((at, entry));
        }
        let r = self.file.write_all_at(&self.buf, self.end);
        if let Err(e) = r {
            // Nothing of this append counts; the file is cut back on the next open.
            let e2 = std::io::Error::new(e.kind(), e.to_string());
            callback.log_io_completed(Err(e));
            return Err(io_err(ErrorSubject::Logs, ErrorVerb::Write, e2));
        }
        self.end += self.buf.len() as u64;
        {
            let mut e = self.entries.write().expect("log entries lock");
            for (at, entry) in added {
                e.map.insert(entry.log_id.index, (at, entry));
            }
        }
        match &self.flusher {
            Some(f) => {
                if let Err(e) = f.send(callback) {
                    e.0.log_io_completed(Err(std::io::Error::other("the log flusher stopped")));
                }
            }
            None => callback.log_io_completed(Ok(())),
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let cut = {
            let mut e = self.entries.write().expect("log entries lock");
            let removed = e.map.split_off(&log_id.index);
            removed.values().next().map(|(off, _)| *off)
        };
        if let Some(off) = cut {
            self.file
                .set_len(off)
                .and_then(|()| self.file.sync_data())
                .map_err(|e| io_err(ErrorSubject::Log(log_id), ErrorVerb::Delete, e))?;
            self.end = off;
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.purged
            .write(&Some(log_id), true)
            .map_err(|e| io_err(ErrorSubject::Log(log_id), ErrorVerb::Delete, e))?;
        self.last_purged = Some(log_id);
        {
            let mut e = self.entries.write().expect("log entries lock");
            let keep = e.map.split_off(&(log_id.index + 1));
            e.map = keep;
        }
        self.compact()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))
    }
}
