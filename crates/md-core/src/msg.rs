//! The market-data messages as plain values, over the generated `sbe-market-data` codecs.
//!
//! Decoding never panics: every failure is a [`DecodeError`]. Groups are copied into `Vec`s
//! whose length is bounded by the datagram they came in (the codec checks that the buffer
//! holds `count × blockLength` before the first entry), never by a count alone.

use sbe_market_data as sbe;
use sbe_market_data::{message_header_codec::ENCODED_LENGTH as HDR, ReadBuf, SbeErr, WriteBuf};

/// A channel of the feed; the value is the wire's `ChannelId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    L1 = 1,
    L2 = 2,
    L3 = 3,
    Snapshot = 4,
}

impl Channel {
    pub const INCREMENTAL: [Channel; 3] = [Channel::L1, Channel::L2, Channel::L3];
    pub const ALL: [Channel; 4] = [Channel::L1, Channel::L2, Channel::L3, Channel::Snapshot];

    /// 0..4, for arrays indexed by channel.
    pub fn index(self) -> usize {
        self as usize - 1
    }

    pub fn from_u8(v: u8) -> Option<Channel> {
        match v {
            1 => Some(Channel::L1),
            2 => Some(Channel::L2),
            3 => Some(Channel::L3),
            4 => Some(Channel::Snapshot),
            _ => None,
        }
    }

