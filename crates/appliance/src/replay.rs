//! `replay`: rebuilds the state from the inbound journal and checks that the recorded outbound
//! journal is reproduced byte for byte.

use crate::config::Config;
use anyhow::Context as _;
use journal::Journal;
use matching_agent::{AgentConfig, MatchingAgent};

/// What a replay found.
#[derive(Debug)]
pub struct ReplayReport {
    pub inbound_events: u64,
    pub recorded_frames: u64,
    pub reproduced_frames: u64,
    /// The first outbound sequence whose replayed frame differs from the recorded one.
    pub first_difference: Option<u64>,
}

/// Replays `config`'s inbound journal into a scratch outbound journal and compares it with
/// the recorded one. Neither journal is modified.
pub fn replay(config: &Config) -> anyhow::Result<ReplayReport> {
    let inbound_dir = config.inbound_journal().dir;
    let outbound_dir = config.outbound_journal().dir;
    let inbound = Journal::open_read_only(&inbound_dir)
        .with_context(|| format!("opening {}", inbound_dir.display()))?;
    let recorded = Journal::open_read_only(&outbound_dir)
        .with_context(|| format!("opening {}", outbound_dir.display()))?;
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    let mut out_cfg = config.outbound_journal();
    out_cfg.dir = scratch.path().join("outbound");
    let mut agent =
        MatchingAgent::open(AgentConfig::new(config.engine_config(), out_cfg), &inbound)?;
    let inbound_end = inbound.committed_seq();
    while agent.processed_seq() < inbound_end {
        if agent.do_work()? == 0 {
            break;
        }
    }
    let mut a = recorded.reader(1)?;
    let mut b = agent.outbound_journal().reader(1)?;
    let (mut recorded_frames, mut reproduced) = (0, 0);
    let mut first_difference = None;
    loop {
        let fa = a.poll()?.map(|f| {
            (
                f.sequence,
                f.timestamp_ns,
                f.template_id,
                f.payload.to_vec(),
                f.end_of_batch,
            )
        });
        let Some(fa) = fa else { break };
        recorded_frames += 1;
        let fb = b.poll()?.map(|f| {
            (
                f.sequence,
                f.timestamp_ns,
                f.template_id,
                f.payload.to_vec(),
                f.end_of_batch,
            )
        });
        if Some(&fa) == fb.as_ref() {
            reproduced += 1;
        } else if first_difference.is_none() {
            first_difference = Some(fa.0);
        }
    }
    Ok(ReplayReport {
        inbound_events: agent.processed_seq(),
        recorded_frames,
        reproduced_frames: reproduced,
        first_difference,
    })
}
