//! The real binary end to end: orders over HTTP and FIX, fills read back over HTTP and from the
//! database, trades and books received on real multicast, and a clean restart.
//!
//! The test starts `appliance serve` with its own multicast group and ports (derived from the
//! process id, so parallel runs do not hear each other), joins the market-data channels with the
//! consumer library as a firm would, trades from two accounts over HTTP, and checks that:
//! - the HTTP answers carry the fills the engine made; a FIX 4.2 session (a real TCP socket) gets
//!   its acknowledgement and fill ExecutionReports when it trades against an HTTP order, and a
//!   specific reject for an unknown symbol;
//! - the executions are in the reporter's database (SQLite, and PostgreSQL when configured) and
//!   at `GET /v1/execution`;
//! - the multicast consumer saw every trade, and its L2 book equals `GET /marketdata/book`;
//! - a server-sent-events subscriber receives the trades and quotes; a client that never
//!   finishes its request headers is cut off;
//! - bad requests get a 4xx with a JSON error naming the field; a wrong API key gets 401;
//! - `/metrics` and `/healthz` report the flow; `appliance export` writes the day's executions
//!   and candles as Parquet files that an independent reader reads back;
//! - after SIGKILL and a restart, the book and the orders are the same, and the FIX session
//!   resumes with both sides' sequence numbers (no reset, no gap);
//! - SIGTERM logs the connected FIX session out ("gateway shutdown") and exits 0.

use md_consumer::{Consumer, ConsumerConfig};
use md_core::{Channel, FeedGroups, Side};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_appliance");

