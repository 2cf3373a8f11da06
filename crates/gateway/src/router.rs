//! Engine results (the outbound journal) → ExecutionReports and OrderCancelRejects.
//!
//! One thread reads the outbound journal in order, finds the session each result belongs to,
//! updates that session's order state under its lock and sends the report through the session
//! (so it gets a sequence number and is stored for resends even while the client is away).
//! ExecID is the outbound journal sequence of the result, so it is unique and the same after a
//! restart. The last handled sequence is saved in `<store_dir>/router.cursor`; on start the
//! journals up to it are replayed into the order maps without sending anything.

use crate::orders::{ClOrdId, Entry, Order, Report, SessionOrders};
use crate::shared::{Shared, Slot};
use fix_codec::Writer;
use journal::{FrameView, IdleStrategy, Reader};
use sbe_order_entry as sbe;
use sbe_order_entry::{message_header_codec::ENCODED_LENGTH as HDR, ReadBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

fn reject_text(r: sbe::RejectReason) -> &'static [u8] {
    use sbe::RejectReason as R;
    match r {
        R::UnknownInstrument => b"Unknown instrument",
        R::UnknownAccount => b"Unknown account",
        R::InstrumentHalted => b"Instrument halted",
        R::ZeroQuantity => b"Zero quantity",
        R::QuantityOffLot => b"Quantity off lot",
        R::QuantityAboveInstrumentMax => b"Quantity above the instrument maximum",
        R::PriceNotPositive => b"Price not positive",
        R::PriceOffTick => b"Price off tick",
        R::PriceOutsideBand => b"Price outside the band",
        R::NoReferencePrice => b"No reference price",
        R::OrderQuantityAboveLimit => b"Order quantity above limit",
        R::OrderNotionalAboveLimit => b"Order notional above limit",
        R::DailyQuantityLimit => b"Daily quantity limit",
        R::DailyNotionalLimit => b"Daily notional limit",
        R::InsufficientCash => b"Insufficient cash",
        R::InsufficientPosition => b"Insufficient position",
        R::OrderCapacity => b"Order capacity",
        R::LevelCapacity => b"Price level capacity",
        R::UnknownOrder => b"Unknown order",
        R::AlreadyClosed => b"Order already closed",
        R::NotOwner => b"Not the order's owner",
        R::QuantityBelowFilled => b"Quantity below the filled quantity",
        R::InvalidAmount => b"Invalid amount",
        R::NotionalOverflow => b"Notional overflow",
        R::MalformedEvent => b"Malformed event",
        R::NullVal => b"Rejected",
    }
}

/// OrdRejReason(103) for an engine reject.
fn ord_rej_reason(r: sbe::RejectReason) -> u8 {
    use sbe::RejectReason as R;
    match r {
        R::UnknownInstrument => 1,
        R::InstrumentHalted => 2,
        R::QuantityAboveInstrumentMax
        | R::OrderQuantityAboveLimit
        | R::OrderNotionalAboveLimit
        | R::DailyQuantityLimit
        | R::DailyNotionalLimit
        | R::InsufficientCash
        | R::InsufficientPosition => 3,
        R::UnknownOrder => 5,
        _ => 0,
    }
}

fn cancel_text(r: sbe::CancelReason) -> &'static [u8] {
    use sbe::CancelReason as C;
    match r {
        C::User => b"Cancelled",
        C::ImmediateOrCancelRemainder => b"IOC remainder cancelled",
        C::FillOrKillNotFillable => b"FOK not fillable",
        C::SelfTradePrevention => b"Self-trade prevention",
        C::MassCancelUser => b"Mass cancel",
        C::MassCancelDisconnect => b"Cancel on disconnect",
        C::MassCancelAdmin => b"Cancelled by the operator",
        C::MarketOrderRemainder => b"Market order remainder cancelled",
        C::DayExpiry => b"Day order expired",
        C::NullVal => b"Cancelled",
    }
}

