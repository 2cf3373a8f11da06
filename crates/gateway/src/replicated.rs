//! FIX session state derived from the replicated inbound journal (high availability).
//!
//! A session's local store (`store_dir`) is not replicated; the inbound journal is. So the
//! gateway publishes `SessionCheckpointEvent`s into it, and a gateway that starts on a copy of
//! the journals (a new leader) resumes every session from the checkpoints:
//!
//! - **Outbound numbers.** Every checkpoint carries a reservation: the gateway never sends a
//!   MsgSeqNum at or above the last reservation that is in the journal (published is not
//!   enough: a replicated journal may lose what a dying leader published but did not commit).
//!   The session layer enforces it as a limit and logs the session out when it would be
//!   reached; the router raises the limit when it reads the checkpoint back. A new
//!   reservation is published when the next number passes half of the window. A new leader starts one past
//!   the highest reservation (and past its own store): never below anything the old leader
//!   sent, and always with a gap, so the client always asks for a resend.
//! - **Inbound numbers.** The last checkpoint's next expected number: everything the client
//!   sent below it was handled and its events precede the checkpoint in the journal. Messages
//!   after it are asked for again; the client resends them with PossDupFlag=Y, and orders
//!   whose ClOrdID the gateway already knows from the journal are ignored (not journaled
//!   twice).
//! - **Reports.** A checkpoint also says up to which outbound sequence the router had sent
//!   this session's reports, with numbers below its `nextSenderSeqNum`. The client's first
//!   ResendRequest after the takeover names the first number it misses (E); every report after
//!   the `routedOutboundSeq` of the latest checkpoint whose `nextSenderSeqNum <= E` may be
//!   unseen, and is sent again as a new message with PossResend(97)=Y and its ExecID. Results
//!   the router reads live after the takeover for inbound events journaled before it also
//!   carry PossResend=Y (the old leader may have sent them).
//!
//! Checkpoints cost nothing per message: the reservation is checked by one comparison after
//! each interaction, and the periodic checkpoints are published by the router thread.

use crate::shared::{Shared, SlotInner};
use crate::ReplicatedSessions;
use fix_session::{FileStore, Session};
use sbe_order_entry as sbe;
use sbe_order_entry::{message_header_codec::ENCODED_LENGTH as HDR, WriteBuf};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;

/// Encoded size of a checkpoint (header and block).
const CHECKPOINT_LEN: usize = HDR + 25;

/// One report as sent, without its header, for redelivery.
pub(crate) struct Rendered {
    pub outbound_seq: u64,
    pub msg_type: u8,
    /// The fields after MsgType, as `tag=value|`.
    pub body: Box<[u8]>,
}

/// What a takeover may have to send again, collected at start.
#[derive(Default)]
pub(crate) struct Redelivery {
    /// (nextSenderSeqNum, routedOutboundSeq) of the session's checkpoints, journal order.
    pub checkpoints: VecDeque<(u64, u64)>,
    /// The newest reports up to the router's start position.
    pub reports: VecDeque<Rendered>,
    /// The newest outbound sequence of a report not kept (more than
    /// `redelivery_reports_max`); 0 when none was dropped.
    pub dropped_through: u64,
}

/// A session's replication state (in `SlotInner`).
pub(crate) struct SlotReplication {
    pub config: ReplicatedSessions,
    /// The last reservation published.
    pub reserved: u64,
    /// (next sender, next target, routed) of the last checkpoint published.
    pub published: (u64, u64, u64),
    /// Until the takeover redelivery is done, checkpoints keep claiming what the previous
    /// checkpoints claimed (the reports after it were not certainly delivered).
    pub routed_floor: Option<u64>,
    /// Pending until the client's first ResendRequest.
    pub redelivery: Option<Redelivery>,
}

/// What the journals say of one session at start.
#[derive(Default)]
pub(crate) struct Collected {
    pub reserved_max: u64,
    pub last_target: u64,
    pub last_routed: u64,
    pub redelivery: Redelivery,
}

