//! Deterministic matching core and order manager.
//!
//! The [`Engine`] is a pure state machine: it consumes sequenced [`Command`]s (journal sequence
//! and timestamp included; time enters no other way) and writes [`Output`]s to a caller's
//! [`Sink`]. It performs no I/O, reads no clock, starts no thread and allocates nothing per
//! command in steady state: every table is sized from [`EngineConfig`] at construction.
//!
//! - books: price-time FIFO, intrusive doubly-linked queues in a slab, sorted level arrays;
//! - order manager: new / cancel / replace / mass cancel, TIF Day, IOC, FOK, GTC, market
//!   orders bounded by the price band, self-trade prevention per account;
//! - risk and funds: per-account limits, cash and position reservation and settlement;
//! - [`Engine::snapshot`] / [`Engine::restore`]: byte-exact state transfer.
//!
//! See docs/matching.md for the rules, the data structures and the byte layouts.

pub mod codec;
pub mod config;
pub mod engine;
mod huge;
pub mod snapshot;
pub mod types;
pub mod workload;

pub use codec::{encode_output, encode_outputs};
pub use config::{Band, ConfigError, EngineConfig, ProductConfig};
pub use engine::{Engine, OrderView, PREFETCH_AHEAD};
pub use snapshot::SnapshotError;
pub use types::*;