/// The session number of an outbound result, if it concerns one.
pub(crate) fn session_of(template: u16, payload: &[u8]) -> Option<u32> {
    let rb = ReadBuf::new(payload);
    // Every order result starts with its fixed block; read session_id through the decoders.
    let h = sbe::MessageHeaderDecoder::default().wrap(rb, 0).ok()?;
    Some(match template {
        sbe::order_accepted_codec::SBE_TEMPLATE_ID => {
            sbe::order_accepted_codec::OrderAcceptedDecoder::default()
                .header(h, HDR)
                .ok()?
                .session_id()
        }
        sbe::order_rejected_codec::SBE_TEMPLATE_ID => {
            sbe::order_rejected_codec::OrderRejectedDecoder::default()
                .header(h, HDR)
                .ok()?
                .session_id()
        }
        sbe::order_filled_codec::SBE_TEMPLATE_ID => {
            sbe::order_filled_codec::OrderFilledDecoder::default()
                .header(h, HDR)
                .ok()?
                .session_id()
        }
        sbe::order_cancelled_codec::SBE_TEMPLATE_ID => {
            sbe::order_cancelled_codec::OrderCancelledDecoder::default()
                .header(h, HDR)
                .ok()?
                .session_id()
        }
        sbe::order_replaced_codec::SBE_TEMPLATE_ID => {
            sbe::order_replaced_codec::OrderReplacedDecoder::default()
                .header(h, HDR)
                .ok()?
                .session_id()
        }
        sbe::cancel_rejected_codec::SBE_TEMPLATE_ID => {
            sbe::cancel_rejected_codec::CancelRejectedDecoder::default()
                .header(h, HDR)
                .ok()?
                .session_id()
        }
        _ => return None,
    })
}

/// The inbound sequence of the event an outbound result answers.
fn inbound_seq_of(template: u16, payload: &[u8]) -> Option<u64> {
    let h = sbe::MessageHeaderDecoder::default()
        .wrap(ReadBuf::new(payload), 0)
        .ok()?;
    Some(match template {
        sbe::order_accepted_codec::SBE_TEMPLATE_ID => {
            sbe::order_accepted_codec::OrderAcceptedDecoder::default()
                .header(h, HDR)
                .ok()?
                .inbound_seq()
        }
        sbe::order_rejected_codec::SBE_TEMPLATE_ID => {
            sbe::order_rejected_codec::OrderRejectedDecoder::default()
                .header(h, HDR)
                .ok()?
                .inbound_seq()
        }
        sbe::order_filled_codec::SBE_TEMPLATE_ID => {
            sbe::order_filled_codec::OrderFilledDecoder::default()
                .header(h, HDR)
                .ok()?
                .inbound_seq()
        }
        sbe::order_cancelled_codec::SBE_TEMPLATE_ID => {
            sbe::order_cancelled_codec::OrderCancelledDecoder::default()
                .header(h, HDR)
                .ok()?
                .inbound_seq()
        }
        sbe::order_replaced_codec::SBE_TEMPLATE_ID => {
            sbe::order_replaced_codec::OrderReplacedDecoder::default()
                .header(h, HDR)
                .ok()?
                .inbound_seq()
        }
        sbe::cancel_rejected_codec::SBE_TEMPLATE_ID => {
            sbe::cancel_rejected_codec::CancelRejectedDecoder::default()
                .header(h, HDR)
                .ok()?
                .inbound_seq()
        }
        _ => return None,
    })
}

/// A message to send, or nothing (replay).
pub(crate) type Sender<'s> = Option<&'s mut dyn FnMut(&[u8], &mut dyn FnMut(&mut Writer))>;

