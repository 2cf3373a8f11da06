//! The application side of a session: FIX orders in, SBE events out; engine results in,
//! ExecutionReports and OrderCancelRejects out.
//!
//! Each session keeps its own map from ClOrdID to the 64-bit `client_order_id` key the SBE
//! events carry (`session_id << 40 | n`), and per order what an ExecutionReport needs (symbol,
//! side, quantities, the notional for AvgPx). Every ClOrdID also travels in the events'
//! var-data, so the maps can be rebuilt from the journals.
//!
//! The entries are held by their key's number ([`Entries`]: no hashing); the ClOrdID table
//! holds (hash, key) pairs and compares ClOrdIDs through the entries, finished requests and
//! replaced orders' old keys staying behind as [`Entry::Retired`]. It hashes with foldhash,
//! seeded at random per session, instead of SipHash (a visible cost when it was probed for
//! every order and cancel): the ClOrdIDs are the client's, but each session has its own table
//! (a client aiming collisions at it slows only its own session, which its rate limit and its
//! order capacity bound), and the seed is never observable from outside.

use crate::config::InstrumentEntry;
use fix_codec::{decimal, Message, Writer};
use sbe_order_entry as sbe;
use sbe_order_entry::{message_header_codec::ENCODED_LENGTH as HDR, WriteBuf};
use std::collections::HashMap;

/// Symbol lookup.
pub(crate) struct Instruments {
    pub list: Vec<InstrumentEntry>,
    by_symbol: HashMap<Box<[u8]>, usize>,
    by_id: HashMap<u32, usize>,
}

impl Instruments {
    pub fn new(list: Vec<InstrumentEntry>) -> Self {
        let by_symbol = list
            .iter()
            .enumerate()
            .map(|(i, e)| (e.symbol.as_bytes().to_vec().into_boxed_slice(), i))
            .collect();
        let by_id = list
            .iter()
            .enumerate()
            .map(|(i, e)| (e.instrument_id, i))
            .collect();
        Self {
            list,
            by_symbol,
            by_id,
        }
    }
    pub fn by_symbol(&self, s: &[u8]) -> Option<usize> {
        self.by_symbol.get(s).copied()
    }
    pub fn by_id(&self, id: u32) -> Option<usize> {
        self.by_id.get(&id).copied()
    }
}

/// Longest ClOrdID the gateway takes (FIX 4.2 sets no limit; `GatewayConfig::cl_ord_id_len_max`
/// can only lower it).
pub(crate) const CL_ORD_ID_LEN_MAX: usize = 64;

/// A ClOrdID held inline, so that registering an order or a request allocates nothing.
/// Hashes and compares as its bytes, so maps keyed by it are looked up with a `&[u8]`.
#[derive(Clone)]
pub(crate) struct ClOrdId {
    len: u8,
    bytes: [u8; CL_ORD_ID_LEN_MAX],
}

impl ClOrdId {
    /// The ClOrdID `s`; the caller has checked its length (at most [`CL_ORD_ID_LEN_MAX`]
    /// bytes: debug builds assert it, release builds keep the first that many).
    pub fn new(s: &[u8]) -> Self {
        debug_assert!(s.len() <= CL_ORD_ID_LEN_MAX, "ClOrdID of {} bytes", s.len());
        let len = s.len().min(CL_ORD_ID_LEN_MAX);
        let mut bytes = [0_u8; CL_ORD_ID_LEN_MAX];
        bytes[..len].copy_from_slice(&s[..len]);
        Self {
            len: len as u8,
            bytes,
        }
    }
}

impl std::ops::Deref for ClOrdId {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::borrow::Borrow<[u8]> for ClOrdId {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for ClOrdId {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for ClOrdId {}

impl std::hash::Hash for ClOrdId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Exactly as the `[u8]` it borrows as, so lookups by `&[u8]` find it.
        (**self).hash(state);
    }
}

impl std::fmt::Debug for ClOrdId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

/// The hasher of a session's maps (see the module documentation).
pub(crate) type Hasher = foldhash::fast::RandomState;

/// What the gateway remembers of one order.
#[derive(Clone, Debug)]
pub(crate) struct Order {
    pub cl_ord_id: ClOrdId,
    pub instrument: usize,
    pub side: u8,
    pub ord_type: u8,
    pub tif: u8,
    pub price: Option<i64>,
    pub order_qty: u64,
    pub cum_qty: u64,
    /// Sum of price mantissa x quantity of the fills.
    pub notional: i128,
    pub order_id: Option<u64>,
    /// FIX OrdStatus(39).
    pub status: u8,
    /// The key of a cancel or replace request in flight.
    pub pending: Option<u64>,
}

/// A cancel or replace request, keyed by its own client_order_id.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub cl_ord_id: ClOrdId,
    pub target: u64,
}

#[derive(Clone, Debug)]
pub(crate) enum Entry {
    Order(Order),
    Request(Request),
    /// A key whose order or request is gone (a finished request, a replaced order's old key):
    /// its ClOrdID stays known for the rest of the trading period (duplicates, "unknown
    /// order" answers) and is found through it.
    Retired(ClOrdId),
}

impl Entry {
    /// The ClOrdID the entry's key was given for.
    pub fn cl_ord_id(&self) -> &[u8] {
        match self {
            Entry::Order(o) => &o.cl_ord_id,
            Entry::Request(r) => &r.cl_ord_id,
            Entry::Retired(c) => c,
        }
    }
}

/// The low 40 bits of a key: its number within the session.
const KEY_NUMBER_MASK: u64 = (1 << 40) - 1;

/// A key this far past the last direct slot is kept in the map instead (no run of empty slots
/// is made for it).
const DIRECT_GAP_MAX: u64 = 1 << 16;

/// Slots per chunk of [`Chunked`].
const CHUNK_SLOTS: usize = 4096;

