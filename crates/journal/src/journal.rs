//! Shared state, open/recovery, the `Journal` handle and the commit gate.

use crate::clock::{Clock, SystemClock};
use crate::config::{CommitPolicy, JournalConfig};
use crate::doorbell::Doorbell;
use crate::error::{CommitError, OpenError, ReaderError};
use crate::format::*;
use crate::handoff::{self, Publisher};
use crate::idle::WaitStrategy;
use crate::model::Position;
use crate::reader::Reader;
use crate::sequencer::{ActiveSegment, Sequencer};
use crate::sync::{Arc, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;
use memmap2::{MmapMut, MmapOptions, MmapRaw};
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

/// Reader slot value meaning "free".
pub(crate) const SLOT_FREE: u64 = u64::MAX;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The memory-mapped control file: written/committed positions for
/// cross-process readers.
pub(crate) struct Control {
    map: MmapRaw,
}

impl Control {
    #[inline]
    fn cell(&self, off: usize) -> &std::sync::atomic::AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= CONTROL_LEN);
        // SAFETY: the mapping is CONTROL_LEN bytes, page aligned, lives as long
        // as `self`; `off` is 8-aligned so the AtomicU64 is properly aligned.
        // All concurrent access to these words is atomic.
        unsafe { &*(self.map.as_ptr().add(off) as *const std::sync::atomic::AtomicU64) }
    }
    pub(crate) fn written(&self) -> u64 {
        self.cell(CT_WRITTEN).load(Ordering::Acquire)
    }
    pub(crate) fn committed(&self) -> u64 {
        self.cell(CT_COMMITTED).load(Ordering::Acquire)
    }
    fn store_written(&self, v: u64) {
        self.cell(CT_WRITTEN).store(v, Ordering::Release)
    }
    fn max_committed(&self, v: u64) {
        self.cell(CT_COMMITTED).fetch_max(v, Ordering::AcqRel);
    }
    fn force_committed(&self, v: u64) {
        self.cell(CT_COMMITTED).store(v, Ordering::Release)
    }
}

/// State shared by the sequencer, the `Journal` handles and the readers.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) read_only: bool,
    pub(crate) commit_policy: CommitPolicy,
    written: CachePadded<Position>,
    committed: CachePadded<Position>,
    control: Control,
    pub(crate) reader_slots: Box<[CachePadded<AtomicU64>]>,
    /// Lowest segment index a reader may still register at.
    pub(crate) reclaim_floor: AtomicU64,
    publisher: Option<Publisher>,
    pub(crate) reader_wait: WaitStrategy,
    /// Rung after every publication of the committed position.
    bell: std::sync::Arc<Doorbell>,
    _lock: Option<File>,
}

impl Shared {
    /// Committed position (Acquire): every frame with a sequence at or below
    /// it is fully written and may be read.
    #[inline]
    pub(crate) fn committed_seq(&self) -> u64 {
        if self.read_only {
            self.control.committed()
        } else {
            self.committed.load()
        }
    }

    #[inline]
    pub(crate) fn written_seq(&self) -> u64 {
        if self.read_only {
            self.control.written()
        } else {
            self.written.load()
        }
    }

    /// Called by the sequencer after frames up to `seq` are written (and
    /// flushed in Sync mode).
    #[inline]
    pub(crate) fn publish_written(&self, seq: u64, ring: bool) {
        self.written.publish(seq);
        self.control.store_written(seq);
        if self.commit_policy == CommitPolicy::FollowWritten {
            self.committed.publish(seq);
            self.control.max_committed(seq);
            if ring {
                self.bell.ring();
            }
        }
    }

    fn commit_to(&self, seq: u64) -> Result<u64, CommitError> {
        if self.read_only {
            return Err(CommitError::ReadOnly);
        }
        if self.commit_policy != CommitPolicy::Manual {
            return Err(CommitError::NotManual);
        }
        let written = self.written.load();
        if seq > written {
            return Err(CommitError::BeyondWritten { seq, written });
        }
        let now = self.committed.publish_max(seq);
        self.control.max_committed(seq);
        self.bell.ring();
        Ok(now)
    }

    /// Lowest segment index held by a registered reader (SeqCst; pairs with
    /// the reader registration protocol).
    pub(crate) fn min_reader_segment(&self) -> u64 {
        self.reader_slots
            .iter()
            .map(|s| s.load(Ordering::SeqCst))
            .min()
            .unwrap_or(SLOT_FREE)
    }
}

