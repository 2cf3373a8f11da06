//! The deterministic heart of the publisher: outbound-journal frames in, sequenced packets out.
//!
//! [`MdCore`] owns the books (L3 from the engine's book events; the L2 top N and the L1 best
//! bid and offer it derives and publishes), the candles and the per-channel packet builders.
//! It performs no I/O and reads no clock.
//!
//! **Packet boundaries are a function of the journal.** Every packet of the incremental
//! channels (L1, L2, L3) is closed either because the next message does not fit or at the end
//! of a batch, and nowhere else. A batch is what the sequencer published at once (its drain
//! of the gateway's hand-off; one Raft entry in a cluster): the journal marks its last inbound
//! frame, the matching agent marks the last output frame of the batch's events in the outbound
//! journal ([`journal::FLAG_END_OF_BATCH`]), and [`MdCore::on_frame`] closes the open packets
//! after a frame so marked. At low rates a batch is one order, so every order's updates leave
//! at once; under load, the updates of a whole batch share packets (Nasdaq and CME pack their
//! feeds the same way), which saves a system call and a receiver wake-up per order. A packet
//! carries the journal timestamp of the last event in it as its sending time. Heartbeats do not
//! consume sequence numbers ([`MdCore::heartbeat`]) and snapshots have their own channel, so two
//! publishers fed the same journal send the same incremental packets, byte for byte, however
//! their reads were batched and whatever their timers did. The time set with
//! [`MdCore::set_time`] only stamps what is not part of that stream: heartbeats, snapshot
//! packets and the end-of-session marker.

use crate::candles::Candles;
use crate::config::CoreConfig;
use md_core::msg::{Candle, Channel, InstrumentDef, LevelEntry, MdMsg, Side, SnapshotChunk};
use md_core::{
    Action, Bbo, L3Book, PacketBuilder, PriceLevel, SnapshotLevel, SnapshotOrder, Status,
};
use sbe_order_entry as oe;
use std::collections::BTreeMap;

/// Where finished packets go (the network, a test's recorder).
pub trait PacketSink {
    /// Packet `seq` of `channel` (kept for retransmission on the incremental channels).
    fn packet(&mut self, channel: Channel, seq: u32, bytes: &[u8]);
    /// A heartbeat packet: sent, never kept (it has no sequence number of its own).
    fn heartbeat(&mut self, channel: Channel, bytes: &[u8]);
}

impl PacketSink for Vec<(Channel, Vec<u8>)> {
    fn packet(&mut self, channel: Channel, _seq: u32, bytes: &[u8]) {
        self.push((channel, bytes.to_vec()));
    }
    fn heartbeat(&mut self, channel: Channel, bytes: &[u8]) {
        self.push((channel, bytes.to_vec()));
    }
}

/// Counters of what the core did (read by tests and the admin side).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreStats {
    pub frames: u64,
    pub book_events: u64,
    pub trades: u64,
    pub messages: u64,
    pub packets: u64,
    pub heartbeats: u64,
    /// Frames that named an instrument the configuration does not know.
    pub unknown_instrument: u64,
    /// Frames with a book-event template that did not decode.
    pub undecodable: u64,
    /// Times [`MdCore::flush`] was called inside a batch (after a frame not marked
    /// end-of-batch): packet boundaries there depend on the caller's timing, and may differ
    /// from another node's. Must stay 0.
    pub events_split: u64,
}

struct ChannelOut {
    channel: Channel,
    builder: PacketBuilder,
    /// Sequence number of the next packet (the first is 1).
    next_seq: u32,
}

impl ChannelOut {
    fn push(&mut self, msg: &[u8], time_ns: u64, sink: &mut dyn PacketSink, stats: &mut CoreStats) {
        if !self.builder.push(msg) {
            self.flush(time_ns, sink, stats);
            assert!(
                self.builder.push(msg),
                "message of {} bytes above packet_size_max",
                msg.len()
            );
        }
        stats.messages += 1;
    }

    fn flush(&mut self, time_ns: u64, sink: &mut dyn PacketSink, stats: &mut CoreStats) {
        if self.builder.is_empty() {
            return;
        }
        let seq = self.next_seq;
        let bytes = self.builder.finish(seq, time_ns);
        sink.packet(self.channel, seq, bytes);
        self.builder.reset();
        self.next_seq = self
            .next_seq
            .checked_add(1)
            .expect("channel sequence wrapped");
        stats.packets += 1;
    }

