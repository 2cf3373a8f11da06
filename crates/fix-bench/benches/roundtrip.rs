//! Single-session round trip over loopback: NewOrderSingle → ack ExecutionReport through the
//! whole appliance path (gateway → inbound journal → sequencer → matching agent → outbound
//! journal → gateway), beside a raw TCP ping-pong with the same message sizes measured in the
//! same run as the floor, the two in alternating blocks of 1,000 round trips (so a change of
//! the machine's speed during the run reaches both alike). Closed loop: one order outstanding
//! at a time; HDR histograms in ns.
//!
//! cargo bench -p fix-bench --bench roundtrip [-- ITERATIONS]
//!
//! `ROUNDTRIP_IDLE=backoff` runs the engine thread and the router with the appliance's default
//! idle strategy (spin, yield, then park with back-off) instead of spinning, and
//! `ROUNDTRIP_BELLS=0` takes their doorbells away (they then sleep out each park);
//! `ROUNDTRIP_GAP_US=N` pauses N µs between orders, so the agents are parked when an order
//! arrives, as at moderate rates. The floor is unchanged (busy-polling). `ROUNDTRIP_DIRECT=0`
//! has the connection's task write the reports instead of the router thread.
//! `ROUNDTRIP_ASSIST=0` keeps the connection's I/O thread from running the sequencer, matching
//! and router itself after reading an order (`threads.io_assist` in the appliance, default on).

use fix_codec::{check_frame, time, Frame};
use hdrhistogram::Histogram;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The sequencer and the matching agent behind a lock, as the appliance runs them: by the engine
/// thread, or by the connection's I/O thread when the engine thread is not in a turn.
struct Pipeline(
    std::sync::Mutex<(journal::Sequencer, matching_agent::MatchingAgent)>,
    std::sync::OnceLock<Arc<journal::Doorbell>>,
);

impl gateway::PipelineAssist for Pipeline {
    fn set_router_bell(&self, bell: Arc<journal::Doorbell>) {
        let _ = self.1.set(bell);
    }

