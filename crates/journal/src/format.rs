//! On-disk layout constants and (de)serialisation helpers.
//! The authoritative description is `docs/journal-format.md`.

use std::path::{Path, PathBuf};

/// Segment file magic (bytes 0..8).
pub const SEGMENT_MAGIC: [u8; 8] = *b"XGJRNSEG";
/// Control file magic (bytes 0..8).
pub const CONTROL_MAGIC: [u8; 8] = *b"XGJRNCTL";
/// On-disk format version.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes in the fixed segment header (the sparse index follows it).
pub const SEGMENT_HEADER_LEN: usize = 64;
/// Bytes in a frame header.
pub const FRAME_HEADER_LEN: usize = 32;
/// Frame alignment.
pub const FRAME_ALIGN: usize = 8;
/// Size of the control file.
pub const CONTROL_LEN: usize = 4096;
/// Page granularity used to place the first frame.
pub const PAGE: usize = 4096;
/// Frame flag: padding to the end of the segment, not a message.
pub const FLAG_PADDING: u16 = 0x0001;
/// Frame flag: the last frame of a batch the writer published at once (the sequencer's drain of
/// its hand-off, one [`crate::Sequencer::append_batch`], or what a writer marked with
/// [`crate::Sequencer::publish`]). Part of the journal, so readers that group frames by it
/// (the market-data publisher's packets) group them the same way on every replay and replica.
pub const FLAG_END_OF_BATCH: u16 = 0x0002;
/// Template id of a frame that carries no message (empty payload) and exists to hold
/// [`FLAG_END_OF_BATCH`] where a batch's last event produced nothing else to mark (the
/// matching agent writes one when the last inbound event of a batch has no outputs). Readers
/// skip it like any template they do not handle.
pub const TEMPLATE_BATCH_END: u16 = 0;
/// Control file name inside the journal directory.
pub const CONTROL_FILE: &str = "journal.ctl";

// Segment header field offsets.
pub(crate) const SH_VERSION: usize = 8;
pub(crate) const SH_HEADER_LEN: usize = 12;
pub(crate) const SH_INDEX: usize = 16;
pub(crate) const SH_BASE_SEQ: usize = 24;
pub(crate) const SH_SEGMENT_SIZE: usize = 32;
pub(crate) const SH_DATA_OFFSET: usize = 40;
pub(crate) const SH_INDEX_STRIDE: usize = 44;
pub(crate) const SH_INDEX_ENTRIES: usize = 48;
pub(crate) const SH_ALIGN: usize = 52;
pub(crate) const SH_CRC: usize = 60;

// Frame header field offsets.
pub(crate) const FH_LEN: usize = 0;
pub(crate) const FH_TEMPLATE: usize = 4;
pub(crate) const FH_FLAGS: usize = 6;
pub(crate) const FH_SEQ: usize = 8;
pub(crate) const FH_TS: usize = 16;
pub(crate) const FH_CRC: usize = 24;
pub(crate) const FH_RESERVED: usize = 28;

// Control file offsets.
pub(crate) const CT_VERSION: usize = 8;
pub(crate) const CT_WRITTEN: usize = 16;
pub(crate) const CT_COMMITTED: usize = 24;
pub(crate) const CT_PID: usize = 32;
pub(crate) const CT_POLICY: usize = 36;

#[inline]
pub(crate) const fn align_up(v: usize, a: usize) -> usize {
    (v + a - 1) & !(a - 1)
}

#[inline]
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
#[inline]
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
#[inline]
pub(crate) fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
#[inline]
pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Frame checksum: CRC-32 (IEEE, as in zlib) over header bytes 0..24, header
/// bytes 28..32, then the payload. `frame_length` (bytes 0..4) is included
/// with its final value even though it is stored last.
#[inline]
pub fn frame_checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[0..FH_CRC]);
    h.update(&header[FH_RESERVED..FRAME_HEADER_LEN]);
    h.update(payload);
    h.finalize()
}

/// Data offset (first frame) for an index capacity.
pub(crate) fn data_offset(index_entries: u32) -> usize {
    align_up(SEGMENT_HEADER_LEN + 4 * index_entries as usize, PAGE)
}

/// Parsed segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Segment index (0, 1, 2, ... in file-name order).
    pub index: u64,
    /// Sequence of the first frame stored in the segment.
    pub base_sequence: u64,
    /// Total file size in bytes.
    pub segment_size: u64,
    /// Offset of the first frame.
    pub data_offset: u32,
    /// Sparse index stride (frames per entry).
    pub index_stride: u32,
    /// Sparse index capacity (entries).
    pub index_entries: u32,
}

