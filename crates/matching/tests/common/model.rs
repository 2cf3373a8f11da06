//! Naive reference model of the engine's rules: one flat `Vec` of resting orders with an
//! arrival counter, scanned and sorted on every step; balances in `BTreeMap`s. Slow and
//! obviously correct, it must produce exactly the engine's outputs.

use matching::*;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug)]
struct MOrder {
    id: u64,
    cl: u64,
    price: i64,
    reserve_price: i64,
    leaves: u64,
    cum: u64,
    qty: u64,
    account: u32,
    session: u32,
    instrument: u32,
    side: Side,
    tif: TimeInForce,
    stp: StpMode,
    otype: OrderType,
    /// Arrival time on the book (for FIFO).
    time: u64,
}

#[derive(Clone, Copy, Debug)]
struct MAcc {
    avail: i128,
    reserved: i128,
    day_qty: u64,
    day_notional: i128,
    limits: AccountLimits,
}

pub struct Model {
    cfg: EngineConfig,
    status: BTreeMap<u32, TradingStatus>,
    reference: BTreeMap<u32, i64>,
    accounts: BTreeMap<u32, MAcc>,
    positions: BTreeMap<(u32, u32), (i64, i64)>,
    book: Vec<MOrder>,
    clock: u64,
    next_id: u64,
    next_exec: u64,
    next_trade: u64,
    seq: u64,
    ts: u64,
    out: Vec<Output>,
}

fn better(side: Side, a: i64, b: i64) -> bool {
    match side {
        Side::Buy => a > b,
        Side::Sell => a < b,
    }
}

impl Model {
    pub fn new(cfg: EngineConfig) -> Model {
        let mut status = BTreeMap::new();
        let mut reference = BTreeMap::new();
        for p in &cfg.products {
            status.insert(p.instrument_id, p.status);
            reference.insert(p.instrument_id, p.reference_price);
        }
        Model {
            cfg,
            status,
            reference,
            accounts: BTreeMap::new(),
            positions: BTreeMap::new(),
            book: Vec::new(),
            clock: 0,
            next_id: 1,
            next_exec: 1,
            next_trade: 1,
            seq: 0,
            ts: 0,
            out: Vec::new(),
        }
    }

    fn product(&self, i: u32) -> Option<ProductConfig> {
        self.cfg
            .products
            .iter()
            .find(|p| p.instrument_id == i)
            .copied()
    }

    fn emit(&mut self, event: Event) {
        self.out.push(Output {
            sequence: self.seq,
            timestamp_ns: self.ts,
            event,
        });
    }

    pub fn process(&mut self, c: &Command) -> Vec<Output> {
        self.out.clear();
        self.seq = c.sequence;
        self.ts = c.timestamp_ns;
        self.step(c);
        self.out.clone()
    }

