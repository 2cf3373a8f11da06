//! The matching agent between two real journals: determinism, restart, torn tails, divergence.
//!
//! A seeded benchmark workload (deposits, a book-filling phase, then the exchange-core mix of
//! new orders, IOCs, cancels and replaces over several instruments) is encoded as SBE inbound
//! events and appended to an inbound journal on disk. The agent turns it into an outbound
//! journal. The tests prove that:
//! - the outbound journal is a pure function of the inbound one: two runs into fresh
//!   directories give byte-identical frames (sequence, timestamp, template, payload);
//! - a restart at any point replays the inbound journal, verifies every recorded outbound frame
//!   byte for byte, and appends exactly what is missing: the result equals an uninterrupted run;
//! - a torn tail in the outbound journal (a crash in the middle of a frame) is cut on reopen
//!   and regenerated, again equal to an uninterrupted run;
//! - a recording made by different rules (another engine configuration) is refused as a
//!   divergence instead of being silently extended;
//! - malformed inbound events and cancels of unknown orders are answered on the outbound
//!   journal and do not stop processing.

use journal::{Journal, JournalConfig, TestClock};
use matching::workload::{self, WorkloadConfig};
use matching::{Command, CommandKind};
use matching_agent::{inbound, AgentConfig, AgentError, MatchingAgent};
use sbe_order_entry as sbe;
use std::path::Path;

type Frame = (u64, u64, u16, Vec<u8>);

fn small_journal(dir: &Path) -> JournalConfig {
    let mut c = JournalConfig::in_dir(dir);
    c.segment_size = 1 << 20;
    c.segments_max = 256;
    c
}

fn workload() -> workload::Workload {
    workload::generate(&WorkloadConfig {
        seed: 42,
        instruments: 3,
        accounts: 200,
        resting_per_instrument: 100,
        commands: 6_000,
        zipf_s: 1.0,
    })
}

/// Writes the workload's commands as SBE inbound events into a journal at `dir`.
fn write_inbound(dir: &Path, commands: &[Command]) -> Journal {
    let clock = TestClock::new(1_763_769_600_000_000_000, 1_000);
    let (journal, mut seq) = Journal::open_with_clock(small_journal(dir), clock).unwrap();
    let mut buf = [0_u8; inbound::ENCODED_LEN_MAX];
    for c in commands {
        let (t, len) = inbound::encode(&c.kind, 0, &mut buf).unwrap();
        seq.append(t, &buf[..len]).unwrap();
    }
    journal
}

fn all_commands(w: &workload::Workload) -> Vec<Command> {
    w.preamble
        .iter()
        .chain(w.commands.iter())
        .copied()
        .collect()
}

fn run_to(agent: &mut MatchingAgent, inbound_seq: u64) {
    while agent.processed_seq() < inbound_seq {
        let n = agent.do_work().unwrap();
        assert!(n > 0, "inbound journal ended before {inbound_seq}");
    }
}

fn frames(j: &Journal) -> Vec<Frame> {
    let mut r = j.reader(1).unwrap();
    let mut out = Vec::new();
    while let Some(f) = r.poll().unwrap() {
        out.push((
            f.sequence,
            f.timestamp_ns,
            f.template_id,
            f.payload.to_vec(),
        ));
    }
    out
}

fn one_run(w: &workload::Workload, inbound: &Journal, out_dir: &Path) -> Vec<Frame> {
    let mut agent = MatchingAgent::open(
        AgentConfig::new(w.engine_config.clone(), small_journal(out_dir)),
        inbound,
    )
    .unwrap();
    run_to(&mut agent, inbound.written_seq());
    frames(agent.outbound_journal())
}

#[test]
fn the_same_inbound_journal_gives_byte_identical_outbound_journals() {
    let tmp = tempfile::tempdir().unwrap();
    let w = workload();
    let commands = all_commands(&w);
    let inbound = write_inbound(&tmp.path().join("in"), &commands);
    let a = one_run(&w, &inbound, &tmp.path().join("out-a"));
    let b = one_run(&w, &inbound, &tmp.path().join("out-b"));
    assert!(
        a.len() > commands.len(),
        "{} frames for {} commands",
        a.len(),
        commands.len()
    );
    assert_eq!(a, b);

    // The journal holds what the engine decided: every trade prints once and fills two orders.
    let count = |t: u16| a.iter().filter(|f| f.2 == t).count();
    let trades = count(sbe::trade_event_codec::SBE_TEMPLATE_ID);
    assert!(trades > 100, "only {trades} trades");
    assert_eq!(count(sbe::order_filled_codec::SBE_TEMPLATE_ID), 2 * trades);
    // Timestamps come from the inbound events, so they are the inbound clock's.
    assert!(a.iter().all(|f| f.1 >= 1_763_769_600_000_000_000));
    // Every outbound frame is a whole SBE message that decodes.
    for f in &a {
        let json = sbe::message_to_json(&f.3).unwrap();
        assert!(json.starts_with("{\"$message\":"), "{json}");
    }
}

