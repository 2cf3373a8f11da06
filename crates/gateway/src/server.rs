//! Listeners and connections: TCP and TLS accept loops, the per-connection task.

use crate::orders::{self, AppContext, Handled};
use crate::shared::{Conn, IpGuard, Shared, Slot, SlotInner};
use crate::{events, now_ns, RateLimitAction};
use fix_codec::{check_frame, Frame, Parser, Writer};
use fix_session::Outcome;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const NS_PER_MS: u64 = 1_000_000;

pub(crate) async fn accept_tcp(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let Some(guard) = shared.admit(peer.ip()) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handle = || {
            use std::os::fd::AsFd as _;
            stream
                .as_fd()
                .try_clone_to_owned()
                .ok()
                .map(std::net::TcpStream::from)
        };
        // A second handle for the router's direct writes (same open socket, non-blocking).
        let direct = if shared.config.direct_write {
            handle()
        } else {
            None
        };
        // And one for the read poll's eager phase (`read_spin`).
        let poll = if shared.config.read_spin.is_zero() {
            None
        } else {
            handle()
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move { serve(shared, stream, guard, direct, poll).await });
    }
}

pub(crate) async fn accept_tls(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let Some(guard) = shared.admit(peer.ip()) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        tokio::spawn(async move {
            let timeout = Duration::from_millis(shared.config.tls_handshake_timeout_ms);
            match tokio::time::timeout(timeout, tls.accept(stream)).await {
                Ok(Ok(s)) => serve(shared, s, guard, None, None).await,
                _ => {
                    shared
                        .stats
                        .tls_handshake_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

/// Reads until the first whole message (a Logon naming a configured session) or gives up.
async fn await_logon<S: AsyncRead + Unpin>(
    shared: &Shared,
    stream: &mut S,
    buf: &mut [u8],
    filled: &mut usize,
) -> Option<usize> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(shared.config.logon_timeout_ms);
    let mut parser = Parser::new(shared.config.fields_max);
    loop {
        match check_frame(&buf[..*filled], b"FIX.4.2", shared.config.body_len_max) {
            Frame::Complete { len } => {
                let m = parser.parse(&buf[..len]).ok()?;
                if m.msg_type() != b"A" {
                    return None;
                }
                let slot = shared.slot_for_logon(m.get(49)?, m.get(56)?)?;
                return shared.slots.iter().position(|s| std::ptr::eq(s, slot));
            }
            Frame::Incomplete { .. } => {}
            // Garbled, another version, too large: a Logon that is not right is a disconnect.
            _ => return None,
        }
        if *filled == buf.len() {
            return None;
        }
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf[*filled..]))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        *filled += n;
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    shared: Arc<Shared>,
    stream: S,
    mut guard: IpGuard,
    direct: Option<std::net::TcpStream>,
    mut poll: Option<std::net::TcpStream>,
) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let cap = shared.config.body_len_max + 64;
    let mut buf = vec![0_u8; cap];
    let mut filled = 0;
    let Some(slot_index) = await_logon(&shared, &mut rd, &mut buf, &mut filled).await else {
        return;
    };
    let slot = &shared.slots[slot_index];
    let conn_id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
    {
        let mut inner = slot.lock();
        if inner.conn.is_some() {
            // A second connection for a session already connected is refused.
            shared
                .stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        if inner.session.on_connect(now_ns()).is_err() {
            return;
        }
        inner.conn = Some(Conn {
            id: conn_id,
            out: Vec::with_capacity(4096),
            close: None,
            direct,
            writing: false,
        });
    }
    // However this task ends, the router's second handle on the socket goes with it.
    struct DirectHandle<'a>(&'a Slot, u64);
    impl Drop for DirectHandle<'_> {
        fn drop(&mut self) {
            self.0.drop_direct(self.1);
        }
    }
    let _direct_handle = DirectHandle(slot, conn_id);
    let mut conn = Connection {
        shared: &shared,
        slot,
        conn_id,
        parser: Parser::new(shared.config.fields_max),
        sbe_buf: vec![0_u8; 1024],
        writer_out: Vec::with_capacity(4096),
    };
    let mut closing = false;
    let mut spin = SpinGate::default();
    loop {
        if shared.aborted.load(Ordering::Acquire) {
            // A crash, as far as the peer can tell: the socket drops, nothing else happens.
            return;
        }
        // Handle every whole message in the buffer.
        let mut pos = 0;
        while !closing && pos < filled {
            match check_frame(&buf[pos..filled], b"FIX.4.2", shared.config.body_len_max) {
                Frame::Complete { len } => {
                    closing = conn.on_frame(&buf[pos..pos + len], &mut guard);
                    pos += len;
                }
                Frame::Garbled { skip, .. } => {
                    shared.stats.garbled.fetch_add(1, Ordering::Relaxed);
                    pos += skip;
                }
                Frame::Incomplete { .. } => break,
                Frame::WrongBeginString | Frame::TooLarge { .. } => {
                    conn.close_with_logout(b"Message refused: wrong BeginString or too large");
                    closing = true;
                }
            }
        }
        let handled = pos > 0;
        if handled && !closing {
            // What these messages published goes through matching and back out now, on this
            // thread, when the pipeline's threads are not already at it.
            shared.assist_pipeline();
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        if filled == buf.len() && !closing {
            // What is left fills the buffer without a whole message, although one always fits
            // (the frame check bounds BodyLength): junk, disconnect.
            break;
        }
        // Write what is queued.
        let (close_reason, next_timer) = {
            let mut guard = slot.lock();
            let inner = &mut *guard;
            let next = inner.session.next_timer_ns();
            // Reports the router is about to write itself (it listed this session for the end
            // of its batch, and wakes this task if the socket does not take them all) stay
            // for it: one writer at a time, and fewer, larger writes.
            let router_writes = inner.flush_pending && !closing;
            match inner.conn.as_mut() {
                Some(c) if c.id == conn_id && router_writes && c.direct.is_some() => {
                    (c.close, next)
                }
                Some(c) if c.id == conn_id => {
                    // What the peer may see is stored first (the store gathers records).
                    if inner.session.flush_store().is_err() {
                        c.close = Some(crate::close_reason(&inner.session, &shared.stats));
                    }
                    std::mem::swap(&mut c.out, &mut conn.writer_out);
                    // The router must not write directly while these bytes are in flight.
                    c.writing = !conn.writer_out.is_empty();
                    (c.close, next)
                }
                _ => (Some("replaced"), next),
            }
        };
        if !conn.writer_out.is_empty() {
            if wr.write_all(&conn.writer_out).await.is_err() {
                break;
            }
            conn.writer_out.clear();
            let mut inner = slot.lock();
            if let Some(c) = inner.conn.as_mut().filter(|c| c.id == conn_id) {
                c.writing = false;
                if !c.out.is_empty() {
                    // Queued while this write was in flight: written on the next turn.
                    slot.notify.notify_one();
                }
            }
        }
        if closing || close_reason.is_some() {
            // Anything queued meanwhile (the Logout) goes out before the close.
            let rest = {
                let mut inner = slot.lock();
                let _ = inner.session.flush_store();
                inner.conn.as_mut().filter(|c| c.id == conn_id).map(|c| {
                    // Closing: the task writes the rest, nobody else writes again.
                    c.writing = true;
                    std::mem::take(&mut c.out)
                })
            };
            if let Some(rest) = rest {
                let _ = wr.write_all(&rest).await;
            }
            let _ = wr.shutdown().await;
            break;
        }
        if handled && !shared.config.read_spin.is_zero() && spin.should_spin() {
            // Poll the socket a while before parking: an active client's next message is
            // read without waking this thread up (see `GatewayConfig::read_spin`).
            let start = std::time::Instant::now();
            let (until, polite) = (start + shared.config.read_spin, start + SPIN_EAGER);
            let mut read = None;
            let mut notified = false;
            if let Some(sock) = poll.as_mut() {
                // Plain TCP: the eager phase reads the socket itself, one non-blocking recv a
                // try (as a busy-polling client does), instead of a pass through the runtime
                // (its epoll turn, then this task's select) per try.
                use std::io::Read as _;
                loop {
                    match sock.read(&mut buf[filled..]) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        r => {
                            read = Some(r);
                            break;
                        }
                    }
                    if notify_pending(&slot.notify) {
                        notified = true;
                        break;
                    }
                    if std::time::Instant::now() >= polite {
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            loop {
                let now = std::time::Instant::now();
                if read.is_some() || notified || now >= until {
                    break;
                }
                if now >= polite {
                    // Past the eager start, each poll first hands the core to any other
                    // runnable thread (the pipeline's, the market-data publisher's), so the
                    // rest of the poll takes only time the core would spend idle.
                    std::thread::yield_now();
                }
                tokio::select! {
                    biased;
                    r = rd.read(&mut buf[filled..]) => read = Some(r),
                    _ = slot.notify.notified() => notified = true,
                    _ = tokio::task::yield_now() => {}
                }
            }
            spin.record((read.is_some() || notified) && start.elapsed() <= SPIN_EAGER);
            match read {
                Some(Ok(0)) | Some(Err(_)) => break,
                Some(Ok(n)) => {
                    filled += n;
                    continue;
                }
                // Bytes to write (the router's wake-up): the top of the loop writes them.
                None if notified => continue,
                None => {}
            }
        }
        let now = now_ns();
        let sleep_ns = next_timer
            .saturating_sub(now)
            .clamp(NS_PER_MS, 1_000 * NS_PER_MS);
        tokio::select! {
            r = rd.read(&mut buf[filled..]) => {
                match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => filled += n,
                }
            }
            _ = slot.notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_nanos(sleep_ns)) => {
                let mut inner = slot.lock();
                let inner = &mut *inner;
                if let Some(c) = inner.conn.as_mut().filter(|c| c.id == conn_id) {
                    match inner.session.on_timer(now_ns(), &mut c.out) {
                        Ok(Outcome::Disconnect(r)) => c.close = Some(r),
                        Err(_) => c.close = Some(crate::close_reason(&inner.session, &shared.stats)),
                        Ok(_) => {}
                    }
                }
                crate::replicated::maintain(&shared, slot.entry.session_id, inner);
            }
        }
        // A full buffer is not an error here: the messages in it are handled at the top of the
        // loop (a read that fills the buffer with many whole messages is normal under load).
    }
    conn.detach();
}

/// Takes a stored `notify_one` permit of `notify` without waiting: whether bytes were queued
/// for the connection's task to write.
fn notify_pending(notify: &tokio::sync::Notify) -> bool {
    use std::future::Future as _;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let notified = std::pin::pin!(notify.notified());
    notified.poll(&mut cx).is_ready()
}

/// How long a read poll (`read_spin`) polls without yielding the core to other threads: about
/// the time a trading client takes to answer a report with its next order over loopback.
const SPIN_EAGER: Duration = Duration::from_micros(10);

/// Whether a connection's task polls its socket after handling messages (`read_spin`), from
/// how those polls went. A poll pays when the client's next message comes within
/// [`SPIN_EAGER`] (a trading loop: one order, its report, the next order); otherwise it
/// burns CPU for little (an open-loop sender at a moderate rate, an idle session). After a
/// poll that did not pay, the next 1, 3, 7, ... (at most 1,023) turns park at once; a poll
/// that paid undoes one step of that back-off and the next turn polls again. A client that
/// answers in time in most turns is polled after every message; one that does not in most
/// turns is polled about once per thousand.
#[derive(Debug, Default)]
pub(crate) struct SpinGate {
    /// Net polls that did not pay (each one that paid takes one off), at most 10.
    failures: u32,
    /// Turns left that park without polling.
    skip: u32,
}

impl SpinGate {
    const FAILURES_MAX: u32 = 10;

    /// Whether this turn polls (called once per turn that handled messages).
    pub(crate) fn should_spin(&mut self) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        true
    }

    /// The outcome of a poll: whether it paid (a message, or bytes to write, within
    /// [`SPIN_EAGER`]).
    pub(crate) fn record(&mut self, paid: bool) {
        if paid {
            self.failures = self.failures.saturating_sub(1);
        } else {
            self.failures = (self.failures + 1).min(Self::FAILURES_MAX);
            self.skip = (1_u32 << self.failures) - 1;
        }
    }
}

struct Connection<'a> {
    shared: &'a Shared,
    slot: &'a Slot,
    conn_id: u64,
    parser: Parser,
    sbe_buf: Vec<u8>,
    writer_out: Vec<u8>,
}

