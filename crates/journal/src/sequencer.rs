//! The single writer: drains the hand-off, stamps sequence and time, appends.

use crate::clock::{Clock, SystemClock};
use crate::config::{Durability, JournalConfig, RetentionPolicy};
use crate::error::{AppendError, OpenError};
use crate::format::*;
use crate::handoff::Receiver;
use crate::idle::IdleStrategy;
use crate::journal::{finish_segment, prepare_segment, Journal, Prepared, Shared};
use crate::sync::{Arc, Ordering};
use memmap2::MmapMut;
use std::fs::File;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// The segment currently being appended to.
pub(crate) struct ActiveSegment {
    pub(crate) index: u64,
    pub(crate) header: SegmentHeader,
    _file: File,
    pub(crate) map: MmapMut,
    pub(crate) tail: usize,
}

impl ActiveSegment {
    pub(crate) fn new(
        index: u64,
        header: SegmentHeader,
        file: File,
        map: MmapMut,
        tail: usize,
    ) -> Self {
        assert_eq!(map.len() as u64, header.segment_size);
        assert!(tail >= header.data_offset as usize && tail <= map.len());
        assert_eq!(tail % FRAME_ALIGN, 0);
        Self {
            index,
            header,
            _file: file,
            map,
            tail,
        }
    }
}

