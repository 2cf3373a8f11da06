//! Inbound SBE events ⇄ engine commands.
//!
//! A journal frame's payload is one whole SBE message (8-byte header and body), so any SBE tool
//! reads a journal without knowing about frames. [`decode`] turns one frame into what the engine
//! must do; [`encode`] is its inverse for the producers that start from a command (the HTTP API,
//! admin tools, the benchmark workload).

use matching::{
    AccountLimits, Asset, Command, CommandKind, MassCancelReason, MassCancelScope, OrderType, Side,
    StpMode, TimeInForce, TradingStatus,
};
use sbe_order_entry as sbe;
use sbe_order_entry::{message_header_codec::ENCODED_LENGTH as HDR, ReadBuf, SbeErr, WriteBuf};

/// Why an inbound frame could not become a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("SBE: {0}")]
    Sbe(#[from] SbeErr),
    #[error("frame template {frame} does not match the message's template {message}")]
    TemplateMismatch { frame: u16, message: u16 },
    #[error("template {0} is not an inbound event")]
    NotInbound(u16),
    #[error("field {0} has a value the engine does not accept")]
    BadValue(&'static str),
}

/// Details of the inbound event that the engine's outputs do not carry but outbound messages
/// do (the side and quantity of a rejected order, the instrument of a cancel reject).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    pub side: Option<Side>,
    pub quantity: u64,
    pub instrument_id: u32,
    pub orig_client_order_id: u64,
    pub session_id: u32,
    pub account_id: u32,
    pub mass_cancel_reason: Option<MassCancelReason>,
}

/// What one inbound frame asks of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    Command(Command, Context),
    /// A cancel or replace naming no engine order id (the gateway did not know the order):
    /// answered with a cancel reject, without the engine.
    UnknownOrder {
        client_order_id: u64,
        is_replace: bool,
        context: Context,
    },
    /// For the gateway only (session events): nothing for the engine.
    NotForEngine,
}

fn side(s: sbe::Side) -> Result<Side, DecodeError> {
    match s {
        sbe::Side::Buy => Ok(Side::Buy),
        sbe::Side::Sell => Ok(Side::Sell),
        sbe::Side::NullVal => Err(DecodeError::BadValue("side")),
    }
}

pub(crate) fn sbe_side(s: Side) -> sbe::Side {
    match s {
        Side::Buy => sbe::Side::Buy,
        Side::Sell => sbe::Side::Sell,
    }
}

fn header(
    payload: &[u8],
    frame_template: u16,
) -> Result<sbe::MessageHeaderDecoder<ReadBuf<'_>>, DecodeError> {
    let (_, template, _, _) = sbe::peek_header(payload)?;
    if template != frame_template {
        return Err(DecodeError::TemplateMismatch {
            frame: frame_template,
            message: template,
        });
    }
    Ok(sbe::MessageHeaderDecoder::default().wrap(ReadBuf::new(payload), 0)?)
}

