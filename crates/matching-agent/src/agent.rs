//! The duty cycle: inbound journal → engine → outbound journal, with replay verification.

use crate::inbound::{self, Inbound};
use crate::outbound;
use journal::{
    AppendError, Clock, IdleStrategy, Journal, JournalConfig, OpenError, ReadError, Reader,
    ReaderError, Sequencer,
};
use matching::{ConfigError, Engine, EngineConfig, Output, RejectReason, PREFETCH_AHEAD};
use sbe_order_entry::{SbeErr, WriteBuf};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
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
    /// Periodic engine snapshots, so that a restart replays only what follows the newest one.
    pub snapshots: Option<SnapshotPolicy>,
}

/// Where and how often the agent snapshots the engine.
#[derive(Debug, Clone)]
pub struct SnapshotPolicy {
    pub dir: PathBuf,
    /// Inbound events between two snapshots: one is taken at every inbound sequence that is a
    /// multiple of this (the same positions on every replica of a journal).
    pub every_events: u64,
    /// Snapshot files kept (the newest ones).
    pub keep_max: usize,
}

impl AgentConfig {
    pub fn new(engine: EngineConfig, outbound: JournalConfig) -> Self {
        Self {
            engine,
            outbound,
            batch_max: 256,
            snapshots: None,
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
    #[error("snapshot {path}: {source}")]
    Snapshot {
        path: PathBuf,
        source: std::io::Error,
    },
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
    /// Inbound events read from the journal and decoded but not processed yet (at most
    /// `PREFETCH_AHEAD + 1`; see `do_work`).
    window: VecDeque<Pending>,
    processed_seq: u64,
    verified_frames: u64,
    snapshots: Option<SnapshotPolicy>,
    last_snapshot_seq: u64,
    restored_from: Option<u64>,
    /// Writes the snapshot files (with snapshots configured).
    writer: Option<SnapshotWriter>,
}

/// A snapshot to write: its final path and its bytes.
enum SnapshotJob {
    Write {
        path: PathBuf,
        bytes: Vec<u8>,
        keep_max: usize,
    },
    /// Answered once every job sent before it is done.
    Flush(std::sync::mpsc::Sender<()>),
}

/// Writes snapshot files on a thread of its own. The bytes are taken on the pipeline's thread
/// at the exact inbound position (that part is the state); writing the file, syncing it (tens
/// of milliseconds on a slow disk), renaming it and deleting old ones happen here, so the
/// thread that runs the pipeline (the engine thread, or a gateway I/O thread assisting it)
/// does not stall every `every_events` events with orders waiting. A failure is reported by
/// the agent's next duty cycle. At most two snapshots wait; a third waits for room (bounded
/// memory when the disk cannot keep up). A written snapshot's buffer comes back to be filled
/// again, so taking one writes into memory the process has (at most four buffers exist).
struct SnapshotWriter {
    tx: Option<std::sync::mpsc::SyncSender<SnapshotJob>>,
    /// Buffers of written snapshots, back for reuse.
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    handle: Option<std::thread::JoinHandle<()>>,
    /// Set with `error` by a failed write; checked without the lock on every duty cycle.
    failed: Arc<AtomicBool>,
    error: Arc<std::sync::Mutex<Option<AgentError>>>,
}

impl SnapshotWriter {
    fn start() -> Result<SnapshotWriter, AgentError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<SnapshotJob>(2);
        let (back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        let failed = Arc::new(AtomicBool::new(false));
        let error = Arc::new(std::sync::Mutex::new(None));
        let (f, e) = (Arc::clone(&failed), Arc::clone(&error));
        let handle = std::thread::Builder::new()
            .name("snapshot-writer".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        SnapshotJob::Write {
                            path,
                            bytes,
                            keep_max,
                        } => {
                            if let Err(err) = write_snapshot(&path, &bytes, keep_max) {
                                let mut slot = e.lock().unwrap_or_else(|p| p.into_inner());
                                slot.get_or_insert(err);
                                f.store(true, Ordering::Release);
                            }
                            let _ = back.send(bytes);
                        }
                        SnapshotJob::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|source| AgentError::Snapshot {
                path: PathBuf::from("(snapshot-writer thread)"),
                source,
            })?;
        Ok(SnapshotWriter {
            tx: Some(tx),
            spare,
            handle: Some(handle),
            failed,
            error,
        })
    }

    /// The first write that failed, if one did (taken: reported once).
    fn take_error(&self) -> Option<AgentError> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        let e = slot.take();
        if e.is_some() {
            self.failed.store(false, Ordering::Release);
        }
        e
    }

    fn send(&self, job: SnapshotJob) {
        // The thread runs as long as the sender lives (it only ends when `tx` is dropped).
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }

    /// The buffer of a snapshot written since, if one came back (emptied).
    fn spare(&self) -> Option<Vec<u8>> {
        let mut b = self.spare.try_recv().ok()?;
        b.clear();
        Some(b)
    }

    /// Waits until every snapshot handed over so far is written (or failed).
    fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        self.send(SnapshotJob::Flush(done));
        let _ = wait.recv();
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        // Pending snapshots are written before the agent is gone.
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Writes a snapshot aside, syncs it and renames it into place (a crash leaves the old set
/// or the new one), then deletes all but the newest `keep_max`.
fn write_snapshot(path: &Path, bytes: &[u8], keep_max: usize) -> Result<(), AgentError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AgentError::Snapshot { path, source }
    };
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        for old in list_snapshots(dir).into_iter().skip(keep_max.max(1)) {
            let _ = std::fs::remove_file(old);
        }
    }
    Ok(())
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"AGSNAP01";

/// An inbound event read ahead of processing.
#[derive(Debug, Clone, Copy)]
struct Pending {
    sequence: u64,
    timestamp_ns: u64,
    end_of_batch: bool,
    decoded: Result<Inbound, inbound::DecodeError>,
}

fn snapshot_name(inbound_seq: u64) -> String {
    format!("snapshot-{inbound_seq:020}.bin")
}

/// Snapshot files in `dir`, newest first.
fn list_snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snapshot-") && n.ends_with(".bin"))
        })
        .collect();
    v.sort();
    v.reverse();
    v
}