/// Handle to a journal: creates publishers and readers, exposes positions and
/// the commit gate. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Journal {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.shared.dir)
            .field("read_only", &self.shared.read_only)
            .field("written", &self.written_seq())
            .field("committed", &self.committed_seq())
            .finish()
    }
}

fn open_control(dir: &Path, writable: bool) -> Result<(File, Control, bool), OpenError> {
    let path = dir.join(CONTROL_FILE);
    let file = if writable {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
    } else {
        OpenOptions::new().read(true).open(&path)
    };
    let file = match file {
        Ok(f) => f,
        Err(e) if !writable && e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OpenError::NotFound(dir.to_path_buf()))
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    if writable {
        // SAFETY: plain FFI call on a valid fd.
        let rc = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if rc != 0 {
            return Err(OpenError::Locked(dir.to_path_buf()));
        }
    }
    let len = file.metadata().map_err(io_err(&path))?.len();
    let fresh = len == 0;
    if writable && len < CONTROL_LEN as u64 {
        file.set_len(CONTROL_LEN as u64).map_err(io_err(&path))?;
    } else if len < CONTROL_LEN as u64 {
        return Err(OpenError::Corrupt {
            path,
            reason: "control file too short".into(),
        });
    }
    let map = if writable {
        MmapOptions::new().len(CONTROL_LEN).map_raw(&file)
    } else {
        MmapOptions::new().len(CONTROL_LEN).map_raw_read_only(&file)
    }
    .map_err(io_err(&path))?;
    let control = Control { map };
    // SAFETY: the mapping is CONTROL_LEN readable bytes; only the atomic words
    // at 16.. are concurrently modified, and we read bytes 0..16 only.
    let head = unsafe { std::slice::from_raw_parts(control.map.as_ptr(), 16) };
    if fresh {
        // SAFETY: writable mapping, we hold the writer lock, bytes 0..16 and
        // 32..40 are not accessed atomically.
        unsafe {
            let p = control.map.as_mut_ptr();
            std::ptr::copy_nonoverlapping(CONTROL_MAGIC.as_ptr(), p, 8);
            std::ptr::copy_nonoverlapping(
                FORMAT_VERSION.to_le_bytes().as_ptr(),
                p.add(CT_VERSION),
                4,
            );
        }
    } else if head[0..8] != CONTROL_MAGIC || get_u32(head, CT_VERSION) != FORMAT_VERSION {
        return Err(OpenError::Corrupt {
            path,
            reason: "bad control file magic or version".into(),
        });
    }
    Ok((file, control, fresh))
}

/// List segment indices present in `dir`, sorted.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, OpenError> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        if let Some(i) = e.file_name().to_str().and_then(parse_segment_name) {
            v.push(i);
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// Read just the header of segment `index`.
pub(crate) fn read_segment_header(dir: &Path, index: u64) -> Result<SegmentHeader, OpenError> {
    use std::os::unix::fs::FileExt;
    let path = segment_path(dir, index);
    let f = File::open(&path).map_err(io_err(&path))?;
    let mut b = [0u8; SEGMENT_HEADER_LEN];
    f.read_exact_at(&mut b, 0).map_err(io_err(&path))?;
    let h = SegmentHeader::decode(&b).map_err(|reason| OpenError::Corrupt {
        path: path.clone(),
        reason,
    })?;
    if h.index != index {
        return Err(OpenError::Corrupt {
            path,
            reason: "segment index does not match file name".into(),
        });
    }
    Ok(h)
}

/// A zero-filled, pre-allocated, mapped segment file under its `*.seg.tmp`
/// name, not yet carrying a header.
pub(crate) struct Prepared {
    pub(crate) index: u64,
    pub(crate) file: File,
    pub(crate) map: MmapMut,
    pub(crate) tmp: PathBuf,
}

/// Create `<index>.seg.tmp`, allocate its blocks and map it with pre-faulted
/// page tables. Safe to run on a helper thread.
pub(crate) fn prepare_segment(
    dir: &Path,
    segment_size: u64,
    index: u64,
) -> Result<Prepared, OpenError> {
    let tmp = segment_path(dir, index).with_extension("seg.tmp");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    // Pre-allocate the blocks (tmpfs and real file systems); fall back to a
    // sparse set_len where fallocate is unsupported.
    // SAFETY: FFI call with a valid fd.
    let rc = unsafe {
        libc::posix_fallocate(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
            segment_size as libc::off_t,
        )
    };
    if rc != 0 {
        f.set_len(segment_size).map_err(io_err(&tmp))?;
    }
    // SAFETY: we created the file and are its only user until rename.
    let map = unsafe {
        MmapOptions::new()
            .len(segment_size as usize)
            .populate()
            .map_mut(&f)
    }
    .map_err(io_err(&tmp))?;
    Ok(Prepared {
        index,
        file: f,
        map,
        tmp,
    })
}