/// Decodes one inbound frame (its sequence, timestamp, template id and payload).
pub fn decode(
    sequence: u64,
    timestamp_ns: u64,
    template_id: u16,
    payload: &[u8],
) -> Result<Inbound, DecodeError> {
    let h = header(payload, template_id)?;
    let cmd = |kind| Command {
        sequence,
        timestamp_ns,
        kind,
    };
    Ok(match template_id {
        sbe::new_order_event_codec::SBE_TEMPLATE_ID => {
            let d = sbe::new_order_event_codec::NewOrderEventDecoder::default().header(h, HDR)?;
            let order_type = match d.ord_type() {
                sbe::OrdType::Limit => OrderType::Limit,
                sbe::OrdType::Market => OrderType::Market,
                sbe::OrdType::NullVal => return Err(DecodeError::BadValue("ordType")),
            };
            let price = match (order_type, d.price()) {
                (OrderType::Limit, Some(p)) => p,
                (OrderType::Limit, None) => return Err(DecodeError::BadValue("price")),
                (OrderType::Market, _) => 0,
            };
            let time_in_force = match d.time_in_force() {
                sbe::TimeInForce::Day => TimeInForce::Day,
                sbe::TimeInForce::GoodTillCancel => TimeInForce::Gtc,
                sbe::TimeInForce::ImmediateOrCancel => TimeInForce::Ioc,
                sbe::TimeInForce::FillOrKill => TimeInForce::Fok,
                sbe::TimeInForce::NullVal => return Err(DecodeError::BadValue("timeInForce")),
            };
            let stp_mode = match d.stp_mode() {
                sbe::StpMode::None => StpMode::None,
                sbe::StpMode::CancelResting => StpMode::CancelResting,
                sbe::StpMode::CancelIncoming => StpMode::CancelIncoming,
                sbe::StpMode::CancelBoth => StpMode::CancelBoth,
                sbe::StpMode::NullVal => return Err(DecodeError::BadValue("stpMode")),
            };
            let s = side(d.side())?;
            let context = Context {
                side: Some(s),
                quantity: d.quantity(),
                instrument_id: d.instrument_id(),
                orig_client_order_id: 0,
                session_id: d.session_id(),
                account_id: d.account_id(),
                mass_cancel_reason: None,
            };
            Inbound::Command(
                cmd(CommandKind::NewOrder {
                    session_id: d.session_id(),
                    account_id: d.account_id(),
                    client_order_id: d.client_order_id(),
                    instrument_id: d.instrument_id(),
                    side: s,
                    order_type,
                    price,
                    quantity: d.quantity(),
                    time_in_force,
                    stp_mode,
                }),
                context,
            )
        }
        sbe::cancel_order_event_codec::SBE_TEMPLATE_ID => {
            let d =
                sbe::cancel_order_event_codec::CancelOrderEventDecoder::default().header(h, HDR)?;
            let context = Context {
                side: side(d.side()).ok(),
                quantity: 0,
                instrument_id: d.instrument_id(),
                orig_client_order_id: d.orig_client_order_id(),
                session_id: d.session_id(),
                account_id: d.account_id(),
                mass_cancel_reason: None,
            };
            match d.order_id() {
                None => Inbound::UnknownOrder {
                    client_order_id: d.client_order_id(),
                    is_replace: false,
                    context,
                },
                Some(order_id) => Inbound::Command(
                    cmd(CommandKind::Cancel {
                        session_id: d.session_id(),
                        account_id: d.account_id(),
                        client_order_id: d.client_order_id(),
                        order_id,
                    }),
                    context,
                ),
            }
        }
        sbe::replace_order_event_codec::SBE_TEMPLATE_ID => {
            let d = sbe::replace_order_event_codec::ReplaceOrderEventDecoder::default()
                .header(h, HDR)?;
            let context = Context {
                side: side(d.side()).ok(),
                quantity: d.quantity(),
                instrument_id: d.instrument_id(),
                orig_client_order_id: d.orig_client_order_id(),
                session_id: d.session_id(),
                account_id: d.account_id(),
                mass_cancel_reason: None,
            };
            match d.order_id() {
                None => Inbound::UnknownOrder {
                    client_order_id: d.client_order_id(),
                    is_replace: true,
                    context,
                },
                Some(order_id) => Inbound::Command(
                    cmd(CommandKind::Replace {
                        session_id: d.session_id(),
                        account_id: d.account_id(),
                        client_order_id: d.orig_client_order_id(),
                        order_id,
                        new_client_order_id: d.client_order_id(),
                        new_price: d.price(),
                        new_quantity: d.quantity(),
                    }),
                    context,
                ),
            }
        }
        sbe::mass_cancel_event_codec::SBE_TEMPLATE_ID => {
            let d =
                sbe::mass_cancel_event_codec::MassCancelEventDecoder::default().header(h, HDR)?;
            let (session_id, account_id) = (d.session_id(), d.account_id());
            let scope_kind = d.scope();
            let reason = match d.reason() {
                sbe::MassCancelReason::User => MassCancelReason::User,
                sbe::MassCancelReason::Disconnect => MassCancelReason::Disconnect,
                sbe::MassCancelReason::Admin => MassCancelReason::Admin,
                sbe::MassCancelReason::NullVal => return Err(DecodeError::BadValue("reason")),
            };
            let mut g = d.instruments_decoder()?;
            let mut instrument = None;
            while g.advance()?.is_some() {
                if instrument.is_some() {
                    // One instrument per event: the engine's scopes do not combine.
                    return Err(DecodeError::BadValue("instruments"));
                }
                instrument = Some(g.instrument_id());
            }
            let scope = match (scope_kind, instrument) {
                (sbe::MassCancelScope::Session, None) => MassCancelScope::Session(session_id),
                (sbe::MassCancelScope::Account, None) => MassCancelScope::Account(account_id),
                (sbe::MassCancelScope::Instrument, Some(i)) => MassCancelScope::Instrument(i),
                (sbe::MassCancelScope::All, None) => MassCancelScope::All,
                _ => return Err(DecodeError::BadValue("scope")),
            };
            let context = Context {
                session_id,
                account_id,
                instrument_id: instrument.unwrap_or(0),
                mass_cancel_reason: Some(reason),
                ..Context::default()
            };
            Inbound::Command(cmd(CommandKind::MassCancel { scope, reason }), context)
        }
        sbe::session_event_codec::SBE_TEMPLATE_ID => {
            sbe::session_event_codec::SessionEventDecoder::default().header(h, HDR)?;
            Inbound::NotForEngine
        }
        // The gateway's replicated FIX session state (high availability): the gateway of a
        // new leader reads it back from the journal; the engine has nothing to do with it.
        sbe::session_checkpoint_event_codec::SBE_TEMPLATE_ID => {
            sbe::session_checkpoint_event_codec::SessionCheckpointEventDecoder::default()
                .header(h, HDR)?;
            Inbound::NotForEngine
        }
        sbe::trading_status_event_codec::SBE_TEMPLATE_ID => {
            let d = sbe::trading_status_event_codec::TradingStatusEventDecoder::default()
                .header(h, HDR)?;
            let status = match d.status() {
                sbe::TradingStatus::Open => TradingStatus::Open,
                sbe::TradingStatus::Halted => TradingStatus::Halted,
                sbe::TradingStatus::NullVal => return Err(DecodeError::BadValue("status")),
            };
            Inbound::Command(
                cmd(CommandKind::SetTradingStatus {
                    instrument_id: d.instrument_id(),
                    status,
                }),
                Context::default(),
            )
        }
        sbe::reference_price_event_codec::SBE_TEMPLATE_ID => {
            let d = sbe::reference_price_event_codec::ReferencePriceEventDecoder::default()
                .header(h, HDR)?;
            Inbound::Command(
                cmd(CommandKind::SetReferencePrice {
                    instrument_id: d.instrument_id(),
                    price: d.price(),
                }),
                Context::default(),
            )
        }
        sbe::funds_event_codec::SBE_TEMPLATE_ID => {
            let d = sbe::funds_event_codec::FundsEventDecoder::default().header(h, HDR)?;
            let asset = match (d.asset(), d.instrument_id()) {
                (sbe::FundsAsset::Cash, None) => Asset::Cash,
                (sbe::FundsAsset::Position, Some(i)) => Asset::Position(i),
                _ => return Err(DecodeError::BadValue("asset")),
            };
            let account_id = d.account_id();
            let mut a = d.amount_decoder()?;
            let amount = (i128::from(a.hi()) << 64) | i128::from(a.lo());
            a.parent()?;
            let kind = if amount >= 0 {
                // A negative amount is a withdrawal of its magnitude (i128::MIN has none).
                CommandKind::Deposit {
                    account_id,
                    asset,
                    amount,
                }
            } else {
                CommandKind::Withdraw {
                    account_id,
                    asset,
                    amount: amount
                        .checked_neg()
                        .ok_or(DecodeError::BadValue("amount"))?,
                }
            };
            Inbound::Command(cmd(kind), Context::default())
        }
        sbe::start_of_day_event_codec::SBE_TEMPLATE_ID => {
            let d =
                sbe::start_of_day_event_codec::StartOfDayEventDecoder::default().header(h, HDR)?;
            Inbound::Command(
                cmd(CommandKind::StartTradingDay {
                    trading_day: d.trading_day(),
                }),
                Context::default(),
            )
        }
        sbe::account_limits_event_codec::SBE_TEMPLATE_ID => {
            let d = sbe::account_limits_event_codec::AccountLimitsEventDecoder::default()
                .header(h, HDR)?;
            let notional = |v: i64| {
                if v == i64::MAX {
                    i128::MAX
                } else {
                    i128::from(v)
                }
            };
            Inbound::Command(
                cmd(CommandKind::SetAccountLimits {
                    account_id: d.account_id(),
                    limits: AccountLimits {
                        order_quantity_max: d.order_quantity_max(),
                        order_notional_max: notional(d.order_notional_max()),
                        daily_quantity_max: d.daily_quantity_max(),
                        daily_notional_max: notional(d.daily_notional_max()),
                    },
                }),
                Context::default(),
            )
        }
        other => return Err(DecodeError::NotInbound(other)),
    })
}

