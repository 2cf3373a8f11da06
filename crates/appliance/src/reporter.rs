//! The reporter: the outbound journal into SQLite, for reconciliation and the HTTP queries.
//!
//! Exactly once by journal sequence: every batch of frames is applied in one transaction that
//! also records the last outbound sequence applied, so after a crash or restart the reporter
//! resumes after the last committed transaction, with no duplicate and no gap.

use crate::metrics::Metrics;
use journal::{IdleStrategy, Journal};
use rusqlite::{Connection, OptionalExtension};
use sbe_order_entry as sbe;
use sbe_order_entry::{message_header_codec::ENCODED_LENGTH as HDR, ReadBuf};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA cache_size = -65536;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    session_id INTEGER NOT NULL,
    client_order_id INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    order_type TEXT NOT NULL,
    time_in_force TEXT NOT NULL,
    price INTEGER,
    quantity INTEGER NOT NULL,
    filled_quantity INTEGER NOT NULL,
    remaining_quantity INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    inbound_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_account ON orders (account_id, order_id);
CREATE TABLE IF NOT EXISTS rejections (
    inbound_seq INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    session_id INTEGER NOT NULL,
    client_order_id INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    reason TEXT NOT NULL,
    ts_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    exec_id INTEGER PRIMARY KEY,
    trade_id INTEGER NOT NULL,
    order_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    price INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    leaves_quantity INTEGER NOT NULL,
    cum_quantity INTEGER NOT NULL,
    liquidity TEXT NOT NULL,
    ts_ns INTEGER NOT NULL,
    outbound_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_symbol_ts ON executions (symbol, ts_ns);
CREATE INDEX IF NOT EXISTS executions_order ON executions (order_id);
CREATE TABLE IF NOT EXISTS trades (
    trade_id INTEGER PRIMARY KEY,
    symbol TEXT NOT NULL,
    price INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    aggressor_side TEXT NOT NULL,
    ts_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS trades_symbol_ts ON trades (symbol, ts_ns);
";

/// A value bound to a statement, for either database.
#[derive(Debug, Clone)]
pub enum Value {
    Int(i64),
    Text(String),
    Null,
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Value::Null, Value::Int)
    }
}

macro_rules! vals {
    ($($v:expr),* $(,)?) => { [$(Value::from($v)),*] };
}

/// Executes one statement written with `?N` placeholders (SQLite's; PostgreSQL's `$N` is
/// substituted) inside the reporter's current transaction.
pub trait Exec {
    fn exec(&mut self, sql: &str, params: &[Value]) -> anyhow::Result<()>;
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::ToSqlOutput;
        Ok(match self {
            Value::Int(i) => ToSqlOutput::from(*i),
            // Borrowed: no copy of the text per row.
            Value::Text(t) => ToSqlOutput::from(t.as_str()),
            Value::Null => ToSqlOutput::from(rusqlite::types::Null),
        })
    }
}

impl Exec for rusqlite::Transaction<'_> {
    fn exec(&mut self, sql: &str, params: &[Value]) -> anyhow::Result<()> {
        // Prepared once per connection (the reporter runs a handful of fixed statements):
        // parsing the SQL on every row was a fifth of the appliance's CPU time under load.
        self.prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params))?;
        Ok(())
    }
}

/// `?N` placeholders as PostgreSQL's `$N`.
pub fn to_postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// A reporter transaction on PostgreSQL with the connection's prepared statements: each of the
/// reporter's few fixed statements is parsed by the server once per connection, then every row
/// is one Bind/Execute (executing SQL text parsed and described it again on every row, a
/// second round trip per row).
pub struct PgTx<'t, 'c> {
    pub tx: postgres::Transaction<'t>,
    pub statements: &'c mut HashMap<String, postgres::Statement>,
}

impl Exec for PgTx<'_, '_> {
    fn exec(&mut self, sql: &str, params: &[Value]) -> anyhow::Result<()> {
        let statement = match self.statements.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = self.tx.prepare(&to_postgres_placeholders(sql))?;
                self.statements.insert(sql.to_string(), s.clone());
                s
            }
        };
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|v| -> &(dyn postgres::types::ToSql + Sync) {
                match v {
                    Value::Int(i) => i,
                    Value::Text(t) => t,
                    Value::Null => &None::<i64>,
                }
            })
            .collect();
        self.tx.execute(&statement, &refs)?;
        Ok(())
    }
}