struct Server {
    child: Child,
    base: String,
    fix_tcp: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The multicast group and first port of test `slot` of this process (each server uses five
/// ports from there; tests of one process run at once and must not hear each other).
fn ports(slot: u8) -> (Ipv4Addr, u16) {
    let pid = std::process::id();
    let group = Ipv4Addr::new(239, 255 - slot, (pid >> 8) as u8, pid as u8);
    let port = 41_000 + (pid % 1_000) as u16 * 16 + u16::from(slot) * 8;
    (group, port)
}

/// A PostgreSQL schema of its own for this run, in the database `.ci/run` prepares; returns the
/// connection string with that schema as the search path.
fn postgres_schema() -> (String, String) {
    let base = std::env::var("APPLIANCE_TEST_POSTGRES").expect(
        "APPLIANCE_TEST_POSTGRES must name a PostgreSQL database (bash .ci/run sets one up)",
    );
    let schema = format!(
        "e2e_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap();
    (format!("{base} options='-c search_path={schema}'"), schema)
}

fn start(data: &Path) -> Server {
    start_with(data, "")
}

fn start_with(data: &Path, extra: &str) -> Server {
    start_in(data, extra, 0)
}

/// Starts a server publishing on the market-data ports of test `slot` ([`ports`]).
fn start_in(data: &Path, extra: &str, slot: u8) -> Server {
    let (group, port) = ports(slot);
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        extra.to_string() + &format!(
            "[market_data]\ngroup = \"{group}\"\nport = {port}\nretransmit_listen = \"127.0.0.1:{}\"\ntcp_listen = \"\"\n[fix]\ntcp_listen = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n[http]\nheader_read_timeout_ms = 300\n",
            port + 4
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--http-listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(base.starts_with("http://"), "{line}");
    let mut fix = String::new();
    out.read_line(&mut fix).unwrap();
    assert!(fix.starts_with("FIX 4.2 over TCP on "), "{fix}");
    let fix_tcp = fix.trim().rsplit(' ').next().unwrap().to_string();
    // Keep reading what the server prints, so it never writes into a closed pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    Server {
        child,
        base,
        fix_tcp,
    }
}

/// A minimal FIX 4.2 initiator for the test: builds messages with the gateway's own writer and
/// frames replies with its framer.
struct FixClient {
    stream: std::net::TcpStream,
    seq: u64,
    buf: Vec<u8>,
    sender: &'static str,
}

impl FixClient {
    /// Logs on with ResetSeqNumFlag=Y (a new day: both sides start at 1).
    fn connect(addr: &str, sender: &'static str) -> FixClient {
        FixClient::resume(addr, sender, 1, true).0
    }

    /// Logs on at sequence number `seq`; returns the client and the acceptor's Logon.
    fn resume(addr: &str, sender: &'static str, seq: u64, reset: bool) -> (FixClient, String) {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut c = FixClient {
            stream,
            seq,
            buf: Vec::new(),
            sender,
        };
        if reset {
            c.send(b"A", &[(98, "0"), (108, "30"), (141, "Y")]);
        } else {
            c.send(b"A", &[(98, "0"), (108, "30")]);
        }
        let logon = c.recv();
        assert_eq!(field(&logon, 35), "A", "{logon}");
        (c, logon)
    }

    fn send(&mut self, msg_type: &[u8], fields: &[(u32, &str)]) {
        use std::io::Write as _;
        let mut w = fix_codec::Writer::new(512);
        w.begin(msg_type);
        w.field(49, self.sender.as_bytes());
        w.field(56, b"EXCH");
        w.field_u64(34, self.seq);
        w.field_time(
            52,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        );
        for (t, v) in fields {
            w.field(*t, v.as_bytes());
        }
        let mut out = Vec::new();
        w.finish(b"FIX.4.2", &mut out);
        self.stream.write_all(&out).unwrap();
        self.seq += 1;
    }

    /// The next message, as text with `|` for SOH.
    fn recv(&mut self) -> String {
        use std::io::Read as _;
        loop {
            if let fix_codec::Frame::Complete { len } =
                fix_codec::check_frame(&self.buf, b"FIX.4.2", 65536)
            {
                let msg: Vec<u8> = self.buf.drain(..len).collect();
                return String::from_utf8_lossy(&msg).replace('\x01', "|");
            }
            let mut chunk = [0_u8; 4096];
            let n = self.stream.read(&mut chunk).expect("FIX read");
            assert!(n > 0, "the gateway closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Skips heartbeats and other types until a message of `msg_type`.
    fn recv_until(&mut self, msg_type: &[u8]) -> String {
        loop {
            let m = self.recv();
            if field(&m, 35).as_bytes() == msg_type {
                return m;
            }
        }
    }
}

fn field(msg: &str, tag: u32) -> String {
    let key = format!("|{tag}=");
    let at = msg
        .find(&key)
        .map(|i| i + key.len())
        .unwrap_or_else(|| panic!("no tag {tag} in {msg}"));
    msg[at..].split('|').next().unwrap().to_string()
}

fn post(c: &reqwest::blocking::Client, base: &str, key: &str, body: Value) -> (u16, Value) {
    let r = c
        .post(format!("{base}/v1/order"))
        .header("X-API-Key", key)
        .json(&body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap())
}

fn get(c: &reqwest::blocking::Client, url: String, key: &str) -> Value {
    c.get(url)
        .header("X-API-Key", key)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn http_orders_fills_database_and_multicast_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (group, port) = ports(0);
    let mut cfg = ConsumerConfig::new(FeedGroups::on_group(group, port));
    cfg.retransmit_server = Some(format!("127.0.0.1:{}", port + 4).parse().unwrap());
    cfg.from_session_start = true;
    // Joined before the server starts: the consumer sees the session from its first packet.
    let mut consumer = Consumer::open(cfg).unwrap();
    let (pg_url, pg_schema) = postgres_schema();
    let server = start_with(&data, &format!("[reporter]\npostgres_url = \"{pg_url}\"\n"));
    let c = reqwest::blocking::Client::new();
    let b = &server.base;

    // A browser-style subscriber to the server-sent events of ACME.
    let sse = {
        let url = format!("{b}/v1/stream?symbol=ACME");
        let r = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap()
            .get(url)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        std::thread::spawn(move || {
            let mut events = Vec::new();
            let mut kind = String::new();
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                if let Some(k) = line.strip_prefix("event: ") {
                    kind = k.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    events.push((kind.clone(), serde_json::from_str::<Value>(d).unwrap()));
                    // The feeder sends a pass's trades as it reads them and the quotes at the
                    // end of the pass: wait for both.
                    if events.iter().filter(|(k, _)| k == "trade").count() == 3
                        && events
                            .iter()
                            .any(|(k, v)| k == "quote" && v["symbol"] == "ACME")
                    {
                        break;
                    }
                }
            }
            events
        })
    };

    // Resting asks from account 1 at three prices, then a buy from account 2 that takes two.
    for (price, qty) in [("100.00", 10), ("100.10", 10), ("100.20", 10)] {
        let (s, v) = post(
            &c,
            b,
            "demo-key-1",
            json!({"symbol": "ACME", "side": "sell", "price": price, "quantity": qty, "timeInForce": "gtc"}),
        );
        assert_eq!((s, v["status"].as_str()), (200, Some("new")), "{v}");
    }
    let (s, buy) = post(
        &c,
        b,
        "demo-key-2",
        json!({"symbol": "ACME", "side": "buy", "price": "100.10", "quantity": 15}),
    );
    assert_eq!(s, 200);
    assert_eq!(buy["status"], "filled", "{buy}");
    assert_eq!(buy["filledQuantity"], 15);
    assert_eq!(buy["fills"].as_array().unwrap().len(), 2);
    assert_eq!(buy["fills"][0]["price"], "100.00");
    assert_eq!(buy["fills"][1]["price"], "100.10");
    // A resting bid, so both sides of the book have depth.
    let (_, bid) = post(
        &c,
        b,
        "demo-key-2",
        json!({"symbol": "ACME", "side": "buy", "price": "99.50", "quantity": 7, "timeInForce": "gtc"}),
    );
    assert_eq!(bid["status"], "new");

    // FIX: CLIENT1 (account 1) sells 7 into the resting HTTP bid at 99.50, then rests an ask.
    let mut fix = FixClient::connect(&server.fix_tcp, "CLIENT1");
    fix.send(
        b"D",
        &[
            (11, "F-1"),
            (21, "1"),
            (55, "ACME"),
            (54, "2"),
            (60, "20260101-00:00:00"),
            (38, "7"),
            (40, "2"),
            (44, "99.50"),
            (59, "0"),
        ],
    );
    let ack = fix.recv_until(b"8");
    assert_eq!(
        (field(&ack, 150), field(&ack, 39), field(&ack, 11)),
        ("0".into(), "0".into(), "F-1".into()),
        "{ack}"
    );
    let fill = fix.recv_until(b"8");
    assert_eq!(
        (field(&fill, 150), field(&fill, 32), field(&fill, 31)),
        ("2".into(), "7".into(), "99.50".into()),
        "{fill}"
    );
    assert_eq!(field(&fill, 151), "0");
    // An unknown symbol is a specific reject.
    fix.send(
        b"D",
        &[
            (11, "F-2"),
            (21, "1"),
            (55, "NOPE"),
            (54, "1"),
            (60, "20260101-00:00:00"),
            (38, "1"),
            (40, "2"),
            (44, "1.00"),
        ],
    );
    let rej = fix.recv_until(b"8");
    assert_eq!(
        (field(&rej, 150), field(&rej, 39), field(&rej, 11)),
        ("8".into(), "8".into(), "F-2".into()),
        "{rej}"
    );
    fix.send(b"5", &[]);
    let logout = fix.recv_until(b"5");
    let acceptor_next = field(&logout, 34).parse::<u64>().unwrap() + 1;
    let client_next = fix.seq;
    drop(fix);

    // Bad requests name the field; unknown keys are refused.
    let (s, e) = post(
        &c,
        b,
        "demo-key-1",
        json!({"symbol": "ACME", "side": "up", "price": "1", "quantity": 1}),
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("side")), "{e}");
    let (s, e) = post(
        &c,
        b,
        "demo-key-1",
        json!({"symbol": "ACME", "side": "buy", "price": 100.5, "quantity": 1}),
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("price")), "{e}");
    let (s, e) = post(
        &c,
        b,
        "demo-key-1",
        json!({"symbol": "NOPE", "side": "buy", "price": "1", "quantity": 1}),
    );
    assert_eq!((s, e["field"].as_str()), (400, Some("symbol")), "{e}");
    let (s, _) = post(
        &c,
        b,
        "wrong-key-123",
        json!({"symbol": "ACME", "side": "buy", "price": "1", "quantity": 1}),
    );
    assert_eq!(s, 401);
    // An engine reject is an answer, not an error: price outside the band.
    let (s, r) = post(
        &c,
        b,
        "demo-key-1",
        json!({"symbol": "ACME", "side": "sell", "price": "500.00", "quantity": 1}),
    );
    assert_eq!(
        (s, r["status"].as_str(), r["reason"].as_str()),
        (200, Some("rejected"), Some("PriceOutsideBand")),
        "{r}"
    );

    // Executions through HTTP (the reporter may lag a moment) and in the database.
    let deadline = Instant::now() + Duration::from_secs(10);
    let execs = loop {
        let v = get(&c, format!("{b}/v1/execution?symbol=ACME"), "demo-key-2");
        if v["executions"].as_array().is_some_and(|a| a.len() == 3) || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let execs = execs["executions"].as_array().unwrap().clone();
    assert_eq!(execs.len(), 3, "{execs:?}");
    assert!(execs.iter().all(|e| e["side"] == "buy"));
    assert_eq!(
        execs[2]["liquidity"], "maker",
        "the FIX sell took the HTTP bid"
    );
    let db = rusqlite::Connection::open(data.join("reporter.sqlite")).unwrap();
    let (n, qty): (i64, i64) = db
        .query_row(
            "SELECT COUNT(*), SUM(quantity) FROM executions WHERE account_id = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, qty), (3, 22));
    let fix_execs: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM executions WHERE account_id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(fix_execs, 3);

    // The same records in PostgreSQL, written by the reporter's PostgreSQL sink.
    let mut pg = postgres::Client::connect(&pg_url, postgres::NoTls).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The sink creates its tables when it starts: until then the query fails.
        let got = pg
            .query_one(
                &format!("SELECT COUNT(*), COALESCE(SUM(quantity), 0)::BIGINT FROM {pg_schema}.executions WHERE account_id = 2"),
                &[],
            )
            .map(|row| (row.get::<_, i64>(0), row.get::<_, i64>(1)));
        if matches!(got, Ok((3, 22))) {
            break;
        }
        assert!(Instant::now() < deadline, "PostgreSQL: {got:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let orders: i64 = pg
        .query_one(&format!("SELECT COUNT(*) FROM {pg_schema}.orders"), &[])
        .unwrap()
        .get(0);
    let sqlite_orders: i64 = db
        .query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orders, sqlite_orders);

    // Multicast: the consumer saw both trades and holds the same book as the engine.
    let book = get(&c, format!("{b}/marketdata/book/ACME?depth=10"), "");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        consumer.poll();
        let cl = consumer.client();
        let acme = cl
            .instruments()
            .find(|(_, i)| i.symbol() == "ACME")
            .map(|(_, i)| {
                (
                    i.trades,
                    i.l2.levels(Side::Sell).len(),
                    i.l2.levels(Side::Buy).len(),
                )
            });
        if acme == Some((3, 2, 0)) && cl.applied_seq(Channel::L2) > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "multicast consumer did not converge: {acme:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let cl = consumer.client();
    let (_, acme) = cl
        .instruments()
        .find(|(_, i)| i.symbol() == "ACME")
        .unwrap();
    assert_eq!(acme.last_trade, Some((9950, 7)));
    let units = |p: &Value| (p.as_str().unwrap().parse::<f64>().unwrap() * 100.0).round() as i64;
    for (side, key) in [(Side::Sell, "asks"), (Side::Buy, "bids")] {
        let ours: Vec<(i64, u64)> = acme
            .l2
            .levels(side)
            .iter()
            .map(|l| (l.price, l.quantity))
            .collect();
        let theirs: Vec<(i64, u64)> = book[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (units(&l["price"]), l["quantity"].as_u64().unwrap()))
            .collect();
        assert_eq!(ours, theirs, "{key}");
    }

    let events = sse.join().unwrap();
    let trades: Vec<&Value> = events
        .iter()
        .filter(|(k, _)| k == "trade")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(trades.len(), 3, "{events:?}");
    assert_eq!(
        (trades[0]["price"].as_str(), trades[0]["quantity"].as_u64()),
        (Some("100.00"), Some(10))
    );
    assert_eq!(
        (trades[1]["price"].as_str(), trades[1]["quantity"].as_u64()),
        (Some("100.10"), Some(5))
    );
    assert!(
        events
            .iter()
            .any(|(k, v)| k == "quote" && v["symbol"] == "ACME"),
        "{events:?}"
    );
    let r = c.get(format!("{b}/v1/stream?symbol=NOPE")).send().unwrap();
    assert_eq!(r.status(), 400);

    let metrics = c
        .get(format!("{b}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("appliance_http_orders_total 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("appliance_rejects_total{reason=\"PriceOutsideBand\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("appliance_fix_logons_total 1"),
        "{metrics}"
    );
    // CLIENT1 sent Logon, two orders and Logout.
    assert!(
        metrics.contains("appliance_fix_session_messages{session=\"CLIENT1\",direction=\"in\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("appliance_fills_total 6"), "{metrics}");
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
    };
    assert!(counter("appliance_md_packets_total ") > 0, "{metrics}");
    assert_eq!(counter("appliance_md_events_split_total "), 0, "{metrics}");
    assert!(
        counter("appliance_consumer_lag{consumer=\"market_data\"} ")
            <= counter("appliance_outbound_committed_seq "),
        "{metrics}"
    );
    // The day's executions and candles as Parquet, read back with an independent reader.
    let today = {
        let days = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 86_400;
        let (mut y, mut d) = (1970_i64, days as i64);
        loop {
            let len = if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                366
            } else {
                365
            };
            if d < len {
                break;
            }
            d -= len;
            y += 1;
        }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let months = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let mut m = 0;
        while d >= months[m] {
            d -= months[m];
            m += 1;
        }
        format!("{y:04}-{:02}-{:02}", m + 1, d + 1)
    };
    let out_dir = tmp.path().join("export");
    let exported = Command::new(BIN)
        .args(["export", "--day", &today, "--out"])
        .arg(&out_dir)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::record::RowAccessor;
        let f = std::fs::File::open(out_dir.join(format!("executions-{today}.parquet"))).unwrap();
        let r = SerializedFileReader::new(f).unwrap();
        let rows: Vec<_> = r.get_row_iter(None).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 6, "both sides of three trades");
        let prices: Vec<i64> = rows
            .iter()
            .map(|r| {
                r.get_decimal(6)
                    .map(|d| i64::from_be_bytes(d.data().try_into().unwrap_or([0; 8])))
                    .unwrap_or_else(|_| r.get_long(6).unwrap())
            })
            .collect();
        assert!(
            prices.contains(&10000) && prices.contains(&9950),
            "{prices:?}"
        );
        let f = std::fs::File::open(out_dir.join(format!("candles-{today}.parquet"))).unwrap();
        let r = SerializedFileReader::new(f).unwrap();
        let volume: i64 = r
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap().get_long(6).unwrap())
            .sum();
        assert_eq!(volume, 22, "10 + 5 + 7 traded");
    }

    // A slow client that never finishes its headers is cut off.
    {
        use std::io::{Read as _, Write as _};
        let mut slow = std::net::TcpStream::connect(b.trim_start_matches("http://")).unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        let mut buf = [0_u8; 512];
        let n = slow.read(&mut buf).unwrap_or(0);
        let reply = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || reply.contains("408"), "{reply}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "not cut off in time"
        );
    }

    let health = get(&c, format!("{b}/healthz"), "");
    assert_eq!(health["status"], "ok");

    // SIGKILL, then a restart: the same book and orders, and the FIX session resumes with the
    // sequence numbers both sides had (no reset), without a gap to fill.
    let mut server = server;
    Command::new("kill")
        .arg("-9")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    let _ = server.child.wait();
    drop(server);
    drop(consumer);
    let server = start(&data);
    let same_book = |when: &str| {
        let now = get(
            &c,
            format!("{}/marketdata/book/ACME?depth=10", server.base),
            "",
        );
        assert_eq!(now["asks"], book["asks"], "{when}");
        assert_eq!(now["bids"], book["bids"], "{when}");
    };
    // Queries answer from the recovered state as soon as the API serves.
    same_book("at start");
    let (mut fix, logon) = FixClient::resume(&server.fix_tcp, "CLIENT1", client_next, false);
    assert_eq!(
        field(&logon, 34).parse::<u64>().unwrap(),
        acceptor_next,
        "{logon}"
    );
    fix.send(b"1", &[(112, "after-restart")]);
    let hb = fix.recv_until(b"0");
    assert_eq!(field(&hb, 112), "after-restart", "{hb}");
    same_book("after the FIX session resumed");
    let order = get(
        &c,
        format!("{}/v1/order/{}", server.base, buy["id"]),
        "demo-key-2",
    );
    assert_eq!(order["status"], "filled", "{order}");

    // A graceful stop logs the connected session out before closing.
    Command::new("kill")
        .arg("-15")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    let logout = fix.recv_until(b"5");
    assert!(logout.contains("|58=gateway shutdown|"), "{logout}");
    let mut server = server;
    assert!(server.child.wait().unwrap().success());
}

/// A retried `POST /v1/order` with the same `Idempotency-Key` places one order and gets the
/// first answer again; the key is bound to its order and to its account.
#[test]
fn an_idempotency_key_places_an_order_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_in(&tmp.path().join("data"), "", 1);
    let c = reqwest::blocking::Client::new();
    let b = &server.base;
    let send = |api_key: &str, idem: &str, body: Value| {
        let r = c
            .post(format!("{b}/v1/order"))
            .header("X-API-Key", api_key)
            .header("Idempotency-Key", idem)
            .json(&body)
            .send()
            .unwrap();
        let replayed = r.headers().get("idempotent-replayed").is_some();
        (r.status().as_u16(), replayed, r.json::<Value>().unwrap())
    };
    let sell = json!({"symbol": "ACME", "side": "sell", "price": "100.00", "quantity": 5, "timeInForce": "gtc"});
    let (s, replayed, first) = send("demo-key-1", "retry-me-1", sell.clone());
    assert_eq!(
        (s, replayed, first["status"].as_str()),
        (200, false, Some("new")),
        "{first}"
    );
    // The retry: the same answer, marked as replayed, and no second order.
    let (s, replayed, again) = send("demo-key-1", "retry-me-1", sell.clone());
    assert_eq!((s, replayed), (200, true), "{again}");
    assert_eq!(again, first);
    // The same key for another order is refused.
    let mut other = sell.clone();
    other["quantity"] = json!(6);
    let (s, _, v) = send("demo-key-1", "retry-me-1", other);
    assert_eq!(s, 422, "{v}");
    // Another account's key of the same name is its own.
    let buy = json!({"symbol": "ACME", "side": "buy", "price": "99.00", "quantity": 1, "timeInForce": "gtc"});
    let (s, replayed, theirs) = send("demo-key-2", "retry-me-1", buy);
    assert_eq!(
        (s, replayed, theirs["status"].as_str()),
        (200, false, Some("new")),
        "{theirs}"
    );
    assert_ne!(theirs["id"], first["id"]);
    // A key that is not 1-255 visible ASCII characters is a bad request.
    let (s, _, v) = send("demo-key-1", "has space", sell.clone());
    assert_eq!(
        (s, v["field"].as_str()),
        (400, Some("Idempotency-Key")),
        "{v}"
    );
    // One order of 5 rests at 100.00, not two.
    let book = get(&c, format!("{b}/marketdata/book/ACME?depth=10"), "");
    let asks: Vec<(String, u64)> = book["asks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["price"].as_str().unwrap().to_string(),
                l["quantity"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(asks, vec![("100.00".to_string(), 5)], "{book}");
    // Without a key a repeated request is a new order.
    let (_, _, a) = send_without_key(&c, b, sell.clone());
    let (_, _, b2) = send_without_key(&c, b, sell);
    assert_ne!(a["id"], b2["id"]);
}

fn send_without_key(c: &reqwest::blocking::Client, b: &str, body: Value) -> (u16, bool, Value) {
    let (s, v) = post(c, b, "demo-key-1", body);
    (s, false, v)
}

/// `serve --demo` shows trading within seconds: simulated FIX clients trade and the live view
/// counts the trades; SIGTERM still exits 0 (the clients log out first).
#[test]
fn the_demo_trades_within_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo");
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        // The demo's clients are FIX sessions on the appliance's own acceptor (any free port);
        // the sequencer and the matching agent run on threads of their own here (the
        // default, used by every other test, is one thread for both).
        "[market_data]\nenabled = false\n[fix]\ntcp_listen = \"127.0.0.1:0\"\ntls_listen = \"\"\n[threads]\nsequencer_and_matching_together = false\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--demo",
            "--http-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut traded = false;
    for line in stdout.lines() {
        let line = line.unwrap();
        // "exchange appliance demo |     201 orders/s | 102 trades | inbound seq 811"
        if let Some(n) = line
            .split('|')
            .nth(2)
            .and_then(|t| t.trim().strip_suffix(" trades"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            if n > 0 {
                traded = true;
                break;
            }
        }
        if Instant::now() > deadline {
            break;
        }
    }
    Command::new("kill")
        .arg("-15")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(traded, "the demo showed no trade");
    assert!(status.success(), "{status}");
}

#[test]
fn the_shipped_example_configuration_is_valid() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/appliance.example.toml"
    );
    let c = appliance::config::Config::from_file(Path::new(path)).unwrap();
    assert_eq!(
        c.instruments.len(),
        appliance::config::Config::embedded().instruments.len()
    );
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/cluster-node1.example.toml"
    );
    let c = appliance::config::Config::from_file(Path::new(path)).unwrap();
    assert!(c.cluster.enabled);
    assert_eq!(c.cluster.peers.len(), 3);
    // A cluster refuses FIX sequence resets (sessions resume on the next leader).
    let bad = std::fs::read_to_string(path).unwrap()
        + "\n[[fix.sessions]]\nsession_id = 1\ntarget_comp_id = \"C1\"\naccount = 1\npassword = \"\"\n\
           cancel_on_disconnect = true\nreset_on_logon = true\nrate_per_second = 10\nrate_burst = 10\n\
           rate_action = \"reject\"\n";
    let e = appliance::config::Config::from_toml(&bad, "test").unwrap_err();
    assert!(e.to_string().contains("reset_on_logon"), "{e}");
}