/// Applies one outbound result to a session's orders and reports it through `send`.
pub(crate) fn apply(
    shared: &Shared,
    orders: &mut SessionOrders,
    seq: u64,
    template: u16,
    payload: &[u8],
    now_ns: u64,
    mut send: Sender<'_>,
) {
    let Ok(h) = sbe::MessageHeaderDecoder::default().wrap(ReadBuf::new(payload), 0) else {
        return;
    };
    // ExecID: the outbound sequence in decimal, formatted on the stack.
    let mut exec_id_buf = [0_u8; 20];
    let exec_id = {
        let mut n = seq;
        let mut i = exec_id_buf.len();
        loop {
            i -= 1;
            exec_id_buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        &exec_id_buf[i..]
    };
    let mut report = |orders: &SessionOrders, key: u64, r: &dyn Fn(&Order) -> ReportArgs| {
        let Some(o) = orders.order(key) else { return };
        let Some(inst) = shared.instruments.list.get(o.instrument) else {
            return;
        };
        let a = r(o);
        if let Some(send) = send.as_mut() {
            let rep = Report {
                order: o,
                cl_ord_id: a.cl_ord_id.as_deref().unwrap_or(&o.cl_ord_id),
                orig_cl_ord_id: a.orig.as_deref(),
                exec_id,
                exec_trans_type: b'0',
                exec_type: a.exec_type,
                last: a.last,
                leaves: a.leaves,
                rej_reason: a.rej,
                text: a.text,
            };
            send(b"8", &mut |w| rep.write(w, inst, now_ns));
        }
    };
    match template {
        sbe::order_accepted_codec::SBE_TEMPLATE_ID => {
            let Ok(d) = sbe::order_accepted_codec::OrderAcceptedDecoder::default().header(h, HDR)
            else {
                return;
            };
            let key = d.client_order_id();
            if let Some(Entry::Order(o)) = orders.entries.get_mut(&key) {
                o.order_id = Some(d.order_id());
                o.status = b'0';
            }
            let leaves = d.leaves_qty();
            report(orders, key, &|_| ReportArgs::new(b'0', leaves));
        }
        sbe::order_rejected_codec::SBE_TEMPLATE_ID => {
            let Ok(d) = sbe::order_rejected_codec::OrderRejectedDecoder::default().header(h, HDR)
            else {
                return;
            };
            let key = d.client_order_id();
            let reason = d.reason();
            if let Some(Entry::Order(o)) = orders.entries.get_mut(&key) {
                o.status = b'8';
            }
            report(orders, key, &|_| ReportArgs {
                rej: Some(ord_rej_reason(reason)),
                text: Some(reject_text(reason)),
                ..ReportArgs::new(b'8', 0)
            });
        }
        sbe::order_filled_codec::SBE_TEMPLATE_ID => {
            let Ok(d) = sbe::order_filled_codec::OrderFilledDecoder::default().header(h, HDR)
            else {
                return;
            };
            let key = d.client_order_id();
            let (px, qty, leaves) = (d.price(), d.quantity(), d.leaves_qty());
            let mut exec_type = b'1';
            if let Some(Entry::Order(o)) = orders.entries.get_mut(&key) {
                o.cum_qty = d.cum_qty();
                o.notional += i128::from(px) * i128::from(qty);
                o.order_id = o.order_id.or(Some(d.order_id()));
                o.status = if leaves == 0 { b'2' } else { b'1' };
                exec_type = o.status;
            }
            report(orders, key, &|_| ReportArgs {
                last: Some((qty, px)),
                ..ReportArgs::new(exec_type, leaves)
            });
        }
        sbe::order_cancelled_codec::SBE_TEMPLATE_ID => {
            let Ok(d) = sbe::order_cancelled_codec::OrderCancelledDecoder::default().header(h, HDR)
            else {
                return;
            };
            let key = d.client_order_id();
            let reason = d.reason();
            let mut request_cl: Option<ClOrdId> = None;
            let mut orig_cl: Option<ClOrdId> = None;
            if let Some(Entry::Order(o)) = orders.entries.get_mut(&key) {
                o.status = b'4';
                o.cum_qty = d.cum_qty();
                if reason == sbe::CancelReason::User {
                    if let Some(p) = o.pending.take() {
                        orig_cl = Some(o.cl_ord_id.clone());
                        if let Some(Entry::Request(r)) = orders.entries.get(&p) {
                            request_cl = Some(r.cl_ord_id.clone());
                        }
                        orders.retire(p);
                    }
                }
            }
            report(orders, key, &|_| ReportArgs {
                cl_ord_id: request_cl.clone(),
                orig: if request_cl.is_some() {
                    orig_cl.clone()
                } else {
                    None
                },
                text: Some(cancel_text(reason)),
                ..ReportArgs::new(b'4', 0)
            });
        }
        sbe::order_replaced_codec::SBE_TEMPLATE_ID => {
            let Ok(d) = sbe::order_replaced_codec::OrderReplacedDecoder::default().header(h, HDR)
            else {
                return;
            };
            let (new_key, old_key) = (d.client_order_id(), d.orig_client_order_id());
            let Some(Entry::Order(mut o)) = orders.retire(old_key) else {
                return;
            };
            let orig_cl = o.cl_ord_id.clone();
            if let Some(Entry::Request(r)) = orders.entries.get(&new_key) {
                o.cl_ord_id = r.cl_ord_id.clone();
            }
            o.price = Some(d.price());
            o.order_qty = d.quantity();
            o.order_id = Some(d.order_id());
            o.pending = None;
            o.status = b'5';
            let leaves = d.leaves_qty();
            orders.entries.insert(new_key, Entry::Order(o));
            report(orders, new_key, &|_| ReportArgs {
                orig: Some(orig_cl.clone()),
                ..ReportArgs::new(b'5', leaves)
            });
            if let Some(Entry::Order(o)) = orders.entries.get_mut(&new_key) {
                o.status = if o.cum_qty > 0 { b'1' } else { b'0' };
            }
        }
        sbe::cancel_rejected_codec::SBE_TEMPLATE_ID => {
            let Ok(d) = sbe::cancel_rejected_codec::CancelRejectedDecoder::default().header(h, HDR)
            else {
                return;
            };
            let key = d.client_order_id();
            let reason = d.reason();
            let is_replace = d.response_to() == sbe::CancelRejectResponseTo::Replace;
            // The request: named directly (cancels, unknown orders) or pending on the order
            // (the engine names a rejected replace by the order's key).
            let request_key = match orders.entries.get(&key) {
                Some(Entry::Request(_)) => Some(key),
                Some(Entry::Order(o)) => o.pending,
                Some(Entry::Retired(_)) | None => None,
            };
            let Some(Entry::Request(req)) = request_key.and_then(|k| orders.retire(k)) else {
                return;
            };
            let (status, order_id, orig_cl) = match orders.entries.get_mut(&req.target) {
                Some(Entry::Order(o)) => {
                    o.pending = None;
                    (
                        if o.status == b'A' { b'0' } else { o.status },
                        o.order_id,
                        o.cl_ord_id.clone(),
                    )
                }
                _ => (b'8', None, ClOrdId::new(b"NONE")),
            };
            let cxl_reason: u64 = match reason {
                sbe::RejectReason::UnknownOrder => 1,
                sbe::RejectReason::AlreadyClosed => 0,
                _ => 2,
            };
            if let Some(send) = send.as_mut() {
                send(b"9", &mut |w| {
                    match order_id {
                        Some(id) => w.field_u64(37, id),
                        None => w.field(37, b"NONE"),
                    }
                    w.field(11, &req.cl_ord_id);
                    w.field(41, &orig_cl);
                    w.field(39, &[status]);
                    w.field(434, if is_replace { b"2" } else { b"1" });
                    w.field_u64(102, cxl_reason);
                    w.field(58, reject_text(reason));
                });
            }
        }
        _ => {}
    }
}

struct ReportArgs {
    exec_type: u8,
    leaves: u64,
    last: Option<(u64, i64)>,
    rej: Option<u8>,
    text: Option<&'static [u8]>,
    cl_ord_id: Option<ClOrdId>,
    orig: Option<ClOrdId>,
}

impl ReportArgs {
    fn new(exec_type: u8, leaves: u64) -> Self {
        Self {
            exec_type,
            leaves,
            last: None,
            rej: None,
            text: None,
            cl_ord_id: None,
            orig: None,
        }
    }
}

/// Handles one frame: live (send) or replay. `poss_resend`: the report may have been sent
/// before (by the node this gateway took over from).
/// Returns the session's slot index when its report waits in the connection's buffer for the
/// router's end-of-batch write ([`flush_direct`]).
pub(crate) fn route(
    shared: &Shared,
    f: &FrameView<'_>,
    live: bool,
    poss_resend: bool,
) -> Option<usize> {
    let sid = session_of(f.template_id, f.payload)?;
    let index = shared.slot_index(sid)?;
    route_to(shared, &shared.slots[index], f, live, poss_resend).then_some(index)
}

/// Writes the reports a batch left in the buffers of directly writable connections, one
/// system call per session and batch, and wakes the tasks of those with bytes left over.
fn flush_direct(shared: &Shared, pending: &mut Vec<usize>) {
    let aborted = shared.aborted.load(Ordering::Acquire);
    for index in pending.drain(..) {
        let slot = &shared.slots[index];
        let mut guard = slot.lock();
        let inner = &mut *guard;
        inner.flush_pending = false;
        let mut wake = match inner.conn.as_mut() {
            Some(c) => {
                let wake = c.write_direct(aborted);
                // Written in part: the socket took less than the batch's reports.
                let tried = c.direct.is_some() && !c.writing && c.close.is_none() && !aborted;
                if tried && !c.out.is_empty() {
                    shared.stats.socket_backlogs.fetch_add(1, Ordering::Relaxed);
                }
                wake
            }
            None => false,
        };
        // Stored right after the write (the file write is not on the client's path) and
        // before the cursor passes these results: a crash in between leaves them unstored but
        // routed again, under new sequence numbers with the same ExecIDs, after the restart.
        if inner.session.flush_store().is_err() {
            if let Some(c) = inner.conn.as_mut() {
                c.close = Some(crate::close_reason(&inner.session, &shared.stats));
                wake = true;
            }
        }
        drop(guard);
        if wake {
            slot.notify.notify_one();
        }
    }
}

/// True when the report is left for [`flush_direct`] (a direct connection) and the slot is
/// not yet in its list; false when it was handed to the connection's task, is already listed
/// or there was nothing to send.
fn route_to(
    shared: &Shared,
    slot: &Slot,
    f: &FrameView<'_>,
    live: bool,
    poss_resend: bool,
) -> bool {
    let (seq, template, payload) = (f.sequence, f.template_id, f.payload);
    let now = crate::now_ns();
    let mut guard = slot.lock();
    let inner = &mut *guard;
    if !live {
        apply(shared, &mut inner.orders, seq, template, payload, now, None);
        return false;
    }
    let mut scratch = std::mem::take(&mut inner.scratch);
    scratch.clear();
    let connected = inner.conn.is_some();
    let session = &mut inner.session;
    let out: &mut Vec<u8> = match inner.conn.as_mut() {
        Some(c) => &mut c.out,
        None => &mut scratch,
    };
    let mut failed = false;
    let mut send = |mt: &[u8], body: &mut dyn FnMut(&mut Writer)| {
        let sent = session.send_app(mt, now, out, |w| {
            if poss_resend {
                w.field(97, b"Y");
            }
            body(w);
        });
        if sent.is_err() {
            failed = true;
        }
    };
    apply(
        shared,
        &mut inner.orders,
        seq,
        template,
        payload,
        now,
        Some(&mut send),
    );
    crate::replicated::maintain(shared, slot.entry.session_id, inner);
    if let Some(c) = inner.conn.as_mut() {
        if failed {
            c.close = Some(crate::close_reason(&inner.session, &shared.stats));
        } else if c.out.len() > shared.config.outbound_bytes_max {
            c.close = Some("slow consumer");
            shared.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
        }
    }
    inner.scratch = scratch;
    // A direct connection's bytes wait for the end of the router's batch (one write for all
    // of the session's reports in it); the others' task is woken to write them.
    let direct = inner
        .conn
        .as_ref()
        .is_some_and(|c| c.direct.is_some() && c.close.is_none() && !c.out.is_empty());
    let first = direct && !inner.flush_pending;
    if direct {
        inner.flush_pending = true;
    } else if inner.session.flush_store().is_err() {
        // Stored before the cursor passes this result (a restart would not route it again).
        if let Some(c) = inner.conn.as_mut() {
            c.close = Some(crate::close_reason(&inner.session, &shared.stats));
        }
    }
    drop(guard);
    if connected && !direct {
        slot.notify.notify_one();
    }
    first
}

/// Replays one result into the order maps (start) and keeps the report it would have sent, as
/// sent, for a takeover's redelivery.
pub(crate) fn replay_rendered(
    shared: &Shared,
    f: &FrameView<'_>,
    w: &mut Writer,
    keep: &mut dyn FnMut(u32, crate::replicated::Rendered),
) {
    let Some(sid) = session_of(f.template_id, f.payload) else {
        return;
    };
    let Some(slot) = shared.slot(sid) else { return };
    let now = crate::now_ns();
    let mut rendered = None;
    {
        let mut guard = slot.lock();
        let mut send = |mt: &[u8], body: &mut dyn FnMut(&mut Writer)| {
            w.begin(mt);
            body(w);
            rendered = mt.first().copied();
        };
        apply(
            shared,
            &mut guard.orders,
            f.sequence,
            f.template_id,
            f.payload,
            now,
            Some(&mut send),
        );
    }
    if let Some(mt) = rendered {
        // The body starts with "35=<type>|".
        let body = &w.body()[4 + 1..];
        keep(
            sid,
            crate::replicated::Rendered {
                outbound_seq: f.sequence,
                msg_type: mt,
                body: body.into(),
            },
        );
    }
}

/// Publishes the checkpoint of every replicated session that changed.
fn checkpoint_all(shared: &Shared) {
    for slot in &shared.slots {
        let mut inner = slot.lock();
        crate::replicated::checkpoint(
            shared,
            slot.entry.session_id,
            &mut inner,
            sbe::SessionCheckpointReason::Interval,
            false,
        );
    }
}

/// Replicated sessions: the router follows the inbound journal for this gateway's checkpoints,
/// and a session may send only below a reservation that is in the journal (committed, when
/// the journal is replicated), not merely published: a node that dies right after publishing
/// a reservation has not used it.
pub(crate) struct Committed {
    reader: Reader,
    /// Results of inbound events up to this sequence may have been sent by the previous node.
    takeover_inbound_seq: u64,
}

impl Committed {
    pub fn new(reader: Reader, takeover_inbound_seq: u64) -> Self {
        Self {
            reader,
            takeover_inbound_seq,
        }
    }

    /// Reads the inbound journal through sequence `until`, or (None) at most `max` frames of
    /// what is there; returns the frames read.
    fn follow(&mut self, shared: &Shared, until: Option<u64>, max: usize) -> usize {
        let mut n = 0;
        loop {
            match until {
                Some(u) if self.reader.next_sequence() > u => break,
                None if n >= max => break,
                _ => {}
            }
            let Ok(Some(f)) = self.reader.poll() else {
                break;
            };
            n += 1;
            if f.template_id != sbe::session_checkpoint_event_codec::SBE_TEMPLATE_ID {
                continue;
            }
            let Some((sid, reserved)) = sbe::MessageHeaderDecoder::default()
                .wrap(ReadBuf::new(f.payload), 0)
                .ok()
                .and_then(|h| {
                    sbe::session_checkpoint_event_codec::SessionCheckpointEventDecoder::default()
                        .header(h, HDR)
                        .ok()
                })
                .map(|d| (d.session_id(), u64::from(d.sender_seq_num_reserved())))
            else {
                continue;
            };
            let Some(slot) = shared.slot(sid) else {
                continue;
            };
            let mut inner = slot.lock();
            let Some(published) = inner.ha.as_ref().map(|h| h.reserved) else {
                continue;
            };
            // Never above what this gateway published (a checkpoint of another node cannot
            // follow this one's start, but the limit does not trust that).
            let limit = reserved.min(published);
            if limit > inner.session.sender_seq_limit() {
                inner.session.set_sender_seq_limit(limit);
            }
        }
        n
    }
}

/// The router's state between batches. Whoever holds it routes: the router thread, or a
/// connection task that has just published orders ([`Shared::assist_pipeline`]), so the
/// reports of a lone order can leave on the thread that read it.
pub(crate) struct RouterCore {
    reader: Reader,
    committed: Option<Committed>,
    last_saved: u64,
    /// Slots with reports waiting for the end-of-batch write (each once: `flush_pending`).
    pending: Vec<usize>,
    checkpoint_every: Option<Duration>,
    last_checkpoint: std::time::Instant,
}

impl RouterCore {
    pub(crate) fn new(shared: &Shared, reader: Reader, committed: Option<Committed>) -> Self {
        RouterCore {
            last_saved: reader.next_sequence().saturating_sub(1),
            reader,
            committed,
            pending: Vec::with_capacity(shared.slots.len()),
            checkpoint_every: shared
                .config
                .replicated_sessions
                .map(|r| Duration::from_millis(r.checkpoint_interval_ms.max(1))),
            last_checkpoint: std::time::Instant::now(),
        }
    }

    /// One batch: routes up to `router_batch_max` results, writes the direct connections'
    /// reports, saves the cursor. Returns the results handled.
    pub(crate) fn step(&mut self, shared: &Shared) -> usize {
        let mut n = 0;
        if let Some(c) = self.committed.as_mut() {
            n += c.follow(shared, None, shared.config.router_batch_max);
        }
        while n < shared.config.router_batch_max {
            match self.reader.poll() {
                Ok(Some(f)) => {
                    let mut poss_resend = false;
                    if let Some(c) = self.committed.as_mut() {
                        if let Some(q) = inbound_seq_of(f.template_id, f.payload) {
                            // Every checkpoint journaled before the event this result answers
                            // is seen before the result is sent.
                            c.follow(shared, Some(q), usize::MAX);
                            poss_resend = q <= c.takeover_inbound_seq;
                        }
                    }
                    if let Some(index) = route(shared, &f, true, poss_resend) {
                        self.pending.push(index);
                    }
                    n += 1;
                }
                Ok(None) => break,
                Err(_) => {
                    shared.stats.router_errors.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                    break;
                }
            }
        }
        flush_direct(shared, &mut self.pending);
        let done = self.reader.next_sequence().saturating_sub(1);
        if done != self.last_saved {
            shared.routed_seq.store(done, Ordering::Release);
            shared.save_cursor(done);
            self.last_saved = done;
        }
        if let Some(every) = self.checkpoint_every {
            if self.last_checkpoint.elapsed() >= every {
                checkpoint_all(shared);
                self.last_checkpoint = std::time::Instant::now();
            }
        }
        n
    }
}

/// Marks the router stopped when its thread ends without a shutdown (returning on a poisoned
/// state, or unwinding from a panic).
struct StoppedGuard<'a>(&'a Shared);

