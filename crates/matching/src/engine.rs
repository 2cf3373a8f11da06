//! The engine: books, order manager, risk and funds in one deterministic state machine.
//!
//! Layout (docs/matching.md has the costs):
//! - orders live in a slab (`orders`) and are linked into FIFO queues by `u32` slot indices;
//!   freed slots go back to their instrument's free list (`order_free_heads`), so a busy
//!   instrument's orders stay together in the slab;
//! - engine order ids are sequential; `id_table[id & mask]` holds the slot of a live order;
//! - levels live in a second slab (`levels`, per-instrument free lists likewise); each side of a
//!   book is a `VecDeque<LevelKey>` (a ring buffer preallocated to `levels_per_side_max`) sorted
//!   so that the best level is the last element (key = price for bids, -price for asks).
//!   Inserting or removing a level shifts the shorter side of the ring, not every better level:
//!   deep in a book (where the bench's moves of old orders land) that is a few entries instead
//!   of nearly the whole side;
//! - positions are instrument-major (`instrument * accounts_max + account`);
//! - the large tables are `Huge` tables (`huge.rs`: transparent huge pages where the kernel allows).

use std::collections::VecDeque;

use crate::config::{Band, EngineConfig, ProductConfig};
use crate::huge::Huge;
use crate::types::*;

pub(crate) const NIL: u32 = u32::MAX;

/// `process_batch` prefetches only when the order and level slabs are larger than this (about
/// one core's L2 cache); below it the prefetch instructions cost more than they save (measured:
/// 20.0 -> 16.3 M commands/s on the one-instrument bench, while 100 instruments gain ~5%).
const PREFETCH_ABOVE_BYTES: usize = 2 << 20;

/// How many commands ahead [`Engine::process_batch`] prefetches (see [`Engine::prefetch_ahead`]).
pub const PREFETCH_AHEAD: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Order {
    pub id: u64,
    pub client_order_id: u64,
    pub price: i64,
    /// Price at which a buy's cash is reserved: the limit, or the collar for a market buy.
    pub reserve_price: i64,
    pub leaves: u64,
    pub cum: u64,
    pub quantity: u64,
    pub account: u32,
    pub session: u32,
    pub instrument: u32,
    pub prev: u32,
    pub next: u32,
    pub level: u32,
    pub side: Side,
    pub tif: TimeInForce,
    pub stp: StpMode,
    pub order_type: OrderType,
}