/// The newest whole snapshot in `dir` taken under `engine_config` whose positions the journals
/// still reach: (inbound seq, outbound seq, engine). The query replica restores from it too.
pub fn latest_snapshot(
    dir: &Path,
    engine_config: &EngineConfig,
    inbound_written: u64,
    outbound_written: u64,
) -> Option<(u64, u64, Engine)> {
    list_snapshots(dir).into_iter().find_map(|path| {
        read_snapshot(&path).filter(|(i, o, e)| {
            e.config() == engine_config && *o <= outbound_written && *i <= inbound_written
        })
    })
}

/// Where a snapshot was taken and the checksum that ends its file: nodes of a cluster that
/// processed the same journal have the same digest at the same inbound sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotDigest {
    pub inbound_seq: u64,
    pub outbound_seq: u64,
    pub crc32: u32,
}

/// The digests of the snapshots in `dir`, newest first (read from each file's header and
/// trailer; the files are not validated whole).
pub fn snapshot_digests(dir: &Path) -> Vec<SnapshotDigest> {
    use std::io::{Read, Seek, SeekFrom};
    list_snapshots(dir)
        .into_iter()
        .filter_map(|p| {
            let mut f = std::fs::File::open(p).ok()?;
            let mut h = [0_u8; 32];
            f.read_exact(&mut h).ok()?;
            if &h[..8] != SNAPSHOT_MAGIC {
                return None;
            }
            f.seek(SeekFrom::End(-4)).ok()?;
            let mut c = [0_u8; 4];
            f.read_exact(&mut c).ok()?;
            let u = |i: usize| u64::from_le_bytes(h[i..i + 8].try_into().expect("8 bytes"));
            Some(SnapshotDigest {
                inbound_seq: u(8),
                outbound_seq: u(16),
                crc32: u32::from_le_bytes(c),
            })
        })
        .collect()
}

