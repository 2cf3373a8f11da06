//! The consumer's state machine: packets in (from any feed, in any order, duplicated or not),
//! books out. No sockets and no clock: the caller passes `now`.
//!
//! Per incremental channel (L1, L2, L3):
//! - **Arbitration.** Packets are applied strictly in sequence order; a sequence number already
//!   applied (the other feed's copy, a duplicate) is dropped; one from the future waits in a
//!   bounded pending set.
//! - **Gaps.** A packet from the future means a gap, and so does a heartbeat packet (which
//!   does not consume a sequence number: it names the number of the channel's next data
//!   packet, so a heartbeat numbered above the next packet to apply says the packets in
//!   between were sent): after `gap_wait` (time for the other feed's copy to fill it),
//!   [`MdClient::gap_requests`] asks for the missing range (again after `retransmit_timeout`).
//!   An answer "not available", or no answer with no retransmission server, skips the channel
//!   to the oldest packet still obtainable.
//! - **rptSeq.** Each instrument's messages carry a per-channel rptSeq. An instrument applies
//!   rptSeq = last + 1, ignores older ones (already in its snapshot) and, on a jump, drops its
//!   book on that channel and waits for a snapshot: a skipped gap touches only the instruments
//!   whose rptSeq jumps.
//! - **Snapshots.** An instrument not in sync loads the next complete snapshot (all its chunks),
//!   which names the last packet of each channel it reflects; packets after that one that were
//!   already applied are replayed for that instrument from a bounded ring of recent packets.
//!   A snapshot also audits instruments in sync: one that has passed the snapshot's packet but
//!   holds an older rptSeq missed its last update in a skipped packet, and resyncs.
//!   Snapshot packets are not arbitrated by sequence number: the chunk assembly ignores copies
//!   of chunks it already took and restarts on anything else out of order.

use crate::config::ConsumerConfig;
use md_core::msg::{Candle, InstrumentDef, MdMsg, SnapshotChunk};
use md_core::{
    Bbo, Channel, L2Book, L3Book, PacketMessages, PriceLevel, RejectReason, Side, Status,
};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Counters (for tests, the CLI and monitoring).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub packets: u64,
    /// Heartbeat packets (counted in `packets` too).
    pub heartbeats: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub gaps_detected: u64,
    pub retransmit_requests: u64,
    pub not_available: u64,
    pub rate_limited: u64,
    /// Packets never obtained (the channel skipped over them).
    pub packets_skipped: u64,
    pub pending_overflow: u64,
    /// Instruments that saw an rptSeq jump and fell back to a snapshot.
    pub instrument_desyncs: u64,
    pub snapshots_applied: u64,
    pub messages: u64,
    pub instruments_over_max: u64,
}

/// What a consumer knows of one instrument.
#[derive(Debug, Clone)]
pub struct InstrumentView {
    pub def: Option<InstrumentDef>,
    pub status: Option<Status>,
    pub l3: L3Book,
    pub l2: L2Book,
    pub bbo: Bbo,
    pub last_trade: Option<(i64, u64)>,
    pub trades: u64,
    candles: VecDeque<Candle>,
    candles_max: usize,
    synced: [bool; 3],
    rpt_seq: [u32; 3],
}

impl InstrumentView {
    /// True when the channel's book is in sync (applied every update since its snapshot).
    pub fn is_synced(&self, c: Channel) -> bool {
        c != Channel::Snapshot && self.synced[c.index()]
    }
    pub fn rpt_seq(&self, c: Channel) -> u32 {
        self.rpt_seq[c.index()]
    }
    /// Closed candles received, oldest first (bounded by `candles_max`).
    pub fn candles(&self) -> &VecDeque<Candle> {
        &self.candles
    }
    pub fn symbol(&self) -> String {
        self.def.map_or_else(String::new, |d| {
            String::from_utf8_lossy(&d.symbol)
                .trim_end_matches(['\0', ' '])
                .to_string()
        })
    }
}

