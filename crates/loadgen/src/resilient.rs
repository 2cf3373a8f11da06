//! A reconnecting FIX 4.2 initiator for failover tests and operations (not the hot path).
//!
//! Configured with a list of acceptor addresses, it connects to the first that answers its
//! Logon, and keeps its own sequence numbers and a store of the application messages it sent
//! across connections, as a FIX client of a high-availability venue must:
//!
//! - a ResendRequest is answered from the store: application messages again with
//!   PossDupFlag=Y and OrigSendingTime, session messages as SequenceReset-GapFill;
//! - a gap in what it receives is asked for with a ResendRequest (the messages above the gap
//!   are dropped until it is filled, as QuickFIX does), a SequenceReset-GapFill moves the
//!   expected number, a possible duplicate below it is ignored, and anything else below it is
//!   an error (counted, the connection is dropped: a venue that goes back in numbers lost
//!   messages);
//! - ExecutionReports are de-duplicated by ExecID; each duplicate is counted by how it was
//!   flagged (PossResend, PossDup, or neither: the last is a venue fault);
//! - orders sent while no connection is up get their sequence number and wait in the store;
//!   the acceptor asks for them after the next Logon.
//!
//! It is blocking (std `TcpStream` with read time-outs) and single-threaded: the caller drives
//! it with [`ResilientClient::poll`] or [`ResilientClient::run_until`], which also reconnect.

use fix_codec::{check_frame, time, Frame, Parser, Writer};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BEGIN: &[u8] = b"FIX.4.2";
/// Received bytes held at most (a message larger than this is a fault).
const RECV_BUFFER_MAX: usize = 1 << 20;

/// Where and as whom to connect.
#[derive(Clone, Debug)]
pub struct ResilientConfig {
    /// Acceptors in order of preference (a cluster's nodes).
    pub addrs: Vec<SocketAddr>,
    /// Our CompID (SenderCompID on what we send).
    pub sender_comp_id: String,
    /// The venue's CompID.
    pub target_comp_id: String,
    pub heartbeat_secs: u64,
    /// How long one address gets to accept the TCP connection and answer the Logon.
    pub connect_timeout: Duration,
    /// Application messages kept for resends at most (the oldest are gap-filled after).
    pub store_messages_max: usize,
}

impl ResilientConfig {
    pub fn new(addrs: Vec<SocketAddr>, sender_comp_id: &str, target_comp_id: &str) -> Self {
        Self {
            addrs,
            sender_comp_id: sender_comp_id.into(),
            target_comp_id: target_comp_id.into(),
            heartbeat_secs: 5,
            connect_timeout: Duration::from_secs(2),
            store_messages_max: 1_000_000,
        }
    }
}

/// Operating errors (protocol outcomes are counted in [`ResilientStats`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum ResilientError {
    /// No acceptor answered a Logon before the deadline (the last failure).
    NoAcceptor(String),
    /// The condition was not met before the deadline.
    Timeout,
}

impl std::fmt::Display for ResilientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoAcceptor(last) => write!(
                f,
                "no acceptor answered a Logon before the deadline (last: {last})"
            ),
            Self::Timeout => f.write_str("the condition was not met before the deadline"),
        }
    }
}

impl std::error::Error for ResilientError {}

/// A limit order to send.
#[derive(Clone, Debug)]
pub struct NewOrder {
    pub cl_ord_id: String,
    pub symbol: String,
    /// b'1' buy, b'2' sell.
    pub side: u8,
    pub quantity: u64,
    /// The price as the venue writes it (decimal text).
    pub price: String,
    /// TimeInForce(59).
    pub time_in_force: u8,
}

/// What the client knows of one order, from its ExecutionReports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderState {
    /// The last OrdStatus(39); a terminal one is never replaced.
    pub ord_status: u8,
    pub cum_qty: u64,
    pub reports: u32,
}