    fn assist(&self) -> Option<usize> {
        let Ok(mut g) = self.0.try_lock() else {
            return None;
        };
        let (sequencer, agent) = &mut *g;
        Some(sequencer.do_work().unwrap_or(0) + agent.do_work().unwrap_or(0))
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn ts() -> String {
    let mut b = [0_u8; time::TIMESTAMP_MS_LEN];
    time::format_ms(now_ns(), &mut b);
    String::from_utf8(b.to_vec()).unwrap()
}

fn journal_config(dir: &Path) -> journal::JournalConfig {
    let mut c = journal::JournalConfig::in_dir(dir);
    c.segment_size = 64 << 20;
    c
}

/// Reads exactly `buf.len()` bytes from a non-blocking socket by busy-polling: the floor spins
/// like the gateway path does, so the comparison measures TCP, not thread wake-up latency (a
/// blocking read on an idle VM adds tens of microseconds of wake-up).
fn spin_read_exact(s: &mut TcpStream, buf: &mut [u8]) {
    use std::io::Read as _;
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => panic!("peer closed"),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Reads one whole FIX message from `s` into `buf` (keeping any surplus); returns its length.
fn read_message(s: &mut TcpStream, buf: &mut Vec<u8>, tmp: &mut [u8]) -> usize {
    loop {
        if let Frame::Complete { len } = check_frame(buf, b"FIX.4.2", 1 << 16) {
            return len;
        }
        // Busy-polling, like the floor's client (a blocking read would add the client's own
        // wake-up to this path only).
        match s.read(tmp) {
            Ok(0) => panic!("connection closed"),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Round trips per block of the interleaved FIX / floor measurement, and the first ones of
/// each block left out (the side that was idle wakes up in them).
const BLOCK: usize = 1_000;
const BLOCK_WARM: usize = 50;

/// The floor server's read: busy-polls like [`spin_read_exact`] while requests come, but
/// after `FLOOR_SPIN_MAX` without one (the FIX path's block is running) waits in a blocking
/// read. False when the client closed the connection.
fn floor_server_read_exact(s: &mut TcpStream, buf: &mut [u8]) -> bool {
    const FLOOR_SPIN_MAX: Duration = Duration::from_micros(200);
    let mut got = 0;
    let mut idle_since = None;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => return false,
            Ok(n) => {
                got += n;
                idle_since = None;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() < FLOOR_SPIN_MAX {
                    std::hint::spin_loop();
                    continue;
                }
                s.set_nonblocking(false).unwrap();
                let r = s.read(&mut buf[got..]);
                s.set_nonblocking(true).unwrap();
                match r {
                    Ok(0) => return false,
                    Ok(n) => got += n,
                    Err(e) => panic!("{e}"),
                }
                idle_since = None;
            }
            Err(e) => panic!("{e}"),
        }
    }
    true
}

fn print(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<44} n={:>6}  p50={:>7.1} µs  p90={:>7.1} µs  p99={:>7.1} µs  p99.9={:>7.1} µs  max={:>8.1} µs",
        h.len(),
        h.value_at_quantile(0.50) as f64 / 1e3,
        h.value_at_quantile(0.90) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.value_at_quantile(0.999) as f64 / 1e3,
        h.max() as f64 / 1e3,
    );
}

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();

    // Engine: journals + matching agent on one busy thread.
    use matching::{AccountLimits, Asset, CommandKind, EngineConfig, ProductConfig};
    use matching_agent::{inbound, AgentConfig, MatchingAgent};
    let (inbound_journal, mut sequencer) =
        journal::Journal::open(journal_config(&dir.path().join("in"))).unwrap();
    let mut buf = [0_u8; inbound::ENCODED_LEN_MAX];
    for (asset, amount) in [
        (Asset::Cash, i128::from(u64::MAX)),
        (Asset::Position(1), 1_000_000_000_i128),
    ] {
        let (t, len) = inbound::encode(
            &CommandKind::Deposit {
                account_id: 1,
                asset,
                amount,
            },
            0,
            &mut buf,
        )
        .unwrap();
        sequencer.append(t, &buf[..len]).unwrap();
    }
    let engine = EngineConfig {
        orders_max: 1_000,
        order_id_window: 1 << 20,
        levels_per_side_max: 100,
        accounts_max: 4,
        instruments_max: 2,
        default_limits: AccountLimits::UNLIMITED,
        products: vec![ProductConfig::simple(1, "ACME", 10_000)],
    };
    let agent = MatchingAgent::open(
        AgentConfig::new(engine, journal_config(&dir.path().join("out"))),
        &inbound_journal,
    )
    .unwrap();
    let outbound_journal = agent.outbound_journal().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let backoff = std::env::var("ROUNDTRIP_IDLE").as_deref() == Ok("backoff");
    let bells = std::env::var("ROUNDTRIP_BELLS").as_deref() != Ok("0");
    let gap = Duration::from_micros(
        std::env::var("ROUNDTRIP_GAP_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    );
    println!(
        "agents idle: {}, doorbells: {}, gap between orders: {gap:?}",
        if backoff { "backoff" } else { "spin" },
        backoff && bells
    );
    // ROUNDTRIP_YIELDS=N: yields before the first park (experiments with the back-off shape).
    let yields = std::env::var("ROUNDTRIP_YIELDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    let with_yields = move |w: journal::WaitStrategy| match (w, yields) {
        (
            journal::WaitStrategy::Backoff {
                spins_max,
                park_min,
                park_max,
                ..
            },
            Some(y),
        ) => journal::WaitStrategy::Backoff {
            spins_max,
            yields_max: y,
            park_min,
            park_max,
        },
        _ => w,
    };
    let handoff_bell = sequencer.handoff_doorbell().unwrap();
    // The engine thread takes turns with the connection's I/O thread (the pipeline assist).
    let assist = std::env::var("ROUNDTRIP_ASSIST").as_deref() != Ok("0");
    println!("I/O thread runs the pipeline after reading: {assist}");
    // As in the appliance: with the assist, commits do not ring; whoever ran the turn rings
    // after it (the gateway after routing).
    let mut agent = agent;
    agent.set_ring_on_commit(!assist);
    let outbound_bell = agent.outbound_journal().doorbell();
    let duty = Arc::new(Pipeline(
        std::sync::Mutex::new((sequencer, agent)),
        std::sync::OnceLock::new(),
    ));
    let d = Arc::clone(&duty);
    let engine_thread = std::thread::spawn(move || {
        let mut idle = journal::IdleStrategy::new(if backoff {
            with_yields(journal::WaitStrategy::default())
        } else {
            journal::WaitStrategy::BusySpin
        });
        if bells {
            idle.wait_on(&handoff_bell);
        }
        while !s.load(Ordering::Relaxed) {
            let n = match d.0.try_lock() {
                Ok(mut g) => {
                    let (sequencer, agent) = &mut *g;
                    let n = sequencer.do_work().unwrap() + agent.do_work().unwrap();
                    if n > 0 && assist {
                        outbound_bell.ring();
                        if let Some(b) = d.1.get() {
                            b.ring();
                        }
                    }
                    n
                }
                Err(_) => 0,
            };
            idle.idle(n);
        }
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut c = gateway::GatewayConfig::new(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fix-dictionaries/FIX42.xml"
        ),
        dir.path().join("store"),
    );
    c.tcp_listen = Some("127.0.0.1:0".parse().unwrap());
    c.router_wait = if backoff {
        with_yields(c.router_wait)
    } else {
        journal::WaitStrategy::SpinThenYield { spins_max: 1_000 }
    };
    c.router_doorbell = bells;
    c.direct_write = std::env::var("ROUNDTRIP_DIRECT").as_deref() != Ok("0");
    // ROUNDTRIP_READ_SPIN_US=N: the connection's task polls its socket N µs before parking
    // (default 20, the appliance's `fix.read_spin_us`).
    c.read_spin = Duration::from_micros(
        std::env::var("ROUNDTRIP_READ_SPIN_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20),
    );
    println!("read spin: {:?}", c.read_spin);
    println!("router writes reports itself: {}", c.direct_write);
    if assist {
        c.pipeline_assist = Some(duty);
    }
    c.sessions = vec![gateway::SessionEntry {
        session_id: 1,
        account_id: 1,
        fix: fix_session::SessionConfig::new("EXCH", "CLIENT1"),
        cancel_on_disconnect: false,
        rate_limit: gateway::RateLimit {
            per_second: 1_000_000,
            burst: 1_000_000,
            action: gateway::RateLimitAction::Reject,
        },
    }];
    c.instruments = vec![gateway::InstrumentEntry {
        symbol: "ACME".into(),
        instrument_id: 1,
        price_decimals: 2,
        tick_size: 1,
        lot_size: 1,
    }];
    let gw = rt
        .block_on(gateway::Gateway::start(
            c,
            &inbound_journal,
            &outbound_journal,
        ))
        .unwrap();
    let addr = gw.tcp_addr.unwrap();

    // FIX client.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_nonblocking(true).unwrap();
    let mut rbuf = Vec::with_capacity(1 << 16);
    let mut tmp = vec![0_u8; 1 << 16];
    let logon = {
        let mut w = fix_codec::Writer::new(128);
        w.begin(b"A");
        w.raw(
            format!(
                "49=CLIENT1\x0156=EXCH\x0134=1\x0152={}\x0198=0\x01108=30\x01",
                ts()
            )
            .as_bytes(),
        );
        let mut out = Vec::new();
        w.finish(b"FIX.4.2", &mut out);
        out
    };
    s.write_all(&logon).unwrap();
    let n = read_message(&mut s, &mut rbuf, &mut tmp);
    rbuf.drain(..n);

    // One FIX round trip: an IOC buy below the (empty) offer gets an ack, then the IOC
    // remainder cancel. Returns the time to the ack and the ack's size.
    let mut next_order = 0_usize;
    let mut fix_round = |s: &mut TcpStream, rbuf: &mut Vec<u8>, tmp: &mut [u8]| {
        let i = next_order;
        next_order += 1;
        let nos = fix_bench::new_order_single(i as u64 + 2, &format!("O{i}"), &ts(), b"3");
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let t0 = Instant::now();
        s.write_all(&nos).unwrap();
        let n = read_message(s, rbuf, tmp);
        let rtt = t0.elapsed().as_nanos() as u64;
        assert!(
            rbuf[..n].windows(7).any(|w| w == b"\x01150=0\x01"),
            "not an ack"
        );
        rbuf.drain(..n);
        let ack = n;
        let n = read_message(s, rbuf, tmp);
        rbuf.drain(..n);
        (rtt, nos.len(), ack)
    };
    let warmup = iterations / 10;
    let (mut nos_len, mut ack_len) = (0, 0);
    for _ in 0..warmup {
        (_, nos_len, ack_len) = fix_round(&mut s, &mut rbuf, &mut tmp);
    }

    // Floor: raw TCP ping-pong with the same sizes (request nos_len bytes, reply ack_len
    // bytes), measured in blocks interleaved with the FIX path's, so both see the same
    // machine (on a shared VM the speed of loopback TCP itself moves by a third between
    // minutes). The floor's server busy-polls like the gateway's eager read, but blocks while
    // the FIX path runs (it would take a core from it).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let paddr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.set_nodelay(true).unwrap();
        c.set_nonblocking(true).unwrap();
        let mut req = vec![0_u8; nos_len];
        let reply = vec![b'x'; ack_len];
        while floor_server_read_exact(&mut c, &mut req) {
            c.write_all(&reply).unwrap();
        }
    });
    let mut c = TcpStream::connect(paddr).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_nonblocking(true).unwrap();
    let req = vec![b'y'; nos_len];
    let mut reply = vec![0_u8; ack_len];
    let mut floor_round = |c: &mut TcpStream| {
        let t0 = Instant::now();
        c.write_all(&req).unwrap();
        spin_read_exact(c, &mut reply);
        t0.elapsed().as_nanos() as u64
    };
    for _ in 0..warmup {
        floor_round(&mut c);
    }
    let mut fix_hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    let mut raw_hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    let blocks = iterations.div_ceil(BLOCK);
    for _ in 0..blocks {
        for j in 0..BLOCK + BLOCK_WARM {
            let (rtt, _, _) = fix_round(&mut s, &mut rbuf, &mut tmp);
            if j >= BLOCK_WARM {
                fix_hist.record(rtt.max(1)).unwrap();
            }
        }
        for j in 0..BLOCK + BLOCK_WARM {
            let rtt = floor_round(&mut c);
            if j >= BLOCK_WARM {
                raw_hist.record(rtt.max(1)).unwrap();
            }
        }
    }
    drop(c);
    server.join().unwrap();

    // The gateway alone: an unknown symbol is rejected by the gateway without the journal or
    // the engine (one hop fewer each way).
    let mut gw_hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    let base = next_order as u64 + 2;
    for i in 0..iterations + warmup {
        let nos = fix_bench::new_order_single(base + i as u64, &format!("R{i}"), &ts(), b"0");
        let nos = String::from_utf8(nos)
            .unwrap()
            .replace("\x0155=ACME\x01", "\x0155=NONE\x01");
        let body_end = nos.rfind("10=").unwrap();
        let sum = fix_codec::checksum(&nos.as_bytes()[..body_end]);
        let nos = format!("{}10={sum:03}\x01", &nos[..body_end]);
        let t0 = Instant::now();
        s.write_all(nos.as_bytes()).unwrap();
        let n = read_message(&mut s, &mut rbuf, &mut tmp);
        let rtt = t0.elapsed().as_nanos() as u64;
        assert!(
            rbuf[..n].windows(7).any(|w| w == b"\x01150=8\x01"),
            "not a reject"
        );
        rbuf.drain(..n);
        if i >= warmup {
            gw_hist.record(rtt.max(1)).unwrap();
        }
    }
    drop(s);
    rt.block_on(async { gw.shutdown() });
    stop.store(true, Ordering::Relaxed);
    engine_thread.join().unwrap();

    std::thread::sleep(Duration::from_millis(10));

    println!(
        "single-session round trip, {} iterations after {warmup} warm-up, request {nos_len} B, reply {ack_len} B; \
         FIX and floor interleaved in blocks of {BLOCK} (the first {BLOCK_WARM} of each block not recorded)",
        blocks * BLOCK
    );
    print("NewOrderSingle -> ack ExecutionReport (FIX)", &fix_hist);
    print("unknown symbol -> reject (gateway only)", &gw_hist);
    print("raw TCP ping-pong (same sizes, floor)", &raw_hist);
    println!(
        "ratio p50 {:.2}x, p99 {:.2}x",
        fix_hist.value_at_quantile(0.5) as f64 / raw_hist.value_at_quantile(0.5) as f64,
        fix_hist.value_at_quantile(0.99) as f64 / raw_hist.value_at_quantile(0.99) as f64
    );
}
