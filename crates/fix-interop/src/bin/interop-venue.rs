//! The venue of the QuickFIX interop tests: the real journal, matching agent and FIX gateway in
//! a process of their own.
//!
//! QuickFIX C++ runs in the test process. Keeping the gateway's sockets out of that process
//! means a file descriptor QuickFIX closes twice can never be one of ours (Rust aborts when an
//! owned descriptor turns out to be closed already).
//!
//! Usage: `interop-venue DIR CLIENT [CERT KEY]`. Prints `PORT n` once listening (TLS when a
//! certificate and key are given), then reads commands from stdin: `SELL qty price` has a second
//! firm sell (answered `SOLD` once its fill report arrived); end of input stops the venue.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn dictionary() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fix-dictionaries/FIX42.xml"
    ))
}

fn journal_config(dir: &Path) -> journal::JournalConfig {
    let mut c = journal::JournalConfig::in_dir(dir);
    c.segment_size = 1 << 20;
    c
}

struct Venue {
    _rt: tokio::runtime::Runtime,
    gw: Option<gateway::Gateway>,
    stop: Arc<AtomicBool>,
    engine: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Venue {
    fn drop(&mut self) {
        if let Some(gw) = self.gw.take() {
            let _g = self._rt.enter();
            gw.shutdown();
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(e) = self.engine.take() {
            let _ = e.join();
        }
    }
}

fn venue(dir: &Path, tls: Option<Arc<rustls::ServerConfig>>, client: &str) -> Venue {
    use matching::{AccountLimits, Asset, CommandKind, EngineConfig, ProductConfig};
    use matching_agent::{inbound, AgentConfig, MatchingAgent};
    let (inbound_journal, mut sequencer) =
        journal::Journal::open(journal_config(&dir.join("in"))).unwrap();
    let mut buf = [0_u8; inbound::ENCODED_LEN_MAX];
    for account_id in 1..=2 {
        for (asset, amount) in [
            (Asset::Cash, 1_000_000_000_000_i128),
            (Asset::Position(1), 1_000_000_i128),
        ] {
            let (t, len) = inbound::encode(
                &CommandKind::Deposit {
                    account_id,
                    asset,
                    amount,
                },
                0,
                &mut buf,
            )
            .unwrap();
            sequencer.append(t, &buf[..len]).unwrap();
        }
    }
    let engine = EngineConfig {
        orders_max: 1_000,
        order_id_window: 2_048,
        levels_per_side_max: 100,
        accounts_max: 4,
        instruments_max: 2,
        default_limits: AccountLimits::UNLIMITED,
        products: vec![ProductConfig::simple(1, "ACME", 10_000)],
    };
    let mut agent = MatchingAgent::open(
        AgentConfig::new(engine, journal_config(&dir.join("out"))),
        &inbound_journal,
    )
    .unwrap();
    let outbound_journal = agent.outbound_journal().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let engine = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            if sequencer.do_work().unwrap() + agent.do_work().unwrap() == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut c = gateway::GatewayConfig::new(dictionary(), dir.join("store"));
    if tls.is_some() {
        c.tls_listen = Some("127.0.0.1:0".parse().unwrap());
        c.tls = tls;
    } else {
        c.tcp_listen = Some("127.0.0.1:0".parse().unwrap());
    }
    let session = |id: u32, client: &str| gateway::SessionEntry {
        session_id: id,
        account_id: id,
        fix: fix_session::SessionConfig::new("EXCH", client),
        cancel_on_disconnect: false,
        rate_limit: gateway::RateLimit {
            per_second: 1_000,
            burst: 1_000,
            action: gateway::RateLimitAction::Reject,
        },
    };
    c.sessions = vec![session(1, client), session(2, "OTHER")];
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
    Venue {
        _rt: rt,
        gw: Some(gw),
        stop,
        engine: Some(engine),
    }
}

/// A second firm over a plain socket, written with our codec.
fn other_firm_sells(addr: std::net::SocketAddr, qty: u32, price: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    };
    let msg = |seq: u64, t: &[u8], body: &[(u32, String)]| {
        let mut w = fix_codec::Writer::new(256);
        w.begin(t);
        w.field(49, b"OTHER");
        w.field(56, b"EXCH");
        w.field_u64(34, seq);
        w.field_time(52, now());
        for (k, v) in body {
            w.field(*k, v.as_bytes());
        }
        let mut out = Vec::new();
        w.finish(b"FIX.4.2", &mut out);
        out
    };
    s.write_all(&msg(
        1,
        b"A",
        &[(98, "0".into()), (108, "30".into()), (141, "Y".into())],
    ))
    .unwrap();
    let mut t = [0_u8; fix_codec::time::TIMESTAMP_MS_LEN];
    fix_codec::time::format_ms(now(), &mut t);
    let ts = String::from_utf8(t.to_vec()).unwrap();
    let body = [
        (11, "SELL-1".to_string()),
        (21, "1".into()),
        (55, "ACME".into()),
        (54, "2".into()),
        (60, ts),
        (38, qty.to_string()),
        (40, "2".into()),
        (44, price.into()),
    ];
    s.write_all(&msg(2, b"D", &body)).unwrap();
    // Read until our fill report arrives.
    let mut got = Vec::new();
    let mut b = [0_u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\x01150=2\x01") {
        let n = s.read(&mut b).unwrap();
        assert!(n > 0, "the other firm was disconnected");
        got.extend_from_slice(&b[..n]);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert!(
        args.len() == 3 || args.len() == 5,
        "usage: interop-venue DIR CLIENT [CERT KEY]"
    );
    let dir = PathBuf::from(&args[1]);
    let tls = (args.len() == 5)
        .then(|| gateway::tls_from_pem_files(Path::new(&args[3]), Path::new(&args[4])).unwrap());
    let is_tls = tls.is_some();
    let venue = venue(&dir, tls, &args[2]);
    let gw = venue.gw.as_ref().unwrap();
    let addr = if is_tls {
        gw.tls_addr.unwrap()
    } else {
        gw.tcp_addr.unwrap()
    };
    println!("PORT {}", addr.port());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let ["SELL", qty, price] = parts[..] {
            other_firm_sells(addr, qty.parse().unwrap(), price);
            println!("SOLD");
        }
    }
    drop(venue);
}
