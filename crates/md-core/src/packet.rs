//! MDP 3.0-style packet framing.
//!
//! ```text
//! offset 0  u32 LE  sequence number (per channel, counts packets, from 1; 0 = control answer)
//! offset 4  u64 LE  sending time, ns since the Unix epoch
//! offset 12 repeated: u16 LE message size (counting these 2 bytes) + the SBE message
//!           (8-byte header + body)
//! ```
//!
//! A packet whose first message is a `Heartbeat` is a heartbeat packet: the heartbeat travels
//! alone, and the packet is not part of the channel's sequence (its sequence number is the one
//! the channel's next data packet will carry, as a MoldUDP64 heartbeat carries the next
//! sequence number with a message count of 0). See [`is_heartbeat_packet`].

/// Bytes before the first message.
pub const PACKET_HEADER_LEN: usize = 12;
/// Bytes of the size field before each message.
pub const MSG_SIZE_LEN: usize = 2;
/// The smallest SBE message: its 8-byte header.
pub const SBE_HEADER_LEN: usize = 8;

/// Template id of the `Heartbeat` message (`sbe-schemas/market-data.xml`).
const HEARTBEAT_TEMPLATE_ID: u16 = sbe_market_data::heartbeat_codec::SBE_TEMPLATE_ID;

/// Whether `packet` is a heartbeat packet (its first message is a `Heartbeat` of our schema):
/// such a packet does not consume a sequence number; its header names the number of the
/// channel's next data packet. Reads only the first message's header; never panics.
pub fn is_heartbeat_packet(packet: &[u8]) -> bool {
    let Ok((_, mut msgs)) = PacketMessages::new(packet) else {
        return false;
    };
    match msgs.next() {
        Some(Ok(m)) => {
            // SBE header: blockLength, templateId, schemaId, version (u16 LE each); the
            // iterator guarantees at least the 8 header bytes.
            let template = u16::from_le_bytes([m[2], m[3]]);
            let schema = u16::from_le_bytes([m[4], m[5]]);
            template == HEARTBEAT_TEMPLATE_ID && schema == sbe_market_data::SBE_SCHEMA_ID
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    pub seq: u32,
    pub sending_time_ns: u64,
}

/// Why bytes from the network are not a packet (or a message in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    #[error("packet of {0} bytes is shorter than its 12-byte header")]
    ShortHeader(usize),
    #[error("message size {size} at offset {offset} is below 10 or runs past the packet end")]
    BadMessageSize { offset: usize, size: usize },
}

impl PacketHeader {
    /// Reads the header; never panics.
    pub fn parse(buf: &[u8]) -> Result<PacketHeader, PacketError> {
        if buf.len() < PACKET_HEADER_LEN {
            return Err(PacketError::ShortHeader(buf.len()));
        }
        let seq = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let mut t = [0_u8; 8];
        t.copy_from_slice(&buf[4..12]);
        Ok(PacketHeader {
            seq,
            sending_time_ns: u64::from_le_bytes(t),
        })
    }
}

/// Iterates the SBE messages of a packet (each without its size field). A malformed size ends
/// the iteration with one error.
#[derive(Debug, Clone)]
pub struct PacketMessages<'a> {
    buf: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> PacketMessages<'a> {
    /// The messages of `packet` (a whole packet, header included).
    pub fn new(packet: &'a [u8]) -> Result<(PacketHeader, PacketMessages<'a>), PacketError> {
        let header = PacketHeader::parse(packet)?;
        Ok((
            header,
            PacketMessages {
                buf: packet,
                offset: PACKET_HEADER_LEN,
                failed: false,
            },
        ))
    }
}

impl<'a> Iterator for PacketMessages<'a> {
    type Item = Result<&'a [u8], PacketError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.offset..];
        if rest.len() < MSG_SIZE_LEN {
            self.failed = true;
            return Some(Err(PacketError::BadMessageSize {
                offset: self.offset,
                size: rest.len(),
            }));
        }
        let size = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        if size < MSG_SIZE_LEN + SBE_HEADER_LEN || size > rest.len() {
            self.failed = true;
            return Some(Err(PacketError::BadMessageSize {
                offset: self.offset,
                size,
            }));
        }
        self.offset += size;
        Some(Ok(&rest[MSG_SIZE_LEN..size]))
    }
}

/// Builds one packet at a time in a buffer allocated once, up to `size_max` bytes.
#[derive(Debug, Clone)]
pub struct PacketBuilder {
    buf: Vec<u8>,
    size_max: usize,
    messages: usize,
}

