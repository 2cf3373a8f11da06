//! Test bed: real journals, the real matching agent on an engine thread, the gateway on
//! loopback, and a minimal FIX client over TCP or TLS.
#![allow(dead_code)]

use fix_codec::{check_frame, time, Frame, Parser, Writer};
use gateway::{GatewayConfig, InstrumentEntry, RateLimit, RateLimitAction, SessionEntry};
use journal::{Journal, JournalConfig};
use matching::{AccountLimits, Asset, CommandKind, EngineConfig, ProductConfig};
use matching_agent::{inbound, AgentConfig, MatchingAgent};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub fn journal_config(dir: &Path) -> JournalConfig {
    let mut c = JournalConfig::in_dir(dir);
    c.segment_size = 1 << 20;
    c.segments_max = 64;
    c
}

pub fn engine_config() -> EngineConfig {
    EngineConfig {
        orders_max: 10_000,
        order_id_window: 16_384,
        levels_per_side_max: 1_000,
        accounts_max: 16,
        instruments_max: 4,
        default_limits: AccountLimits::UNLIMITED,
        products: vec![ProductConfig::simple(1, "ACME", 10_000)],
    }
}

pub fn dictionary_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fix-dictionaries/FIX42.xml"
    ))
}

pub fn session(id: u32, client: &str) -> SessionEntry {
    let mut fix = fix_session::SessionConfig::new("EXCH", client);
    fix.heartbeat_secs_min = 1;
    SessionEntry {
        session_id: id,
        account_id: id,
        fix,
        cancel_on_disconnect: false,
        rate_limit: RateLimit {
            per_second: 10_000,
            burst: 10_000,
            action: RateLimitAction::Reject,
        },
    }
}

pub fn gateway_config(store_dir: &Path) -> GatewayConfig {
    let mut c = GatewayConfig::new(dictionary_path(), store_dir);
    c.tcp_listen = Some("127.0.0.1:0".parse().unwrap());
    c.sessions = vec![session(1, "CLIENT1"), session(2, "CLIENT2")];
    c.instruments = vec![InstrumentEntry {
        symbol: "ACME".into(),
        instrument_id: 1,
        price_decimals: 2,
        tick_size: 5,
        lot_size: 10,
    }];
    c
}