/// Why a command could not be encoded as an inbound event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("SBE: {0}")]
    Sbe(#[from] SbeErr),
    #[error("amount cannot be negated into a withdrawal")]
    AmountOutOfRange,
}

/// Largest encoded inbound event this module writes (a cancel or replace without ClOrdIDs).
pub const ENCODED_LEN_MAX: usize = 128;

/// Encodes a command as its inbound SBE event into `buf`; returns (template id, length).
/// A withdrawal of `i128::MIN` cannot be represented and is refused.
pub fn encode(
    kind: &CommandKind,
    received_ns: u64,
    buf: &mut [u8],
) -> Result<(u16, usize), EncodeError> {
    let wb = WriteBuf::new(buf);
    Ok(match *kind {
        CommandKind::NewOrder {
            session_id,
            account_id,
            client_order_id,
            instrument_id,
            side,
            order_type,
            price,
            quantity,
            time_in_force,
            stp_mode,
        } => {
            let mut e =
                sbe::new_order_event_codec::NewOrderEventEncoder::default().wrap(wb, HDR)?;
            e = e.header(0)?.parent()?;
            e.price(match order_type {
                OrderType::Limit => Some(price),
                OrderType::Market => None,
            });
            e.quantity(quantity);
            e.client_order_id(client_order_id);
            e.received_time(received_ns);
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
            e.stp_mode(match stp_mode {
                StpMode::None => sbe::StpMode::None,
                StpMode::CancelResting => sbe::StpMode::CancelResting,
                StpMode::CancelIncoming => sbe::StpMode::CancelIncoming,
                StpMode::CancelBoth => sbe::StpMode::CancelBoth,
            });
            e.flags(sbe::OrderFlags::default());
            e.min_qty(None);
            e.cl_ord_id(b"")?;
            (
                sbe::new_order_event_codec::SBE_TEMPLATE_ID,
                HDR + e.encoded_length(),
            )
        }
        CommandKind::Cancel {
            session_id,
            account_id,
            client_order_id,
            order_id,
        } => {
            let mut e =
                sbe::cancel_order_event_codec::CancelOrderEventEncoder::default().wrap(wb, HDR)?;
            e = e.header(0)?.parent()?;
            e.order_id(Some(order_id));
            e.client_order_id(client_order_id);
            e.orig_client_order_id(0);
            e.received_time(received_ns);
            e.session_id(session_id);
            e.account_id(account_id);
            e.instrument_id(0);
            e.side(sbe::Side::NullVal);
            e.cl_ord_id(b"")?;
            e.orig_cl_ord_id(b"")?;
            (
                sbe::cancel_order_event_codec::SBE_TEMPLATE_ID,
                HDR + e.encoded_length(),
            )
        }
        CommandKind::Replace {
            session_id,
            account_id,
            client_order_id,
            order_id,
            new_client_order_id,
            new_price,
            new_quantity,
        } => {
            let mut e = sbe::replace_order_event_codec::ReplaceOrderEventEncoder::default()
                .wrap(wb, HDR)?;
            e = e.header(0)?.parent()?;
            e.order_id(Some(order_id));
            e.client_order_id(new_client_order_id);
            e.orig_client_order_id(client_order_id);
            e.price(new_price);
            e.quantity(new_quantity);
            e.received_time(received_ns);
            e.session_id(session_id);
            e.account_id(account_id);
            e.instrument_id(0);
            e.side(sbe::Side::NullVal);
            e.cl_ord_id(b"")?;
            e.orig_cl_ord_id(b"")?;
            (
                sbe::replace_order_event_codec::SBE_TEMPLATE_ID,
                HDR + e.encoded_length(),
            )
        }
        CommandKind::MassCancel { scope, reason } => {
            let mut e =
                sbe::mass_cancel_event_codec::MassCancelEventEncoder::default().wrap(wb, HDR)?;
            e = e.header(0)?.parent()?;
            let (kind, session, account, instrument) = match scope {
                MassCancelScope::Session(s) => (sbe::MassCancelScope::Session, s, 0, None),
                MassCancelScope::Account(a) => (sbe::MassCancelScope::Account, 0, a, None),
                MassCancelScope::Instrument(i) => (sbe::MassCancelScope::Instrument, 0, 0, Some(i)),
                MassCancelScope::All => (sbe::MassCancelScope::All, 0, 0, None),
            };
            e.session_id(session);
            e.account_id(account);
            e.scope(kind);
            e.reason(match reason {
                MassCancelReason::User => sbe::MassCancelReason::User,
                MassCancelReason::Disconnect => sbe::MassCancelReason::Disconnect,
                MassCancelReason::Admin => sbe::MassCancelReason::Admin,
            });
            let mut g =
                e.instruments_encoder(u8::from(instrument.is_some()), Default::default())?;
            if let Some(i) = instrument {
                g.advance()?;
                g.instrument_id(i);
            }
            let mut e = g.parent()?;
            e.text(b"")?;
            (
                sbe::mass_cancel_event_codec::SBE_TEMPLATE_ID,
                HDR + e.encoded_length(),
            )
        }
        CommandKind::SetTradingStatus {
            instrument_id,
            status,
        } => {
            let mut e = sbe::trading_status_event_codec::TradingStatusEventEncoder::default()
                .wrap(wb, HDR)?;
            e = e.header(0)?.parent()?;
            e.instrument_id(instrument_id);
            e.status(match status {
                TradingStatus::Open => sbe::TradingStatus::Open,
                TradingStatus::Halted => sbe::TradingStatus::Halted,
            });
            (
                sbe::trading_status_event_codec::SBE_TEMPLATE_ID,
                HDR + e.encoded_length(),
            )
        }
        CommandKind::SetReferencePrice {
            instrument_id,
            price,
        } => {
            let mut e = sbe::reference_price_event_codec::ReferencePriceEventEncoder::default()
                .wrap(wb, HDR)?;
            e = e.header(0)?.parent()?;
            e.price(price);
            e.instrument_id(instrument_id);
            (
                sbe::reference_price_event_codec::SBE_TEMPLATE_ID,
                HDR + e.encoded_length(),
            )
        }
        CommandKind::Deposit {
            account_id,
            asset,
            amount,
        }
        | CommandKind::Withdraw {
            account_id,
            asset,
            amount,
        } => {
            let signed = if matches!(kind, CommandKind::Withdraw { .. }) {
                amount.checked_neg().ok_or(EncodeError::AmountOutOfRange)?
            } else {
                amount
            };
            let e = sbe::funds_event_codec::FundsEventEncoder::default().wrap(wb, HDR)?;
            let mut a = e.header(0)?.parent()?.amount_encoder()?;
            a.lo(signed as u64);
            a.hi((signed >> 64) as i64);
            let mut e = a.parent()?;
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
            (
                sbe::funds_event_codec::SBE_TEMPLATE_ID,
                HDR + e.encoded_length(),
            )
        }
        CommandKind::SetAccountLimits { account_id, limits } => {
            let mut e = sbe::account_limits_event_codec::AccountLimitsEventEncoder::default()
                .wrap(wb, HDR)?;
            e = e.header(0)?.parent()?;
            let clamp = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
            e.order_quantity_max(limits.order_quantity_max);
            e.order_notional_max(clamp(limits.order_notional_max));
            e.daily_quantity_max(limits.daily_quantity_max);
            e.daily_notional_max(clamp(limits.daily_notional_max));
            e.account_id(account_id);
            (
                sbe::account_limits_event_codec::SBE_TEMPLATE_ID,
                HDR + e.encoded_length(),
            )
        }
        CommandKind::StartTradingDay { trading_day } => {
            let mut e =
                sbe::start_of_day_event_codec::StartOfDayEventEncoder::default().wrap(wb, HDR)?;
            e = e.header(0)?.parent()?;
            e.trading_day(trading_day);
            (
                sbe::start_of_day_event_codec::SBE_TEMPLATE_ID,
                HDR + e.encoded_length(),
            )
        }
    })
}