#[test]
fn an_engine_that_prefetches_ahead_writes_the_same_journal() {
    // The same workload under a configuration with room for many more orders: the engine's
    // tables outgrow the cache, so the agent prefetches the events it has read ahead (and
    // books are searched by interpolation). The outputs must not change, byte for byte, in
    // every batching (the window of events read ahead carries over between duty cycles).
    let tmp = tempfile::tempdir().unwrap();
    let w = workload();
    let commands = all_commands(&w);
    let inbound = write_inbound(&tmp.path().join("in"), &commands);
    let reference = one_run(&w, &inbound, &tmp.path().join("small"));
    let mut large = w.engine_config.clone();
    large.orders_max = 200_000;
    large.order_id_window = 1 << 18;
    assert!(matching::Engine::new(large.clone()).prefetches());
    assert!(!matching::Engine::new(w.engine_config.clone()).prefetches());
    for batch_max in [1, 2, 5, 256] {
        let dir = tmp.path().join(format!("large-{batch_max}"));
        let mut c = AgentConfig::new(large.clone(), small_journal(&dir));
        c.batch_max = batch_max;
        let mut agent = MatchingAgent::open(c, &inbound).unwrap();
        run_to(&mut agent, inbound.written_seq());
        assert_eq!(
            frames(agent.outbound_journal()),
            reference,
            "batch_max {batch_max}"
        );
        // Independently of the agent: the engine fed every command once, in journal order,
        // with the journal's sequences and timestamps, ends in the same state.
        let mut direct = matching::Engine::new(large.clone());
        let mut sink = Vec::new();
        for (f, c) in frames(&inbound).iter().zip(&commands) {
            let command = Command {
                sequence: f.0,
                timestamp_ns: f.1,
                kind: c.kind,
            };
            direct.process(&command, &mut sink);
        }
        assert!(
            direct.snapshot() == agent.engine().snapshot(),
            "batch_max {batch_max}: the agent's engine differs from one fed directly"
        );
    }
}

#[test]
fn a_restart_anywhere_verifies_the_recording_and_appends_only_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let w = workload();
    let commands = all_commands(&w);
    let inbound = write_inbound(&tmp.path().join("in"), &commands);
    let reference = one_run(&w, &inbound, &tmp.path().join("ref"));

    let out_dir = tmp.path().join("out");
    let total = inbound.written_seq();
    for stop_at in [1, total / 3, total / 2 + 7, total - 1] {
        let mut agent = MatchingAgent::open(
            AgentConfig::new(w.engine_config.clone(), small_journal(&out_dir)),
            &inbound,
        )
        .unwrap();
        run_to(&mut agent, stop_at);
        drop(agent);
    }
    let mut agent = MatchingAgent::open(
        AgentConfig::new(w.engine_config.clone(), small_journal(&out_dir)),
        &inbound,
    )
    .unwrap();
    assert!(agent.is_replaying());
    run_to(&mut agent, total);
    assert!(!agent.is_replaying());
    assert!(agent.verified_frames() > 0);
    assert_eq!(frames(agent.outbound_journal()), reference);
}

#[test]
fn a_torn_outbound_tail_is_cut_and_regenerated() {
    let tmp = tempfile::tempdir().unwrap();
    let w = workload();
    let commands = all_commands(&w);
    let inbound = write_inbound(&tmp.path().join("in"), &commands);
    let reference = one_run(&w, &inbound, &tmp.path().join("ref"));

    let out_dir = tmp.path().join("out");
    let written_before = {
        let mut agent = MatchingAgent::open(
            AgentConfig::new(w.engine_config.clone(), small_journal(&out_dir)),
            &inbound,
        )
        .unwrap();
        run_to(&mut agent, inbound.written_seq() / 2);
        agent.outbound_journal().written_seq()
    };
    // Tear the last frame: flip a byte shortly before the end of the written data of the
    // newest segment, as a crash in the middle of writing it would leave it.
    let mut segs: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let last = segs.last().unwrap();
    let mut bytes = std::fs::read(last).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).unwrap();
    bytes[end] ^= 0xFF;
    std::fs::write(last, &bytes).unwrap();

    let mut agent = MatchingAgent::open(
        AgentConfig::new(w.engine_config.clone(), small_journal(&out_dir)),
        &inbound,
    )
    .unwrap();
    // Reopening cut exactly the torn frame.
    assert_eq!(agent.outbound_journal().written_seq(), written_before - 1);
    run_to(&mut agent, inbound.written_seq());
    assert_eq!(frames(agent.outbound_journal()), reference);
}

