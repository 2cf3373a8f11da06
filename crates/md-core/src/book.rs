//! L3, L2 and L1 books.
//!
//! The publisher drives an [`L3Book`] from the engine's book events and derives the L2 and L1
//! it publishes from it; a consumer drives one of each from the wire. Every operation on input
//! that may come from the network answers a [`BookError`] instead of panicking, and every book
//! has a fixed maximum size.

use crate::msg::{Action, LevelEntry, Side};
use std::collections::btree_map::Entry;
use std::collections::hash_map;
use std::collections::{BTreeMap, HashMap};

/// A price level: total quantity and number of orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceLevel {
    pub price: i64,
    pub quantity: u64,
    pub order_count: u32,
}

/// Best bid and offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bbo {
    pub bid: Option<PriceLevel>,
    pub ask: Option<PriceLevel>,
}

/// A resting order as the L3 book shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookOrder {
    pub side: Side,
    pub order_id: u64,
    pub price: i64,
    pub quantity: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BookError {
    #[error("order {0} is already in the book")]
    DuplicateOrder(u64),
    #[error("order {0} is not in the book")]
    UnknownOrder(u64),
    #[error("order {0} is on another side or price than the update says")]
    WrongPlace(u64),
    #[error("quantity {1} for order {0} is zero or more than it has")]
    BadQuantity(u64, u64),
    #[error("the book is full ({0} orders or levels)")]
    Full(usize),
    #[error("level {0} is not in the book")]
    UnknownLevel(i64),
    #[error("level {0} is already in the book")]
    DuplicateLevel(i64),
}

/// No slot: the end of a queue or of a free list.
const NIL: u32 = u32::MAX;

/// A resting order in an [`L3Book`]'s slab, linked into its level's queue by slot indices.
#[derive(Debug, Clone, Copy)]
struct Node {
    order_id: u64,
    quantity: u64,
    prev: u32,
    /// Next in time priority; in a free slot, the next free slot.
    next: u32,
    level: u32,
}

/// A price level in an [`L3Book`]'s slab: its totals and the ends of its queue.
#[derive(Debug, Clone, Copy)]
struct Level {
    price: i64,
    quantity: u64,
    count: u32,
    side: Side,
    /// Oldest order; in a free slot, the next free slot.
    head: u32,
    tail: u32,
}

/// Orders an [`L3Book`]'s id index has room for before it first grows.
const INDEX_CAPACITY_START: usize = 2048;

/// Order-by-order book of one instrument.
///
/// Orders sit in a slab, each level's queue a doubly-linked list of slot indices, and the id
/// index names an order's slot, which names its level: add, modify, delete and execute cost
/// one index probe and O(1) list work wherever the order stands in its queue (a scan of a
/// level's queue made deleting from the back of a deep level cost its length). Only creating
/// or emptying a level touches the side's ordered map. Slots are reused, so after the book's
/// largest size is reached nothing is allocated but the maps' own nodes.
#[derive(Debug, Clone)]
pub struct L3Book {
    /// Price → level slot.
    bids: BTreeMap<i64, u32>,
    asks: BTreeMap<i64, u32>,
    /// Order id → order slot. Only looked up, never iterated, so its order never reaches any
    /// output. Hashed with foldhash (seeded per map, so ids chosen by a hostile sender of a
    /// consumer's feed cannot be aimed at one bucket) rather than SipHash: the publisher looks
    /// an order up for every book event, and SipHash was its largest single cost.
    index: HashMap<u64, u32, foldhash::fast::RandomState>,
    nodes: Vec<Node>,
    free_node: u32,
    levels: Vec<Level>,
    free_level: u32,
    orders_max: usize,
}

