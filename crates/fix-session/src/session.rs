//! Session rules: logon, heartbeats, sequence numbers, resends, rejects, logout.

use crate::store::Store;
use fix_codec::{
    time, Dictionary, Message, Parser, Rejection, SessionRejectReason as R, ValidationOptions,
    Verdict, Writer,
};
use std::io;
use std::sync::Arc;

const NS_PER_MS: u64 = 1_000_000;
const NS_PER_SEC: u64 = 1_000_000_000;
const NS_PER_DAY: u64 = 86_400 * NS_PER_SEC;

/// Per-session options, named as firms know them from QuickFIX.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Our CompID (SenderCompID on what we send, TargetCompID on what we receive).
    pub sender_comp_id: String,
    /// The counterparty's CompID.
    pub target_comp_id: String,
    pub begin_string: String,
    /// HeartBtInt(108) accepted on Logon, in seconds.
    pub heartbeat_secs_min: u64,
    pub heartbeat_secs_max: u64,
    /// ResetOnLogon / ResetOnLogout / ResetOnDisconnect.
    pub reset_on_logon: bool,
    pub reset_on_logout: bool,
    pub reset_on_disconnect: bool,
    /// CheckLatency / MaxLatency: SendingTime(52) must be within this many seconds of now.
    pub check_latency: bool,
    pub latency_secs_max: u64,
    /// Validation switches (CheckFieldsOutOfOrder, AllowUnknownMsgFields, ...).
    pub validation: ValidationOptions,
    /// When set, Logon must carry this in RawData(96) (compared in constant time).
    pub password: Option<Vec<u8>>,
    /// LogonTimeout: a connection that sends no Logon in this time is dropped.
    pub logon_timeout_ms: u64,
    /// LogoutTimeout: how long to wait for the Logout answer.
    pub logout_timeout_ms: u64,
    /// Most messages one ResendRequest is answered with; the rest comes on the next request.
    pub resend_range_max: u64,
    /// ResendRequests accepted per window; more is abuse and ends the session.
    pub resend_requests_max: u32,
    pub resend_window_ms: u64,
    /// Daily sequence reset: seconds after midnight UTC at which a new period starts.
    pub reset_time_utc_secs: Option<u64>,
}

impl SessionConfig {
    /// Start (ns since epoch) of the trading period that contains `now_ns`, by the daily reset
    /// time; 0 when the session has no schedule (one period forever).
    pub fn period_start_ns(&self, now_ns: u64) -> u64 {
        match self.reset_time_utc_secs {
            None => 0,
            Some(at) => {
                let today = now_ns - now_ns % NS_PER_DAY + at.min(86_399) * NS_PER_SEC;
                if now_ns >= today {
                    today
                } else {
                    today.saturating_sub(NS_PER_DAY)
                }
            }
        }
    }

    /// Defaults for the pair `(sender, target)`.
    pub fn new(sender_comp_id: &str, target_comp_id: &str) -> Self {
        Self {
            sender_comp_id: sender_comp_id.to_string(),
            target_comp_id: target_comp_id.to_string(),
            begin_string: "FIX.4.2".to_string(),
            heartbeat_secs_min: 1,
            heartbeat_secs_max: 120,
            reset_on_logon: false,
            reset_on_logout: false,
            reset_on_disconnect: false,
            check_latency: true,
            latency_secs_max: 120,
            validation: ValidationOptions::default(),
            password: None,
            logon_timeout_ms: 5_000,
            logout_timeout_ms: 2_000,
            resend_range_max: 2_000,
            resend_requests_max: 20,
            resend_window_ms: 10_000,
            reset_time_utc_secs: None,
        }
    }
}

/// Where the session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// No connection.
    Disconnected,
    /// Connected, waiting for the counterparty's Logon.
    AwaitingLogon,
    /// Logged on.
    Active,
    /// We sent Logout and wait for the answer.
    LogoutSent,
}

/// What the network layer must do after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing more (any answers are in the output buffer).
    Handled,
    /// The Logon was accepted.
    LoggedOn,
    /// An in-sequence, valid application message: the application handles it.
    Application,
    /// Write what is in the output buffer, then close the connection.
    Disconnect(&'static str),
}

/// Counters for the admin side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub rejects_sent: u64,
    pub resend_requests_sent: u64,
    pub resend_requests_served: u64,
    pub messages_resent: u64,
    pub gap_fills_sent: u64,
    pub duplicates_ignored: u64,
}

