//! A real QuickFIX C++ initiator (the `quickfix` crate) against the gateway.
//!
//! QuickFIX loads our `fix-dictionaries/FIX42.xml` as its data dictionary and validates every
//! message we send with it. Over TCP: it logs on, sends a NewOrderSingle and receives the
//! ExecutionReport ack; it logs out; while it is away another firm's order fills its order, so
//! the fill report is stored for it; when it logs on again it sees our MsgSeqNum is ahead, asks
//! for the gap with a ResendRequest, and receives the fill as a possible duplicate. Over TLS
//! (OpenSSL on its side, rustls on ours, certificates from a test CA made by rcgen): logon, an
//! order, its ExecutionReport, logout.

use quickfix::{
    send_to_target, Application, ApplicationCallback, ConnectionHandler, FieldMap,
    FileMessageStoreFactory, FixSocketServerKind, Initiator, LogFactory, Message, MsgFromAppError,
    NullLogger, SessionId, SessionSettings,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Collector {
    app: Mutex<Vec<String>>,
}

impl ApplicationCallback for Collector {
    fn on_msg_from_app(&self, msg: &Message, _session: &SessionId) -> Result<(), MsgFromAppError> {
        if let Ok(s) = msg.to_fix_string() {
            self.app.lock().unwrap().push(s.replace('\x01', "|"));
        }
        Ok(())
    }
}

impl Collector {
    fn wait_for(&self, what: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(m) = self
                .app
                .lock()
                .unwrap()
                .iter()
                .find(|m| what.iter().all(|w| m.contains(w)))
            {
                return m.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no message with {what:?}: {:?}",
                self.app.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

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

fn settings_file(dir: &Path, port: u16, extra: &str, client: &str) -> PathBuf {
    let text = format!(
        "[DEFAULT]\nConnectionType=initiator\nReconnectInterval=1\nFileStorePath={store}\nStartTime=00:00:00\nEndTime=00:00:00\n\
UseDataDictionary=Y\nDataDictionary={dict}\nHeartBtInt=30\nSocketConnectHost=127.0.0.1\nSocketConnectPort={port}\n{extra}\n\
[SESSION]\nBeginString=FIX.4.2\nSenderCompID={client}\nTargetCompID=EXCH\n",
        store = dir.join("qfstore").display(),
        dict = dictionary().display(),
    );
    let p = dir.join("initiator.cfg");
    std::fs::write(&p, text).unwrap();
    p
}

fn order(cl: &str, side: &str, qty: u32, price: &str) -> Message {
    let mut m = Message::new();
    m.with_header_mut(|h| h.set_field(35, "D")).unwrap();
    for (tag, v) in [
        (11, cl),
        (21, "1"),
        (55, "ACME"),
        (54, side),
        (38, &qty.to_string()),
        (40, "2"),
        (44, price),
        (59, "0"),
    ] {
        m.set_field(tag, v).unwrap();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut t = [0_u8; fix_codec::time::TIMESTAMP_MS_LEN];
    fix_codec::time::format_ms(now, &mut t);
    m.set_field(60, std::str::from_utf8(&t).unwrap()).unwrap();
    m
}

fn wait_logged_on<C: ConnectionHandler>(c: &C, want: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.is_logged_on().unwrap() != want {
        assert!(Instant::now() < deadline, "logged on never became {want}");
        std::thread::sleep(Duration::from_millis(20));
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

#[test]
fn quickfix_over_tcp_orders_reports_and_gap_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let venue = venue(dir.path(), None, "QFTCP");
    let addr = venue.gw.as_ref().unwrap().tcp_addr.unwrap();
    let cfg = settings_file(dir.path(), addr.port(), "", "QFTCP");
    let session = SessionId::try_new("FIX.4.2", "QFTCP", "EXCH", "").unwrap();
    let collector = Collector::default();
    {
        let settings = SessionSettings::try_from_path(&cfg).unwrap();
        let store = FileMessageStoreFactory::try_new(&settings).unwrap();
        let log = LogFactory::try_new(&NullLogger).unwrap();
        let app = Application::try_new(&collector).unwrap();
        let mut init = Initiator::try_new(
            &settings,
            &app,
            &store,
            &log,
            FixSocketServerKind::SingleThreaded,
        )
        .unwrap();
        init.start().unwrap();
        wait_logged_on(&init, true);
        send_to_target(order("QF-1", "1", 10, "100.00"), &session).unwrap();
        let ack = collector.wait_for(&["|35=8|", "|11=QF-1|", "|150=0|"]);
        assert!(ack.contains("|39=0|") && ack.contains("|151=10|"), "{ack}");
        init.stop().unwrap();
        wait_logged_on(&init, false);
    }
    // While QuickFIX is away, its order fills.
    other_firm_sells(addr, 10, "100.00");
    {
        let settings = SessionSettings::try_from_path(&cfg).unwrap();
        let store = FileMessageStoreFactory::try_new(&settings).unwrap();
        let log = LogFactory::try_new(&NullLogger).unwrap();
        let app = Application::try_new(&collector).unwrap();
        let mut init = Initiator::try_new(
            &settings,
            &app,
            &store,
            &log,
            FixSocketServerKind::SingleThreaded,
        )
        .unwrap();
        init.start().unwrap();
        wait_logged_on(&init, true);
        let fill = collector.wait_for(&["|35=8|", "|11=QF-1|", "|150=2|"]);
        assert!(
            fill.contains("|43=Y|") && fill.contains("|122="),
            "recovered by resend: {fill}"
        );
        assert!(
            fill.contains("|32=10|") && fill.contains("|31=100.00|") && fill.contains("|14=10|"),
            "{fill}"
        );
        init.stop().unwrap();
    }
}

#[test]
fn quickfix_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "interop test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca_cert, &ca_key)
            .unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let tls =
        gateway::tls_from_pem_files(&dir.path().join("cert.pem"), &dir.path().join("key.pem"))
            .unwrap();
    let venue = venue(dir.path(), Some(tls), "QFTLS");
    let addr = venue.gw.as_ref().unwrap().tls_addr.unwrap();
    let extra = format!(
        "SSLProtocol=+TLSv1_2 +TLSv1_3\nCertificationAuthoritiesFile={}\nCertificateVerifyLevel=1\n",
        dir.path().join("ca.pem").display()
    );
    let cfg = settings_file(dir.path(), addr.port(), &extra, "QFTLS");
    let session = SessionId::try_new("FIX.4.2", "QFTLS", "EXCH", "").unwrap();
    let collector = Collector::default();
    let settings = SessionSettings::try_from_path(&cfg).unwrap();
    let store = FileMessageStoreFactory::try_new(&settings).unwrap();
    let log = LogFactory::try_new(&NullLogger).unwrap();
    let app = Application::try_new(&collector).unwrap();
    let mut init = Initiator::try_new(
        &settings,
        &app,
        &store,
        &log,
        FixSocketServerKind::SslSingleThreaded,
    )
    .unwrap();
    init.start().unwrap();
    wait_logged_on(&init, true);
    send_to_target(order("QF-TLS-1", "1", 5, "100.00"), &session).unwrap();
    let ack = collector.wait_for(&["|35=8|", "|11=QF-TLS-1|", "|150=0|"]);
    assert!(ack.contains("|151=5|"), "{ack}");
    init.stop().unwrap();
}