    fn step(&mut self, c: &Command) {
        match c.kind {
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
            } => self.new_order(MOrder {
                id: 0,
                cl: client_order_id,
                price,
                reserve_price: price,
                leaves: quantity,
                cum: 0,
                qty: quantity,
                account: account_id,
                session: session_id,
                instrument: instrument_id,
                side,
                tif: time_in_force,
                stp: stp_mode,
                otype: order_type,
                time: 0,
            }),
            CommandKind::Cancel {
                session_id,
                account_id,
                client_order_id,
                order_id,
            } => match self.find(order_id) {
                Err(r) => self.emit(Event::CancelRejected {
                    session_id,
                    account_id,
                    client_order_id,
                    order_id,
                    is_replace: false,
                    reason: r,
                }),
                Ok(i) if self.book[i].account != account_id => self.emit(Event::CancelRejected {
                    session_id,
                    account_id,
                    client_order_id,
                    order_id,
                    is_replace: false,
                    reason: RejectReason::NotOwner,
                }),
                Ok(i) => self.cancel_at(i, CancelReason::User),
            },
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
            ),
            CommandKind::MassCancel { scope, reason } => {
                let r = CancelReason::from_mass(reason);
                let n = self.cancel_matching(r, |o| match scope {
                    MassCancelScope::Session(s) => o.session == s,
                    MassCancelScope::Account(a) => o.account == a,
                    MassCancelScope::Instrument(i) => o.instrument == i,
                    MassCancelScope::All => true,
                });
                self.emit(Event::MassCancelCompleted {
                    scope,
                    cancelled_count: n,
                });
            }
            CommandKind::SetTradingStatus {
                instrument_id,
                status,
            } => {
                if self.product(instrument_id).is_none() {
                    return self.admin_reject(RejectReason::UnknownInstrument);
                }
                self.status.insert(instrument_id, status);
                self.emit(Event::TradingStatusChanged {
                    instrument_id,
                    status,
                });
            }
            CommandKind::SetReferencePrice {
                instrument_id,
                price,
            } => {
                let Some(p) = self.product(instrument_id) else {
                    return self.admin_reject(RejectReason::UnknownInstrument);
                };
                if price <= 0 {
                    return self.admin_reject(RejectReason::PriceNotPositive);
                }
                if price % p.tick_size != 0 {
                    return self.admin_reject(RejectReason::PriceOffTick);
                }
                self.reference.insert(instrument_id, price);
                self.emit(Event::ReferencePriceSet {
                    instrument_id,
                    price,
                });
            }
            CommandKind::Deposit {
                account_id,
                asset,
                amount,
            } => {
                if account_id >= self.cfg.accounts_max {
                    return self.admin_reject(RejectReason::UnknownAccount);
                }
                if amount <= 0 {
                    return self.admin_reject(RejectReason::InvalidAmount);
                }
                let limits = self.cfg.default_limits;
                match asset {
                    Asset::Cash => {
                        let a = self.accounts.entry(account_id).or_insert(MAcc {
                            avail: 0,
                            reserved: 0,
                            day_qty: 0,
                            day_notional: 0,
                            limits,
                        });
                        a.avail += amount;
                    }
                    Asset::Position(i) => {
                        if self.product(i).is_none() {
                            return self.admin_reject(RejectReason::UnknownInstrument);
                        }
                        self.accounts.entry(account_id).or_insert(MAcc {
                            avail: 0,
                            reserved: 0,
                            day_qty: 0,
                            day_notional: 0,
                            limits,
                        });
                        self.positions.entry((account_id, i)).or_default().0 += amount as i64;
                    }
                }
                self.account_event(account_id, asset);
            }
            CommandKind::Withdraw {
                account_id,
                asset,
                amount,
            } => {
                if !self.accounts.contains_key(&account_id) {
                    return self.admin_reject(RejectReason::UnknownAccount);
                }
                if amount <= 0 {
                    return self.admin_reject(RejectReason::InvalidAmount);
                }
                match asset {
                    Asset::Cash => {
                        let a = self.accounts.get_mut(&account_id).unwrap();
                        if amount > a.avail {
                            return self.admin_reject(RejectReason::InsufficientCash);
                        }
                        a.avail -= amount;
                    }
                    Asset::Position(i) => {
                        if self.product(i).is_none() {
                            return self.admin_reject(RejectReason::UnknownInstrument);
                        }
                        let p = self.positions.entry((account_id, i)).or_default();
                        if amount > i128::from(p.0) {
                            return self.admin_reject(RejectReason::InsufficientPosition);
                        }
                        p.0 -= amount as i64;
                    }
                }
                self.account_event(account_id, asset);
            }
            CommandKind::SetAccountLimits { account_id, limits } => {
                let Some(a) = self.accounts.get_mut(&account_id) else {
                    return self.admin_reject(RejectReason::UnknownAccount);
                };
                a.limits = limits;
                self.account_event(account_id, Asset::Cash);
            }
            CommandKind::StartTradingDay { trading_day } => {
                for a in self.accounts.values_mut() {
                    a.day_qty = 0;
                    a.day_notional = 0;
                }
                self.emit(Event::TradingDayStarted { trading_day });
                self.cancel_matching(CancelReason::DayExpiry, |o| o.tif == TimeInForce::Day);
            }
        }
    }

    fn admin_reject(&mut self, reason: RejectReason) {
        self.emit(Event::AdminRejected { reason });
    }

    fn account_event(&mut self, account_id: u32, asset: Asset) {
        let (available, reserved) = match asset {
            Asset::Cash => {
                let a = self.accounts[&account_id];
                (a.avail, a.reserved)
            }
            Asset::Position(i) => {
                let p = self
                    .positions
                    .get(&(account_id, i))
                    .copied()
                    .unwrap_or_default();
                (i128::from(p.0), i128::from(p.1))
            }
        };
        self.emit(Event::AccountUpdated {
            account_id,
            asset,
            available,
            reserved,
        });
    }

    /// Book order of every resting order: instrument, bids then asks, best price, arrival.
    fn sorted_indices(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.book.len()).collect();
        idx.sort_by_key(|&i| {
            let o = &self.book[i];
            let key = if o.side == Side::Buy {
                -o.price
            } else {
                o.price
            };
            (o.instrument, o.side as u8, key, o.time)
        });
        idx
    }

    fn cancel_matching(&mut self, reason: CancelReason, pred: impl Fn(&MOrder) -> bool) -> u32 {
        let ids: Vec<u64> = self
            .sorted_indices()
            .into_iter()
            .map(|i| self.book[i])
            .filter(|o| pred(o))
            .map(|o| o.id)
            .collect();
        for id in &ids {
            let i = self.book.iter().position(|o| o.id == *id).unwrap();
            self.cancel_at(i, reason);
        }
        ids.len() as u32
    }

    fn find(&self, id: u64) -> Result<usize, RejectReason> {
        if id == 0 || id >= self.next_id {
            return Err(RejectReason::UnknownOrder);
        }
        self.book
            .iter()
            .position(|o| o.id == id)
            .ok_or(RejectReason::AlreadyClosed)
    }

    fn level(&self, instrument: u32, side: Side, price: i64) -> (u64, u32) {
        let mut q = 0;
        let mut c = 0;
        for o in &self.book {
            if o.instrument == instrument && o.side == side && o.price == price {
                q += o.leaves;
                c += 1;
            }
        }
        (q, c)
    }

    fn band(&self, instrument: u32) -> Option<(i64, i64)> {
        let p = self.product(instrument)?;
        let r = self.reference[&instrument];
        if r <= 0 {
            return None;
        }
        let t = p.tick_size;
        let w = match p.band {
            Band::Ticks(n) => i64::from(n) * t,
            Band::Bps(b) => (i128::from(r) * i128::from(b) / 10_000) as i64 / t * t,
        };
        let hi = r + w;
        Some(((r - w).max(t), hi - hi % t))
    }

    fn release(&mut self, o: &MOrder, open: u64) {
        match o.side {
            Side::Buy => {
                let a = self.accounts.get_mut(&o.account).unwrap();
                let n = i128::from(o.reserve_price) * i128::from(open);
                a.avail += n;
                a.reserved -= n;
            }
            Side::Sell => {
                let p = self.positions.get_mut(&(o.account, o.instrument)).unwrap();
                p.0 += open as i64;
                p.1 -= open as i64;
            }
        }
    }

    fn hold(&mut self, o: &MOrder, open: u64) {
        match o.side {
            Side::Buy => {
                let a = self.accounts.get_mut(&o.account).unwrap();
                let n = i128::from(o.reserve_price) * i128::from(open);
                a.avail -= n;
                a.reserved += n;
            }
            Side::Sell => {
                let p = self.positions.entry((o.account, o.instrument)).or_default();
                p.0 -= open as i64;
                p.1 += open as i64;
            }
        }
    }

    fn cancel_at(&mut self, i: usize, reason: CancelReason) {
        let o = self.book.remove(i);
        self.release(&o, o.leaves);
        let (level_quantity, level_order_count) = self.level(o.instrument, o.side, o.price);
        self.emit(Event::Cancelled {
            order_id: o.id,
            account_id: o.account,
            session_id: o.session,
            client_order_id: o.cl,
            instrument_id: o.instrument,
            cancelled_quantity: o.leaves,
            cumulative_quantity: o.cum,
            reason,
        });
        self.emit(Event::OrderDeleted {
            instrument_id: o.instrument,
            order_id: o.id,
            side: o.side,
            price: o.price,
            level_quantity,
            level_order_count,
        });
    }

    fn distinct_prices(&self, instrument: u32, side: Side) -> Vec<i64> {
        let mut v: Vec<i64> = self
            .book
            .iter()
            .filter(|o| o.instrument == instrument && o.side == side)
            .map(|o| o.price)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn level_full(&self, instrument: u32, side: Side, price: i64) -> bool {
        let p = self.distinct_prices(instrument, side);
        p.len() >= self.cfg.levels_per_side_max as usize && !p.contains(&price)
    }

    #[allow(clippy::too_many_arguments)]
    fn risk(
        &self,
        account: u32,
        instrument: u32,
        side: Side,
        px: i64,
        qty: u64,
        open: u64,
        held_cash: i128,
        held_pos: u64,
    ) -> Result<(), RejectReason> {
        let a = self.accounts[&account];
        if qty > a.limits.order_quantity_max {
            return Err(RejectReason::OrderQuantityAboveLimit);
        }
        if i128::from(px) * i128::from(qty) > a.limits.order_notional_max {
            return Err(RejectReason::OrderNotionalAboveLimit);
        }
        let open_n = i128::from(px) * i128::from(open);
        if a.day_qty.saturating_add(open) > a.limits.daily_quantity_max {
            return Err(RejectReason::DailyQuantityLimit);
        }
        if a.day_notional.saturating_add(open_n) > a.limits.daily_notional_max {
            return Err(RejectReason::DailyNotionalLimit);
        }
        match side {
            Side::Buy if open_n - held_cash > a.avail => Err(RejectReason::InsufficientCash),
            Side::Sell => {
                let p = self
                    .positions
                    .get(&(account, instrument))
                    .copied()
                    .unwrap_or_default();
                if open.saturating_sub(held_pos) as i128 > i128::from(p.0) {
                    Err(RejectReason::InsufficientPosition)
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    fn check_qty(p: &ProductConfig, q: u64) -> Result<(), RejectReason> {
        if q == 0 {
            Err(RejectReason::ZeroQuantity)
        } else if q % p.lot_size != 0 {
            Err(RejectReason::QuantityOffLot)
        } else if q > p.quantity_max {
            Err(RejectReason::QuantityAboveInstrumentMax)
        } else {
            Ok(())
        }
    }

    fn check_px(p: &ProductConfig, band: Option<(i64, i64)>, px: i64) -> Result<(), RejectReason> {
        if px <= 0 {
            return Err(RejectReason::PriceNotPositive);
        }
        if px % p.tick_size != 0 {
            return Err(RejectReason::PriceOffTick);
        }
        match band {
            Some((lo, hi)) if px < lo || px > hi => Err(RejectReason::PriceOutsideBand),
            _ => Ok(()),
        }
    }

    fn validate(&self, o: &mut MOrder) -> Result<i64, RejectReason> {
        let p = self
            .product(o.instrument)
            .filter(|_| o.instrument < self.cfg.instruments_max)
            .ok_or(RejectReason::UnknownInstrument)?;
        if !self.accounts.contains_key(&o.account) {
            return Err(RejectReason::UnknownAccount);
        }
        if self.status[&o.instrument] == TradingStatus::Halted {
            return Err(RejectReason::InstrumentHalted);
        }
        Self::check_qty(&p, o.qty)?;
        let band = self.band(o.instrument);
        let walk = match o.otype {
            OrderType::Limit => {
                Self::check_px(&p, band, o.price)?;
                o.price
            }
            OrderType::Market => {
                let (lo, hi) = band.ok_or(RejectReason::NoReferencePrice)?;
                o.price = 0;
                o.reserve_price = if o.side == Side::Buy { hi } else { lo };
                o.reserve_price
            }
        };
        self.risk(
            o.account,
            o.instrument,
            o.side,
            o.reserve_price,
            o.qty,
            o.qty,
            0,
            0,
        )?;
        if o.otype == OrderType::Limit && o.tif.may_rest() {
            if self.book.len() >= self.cfg.orders_max as usize {
                return Err(RejectReason::OrderCapacity);
            }
            if self.level_full(o.instrument, o.side, o.price) {
                return Err(RejectReason::LevelCapacity);
            }
        }
        Ok(walk)
    }

    fn new_order(&mut self, mut o: MOrder) {
        let walk = match self.validate(&mut o) {
            Ok(w) => w,
            Err(reason) => {
                return self.emit(Event::Rejected {
                    session_id: o.session,
                    account_id: o.account,
                    client_order_id: o.cl,
                    instrument_id: o.instrument,
                    reason,
                });
            }
        };
        let mask = u64::from(self.cfg.order_id_window) - 1;
        loop {
            let id = self.next_id;
            self.next_id += 1;
            if !self.book.iter().any(|b| b.id & mask == id & mask) {
                o.id = id;
                break;
            }
        }
        self.hold(&o, o.qty);
        self.emit(Event::Accepted {
            order_id: o.id,
            session_id: o.session,
            account_id: o.account,
            client_order_id: o.cl,
            instrument_id: o.instrument,
            side: o.side,
            order_type: o.otype,
            time_in_force: o.tif,
            price: o.price,
            quantity: o.qty,
        });
        if o.tif == TimeInForce::Fok && !self.fillable(&o, walk) {
            return self.finish(o, CancelReason::FokNotFillable);
        }
        self.run_taker(o, walk);
    }

    /// Opposite-side orders that cross `walk`, in priority order.
    fn crossing(&self, o: &MOrder, walk: i64) -> Vec<MOrder> {
        let mut v: Vec<MOrder> = self
            .book
            .iter()
            .filter(|m| m.instrument == o.instrument && m.side != o.side)
            .filter(|m| {
                if o.side == Side::Buy {
                    m.price <= walk
                } else {
                    m.price >= walk
                }
            })
            .copied()
            .collect();
        v.sort_by(|a, b| {
            if a.price == b.price {
                a.time.cmp(&b.time)
            } else if better(a.side, a.price, b.price) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        });
        v
    }

    fn fillable(&self, o: &MOrder, walk: i64) -> bool {
        let mut sum = 0;
        for m in self.crossing(o, walk) {
            if o.stp != StpMode::None && m.account == o.account {
                if o.stp == StpMode::CancelResting {
                    continue;
                }
                return false;
            }
            sum += m.leaves;
            if sum >= o.leaves {
                return true;
            }
        }
        false
    }

    fn finish(&mut self, o: MOrder, reason: CancelReason) {
        self.release(&o, o.leaves);
        self.emit(Event::Cancelled {
            order_id: o.id,
            account_id: o.account,
            session_id: o.session,
            client_order_id: o.cl,
            instrument_id: o.instrument,
            cancelled_quantity: o.leaves,
            cumulative_quantity: o.cum,
            reason,
        });
    }

    fn run_taker(&mut self, mut t: MOrder, walk: i64) {
        let mut killed = false;
        while t.leaves > 0 {
            let Some(m) = self.crossing(&t, walk).first().copied() else {
                break;
            };
            let mi = self.book.iter().position(|b| b.id == m.id).unwrap();
            if t.stp != StpMode::None && m.account == t.account {
                match t.stp {
                    StpMode::CancelResting => {
                        self.cancel_at(mi, CancelReason::SelfTrade);
                        continue;
                    }
                    StpMode::CancelIncoming => {
                        killed = true;
                        break;
                    }
                    _ => {
                        self.cancel_at(mi, CancelReason::SelfTrade);
                        killed = true;
                        break;
                    }
                }
            }
            let q = t.leaves.min(m.leaves);
            let px = m.price;
            let trade_id = self.next_trade;
            self.next_trade += 1;
            t.leaves -= q;
            t.cum += q;
            self.book[mi].leaves -= q;
            self.book[mi].cum += q;
            let maker = self.book[mi];
            if maker.leaves == 0 {
                self.book.remove(mi);
            }
            let (buyer, seller) = if t.side == Side::Buy {
                (t, maker)
            } else {
                (maker, t)
            };
            {
                let b = self.accounts.get_mut(&buyer.account).unwrap();
                b.reserved -= i128::from(buyer.reserve_price) * i128::from(q);
                b.avail += i128::from(buyer.reserve_price - px) * i128::from(q);
                b.day_qty += q;
                b.day_notional += i128::from(px) * i128::from(q);
            }
            self.positions
                .entry((buyer.account, t.instrument))
                .or_default()
                .0 += q as i64;
            {
                let s = self.accounts.get_mut(&seller.account).unwrap();
                s.avail += i128::from(px) * i128::from(q);
                s.day_qty += q;
                s.day_notional += i128::from(px) * i128::from(q);
            }
            self.positions
                .get_mut(&(seller.account, t.instrument))
                .unwrap()
                .1 -= q as i64;
            self.reference.insert(t.instrument, px);
            let (lq, lc) = self.level(maker.instrument, maker.side, px);
            self.emit(Event::Trade {
                instrument_id: t.instrument,
                trade_id,
                price: px,
                quantity: q,
                aggressor_side: t.side,
                buy_order_id: buyer.id,
                sell_order_id: seller.id,
            });
            self.emit(Event::OrderExecuted {
                instrument_id: t.instrument,
                order_id: maker.id,
                side: maker.side,
                price: px,
                quantity: q,
                leaves_quantity: maker.leaves,
                trade_id,
                level_quantity: lq,
                level_order_count: lc,
            });
            for (o, c, liquidity) in [(t, maker, Liquidity::Taker), (maker, t, Liquidity::Maker)] {
                let exec_id = self.next_exec;
                self.next_exec += 1;
                self.emit(Event::Filled {
                    order_id: o.id,
                    account_id: o.account,
                    session_id: o.session,
                    client_order_id: o.cl,
                    instrument_id: o.instrument,
                    side: o.side,
                    exec_id,
                    trade_id,
                    price: px,
                    quantity: q,
                    leaves_quantity: o.leaves,
                    cumulative_quantity: o.cum,
                    liquidity,
                    contra_order_id: c.id,
                    contra_account_id: c.account,
                });
            }
        }
        if t.leaves == 0 {
            return;
        }
        if killed {
            self.finish(t, CancelReason::SelfTrade);
        } else if t.otype == OrderType::Market {
            self.finish(t, CancelReason::MarketRemainder);
        } else if t.tif == TimeInForce::Ioc {
            self.finish(t, CancelReason::IocRemainder);
        } else {
            assert!(t.tif != TimeInForce::Fok);
            self.clock += 1;
            t.time = self.clock;
            self.book.push(t);
            let (lq, lc) = self.level(t.instrument, t.side, t.price);
            self.emit(Event::OrderAdded {
                instrument_id: t.instrument,
                order_id: t.id,
                side: t.side,
                price: t.price,
                quantity: t.leaves,
                level_quantity: lq,
                level_order_count: lc,
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn replace(
        &mut self,
        session_id: u32,
        account_id: u32,
        client_order_id: u64,
        order_id: u64,
        new_cl: u64,
        new_price: i64,
        new_qty: u64,
    ) {
        let checked = (|| {
            let i = self.find(order_id)?;
            let o = self.book[i];
            if o.account != account_id {
                return Err(RejectReason::NotOwner);
            }
            let p = self.product(o.instrument).unwrap();
            if self.status[&o.instrument] == TradingStatus::Halted {
                return Err(RejectReason::InstrumentHalted);
            }
            Self::check_qty(&p, new_qty)?;
            if new_qty <= o.cum {
                return Err(RejectReason::QuantityBelowFilled);
            }
            Self::check_px(&p, self.band(o.instrument), new_price)?;
            let leaves = new_qty - o.cum;
            self.risk(
                o.account,
                o.instrument,
                o.side,
                new_price,
                new_qty,
                leaves,
                i128::from(o.price) * i128::from(o.leaves),
                o.leaves,
            )?;
            let keep = new_price == o.price && leaves <= o.leaves;
            if !keep && self.level_full(o.instrument, o.side, new_price) {
                return Err(RejectReason::LevelCapacity);
            }
            Ok((i, leaves, keep))
        })();
        let (i, leaves, keep) = match checked {
            Ok(v) => v,
            Err(reason) => {
                return self.emit(Event::CancelRejected {
                    session_id,
                    account_id,
                    client_order_id,
                    order_id,
                    is_replace: true,
                    reason,
                });
            }
        };
        let old = self.book[i];
        self.release(&old, old.leaves);
        let mut o = old;
        o.price = new_price;
        o.reserve_price = new_price;
        o.leaves = leaves;
        o.qty = new_qty;
        o.cl = new_cl;
        self.hold(&o, leaves);
        let replaced = Event::Replaced {
            order_id,
            account_id,
            session_id,
            client_order_id: new_cl,
            orig_client_order_id: old.cl,
            instrument_id: o.instrument,
            price: new_price,
            leaves_quantity: leaves,
            cumulative_quantity: o.cum,
            priority_kept: keep,
        };
        if keep {
            self.book[i] = o;
            let (lq, lc) = self.level(o.instrument, o.side, o.price);
            self.emit(replaced);
            self.emit(Event::OrderModified {
                instrument_id: o.instrument,
                order_id,
                side: o.side,
                price: o.price,
                quantity: leaves,
                level_quantity: lq,
                level_order_count: lc,
            });
            return;
        }
        self.book.remove(i);
        let (lq, lc) = self.level(o.instrument, o.side, old.price);
        self.emit(replaced);
        self.emit(Event::OrderDeleted {
            instrument_id: o.instrument,
            order_id,
            side: o.side,
            price: old.price,
            level_quantity: lq,
            level_order_count: lc,
        });
        self.run_taker(o, new_price);
    }

    /// Book as `(order id, price, leaves)` per instrument and side in priority order.
    pub fn orders(&self, instrument: u32, side: Side) -> Vec<(u64, i64, u64)> {
        self.sorted_indices()
            .into_iter()
            .map(|i| self.book[i])
            .filter(|o| o.instrument == instrument && o.side == side)
            .map(|o| (o.id, o.price, o.leaves))
            .collect()
    }

    pub fn cash(&self, account: u32) -> Option<(i128, i128)> {
        self.accounts.get(&account).map(|a| (a.avail, a.reserved))
    }

    pub fn position(&self, account: u32, instrument: u32) -> (i64, i64) {
        self.positions
            .get(&(account, instrument))
            .copied()
            .unwrap_or_default()
    }
}