/// A growable array in fixed chunks: growing allocates one chunk and never moves what is
/// stored (a vector or deque of a day's orders copied hundreds of megabytes at each doubling,
/// a stall of the thread that happened to add the next order). A new chunk is only reserved:
/// its pages are touched as entries are written into it, one page fault every few entries,
/// instead of all of them (hundreds of kilobytes) by the push that started it.
pub(crate) struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunked<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn push(&mut self, value: T) {
        if self.len == self.chunks.len() * CHUNK_SLOTS {
            self.chunks.push(Vec::with_capacity(CHUNK_SLOTS));
        }
        let last = self.chunks.last_mut().expect("a chunk with room");
        debug_assert!(last.len() < CHUNK_SLOTS);
        last.push(value);
        self.len += 1;
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.chunks.iter_mut().flat_map(|c| c.iter_mut())
    }

    pub fn into_values(self) -> impl Iterator<Item = T> {
        self.chunks.into_iter().flatten()
    }
}

impl<T> std::ops::Index<usize> for Chunked<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK_SLOTS][i % CHUNK_SLOTS]
    }
}

impl<T> std::ops::IndexMut<usize> for Chunked<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / CHUNK_SLOTS][i % CHUNK_SLOTS]
    }
}

/// A session's orders and requests by key (`session_id << 40 | n`, `n` counting up from 1).
/// The keys of the current trading period index an array (in [`Chunked`] pieces) directly: no
/// hashing, and the newest entries, which most engine results name, sit together at its end (a hash map spread them
/// over a table of hundreds of megabytes by the end of a busy day, a cache miss for its
/// control bytes and another for the entry on every lookup). Entries kept from earlier periods
/// (open GTC orders) and keys outside that run sit in a map.
pub(crate) struct Entries {
    /// `session_id << 40`: the keys that may have a direct slot.
    prefix: u64,
    /// Number (`n`) of `slots[0]`.
    base: u64,
    slots: Chunked<Option<Entry>>,
    others: HashMap<u64, Entry, Hasher>,
    len: usize,
}

impl Entries {
    pub fn new(session_id: u32) -> Self {
        Self {
            prefix: u64::from(session_id) << 40,
            base: 1,
            slots: Chunked::default(),
            others: HashMap::default(),
            len: 0,
        }
    }

    /// Index of `key`'s direct slot, if it has one (the slot may be empty).
    fn slot(&self, key: u64) -> Option<usize> {
        if key & !KEY_NUMBER_MASK != self.prefix {
            return None;
        }
        let i = (key & KEY_NUMBER_MASK).checked_sub(self.base)?;
        (i < self.slots.len() as u64).then_some(i as usize)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, key: &u64) -> Option<&Entry> {
        match self.slot(*key).and_then(|i| self.slots[i].as_ref()) {
            Some(e) => Some(e),
            None if self.others.is_empty() => None,
            None => self.others.get(key),
        }
    }

    pub fn get_mut(&mut self, key: &u64) -> Option<&mut Entry> {
        match self.slot(*key) {
            Some(i) if self.slots[i].is_some() => self.slots[i].as_mut(),
            _ if self.others.is_empty() => None,
            _ => self.others.get_mut(key),
        }
    }

    pub fn contains_key(&self, key: &u64) -> bool {
        self.get(key).is_some()
    }

    pub fn insert(&mut self, key: u64, entry: Entry) -> Option<Entry> {
        let old = if self.others.is_empty() {
            None
        } else {
            self.others.remove(&key)
        };
        let old = match self.slot(key) {
            Some(i) => self.slots[i].replace(entry).or(old),
            None => {
                let n = key & KEY_NUMBER_MASK;
                let end = self.base + self.slots.len() as u64;
                if key & !KEY_NUMBER_MASK == self.prefix && n >= end && n - end <= DIRECT_GAP_MAX {
                    for _ in end..n {
                        self.slots.push(None);
                    }
                    self.slots.push(Some(entry));
                    old
                } else {
                    self.others.insert(key, entry).or(old)
                }
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, key: &u64) -> Option<Entry> {
        let removed = match self.slot(*key).and_then(|i| self.slots[i].take()) {
            Some(e) => Some(e),
            None => self.others.remove(key),
        };
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&u64, &mut Entry) -> bool) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let key = self.prefix | (self.base + i as u64);
            if let Some(e) = slot {
                if !keep(&key, e) {
                    *slot = None;
                    self.len -= 1;
                }
            }
        }
        let before = self.others.len();
        self.others.retain(|k, e| keep(k, e));
        self.len -= before - self.others.len();
    }

    /// Moves every entry into the map and starts the direct slots at number `next` (a new
    /// trading period: few entries remain, and new keys start there).
    pub fn rebase(&mut self, next: u64) {
        let (prefix, base) = (self.prefix, self.base);
        for (i, slot) in std::mem::take(&mut self.slots).into_values().enumerate() {
            if let Some(e) = slot {
                self.others.insert(prefix | (base + i as u64), e);
            }
        }
        self.base = next;
    }
}

/// One session's orders.
pub(crate) struct SessionOrders {
    pub session_id: u32,
    pub account_id: u32,
    pub cancel_on_disconnect: bool,
    next: u64,
    pub entries: Entries,
    /// ClOrdID -> key, as (hash of the ClOrdID, key): 16 bytes a slot where a map holding the
    /// ClOrdIDs themselves took 80, so the day's table stays far smaller than the entries; a
    /// lookup compares the ClOrdID of the entry the key names (which it reads next anyway).
    ids: IdShards,
    ids_hasher: Hasher,
    entries_max: usize,
    gateway_exec_ids: u64,
    /// Start (ns) of the trading period whose ClOrdIDs count as duplicates.
    pub period_ns: u64,
}

/// Shards of a session's ClOrdID table, chosen by bits of the hash the tables themselves do not
/// use (a table takes its bucket from the low bits and its tag from the top seven). A table
/// that grows moves all it holds at once, on the thread that registered the order that filled
/// it: one table of a busy day's ClOrdIDs stalled a gateway I/O thread (every session on it)
/// for milliseconds at each doubling; a shard holds a sixteenth of them.
#[derive(Default)]
pub(crate) struct IdShards([hashbrown::HashTable<(u64, u64)>; ID_SHARDS]);

