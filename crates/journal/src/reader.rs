//! Lock-free readers with their own cursor and read-only segment mappings.

use crate::error::{OpenError, ReadError, ReaderError};
use crate::format::*;
use crate::idle::{IdleStrategy, WaitStrategy};
use crate::journal::{io_err, list_segments, read_segment_header, Shared, SLOT_FREE};
use crate::sync::{Arc, Ordering};
use memmap2::{Mmap, MmapOptions};
use std::fs::File;
use std::time::{Duration, Instant};

/// A zero-copy view of one committed frame, borrowed from the reader's
/// mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameView<'a> {
    /// Gap-free sequence number (from 1).
    pub sequence: u64,
    /// Timestamp stamped by the sequencer's clock.
    pub timestamp_ns: u64,
    /// SBE template id (opaque to the journal).
    pub template_id: u16,
    /// Payload bytes (opaque SBE message).
    pub payload: &'a [u8],
    /// The frame ends a batch ([`crate::FLAG_END_OF_BATCH`]).
    pub end_of_batch: bool,
}

struct ReadSegment {
    index: u64,
    map: Mmap,
}

impl ReadSegment {
    fn open(dir: &std::path::Path, index: u64) -> Result<(Self, SegmentHeader), OpenError> {
        let h = read_segment_header(dir, index)?;
        let path = segment_path(dir, index);
        let f = File::open(&path).map_err(io_err(&path))?;
        // Not populated: mapping all of a segment's pages up front (MAP_POPULATE) stalled the
        // reader's thread ~2.7 ms per 64 MiB at every roll (the router's reports, the
        // publisher's packets waited behind it); faulted lazily, each fault maps the 64 KiB
        // around it (fault-around): one fault per 64 KiB read, a few hundred frames.
        // SAFETY: read-only shared mapping; we only read committed frames,
        // which the writer never modifies afterwards.
        let map = unsafe { MmapOptions::new().len(h.segment_size as usize).map(&f) }
            .map_err(io_err(&path))?;
        Ok((Self { index, map }, h))
    }

    #[inline]
    fn bytes(&self, off: usize, len: usize) -> &[u8] {
        &self.map[off..off + len]
    }
}

/// A reader with its own cursor. In-process readers are registered (retention
/// never deletes a segment they have not passed); readers of a read-only
/// journal are not.
pub struct Reader {
    shared: Arc<Shared>,
    slot: Option<usize>,
    seg: ReadSegment,
    offset: usize,
    pub(crate) next_seq: u64,
    skip_until: u64,
    committed_cache: u64,
    idle: IdleStrategy,
    verify: bool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("next_seq", &self.next_seq)
            .field("segment", &self.seg.index)
            .field("offset", &self.offset)
            .field("registered", &self.slot.is_some())
            .finish()
    }
}

fn find_segment(dir: &std::path::Path, from_seq: u64) -> Result<(u64, u64), ReaderError> {
    // Retention may unlink a listed segment while we look at it: list again.
    let mut attempts = 0;
    loop {
        match find_segment_once(dir, from_seq) {
            Err(ReaderError::Open(OpenError::Io { source, .. }))
                if source.kind() == std::io::ErrorKind::NotFound && attempts < 8 =>
            {
                attempts += 1;
            }
            other => return other,
        }
    }
}