/// The PostgreSQL schema: the SQLite one with 64-bit integers.
const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_id BIGINT PRIMARY KEY, account_id BIGINT NOT NULL, session_id BIGINT NOT NULL,
    client_order_id BIGINT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    order_type TEXT NOT NULL, time_in_force TEXT NOT NULL, price BIGINT, quantity BIGINT NOT NULL,
    filled_quantity BIGINT NOT NULL, remaining_quantity BIGINT NOT NULL, status TEXT NOT NULL,
    created_ns BIGINT NOT NULL, updated_ns BIGINT NOT NULL, inbound_seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejections (
    inbound_seq BIGINT PRIMARY KEY, account_id BIGINT NOT NULL, session_id BIGINT NOT NULL,
    client_order_id BIGINT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    quantity BIGINT NOT NULL, reason TEXT NOT NULL, ts_ns BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    exec_id BIGINT PRIMARY KEY, trade_id BIGINT NOT NULL, order_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, price BIGINT NOT NULL,
    quantity BIGINT NOT NULL, leaves_quantity BIGINT NOT NULL, cum_quantity BIGINT NOT NULL,
    liquidity TEXT NOT NULL, ts_ns BIGINT NOT NULL, outbound_seq BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS executions_symbol_ts ON executions (symbol, ts_ns);
CREATE TABLE IF NOT EXISTS trades (
    trade_id BIGINT PRIMARY KEY, symbol TEXT NOT NULL, price BIGINT NOT NULL,
    quantity BIGINT NOT NULL, aggressor_side TEXT NOT NULL, ts_ns BIGINT NOT NULL
);
";

/// Follows the outbound journal into PostgreSQL (`url`, a libpq connection string) until `stop`
/// and drained, exactly once by journal sequence, like the SQLite reporter.
pub fn run_postgres(
    url: &str,
    outbound: Journal,
    symbols: Vec<String>,
    stop: Arc<AtomicBool>,
    mut idle: IdleStrategy,
) -> anyhow::Result<()> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    client.batch_execute(POSTGRES_SCHEMA)?;
    let applied: Option<i64> = client
        .query_opt("SELECT value FROM meta WHERE key = 'outbound_seq'", &[])?
        .map(|r| r.get(0));
    let mut reader = outbound.reader(applied.unwrap_or(0) as u64 + 1)?;
    let symbol = |id: u32| {
        symbols
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    };
    let quiet = Metrics::default();
    let mut statements = HashMap::new();
    loop {
        // Idle without touching the database: a transaction starts with the first frame.
        if !reader.has_next() {
            if stop.load(Ordering::Acquire) {
                return Ok(());
            }
            idle.idle(0);
            continue;
        }
        let mut tx = PgTx {
            tx: client.transaction()?,
            statements: &mut statements,
        };
        let n = fill_batch(&mut tx, &mut reader, &stop, &symbol, &quiet)?.0;
        tx.tx.commit()?;
        idle.idle(n);
    }
}

/// How long the reporter sleeps between looks for more frames while a transaction is open.
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_micros(250);
/// Frames per reporter transaction at most.
const BATCH_FRAMES_MAX: usize = 65_536;
/// How long a reporter transaction stays open for more frames: one commit per 20 ms at most
/// under a steady flow (a commit rewrites every page the transaction touched, and the pages of
/// recent orders are touched again and again), so the reporter, off the order path, leaves the
/// cores to the agents that answer orders. Queries see results up to this late.
const BATCH_TIME_MAX: std::time::Duration = std::time::Duration::from_millis(20);