#[test]
fn every_workload_command_survives_its_sbe_event() {
    let w = workload();
    let mut buf = [0_u8; inbound::ENCODED_LEN_MAX];
    for (i, c) in all_commands(&w).iter().enumerate() {
        let (t, len) = inbound::encode(&c.kind, 0, &mut buf).unwrap();
        let seq = i as u64 + 1;
        match inbound::decode(seq, 77, t, &buf[..len]).unwrap() {
            inbound::Inbound::Command(back, _) => {
                assert_eq!(back.kind, c.kind);
                assert_eq!((back.sequence, back.timestamp_ns), (seq, 77));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_recording_made_under_other_rules_is_a_divergence() {
    let tmp = tempfile::tempdir().unwrap();
    let w = workload();
    let commands = all_commands(&w);
    let inbound = write_inbound(&tmp.path().join("in"), &commands);
    let out_dir = tmp.path().join("out");
    one_run(&w, &inbound, &out_dir);

    let mut other = w.engine_config.clone();
    for p in &mut other.products {
        p.band = matching::Band::Ticks(1);
    }
    let mut agent =
        MatchingAgent::open(AgentConfig::new(other, small_journal(&out_dir)), &inbound).unwrap();
    let err = loop {
        match agent.do_work() {
            Ok(0) => panic!("replay under other rules was accepted"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(matches!(err, AgentError::Divergence { .. }), "{err}");
}

#[test]
fn malformed_events_and_unknown_orders_are_answered_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let w = workload();
    let clock = TestClock::new(1_000, 1);
    let (inbound, mut seq) =
        Journal::open_with_clock(small_journal(&tmp.path().join("in")), clock).unwrap();
    let mut buf = [0_u8; inbound::ENCODED_LEN_MAX];
    // 1: garbage under an inbound template id.
    seq.append(sbe::new_order_event_codec::SBE_TEMPLATE_ID, &[1, 2, 3])
        .unwrap();
    // 2: a cancel that names no engine order id (the gateway did not know the order).
    let (t, len) = inbound::encode(
        &CommandKind::Cancel {
            session_id: 4,
            account_id: 5,
            client_order_id: 6,
            order_id: 1,
        },
        0,
        &mut buf,
    )
    .unwrap();
    let mut no_id = buf[..len].to_vec();
    // orderId is the first field of CancelOrderEvent's block: set it to the null value.
    no_id[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    seq.append(t, &no_id).unwrap();
    // 3: an outbound template in the inbound journal.
    seq.append(sbe::order_filled_codec::SBE_TEMPLATE_ID, &[0; 16])
        .unwrap();
    // 4: a valid deposit, to show processing goes on.
    let (t, len) = inbound::encode(&w.preamble[0].kind, 0, &mut buf).unwrap();
    seq.append(t, &buf[..len]).unwrap();

    let mut agent = MatchingAgent::open(
        AgentConfig::new(
            w.engine_config.clone(),
            small_journal(&tmp.path().join("out")),
        ),
        &inbound,
    )
    .unwrap();
    run_to(&mut agent, 4);
    let out = frames(agent.outbound_journal());
    let json: Vec<String> = out
        .iter()
        .map(|f| sbe::message_to_json(&f.3).unwrap())
        .collect();
    assert!(
        json[0].contains("\"AdminRejected\"") && json[0].contains("\"MalformedEvent\""),
        "{json:?}"
    );
    assert!(json[0].contains("\"inboundSeq\":1"), "{json:?}");
    assert!(
        json[1].contains("\"CancelRejected\"") && json[1].contains("\"UnknownOrder\""),
        "{json:?}"
    );
    assert!(json[1].contains("\"orderId\":null"), "{json:?}");
    assert!(
        json[2].contains("\"MalformedEvent\"") && json[2].contains("\"inboundSeq\":3"),
        "{json:?}"
    );
    assert!(json[3].contains("\"AccountUpdated\""), "{json:?}");
}

#[test]
fn snapshots_bound_the_replay_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let w = workload();
    let commands = all_commands(&w);
    let inbound = write_inbound(&tmp.path().join("in"), &commands);
    let reference = one_run(&w, &inbound, &tmp.path().join("ref"));
    let out_dir = tmp.path().join("out");
    let snaps = tmp.path().join("snapshots");
    let config = || {
        let mut c = AgentConfig::new(w.engine_config.clone(), small_journal(&out_dir));
        c.snapshots = Some(matching_agent::SnapshotPolicy {
            dir: snaps.clone(),
            every_events: 1_000,
            keep_max: 2,
        });
        c
    };
    let total = inbound.written_seq();
    {
        let mut agent = MatchingAgent::open(config(), &inbound).unwrap();
        assert_eq!(agent.restored_from(), None);
        run_to(&mut agent, total / 2);
    }
    let kept = std::fs::read_dir(&snaps).unwrap().count();
    assert_eq!(kept, 2, "keep_max");
    // Restart: the newest snapshot is restored and only the rest is replayed.
    let mut agent = MatchingAgent::open(config(), &inbound).unwrap();
    let from = agent.restored_from().expect("a snapshot was restored");
    assert!(
        from >= total / 2 - 1_256 && from <= total / 2,
        "restored from {from} of {total}"
    );
    assert_eq!(agent.processed_seq(), from);
    run_to(&mut agent, total);
    assert_eq!(frames(agent.outbound_journal()), reference);
    drop(agent);

    // A damaged newest snapshot is skipped for the previous one.
    let mut files: Vec<_> = std::fs::read_dir(&snaps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let newest = files.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(newest, bytes).unwrap();
    let agent = MatchingAgent::open(config(), &inbound).unwrap();
    let older = agent.restored_from().expect("the older snapshot");
    let newest_seq: u64 = newest.file_stem().unwrap().to_str().unwrap()["snapshot-".len()..]
        .parse()
        .unwrap();
    assert!(older < newest_seq, "restored {older}, newest {newest_seq}");
    drop(agent);

    // A snapshot from another engine configuration is not used.
    let mut other = config();
    other.engine.products[0].tick_size = 7;
    other.engine.products[0].reference_price = 7 * (other.engine.products[0].reference_price / 7);
    let agent = MatchingAgent::open(other, &inbound).unwrap();
    assert_eq!(agent.restored_from(), None);
}

#[test]
fn snapshots_fall_on_the_same_sequences_and_bytes_whatever_the_batching() {
    let tmp = tempfile::tempdir().unwrap();
    let w = workload();
    let inbound = write_inbound(&tmp.path().join("in"), &all_commands(&w));
    let total = inbound.written_seq();
    let run = |batch_max: usize| {
        let dir = tmp.path().join(format!("b{batch_max}"));
        let mut c = AgentConfig::new(w.engine_config.clone(), small_journal(&dir.join("out")));
        c.batch_max = batch_max;
        c.snapshots = Some(matching_agent::SnapshotPolicy {
            dir: dir.join("snapshots"),
            every_events: 700,
            keep_max: 1_000,
        });
        let mut agent = MatchingAgent::open(c, &inbound).unwrap();
        run_to(&mut agent, total);
        // Written by the agent's snapshot thread: wait for them.
        agent.wait_for_snapshots().unwrap();
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("snapshots"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        let digests = matching_agent::snapshot_digests(&dir.join("snapshots"));
        (files, digests)
    };
    let (one, d_one) = run(1);
    let (odd, d_odd) = run(97);
    let (big, _) = run(256);
    assert_eq!(
        one.len() as u64,
        total / 700,
        "a snapshot at every multiple of 700"
    );
    assert!(
        one == odd && one == big,
        "snapshot files differ with the batch size"
    );
    assert_eq!(d_one, d_odd);
    assert!(d_one.iter().all(|d| d.inbound_seq % 700 == 0));
}

#[test]
fn a_snapshot_that_cannot_be_written_is_reported_by_the_agent() {
    // The files are written by the agent's snapshot thread; a failure there comes back as
    // the agent's error (from its next duty cycle, or when waiting for the snapshots).
    let tmp = tempfile::tempdir().unwrap();
    let w = workload();
    let inbound = write_inbound(&tmp.path().join("in"), &all_commands(&w));
    let snaps = tmp.path().join("snapshots");
    let mut c = AgentConfig::new(
        w.engine_config.clone(),
        small_journal(&tmp.path().join("out")),
    );
    c.snapshots = Some(matching_agent::SnapshotPolicy {
        dir: snaps.clone(),
        every_events: 100,
        keep_max: 2,
    });
    let mut agent = MatchingAgent::open(c, &inbound).unwrap();
    run_to(&mut agent, 200);
    agent.wait_for_snapshots().unwrap();
    assert!(snaps.join("snapshot-00000000000000000200.bin").exists());
    // The directory is replaced by a file: the next snapshot cannot be created.
    std::fs::remove_dir_all(&snaps).unwrap();
    std::fs::write(&snaps, b"not a directory").unwrap();
    let mut failed = None;
    while agent.processed_seq() < 400 {
        match agent.do_work() {
            Ok(n) => assert!(n > 0),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let e = match failed {
        Some(e) => e,
        None => agent.wait_for_snapshots().expect_err("the write failed"),
    };
    assert!(
        matches!(e, matching_agent::AgentError::Snapshot { .. }),
        "{e}"
    );
    assert!(
        e.to_string().contains("snapshot-00000000000000000300.tmp"),
        "{e}"
    );
}