/// The journals and the engine thread.
pub struct Engine {
    pub inbound: Journal,
    pub outbound: Journal,
    stop: Arc<AtomicBool>,
    /// While set, the sequencer still journals inbound events but the matching agent waits.
    pub matching_paused: Arc<AtomicBool>,
    /// While set, published events wait in the hand-off (nothing is journaled).
    pub sequencing_paused: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The inbound journal (accounts 1..=3 funded with cash and ACME positions on first open), its
/// sequencer and the matching agent, without a thread.
pub fn open_pipeline(dir: &Path) -> (Journal, journal::Sequencer, MatchingAgent) {
    open_pipeline_with(dir, |_| {})
}

/// [`open_pipeline`] with the inbound journal's configuration adjusted.
pub fn open_pipeline_with(
    dir: &Path,
    tweak: impl FnOnce(&mut JournalConfig),
) -> (Journal, journal::Sequencer, MatchingAgent) {
    let mut config = journal_config(&dir.join("in"));
    tweak(&mut config);
    let (inbound, mut sequencer) = Journal::open(config).unwrap();
    if inbound.written_seq() == 0 {
        let mut buf = [0_u8; inbound::ENCODED_LEN_MAX];
        for account_id in 1..=3 {
            for (asset, amount) in [
                (Asset::Cash, 1_000_000_000_000_i128),
                (Asset::Position(1), 1_000_000_i128),
            ] {
                let kind = CommandKind::Deposit {
                    account_id,
                    asset,
                    amount,
                };
                let (t, len) = inbound::encode(&kind, 0, &mut buf).unwrap();
                sequencer.append(t, &buf[..len]).unwrap();
            }
        }
    }
    let agent = MatchingAgent::open(
        AgentConfig::new(engine_config(), journal_config(&dir.join("out"))),
        &inbound,
    )
    .unwrap();
    (inbound, sequencer, agent)
}

impl Engine {
    pub fn start(dir: &Path) -> Engine {
        let (inbound, mut sequencer, mut agent) = open_pipeline(dir);
        let outbound = agent.outbound_journal().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let matching_paused = Arc::new(AtomicBool::new(false));
        let sequencing_paused = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let paused = Arc::clone(&matching_paused);
        let seq_paused = Arc::clone(&sequencing_paused);
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let a = if seq_paused.load(Ordering::Relaxed) {
                    0
                } else {
                    sequencer.do_work().unwrap()
                };
                let b = if paused.load(Ordering::Relaxed) {
                    0
                } else {
                    agent.do_work().unwrap()
                };
                if a + b == 0 {
                    std::thread::sleep(Duration::from_micros(20));
                }
            }
        });
        Engine {
            inbound,
            outbound,
            stop,
            matching_paused,
            sequencing_paused,
            thread: Some(thread),
        }
    }

    /// Every outbound frame so far but the empty end-of-batch markers: (template, JSON).
    pub fn outbound_frames(&self) -> Vec<(u16, String)> {
        let mut r = self.outbound.reader(1).unwrap();
        let mut v = Vec::new();
        while let Some(f) = r.poll().unwrap() {
            if f.template_id == journal::TEMPLATE_BATCH_END {
                continue;
            }
            v.push((
                f.template_id,
                sbe_order_entry::message_to_json(f.payload).unwrap(),
            ));
        }
        v
    }

    /// Every inbound frame so far: (template, JSON).
    pub fn inbound_frames(&self) -> Vec<(u16, String)> {
        let mut r = self.inbound.reader(1).unwrap();
        let mut v = Vec::new();
        while let Some(f) = r.poll().unwrap() {
            v.push((
                f.template_id,
                sbe_order_entry::message_to_json(f.payload).unwrap(),
            ));
        }
        v
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

pub fn ts(ns: u64) -> String {
    let mut b = [0_u8; time::TIMESTAMP_MS_LEN];
    time::format_ms(ns, &mut b);
    String::from_utf8(b.to_vec()).unwrap()
}

/// A received message.
#[derive(Clone, Debug)]
pub struct Msg(pub Vec<(u32, String)>);

impl Msg {
    pub fn get(&self, tag: u32) -> Option<&str> {
        self.0
            .iter()
            .find(|(t, _)| *t == tag)
            .map(|(_, v)| v.as_str())
    }
    pub fn msg_type(&self) -> &str {
        self.get(35).unwrap_or("")
    }
    pub fn seq(&self) -> u64 {
        self.get(34).and_then(|s| s.parse().ok()).unwrap_or(0)
    }
}

/// A minimal FIX initiator.
pub struct Client {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    pub seq: u64,
    pub sender: String,
    pub target: String,
    parser: Parser,
}

pub const WAIT: Duration = Duration::from_secs(10);

impl Client {
    pub async fn tcp(addr: std::net::SocketAddr, sender: &str) -> Client {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        Client::over(Box::new(s), sender)
    }

    pub fn over(io: Box<dyn Io>, sender: &str) -> Client {
        Client {
            io,
            buf: Vec::new(),
            seq: 1,
            sender: sender.into(),
            target: "EXCH".into(),
            parser: Parser::new(256),
        }
    }

    pub fn build(&self, msg_type: &str, seq: u64, header_extra: &str, fields: &str) -> Vec<u8> {
        let mut w = Writer::new(512);
        w.begin(msg_type.as_bytes());
        let hdr = format!(
            "49={}|56={}|34={seq}|{header_extra}52={}|",
            self.sender,
            self.target,
            ts(now_ns())
        );
        for kv in hdr
            .split('|')
            .chain(fields.split('|'))
            .filter(|s| !s.is_empty())
        {
            let (k, v) = kv.split_once('=').unwrap();
            w.raw(format!("{k}={v}\x01").as_bytes());
        }
        let mut out = Vec::new();
        w.finish(b"FIX.4.2", &mut out);
        out
    }

    pub async fn send(&mut self, msg_type: &str, fields: &str) {
        let raw = self.build(msg_type, self.seq, "", fields);
        self.seq += 1;
        self.send_raw(&raw).await;
    }

    pub async fn send_raw(&mut self, raw: &[u8]) {
        let _ = self.io.write_all(raw).await;
    }

    pub async fn logon(&mut self) -> Msg {
        self.send("A", "98=0|108=30|").await;
        let m = self.recv().await.expect("logon answer");
        assert_eq!(m.msg_type(), "A", "{m:?}");
        m
    }

    /// The next message, None when the connection closed (or nothing came within WAIT).
    pub async fn recv(&mut self) -> Option<Msg> {
        loop {
            if let Frame::Complete { len } = check_frame(&self.buf, b"FIX.4.2", 1 << 20) {
                let m = self.parser.parse(&self.buf[..len]).unwrap();
                let msg = Msg(m
                    .fields()
                    .iter()
                    .map(|f| (f.tag, String::from_utf8_lossy(m.value(f)).into_owned()))
                    .collect());
                self.buf.drain(..len);
                return Some(msg);
            }
            let mut tmp = [0_u8; 4096];
            match tokio::time::timeout(WAIT, self.io.read(&mut tmp)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&tmp[..n]),
                _ => return None,
            }
        }
    }

    /// The next message that is not a Heartbeat.
    pub async fn recv_app(&mut self) -> Msg {
        loop {
            let m = self.recv().await.expect("a message");
            if m.msg_type() != "0" {
                return m;
            }
        }
    }

    /// Waits for the connection to close (after any messages, which are returned).
    pub async fn until_closed(&mut self) -> Vec<Msg> {
        let mut v = Vec::new();
        while let Some(m) = self.recv().await {
            v.push(m);
        }
        v
    }
}

pub fn nos(cl: &str, side: &str, qty: &str, price: &str) -> String {
    format!(
        "11={cl}|21=1|55=ACME|54={side}|60={}|38={qty}|40=2|44={price}|59=0|",
        ts(now_ns())
    )
}