struct Feed {
    channel: Channel,
    /// The next sequence number to apply; None until the first packet (late join).
    next: Option<u32>,
    /// The publisher's next sequence number as the newest heartbeat named it: packets below
    /// it were sent (0: no heartbeat yet).
    heard: u32,
    pending: BTreeMap<u32, Vec<u8>>,
    /// Recently applied packets, for replay after a snapshot.
    ring: VecDeque<(u32, Vec<u8>)>,
    /// The gap last asked for and when.
    requested: Option<(u32, Instant)>,
    gap_since: Option<Instant>,
    ended: bool,
}

impl Feed {
    /// The first packet known to exist after the open gap, if a gap is open: the first one
    /// held from the future, or the next one a heartbeat announced.
    fn gap_end(&self) -> Option<u32> {
        let next = self.next?;
        let held = self.pending.first_key_value().map(|(s, _)| *s);
        let heard = (self.heard > next).then_some(self.heard);
        match (held, heard) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

struct Assembly {
    key: ([u32; 3], [u32; 3], u16),
    next_chunk: u16,
    chunks: Vec<SnapshotChunk>,
}

/// A retransmission request to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapRequest {
    pub channel: Channel,
    pub first_seq: u32,
    pub count: u16,
}

pub struct MdClient {
    config: ConsumerConfig,
    feeds: [Feed; 3],
    instruments: BTreeMap<u32, InstrumentView>,
    assemblies: BTreeMap<u32, Assembly>,
    last_snapshot_seq: u32,
    stats: ClientStats,
    has_retransmit: bool,
    /// Packet buffers released by the ring, reused for the next packets (so a steady stream
    /// does not allocate per packet).
    spare: Vec<Vec<u8>>,
}

/// Spare packet buffers kept for reuse.
const SPARE_BUFFERS_MAX: usize = 64;

impl MdClient {
    /// `has_retransmit`: whether gap requests will be sent to a server (if not, a gap is
    /// skipped after `retransmit_timeout`).
    pub fn new(config: ConsumerConfig, has_retransmit: bool) -> MdClient {
        let feed = |channel| Feed {
            channel,
            next: config.from_session_start.then_some(1),
            heard: 0,
            pending: BTreeMap::new(),
            ring: VecDeque::with_capacity(config.replay_packets_max),
            requested: None,
            gap_since: None,
            ended: false,
        };
        MdClient {
            feeds: [feed(Channel::L1), feed(Channel::L2), feed(Channel::L3)],
            instruments: BTreeMap::new(),
            assemblies: BTreeMap::new(),
            last_snapshot_seq: 0,
            stats: ClientStats::default(),
            has_retransmit,
            spare: Vec::with_capacity(SPARE_BUFFERS_MAX),
            config,
        }
    }

    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    pub fn instrument(&self, id: u32) -> Option<&InstrumentView> {
        self.instruments.get(&id)
    }

    pub fn instruments(&self) -> impl Iterator<Item = (&u32, &InstrumentView)> {
        self.instruments.iter()
    }

    /// The last sequence number applied on an incremental channel (0: none); for the snapshot
    /// channel, the highest sequence number seen.
    pub fn applied_seq(&self, c: Channel) -> u32 {
        match c {
            Channel::Snapshot => self.last_snapshot_seq,
            _ => self.feeds[c.index()].next.map_or(0, |n| n - 1),
        }
    }

    /// Whether the end-of-session marker was applied on every incremental channel.
    pub fn session_ended(&self) -> bool {
        self.feeds.iter().all(|f| f.ended)
    }

    /// Every known instrument is in sync on every incremental channel and no gap is open.
    pub fn is_synced(&self) -> bool {
        self.feeds
            .iter()
            .all(|f| f.pending.is_empty() && f.gap_end().is_none())
            && self
                .instruments
                .values()
                .all(|i| i.synced.iter().all(|s| *s))
    }

    fn view(&mut self, id: u32) -> Option<&mut InstrumentView> {
        if !self.instruments.contains_key(&id) {
            if self.instruments.len() >= self.config.instruments_max {
                self.stats.instruments_over_max += 1;
                return None;
            }
            let synced = self.config.from_session_start;
            self.instruments.insert(
                id,
                InstrumentView {
                    def: None,
                    status: None,
                    l3: L3Book::new(self.config.orders_per_instrument_max),
                    l2: L2Book::new(self.config.l2_depth_max),
                    bbo: Bbo::default(),
                    last_trade: None,
                    trades: 0,
                    candles: VecDeque::new(),
                    candles_max: self.config.candles_max,
                    synced: [synced; 3],
                    rpt_seq: [0; 3],
                },
            );
        }
        self.instruments.get_mut(&id)
    }

