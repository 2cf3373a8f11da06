//! A real QuickFIX C++ initiator (the `quickfix` crate) against the gateway.
//!
//! QuickFIX loads our `fix-dictionaries/FIX42.xml` as its data dictionary and validates every
//! message we send with it. Over TCP: it logs on, sends a NewOrderSingle and receives the
//! ExecutionReport ack; it logs out; while it is away another firm's order fills its order, so
//! the fill report is stored for it; when it logs on again it sees our MsgSeqNum is ahead, asks
//! for the gap with a ResendRequest, and receives the fill as a possible duplicate. Over TLS
//! (OpenSSL on its side, rustls on ours, certificates from a test CA made by rcgen): logon, an
//! order, its ExecutionReport, logout.
//!
//! The venue (journal, matching agent, gateway) runs in a process of its own
//! (`src/bin/interop-venue.rs`), so that QuickFIX, which shares the test process, can never close
//! one of the gateway's descriptors.

use quickfix::{
    send_to_target, Application, ApplicationCallback, ConnectionHandler, FieldMap,
    FileMessageStoreFactory, FixSocketServerKind, Initiator, LogFactory, Message, MsgFromAppError,
    NullLogger, SessionId, SessionSettings,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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

/// The venue (journal, matching agent, gateway) in its own process: see `src/bin/interop-venue.rs`.
struct Venue {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    port: u16,
}

impl Venue {
    fn start(dir: &Path, client: &str, tls: Option<(&Path, &Path)>) -> Venue {
        use std::io::BufRead as _;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_interop-venue"));
        cmd.arg(dir).arg(client);
        if let Some((cert, key)) = tls {
            cmd.arg(cert).arg(key);
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("venue said {line:?}"))
            .parse()
            .unwrap();
        Venue {
            child,
            stdin,
            stdout,
            port,
        }
    }

    /// A second firm sells `qty` at `price`; returns once its fill report arrived.
    fn other_firm_sells(&mut self, qty: u32, price: &str) {
        use std::io::{BufRead as _, Write as _};
        writeln!(self.stdin, "SELL {qty} {price}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "SOLD");
    }
}

impl Drop for Venue {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

#[test]
fn quickfix_over_tcp_orders_reports_and_gap_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut venue = Venue::start(&dir.path().join("venue"), "QFTCP", None);
    let cfg = settings_file(dir.path(), venue.port, "", "QFTCP");
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
    venue.other_firm_sells(10, "100.00");
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
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let venue = Venue::start(
        &dir.path().join("venue"),
        "QFTLS",
        Some((&cert_path, &key_path)),
    );
    let extra = format!(
        "SSLProtocol=+TLSv1_2 +TLSv1_3\nCertificationAuthoritiesFile={}\nCertificateVerifyLevel=1\n",
        dir.path().join("ca.pem").display()
    );
    let cfg = settings_file(dir.path(), venue.port, &extra, "QFTLS");
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
