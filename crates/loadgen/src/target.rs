//! The acceptors a run loads, started as subprocesses: the appliance with a generated
//! configuration (N sessions and accounts, the workload's instruments, its own multicast group
//! and ports), and the QuickFIX reference acceptor.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{bail, Context};

use crate::plan::Instrument;

/// A child process killed when dropped.
pub struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Process {
    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Closing stdin asks the QuickFIX acceptor to stop; the appliance is killed.
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Appliance {
    pub process: Process,
    /// A cluster's followers.
    pub others: Vec<Process>,
    pub fix_tcp: SocketAddr,
    pub fix_tls: Option<SocketAddr>,
    /// The certificate the appliance generated for its TLS listener.
    pub tls_cert: PathBuf,
    pub market_data: (Ipv4Addr, u16),
    /// Its market-data retransmission servers, the serving node's first.
    pub market_data_retransmit: Vec<SocketAddr>,
}

#[derive(Clone, Debug)]
pub struct ApplianceOptions {
    pub binary: PathBuf,
    /// "memory", "async" or "sync" (`journal.durability`).
    pub durability: String,
    /// "backoff", "spin-yield" or "busy-spin" (`threads.idle`).
    pub idle: String,
    /// `fix.store_sync`: fdatasync every stored outbound FIX message.
    pub store_sync: bool,
    /// `fix.direct_write` (the router thread writes reports to the sockets itself); None
    /// leaves the appliance's default.
    pub direct_write: Option<bool>,
    /// `threads.off_path_nice`; None leaves the appliance's default.
    pub off_path_nice: Option<i32>,
    /// `threads.io_assist`; None leaves the appliance's default.
    pub io_assist: Option<bool>,
    /// `fix.read_spin_us`; None leaves the appliance's default.
    pub read_spin_us: Option<u64>,
    /// Each session's message rate limit (`rate_per_second`, `rate_burst`; excess requests are
    /// refused with a BusinessMessageReject). None: 1,000,000 / 1,000,000 (no limit in effect).
    pub session_rate_limit: Option<(u32, u32)>,
    /// `fix.body_bytes_max`. The gateway's read buffer is this plus 64 bytes, and it drops a
    /// connection whose read fills that buffer (crates/gateway/src/server.rs treats a full
    /// buffer as junk even when it holds many whole pipelined messages), so an open-loop client
    /// that gets more than a buffer ahead of the gateway is disconnected. A large value keeps
    /// that from happening in benchmarks; see BENCHMARKS.md.
    pub body_bytes_max: usize,
    /// 0: one plain appliance. N >= 1: a cluster of N appliance processes (Raft-replicated
    /// inbound journal, `cluster.log_fsync` = `cluster_fsync`); the load goes to the leader.
    pub cluster: usize,
    pub cluster_fsync: bool,
}

/// Fixed listen ports of one cluster node (a follower's FIX acceptor is not listening until it
/// is promoted, so ports cannot be learnt from its output).
#[derive(Clone, Copy, Debug)]
pub struct NodePorts {
    pub fix_tcp: u16,
    pub fix_tls: u16,
    pub retransmit: u16,
    pub http: u16,
    pub raft: u16,
}

/// Session CompIDs `LG1..LGn`.
pub fn comp_ids(sessions: usize) -> Vec<String> {
    (1..=sessions).map(|i| format!("LG{i}")).collect()
}

/// A multicast group and first port unique to this process and `salt`.
pub fn market_data_address(salt: u32) -> (Ipv4Addr, u16) {
    let pid = std::process::id().wrapping_add(salt.wrapping_mul(7919));
    let group = Ipv4Addr::new(239, 254, (pid >> 8) as u8, pid as u8);
    let port = 42_000 + (pid % 2_000) as u16 * 8;
    (group, port)
}

pub fn appliance_config(
    instruments: &[Instrument],
    sessions: usize,
    opts: &ApplianceOptions,
    md: (Ipv4Addr, u16),
) -> String {
    appliance_config_with(instruments, sessions, opts, md, None)
}

fn appliance_config_with(
    instruments: &[Instrument],
    sessions: usize,
    opts: &ApplianceOptions,
    md: (Ipv4Addr, u16),
    node: Option<NodePorts>,
) -> String {
    let (group, port) = md;
    let (fix_tcp, fix_tls, retransmit) = match node {
        Some(n) => (
            format!("127.0.0.1:{}", n.fix_tcp),
            format!("127.0.0.1:{}", n.fix_tls),
            n.retransmit,
        ),
        None => ("127.0.0.1:0".into(), "127.0.0.1:0".into(), port + 4),
    };
    let mut s = format!(
        "[journal]\ndurability = \"{}\"\n[threads]\nidle = \"{}\"\n{}{}\
[market_data]\ngroup = \"{group}\"\nport = {port}\nretransmit_listen = \"127.0.0.1:{}\"\ntcp_listen = \"\"\n\
[fix]\ntcp_listen = \"{fix_tcp}\"\ntls_listen = \"{fix_tls}\"\nstore_sync = {}\n{}{}body_bytes_max = {}\n",
        opts.durability,
        opts.idle,
        opts.off_path_nice
            .map_or(String::new(), |n| format!("off_path_nice = {n}\n")),
        opts.io_assist
            .map_or(String::new(), |a| format!("io_assist = {a}\n")),
        retransmit,
        opts.store_sync,
        opts.direct_write
            .map_or(String::new(), |d| format!("direct_write = {d}\n")),
        opts.read_spin_us
            .map_or(String::new(), |d| format!("read_spin_us = {d}\n")),
        opts.body_bytes_max
    );
    for (i, c) in comp_ids(sessions).iter().enumerate() {
        s.push_str(&format!(
            "\n[[fix.sessions]]\nsession_id = {id}\ntarget_comp_id = \"{c}\"\naccount = {id}\n\
password = \"\"\ncancel_on_disconnect = true\nreset_on_logon = {reset}\nrate_per_second = {rate}\nrate_burst = {burst}\nrate_action = \"reject\"\n",
            id = i + 1,
            rate = opts.session_rate_limit.map_or(1_000_000, |r| r.0),
            burst = opts.session_rate_limit.map_or(1_000_000, |r| r.1),
            // A cluster resumes sessions from replicated sequence numbers (no resets).
            reset = node.is_none()
        ));
    }
    for (i, ins) in instruments.iter().enumerate() {
        s.push_str(&format!(
            "\n[[instruments]]\nid = {i}\nsymbol = \"{}\"\ntick_size = {}\nlot_size = {}\nprice_scale = {}\n\
reference_price = {}\nband_bps = 5000\nquantity_max = 1000000\n",
            ins.symbol,
            ins.tick_size,
            ins.lot_size,
            10_i64.pow(ins.price_decimals),
            ins.reference_price
        ));
    }
    for a in 1..=sessions {
        let positions: Vec<String> = instruments
            .iter()
            .map(|i| format!("{} = 1000000000000", i.symbol))
            .collect();
        s.push_str(&format!(
            "\n[[accounts]]\nid = {a}\napi_key = \"loadgen-key-{a}\"\ncash = 1000000000000000000\npositions = {{ {} }}\n",
            positions.join(", ")
        ));
    }
    s
}

/// `appliance serve --config <config> --data-dir <data> <extra>`, its stdout piped.
fn spawn_serve(
    opts: &ApplianceOptions,
    config: &Path,
    data: &Path,
    extra: &[&str],
) -> anyhow::Result<(Child, std::process::ChildStdout)> {
    let mut child = Command::new(&opts.binary)
        .arg("serve")
        .args(extra)
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .env(
            "RUST_LOG",
            std::env::var("LOADGEN_APPLIANCE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", opts.binary.display()))?;
    let out = child.stdout.take().context("appliance stdout")?;
    Ok((child, out))
}

/// Starts `opts.cluster` appliance processes as one cluster in `dir/node<i>` and waits until
/// one of them (the leader) accepts FIX connections.
fn start_cluster(
    dir: &Path,
    instruments: &[Instrument],
    sessions: usize,
    opts: &ApplianceOptions,
    md: (Ipv4Addr, u16),
) -> anyhow::Result<Appliance> {
    let n = opts.cluster;
    let ports: Vec<NodePorts> = (0..n)
        .map(|_| {
            Ok(NodePorts {
                fix_tcp: loopback_ports::port(),
                fix_tls: loopback_ports::port(),
                retransmit: loopback_ports::port(),
                http: loopback_ports::port(),
                raft: loopback_ports::port(),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut processes = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let nd = dir.join(format!("node{}", i + 1));
        std::fs::create_dir_all(&nd)?;
        let mut cfg = appliance_config_with(instruments, sessions, opts, md, Some(*p));
        cfg.push_str(&format!(
            "\n[http]\nlisten = \"127.0.0.1:{}\"\n[cluster]\nenabled = true\nnode_id = {}\nlog_fsync = {}\n",
            p.http,
            i + 1,
            opts.cluster_fsync
        ));
        for (j, q) in ports.iter().enumerate() {
            cfg.push_str(&format!(
                "[[cluster.peers]]\nid = {}\nraft = \"127.0.0.1:{}\"\nhttp = \"127.0.0.1:{}\"\nfix = \"127.0.0.1:{}\"\n",
                j + 1,
                q.raft,
                q.http,
                q.fix_tcp
            ));
        }
        let config = nd.join("appliance.toml");
        std::fs::write(&config, cfg)?;
        let (child, out) = spawn_serve(opts, &config, &nd.join("data"), &[])?;
        std::thread::spawn(move || for _ in BufReader::new(out).lines() {});
        processes.push(Process { child, stdin: None });
    }
    // Only the serving leader's FIX acceptor listens.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let leader = loop {
        let found = ports.iter().position(|p| {
            std::net::TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], p.fix_tcp)),
                std::time::Duration::from_millis(100),
            )
            .is_ok()
        });
        if let Some(i) = found {
            break i;
        }
        for p in &mut processes {
            if let Some(st) = p.exited() {
                bail!("a cluster node exited at start: {st}");
            }
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "no cluster node became the leader"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let process = processes.remove(leader);
    let p = ports[leader];
    Ok(Appliance {
        process,
        others: processes,
        fix_tcp: SocketAddr::from(([127, 0, 0, 1], p.fix_tcp)),
        fix_tls: Some(SocketAddr::from(([127, 0, 0, 1], p.fix_tls))),
        tls_cert: dir
            .join(format!("node{}", leader + 1))
            .join("data")
            .join("tls")
            .join("cert.pem"),
        market_data: md,
        market_data_retransmit: std::iter::once(leader)
            .chain((0..ports.len()).filter(|&i| i != leader))
            .map(|i| SocketAddr::from(([127, 0, 0, 1], ports[i].retransmit)))
            .collect(),
    })
}

/// Starts `appliance serve` in `dir` (or a cluster, see [`ApplianceOptions::cluster`]) and
/// waits for its listening lines.
pub fn start_appliance(
    dir: &Path,
    instruments: &[Instrument],
    sessions: usize,
    opts: &ApplianceOptions,
    md: (Ipv4Addr, u16),
) -> anyhow::Result<Appliance> {
    if opts.cluster > 0 {
        return start_cluster(dir, instruments, sessions, opts, md);
    }
    std::fs::create_dir_all(dir)?;
    let config = dir.join("appliance.toml");
    std::fs::write(&config, appliance_config(instruments, sessions, opts, md))?;
    let (child, out) = spawn_serve(
        opts,
        &config,
        &dir.join("data"),
        &["--http-listen", "127.0.0.1:0"],
    )?;
    let process = Process { child, stdin: None };
    let mut lines = BufReader::new(out).lines();
    let (mut fix_tcp, mut fix_tls) = (None, None);
    for line in lines.by_ref().take(20) {
        let line = line?;
        if let Some(addr) = line.trim().strip_prefix("FIX 4.2 over TCP on ") {
            fix_tcp = Some(addr.trim().parse()?);
        }
        if let Some(addr) = line.trim().strip_prefix("FIX 4.2 over TLS on ") {
            fix_tls = Some(addr.trim().parse()?);
        }
        if fix_tcp.is_some() && fix_tls.is_some() {
            break;
        }
    }
    let Some(fix_tcp) = fix_tcp else {
        bail!("the appliance did not print its FIX TCP address");
    };
    // Keep reading what it prints, so it never writes into a closed pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(Appliance {
        process,
        others: Vec::new(),
        fix_tcp,
        fix_tls,
        tls_cert: dir.join("data").join("tls").join("cert.pem"),
        market_data: md,
        market_data_retransmit: vec![SocketAddr::from(([127, 0, 0, 1], md.1 + 4))],
    })
}

/// Starts `loadgen qf-acceptor` (this binary) on a free port.
pub fn start_quickfix(
    dir: &Path,
    sessions: usize,
    dictionary: &Path,
) -> anyhow::Result<(Process, SocketAddr)> {
    let port = loopback_ports::port();
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["qf-acceptor", "--port", &port.to_string(), "--sessions"])
        .arg(sessions.to_string())
        .arg("--dir")
        .arg(dir)
        .arg("--dictionary")
        .arg(dictionary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdin = child.stdin.take();
    let out = child.stdout.take().context("acceptor stdout")?;
    let process = Process { child, stdin };
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    if line.trim() != "ready" {
        bail!("the QuickFIX acceptor did not start: {line:?}");
    }
    Ok((process, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// Asks the QuickFIX acceptor to stop (closes its stdin) and waits briefly.
pub fn stop(mut p: Process) {
    if let Some(mut s) = p.stdin.take() {
        let _ = s.flush();
    }
    drop(p);
}