    /// Takes one datagram received on `channel` (from feed A, feed B, a retransmission or TCP).
    pub fn on_packet(&mut self, channel: Channel, bytes: &[u8], now: Instant) {
        let Ok((header, _)) = PacketMessages::new(bytes) else {
            self.stats.malformed += 1;
            return;
        };
        self.stats.packets += 1;
        if header.seq == 0 {
            self.on_control(bytes);
            return;
        }
        if channel == Channel::Snapshot {
            // No packet-level arbitration here: a snapshot chunk seen twice (feeds A and B, a
            // network duplicate) is ignored by the assembly, and a definition is idempotent.
            // Dropping "old" sequence numbers instead would lose reordered chunks.
            self.last_snapshot_seq = self.last_snapshot_seq.max(header.seq);
            self.apply_snapshot_packet(bytes);
            return;
        }
        let i = channel.index();
        if md_core::is_heartbeat_packet(bytes) {
            self.on_heartbeat(i, header.seq, now);
            return;
        }
        let feed = &mut self.feeds[i];
        let next = *feed.next.get_or_insert(header.seq);
        if header.seq < next {
            self.stats.duplicates += 1;
            return;
        }
        if header.seq > next {
            if feed.pending.contains_key(&header.seq) {
                self.stats.duplicates += 1;
            } else if feed.pending.len() >= self.config.pending_packets_max {
                self.stats.pending_overflow += 1;
            } else {
                if feed.gap_end().is_none() {
                    self.stats.gaps_detected += 1;
                    feed.gap_since = Some(now);
                }
                let mut buf = self.spare.pop().unwrap_or_default();
                buf.extend_from_slice(bytes);
                self.feeds[i].pending.insert(header.seq, buf);
            }
            return;
        }
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.extend_from_slice(bytes);
        self.apply_in_order(i, header.seq, buf);
        self.drain_pending(i);
    }

    /// A heartbeat naming `seq` as the channel's next packet: the packets before it were sent.
    fn on_heartbeat(&mut self, i: usize, seq: u32, now: Instant) {
        self.stats.heartbeats += 1;
        let feed = &mut self.feeds[i];
        let Some(next) = feed.next else {
            // A late joiner starts with the next packet; the snapshots cover what came before.
            feed.next = Some(seq);
            feed.heard = seq;
            return;
        };
        if seq <= next || seq <= feed.heard {
            return;
        }
        if feed.gap_end().is_none() {
            self.stats.gaps_detected += 1;
            feed.gap_since = Some(now);
        }
        feed.heard = seq;
    }

    fn drain_pending(&mut self, i: usize) {
        loop {
            let feed = &mut self.feeds[i];
            let Some(next) = feed.next else { return };
            // Anything below `next` left in pending is stale.
            while let Some((&s, _)) = feed.pending.first_key_value() {
                if s >= next {
                    break;
                }
                feed.pending.pop_first();
            }
            let Some(p) = feed.pending.remove(&next) else {
                if feed.gap_end().is_none() {
                    feed.gap_since = None;
                    feed.requested = None;
                }
                return;
            };
            self.apply_in_order(i, next, p);
        }
    }

    fn apply_in_order(&mut self, i: usize, seq: u32, bytes: Vec<u8>) {
        let channel = self.feeds[i].channel;
        self.feeds[i].next = Some(seq.saturating_add(1));
        self.apply_messages(channel, &bytes, None);
        let feed = &mut self.feeds[i];
        let released = if self.config.replay_packets_max == 0 {
            Some(bytes)
        } else {
            let old = if feed.ring.len() == self.config.replay_packets_max {
                feed.ring.pop_front().map(|(_, b)| b)
            } else {
                None
            };
            feed.ring.push_back((seq, bytes));
            old
        };
        if let Some(mut b) = released {
            if self.spare.len() < SPARE_BUFFERS_MAX {
                b.clear();
                self.spare.push(b);
            }
        }
    }

