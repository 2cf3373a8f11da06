//! Configuration: every bound (`*_max`) has a default here and is fixed at start-up.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// Bounds of the deterministic core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreConfig {
    /// Largest datagram, packet header included (default 1400: fits an Ethernet MTU).
    pub packet_size_max: usize,
    /// Price levels per side on the L2 channel.
    pub l2_depth: usize,
    /// Resting orders per instrument the L3 book holds.
    pub orders_per_instrument_max: usize,
    /// Closed bars kept per instrument and interval.
    pub candles_max: usize,
    pub instruments_max: usize,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            packet_size_max: 1400,
            l2_depth: 10,
            orders_per_instrument_max: 1 << 20,
            candles_max: 256,
            instruments_max: 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("packet_size_max must be in 256..=65507")]
    PacketSizeMax,
    #[error("l2_depth must be in 1..=(packet room for one snapshot chunk's levels)")]
    L2Depth,
    #[error("{0} must be positive")]
    Zero(&'static str),
    #[error("interface {0} is not a loopback address: this build only publishes on loopback")]
    NotLoopback(Ipv4Addr),
    #[error("{0} is not a multicast group")]
    NotMulticast(SocketAddrV4),
    #[error("multicast TTL must be 1 (the feed never leaves the host)")]
    Ttl,
}

impl CoreConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(256..=65_507).contains(&self.packet_size_max) {
            return Err(ConfigError::PacketSizeMax);
        }
        // Chunk 0 of a snapshot carries both sides' levels: 21 bytes each.
        let room = self.packet_size_max - 12 - 2 - 8 - 41 - 8;
        if self.l2_depth == 0 || 2 * 21 * self.l2_depth > room {
            return Err(ConfigError::L2Depth);
        }
        if self.orders_per_instrument_max == 0 {
            return Err(ConfigError::Zero("orders_per_instrument_max"));
        }
        if self.candles_max == 0 {
            return Err(ConfigError::Zero("candles_max"));
        }
        if self.instruments_max == 0 {
            return Err(ConfigError::Zero("instruments_max"));
        }
        Ok(())
    }
}

pub use md_core::FeedGroups;

/// Sockets of the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Outgoing multicast interface (IP_MULTICAST_IF). Must be a loopback address.
    pub interface: Ipv4Addr,
    /// Must be 1.
    pub ttl: u32,
    /// IP_MULTICAST_LOOP, so receivers on this host get the packets.
    pub loopback: bool,
    pub feed_a: FeedGroups,
    /// The duplicate feed B, if any.
    pub feed_b: Option<FeedGroups>,
    /// Where the retransmission server listens (unicast UDP). A standby publisher binds it
    /// only when activated, so every node of a cluster may use the same address on its own
    /// host; nodes sharing a host need a port each (consumers list them all).
    pub retransmit_bind: SocketAddrV4,
    /// Where the TCP fan-out listens, if enabled.
    pub tcp_bind: Option<SocketAddrV4>,
}

impl NetConfig {
    pub fn loopback(feed_a: FeedGroups) -> NetConfig {
        NetConfig {
            interface: Ipv4Addr::LOCALHOST,
            ttl: 1,
            loopback: true,
            feed_a,
            feed_b: None,
            retransmit_bind: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
            tcp_bind: None,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.interface.is_loopback() {
            return Err(ConfigError::NotLoopback(self.interface));
        }
        if self.ttl != 1 {
            return Err(ConfigError::Ttl);
        }
        for f in std::iter::once(&self.feed_a).chain(self.feed_b.iter()) {
            for c in md_core::Channel::ALL {
                let a = f.get(c);
                if !a.ip().is_multicast() {
                    return Err(ConfigError::NotMulticast(a));
                }
            }
        }
        Ok(())
    }
}

/// Faults injected into the multicast sends (never into history, retransmissions or TCP),
/// drawn from a seeded generator so a failing run replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultConfig {
    pub seed: u64,
    /// Per million packets.
    pub loss_ppm: u32,
    pub duplicate_ppm: u32,
    /// A reordered packet is held back and sent after the next one.
    pub reorder_ppm: u32,
}

/// Where the sending times of the packets outside the incremental stream come from:
/// heartbeats, snapshot packets, retransmission rejects and the end-of-session marker.
/// Incremental (L1, L2, L3) data packets always carry the journal timestamp of their engine
/// event, whatever this says, so that every node sends them byte for byte alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendingTime {
    /// The journal timestamp of the newest frame handled: every packet is a function of the
    /// journal (and of when the timers fired).
    Journal,
    /// The wall clock when the packet is finished.
    Wall,
}

/// Retransmission server bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetransmitConfig {
    /// Packets kept per channel for retransmission.
    pub history_packets_max: usize,
    /// Packets one request may ask for.
    pub request_count_max: u16,
    /// Token bucket per requester: burst and refill, in packets.
    pub burst_packets: u32,
    pub packets_per_second: u32,
    /// Requesters tracked by the rate limiter (the least recently seen is forgotten).
    pub requesters_max: usize,
}

impl Default for RetransmitConfig {
    fn default() -> Self {
        RetransmitConfig {
            history_packets_max: 16_384,
            request_count_max: 1_000,
            burst_packets: 20_000,
            packets_per_second: 100_000,
            requesters_max: 256,
        }
    }
}

/// TCP fan-out bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConfig {
    pub subscribers_max: usize,
    /// A subscriber whose unsent bytes would exceed this is dropped.
    pub queue_bytes_max: usize,
    /// Seed of the per-update shuffle of the send order.
    pub shuffle_seed: u64,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            subscribers_max: 64,
            queue_bytes_max: 4 << 20,
            shuffle_seed: 1,
        }
    }
}

/// Everything the publisher agent needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    pub core: CoreConfig,
    pub net: NetConfig,
    pub retransmit: RetransmitConfig,
    pub tcp: TcpConfig,
    pub faults: Option<FaultConfig>,
    pub sending_time: SendingTime,
    /// Journal frames handled per `do_work` at most.
    pub batch_max: usize,
    /// A heartbeat goes out on every channel after this long without a packet.
    pub heartbeat_interval: Duration,
    /// One instrument's snapshot goes out on the snapshot channel this often.
    pub snapshot_interval: Duration,
    /// Times the end-of-session packets are repeated (as MoldUDP64 does).
    pub end_of_session_repeats: u32,
    /// How [`crate::PublisherAgent::run`] waits when idle: spin, yield, then park with
    /// exponential backoff by default (it must not starve other threads on a 2-core machine).
    pub idle: journal::WaitStrategy,
}

impl PublisherConfig {
    pub fn new(net: NetConfig) -> PublisherConfig {
        PublisherConfig {
            core: CoreConfig::default(),
            net,
            retransmit: RetransmitConfig::default(),
            tcp: TcpConfig::default(),
            faults: None,
            sending_time: SendingTime::Wall,
            batch_max: 256,
            heartbeat_interval: Duration::from_millis(100),
            snapshot_interval: Duration::from_millis(20),
            end_of_session_repeats: 10,
            idle: journal::WaitStrategy::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.core.validate()?;
        self.net.validate()?;
        if self.retransmit.history_packets_max == 0 {
            return Err(ConfigError::Zero("history_packets_max"));
        }
        if self.retransmit.requesters_max == 0 {
            return Err(ConfigError::Zero("requesters_max"));
        }
        if self.batch_max == 0 {
            return Err(ConfigError::Zero("batch_max"));
        }
        Ok(())
    }
}
