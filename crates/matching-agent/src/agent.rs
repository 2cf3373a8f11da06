//! The duty cycle: inbound journal → engine → outbound journal, with replay verification.

use crate::inbound::{self, Inbound};
use crate::outbound;
use journal::{
    AppendError, Clock, IdleStrategy, Journal, JournalConfig, OpenError, ReadError, Reader,
    ReaderError, Sequencer,
};
use matching::{ConfigError, Engine, EngineConfig, Output, RejectReason};
use sbe_order_entry::{SbeErr, WriteBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The outbound journal's clock: the timestamp of the inbound event being processed, so the
/// outbound journal depends on nothing but the inbound one.
#[derive(Debug, Clone, Default)]
pub struct EventClock(Arc<AtomicU64>);

impl EventClock {
    fn set(&self, ns: u64) {
        self.0.store(ns, Ordering::Relaxed);
    }
}

impl Clock for EventClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Configuration of the agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub engine: EngineConfig,
    /// The outbound journal (the agent is its only writer).
    pub outbound: JournalConfig,
    /// Inbound events processed per `do_work` call at most.
    pub batch_max: usize,
}

impl AgentConfig {
    pub fn new(engine: EngineConfig, outbound: JournalConfig) -> Self {
        Self {
            engine,
            outbound,
            batch_max: 256,
        }
    }
}

