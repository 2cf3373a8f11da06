//! SBE events the gateway publishes into the inbound journal.

use crate::orders::SessionOrders;
use crate::shared::Shared;
use fix_session::{FileStore, Session};
use journal::PublishError;
use sbe_order_entry as sbe;
use sbe_order_entry::{message_header_codec::ENCODED_LENGTH as HDR, WriteBuf};
use std::sync::atomic::Ordering;

/// How long a request waits for room in the sequencer's hand-off before it is refused
/// ("Engine busy", BusinessMessageReject 380=4; docs/fix-rules-of-engagement.md).
pub(crate) const PUBLISH_WAIT_MAX: std::time::Duration = std::time::Duration::from_millis(20);

/// Hands an event to the sequencer; false when it stayed full for [`PUBLISH_WAIT_MAX`]
/// (back-pressure) or refused it. With a pipeline assist the sequencer's thread is not woken:
/// the connection task calls `Shared::assist_pipeline` after its messages, which runs the turn
/// or wakes that thread; and a full hand-off is drained on this thread when the pipeline's
/// own thread is not at it.
pub(crate) fn publish(shared: &Shared, template: u16, bytes: &[u8]) -> bool {
    let quiet = shared.config.pipeline_assist.is_some();
    let mut deadline = None;
    let mut attempt = 0_u32;
    loop {
        let r = if quiet {
            shared.publisher.try_publish_quiet(template, bytes)
        } else {
            shared.publisher.try_publish(template, bytes)
        };
        match r {
            Ok(()) => return true,
            Err(PublishError::Full) => {
                if let Some(assist) = shared.config.pipeline_assist.as_ref() {
                    // The sequencer is behind: drain the hand-off on this thread when the
                    // pipeline's own thread is not at it (the turn takes no session lock, so
                    // it may run under the caller's), instead of shedding the request.
                    // A turn that moved nothing (the journal behind the sequencer is full
                    // itself) counts against the wait like any other attempt.
                    if assist.assist().is_some_and(|n| n > 0) {
                        shared.outbound_bell.ring();
                        shared.router_bell.ring();
                        continue;
                    }
                }
                if quiet && attempt == 0 {
                    // The sequencer is behind: make sure its thread is awake to drain.
                    shared.publisher.doorbell().ring();
                }
                // The clock is read only once the hand-off is found full.
                let now = std::time::Instant::now();
                if now >= *deadline.get_or_insert(now + PUBLISH_WAIT_MAX) {
                    break;
                }
                if attempt > 100 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                attempt = attempt.saturating_add(1);
            }
            Err(_) => break,
        }
    }
    shared
        .stats
        .publish_back_pressure
        .fetch_add(1, Ordering::Relaxed);
    false
}

pub(crate) fn publish_session_event(
    shared: &Shared,
    session: &Session<FileStore>,
    orders: &SessionOrders,
    kind: sbe::SessionEventType,
    buf: &mut [u8],
) {
    let encoded = (|| {
        let mut e = sbe::session_event_codec::SessionEventEncoder::default()
            .wrap(WriteBuf::new(buf), HDR)?;
        e = e.header(0)?.parent()?;
        e.session_id(orders.session_id);
        e.next_sender_seq_num(u32::try_from(session.next_sender_seq()).unwrap_or(u32::MAX));
        e.next_target_seq_num(u32::try_from(session.next_target_seq()).unwrap_or(u32::MAX));
        e.event_type(kind);
        e.cancel_on_disconnect(if orders.cancel_on_disconnect {
            sbe::BooleanType::True
        } else {
            sbe::BooleanType::False
        });
        Ok::<_, sbe::SbeErr>(HDR + e.encoded_length())
    })();
    if let Ok(len) = encoded {
        publish(
            shared,
            sbe::session_event_codec::SBE_TEMPLATE_ID,
            &buf[..len],
        );
    }
}

pub(crate) fn publish_mass_cancel(shared: &Shared, orders: &SessionOrders, buf: &mut [u8]) {
    let encoded = (|| {
        let mut e = sbe::mass_cancel_event_codec::MassCancelEventEncoder::default()
            .wrap(WriteBuf::new(buf), HDR)?;
        e = e.header(0)?.parent()?;
        e.session_id(orders.session_id);
        e.account_id(orders.account_id);
        e.scope(sbe::MassCancelScope::Session);
        e.reason(sbe::MassCancelReason::Disconnect);
        let mut g = e.instruments_encoder(0, Default::default())?;
        let mut e = g.parent()?;
        e.text(b"cancel on disconnect")?;
        Ok::<_, sbe::SbeErr>(HDR + e.encoded_length())
    })();
    if let Ok(len) = encoded {
        publish(
            shared,
            sbe::mass_cancel_event_codec::SBE_TEMPLATE_ID,
            &buf[..len],
        );
    }
}
