//! Plain value types: commands in, outputs out, and the reason codes.
//!
//! Everything here is `Copy` so that commands and outputs move through the engine without
//! allocation. Enums carry explicit `u8` discriminants because those numbers are part of the
//! output encoding and the snapshot format (docs/matching.md).

/// Sentinel for "no order" in links and in outputs that have no order id.
pub const ORDER_ID_NONE: u64 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Side {
    Buy = 0,
    Sell = 1,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
    pub fn from_u8(v: u8) -> Option<Side> {
        match v {
            0 => Some(Side::Buy),
            1 => Some(Side::Sell),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OrderType {
    Limit = 0,
    Market = 1,
}

impl OrderType {
    pub fn from_u8(v: u8) -> Option<OrderType> {
        match v {
            0 => Some(OrderType::Limit),
            1 => Some(OrderType::Market),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TimeInForce {
    Day = 0,
    Ioc = 1,
    Fok = 2,
    Gtc = 3,
}

impl TimeInForce {
    pub fn from_u8(v: u8) -> Option<TimeInForce> {
        match v {
            0 => Some(TimeInForce::Day),
            1 => Some(TimeInForce::Ioc),
            2 => Some(TimeInForce::Fok),
            3 => Some(TimeInForce::Gtc),
            _ => None,
        }
    }
    /// Day and GTC orders may rest on the book; IOC and FOK never do.
    pub fn may_rest(self) -> bool {
        matches!(self, TimeInForce::Day | TimeInForce::Gtc)
    }
}

/// Self-trade prevention, decided by the incoming (taker) order when it meets a resting order
/// of the same account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StpMode {
    /// Self trades are allowed.
    None = 0,
    /// Cancel the resting order and keep matching.
    CancelResting = 1,
    /// Cancel the rest of the incoming order; the resting order stays.
    CancelIncoming = 2,
    /// Cancel both.
    CancelBoth = 3,
}

impl StpMode {
    pub fn from_u8(v: u8) -> Option<StpMode> {
        match v {
            0 => Some(StpMode::None),
            1 => Some(StpMode::CancelResting),
            2 => Some(StpMode::CancelIncoming),
            3 => Some(StpMode::CancelBoth),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TradingStatus {
    Open = 0,
    Halted = 1,
}

impl TradingStatus {
    pub fn from_u8(v: u8) -> Option<TradingStatus> {
        match v {
            0 => Some(TradingStatus::Open),
            1 => Some(TradingStatus::Halted),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MassCancelReason {
    User = 0,
    Disconnect = 1,
    Admin = 2,
}

impl MassCancelReason {
    pub fn from_u8(v: u8) -> Option<MassCancelReason> {
        match v {
            0 => Some(MassCancelReason::User),
            1 => Some(MassCancelReason::Disconnect),
            2 => Some(MassCancelReason::Admin),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MassCancelScope {
    Session(u32),
    Account(u32),
    Instrument(u32),
    All,
}

/// What a deposit or withdrawal moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Asset {
    /// Cash, in notional units (price units x quantity units, see docs/matching.md).
    Cash,
    /// A position in an instrument, in quantity units.
    Position(u32),
}

/// One sequenced command. `sequence` is the journal sequence and must increase strictly;
/// `timestamp_ns` is the only way time enters the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    pub sequence: u64,
    pub timestamp_ns: u64,
    pub kind: CommandKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandKind {
    NewOrder {
        session_id: u32,
        account_id: u32,
        client_order_id: u64,
        instrument_id: u32,
        side: Side,
        order_type: OrderType,
        /// Limit price in the instrument's price units; ignored for market orders.
        price: i64,
        quantity: u64,
        time_in_force: TimeInForce,
        stp_mode: StpMode,
    },
    Cancel {
        session_id: u32,
        account_id: u32,
        client_order_id: u64,
        order_id: u64,
    },
    /// Cancel/replace. `new_quantity` is the new total order quantity (FIX OrderQty): the new
    /// open quantity is `new_quantity - cumulative filled`.
    Replace {
        session_id: u32,
        account_id: u32,
        client_order_id: u64,
        order_id: u64,
        new_client_order_id: u64,
        new_price: i64,
        new_quantity: u64,
    },
    MassCancel {
        scope: MassCancelScope,
        reason: MassCancelReason,
    },
    SetTradingStatus {
        instrument_id: u32,
        status: TradingStatus,
    },
    SetReferencePrice {
        instrument_id: u32,
        price: i64,
    },
    Deposit {
        account_id: u32,
        asset: Asset,
        amount: i128,
    },
    Withdraw {
        account_id: u32,
        asset: Asset,
        amount: i128,
    },
    SetAccountLimits {
        account_id: u32,
        limits: AccountLimits,
    },
    /// Resets the daily counters of every account and expires every Day order.
    StartTradingDay {
        trading_day: u32,
    },
}

/// Per-account risk limits, checked on every new order and replace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountLimits {
    pub order_quantity_max: u64,
    pub order_notional_max: i128,
    pub daily_quantity_max: u64,
    pub daily_notional_max: i128,
}

impl AccountLimits {
    pub const UNLIMITED: AccountLimits = AccountLimits {
        order_quantity_max: u64::MAX,
        order_notional_max: i128::MAX,
        daily_quantity_max: u64::MAX,
        daily_notional_max: i128::MAX,
    };
}

/// Why a new order, a replace, a cancel or an admin command was refused. One code per rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RejectReason {
    UnknownInstrument = 1,
    UnknownAccount = 2,
    InstrumentHalted = 3,
    ZeroQuantity = 4,
    QuantityOffLot = 5,
    QuantityAboveInstrumentMax = 6,
    PriceNotPositive = 7,
    PriceOffTick = 8,
    PriceOutsideBand = 9,
    NoReferencePrice = 10,
    OrderQuantityAboveLimit = 11,
    OrderNotionalAboveLimit = 12,
    DailyQuantityLimit = 13,
    DailyNotionalLimit = 14,
    InsufficientCash = 15,
    InsufficientPosition = 16,
    OrderCapacity = 17,
    LevelCapacity = 18,
    UnknownOrder = 19,
    AlreadyClosed = 20,
    NotOwner = 21,
    QuantityBelowFilled = 22,
    InvalidAmount = 23,
    NotionalOverflow = 24,
}

impl RejectReason {
    pub fn from_u8(v: u8) -> Option<RejectReason> {
        use RejectReason::*;
        Some(match v {
            1 => UnknownInstrument,
            2 => UnknownAccount,
            3 => InstrumentHalted,
            4 => ZeroQuantity,
            5 => QuantityOffLot,
            6 => QuantityAboveInstrumentMax,
            7 => PriceNotPositive,
            8 => PriceOffTick,
            9 => PriceOutsideBand,
            10 => NoReferencePrice,
            11 => OrderQuantityAboveLimit,
            12 => OrderNotionalAboveLimit,
            13 => DailyQuantityLimit,
            14 => DailyNotionalLimit,
            15 => InsufficientCash,
            16 => InsufficientPosition,
            17 => OrderCapacity,
            18 => LevelCapacity,
            19 => UnknownOrder,
            20 => AlreadyClosed,
            21 => NotOwner,
            22 => QuantityBelowFilled,
            23 => InvalidAmount,
            24 => NotionalOverflow,
            _ => return None,
        })
    }
}

/// Why an accepted order left the book (or never reached it) without being filled completely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CancelReason {
    User = 0,
    IocRemainder = 1,
    FokNotFillable = 2,
    SelfTrade = 3,
    MassCancelUser = 4,
    MassCancelDisconnect = 5,
    MassCancelAdmin = 6,
    /// A market order's remainder once the book is empty or the collar is reached.
    MarketRemainder = 7,
    DayExpiry = 8,
}

impl CancelReason {
    pub fn from_mass(r: MassCancelReason) -> CancelReason {
        match r {
            MassCancelReason::User => CancelReason::MassCancelUser,
            MassCancelReason::Disconnect => CancelReason::MassCancelDisconnect,
            MassCancelReason::Admin => CancelReason::MassCancelAdmin,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Liquidity {
    Maker = 0,
    Taker = 1,
}

/// One output event, stamped with the command that caused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output {
    pub sequence: u64,
    pub timestamp_ns: u64,
    pub event: Event,
}

/// Execution reports (to the owner of an order), book changes (market data: enough to rebuild
/// L1, L2 and L3) and admin acknowledgements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Accepted {
        order_id: u64,
        session_id: u32,
        account_id: u32,
        client_order_id: u64,
        instrument_id: u32,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce,
        price: i64,
        quantity: u64,
    },
    Rejected {
        session_id: u32,
        account_id: u32,
        client_order_id: u64,
        instrument_id: u32,
        reason: RejectReason,
    },
    Filled {
        order_id: u64,
        account_id: u32,
        session_id: u32,
        client_order_id: u64,
        instrument_id: u32,
        side: Side,
        exec_id: u64,
        trade_id: u64,
        price: i64,
        quantity: u64,
        leaves_quantity: u64,
        cumulative_quantity: u64,
        liquidity: Liquidity,
        contra_order_id: u64,
        contra_account_id: u32,
    },
    Cancelled {
        order_id: u64,
        account_id: u32,
        session_id: u32,
        client_order_id: u64,
        instrument_id: u32,
        /// Open quantity that was cancelled.
        cancelled_quantity: u64,
        cumulative_quantity: u64,
        reason: CancelReason,
    },
    Replaced {
        order_id: u64,
        account_id: u32,
        session_id: u32,
        client_order_id: u64,
        orig_client_order_id: u64,
        instrument_id: u32,
        price: i64,
        leaves_quantity: u64,
        cumulative_quantity: u64,
        priority_kept: bool,
    },
    /// A cancel or a replace that was refused; the order (if any) is unchanged.
    CancelRejected {
        session_id: u32,
        account_id: u32,
        client_order_id: u64,
        order_id: u64,
        is_replace: bool,
        reason: RejectReason,
    },
    /// An order joined the back of a level.
    OrderAdded {
        instrument_id: u32,
        order_id: u64,
        side: Side,
        price: i64,
        quantity: u64,
        level_quantity: u64,
        level_order_count: u32,
    },
    /// An order's open quantity shrank in place (keeps its place in the queue).
    OrderModified {
        instrument_id: u32,
        order_id: u64,
        side: Side,
        price: i64,
        quantity: u64,
        level_quantity: u64,
        level_order_count: u32,
    },
    /// An order left the book without trading (cancel, replace losing priority, expiry).
    OrderDeleted {
        instrument_id: u32,
        order_id: u64,
        side: Side,
        price: i64,
        level_quantity: u64,
        level_order_count: u32,
    },
    /// A resting order traded; `leaves_quantity == 0` means it left the book.
    OrderExecuted {
        instrument_id: u32,
        order_id: u64,
        side: Side,
        price: i64,
        quantity: u64,
        leaves_quantity: u64,
        trade_id: u64,
        level_quantity: u64,
        level_order_count: u32,
    },
    Trade {
        instrument_id: u32,
        trade_id: u64,
        price: i64,
        quantity: u64,
        aggressor_side: Side,
        buy_order_id: u64,
        sell_order_id: u64,
    },
    TradingStatusChanged {
        instrument_id: u32,
        status: TradingStatus,
    },
    ReferencePriceSet {
        instrument_id: u32,
        price: i64,
    },
    /// Deposit, withdrawal or limits change applied; balances after it.
    AccountUpdated {
        account_id: u32,
        asset: Asset,
        available: i128,
        reserved: i128,
    },
    AdminRejected {
        reason: RejectReason,
    },
    TradingDayStarted {
        trading_day: u32,
    },
    /// Sent after the cancels of a mass cancel, even when nothing matched its scope.
    MassCancelCompleted {
        scope: MassCancelScope,
        cancelled_count: u32,
    },
}

/// Where the engine writes its outputs. Implementations must not allocate per call in
/// steady state (a `Vec` the caller clears and reuses is fine).
pub trait Sink {
    fn emit(&mut self, output: &Output);
}

impl Sink for Vec<Output> {
    fn emit(&mut self, output: &Output) {
        self.push(*output);
    }
}

/// A sink that only counts; used by benchmarks.
#[derive(Default, Debug, Clone, Copy)]
pub struct CountingSink {
    pub outputs: u64,
    pub trades: u64,
}

impl Sink for CountingSink {
    fn emit(&mut self, output: &Output) {
        self.outputs += 1;
        if let Event::Trade { .. } = output.event {
            self.trades += 1;
        }
    }
}
