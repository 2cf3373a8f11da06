//! The conformance scenario language and its runner.
//!
//! A scenario is a text file of directives, one per line (`#` starts a comment):
//!
//! | directive | meaning |
//! |---|---|
//! | `name: 2b MsgSeqNum too high` | title (the first line; the FIX test case number first) |
//! | `connect` / `disconnect` | open a new TCP connection / close it |
//! | `send: 35=D\|11=A\|...` | send a message; the runner adds 8, 9, 49, 56, 34 (the next number) and 52 (now) unless the line gives them, and 10 |
//! | `send-garbled: ...` | the same message with a wrong CheckSum |
//! | `send-raw: 8=FIX.4.2\|9={len}\|...\|10={sum}\|` | bytes as written (`\|` is SOH); `{len}` and `{sum}` are computed |
//! | `expect: 35=3\|45=2\|373=5` | the next message must have these fields (`*` any value, `!` absent) |
//! | `expect-disconnect` | the acceptor closes the connection (messages before that are skipped only when they are Logout or Heartbeat) |
//! | `expect-none: 500` | nothing arrives within 500 ms |
//! | `sleep: 200` | wait |
//! | `set-seq: 7` | the next outgoing MsgSeqNum |
//! | `use: 0` | switch to the connection opened by the first `connect` (0-based) |
//! | `send-version: FIX.4.4 35=0` | send with another BeginString |
//! | `logon-reset` | `send: 35=A\|34=1\|98=0\|108=30\|141=Y` and expect the acceptor's Logon with 141=Y |
//!
//! Values may hold placeholders: `{now}`, `{now-130s}`, `{now+130s}` (UTCTIMESTAMP with
//! milliseconds), `{run}` (a token fixed for the whole run), `{seq}` (the number this message will carry), `{in}` (the acceptor's next
//! number: one more than the last MsgSeqNum received without PossDupFlag), `{sender}`,
//! `{target}`, `{symbol}`, `{price}`.

use fix_codec::{check_frame, time, Frame, Parser, Writer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Where and as whom to run.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: String,
    /// Our SenderCompID (the acceptor's TargetCompID).
    pub sender: String,
    /// The acceptor's CompID.
    pub target: String,
    pub symbol: String,
    pub price: String,
    /// How long an `expect` waits.
    pub timeout: Duration,
}

/// One directive and the line it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Connect,
    Disconnect,
    Send(String),
    SendGarbled(String),
    SendRaw(String),
    Expect(String),
    ExpectDisconnect,
    ExpectNone(u64),
    Sleep(u64),
    SetSeq(u64),
    LogonReset,
    /// Switch to the connection opened by the N-th `connect` (0-based).
    Use(u64),
    /// Send with another BeginString.
    SendVersion(String, String),
}

/// In a raw message, `9={len}` becomes the real BodyLength and `10={sum}` the real CheckSum.
fn fix_lengths(m: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(m).into_owned();
    let mut text = text;
    if let Some(p) = text.find("9={len}\x01") {
        let body_start = p + "9={len}\x01".len();
        let body_end = text.rfind("10=").unwrap_or(text.len());
        let len = body_end.saturating_sub(body_start);
        text = text.replacen("9={len}", &format!("9={len}"), 1);
    }
    if text.ends_with("10={sum}\x01") {
        let end = text.len() - "10={sum}\x01".len();
        let sum = fix_codec::checksum(&text.as_bytes()[..end]);
        text = format!("{}10={sum:03}\x01", &text[..end]);
    }
    *m = text.into_bytes();
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub steps: Vec<(usize, Step)>,
}

