//! Engine outputs → outbound SBE events.

use crate::inbound::{sbe_side, Context};
use matching::{
    Asset, CancelReason, Event, Liquidity, MassCancelReason, MassCancelScope, OrderType, Output,
    RejectReason, TimeInForce, TradingStatus,
};
use sbe_order_entry as sbe;
use sbe_order_entry::{message_header_codec::ENCODED_LENGTH as HDR, SbeErr, WriteBuf};

/// Largest outbound event this module writes (`OrderFilled` is the longest block).
pub const ENCODED_LEN_MAX: usize = 160;

fn reject(r: RejectReason) -> sbe::RejectReason {
    // The schema's codes are the engine's, one for one.
    sbe::RejectReason::from(r as u8)
}

fn cancel_reason(r: CancelReason) -> sbe::CancelReason {
    sbe::CancelReason::from(r as u8)
}

fn split(v: i128) -> (u64, i64) {
    (v as u64, (v >> 64) as i64)
}

/// Encodes one engine output as its outbound SBE event into `buf`, filling what the output does
/// not carry from the inbound event's `context`; returns (template id, length).
pub fn encode(out: &Output, context: &Context, buf: &mut [u8]) -> Result<(u16, usize), SbeErr> {
    let wb = WriteBuf::new(buf);
    let seq = out.sequence;
    macro_rules! start {
        ($codec:ident, $enc:ident) => {{
            let e = sbe::$codec::$enc::default().wrap(wb, HDR)?;
            e.header(0)?.parent()?
        }};
    }
    macro_rules! done {
        ($codec:ident, $e:expr) => {
            (sbe::$codec::SBE_TEMPLATE_ID, HDR + $e.encoded_length())
        };
    }
    Ok(match out.event {
        Event::Accepted {
            order_id,
            session_id,
            account_id,
            client_order_id,
            instrument_id,
            side,
            order_type,
            time_in_force,
            price,
            quantity,
        } => {
            let mut e = start!(order_accepted_codec, OrderAcceptedEncoder);
            e.order_id(order_id);
            e.price(match order_type {
                OrderType::Limit => Some(price),
                OrderType::Market => None,
            });
            e.quantity(quantity);
            e.client_order_id(client_order_id);
            e.inbound_seq(seq);
            e.leaves_qty(quantity);
            e.session_id(session_id);
            e.account_id(account_id);
            e.instrument_id(instrument_id);
            e.side(sbe_side(side));
            e.ord_type(match order_type {
                OrderType::Limit => sbe::OrdType::Limit,
                OrderType::Market => sbe::OrdType::Market,
            });
            e.time_in_force(match time_in_force {
                TimeInForce::Day => sbe::TimeInForce::Day,
                TimeInForce::Gtc => sbe::TimeInForce::GoodTillCancel,
                TimeInForce::Ioc => sbe::TimeInForce::ImmediateOrCancel,
                TimeInForce::Fok => sbe::TimeInForce::FillOrKill,
            });
            done!(order_accepted_codec, e)
        }
        Event::Rejected {
            session_id,
            account_id,
            client_order_id,
            instrument_id,
            reason,
        } => {
            let mut e = start!(order_rejected_codec, OrderRejectedEncoder);
            e.client_order_id(client_order_id);
            e.inbound_seq(seq);
            e.quantity(context.quantity);
            e.session_id(session_id);
            e.account_id(account_id);
            e.instrument_id(instrument_id);
            e.reason(reject(reason));
            e.side(context.side.map_or(sbe::Side::NullVal, sbe_side));
            e.text(b"")?;
            done!(order_rejected_codec, e)
        }
        Event::Filled {
            order_id,
            account_id,
            session_id,
            client_order_id,
            instrument_id,
            side,
            exec_id,
            trade_id,
            price,
            quantity,
            leaves_quantity,
            cumulative_quantity,
            liquidity,
            contra_order_id,
            contra_account_id,
        } => {
            let mut e = start!(order_filled_codec, OrderFilledEncoder);
            e.exec_id(exec_id);
            e.trade_id(trade_id);
            e.order_id(order_id);
            e.price(price);
            e.quantity(quantity);
            e.leaves_qty(leaves_quantity);
            e.cum_qty(cumulative_quantity);
            e.client_order_id(client_order_id);
            e.inbound_seq(seq);
            let mut c = e.contra_encoder()?;
            c.order_id(contra_order_id);
            c.account_id(contra_account_id);
            let mut e = c.parent()?;
            e.session_id(session_id);
            e.account_id(account_id);
            e.instrument_id(instrument_id);
            e.side(sbe_side(side));
            e.liquidity(match liquidity {
                Liquidity::Maker => sbe::Liquidity::Maker,
                Liquidity::Taker => sbe::Liquidity::Taker,
            });
            let mut flags = sbe::ExecFlags::default();
            flags
                .set_order_complete(leaves_quantity == 0)
                .set_aggressor(liquidity == Liquidity::Taker);
            e.flags(flags);
            done!(order_filled_codec, e)
        }
        Event::Cancelled {
            order_id,
            account_id,
            session_id,
            client_order_id,
            instrument_id,
            cancelled_quantity,
            cumulative_quantity,
            reason,
        } => {
            let mut e = start!(order_cancelled_codec, OrderCancelledEncoder);
            e.order_id(order_id);
            e.client_order_id(client_order_id);
            e.cancelled_qty(cancelled_quantity);
            e.cum_qty(cumulative_quantity);
            e.inbound_seq(seq);
            e.session_id(session_id);
            e.account_id(account_id);
            e.instrument_id(instrument_id);
            e.reason(cancel_reason(reason));
            done!(order_cancelled_codec, e)
        }
        Event::Replaced {
            order_id,
            account_id,
            session_id,
            client_order_id,
            orig_client_order_id,
            instrument_id,
            price,
            leaves_quantity,
            cumulative_quantity,
            priority_kept,
        } => {
            let mut e = start!(order_replaced_codec, OrderReplacedEncoder);
            e.order_id(order_id);
            e.price(price);
            e.quantity(leaves_quantity + cumulative_quantity);
            e.leaves_qty(leaves_quantity);
            e.client_order_id(client_order_id);
            e.orig_client_order_id(orig_client_order_id);
            e.inbound_seq(seq);
            e.session_id(session_id);
            e.account_id(account_id);
            e.instrument_id(instrument_id);
            e.priority_kept(if priority_kept {
                sbe::BooleanType::True
            } else {
                sbe::BooleanType::False
            });
            done!(order_replaced_codec, e)
        }
        Event::CancelRejected {
            session_id,
            account_id,
            client_order_id,
            order_id,
            is_replace,
            reason,
        } => cancel_rejected(
            wb,
            seq,
            session_id,
            account_id,
            client_order_id,
            Some(order_id),
            is_replace,
            reason,
            context,
        )?,
        Event::OrderAdded {
            instrument_id,
            order_id,
            side,
            price,
            quantity,
            level_quantity,
            level_order_count,
        } => {
            let mut e = start!(book_order_added_codec, BookOrderAddedEncoder);
            e.order_id(order_id);
            e.price(price);
            e.quantity(quantity);
            e.level_qty(level_quantity);
            e.instrument_id(instrument_id);
            e.level_orders(level_order_count);
            e.side(sbe_side(side));
            done!(book_order_added_codec, e)
        }
        Event::OrderModified {
            instrument_id,
            order_id,
            side,
            price,
            quantity,
            level_quantity,
            level_order_count,
        } => {
            let mut e = start!(book_order_modified_codec, BookOrderModifiedEncoder);
            e.order_id(order_id);
            e.price(price);
            e.quantity(quantity);
            e.level_qty(level_quantity);
            e.instrument_id(instrument_id);
            e.level_orders(level_order_count);
            e.side(sbe_side(side));
            done!(book_order_modified_codec, e)
        }
        Event::OrderDeleted {
            instrument_id,
            order_id,
            side,
            price,
            level_quantity,
            level_order_count,
        } => {
            let mut e = start!(book_order_deleted_codec, BookOrderDeletedEncoder);
            e.order_id(order_id);
            e.price(price);
            e.level_qty(level_quantity);
            e.instrument_id(instrument_id);
            e.level_orders(level_order_count);
            e.side(sbe_side(side));
            done!(book_order_deleted_codec, e)
        }
        Event::OrderExecuted {
            instrument_id,
            order_id,
            side,
            price,
            quantity,
            leaves_quantity,
            trade_id: _,
            level_quantity,
            level_order_count,
        } => {
            let mut e = start!(book_order_executed_codec, BookOrderExecutedEncoder);
            e.order_id(order_id);
            e.price(price);
            e.quantity(quantity);
            e.remaining_qty(leaves_quantity);
            e.level_qty(level_quantity);
            e.instrument_id(instrument_id);
            e.level_orders(level_order_count);
            e.side(sbe_side(side));
            done!(book_order_executed_codec, e)
        }
        Event::Trade {
            instrument_id,
            trade_id,
            price,
            quantity,
            aggressor_side,
            buy_order_id,
            sell_order_id,
        } => {
            let (maker, taker) = match aggressor_side {
                matching::Side::Buy => (sell_order_id, buy_order_id),
                matching::Side::Sell => (buy_order_id, sell_order_id),
            };
            let mut e = start!(trade_event_codec, TradeEventEncoder);
            e.trade_id(trade_id);
            e.price(price);
            e.quantity(quantity);
            e.maker_order_id(maker);
            e.taker_order_id(taker);
            e.instrument_id(instrument_id);
            e.aggressor_side(sbe_side(aggressor_side));
            done!(trade_event_codec, e)
        }
        Event::TradingStatusChanged {
            instrument_id,
            status,
        } => {
            let mut e = start!(trading_status_changed_codec, TradingStatusChangedEncoder);
            e.instrument_id(instrument_id);
            e.status(match status {
                TradingStatus::Open => sbe::TradingStatus::Open,
                TradingStatus::Halted => sbe::TradingStatus::Halted,
            });
            done!(trading_status_changed_codec, e)
        }
        Event::ReferencePriceSet {
            instrument_id,
            price,
        } => {
            let mut e = start!(reference_price_set_codec, ReferencePriceSetEncoder);
            e.price(price);
            e.instrument_id(instrument_id);
            done!(reference_price_set_codec, e)
        }
        Event::AccountUpdated {
            account_id,
            asset,
            available,
            reserved,
        } => {
            let e = start!(account_updated_codec, AccountUpdatedEncoder);
            let mut c = e.available_encoder()?;
            let (lo, hi) = split(available);
            c.lo(lo);
            c.hi(hi);
            let mut c = c.parent()?.reserved_encoder()?;
            let (lo, hi) = split(reserved);
            c.lo(lo);
            c.hi(hi);
            let mut e = c.parent()?;
            e.account_id(account_id);
            match asset {
                Asset::Cash => {
                    e.instrument_id(None);
                    e.asset(sbe::FundsAsset::Cash);
                }
                Asset::Position(i) => {
                    e.instrument_id(Some(i));
                    e.asset(sbe::FundsAsset::Position);
                }
            }
            done!(account_updated_codec, e)
        }
        Event::AdminRejected { reason } => admin_rejected(wb, seq, reject(reason))?,
        Event::TradingDayStarted { trading_day } => {
            let mut e = start!(trading_day_started_codec, TradingDayStartedEncoder);
            e.trading_day(trading_day);
            done!(trading_day_started_codec, e)
        }
        Event::MassCancelCompleted {
            scope,
            cancelled_count,
        } => {
            let mut e = start!(mass_cancel_completed_codec, MassCancelCompletedEncoder);
            e.session_id(context.session_id);
            e.account_id(context.account_id);
            e.cancelled_count(cancelled_count);
            e.scope(match scope {
                MassCancelScope::Session(_) => sbe::MassCancelScope::Session,
                MassCancelScope::Account(_) => sbe::MassCancelScope::Account,
                MassCancelScope::Instrument(_) => sbe::MassCancelScope::Instrument,
                MassCancelScope::All => sbe::MassCancelScope::All,
            });
            e.reason(match context.mass_cancel_reason {
                Some(MassCancelReason::User) => sbe::MassCancelReason::User,
                Some(MassCancelReason::Disconnect) => sbe::MassCancelReason::Disconnect,
                Some(MassCancelReason::Admin) => sbe::MassCancelReason::Admin,
                None => sbe::MassCancelReason::NullVal,
            });
            done!(mass_cancel_completed_codec, e)
        }
    })
}