    /// Applies a packet's messages; `only` restricts them to one instrument (replay).
    fn apply_messages(&mut self, channel: Channel, bytes: &[u8], only: Option<u32>) {
        let Ok((_, msgs)) = PacketMessages::new(bytes) else {
            return;
        };
        for m in msgs {
            let Ok(m) = m else {
                self.stats.malformed += 1;
                return;
            };
            match MdMsg::decode(m) {
                Ok(msg) => {
                    if only.is_none() {
                        self.stats.messages += 1;
                    }
                    self.apply_message(channel, &msg, only);
                }
                // Unknown templates (a newer schema) are skipped; anything else is counted.
                Err(md_core::DecodeError::UnknownTemplate(_)) => {}
                Err(_) => self.stats.malformed += 1,
            }
        }
    }

    fn apply_message(&mut self, channel: Channel, msg: &MdMsg, only: Option<u32>) {
        match msg {
            MdMsg::Heartbeat { .. } => return,
            MdMsg::EndOfSession { .. } => {
                if only.is_none() {
                    self.feeds[channel.index()].ended = true;
                }
                return;
            }
            MdMsg::InstrumentDefinition(d) => {
                if let Some(v) = self.view(d.instrument_id) {
                    v.def = Some(*d);
                }
                return;
            }
            _ => {}
        }
        let Some((id, rpt)) = msg.instrument_rpt_seq() else {
            return;
        };
        if only.is_some_and(|o| o != id) {
            return;
        }
        let c = channel.index();
        let Some(v) = self.view(id) else { return };
        if !v.synced[c] || rpt <= v.rpt_seq[c] {
            return;
        }
        if Some(rpt) != v.rpt_seq[c].checked_add(1) || apply_to_view(v, msg).is_err() {
            desync(v, channel);
            self.stats.instrument_desyncs += 1;
            return;
        }
        v.rpt_seq[c] = rpt;
    }

    fn on_control(&mut self, bytes: &[u8]) {
        let Ok((_, msgs)) = PacketMessages::new(bytes) else {
            return;
        };
        for m in msgs.flatten() {
            if let Ok(MdMsg::RetransmitReject {
                channel,
                first_seq,
                oldest_available,
                reason,
                ..
            }) = MdMsg::decode(m)
            {
                let Some(ch) = Channel::from_u8(channel).filter(|c| *c != Channel::Snapshot) else {
                    continue;
                };
                match reason {
                    RejectReason::NotAvailable => {
                        self.stats.not_available += 1;
                        let next = self.feeds[ch.index()].next;
                        if next == Some(first_seq) && oldest_available > first_seq {
                            self.skip_to(ch.index(), oldest_available);
                        }
                    }
                    RejectReason::RateLimited => self.stats.rate_limited += 1,
                    _ => {}
                }
            }
        }
    }

    /// Gives up on the packets before `seq` on a channel.
    fn skip_to(&mut self, i: usize, seq: u32) {
        let feed = &mut self.feeds[i];
        let Some(next) = feed.next else { return };
        if seq <= next {
            return;
        }
        // Never skip past a packet we hold.
        let target = feed.pending.keys().next().map_or(seq, |&p| p.min(seq));
        self.stats.packets_skipped += u64::from(target - next);
        feed.next = Some(target);
        feed.requested = None;
        // Still open if a heartbeat announced packets past the target; `drain_pending` clears
        // the gap's start once it closes.
        self.drain_pending(i);
    }