impl Scenario {
    /// Parses a scenario file.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let mut name = String::new();
        let mut steps = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, arg) = match line.split_once(':') {
                Some((w, a)) => (w.trim(), a.trim()),
                None => (line, ""),
            };
            let num = |a: &str| {
                a.parse::<u64>()
                    .map_err(|_| format!("line {}: not a number: {a}", i + 1))
            };
            let step = match word {
                "name" => {
                    name = arg.to_string();
                    continue;
                }
                "connect" => Step::Connect,
                "disconnect" => Step::Disconnect,
                "send" => Step::Send(arg.into()),
                "send-garbled" => Step::SendGarbled(arg.into()),
                "send-raw" => Step::SendRaw(arg.into()),
                "expect" => Step::Expect(arg.into()),
                "expect-disconnect" => Step::ExpectDisconnect,
                "expect-none" => Step::ExpectNone(num(arg)?),
                "sleep" => Step::Sleep(num(arg)?),
                "set-seq" => Step::SetSeq(num(arg)?),
                "logon-reset" => Step::LogonReset,
                "use" => Step::Use(num(arg)?),
                "send-version" => {
                    let (v, spec) = arg
                        .split_once(' ')
                        .ok_or(format!("line {}: send-version: VERSION FIELDS", i + 1))?;
                    Step::SendVersion(v.to_string(), spec.trim().to_string())
                }
                other => return Err(format!("line {}: unknown directive {other}", i + 1)),
            };
            steps.push((i + 1, step));
        }
        if name.is_empty() {
            return Err("no name: line".into());
        }
        Ok(Scenario { name, steps })
    }
}

/// A failed scenario: the line and what went wrong.
#[derive(Clone, Debug)]
pub struct Failure {
    pub line: usize,
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

struct Run<'a> {
    t: &'a Target,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
    /// Other open connections (by `connect` order) while one is current.
    parked: Vec<(Option<TcpStream>, Vec<u8>)>,
    current: usize,
    opened: usize,
    /// A token unique to this run (for ClOrdIDs that must repeat within a scenario).
    run_id: String,
    begin_string: String,
    seq: u64,
    inbound: u64,
    parser: Parser,
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn ts(ns: u64) -> String {
    let mut b = [0_u8; time::TIMESTAMP_MS_LEN];
    time::format_ms(ns, &mut b);
    String::from_utf8_lossy(&b).into_owned()
}

/// A received message as (tag, value) pairs.
type Fields = Vec<(u32, String)>;

fn show(m: &Fields) -> String {
    m.iter()
        .map(|(t, v)| format!("{t}={v}"))
        .collect::<Vec<_>>()
        .join("|")
}

impl Run<'_> {
    /// Puts the current connection aside at its index.
    fn park(&mut self) {
        if self.parked.len() <= self.current {
            self.parked
                .resize_with(self.current + 1, || (None, Vec::new()));
        }
        self.parked[self.current] = (self.conn.take(), std::mem::take(&mut self.buf));
    }