const ID_SHARDS: usize = 16;

impl IdShards {
    #[inline]
    fn index(h: u64) -> usize {
        ((h >> 40) as usize) % ID_SHARDS
    }

    #[inline]
    fn of(&self, h: u64) -> &hashbrown::HashTable<(u64, u64)> {
        &self.0[Self::index(h)]
    }

    #[inline]
    fn of_mut(&mut self, h: u64) -> &mut hashbrown::HashTable<(u64, u64)> {
        &mut self.0[Self::index(h)]
    }

    /// ClOrdIDs held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.iter().map(hashbrown::HashTable::len).sum()
    }
}

/// Result of handling one application message.
pub(crate) enum Handled {
    /// Answered directly (a reject); nothing for the engine.
    Answered,
    /// An SBE event of `len` bytes with `template` waits in the buffer. The order or request
    /// is registered already; if the event cannot be handed to the sequencer, `undo` it
    /// ([`SessionOrders::unpublish`]): it never existed.
    Publish {
        template: u16,
        len: usize,
        undo: Undo,
    },
    /// A possible duplicate (PossDupFlag=Y) of an order or request whose ClOrdID is known: it
    /// was journaled already (a resend after a reconnection or a takeover), so it is ignored.
    PossDupIgnored,
}

/// What [`SessionOrders::unpublish`] needs to forget an order or request that was registered
/// but never reached the sequencer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Undo {
    key: u64,
    /// For a cancel or replace: its target order and the request it had pending before.
    target: Option<(u64, Option<u64>)>,
}

const OUR_ORDER_ID_NONE: &[u8] = b"NONE";

impl SessionOrders {
    pub fn new(
        session_id: u32,
        account_id: u32,
        cancel_on_disconnect: bool,
        entries_max: usize,
    ) -> Self {
        Self {
            session_id,
            account_id,
            cancel_on_disconnect,
            next: 1,
            entries: Entries::new(session_id),
            ids: IdShards::default(),
            ids_hasher: Hasher::default(),
            entries_max,
            gateway_exec_ids: 0,
            period_ns: 0,
        }
    }

    /// A session's orders, counting ClOrdIDs as duplicates from `period_ns` on.
    pub fn with_period(
        session_id: u32,
        account_id: u32,
        cancel_on_disconnect: bool,
        entries_max: usize,
        period_ns: u64,
    ) -> Self {
        Self {
            period_ns,
            ..Self::new(session_id, account_id, cancel_on_disconnect, entries_max)
        }
    }

    fn new_key(&mut self) -> u64 {
        let k = (u64::from(self.session_id) << 40) | self.next;
        self.next += 1;
        k
    }

    /// Registers a key seen in the journals (restart). ClOrdIDs of an earlier trading period
    /// (`current_period` false) do not count as duplicates any more.
    pub fn observe_key(&mut self, key: u64, cl_ord_id: &[u8], entry: Entry, current_period: bool) {
        self.next = self.next.max((key & ((1 << 40) - 1)) + 1);
        self.entries.insert(key, entry);
        if current_period {
            // The latest key of a ClOrdID wins, as a replay meets them.
            let h = self.cl_hash(cl_ord_id);
            let entries = &self.entries;
            let named = |&(eh, k): &(u64, u64)| {
                eh == h && entries.get(&k).is_some_and(|e| e.cl_ord_id() == cl_ord_id)
            };
            let shard = self.ids.of_mut(h);
            match shard.find_mut(h, named) {
                Some(slot) => slot.1 = key,
                None => {
                    shard.insert_unique(h, (h, key), |&(eh, _)| eh);
                }
            }
        }
    }

    /// A new trading period (the session's daily sequence reset) started at `period_ns`: the
    /// ClOrdIDs of closed orders may be used again and those orders are forgotten; open
    /// orders (GTC) stay known by their ClOrdID.
    pub fn start_period(&mut self, period_ns: u64) {
        if period_ns <= self.period_ns {
            return;
        }
        self.period_ns = period_ns;
        let closed = |e: &Entry| match e {
            Entry::Order(o) => matches!(o.status, b'2' | b'4' | b'8' | b'C'),
            Entry::Request(_) | Entry::Retired(_) => true,
        };
        self.entries.retain(|_, e| !closed(e));
        // The new period's keys start a fresh run of direct slots.
        self.entries.rebase(self.next);
        let entries = &self.entries;
        for shard in self.ids.0.iter_mut() {
            shard.retain(|&mut (_, k)| entries.contains_key(&k));
        }
    }

    /// Forgets an order or request the sequencer refused (`Handled::Publish` whose event could
    /// not be handed over): its ClOrdID may be used again, and a cancel's or replace's target
    /// has the request it had pending before.
    pub fn unpublish(&mut self, undo: Undo) {
        let Some(entry) = self.entries.remove(&undo.key) else {
            return;
        };
        let h = self.cl_hash(entry.cl_ord_id());
        if let Ok(slot) = self
            .ids
            .of_mut(h)
            .find_entry(h, |&(eh, k)| eh == h && k == undo.key)
        {
            slot.remove();
        }
        if let Some((target, before)) = undo.target {
            if let Some(Entry::Order(o)) = self.entries.get_mut(&target) {
                if o.pending == Some(undo.key) {
                    o.pending = before;
                }
            }
        }
    }

    fn cl_hash(&self, cl_ord_id: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.ids_hasher.hash_one(cl_ord_id)
    }

    /// The key a ClOrdID of this trading period was given (an order's, a request's, or
    /// retired).
    pub fn find(&self, cl_ord_id: &[u8]) -> Option<u64> {
        let h = self.cl_hash(cl_ord_id);
        let entries = &self.entries;
        self.ids
            .of(h)
            .find(h, |&(eh, k)| {
                eh == h && entries.get(&k).is_some_and(|e| e.cl_ord_id() == cl_ord_id)
            })
            .map(|&(_, k)| k)
    }

