//! Persistent per-session state: the next sequence numbers and every application message sent.
//!
//! [`FileStore`] keeps two files per session in its directory:
//! - `<name>.seqnums`: 24 bytes, little-endian u64 next sender seq, next target seq, and the
//!   creation time (ns since epoch) of the current sequence period, rewritten in place through a
//!   memory mapping (a store per message, no system call; the page cache keeps it across a
//!   process crash, `sync` flushes it for power loss);
//! - `<name>.body`: the sent application messages, each as u64 seq, u32 length, the bytes.
//!   On open the body is scanned to rebuild the index; a torn last record is cut off.
//!   Records are gathered in memory and appended with one write per [`Store::flush`] (without
//!   `sync`), which the sender calls around its socket write (the gateway: its connection
//!   tasks before writing, its router right after a direct write and before its journal
//!   cursor moves past the results, which a restart would otherwise not route again).
//!   Flushed records are in the page cache, which outlives a process crash.
//!
//! Session-level messages are not stored: a ResendRequest answers them with a gap fill.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What a session needs from its store. Errors are operating errors (the session is dropped).
pub trait Store {
    fn next_sender_seq(&self) -> u64;
    fn next_target_seq(&self) -> u64;
    fn set_next_sender_seq(&mut self, seq: u64) -> io::Result<()>;
    fn set_next_target_seq(&mut self, seq: u64) -> io::Result<()>;
    /// Stores the sent message `seq` (a whole FIX message).
    fn save(&mut self, seq: u64, msg: &[u8]) -> io::Result<()>;
    /// Writes out what `save` gathered. Call it before the saved messages leave for the
    /// peer (and before anything that assumes them stored survives a crash).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Appends stored message `seq` to `out`; false when it is not stored.
    fn load(&mut self, seq: u64, out: &mut Vec<u8>) -> io::Result<bool>;
    /// Starts a new sequence period: both numbers back to 1, no messages.
    fn reset(&mut self, now_ns: u64) -> io::Result<()>;
    /// When the current sequence period started.
    fn created_ns(&self) -> u64;
    /// The lowest stored sequence number at or above `seq` (None: none is), so a resend can
    /// gap-fill a long run of numbers the store does not hold in one step (a session resumed
    /// from another node's numbers holds none of them). The default says `seq` may be stored.
    fn first_stored_from(&self, seq: u64) -> Option<u64> {
        Some(seq)
    }
}

/// A store in memory, for tests and sessions that need no persistence.
#[derive(Debug, Default)]
pub struct MemoryStore {
    sender: u64,
    target: u64,
    created: u64,
    messages: Vec<(u64, Vec<u8>)>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            sender: 1,
            target: 1,
            created: 0,
            messages: Vec::new(),
        }
    }
}

impl Store for MemoryStore {
    fn next_sender_seq(&self) -> u64 {
        self.sender
    }
    fn next_target_seq(&self) -> u64 {
        self.target
    }
    fn set_next_sender_seq(&mut self, seq: u64) -> io::Result<()> {
        self.sender = seq;
        Ok(())
    }
    fn set_next_target_seq(&mut self, seq: u64) -> io::Result<()> {
        self.target = seq;
        Ok(())
    }
    fn save(&mut self, seq: u64, msg: &[u8]) -> io::Result<()> {
        self.messages.push((seq, msg.to_vec()));
        Ok(())
    }
    fn load(&mut self, seq: u64, out: &mut Vec<u8>) -> io::Result<bool> {
        match self.messages.iter().rev().find(|(s, _)| *s == seq) {
            Some((_, m)) => {
                out.extend_from_slice(m);
                Ok(true)
            }
            None => Ok(false),
        }
    }
    fn reset(&mut self, now_ns: u64) -> io::Result<()> {
        *self = Self::new();
        self.created = now_ns;
        Ok(())
    }
    fn created_ns(&self) -> u64 {
        self.created
    }
    fn first_stored_from(&self, seq: u64) -> Option<u64> {
        self.messages
            .iter()
            .map(|(s, _)| *s)
            .filter(|&s| s >= seq)
            .min()
    }
}

const RECORD_HEADER: usize = 12;

/// The on-disk store (see the module documentation).
#[derive(Debug)]
pub struct FileStore {
    /// The 24-byte `.seqnums` file, mapped.
    seqnums: memmap2::MmapMut,
    body: File,
    body_len: u64,
    sender: u64,
    target: u64,
    created: u64,
    /// (seq, offset of the record, message length), in append order.
    index: Vec<(u64, u64, u32)>,
    messages_max: usize,
    /// Records saved but not yet written (they start at file offset `written_len`).
    pending: Vec<u8>,
    written_len: u64,
    sync: bool,
}

/// Gathered records beyond this are written without waiting for a flush.
const PENDING_MAX: usize = 256 * 1024;

