//! Snapshot: the whole engine state as bytes, and back.
//!
//! Layout (all little-endian; docs/matching.md has the full table):
//! `magic "MTCHSNAP"` | `version u32` | `body_len u64` | body | `crc32(body) u32`.
//! The body holds the config, product runtime state, counters, open accounts, non-zero
//! positions and every resting order in book order (instrument ascending, bids then asks,
//! best level first, FIFO). Slab slots are not saved: restoring re-links orders in that
//! order, which reproduces every observable behaviour and the same snapshot bytes.

use crate::codec::{DecodeError, Reader, Writer};
use crate::config::{Band, ConfigError, EngineConfig, ProductConfig};
use crate::engine::{Engine, Order, NIL};
use crate::types::*;

pub const SNAPSHOT_MAGIC: &[u8; 8] = b"MTCHSNAP";
pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    #[error("not a snapshot (bad magic)")]
    BadMagic,
    #[error("unsupported snapshot version {0}")]
    UnsupportedVersion(u32),
    #[error("checksum mismatch")]
    Checksum,
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("snapshot state is inconsistent: {0}")]
    Inconsistent(String),
}

fn write_limits(w: &mut Writer, l: &AccountLimits) {
    w.u64(l.order_quantity_max);
    w.i128(l.order_notional_max);
    w.u64(l.daily_quantity_max);
    w.i128(l.daily_notional_max);
}

fn read_limits(r: &mut Reader) -> Result<AccountLimits, DecodeError> {
    Ok(AccountLimits {
        order_quantity_max: r.u64()?,
        order_notional_max: r.i128()?,
        daily_quantity_max: r.u64()?,
        daily_notional_max: r.i128()?,
    })
}

fn write_product(w: &mut Writer, p: &ProductConfig) {
    w.u32(p.instrument_id);
    w.bytes(&p.symbol);
    w.i64(p.tick_size);
    w.u64(p.lot_size);
    w.i64(p.price_scale);
    w.u8(p.status as u8);
    match p.band {
        Band::Ticks(n) => {
            w.u8(0);
            w.u32(n)
        }
        Band::Bps(n) => {
            w.u8(1);
            w.u32(n)
        }
    }
    w.i64(p.reference_price);
    w.u64(p.quantity_max);
}

fn read_product(r: &mut Reader) -> Result<ProductConfig, DecodeError> {
    let instrument_id = r.u32()?;
    let symbol: [u8; 16] = r.take(16)?.try_into().unwrap();
    let tick_size = r.i64()?;
    let lot_size = r.u64()?;
    let price_scale = r.i64()?;
    let status = r.u8()?;
    let status = r.e(TradingStatus::from_u8(status))?;
    let band = match (r.u8()?, r.u32()?) {
        (0, n) => Band::Ticks(n),
        (1, n) => Band::Bps(n),
        _ => return Err(DecodeError(r.pos)),
    };
    Ok(ProductConfig {
        instrument_id,
        symbol,
        tick_size,
        lot_size,
        price_scale,
        status,
        band,
        reference_price: r.i64()?,
        quantity_max: r.u64()?,
    })
}