/// Operating errors of the agent. A protocol-level problem with one inbound event is not an
/// error: it is answered on the outbound journal (`AdminRejected` with `MalformedEvent`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    #[error("engine configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("outbound journal: {0}")]
    Open(#[from] OpenError),
    #[error("journal reader: {0}")]
    Reader(#[from] ReaderError),
    #[error("journal read: {0}")]
    Read(#[from] ReadError),
    #[error("outbound append: {0}")]
    Append(#[from] AppendError),
    #[error("encoding an outbound event: {0}")]
    Encode(#[from] SbeErr),
    #[error("replay diverges from the recorded outbound journal at sequence {outbound_seq} (inbound {inbound_seq}): recorded template {recorded_template}, replay produced {replayed_template}")]
    Divergence {
        outbound_seq: u64,
        inbound_seq: u64,
        recorded_template: u16,
        replayed_template: u16,
    },
    #[error("the recorded outbound journal ends before its written position {outbound_seq}")]
    RecordingShort { outbound_seq: u64 },
    #[error("batch_max must be positive")]
    BatchMax,
}

/// Runs the matching core between the inbound and the outbound journal.
pub struct MatchingAgent {
    engine: Engine,
    inbound: Reader,
    outbound: Sequencer<EventClock>,
    outbound_journal: Journal,
    clock: EventClock,
    /// Reads the frames recorded before this run; `None` once they are all verified.
    verify: Option<Reader>,
    recorded_end: u64,
    batch_max: usize,
    outputs: Vec<Output>,
    /// Encoded outbound events of the current inbound event, back to back.
    scratch: Vec<u8>,
    /// (template id, start, length) of each event in `scratch`.
    spans: Vec<(u16, usize, usize)>,
    processed_seq: u64,
    verified_frames: u64,
}

impl MatchingAgent {
    /// Opens (or creates) the outbound journal and prepares to replay `inbound` from its first
    /// event: frames already in the outbound journal are verified, not rewritten.
    pub fn open(config: AgentConfig, inbound: &Journal) -> Result<Self, AgentError> {
        config.engine.validate()?;
        if config.batch_max == 0 {
            return Err(AgentError::BatchMax);
        }
        let clock = EventClock::default();
        let (outbound_journal, outbound) =
            Journal::open_with_clock(config.outbound, clock.clone())?;
        let recorded_end = outbound.written_seq();
        let verify = if recorded_end > 0 {
            Some(outbound_journal.reader(1)?)
        } else {
            None
        };
        Ok(Self {
            engine: Engine::new(config.engine),
            inbound: inbound.reader(1)?,
            outbound,
            outbound_journal,
            clock,
            verify,
            recorded_end,
            batch_max: config.batch_max,
            outputs: Vec::with_capacity(1024),
            scratch: Vec::with_capacity(64 * 1024),
            spans: Vec::with_capacity(1024),
            processed_seq: 0,
            verified_frames: 0,
        })
    }

    /// One duty cycle: processes up to `batch_max` committed inbound events; returns how many.
    pub fn do_work(&mut self) -> Result<usize, AgentError> {
        let mut n = 0;
        while n < self.batch_max {
            let Some(frame) = self.inbound.poll()? else {
                break;
            };
            let (sequence, timestamp_ns, template_id) =
                (frame.sequence, frame.timestamp_ns, frame.template_id);
            let decoded = inbound::decode(sequence, timestamp_ns, template_id, frame.payload);
            self.clock.set(timestamp_ns);
            Self::encode_results(
                &mut self.engine,
                &mut self.outputs,
                &mut self.scratch,
                &mut self.spans,
                sequence,
                decoded,
            )?;
            self.emit(sequence)?;
            self.processed_seq = sequence;
            n += 1;
        }
        Ok(n)
    }

    /// Runs the duty cycle until `stop` is set and the inbound journal is drained.
    pub fn run(&mut self, stop: &AtomicBool, idle: &mut IdleStrategy) -> Result<(), AgentError> {
        loop {
            let n = self.do_work()?;
            if n == 0 && stop.load(Ordering::Acquire) {
                return Ok(());
            }
            idle.idle(n);
        }
    }

    fn encode_results(
        engine: &mut Engine,
        outputs: &mut Vec<Output>,
        scratch: &mut Vec<u8>,
        spans: &mut Vec<(u16, usize, usize)>,
        sequence: u64,
        decoded: Result<Inbound, inbound::DecodeError>,
    ) -> Result<(), AgentError> {
        outputs.clear();
        scratch.clear();
        spans.clear();
        // Reserves room for one event at the end of `scratch` (zeroed: padding is deterministic).
        fn slot(scratch: &mut Vec<u8>) -> usize {
            let start = scratch.len();
            scratch.resize(start + outbound::ENCODED_LEN_MAX, 0);
            start
        }
        match decoded {
            Ok(Inbound::Command(command, context)) => {
                engine.process(&command, outputs);
                for out in outputs.iter() {
                    let start = slot(scratch);
                    let (t, len) = outbound::encode(out, &context, &mut scratch[start..])?;
                    scratch.truncate(start + len);
                    spans.push((t, start, len));
                }
            }
            Ok(Inbound::UnknownOrder {
                client_order_id,
                is_replace,
                context,
            }) => {
                let start = slot(scratch);
                let (t, len) = outbound::cancel_rejected(
                    WriteBuf::new(&mut scratch[start..]),
                    sequence,
                    context.session_id,
                    context.account_id,
                    client_order_id,
                    None,
                    is_replace,
                    RejectReason::UnknownOrder,
                    &context,
                )?;
                scratch.truncate(start + len);
                spans.push((t, start, len));
            }
            Ok(Inbound::NotForEngine) => {}
            Err(_) => {
                let start = slot(scratch);
                let (t, len) = outbound::admin_rejected(
                    WriteBuf::new(&mut scratch[start..]),
                    sequence,
                    sbe_order_entry::RejectReason::MalformedEvent,
                )?;
                scratch.truncate(start + len);
                spans.push((t, start, len));
            }
        }
        Ok(())
    }

    /// Verifies the encoded events against the recording while it lasts, then appends the rest
    /// as one batch (one commit).
    fn emit(&mut self, inbound_seq: u64) -> Result<(), AgentError> {
        let mut first_new = 0;
        if let Some(verify) = self.verify.as_mut() {
            for (i, &(t, start, len)) in self.spans.iter().enumerate() {
                if verify.next_sequence() > self.recorded_end {
                    break;
                }
                let expected = verify.next_sequence();
                let Some(recorded) = verify.poll()? else {
                    // Recorded frames are committed; one that cannot be read is missing.
                    return Err(AgentError::RecordingShort {
                        outbound_seq: expected,
                    });
                };
                let same = recorded.template_id == t
                    && recorded.payload == &self.scratch[start..start + len]
                    && recorded.timestamp_ns == self.clock.now_ns();
                if !same {
                    return Err(AgentError::Divergence {
                        outbound_seq: recorded.sequence,
                        inbound_seq,
                        recorded_template: recorded.template_id,
                        replayed_template: t,
                    });
                }
                self.verified_frames += 1;
                first_new = i + 1;
            }
            if verify.next_sequence() > self.recorded_end {
                self.verify = None;
            }
        }
        if first_new < self.spans.len() {
            let scratch = &self.scratch;
            self.outbound.append_batch(
                self.spans[first_new..]
                    .iter()
                    .map(|&(t, start, len)| (t, &scratch[start..start + len])),
            )?;
        }
        Ok(())
    }

    /// The engine (for queries and snapshots; never mutate it from outside).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The outbound journal (readers for the gateway, market data and the reporter).
    pub fn outbound_journal(&self) -> &Journal {
        &self.outbound_journal
    }

    /// The last inbound sequence processed.
    pub fn processed_seq(&self) -> u64 {
        self.processed_seq
    }

    /// True while frames recorded before this run remain to be verified.
    pub fn is_replaying(&self) -> bool {
        self.verify.is_some()
    }

    /// Recorded outbound frames that replay reproduced byte for byte.
    pub fn verified_frames(&self) -> u64 {
        self.verified_frames
    }
}
