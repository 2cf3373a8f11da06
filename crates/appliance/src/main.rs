//! `appliance`: the command line.

use anyhow::Context as _;
use appliance::config::{Config, DEFAULT_TOML};
use appliance::node::Node;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "appliance",
    version,
    about = "Exchange gateway appliance: FIX/HTTP order entry, matching, market data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the appliance (embedded default configuration unless --config is given).
    Serve {
        /// A TOML file merged over the embedded default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override the data directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Override the HTTP listen address.
        #[arg(long)]
        http_listen: Option<std::net::SocketAddr>,
        /// Also run simulated clients trading at a gentle rate, and show a live view.
        #[arg(long)]
        demo: bool,
        /// Orders per second of the simulated clients.
        #[arg(long, default_value_t = 200)]
        demo_rate: u32,
    },
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Cluster tools.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Market-data tools.
    Md {
        #[command(subcommand)]
        command: MdCommand,
    },
    /// Export a day's executions and 1-minute candles to Parquet files for analysts.
    Export {
        /// The UTC day, YYYY-MM-DD.
        #[arg(long)]
        day: String,
        /// Where to write the files.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Rebuild the state from the inbound journal and verify that the recorded outputs are
    /// reproduced byte for byte. Exits 1 on a difference.
    Replay {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Show every node's role, term, Raft log and journal positions (asks each peer's HTTP
    /// API, as listed in the configuration's cluster.peers, or the --http addresses given).
    Status {
        #[arg(long)]
        config: Option<PathBuf>,
        /// A node's HTTP address (host:port); repeatable. Default: every configured peer.
        #[arg(long)]
        http: Vec<String>,
        /// Print the raw JSON of each node.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum MdCommand {
    /// Join the market-data channels and show top of book and depth (or print messages).
    Listen(md_consumer::listen::Args),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the embedded default configuration, with comments.
    Default,
    /// Check a configuration file and print the first problem, naming its key.
    Check { file: PathBuf },
}

fn load(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<Config> {
    let mut c = match config {
        Some(p) => Config::from_file(&p)?,
        None => Config::embedded(),
    };
    if let Some(d) = data_dir {
        c.data.dir = d;
    }
    Ok(c)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            config,
            data_dir,
            http_listen,
            demo,
            demo_rate,
        } => {
            let mut c = load(config, data_dir)?;
            if let Some(a) = http_listen {
                c.http.listen = a;
            }
            anyhow::ensure!(
                !(demo && c.cluster.enabled),
                "--demo runs a single appliance; drop cluster.enabled or --demo"
            );
            let node = Node::start_with(c, demo.then_some(demo_rate))?;
            {
                // Written without println!: a closed stdout must not stop the appliance.
                use std::io::Write as _;
                let mut so = std::io::stdout().lock();
                let _ = writeln!(so, "appliance serving: HTTP on http://{}", node.http_addr);
                if let Some(a) = node.fix_tcp_addr {
                    let _ = writeln!(so, "FIX 4.2 over TCP on {a}");
                }
                if let Some(a) = node.fix_tls_addr {
                    let _ = writeln!(so, "FIX 4.2 over TLS on {a}");
                }
                let _ = so.flush();
            }
            wait_for_signal(&node)?;
            eprintln!("shutting down");
            node.stop()?;
            Ok(())
        }
        Command::Config { command } => match command {
            ConfigCommand::Default => {
                print!("{DEFAULT_TOML}");
                Ok(())
            }
            ConfigCommand::Check { file } => {
                Config::from_file(&file)?;
                println!("{}: ok", file.display());
                Ok(())
            }
        },
        Command::Cluster {
            command: ClusterCommand::Status { config, http, json },
        } => {
            let c = load(config, None)?;
            let targets: Vec<String> = if http.is_empty() {
                c.cluster
                    .peers
                    .iter()
                    .filter(|p| !p.http.is_empty())
                    .map(|p| p.http.clone())
                    .collect()
            } else {
                http
            };
            anyhow::ensure!(
                !targets.is_empty(),
                "no node to ask: give --http or a configuration with cluster.peers"
            );
            let client = reqwest::blocking::Client::builder()
                .timeout(std::time::Duration::from_secs(2))
                .build()?;
            println!(
                "{:<22} {:>4} {:<10} {:>6} {:>5} {:>10} {:>10} {:>10} {:>8}",
                "node", "id", "role", "leader", "term", "log", "applied", "journal", "serving"
            );
            let mut leaders = 0;
            // inbound seq -> (digest, nodes) of the engine snapshots reported.
            let mut digests: std::collections::BTreeMap<u64, Vec<(String, String)>> =
                Default::default();
            for t in &targets {
                let r = client
                    .get(format!("http://{t}/v1/cluster"))
                    .send()
                    .and_then(|r| r.json::<serde_json::Value>());
                match r {
                    Ok(v) => {
                        if json {
                            println!("{v}");
                            continue;
                        }
                        for d in v["engine_snapshots"].as_array().into_iter().flatten() {
                            if let (Some(seq), Some(crc)) =
                                (d["inbound_seq"].as_u64(), d["crc32"].as_str())
                            {
                                digests
                                    .entry(seq)
                                    .or_default()
                                    .push((t.clone(), crc.to_string()));
                            }
                        }
                        let st = &v["status"];
                        let num = |k: &str| st[k].as_u64().map_or("-".into(), |n| n.to_string());
                        if st["serving"].as_bool() == Some(true) {
                            leaders += 1;
                        }
                        println!(
                            "{:<22} {:>4} {:<10} {:>6} {:>5} {:>10} {:>10} {:>10} {:>8}",
                            t,
                            num("node_id"),
                            st["role"].as_str().unwrap_or("?"),
                            num("leader"),
                            num("term"),
                            num("last_log_index"),
                            num("last_applied_index"),
                            num("journal_seq"),
                            st["serving"].as_bool().unwrap_or(false)
                        );
                    }
                    Err(e) => println!("{t:<22} unreachable: {e}"),
                }
            }
            if !json && leaders != 1 {
                eprintln!("warning: {leaders} serving leaders among the nodes asked");
            }
            // The newest engine snapshot several nodes hold: their digests must agree.
            if let Some((seq, nodes)) = digests.iter().rev().find(|(_, n)| n.len() > 1) {
                let first = &nodes[0].1;
                if nodes.iter().all(|(_, c)| c == first) {
                    println!(
                        "engine snapshots at inbound sequence {seq}: digest {first} on {} nodes",
                        nodes.len()
                    );
                } else {
                    println!("engine snapshots at inbound sequence {seq} DIFFER: {nodes:?}");
                    std::process::exit(1);
                }
            }
            Ok(())
        }
        Command::Md {
            command: MdCommand::Listen(args),
        } => Ok(md_consumer::listen::run(args)?),
        Command::Export {
            day,
            out,
            config,
            data_dir,
        } => {
            let c = load(config, data_dir)?;
            let r = appliance::export::export_day(&c, &day, &out)?;
            println!(
                "{} executions to {}, {} candles to {}",
                r.executions,
                r.executions_path.display(),
                r.candles,
                r.candles_path.display()
            );
            Ok(())
        }
        Command::Replay { config, data_dir } => {
            let c = load(config, data_dir)?;
            let r = appliance::replay::replay(&c).context("replay")?;
            println!(
                "replayed {} inbound events; {} of {} recorded outbound frames reproduced byte for byte",
                r.inbound_events, r.reproduced_frames, r.recorded_frames
            );
            if let Some(seq) = r.first_difference {
                eprintln!("first difference at outbound sequence {seq}");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

/// Blocks until SIGINT or SIGTERM (or a worker thread fails).
fn wait_for_signal(node: &Node) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return anyhow::Ok(()),
                _ = term.recv() => return anyhow::Ok(()),
                _ = tick.tick() => {
                    if node.failed() {
                        anyhow::bail!("a worker thread failed; see the log");
                    }
                }
            }
        }
    })
}