    /// Whether a ClOrdID was used in this trading period (a new order or request with it is a
    /// duplicate).
    pub fn knows(&self, cl_ord_id: &[u8]) -> bool {
        self.find(cl_ord_id).is_some()
    }

    /// Gives a new ClOrdID (not [`SessionOrders::knows`]) the key whose entry was just
    /// inserted.
    fn register(&mut self, cl_ord_id: &[u8], key: u64) {
        let h = self.cl_hash(cl_ord_id);
        self.ids.of_mut(h).insert_unique(h, (h, key), |&(eh, _)| eh);
    }

    /// Takes the order or request `key` out, leaving its ClOrdID known (see
    /// [`Entry::Retired`]).
    pub fn retire(&mut self, key: u64) -> Option<Entry> {
        // One lookup: the entry is replaced where it is.
        let entry = self.entries.get_mut(&key)?;
        let cl = ClOrdId::new(entry.cl_ord_id());
        Some(std::mem::replace(entry, Entry::Retired(cl)))
    }

    pub fn order(&self, key: u64) -> Option<&Order> {
        match self.entries.get(&key) {
            Some(Entry::Order(o)) => Some(o),
            _ => None,
        }
    }

    /// `G<now_ns>-<n>`: the ExecID of a report the gateway answers itself.
    fn next_gateway_exec_id(&mut self, now_ns: u64) -> ShortId {
        self.gateway_exec_ids += 1;
        let mut id = ShortId::default();
        id.push(b"G");
        id.push_u64(now_ns);
        id.push(b"-");
        id.push_u64(self.gateway_exec_ids);
        id
    }
}

/// A short identifier built on the stack (the ExecIDs and OrderIDs of the reports the gateway
/// answers itself: rejects, status answers), so those answers allocate nothing.
pub(crate) struct ShortId {
    len: usize,
    bytes: [u8; 48],
}

impl Default for ShortId {
    fn default() -> Self {
        Self {
            len: 0,
            bytes: [0; 48],
        }
    }
}