    /// The retransmission requests due now. Without a server, a gap older than the timeout is
    /// skipped instead.
    pub fn gap_requests(&mut self, now: Instant) -> Vec<GapRequest> {
        let mut out = Vec::new();
        let timeout = self.config.retransmit_timeout;
        for i in 0..3 {
            let feed = &self.feeds[i];
            let (Some(next), Some(gap_end)) = (feed.next, feed.gap_end()) else {
                continue;
            };
            if !self.has_retransmit {
                if feed
                    .gap_since
                    .is_some_and(|t| now.duration_since(t) >= timeout)
                {
                    self.skip_to(i, gap_end);
                }
                continue;
            }
            if feed
                .gap_since
                .is_some_and(|t| now.duration_since(t) < self.config.gap_wait)
            {
                continue;
            }
            let due = match feed.requested {
                Some((s, at)) => s != next || now.duration_since(at) >= timeout,
                None => true,
            };
            if !due {
                continue;
            }
            let missing = gap_end - next;
            let count = missing.min(u32::from(self.config.request_count_max)) as u16;
            out.push(GapRequest {
                channel: feed.channel,
                first_seq: next,
                count,
            });
            self.feeds[i].requested = Some((next, now));
            self.stats.retransmit_requests += 1;
        }
        out
    }

    fn apply_snapshot_packet(&mut self, bytes: &[u8]) {
        let Ok((_, msgs)) = PacketMessages::new(bytes) else {
            return;
        };
        for m in msgs {
            let Ok(m) = m else {
                self.stats.malformed += 1;
                return;
            };
            match MdMsg::decode(m) {
                Ok(MdMsg::InstrumentDefinition(d)) => {
                    if let Some(v) = self.view(d.instrument_id) {
                        v.def = Some(d);
                    }
                }
                Ok(MdMsg::Snapshot(chunk)) => self.on_chunk(chunk),
                Ok(_) | Err(md_core::DecodeError::UnknownTemplate(_)) => {}
                Err(_) => self.stats.malformed += 1,
            }
        }
    }

    fn on_chunk(&mut self, chunk: SnapshotChunk) {
        let id = chunk.instrument_id;
        self.verify_against_snapshot(&chunk);
        let needed = self
            .instruments
            .get(&id)
            .is_none_or(|v| v.synced.iter().any(|s| !s));
        if !needed {
            self.assemblies.remove(&id);
            return;
        }
        let key = (chunk.last_seq, chunk.rpt_seq, chunk.chunks);
        if let Some(a) = self.assemblies.get(&id) {
            if a.key == key && chunk.chunk < a.next_chunk {
                // A copy of a chunk already taken.
                self.stats.duplicates += 1;
                return;
            }
        }
        if chunk.chunk == 0 {
            if chunk.chunks == 0 || usize::from(chunk.chunks) > self.config.snapshot_chunks_max {
                self.stats.malformed += 1;
                return;
            }
            if self.assemblies.len() >= self.config.instruments_max
                && !self.assemblies.contains_key(&id)
            {
                return;
            }
            self.assemblies.insert(
                id,
                Assembly {
                    key,
                    next_chunk: 0,
                    chunks: Vec::new(),
                },
            );
        }
        let Some(a) = self.assemblies.get_mut(&id) else {
            return;
        };
        if a.key != key || a.next_chunk != chunk.chunk {
            // A chunk went missing: wait for the next cycle.
            self.assemblies.remove(&id);
            return;
        }
        a.next_chunk += 1;
        a.chunks.push(chunk);
        if a.next_chunk == a.key.2 {
            let a = self.assemblies.remove(&id).expect("present");
            self.apply_snapshot(id, a);
        }
    }

    /// A snapshot also audits an instrument that believes it is in sync: once this consumer
    /// has passed the packet the snapshot reflects on a channel, it must have applied at least
    /// the snapshot's rptSeq there. If not, a skipped packet carried the instrument's last
    /// update (no later message exposed the jump): drop that channel's book and resync.
    fn verify_against_snapshot(&mut self, chunk: &SnapshotChunk) {
        let applied = [0, 1, 2].map(|i| self.feeds[i].next.map_or(0, |n| n - 1));
        let Some(v) = self.instruments.get_mut(&chunk.instrument_id) else {
            return;
        };
        for c in Channel::INCREMENTAL {
            let i = c.index();
            if v.synced[i] && chunk.last_seq[i] <= applied[i] && v.rpt_seq[i] < chunk.rpt_seq[i] {
                desync(v, c);
                self.stats.instrument_desyncs += 1;
            }
        }
    }

