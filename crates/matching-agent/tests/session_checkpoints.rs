//! Session checkpoints (the gateway's replicated FIX session state) are invisible to the engine.
//!
//! When FIX sessions are replicated (high availability), the gateway interleaves
//! `SessionCheckpointEvent`s with the orders in the inbound journal. The engine must not act on
//! them: the same seeded workload is written twice into inbound journals, once plain and once
//! with a checkpoint after every few commands, and the agent runs over both. The outbound
//! journals must hold the same frames in the same order, equal byte for byte except the
//! `inboundSeq` each result names (the checkpoints shift the inbound numbering) and the
//! timestamps (the sequencer's test clock ticks per frame). A malformed checkpoint is a decode
//! error, like any other malformed event, and a well-formed one decodes as `NotForEngine`.

use journal::{Journal, JournalConfig, TestClock};
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
    e.routed_outbound_seq(u64::from(n) * 3);
    e.session_id(1 + n % 3);
    e.sender_seq_num_reserved(1_000_000 + n);
    e.next_sender_seq_num(n + 1);
    e.next_target_seq_num(n + 2);
    e.reason(sbe::SessionCheckpointReason::Interval);
    HDR + e.encoded_length()
}

/// Writes the workload into a journal at `dir`, with a checkpoint after every `every` commands
/// when given; returns the journal.
fn write_inbound(dir: &Path, commands: &[matching::Command], every: Option<usize>) -> Journal {
    let clock = TestClock::new(1_763_769_600_000_000_000, 1_000);
    let (journal, mut seq) = Journal::open_with_clock(small_journal(dir), clock).unwrap();
    let mut buf = [0_u8; inbound::ENCODED_LEN_MAX];
    let mut n = 0;
    for (i, c) in commands.iter().enumerate() {
        let (t, len) = inbound::encode(&c.kind, 0, &mut buf).unwrap();
        seq.append(t, &buf[..len]).unwrap();
        if every.is_some_and(|k| i % k == 0) {
            let len = checkpoint(n, &mut buf);
            seq.append(
                sbe::session_checkpoint_event_codec::SBE_TEMPLATE_ID,
                &buf[..len],
            )
            .unwrap();
            n += 1;
        }
    }
    journal
}

/// Runs the agent over `inbound`; the outbound frames as (template, JSON without inboundSeq).
fn run(engine: &matching::EngineConfig, inbound: &Journal, out_dir: &Path) -> Vec<(u16, String)> {
    let mut agent = MatchingAgent::open(
        AgentConfig::new(engine.clone(), small_journal(out_dir)),
        inbound,
    )
    .unwrap();
    while agent.processed_seq() < inbound.written_seq() {
        assert!(agent.do_work().unwrap() > 0);
    }
    let mut r = agent.outbound_journal().reader(1).unwrap();
    let mut v = Vec::new();
    while let Some(f) = r.poll().unwrap() {
        if f.template_id == journal::TEMPLATE_BATCH_END {
            // A checkpoint alone in its batch is marked by an empty end-of-batch frame (see
            // tests/end_of_batch.rs); it carries no result.
            assert!(f.payload.is_empty() && f.end_of_batch);
            continue;
        }
        let json = sbe::message_to_json(f.payload).unwrap();
        v.push((f.template_id, strip_inbound_seq(&json)));
    }
    v
}

/// `"inboundSeq":123` → `"inboundSeq":_`.
fn strip_inbound_seq(json: &str) -> String {
    let key = "\"inboundSeq\":";
    let mut out = String::with_capacity(json.len());
    let mut rest = json;
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i + key.len()]);
        out.push('_');
        rest = rest[i + key.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

#[test]
fn checkpoints_in_the_inbound_journal_change_nothing_the_engine_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let w = workload::generate(&WorkloadConfig {
        seed: 7,
        instruments: 2,
        accounts: 50,
        resting_per_instrument: 40,
        commands: 2_000,
        zipf_s: 1.0,
    });
    let commands: Vec<_> = w
        .preamble
        .iter()
        .chain(w.commands.iter())
        .copied()
        .collect();
    let plain = write_inbound(&tmp.path().join("in-plain"), &commands, None);
    let with = write_inbound(&tmp.path().join("in-ckpt"), &commands, Some(7));
    assert!(
        with.written_seq() > plain.written_seq() + 100,
        "checkpoints were written"
    );
    let a = run(&w.engine_config, &plain, &tmp.path().join("out-plain"));
    let b = run(&w.engine_config, &with, &tmp.path().join("out-ckpt"));
    assert!(a.len() > commands.len(), "the workload produced results");
    assert_eq!(a.len(), b.len(), "a checkpoint produced (or lost) a frame");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "outbound frame {} differs", i + 1);
    }
}

#[test]
fn a_checkpoint_decodes_as_not_for_the_engine_and_a_truncated_one_is_an_error() {
    let mut buf = [0_u8; 128];
    let len = checkpoint(5, &mut buf);
    let t = sbe::session_checkpoint_event_codec::SBE_TEMPLATE_ID;
    assert!(matches!(
        inbound::decode(1, 0, t, &buf[..len]),
        Ok(inbound::Inbound::NotForEngine)
    ));
    assert!(inbound::decode(1, 0, t, &buf[..len - 3]).is_err());
    let json = sbe::message_to_json(&buf[..len]).unwrap();
    assert!(json.contains("\"senderSeqNumReserved\":1000005"), "{json}");
}
