//! End-of-batch marks in the outbound journal: where the market-data publisher closes packets.
//!
//! The inbound journal is written in batches of random sizes (as a sequencer under varying
//! load publishes them), with session checkpoints (events with no outputs) among the orders.
//! The matching agent must mark the last output frame of every inbound batch, write an empty
//! marker frame when a batch's last event has no outputs, and produce the same outbound
//! journal, marks included, whatever its own duty-cycle batching.

use journal::{Journal, JournalConfig, TestClock, TEMPLATE_BATCH_END};
use matching::workload::{self, WorkloadConfig};
use matching_agent::{inbound, AgentConfig, MatchingAgent};
use sbe_order_entry as sbe;
use sbe_order_entry::{message_header_codec::ENCODED_LENGTH as HDR, WriteBuf};
use std::path::Path;

fn small_journal(dir: &Path) -> JournalConfig {
    let mut c = JournalConfig::in_dir(dir);
    c.segment_size = 1 << 20;
    c.segments_max = 256;
    c
}

fn checkpoint(n: u32, buf: &mut [u8]) -> usize {
    let mut e = sbe::session_checkpoint_event_codec::SessionCheckpointEventEncoder::default()
        .wrap(WriteBuf::new(buf), HDR)
        .unwrap();
    e = e.header(0).unwrap().parent().unwrap();
    e.session_id(1);
    e.next_sender_seq_num(n + 1);
    e.next_target_seq_num(n + 1);
    e.reason(sbe::SessionCheckpointReason::Interval);
    HDR + e.encoded_length()
}

/// The inbound journal in batches of 1 to 6 events, a checkpoint after every 5th order.
/// Returns the journal and, per inbound event, whether it ends its batch.
fn write_inbound(dir: &Path, seed: u64) -> (Journal, Vec<bool>) {
    let w = workload::generate(&WorkloadConfig {
        seed,
        instruments: 2,
        accounts: 50,
        resting_per_instrument: 40,
        commands: 1_500,
        zipf_s: 1.0,
    });
    let mut events: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut buf = [0_u8; inbound::ENCODED_LEN_MAX];
    for (i, c) in w.preamble.iter().chain(w.commands.iter()).enumerate() {
        let (t, len) = inbound::encode(&c.kind, 0, &mut buf).unwrap();
        events.push((t, buf[..len].to_vec()));
        if i % 5 == 4 {
            let len = checkpoint(i as u32, &mut buf);
            events.push((
                sbe::session_checkpoint_event_codec::SBE_TEMPLATE_ID,
                buf[..len].to_vec(),
            ));
        }
    }
    let clock = TestClock::new(1_763_769_600_000_000_000, 1_000);
    let (journal, mut seq) = Journal::open_with_clock(small_journal(dir), clock).unwrap();
    let mut ends = Vec::new();
    let mut x = seed | 1;
    let mut rest = &events[..];
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = (1 + (x % 6) as usize).min(rest.len());
        seq.append_batch(rest[..n].iter().map(|(t, p)| (*t, &p[..])))
            .unwrap();
        ends.extend((0..n).map(|i| i + 1 == n));
        rest = &rest[n..];
    }
    (journal, ends)
}

type Frame = (u64, u64, u16, Vec<u8>, bool);

fn run(
    engine: &matching::EngineConfig,
    inbound: &Journal,
    out: &Path,
    batch_max: usize,
) -> Vec<Frame> {
    let mut config = AgentConfig::new(engine.clone(), small_journal(out));
    config.batch_max = batch_max;
    let mut agent = MatchingAgent::open(config, inbound).unwrap();
    while agent.processed_seq() < inbound.written_seq() {
        assert!(agent.do_work().unwrap() > 0);
    }
    let mut r = agent.outbound_journal().reader(1).unwrap();
    let mut v = Vec::new();
    while let Some(f) = r.poll().unwrap() {
        v.push((
            f.sequence,
            f.timestamp_ns,
            f.template_id,
            f.payload.to_vec(),
            f.end_of_batch,
        ));
    }
    v
}

#[test]
fn every_inbound_batch_ends_with_one_marked_output_whatever_the_agents_batching() {
    let tmp = tempfile::tempdir().unwrap();
    let (inbound, ends) = write_inbound(&tmp.path().join("in"), 11);
    // The journal itself marks the sequencer's batches.
    let mut r = inbound.reader(1).unwrap();
    let mut marked = Vec::new();
    while let Some(f) = r.poll().unwrap() {
        marked.push(f.end_of_batch);
    }
    assert_eq!(marked, ends);
    let engine = workload::generate(&WorkloadConfig {
        seed: 11,
        instruments: 2,
        accounts: 50,
        resting_per_instrument: 40,
        commands: 1_500,
        zipf_s: 1.0,
    })
    .engine_config;
    let a = run(&engine, &inbound, &tmp.path().join("out-1"), 1);
    let b = run(&engine, &inbound, &tmp.path().join("out-256"), 256);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(x == y, "outbound frame {} differs", x.0);
    }
    // One mark per inbound batch; markers only where a batch's last event had no outputs.
    let batches = ends.iter().filter(|e| **e).count();
    assert_eq!(a.iter().filter(|f| f.4).count(), batches);
    let markers: Vec<&Frame> = a.iter().filter(|f| f.2 == TEMPLATE_BATCH_END).collect();
    assert!(!markers.is_empty(), "no batch ended with a checkpoint");
    for m in &markers {
        assert!(m.3.is_empty() && m.4, "a marker is empty and marked");
    }
    // The frame before a marker does not belong to the same inbound event (events with
    // outputs mark their own last frame instead).
    assert!(markers.len() < batches);
}