impl L3Book {
    pub fn new(orders_max: usize) -> L3Book {
        // Sized for a typical book and grown with it (by doubling, rarely): a table sized for
        // the maximum from the start spreads a thousand orders over megabytes, so every lookup
        // missed the caches (the largest cost of a delete, perf).
        let start = orders_max.min(INDEX_CAPACITY_START);
        L3Book {
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            index: HashMap::with_capacity_and_hasher(start, foldhash::fast::RandomState::default()),
            nodes: Vec::with_capacity(start),
            free_node: NIL,
            levels: Vec::new(),
            free_level: NIL,
            // Slots are u32 indices with NIL reserved.
            orders_max: orders_max.min(NIL as usize),
        }
    }

    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
        self.index.clear();
        self.nodes.clear();
        self.free_node = NIL;
        self.levels.clear();
        self.free_level = NIL;
    }

    pub fn order_count(&self) -> usize {
        self.index.len()
    }

    fn side(&self, side: Side) -> &BTreeMap<i64, u32> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn price_level(&self, level: u32) -> PriceLevel {
        let l = &self.levels[level as usize];
        PriceLevel {
            price: l.price,
            quantity: l.quantity,
            order_count: l.count,
        }
    }

    /// Adds an order at the back of its level.
    pub fn add(
        &mut self,
        side: Side,
        order_id: u64,
        price: i64,
        quantity: u64,
    ) -> Result<(), BookError> {
        if quantity == 0 {
            return Err(BookError::BadQuantity(order_id, quantity));
        }
        let count = self.index.len();
        let hash_map::Entry::Vacant(slot) = self.index.entry(order_id) else {
            return Err(BookError::DuplicateOrder(order_id));
        };
        if count >= self.orders_max {
            return Err(BookError::Full(self.orders_max));
        }
        let book = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let level = match book.entry(price) {
            Entry::Occupied(e) => {
                let level = *e.get();
                let l = &mut self.levels[level as usize];
                // Checked before anything changes: a refused add leaves the book as it was.
                l.quantity = l
                    .quantity
                    .checked_add(quantity)
                    .ok_or(BookError::BadQuantity(order_id, quantity))?;
                level
            }
            Entry::Vacant(e) => {
                let fresh = Level {
                    price,
                    quantity,
                    count: 0,
                    side,
                    head: NIL,
                    tail: NIL,
                };
                let level = if self.free_level != NIL {
                    let level = self.free_level;
                    self.free_level = self.levels[level as usize].head;
                    self.levels[level as usize] = fresh;
                    level
                } else {
                    self.levels.push(fresh);
                    (self.levels.len() - 1) as u32
                };
                e.insert(level);
                level
            }
        };
        let l = &mut self.levels[level as usize];
        let node = Node {
            order_id,
            quantity,
            prev: l.tail,
            next: NIL,
            level,
        };
        let n = if self.free_node != NIL {
            let n = self.free_node;
            self.free_node = self.nodes[n as usize].next;
            self.nodes[n as usize] = node;
            n
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        };
        if l.tail == NIL {
            l.head = n;
        } else {
            self.nodes[l.tail as usize].next = n;
        }
        l.tail = n;
        l.count += 1;
        slot.insert(n);
        Ok(())
    }

    /// The slot of an order that stands on `side` at `price`.
    fn locate(&self, order_id: u64, side: Side, price: i64) -> Result<u32, BookError> {
        let &n = self
            .index
            .get(&order_id)
            .ok_or(BookError::UnknownOrder(order_id))?;
        let l = &self.levels[self.nodes[n as usize].level as usize];
        if l.side == side && l.price == price {
            Ok(n)
        } else {
            Err(BookError::WrongPlace(order_id))
        }
    }

    /// Sets an order's open quantity in place (it keeps its priority); the new quantity must be
    /// positive.
    pub fn modify(
        &mut self,
        side: Side,
        order_id: u64,
        price: i64,
        quantity: u64,
    ) -> Result<(), BookError> {
        let n = self.locate(order_id, side, price)?;
        if quantity == 0 {
            return Err(BookError::BadQuantity(order_id, quantity));
        }
        let node = &mut self.nodes[n as usize];
        let l = &mut self.levels[node.level as usize];
        // The level holds at least this order's open quantity; checked before anything changes.
        l.quantity = (l.quantity - node.quantity)
            .checked_add(quantity)
            .ok_or(BookError::BadQuantity(order_id, quantity))?;
        node.quantity = quantity;
        Ok(())
    }

    /// Removes an order.
    pub fn delete(&mut self, side: Side, order_id: u64, price: i64) -> Result<(), BookError> {
        self.take(side, order_id, price, None).map(|_| ())
    }

    /// Executes `quantity` of a resting order; it leaves the book when nothing remains.
    /// Returns the remaining quantity.
    pub fn execute(
        &mut self,
        side: Side,
        order_id: u64,
        price: i64,
        quantity: u64,
    ) -> Result<u64, BookError> {
        self.take(side, order_id, price, Some(quantity))
    }

    /// Takes `quantity` (`None`: all) of a resting order; the order leaves the book, and an
    /// emptied level the side, when nothing remains (the publisher does this for every move,
    /// cancel and fill). Returns what remains.
    fn take(
        &mut self,
        side: Side,
        order_id: u64,
        price: i64,
        quantity: Option<u64>,
    ) -> Result<u64, BookError> {
        let n = self.locate(order_id, side, price)?;
        let node = self.nodes[n as usize];
        let taken = quantity.unwrap_or(node.quantity);
        if taken == 0 || taken > node.quantity {
            return Err(BookError::BadQuantity(order_id, taken));
        }
        let remaining = node.quantity - taken;
        let level = node.level;
        let l = &mut self.levels[level as usize];
        // The level holds at least this order's open quantity.
        l.quantity -= taken;
        if remaining > 0 {
            self.nodes[n as usize].quantity = remaining;
            return Ok(remaining);
        }
        if node.prev == NIL {
            l.head = node.next;
        } else {
            self.nodes[node.prev as usize].next = node.next;
        }
        if node.next == NIL {
            l.tail = node.prev;
        } else {
            self.nodes[node.next as usize].prev = node.prev;
        }
        l.count -= 1;
        if l.count == 0 {
            l.head = self.free_level;
            self.free_level = level;
            match side {
                Side::Buy => self.bids.remove(&price),
                Side::Sell => self.asks.remove(&price),
            };
        }
        self.nodes[n as usize].next = self.free_node;
        self.free_node = n;
        self.index.remove(&order_id);
        Ok(0)
    }

    /// The level at a price.
    pub fn level(&self, side: Side, price: i64) -> Option<PriceLevel> {
        self.side(side).get(&price).map(|&l| self.price_level(l))
    }

    /// Up to `n` levels of a side, best first.
    pub fn top_levels(&self, side: Side, n: usize) -> Vec<PriceLevel> {
        let mut out = Vec::new();
        self.top_levels_into(side, n, &mut out);
        out
    }

    /// Writes up to `n` levels of a side, best first, into `out` (cleared first).
    pub fn top_levels_into(&self, side: Side, n: usize, out: &mut Vec<PriceLevel>) {
        out.clear();
        let map = |(_, &l): (&i64, &u32)| self.price_level(l);
        match side {
            Side::Buy => out.extend(self.bids.iter().rev().take(n).map(map)),
            Side::Sell => out.extend(self.asks.iter().take(n).map(map)),
        }
    }

    /// Best bid and offer (no allocation: the publisher asks after every book event).
    pub fn bbo(&self) -> Bbo {
        Bbo {
            bid: self
                .bids
                .last_key_value()
                .map(|(_, &l)| self.price_level(l)),
            ask: self
                .asks
                .first_key_value()
                .map(|(_, &l)| self.price_level(l)),
        }
    }

    /// Level slots of a side, best first.
    fn levels_best_first(&self, side: Side) -> impl Iterator<Item = u32> + '_ {
        let (buy, sell) = match side {
            Side::Buy => (Some(self.bids.values().rev()), None),
            Side::Sell => (None, Some(self.asks.values())),
        };
        buy.into_iter()
            .flatten()
            .chain(sell.into_iter().flatten())
            .copied()
    }

    /// (order id, open quantity) of a level's orders in time priority.
    fn queue(&self, level: u32) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut n = self.levels[level as usize].head;
        std::iter::from_fn(move || {
            if n == NIL {
                return None;
            }
            let node = &self.nodes[n as usize];
            n = node.next;
            Some((node.order_id, node.quantity))
        })
    }

    /// Calls `f` with every order of a side: best level first, time priority within a level
    /// (no allocation).
    pub fn for_each_order(&self, side: Side, mut f: impl FnMut(BookOrder)) {
        for level in self.levels_best_first(side) {
            let price = self.levels[level as usize].price;
            for (order_id, quantity) in self.queue(level) {
                f(BookOrder {
                    side,
                    order_id,
                    price,
                    quantity,
                });
            }
        }
    }

    /// Every order of a side: best level first, time priority within a level.
    pub fn orders(&self, side: Side) -> Vec<BookOrder> {
        let mut out = Vec::new();
        self.for_each_order(side, |o| out.push(o));
        out
    }
}