impl PacketBuilder {
    /// `size_max` is the largest datagram (header included), at least 64 and at most 65_507.
    pub fn new(size_max: usize) -> PacketBuilder {
        assert!(size_max >= 64, "packet_size_max {size_max} below 64");
        assert!(
            size_max <= 65_507,
            "packet_size_max {size_max} above a UDP datagram"
        );
        let mut buf = Vec::with_capacity(size_max);
        buf.resize(PACKET_HEADER_LEN, 0);
        PacketBuilder {
            buf,
            size_max,
            messages: 0,
        }
    }

    pub fn size_max(&self) -> usize {
        self.size_max
    }

    /// Room left for one message body (after its size field).
    pub fn room(&self) -> usize {
        self.size_max
            .saturating_sub(self.buf.len())
            .saturating_sub(MSG_SIZE_LEN)
    }

    /// The largest message any packet can carry.
    pub fn message_len_max(&self) -> usize {
        self.size_max - PACKET_HEADER_LEN - MSG_SIZE_LEN
    }

    pub fn messages(&self) -> usize {
        self.messages
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Appends a message if it fits; returns false (and changes nothing) if it does not.
    pub fn push(&mut self, message: &[u8]) -> bool {
        assert!(message.len() >= SBE_HEADER_LEN);
        if message.len() > self.room() {
            return false;
        }
        let size = u16::try_from(message.len() + MSG_SIZE_LEN).expect("size below 65_507");
        self.buf.extend_from_slice(&size.to_le_bytes());
        self.buf.extend_from_slice(message);
        self.messages += 1;
        assert!(self.buf.len() <= self.size_max);
        true
    }

    /// Stamps the header and returns the finished packet; `reset` starts the next one.
    pub fn finish(&mut self, seq: u32, sending_time_ns: u64) -> &[u8] {
        self.buf[0..4].copy_from_slice(&seq.to_le_bytes());
        self.buf[4..12].copy_from_slice(&sending_time_ns.to_le_bytes());
        &self.buf
    }

    pub fn reset(&mut self) {
        self.buf.truncate(PACKET_HEADER_LEN);
        self.messages = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_round_trips_and_stops_at_its_size() {
        let mut b = PacketBuilder::new(64);
        let m1 = [1_u8; 10];
        let m2 = [2_u8; 30];
        assert!(b.push(&m1));
        assert!(b.push(&m2));
        // 12 + 12 + 32 = 56; 8 left, not enough for another 10-byte message + 2.
        assert!(!b.push(&m1));
        let p = b.finish(7, 99).to_vec();
        assert_eq!(p.len(), 56);
        let (h, msgs) = PacketMessages::new(&p).unwrap();
        assert_eq!(
            h,
            PacketHeader {
                seq: 7,
                sending_time_ns: 99
            }
        );
        let got: Vec<_> = msgs.map(|m| m.unwrap().to_vec()).collect();
        assert_eq!(got, vec![m1.to_vec(), m2.to_vec()]);
        b.reset();
        assert!(b.is_empty());
    }

    #[test]
    fn only_a_packet_led_by_a_heartbeat_is_a_heartbeat_packet() {
        use crate::MdMsg;
        let packet = |m: &MdMsg| {
            let mut buf = [0_u8; 128];
            let n = m.encode(&mut buf).unwrap();
            let mut b = PacketBuilder::new(256);
            assert!(b.push(&buf[..n]));
            b.finish(5, 1).to_vec()
        };
        let hb = packet(&MdMsg::Heartbeat { time_ns: 3 });
        assert!(is_heartbeat_packet(&hb));
        assert!(!is_heartbeat_packet(&packet(&MdMsg::EndOfSession {
            time_ns: 3
        })));
        // Truncated or empty packets are not heartbeats.
        assert!(!is_heartbeat_packet(&hb[..hb.len() - 1]));
        assert!(!is_heartbeat_packet(&hb[..PACKET_HEADER_LEN]));
        // Another schema's template 1 is not ours.
        let mut other = hb.clone();
        other[PACKET_HEADER_LEN + MSG_SIZE_LEN + 4] ^= 0xff;
        assert!(!is_heartbeat_packet(&other));
    }

    #[test]
    fn a_bad_size_ends_iteration_with_one_error() {
        let mut p = vec![0_u8; 12];
        p.extend_from_slice(&[200, 0, 1, 2, 3]);
        let (_, mut msgs) = PacketMessages::new(&p).unwrap();
        assert!(matches!(
            msgs.next(),
            Some(Err(PacketError::BadMessageSize { .. }))
        ));
        assert!(msgs.next().is_none());
        assert!(PacketMessages::new(&p[..11]).is_err());
    }
}