/// Turn a prepared file into segment `index`: write the header, rename it to
/// its final name (atomically visible), and in Sync mode sync header and
/// directory.
pub(crate) fn finish_segment(
    dir: &Path,
    cfg: &JournalConfig,
    mut p: Prepared,
    base_sequence: u64,
    sync_dir: bool,
) -> Result<(File, MmapMut), OpenError> {
    assert_eq!(p.map.len() as u64, cfg.segment_size);
    let path = segment_path(dir, p.index);
    let h = SegmentHeader {
        index: p.index,
        base_sequence,
        segment_size: cfg.segment_size,
        data_offset: data_offset(cfg.index_entries_max) as u32,
        index_stride: cfg.index_stride,
        index_entries: cfg.index_entries_max,
    };
    h.encode(&mut p.map[..SEGMENT_HEADER_LEN]);
    if sync_dir {
        p.map.flush_range(0, PAGE).map_err(io_err(&p.tmp))?;
    }
    std::fs::rename(&p.tmp, &path).map_err(io_err(&path))?;
    if sync_dir {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok((p.file, p.map))
}

/// Create a zero-filled, pre-allocated segment file atomically
/// (write `*.tmp`, allocate, header, rename).
pub(crate) fn create_segment(
    dir: &Path,
    cfg: &JournalConfig,
    index: u64,
    base_sequence: u64,
    sync_dir: bool,
) -> Result<(File, MmapMut), OpenError> {
    let p = prepare_segment(dir, cfg.segment_size, index)?;
    finish_segment(dir, cfg, p, base_sequence, sync_dir)
}

/// Outcome of scanning one segment during recovery.
struct Scan {
    /// Offset after the last valid frame.
    tail: usize,
    /// Next expected sequence.
    next_seq: u64,
    /// The segment is complete (padding or no room for another header).
    complete: bool,
    /// Offsets of the frames the sparse index must point at (entry k).
    index: Vec<u32>,
    /// Timestamp of the last valid frame (0 if none).
    last_ts: u64,
}

fn scan_segment(map: &[u8], h: &SegmentHeader) -> Scan {
    let size = h.segment_size as usize;
    let mut off = h.data_offset as usize;
    let mut seq = h.base_sequence;
    let mut index = Vec::new();
    let mut last_ts = 0;
    let stride = h.index_stride as u64;
    'scan: loop {
        let (tail, complete) = 'frame: {
            if off + FRAME_HEADER_LEN > size {
                break 'frame (off, true);
            }
            let fh = FrameHeader::decode(&map[off..off + FRAME_HEADER_LEN]);
            let len = fh.frame_length as usize;
            if len < FRAME_HEADER_LEN || off + len > size || fh.reserved != 0 {
                break 'frame (off, false); // includes len == 0: clean or torn end
            }
            if fh.flags & FLAG_PADDING != 0 {
                let ok = off + len == size
                    && fh.sequence == 0
                    && fh.template_id == 0
                    && fh.timestamp_ns == 0
                    && frame_checksum(&map[off..off + FRAME_HEADER_LEN], &[]) == fh.checksum;
                break 'frame if ok { (size, true) } else { (off, false) };
            }
            if fh.flags & !FLAG_END_OF_BATCH != 0 || fh.sequence != seq {
                break 'frame (off, false);
            }
            let payload = &map[off + FRAME_HEADER_LEN..off + len];
            if frame_checksum(&map[off..off + FRAME_HEADER_LEN], payload) != fh.checksum {
                break 'frame (off, false);
            }
            let rel = seq - h.base_sequence;
            if rel % stride == 0 && rel / stride < h.index_entries as u64 {
                index.push(off as u32);
            }
            last_ts = fh.timestamp_ns;
            seq += 1;
            off += align_up(len, FRAME_ALIGN);
            continue 'scan;
        };
        return Scan {
            tail,
            next_seq: seq,
            complete,
            index,
            last_ts,
        };
    }
}

/// Zero `map[from..]` (only pages that are not already zero, so clean tails
/// are not dirtied).
fn cut_tail(map: &mut [u8], from: usize) {
    let mut at = from;
    while at < map.len() {
        let end = (align_up(at + 1, PAGE)).min(map.len());
        if map[at..end].iter().any(|&b| b != 0) {
            map[at..end].fill(0);
        }
        at = end;
    }
}

