//! `loadgen run`: the end-to-end load generator (see the library's documentation);
//! `loadgen qf-acceptor`: the QuickFIX reference acceptor it starts as a subprocess.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use loadgen::plan::{self, Plan};
use loadgen::report::{percentiles, us, write_hgrm};
use loadgen::run::{self, RunConfig};
use loadgen::{floor, qf, target};
use matching::workload::{self, WorkloadConfig};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "End-to-end FIX load generator and benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    Appliance,
    Quickfix,
    Floor,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load the targets at each offered rate; exit 1 on any correctness violation.
    Run(Box<RunArgs>),
    /// The QuickFIX reference acceptor (started by `run`).
    QfAcceptor {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        sessions: usize,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        dictionary: PathBuf,
    },
}

#[derive(Parser)]
struct RunArgs {
    /// FIX sessions (one account each).
    #[arg(long, default_value_t = 4)]
    sessions: usize,
    /// Offered rates in requests per second, comma-separated; 0 = as fast as possible.
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    rates: Vec<f64>,
    /// Measured seconds per rate (after the warm-up).
    #[arg(long, default_value_t = 5.0)]
    duration_secs: f64,
    /// Seconds of requests at the start of each measured phase that are not recorded.
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// Requests per run when the rate is 0.
    #[arg(long, default_value_t = 200_000)]
    requests: usize,
    /// In-flight requests at most when the rate is 0.
    #[arg(long, default_value_t = 4096)]
    window: usize,
    /// Rate of the unmeasured book-building phase.
    #[arg(long, default_value_t = 20_000.0)]
    fill_rate: f64,
    /// Which targets, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "appliance,quickfix,floor"
    )]
    targets: Vec<Target>,
    /// Workload seed (generated stream).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Instruments of the generated stream.
    #[arg(long, default_value_t = 4)]
    instruments: u32,
    /// Resting orders per instrument after the fill phase.
    #[arg(long, default_value_t = 1000)]
    resting: u32,
    /// Replay this record file (matching::workload format) instead of generating.
    #[arg(long)]
    workload_file: Option<PathBuf>,
    /// The appliance binary (default: `appliance` next to this one).
    #[arg(long)]
    appliance_bin: Option<PathBuf>,
    /// journal.durability of the started appliance: memory, async or sync.
    #[arg(long, default_value = "memory")]
    durability: String,
    /// threads.idle of the started appliance: backoff, spin-yield or busy-spin.
    #[arg(long, default_value = "backoff")]
    idle: String,
    /// fix.store_sync of the started appliance.
    #[arg(long)]
    store_sync: bool,
    /// fix.direct_write = false on the started appliance: every report is written by its
    /// connection's task instead of the router thread (for comparisons).
    #[arg(long)]
    no_direct_write: bool,
    /// threads.off_path_nice of the started appliance (default: the appliance's).
    #[arg(long)]
    off_path_nice: Option<i32>,
    /// threads.io_assist = false on the started appliance: FIX I/O threads leave sequencing,
    /// matching and routing to the pipeline's own threads (for comparisons).
    #[arg(long)]
    no_io_assist: bool,
    /// fix.read_spin_us of the started appliance (default: the appliance's).
    #[arg(long)]
    read_spin_us: Option<u64>,
    /// Each session's message rate limit on the started appliance, as PER_SECOND,BURST
    /// (excess requests refused with a BusinessMessageReject; default: no limit in effect).
    #[arg(long, value_parser = parse_rate_limit)]
    session_rate_limit: Option<(u32, u32)>,
    /// fix.body_bytes_max of the started appliance (its read buffer; see BENCHMARKS.md).
    #[arg(long, default_value_t = 1 << 20)]
    fix_body_bytes_max: usize,
    /// Sessions to the started appliance over TLS (its generated certificate is trusted);
    /// QuickFIX and the floor stay on TCP.
    #[arg(long)]
    tls: bool,
    /// Connect to a running appliance instead of starting one (no fill checks: other flow
    /// may trade there). Needs --comp-ids and --symbols.
    #[arg(long)]
    connect: Option<std::net::SocketAddr>,
    /// SenderCompIDs configured on the running appliance, comma-separated.
    #[arg(long, value_delimiter = ',')]
    comp_ids: Vec<String>,
    /// Instruments of the running appliance: SYMBOL:tick:lot:decimals:reference_price,...
    #[arg(long, value_delimiter = ',')]
    symbols: Vec<String>,
    /// FIX dictionary for the QuickFIX acceptor.
    #[arg(long)]
    dictionary: Option<PathBuf>,
    /// Run the appliance as a cluster of this many nodes (Raft-replicated inbound journal);
    /// 0 = one plain appliance.
    #[arg(long, default_value_t = 0)]
    cluster: usize,
    /// cluster.log_fsync of the cluster's nodes.
    #[arg(long)]
    cluster_fsync: bool,
    /// Write histograms (.hgrm) and summary.csv here.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Work directory for the targets' data (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::QfAcceptor {
            port,
            sessions,
            dir,
            dictionary,
        } => qf::serve(&dir, port, &dictionary, &target::comp_ids(sessions)),
        Cmd::Run(a) => {
            let violations = run_all(&a)?;
            if violations > 0 {
                eprintln!("FAILED: {violations} correctness violations");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

fn parse_symbol(s: &str) -> anyhow::Result<plan::Instrument> {
    let p: Vec<&str> = s.split(':').collect();
    anyhow::ensure!(
        p.len() == 5,
        "SYMBOL:tick:lot:decimals:reference_price, got {s}"
    );
    Ok(plan::Instrument {
        symbol: p[0].into(),
        tick_size: p[1].parse()?,
        lot_size: p[2].parse()?,
        price_decimals: p[3].parse()?,
        reference_price: p[4].parse()?,
    })
}

/// A plan holding only the first `measured` requests after the fill phase.
fn prefix(plan: &Plan, measured: usize) -> Plan {
    let end = (plan.fill_cmds + measured).min(plan.cmds.len());
    Plan {
        instruments: plan.instruments.clone(),
        sessions: plan.sessions,
        orders: plan.orders.clone(),
        cmds: plan.cmds[..end].to_vec(),
        fill_cmds: plan.fill_cmds,
    }
}

struct Row {
    target: &'static str,
    rate: f64,
    throughput: f64,
    latency: Histogram<u64>,
    latency_md: Option<Histogram<u64>>,
    rejects: u64,
    errors: u64,
    violations: u64,
}

fn run_all(a: &RunArgs) -> anyhow::Result<u64> {
    let max_rate = a.rates.iter().cloned().fold(0.0, f64::max);
    let per_run = |rate: f64| -> usize {
        if rate > 0.0 {
            (rate * (a.duration_secs + a.warmup_secs)) as usize
        } else {
            a.requests
        }
    };
    let needed = a
        .rates
        .iter()
        .map(|&r| per_run(r))
        .max()
        .unwrap_or(0)
        .max(per_run(max_rate));
    let (wcfg, pre, cmds) = match &a.workload_file {
        Some(p) => loadgen::read_workload(p).with_context(|| format!("reading {}", p.display()))?,
        None => {
            let cfg = WorkloadConfig {
                seed: a.seed,
                instruments: a.instruments,
                accounts: a.sessions as u32,
                resting_per_instrument: a.resting,
                commands: needed as u64,
                zipf_s: 1.0,
            };
            let w = workload::generate(&cfg);
            (cfg, w.preamble, w.commands)
        }
    };
    let instruments = if a.connect.is_some() {
        a.symbols
            .iter()
            .map(|s| parse_symbol(s))
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        plan::native_instruments(&wcfg)
    };
    anyhow::ensure!(
        !instruments.is_empty(),
        "--symbols is required with --connect"
    );
    let full = plan::build(&wcfg, &pre, &cmds, &instruments, a.sessions);
    println!(
        "workload: seed {}, {} instruments, {} accounts, {} fill-phase orders, {} requests available; {} sessions",
        wcfg.seed,
        wcfg.instruments,
        wcfg.accounts,
        full.fill_cmds,
        full.cmds.len() - full.fill_cmds,
        a.sessions
    );
    let tmp = tempdir_in(a.work_dir.clone())?;
    let dictionary = a.dictionary.clone().unwrap_or_else(|| {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fix-dictionaries/FIX42.xml"
        ))
    });
    let appliance_bin = match &a.appliance_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .join("appliance"),
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut violations = 0;
    let mut sizes = (0, 0);
    for (step, &rate) in a.rates.iter().enumerate() {
        let n = per_run(rate);
        let warmup = if rate > 0.0 {
            (rate * a.warmup_secs) as usize
        } else {
            n / 10
        };
        let plan = Arc::new(prefix(&full, n));
        for &t in &a.targets {
            let label = match t {
                Target::Appliance => "appliance",
                Target::Quickfix => "quickfix",
                Target::Floor => "floor",
            };
            let dir = tmp.join(format!("{label}-{step}"));
            let row = match t {
                Target::Floor => {
                    let (req, rep) = if sizes.0 > 0 { sizes } else { (170, 230) };
                    let f = floor::open_loop(a.sessions, rate, n, warmup, req, rep)?;
                    Row {
                        target: label,
                        rate,
                        throughput: f.throughput,
                        latency: f.latency,
                        latency_md: None,
                        rejects: 0,
                        errors: 0,
                        violations: 0,
                    }
                }
                Target::Appliance | Target::Quickfix => {
                    let mut cfg = RunConfig {
                        addr: "127.0.0.1:0".parse()?,
                        comp_ids: target::comp_ids(a.sessions),
                        rate,
                        fill_rate: a.fill_rate,
                        window: a.window,
                        warmup_cmds: warmup,
                        market_data: None,
                        market_data_retransmit: Vec::new(),
                        matching: t == Target::Appliance,
                        drain_timeout: Duration::from_secs(30),
                        tls: None,
                    };
                    let mut _process: Option<target::Process>;
                    let mut _followers: Vec<target::Process> = Vec::new();
                    if t == Target::Quickfix {
                        let (p, addr) = target::start_quickfix(&dir, a.sessions, &dictionary)?;
                        _process = Some(p);
                        cfg.addr = addr;
                    } else if let Some(addr) = a.connect {
                        _process = None;
                        cfg.addr = addr;
                        cfg.comp_ids = a.comp_ids.clone();
                        cfg.matching = false;
                        anyhow::ensure!(
                            cfg.comp_ids.len() == a.sessions,
                            "--comp-ids needs one CompID per session"
                        );
                    } else {
                        let opts = target::ApplianceOptions {
                            binary: appliance_bin.clone(),
                            durability: a.durability.clone(),
                            idle: a.idle.clone(),
                            store_sync: a.store_sync,
                            direct_write: a.no_direct_write.then_some(false),
                            off_path_nice: a.off_path_nice,
                            io_assist: a.no_io_assist.then_some(false),
                            read_spin_us: a.read_spin_us,
                            session_rate_limit: a.session_rate_limit,
                            body_bytes_max: a.fix_body_bytes_max,
                            cluster: a.cluster,
                            cluster_fsync: a.cluster_fsync,
                        };
                        let md = target::market_data_address(step as u32);
                        let ap =
                            target::start_appliance(&dir, &instruments, a.sessions, &opts, md)?;
                        cfg.addr = ap.fix_tcp;
                        if a.tls {
                            cfg.addr =
                                ap.fix_tls.context("the appliance printed no TLS address")?;
                            cfg.tls = Some(loadgen::transport::client_config(&ap.tls_cert)?);
                        }
                        cfg.market_data = Some(ap.market_data);
                        cfg.market_data_retransmit = ap.market_data_retransmit.clone();
                        _followers = ap.others;
                        _process = Some(ap.process);
                    }
                    let mut o = run::run(plan.clone(), &cfg)?;
                    if let Some(status) = _process.as_mut().and_then(target::Process::exited) {
                        o.violations += 1;
                        o.violation_texts.push(format!(
                            "the {label} process exited during the run: {status}"
                        ));
                    }
                    if t == Target::Appliance {
                        sizes = (o.request_bytes, o.report_bytes);
                    }
                    println!(
                        "  {label:9} rate {:>8}: sent {} skipped {} answered {} rejects {} cancel-rejects {} fills {} md-trades {} errors {} violations {}",
                        rate_label(rate), o.sent, o.skipped, o.answered, o.rejects, o.cancel_rejects, o.fills, o.md_trades, o.errors, o.violations
                    );
                    for v in &o.violation_texts {
                        println!("    violation: {v}");
                    }
                    violations += o.violations;
                    if let Some(out) = &a.out_dir {
                        let r = rate_label(rate);
                        write_hgrm(out, &format!("{label}-{r}-new"), &o.latency_new)?;
                        if !o.latency_md.is_empty() {
                            write_hgrm(out, &format!("{label}-{r}-md"), &o.latency_md)?;
                        }
                    }
                    Row {
                        target: label,
                        rate,
                        throughput: o.throughput,
                        latency: o.latency,
                        latency_md: (!o.latency_md.is_empty()).then_some(o.latency_md),
                        rejects: o.rejects,
                        errors: o.errors,
                        violations: o.violations,
                    }
                }
            };
            if let Some(out) = &a.out_dir {
                write_hgrm(
                    out,
                    &format!("{label}-{}-all", rate_label(rate)),
                    &row.latency,
                )?;
            }
            // A step's acceptor is gone once its row exists: free its journals (hundreds of MB
            // per step) unless the work directory was asked for.
            if a.work_dir.is_none() {
                let _ = std::fs::remove_dir_all(tmp.join(format!("{label}-{step}")));
            }
            println!(
                "  {label:9} rate {:>8}: throughput {:>9.0}/s  latency p50/p99/p99.9/max µs {}{}",
                rate_label(rate),
                row.throughput,
                percentiles(&row.latency),
                row.latency_md
                    .as_ref()
                    .map(|h| format!("  market data {}", percentiles(h)))
                    .unwrap_or_default()
            );
            rows.push(row);
        }
    }
    if a.targets.contains(&Target::Floor) && sizes.0 > 0 {
        let pp = floor::ping_pong(20_000, 2_000, sizes.0, sizes.1)?;
        println!(
            "floor ping-pong (closed loop, {} B request / {} B reply): p50/p99/p99.9/max µs {}",
            sizes.0,
            sizes.1,
            percentiles(&pp)
        );
    }
    summarize(&rows, a.out_dir.as_deref())?;
    if a.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(violations)
}