impl FileStore {
    /// Opens (or creates) the store `name` in `dir`; one process at a time may open a store.
    /// `messages_max` bounds the stored messages
    /// of one sequence period; `sync` makes every write durable (fdatasync) before returning.
    pub fn open(
        dir: &Path,
        name: &str,
        messages_max: usize,
        sync: bool,
        now_ns: u64,
    ) -> io::Result<FileStore> {
        std::fs::create_dir_all(dir)?;
        let path = |ext: &str| -> PathBuf { dir.join(format!("{name}.{ext}")) };
        let mut seqnums = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path("seqnums"))?;
        let mut raw = Vec::new();
        seqnums.read_to_end(&mut raw)?;
        if raw.len() < 24 {
            seqnums.set_len(24)?;
        }
        // SAFETY: the file is this store's own, at least 24 bytes long, and nothing truncates it
        // while mapped; two processes must not open the same store directory (documented on
        // `FileStore::open`).
        let map = unsafe { memmap2::MmapMut::map_mut(&seqnums)? };
        let (sender, target, created) = if raw.len() >= 24 {
            let u = |i: usize| u64::from_le_bytes(raw[i..i + 8].try_into().expect("8 bytes"));
            (u(0).max(1), u(8).max(1), u(16))
        } else {
            (1, 1, now_ns)
        };
        let mut body = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path("body"))?;
        let mut data = Vec::new();
        body.read_to_end(&mut data)?;
        let mut index = Vec::new();
        let mut pos = 0_usize;
        while pos + RECORD_HEADER <= data.len() {
            let seq = u64::from_le_bytes(data[pos..pos + 8].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(data[pos + 8..pos + 12].try_into().expect("4 bytes"));
            if pos + RECORD_HEADER + len as usize > data.len() {
                break;
            }
            index.push((seq, pos as u64, len));
            pos += RECORD_HEADER + len as usize;
        }
        if pos != data.len() {
            body.set_len(pos as u64)?;
        }
        body.seek(SeekFrom::Start(pos as u64))?;
        let mut store = FileStore {
            seqnums: map,
            body,
            body_len: pos as u64,
            sender,
            target,
            created,
            index,
            messages_max,
            pending: Vec::with_capacity(16 * 1024),
            written_len: pos as u64,
            sync,
        };
        store.write_seqnums()?;
        Ok(store)
    }

    fn write_seqnums(&mut self) -> io::Result<()> {
        self.seqnums[0..8].copy_from_slice(&self.sender.to_le_bytes());
        self.seqnums[8..16].copy_from_slice(&self.target.to_le_bytes());
        self.seqnums[16..24].copy_from_slice(&self.created.to_le_bytes());
        if self.sync {
            self.seqnums.flush()?;
        }
        Ok(())
    }
}

impl Store for FileStore {
    fn next_sender_seq(&self) -> u64 {
        self.sender
    }
    fn next_target_seq(&self) -> u64 {
        self.target
    }
    fn set_next_sender_seq(&mut self, seq: u64) -> io::Result<()> {
        self.sender = seq;
        self.write_seqnums()
    }
    fn set_next_target_seq(&mut self, seq: u64) -> io::Result<()> {
        self.target = seq;
        self.write_seqnums()
    }
    fn save(&mut self, seq: u64, msg: &[u8]) -> io::Result<()> {
        if self.index.len() >= self.messages_max {
            return Err(io::Error::other("message store full (messages_max)"));
        }
        let len = u32::try_from(msg.len()).map_err(|_| io::Error::other("message too long"))?;
        self.pending.extend_from_slice(&seq.to_le_bytes());
        self.pending.extend_from_slice(&len.to_le_bytes());
        self.pending.extend_from_slice(msg);
        self.index.push((seq, self.body_len, len));
        self.body_len += (RECORD_HEADER + msg.len()) as u64;
        if self.sync || self.pending.len() >= PENDING_MAX {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.body.write_all(&self.pending) {
            // Whatever part was written is cut off again, so the file and the index agree
            // and a later flush appends at the right offset.
            let _ = self.body.set_len(self.written_len);
            let _ = self.body.seek(SeekFrom::Start(self.written_len));
            return Err(e);
        }
        if self.sync {
            self.body.sync_data()?;
        }
        self.written_len += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }
    fn load(&mut self, seq: u64, out: &mut Vec<u8>) -> io::Result<bool> {
        // Sequence numbers are appended in increasing order within a period.
        let Ok(i) = self.index.binary_search_by_key(&seq, |e| e.0) else {
            return Ok(false);
        };
        let (_, off, len) = self.index[i];
        let start_in_file = off + RECORD_HEADER as u64;
        if off >= self.written_len {
            let at = (start_in_file - self.written_len) as usize;
            out.extend_from_slice(&self.pending[at..at + len as usize]);
            return Ok(true);
        }
        let start = out.len();
        out.resize(start + len as usize, 0);
        self.body.read_exact_at(&mut out[start..], start_in_file)?;
        Ok(true)
    }
    fn reset(&mut self, now_ns: u64) -> io::Result<()> {
        self.pending.clear();
        self.body.set_len(0)?;
        self.body.seek(SeekFrom::Start(0))?;
        self.body_len = 0;
        self.written_len = 0;
        self.index.clear();
        self.sender = 1;
        self.target = 1;
        self.created = now_ns;
        self.write_seqnums()
    }
    fn created_ns(&self) -> u64 {
        self.created
    }
    fn first_stored_from(&self, seq: u64) -> Option<u64> {
        // Appended in increasing order within a period.
        let i = self.index.partition_point(|e| e.0 < seq);
        self.index.get(i).map(|e| e.0)
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_store_has_its_numbers_and_messages() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(dir.path(), "S1", 100, false, 7).unwrap();
            s.set_next_sender_seq(3).unwrap();
            s.set_next_target_seq(9).unwrap();
            s.save(1, b"one").unwrap();
            s.save(2, b"two").unwrap();
        }
        let mut s = FileStore::open(dir.path(), "S1", 100, false, 99).unwrap();
        assert_eq!(
            (s.next_sender_seq(), s.next_target_seq(), s.created_ns()),
            (3, 9, 7)
        );
        let mut out = Vec::new();
        assert!(s.load(2, &mut out).unwrap());
        assert_eq!(out, b"two");
        assert!(!s.load(3, &mut out).unwrap());
        s.reset(100).unwrap();
        assert_eq!((s.next_sender_seq(), s.next_target_seq()), (1, 1));
        assert!(!s.load(1, &mut out).unwrap());
    }