    fn apply_snapshot(&mut self, id: u32, a: Assembly) {
        let (last_seq, rpt_seq, _) = a.key;
        if self.view(id).is_none() {
            return;
        }
        let mut applied = false;
        for c in Channel::INCREMENTAL {
            let i = c.index();
            if self.instruments[&id].synced[i] {
                continue;
            }
            let s = last_seq[i];
            let feed = &self.feeds[i];
            let applied_up_to = feed.next.map_or(0, |n| n - 1);
            let replay: Vec<Vec<u8>> = if applied_up_to > s {
                // The packets after the snapshot's must still be in the ring.
                match feed.ring.front() {
                    Some(&(first, _)) if first <= s.saturating_add(1) => feed
                        .ring
                        .iter()
                        .filter(|(q, _)| *q > s)
                        .map(|(_, p)| p.clone())
                        .collect(),
                    _ => continue,
                }
            } else {
                Vec::new()
            };
            let v = self.instruments.get_mut(&id).expect("present");
            if load_channel(v, c, &a.chunks, self.config.l2_depth_max).is_err() {
                self.stats.malformed += 1;
                continue;
            }
            v.synced[i] = true;
            v.rpt_seq[i] = rpt_seq[i];
            applied = true;
            for p in replay {
                self.apply_messages(c, &p, Some(id));
            }
        }
        if applied {
            self.stats.snapshots_applied += 1;
        }
    }
}

fn desync(v: &mut InstrumentView, c: Channel) {
    v.synced[c.index()] = false;
    match c {
        Channel::L1 => v.bbo = Bbo::default(),
        Channel::L2 => v.l2.clear(),
        Channel::L3 => v.l3.clear(),
        Channel::Snapshot => {}
    }
}

/// Loads one channel's state of an instrument from a complete snapshot.
fn load_channel(
    v: &mut InstrumentView,
    c: Channel,
    chunks: &[SnapshotChunk],
    depth: usize,
) -> Result<(), md_core::BookError> {
    let status = chunks.first().map(|k| k.status);
    v.status = status.or(v.status);
    match c {
        Channel::L3 => {
            v.l3.clear();
            for o in chunks.iter().flat_map(|k| k.orders.iter()) {
                if let Err(e) = v.l3.add(o.side, o.order_id, o.price, o.quantity) {
                    v.l3.clear();
                    return Err(e);
                }
            }
        }
        Channel::L2 => {
            v.l2.clear();
            for l in chunks.iter().flat_map(|k| k.levels.iter()) {
                let level = PriceLevel {
                    price: l.price,
                    quantity: l.quantity,
                    order_count: l.order_count,
                };
                if let Err(e) = v.l2.set_level(l.side, level) {
                    v.l2.clear();
                    return Err(e);
                }
            }
            debug_assert!(v.l2.levels(Side::Buy).len() <= depth);
        }
        Channel::L1 => {
            let best = |side| {
                chunks
                    .iter()
                    .flat_map(|k| k.levels.iter())
                    .find(|l| l.side == side)
                    .map(|l| PriceLevel {
                        price: l.price,
                        quantity: l.quantity,
                        order_count: l.order_count,
                    })
            };
            v.bbo = Bbo {
                bid: best(Side::Buy),
                ask: best(Side::Sell),
            };
        }
        Channel::Snapshot => {}
    }
    Ok(())
}

/// Applies one in-sequence message to the instrument's books.
fn apply_to_view(v: &mut InstrumentView, msg: &MdMsg) -> Result<(), md_core::BookError> {
    match *msg {
        MdMsg::TradingStatus { status, .. } => v.status = Some(status),
        MdMsg::OrderAdded {
            order_id,
            side,
            price,
            quantity,
            ..
        } => v.l3.add(side, order_id, price, quantity)?,
        MdMsg::OrderModified {
            order_id,
            side,
            price,
            quantity,
            ..
        } => v.l3.modify(side, order_id, price, quantity)?,
        MdMsg::OrderDeleted {
            order_id,
            side,
            price,
            ..
        } => v.l3.delete(side, order_id, price)?,
        MdMsg::OrderExecuted {
            order_id,
            side,
            price,
            quantity,
            remaining_qty,
            ..
        } => {
            let left = v.l3.execute(side, order_id, price, quantity)?;
            if left != remaining_qty {
                return Err(md_core::BookError::BadQuantity(order_id, remaining_qty));
            }
        }
        MdMsg::Trade {
            price, quantity, ..
        } => {
            v.last_trade = Some((price, quantity));
            v.trades += 1;
        }
        MdMsg::LevelUpdate { ref entries, .. } => {
            for e in entries {
                v.l2.apply(e)?;
            }
        }
        MdMsg::BestBidOffer { bbo, .. } => v.bbo = bbo,
        MdMsg::Candle { candle, .. } => {
            if v.candles.len() == v.candles_max {
                v.candles.pop_front();
            }
            v.candles.push_back(candle);
        }
        _ => {}
    }
    Ok(())
}

/// How long a gap may stay open before the consumer acts (default).
pub const RETRANSMIT_TIMEOUT_DEFAULT: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use super::*;
    use md_core::{FeedGroups, PacketBuilder};