fn append_io(e: OpenError) -> AppendError {
    match e {
        OpenError::Io { path, source } => AppendError::Io { path, source },
        other => AppendError::Io {
            path: Default::default(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// Work for the segment helper thread.
enum Job {
    /// Create and pre-fault `<index>.seg.tmp`.
    Prepare(u64),
    /// Unmap a retired segment (page-table teardown off the hot path).
    Retire(ActiveSegment),
    /// Unlink a reclaimed segment file (freeing its pages off the hot path).
    Delete(std::path::PathBuf),
    /// Fault in, writable, `len` bytes of the active segment's mapping at `addr`, ahead of
    /// the writer (see `PREFAULT_AHEAD`). The mapping outlives the job: the segment is
    /// retired through this same queue, after it, and the helper is dropped before the
    /// active segment.
    Prefault { addr: usize, len: usize },
}

/// How far ahead of its tail the writer has the helper fault the active segment in, writable,
/// and in what steps. A segment is mapped populated for reading (the page cache holds its
/// pages), which maps each page read-only: the writer's first store to every 4 KiB page then
/// takes a write-protect fault and the file system's `page_mkwrite` on the critical path
/// (seen on a gateway I/O thread running the pipeline at saturation). Faulting the whole
/// segment in writable up front would dirty all of it with zeros (64 MiB of disk writes per
/// segment on an idle appliance); a window ahead of the tail dirties at most this much more
/// than was written. Not under `Durability::Sync`, whose `msync` should write only what each
/// batch wrote.
const PREFAULT_AHEAD: usize = 2 << 20;
const PREFAULT_STEP: usize = 1 << 20;

/// Helper thread that prepares the next segment file ahead of the roll and
/// retires / deletes old ones, so a roll on the writer thread only writes a
/// header and renames.
struct SegmentHelper {
    tx: Option<std::sync::mpsc::Sender<Job>>,
    rx: std::sync::mpsc::Receiver<Result<Prepared, OpenError>>,
    handle: Option<std::thread::JoinHandle<()>>,
    pending: Option<u64>,
}

impl SegmentHelper {
    fn start(dir: std::path::PathBuf, segment_size: u64) -> Self {
        let (tx, req) = std::sync::mpsc::channel::<Job>();
        let (done, rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("journal-segments".into())
            .spawn(move || {
                for job in req {
                    match job {
                        Job::Prepare(index) => {
                            if done
                                .send(prepare_segment(&dir, segment_size, index))
                                .is_err()
                            {
                                break;
                            }
                        }
                        Job::Retire(seg) => drop(seg),
                        Job::Prefault { addr, len } => {
                            // SAFETY: a range of a live shared mapping (see Job::Prefault);
                            // populating never changes its contents. An error (a kernel
                            // before 5.14) only leaves the faults to the writer.
                            unsafe {
                                libc::madvise(
                                    addr as *mut libc::c_void,
                                    len,
                                    libc::MADV_POPULATE_WRITE,
                                );
                            }
                        }
                        Job::Delete(path) => {
                            // NotFound is fine; other errors only delay reclamation.
                            let _ = std::fs::remove_file(path);
                        }
                    }
                }
            })
            .expect("spawn journal-segments thread");
        Self {
            tx: Some(tx),
            rx,
            handle: Some(handle),
            pending: None,
        }
    }

    fn send(&self, job: Job) -> Result<(), Job> {
        match &self.tx {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    fn request(&mut self, index: u64) {
        if self.pending.is_none() && self.send(Job::Prepare(index)).is_ok() {
            self.pending = Some(index);
        }
    }

    /// The prepared file for `index`, waiting for the helper if it is still
    /// working on it; `None` if it was not requested or preparation failed.
    fn take(&mut self, index: u64) -> Option<Prepared> {
        let pending = self.pending.take()?;
        let got = self.rx.recv().ok()?.ok()?;
        if pending == index && got.index == index {
            Some(got)
        } else {
            let _ = std::fs::remove_file(&got.tmp);
            None
        }
    }
}

impl Drop for SegmentHelper {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        while let Ok(Ok(p)) = self.rx.try_recv() {
            let _ = std::fs::remove_file(&p.tmp);
        }
    }
}

/// The journal's single writer (an agent: call [`Sequencer::do_work`] in a
/// duty cycle, or [`Sequencer::append`] directly from the owning thread).
/// Sequence numbers start at 1 and are gap-free.
pub struct Sequencer<C: Clock = SystemClock> {
    /// `None` once the hand-off was taken by [`Sequencer::take_handoff`].
    rx: Option<Receiver>,
    w: Writer<C>,
}

struct Writer<C> {
    shared: Arc<Shared>,
    cfg: JournalConfig,
    clock: C,
    /// Declared before `active`, so it is dropped (its queue drained) while the active
    /// segment is still mapped.
    helper: Option<SegmentHelper>,
    active: ActiveSegment,
    first_segment: u64,
    written: u64,
    flush_from: usize,
    index_dirty: bool,
    frames_since_flush: u32,
    last_flush: Instant,
    /// Timestamps are stamped non-decreasing: max(clock, previous), or strictly
    /// increasing (max(clock, previous + 1)) when configured.
    last_ts: u64,
    /// Offset in the active segment up to which the helper was asked to fault pages in
    /// writable (`usize::MAX`: not used).
    prefaulted_to: usize,
    /// Offset in the active segment of the last frame written, and how many frames were
    /// written since the last publication (the batch to mark).
    last_frame: usize,
    unpublished: u32,
    /// Ring the journal's doorbell on each publication (see `Sequencer::set_ring_on_publish`).
    ring: bool,
}

impl<C: Clock> std::fmt::Debug for Sequencer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequencer")
            .field("written", &self.w.written)
            .field("active_segment", &self.w.active.index)
            .field("first_segment", &self.w.first_segment)
            .finish()
    }
}

impl<C: Clock> Sequencer<C> {
    pub(crate) fn new(
        shared: Arc<Shared>,
        cfg: JournalConfig,
        clock: C,
        rx: Receiver,
        active: ActiveSegment,
        first_segment: u64,
        written: u64,
    ) -> Self {
        let tail = active.tail;
        let mut helper = cfg
            .preallocate_next
            .then(|| SegmentHelper::start(shared.dir.clone(), cfg.segment_size));
        if let Some(p) = helper.as_mut() {
            p.request(active.index + 1);
        }
        let prefaulted_to = if helper.is_some() && !matches!(cfg.durability, Durability::Sync) {
            tail
        } else {
            usize::MAX
        };
        Self {
            rx: Some(rx),
            w: Writer {
                shared,
                cfg,
                clock,
                active,
                first_segment,
                written,
                flush_from: tail,
                index_dirty: false,
                frames_since_flush: 0,
                last_flush: Instant::now(),
                last_ts: 0,
                last_frame: 0,
                unpublished: 0,
                ring: true,
                prefaulted_to,
                helper,
            },
        }
    }

    pub(crate) fn with_last_timestamp(mut self, ts: u64) -> Self {
        self.w.last_ts = ts;
        self
    }

    /// One duty cycle: drain up to `drain_batch_max` messages from the
    /// hand-off, append them, then flush (per durability) and publish the
    /// batch. Returns the number of frames appended (0 = idle).
    ///
    /// On [`AppendError::BackPressure`] the message that did not fit stays in
    /// the hand-off (nothing is lost); frames appended before it in the same
    /// call are published.
    pub fn do_work(&mut self) -> Result<usize, AppendError> {
        let mut n = 0;
        let mut err = None;
        while let Some(rx) = self.rx.as_mut() {
            if n >= self.w.cfg.drain_batch_max {
                break;
            }
            let w = &mut self.w;
            match rx.peek(|t, p| w.write_frame(t, p)) {
                None => break,
                Some(Ok(_)) => {
                    rx.release();
                    n += 1;
                }
                Some(Err(e)) => {
                    err = Some(e);
                    break;
                }
            }
        }
        if n > 0 {
            self.w.finish_batch(true)?;
        } else {
            self.w.idle_flush()?;
        }
        match err {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Append one frame directly (the owning thread is the single writer, no
    /// hand-off) and publish it. Returns its sequence number.
    pub fn append(&mut self, template_id: u16, payload: &[u8]) -> Result<u64, AppendError> {
        let seq = self.w.write_frame(template_id, payload)?;
        self.w.finish_batch(true)?;
        Ok(seq)
    }

    /// Append several frames and publish them together (one flush / commit
    /// for the batch). Returns the last sequence. Stops at the first error;
    /// frames written before it are published.
    pub fn append_batch<'a>(
        &mut self,
        frames: impl IntoIterator<Item = (u16, &'a [u8])>,
    ) -> Result<u64, AppendError> {
        let mut res = Ok(self.w.written);
        for (t, p) in frames {
            match self.w.write_frame(t, p) {
                Ok(s) => res = Ok(s),
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        self.w.finish_batch(true)?;
        res
    }

    /// Append several frames without publishing them: they become visible with the next
    /// [`Sequencer::publish`] (or any other publishing call). Returns the last sequence.
    /// Stops at the first error; the frames written before it stay written.
    pub fn write_batch<'a>(
        &mut self,
        frames: impl IntoIterator<Item = (u16, &'a [u8])>,
    ) -> Result<u64, AppendError> {
        let mut last = self.w.written;
        for (t, p) in frames {
            last = self.w.write_frame(t, p)?;
        }
        Ok(last)
    }

    /// Publishes everything written (flushing first as the durability mode asks). With
    /// `end_of_batch`, the last frame written since the previous publication is marked
    /// [`crate::FLAG_END_OF_BATCH`] (nothing is marked if no frame was written since).
    pub fn publish(&mut self, end_of_batch: bool) -> Result<(), AppendError> {
        self.w.finish_batch(end_of_batch)
    }

    /// Run the duty cycle until `stop` is set, idling with `idle` when there
    /// is no work; drains what is queued before returning. Back-pressure
    /// (a reader holding the oldest segment at `segments_max`) is waited out
    /// like idleness — unless `stop` is set, then it is returned. Other
    /// errors are returned at once.
    /// The idler is woken by the hand-off's producers when it parks.
    pub fn run(&mut self, stop: &AtomicBool, idle: &mut IdleStrategy) -> Result<(), AppendError> {
        if let Some(bell) = self.handoff_doorbell() {
            idle.wait_on(&bell);
        }
        loop {
            let n = match self.do_work() {
                Ok(n) => n,
                Err(AppendError::BackPressure { .. }) if !stop.load(Ordering::Acquire) => 0,
                Err(e) => return Err(e),
            };
            if n == 0 && stop.load(Ordering::Acquire) {
                return Ok(());
            }
            idle.idle(n);
        }
    }

    /// The bell the hand-off's producers ring (`None` once the hand-off was
    /// taken): pass it to [`IdleStrategy::wait_on`] on the sequencer's thread.
    pub fn handoff_doorbell(&self) -> Option<std::sync::Arc<crate::Doorbell>> {
        self.rx.as_ref().map(|r| r.doorbell())
    }

    /// Takes the consuming end of the hand-off away from the sequencer, for a
    /// component that must see the events before they are appended (a
    /// replication leader proposes them to its followers and appends them,
    /// through [`Sequencer::append_batch`], only once a quorum holds them).
    /// Afterwards [`Sequencer::do_work`] appends nothing; the journal's
    /// [`Publisher`](crate::Publisher)s still feed the taken receiver.
    /// `None` if it was taken before.
    pub fn take_handoff(&mut self) -> Option<Receiver> {
        self.rx.take()
    }

    /// Synchronously flush (`msync`) everything written in the active segment.
    pub fn flush(&mut self) -> Result<(), AppendError> {
        self.w.flush_sync()
    }

    /// Whether each publication rings the journal's doorbell (default true). Off, readers
    /// parked on it are woken only when the owner rings `Journal::doorbell` itself: so a
    /// thread that publishes and then has more to do first (the gateway's I/O thread routing
    /// the results it just matched) does not pay for the wake-ups before its own work.
    pub fn set_ring_on_publish(&mut self, ring: bool) {
        self.w.ring = ring;
    }

    /// Highest sequence written.
    pub fn written_seq(&self) -> u64 {
        self.w.written
    }

    /// Index of the active segment.
    pub fn active_segment(&self) -> u64 {
        self.w.active.index
    }

    /// Index of the oldest segment not yet reclaimed.
    pub fn first_segment(&self) -> u64 {
        self.w.first_segment
    }

    /// A handle on the journal this sequencer writes.
    pub fn journal(&self) -> Journal {
        Journal {
            shared: self.w.shared.clone(),
        }
    }
}

impl<C> Writer<C>
where
    C: Clock,
{
    #[inline]
    fn write_frame(&mut self, template_id: u16, payload: &[u8]) -> Result<u64, AppendError> {
        if payload.len() > self.cfg.payload_len_max as usize {
            return Err(AppendError::TooLarge {
                len: payload.len(),
                max: self.cfg.payload_len_max as usize,
            });
        }
        let frame_len = FRAME_HEADER_LEN + payload.len();
        let need = align_up(frame_len, FRAME_ALIGN);
        if self.active.tail + need > self.active.map.len() {
            self.roll()?;
        }
        if self.active.tail + PREFAULT_AHEAD > self.prefaulted_to {
            self.prefault_ahead();
        }
        let seg = &mut self.active;
        let off = seg.tail;
        assert!(off + need <= seg.map.len(), "frame must fit after roll");
        let seq = self.written + 1;
        let floor = self.last_ts + u64::from(self.cfg.strictly_increasing_timestamps);
        let ts = self.clock.now_ns().max(floor);
        self.last_ts = ts;

        let mut hdr = [0u8; FRAME_HEADER_LEN];
        put_u32(&mut hdr, FH_LEN, frame_len as u32);
        put_u16(&mut hdr, FH_TEMPLATE, template_id);
        put_u16(&mut hdr, FH_FLAGS, 0);
        put_u64(&mut hdr, FH_SEQ, seq);
        put_u64(&mut hdr, FH_TS, ts);
        let crc = frame_checksum(&hdr, payload);
        put_u32(&mut hdr, FH_CRC, crc);

        // Everything except frame_length first...
        seg.map[off + 4..off + FRAME_HEADER_LEN].copy_from_slice(&hdr[4..]);
        seg.map[off + FRAME_HEADER_LEN..off + frame_len].copy_from_slice(payload);
        // ...sparse index entry (before the commit marker)...
        let rel = seq - seg.header.base_sequence;
        if rel % seg.header.index_stride as u64 == 0 {
            let k = rel / seg.header.index_stride as u64;
            if k < seg.header.index_entries as u64 {
                put_u32(
                    &mut seg.map,
                    SEGMENT_HEADER_LEN + 4 * k as usize,
                    off as u32,
                );
                self.index_dirty = true;
            }
        }
        // ...then frame_length with Release: the commit marker.
        // SAFETY: `off` is 8-aligned inside the mapping; the word is only
        // accessed atomically by readers.
        let marker =
            unsafe { &*(seg.map.as_mut_ptr().add(off) as *const std::sync::atomic::AtomicU32) };
        marker.store(frame_len as u32, Ordering::Release);

        seg.tail = off + need;
        self.written = seq;
        self.frames_since_flush += 1;
        self.last_frame = off;
        self.unpublished += 1;
        Ok(seq)
    }

    /// Flush per durability, then publish written (and committed unless the
    /// commit policy is Manual).
    fn finish_batch(&mut self, end_of_batch: bool) -> Result<(), AppendError> {
        if end_of_batch && self.unpublished > 0 {
            self.mark_end_of_batch();
        }
        self.unpublished = 0;
        match self.cfg.durability {
            Durability::Memory => {}
            Durability::Sync => self.flush_sync()?,
            Durability::AsyncFlush {
                frames_max,
                interval_max,
            } => {
                if self.frames_since_flush >= frames_max
                    || self.last_flush.elapsed() >= interval_max
                {
                    self.flush_async()?;
                }
            }
        }
        self.shared.publish_written(self.written, self.ring);
        Ok(())
    }

    /// Sets [`FLAG_END_OF_BATCH`] on the last frame written (not yet published: no reader
    /// looks at it) and rewrites its checksum, which covers the flags.
    fn mark_end_of_batch(&mut self) {
        let off = self.last_frame;
        let map = &mut self.active.map;
        let len = get_u32(&map[off..off + FRAME_HEADER_LEN], FH_LEN) as usize;
        let mut hdr = [0u8; FRAME_HEADER_LEN];
        hdr.copy_from_slice(&map[off..off + FRAME_HEADER_LEN]);
        let flags = get_u16(&hdr, FH_FLAGS) | FLAG_END_OF_BATCH;
        put_u16(&mut hdr, FH_FLAGS, flags);
        let crc = frame_checksum(&hdr, &map[off + FRAME_HEADER_LEN..off + len]);
        put_u16(map, off + FH_FLAGS, flags);
        put_u32(map, off + FH_CRC, crc);
    }

    fn idle_flush(&mut self) -> Result<(), AppendError> {
        if let Durability::AsyncFlush { interval_max, .. } = self.cfg.durability {
            if self.frames_since_flush > 0 && self.last_flush.elapsed() >= interval_max {
                self.flush_async()?;
            }
        }
        Ok(())
    }

    fn flush_range(&mut self, sync: bool) -> Result<(), AppendError> {
        let seg = &mut self.active;
        let io = |source| AppendError::Io {
            path: segment_path(&self.shared.dir, seg.index),
            source,
        };
        if self.index_dirty {
            let end = seg.header.data_offset as usize;
            if sync {
                seg.map.flush_range(0, end).map_err(io)?;
            } else {
                seg.map.flush_async_range(0, end).map_err(io)?;
            }
            self.index_dirty = false;
        }
        let from = self.flush_from.min(seg.tail);
        if seg.tail > from {
            if sync {
                seg.map.flush_range(from, seg.tail - from).map_err(io)?;
            } else {
                seg.map
                    .flush_async_range(from, seg.tail - from)
                    .map_err(io)?;
            }
        }
        self.flush_from = seg.tail;
        self.frames_since_flush = 0;
        self.last_flush = Instant::now();
        Ok(())
    }

    fn flush_sync(&mut self) -> Result<(), AppendError> {
        self.flush_range(true)
    }

    fn flush_async(&mut self) -> Result<(), AppendError> {
        self.flush_range(false)
    }

    /// Delete segments that every registered reader has passed and that
    /// retention no longer keeps, given that `new_index` is about to exist.
    fn reclaim(&mut self, new_index: u64) -> Result<(), AppendError> {
        let keep_from = match self.cfg.retention {
            RetentionPolicy::KeepAll => return Ok(()),
            RetentionPolicy::KeepLast(n) => (new_index + 1).saturating_sub(n),
        };
        if keep_from <= self.first_segment {
            return Ok(());
        }
        // Publish the floor first (SeqCst), then read the reader slots
        // (SeqCst): a reader registering concurrently either is seen here or
        // sees the new floor and backs off (see Reader::new).
        self.shared
            .reclaim_floor
            .fetch_max(keep_from, Ordering::SeqCst);
        let upto = keep_from.min(self.shared.min_reader_segment());
        // Never delete the active segment.
        let upto = upto.min(self.active.index);
        while self.first_segment < upto {
            let path = segment_path(&self.shared.dir, self.first_segment);
            let path = match self
                .helper
                .as_ref()
                .map(|h| h.send(Job::Delete(path.clone())))
            {
                Some(Ok(())) => None,
                _ => Some(path),
            };
            if let Some(path) = path {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(AppendError::Io { path, source }),
                }
            }
            self.first_segment += 1;
        }
        Ok(())
    }

    /// Asks the helper to fault in the next step of the active segment ahead of the tail.
    #[cold]
    fn prefault_ahead(&mut self) {
        let len_total = self.active.map.len();
        let Some(h) = self.helper.as_ref() else {
            self.prefaulted_to = usize::MAX;
            return;
        };
        let from = self.prefaulted_to.max(self.active.tail) & !4095;
        if from >= len_total {
            self.prefaulted_to = usize::MAX;
            return;
        }
        let len = PREFAULT_STEP.min(len_total - from);
        let addr = self.active.map.as_ptr() as usize + from;
        if h.send(Job::Prefault { addr, len }).is_err() {
            self.prefaulted_to = usize::MAX;
            return;
        }
        self.prefaulted_to = from + len;
    }

    fn roll(&mut self) -> Result<(), AppendError> {
        let new_index = self.active.index + 1;
        self.reclaim(new_index)?;
        let live_after = new_index - self.first_segment + 1;
        if live_after > self.cfg.segments_max {
            return Err(AppendError::BackPressure {
                segments: live_after - 1,
                max: self.cfg.segments_max,
            });
        }
        let sync = matches!(self.cfg.durability, Durability::Sync);
        let prepared = match self.helper.as_mut().and_then(|p| p.take(new_index)) {
            Some(p) => p,
            None => prepare_segment(&self.shared.dir, self.cfg.segment_size, new_index)
                .map_err(append_io)?,
        };
        let (file, map) = finish_segment(
            &self.shared.dir,
            &self.cfg,
            prepared,
            self.written + 1,
            sync,
        )
        .map_err(append_io)?;
        if let Some(p) = self.helper.as_mut() {
            p.request(new_index + 1);
        }
        // Padding marker in the old segment so readers (and recovery) know it
        // is complete.
        let seg = &mut self.active;
        let remaining = seg.map.len() - seg.tail;
        if remaining >= FRAME_HEADER_LEN {
            let off = seg.tail;
            let mut hdr = [0u8; FRAME_HEADER_LEN];
            put_u32(&mut hdr, FH_LEN, remaining as u32);
            put_u16(&mut hdr, FH_FLAGS, FLAG_PADDING);
            let crc = frame_checksum(&hdr, &[]);
            put_u32(&mut hdr, FH_CRC, crc);
            seg.map[off + 4..off + FRAME_HEADER_LEN].copy_from_slice(&hdr[4..]);
            // SAFETY: 8-aligned word inside the mapping, accessed atomically.
            let marker =
                unsafe { &*(seg.map.as_mut_ptr().add(off) as *const std::sync::atomic::AtomicU32) };
            marker.store(remaining as u32, Ordering::Release);
            seg.tail = seg.map.len();
        }
        match self.cfg.durability {
            Durability::Memory => {}
            Durability::Sync => self.flush_sync()?,
            Durability::AsyncFlush { .. } => self.flush_async()?,
        }
        let header =
            SegmentHeader::decode(&map[..SEGMENT_HEADER_LEN]).expect("fresh segment header");
        let tail = header.data_offset as usize;
        let old = std::mem::replace(
            &mut self.active,
            ActiveSegment::new(new_index, header, file, map, tail),
        );
        if let Some(h) = self.helper.as_ref() {
            let _ = h.send(Job::Retire(old));
        }
        self.flush_from = tail;
        self.index_dirty = false;
        self.prefaulted_to = if self.helper.is_some() && !sync {
            tail
        } else {
            usize::MAX
        };
        Ok(())
    }
}

impl<C: Clock> Drop for Sequencer<C> {
    fn drop(&mut self) {
        let _ = match self.w.cfg.durability {
            Durability::Memory => Ok(()),
            Durability::Sync => self.w.flush_sync(),
            Durability::AsyncFlush { .. } => self.w.flush_async(),
        };
    }
}