impl SegmentHeader {
    pub(crate) fn encode(&self, b: &mut [u8]) {
        b[..SEGMENT_HEADER_LEN].fill(0);
        b[0..8].copy_from_slice(&SEGMENT_MAGIC);
        put_u32(b, SH_VERSION, FORMAT_VERSION);
        put_u32(b, SH_HEADER_LEN, SEGMENT_HEADER_LEN as u32);
        put_u64(b, SH_INDEX, self.index);
        put_u64(b, SH_BASE_SEQ, self.base_sequence);
        put_u64(b, SH_SEGMENT_SIZE, self.segment_size);
        put_u32(b, SH_DATA_OFFSET, self.data_offset);
        put_u32(b, SH_INDEX_STRIDE, self.index_stride);
        put_u32(b, SH_INDEX_ENTRIES, self.index_entries);
        put_u32(b, SH_ALIGN, FRAME_ALIGN as u32);
        let crc = crc32fast::hash(&b[0..SH_CRC]);
        put_u32(b, SH_CRC, crc);
    }

    /// Parse and validate a segment header.
    pub(crate) fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() < SEGMENT_HEADER_LEN {
            return Err("file shorter than the segment header".into());
        }
        if b[0..8] != SEGMENT_MAGIC {
            return Err("bad magic".into());
        }
        if crc32fast::hash(&b[0..SH_CRC]) != get_u32(b, SH_CRC) {
            return Err("segment header checksum mismatch".into());
        }
        let v = get_u32(b, SH_VERSION);
        if v != FORMAT_VERSION {
            return Err(format!("unsupported format version {v}"));
        }
        if get_u32(b, SH_HEADER_LEN) as usize != SEGMENT_HEADER_LEN
            || get_u32(b, SH_ALIGN) as usize != FRAME_ALIGN
        {
            return Err("unsupported header length or alignment".into());
        }
        let h = Self {
            index: get_u64(b, SH_INDEX),
            base_sequence: get_u64(b, SH_BASE_SEQ),
            segment_size: get_u64(b, SH_SEGMENT_SIZE),
            data_offset: get_u32(b, SH_DATA_OFFSET),
            index_stride: get_u32(b, SH_INDEX_STRIDE),
            index_entries: get_u32(b, SH_INDEX_ENTRIES),
        };
        if h.base_sequence == 0
            || h.index_stride == 0
            || h.data_offset as usize != data_offset(h.index_entries)
            || h.segment_size < h.data_offset as u64 + FRAME_HEADER_LEN as u64
            || h.segment_size % FRAME_ALIGN as u64 != 0
            || h.segment_size > u32::MAX as u64
        {
            return Err("inconsistent segment header fields".into());
        }
        Ok(h)
    }
}

/// Decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub frame_length: u32,
    pub template_id: u16,
    pub flags: u16,
    pub sequence: u64,
    pub timestamp_ns: u64,
    pub checksum: u32,
    pub reserved: u32,
}

impl FrameHeader {
    #[inline]
    pub(crate) fn decode(b: &[u8]) -> Self {
        Self {
            frame_length: get_u32(b, FH_LEN),
            template_id: get_u16(b, FH_TEMPLATE),
            flags: get_u16(b, FH_FLAGS),
            sequence: get_u64(b, FH_SEQ),
            timestamp_ns: get_u64(b, FH_TS),
            checksum: get_u32(b, FH_CRC),
            reserved: get_u32(b, FH_RESERVED),
        }
    }
}

/// File name of segment `index`.
pub fn segment_file_name(index: u64) -> String {
    format!("{index:020}.seg")
}

/// Path of segment `index` in `dir`.
pub fn segment_path(dir: &Path, index: u64) -> PathBuf {
    dir.join(segment_file_name(index))
}

/// Parse a segment file name back into its index.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != 20 || !stem.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_roundtrip_and_rejects_corruption() {
        let h = SegmentHeader {
            index: 7,
            base_sequence: 1234,
            segment_size: 1 << 20,
            data_offset: data_offset(256) as u32,
            index_stride: 64,
            index_entries: 256,
        };
        let mut b = [0u8; 64];
        h.encode(&mut b);
        assert_eq!(SegmentHeader::decode(&b).unwrap(), h);
        b[20] ^= 1;
        assert!(SegmentHeader::decode(&b).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(segment_file_name(3), "00000000000000000003.seg");
        assert_eq!(parse_segment_name(&segment_file_name(42)), Some(42));
        assert_eq!(parse_segment_name("00000000000000000003.seg.tmp"), None);
        assert_eq!(parse_segment_name("x.seg"), None);
    }
}