fn rate_label(rate: f64) -> String {
    if rate > 0.0 {
        format!("{}", rate as u64)
    } else {
        "max".into()
    }
}

fn tempdir_in(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let base = dir.unwrap_or_else(std::env::temp_dir);
    let d = base.join(format!("loadgen-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn summarize(rows: &[Row], out: Option<&std::path::Path>) -> anyhow::Result<()> {
    let mut csv = String::from(
        "target,rate,throughput,p50_us,p99_us,p999_us,max_us,md_p50_us,md_p99_us,md_p999_us,rejects,errors,violations\n",
    );
    println!("\n| target | offered/s | achieved/s | p50 µs | p99 µs | p99.9 µs | max µs | md p50 µs | md p99 µs |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let q = |h: &Histogram<u64>, p: f64| us(h.value_at_quantile(p));
        let (m50, m99, m999) = r
            .latency_md
            .as_ref()
            .map_or((0.0, 0.0, 0.0), |h| (q(h, 0.5), q(h, 0.99), q(h, 0.999)));
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
            r.target,
            rate_label(r.rate),
            r.throughput,
            q(&r.latency, 0.5),
            q(&r.latency, 0.99),
            q(&r.latency, 0.999),
            us(r.latency.max()),
            if r.latency_md.is_some() {
                format!("{m50:.1}")
            } else {
                "-".into()
            },
            if r.latency_md.is_some() {
                format!("{m99:.1}")
            } else {
                "-".into()
            },
        );
        csv.push_str(&format!(
            "{},{},{:.0},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{:.1},{},{},{}\n",
            r.target,
            r.rate,
            r.throughput,
            q(&r.latency, 0.5),
            q(&r.latency, 0.99),
            q(&r.latency, 0.999),
            us(r.latency.max()),
            m50,
            m99,
            m999,
            r.rejects,
            r.errors,
            r.violations
        ));
    }
    // Ratios of the appliance to the others at each rate.
    for r in rows.iter().filter(|r| r.target == "appliance") {
        for other in rows
            .iter()
            .filter(|o| o.rate == r.rate && o.target != "appliance")
        {
            let p50 = |h: &Histogram<u64>| h.value_at_quantile(0.5) as f64;
            println!(
                "ratio appliance/{} at {}: throughput {:.2}x, p50 latency {:.2}x, p99 latency {:.2}x",
                other.target,
                rate_label(r.rate),
                r.throughput / other.throughput.max(1.0),
                p50(&r.latency) / p50(&other.latency).max(1.0),
                r.latency.value_at_quantile(0.99) as f64
                    / (other.latency.value_at_quantile(0.99) as f64).max(1.0)
            );
        }
    }
    if let Some(out) = out {
        std::fs::create_dir_all(out)?;
        std::fs::write(out.join("summary.csv"), csv)?;
    }
    Ok(())
}

/// `PER_SECOND,BURST`, both positive.
fn parse_rate_limit(s: &str) -> Result<(u32, u32), String> {
    let (rate, burst) = s
        .split_once(',')
        .ok_or_else(|| format!("{s:?}: expected PER_SECOND,BURST"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{v:?}: expected a positive integer"))
    };
    Ok((parse(rate)?, parse(burst)?))
}