    fn last_seq(&self) -> u32 {
        self.next_seq - 1
    }

    /// A heartbeat packet in `hb`: the channel's next sequence number and one `Heartbeat`.
    fn heartbeat<'a>(&self, hb: &'a mut PacketBuilder, msg: &[u8], time_ns: u64) -> &'a [u8] {
        hb.reset();
        assert!(hb.push(msg), "a heartbeat fits any packet");
        hb.finish(self.next_seq, time_ns)
    }
}

/// One instrument's published state.
pub struct Instrument {
    pub def: InstrumentDef,
    pub book: L3Book,
    /// The top N levels of each side as last published on L2 (index 0 bids, 1 asks).
    published_l2: [Vec<PriceLevel>; 2],
    published_bbo: Bbo,
    /// Last rptSeq sent on L1, L2, L3.
    rpt_seq: [u32; 3],
    pub candles: Candles,
}

impl Instrument {
    pub fn published_l2(&self, side: Side) -> &[PriceLevel] {
        &self.published_l2[side_index(side)]
    }
    pub fn published_bbo(&self) -> Bbo {
        self.published_bbo
    }
    pub fn rpt_seq(&self) -> [u32; 3] {
        self.rpt_seq
    }
}

fn side_index(s: Side) -> usize {
    match s {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

/// Whether `price` is strictly worse than `than` on `side` (lower for bids, higher for asks).
fn worse(side: Side, price: i64, than: i64) -> bool {
    match side {
        Side::Buy => price < than,
        Side::Sell => price > than,
    }
}

fn side_from_oe(s: oe::Side) -> Option<Side> {
    match s {
        oe::Side::Buy => Some(Side::Buy),
        oe::Side::Sell => Some(Side::Sell),
        _ => None,
    }
}

/// The publisher's deterministic state machine.
pub struct MdCore {
    config: CoreConfig,
    instruments: BTreeMap<u32, Instrument>,
    channels: [ChannelOut; 4],
    /// Heartbeat packets are built here, beside the (possibly open) data packets.
    heartbeat: PacketBuilder,
    /// Sending time of heartbeats, snapshots and the end-of-session marker.
    time_ns: u64,
    /// Journal timestamp of the engine event being handled: transact time of its messages,
    /// sending time of its packets and the clock of the candles.
    event_time_ns: u64,
    scratch: Vec<u8>,
    levels_scratch: Vec<PriceLevel>,
    entries_scratch: Vec<LevelEntry>,
    /// A snapshot's levels, orders and one chunk's orders, kept from one snapshot to the next
    /// (a book's orders taken into fresh memory every time cost page faults on this thread).
    snapshot_levels: Vec<SnapshotLevel>,
    snapshot_orders: Vec<SnapshotOrder>,
    chunk_orders: Vec<SnapshotOrder>,
    /// Next instrument the snapshot cycle sends.
    snapshot_cursor: Option<u32>,
    /// Frames of the current batch have been handled (the last frame was not marked
    /// end-of-batch).
    in_batch: bool,
    /// The earliest close of any instrument's open bars (`u64::MAX`: none open): before it,
    /// a frame does not look at the candles.
    candles_due_ns: u64,
    stats: CoreStats,
}

impl MdCore {
    /// A core for the given instruments (from `matching::EngineConfig::products`).
    pub fn new(config: CoreConfig, products: &[matching::ProductConfig]) -> MdCore {
        config.validate().expect("invalid publisher configuration");
        let mut instruments = BTreeMap::new();
        for p in products {
            let def = InstrumentDef {
                instrument_id: p.instrument_id,
                symbol: p.symbol,
                tick_size: p.tick_size,
                price_scale: p.price_scale,
                lot_size: p.lot_size,
                quantity_max: p.quantity_max,
                status: match p.status {
                    matching::TradingStatus::Open => Status::Open,
                    _ => Status::Halted,
                },
            };
            instruments.insert(
                p.instrument_id,
                Instrument {
                    def,
                    book: L3Book::new(config.orders_per_instrument_max),
                    published_l2: [
                        Vec::with_capacity(config.l2_depth),
                        Vec::with_capacity(config.l2_depth),
                    ],
                    published_bbo: Bbo::default(),
                    rpt_seq: [0; 3],
                    candles: Candles::new(config.candles_max),
                },
            );
        }
        assert!(
            instruments.len() <= config.instruments_max,
            "more products than instruments_max"
        );
        let out = |channel| ChannelOut {
            channel,
            builder: PacketBuilder::new(config.packet_size_max),
            next_seq: 1,
        };
        MdCore {
            channels: [
                out(Channel::L1),
                out(Channel::L2),
                out(Channel::L3),
                out(Channel::Snapshot),
            ],
            heartbeat: PacketBuilder::new(config.packet_size_max),
            scratch: vec![0; config.packet_size_max],
            levels_scratch: Vec::with_capacity(config.l2_depth),
            entries_scratch: Vec::with_capacity(2 * config.l2_depth),
            snapshot_levels: Vec::new(),
            snapshot_orders: Vec::new(),
            chunk_orders: Vec::new(),
            instruments,
            time_ns: 0,
            event_time_ns: 0,
            snapshot_cursor: None,
            in_batch: false,
            candles_due_ns: u64::MAX,
            stats: CoreStats::default(),
            config,
        }
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub fn stats(&self) -> CoreStats {
        self.stats
    }

    /// The sending time, and transact time, of what is not part of the incremental stream:
    /// heartbeats, snapshot packets and the end-of-session marker. Incremental packets always
    /// carry the journal timestamp of their engine event.
    pub fn set_time(&mut self, time_ns: u64) {
        self.time_ns = time_ns;
    }

    pub fn time(&self) -> u64 {
        self.time_ns
    }

    pub fn instrument(&self, id: u32) -> Option<&Instrument> {
        self.instruments.get(&id)
    }

    pub fn instrument_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.instruments.keys().copied()
    }

    /// Sequence number of the last packet sent on a channel (0: none yet).
    pub fn last_seq(&self, channel: Channel) -> u32 {
        self.channels[channel.index()].last_seq()
    }

    /// Sending time of a channel's packets: the event's journal time on the incremental
    /// channels, the time set by the caller on the snapshot channel.
    fn packet_time(&self, channel: Channel) -> u64 {
        match channel {
            Channel::Snapshot => self.time_ns,
            _ => self.event_time_ns,
        }
    }

    fn emit(&mut self, channel: Channel, msg: &MdMsg, sink: &mut dyn PacketSink) {
        let len = msg
            .encode(&mut self.scratch)
            .expect("a market-data message fits packet_size_max");
        let time = self.packet_time(channel);
        self.channels[channel.index()].push(&self.scratch[..len], time, sink, &mut self.stats);
    }

    /// Closes the open packets of every channel. [`MdCore::on_frame`] does it at each end of
    /// batch; call it yourself only outside the journal's stream (definitions at start), or
    /// packet boundaries stop being a function of the journal (counted in
    /// [`CoreStats::events_split`]).
    pub fn flush(&mut self, sink: &mut dyn PacketSink) {
        if self.in_batch && !self.at_event_boundary() {
            self.stats.events_split += 1;
        }
        self.close_packets(sink);
        debug_assert!(self.at_event_boundary());
    }

    fn close_packets(&mut self, sink: &mut dyn PacketSink) {
        for c in Channel::ALL {
            let time = self.packet_time(c);
            self.channels[c.index()].flush(time, sink, &mut self.stats);
        }
    }

    /// True when no incremental packet is open: everything handled so far has been sent (a
    /// snapshot taken now matches the packets sent).
    pub fn at_event_boundary(&self) -> bool {
        Channel::INCREMENTAL
            .iter()
            .all(|c| self.channels[c.index()].builder.is_empty())
    }

    /// Sends every instrument's definition on L1 (at start of session).
    pub fn send_definitions(&mut self, sink: &mut dyn PacketSink) {
        let defs: Vec<InstrumentDef> = self.instruments.values().map(|i| i.def).collect();
        for d in defs {
            self.emit(Channel::L1, &MdMsg::InstrumentDefinition(d), sink);
        }
    }

    /// A heartbeat packet on `channel` (the agent sends one when the channel was idle): one
    /// `Heartbeat` in a packet numbered with the channel's **next** sequence number, which it
    /// does not consume, so a receiver that lost the channel's last packets learns of the gap
    /// while the numbering of data packets stays a function of the journal. An open packet
    /// stays open.
    pub fn heartbeat(&mut self, channel: Channel, sink: &mut dyn PacketSink) {
        let time_ns = self.time_ns;
        let len = MdMsg::Heartbeat { time_ns }
            .encode(&mut self.scratch)
            .expect("a heartbeat fits packet_size_max");
        let out = &self.channels[channel.index()];
        let next = out.next_seq;
        let bytes = out.heartbeat(&mut self.heartbeat, &self.scratch[..len], time_ns);
        debug_assert_eq!(bytes[..4], next.to_le_bytes());
        sink.heartbeat(channel, bytes);
        self.stats.heartbeats += 1;
    }

    /// The end-of-session marker on every channel.
    /// Its packets carry the time set with [`MdCore::set_time`], like heartbeats: the marker
    /// says when the publisher stopped, not where the journal ended.
    pub fn end_of_session(&mut self, sink: &mut dyn PacketSink) {
        self.flush(sink);
        let time_ns = self.time_ns;
        let len = MdMsg::EndOfSession { time_ns }
            .encode(&mut self.scratch)
            .expect("an end of session fits packet_size_max");
        for c in &mut self.channels {
            assert!(c.builder.is_empty());
            c.push(&self.scratch[..len], time_ns, sink, &mut self.stats);
            c.flush(time_ns, sink, &mut self.stats);
        }
    }

    /// Handles one outbound-journal frame stamped `time_ns`; `end_of_batch` is the frame's
    /// [`journal::FLAG_END_OF_BATCH`] (the open packets are closed after it). Frames that are
    /// not market data are skipped.
    pub fn on_frame(
        &mut self,
        time_ns: u64,
        template_id: u16,
        payload: &[u8],
        end_of_batch: bool,
        sink: &mut dyn PacketSink,
    ) {
        self.stats.frames += 1;
        self.in_batch = true;
        // Journal timestamps never decrease; max() keeps the candle clock monotonic anyway.
        self.event_time_ns = self.event_time_ns.max(time_ns);
        self.close_candles(sink);
        match self.decode_event(template_id, payload) {
            Ok(Some(ev)) => self.apply(ev, sink),
            Ok(None) => {}
            Err(()) => self.stats.undecodable += 1,
        }
        if end_of_batch {
            self.close_packets(sink);
            self.in_batch = false;
        }
    }

    fn decode_event(&self, template_id: u16, payload: &[u8]) -> Result<Option<Event>, ()> {
        use oe::{message_header_codec::ENCODED_LENGTH as HDR, MessageHeaderDecoder, ReadBuf};
        let header = || {
            MessageHeaderDecoder::default()
                .wrap(ReadBuf::new(payload), 0)
                .map_err(|_| ())
        };
        let side = |s| side_from_oe(s).ok_or(());
        Ok(Some(match template_id {
            oe::book_order_added_codec::SBE_TEMPLATE_ID => {
                let d = oe::book_order_added_codec::BookOrderAddedDecoder::default()
                    .header(header()?, HDR)
                    .map_err(|_| ())?;
                Event::Added {
                    instrument_id: d.instrument_id(),
                    order_id: d.order_id(),
                    side: side(d.side())?,
                    price: d.price(),
                    quantity: d.quantity(),
                    level: (d.level_qty(), d.level_orders()),
                }
            }
            oe::book_order_modified_codec::SBE_TEMPLATE_ID => {
                let d = oe::book_order_modified_codec::BookOrderModifiedDecoder::default()
                    .header(header()?, HDR)
                    .map_err(|_| ())?;
                Event::Modified {
                    instrument_id: d.instrument_id(),
                    order_id: d.order_id(),
                    side: side(d.side())?,
                    price: d.price(),
                    quantity: d.quantity(),
                    level: (d.level_qty(), d.level_orders()),
                }
            }
            oe::book_order_deleted_codec::SBE_TEMPLATE_ID => {
                let d = oe::book_order_deleted_codec::BookOrderDeletedDecoder::default()
                    .header(header()?, HDR)
                    .map_err(|_| ())?;
                Event::Deleted {
                    instrument_id: d.instrument_id(),
                    order_id: d.order_id(),
                    side: side(d.side())?,
                    price: d.price(),
                    level: (d.level_qty(), d.level_orders()),
                }
            }
            oe::book_order_executed_codec::SBE_TEMPLATE_ID => {
                let d = oe::book_order_executed_codec::BookOrderExecutedDecoder::default()
                    .header(header()?, HDR)
                    .map_err(|_| ())?;
                Event::Executed {
                    instrument_id: d.instrument_id(),
                    order_id: d.order_id(),
                    side: side(d.side())?,
                    price: d.price(),
                    quantity: d.quantity(),
                    remaining: d.remaining_qty(),
                    level: (d.level_qty(), d.level_orders()),
                }
            }
            oe::trade_event_codec::SBE_TEMPLATE_ID => {
                let d = oe::trade_event_codec::TradeEventDecoder::default()
                    .header(header()?, HDR)
                    .map_err(|_| ())?;
                Event::Trade {
                    instrument_id: d.instrument_id(),
                    trade_id: d.trade_id(),
                    price: d.price(),
                    quantity: d.quantity(),
                    maker: d.maker_order_id(),
                    taker: d.taker_order_id(),
                    aggressor: side(d.aggressor_side())?,
                }
            }
            oe::trading_status_changed_codec::SBE_TEMPLATE_ID => {
                let d = oe::trading_status_changed_codec::TradingStatusChangedDecoder::default()
                    .header(header()?, HDR)
                    .map_err(|_| ())?;
                Event::Status {
                    instrument_id: d.instrument_id(),
                    status: match d.status() {
                        oe::TradingStatus::Open => Status::Open,
                        oe::TradingStatus::Halted => Status::Halted,
                        _ => return Err(()),
                    },
                }
            }
            _ => return Ok(None),
        }))
    }

    fn next_rpt(&mut self, id: u32, channel: Channel) -> u32 {
        let i = self.instruments.get_mut(&id).expect("known instrument");
        let r = &mut i.rpt_seq[channel.index()];
        *r = r.checked_add(1).expect("rptSeq wrapped");
        *r
    }

    fn apply(&mut self, ev: Event, sink: &mut dyn PacketSink) {
        let id = ev.instrument_id();
        if !self.instruments.contains_key(&id) {
            self.stats.unknown_instrument += 1;
            return;
        }
        let time_ns = self.event_time_ns;
        match ev {
            Event::Trade {
                trade_id,
                price,
                quantity,
                maker,
                taker,
                aggressor,
                ..
            } => {
                self.stats.trades += 1;
                let rpt_seq = self.next_rpt(id, Channel::L3);
                let msg = MdMsg::Trade {
                    time_ns,
                    instrument_id: id,
                    rpt_seq,
                    trade_id,
                    price,
                    quantity,
                    maker_order_id: maker,
                    taker_order_id: taker,
                    aggressor_side: aggressor,
                };
                self.emit(Channel::L3, &msg, sink);
                let inst = self.instruments.get_mut(&id).expect("known");
                inst.candles.on_trade(time_ns, price, quantity);
                self.candles_due_ns = self.candles_due_ns.min(inst.candles.next_close_ns());
                return;
            }
            Event::Status { status, .. } => {
                self.instruments.get_mut(&id).expect("known").def.status = status;
                for c in Channel::INCREMENTAL {
                    let rpt_seq = self.next_rpt(id, c);
                    let msg = MdMsg::TradingStatus {
                        time_ns,
                        instrument_id: id,
                        rpt_seq,
                        status,
                    };
                    self.emit(c, &msg, sink);
                }
                return;
            }
            _ => {}
        }
        self.stats.book_events += 1;
        let inst = self.instruments.get_mut(&id).expect("known");
        let (side, price, level_after, msg) = match ev {
            Event::Added {
                order_id,
                side,
                price,
                quantity,
                level,
                ..
            } => {
                inst.book
                    .add(side, order_id, price, quantity)
                    .unwrap_or_else(|e| panic!("engine added order {order_id}: {e}"));
                let m = MdMsg::OrderAdded {
                    time_ns,
                    instrument_id: id,
                    rpt_seq: 0,
                    order_id,
                    side,
                    price,
                    quantity,
                };
                (side, price, level, m)
            }
            Event::Modified {
                order_id,
                side,
                price,
                quantity,
                level,
                ..
            } => {
                inst.book
                    .modify(side, order_id, price, quantity)
                    .unwrap_or_else(|e| panic!("engine modified order {order_id}: {e}"));
                let m = MdMsg::OrderModified {
                    time_ns,
                    instrument_id: id,
                    rpt_seq: 0,
                    order_id,
                    side,
                    price,
                    quantity,
                };
                (side, price, level, m)
            }
            Event::Deleted {
                order_id,
                side,
                price,
                level,
                ..
            } => {
                inst.book
                    .delete(side, order_id, price)
                    .unwrap_or_else(|e| panic!("engine deleted order {order_id}: {e}"));
                let m = MdMsg::OrderDeleted {
                    time_ns,
                    instrument_id: id,
                    rpt_seq: 0,
                    order_id,
                    side,
                    price,
                };
                (side, price, level, m)
            }
            Event::Executed {
                order_id,
                side,
                price,
                quantity,
                remaining,
                level,
                ..
            } => {
                let left = inst
                    .book
                    .execute(side, order_id, price, quantity)
                    .unwrap_or_else(|e| panic!("engine executed order {order_id}: {e}"));
                assert_eq!(left, remaining, "order {order_id} remaining quantity");
                let m = MdMsg::OrderExecuted {
                    time_ns,
                    instrument_id: id,
                    rpt_seq: 0,
                    order_id,
                    side,
                    price,
                    quantity,
                    remaining_qty: remaining,
                };
                (side, price, level, m)
            }
            Event::Trade { .. } | Event::Status { .. } => unreachable!(),
        };
        // The engine states the level after every book event: the rebuilt book must agree.
        let ours = inst
            .book
            .level(side, price)
            .map_or((0, 0), |l| (l.quantity, l.order_count));
        assert_eq!(
            ours, level_after,
            "level {price} of instrument {id} differs from the engine's"
        );

        let rpt_seq = self.next_rpt(id, Channel::L3);
        let msg = with_rpt_seq(msg, rpt_seq);
        self.emit(Channel::L3, &msg, sink);
        self.publish_l2(id, side, price, sink);
        self.publish_l1(id, side, price, sink);
    }

    /// Diffs the side's top N against what L2 last published and sends the difference:
    /// deletes first (so a consumer's N-level book never overflows), then new and changed.
    /// `price`: where the book event happened. Below a full published top N it changes none of
    /// those levels (most events of a deep book), and the side is not looked at again.
    fn publish_l2(&mut self, id: u32, side: Side, price: i64, sink: &mut dyn PacketSink) {
        let depth = self.config.l2_depth;
        let inst = self.instruments.get_mut(&id).expect("known");
        let published = &inst.published_l2[side_index(side)];
        if published.len() == depth && worse(side, price, published[depth - 1].price) {
            return;
        }
        let mut now = std::mem::take(&mut self.levels_scratch);
        inst.book.top_levels_into(side, depth, &mut now);
        let old = &inst.published_l2[side_index(side)];
        let mut entries = std::mem::take(&mut self.entries_scratch);
        entries.clear();
        for o in old {
            if !now.iter().any(|n| n.price == o.price) {
                entries.push(LevelEntry {
                    side,
                    action: Action::Delete,
                    price: o.price,
                    quantity: 0,
                    order_count: 0,
                });
            }
        }
        for n in &now {
            match old.iter().find(|o| o.price == n.price) {
                None => entries.push(LevelEntry {
                    side,
                    action: Action::New,
                    price: n.price,
                    quantity: n.quantity,
                    order_count: n.order_count,
                }),
                Some(o) if o != n => entries.push(LevelEntry {
                    side,
                    action: Action::Change,
                    price: n.price,
                    quantity: n.quantity,
                    order_count: n.order_count,
                }),
                Some(_) => {}
            }
        }
        let published = &mut inst.published_l2[side_index(side)];
        published.clear();
        published.extend_from_slice(&now);
        self.levels_scratch = now;
        if !entries.is_empty() {
            let rpt_seq = self.next_rpt(id, Channel::L2);
            let msg = MdMsg::LevelUpdate {
                time_ns: self.event_time_ns,
                instrument_id: id,
                rpt_seq,
                entries,
            };
            self.emit(Channel::L2, &msg, sink);
            if let MdMsg::LevelUpdate { entries, .. } = msg {
                self.entries_scratch = entries;
            }
        } else {
            self.entries_scratch = entries;
        }
    }

    /// `price` as for [`MdCore::publish_l2`]: an event behind the side's published best
    /// leaves the BBO as it is.
    fn publish_l1(&mut self, id: u32, side: Side, price: i64, sink: &mut dyn PacketSink) {
        let inst = self.instruments.get_mut(&id).expect("known");
        let best = match side {
            Side::Buy => inst.published_bbo.bid,
            Side::Sell => inst.published_bbo.ask,
        };
        if best.is_some_and(|b| worse(side, price, b.price)) {
            return;
        }
        let bbo = inst.book.bbo();
        if bbo == inst.published_bbo {
            return;
        }
        inst.published_bbo = bbo;
        let rpt_seq = self.next_rpt(id, Channel::L1);
        let msg = MdMsg::BestBidOffer {
            time_ns: self.event_time_ns,
            instrument_id: id,
            rpt_seq,
            bbo,
        };
        self.emit(Channel::L1, &msg, sink);
    }

    fn emit_candle(&mut self, id: u32, candle: Candle, sink: &mut dyn PacketSink) {
        let rpt_seq = self.next_rpt(id, Channel::L1);
        let msg = MdMsg::Candle {
            instrument_id: id,
            rpt_seq,
            candle,
        };
        self.emit(Channel::L1, &msg, sink);
    }

    /// Closes and publishes the bars whose interval ended before the current time.
    fn close_candles(&mut self, sink: &mut dyn PacketSink) {
        let now = self.event_time_ns;
        if now < self.candles_due_ns {
            return;
        }
        let ids: Vec<u32> = self
            .instruments
            .iter()
            .filter(|(_, i)| i.candles.next_close_ns() <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let closed = self
                .instruments
                .get_mut(&id)
                .expect("known")
                .candles
                .close_due(now);
            for c in closed.into_iter().flatten() {
                self.emit_candle(id, c, sink);
            }
        }
        self.candles_due_ns = self
            .instruments
            .values()
            .map(|i| i.candles.next_close_ns())
            .min()
            .unwrap_or(u64::MAX);
    }

    /// Sends the next instrument of the snapshot cycle on the snapshot channel (its definition,
    /// then its state in as many chunks as it needs); returns the instrument. Must be called
    /// between engine events ([`MdCore::at_event_boundary`]): the state then reflects exactly
    /// the packets sent, whose last sequence numbers the snapshot names. It does not touch the
    /// incremental channels.
    pub fn snapshot_next(&mut self, sink: &mut dyn PacketSink) -> Option<u32> {
        let next = match self.snapshot_cursor {
            None => self.instruments.keys().next().copied(),
            Some(c) => self
                .instruments
                .range(c + 1..)
                .next()
                .map(|(k, _)| *k)
                .or_else(|| self.instruments.keys().next().copied()),
        }?;
        self.snapshot_cursor = Some(next);
        self.snapshot_instrument(next, sink);
        Some(next)
    }

    /// Sends one instrument's snapshot (see [`MdCore::snapshot_next`]).
    pub fn snapshot_instrument(&mut self, id: u32, sink: &mut dyn PacketSink) {
        assert!(
            self.at_event_boundary(),
            "a snapshot taken inside an engine event would name packets not yet sent"
        );
        let last_seq = [
            self.last_seq(Channel::L1),
            self.last_seq(Channel::L2),
            self.last_seq(Channel::L3),
        ];
        let Some(inst) = self.instruments.get(&id) else {
            return;
        };
        let def = inst.def;
        let mut levels = std::mem::take(&mut self.snapshot_levels);
        levels.clear();
        for side in [Side::Buy, Side::Sell] {
            for l in inst.published_l2(side) {
                levels.push(SnapshotLevel {
                    side,
                    price: l.price,
                    quantity: l.quantity,
                    order_count: l.order_count,
                });
            }
        }
        let mut orders = std::mem::take(&mut self.snapshot_orders);
        orders.clear();
        orders.reserve(inst.book.order_count());
        for side in [Side::Buy, Side::Sell] {
            inst.book.for_each_order(side, |o| {
                orders.push(SnapshotOrder {
                    side,
                    order_id: o.order_id,
                    price: o.price,
                    quantity: o.quantity,
                })
            });
        }
        // Chunking: a chunk is one message of at most message_len_max bytes: 8 header + 41 root
        // + 4 + 21 per level + 4 + 25 per order.
        let room = self.channels[Channel::Snapshot.index()]
            .builder
            .message_len_max()
            - (8 + 41 + 4 + 4);
        let first_orders = room.saturating_sub(21 * levels.len()) / 25;
        let per_chunk = room / 25;
        assert!(
            21 * levels.len() <= room,
            "l2_depth too large for packet_size_max"
        );
        let rest = orders.len().saturating_sub(first_orders);
        let chunks = 1 + rest.div_ceil(per_chunk);
        let chunks = u16::try_from(chunks).expect("snapshot chunks fit u16");
        let base = SnapshotChunk {
            time_ns: self.time_ns,
            instrument_id: id,
            last_seq,
            rpt_seq: inst.rpt_seq,
            chunk: 0,
            chunks,
            status: def.status,
            levels: Vec::new(),
            orders: Vec::new(),
        };
        self.emit(Channel::Snapshot, &MdMsg::InstrumentDefinition(def), sink);
        let mut taken = 0;
        let mut chunk_orders = std::mem::take(&mut self.chunk_orders);
        for chunk in 0..chunks {
            let mut c = base.clone();
            c.chunk = chunk;
            let n = if chunk == 0 {
                c.levels = std::mem::take(&mut levels);
                first_orders
            } else {
                per_chunk
            };
            let end = (taken + n).min(orders.len());
            chunk_orders.clear();
            chunk_orders.extend_from_slice(&orders[taken..end]);
            c.orders = std::mem::take(&mut chunk_orders);
            taken = end;
            let msg = MdMsg::Snapshot(c);
            self.emit(Channel::Snapshot, &msg, sink);
            if let MdMsg::Snapshot(c) = msg {
                chunk_orders = c.orders;
                if chunk == 0 {
                    levels = c.levels;
                }
            }
        }
        assert_eq!(taken, orders.len());
        self.snapshot_levels = levels;
        self.snapshot_orders = orders;
        self.chunk_orders = chunk_orders;
        let time = self.time_ns;
        self.channels[Channel::Snapshot.index()].flush(time, sink, &mut self.stats);
    }
}

fn with_rpt_seq(msg: MdMsg, r: u32) -> MdMsg {
    match msg {
        MdMsg::OrderAdded {
            time_ns,
            instrument_id,
            order_id,
            side,
            price,
            quantity,
            ..
        } => MdMsg::OrderAdded {
            time_ns,
            instrument_id,
            rpt_seq: r,
            order_id,
            side,
            price,
            quantity,
        },
        MdMsg::OrderModified {
            time_ns,
            instrument_id,
            order_id,
            side,
            price,
            quantity,
            ..
        } => MdMsg::OrderModified {
            time_ns,
            instrument_id,
            rpt_seq: r,
            order_id,
            side,
            price,
            quantity,
        },
        MdMsg::OrderDeleted {
            time_ns,
            instrument_id,
            order_id,
            side,
            price,
            ..
        } => MdMsg::OrderDeleted {
            time_ns,
            instrument_id,
            rpt_seq: r,
            order_id,
            side,
            price,
        },
        MdMsg::OrderExecuted {
            time_ns,
            instrument_id,
            order_id,
            side,
            price,
            quantity,
            remaining_qty,
            ..
        } => MdMsg::OrderExecuted {
            time_ns,
            instrument_id,
            rpt_seq: r,
            order_id,
            side,
            price,
            quantity,
            remaining_qty,
        },
        other => other,
    }
}

/// The engine's book events as the outbound journal carries them.
#[derive(Debug, Clone, Copy)]
enum Event {
    Added {
        instrument_id: u32,
        order_id: u64,
        side: Side,
        price: i64,
        quantity: u64,
        level: (u64, u32),
    },
    Modified {
        instrument_id: u32,
        order_id: u64,
        side: Side,
        price: i64,
        quantity: u64,
        level: (u64, u32),
    },
    Deleted {
        instrument_id: u32,
        order_id: u64,
        side: Side,
        price: i64,
        level: (u64, u32),
    },
    Executed {
        instrument_id: u32,
        order_id: u64,
        side: Side,
        price: i64,
        quantity: u64,
        remaining: u64,
        level: (u64, u32),
    },
    Trade {
        instrument_id: u32,
        trade_id: u64,
        price: i64,
        quantity: u64,
        maker: u64,
        taker: u64,
        aggressor: Side,
    },
    Status {
        instrument_id: u32,
        status: Status,
    },
}

impl Event {
    fn instrument_id(&self) -> u32 {
        match *self {
            Event::Added { instrument_id, .. }
            | Event::Modified { instrument_id, .. }
            | Event::Deleted { instrument_id, .. }
            | Event::Executed { instrument_id, .. }
            | Event::Trade { instrument_id, .. }
            | Event::Status { instrument_id, .. } => instrument_id,
        }
    }
}
