//! Market-data publisher.
//!
//! Reads the matching core's outbound journal, rebuilds every instrument's L3 book from the
//! book events (checking each level against the engine's own totals), derives the L2 top N and
//! the L1 best bid and offer, keeps OHLCV candles, and publishes all of it as MDP 3.0-style
//! packets (see `docs/market-data-format.md`) on four channels: L1, L2, L3 with trades, and a
//! snapshot channel that cycles the full state of every instrument.
//!
//! - [`core::MdCore`]: the deterministic state machine (no I/O, no clock).
//! - [`net::Network`]: UDP multicast on the loopback interface only (IP_MULTICAST_IF, TTL 1,
//!   loop on), optional feed B, seeded fault injection for tests, bounded history, TCP fan-out
//!   with a per-update shuffled send order.
//! - [`retransmit::RetransmitServer`]: MoldUDP64-style re-requests, rate limited per requester.
//! - [`agent::PublisherAgent`]: the duty cycle tying them together.

pub mod agent;
pub mod candles;
pub mod config;
pub mod core;
pub mod net;
pub mod retransmit;

pub use agent::{PublisherAgent, PublisherError};
pub use config::{
    ConfigError, CoreConfig, FaultConfig, FeedGroups, NetConfig, PublisherConfig, RetransmitConfig,
    SendingTime, TcpConfig,
};
pub use core::{MdCore, PacketSink};