/// Applies frames to `tx` until [`BATCH_FRAMES_MAX`] of them, [`BATCH_TIME_MAX`] after the
/// first, or `stop`; then records the position reached in `meta`. Returns the frames applied
/// and the last sequence.
fn fill_batch(
    tx: &mut dyn Exec,
    reader: &mut journal::Reader,
    stop: &AtomicBool,
    symbol: &dyn Fn(u32) -> String,
    metrics: &Metrics,
) -> anyhow::Result<(usize, u64)> {
    let opened = Instant::now();
    let (mut n, mut last) = (0, 0);
    while n < BATCH_FRAMES_MAX {
        let Some(f) = reader.poll()? else {
            if opened.elapsed() >= BATCH_TIME_MAX || stop.load(Ordering::Acquire) {
                break;
            }
            // Off the order path: wait for more without spinning.
            std::thread::sleep(BATCH_WAIT);
            continue;
        };
        apply(
            tx,
            f.sequence,
            f.timestamp_ns,
            f.template_id,
            f.payload,
            symbol,
            metrics,
        )?;
        last = f.sequence;
        n += 1;
    }
    tx.exec(
        "INSERT INTO meta (key, value) VALUES ('outbound_seq', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[Value::Int(last as i64)],
    )?;
    Ok((n, last))
}

/// Opens (creating if needed) the reporter database.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.execute_batch(SCHEMA)?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// The last outbound sequence applied to the database.
pub fn applied_seq(conn: &Connection) -> rusqlite::Result<u64> {
    let v: Option<i64> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'outbound_seq'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(v.unwrap_or(0) as u64)
}

fn side(s: sbe::Side) -> &'static str {
    match s {
        sbe::Side::Buy => "buy",
        sbe::Side::Sell => "sell",
        sbe::Side::NullVal => "",
    }
}

/// Follows the outbound journal into the database until `stop` and drained.
pub fn run(
    db_path: &Path,
    outbound: Journal,
    symbols: Vec<String>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    mut idle: IdleStrategy,
) -> anyhow::Result<()> {
    let mut conn = open(db_path)?;
    let start = applied_seq(&conn)? + 1;
    metrics.reporter_seq.store(start - 1, Ordering::Relaxed);
    let mut reader = outbound.reader(start)?;
    let symbol = |id: u32| {
        symbols
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    };
    loop {
        // Idle without touching the database: a transaction starts with the first frame.
        if !reader.has_next() {
            if stop.load(Ordering::Acquire) {
                return Ok(());
            }
            idle.idle(0);
            continue;
        }
        let mut tx = conn.transaction()?;
        let (n, last) = fill_batch(&mut tx, &mut reader, &stop, &symbol, &metrics)?;
        tx.commit()?;
        metrics.reporter_seq.store(last, Ordering::Relaxed);
        idle.idle(n);
    }
}