impl Collected {
    /// Records one checkpoint of the session (journal order).
    pub fn observe(
        &mut self,
        config: &ReplicatedSessions,
        reserved: u64,
        next_sender: u64,
        next_target: u64,
        routed: u64,
    ) {
        self.reserved_max = self.reserved_max.max(reserved);
        self.last_target = next_target;
        self.last_routed = routed;
        let c = &mut self.redelivery.checkpoints;
        if c.len() == config.redelivery_checkpoints_max.max(1) {
            c.pop_front();
        }
        c.push_back((next_sender, routed));
    }

    /// Keeps one rendered report (the newest `redelivery_reports_max`).
    pub fn keep_report(&mut self, config: &ReplicatedSessions, r: Rendered) {
        let reports = &mut self.redelivery.reports;
        if config.redelivery_reports_max == 0 {
            self.drop_report(r.outbound_seq);
            return;
        }
        if reports.len() == config.redelivery_reports_max {
            if let Some(old) = reports.pop_front() {
                self.drop_report(old.outbound_seq);
            }
        }
        self.redelivery.reports.push_back(r);
    }

    /// A report of the session at `outbound_seq` will not be redelivered.
    pub fn drop_report(&mut self, outbound_seq: u64) {
        let d = &mut self.redelivery.dropped_through;
        *d = (*d).max(outbound_seq);
    }
}

fn fix_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Publishes a checkpoint of the session as it is now, with `reserved` as its reservation;
/// false when the sequencer refused it (back-pressure).
pub(crate) fn publish_checkpoint(
    shared: &Shared,
    session_id: u32,
    session: &Session<FileStore>,
    ha: &mut SlotReplication,
    reserved: u64,
    reason: sbe::SessionCheckpointReason,
) -> bool {
    let next_sender = session.next_sender_seq();
    let next_target = session.next_target_seq();
    let routed = ha
        .routed_floor
        .unwrap_or_else(|| shared.routed_seq.load(Ordering::Acquire));
    let mut buf = [0_u8; CHECKPOINT_LEN];
    let encoded = (|| {
        let mut e = sbe::session_checkpoint_event_codec::SessionCheckpointEventEncoder::default()
            .wrap(WriteBuf::new(&mut buf), HDR)?;
        e = e.header(0)?.parent()?;
        e.routed_outbound_seq(routed);
        e.session_id(session_id);
        e.sender_seq_num_reserved(fix_u32(reserved));
        e.next_sender_seq_num(fix_u32(next_sender));
        e.next_target_seq_num(fix_u32(next_target));
        e.reason(reason);
        Ok::<_, sbe::SbeErr>(HDR + e.encoded_length())
    })();
    let Ok(len) = encoded else { return false };
    assert_eq!(len, CHECKPOINT_LEN);
    let ok = crate::events::publish(
        shared,
        sbe::session_checkpoint_event_codec::SBE_TEMPLATE_ID,
        &buf[..len],
    );
    if ok {
        ha.published = (next_sender, next_target, routed);
        ha.reserved = reserved;
        shared
            .stats
            .checkpoints_published
            .fetch_add(1, Ordering::Relaxed);
    }
    ok
}

/// Publishes a checkpoint when `force` or when the session changed since the last one.
pub(crate) fn checkpoint(
    shared: &Shared,
    session_id: u32,
    inner: &mut SlotInner,
    reason: sbe::SessionCheckpointReason,
    force: bool,
) {
    let Some(ha) = inner.ha.as_mut() else { return };
    let now = (
        inner.session.next_sender_seq(),
        inner.session.next_target_seq(),
        ha.routed_floor
            .unwrap_or_else(|| shared.routed_seq.load(Ordering::Acquire)),
    );
    if force || now != ha.published {
        let reserved = ha.reserved;
        publish_checkpoint(shared, session_id, &inner.session, ha, reserved, reason);
    }
}