/// A cancel reject, from the engine or for a cancel/replace that named no known order.
#[allow(clippy::too_many_arguments)]
pub fn cancel_rejected(
    wb: WriteBuf<'_>,
    inbound_seq: u64,
    session_id: u32,
    account_id: u32,
    client_order_id: u64,
    order_id: Option<u64>,
    is_replace: bool,
    reason: RejectReason,
    context: &Context,
) -> Result<(u16, usize), SbeErr> {
    let e = sbe::cancel_rejected_codec::CancelRejectedEncoder::default().wrap(wb, HDR)?;
    let mut e = e.header(0)?.parent()?;
    e.order_id(order_id);
    e.client_order_id(client_order_id);
    e.orig_client_order_id(context.orig_client_order_id);
    e.inbound_seq(inbound_seq);
    e.session_id(session_id);
    e.account_id(account_id);
    e.instrument_id(context.instrument_id);
    e.reason(reject(reason));
    e.response_to(if is_replace {
        sbe::CancelRejectResponseTo::Replace
    } else {
        sbe::CancelRejectResponseTo::Cancel
    });
    e.text(b"")?;
    Ok((
        sbe::cancel_rejected_codec::SBE_TEMPLATE_ID,
        HDR + e.encoded_length(),
    ))
}

/// An admin reject, also used for inbound events that could not be decoded.
pub fn admin_rejected(
    wb: WriteBuf<'_>,
    inbound_seq: u64,
    reason: sbe::RejectReason,
) -> Result<(u16, usize), SbeErr> {
    let e = sbe::admin_rejected_codec::AdminRejectedEncoder::default().wrap(wb, HDR)?;
    let mut e = e.header(0)?.parent()?;
    e.inbound_seq(inbound_seq);
    e.reason(reason);
    Ok((
        sbe::admin_rejected_codec::SBE_TEMPLATE_ID,
        HDR + e.encoded_length(),
    ))
}