    fn to_sbe(self) -> sbe::ChannelId {
        match self {
            Channel::L1 => sbe::ChannelId::L1,
            Channel::L2 => sbe::ChannelId::L2,
            Channel::L3 => sbe::ChannelId::L3,
            Channel::Snapshot => sbe::ChannelId::Snapshot,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    fn to_sbe(self) -> sbe::Side {
        match self {
            Side::Buy => sbe::Side::Buy,
            Side::Sell => sbe::Side::Sell,
        }
    }
    fn from_sbe(s: sbe::Side) -> Result<Side, DecodeError> {
        match s {
            sbe::Side::Buy => Ok(Side::Buy),
            sbe::Side::Sell => Ok(Side::Sell),
            _ => Err(DecodeError::BadEnum("side")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Halted,
}

impl Status {
    fn to_sbe(self) -> sbe::TradingStatus {
        match self {
            Status::Open => sbe::TradingStatus::Open,
            Status::Halted => sbe::TradingStatus::Halted,
        }
    }
    fn from_sbe(s: sbe::TradingStatus) -> Result<Status, DecodeError> {
        match s {
            sbe::TradingStatus::Open => Ok(Status::Open),
            sbe::TradingStatus::Halted => Ok(Status::Halted),
            _ => Err(DecodeError::BadEnum("status")),
        }
    }
}

/// MDP 3.0's MDUpdateAction for a price level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    New,
    Change,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CandleInterval {
    OneSecond,
    OneMinute,
    FiveMinutes,
    OneHour,
    OneDay,
}

impl CandleInterval {
    pub const ALL: [CandleInterval; 5] = [
        CandleInterval::OneSecond,
        CandleInterval::OneMinute,
        CandleInterval::FiveMinutes,
        CandleInterval::OneHour,
        CandleInterval::OneDay,
    ];

    pub fn length_ns(self) -> u64 {
        const S: u64 = 1_000_000_000;
        match self {
            CandleInterval::OneSecond => S,
            CandleInterval::OneMinute => 60 * S,
            CandleInterval::FiveMinutes => 300 * S,
            CandleInterval::OneHour => 3_600 * S,
            CandleInterval::OneDay => 86_400 * S,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    fn to_sbe(self) -> sbe::CandleInterval {
        match self {
            CandleInterval::OneSecond => sbe::CandleInterval::OneSecond,
            CandleInterval::OneMinute => sbe::CandleInterval::OneMinute,
            CandleInterval::FiveMinutes => sbe::CandleInterval::FiveMinutes,
            CandleInterval::OneHour => sbe::CandleInterval::OneHour,
            CandleInterval::OneDay => sbe::CandleInterval::OneDay,
        }
    }
    fn from_sbe(v: sbe::CandleInterval) -> Result<CandleInterval, DecodeError> {
        Ok(match v {
            sbe::CandleInterval::OneSecond => CandleInterval::OneSecond,
            sbe::CandleInterval::OneMinute => CandleInterval::OneMinute,
            sbe::CandleInterval::FiveMinutes => CandleInterval::FiveMinutes,
            sbe::CandleInterval::OneHour => CandleInterval::OneHour,
            sbe::CandleInterval::OneDay => CandleInterval::OneDay,
            _ => return Err(DecodeError::BadEnum("interval")),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    NotAvailable,
    RateLimited,
    UnknownChannel,
    InvalidRequest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstrumentDef {
    pub instrument_id: u32,
    pub symbol: [u8; 16],
    pub tick_size: i64,
    pub price_scale: i64,
    pub lot_size: u64,
    pub quantity_max: u64,
    pub status: Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelEntry {
    pub side: Side,
    pub action: Action,
    pub price: i64,
    /// The level's total quantity after the update (0 on Delete).
    pub quantity: u64,
    pub order_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotLevel {
    pub side: Side,
    pub price: i64,
    pub quantity: u64,
    pub order_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotOrder {
    pub side: Side,
    pub order_id: u64,
    pub price: i64,
    pub quantity: u64,
}

/// One chunk of an instrument's snapshot. `last_seq[c]` / `rpt_seq[c]` are indexed by
/// [`Channel::index`] for L1, L2, L3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotChunk {
    pub time_ns: u64,
    pub instrument_id: u32,
    pub last_seq: [u32; 3],
    pub rpt_seq: [u32; 3],
    pub chunk: u16,
    pub chunks: u16,
    pub status: Status,
    pub levels: Vec<SnapshotLevel>,
    pub orders: Vec<SnapshotOrder>,
}

/// Every message of the schema as a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MdMsg {
    Heartbeat {
        time_ns: u64,
    },
    EndOfSession {
        time_ns: u64,
    },
    InstrumentDefinition(InstrumentDef),
    TradingStatus {
        time_ns: u64,
        instrument_id: u32,
        rpt_seq: u32,
        status: Status,
    },
    OrderAdded {
        time_ns: u64,
        instrument_id: u32,
        rpt_seq: u32,
        order_id: u64,
        side: Side,
        price: i64,
        quantity: u64,
    },
    OrderModified {
        time_ns: u64,
        instrument_id: u32,
        rpt_seq: u32,
        order_id: u64,
        side: Side,
        price: i64,
        quantity: u64,
    },
    OrderDeleted {
        time_ns: u64,
        instrument_id: u32,
        rpt_seq: u32,
        order_id: u64,
        side: Side,
        price: i64,
    },
    OrderExecuted {
        time_ns: u64,
        instrument_id: u32,
        rpt_seq: u32,
        order_id: u64,
        side: Side,
        price: i64,
        quantity: u64,
        remaining_qty: u64,
    },
    Trade {
        time_ns: u64,
        instrument_id: u32,
        rpt_seq: u32,
        trade_id: u64,
        price: i64,
        quantity: u64,
        maker_order_id: u64,
        taker_order_id: u64,
        aggressor_side: Side,
    },
    LevelUpdate {
        time_ns: u64,
        instrument_id: u32,
        rpt_seq: u32,
        entries: Vec<LevelEntry>,
    },
    BestBidOffer {
        time_ns: u64,
        instrument_id: u32,
        rpt_seq: u32,
        bbo: crate::book::Bbo,
    },
    Candle {
        instrument_id: u32,
        rpt_seq: u32,
        candle: Candle,
    },
    Snapshot(SnapshotChunk),
    RetransmitRequest {
        channel: u8,
        first_seq: u32,
        count: u16,
    },
    RetransmitReject {
        channel: u8,
        first_seq: u32,
        count: u16,
        oldest_available: u32,
        newest_available: u32,
        reason: RejectReason,
    },
}

/// A closed OHLCV bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candle {
    pub interval: CandleInterval,
    pub start_ns: u64,
    pub open: i64,
    pub high: i64,
    pub low: i64,
    pub close: i64,
    pub volume: u64,
    pub trade_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("SBE: {0}")]
    Sbe(SbeErr),
    #[error("schema id {0} is not market data (102)")]
    WrongSchema(u16),
    #[error("template id {0} is unknown")]
    UnknownTemplate(u16),
    #[error("field {0} holds a value outside its enum")]
    BadEnum(&'static str),
}

impl From<SbeErr> for DecodeError {
    fn from(e: SbeErr) -> Self {
        DecodeError::Sbe(e)
    }
}

macro_rules! start {
    ($buf:expr, $codec:ident, $enc:ident) => {{
        let e = sbe::$codec::$enc::default().wrap(WriteBuf::new($buf), HDR)?;
        e.header(0)?.parent()?
    }};
}

impl MdMsg {
    /// The (instrument, rptSeq) of a per-instrument incremental message.
    pub fn instrument_rpt_seq(&self) -> Option<(u32, u32)> {
        match *self {
            MdMsg::TradingStatus {
                instrument_id,
                rpt_seq,
                ..
            }
            | MdMsg::OrderAdded {
                instrument_id,
                rpt_seq,
                ..
            }
            | MdMsg::OrderModified {
                instrument_id,
                rpt_seq,
                ..
            }
            | MdMsg::OrderDeleted {
                instrument_id,
                rpt_seq,
                ..
            }
            | MdMsg::OrderExecuted {
                instrument_id,
                rpt_seq,
                ..
            }
            | MdMsg::Trade {
                instrument_id,
                rpt_seq,
                ..
            }
            | MdMsg::LevelUpdate {
                instrument_id,
                rpt_seq,
                ..
            }
            | MdMsg::BestBidOffer {
                instrument_id,
                rpt_seq,
                ..
            }
            | MdMsg::Candle {
                instrument_id,
                rpt_seq,
                ..
            } => Some((instrument_id, rpt_seq)),
            _ => None,
        }
    }

    /// Encodes the message (8-byte header + body) into `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, SbeErr> {
        Ok(HDR
            + match self {
                MdMsg::Heartbeat { time_ns } => {
                    let mut e = start!(buf, heartbeat_codec, HeartbeatEncoder);
                    e.transact_time(*time_ns);
                    e.encoded_length()
                }
                MdMsg::EndOfSession { time_ns } => {
                    let mut e = start!(buf, end_of_session_codec, EndOfSessionEncoder);
                    e.transact_time(*time_ns);
                    e.encoded_length()
                }
                MdMsg::InstrumentDefinition(d) => {
                    let mut e = start!(
                        buf,
                        instrument_definition_codec,
                        InstrumentDefinitionEncoder
                    );
                    e.tick_size(d.tick_size);
                    e.price_scale(d.price_scale);
                    e.lot_size(d.lot_size);
                    e.quantity_max(d.quantity_max);
                    e.instrument_id(d.instrument_id);
                    e.symbol(&d.symbol);
                    e.status(d.status.to_sbe());
                    e.encoded_length()
                }
                MdMsg::TradingStatus {
                    time_ns,
                    instrument_id,
                    rpt_seq,
                    status,
                } => {
                    let mut e =
                        start!(buf, trading_status_update_codec, TradingStatusUpdateEncoder);
                    e.transact_time(*time_ns);
                    e.instrument_id(*instrument_id);
                    e.rpt_seq(*rpt_seq);
                    e.status(status.to_sbe());
                    e.encoded_length()
                }
                MdMsg::OrderAdded {
                    time_ns,
                    instrument_id,
                    rpt_seq,
                    order_id,
                    side,
                    price,
                    quantity,
                } => {
                    let mut e = start!(buf, order_added_codec, OrderAddedEncoder);
                    e.transact_time(*time_ns);
                    e.order_id(*order_id);
                    e.price(*price);
                    e.quantity(*quantity);
                    e.instrument_id(*instrument_id);
                    e.rpt_seq(*rpt_seq);
                    e.side(side.to_sbe());
                    e.encoded_length()
                }
                MdMsg::OrderModified {
                    time_ns,
                    instrument_id,
                    rpt_seq,
                    order_id,
                    side,
                    price,
                    quantity,
                } => {
                    let mut e = start!(buf, order_modified_codec, OrderModifiedEncoder);
                    e.transact_time(*time_ns);
                    e.order_id(*order_id);
                    e.price(*price);
                    e.quantity(*quantity);
                    e.instrument_id(*instrument_id);
                    e.rpt_seq(*rpt_seq);
                    e.side(side.to_sbe());
                    e.encoded_length()
                }
                MdMsg::OrderDeleted {
                    time_ns,
                    instrument_id,
                    rpt_seq,
                    order_id,
                    side,
                    price,
                } => {
                    let mut e = start!(buf, order_deleted_codec, OrderDeletedEncoder);
                    e.transact_time(*time_ns);
                    e.order_id(*order_id);
                    e.price(*price);
                    e.instrument_id(*instrument_id);
                    e.rpt_seq(*rpt_seq);
                    e.side(side.to_sbe());
                    e.encoded_length()
                }
                MdMsg::OrderExecuted {
                    time_ns,
                    instrument_id,
                    rpt_seq,
                    order_id,
                    side,
                    price,
                    quantity,
                    remaining_qty,
                } => {
                    let mut e = start!(buf, order_executed_codec, OrderExecutedEncoder);
                    e.transact_time(*time_ns);
                    e.order_id(*order_id);
                    e.price(*price);
                    e.quantity(*quantity);
                    e.remaining_qty(*remaining_qty);
                    e.instrument_id(*instrument_id);
                    e.rpt_seq(*rpt_seq);
                    e.side(side.to_sbe());
                    e.encoded_length()
                }
                MdMsg::Trade {
                    time_ns,
                    instrument_id,
                    rpt_seq,
                    trade_id,
                    price,
                    quantity,
                    maker_order_id,
                    taker_order_id,
                    aggressor_side,
                } => {
                    let mut e = start!(buf, trade_codec, TradeEncoder);
                    e.transact_time(*time_ns);
                    e.trade_id(*trade_id);
                    e.price(*price);
                    e.quantity(*quantity);
                    e.maker_order_id(*maker_order_id);
                    e.taker_order_id(*taker_order_id);
                    e.instrument_id(*instrument_id);
                    e.rpt_seq(*rpt_seq);
                    e.aggressor_side(aggressor_side.to_sbe());
                    e.encoded_length()
                }
                MdMsg::LevelUpdate {
                    time_ns,
                    instrument_id,
                    rpt_seq,
                    entries,
                } => {
                    let mut e = start!(buf, level_update_codec, LevelUpdateEncoder);
                    e.transact_time(*time_ns);
                    e.instrument_id(*instrument_id);
                    e.rpt_seq(*rpt_seq);
                    let count =
                        u16::try_from(entries.len()).map_err(|_| SbeErr::CountTooLarge {
                            max: 4096,
                            actual: entries.len() as u64,
                        })?;
                    let mut g = e.entries_encoder(count, Default::default())?;
                    for en in entries {
                        g.advance()?;
                        g.price(en.price);
                        g.quantity(en.quantity);
                        g.order_count(en.order_count);
                        g.action(match en.action {
                            Action::New => sbe::UpdateAction::New,
                            Action::Change => sbe::UpdateAction::Change,
                            Action::Delete => sbe::UpdateAction::Delete,
                        });
                        g.side(en.side.to_sbe());
                    }
                    g.parent()?.encoded_length()
                }
                MdMsg::BestBidOffer {
                    time_ns,
                    instrument_id,
                    rpt_seq,
                    bbo,
                } => {
                    let mut e = start!(buf, best_bid_offer_codec, BestBidOfferEncoder);
                    e.transact_time(*time_ns);
                    e.bid_price(bbo.bid.map(|l| l.price));
                    e.bid_qty(bbo.bid.map_or(0, |l| l.quantity));
                    e.ask_price(bbo.ask.map(|l| l.price));
                    e.ask_qty(bbo.ask.map_or(0, |l| l.quantity));
                    e.instrument_id(*instrument_id);
                    e.rpt_seq(*rpt_seq);
                    e.bid_orders(bbo.bid.map_or(0, |l| l.order_count));
                    e.ask_orders(bbo.ask.map_or(0, |l| l.order_count));
                    e.encoded_length()
                }
                MdMsg::Candle {
                    instrument_id,
                    rpt_seq,
                    candle: c,
                } => {
                    let mut e = start!(buf, candle_codec, CandleEncoder);
                    e.start_time(c.start_ns);
                    e.open(c.open);
                    e.high(c.high);
                    e.low(c.low);
                    e.close(c.close);
                    e.volume(c.volume);
                    e.instrument_id(*instrument_id);
                    e.rpt_seq(*rpt_seq);
                    e.trade_count(c.trade_count);
                    e.interval(c.interval.to_sbe());
                    e.encoded_length()
                }
                MdMsg::Snapshot(s) => {
                    let mut e =
                        start!(buf, snapshot_full_refresh_codec, SnapshotFullRefreshEncoder);
                    e.transact_time(s.time_ns);
                    e.last_seq_l1(s.last_seq[0]);
                    e.last_seq_l2(s.last_seq[1]);
                    e.last_seq_l3(s.last_seq[2]);
                    e.rpt_seq_l1(s.rpt_seq[0]);
                    e.rpt_seq_l2(s.rpt_seq[1]);
                    e.rpt_seq_l3(s.rpt_seq[2]);
                    e.instrument_id(s.instrument_id);
                    e.chunk(s.chunk);
                    e.chunks(s.chunks);
                    e.status(s.status.to_sbe());
                    let too_many = |n: usize| SbeErr::CountTooLarge {
                        max: 4096,
                        actual: n as u64,
                    };
                    let n = u16::try_from(s.levels.len()).map_err(|_| too_many(s.levels.len()))?;
                    let mut g = e.levels_encoder(n, Default::default())?;
                    for l in &s.levels {
                        g.advance()?;
                        g.price(l.price);
                        g.quantity(l.quantity);
                        g.order_count(l.order_count);
                        g.side(l.side.to_sbe());
                    }
                    let e = g.parent()?;
                    let n = u16::try_from(s.orders.len()).map_err(|_| too_many(s.orders.len()))?;
                    let mut g = e.orders_encoder(n, Default::default())?;
                    for o in &s.orders {
                        g.advance()?;
                        g.order_id(o.order_id);
                        g.price(o.price);
                        g.quantity(o.quantity);
                        g.side(o.side.to_sbe());
                    }
                    g.parent()?.encoded_length()
                }
                MdMsg::RetransmitRequest {
                    channel,
                    first_seq,
                    count,
                } => {
                    let mut e = start!(buf, retransmit_request_codec, RetransmitRequestEncoder);
                    e.first_seq(*first_seq);
                    e.count(*count);
                    e.channel(sbe::ChannelId::from(*channel));
                    e.encoded_length()
                }
                MdMsg::RetransmitReject {
                    channel,
                    first_seq,
                    count,
                    oldest_available,
                    newest_available,
                    reason,
                } => {
                    let mut e = start!(buf, retransmit_reject_codec, RetransmitRejectEncoder);
                    e.first_seq(*first_seq);
                    e.oldest_available(*oldest_available);
                    e.newest_available(*newest_available);
                    e.count(*count);
                    e.channel(match Channel::from_u8(*channel) {
                        Some(c) => c.to_sbe(),
                        None => sbe::ChannelId::NullVal,
                    });
                    e.reason(match reason {
                        RejectReason::NotAvailable => sbe::RetransmitRejectReason::NotAvailable,
                        RejectReason::RateLimited => sbe::RetransmitRejectReason::RateLimited,
                        RejectReason::UnknownChannel => sbe::RetransmitRejectReason::UnknownChannel,
                        RejectReason::InvalidRequest => sbe::RetransmitRejectReason::InvalidRequest,
                    });
                    e.encoded_length()
                }
            })
    }

    /// Decodes one SBE message (8-byte header + body). Never panics.
    pub fn decode(buf: &[u8]) -> Result<MdMsg, DecodeError> {
        #[allow(unused_mut)]
        let mut header = sbe::MessageHeaderDecoder::default().wrap(ReadBuf::new(buf), 0)?;
        let (template, schema) = (header.template_id(), header.schema_id());
        if schema != sbe::SBE_SCHEMA_ID {
            return Err(DecodeError::WrongSchema(schema));
        }
        macro_rules! dec {
            ($codec:ident, $dec:ident) => {
                sbe::$codec::$dec::default().header(header, HDR)?
            };
        }
        use sbe::{
            best_bid_offer_codec, candle_codec, end_of_session_codec, heartbeat_codec,
            instrument_definition_codec, level_update_codec, order_added_codec,
            order_deleted_codec, order_executed_codec, order_modified_codec,
            retransmit_reject_codec, retransmit_request_codec, snapshot_full_refresh_codec,
            trade_codec, trading_status_update_codec, RetransmitRejectReason, UpdateAction,
        };
        Ok(match template {
            heartbeat_codec::SBE_TEMPLATE_ID => {
                let d = dec!(heartbeat_codec, HeartbeatDecoder);
                MdMsg::Heartbeat {
                    time_ns: d.transact_time(),
                }
            }
            end_of_session_codec::SBE_TEMPLATE_ID => {
                let d = dec!(end_of_session_codec, EndOfSessionDecoder);
                MdMsg::EndOfSession {
                    time_ns: d.transact_time(),
                }
            }
            instrument_definition_codec::SBE_TEMPLATE_ID => {
                let d = dec!(instrument_definition_codec, InstrumentDefinitionDecoder);
                MdMsg::InstrumentDefinition(InstrumentDef {
                    instrument_id: d.instrument_id(),
                    symbol: d.symbol(),
                    tick_size: d.tick_size(),
                    price_scale: d.price_scale(),
                    lot_size: d.lot_size(),
                    quantity_max: d.quantity_max(),
                    status: Status::from_sbe(d.status())?,
                })
            }
            trading_status_update_codec::SBE_TEMPLATE_ID => {
                let d = dec!(trading_status_update_codec, TradingStatusUpdateDecoder);
                MdMsg::TradingStatus {
                    time_ns: d.transact_time(),
                    instrument_id: d.instrument_id(),
                    rpt_seq: d.rpt_seq(),
                    status: Status::from_sbe(d.status())?,
                }
            }
            order_added_codec::SBE_TEMPLATE_ID => {
                let d = dec!(order_added_codec, OrderAddedDecoder);
                MdMsg::OrderAdded {
                    time_ns: d.transact_time(),
                    instrument_id: d.instrument_id(),
                    rpt_seq: d.rpt_seq(),
                    order_id: d.order_id(),
                    side: Side::from_sbe(d.side())?,
                    price: d.price(),
                    quantity: d.quantity(),
                }
            }
            order_modified_codec::SBE_TEMPLATE_ID => {
                let d = dec!(order_modified_codec, OrderModifiedDecoder);
                MdMsg::OrderModified {
                    time_ns: d.transact_time(),
                    instrument_id: d.instrument_id(),
                    rpt_seq: d.rpt_seq(),
                    order_id: d.order_id(),
                    side: Side::from_sbe(d.side())?,
                    price: d.price(),
                    quantity: d.quantity(),
                }
            }
            order_deleted_codec::SBE_TEMPLATE_ID => {
                let d = dec!(order_deleted_codec, OrderDeletedDecoder);
                MdMsg::OrderDeleted {
                    time_ns: d.transact_time(),
                    instrument_id: d.instrument_id(),
                    rpt_seq: d.rpt_seq(),
                    order_id: d.order_id(),
                    side: Side::from_sbe(d.side())?,
                    price: d.price(),
                }
            }
            order_executed_codec::SBE_TEMPLATE_ID => {
                let d = dec!(order_executed_codec, OrderExecutedDecoder);
                MdMsg::OrderExecuted {
                    time_ns: d.transact_time(),
                    instrument_id: d.instrument_id(),
                    rpt_seq: d.rpt_seq(),
                    order_id: d.order_id(),
                    side: Side::from_sbe(d.side())?,
                    price: d.price(),
                    quantity: d.quantity(),
                    remaining_qty: d.remaining_qty(),
                }
            }
            trade_codec::SBE_TEMPLATE_ID => {
                let d = dec!(trade_codec, TradeDecoder);
                MdMsg::Trade {
                    time_ns: d.transact_time(),
                    instrument_id: d.instrument_id(),
                    rpt_seq: d.rpt_seq(),
                    trade_id: d.trade_id(),
                    price: d.price(),
                    quantity: d.quantity(),
                    maker_order_id: d.maker_order_id(),
                    taker_order_id: d.taker_order_id(),
                    aggressor_side: Side::from_sbe(d.aggressor_side())?,
                }
            }
            level_update_codec::SBE_TEMPLATE_ID => {
                let d = dec!(level_update_codec, LevelUpdateDecoder);
                let (time_ns, instrument_id, rpt_seq) =
                    (d.transact_time(), d.instrument_id(), d.rpt_seq());
                let mut g = d.entries_decoder()?;
                let mut entries = Vec::with_capacity(g.count());
                while g.advance()?.is_some() {
                    entries.push(LevelEntry {
                        side: Side::from_sbe(g.side())?,
                        action: match g.action() {
                            UpdateAction::New => Action::New,
                            UpdateAction::Change => Action::Change,
                            UpdateAction::Delete => Action::Delete,
                            _ => return Err(DecodeError::BadEnum("action")),
                        },
                        price: g.price(),
                        quantity: g.quantity(),
                        order_count: g.order_count(),
                    });
                }
                g.parent()?;
                MdMsg::LevelUpdate {
                    time_ns,
                    instrument_id,
                    rpt_seq,
                    entries,
                }
            }
            best_bid_offer_codec::SBE_TEMPLATE_ID => {
                let d = dec!(best_bid_offer_codec, BestBidOfferDecoder);
                let level = |p: Option<i64>, q, n| {
                    p.map(|price| crate::book::PriceLevel {
                        price,
                        quantity: q,
                        order_count: n,
                    })
                };
                MdMsg::BestBidOffer {
                    time_ns: d.transact_time(),
                    instrument_id: d.instrument_id(),
                    rpt_seq: d.rpt_seq(),
                    bbo: crate::book::Bbo {
                        bid: level(d.bid_price(), d.bid_qty(), d.bid_orders()),
                        ask: level(d.ask_price(), d.ask_qty(), d.ask_orders()),
                    },
                }
            }
            candle_codec::SBE_TEMPLATE_ID => {
                let d = dec!(candle_codec, CandleDecoder);
                MdMsg::Candle {
                    instrument_id: d.instrument_id(),
                    rpt_seq: d.rpt_seq(),
                    candle: Candle {
                        interval: CandleInterval::from_sbe(d.interval())?,
                        start_ns: d.start_time(),
                        open: d.open(),
                        high: d.high(),
                        low: d.low(),
                        close: d.close(),
                        volume: d.volume(),
                        trade_count: d.trade_count(),
                    },
                }
            }
            snapshot_full_refresh_codec::SBE_TEMPLATE_ID => {
                let d = dec!(snapshot_full_refresh_codec, SnapshotFullRefreshDecoder);
                let mut s = SnapshotChunk {
                    time_ns: d.transact_time(),
                    instrument_id: d.instrument_id(),
                    last_seq: [d.last_seq_l1(), d.last_seq_l2(), d.last_seq_l3()],
                    rpt_seq: [d.rpt_seq_l1(), d.rpt_seq_l2(), d.rpt_seq_l3()],
                    chunk: d.chunk(),
                    chunks: d.chunks(),
                    status: Status::from_sbe(d.status())?,
                    levels: Vec::new(),
                    orders: Vec::new(),
                };
                let mut g = d.levels_decoder()?;
                s.levels.reserve(g.count());
                while g.advance()?.is_some() {
                    s.levels.push(SnapshotLevel {
                        side: Side::from_sbe(g.side())?,
                        price: g.price(),
                        quantity: g.quantity(),
                        order_count: g.order_count(),
                    });
                }
                let d = g.parent()?;
                let mut g = d.orders_decoder()?;
                s.orders.reserve(g.count());
                while g.advance()?.is_some() {
                    s.orders.push(SnapshotOrder {
                        side: Side::from_sbe(g.side())?,
                        order_id: g.order_id(),
                        price: g.price(),
                        quantity: g.quantity(),
                    });
                }
                g.parent()?;
                MdMsg::Snapshot(s)
            }
            retransmit_request_codec::SBE_TEMPLATE_ID => {
                let d = dec!(retransmit_request_codec, RetransmitRequestDecoder);
                MdMsg::RetransmitRequest {
                    channel: d.channel() as u8,
                    first_seq: d.first_seq(),
                    count: d.count(),
                }
            }
            retransmit_reject_codec::SBE_TEMPLATE_ID => {
                let d = dec!(retransmit_reject_codec, RetransmitRejectDecoder);
                MdMsg::RetransmitReject {
                    channel: d.channel() as u8,
                    first_seq: d.first_seq(),
                    count: d.count(),
                    oldest_available: d.oldest_available(),
                    newest_available: d.newest_available(),
                    reason: match d.reason() {
                        RetransmitRejectReason::NotAvailable => RejectReason::NotAvailable,
                        RetransmitRejectReason::RateLimited => RejectReason::RateLimited,
                        RetransmitRejectReason::UnknownChannel => RejectReason::UnknownChannel,
                        RetransmitRejectReason::InvalidRequest => RejectReason::InvalidRequest,
                        _ => return Err(DecodeError::BadEnum("reason")),
                    },
                }
            }
            other => return Err(DecodeError::UnknownTemplate(other)),
        })
    }
}