impl Engine {
    /// Serializes the whole state. Allocates; not for the hot path.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 << 16);
        self.snapshot_into(&mut out);
        out
    }

    /// Appends the bytes [`Engine::snapshot`] returns to `out`. A caller that takes snapshots
    /// periodically and keeps its buffer writes each into memory it already has: a buffer
    /// grown afresh every time takes a page fault per 4 KiB of snapshot, and the copies of
    /// its doublings, on the thread that takes it (the pipeline's).
    pub fn snapshot_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        let len_at = out.len();
        out.extend_from_slice(&0_u64.to_le_bytes());
        let body_start = out.len();
        let w = &mut Writer { buf: out };
        let c = &self.config;
        w.u32(c.orders_max);
        w.u32(c.order_id_window);
        w.u32(c.levels_per_side_max);
        w.u32(c.accounts_max);
        w.u32(c.instruments_max);
        write_limits(w, &c.default_limits);
        w.u32(c.products.len() as u32);
        for p in &c.products {
            write_product(w, p);
        }
        for p in &c.products {
            let rt = &self.products[p.instrument_id as usize];
            w.u8(rt.status as u8);
            w.i64(rt.reference_price);
        }
        w.u64(self.next_order_id);
        w.u64(self.next_exec_id);
        w.u64(self.next_trade_id);
        w.u64(self.last_sequence);
        w.u32(self.trading_day);
        w.i128(self.cash_total);
        for t in &self.position_totals {
            w.i128(*t);
        }
        let open = self.accounts.iter().filter(|a| a.open).count();
        w.u32(open as u32);
        for (i, a) in self.accounts.iter().enumerate().filter(|(_, a)| a.open) {
            w.u32(i as u32);
            w.i128(a.cash_available);
            w.i128(a.cash_reserved);
            w.u64(a.daily_quantity);
            w.i128(a.daily_notional);
            write_limits(w, &a.limits);
        }
        let n_ins = c.instruments_max as usize;
        let nonzero = self
            .positions
            .iter()
            .filter(|p| p.available != 0 || p.reserved != 0)
            .count();
        w.u32(nonzero as u32);
        // Account-major in the snapshot (the format predates the instrument-major table).
        for account in 0..c.accounts_max {
            for instrument in 0..n_ins as u32 {
                let p = &self.positions[self.pos_index(account, instrument)];
                if p.available != 0 || p.reserved != 0 {
                    w.u32(account);
                    w.u32(instrument);
                    w.i64(p.available);
                    w.i64(p.reserved);
                }
            }
        }
        w.u32(self.resting_orders() as u32);
        for book in &self.books {
            for side in book {
                for k in side.iter().rev().filter(|k| k.level != NIL) {
                    let mut slot = self.levels[k.level as usize].head;
                    while slot != NIL {
                        let o = &self.orders[slot as usize];
                        w.u64(o.id);
                        w.u64(o.client_order_id);
                        w.i64(o.price);
                        w.u64(o.leaves);
                        w.u64(o.cum);
                        w.u64(o.quantity);
                        w.u32(o.account);
                        w.u32(o.session);
                        w.u32(o.instrument);
                        w.u8(o.side as u8);
                        w.u8(o.tif as u8);
                        w.u8(o.stp as u8);
                        slot = o.next;
                    }
                }
            }
        }
        let body_len = (out.len() - body_start) as u64;
        out[len_at..body_start].copy_from_slice(&body_len.to_le_bytes());
        let crc = crc32fast::hash(&out[body_start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    /// Rebuilds an engine from [`Engine::snapshot`] bytes, checking magic, version, checksum
    /// and every invariant.
    pub fn restore(bytes: &[u8]) -> Result<Engine, SnapshotError> {
        let mut r = Reader::new(bytes);
        if r.take(8).map_err(|_| SnapshotError::BadMagic)? != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = r.u32()?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let body_len = usize::try_from(r.u64()?).map_err(|_| DecodeError(r.pos))?;
        let body = r.take(body_len)?;
        let crc = r.u32()?;
        if crc != crc32fast::hash(body) || r.pos != bytes.len() {
            return Err(SnapshotError::Checksum);
        }
        let r = &mut Reader::new(body);
        let mut config = EngineConfig {
            orders_max: r.u32()?,
            order_id_window: r.u32()?,
            levels_per_side_max: r.u32()?,
            accounts_max: r.u32()?,
            instruments_max: r.u32()?,
            default_limits: read_limits(r)?,
            products: Vec::new(),
        };
        let n_products = r.u32()?;
        if n_products > config.instruments_max {
            return Err(DecodeError(r.pos).into());
        }
        for _ in 0..n_products {
            config.products.push(read_product(r)?);
        }
        config.validate()?;
        let mut e = Engine::new(config);
        for i in 0..e.config.products.len() {
            let id = e.config.products[i].instrument_id as usize;
            let status = r.u8()?;
            e.products[id].status = r.e(TradingStatus::from_u8(status))?;
            let reference = r.i64()?;
            if reference < 0 {
                return Err(DecodeError(r.pos).into());
            }
            e.set_reference(id as u32, reference);
        }
        e.next_order_id = r.u64()?;
        e.next_exec_id = r.u64()?;
        e.next_trade_id = r.u64()?;
        e.last_sequence = r.u64()?;
        e.trading_day = r.u32()?;
        e.cash_total = r.i128()?;
        for i in 0..e.position_totals.len() {
            e.position_totals[i] = r.i128()?;
        }
        let bad = |m: &str| SnapshotError::Inconsistent(m.to_string());
        let open = r.u32()?;
        for _ in 0..open {
            let id = r.u32()?;
            if id >= e.config.accounts_max {
                return Err(bad("account id out of range"));
            }
            let a = &mut e.accounts[id as usize];
            a.open = true;
            a.cash_available = r.i128()?;
            a.cash_reserved = r.i128()?;
            a.daily_quantity = r.u64()?;
            a.daily_notional = r.i128()?;
            a.limits = read_limits(r)?;
        }
        let nonzero = r.u32()?;
        for _ in 0..nonzero {
            let (account, instrument) = (r.u32()?, r.u32()?);
            if account >= e.config.accounts_max || instrument >= e.config.instruments_max {
                return Err(bad("position out of range"));
            }
            let i = e.pos_index(account, instrument);
            e.positions[i].available = r.i64()?;
            e.positions[i].reserved = r.i64()?;
        }
        let n_orders = r.u32()?;
        if n_orders > e.config.orders_max {
            return Err(bad("more orders than orders_max"));
        }
        for _ in 0..n_orders {
            let id = r.u64()?;
            let client_order_id = r.u64()?;
            let price = r.i64()?;
            let leaves = r.u64()?;
            let cum = r.u64()?;
            let quantity = r.u64()?;
            let account = r.u32()?;
            let session = r.u32()?;
            let instrument = r.u32()?;
            let side = r.u8()?;
            let side = r.e(Side::from_u8(side))?;
            let tif = r.u8()?;
            let tif = r.e(TimeInForce::from_u8(tif))?;
            let stp = r.u8()?;
            let stp = r.e(StpMode::from_u8(stp))?;
            if instrument >= e.config.instruments_max
                || !e.products[instrument as usize].configured
                || account >= e.config.accounts_max
                || id == 0
                || id >= e.next_order_id
                || e.id_table[(id & e.id_mask) as usize] != NIL
                || price <= 0
                || leaves == 0
            {
                return Err(bad("order fields out of range"));
            }
            let book = &e.books[instrument as usize][side as usize];
            let exists = e.level_exists_pub(instrument, side, price);
            if !exists && book.len() >= e.config.levels_per_side_max as usize {
                return Err(bad("too many levels"));
            }
            e.link_back(&Order {
                id,
                client_order_id,
                price,
                reserve_price: price,
                leaves,
                cum,
                quantity,
                account,
                session,
                instrument,
                prev: NIL,
                next: NIL,
                level: NIL,
                side,
                tif,
                stp,
                order_type: OrderType::Limit,
            });
        }
        if r.pos != body.len() {
            return Err(bad("trailing bytes"));
        }
        e.check_invariants().map_err(SnapshotError::Inconsistent)?;
        Ok(e)
    }
}
