//! End-to-end load generator (issue 7): N FIX 4.2 sessions replay the matching benchmark's
//! order stream against the appliance, open-loop at a target rate, with latency measured from
//! each request's planned send time, the market-data feed heard at the same time, and every
//! report checked (one terminal state per order, fills that add up on both sides and match the
//! feed's trades, no sequence gaps). The same sessions and schedule run against a QuickFIX C++
//! reference acceptor and a raw TCP floor, so the report can give ratios.
//!
//! `plan` maps the stream onto the target's instruments and sessions; `run` drives one run;
//! `md` listens to the feed; `target` starts the acceptors; `floor` is raw TCP; `qf` is the
//! QuickFIX acceptor; `report` prints and writes the results; `resilient` is a reconnecting
//! initiator for failover tests.

pub mod fixmsg;
pub mod floor;
pub mod md;
pub mod plan;
pub mod qf;
pub mod report;
pub mod resilient;
pub mod run;
pub mod target;
pub mod transport;

use std::io::Read;

use matching::types::Command;
use matching::workload::{self, WorkloadConfig};

/// Reads a workload record file and the configuration in its header.
pub fn read_workload(
    path: &std::path::Path,
) -> anyhow::Result<(WorkloadConfig, Vec<Command>, Vec<Command>)> {
    let bytes = std::fs::read(path)?;
    anyhow::ensure!(bytes.len() >= workload::FILE_HEADER_SIZE, "file too short");
    let h = &bytes[..workload::FILE_HEADER_SIZE];
    let u32_at = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    let mut seed = [0_u8; 8];
    seed.copy_from_slice(&h[32..40]);
    let mut commands = [0_u8; 8];
    commands.copy_from_slice(&h[24..32]);
    let cfg = WorkloadConfig {
        seed: u64::from_le_bytes(seed),
        instruments: u32_at(40),
        accounts: u32_at(44),
        resting_per_instrument: u32_at(48),
        commands: u64::from_le_bytes(commands),
        zipf_s: 1.0,
    };
    let (pre, cmds) = workload::read_file(&mut (&bytes[..]).by_ref())?;
    Ok((cfg, pre, cmds))
}
