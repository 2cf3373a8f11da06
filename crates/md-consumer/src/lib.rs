//! Market-data consumer library.
//!
//! Embed [`Consumer`] (multicast, feeds A and B, retransmission requests) or [`TcpConsumer`]
//! (the publisher's TCP fan-out); both drive an [`MdClient`], the socket-free state machine
//! that arbitrates A/B, detects gaps, asks for retransmission, bootstraps from snapshots and
//! maintains L1, L2 and L3 books per instrument. The wire format is in
//! `docs/market-data-format.md`.
//!
//! ```no_run
//! use md_consumer::{Consumer, ConsumerConfig};
//! use md_core::{Channel, FeedGroups};
//! let mut cfg = ConsumerConfig::new(FeedGroups::on_group("239.1.1.1".parse().unwrap(), 40_000));
//! cfg.retransmit_server = Some("127.0.0.1:40100".parse().unwrap());
//! let mut consumer = Consumer::open(cfg)?;
//! loop {
//!     consumer.poll();
//!     if let Some(i) = consumer.client().instrument(1) {
//!         if i.is_synced(Channel::L1) {
//!             println!("{:?}", i.bbo);
//!         }
//!     }
//! #   break;
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

pub mod client;
pub mod config;
pub mod listen;
pub mod net;

pub use client::{ClientStats, GapRequest, InstrumentView, MdClient};
pub use config::ConsumerConfig;
pub use net::{join_multicast, Consumer, TcpConsumer};