impl ShortId {
    /// Appends `s` (what does not fit is cut off: callers stay far below 48 bytes).
    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn push_u64(&mut self, v: u64) {
        let mut digits = [0_u8; 20];
        self.push(fix_codec::u64_digits(v, &mut digits));
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A FIX fault in an order, answered without the engine.
struct OrderReject {
    reason: u8,
    text: &'static str,
}

fn rej(reason: u8, text: &'static str) -> OrderReject {
    OrderReject { reason, text }
}

/// The fields every application handler needs.
pub(crate) struct AppContext<'a> {
    pub instruments: &'a Instruments,
    pub cl_ord_id_len_max: usize,
    pub now_ns: u64,
}

type Send<'s> = dyn FnMut(&[u8], &mut dyn FnMut(&mut Writer)) + 's;

/// Handles D, F, G, H. `send(msg_type, body)` sends an application message on the session.
pub(crate) fn handle(
    ctx: &AppContext<'_>,
    orders: &mut SessionOrders,
    msg: &Message<'_>,
    sbe_buf: &mut [u8],
    send: &mut Send<'_>,
) -> Handled {
    match msg.msg_type() {
        b"D" => new_order(ctx, orders, msg, sbe_buf, send),
        b"F" => cancel_or_replace(ctx, orders, msg, false, sbe_buf, send),
        b"G" => cancel_or_replace(ctx, orders, msg, true, sbe_buf, send),
        b"H" => {
            status(ctx, orders, msg, send);
            Handled::Answered
        }
        _ => {
            let seq = msg.seq_num().unwrap_or(0);
            let mt = msg.msg_type();
            send(b"j", &mut |w| {
                w.field_u64(45, seq);
                w.field(372, mt);
                w.field(380, b"3");
                w.field(58, b"Unsupported message type");
            });
            Handled::Answered
        }
    }
}

fn parse_price(ctx: &AppContext<'_>, inst: usize, v: &[u8]) -> Result<i64, OrderReject> {
    let e = &ctx.instruments.list[inst];
    let p = decimal::parse(v, e.price_decimals).map_err(|err| match err {
        decimal::DecimalError::Precision => rej(0, "Price is not on the tick"),
        _ => rej(0, "Price out of range"),
    })?;
    if p <= 0 {
        return Err(rej(0, "Price must be positive"));
    }
    if p % e.tick_size != 0 {
        return Err(rej(0, "Price is not on the tick"));
    }
    Ok(p)
}

fn parse_qty(ctx: &AppContext<'_>, inst: usize, v: Option<&[u8]>) -> Result<u64, OrderReject> {
    let e = &ctx.instruments.list[inst];
    let v = v.ok_or(rej(0, "OrderQty(38) is required"))?;
    let q = decimal::parse(v, 0).map_err(|_| rej(0, "OrderQty is not a whole number of units"))?;
    if q <= 0 {
        return Err(rej(0, "OrderQty must be positive"));
    }
    let q = q as u64;
    if q % e.lot_size != 0 {
        return Err(rej(0, "OrderQty is not a multiple of the lot size"));
    }
    Ok(q)
}

fn sbe_side(s: u8) -> sbe::Side {
    if s == b'1' {
        sbe::Side::Buy
    } else {
        sbe::Side::Sell
    }
}

fn new_order(
    ctx: &AppContext<'_>,
    orders: &mut SessionOrders,
    msg: &Message<'_>,
    sbe_buf: &mut [u8],
    send: &mut Send<'_>,
) -> Handled {
    let cl = msg.get(11).unwrap_or(b"");
    let symbol = msg.get(55).unwrap_or(b"");
    let side = msg.get(54).unwrap_or(b"");
    let qty_raw = msg.get(38);
    if msg.get_flag(43) && orders.knows(cl) {
        return Handled::PossDupIgnored;
    }
    let checked = (|| {
        if cl.len() > ctx.cl_ord_id_len_max.min(CL_ORD_ID_LEN_MAX) {
            return Err(rej(0, "ClOrdID too long"));
        }
        if orders.knows(cl) {
            return Err(rej(6, "Duplicate ClOrdID"));
        }
        if orders.entries.len() >= orders.entries_max {
            return Err(rej(3, "Order capacity of the session exhausted"));
        }
        let inst = ctx
            .instruments
            .by_symbol(symbol)
            .ok_or(rej(1, "Unknown symbol"))?;
        if side != b"1" && side != b"2" {
            return Err(rej(0, "Side must be 1 (buy) or 2 (sell)"));
        }
        let ord_type = match msg.get(40) {
            Some(b"1") => b'1',
            Some(b"2") => b'2',
            _ => return Err(rej(0, "OrdType must be 1 (market) or 2 (limit)")),
        };
        let tif = match msg.get(59) {
            None | Some(b"0") => b'0',
            Some(b"1") => b'1',
            Some(b"3") => b'3',
            Some(b"4") => b'4',
            _ => return Err(rej(0, "TimeInForce must be 0, 1, 3 or 4")),
        };
        let price = if ord_type == b'2' {
            Some(parse_price(
                ctx,
                inst,
                msg.get(44)
                    .ok_or(rej(0, "Price(44) is required for a limit order"))?,
            )?)
        } else {
            None
        };
        let qty = parse_qty(ctx, inst, qty_raw)?;
        Ok((inst, ord_type, tif, price, qty))
    })();
    let (inst, ord_type, tif, price, qty) = match checked {
        Ok(v) => v,
        Err(r) => {
            reject_new(ctx, orders, msg, &r, send);
            return Handled::Answered;
        }
    };
    let key = orders.new_key();
    let order = Order {
        cl_ord_id: ClOrdId::new(cl),
        instrument: inst,
        side: side[0],
        ord_type,
        tif,
        price,
        order_qty: qty,
        cum_qty: 0,
        notional: 0,
        order_id: None,
        status: b'A',
        pending: None,
    };
    let e = &ctx.instruments.list[inst];
    let encoded = (|| {
        let mut enc = sbe::new_order_event_codec::NewOrderEventEncoder::default()
            .wrap(WriteBuf::new(sbe_buf), HDR)?;
        enc = enc.header(0)?.parent()?;
        enc.price(price);
        enc.quantity(qty);
        enc.client_order_id(key);
        enc.received_time(ctx.now_ns);
        enc.session_id(orders.session_id);
        enc.account_id(orders.account_id);
        enc.instrument_id(e.instrument_id);
        enc.side(sbe_side(side[0]));
        enc.ord_type(if ord_type == b'1' {
            sbe::OrdType::Market
        } else {
            sbe::OrdType::Limit
        });
        enc.time_in_force(match tif {
            b'1' => sbe::TimeInForce::GoodTillCancel,
            b'3' => sbe::TimeInForce::ImmediateOrCancel,
            b'4' => sbe::TimeInForce::FillOrKill,
            _ => sbe::TimeInForce::Day,
        });
        enc.stp_mode(sbe::StpMode::None);
        let mut flags = sbe::OrderFlags::default();
        flags.set_cancel_on_disconnect(orders.cancel_on_disconnect);
        flags.set_possible_resend(msg.get_flag(97));
        enc.flags(flags);
        enc.min_qty(None);
        enc.cl_ord_id(cl)?;
        Ok::<_, sbe::SbeErr>(HDR + enc.encoded_length())
    })();
    match encoded {
        Ok(len) => {
            orders.entries.insert(key, Entry::Order(order));
            orders.register(cl, key);
            Handled::Publish {
                template: sbe::new_order_event_codec::SBE_TEMPLATE_ID,
                len,
                undo: Undo { key, target: None },
            }
        }
        Err(_) => {
            reject_new(ctx, orders, msg, &rej(0, "Order cannot be encoded"), send);
            Handled::Answered
        }
    }
}

/// ExecutionReport rejecting a NewOrderSingle the gateway refuses.
fn reject_new(
    ctx: &AppContext<'_>,
    orders: &mut SessionOrders,
    msg: &Message<'_>,
    r: &OrderReject,
    send: &mut Send<'_>,
) {
    let exec_id = orders.next_gateway_exec_id(ctx.now_ns);
    send(b"8", &mut |w| {
        w.field(37, OUR_ORDER_ID_NONE);
        w.field(11, msg.get(11).unwrap_or(b"NONE"));
        w.field(17, exec_id.as_bytes());
        w.field(20, b"0");
        w.field(150, b"8");
        w.field(39, b"8");
        w.field_u64(103, u64::from(r.reason));
        w.field(55, msg.get(55).unwrap_or(b"NONE"));
        w.field(54, msg.get(54).filter(|s| s.len() == 1).unwrap_or(b"1"));
        if let Some(q) = msg.get(38).filter(|q| decimal::is_decimal(q)) {
            w.field(38, q);
        }
        w.field(151, b"0");
        w.field(14, b"0");
        w.field(6, b"0");
        w.field_time(60, ctx.now_ns);
        w.field(58, r.text.as_bytes());
    });
}

fn cancel_reject(
    cl: &[u8],
    orig: &[u8],
    order: Option<&Order>,
    is_replace: bool,
    reason: u8,
    text: &[u8],
    send: &mut Send<'_>,
) {
    let mut order_id = ShortId::default();
    match order.and_then(|o| o.order_id) {
        Some(id) => order_id.push_u64(id),
        None => order_id.push(OUR_ORDER_ID_NONE),
    }
    let status = order.map_or(b'8', |o| o.status);
    send(b"9", &mut |w| {
        w.field(37, order_id.as_bytes());
        w.field(11, cl);
        w.field(41, orig);
        w.field(39, &[status]);
        w.field(434, if is_replace { b"2" } else { b"1" });
        w.field_u64(102, u64::from(reason));
        w.field(58, text);
    });
}

fn cancel_or_replace(
    ctx: &AppContext<'_>,
    orders: &mut SessionOrders,
    msg: &Message<'_>,
    is_replace: bool,
    sbe_buf: &mut [u8],
    send: &mut Send<'_>,
) -> Handled {
    let cl = msg.get(11).unwrap_or(b"");
    let orig = msg.get(41).unwrap_or(b"");
    if msg.get_flag(43) && orders.knows(cl) {
        return Handled::PossDupIgnored;
    }
    let target = orders.find(orig);
    let order = target.and_then(|k| orders.order(k)).cloned();
    let Some((target, order)) = target.zip(order) else {
        cancel_reject(cl, orig, None, is_replace, 1, b"Unknown order", send);
        return Handled::Answered;
    };
    if cl.len() > ctx.cl_ord_id_len_max.min(CL_ORD_ID_LEN_MAX) || orders.knows(cl) {
        cancel_reject(
            cl,
            orig,
            Some(&order),
            is_replace,
            2,
            b"Duplicate or invalid ClOrdID",
            send,
        );
        return Handled::Answered;
    }
    if matches!(order.status, b'2' | b'4' | b'8' | b'C') {
        cancel_reject(
            cl,
            orig,
            Some(&order),
            is_replace,
            0,
            b"Order already closed",
            send,
        );
        return Handled::Answered;
    }
    if orders.entries.len() >= orders.entries_max {
        cancel_reject(
            cl,
            orig,
            Some(&order),
            is_replace,
            2,
            b"Order capacity of the session exhausted",
            send,
        );
        return Handled::Answered;
    }
    let (mut price, mut quantity) = (order.price.unwrap_or(0), order.order_qty);
    if is_replace {
        let parsed = (|| {
            if msg.get(55) != Some(ctx.instruments.list[order.instrument].symbol.as_bytes()) {
                return Err(rej(0, "Symbol differs from the order's"));
            }
            let p = match msg.get(44) {
                Some(v) => parse_price(ctx, order.instrument, v)?,
                None => order.price.ok_or(rej(0, "Price(44) is required"))?,
            };
            let q = parse_qty(ctx, order.instrument, msg.get(38))?;
            Ok((p, q))
        })();
        match parsed {
            Ok((p, q)) => {
                price = p;
                quantity = q;
            }
            Err(r) => {
                cancel_reject(cl, orig, Some(&order), true, 2, r.text.as_bytes(), send);
                return Handled::Answered;
            }
        }
    }
    let key = orders.new_key();
    let inst = &ctx.instruments.list[order.instrument];
    let encoded = (|| {
        let wb = WriteBuf::new(sbe_buf);
        if is_replace {
            let mut e = sbe::replace_order_event_codec::ReplaceOrderEventEncoder::default()
                .wrap(wb, HDR)?;
            e = e.header(0)?.parent()?;
            e.order_id(order.order_id);
            e.client_order_id(key);
            e.orig_client_order_id(target);
            e.price(price);
            e.quantity(quantity);
            e.received_time(ctx.now_ns);
            e.session_id(orders.session_id);
            e.account_id(orders.account_id);
            e.instrument_id(inst.instrument_id);
            e.side(sbe_side(order.side));
            e.cl_ord_id(cl)?;
            e.orig_cl_ord_id(orig)?;
            Ok::<_, sbe::SbeErr>((
                sbe::replace_order_event_codec::SBE_TEMPLATE_ID,
                HDR + e.encoded_length(),
            ))
        } else {
            let mut e =
                sbe::cancel_order_event_codec::CancelOrderEventEncoder::default().wrap(wb, HDR)?;
            e = e.header(0)?.parent()?;
            e.order_id(order.order_id);
            e.client_order_id(key);
            e.orig_client_order_id(target);
            e.received_time(ctx.now_ns);
            e.session_id(orders.session_id);
            e.account_id(orders.account_id);
            e.instrument_id(inst.instrument_id);
            e.side(sbe_side(order.side));
            e.cl_ord_id(cl)?;
            e.orig_cl_ord_id(orig)?;
            Ok((
                sbe::cancel_order_event_codec::SBE_TEMPLATE_ID,
                HDR + e.encoded_length(),
            ))
        }
    })();
    let Ok((template, len)) = encoded else {
        cancel_reject(
            cl,
            orig,
            Some(&order),
            is_replace,
            2,
            b"Request cannot be encoded",
            send,
        );
        return Handled::Answered;
    };
    orders.entries.insert(
        key,
        Entry::Request(Request {
            cl_ord_id: ClOrdId::new(cl),
            target,
        }),
    );
    orders.register(cl, key);
    let mut before = None;
    if let Some(Entry::Order(o)) = orders.entries.get_mut(&target) {
        before = o.pending.replace(key);
    }
    Handled::Publish {
        template,
        len,
        undo: Undo {
            key,
            target: Some((target, before)),
        },
    }
}

fn status(
    ctx: &AppContext<'_>,
    orders: &mut SessionOrders,
    msg: &Message<'_>,
    send: &mut Send<'_>,
) {
    let cl = msg.get(11).unwrap_or(b"");
    let key = orders.find(cl);
    let exec_id = orders.next_gateway_exec_id(ctx.now_ns);
    match key.and_then(|k| orders.order(k)) {
        Some(o) => {
            let e = &ctx.instruments.list[o.instrument];
            let exec_type = if o.status == b'A' { b'0' } else { o.status };
            let r = Report {
                order: o,
                cl_ord_id: &o.cl_ord_id,
                orig_cl_ord_id: None,
                exec_id: exec_id.as_bytes(),
                exec_trans_type: b'3',
                exec_type,
                last: None,
                leaves: if matches!(o.status, b'2' | b'4' | b'8' | b'C') {
                    0
                } else {
                    o.order_qty.saturating_sub(o.cum_qty)
                },
                rej_reason: None,
                text: None,
            };
            send(b"8", &mut |w| r.write(w, e, ctx.now_ns));
        }
        None => send(b"8", &mut |w| {
            w.field(37, OUR_ORDER_ID_NONE);
            w.field(11, cl);
            w.field(17, exec_id.as_bytes());
            w.field(20, b"3");
            w.field(150, b"8");
            w.field(39, b"8");
            w.field(103, b"5");
            w.field(55, msg.get(55).unwrap_or(b"NONE"));
            w.field(54, msg.get(54).unwrap_or(b"1"));
            w.field(151, b"0");
            w.field(14, b"0");
            w.field(6, b"0");
            w.field(58, b"Unknown order");
        }),
    }
}

/// An ExecutionReport about a known order.
pub(crate) struct Report<'a> {
    pub order: &'a Order,
    pub cl_ord_id: &'a [u8],
    pub orig_cl_ord_id: Option<&'a [u8]>,
    pub exec_id: &'a [u8],
    pub exec_trans_type: u8,
    pub exec_type: u8,
    /// LastShares, LastPx (mantissa).
    pub last: Option<(u64, i64)>,
    pub leaves: u64,
    pub rej_reason: Option<u8>,
    pub text: Option<&'a [u8]>,
}

