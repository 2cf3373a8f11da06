//! Consumer configuration; every bound has a default.

use crate::client::RETRANSMIT_TIMEOUT_DEFAULT;
use md_core::FeedGroups;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Interface to join the groups on.
    pub interface: Ipv4Addr,
    pub feed_a: FeedGroups,
    pub feed_b: Option<FeedGroups>,
    /// The publisher's retransmission server (unicast), if any.
    pub retransmit_server: Option<SocketAddr>,
    /// Further retransmission servers (the other nodes of a cluster, whichever leads after a
    /// failover), tried in order after `retransmit_server`: a request that brings no answer
    /// within `retransmit_timeout` is sent again to the next address of the list, round the
    /// list; a server that answers (packets or a reject) is kept.
    pub retransmit_alternates: Vec<SocketAddr>,
    /// True when the consumer starts with the session (every channel at sequence 1, every
    /// instrument empty and in sync); false for a late joiner, which syncs from snapshots.
    pub from_session_start: bool,
    /// At least the publisher's L2 depth.
    pub l2_depth_max: usize,
    pub orders_per_instrument_max: usize,
    pub instruments_max: usize,
    pub candles_max: usize,
    /// Out-of-order packets held per channel while a gap is open.
    pub pending_packets_max: usize,
    /// Applied packets kept per channel to replay after a snapshot.
    pub replay_packets_max: usize,
    pub snapshot_chunks_max: usize,
    pub retransmit_timeout: Duration,
    /// How long a gap may stay open before the first retransmission request: with feeds A
    /// and B, the other feed's copy usually fills it first (MDP: recover only a gap on both).
    pub gap_wait: Duration,
    pub request_count_max: u16,
    /// Datagrams read per socket per poll.
    pub reads_per_poll_max: usize,
    /// SO_RCVBUF of each multicast socket.
    pub socket_receive_buffer: usize,
}

impl ConsumerConfig {
    pub fn new(feed_a: FeedGroups) -> ConsumerConfig {
        ConsumerConfig {
            interface: Ipv4Addr::LOCALHOST,
            feed_a,
            feed_b: None,
            retransmit_server: None,
            retransmit_alternates: Vec::new(),
            from_session_start: false,
            l2_depth_max: 64,
            orders_per_instrument_max: 1 << 20,
            instruments_max: 1024,
            candles_max: 256,
            pending_packets_max: 8_192,
            replay_packets_max: 16_384,
            snapshot_chunks_max: 4096,
            retransmit_timeout: RETRANSMIT_TIMEOUT_DEFAULT,
            gap_wait: Duration::from_millis(2),
            request_count_max: 1000,
            reads_per_poll_max: 256,
            socket_receive_buffer: 8 << 20,
        }
    }

    /// Every retransmission server, in the order they are tried.
    pub fn retransmit_servers(&self) -> Vec<SocketAddr> {
        self.retransmit_server
            .iter()
            .chain(self.retransmit_alternates.iter())
            .copied()
            .collect()
    }
}
