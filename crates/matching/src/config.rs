//! Construction-time configuration: capacities (`*_max`) and products.

use crate::types::{AccountLimits, TradingStatus};

/// Width of the price band (collar) around the reference price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Band {
    /// `reference ± n * tick_size`.
    Ticks(u32),
    /// `reference ± reference * bps / 10_000`, rounded down to a whole number of ticks.
    Bps(u32),
}

/// One tradable instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProductConfig {
    /// Must be below `EngineConfig::instruments_max`; used as a direct index.
    pub instrument_id: u32,
    pub symbol: [u8; 16],
    /// Prices must be positive multiples of this.
    pub tick_size: i64,
    /// Quantities must be positive multiples of this.
    pub lot_size: u64,
    /// Price units per currency unit (informational: notionals stay in price units).
    pub price_scale: i64,
    pub status: TradingStatus,
    pub band: Band,
    /// Initial reference price for the band; 0 means none until a trade or an admin sets one.
    pub reference_price: i64,
    pub quantity_max: u64,
}

impl ProductConfig {
    /// A product with permissive defaults, handy in tests and benchmarks.
    pub fn simple(instrument_id: u32, symbol: &str, reference_price: i64) -> ProductConfig {
        let mut sym = [0u8; 16];
        let n = symbol.len().min(16);
        sym[..n].copy_from_slice(&symbol.as_bytes()[..n]);
        ProductConfig {
            instrument_id,
            symbol: sym,
            tick_size: 1,
            lot_size: 1,
            price_scale: 100,
            status: TradingStatus::Open,
            band: Band::Bps(1_000),
            reference_price,
            quantity_max: 1_000_000,
        }
    }
}

/// All capacities are fixed here and preallocated by `Engine::new`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Resting orders, over all instruments.
    pub orders_max: u32,
    /// Size of the order-id -> slot table; a power of two larger than `orders_max`.
    pub order_id_window: u32,
    /// Distinct price levels per side of one book.
    pub levels_per_side_max: u32,
    /// Accounts are direct-indexed: ids `0..accounts_max`.
    pub accounts_max: u32,
    /// Instruments are direct-indexed: ids `0..instruments_max`.
    pub instruments_max: u32,
    /// Limits of an account when it is opened (by its first deposit).
    pub default_limits: AccountLimits,
    pub products: Vec<ProductConfig>,
}

impl EngineConfig {
    /// Validates the configuration; `Engine::new` panics on an invalid one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.orders_max == 0 || self.orders_max >= u32::MAX / 2 {
            return Err(ConfigError::OrdersMax);
        }
        if !self.order_id_window.is_power_of_two() || self.order_id_window <= self.orders_max {
            return Err(ConfigError::OrderIdWindow);
        }
        if self.levels_per_side_max == 0 {
            return Err(ConfigError::LevelsPerSideMax);
        }
        if self.accounts_max == 0 || self.instruments_max == 0 {
            return Err(ConfigError::AccountsOrInstrumentsMax);
        }
        let cells = u64::from(self.accounts_max) * u64::from(self.instruments_max);
        if cells > 1 << 28 {
            return Err(ConfigError::AccountsOrInstrumentsMax);
        }
        let mut seen = vec![false; self.instruments_max as usize];
        for p in &self.products {
            if p.instrument_id >= self.instruments_max || seen[p.instrument_id as usize] {
                return Err(ConfigError::Product(p.instrument_id));
            }
            seen[p.instrument_id as usize] = true;
            if p.tick_size <= 0 || p.lot_size == 0 || p.price_scale <= 0 || p.quantity_max == 0 {
                return Err(ConfigError::Product(p.instrument_id));
            }
            if p.reference_price < 0 || p.reference_price % p.tick_size != 0 {
                return Err(ConfigError::Product(p.instrument_id));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("orders_max must be in 1..2^31")]
    OrdersMax,
    #[error("order_id_window must be a power of two larger than orders_max")]
    OrderIdWindow,
    #[error("levels_per_side_max must be positive")]
    LevelsPerSideMax,
    #[error("accounts_max and instruments_max must be positive, product at most 2^28")]
    AccountsOrInstrumentsMax,
    #[error("product {0} is invalid or duplicated")]
    Product(u32),
}