impl Order {
    const EMPTY: Order = Order {
        id: 0,
        client_order_id: 0,
        price: 0,
        reserve_price: 0,
        leaves: 0,
        cum: 0,
        quantity: 0,
        account: 0,
        session: 0,
        instrument: 0,
        prev: NIL,
        next: NIL,
        level: NIL,
        side: Side::Buy,
        tif: TimeInForce::Gtc,
        stp: StpMode::None,
        order_type: OrderType::Limit,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Level {
    pub price: i64,
    pub quantity: u64,
    pub count: u32,
    pub head: u32,
    pub tail: u32,
    /// `instrument * 2 + side`: lets the price cache verify a hit.
    pub book: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LevelKey {
    pub key: i64,
    pub level: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Product {
    pub config: ProductConfig,
    pub configured: bool,
    pub status: TradingStatus,
    /// Last trade price, or the configured / admin-set reference; 0 = none.
    pub reference_price: i64,
    /// `compute_band` of the above, kept in step by `set_reference`.
    pub band: Option<(i64, i64)>,
}

/// 128 bytes, aligned to 128: the limits and the daily quantity in the first cache line, the
/// cash and the daily notional in the second, and the two lines are one aligned pair (which
/// the L2 cache's adjacent-line prefetcher fetches together). Unaligned (112 bytes at any
/// multiple of 16) an account spread over two or three lines, not necessarily paired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(128))]
pub(crate) struct Account {
    pub limits: AccountLimits,
    pub daily_quantity: u64,
    pub open: bool,
    pub daily_notional: i128,
    pub cash_available: i128,
    pub cash_reserved: i128,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Position {
    pub available: i64,
    pub reserved: i64,
}

/// A preallocated table whose indexing skips the bounds check in release builds.
///
/// Used for the slabs and tables whose indices the engine produces itself (slots from the free
/// lists and links, level indices from the books, masked id-table and price-cache indices);
/// indices that come from commands are range-checked before they reach a `Table`. Debug builds
/// (all tests) keep the check, so a broken invariant still panics there. Everything else
/// (`len`, `iter`, ...) is the inner slice's. The memory is a [`Huge`] table's.
#[derive(Debug, PartialEq)]
pub(crate) struct Table<T: Copy>(Huge<T>);

impl<T: Copy> std::ops::Deref for Table<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: Copy> std::ops::DerefMut for Table<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl<T: Copy> std::ops::Index<usize> for Table<T> {
    type Output = T;
    #[inline(always)]
    fn index(&self, i: usize) -> &T {
        debug_assert!(i < self.0.len(), "table index {i} out of {}", self.0.len());
        // SAFETY: every index is either produced by the engine from its own tables (free-list
        // slots, links checked against NIL, level indices from the books) or masked to the
        // table's power-of-two length; debug builds check it above.
        unsafe { self.0.get_unchecked(i) }
    }
}

impl<T: Copy> std::ops::IndexMut<usize> for Table<T> {
    #[inline(always)]
    fn index_mut(&mut self, i: usize) -> &mut T {
        debug_assert!(i < self.0.len(), "table index {i} out of {}", self.0.len());
        // SAFETY: as for `index`.
        unsafe { self.0.get_unchecked_mut(i) }
    }
}

#[inline]
fn key_of(side: Side, price: i64) -> i64 {
    match side {
        Side::Buy => price,
        Side::Sell => -price,
    }
}

/// A cache prefetch hint; no effect on behaviour.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults, even for an invalid address, reads
    // nothing into the program and writes nothing.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Where `key` is (`Ok`) or would go (`Err`) in a side's sorted keys: exactly what
/// `binary_search_by_key` returns (the keys are unique; a gap's key counts like any other),
/// but the ends are checked first. The best level is where trades empty levels and where new
/// best prices are added; plain bisection would reach it only after probing the middle of the
/// array, one dependent cache miss per probe on a book the cache has lost (the quiet
/// instruments of a skewed flow).
///
/// With `interpolate` (an engine whose tables outgrow the caches, see `Engine::large`) the
/// inside is searched by interpolation alternating with bisection: levels sit on a tick grid,
/// so the key's index within a bracket `[lo, hi]` is close to `(key - key[lo]) / (key[hi] -
/// key[lo])` of the way across; each probe narrows the bracket and the next interpolation
/// uses the keys at its new ends, and every second probe halves the bracket so that a badly
/// uneven book costs at most about twice bisection's probes. Brackets of 8 entries or fewer
/// (two cache lines) are bisected. On a cold book of a few hundred levels that is about three
/// or four dependent misses where bisection took eight or nine. Without it (tables that fit
/// the caches) the inside is bisected: on a cached book the divisions cost more than they save
/// (callgrind, one-instrument bench stream: 482 against 567 instructions per command).
#[inline(always)]
fn search_side(book: &VecDeque<LevelKey>, key: i64, interpolate: bool) -> Result<usize, usize> {
    let n = book.len();
    let best = match book.back() {
        None => return Err(0),
        Some(best) if key == best.key => return Ok(n - 1),
        Some(best) if key > best.key => return Err(n),
        Some(best) => best.key,
    };
    let worst = book[0].key;
    if key <= worst {
        return if key == worst { Ok(0) } else { Err(0) };
    }
    if !interpolate {
        return book.binary_search_by_key(&key, |k| k.key);
    }
    // Invariant: key[lo] = key_lo < key < key_hi = key[hi].
    let (mut lo, mut hi, mut key_lo, mut key_hi) = (0, n - 1, worst, best);
    let mut by_interpolation = true;
    while hi - lo > 1 {
        let width = hi - lo;
        let mid = if by_interpolation && width > 8 {
            // The differences of two i64 keys as u64 (exact: key_lo < key < key_hi).
            let span = key_hi.wrapping_sub(key_lo) as u64;
            let offset = key.wrapping_sub(key_lo) as u64;
            let step = match offset.checked_mul(width as u64) {
                Some(product) => product / span,
                None => (u128::from(offset) * width as u128 / u128::from(span)) as u64,
            };
            lo + (step as usize).clamp(1, width - 1)
        } else {
            lo + width / 2
        };
        by_interpolation = !by_interpolation;
        let k = book[mid].key;
        if k == key {
            return Ok(mid);
        }
        if k < key {
            (lo, key_lo) = (mid, k);
        } else {
            (hi, key_hi) = (mid, k);
        }
    }
    Err(hi)
}

/// [`search_side`] for a key near a known entry `book[from]`: gallops from `from` towards
/// `key` (1, 2, 4, ... entries), then bisects the last step. A re-priced level moves a few
/// entries, whose keys share the cache lines the search for its old entry just read.
#[inline(always)]
fn search_near(book: &VecDeque<LevelKey>, key: i64, from: usize) -> Result<usize, usize> {
    let n = book.len();
    // Bracket (lo, hi): key[lo] < key < key[hi], with lo = -1 / hi = n standing for the ends.
    let (mut lo, mut hi): (isize, isize);
    let mut step = 1;
    let at = book[from].key;
    if at == key {
        return Ok(from);
    }
    if at < key {
        lo = from as isize;
        loop {
            let probe = from + step;
            if probe >= n {
                hi = n as isize;
                break;
            }
            let k = book[probe].key;
            if k == key {
                return Ok(probe);
            }
            if k > key {
                hi = probe as isize;
                break;
            }
            lo = probe as isize;
            step *= 2;
        }
    } else {
        hi = from as isize;
        loop {
            let Some(probe) = from.checked_sub(step) else {
                lo = -1;
                break;
            };
            let k = book[probe].key;
            if k == key {
                return Ok(probe);
            }
            if k < key {
                lo = probe as isize;
                break;
            }
            hi = probe as isize;
            step *= 2;
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let k = book[mid as usize].key;
        if k == key {
            return Ok(mid as usize);
        }
        if k < key {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Err(hi as usize)
}

/// How far from the insertion point [`insert_key`] looks for a gap to take over before it
/// shifts the shorter side of the array instead.
const GAP_REACH: usize = 32;

/// Inserts `entry` at `i` (as [`search_side`] returned `Err(i)`) into a side with `gaps`
/// gaps, at most `capacity` entries long: fills the nearest gap within [`GAP_REACH`] by
/// shifting only the entries between it and `i`; without one, an ordinary insertion (the ring
/// shifts its shorter side). A side at its capacity always has a gap (its live levels are
/// fewer, the caller checked) and takes the nearest, however far: the array never grows.
fn insert_key(
    book: &mut VecDeque<LevelKey>,
    gaps: &mut u32,
    i: usize,
    entry: LevelKey,
    capacity: usize,
) {
    let n = book.len();
    let full = n >= capacity;
    if *gaps > 0 && (full || (i > 0 && i < n)) {
        let reach = if full { n } else { GAP_REACH };
        for d in 1..=reach {
            // Candidates: the d-th entry at or above the insertion point, the d-th below it.
            let above = i + d - 1;
            if above < n && book[above].level == NIL {
                for j in (i..above).rev() {
                    book[j + 1] = book[j];
                }
                book[i] = entry;
                *gaps -= 1;
                return;
            }
            if let Some(below) = i.checked_sub(d) {
                if book[below].level == NIL {
                    for j in below..i - 1 {
                        book[j] = book[j + 1];
                    }
                    book[i - 1] = entry;
                    *gaps -= 1;
                    return;
                }
            } else if above >= n {
                break;
            }
        }
    }
    debug_assert!(n < capacity, "a full side has a gap");
    book.insert(i, entry);
}

/// Removes the entry at `i` from a side: pops it at either end (and the gaps it uncovers, so
/// the ends stay live), otherwise leaves a gap.
fn remove_key(book: &mut VecDeque<LevelKey>, gaps: &mut u32, i: usize) {
    if i + 1 == book.len() {
        book.pop_back();
    } else if i == 0 {
        book.pop_front();
    } else {
        book[i].level = NIL;
        *gaps += 1;
        return;
    }
    trim_gaps(book, gaps);
}

/// Pops gaps off both ends of a side.
fn trim_gaps(book: &mut VecDeque<LevelKey>, gaps: &mut u32) {
    while book.back().is_some_and(|k| k.level == NIL) {
        book.pop_back();
        *gaps -= 1;
    }
    while book.front().is_some_and(|k| k.level == NIL) {
        book.pop_front();
        *gaps -= 1;
    }
}

#[inline]
fn crosses(taker_side: Side, limit: i64, level_price: i64) -> bool {
    match taker_side {
        Side::Buy => level_price <= limit,
        Side::Sell => level_price >= limit,
    }
}

/// The matching core. Construct with [`Engine::new`], feed with [`Engine::process`].
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) products: Vec<Product>,
    pub(crate) accounts: Huge<Account>,
    /// `instruments_max * accounts_max`, index `instrument * accounts_max + account`
    /// (instrument-major: the positions of one instrument are contiguous, so the few busy
    /// instruments of a skewed flow keep theirs in a few cached pages; account-major spread
    /// every access over the whole matrix, one TLB miss and one cache miss each).
    pub(crate) positions: Huge<Position>,
    pub(crate) orders: Table<Order>,
    /// Slots never used yet or handed back by no instrument, taken from the end.
    pub(crate) order_free: Vec<u32>,
    /// Per instrument, the head of an intrusive list (through `Order::next`) of the slots its
    /// orders freed. An instrument reuses its own slots first, so the orders of a busy
    /// instrument stay in a compact, cached part of the slab instead of spreading over all of
    /// it (a global free list hands a slot freed by one instrument to the next order of any).
    pub(crate) order_free_heads: Vec<u32>,
    /// Free slots in `order_free` and all the per-instrument lists together.
    pub(crate) order_free_count: u32,
    pub(crate) id_table: Table<u32>,
    pub(crate) id_mask: u64,
    pub(crate) levels: Table<Level>,
    pub(crate) level_free: Vec<u32>,
    /// Per instrument, an intrusive list (through `Level::head`) of the levels it freed; as
    /// for `order_free_heads`.
    pub(crate) level_free_heads: Vec<u32>,
    /// Direct-mapped price -> level cache per book side, `level_cache_slots` entries each,
    /// indexed by `price & mask`. A hint only: a hit is verified against the level, a miss
    /// falls back to the binary search. It never influences outputs.
    pub(crate) level_cache: Table<u32>,
    pub(crate) level_cache_mask: u64,
    /// `books[instrument][side]`: the side's level keys, ascending (best last). An entry whose
    /// level emptied in the middle of the array stays as a *gap* (`level == NIL`, its key kept,
    /// so the keys stay sorted) instead of shifting its neighbours; a new key inserted nearby
    /// takes the gap's place, and a level re-created at a gap's price revives it. Both ends are
    /// always live.
    pub(crate) books: Vec<[VecDeque<LevelKey>; 2]>,
    /// Gaps per side of `books`.
    pub(crate) book_gaps: Vec<[u32; 2]>,
    pub(crate) next_order_id: u64,
    pub(crate) next_exec_id: u64,
    pub(crate) next_trade_id: u64,
    pub(crate) last_sequence: u64,
    pub(crate) trading_day: u32,
    /// Deposits minus withdrawals: what the cash of all accounts must add up to.
    pub(crate) cash_total: i128,
    /// Likewise per instrument for positions.
    pub(crate) position_totals: Vec<i128>,
    pub(crate) seq: u64,
    pub(crate) ts: u64,
    /// The order and level slabs are larger than [`PREFETCH_ABOVE_BYTES`] (about one core's
    /// L2 cache): `process_batch` prefetches and book sides are searched by interpolation
    /// (fewer dependent misses on a cold book). A function of the configuration only; it
    /// changes speed, never outputs.
    pub(crate) large: bool,
}

/// Arguments of a new order after decoding, shared by new orders and replaces losing priority.
struct Taker {
    order: Order,
    /// How far the order may walk: its limit, or the collar for market orders.
    walk_limit: i64,
}

impl Engine {
    /// Builds an engine with every table preallocated. Panics on an invalid config
    /// (see [`EngineConfig::validate`]).
    pub fn new(config: EngineConfig) -> Engine {
        if let Err(e) = config.validate() {
            panic!("invalid engine config: {e}");
        }
        let instruments_max = config.instruments_max as usize;
        let accounts_max = config.accounts_max as usize;
        let orders_max = config.orders_max as usize;
        let levels_per_side_max = config.levels_per_side_max as usize;
        let mut products = vec![
            Product {
                config: ProductConfig::simple(0, "", 0),
                configured: false,
                status: TradingStatus::Halted,
                reference_price: 0,
                band: None,
            };
            instruments_max
        ];
        for p in &config.products {
            let mut product = Product {
                config: *p,
                configured: true,
                status: p.status,
                reference_price: p.reference_price,
                band: None,
            };
            product.band = Self::compute_band(&product);
            products[p.instrument_id as usize] = product;
        }
        let accounts = Huge::new(
            accounts_max,
            Account {
                open: false,
                cash_available: 0,
                cash_reserved: 0,
                daily_quantity: 0,
                daily_notional: 0,
                limits: config.default_limits,
            },
        );
        let mut books = Vec::with_capacity(instruments_max);
        for product in &products {
            let cap = if product.configured {
                levels_per_side_max
            } else {
                0
            };
            books.push([VecDeque::with_capacity(cap), VecDeque::with_capacity(cap)]);
        }
        let level_cache_slots = (levels_per_side_max * 2)
            .next_power_of_two()
            .clamp(64, 1 << 16);
        // Levels: each holds at least one order, so `orders_max` levels always suffice.
        let levels_max = orders_max;
        let mut engine = Engine {
            products,
            accounts,
            positions: Huge::new(accounts_max * instruments_max, Position::default()),
            orders: Table(Huge::new(orders_max, Order::EMPTY)),
            order_free: (0..orders_max as u32).rev().collect(),
            order_free_heads: vec![NIL; instruments_max],
            order_free_count: orders_max as u32,
            id_table: Table(Huge::new(config.order_id_window as usize, NIL)),
            id_mask: u64::from(config.order_id_window) - 1,
            levels: Table(Huge::new(
                levels_max,
                Level {
                    price: 0,
                    quantity: 0,
                    count: 0,
                    head: NIL,
                    tail: NIL,
                    book: NIL,
                },
            )),
            level_free: (0..levels_max as u32).rev().collect(),
            level_free_heads: vec![NIL; instruments_max],
            level_cache: Table(Huge::new(instruments_max * 2 * level_cache_slots, NIL)),
            level_cache_mask: level_cache_slots as u64 - 1,
            book_gaps: vec![[0, 0]; books.len()],
            books,
            next_order_id: 1,
            next_exec_id: 1,
            next_trade_id: 1,
            last_sequence: 0,
            trading_day: 0,
            cash_total: 0,
            position_totals: vec![0; instruments_max],
            seq: 0,
            ts: 0,
            large: orders_max * std::mem::size_of::<Order>()
                + levels_max * std::mem::size_of::<Level>()
                >= PREFETCH_ABOVE_BYTES,
            config,
        };
        engine.prefault();
        engine
    }

    /// Touches every page of every table (including the spare capacity of the level arrays)
    /// so that no page fault happens on the hot path: zeroed allocations are otherwise mapped
    /// lazily by the kernel on first write.
    fn prefault(&mut self) {
        /// Writes one element per 4 KiB page, through `black_box` so the store stays.
        fn touch<T: Copy>(v: &mut Vec<T>, filler: T) {
            let step = (4096 / std::mem::size_of::<T>().max(1)).max(1);
            for slot in v.spare_capacity_mut().iter_mut().step_by(step) {
                slot.write(std::hint::black_box(filler));
            }
            for i in (0..v.len()).step_by(step) {
                v[i] = std::hint::black_box(v[i]);
            }
        }
        let key = LevelKey { key: 0, level: NIL };
        let product = self.products[0];
        touch(&mut self.products, product);
        // The `Huge` tables (accounts, positions, orders, id table, levels, price cache) had
        // every element written when they were built.
        touch(&mut self.order_free, NIL);
        touch(&mut self.level_free, NIL);
        for book in &mut self.books {
            for side in book {
                // Fill to capacity and empty again: writes every page of the ring buffer.
                for _ in side.len()..side.capacity() {
                    side.push_back(std::hint::black_box(key));
                }
                side.clear();
            }
        }
        for gaps in &mut self.book_gaps {
            for side in gaps {
                *side = 0;
            }
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The id the next accepted order would get (ids are never reused).
    pub fn next_order_id(&self) -> u64 {
        self.next_order_id
    }

    /// Sequence of the last command processed (0 before the first).
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// Processes one sequenced command, writing every resulting output to `sink`.
    /// Panics if `command.sequence` does not increase (the journal guarantees it does).
    pub fn process<S: Sink + ?Sized>(&mut self, command: &Command, sink: &mut S) {
        assert!(
            command.sequence > self.last_sequence,
            "sequence {} not above {}",
            command.sequence,
            self.last_sequence
        );
        self.last_sequence = command.sequence;
        self.seq = command.sequence;
        self.ts = command.timestamp_ns;
        match command.kind {
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
            } => self.new_order(
                Order {
                    id: 0,
                    client_order_id,
                    price,
                    reserve_price: price,
                    leaves: quantity,
                    cum: 0,
                    quantity,
                    account: account_id,
                    session: session_id,
                    instrument: instrument_id,
                    prev: NIL,
                    next: NIL,
                    level: NIL,
                    side,
                    tif: time_in_force,
                    stp: stp_mode,
                    order_type,
                },
                sink,
            ),
            CommandKind::Cancel {
                session_id,
                account_id,
                client_order_id,
                order_id,
            } => self.cancel(session_id, account_id, client_order_id, order_id, sink),
            CommandKind::Replace {
                session_id,
                account_id,
                client_order_id,
                order_id,
                new_client_order_id,
                new_price,
                new_quantity,
            } => self.replace(
                session_id,
                account_id,
                client_order_id,
                order_id,
                new_client_order_id,
                new_price,
                new_quantity,
                sink,
            ),
            CommandKind::MassCancel { scope, reason } => self.mass_cancel(scope, reason, sink),
            CommandKind::SetTradingStatus {
                instrument_id,
                status,
            } => {
                if !self.instrument_known(instrument_id) {
                    return self.emit_admin_reject(RejectReason::UnknownInstrument, sink);
                }
                self.products[instrument_id as usize].status = status;
                self.emit(
                    sink,
                    Event::TradingStatusChanged {
                        instrument_id,
                        status,
                    },
                );
            }
            CommandKind::SetReferencePrice {
                instrument_id,
                price,
            } => {
                if !self.instrument_known(instrument_id) {
                    return self.emit_admin_reject(RejectReason::UnknownInstrument, sink);
                }
                let tick = self.products[instrument_id as usize].config.tick_size;
                if price <= 0 {
                    return self.emit_admin_reject(RejectReason::PriceNotPositive, sink);
                }
                if price % tick != 0 {
                    return self.emit_admin_reject(RejectReason::PriceOffTick, sink);
                }
                self.set_reference(instrument_id, price);
                self.emit(
                    sink,
                    Event::ReferencePriceSet {
                        instrument_id,
                        price,
                    },
                );
            }
            CommandKind::Deposit {
                account_id,
                asset,
                amount,
            } => self.deposit(account_id, asset, amount, sink),
            CommandKind::Withdraw {
                account_id,
                asset,
                amount,
            } => self.withdraw(account_id, asset, amount, sink),
            CommandKind::SetAccountLimits { account_id, limits } => {
                if !self.account_known(account_id) {
                    return self.emit_admin_reject(RejectReason::UnknownAccount, sink);
                }
                let a = &mut self.accounts[account_id as usize];
                a.limits = limits;
                let (available, reserved) = (a.cash_available, a.cash_reserved);
                self.emit(
                    sink,
                    Event::AccountUpdated {
                        account_id,
                        asset: Asset::Cash,
                        available,
                        reserved,
                    },
                );
            }
            CommandKind::StartTradingDay { trading_day } => {
                self.start_trading_day(trading_day, sink)
            }
        }
    }

    /// Processes a batch of commands (as a journal reader delivers them) with the same outputs
    /// as calling [`Engine::process`] on each in turn, while prefetching, in three stages
    /// (three, two and one command ahead), the memory the next commands will touch: their
    /// account, position, id-table entry, order record, book top, price-cache entry, level and
    /// FIFO neighbours. Only the speed differs. Small engines (tables that fit the caches) skip
    /// the prefetching.
    pub fn process_batch<S: Sink + ?Sized>(&mut self, commands: &[Command], sink: &mut S) {
        self.process_batch_observed(commands, sink, |_| {});
    }

    /// [`Engine::process_batch`], calling `done(i)` after command `i` (and its outputs) is
    /// processed: the per-command service time in batch mode, prefetches for the commands
    /// ahead included, is the time between two calls (the matching bench measures it so).
    #[inline]
    pub fn process_batch_observed<S: Sink + ?Sized>(
        &mut self,
        commands: &[Command],
        sink: &mut S,
        mut done: impl FnMut(usize),
    ) {
        // Tables that fit the caches gain nothing from prefetching, only its instructions.
        if !self.large {
            for (i, c) in commands.iter().enumerate() {
                self.process(c, sink);
                done(i);
            }
            return;
        }
        for i in 0..commands.len() {
            for ahead in 1..=PREFETCH_AHEAD {
                if let Some(c) = commands.get(i + ahead) {
                    self.prefetch_ahead(c, ahead);
                }
            }
            self.process(&commands[i], sink);
            done(i);
        }
    }

    /// Whether this engine prefetches ([`Engine::process_batch`], [`Engine::prefetch_ahead`])
    /// and searches book sides by interpolation: its order and level slabs are larger than
    /// about one core's L2 cache.
    pub fn prefetches(&self) -> bool {
        self.large
    }

    /// The prefetching of [`Engine::process_batch`] for a caller that holds its own window of
    /// upcoming commands (the matching agent decodes journal frames a few ahead): call it,
    /// before each [`Engine::process`], for each command `ahead` = 1 ..= [`PREFETCH_AHEAD`]
    /// positions after the one about to be processed. Each distance prefetches one stage: at
    /// 3 the memory the command's own fields address, at 2 what those records point to, at 1
    /// the FIFO neighbours and levels (each stage reads what the one before brought in). A
    /// hint only, never changing outputs; nothing at all on an engine whose tables fit the
    /// caches.
    #[inline]
    pub fn prefetch_ahead(&self, command: &Command, ahead: usize) {
        if !self.large {
            return;
        }
        match ahead {
            1 => self.prefetch_neighbours(command),
            2 => self.prefetch_dependent(command),
            3 => self.prefetch_direct(command),
            _ => {}
        }
    }

    /// Prefetches what a command's own fields address.
    fn prefetch_direct(&self, c: &Command) {
        match c.kind {
            CommandKind::NewOrder {
                account_id,
                instrument_id,
                ..
            } if account_id < self.config.accounts_max
                && instrument_id < self.config.instruments_max =>
            {
                prefetch(&self.accounts[account_id as usize]);
                prefetch(&self.positions[self.pos_index(account_id, instrument_id)]);
            }
            CommandKind::Cancel {
                order_id,
                account_id,
                ..
            }
            | CommandKind::Replace {
                order_id,
                account_id,
                ..
            } => {
                prefetch(&self.id_table[(order_id & self.id_mask) as usize]);
                if account_id < self.config.accounts_max {
                    prefetch(&self.accounts[account_id as usize]);
                }
            }
            _ => {}
        }
    }

    /// Prefetches one step further: the order record behind an id, the book top.
    fn prefetch_dependent(&self, c: &Command) {
        match c.kind {
            CommandKind::NewOrder {
                instrument_id,
                side,
                price,
                ..
            } if instrument_id < self.config.instruments_max => {
                let instrument = instrument_id as usize;
                if let Some(top) = self.books[instrument][side.opposite() as usize].back() {
                    prefetch(&self.levels[top.level as usize]);
                }
                prefetch(&self.level_cache[self.cache_index(instrument_id, side, price)]);
            }
            CommandKind::Cancel { order_id, .. } | CommandKind::Replace { order_id, .. } => {
                let slot = self.id_table[(order_id & self.id_mask) as usize];
                if slot != NIL {
                    let o = &self.orders[slot as usize];
                    prefetch(o);
                    prefetch((o as *const Order).cast::<u8>().wrapping_add(64));
                }
            }
            _ => {}
        }
    }

    /// Prefetches both ends of a book side's sorted keys, where `search_side` starts (a level
    /// removed or created by the command).
    #[inline]
    fn prefetch_book_ends(&self, instrument: u32, side: Side) {
        let book = &self.books[instrument as usize][side as usize];
        if let (Some(worst), Some(best)) = (book.front(), book.back()) {
            prefetch(worst);
            prefetch(best);
        }
    }

    /// Index of a price's entry in the price -> level cache of one book side.
    #[inline]
    fn cache_index(&self, instrument: u32, side: Side, price: i64) -> usize {
        let book_id = instrument as usize * 2 + side as usize;
        book_id * (self.level_cache_mask as usize + 1)
            + (price as u64 & self.level_cache_mask) as usize
    }

    /// Prefetches the third step: for a cancel or replace, what the order record points to
    /// (its level, its FIFO neighbours, its position, the price-cache entry of a new price);
    /// for a new order, the level its price-cache entry names and that level's tail order.
    fn prefetch_neighbours(&self, c: &Command) {
        match c.kind {
            CommandKind::NewOrder {
                instrument_id,
                side,
                price,
                ..
            } if instrument_id < self.config.instruments_max => {
                self.prefetch_book_ends(instrument_id, side);
                let cached = self.level_cache[self.cache_index(instrument_id, side, price)];
                if cached != NIL {
                    let l = &self.levels[cached as usize];
                    prefetch(l);
                    if l.tail != NIL && (l.tail as usize) < self.orders.len() {
                        prefetch(&self.orders[l.tail as usize].next);
                    }
                }
            }
            CommandKind::Cancel { order_id, .. } | CommandKind::Replace { order_id, .. } => {
                let slot = self.id_table[(order_id & self.id_mask) as usize];
                if slot == NIL {
                    return;
                }
                let o = &self.orders[slot as usize];
                if o.level == NIL {
                    return;
                }
                prefetch(&self.levels[o.level as usize]);
                self.prefetch_book_ends(o.instrument, o.side);
                if o.prev != NIL {
                    prefetch(&self.orders[o.prev as usize].next);
                }
                if o.next != NIL {
                    prefetch(&self.orders[o.next as usize].prev);
                }
                if o.side == Side::Sell {
                    prefetch(&self.positions[self.pos_index(o.account, o.instrument)]);
                }
                if let CommandKind::Replace { new_price, .. } = c.kind {
                    prefetch(&self.level_cache[self.cache_index(o.instrument, o.side, new_price)]);
                }
            }
            _ => {}
        }
    }

    // ----- small helpers -------------------------------------------------------------------

    #[inline]
    fn emit<S: Sink + ?Sized>(&self, sink: &mut S, event: Event) {
        sink.emit(&Output {
            sequence: self.seq,
            timestamp_ns: self.ts,
            event,
        });
    }

    fn emit_admin_reject<S: Sink + ?Sized>(&self, reason: RejectReason, sink: &mut S) {
        self.emit(sink, Event::AdminRejected { reason });
    }

    #[inline]
    fn instrument_known(&self, instrument_id: u32) -> bool {
        instrument_id < self.config.instruments_max
            && self.products[instrument_id as usize].configured
    }

    #[inline]
    fn account_known(&self, account_id: u32) -> bool {
        account_id < self.config.accounts_max && self.accounts[account_id as usize].open
    }

    #[inline]
    pub(crate) fn pos_index(&self, account: u32, instrument: u32) -> usize {
        instrument as usize * self.config.accounts_max as usize + account as usize
    }

    /// The band `[low, high]` around the reference price, or `None` without a reference.
    pub fn band(&self, instrument: u32) -> Option<(i64, i64)> {
        self.products[instrument as usize].band
    }

    /// Computes the band of a product from its reference price.
    pub(crate) fn compute_band(p: &Product) -> Option<(i64, i64)> {
        let reference = p.reference_price;
        if reference <= 0 {
            return None;
        }
        let tick = p.config.tick_size;
        let width = match p.config.band {
            Band::Ticks(n) => i64::from(n).saturating_mul(tick),
            Band::Bps(bps) => {
                let w = i128::from(reference) * i128::from(bps) / 10_000;
                let w = i64::try_from(w).unwrap_or(i64::MAX);
                w / tick * tick
            }
        };
        let low = reference.saturating_sub(width).max(tick);
        let high = reference.saturating_add(width);
        let high = high - high % tick;
        Some((low, high))
    }

    /// Sets the reference price and recomputes the cached band (divisions happen here, once
    /// per trade or admin change, not once per order).
    pub(crate) fn set_reference(&mut self, instrument: u32, price: i64) {
        let p = &mut self.products[instrument as usize];
        if p.reference_price != price {
            p.reference_price = price;
            p.band = Self::compute_band(p);
        }
    }

    /// Notional in price units (price x quantity); `None` on overflow.
    #[inline]
    fn notional(price: i64, quantity: u64) -> Option<i128> {
        // |i64| x u64 < 2^127, so the product always fits: no overflow check needed.
        Some(i128::from(price) * i128::from(quantity))
    }

    fn side_book(&self, instrument: u32, side: Side) -> &VecDeque<LevelKey> {
        &self.books[instrument as usize][side as usize]
    }

    pub(crate) fn level_exists_pub(&self, instrument: u32, side: Side, price: i64) -> bool {
        self.level_exists(instrument, side, price)
    }

    fn level_exists(&self, instrument: u32, side: Side, price: i64) -> bool {
        let key = key_of(side, price);
        let book = self.side_book(instrument, side);
        matches!(search_side(book, key, self.large), Ok(i) if book[i].level != NIL)
    }

    /// Live levels of a side (gaps not counted).
    #[inline(always)]
    fn live_levels(&self, instrument: u32, side: Side) -> usize {
        self.side_book(instrument, side).len()
            - self.book_gaps[instrument as usize][side as usize] as usize
    }

    /// Would a new level be needed at `price` on a side that has no room left?
    #[inline(always)]
    fn level_capacity_exceeded(&self, instrument: u32, side: Side, price: i64) -> bool {
        self.live_levels(instrument, side) >= self.config.levels_per_side_max as usize
            && !self.level_exists(instrument, side, price)
    }

    #[inline(always)]
    fn lookup(&self, order_id: u64) -> Result<u32, RejectReason> {
        if order_id == 0 || order_id >= self.next_order_id {
            return Err(RejectReason::UnknownOrder);
        }
        let slot = self.id_table[(order_id & self.id_mask) as usize];
        if slot == NIL || self.orders[slot as usize].id != order_id {
            return Err(RejectReason::AlreadyClosed);
        }
        Ok(slot)
    }

    /// Next order id whose table entry is free. Ids increase strictly; one is skipped only
    /// when a live order older than the window still holds its entry.
    fn assign_order_id(&mut self) -> u64 {
        loop {
            let id = self.next_order_id;
            self.next_order_id += 1;
            if self.id_table[(id & self.id_mask) as usize] == NIL {
                return id;
            }
        }
    }

    // ----- risk ----------------------------------------------------------------------------

    /// The checks shared by new orders and replaces, in their fixed order.
    /// `quantity` is the order size, `open_quantity` what would be reserved / counted today.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn check_risk(
        &self,
        account: u32,
        instrument: u32,
        side: Side,
        reserve_price: i64,
        quantity: u64,
        open_quantity: u64,
        already_reserved_cash: i128,
        already_reserved_position: u64,
    ) -> Result<i128, RejectReason> {
        let a = &self.accounts[account as usize];
        if quantity > a.limits.order_quantity_max {
            return Err(RejectReason::OrderQuantityAboveLimit);
        }
        let order_notional =
            Self::notional(reserve_price, quantity).ok_or(RejectReason::NotionalOverflow)?;
        if order_notional > a.limits.order_notional_max {
            return Err(RejectReason::OrderNotionalAboveLimit);
        }
        let open_notional =
            Self::notional(reserve_price, open_quantity).ok_or(RejectReason::NotionalOverflow)?;
        if a.daily_quantity.saturating_add(open_quantity) > a.limits.daily_quantity_max {
            return Err(RejectReason::DailyQuantityLimit);
        }
        if a.daily_notional.saturating_add(open_notional) > a.limits.daily_notional_max {
            return Err(RejectReason::DailyNotionalLimit);
        }
        match side {
            Side::Buy => {
                if open_notional - already_reserved_cash > a.cash_available {
                    return Err(RejectReason::InsufficientCash);
                }
            }
            Side::Sell => {
                let extra = open_quantity.saturating_sub(already_reserved_position);
                // An order that needs no more position than it already reserves passes without
                // reading it (a position is never negative). That is every move that keeps its
                // quantity: the position cell is often the one cache miss to main memory such
                // a command would otherwise take (perf: the slowest load in `process`).
                if extra > 0 {
                    let pos = &self.positions[self.pos_index(account, instrument)];
                    debug_assert!(pos.available >= 0);
                    if i128::from(extra) > i128::from(pos.available) {
                        return Err(RejectReason::InsufficientPosition);
                    }
                }
            }
        }
        Ok(open_notional)
    }

    /// Moves `n` of an account's cash from available to reserved (negative: back).
    #[inline(always)]
    fn shift_cash(&mut self, account: u32, n: i128) {
        let a = &mut self.accounts[account as usize];
        a.cash_available -= n;
        a.cash_reserved += n;
        debug_assert!(a.cash_available >= 0 && a.cash_reserved >= 0);
    }

    /// Moves `q` of a position from available to reserved (negative: back).
    #[inline(always)]
    fn shift_position(&mut self, account: u32, instrument: u32, q: i64) {
        let i = self.pos_index(account, instrument);
        let p = &mut self.positions[i];
        p.available -= q;
        p.reserved += q;
        debug_assert!(p.available >= 0 && p.reserved >= 0);
    }

    /// Moves funds between available and reserved for an order's open quantity.
    /// `sign = 1` reserves, `-1` releases.
    #[inline(always)]
    fn reserve(&mut self, o: &Order, open: u64, sign: i64) {
        match o.side {
            Side::Buy => self.shift_cash(
                o.account,
                i128::from(o.reserve_price) * i128::from(open) * i128::from(sign),
            ),
            Side::Sell => self.shift_position(o.account, o.instrument, open as i64 * sign),
        }
    }

    /// Moves an order's reservation from its old terms to its new ones in one update.
    #[inline(always)]
    fn rereserve(&mut self, old: &Order, new: &Order) {
        match old.side {
            Side::Buy => self.shift_cash(
                old.account,
                i128::from(new.reserve_price) * i128::from(new.leaves)
                    - i128::from(old.reserve_price) * i128::from(old.leaves),
            ),
            Side::Sell => {
                let delta = new.leaves as i64 - old.leaves as i64;
                // As in `check_risk`: an unchanged open quantity leaves the position untouched.
                if delta != 0 {
                    self.shift_position(old.account, old.instrument, delta);
                }
            }
        }
    }

    // ----- new order -----------------------------------------------------------------------

    #[inline(always)]
    fn validate_new(&self, o: &mut Order) -> Result<i64, RejectReason> {
        if !self.instrument_known(o.instrument) {
            return Err(RejectReason::UnknownInstrument);
        }
        if !self.account_known(o.account) {
            return Err(RejectReason::UnknownAccount);
        }
        let p = &self.products[o.instrument as usize];
        if p.status == TradingStatus::Halted {
            return Err(RejectReason::InstrumentHalted);
        }
        Self::check_quantity(&p.config, o.quantity)?;
        let band = self.band(o.instrument);
        let walk_limit = match o.order_type {
            OrderType::Limit => {
                Self::check_price(&p.config, band, o.price)?;
                o.reserve_price = o.price;
                o.price
            }
            OrderType::Market => {
                let (low, high) = band.ok_or(RejectReason::NoReferencePrice)?;
                let edge = match o.side {
                    Side::Buy => high,
                    Side::Sell => low,
                };
                o.price = 0;
                o.reserve_price = edge;
                edge
            }
        };
        self.check_risk(
            o.account,
            o.instrument,
            o.side,
            o.reserve_price,
            o.quantity,
            o.quantity,
            0,
            0,
        )?;
        if o.order_type == OrderType::Limit && o.tif.may_rest() {
            if self.order_free_count == 0 {
                return Err(RejectReason::OrderCapacity);
            }
            if self.level_capacity_exceeded(o.instrument, o.side, o.price) {
                return Err(RejectReason::LevelCapacity);
            }
        }
        Ok(walk_limit)
    }

    fn check_quantity(p: &ProductConfig, quantity: u64) -> Result<(), RejectReason> {
        if quantity == 0 {
            return Err(RejectReason::ZeroQuantity);
        }
        // The modulo is skipped for the common unit lot (an integer division costs ~30 cycles).
        if p.lot_size != 1 && quantity % p.lot_size != 0 {
            return Err(RejectReason::QuantityOffLot);
        }
        if quantity > p.quantity_max {
            return Err(RejectReason::QuantityAboveInstrumentMax);
        }
        Ok(())
    }

    fn check_price(
        p: &ProductConfig,
        band: Option<(i64, i64)>,
        price: i64,
    ) -> Result<(), RejectReason> {
        if price <= 0 {
            return Err(RejectReason::PriceNotPositive);
        }
        if p.tick_size != 1 && price % p.tick_size != 0 {
            return Err(RejectReason::PriceOffTick);
        }
        if let Some((low, high)) = band {
            if price < low || price > high {
                return Err(RejectReason::PriceOutsideBand);
            }
        }
        Ok(())
    }

    fn new_order<S: Sink + ?Sized>(&mut self, mut o: Order, sink: &mut S) {
        let walk_limit = match self.validate_new(&mut o) {
            Ok(w) => w,
            Err(reason) => {
                self.emit(
                    sink,
                    Event::Rejected {
                        session_id: o.session,
                        account_id: o.account,
                        client_order_id: o.client_order_id,
                        instrument_id: o.instrument,
                        reason,
                    },
                );
                return;
            }
        };
        o.id = self.assign_order_id();
        self.reserve(&o, o.quantity, 1);
        self.emit(
            sink,
            Event::Accepted {
                order_id: o.id,
                session_id: o.session,
                account_id: o.account,
                client_order_id: o.client_order_id,
                instrument_id: o.instrument,
                side: o.side,
                order_type: o.order_type,
                time_in_force: o.tif,
                price: o.price,
                quantity: o.quantity,
            },
        );
        if o.tif == TimeInForce::Fok && !self.fillable(&o, walk_limit) {
            self.finish_taker(o, CancelReason::FokNotFillable, sink);
            return;
        }
        self.execute(
            Taker {
                order: o,
                walk_limit,
            },
            sink,
        );
    }

    /// FOK pre-check: can `o` fill completely under the same rules, without mutating?
    fn fillable(&self, o: &Order, walk_limit: i64) -> bool {
        let book = self.side_book(o.instrument, o.side.opposite());
        let mut sum: u64 = 0;
        for k in book.iter().rev().filter(|k| k.level != NIL) {
            let level = &self.levels[k.level as usize];
            if !crosses(o.side, walk_limit, level.price) {
                return false;
            }
            let mut slot = level.head;
            while slot != NIL {
                let m = &self.orders[slot as usize];
                if o.stp != StpMode::None && m.account == o.account {
                    if o.stp != StpMode::CancelResting {
                        return false;
                    }
                } else {
                    sum += m.leaves;
                    if sum >= o.leaves {
                        return true;
                    }
                }
                slot = m.next;
            }
        }
        false
    }

    /// Matches a taker, then rests or cancels what is left.
    fn execute<S: Sink + ?Sized>(&mut self, mut t: Taker, sink: &mut S) {
        let stp_killed = self.match_taker(&mut t, sink);
        let o = t.order;
        if o.leaves == 0 {
            return;
        }
        if stp_killed {
            self.finish_taker(o, CancelReason::SelfTrade, sink);
        } else if o.order_type == OrderType::Market {
            self.finish_taker(o, CancelReason::MarketRemainder, sink);
        } else if o.tif == TimeInForce::Ioc {
            self.finish_taker(o, CancelReason::IocRemainder, sink);
        } else {
            assert!(
                o.tif != TimeInForce::Fok,
                "FOK left open after its pre-check"
            );
            self.rest(&o, sink);
        }
    }

    /// Cancels the open rest of an order that is not on the book.
    fn finish_taker<S: Sink + ?Sized>(&mut self, o: Order, reason: CancelReason, sink: &mut S) {
        self.reserve(&o, o.leaves, -1);
        self.emit(
            sink,
            Event::Cancelled {
                order_id: o.id,
                account_id: o.account,
                session_id: o.session,
                client_order_id: o.client_order_id,
                instrument_id: o.instrument,
                cancelled_quantity: o.leaves,
                cumulative_quantity: o.cum,
                reason,
            },
        );
    }

    /// Returns true when self-trade prevention killed the incoming order.
    fn match_taker<S: Sink + ?Sized>(&mut self, t: &mut Taker, sink: &mut S) -> bool {
        let side = t.order.side;
        let opposite = side.opposite() as usize;
        let instrument = t.order.instrument as usize;
        while t.order.leaves > 0 {
            let Some(top) = self.books[instrument][opposite].back() else {
                break;
            };
            let level_index = top.level;
            let level_price = self.levels[level_index as usize].price;
            if !crosses(side, t.walk_limit, level_price) {
                break;
            }
            let maker_slot = self.levels[level_index as usize].head;
            let maker = self.orders[maker_slot as usize];
            if maker.next != NIL {
                // The next maker if this one fills: its record is otherwise only read after this
                // fill's stores to the level (a cache miss per fill on a quiet book).
                prefetch(&self.orders[maker.next as usize]);
            }
            if t.order.stp != StpMode::None && maker.account == t.order.account {
                match t.order.stp {
                    StpMode::CancelResting => {
                        self.cancel_resting(maker_slot, CancelReason::SelfTrade, sink);
                        continue;
                    }
                    StpMode::CancelIncoming => return true,
                    StpMode::CancelBoth => {
                        self.cancel_resting(maker_slot, CancelReason::SelfTrade, sink);
                        return true;
                    }
                    StpMode::None => unreachable!(),
                }
            }
            let quantity = t.order.leaves.min(maker.leaves);
            self.trade(&mut t.order, maker_slot, level_index, quantity, sink);
        }
        false
    }

    fn trade<S: Sink + ?Sized>(
        &mut self,
        taker: &mut Order,
        maker_slot: u32,
        level_index: u32,
        quantity: u64,
        sink: &mut S,
    ) {
        let price = self.levels[level_index as usize].price;
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        taker.leaves -= quantity;
        taker.cum += quantity;
        let maker = {
            let m = &mut self.orders[maker_slot as usize];
            m.leaves -= quantity;
            m.cum += quantity;
            *m
        };
        let (buyer, seller) = match taker.side {
            Side::Buy => (*taker, maker),
            Side::Sell => (maker, *taker),
        };
        self.settle(&buyer, &seller, price, quantity);
        self.set_reference(taker.instrument, price);

        {
            let level = &mut self.levels[level_index as usize];
            level.quantity -= quantity;
        }
        if maker.leaves == 0 {
            self.unlink(maker_slot);
        }
        let (level_quantity, level_order_count) = self.level_state(maker.level);
        self.emit(
            sink,
            Event::Trade {
                instrument_id: taker.instrument,
                trade_id,
                price,
                quantity,
                aggressor_side: taker.side,
                buy_order_id: buyer.id,
                sell_order_id: seller.id,
            },
        );
        self.emit(
            sink,
            Event::OrderExecuted {
                instrument_id: maker.instrument,
                order_id: maker.id,
                side: maker.side,
                price,
                quantity,
                leaves_quantity: maker.leaves,
                trade_id,
                level_quantity,
                level_order_count,
            },
        );
        for (o, contra, liquidity) in [
            (&*taker, &maker, Liquidity::Taker),
            (&maker, &*taker, Liquidity::Maker),
        ] {
            let exec_id = self.next_exec_id;
            self.next_exec_id += 1;
            self.emit(
                sink,
                Event::Filled {
                    order_id: o.id,
                    account_id: o.account,
                    session_id: o.session,
                    client_order_id: o.client_order_id,
                    instrument_id: o.instrument,
                    side: o.side,
                    exec_id,
                    trade_id,
                    price,
                    quantity,
                    leaves_quantity: o.leaves,
                    cumulative_quantity: o.cum,
                    liquidity,
                    contra_order_id: contra.id,
                    contra_account_id: contra.account,
                },
            );
        }
    }

    /// A replace's `Replaced`, then the book's `OrderDeleted` of the order at its old price
    /// (taken out of its old level already).
    #[inline(always)]
    fn emit_replaced_and_deleted<S: Sink + ?Sized>(
        &self,
        sink: &mut S,
        replaced: Event,
        o: &Order,
        order_id: u64,
        old: &Order,
    ) {
        let (level_quantity, level_order_count) = self.level_state(old.level);
        self.emit(sink, replaced);
        self.emit(
            sink,
            Event::OrderDeleted {
                instrument_id: o.instrument,
                order_id,
                side: o.side,
                price: old.price,
                level_quantity,
                level_order_count,
            },
        );
    }

    /// Level quantity and count after a change; a freed level reads as empty.
    fn level_state(&self, level_index: u32) -> (u64, u32) {
        let l = &self.levels[level_index as usize];
        (l.quantity, l.count)
    }

    #[inline(always)]
    fn settle(&mut self, buyer: &Order, seller: &Order, price: i64, quantity: u64) {
        let q = i128::from(quantity);
        let paid = i128::from(price) * q;
        {
            let reserved = i128::from(buyer.reserve_price) * q;
            let b = &mut self.accounts[buyer.account as usize];
            b.cash_reserved -= reserved;
            b.cash_available += reserved - paid;
            b.daily_quantity += quantity;
            b.daily_notional += paid;
            debug_assert!(b.cash_reserved >= 0 && b.cash_available >= 0);
        }
        let bi = self.pos_index(buyer.account, buyer.instrument);
        self.positions[bi].available += quantity as i64;
        {
            let s = &mut self.accounts[seller.account as usize];
            s.cash_available += paid;
            s.daily_quantity += quantity;
            s.daily_notional += paid;
        }
        let si = self.pos_index(seller.account, seller.instrument);
        self.positions[si].reserved -= quantity as i64;
        debug_assert!(self.positions[si].reserved >= 0);
    }

    // ----- book structure ------------------------------------------------------------------

    /// Puts an order at the back of its level (creating the level if needed); emits OrderAdded.
    fn rest<S: Sink + ?Sized>(&mut self, o: &Order, sink: &mut S) {
        let (level_quantity, level_order_count) = self.link_back(o);
        self.emit(
            sink,
            Event::OrderAdded {
                instrument_id: o.instrument,
                order_id: o.id,
                side: o.side,
                price: o.price,
                quantity: o.leaves,
                level_quantity,
                level_order_count,
            },
        );
    }

    /// Links an order at the back of its level; returns the level's new quantity and count.
    pub(crate) fn link_back(&mut self, o: &Order) -> (u64, u32) {
        let slot = self.take_order_slot(o.instrument);
        let state = self.attach(slot, o);
        let entry = &mut self.id_table[(o.id & self.id_mask) as usize];
        assert!(*entry == NIL, "order id {} collides in the id table", o.id);
        *entry = slot;
        state
    }

    /// The second half of [`Engine::link_back`]: stores `o` in `slot` at the back of the level
    /// of its price, creating the level if needed. Returns the level's new quantity and count.
    #[inline(always)]
    fn attach(&mut self, slot: u32, o: &Order) -> (u64, u32) {
        let instrument = o.instrument as usize;
        let side = o.side as usize;
        let key = key_of(o.side, o.price);
        let book_id = (instrument * 2 + side) as u32;
        let cache_index = (book_id as usize) * (self.level_cache_mask as usize + 1)
            + (o.price as u64 & self.level_cache_mask) as usize;
        let cached = self.level_cache[cache_index];
        let hit = cached != NIL && {
            let l = &self.levels[cached as usize];
            l.book == book_id && l.price == o.price && l.count > 0
        };
        let interpolate = self.large;
        let book = &mut self.books[instrument][side];
        let found = if hit {
            Ok(usize::MAX)
        } else {
            search_side(book, key, interpolate)
        };
        let level_index = match found {
            Ok(usize::MAX) => cached,
            Ok(i) if book[i].level != NIL => {
                self.level_cache[cache_index] = book[i].level;
                book[i].level
            }
            // A new level: in a gap left at this price, or inserted.
            found => {
                let gaps = &mut self.book_gaps[instrument][side];
                let capacity = self.config.levels_per_side_max as usize;
                assert!(book.len() - (*gaps as usize) < capacity);
                let li = Self::take_level(
                    &self.levels,
                    &mut self.level_free,
                    &mut self.level_free_heads,
                    instrument,
                );
                self.levels[li as usize] = Level {
                    price: o.price,
                    quantity: 0,
                    count: 0,
                    head: NIL,
                    tail: NIL,
                    book: book_id,
                };
                match found {
                    Ok(i) => {
                        book[i].level = li;
                        *gaps -= 1;
                    }
                    Err(i) => insert_key(book, gaps, i, LevelKey { key, level: li }, capacity),
                }
                self.level_cache[cache_index] = li;
                li
            }
        };
        let level = &mut self.levels[level_index as usize];
        let tail = level.tail;
        if tail == NIL {
            level.head = slot;
        } else {
            self.orders[tail as usize].next = slot;
        }
        level.tail = slot;
        level.count += 1;
        level.quantity += o.leaves;
        let state = (level.quantity, level.count);
        let stored = &mut self.orders[slot as usize];
        *stored = *o;
        stored.level = level_index;
        stored.prev = tail;
        stored.next = NIL;
        state
    }

    /// A free order slot for an order of `instrument`: one it freed before, else a never-used
    /// one, else (all slots have been used once) one freed by another instrument, found by a
    /// scan over at most `instruments_max` list heads (only when the engine is nearly full).
    #[inline(always)]
    fn take_order_slot(&mut self, instrument: u32) -> u32 {
        assert!(self.order_free_count > 0, "order capacity checked before");
        self.order_free_count -= 1;
        let own = self.order_free_heads[instrument as usize];
        let owner = if own != NIL {
            instrument as usize
        } else if let Some(slot) = self.order_free.pop() {
            return slot;
        } else {
            self.order_free_heads
                .iter()
                .position(|&h| h != NIL)
                .expect("a free slot is on some instrument's list")
        };
        let slot = self.order_free_heads[owner];
        self.order_free_heads[owner] = self.orders[slot as usize].next;
        slot
    }

    /// Hands a slot (whose order is no longer linked or in the id table) back to the free
    /// list of its order's instrument.
    #[inline(always)]
    fn free_order_slot(&mut self, slot: u32) {
        let instrument = self.orders[slot as usize].instrument as usize;
        let stored = &mut self.orders[slot as usize];
        stored.id = 0;
        stored.level = NIL;
        stored.prev = NIL;
        stored.next = self.order_free_heads[instrument];
        self.order_free_heads[instrument] = slot;
        self.order_free_count += 1;
        debug_assert!(self.order_free_count as usize <= self.orders.len());
    }

    /// A free level for a book of `instrument`, preferring the levels it freed (as for order
    /// slots). Levels never outnumber orders, so one is always free.
    /// (An associated function so that `attach` can call it while it borrows a book.)
    #[inline(always)]
    fn take_level(
        levels: &Table<Level>,
        level_free: &mut Vec<u32>,
        level_free_heads: &mut [u32],
        instrument: usize,
    ) -> u32 {
        let own = level_free_heads[instrument];
        let owner = if own != NIL {
            instrument
        } else if let Some(level) = level_free.pop() {
            return level;
        } else {
            level_free_heads
                .iter()
                .position(|&h| h != NIL)
                .expect("levels never outnumber orders")
        };
        let level = level_free_heads[owner];
        level_free_heads[owner] = levels[level as usize].head;
        level
    }

    /// Hands an emptied level (count and quantity 0, out of its book) back to its instrument.
    #[inline(always)]
    fn free_level(&mut self, level: u32, instrument: usize) {
        let l = &mut self.levels[level as usize];
        debug_assert!(l.count == 0 && l.quantity == 0);
        l.tail = NIL;
        l.head = self.level_free_heads[instrument];
        self.level_free_heads[instrument] = level;
    }

    /// Takes an order out of its level and frees its slot; the level's quantity must already
    /// exclude the order's open quantity. Removes the level when it empties.
    fn unlink(&mut self, slot: u32) {
        let id = self.detach(slot);
        self.id_table[(id & self.id_mask) as usize] = NIL;
        self.free_order_slot(slot);
    }

    /// The first half of [`Engine::unlink`]: takes the order out of its level's FIFO (removing
    /// the level when it empties) but keeps its slot and id entry. Returns the order id.
    #[inline(always)]
    fn detach(&mut self, slot: u32) -> u64 {
        let o = &self.orders[slot as usize];
        let (id, prev, next, level_index) = (o.id, o.prev, o.next, o.level);
        let (side, price, instrument) = (o.side, o.price, o.instrument);
        if prev == NIL {
            self.levels[level_index as usize].head = next;
        } else {
            self.orders[prev as usize].next = next;
        }
        if next == NIL {
            self.levels[level_index as usize].tail = prev;
        } else {
            self.orders[next as usize].prev = prev;
        }
        let level = &mut self.levels[level_index as usize];
        level.count -= 1;
        if level.count == 0 {
            debug_assert!(level.quantity == 0);
            let key = key_of(side, price);
            let interpolate = self.large;
            let book = &mut self.books[instrument as usize][side as usize];
            let i =
                search_side(book, key, interpolate).expect("level of a live order is in its book");
            remove_key(
                book,
                &mut self.book_gaps[instrument as usize][side as usize],
                i,
            );
            self.free_level(level_index, instrument as usize);
        }
        id
    }

    /// Removes a resting order, releasing its reservation; emits Cancelled and OrderDeleted.
    fn cancel_resting<S: Sink + ?Sized>(&mut self, slot: u32, reason: CancelReason, sink: &mut S) {
        let o = self.orders[slot as usize];
        self.reserve(&o, o.leaves, -1);
        self.levels[o.level as usize].quantity -= o.leaves;
        self.unlink(slot);
        let (level_quantity, level_order_count) = self.level_state(o.level);
        self.emit(
            sink,
            Event::Cancelled {
                order_id: o.id,
                account_id: o.account,
                session_id: o.session,
                client_order_id: o.client_order_id,
                instrument_id: o.instrument,
                cancelled_quantity: o.leaves,
                cumulative_quantity: o.cum,
                reason,
            },
        );
        self.emit(
            sink,
            Event::OrderDeleted {
                instrument_id: o.instrument,
                order_id: o.id,
                side: o.side,
                price: o.price,
                level_quantity,
                level_order_count,
            },
        );
    }

    // ----- cancel, replace, mass cancel ----------------------------------------------------

    fn cancel<S: Sink + ?Sized>(
        &mut self,
        session_id: u32,
        account_id: u32,
        client_order_id: u64,
        order_id: u64,
        sink: &mut S,
    ) {
        let checked = self.lookup(order_id).and_then(|slot| {
            if self.orders[slot as usize].account == account_id {
                Ok(slot)
            } else {
                Err(RejectReason::NotOwner)
            }
        });
        match checked {
            Ok(slot) => self.cancel_resting(slot, CancelReason::User, sink),
            Err(reason) => self.cancel_reject(
                session_id,
                account_id,
                client_order_id,
                order_id,
                false,
                reason,
                sink,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn cancel_reject<S: Sink + ?Sized>(
        &self,
        session_id: u32,
        account_id: u32,
        client_order_id: u64,
        order_id: u64,
        is_replace: bool,
        reason: RejectReason,
        sink: &mut S,
    ) {
        self.emit(
            sink,
            Event::CancelRejected {
                session_id,
                account_id,
                client_order_id,
                order_id,
                is_replace,
                reason,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn replace<S: Sink + ?Sized>(
        &mut self,
        session_id: u32,
        account_id: u32,
        client_order_id: u64,
        order_id: u64,
        new_client_order_id: u64,
        new_price: i64,
        new_quantity: u64,
        sink: &mut S,
    ) {
        let checked = self.lookup(order_id).and_then(|slot| {
            let o = &self.orders[slot as usize];
            if o.account != account_id {
                return Err(RejectReason::NotOwner);
            }
            let (instrument, side) = (o.instrument, o.side);
            let p = &self.products[instrument as usize];
            if p.status == TradingStatus::Halted {
                return Err(RejectReason::InstrumentHalted);
            }
            Self::check_quantity(&p.config, new_quantity)?;
            if new_quantity <= o.cum {
                return Err(RejectReason::QuantityBelowFilled);
            }
            Self::check_price(&p.config, self.band(instrument), new_price)?;
            let new_leaves = new_quantity - o.cum;
            self.check_risk(
                o.account,
                instrument,
                side,
                new_price,
                new_quantity,
                new_leaves,
                i128::from(o.price) * i128::from(o.leaves),
                o.leaves,
            )?;
            let keeps_priority = new_price == o.price && new_leaves <= o.leaves;
            if !keeps_priority && self.level_capacity_exceeded(instrument, side, new_price) {
                return Err(RejectReason::LevelCapacity);
            }
            Ok((slot, new_leaves, keeps_priority))
        });
        let (slot, new_leaves, keeps_priority) = match checked {
            Ok(v) => v,
            Err(reason) => {
                self.cancel_reject(
                    session_id,
                    account_id,
                    client_order_id,
                    order_id,
                    true,
                    reason,
                    sink,
                );
                return;
            }
        };
        let old = self.orders[slot as usize];
        let mut o = old;
        o.price = new_price;
        o.reserve_price = new_price;
        o.leaves = new_leaves;
        o.quantity = new_quantity;
        o.client_order_id = new_client_order_id;
        self.rereserve(&old, &o);
        let replaced = Event::Replaced {
            order_id,
            account_id,
            session_id,
            client_order_id: new_client_order_id,
            orig_client_order_id: old.client_order_id,
            instrument_id: o.instrument,
            price: new_price,
            leaves_quantity: new_leaves,
            cumulative_quantity: o.cum,
            priority_kept: keeps_priority,
        };
        if keeps_priority {
            let level = &mut self.levels[old.level as usize];
            level.quantity -= old.leaves - new_leaves;
            let (level_quantity, level_order_count) = (level.quantity, level.count);
            self.orders[slot as usize] = o;
            self.emit(sink, replaced);
            self.emit(
                sink,
                Event::OrderModified {
                    instrument_id: o.instrument,
                    order_id,
                    side: o.side,
                    price: o.price,
                    quantity: new_leaves,
                    level_quantity,
                    level_order_count,
                },
            );
            return;
        }
        let instrument = o.instrument as usize;
        // The opposite best price is read from its key (price or -price), not from its level:
        // one dependent cache miss less on a quiet book.
        let opposite = o.side.opposite();
        let crossing = match self.books[instrument][opposite as usize].back() {
            Some(top) => {
                // key_of is its own inverse: the key of a price gives the price back.
                debug_assert_eq!(
                    key_of(opposite, top.key),
                    self.levels[top.level as usize].price
                );
                crosses(o.side, new_price, key_of(opposite, top.key))
            }
            None => false,
        };
        if !crossing
            && self.levels[old.level as usize].count == 1
            && self.move_alone(slot, &old, &o)
        {
            self.emit(sink, replaced);
            self.emit(
                sink,
                Event::OrderDeleted {
                    instrument_id: o.instrument,
                    order_id,
                    side: o.side,
                    price: old.price,
                    level_quantity: 0,
                    level_order_count: 0,
                },
            );
            self.emit(
                sink,
                Event::OrderAdded {
                    instrument_id: o.instrument,
                    order_id,
                    side: o.side,
                    price: o.price,
                    quantity: o.leaves,
                    level_quantity: o.leaves,
                    level_order_count: 1,
                },
            );
            return;
        }
        self.levels[old.level as usize].quantity -= old.leaves;
        if !crossing {
            // Delete + add without the taker machinery: nothing can match, so the order goes
            // straight to the back of its new level. The general path below would free the
            // slot, the id entry and (when it empties) the old level and take the same ones
            // straight back, so the state is the same; the slot and id entry simply stay.
            self.detach(slot);
            self.emit_replaced_and_deleted(sink, replaced, &o, order_id, &old);
            let (level_quantity, level_order_count) = self.attach(slot, &o);
            self.emit(
                sink,
                Event::OrderAdded {
                    instrument_id: o.instrument,
                    order_id,
                    side: o.side,
                    price: o.price,
                    quantity: o.leaves,
                    level_quantity,
                    level_order_count,
                },
            );
            return;
        }
        self.unlink(slot);
        self.emit_replaced_and_deleted(sink, replaced, &o, order_id, &old);
        o.prev = NIL;
        o.next = NIL;
        o.level = NIL;
        self.execute(
            Taker {
                order: o,
                walk_limit: new_price,
            },
            sink,
        );
    }

    /// Fast path of a replace that loses priority: when the order is alone at its level, the
    /// new price does not cross the opposite side (the caller checks) and no level exists at
    /// the new price, the
    /// level is re-priced in place and moved to its new rank by rotating only the levels it
    /// jumps over (none when it stays between the same neighbours), instead of a removal and an
    /// insertion that each shift every better level. Observable behaviour (and the resulting
    /// state: the general path would free and immediately reuse the same slot and level) is
    /// that of delete + add; returns false when the general path must run.
    fn move_alone(&mut self, slot: u32, old: &Order, new: &Order) -> bool {
        let level_index = old.level;
        if self.levels[level_index as usize].count != 1 {
            return false;
        }
        let instrument = old.instrument as usize;
        let interpolate = self.large;
        let book = &mut self.books[instrument][old.side as usize];
        let old_key = key_of(old.side, old.price);
        let new_key = key_of(old.side, new.price);
        let i =
            search_side(book, old_key, interpolate).expect("level of a live order is in its book");
        // Where the new key would go in the book as it is (old key included); keys are unique.
        let Err(at) = search_near(book, new_key, i) else {
            return false;
        };
        let moved = book[i].level;
        if new_key > old_key {
            // Better price: the level moves up past the levels with keys in (old, new), which
            // are at i + 1 .. at.
            for j in i..at - 1 {
                book[j] = book[j + 1];
            }
            book[at - 1] = LevelKey {
                key: new_key,
                level: moved,
            };
        } else if new_key < old_key {
            // Worse price: the level moves down past the levels with keys in (new, old), which
            // are at at .. i.
            for j in (at..i).rev() {
                book[j + 1] = book[j];
            }
            book[at] = LevelKey {
                key: new_key,
                level: moved,
            };
        }
        // Moving an end level inwards can bring a gap to the end.
        trim_gaps(book, &mut self.book_gaps[instrument][old.side as usize]);
        let level = &mut self.levels[level_index as usize];
        debug_assert!(level.head == slot && level.tail == slot);
        level.price = new.price;
        level.quantity = new.leaves;
        let book_id = level.book as usize;
        self.orders[slot as usize] = *new;
        let cache_index = book_id * (self.level_cache_mask as usize + 1)
            + (new.price as u64 & self.level_cache_mask) as usize;
        self.level_cache[cache_index] = level_index;
        true
    }

    /// Calls `f` on every resting order in the fixed order: instruments ascending, bids then
    /// asks, levels best first, FIFO within a level. `f` returns whether to cancel the order.
    fn cancel_where<S: Sink + ?Sized>(
        &mut self,
        instruments: std::ops::Range<u32>,
        reason: CancelReason,
        sink: &mut S,
        keep: impl Fn(&Order) -> bool,
    ) -> u32 {
        let mut cancelled = 0;
        for instrument in instruments {
            for side in [Side::Buy, Side::Sell] {
                let mut i = self.books[instrument as usize][side as usize].len();
                loop {
                    // Emptying a level pops it at the top (with the gaps under it) or leaves a
                    // gap: the entries below keep their indices, fewer may be left.
                    i = i.min(self.books[instrument as usize][side as usize].len());
                    if i == 0 {
                        break;
                    }
                    i -= 1;
                    let level_index = self.books[instrument as usize][side as usize][i].level;
                    if level_index == NIL {
                        continue;
                    }
                    let mut slot = self.levels[level_index as usize].head;
                    while slot != NIL {
                        let next = self.orders[slot as usize].next;
                        if !keep(&self.orders[slot as usize]) {
                            self.cancel_resting(slot, reason, sink);
                            cancelled += 1;
                        }
                        slot = next;
                    }
                }
            }
        }
        cancelled
    }

    fn mass_cancel<S: Sink + ?Sized>(
        &mut self,
        scope: MassCancelScope,
        reason: MassCancelReason,
        sink: &mut S,
    ) {
        let all = 0..self.config.instruments_max;
        let reason_code = CancelReason::from_mass(reason);
        let cancelled = match scope {
            MassCancelScope::Session(s) => {
                self.cancel_where(all, reason_code, sink, |o| o.session != s)
            }
            MassCancelScope::Account(a) => {
                self.cancel_where(all, reason_code, sink, |o| o.account != a)
            }
            MassCancelScope::Instrument(i) => {
                let range = if i < self.config.instruments_max {
                    i..i + 1
                } else {
                    0..0
                };
                self.cancel_where(range, reason_code, sink, |_| false)
            }
            MassCancelScope::All => self.cancel_where(all, reason_code, sink, |_| false),
        };
        self.emit(
            sink,
            Event::MassCancelCompleted {
                scope,
                cancelled_count: cancelled,
            },
        );
    }

    fn start_trading_day<S: Sink + ?Sized>(&mut self, trading_day: u32, sink: &mut S) {
        self.trading_day = trading_day;
        for a in self.accounts.iter_mut() {
            a.daily_quantity = 0;
            a.daily_notional = 0;
        }
        self.emit(sink, Event::TradingDayStarted { trading_day });
        let all = 0..self.config.instruments_max;
        self.cancel_where(all, CancelReason::DayExpiry, sink, |o| {
            o.tif != TimeInForce::Day
        });
    }

    // ----- funds admin ---------------------------------------------------------------------

    fn deposit<S: Sink + ?Sized>(
        &mut self,
        account_id: u32,
        asset: Asset,
        amount: i128,
        sink: &mut S,
    ) {
        if account_id >= self.config.accounts_max {
            return self.emit_admin_reject(RejectReason::UnknownAccount, sink);
        }
        if amount <= 0 {
            return self.emit_admin_reject(RejectReason::InvalidAmount, sink);
        }
        match asset {
            Asset::Cash => {
                let a = &mut self.accounts[account_id as usize];
                let Some(new) = a.cash_available.checked_add(amount) else {
                    return self.emit_admin_reject(RejectReason::InvalidAmount, sink);
                };
                if new > i128::from(i64::MAX) * i128::from(i64::MAX) {
                    return self.emit_admin_reject(RejectReason::InvalidAmount, sink);
                }
                a.cash_available = new;
                a.open = true;
                self.cash_total += amount;
            }
            Asset::Position(instrument) => {
                if !self.instrument_known(instrument) {
                    return self.emit_admin_reject(RejectReason::UnknownInstrument, sink);
                }
                let i = self.pos_index(account_id, instrument);
                let p = &mut self.positions[i];
                let Some(new) = i64::try_from(amount)
                    .ok()
                    .and_then(|v| v.checked_add(p.available))
                    .filter(|v| v.checked_add(p.reserved).is_some())
                else {
                    return self.emit_admin_reject(RejectReason::InvalidAmount, sink);
                };
                p.available = new;
                self.accounts[account_id as usize].open = true;
                self.position_totals[instrument as usize] += amount;
            }
        }
        self.emit_account(account_id, asset, sink);
    }

    fn withdraw<S: Sink + ?Sized>(
        &mut self,
        account_id: u32,
        asset: Asset,
        amount: i128,
        sink: &mut S,
    ) {
        if !self.account_known(account_id) {
            return self.emit_admin_reject(RejectReason::UnknownAccount, sink);
        }
        if amount <= 0 {
            return self.emit_admin_reject(RejectReason::InvalidAmount, sink);
        }
        match asset {
            Asset::Cash => {
                let a = &mut self.accounts[account_id as usize];
                if amount > a.cash_available {
                    return self.emit_admin_reject(RejectReason::InsufficientCash, sink);
                }
                a.cash_available -= amount;
                self.cash_total -= amount;
            }
            Asset::Position(instrument) => {
                if !self.instrument_known(instrument) {
                    return self.emit_admin_reject(RejectReason::UnknownInstrument, sink);
                }
                let i = self.pos_index(account_id, instrument);
                let p = &mut self.positions[i];
                if amount > i128::from(p.available) {
                    return self.emit_admin_reject(RejectReason::InsufficientPosition, sink);
                }
                p.available -= amount as i64;
                self.position_totals[instrument as usize] -= amount;
            }
        }
        self.emit_account(account_id, asset, sink);
    }

    fn emit_account<S: Sink + ?Sized>(&self, account_id: u32, asset: Asset, sink: &mut S) {
        let (available, reserved) = match asset {
            Asset::Cash => {
                let a = &self.accounts[account_id as usize];
                (a.cash_available, a.cash_reserved)
            }
            Asset::Position(i) => {
                let p = &self.positions[self.pos_index(account_id, i)];
                (i128::from(p.available), i128::from(p.reserved))
            }
        };
        self.emit(
            sink,
            Event::AccountUpdated {
                account_id,
                asset,
                available,
                reserved,
            },
        );
    }

    // ----- read-only views (tests, market data seeding, tools) -----------------------------

    /// Levels of one side, best first: `(price, total quantity, order count)`.
    pub fn levels(&self, instrument_id: u32, side: Side) -> Vec<(i64, u64, u32)> {
        if !self.instrument_known(instrument_id) {
            return Vec::new();
        }
        self.side_book(instrument_id, side)
            .iter()
            .rev()
            .filter(|k| k.level != NIL)
            .map(|k| {
                let l = &self.levels[k.level as usize];
                (l.price, l.quantity, l.count)
            })
            .collect()
    }

    /// Best price of a side in O(1).
    pub fn best(&self, instrument_id: u32, side: Side) -> Option<(i64, u64)> {
        let k = self.side_book(instrument_id, side).back()?;
        let l = &self.levels[k.level as usize];
        Some((l.price, l.quantity))
    }

    /// Orders of one side, best level first and FIFO within a level.
    pub fn orders(&self, instrument_id: u32, side: Side) -> Vec<OrderView> {
        let mut out = Vec::new();
        if !self.instrument_known(instrument_id) {
            return out;
        }
        for k in self
            .side_book(instrument_id, side)
            .iter()
            .rev()
            .filter(|k| k.level != NIL)
        {
            let mut slot = self.levels[k.level as usize].head;
            while slot != NIL {
                let o = &self.orders[slot as usize];
                out.push(OrderView::from(o));
                slot = o.next;
            }
        }
        out
    }

    /// A live order by engine id.
    pub fn order(&self, order_id: u64) -> Option<OrderView> {
        self.lookup(order_id)
            .ok()
            .map(|slot| OrderView::from(&self.orders[slot as usize]))
    }

    /// `(available, reserved)` cash of an account.
    pub fn cash(&self, account_id: u32) -> Option<(i128, i128)> {
        if !self.account_known(account_id) {
            return None;
        }
        let a = &self.accounts[account_id as usize];
        Some((a.cash_available, a.cash_reserved))
    }

    /// `(available, reserved)` position of an account in an instrument.
    pub fn position(&self, account_id: u32, instrument_id: u32) -> Option<(i64, i64)> {
        if account_id >= self.config.accounts_max || instrument_id >= self.config.instruments_max {
            return None;
        }
        let p = &self.positions[self.pos_index(account_id, instrument_id)];
        Some((p.available, p.reserved))
    }

    /// `(daily quantity, daily notional)` traded by an account since the last day start.
    pub fn daily(&self, account_id: u32) -> Option<(u64, i128)> {
        if !self.account_known(account_id) {
            return None;
        }
        let a = &self.accounts[account_id as usize];
        Some((a.daily_quantity, a.daily_notional))
    }

    /// Reference price used for the band (last trade or set); 0 = none.
    pub fn reference_price(&self, instrument_id: u32) -> i64 {
        self.products[instrument_id as usize].reference_price
    }

    /// Number of resting orders.
    pub fn resting_orders(&self) -> usize {
        self.orders.len() - self.order_free_count as usize
    }

    /// Bytes of the preallocated tables (orders, id table, levels, books, accounts, positions).
    pub fn preallocated_bytes(&self) -> usize {
        use std::mem::size_of;
        self.orders.len() * size_of::<Order>()
            + self.order_free.capacity() * 4
            + self.id_table.len() * 4
            + self.levels.len() * size_of::<Level>()
            + self.level_free.capacity() * 4
            + (self.order_free_heads.capacity() + self.level_free_heads.capacity()) * 4
            + self.level_cache.len() * 4
            + self
                .books
                .iter()
                .map(|b| (b[0].capacity() + b[1].capacity()) * size_of::<LevelKey>())
                .sum::<usize>()
            + self.accounts.len() * size_of::<Account>()
            + self.positions.len() * size_of::<Position>()
    }

    /// Bytes per resting order of the order-proportional tables (slab, free list, id table,
    /// levels).
    pub fn bytes_per_order_slot() -> usize {
        use std::mem::size_of;
        size_of::<Order>() + 4 + size_of::<Level>() + 4
    }

    /// Checks every invariant; used by tests after each command. Allocates.
    pub fn check_invariants(&self) -> Result<(), String> {
        let n_acc = self.config.accounts_max as usize;
        let n_ins = self.config.instruments_max as usize;
        let mut cash_reserved = vec![0i128; n_acc];
        let mut pos_reserved = vec![0i64; n_acc * n_ins];
        let mut live = 0usize;
        for (ii, book) in self.books.iter().enumerate() {
            for side in [Side::Buy, Side::Sell] {
                let keys = &book[side as usize];
                if keys.len() > self.config.levels_per_side_max as usize {
                    return Err(format!("instrument {ii}: too many levels"));
                }
                for (low, high) in keys.iter().zip(keys.iter().skip(1)) {
                    if low.key >= high.key {
                        return Err(format!("instrument {ii}: levels out of order"));
                    }
                }
                let gaps = keys.iter().filter(|k| k.level == NIL).count();
                if gaps != self.book_gaps[ii][side as usize] as usize {
                    return Err(format!("instrument {ii}: gap count"));
                }
                if keys.front().is_some_and(|k| k.level == NIL)
                    || keys.back().is_some_and(|k| k.level == NIL)
                {
                    return Err(format!("instrument {ii}: a gap at an end of a side"));
                }
                for k in keys.iter().filter(|k| k.level != NIL) {
                    let l = &self.levels[k.level as usize];
                    if key_of(side, l.price) != k.key {
                        return Err(format!("instrument {ii}: key/price mismatch"));
                    }
                    let (mut q, mut c, mut prev, mut slot) = (0u64, 0u32, NIL, l.head);
                    while slot != NIL {
                        let o = &self.orders[slot as usize];
                        if o.prev != prev || o.level != k.level || o.price != l.price {
                            return Err(format!("order {}: broken links", o.id));
                        }
                        if o.side != side || o.instrument as usize != ii || o.leaves == 0 {
                            return Err(format!("order {}: bad fields", o.id));
                        }
                        if o.cum + o.leaves != o.quantity || o.reserve_price != o.price {
                            return Err(format!("order {}: quantities", o.id));
                        }
                        if self.id_table[(o.id & self.id_mask) as usize] != slot {
                            return Err(format!("order {}: id table", o.id));
                        }
                        match side {
                            Side::Buy => {
                                cash_reserved[o.account as usize] +=
                                    i128::from(o.price) * i128::from(o.leaves)
                            }
                            Side::Sell => {
                                pos_reserved[self.pos_index(o.account, ii as u32)] +=
                                    o.leaves as i64
                            }
                        }
                        q += o.leaves;
                        c += 1;
                        prev = slot;
                        slot = o.next;
                    }
                    if l.tail != prev || q != l.quantity || c != l.count || c == 0 {
                        return Err(format!("instrument {ii}: level {} totals", l.price));
                    }
                    live += c as usize;
                }
            }
            if let (Some(b), Some(a)) = (book[0].back(), book[1].back()) {
                if self.levels[b.level as usize].price >= self.levels[a.level as usize].price {
                    return Err(format!("instrument {ii}: crossed book"));
                }
            }
        }
        if live != self.resting_orders() {
            return Err(format!(
                "{live} linked orders, {} slots used",
                self.resting_orders()
            ));
        }
        if self.id_table.iter().filter(|&&s| s != NIL).count() != live {
            return Err("id table holds stale entries".into());
        }
        let mut cash_sum = 0i128;
        for (i, a) in self.accounts.iter().enumerate() {
            if a.cash_available < 0 || a.cash_reserved < 0 {
                return Err(format!("account {i}: negative cash"));
            }
            if a.cash_reserved != cash_reserved[i] {
                return Err(format!(
                    "account {i}: cash reserved {} but open buys need {}",
                    a.cash_reserved, cash_reserved[i]
                ));
            }
            cash_sum += a.cash_available + a.cash_reserved;
        }
        if cash_sum != self.cash_total {
            return Err(format!("cash {cash_sum} != deposits {}", self.cash_total));
        }
        let mut totals = vec![0i128; n_ins];
        for (i, p) in self.positions.iter().enumerate() {
            if p.available < 0 || p.reserved < 0 {
                return Err(format!("position {i}: negative"));
            }
            if p.reserved != pos_reserved[i] {
                return Err(format!("position {i}: reserved mismatch"));
            }
            totals[i / n_acc] += i128::from(p.available) + i128::from(p.reserved);
        }
        if totals != self.position_totals {
            return Err("positions not conserved".into());
        }
        Ok(())
    }
}

/// A read-only copy of a resting order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderView {
    pub order_id: u64,
    pub client_order_id: u64,
    pub account_id: u32,
    pub session_id: u32,
    pub instrument_id: u32,
    pub side: Side,
    pub price: i64,
    pub leaves_quantity: u64,
    pub cumulative_quantity: u64,
    pub quantity: u64,
    pub time_in_force: TimeInForce,
    pub stp_mode: StpMode,
}

impl From<&Order> for OrderView {
    fn from(o: &Order) -> OrderView {
        OrderView {
            order_id: o.id,
            client_order_id: o.client_order_id,
            account_id: o.account,
            session_id: o.session,
            instrument_id: o.instrument,
            side: o.side,
            price: o.price,
            leaves_quantity: o.leaves,
            cumulative_quantity: o.cum,
            quantity: o.quantity,
            time_in_force: o.tif,
            stp_mode: o.stp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProductConfig;

    fn product(band: Band, tick: i64, reference: i64) -> Product {
        let mut config = ProductConfig::simple(0, "T", reference);
        config.tick_size = tick;
        config.band = band;
        Product {
            config,
            configured: true,
            status: TradingStatus::Open,
            reference_price: reference,
            band: None,
        }
    }

    #[test]
    fn band_in_ticks_and_basis_points() {
        assert_eq!(
            Engine::compute_band(&product(Band::Ticks(10), 5, 1000)),
            Some((950, 1050))
        );
        // 1000 * 333 / 10_000 = 33.3 -> 33 -> rounded down to ticks of 5 -> 30.
        assert_eq!(
            Engine::compute_band(&product(Band::Bps(333), 5, 1000)),
            Some((970, 1030))
        );
        // The low end never goes below one tick.
        assert_eq!(
            Engine::compute_band(&product(Band::Ticks(1000), 5, 1000)),
            Some((5, 6000))
        );
        assert_eq!(Engine::compute_band(&product(Band::Ticks(10), 5, 0)), None);
    }

    #[test]
    fn keys_put_the_best_level_last() {
        let mut bids = [
            key_of(Side::Buy, 99),
            key_of(Side::Buy, 101),
            key_of(Side::Buy, 100),
        ];
        bids.sort();
        assert_eq!(bids.last(), Some(&key_of(Side::Buy, 101)));
        let mut asks = [
            key_of(Side::Sell, 99),
            key_of(Side::Sell, 101),
            key_of(Side::Sell, 100),
        ];
        asks.sort();
        assert_eq!(asks.last(), Some(&key_of(Side::Sell, 99)));
    }

    #[test]
    fn crossing_is_inclusive_of_the_limit() {
        assert!(crosses(Side::Buy, 100, 100));
        assert!(crosses(Side::Buy, 100, 99));
        assert!(!crosses(Side::Buy, 100, 101));
        assert!(crosses(Side::Sell, 100, 100));
        assert!(crosses(Side::Sell, 100, 101));
        assert!(!crosses(Side::Sell, 100, 99));
    }

    #[test]
    fn search_side_agrees_with_bisection() {
        for n in 0..40i64 {
            let book: VecDeque<LevelKey> = (0..n)
                .map(|i| LevelKey {
                    key: i * 3 - 20,
                    level: i as u32,
                })
                .collect();
            for key in -25..(n * 3) {
                assert_eq!(
                    search_side(&book, key, true),
                    book.binary_search_by_key(&key, |k| k.key),
                    "{n} keys, key {key}"
                );
                assert_eq!(
                    search_side(&book, key, false),
                    book.binary_search_by_key(&key, |k| k.key),
                    "{n} keys, key {key}, bisecting"
                );
                for from in 0..n as usize {
                    assert_eq!(
                        search_near(&book, key, from),
                        book.binary_search_by_key(&key, |k| k.key),
                        "{n} keys, key {key}, from {from}"
                    );
                }
            }
        }
    }

    /// A xorshift64 stream from `seed` (non-zero): random test inputs without a dependency.
    fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn search_side_agrees_with_bisection_on_uneven_books() {
        // Keys with gaps from 1 to thousands of ticks, clustered and spread, both signs (sell
        // keys are negated prices), including extreme values (the interpolation's arithmetic).
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for round in 0..400 {
            let n = (next() % 300) as usize;
            let mut key = match round % 4 {
                0 => -((next() % 1_000_000) as i64),
                1 => i64::MIN + 1,
                _ => (next() % 1_000) as i64,
            };
            let mut book = VecDeque::new();
            for i in 0..n {
                book.push_back(LevelKey {
                    key,
                    level: i as u32,
                });
                let gap = match next() % 10 {
                    0 => 1 + next() % 5_000,
                    1 if round % 4 == 1 => i64::MAX as u64 / 400,
                    _ => 1 + next() % 3,
                } as i64;
                key = key.saturating_add(gap);
                if key == i64::MAX {
                    break; // keys stay unique
                }
            }
            let mut probes: Vec<i64> = book.iter().map(|k| k.key).collect();
            for k in book.iter().map(|k| k.key).collect::<Vec<_>>() {
                probes.extend([k.saturating_sub(1), k.saturating_add(1)]);
            }
            probes.extend([i64::MIN, i64::MAX, 0]);
            for _ in 0..50 {
                probes.push(next() as i64 % 2_000_000);
            }
            for key in probes {
                let expected = book.binary_search_by_key(&key, |k| k.key);
                assert_eq!(
                    search_side(&book, key, true),
                    expected,
                    "round {round}, {n} keys, key {key}"
                );
                if n > 0 {
                    let from = (next() % n as u64) as usize;
                    assert_eq!(
                        search_near(&book, key, from),
                        expected,
                        "round {round}, {n} keys, key {key} from {from}"
                    );
                }
            }
        }
    }

    #[test]
    fn gaps_keep_a_side_sorted_and_bounded() {
        // Random inserts and removals through the book's own helpers, against a sorted set of
        // live keys: the live keys agree, the keys stay sorted, the ends stay live, the gap
        // count is right and the array never outgrows its capacity (no reallocation).
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        for capacity in [1_usize, 2, 3, 8, 40, 200] {
            let mut book = VecDeque::with_capacity(capacity);
            let mut gaps = 0_u32;
            let mut live = std::collections::BTreeSet::new();
            for step in 0..20_000 {
                let key = (next() % (capacity as u64 * 3)) as i64 - capacity as i64;
                match search_side(&book, key, step % 2 == 0) {
                    Ok(i) if book[i].level != NIL => {
                        remove_key(&mut book, &mut gaps, i);
                        assert!(live.remove(&key));
                    }
                    found if live.len() < capacity => {
                        let entry = LevelKey {
                            key,
                            level: step as u32,
                        };
                        match found {
                            Ok(i) => {
                                book[i] = entry;
                                gaps -= 1;
                            }
                            Err(i) => insert_key(&mut book, &mut gaps, i, entry, capacity),
                        }
                        assert!(live.insert(key));
                    }
                    _ => {}
                }
                assert!(book.len() <= capacity, "capacity {capacity}");
                let keys: Vec<i64> = book.iter().map(|k| k.key).collect();
                assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted");
                let live_keys: Vec<i64> = book
                    .iter()
                    .filter(|k| k.level != NIL)
                    .map(|k| k.key)
                    .collect();
                assert_eq!(live_keys, live.iter().copied().collect::<Vec<_>>());
                assert_eq!(gaps as usize, book.len() - live.len());
                assert!(book.front().is_none_or(|k| k.level != NIL));
                assert!(book.back().is_none_or(|k| k.level != NIL));
            }
        }
    }

    #[test]
    fn records_stay_small() {
        // docs/matching.md quotes these sizes; a change must update the document.
        assert_eq!(std::mem::size_of::<Order>(), 88);
        assert_eq!(std::mem::size_of::<Level>(), 32);
        assert_eq!(std::mem::size_of::<LevelKey>(), 16);
        assert_eq!(std::mem::size_of::<Account>(), 128);
        assert_eq!(std::mem::offset_of!(Account, daily_notional), 64);
    }
}