impl Connection<'_> {
    /// Handles one message; true when the connection must close.
    fn on_frame(&mut self, raw: &[u8], guard: &mut IpGuard) -> bool {
        let shared = self.shared;
        let Ok(msg) = self.parser.parse(raw) else {
            shared.stats.garbled.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        let now = now_ns();
        let mut inner = self.slot.lock();
        let inner = &mut *inner;
        let close = Self::on_message(
            shared,
            self.slot,
            self.conn_id,
            &mut self.sbe_buf,
            inner,
            &msg,
            now,
            guard,
        );
        crate::replicated::maintain(shared, self.slot.entry.session_id, inner);
        close
    }

    #[allow(clippy::too_many_arguments)]
    fn on_message(
        shared: &Shared,
        slot: &Slot,
        conn_id: u64,
        sbe_buf: &mut [u8],
        inner: &mut SlotInner,
        msg: &fix_codec::Message<'_>,
        now: u64,
        guard: &mut IpGuard,
    ) -> bool {
        let sid = slot.entry.session_id;
        let Some(c) = inner.conn.as_mut().filter(|c| c.id == conn_id) else {
            return true;
        };
        let outcome = match inner.session.on_message(msg, now, &mut c.out) {
            Ok(o) => o,
            Err(_) => Outcome::Disconnect(crate::close_reason(&inner.session, &shared.stats)),
        };
        // A takeover: the client's first ResendRequest (answered above by the session layer)
        // names the first number it misses; the reports it may not have seen follow.
        if outcome == Outcome::Handled
            && msg.msg_type() == b"2"
            && inner.ha.as_ref().is_some_and(|h| h.redelivery.is_some())
        {
            if let Some(begin) = msg.get_u64(7).filter(|&b| b > 0) {
                let mut out = std::mem::take(&mut c.out);
                let ok = crate::replicated::redeliver(shared, sid, inner, &mut out, begin, now);
                let c = inner.conn.as_mut().expect("the connection is attached");
                c.out = out;
                if !ok {
                    c.close = Some(crate::close_reason(&inner.session, &shared.stats));
                    return true;
                }
            }
            return false;
        }
        match outcome {
            Outcome::Handled => false,
            Outcome::LoggedOn => {
                guard.authenticated();
                let period = slot.entry.fix.period_start_ns(now);
                inner.orders.start_period(period);
                inner.logged_on = true;
                shared.stats.logons.fetch_add(1, Ordering::Relaxed);
                events::publish_session_event(
                    shared,
                    &inner.session,
                    &inner.orders,
                    sbe_order_entry::SessionEventType::LoggedOn,
                    sbe_buf,
                );
                crate::replicated::checkpoint(
                    shared,
                    sid,
                    inner,
                    sbe_order_entry::SessionCheckpointReason::Logon,
                    true,
                );
                false
            }
            Outcome::Disconnect(r) => {
                c.close = Some(r);
                if msg.msg_type() == b"5" {
                    crate::replicated::checkpoint(
                        shared,
                        sid,
                        inner,
                        sbe_order_entry::SessionCheckpointReason::Logout,
                        true,
                    );
                }
                true
            }
            Outcome::Application => {
                let session = &mut inner.session;
                let out = &mut c.out;
                let mut failed = false;
                let mut send = |mt: &[u8], body: &mut dyn FnMut(&mut Writer)| {
                    if session.send_app(mt, now, out, |w| body(w)).is_err() {
                        failed = true;
                    }
                };
                if slot.limiter.check().is_err() {
                    shared.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    match slot.entry.rate_limit.action {
                        RateLimitAction::Reject => {
                            let seq = msg.seq_num().unwrap_or(0);
                            send(b"j", &mut |w| {
                                w.field_u64(45, seq);
                                w.field(372, msg.msg_type());
                                w.field(380, b"0");
                                w.field(58, b"Message rate limit exceeded");
                            });
                            return failed;
                        }
                        RateLimitAction::Logout => {
                            let _ = session.logout(Some(b"Message rate limit exceeded"), now, out);
                            c.close = Some("rate limit");
                            return true;
                        }
                    }
                }
                let ctx = AppContext {
                    instruments: &shared.instruments,
                    cl_ord_id_len_max: shared.config.cl_ord_id_len_max,
                    now_ns: now,
                };
                let handled = orders::handle(&ctx, &mut inner.orders, msg, sbe_buf, &mut send);
                if let Handled::PossDupIgnored = handled {
                    shared
                        .stats
                        .poss_dup_ignored
                        .fetch_add(1, Ordering::Relaxed);
                }
                if let Handled::Publish {
                    template,
                    len,
                    undo,
                } = handled
                {
                    if !events::publish(shared, template, &sbe_buf[..len]) {
                        // Refused: the order or request never existed.
                        inner.orders.unpublish(undo);
                        let seq = msg.seq_num().unwrap_or(0);
                        send(b"j", &mut |w| {
                            w.field_u64(45, seq);
                            w.field(372, msg.msg_type());
                            w.field(380, b"4");
                            w.field(58, b"Engine busy: message not accepted");
                        });
                    }
                }
                if failed {
                    c.close = Some(crate::close_reason(session, &shared.stats));
                }
                failed
            }
        }
    }

    fn close_with_logout(&mut self, text: &[u8]) {
        let mut inner = self.slot.lock();
        let inner = &mut *inner;
        if let Some(c) = inner.conn.as_mut().filter(|c| c.id == self.conn_id) {
            let _ = inner.session.logout(Some(text), now_ns(), &mut c.out);
            c.close = Some("protocol");
        }
    }

    /// The connection ended: release the session, cancel on disconnect if configured.
    fn detach(&mut self) {
        let shared = self.shared;
        let mut guard = self.slot.lock();
        let inner = &mut *guard;
        if inner.conn.as_ref().is_some_and(|c| c.id == self.conn_id) {
            inner.conn = None;
            let _ = inner.session.on_disconnect(now_ns());
            crate::replicated::checkpoint(
                shared,
                self.slot.entry.session_id,
                inner,
                sbe_order_entry::SessionCheckpointReason::Disconnect,
                false,
            );
            if inner.logged_on {
                inner.logged_on = false;
                events::publish_session_event(
                    shared,
                    &inner.session,
                    &inner.orders,
                    sbe_order_entry::SessionEventType::Disconnected,
                    &mut self.sbe_buf,
                );
                if inner.orders.cancel_on_disconnect {
                    events::publish_mass_cancel(shared, &inner.orders, &mut self.sbe_buf);
                }
            }
        }
        drop(guard);
        // The disconnect and its mass cancel go through now (or wake the pipeline's thread).
        shared.assist_pipeline();
    }
}