    fn packet(seq: u32, msg: &MdMsg) -> Vec<u8> {
        let mut buf = [0_u8; 128];
        let n = msg.encode(&mut buf).unwrap();
        let mut b = PacketBuilder::new(256);
        assert!(b.push(&buf[..n]));
        b.finish(seq, 1).to_vec()
    }

    fn status(rpt_seq: u32) -> MdMsg {
        MdMsg::TradingStatus {
            time_ns: 1,
            instrument_id: 7,
            rpt_seq,
            status: Status::Open,
        }
    }

    fn heartbeat(next: u32) -> Vec<u8> {
        packet(next, &MdMsg::Heartbeat { time_ns: 2 })
    }

    fn client(has_retransmit: bool) -> MdClient {
        let mut c = ConsumerConfig::new(FeedGroups::on_group("239.0.0.1".parse().unwrap(), 1));
        c.from_session_start = true;
        MdClient::new(c, has_retransmit)
    }

    #[test]
    fn a_heartbeat_names_the_next_packet_without_taking_its_number() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        let mut c = client(true);
        c.on_packet(Channel::L1, &packet(1, &status(1)), t0);
        // The next packet is 2: nothing is missing.
        c.on_packet(Channel::L1, &heartbeat(2), t0);
        assert_eq!(c.applied_seq(Channel::L1), 1);
        assert!(c.is_synced());
        assert!(c.gap_requests(later).is_empty());
        // Packets 2 and 3 were sent and lost: the heartbeat naming 4 reveals them.
        c.on_packet(Channel::L1, &heartbeat(4), t0);
        assert!(!c.is_synced());
        assert_eq!(c.stats().gaps_detected, 1);
        assert_eq!(
            c.gap_requests(later),
            vec![GapRequest {
                channel: Channel::L1,
                first_seq: 2,
                count: 2
            }]
        );
        // Their retransmission closes the gap; packet 4, when it comes, is data, not a repeat
        // of the heartbeat.
        c.on_packet(Channel::L1, &packet(2, &status(2)), later);
        c.on_packet(Channel::L1, &packet(3, &status(3)), later);
        assert!(c.is_synced());
        c.on_packet(Channel::L1, &packet(4, &status(4)), later);
        assert_eq!(c.applied_seq(Channel::L1), 4);
        assert_eq!(c.instrument(7).unwrap().rpt_seq(Channel::L1), 4);
        assert_eq!(c.stats().duplicates, 0);
        assert_eq!(c.stats().heartbeats, 2);
        // An old heartbeat (a delayed copy) changes nothing.
        c.on_packet(Channel::L1, &heartbeat(3), later);
        assert!(c.is_synced());
    }

    #[test]
    fn without_a_server_a_gap_revealed_by_a_heartbeat_is_skipped_after_the_timeout() {
        let t0 = Instant::now();
        let mut c = client(false);
        c.on_packet(Channel::L2, &heartbeat(3), t0);
        assert!(c.gap_requests(t0).is_empty());
        assert!(!c.is_synced());
        assert!(c.gap_requests(t0 + RETRANSMIT_TIMEOUT_DEFAULT).is_empty());
        assert_eq!(c.stats().packets_skipped, 2);
        assert_eq!(c.applied_seq(Channel::L2), 2);
        assert!(c.is_synced());
    }
}