    fn subst(&self, s: &str, seq: u64) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(p) = rest.find('{') {
            out.push_str(&rest[..p]);
            let Some(e) = rest[p..].find('}') else {
                out.push_str(&rest[p..]);
                return out;
            };
            let key = &rest[p + 1..p + e];
            let v = match key {
                "now" => ts(now_ns()),
                "run" => self.run_id.clone(),
                "seq" => seq.to_string(),
                "in" => self.inbound.to_string(),
                "sender" => self.t.sender.clone(),
                "target" => self.t.target.clone(),
                "symbol" => self.t.symbol.clone(),
                "price" => self.t.price.clone(),
                k if k.starts_with("now") && k.ends_with('s') => {
                    let secs: i64 = k[3..k.len() - 1].parse().unwrap_or(0);
                    let ns = now_ns() as i128 + i128::from(secs) * 1_000_000_000;
                    ts(ns.max(0) as u64)
                }
                k => format!("{{{k}}}"),
            };
            out.push_str(&v);
            rest = &rest[p + e + 1..];
        }
        out.push_str(rest);
        out
    }

    fn build(&mut self, spec: &str) -> Vec<u8> {
        let pairs: Vec<(String, String)> = spec
            .split('|')
            .filter(|s| !s.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.to_string(), String::new()),
            })
            .collect();
        let get = |t: &str| pairs.iter().find(|(k, _)| k == t).map(|(_, v)| v.clone());
        let explicit_seq = get("34");
        let seq = self.seq;
        let msg_type = get("35").unwrap_or_default();
        let mut w = Writer::new(512);
        w.begin(self.subst(&msg_type, seq).as_bytes());
        if get("49").is_none() {
            w.field(49, self.t.sender.as_bytes());
        }
        if get("56").is_none() {
            w.field(56, self.t.target.as_bytes());
        }
        match &explicit_seq {
            Some(v) => w.field(34, self.subst(v, seq).as_bytes()),
            None => w.field_u64(34, seq),
        }
        // Header fields the line gives (before SendingTime), then SendingTime, then the rest.
        const HEADER: [&str; 6] = ["49", "56", "43", "97", "122", "115"];
        for (k, v) in &pairs {
            if HEADER.contains(&k.as_str()) {
                w.raw(format!("{k}={}\x01", self.subst(v, seq)).as_bytes());
            }
        }
        match get("52") {
            Some(v) => w.field(52, self.subst(&v, seq).as_bytes()),
            None => w.field(52, ts(now_ns()).as_bytes()),
        }
        for (k, v) in &pairs {
            if !HEADER.contains(&k.as_str()) && !["35", "34", "52"].contains(&k.as_str()) {
                w.raw(format!("{k}={}\x01", self.subst(v, seq)).as_bytes());
            }
        }
        let advance = match explicit_seq.as_deref() {
            None => true,
            Some(v) => v.contains("{seq}"),
        };
        if advance {
            self.seq += 1;
        }
        let mut out = Vec::new();
        w.finish(self.begin_string.as_bytes(), &mut out);
        out
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        let c = self.conn.as_mut().ok_or("not connected")?;
        c.write_all(bytes).map_err(|e| format!("write: {e}"))
    }

    /// The next message; Ok(None) when the connection closed; Err on time-out.
    fn recv(&mut self, timeout: Duration) -> Result<Option<Fields>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match check_frame(&self.buf, b"FIX.4.2", 1 << 20) {
                Frame::Complete { len } => {
                    let m = self
                        .parser
                        .parse(&self.buf[..len])
                        .map_err(|e| format!("bad message: {e}"))?;
                    let f: Fields = m
                        .fields()
                        .iter()
                        .map(|f| (f.tag, String::from_utf8_lossy(m.value(f)).into_owned()))
                        .collect();
                    if m.get(43) != Some(b"Y") {
                        if let Some(s) = m.seq_num() {
                            self.inbound = s + 1;
                        }
                    }
                    self.buf.drain(..len);
                    return Ok(Some(f));
                }
                Frame::Incomplete { .. } => {}
                other => return Err(format!("the acceptor sent a bad frame: {other:?}")),
            }
            let Some(c) = self.conn.as_mut() else {
                return Ok(None);
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out".into());
            }
            c.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
            let mut tmp = [0_u8; 8192];
            match c.read(&mut tmp) {
                Ok(0) => {
                    self.conn = None;
                    return Ok(None);
                }
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("timed out".into())
                }
                Err(_) => {
                    self.conn = None;
                    return Ok(None);
                }
            }
        }
    }

    fn expect(&mut self, spec: &str) -> Result<(), String> {
        let m = match self.recv(self.t.timeout)? {
            Some(m) => m,
            None => return Err(format!("connection closed, expected {spec}")),
        };
        let inbound_before = self.inbound;
        for kv in spec.split('|').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').unwrap_or((kv, "*"));
            let (absent, k) = match k.strip_prefix('!') {
                Some(k) => (true, k),
                None => (false, k),
            };
            let tag: u32 = k.parse().map_err(|_| format!("bad tag {k}"))?;
            let got = m.iter().find(|(t, _)| *t == tag).map(|(_, v)| v.as_str());
            if absent {
                if got.is_some() {
                    return Err(format!("tag {tag} should be absent in {}", show(&m)));
                }
                continue;
            }
            let _ = inbound_before;
            let want = self.subst(v, self.seq);
            match got {
                None => return Err(format!("tag {tag} missing in {}", show(&m))),
                Some(g) if want != "*" && g != want => {
                    return Err(format!(
                        "tag {tag} is {g}, expected {want}, in {}",
                        show(&m)
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Connect => {
                let c = TcpStream::connect(&self.t.addr)
                    .map_err(|e| format!("connect {}: {e}", self.t.addr))?;
                c.set_nodelay(true).map_err(|e| e.to_string())?;
                if self.opened > 0 {
                    self.park();
                }
                self.conn = Some(c);
                self.buf.clear();
                self.current = self.opened;
                self.opened += 1;
            }
            Step::Use(i) => {
                let i = *i as usize;
                if i >= self.parked.len() || i == self.current {
                    return Err(format!("no other connection {i}"));
                }
                self.park();
                let (c, b) = std::mem::take(&mut self.parked[i]);
                self.conn = c;
                self.buf = b;
                self.current = i;
            }
            Step::SendVersion(begin_string, spec) => {
                let saved = std::mem::replace(&mut self.begin_string, begin_string.clone());
                let m = self.build(spec);
                self.begin_string = saved;
                self.write(&m)?;
            }
            Step::Disconnect => {
                self.conn = None;
                self.buf.clear();
            }
            Step::Send(spec) => {
                let m = self.build(spec);
                self.write(&m)?;
            }
            Step::SendGarbled(spec) => {
                let mut m = self.build(spec);
                let n = m.len();
                m[n - 2] = if m[n - 2] == b'9' { b'0' } else { m[n - 2] + 1 };
                self.write(&m)?;
            }
            Step::SendRaw(text) => {
                let mut m = self.subst(text, self.seq).replace('|', "\x01").into_bytes();
                fix_lengths(&mut m);
                self.write(&m)?;
            }
            Step::Expect(spec) => {
                // The acceptor's number is checked against {in} before the message moves it.
                let spec = spec.replace("{in}", &self.inbound.to_string());
                self.expect(&spec)?;
            }
            Step::ExpectDisconnect => loop {
                match self.recv(self.t.timeout)? {
                    None => break,
                    Some(m) => {
                        let t = m
                            .iter()
                            .find(|(t, _)| *t == 35)
                            .map(|(_, v)| v.as_str())
                            .unwrap_or("");
                        if !matches!(t, "0" | "1" | "5") {
                            return Err(format!("expected a disconnect, got {}", show(&m)));
                        }
                    }
                }
            },
            Step::ExpectNone(ms) => match self.recv(Duration::from_millis(*ms)) {
                Err(_) => {}
                Ok(None) => return Err("connection closed, expected it to stay open".into()),
                Ok(Some(m)) => return Err(format!("expected nothing, got {}", show(&m))),
            },
            Step::Sleep(ms) => std::thread::sleep(Duration::from_millis(*ms)),
            Step::SetSeq(n) => self.seq = *n,
            Step::LogonReset => {
                self.seq = 1;
                let m = self.build("35=A|98=0|108=30|141=Y");
                self.write(&m)?;
                self.expect("35=A|141=Y|34=1|108=30")?;
            }
        }
        Ok(())
    }
}

/// Runs one scenario against the target.
pub fn run(s: &Scenario, t: &Target) -> Result<(), Failure> {
    let mut r = Run {
        t,
        conn: None,
        buf: Vec::new(),
        parked: Vec::new(),
        current: 0,
        opened: 0,
        run_id: now_ns().to_string(),
        begin_string: "FIX.4.2".into(),
        seq: 1,
        inbound: 1,
        parser: Parser::new(512),
    };
    for (line, step) in &s.steps {
        r.step(step).map_err(|reason| Failure {
            line: *line,
            reason,
        })?;
    }
    Ok(())
}

/// Loads every `*.fixs` file of a directory, sorted by name.
pub fn load_dir(dir: &std::path::Path) -> Result<Vec<(String, Scenario)>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "fixs"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let file = p
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            Scenario::parse(&text)
                .map(|s| (file.clone(), s))
                .map_err(|e| format!("{file}: {e}"))
        })
        .collect()
}