/// One FIX session (see the crate documentation).
pub struct Session<S: Store> {
    config: SessionConfig,
    dict: Arc<Dictionary>,
    store: S,
    state: SessionState,
    writer: Writer,
    gap_writer: Writer,
    heartbeat_ns: u64,
    connected_ns: u64,
    last_received_ns: u64,
    last_sent_ns: u64,
    test_request_sent_ns: Option<u64>,
    test_request_counter: u64,
    logout_sent_ns: u64,
    /// The highest number our outstanding ResendRequest asked for (its gap's end).
    resend_until: Option<u64>,
    resend_window_start_ns: u64,
    resend_window_count: u32,
    stored: Vec<u8>,
    store_parser: Parser,
    /// No message goes out with a MsgSeqNum at or above this (replicated sessions: the
    /// published reservation). The number just below it is kept for the Logout that ends the
    /// session when the limit is reached.
    sender_seq_limit: u64,
    sender_seq_exhausted: bool,
    pub stats: SessionStats,
}

/// Constant-time equality of two byte strings (the time depends on the lengths only).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0_u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

fn is_admin(msg_type: &[u8]) -> bool {
    matches!(msg_type, b"0" | b"1" | b"2" | b"3" | b"4" | b"5" | b"A")
}

impl<S: Store> Session<S> {
    /// A session over `store` (its numbers are where the last run left them).
    pub fn new(config: SessionConfig, dict: Arc<Dictionary>, store: S) -> Self {
        Self {
            config,
            dict,
            store,
            state: SessionState::Disconnected,
            writer: Writer::new(1024),
            gap_writer: Writer::new(256),
            heartbeat_ns: 30 * NS_PER_SEC,
            connected_ns: 0,
            last_received_ns: 0,
            last_sent_ns: 0,
            test_request_sent_ns: None,
            test_request_counter: 0,
            logout_sent_ns: 0,
            resend_until: None,
            resend_window_start_ns: 0,
            resend_window_count: 0,
            stored: Vec::with_capacity(1024),
            store_parser: Parser::new(512),
            sender_seq_limit: u64::MAX,
            sender_seq_exhausted: false,
            stats: SessionStats::default(),
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }
    pub fn state(&self) -> SessionState {
        self.state
    }
    /// Writes out the messages the store gathered ([`Store::flush`]): call it before the
    /// bytes `send_app` appended to an output buffer leave for the peer.
    pub fn flush_store(&mut self) -> io::Result<()> {
        self.store.flush()
    }
    pub fn store(&self) -> &S {
        &self.store
    }
    pub fn next_sender_seq(&self) -> u64 {
        self.store.next_sender_seq()
    }
    pub fn next_target_seq(&self) -> u64 {
        self.store.next_target_seq()
    }
    pub fn heartbeat_ns(&self) -> u64 {
        self.heartbeat_ns
    }
    pub fn is_connected(&self) -> bool {
        self.state != SessionState::Disconnected
    }

    /// Sets the MsgSeqNum no message may reach (see [`Session::sender_seq_exhausted`]).
    pub fn set_sender_seq_limit(&mut self, limit: u64) {
        assert!(limit > 0, "a sender sequence limit of 0 allows nothing");
        self.sender_seq_limit = limit;
    }

    pub fn sender_seq_limit(&self) -> u64 {
        self.sender_seq_limit
    }

    /// True once a message was refused because its MsgSeqNum would have reached the limit:
    /// the session sent a Logout with the last number below the limit (when it had one) and
    /// the call returned an error.
    pub fn sender_seq_exhausted(&self) -> bool {
        self.sender_seq_exhausted
    }

    /// Moves the sequence numbers (a session taken over from another node: the numbers come
    /// from the replicated journal, not from this node's store). The sender number only moves
    /// forward; the target number is set as given.
    pub fn resume_seq_nums(&mut self, next_sender: u64, next_target: u64) -> io::Result<()> {
        assert!(next_sender > 0);
        assert!(next_target > 0);
        if next_sender > self.store.next_sender_seq() {
            self.store.set_next_sender_seq(next_sender)?;
        }
        self.store.set_next_target_seq(next_target)?;
        debug_assert!(self.store.next_sender_seq() >= next_sender);
        Ok(())
    }

    /// A connection for this session was accepted. Starts a new sequence period first when
    /// the daily reset time has passed since the current one began.
    pub fn on_connect(&mut self, now_ns: u64) -> io::Result<()> {
        if self.config.reset_time_utc_secs.is_some() {
            let period_start = self.config.period_start_ns(now_ns);
            if self.store.created_ns() < period_start {
                self.store.reset(now_ns)?;
            }
        }
        self.state = SessionState::AwaitingLogon;
        self.connected_ns = now_ns;
        self.last_received_ns = now_ns;
        self.last_sent_ns = now_ns;
        self.test_request_sent_ns = None;
        self.resend_until = None;
        Ok(())
    }

    /// The connection is gone.
    pub fn on_disconnect(&mut self, now_ns: u64) -> io::Result<()> {
        let was_logged_on = matches!(self.state, SessionState::Active | SessionState::LogoutSent);
        self.state = SessionState::Disconnected;
        if was_logged_on && self.config.reset_on_disconnect {
            self.store.reset(now_ns)?;
        }
        Ok(())
    }

    /// Handles one framed, parsed inbound message.
    pub fn on_message(
        &mut self,
        msg: &Message<'_>,
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<Outcome> {
        self.last_received_ns = now_ns;
        match self.state {
            SessionState::Disconnected => return Ok(Outcome::Disconnect("not connected")),
            SessionState::AwaitingLogon => return self.on_logon(msg, now_ns, out),
            SessionState::Active | SessionState::LogoutSent => {}
        }
        let msg_type = msg.msg_type();
        let Some(seq) = msg.seq_num().filter(|&s| s > 0) else {
            self.send_logout(Some(b"MsgSeqNum(34) missing or invalid"), now_ns, out)?;
            return Ok(Outcome::Disconnect("MsgSeqNum missing"));
        };
        let expected = self.store.next_target_seq();
        let poss_dup = msg.get_flag(43);

        // SequenceReset-Reset ignores MsgSeqNum.
        if msg_type == b"4" && !msg.get_flag(123) {
            return self.on_sequence_reset(msg, seq, false, now_ns, out);
        }
        if seq < expected {
            if poss_dup {
                self.stats.duplicates_ignored += 1;
                return Ok(Outcome::Handled);
            }
            let text = format!("MsgSeqNum too low, expecting {expected} but received {seq}");
            self.send_logout(Some(text.as_bytes()), now_ns, out)?;
            return Ok(Outcome::Disconnect("MsgSeqNum too low"));
        }

        match self.dict.validate(msg, &self.config.validation) {
            Verdict::Valid { .. } => {}
            Verdict::Reject(r) => {
                self.send_reject(seq, msg_type, r, None, now_ns, out)?;
                return self.after_reject(seq, expected, now_ns, out);
            }
            Verdict::Unsupported => {
                self.send_business_reject(
                    seq,
                    msg_type,
                    3,
                    b"Unsupported message type",
                    now_ns,
                    out,
                )?;
                return self.after_reject(seq, expected, now_ns, out);
            }
        }
        if !self.comp_ids_match(msg) {
            let tag = if msg.get(49) != Some(self.config.target_comp_id.as_bytes()) {
                49
            } else {
                56
            };
            let r = Rejection {
                reason: R::CompIdProblem,
                tag: Some(tag),
            };
            self.send_reject(seq, msg_type, r, None, now_ns, out)?;
            self.consume_if_expected(seq, expected)?;
            self.send_logout(Some(b"CompID problem"), now_ns, out)?;
            return Ok(Outcome::Disconnect("CompID problem"));
        }
        let sending_ns = msg.get(52).and_then(time::parse_timestamp).unwrap_or(0);
        if self.config.check_latency
            && now_ns.abs_diff(sending_ns) > self.config.latency_secs_max.saturating_mul(NS_PER_SEC)
        {
            let r = Rejection {
                reason: R::SendingTimeAccuracyProblem,
                tag: Some(52),
            };
            self.send_reject(seq, msg_type, r, None, now_ns, out)?;
            self.consume_if_expected(seq, expected)?;
            self.send_logout(Some(b"SendingTime accuracy problem"), now_ns, out)?;
            return Ok(Outcome::Disconnect("SendingTime accuracy"));
        }
        if poss_dup {
            match msg.get(122).and_then(time::parse_timestamp) {
                None if msg_type != b"4" => {
                    let r = Rejection {
                        reason: R::RequiredTagMissing,
                        tag: Some(122),
                    };
                    self.send_reject(seq, msg_type, r, None, now_ns, out)?;
                    return self.after_reject(seq, expected, now_ns, out);
                }
                Some(orig) if orig > sending_ns => {
                    let r = Rejection {
                        reason: R::SendingTimeAccuracyProblem,
                        tag: Some(122),
                    };
                    self.send_reject(seq, msg_type, r, None, now_ns, out)?;
                    self.consume_if_expected(seq, expected)?;
                    self.send_logout(Some(b"OrigSendingTime later than SendingTime"), now_ns, out)?;
                    return Ok(Outcome::Disconnect("OrigSendingTime after SendingTime"));
                }
                _ => {}
            }
        }

        if seq > expected {
            // A gap: ask for it. A ResendRequest is still served, a Logout still answered.
            self.request_resend(expected, seq, now_ns, out)?;
            return match msg_type {
                b"2" => self
                    .serve_resend(msg, now_ns, out)
                    .map(|_| Outcome::Handled),
                b"5" => self.on_logout(now_ns, out),
                _ => Ok(Outcome::Handled),
            };
        }

        // In sequence.
        self.store.set_next_target_seq(seq + 1)?;
        if self.resend_until.is_some_and(|until| seq >= until) {
            self.resend_until = None;
        }
        match msg_type {
            b"0" => {
                if self.test_request_sent_ns.is_some() {
                    self.test_request_sent_ns = None;
                }
                Ok(Outcome::Handled)
            }
            b"1" => {
                let id = msg.get(112).unwrap_or(b"");
                self.send_admin(b"0", now_ns, out, |w| w.field(112, id))?;
                Ok(Outcome::Handled)
            }
            b"2" => self
                .serve_resend(msg, now_ns, out)
                .map(|o| o.unwrap_or(Outcome::Handled)),
            b"3" => Ok(Outcome::Handled),
            b"4" => self.on_sequence_reset(msg, seq, true, now_ns, out),
            b"5" => self.on_logout(now_ns, out),
            b"A" => {
                self.send_logout(Some(b"Logon received while logged on"), now_ns, out)?;
                Ok(Outcome::Disconnect("second Logon"))
            }
            _ => Ok(Outcome::Application),
        }
    }

    /// Timers: heartbeats, TestRequest, silent peers, Logon and Logout time-outs.
    pub fn on_timer(&mut self, now_ns: u64, out: &mut Vec<u8>) -> io::Result<Outcome> {
        match self.state {
            SessionState::Disconnected => Ok(Outcome::Handled),
            SessionState::AwaitingLogon => {
                if now_ns.saturating_sub(self.connected_ns)
                    >= self.config.logon_timeout_ms * NS_PER_MS
                {
                    Ok(Outcome::Disconnect("no Logon in time"))
                } else {
                    Ok(Outcome::Handled)
                }
            }
            SessionState::LogoutSent => {
                if now_ns.saturating_sub(self.logout_sent_ns)
                    >= self.config.logout_timeout_ms * NS_PER_MS
                {
                    Ok(Outcome::Disconnect("no Logout answer in time"))
                } else {
                    Ok(Outcome::Handled)
                }
            }
            SessionState::Active => {
                let hb = self.heartbeat_ns;
                // The spec's grace: a TestRequest after one interval plus 20% of silence, a
                // disconnect when it is not answered within another interval.
                if let Some(sent) = self.test_request_sent_ns {
                    if now_ns.saturating_sub(sent) >= hb {
                        self.send_logout(Some(b"No answer to TestRequest"), now_ns, out)?;
                        return Ok(Outcome::Disconnect("TestRequest unanswered"));
                    }
                } else if now_ns.saturating_sub(self.last_received_ns) >= hb + hb / 5 {
                    self.test_request_counter += 1;
                    let mut id = Vec::with_capacity(24);
                    id.extend_from_slice(b"TEST");
                    fix_codec::write_u64(&mut id, self.test_request_counter);
                    self.send_admin(b"1", now_ns, out, |w| w.field(112, &id))?;
                    self.test_request_sent_ns = Some(now_ns);
                }
                if now_ns.saturating_sub(self.last_sent_ns) >= hb {
                    self.send_admin(b"0", now_ns, out, |_| {})?;
                }
                Ok(Outcome::Handled)
            }
        }
    }

    /// When the next timer call is due at the latest (ns since epoch).
    pub fn next_timer_ns(&self) -> u64 {
        match self.state {
            SessionState::Disconnected => u64::MAX,
            SessionState::AwaitingLogon => {
                self.connected_ns + self.config.logon_timeout_ms * NS_PER_MS
            }
            SessionState::LogoutSent => {
                self.logout_sent_ns + self.config.logout_timeout_ms * NS_PER_MS
            }
            SessionState::Active => {
                let hb = self.heartbeat_ns;
                let a = self.last_sent_ns + hb;
                let b = match self.test_request_sent_ns {
                    Some(t) => t + hb,
                    None => self.last_received_ns + hb + hb / 5,
                };
                a.min(b)
            }
        }
    }

    /// Sends an application message: the header (CompIDs, MsgSeqNum, SendingTime) is written
    /// here, `body` writes the rest; the message is stored for resends. Works while
    /// disconnected too (the message waits in the store for the counterparty's ResendRequest).
    pub fn send_app(
        &mut self,
        msg_type: &[u8],
        now_ns: u64,
        out: &mut Vec<u8>,
        body: impl FnOnce(&mut Writer),
    ) -> io::Result<u64> {
        let seq = self.take_sender_seq(msg_type, now_ns, out)?;
        self.write_header(msg_type, seq, now_ns);
        body(&mut self.writer);
        let start = out.len();
        self.writer.finish(self.config.begin_string.as_bytes(), out);
        self.store.save(seq, &out[start..])?;
        self.store.set_next_sender_seq(seq + 1)?;
        self.last_sent_ns = now_ns;
        Ok(seq)
    }

    /// Starts the Logout handshake (the answer, or the time-out, ends the connection).
    pub fn logout(
        &mut self,
        text: Option<&[u8]>,
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        if self.state == SessionState::Active {
            self.send_logout(text, now_ns, out)?;
        }
        Ok(())
    }

    /// Sends a session-level Reject for a message the application layer refuses.
    pub fn reject(
        &mut self,
        ref_seq: u64,
        msg_type: &[u8],
        r: Rejection,
        text: Option<&[u8]>,
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        self.send_reject(ref_seq, msg_type, r, text, now_ns, out)
    }

    /// Sends a BusinessMessageReject (35=j).
    pub fn business_reject(
        &mut self,
        ref_seq: u64,
        msg_type: &[u8],
        reason: u8,
        text: &[u8],
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        self.send_business_reject(ref_seq, msg_type, reason, text, now_ns, out)
    }

    // ---------------------------------------------------------------- internals

    fn comp_ids_match(&self, msg: &Message<'_>) -> bool {
        msg.get(49) == Some(self.config.target_comp_id.as_bytes())
            && msg.get(56) == Some(self.config.sender_comp_id.as_bytes())
    }

    fn on_logon(
        &mut self,
        msg: &Message<'_>,
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<Outcome> {
        if msg.msg_type() != b"A" {
            return Ok(Outcome::Disconnect("first message is not a Logon"));
        }
        if !matches!(
            self.dict.validate(msg, &self.config.validation),
            Verdict::Valid { .. }
        ) {
            return Ok(Outcome::Disconnect("invalid Logon"));
        }
        if !self.comp_ids_match(msg) {
            return Ok(Outcome::Disconnect("unknown CompIDs"));
        }
        let Some(seq) = msg.seq_num().filter(|&s| s > 0) else {
            return Ok(Outcome::Disconnect("Logon without MsgSeqNum"));
        };
        if let Some(password) = &self.config.password {
            let given = msg.get(96).unwrap_or(b"");
            if !ct_eq(given, password) {
                self.send_logout_unchecked(Some(b"Logon rejected"), now_ns, out)?;
                return Ok(Outcome::Disconnect("bad credentials"));
            }
        }
        if msg.get(98) != Some(b"0") {
            self.send_logout_unchecked(Some(b"EncryptMethod(98) must be 0"), now_ns, out)?;
            return Ok(Outcome::Disconnect("unsupported EncryptMethod"));
        }
        let hb = msg.get_u64(108).unwrap_or(u64::MAX);
        if hb < self.config.heartbeat_secs_min || hb > self.config.heartbeat_secs_max {
            let text = format!(
                "HeartBtInt(108) must be within {}..={} seconds",
                self.config.heartbeat_secs_min, self.config.heartbeat_secs_max
            );
            self.send_logout_unchecked(Some(text.as_bytes()), now_ns, out)?;
            return Ok(Outcome::Disconnect("HeartBtInt out of bounds"));
        }
        let sending_ns = msg.get(52).and_then(time::parse_timestamp).unwrap_or(0);
        if self.config.check_latency
            && now_ns.abs_diff(sending_ns) > self.config.latency_secs_max.saturating_mul(NS_PER_SEC)
        {
            let r = Rejection {
                reason: R::SendingTimeAccuracyProblem,
                tag: Some(52),
            };
            self.send_reject(seq, b"A", r, None, now_ns, out)?;
            self.send_logout_unchecked(Some(b"SendingTime accuracy problem"), now_ns, out)?;
            return Ok(Outcome::Disconnect("SendingTime accuracy"));
        }
        let reset_requested = msg.get_flag(141);
        let reset = reset_requested || self.config.reset_on_logon;
        if reset {
            self.store.reset(now_ns)?;
        }
        let expected = self.store.next_target_seq();
        if seq < expected {
            let text = format!("MsgSeqNum too low, expecting {expected} but received {seq}");
            self.send_logout_unchecked(Some(text.as_bytes()), now_ns, out)?;
            return Ok(Outcome::Disconnect("MsgSeqNum too low"));
        }
        self.heartbeat_ns = hb.saturating_mul(NS_PER_SEC);
        self.state = SessionState::Active;
        self.test_request_sent_ns = None;
        self.send_admin(b"A", now_ns, out, |w| {
            w.field(98, b"0");
            w.field_u64(108, hb);
            if reset {
                w.field(141, b"Y");
            }
        })?;
        if seq == expected {
            self.store.set_next_target_seq(seq + 1)?;
        } else {
            self.request_resend(expected, seq, now_ns, out)?;
        }
        Ok(Outcome::LoggedOn)
    }

    fn on_logout(&mut self, now_ns: u64, out: &mut Vec<u8>) -> io::Result<Outcome> {
        if self.state != SessionState::LogoutSent {
            self.send_admin(b"5", now_ns, out, |_| {})?;
        }
        if self.config.reset_on_logout {
            self.store.reset(now_ns)?;
        }
        self.state = SessionState::Disconnected;
        Ok(Outcome::Disconnect("Logout"))
    }

    fn on_sequence_reset(
        &mut self,
        msg: &Message<'_>,
        seq: u64,
        gap_fill: bool,
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<Outcome> {
        let expected = self.store.next_target_seq();
        let Some(new_seq) = msg.get_u64(36) else {
            let r = Rejection {
                reason: R::RequiredTagMissing,
                tag: Some(36),
            };
            self.send_reject(seq, b"4", r, None, now_ns, out)?;
            return Ok(Outcome::Handled);
        };
        // For a gap fill, `expected` was already advanced past `seq`.
        if (gap_fill && new_seq <= seq) || (!gap_fill && new_seq < expected) {
            let r = Rejection {
                reason: R::ValueIncorrect,
                tag: Some(36),
            };
            let text = format!("NewSeqNo {new_seq} would rewind the expected sequence number");
            self.send_reject(seq, b"4", r, Some(text.as_bytes()), now_ns, out)?;
            return Ok(Outcome::Handled);
        }
        self.store.set_next_target_seq(new_seq)?;
        if self.resend_until.is_some_and(|until| new_seq > until) {
            self.resend_until = None;
        }
        Ok(Outcome::Handled)
    }

    /// Serves a ResendRequest from the store. `Some(Disconnect)` when the peer abuses it.
    fn serve_resend(
        &mut self,
        msg: &Message<'_>,
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<Option<Outcome>> {
        let begin = msg.get_u64(7).unwrap_or(0);
        let end = msg.get_u64(16).unwrap_or(0);
        let last_sent = self.store.next_sender_seq() - 1;
        if begin == 0 || (end != 0 && end < begin) {
            let r = Rejection {
                reason: R::ValueIncorrect,
                tag: Some(if begin == 0 { 7 } else { 16 }),
            };
            let seq = msg.seq_num().unwrap_or(0);
            self.send_reject(seq, b"2", r, None, now_ns, out)?;
            return Ok(None);
        }
        if now_ns.saturating_sub(self.resend_window_start_ns)
            >= self.config.resend_window_ms * NS_PER_MS
        {
            self.resend_window_start_ns = now_ns;
            self.resend_window_count = 0;
        }
        self.resend_window_count += 1;
        if self.resend_window_count > self.config.resend_requests_max {
            self.send_logout(Some(b"Too many ResendRequests"), now_ns, out)?;
            return Ok(Some(Outcome::Disconnect("ResendRequest rate")));
        }
        self.stats.resend_requests_served += 1;
        if begin > last_sent {
            return Ok(None);
        }
        let end = if end == 0 || end > last_sent {
            last_sent
        } else {
            end
        };
        // At most `resend_range_max` stored messages are visited per request (the rest comes
        // on the next one); runs of numbers the store does not hold are one gap fill each.
        let visits_max = self.config.resend_range_max.max(1);
        let mut visits = 0;
        let mut gap_start: Option<u64> = None;
        let mut seq = begin;
        while seq <= end && visits < visits_max {
            let stored = self
                .store
                .first_stored_from(seq)
                .unwrap_or(u64::MAX)
                .max(seq);
            if stored > seq {
                gap_start.get_or_insert(seq);
                seq = stored.min(end + 1);
                continue;
            }
            visits += 1;
            self.stored.clear();
            let found = self.store.load(seq, &mut self.stored)?;
            let resendable = found && self.rewrite_for_resend(seq, now_ns);
            if resendable {
                if let Some(g) = gap_start.take() {
                    self.send_gap_fill(g, seq, now_ns, out);
                }
                let start = out.len();
                self.writer.finish(self.config.begin_string.as_bytes(), out);
                debug_assert!(out.len() > start);
                self.stats.messages_resent += 1;
            } else if gap_start.is_none() {
                gap_start = Some(seq);
            }
            seq += 1;
        }
        if let Some(g) = gap_start {
            self.send_gap_fill(g, seq, now_ns, out);
        }
        self.last_sent_ns = now_ns;
        Ok(None)
    }

    /// Rebuilds stored message `seq` (in `self.stored`) in the writer as a possible duplicate.
    /// False when the stored bytes are not a sound application message (they are gap-filled).
    fn rewrite_for_resend(&mut self, seq: u64, now_ns: u64) -> bool {
        let bs = self.config.begin_string.as_bytes();
        match fix_codec::check_frame(&self.stored, bs, usize::MAX >> 1) {
            fix_codec::Frame::Complete { len } if len == self.stored.len() => {}
            _ => return false,
        }
        let Ok(m) = self.store_parser.parse(&self.stored) else {
            return false;
        };
        let msg_type = m.msg_type();
        if is_admin(msg_type) || m.seq_num() != Some(seq) {
            return false;
        }
        let orig = m.get(52).unwrap_or(b"");
        let poss_resend = m.get_flag(97);
        self.writer.begin(msg_type);
        self.writer.field(49, self.config.sender_comp_id.as_bytes());
        self.writer.field(56, self.config.target_comp_id.as_bytes());
        self.writer.field_u64(34, seq);
        self.writer.field(43, b"Y");
        // PossResend stays: the application marked the original as possibly seen before.
        if poss_resend {
            self.writer.field(97, b"Y");
        }
        self.writer.field_time(52, now_ns);
        self.writer.field(122, orig);
        for f in m.fields() {
            if !matches!(f.tag, 8 | 9 | 10 | 35 | 49 | 56 | 34 | 43 | 52 | 122 | 97) {
                self.writer.field(f.tag, m.value(f));
            }
        }
        true
    }

    /// Writes a SequenceReset-GapFill (with its own writer: the main one may hold a resend).
    fn send_gap_fill(&mut self, seq: u64, new_seq: u64, now_ns: u64, out: &mut Vec<u8>) {
        let w = &mut self.gap_writer;
        w.begin(b"4");
        w.field(49, self.config.sender_comp_id.as_bytes());
        w.field(56, self.config.target_comp_id.as_bytes());
        w.field_u64(34, seq);
        w.field(43, b"Y");
        w.field_time(52, now_ns);
        w.field_time(122, now_ns);
        w.field(123, b"Y");
        w.field_u64(36, new_seq);
        w.finish(self.config.begin_string.as_bytes(), out);
        self.stats.gap_fills_sent += 1;
    }

    fn request_resend(
        &mut self,
        expected: u64,
        received: u64,
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        // One outstanding request covers everything up to its end; do not repeat it.
        // Our requests run to infinity (EndSeqNo 0), so an outstanding one covers any gap.
        if self.resend_until.is_some() {
            return Ok(());
        }
        self.send_admin(b"2", now_ns, out, |w| {
            w.field_u64(7, expected);
            w.field_u64(16, 0);
        })?;
        self.resend_until = Some(received.saturating_sub(1).max(expected));
        self.stats.resend_requests_sent += 1;
        Ok(())
    }

    fn after_reject(
        &mut self,
        seq: u64,
        expected: u64,
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<Outcome> {
        if seq == expected {
            self.store.set_next_target_seq(seq + 1)?;
        } else if seq > expected {
            self.request_resend(expected, seq, now_ns, out)?;
        }
        Ok(Outcome::Handled)
    }

    fn consume_if_expected(&mut self, seq: u64, expected: u64) -> io::Result<()> {
        if seq == expected {
            self.store.set_next_target_seq(seq + 1)?;
        }
        Ok(())
    }

    /// The MsgSeqNum for a new message, or an error when it would reach the sender limit. A
    /// Logout may use the last number below the limit; anything else leaves it for the Logout
    /// that is sent here instead (with the reason) when the limit is reached.
    fn take_sender_seq(
        &mut self,
        msg_type: &[u8],
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<u64> {
        let seq = self.store.next_sender_seq();
        let reserve = u64::from(msg_type != b"5");
        if seq.saturating_add(reserve) < self.sender_seq_limit {
            return Ok(seq);
        }
        let first = !self.sender_seq_exhausted;
        self.sender_seq_exhausted = true;
        if first && reserve == 1 && self.state != SessionState::Disconnected {
            self.send_logout(
                Some(b"Sender MsgSeqNum reservation exhausted: the session must be resumed"),
                now_ns,
                out,
            )?;
        }
        Err(io::Error::other("sender MsgSeqNum reservation exhausted"))
    }

    fn write_header(&mut self, msg_type: &[u8], seq: u64, now_ns: u64) {
        self.writer.begin(msg_type);
        self.writer.field(49, self.config.sender_comp_id.as_bytes());
        self.writer.field(56, self.config.target_comp_id.as_bytes());
        self.writer.field_u64(34, seq);
        self.writer.field_time(52, now_ns);
    }

    /// Sends a session-level message (not stored: resends replace it by a gap fill).
    fn send_admin(
        &mut self,
        msg_type: &[u8],
        now_ns: u64,
        out: &mut Vec<u8>,
        body: impl FnOnce(&mut Writer),
    ) -> io::Result<u64> {
        let seq = self.take_sender_seq(msg_type, now_ns, out)?;
        self.write_header(msg_type, seq, now_ns);
        body(&mut self.writer);
        self.writer.finish(self.config.begin_string.as_bytes(), out);
        self.store.set_next_sender_seq(seq + 1)?;
        self.last_sent_ns = now_ns;
        Ok(seq)
    }

    fn send_logout(
        &mut self,
        text: Option<&[u8]>,
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        self.send_logout_unchecked(text, now_ns, out)?;
        self.state = SessionState::LogoutSent;
        self.logout_sent_ns = now_ns;
        Ok(())
    }

    fn send_logout_unchecked(
        &mut self,
        text: Option<&[u8]>,
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        self.send_admin(b"5", now_ns, out, |w| {
            if let Some(t) = text {
                w.field(58, t);
            }
        })?;
        Ok(())
    }

    fn send_reject(
        &mut self,
        ref_seq: u64,
        msg_type: &[u8],
        r: Rejection,
        text: Option<&[u8]>,
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        self.stats.rejects_sent += 1;
        self.send_admin(b"3", now_ns, out, |w| {
            w.field_u64(45, ref_seq);
            if let Some(tag) = r.tag {
                w.field_u64(371, u64::from(tag));
            }
            if !msg_type.is_empty() {
                w.field(372, msg_type);
            }
            if r.reason.defined_in_fix42() {
                w.field_u64(373, u64::from(r.reason.code()));
            }
            match text {
                Some(t) => w.field(58, t),
                None if r.reason.defined_in_fix42() => w.field(58, r.reason.text().as_bytes()),
                None => {
                    // FIX 4.2 has no code for this fault: name it (and the later code) in Text.
                    let mut t = Vec::with_capacity(64);
                    t.extend_from_slice(r.reason.text().as_bytes());
                    t.extend_from_slice(b" (SessionRejectReason ");
                    fix_codec::write_u64(&mut t, u64::from(r.reason.code()));
                    t.push(b')');
                    w.field(58, &t);
                }
            }
        })?;
        Ok(())
    }

    fn send_business_reject(
        &mut self,
        ref_seq: u64,
        msg_type: &[u8],
        reason: u8,
        text: &[u8],
        now_ns: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        self.send_app(b"j", now_ns, out, |w| {
            w.field_u64(45, ref_seq);
            w.field(372, msg_type);
            w.field_u64(380, u64::from(reason));
            w.field(58, text);
        })?;
        Ok(())
    }
}