/// Extra decimals of AvgPx beyond the instrument's price scale.
const AVG_PX_EXTRA_DECIMALS: u32 = 4;

impl Report<'_> {
    pub fn write(&self, w: &mut Writer, inst: &InstrumentEntry, now_ns: u64) {
        let o = self.order;
        match o.order_id {
            Some(id) => w.field_u64(37, id),
            None => w.field(37, OUR_ORDER_ID_NONE),
        }
        w.field(11, self.cl_ord_id);
        if let Some(orig) = self.orig_cl_ord_id {
            w.field(41, orig);
        }
        w.field(17, self.exec_id);
        w.field(20, &[self.exec_trans_type]);
        w.field(150, &[self.exec_type]);
        w.field(39, &[if o.status == b'A' { b'0' } else { o.status }]);
        if let Some(r) = self.rej_reason {
            w.field_u64(103, u64::from(r));
        }
        w.field(55, inst.symbol.as_bytes());
        w.field(54, &[o.side]);
        w.field_u64(38, o.order_qty);
        w.field(40, &[o.ord_type]);
        if let Some(p) = o.price {
            w.field_decimal(44, i128::from(p), inst.price_decimals);
        }
        w.field(59, &[o.tif]);
        let (last_qty, last_px) = self.last.unwrap_or((0, 0));
        w.field_u64(32, last_qty);
        w.field_decimal(31, i128::from(last_px), inst.price_decimals);
        w.field_u64(151, self.leaves);
        w.field_u64(14, o.cum_qty);
        let avg = if o.cum_qty == 0 {
            0
        } else {
            o.notional * 10_i128.pow(AVG_PX_EXTRA_DECIMALS) / i128::from(o.cum_qty)
        };
        w.field_decimal(6, avg, inst.price_decimals + AVG_PX_EXTRA_DECIMALS);
        w.field_time(60, now_ns);
        if let Some(t) = self.text {
            w.field(58, t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_keeps_order_and_reserves_each_chunk_without_filling_it() {
        let mut c = Chunked::default();
        let n = 2 * CHUNK_SLOTS + 5;
        for i in 0..n {
            c.push(i as u64);
        }
        assert_eq!(c.len(), n);
        for i in [0, 1, CHUNK_SLOTS - 1, CHUNK_SLOTS, 2 * CHUNK_SLOTS + 4] {
            assert_eq!(c[i], i as u64);
        }
        c[CHUNK_SLOTS] = 7;
        assert_eq!(c[CHUNK_SLOTS], 7);
        for v in c.iter_mut() {
            *v += 1;
        }
        let all: Vec<u64> = c.into_values().collect();
        assert_eq!(all.len(), n);
        assert_eq!((all[0], all[CHUNK_SLOTS], all[n - 1]), (1, 8, n as u64));
        // The push that starts a chunk reserves it and writes one slot, not all of them.
        let mut c = Chunked::default();
        for i in 0..=CHUNK_SLOTS {
            c.push(i);
        }
        let last = c.chunks.last().unwrap();
        assert_eq!((last.len(), last.capacity()), (1, CHUNK_SLOTS));
    }

    fn order(cl: &str, status: u8) -> Entry {
        Entry::Order(Order {
            cl_ord_id: ClOrdId::new(cl.as_bytes()),
            instrument: 0,
            side: b'1',
            ord_type: b'2',
            tif: b'1',
            price: Some(100),
            order_qty: 10,
            cum_qty: 0,
            notional: 0,
            order_id: Some(1),
            status,
            pending: None,
        })
    }

    #[test]
    fn inline_clordids_are_found_by_their_bytes() {
        let mut m = HashMap::new();
        m.insert(ClOrdId::new(b"ORDER-1"), 1_u64);
        m.insert(ClOrdId::new(&[b'x'; CL_ORD_ID_LEN_MAX]), 2);
        m.insert(ClOrdId::new(b""), 3);
        assert_eq!(m.get(&b"ORDER-1"[..]), Some(&1));
        assert_eq!(m.get(&[b'x'; CL_ORD_ID_LEN_MAX][..]), Some(&2));
        assert_eq!(m.get(&b""[..]), Some(&3));
        assert_eq!(m.get(&b"ORDER-"[..]), None, "a prefix is another ClOrdID");
        assert_eq!(&*ClOrdId::new(b"abc"), b"abc");
        assert!(ClOrdId::new(b"abc") == ClOrdId::new(b"abc"));
        assert!(ClOrdId::new(b"abc") != ClOrdId::new(b"abcd"));
    }

    #[test]
    fn entries_behave_as_a_map_whichever_way_they_are_held() {
        let req = |target: u64| {
            Entry::Request(Request {
                cl_ord_id: ClOrdId::new(b"R"),
                target,
            })
        };
        let target = |e: Option<&Entry>| match e {
            Some(Entry::Request(r)) => Some(r.target),
            _ => None,
        };
        let k = |n: u64| 7 << 40 | n;
        let mut e = Entries::new(7);
        let mut model: HashMap<u64, u64> = HashMap::new();
        // In order, with a small gap (direct slots), far ahead (the map), another session's
        // key (the map), and a number below the slots after a rebase (the map).
        for n in [1, 2, 3, 10, 11, 10 + DIRECT_GAP_MAX + 50, 12] {
            assert!(e.insert(k(n), req(n)).is_none());
            model.insert(k(n), n);
        }
        assert!(e.insert(3 << 40 | 5, req(99)).is_none());
        model.insert(3 << 40 | 5, 99);
        assert_eq!(
            target(e.insert(k(2), req(20)).as_ref()),
            Some(2),
            "replaced"
        );
        model.insert(k(2), 20);
        assert_eq!(target(e.remove(&k(11)).as_ref()), Some(11));
        model.remove(&k(11));
        assert!(e.remove(&k(11)).is_none());
        assert!(e.remove(&k(4)).is_none(), "an empty slot");
        if let Some(Entry::Request(r)) = e.get_mut(&k(12)) {
            r.target = 120;
        }
        model.insert(k(12), 120);
        e.retain(|key, _| *key != k(1));
        model.remove(&k(1));
        let check = |e: &Entries, model: &HashMap<u64, u64>| {
            assert_eq!(e.len(), model.len());
            for n in 0..20 {
                assert_eq!(target(e.get(&k(n))), model.get(&k(n)).copied(), "key {n}");
                assert_eq!(e.contains_key(&k(n)), model.contains_key(&k(n)));
            }
            for (key, want) in model {
                assert_eq!(target(e.get(key)), Some(*want));
            }
        };
        check(&e, &model);
        e.rebase(200);
        check(&e, &model);
        assert!(e.insert(k(150), req(150)).is_none(), "below the new slots");
        model.insert(k(150), 150);
        assert!(e.insert(k(200), req(200)).is_none());
        model.insert(k(200), 200);
        check(&e, &model);
        assert_eq!(target(e.get(&k(200))), Some(200));
        assert_eq!(e.slot(k(200)), Some(0), "new keys are direct again");
        // The slots grow past the key held in the map: it is still found, and replacing it
        // leaves one entry.
        let far = 200 + DIRECT_GAP_MAX + 10;
        assert!(e.insert(k(far), req(far)).is_none());
        for n in 201..far {
            // (One number here was given out above, far ahead of the slots of then.)
            assert_eq!(e.insert(k(n), req(n)).is_some(), model.contains_key(&k(n)));
        }
        assert!(e.insert(k(far + 1), req(far + 1)).is_none());
        let len = e.len();
        assert_eq!(e.slot(k(far)), Some((far - 200) as usize));
        assert_eq!(target(e.get(&k(far))), Some(far));
        assert_eq!(target(e.insert(k(far), req(1)).as_ref()), Some(far));
        assert_eq!(e.len(), len);
        assert_eq!(target(e.remove(&k(far)).as_ref()), Some(1));
        assert!(e.get(&k(far)).is_none());
        assert_eq!(e.len(), len - 1);
    }

    #[test]
    fn a_new_period_frees_the_clordids_of_closed_orders_only() {
        let mut o = SessionOrders::with_period(1, 1, false, 100, 1_000);
        o.observe_key(1 << 40 | 1, b"DONE", order("DONE", b'2'), true);
        o.observe_key(1 << 40 | 2, b"OPEN", order("OPEN", b'0'), true);
        o.observe_key(1 << 40 | 3, b"OLD", order("OLD", b'4'), false);
        assert!(o.knows(b"DONE"));
        assert!(!o.knows(b"OLD"), "earlier periods do not count");
        o.start_period(500);
        assert!(o.knows(b"DONE"), "not a later period");
        o.start_period(2_000);
        assert!(!o.knows(b"DONE"));
        assert!(o.knows(b"OPEN"), "a GTC order keeps its ClOrdID");
        assert_eq!(o.entries.len(), 1);
        assert_eq!(o.new_key(), 1 << 40 | 4, "keys never repeat");
    }

    #[test]
    fn clordids_spread_over_the_shards_and_are_all_found() {
        let mut o = SessionOrders::new(1, 1, false, 100_000);
        let n = 20_000_u64;
        for i in 1..=n {
            let cl = format!("C{i}");
            let key = o.new_key();
            o.entries.insert(key, order(&cl, b'0'));
            o.register(cl.as_bytes(), key);
        }
        assert_eq!(o.ids.len(), n as usize);
        let smallest = o.ids.0.iter().map(hashbrown::HashTable::len).min().unwrap();
        let largest = o.ids.0.iter().map(hashbrown::HashTable::len).max().unwrap();
        // Even spread: each shard near n / 16 = 1,250.
        assert!(smallest > 1_000 && largest < 1_500, "{smallest}..{largest}");
        for i in 1..=n {
            assert_eq!(o.find(format!("C{i}").as_bytes()), Some(1 << 40 | i));
        }
        assert_eq!(o.find(b"C0"), None);
        // Forgetting one (a refused publication) touches only its own.
        o.unpublish(Undo {
            key: 1 << 40 | 7,
            target: None,
        });
        assert_eq!(o.find(b"C7"), None);
        assert_eq!(o.find(b"C8"), Some(1 << 40 | 8));
        assert_eq!(o.ids.len(), n as usize - 1);
    }

    #[test]
    fn short_ids_are_written_on_the_stack() {
        let mut id = ShortId::default();
        id.push(b"G");
        id.push_u64(0);
        id.push(b"-");
        id.push_u64(u64::MAX);
        assert_eq!(id.as_bytes(), b"G0-18446744073709551615");
        let mut o = SessionOrders::new(1, 1, false, 10);
        assert_eq!(o.next_gateway_exec_id(1_234).as_bytes(), b"G1234-1");
        assert_eq!(o.next_gateway_exec_id(1_234).as_bytes(), b"G1234-2");
        // Too long: cut at 48 bytes, never past the buffer.
        for _ in 0..3 {
            id.push_u64(u64::MAX);
        }
        assert_eq!(id.as_bytes().len(), 48);
    }
}
