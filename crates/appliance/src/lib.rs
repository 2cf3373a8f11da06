//! The exchange gateway appliance: one process wiring the inbound journal and its sequencer,
//! the matching agent, the outbound journal, the query replica, the reporter and the HTTP API.
//! The `appliance` binary (src/main.rs) is the command line around [`node::Node`].

pub mod candles;
pub mod config;
pub mod demo;
pub mod export;
pub mod ha;
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod node;
pub mod replay;
pub mod replica;
pub mod reporter;
pub mod tls;
