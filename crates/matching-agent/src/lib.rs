//! The matching agent: the matching core between two journals.
//!
//! It reads SBE order-entry events (`sbe-schemas/order-entry.xml`, templates 1–10) from the
//! inbound journal in sequence order, turns each into one [`matching::Command`] (the journal's
//! sequence and timestamp are the command's; time enters no other way), runs the engine, and
//! appends the engine's outputs, encoded as SBE (templates 20–45), to the outbound journal: one
//! journal batch, so one commit, per inbound event. The outbound journal's clock is the inbound
//! event's timestamp, so the outbound journal is a pure function of the inbound one: the same
//! inbound journal always yields byte-identical outbound frames.
//!
//! Recovery is the same code as normal running. On open, the engine starts empty and replays the
//! inbound journal from the start; while the outbound journal already holds frames, every output
//! is compared with the frame at its position instead of being appended (a mismatch is
//! [`AgentError::Divergence`]: the recorded outputs are not reproduced), and once the recorded
//! frames run out (a crash between two frames, a torn tail cut on reopen) appending resumes
//! exactly where the recording stopped. Nothing is lost and nothing is written twice.
//!
//! With a [`SnapshotPolicy`] the agent writes the engine's state every N inbound events (with
//! the inbound and outbound positions it corresponds to, checksummed, written aside and renamed);
//! a restart restores the newest valid snapshot taken under the same engine configuration and
//! replays only what follows it, so recovery time stays bounded.
//!
//! The agent is an Aeron-style duty cycle: [`MatchingAgent::do_work`] processes up to a bounded
//! number of inbound events and returns how many it processed.

mod agent;
pub mod inbound;
pub mod outbound;

pub use agent::{
    latest_snapshot, snapshot_digests, AgentConfig, AgentError, EventClock, MatchingAgent,
    SnapshotDigest, SnapshotPolicy,
};