/// (inbound seq, outbound seq, engine) of a snapshot file, if it is whole and valid.
fn read_snapshot(path: &Path) -> Option<(u64, u64, Engine)> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 36 || &bytes[..8] != SNAPSHOT_MAGIC {
        return None;
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let u = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().expect("8 bytes"));
    let (inbound_seq, outbound_seq, len) = (u(8), u(16), u(24) as usize);
    if body.len() != 32 + len {
        return None;
    }
    let engine = Engine::restore(&body[32..]).ok()?;
    Some((inbound_seq, outbound_seq, engine))
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
        // The newest snapshot that was taken under this configuration and that both journals
        // still reach; otherwise a replay from the start.
        let (in_seq, out_seq, restored) = match &config.snapshots {
            Some(policy) => match latest_snapshot(
                &policy.dir,
                &config.engine,
                inbound.written_seq(),
                recorded_end,
            ) {
                Some((i, o, e)) => (i, o, Some(e)),
                None => (0, 0, None),
            },
            None => (0, 0, None),
        };
        let restored_from = restored.as_ref().map(|_| in_seq);
        let writer = match &config.snapshots {
            Some(policy) => {
                std::fs::create_dir_all(&policy.dir).map_err(|source| AgentError::Snapshot {
                    path: policy.dir.clone(),
                    source,
                })?;
                Some(SnapshotWriter::start()?)
            }
            None => None,
        };
        let engine = restored.unwrap_or_else(|| Engine::new(config.engine));
        let verify = if recorded_end > out_seq {
            Some(outbound_journal.reader(out_seq + 1)?)
        } else {
            None
        };
        Ok(Self {
            engine,
            inbound: inbound.reader(in_seq + 1)?,
            outbound,
            outbound_journal,
            clock,
            verify,
            recorded_end,
            batch_max: config.batch_max,
            outputs: Vec::with_capacity(1024),
            scratch: Vec::with_capacity(64 * 1024),
            spans: Vec::with_capacity(1024),
            window: VecDeque::with_capacity(PREFETCH_AHEAD + 1),
            processed_seq: in_seq,
            verified_frames: 0,
            snapshots: config.snapshots,
            last_snapshot_seq: in_seq,
            restored_from,
            writer,
        })
    }

    /// Writes a snapshot if the policy asks for one (never while replaying the recording,
    /// where the outbound position is not yet the journal's end).
    fn maybe_snapshot(&mut self) -> Result<(), AgentError> {
        let Some(policy) = &self.snapshots else {
            return Ok(());
        };
        // A snapshot file that could not be written (reported here, on the pipeline's thread).
        if let Some(e) = self.writer.as_ref().and_then(SnapshotWriter::take_error) {
            return Err(e);
        }
        // At multiples of `every_events` only: the same positions whatever the batching, so
        // replicas of one journal (a cluster) write the same snapshot files, comparable by
        // their digests.
        if self.verify.is_some()
            || self.processed_seq % policy.every_events.max(1) != 0
            || self.processed_seq <= self.last_snapshot_seq
        {
            return Ok(());
        }
        let mut bytes = self
            .writer
            .as_ref()
            .and_then(SnapshotWriter::spare)
            .unwrap_or_default();
        bytes.extend_from_slice(SNAPSHOT_MAGIC);
        bytes.extend_from_slice(&self.processed_seq.to_le_bytes());
        bytes.extend_from_slice(&self.outbound.written_seq().to_le_bytes());
        let len_at = bytes.len();
        bytes.extend_from_slice(&0_u64.to_le_bytes());
        let engine_at = bytes.len();
        self.engine.snapshot_into(&mut bytes);
        let engine_len = (bytes.len() - engine_at) as u64;
        bytes[len_at..engine_at].copy_from_slice(&engine_len.to_le_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let job = SnapshotJob::Write {
            path: policy.dir.join(snapshot_name(self.processed_seq)),
            bytes,
            keep_max: policy.keep_max,
        };
        if let Some(w) = &self.writer {
            w.send(job);
        }
        self.last_snapshot_seq = self.processed_seq;
        Ok(())
    }

    /// Waits until every snapshot taken so far is in its file; the first write that failed,
    /// if any.
    pub fn wait_for_snapshots(&mut self) -> Result<(), AgentError> {
        match &self.writer {
            Some(w) => {
                w.flush();
                w.take_error().map_or(Ok(()), Err)
            }
            None => Ok(()),
        }
    }

    /// The inbound sequence of the snapshot this run started from, if any.
    pub fn restored_from(&self) -> Option<u64> {
        self.restored_from
    }

    /// One duty cycle: processes up to `batch_max` committed inbound events; returns how many.
    ///
    /// The outputs of one inbound batch (the frames up to one marked end-of-batch) are
    /// published together, and the last output frame of the batch's last event is marked
    /// end-of-batch in the outbound journal too (the market-data publisher closes its packets
    /// there); when that event has no outputs, an empty [`journal::TEMPLATE_BATCH_END`] frame
    /// carries the mark. The marks depend on the inbound journal only, not on where a duty
    /// cycle stops (one that stops inside an inbound batch publishes what it wrote unmarked).
    pub fn do_work(&mut self) -> Result<usize, AgentError> {
        let mut n = 0;
        let mut unpublished = false;
        while n < self.batch_max {
            // The window: the next event and up to PREFETCH_AHEAD decoded after it, whose
            // memory the engine prefetches while it processes the next one (as
            // `Engine::process_batch` does). Only what the journal already holds is read: the
            // next event is never held back waiting for more.
            while self.window.len() <= PREFETCH_AHEAD {
                let Some(frame) = self.inbound.poll()? else {
                    break;
                };
                self.window.push_back(Pending {
                    sequence: frame.sequence,
                    timestamp_ns: frame.timestamp_ns,
                    end_of_batch: frame.end_of_batch,
                    decoded: inbound::decode(
                        frame.sequence,
                        frame.timestamp_ns,
                        frame.template_id,
                        frame.payload,
                    ),
                });
            }
            let Some(Pending {
                sequence,
                timestamp_ns,
                end_of_batch,
                decoded,
            }) = self.window.pop_front()
            else {
                break;
            };
            for (i, ahead) in self.window.iter().enumerate() {
                if let Ok(Inbound::Command(command, _)) = &ahead.decoded {
                    self.engine.prefetch_ahead(command, i + 1);
                }
            }
            self.clock.set(timestamp_ns);
            Self::encode_results(
                &mut self.engine,
                &mut self.outputs,
                &mut self.scratch,
                &mut self.spans,
                sequence,
                decoded,
            )?;
            if end_of_batch && self.spans.is_empty() {
                // Something must carry the end-of-batch mark: an empty marker frame (a pure
                // function of the inbound event, like every output, so replays and replicas
                // write it too).
                self.spans
                    .push((journal::TEMPLATE_BATCH_END, self.scratch.len(), 0));
            }
            unpublished |= self.emit(sequence)?;
            self.processed_seq = sequence;
            n += 1;
            if end_of_batch {
                // Marks the batch's last output frame, whichever event wrote it.
                self.outbound.publish(true)?;
                unpublished = false;
            }
            if self
                .snapshots
                .as_ref()
                .is_some_and(|p| sequence % p.every_events.max(1) == 0)
            {
                // A snapshot position ends the batch (see maybe_snapshot).
                break;
            }
        }
        if unpublished {
            self.outbound.publish(false)?;
        }
        if n > 0 {
            self.maybe_snapshot()?;
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

    /// Verifies the encoded events against the recording while it lasts, then writes the rest
    /// (published by [`MatchingAgent::do_work`] at the end of the inbound batch). Returns
    /// whether it wrote anything.
    fn emit(&mut self, inbound_seq: u64) -> Result<bool, AgentError> {
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
            self.outbound.write_batch(
                self.spans[first_new..]
                    .iter()
                    .map(|&(t, start, len)| (t, &scratch[start..start + len])),
            )?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The engine (for queries and snapshots; never mutate it from outside).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The outbound journal (readers for the gateway, market data and the reporter).
    pub fn outbound_journal(&self) -> &Journal {
        &self.outbound_journal
    }

    /// Whether each outbound commit rings the outbound journal's doorbell (default true; see
    /// `journal::Sequencer::set_ring_on_publish`). Off, the owner rings
    /// `outbound_journal().doorbell()` when its readers should wake.
    pub fn set_ring_on_commit(&mut self, ring: bool) {
        self.outbound.set_ring_on_publish(ring);
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