fn find_segment_once(dir: &std::path::Path, from_seq: u64) -> Result<(u64, u64), ReaderError> {
    let segs = list_segments(dir)?;
    let Some(&first) = segs.first() else {
        return Err(ReaderError::Open(OpenError::NotFound(dir.to_path_buf())));
    };
    // Binary search for the last segment whose base <= from_seq.
    let (mut lo, mut hi) = (0usize, segs.len());
    let oldest = read_segment_header(dir, first)?.base_sequence;
    if from_seq < oldest {
        return Err(ReaderError::Trimmed {
            requested: from_seq,
            oldest,
        });
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if read_segment_header(dir, segs[mid])?.base_sequence <= from_seq {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok((segs[lo], oldest))
}

impl Reader {
    pub(crate) fn new(
        shared: Arc<Shared>,
        from_seq: u64,
        wait: WaitStrategy,
        verify: bool,
    ) -> Result<Self, ReaderError> {
        let (index, oldest) = find_segment(&shared.dir, from_seq)?;
        let mut slot = None;
        if !shared.read_only {
            // Claim a slot at `index` (SeqCst), then check the reclaim floor
            // (SeqCst). Either the writer's reclaim sees our slot, or we see
            // its raised floor and give up. See docs/journal-format.md.
            let i = shared
                .reader_slots
                .iter()
                .position(|s| {
                    s.compare_exchange(SLOT_FREE, index, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                })
                .ok_or(ReaderError::TooManyReaders(shared.reader_slots.len()))?;
            if shared.reclaim_floor.load(Ordering::SeqCst) > index {
                shared.reader_slots[i].store(SLOT_FREE, Ordering::Release);
                return Err(ReaderError::Trimmed {
                    requested: from_seq,
                    oldest,
                });
            }
            slot = Some(i);
        }
        let release = |slot: Option<usize>| {
            if let Some(i) = slot {
                shared.reader_slots[i].store(SLOT_FREE, Ordering::Release);
            }
        };
        let (seg, h) = match ReadSegment::open(&shared.dir, index) {
            Ok(x) => x,
            Err(OpenError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                release(slot);
                return Err(ReaderError::Trimmed {
                    requested: from_seq,
                    oldest,
                });
            }
            Err(e) => {
                release(slot);
                return Err(e.into());
            }
        };
        // Position with the sparse index: the last entry at or before
        // from_seq that is committed (hence written).
        let committed = shared.committed_seq();
        let mut offset = h.data_offset as usize;
        let mut next_seq = h.base_sequence;
        let target = from_seq.min(committed);
        if target >= h.base_sequence {
            let stride = h.index_stride as u64;
            let mut k = ((target - h.base_sequence) / stride).min(h.index_entries as u64 - 1);
            loop {
                let at = SEGMENT_HEADER_LEN + 4 * k as usize;
                let e = get_u32(seg.bytes(at, 4), 0) as usize;
                if e != 0
                    && e >= h.data_offset as usize
                    && e < h.segment_size as usize
                    && e % FRAME_ALIGN == 0
                {
                    offset = e;
                    next_seq = h.base_sequence + k * stride;
                    break;
                }
                if k == 0 {
                    break;
                }
                k -= 1;
            }
        }
        Ok(Self {
            shared,
            slot,
            seg,
            offset,
            next_seq,
            skip_until: from_seq,
            committed_cache: committed,
            idle: IdleStrategy::new(wait),
            verify,
        })
    }

    /// Sequence of the next frame this reader will return.
    pub fn next_sequence(&self) -> u64 {
        self.next_seq.max(self.skip_until)
    }

    /// Whether this reader holds a registration slot.
    pub fn is_registered(&self) -> bool {
        self.slot.is_some()
    }

    fn advance_segment(&mut self) -> Result<(), ReadError> {
        let next = self.seg.index + 1;
        let (seg, h) = match ReadSegment::open(&self.shared.dir, next) {
            Ok(x) => x,
            Err(OpenError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(ReadError::SegmentMissing(next))
            }
            Err(e) => return Err(e.into()),
        };
        if h.base_sequence != self.next_seq {
            return Err(ReadError::Corrupt {
                seq: self.next_seq,
                segment: next,
                offset: 0,
                reason: "segment base sequence does not continue the previous segment",
            });
        }
        if let Some(i) = self.slot {
            self.shared.reader_slots[i].store(next, Ordering::Release);
        }
        self.seg = seg;
        self.offset = h.data_offset as usize;
        Ok(())
    }

    /// Locate the next committed frame; returns (offset, frame_length) or None.
    fn locate(&mut self) -> Result<Option<(usize, usize)>, ReadError> {
        loop {
            if self.next_seq > self.committed_cache {
                self.committed_cache = self.shared.committed_seq();
                if self.next_seq > self.committed_cache {
                    return Ok(None);
                }
            }
            let size = self.seg.map.len();
            if self.offset + FRAME_HEADER_LEN > size {
                self.advance_segment()?;
                continue;
            }
            // SAFETY: 8-aligned u32 inside the mapping; only ever accessed
            // atomically by the writer.
            let len = unsafe {
                (*(self.seg.map.as_ptr().add(self.offset) as *const std::sync::atomic::AtomicU32))
                    .load(Ordering::Acquire)
            } as usize;
            let corrupt = |reason| ReadError::Corrupt {
                seq: self.next_seq,
                segment: self.seg.index,
                offset: self.offset as u64,
                reason,
            };
            if len < FRAME_HEADER_LEN || self.offset + len > size {
                return Err(corrupt("committed frame has an invalid length"));
            }
            let fh = FrameHeader::decode(self.seg.bytes(self.offset, FRAME_HEADER_LEN));
            if fh.flags & FLAG_PADDING != 0 {
                self.advance_segment()?;
                continue;
            }
            if fh.sequence != self.next_seq {
                return Err(corrupt("sequence out of order"));
            }
            if self.verify {
                let hdr = self.seg.bytes(self.offset, FRAME_HEADER_LEN);
                let payload = self
                    .seg
                    .bytes(self.offset + FRAME_HEADER_LEN, len - FRAME_HEADER_LEN);
                if frame_checksum(hdr, payload) != fh.checksum {
                    return Err(corrupt("checksum mismatch"));
                }
            }
            let off = self.offset;
            self.offset += align_up(len, FRAME_ALIGN);
            self.next_seq += 1;
            if self.next_seq <= self.skip_until {
                continue; // positioning: skip frames before from_seq
            }
            return Ok(Some((off, len)));
        }
    }

    fn view(&self, off: usize, len: usize) -> FrameView<'_> {
        let fh = FrameHeader::decode(self.seg.bytes(off, FRAME_HEADER_LEN));
        FrameView {
            sequence: fh.sequence,
            timestamp_ns: fh.timestamp_ns,
            template_id: fh.template_id,
            end_of_batch: fh.flags & FLAG_END_OF_BATCH != 0,
            payload: self
                .seg
                .bytes(off + FRAME_HEADER_LEN, len - FRAME_HEADER_LEN),
        }
    }

    /// Whether [`Reader::poll`] would return a frame now (a committed frame
    /// at or after the reader's position), without reading it.
    #[inline]
    pub fn has_next(&self) -> bool {
        self.shared.committed_seq() >= self.next_sequence()
    }

    /// Non-blocking: the next committed frame, or `None` if the reader is
    /// caught up.
    #[inline]
    pub fn poll(&mut self) -> Result<Option<FrameView<'_>>, ReadError> {
        match self.locate()? {
            Some((off, len)) => Ok(Some(self.view(off, len))),
            None => Ok(None),
        }
    }

    /// Blocking: wait (with this reader's wait strategy) for the next frame.
    pub fn next_blocking(&mut self) -> Result<FrameView<'_>, ReadError> {
        loop {
            if let Some((off, len)) = self.locate()? {
                self.idle.reset();
                return Ok(self.view(off, len));
            }
            self.idle.idle(0);
        }
    }

    /// Wait up to `timeout` for the next frame.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<FrameView<'_>, ReadError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((off, len)) = self.locate()? {
                self.idle.reset();
                return Ok(self.view(off, len));
            }
            if Instant::now() >= deadline {
                return Err(ReadError::Timeout);
            }
            self.idle.idle(0);
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            self.shared.reader_slots[i].store(SLOT_FREE, Ordering::Release);
        }
    }
}