impl OrderState {
    /// Filled, cancelled, rejected, expired, or done for the day.
    pub fn is_terminal(&self) -> bool {
        matches!(self.ord_status, b'2' | b'3' | b'4' | b'8' | b'C')
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResilientStats {
    /// Successful Logons after the first.
    pub reconnects: u64,
    /// ExecutionReports whose ExecID was seen before, by flag.
    pub duplicates_poss_resend: u64,
    pub duplicates_poss_dup: u64,
    pub duplicates_unflagged: u64,
    /// Messages below the expected number without PossDupFlag (a venue fault).
    pub seq_too_low: u64,
    pub logouts_received: u64,
    pub resend_requests_sent: u64,
    pub resend_requests_served: u64,
    pub messages_resent: u64,
    pub rejects_received: u64,
}

struct Stored {
    msg_type: Vec<u8>,
    /// Fields after the header.
    body: Vec<u8>,
    sending_time: [u8; time::TIMESTAMP_MS_LEN],
}

struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    last_sent: Instant,
    last_received: Instant,
}

/// The client (see the module documentation).
pub struct ResilientClient {
    config: ResilientConfig,
    conn: Option<Conn>,
    next_sender: u64,
    expected: u64,
    /// The MsgSeqNum that revealed the gap our outstanding ResendRequest covers.
    resend_until: Option<u64>,
    sent: BTreeMap<u64, Stored>,
    buf: Vec<u8>,
    parser: Parser,
    writer: Writer,
    exec_ids: HashSet<String>,
    /// ExecIDs whose first arrival carried PossResend(97)=Y.
    poss_resend_exec_ids: HashSet<String>,
    orders: HashMap<String, OrderState>,
    sent_orders: Vec<String>,
    logons: u64,
    pub stats: ResilientStats,
    /// Texts of the Logouts and Rejects received, for diagnosis.
    pub notes: Vec<String>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn timestamp(ns: u64) -> [u8; time::TIMESTAMP_MS_LEN] {
    let mut t = [0_u8; time::TIMESTAMP_MS_LEN];
    time::format_ms(ns, &mut t);
    t
}

impl ResilientClient {
    /// A client that has not connected yet (sequence numbers start at 1).
    pub fn new(config: ResilientConfig) -> Self {
        assert!(!config.addrs.is_empty(), "at least one address");
        assert!(config.heartbeat_secs > 0);
        Self {
            config,
            conn: None,
            next_sender: 1,
            expected: 1,
            resend_until: None,
            sent: BTreeMap::new(),
            buf: Vec::with_capacity(64 * 1024),
            parser: Parser::new(512),
            writer: Writer::new(1024),
            exec_ids: HashSet::new(),
            poss_resend_exec_ids: HashSet::new(),
            orders: HashMap::new(),
            sent_orders: Vec::new(),
            logons: 0,
            stats: ResilientStats::default(),
            notes: Vec::new(),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The acceptor we are logged on to.
    pub fn connected_to(&self) -> Option<SocketAddr> {
        self.conn.as_ref().map(|c| c.addr)
    }

    /// (our next MsgSeqNum, the next we expect).
    pub fn seq_nums(&self) -> (u64, u64) {
        (self.next_sender, self.expected)
    }

    pub fn reconnect_count(&self) -> u64 {
        self.stats.reconnects
    }

    /// The ClOrdIDs of the orders sent, in order.
    pub fn sent_orders(&self) -> &[String] {
        &self.sent_orders
    }

    /// ClOrdIDs with at least one ExecutionReport.
    pub fn acknowledged(&self) -> HashSet<String> {
        self.orders.keys().cloned().collect()
    }

    pub fn order(&self, cl_ord_id: &str) -> Option<&OrderState> {
        self.orders.get(cl_ord_id)
    }

    /// Every distinct ExecID received.
    pub fn exec_ids(&self) -> &HashSet<String> {
        &self.exec_ids
    }

    /// ExecIDs first received with PossResend(97)=Y (reports a venue sent again after a
    /// takeover, without knowing whether they had reached us).
    pub fn poss_resend_exec_ids(&self) -> &HashSet<String> {
        &self.poss_resend_exec_ids
    }

    /// Drops the connection without a Logout (as a crash or a cut cable would).
    pub fn drop_connection(&mut self) {
        if let Some(c) = self.conn.take() {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
        self.buf.clear();
        self.resend_until = None;
    }

    /// Tries the addresses in turn until one answers the Logon, or `deadline` passes.
    pub fn connect(&mut self, deadline: Instant) -> Result<(), ResilientError> {
        let mut last;
        loop {
            for i in 0..self.config.addrs.len() {
                let addr = self.config.addrs[i];
                match self.try_logon(addr) {
                    Ok(()) => return Ok(()),
                    Err(e) => last = format!("{addr}: {e}"),
                }
                if Instant::now() >= deadline {
                    return Err(ResilientError::NoAcceptor(last));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_logon(&mut self, addr: SocketAddr) -> Result<(), String> {
        self.drop_connection();
        let stream = TcpStream::connect_timeout(&addr, self.config.connect_timeout)
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .map_err(|e| e.to_string())?;
        let now = Instant::now();
        self.conn = Some(Conn {
            stream,
            addr,
            last_sent: now,
            last_received: now,
        });
        let hb = self.config.heartbeat_secs;
        self.send_session(b"A", |w| {
            w.field(98, b"0");
            w.field_u64(108, hb);
        });
        let deadline = Instant::now() + self.config.connect_timeout;
        let logons = self.logons;
        while self.conn.is_some() && self.logons == logons {
            if Instant::now() >= deadline {
                self.drop_connection();
                return Err("no Logon answer in time".into());
            }
            self.read_some();
        }
        if self.logons == logons {
            return Err("closed before the Logon answer".into());
        }
        if self.logons > 1 {
            self.stats.reconnects += 1;
        }
        Ok(())
    }

    /// Sends a NewOrderSingle (stored for resends; when no connection is up it waits in the
    /// store and goes out when the acceptor asks for it after the next Logon).
    pub fn send_order(&mut self, o: &NewOrder) {
        let now = now_ns();
        let body = {
            let w = &mut self.writer;
            w.begin(b"D");
            w.field(11, o.cl_ord_id.as_bytes());
            w.field(21, b"1");
            w.field(55, o.symbol.as_bytes());
            w.field(54, &[o.side]);
            w.field_time(60, now);
            w.field_u64(38, o.quantity);
            w.field(40, b"2");
            w.field(44, o.price.as_bytes());
            w.field(59, &[o.time_in_force]);
            w.body()[5..].to_vec()
        };
        self.sent_orders.push(o.cl_ord_id.clone());
        self.send_app(b"D", body, now);
    }

    fn send_app(&mut self, msg_type: &[u8], body: Vec<u8>, now: u64) {
        let seq = self.next_sender;
        self.next_sender += 1;
        let stored = Stored {
            msg_type: msg_type.to_vec(),
            body,
            sending_time: timestamp(now),
        };
        let mut out = Vec::with_capacity(256);
        self.frame(seq, &stored, false, now, &mut out);
        if self.sent.len() == self.config.store_messages_max.max(1) {
            self.sent.pop_first();
        }
        self.sent.insert(seq, stored);
        self.write(&out);
    }

    /// Writes one stored message as `seq` (a resend when `poss_dup`).
    fn frame(&mut self, seq: u64, m: &Stored, poss_dup: bool, now: u64, out: &mut Vec<u8>) {
        let w = &mut self.writer;
        w.begin(&m.msg_type);
        w.field(49, self.config.sender_comp_id.as_bytes());
        w.field(56, self.config.target_comp_id.as_bytes());
        w.field_u64(34, seq);
        if poss_dup {
            w.field(43, b"Y");
        }
        w.field_time(52, now);
        if poss_dup {
            w.field(122, &m.sending_time);
        }
        w.raw(&m.body);
        w.finish(BEGIN, out);
    }

    /// Sends a session message (not stored: a resend gap-fills it).
    fn send_session(&mut self, msg_type: &[u8], body: impl FnOnce(&mut Writer)) {
        let seq = self.next_sender;
        self.next_sender += 1;
        let now = now_ns();
        let mut out = Vec::with_capacity(256);
        let w = &mut self.writer;
        w.begin(msg_type);
        w.field(49, self.config.sender_comp_id.as_bytes());
        w.field(56, self.config.target_comp_id.as_bytes());
        w.field_u64(34, seq);
        w.field_time(52, now);
        body(w);
        w.finish(BEGIN, &mut out);
        self.write(&out);
    }

    fn write(&mut self, bytes: &[u8]) {
        let Some(c) = self.conn.as_mut() else { return };
        if c.stream.write_all(bytes).is_err() {
            self.drop_connection();
        } else {
            c.last_sent = Instant::now();
        }
    }

    /// Reads and handles what arrives for about `wait`, keeping the session alive; reconnects
    /// (until `wait` is over) when the connection is gone.
    pub fn poll(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        loop {
            if self.conn.is_none() {
                let _ = self.connect(until);
            }
            self.read_some();
            self.timers();
            if Instant::now() >= until {
                return;
            }
        }
    }

    /// Polls until `done(self)` holds, or fails at `deadline`.
    pub fn run_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&Self) -> bool,
    ) -> Result<(), ResilientError> {
        while !done(self) {
            if Instant::now() >= deadline {
                return Err(ResilientError::Timeout);
            }
            self.poll(Duration::from_millis(20));
        }
        Ok(())
    }

    fn timers(&mut self) {
        let hb = Duration::from_secs(self.config.heartbeat_secs);
        let Some(c) = self.conn.as_ref() else { return };
        if c.last_received.elapsed() > hb * 3 {
            // A silent acceptor is gone (a half-open connection after a crash).
            self.drop_connection();
            return;
        }
        if c.last_sent.elapsed() >= hb {
            self.send_session(b"0", |_| {});
        }
    }

    /// One read (up to the socket's short time-out) and every whole message in the buffer.
    fn read_some(&mut self) {
        let Some(c) = self.conn.as_mut() else { return };
        let mut tmp = [0_u8; 16 * 1024];
        match c.stream.read(&mut tmp) {
            Ok(0) => {
                self.drop_connection();
                return;
            }
            Ok(n) => {
                c.last_received = Instant::now();
                self.buf.extend_from_slice(&tmp[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                self.drop_connection();
                return;
            }
        }
        loop {
            match check_frame(&self.buf, BEGIN, RECV_BUFFER_MAX) {
                Frame::Complete { len } => {
                    let raw: Vec<u8> = self.buf.drain(..len).collect();
                    self.on_message(&raw);
                    if self.conn.is_none() {
                        return;
                    }
                }
                Frame::Incomplete { .. } if self.buf.len() < RECV_BUFFER_MAX => return,
                _ => {
                    self.notes.push("garbled input from the acceptor".into());
                    self.drop_connection();
                    return;
                }
            }
        }
    }

    fn on_message(&mut self, raw: &[u8]) {
        let mut parser = std::mem::replace(&mut self.parser, Parser::new(1));
        let parsed = parser.parse(raw).ok().map(|m| {
            let fields: Vec<(u32, Vec<u8>)> = m
                .fields()
                .iter()
                .map(|f| (f.tag, m.value(f).to_vec()))
                .collect();
            fields
        });
        self.parser = parser;
        let Some(fields) = parsed else {
            self.notes
                .push("unparsable message from the acceptor".into());
            return;
        };
        let get = |tag: u32| fields.iter().find(|(t, _)| *t == tag).map(|(_, v)| &v[..]);
        let num = |tag: u32| {
            get(tag)
                .and_then(|v| std::str::from_utf8(v).ok())
                .and_then(|s| s.parse::<u64>().ok())
        };
        let msg_type = get(35).unwrap_or(b"").to_vec();
        let seq = num(34).unwrap_or(0);
        let poss_dup = get(43) == Some(b"Y");

        // Out of sequence: what still has to be handled.
        if msg_type == b"4" && get(123) != Some(b"Y") {
            if let Some(n) = num(36) {
                self.expected = self.expected.max(n);
            }
            return;
        }
        if seq < self.expected {
            if !poss_dup {
                self.stats.seq_too_low += 1;
                self.notes.push(format!(
                    "MsgSeqNum too low: expected {} got {seq}",
                    self.expected
                ));
                self.drop_connection();
            }
            return;
        }
        if seq > self.expected {
            if self.resend_until.is_none() {
                let from = self.expected;
                self.send_session(b"2", |w| {
                    w.field_u64(7, from);
                    w.field_u64(16, 0);
                });
                self.stats.resend_requests_sent += 1;
                self.resend_until = Some(seq);
            }
            match &msg_type[..] {
                b"A" => self.logons += 1,
                b"2" => self.serve_resend(num(7).unwrap_or(1), num(16).unwrap_or(0)),
                b"5" => self.on_logout(get(58)),
                _ => {}
            }
            // The rest is dropped: the acceptor sends it again.
            return;
        }
        self.expected = seq + 1;
        if self.resend_until.is_some_and(|u| self.expected > u) {
            self.resend_until = None;
        }
        match &msg_type[..] {
            b"A" => self.logons += 1,
            b"0" => {}
            b"1" => {
                let id = get(112).unwrap_or(b"").to_vec();
                self.send_session(b"0", |w| w.field(112, &id));
            }
            b"2" => self.serve_resend(num(7).unwrap_or(1), num(16).unwrap_or(0)),
            b"3" => {
                self.stats.rejects_received += 1;
                self.notes.push(format!(
                    "Reject: {}",
                    String::from_utf8_lossy(get(58).unwrap_or(b""))
                ));
            }
            b"4" => {
                if let Some(n) = num(36).filter(|&n| n > seq) {
                    self.expected = n;
                }
                if self.resend_until.is_some_and(|u| self.expected > u) {
                    self.resend_until = None;
                }
            }
            b"5" => self.on_logout(get(58)),
            b"8" => {
                let exec_id = String::from_utf8_lossy(get(17).unwrap_or(b"")).into_owned();
                let cl = String::from_utf8_lossy(get(11).unwrap_or(b"")).into_owned();
                if get(97) == Some(b"Y") && !self.exec_ids.contains(&exec_id) {
                    self.poss_resend_exec_ids.insert(exec_id.clone());
                }
                if !self.exec_ids.insert(exec_id) {
                    if get(97) == Some(b"Y") {
                        self.stats.duplicates_poss_resend += 1;
                    } else if poss_dup {
                        self.stats.duplicates_poss_dup += 1;
                    } else {
                        self.stats.duplicates_unflagged += 1;
                    }
                    return;
                }
                let status = get(39).and_then(|v| v.first().copied()).unwrap_or(b'0');
                let cum = num(14).unwrap_or(0);
                let o = self.orders.entry(cl).or_default();
                o.reports += 1;
                o.cum_qty = o.cum_qty.max(cum);
                // A redelivered report may come after a later one: never leave a final state.
                if !o.is_terminal() {
                    o.ord_status = status;
                }
            }
            _ => {}
        }
    }

    fn on_logout(&mut self, text: Option<&[u8]>) {
        self.stats.logouts_received += 1;
        self.notes.push(format!(
            "Logout: {}",
            String::from_utf8_lossy(text.unwrap_or(b""))
        ));
        self.send_session(b"5", |_| {});
        self.drop_connection();
    }

    /// Answers a ResendRequest from the store: stored application messages as possible
    /// duplicates, everything else as gap fills.
    fn serve_resend(&mut self, begin: u64, end: u64) {
        self.stats.resend_requests_served += 1;
        let last = self.next_sender - 1;
        let end = if end == 0 || end > last { last } else { end };
        if begin == 0 || begin > end {
            return;
        }
        let now = now_ns();
        let mut out = Vec::with_capacity(4096);
        let mut gap_from: Option<u64> = None;
        let resend: Vec<u64> = self.sent.range(begin..=end).map(|(s, _)| *s).collect();
        let mut next = begin;
        for seq in resend {
            if seq > next {
                gap_from.get_or_insert(next);
            }
            if let Some(g) = gap_from.take() {
                self.gap_fill(g, seq, now, &mut out);
            }
            let m = self.sent.remove(&seq).expect("listed");
            self.frame(seq, &m, true, now, &mut out);
            self.sent.insert(seq, m);
            self.stats.messages_resent += 1;
            next = seq + 1;
        }
        if next <= end {
            self.gap_fill(next, end + 1, now, &mut out);
        }
        self.write(&out);
    }

    fn gap_fill(&mut self, seq: u64, new_seq: u64, now: u64, out: &mut Vec<u8>) {
        let w = &mut self.writer;
        w.begin(b"4");
        w.field(49, self.config.sender_comp_id.as_bytes());
        w.field(56, self.config.target_comp_id.as_bytes());
        w.field_u64(34, seq);
        w.field(43, b"Y");
        w.field_time(52, now);
        w.field_time(122, now);
        w.field(123, b"Y");
        w.field_u64(36, new_seq);
        w.finish(BEGIN, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A scripted acceptor's side of one connection.
    struct Peer {
        stream: TcpStream,
        buf: Vec<u8>,
        seq: u64,
    }

    impl Peer {
        fn send(&mut self, msg_type: &[u8], fields: &[(u32, &[u8])]) {
            let mut w = Writer::new(512);
            w.begin(msg_type);
            w.field(49, b"EXCH");
            w.field(56, b"C1");
            w.field_u64(34, self.seq);
            w.field_time(52, now_ns());
            for (t, v) in fields {
                w.field(*t, v);
            }
            let mut out = Vec::new();
            w.finish(BEGIN, &mut out);
            self.stream.write_all(&out).unwrap();
            self.seq += 1;
        }

        /// The next message as (tag, value) pairs.
        fn recv(&mut self) -> Vec<(u32, String)> {
            loop {
                if let Frame::Complete { len } = check_frame(&self.buf, BEGIN, 1 << 16) {
                    let raw: Vec<u8> = self.buf.drain(..len).collect();
                    let mut p = Parser::new(64);
                    let m = p.parse(&raw).unwrap();
                    return m
                        .fields()
                        .iter()
                        .map(|f| (f.tag, String::from_utf8_lossy(m.value(f)).into_owned()))
                        .collect();
                }
                let mut tmp = [0_u8; 4096];
                let n = self.stream.read(&mut tmp).unwrap();
                assert!(n > 0, "the client closed");
                self.buf.extend_from_slice(&tmp[..n]);
            }
        }
    }

    #[test]
    fn a_client_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<ResilientClient>();
    }

    fn get(m: &[(u32, String)], tag: u32) -> Option<&str> {
        m.iter().find(|(t, _)| *t == tag).map(|(_, v)| v.as_str())
    }

    #[test]
    fn resumes_on_the_next_address_resends_as_possible_duplicates_and_counts_copies() {
        // The first address refuses connections (nothing listens there any more).
        let dead = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let live = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = live.local_addr().unwrap();
        // The acceptor keeps its connection (and listener) until the client has stopped
        // polling: a close seen while the client still polls makes it reconnect, and the
        // listener, not yet dropped, completed that connection (a second Logon, seq 4).
        let (release, released) = std::sync::mpsc::channel::<()>();
        let acceptor = std::thread::spawn(move || {
            let (stream, _) = live.accept().unwrap();
            let mut p = Peer {
                stream,
                buf: Vec::new(),
                seq: 1,
            };
            let logon = p.recv();
            assert_eq!((get(&logon, 35), get(&logon, 34)), (Some("A"), Some("1")));
            p.send(b"A", &[(98, b"0"), (108, b"5")]);
            let order = p.recv();
            assert_eq!((get(&order, 35), get(&order, 11)), (Some("D"), Some("O1")));
            // Ask for everything again: the Logon is gap-filled, the order resent.
            p.send(b"2", &[(7, b"1"), (16, b"0")]);
            let fill = p.recv();
            assert_eq!((get(&fill, 35), get(&fill, 123)), (Some("4"), Some("Y")));
            assert_eq!((get(&fill, 34), get(&fill, 36)), (Some("1"), Some("2")));
            let resent = p.recv();
            assert_eq!((get(&resent, 35), get(&resent, 34)), (Some("D"), Some("2")));
            assert_eq!(get(&resent, 43), Some("Y"));
            assert!(get(&resent, 122).is_some());
            // A report, its flagged copy, and a copy without a flag (a venue fault).
            let er: &[(u32, &[u8])] = &[(11, b"O1"), (17, b"7"), (150, b"0"), (39, b"0")];
            p.send(b"8", er);
            let mut copy = er.to_vec();
            copy.insert(0, (97, b"Y"));
            p.send(b"8", &copy);
            p.send(b"8", er);
            let filled: &[(u32, &[u8])] = &[(11, b"O1"), (17, b"8"), (150, b"2"), (39, b"2")];
            p.send(b"8", filled);
            // A late copy of the acknowledgement does not reopen the order.
            p.send(b"8", &copy);
            p.send(b"1", &[(112, b"done")]);
            let hb = p.recv();
            assert_eq!((get(&hb, 35), get(&hb, 112)), (Some("0"), Some("done")));
            let _ = released.recv();
        });
        let mut c = ResilientClient::new(ResilientConfig::new(vec![dead, addr], "C1", "EXCH"));
        c.connect(Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!(c.connected_to(), Some(addr));
        c.send_order(&NewOrder {
            cl_ord_id: "O1".into(),
            symbol: "X".into(),
            side: b'1',
            quantity: 10,
            price: "1.00".into(),
            time_in_force: b'0',
        });
        c.run_until(Instant::now() + Duration::from_secs(5), |c| {
            c.seq_nums().1 == 9
        })
        .unwrap();
        drop(release);
        acceptor.join().unwrap();
        assert_eq!(c.stats.duplicates_unflagged, 1);
        assert_eq!(c.stats.messages_resent, 1);
        assert_eq!(c.order("O1").unwrap().ord_status, b'2');
        assert!(c.order("O1").unwrap().is_terminal());
        assert_eq!(c.exec_ids().len(), 2);
        assert!(c.poss_resend_exec_ids().is_empty(), "first seen unflagged");
        assert_eq!(c.seq_nums(), (4, 9));
    }
}