impl PartialEq for L3Book {
    /// Same levels with the same totals and the same orders in the same time priority (where
    /// the slots lie does not matter).
    fn eq(&self, other: &Self) -> bool {
        [Side::Buy, Side::Sell].into_iter().all(|side| {
            self.side(side).len() == other.side(side).len()
                && self
                    .levels_best_first(side)
                    .zip(other.levels_best_first(side))
                    .all(|(a, b)| {
                        let (la, lb) = (&self.levels[a as usize], &other.levels[b as usize]);
                        la.price == lb.price
                            && la.quantity == lb.quantity
                            && la.count == lb.count
                            && self.queue(a).eq(other.queue(b))
                    })
        })
    }
}

/// The top N price levels of each side, as the L2 channel publishes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Book {
    bids: BTreeMap<i64, (u64, u32)>,
    asks: BTreeMap<i64, (u64, u32)>,
    levels_max: usize,
}

impl L2Book {
    /// `levels_max` per side.
    pub fn new(levels_max: usize) -> L2Book {
        L2Book {
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            levels_max,
        }
    }

    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    fn side_mut(&mut self, side: Side) -> &mut BTreeMap<i64, (u64, u32)> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// Applies one entry of a LevelUpdate.
    pub fn apply(&mut self, e: &LevelEntry) -> Result<(), BookError> {
        let max = self.levels_max;
        let side = self.side_mut(e.side);
        match e.action {
            Action::New => {
                if side.contains_key(&e.price) {
                    return Err(BookError::DuplicateLevel(e.price));
                }
                if side.len() >= max {
                    return Err(BookError::Full(max));
                }
                side.insert(e.price, (e.quantity, e.order_count));
            }
            Action::Change => {
                let l = side
                    .get_mut(&e.price)
                    .ok_or(BookError::UnknownLevel(e.price))?;
                *l = (e.quantity, e.order_count);
            }
            Action::Delete => {
                side.remove(&e.price)
                    .ok_or(BookError::UnknownLevel(e.price))?;
            }
        }
        Ok(())
    }