#[cfg(test)]
mod tests {
    use super::SpinGate;

    /// The eager poll sees a write the router handed over (a stored permit) once, and takes it:
    /// the task's own `notified()` does not see it again.
    #[test]
    fn a_pending_write_notification_is_seen_once_without_waiting() {
        let n = tokio::sync::Notify::new();
        assert!(!super::notify_pending(&n));
        n.notify_one();
        assert!(super::notify_pending(&n));
        assert!(!super::notify_pending(&n));
        // Polling found nothing and left no waiter behind: a later permit is stored again.
        n.notify_one();
        assert!(super::notify_pending(&n));
    }

    #[test]
    fn a_client_that_answers_in_time_is_always_polled() {
        let mut g = SpinGate::default();
        for _ in 0..1000 {
            assert!(g.should_spin());
            g.record(true);
        }
    }

    #[test]
    fn fruitless_polls_back_off_exponentially() {
        let mut g = SpinGate::default();
        // Polls at turns 0, 2, 6, 14, ...: after the k-th failure, 2^k - 1 turns park.
        let mut polled = Vec::new();
        for turn in 0..200 {
            if g.should_spin() {
                polled.push(turn);
                g.record(false);
            }
        }
        assert_eq!(polled, vec![0, 2, 6, 14, 30, 62, 126]);
        // Capped: a long-idle session still tries about once every 1,024 turns.
        let mut g = SpinGate::default();
        let mut polls = 0;
        for _ in 0..100_000 {
            if g.should_spin() {
                polls += 1;
                g.record(false);
            }
        }
        assert!((100..=110).contains(&polls), "{polls} polls");
    }

    /// Polls per 10,000 turns when each poll pays with probability `p_paid`.
    fn polls_at(p_paid: f64) -> u32 {
        let mut g = SpinGate::default();
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut polls = 0;
        for _ in 0..10_000 {
            if g.should_spin() {
                polls += 1;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                g.record((x % 1000) as f64 / 1000.0 < p_paid);
            }
        }
        polls
    }

    #[test]
    fn clients_that_mostly_answer_in_time_are_polled_and_others_rarely() {
        // A trading loop (pays 9 times in 10) is polled on most turns; an open-loop sender
        // whose next message comes within the eager time one turn in four (tens of
        // microseconds apart) or one in twenty-five is left to park nearly always.
        assert!(polls_at(0.9) > 8_000, "{}", polls_at(0.9));
        assert!(polls_at(0.25) < 200, "{}", polls_at(0.25));
        assert!(polls_at(0.04) < 100, "{}", polls_at(0.04));
        // A paying poll after a long idle spell: the next turn polls again.
        let mut g = SpinGate::default();
        for _ in 0..20 {
            g.record(false);
        }
        while !g.should_spin() {}
        g.record(true);
        assert!(g.should_spin());
    }
}