fn apply(
    tx: &mut dyn Exec,
    seq: u64,
    ts: u64,
    template_id: u16,
    payload: &[u8],
    symbol: &dyn Fn(u32) -> String,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    if template_id == journal::TEMPLATE_BATCH_END {
        // An empty end-of-batch marker (market-data packet boundary): no result.
        return Ok(());
    }
    let h = sbe::MessageHeaderDecoder::default().wrap(ReadBuf::new(payload), 0)?;
    let ts = ts as i64;
    match template_id {
        sbe::order_accepted_codec::SBE_TEMPLATE_ID => {
            let d = sbe::order_accepted_codec::OrderAcceptedDecoder::default().header(h, HDR)?;
            tx.exec(
                "INSERT INTO orders (order_id, account_id, session_id, client_order_id, symbol, side, order_type, time_in_force, price, quantity, filled_quantity, remaining_quantity, status, created_ns, updated_ns, inbound_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?10, 'new', ?11, ?11, ?12) ON CONFLICT DO NOTHING",
                &vals![
                    d.order_id() as i64,
                    d.account_id(),
                    d.session_id(),
                    d.client_order_id() as i64,
                    symbol(d.instrument_id()),
                    side(d.side()),
                    match d.ord_type() {
                        sbe::OrdType::Market => "market",
                        _ => "limit",
                    },
                    match d.time_in_force() {
                        sbe::TimeInForce::Day => "day",
                        sbe::TimeInForce::GoodTillCancel => "gtc",
                        sbe::TimeInForce::ImmediateOrCancel => "ioc",
                        sbe::TimeInForce::FillOrKill => "fok",
                        sbe::TimeInForce::NullVal => "",
                    },
                    d.price(),
                    d.quantity() as i64,
                    ts,
                    d.inbound_seq() as i64,
                ],
            )?;
            metrics.orders_accepted.fetch_add(1, Ordering::Relaxed);
        }
        sbe::order_rejected_codec::SBE_TEMPLATE_ID => {
            let d = sbe::order_rejected_codec::OrderRejectedDecoder::default().header(h, HDR)?;
            tx.exec(
                "INSERT INTO rejections (inbound_seq, account_id, session_id, client_order_id, symbol, side, quantity, reason, ts_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
                &vals![
                    d.inbound_seq() as i64,
                    d.account_id(),
                    d.session_id(),
                    d.client_order_id() as i64,
                    symbol(d.instrument_id()),
                    side(d.side()),
                    d.quantity() as i64,
                    d.reason().to_string(),
                    ts,
                ],
            )?;
            metrics.orders_rejected.fetch_add(1, Ordering::Relaxed);
            let r = u8::from(d.reason()) as usize;
            if let Some(c) = metrics.rejects_by_reason.get(r) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        sbe::order_filled_codec::SBE_TEMPLATE_ID => {
            let d = sbe::order_filled_codec::OrderFilledDecoder::default().header(h, HDR)?;
            let (leaves, cum) = (d.leaves_qty() as i64, d.cum_qty() as i64);
            tx.exec(
                "INSERT INTO executions (exec_id, trade_id, order_id, account_id, symbol, side, price, quantity, leaves_quantity, cum_quantity, liquidity, ts_ns, outbound_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING",
                &vals![
                    d.exec_id() as i64,
                    d.trade_id() as i64,
                    d.order_id() as i64,
                    d.account_id(),
                    symbol(d.instrument_id()),
                    side(d.side()),
                    d.price(),
                    d.quantity() as i64,
                    leaves,
                    cum,
                    match d.liquidity() {
                        sbe::Liquidity::Maker => "maker",
                        _ => "taker",
                    },
                    ts,
                    seq as i64,
                ],
            )?;
            tx.exec(
                "UPDATE orders SET filled_quantity = ?2, remaining_quantity = ?3,
                 status = CASE WHEN ?3 = CAST(0 AS BIGINT) THEN 'filled' ELSE 'partially_filled' END, updated_ns = ?4
                 WHERE order_id = ?1",
                &vals![d.order_id() as i64, cum, leaves, ts],
            )?;
            metrics.fills.fetch_add(1, Ordering::Relaxed);
        }
        sbe::order_cancelled_codec::SBE_TEMPLATE_ID => {
            let d = sbe::order_cancelled_codec::OrderCancelledDecoder::default().header(h, HDR)?;
            tx.exec(
                "UPDATE orders SET status = 'cancelled', remaining_quantity = 0, updated_ns = ?2 WHERE order_id = ?1",
                &vals![d.order_id() as i64, ts],
            )?;
        }
        sbe::order_replaced_codec::SBE_TEMPLATE_ID => {
            let d = sbe::order_replaced_codec::OrderReplacedDecoder::default().header(h, HDR)?;
            tx.exec(
                "UPDATE orders SET price = ?2, quantity = ?3, remaining_quantity = ?4, client_order_id = ?5, updated_ns = ?6 WHERE order_id = ?1",
                &vals![
                    d.order_id() as i64,
                    d.price(),
                    d.quantity() as i64,
                    d.leaves_qty() as i64,
                    d.client_order_id() as i64,
                    ts
                ],
            )?;
        }
        sbe::trade_event_codec::SBE_TEMPLATE_ID => {
            let d = sbe::trade_event_codec::TradeEventDecoder::default().header(h, HDR)?;
            tx.exec(
                "INSERT INTO trades (trade_id, symbol, price, quantity, aggressor_side, ts_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                &vals![
                    d.trade_id() as i64,
                    symbol(d.instrument_id()),
                    d.price(),
                    d.quantity() as i64,
                    side(d.aggressor_side()),
                    ts
                ],
            )?;
        }
        _ => {}
    }
    Ok(())
}
