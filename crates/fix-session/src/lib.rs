//! The FIX 4.2 session layer as a pure state machine.
//!
//! A [`Session`] is one configured counterparty (a SenderCompID/TargetCompID pair). The network
//! layer frames and parses inbound bytes (`fix-codec`) and hands each message to
//! [`Session::on_message`] with the current time; the session answers by appending whole FIX
//! messages to an output buffer and returning an [`Outcome`] (carry on, deliver an application
//! message, disconnect). Timers are [`Session::on_timer`] calls. The session reads no clock, opens
//! no socket and spawns nothing, so every rule is testable by feeding messages and times.
//!
//! Sequence numbers and sent application messages live in a [`Store`]; with [`FileStore`] a
//! restarted process resumes each session where it stopped and still answers ResendRequests for
//! messages sent before the restart.

mod session;
pub mod store;

pub use session::{ct_eq, Outcome, Session, SessionConfig, SessionState, SessionStats};
pub use store::{FileStore, MemoryStore, Store};
