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
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
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
