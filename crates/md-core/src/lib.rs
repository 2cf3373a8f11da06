//! Market data pieces shared by the publisher (`md-publisher`) and the consumer library
//! (`md-consumer`):
//!
//! - [`packet`]: MDP 3.0-style packets (u32 sequence number, u64 sending time, then for each
//!   message a u16 size and the SBE message), built up to a configured size and parsed without
//!   panicking on any input;
//! - [`msg`]: the market-data messages as plain values, encoded and decoded with the generated
//!   `sbe-market-data` codecs;
//! - [`book`]: the L3 (order by order), L2 (top N price levels) and L1 (best bid and offer)
//!   books that both sides maintain, so a test can compare them.
//!
//! The byte layout is specified in `docs/market-data-format.md`.

pub mod book;
pub mod msg;
pub mod packet;

pub use book::{Bbo, BookError, BookOrder, L2Book, L3Book, PriceLevel};
pub use msg::{
    Action, CandleInterval, Channel, DecodeError, InstrumentDef, LevelEntry, MdMsg, RejectReason,
    Side, SnapshotChunk, SnapshotLevel, SnapshotOrder, Status,
};
pub use packet::{
    is_heartbeat_packet, PacketBuilder, PacketError, PacketHeader, PacketMessages,
    PACKET_HEADER_LEN,
};

use std::net::{Ipv4Addr, SocketAddrV4};

/// Multicast groups of one feed (A or B): one per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedGroups {
    pub l1: SocketAddrV4,
    pub l2: SocketAddrV4,
    pub l3: SocketAddrV4,
    pub snapshot: SocketAddrV4,
}

impl FeedGroups {
    /// Four consecutive ports on one group: L1, L2, L3, snapshot.
    pub fn on_group(group: Ipv4Addr, first_port: u16) -> FeedGroups {
        FeedGroups {
            l1: SocketAddrV4::new(group, first_port),
            l2: SocketAddrV4::new(group, first_port + 1),
            l3: SocketAddrV4::new(group, first_port + 2),
            snapshot: SocketAddrV4::new(group, first_port + 3),
        }
    }

    pub fn get(&self, c: Channel) -> SocketAddrV4 {
        match c {
            Channel::L1 => self.l1,
            Channel::L2 => self.l2,
            Channel::L3 => self.l3,
            Channel::Snapshot => self.snapshot,
        }
    }
}