    #[test]
    fn a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FileStore::open(dir.path(), "S", 100, false, 0).unwrap();
            s.save(1, b"one").unwrap();
            s.save(2, b"two").unwrap();
        }
        let p = dir.path().join("S.body");
        let len = std::fs::metadata(&p).unwrap().len();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len - 1).unwrap();
        let mut s = FileStore::open(dir.path(), "S", 100, false, 0).unwrap();
        let mut out = Vec::new();
        assert!(s.load(1, &mut out).unwrap());
        assert!(!s.load(2, &mut out).unwrap());
        s.save(2, b"TWO").unwrap();
        out.clear();
        assert!(s.load(2, &mut out).unwrap());
        assert_eq!(out, b"TWO");
    }

    #[test]
    fn the_store_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), "S", 2, false, 0).unwrap();
        s.save(1, b"a").unwrap();
        s.save(2, b"b").unwrap();
        assert!(s.save(3, b"c").is_err());
    }

    #[test]
    fn saved_messages_reach_the_file_on_flush_and_load_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let body = dir.path().join("S.body");
        let mut s = FileStore::open(dir.path(), "S", 100, false, 0).unwrap();
        s.save(1, b"one").unwrap();
        s.flush().unwrap();
        let flushed = std::fs::metadata(&body).unwrap().len();
        assert_eq!(flushed, (RECORD_HEADER + 3) as u64);
        s.save(2, b"two").unwrap();
        s.save(3, b"three").unwrap();
        // Gathered, not written yet, and still served (a resend before the next flush).
        assert_eq!(std::fs::metadata(&body).unwrap().len(), flushed);
        let mut out = Vec::new();
        for (seq, want) in [(1, &b"one"[..]), (2, b"two"), (3, b"three")] {
            out.clear();
            assert!(s.load(seq, &mut out).unwrap());
            assert_eq!(out, want);
        }
        s.flush().unwrap();
        assert_eq!(
            std::fs::metadata(&body).unwrap().len(),
            flushed + (2 * RECORD_HEADER + 8) as u64
        );
        for (seq, want) in [(2, &b"two"[..]), (3, b"three")] {
            out.clear();
            assert!(s.load(seq, &mut out).unwrap());
            assert_eq!(out, want);
        }
        // A store dropped with records gathered writes them.
        s.save(4, b"four").unwrap();
        drop(s);
        let mut s = FileStore::open(dir.path(), "S", 100, false, 0).unwrap();
        out.clear();
        assert!(s.load(4, &mut out).unwrap());
        assert_eq!(out, b"four");
        assert_eq!(s.first_stored_from(2), Some(2));
    }

    #[test]
    fn a_sync_store_writes_every_message_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStore::open(dir.path(), "S", 100, true, 0).unwrap();
        s.save(1, b"one").unwrap();
        assert_eq!(
            std::fs::metadata(dir.path().join("S.body")).unwrap().len(),
            (RECORD_HEADER + 3) as u64
        );
    }
}