    /// Replaces a side with `levels`.
    pub fn set_level(&mut self, side: Side, level: PriceLevel) -> Result<(), BookError> {
        let max = self.levels_max;
        let s = self.side_mut(side);
        if s.len() >= max && !s.contains_key(&level.price) {
            return Err(BookError::Full(max));
        }
        s.insert(level.price, (level.quantity, level.order_count));
        Ok(())
    }

    /// Levels of a side, best first.
    pub fn levels(&self, side: Side) -> Vec<PriceLevel> {
        let map = |(p, (q, n)): (&i64, &(u64, u32))| PriceLevel {
            price: *p,
            quantity: *q,
            order_count: *n,
        };
        match side {
            Side::Buy => self.bids.iter().rev().map(map).collect(),
            Side::Sell => self.asks.iter().map(map).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l3_keeps_time_priority_and_level_totals() {
        let mut b = L3Book::new(10);
        b.add(Side::Buy, 1, 100, 5).unwrap();
        b.add(Side::Buy, 2, 100, 7).unwrap();
        b.add(Side::Buy, 3, 101, 1).unwrap();
        b.add(Side::Sell, 4, 105, 2).unwrap();
        assert_eq!(b.level(Side::Buy, 100).unwrap().quantity, 12);
        b.modify(Side::Buy, 1, 100, 3).unwrap();
        let ids: Vec<u64> = b.orders(Side::Buy).iter().map(|o| o.order_id).collect();
        assert_eq!(ids, [3, 1, 2]);
        assert_eq!(b.execute(Side::Buy, 3, 101, 1).unwrap(), 0);
        assert_eq!(b.bbo().bid.unwrap().price, 100);
        assert_eq!(b.bbo().bid.unwrap().quantity, 10);
        assert_eq!(b.execute(Side::Buy, 1, 100, 2).unwrap(), 1);
        b.delete(Side::Sell, 4, 105).unwrap();
        assert_eq!(b.bbo().ask, None);
        assert_eq!(b.add(Side::Buy, 2, 1, 1), Err(BookError::DuplicateOrder(2)));
        assert_eq!(b.delete(Side::Sell, 2, 100), Err(BookError::WrongPlace(2)));
        assert_eq!(
            b.execute(Side::Buy, 2, 100, 8),
            Err(BookError::BadQuantity(2, 8))
        );
        for i in 10..18 {
            b.add(Side::Sell, i, 200, 1).unwrap();
        }
        assert_eq!(b.add(Side::Sell, 99, 200, 1), Err(BookError::Full(10)));
    }

    #[test]
    fn l3_equality_is_orders_in_priority_not_slots() {
        let mut a = L3Book::new(10);
        let mut b = L3Book::new(10);
        a.add(Side::Buy, 1, 100, 5).unwrap();
        a.add(Side::Buy, 2, 100, 7).unwrap();
        // b reaches the same book through other slots: a gone order's slot and level reused.
        b.add(Side::Sell, 9, 100, 1).unwrap();
        b.delete(Side::Sell, 9, 100).unwrap();
        b.add(Side::Buy, 1, 100, 5).unwrap();
        b.add(Side::Buy, 2, 100, 7).unwrap();
        assert!(a == b);
        let mut c = L3Book::new(10);
        c.add(Side::Buy, 2, 100, 7).unwrap();
        c.add(Side::Buy, 1, 100, 5).unwrap();
        assert!(a != c, "same orders in another time priority");
        b.modify(Side::Buy, 2, 100, 6).unwrap();
        assert!(a != b, "another quantity");
    }

    #[test]
    fn l3_deletes_anywhere_in_a_deep_level_and_keeps_the_rest_in_order() {
        let mut b = L3Book::new(100_000);
        for id in 0..100_000 {
            b.add(Side::Sell, id, 500, 1).unwrap();
        }
        // From the back, then every other order from the front: each is one unlink.
        for id in (90_000..100_000).rev() {
            b.delete(Side::Sell, id, 500).unwrap();
        }
        for id in (0..90_000).step_by(2) {
            assert_eq!(b.execute(Side::Sell, id, 500, 1), Ok(0));
        }
        let ids: Vec<u64> = b.orders(Side::Sell).iter().map(|o| o.order_id).collect();
        assert_eq!(ids, (1..90_000).step_by(2).collect::<Vec<u64>>());
        assert_eq!(
            b.level(Side::Sell, 500),
            Some(PriceLevel {
                price: 500,
                quantity: 45_000,
                order_count: 45_000
            })
        );
        // Freed slots are taken again, at the back of the queue.
        b.add(Side::Sell, 7_000_000, 500, 3).unwrap();
        assert_eq!(b.orders(Side::Sell).last().unwrap().order_id, 7_000_000);
    }

    #[test]
    fn l3_a_refused_add_or_modify_changes_nothing() {
        let mut b = L3Book::new(10);
        b.add(Side::Buy, 1, 100, u64::MAX - 1).unwrap();
        b.add(Side::Buy, 2, 100, 1).unwrap();
        let before = b.clone();
        assert_eq!(
            b.add(Side::Buy, 3, 100, 1),
            Err(BookError::BadQuantity(3, 1))
        );
        assert_eq!(
            b.modify(Side::Buy, 2, 100, 2),
            Err(BookError::BadQuantity(2, 2))
        );
        assert!(b == before);
        assert_eq!(b.order_count(), 2);
        // The refused id was not kept.
        assert_eq!(b.delete(Side::Buy, 3, 100), Err(BookError::UnknownOrder(3)));
        b.add(Side::Buy, 3, 101, 1).unwrap();
    }

    /// The naive book: a vector queue per level, scanned.
    #[derive(Default)]
    struct Model {
        sides: [BTreeMap<i64, Vec<(u64, u64)>>; 2],
        index: HashMap<u64, (Side, i64)>,
    }

    impl Model {
        fn side(s: Side) -> usize {
            usize::from(s == Side::Sell)
        }
        fn locate(&self, id: u64, side: Side, price: i64) -> Result<(), BookError> {
            match self.index.get(&id) {
                None => Err(BookError::UnknownOrder(id)),
                Some(&(s, p)) if s == side && p == price => Ok(()),
                Some(_) => Err(BookError::WrongPlace(id)),
            }
        }
        fn add(
            &mut self,
            side: Side,
            id: u64,
            price: i64,
            q: u64,
            max: usize,
        ) -> Result<(), BookError> {
            if q == 0 {
                return Err(BookError::BadQuantity(id, q));
            }
            if self.index.contains_key(&id) {
                return Err(BookError::DuplicateOrder(id));
            }
            if self.index.len() >= max {
                return Err(BookError::Full(max));
            }
            self.sides[Self::side(side)]
                .entry(price)
                .or_default()
                .push((id, q));
            self.index.insert(id, (side, price));
            Ok(())
        }
        fn set(&mut self, side: Side, id: u64, price: i64, q: Option<u64>) {
            let level = self.sides[Self::side(side)].get_mut(&price).unwrap();
            let pos = level.iter().position(|o| o.0 == id).unwrap();
            match q {
                Some(q) => level[pos].1 = q,
                None => {
                    level.remove(pos);
                    if level.is_empty() {
                        self.sides[Self::side(side)].remove(&price);
                    }
                    self.index.remove(&id);
                }
            }
        }
        fn open(&self, side: Side, id: u64, price: i64) -> u64 {
            self.sides[Self::side(side)][&price]
                .iter()
                .find(|o| o.0 == id)
                .unwrap()
                .1
        }
        fn orders(&self, side: Side) -> Vec<BookOrder> {
            let levels: Vec<_> = match side {
                Side::Buy => self.sides[0].iter().rev().collect(),
                Side::Sell => self.sides[1].iter().collect(),
            };
            levels
                .into_iter()
                .flat_map(|(&price, l)| {
                    l.iter().map(move |&(order_id, quantity)| BookOrder {
                        side,
                        order_id,
                        price,
                        quantity,
                    })
                })
                .collect()
        }
    }

    proptest::proptest! {
        /// Random adds, deletes, modifies and executes (many of them invalid) give the same
        /// answers, orders, level totals and BBO as the naive book.
        #[test]
        fn l3_matches_a_naive_book(ops in proptest::collection::vec(
            (0_u8..4, 0_u64..24, proptest::bool::ANY, 98_i64..103, 0_u64..6), 1..300)) {
            const MAX: usize = 16;
            let mut b = L3Book::new(MAX);
            let mut m = Model::default();
            for (op, id, buy, price, q) in ops {
                let side = if buy { Side::Buy } else { Side::Sell };
                match op {
                    0 => proptest::prop_assert_eq!(b.add(side, id, price, q), m.add(side, id, price, q, MAX)),
                    1 => {
                        let want = m.locate(id, side, price);
                        if want.is_ok() {
                            m.set(side, id, price, None);
                        }
                        proptest::prop_assert_eq!(b.delete(side, id, price), want);
                    }
                    2 => {
                        let positive = match q {
                            0 => Err(BookError::BadQuantity(id, q)),
                            _ => Ok(()),
                        };
                        let want = m.locate(id, side, price).and(positive);
                        if want.is_ok() {
                            m.set(side, id, price, Some(q));
                        }
                        proptest::prop_assert_eq!(b.modify(side, id, price, q), want);
                    }
                    _ => {
                        let want = m.locate(id, side, price).and_then(|()| {
                            let open = m.open(side, id, price);
                            if q == 0 || q > open {
                                return Err(BookError::BadQuantity(id, q));
                            }
                            m.set(side, id, price, (open > q).then_some(open - q));
                            Ok(open - q)
                        });
                        proptest::prop_assert_eq!(b.execute(side, id, price, q), want);
                    }
                }
                for side in [Side::Buy, Side::Sell] {
                    let orders = m.orders(side);
                    proptest::prop_assert_eq!(b.orders(side), orders.clone());
                    let mut levels: Vec<PriceLevel> = Vec::new();
                    for o in &orders {
                        match levels.last_mut() {
                            Some(l) if l.price == o.price => {
                                l.quantity += o.quantity;
                                l.order_count += 1;
                            }
                            _ => levels.push(PriceLevel { price: o.price, quantity: o.quantity, order_count: 1 }),
                        }
                    }
                    proptest::prop_assert_eq!(b.top_levels(side, usize::MAX), levels.clone());
                    let best = levels.first().copied();
                    let bbo = b.bbo();
                    proptest::prop_assert_eq!(if side == Side::Buy { bbo.bid } else { bbo.ask }, best);
                }
                proptest::prop_assert_eq!(b.order_count(), m.index.len());
            }
            let copy = b.clone();
            proptest::prop_assert!(copy == b);
            // Equality is about the orders and their priority, not where their slots lie.
            let mut rebuilt = L3Book::new(MAX);
            for side in [Side::Buy, Side::Sell] {
                for o in b.orders(side) {
                    rebuilt.add(side, o.order_id, o.price, o.quantity).unwrap();
                }
            }
            proptest::prop_assert!(rebuilt == b);
        }
    }

    #[test]
    fn l2_applies_new_change_delete_and_refuses_nonsense() {
        let mut b = L2Book::new(2);
        let e = |action, price, quantity| LevelEntry {
            side: Side::Sell,
            action,
            price,
            quantity,
            order_count: 1,
        };
        b.apply(&e(Action::New, 10, 5)).unwrap();
        b.apply(&e(Action::New, 11, 5)).unwrap();
        assert_eq!(b.apply(&e(Action::New, 12, 5)), Err(BookError::Full(2)));
        b.apply(&e(Action::Change, 10, 3)).unwrap();
        b.apply(&e(Action::Delete, 11, 0)).unwrap();
        assert_eq!(
            b.apply(&e(Action::Delete, 11, 0)),
            Err(BookError::UnknownLevel(11))
        );
        assert_eq!(
            b.levels(Side::Sell),
            vec![PriceLevel {
                price: 10,
                quantity: 3,
                order_count: 1
            }]
        );
    }
}