/// After anything that may have sent: when the next outbound number passed half of the
/// window, publishes a new reservation and moves the session's limit up to it.
#[inline]
pub(crate) fn maintain(shared: &Shared, session_id: u32, inner: &mut SlotInner) {
    let Some(ha) = inner.ha.as_mut() else { return };
    let next = inner.session.next_sender_seq();
    let window = u64::from(ha.config.sender_seq_reservation);
    if next + window - window / 2 < ha.reserved {
        return;
    }
    let reserved = next + window;
    // The session's limit moves up when the router sees this checkpoint in the journal.
    publish_checkpoint(
        shared,
        session_id,
        &inner.session,
        ha,
        reserved,
        sbe::SessionCheckpointReason::Reservation,
    );
    debug_assert!(inner.session.sender_seq_limit() <= ha.reserved);
}

/// The routedOutboundSeq of the latest checkpoint whose nextSenderSeqNum is at most `begin`
/// (0 when there is none): every report up to it reached a client that misses `begin`.
pub(crate) fn delivered_up_to(checkpoints: &VecDeque<(u64, u64)>, begin: u64) -> u64 {
    checkpoints
        .iter()
        .rev()
        .find(|(next_sender, _)| *next_sender <= begin)
        .map_or(0, |(_, routed)| *routed)
}

/// The client's first ResendRequest after the takeover (BeginSeqNo `begin`), answered by the
/// session layer: sends again, with PossResend=Y, every report it may not have seen. Returns
/// false when sending failed.
pub(crate) fn redeliver(
    shared: &Shared,
    session_id: u32,
    inner: &mut SlotInner,
    out: &mut Vec<u8>,
    begin: u64,
    now_ns: u64,
) -> bool {
    let Some(ha) = inner.ha.as_mut() else {
        return true;
    };
    let Some(r) = ha.redelivery.take() else {
        return true;
    };
    let from = delivered_up_to(&r.checkpoints, begin);
    if r.dropped_through > from {
        shared
            .stats
            .redelivery_truncated
            .fetch_add(1, Ordering::Relaxed);
    }
    for rep in r.reports.iter().filter(|rep| rep.outbound_seq > from) {
        let sent = inner.session.send_app(&[rep.msg_type], now_ns, out, |w| {
            w.field(97, b"Y");
            w.raw(&rep.body);
        });
        if sent.is_err() {
            return false;
        }
        shared
            .stats
            .reports_redelivered
            .fetch_add(1, Ordering::Relaxed);
        maintain(shared, session_id, inner);
    }
    // Every report up to the start position has now been sent with a number below the next.
    if let Some(ha) = inner.ha.as_mut() {
        ha.routed_floor = None;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redelivery_starts_after_the_latest_checkpoint_the_client_has_passed() {
        let c: VecDeque<(u64, u64)> = [(1, 0), (10, 5), (20, 9), (30, 14)].into();
        assert_eq!(delivered_up_to(&c, 1), 0);
        assert_eq!(delivered_up_to(&c, 9), 0);
        assert_eq!(delivered_up_to(&c, 10), 5);
        assert_eq!(delivered_up_to(&c, 29), 9);
        assert_eq!(delivered_up_to(&c, 1_000), 14);
        assert_eq!(delivered_up_to(&VecDeque::new(), 1_000), 0);
    }

    #[test]
    fn the_collected_state_is_bounded_and_keeps_the_newest() {
        let config = ReplicatedSessions {
            redelivery_reports_max: 2,
            redelivery_checkpoints_max: 2,
            ..ReplicatedSessions::default()
        };
        let mut c = Collected::default();
        for i in 1..=3 {
            c.observe(&config, 100 * i, i, i + 1, i * 2);
            c.keep_report(
                &config,
                Rendered {
                    outbound_seq: i,
                    msg_type: b'8',
                    body: Box::from(&b"17=1\x01"[..]),
                },
            );
        }
        assert_eq!((c.reserved_max, c.last_target, c.last_routed), (300, 4, 6));
        assert_eq!(c.redelivery.checkpoints, VecDeque::from([(2, 4), (3, 6)]));
        let seqs: Vec<u64> = c
            .redelivery
            .reports
            .iter()
            .map(|r| r.outbound_seq)
            .collect();
        assert_eq!(seqs, [2, 3]);
        assert_eq!(c.redelivery.dropped_through, 1);
    }
}