/// Make the persisted sparse index agree with the scan: entry k = offset of
/// frame `base + k * stride` if it survived, else 0. Writes only differing
/// entries.
fn fix_index(map: &mut [u8], h: &SegmentHeader, index: &[u32]) {
    for k in 0..h.index_entries as usize {
        let p = SEGMENT_HEADER_LEN + 4 * k;
        let want = index.get(k).copied().unwrap_or(0);
        if get_u32(map, p) != want {
            put_u32(map, p, want);
        }
    }
}

impl Journal {
    /// Open (or create) the journal in `config.dir` as its single writer with
    /// the system clock. Recovers from a crash: a torn tail is cut off.
    pub fn open(config: JournalConfig) -> Result<(Journal, Sequencer<SystemClock>), OpenError> {
        Self::open_with_clock(config, SystemClock)
    }

    /// [`Journal::open`] with an injected clock.
    pub fn open_with_clock<C: Clock>(
        config: JournalConfig,
        clock: C,
    ) -> Result<(Journal, Sequencer<C>), OpenError> {
        config.validate()?;
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let (lock, control, _fresh) = open_control(&dir, true)?;

        // Remove half-created segments.
        for e in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            if e.file_name().to_string_lossy().ends_with(".seg.tmp") {
                std::fs::remove_file(e.path()).map_err(io_err(&e.path()))?;
            }
        }