impl Drop for StoppedGuard<'_> {
    fn drop(&mut self) {
        if !self.0.stop.load(Ordering::Relaxed) {
            self.0.stats.router_stopped.store(1, Ordering::Relaxed);
            tracing::error!(
                "the report router stopped: no ExecutionReports go out until a restart"
            );
        }
    }
}

/// The router thread's loop.
pub(crate) fn run(shared: Arc<Shared>) {
    let _stopped = StoppedGuard(&shared);
    let mut idle = IdleStrategy::new(shared.config.router_wait);
    let core = shared
        .router
        .get()
        .expect("the router's state is set before its thread");
    if shared.config.router_doorbell {
        // Woken by the matching agent's commits when parked, or with a pipeline assist only
        // when results are left for this thread.
        if shared.config.pipeline_assist.is_some() {
            idle.wait_on(&shared.router_bell);
        } else {
            idle.wait_on(&shared.outbound_bell);
        }
    }
    while !shared.stop.load(Ordering::Relaxed) {
        let n = match core.try_lock() {
            Ok(mut c) => c.step(&shared),
            // A connection task is routing: it handles what is there (and rings the bell
            // when it leaves some behind), this thread backs off as if idle.
            Err(std::sync::TryLockError::WouldBlock) => 0,
            Err(std::sync::TryLockError::Poisoned(_)) => {
                shared.stats.router_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        idle.idle(n);
    }
}