        let segments = list_segments(&dir)?;
        for w in segments.windows(2) {
            if w[1] != w[0] + 1 {
                return Err(OpenError::Corrupt {
                    path: dir.clone(),
                    reason: format!("segment files not contiguous ({} then {})", w[0], w[1]),
                });
            }
        }
        let sync = matches!(config.durability, crate::Durability::Sync);
        let mut active: Option<ActiveSegment> = None;
        let mut next_seq = 1u64;
        let mut last_ts = 0u64;
        let mut cut_from: Option<usize> = None; // position in `segments` to delete from
        for (pos, &index) in segments.iter().enumerate() {
            let path = segment_path(&dir, index);
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io_err(&path))?;
            let flen = f.metadata().map_err(io_err(&path))?.len();
            let mut hb = [0u8; SEGMENT_HEADER_LEN];
            let header = if flen >= SEGMENT_HEADER_LEN as u64 {
                use std::os::unix::fs::FileExt;
                f.read_exact_at(&mut hb, 0).map_err(io_err(&path))?;
                SegmentHeader::decode(&hb)
            } else {
                Err("file shorter than header".into())
            };
            let h = match header {
                Ok(h) if h.index == index && (pos == 0 || h.base_sequence == next_seq) => h,
                _ if pos > 0 => {
                    cut_from = Some(pos);
                    break;
                }
                Ok(_) => {
                    return Err(OpenError::Corrupt {
                        path,
                        reason: "segment index does not match file name".into(),
                    })
                }
                Err(reason) => return Err(OpenError::Corrupt { path, reason }),
            };
            if flen < h.segment_size {
                // A truncated file: restore its size; the lost bytes read as
                // zero and are treated as a torn tail.
                f.set_len(h.segment_size).map_err(io_err(&path))?;
            }
            // SAFETY: we hold the writer lock; readers in other processes only
            // read committed frames, which recovery never modifies.
            let mut map = unsafe { MmapOptions::new().len(h.segment_size as usize).map_mut(&f) }
                .map_err(io_err(&path))?;
            let scan = scan_segment(&map, &h);
            next_seq = scan.next_seq;
            last_ts = last_ts.max(scan.last_ts);
            fix_index(&mut map, &h, &scan.index);
            if !scan.complete {
                cut_tail(&mut map, scan.tail);
            }
            if sync {
                map.flush().map_err(io_err(&path))?;
            }
            active = Some(ActiveSegment::new(index, h, f, map, scan.tail));
            if !scan.complete {
                if pos + 1 < segments.len() {
                    cut_from = Some(pos + 1);
                }
                break;
            }
        }
        if let Some(p) = cut_from {
            for &index in &segments[p..] {
                let path = segment_path(&dir, index);
                std::fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        let first_segment = segments.first().copied().unwrap_or(0);
        let active = match active {
            Some(a) => a,
            None => {
                let (f, map) = create_segment(&dir, &config, 0, 1, sync)?;
                let h = SegmentHeader::decode(&map[..SEGMENT_HEADER_LEN]).expect("fresh header");
                let tail = h.data_offset as usize;
                ActiveSegment::new(0, h, f, map, tail)
            }
        };
        let written = next_seq - 1;
        let committed = match config.commit_policy {
            CommitPolicy::FollowWritten => written,
            CommitPolicy::Manual => control.committed().min(written),
        };
        control.store_written(written);
        control.force_committed(committed);
        // SAFETY: we hold the writer lock; pid/policy words are not atomics.
        unsafe {
            let p = control.map.as_mut_ptr();
            std::ptr::copy_nonoverlapping(
                std::process::id().to_le_bytes().as_ptr(),
                p.add(CT_PID),
                4,
            );
            let pol: u32 = match config.commit_policy {
                CommitPolicy::FollowWritten => 0,
                CommitPolicy::Manual => 1,
            };
            std::ptr::copy_nonoverlapping(pol.to_le_bytes().as_ptr(), p.add(CT_POLICY), 4);
        }

        let (publisher, receiver) =
            handoff::bounded(config.handoff_slots, config.payload_len_max as usize);
        let slots = (0..config.readers_max)
            .map(|_| CachePadded::new(AtomicU64::new(SLOT_FREE)))
            .collect();
        let shared = Arc::new(Shared {
            dir,
            read_only: false,
            commit_policy: config.commit_policy,
            written: CachePadded::new(Position::new(written)),
            committed: CachePadded::new(Position::new(committed)),
            control,
            reader_slots: slots,
            reclaim_floor: AtomicU64::new(first_segment),
            publisher: Some(publisher),
            reader_wait: config.reader_wait,
            bell: Default::default(),
            _lock: Some(lock),
        });
        let seq = Sequencer::new(
            shared.clone(),
            config,
            clock,
            receiver,
            active,
            first_segment,
            written,
        )
        .with_last_timestamp(last_ts);
        Ok((Journal { shared }, seq))
    }

    /// Open an existing journal read-only (e.g. from another process, while
    /// the writer runs or after it is gone). No recovery is performed; readers
    /// see frames up to the committed position recorded in `journal.ctl`.
    /// Readers of a read-only journal are not registered, so retention does
    /// not wait for them.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Journal, OpenError> {
        let dir = dir.as_ref().to_path_buf();
        let (_file, control, _) = open_control(&dir, false)?;
        let committed = control.committed();
        let shared = Arc::new(Shared {
            dir,
            read_only: true,
            commit_policy: CommitPolicy::FollowWritten,
            written: CachePadded::new(Position::new(control.written())),
            committed: CachePadded::new(Position::new(committed)),
            control,
            reader_slots: Box::new([]),
            reclaim_floor: AtomicU64::new(0),
            publisher: None,
            reader_wait: WaitStrategy::default(),
            bell: Default::default(),
            _lock: None,
        });
        Ok(Journal { shared })
    }

    /// A producer handle feeding the sequencer (`None` for read-only).
    pub fn publisher(&self) -> Option<Publisher> {
        self.shared.publisher.clone()
    }

    /// A reader starting at sequence `from_seq` (>= 1) with the configured
    /// default wait strategy, without checksum verification.
    pub fn reader(&self, from_seq: u64) -> Result<Reader, ReaderError> {
        self.reader_with(from_seq, self.shared.reader_wait, false)
    }

    /// A reader with an explicit wait strategy and optional per-frame checksum
    /// verification.
    pub fn reader_with(
        &self,
        from_seq: u64,
        wait: WaitStrategy,
        verify_checksums: bool,
    ) -> Result<Reader, ReaderError> {
        Reader::new(self.shared.clone(), from_seq.max(1), wait, verify_checksums)
    }

    /// The bell rung whenever the committed position moves: pass it to
    /// [`crate::IdleStrategy::wait_on`] on a thread that reads this journal.
    pub fn doorbell(&self) -> std::sync::Arc<Doorbell> {
        self.shared.bell.clone()
    }

    /// Highest sequence visible to readers.
    pub fn committed_seq(&self) -> u64 {
        self.shared.committed_seq()
    }

    /// Highest sequence appended by the sequencer.
    pub fn written_seq(&self) -> u64 {
        self.shared.written_seq()
    }

    /// Commit gate for [`CommitPolicy::Manual`]: make every frame up to `seq`
    /// visible to readers. Monotonic (a lower `seq` is a no-op). Returns the
    /// committed position afterwards.
    pub fn commit_to(&self, seq: u64) -> Result<u64, CommitError> {
        self.shared.commit_to(seq)
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Whether this handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.shared.read_only
    }
}
