//! `export`: a day's executions and candles from the reporting database to Parquet files, for
//! analysts. Prices are written as DECIMAL(18, d) on INT64 (d = the decimals of the price scale),
//! times as TIMESTAMP(NANOS, UTC): no floating point anywhere.

use crate::config::Config;
use anyhow::Context as _;
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DD` into the [start, end) of that UTC day in nanoseconds.
pub fn day_bounds(day: &str) -> Option<(i64, i64)> {
    let mut it = day.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if it.next().is_some()
        || !(1970..=2262).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let start = days_from_civil(y, m, d) * 86_400_000_000_000;
    Some((start, start + 86_400_000_000_000))
}

/// Executions column by column: exec id, trade id, order id, account, symbol, side, price,
/// quantity, liquidity, time.
#[derive(Default)]
struct ExecutionColumns(
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
    Vec<i32>,
    Vec<String>,
    Vec<String>,
    Vec<i64>,
    Vec<i64>,
    Vec<String>,
    Vec<i64>,
);

/// Candles column by column: symbol, start, open, high, low, close, volume.
#[derive(Default)]
struct CandleColumns(
    Vec<String>,
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
    Vec<i64>,
);

/// What an export wrote.
#[derive(Debug)]
pub struct ExportReport {
    pub executions_path: PathBuf,
    pub executions: usize,
    pub candles_path: PathBuf,
    pub candles: usize,
}

fn decimals(config: &Config) -> u32 {
    let mut s = config.instruments.first().map_or(1, |i| i.price_scale);
    let mut d = 0;
    while s > 1 && s % 10 == 0 {
        s /= 10;
        d += 1;
    }
    d
}

fn bytes(v: &[String]) -> Vec<ByteArray> {
    v.iter().map(|s| ByteArray::from(s.as_str())).collect()
}

/// Writes `executions-DAY.parquet` and `candles-DAY.parquet` (1-minute OHLCV per symbol) into
/// `out_dir`.
pub fn export_day(config: &Config, day: &str, out_dir: &Path) -> anyhow::Result<ExportReport> {
    let (start, end) =
        day_bounds(day).with_context(|| format!("day '{day}': expected YYYY-MM-DD"))?;
    let db_path = config.data.dir.join("reporter.sqlite");
    let db =
        rusqlite::Connection::open_with_flags(&db_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", db_path.display()))?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let dec = decimals(config);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );

    // Executions.
    let mut stmt = db.prepare(
        "SELECT exec_id, trade_id, order_id, account_id, symbol, side, price, quantity, liquidity, ts_ns
         FROM executions WHERE ts_ns >= ?1 AND ts_ns < ?2 ORDER BY exec_id",
    )?;
    let mut cols = ExecutionColumns::default();
    let mut rows = stmt.query(rusqlite::params![start, end])?;
    while let Some(r) = rows.next()? {
        cols.0.push(r.get(0)?);
        cols.1.push(r.get(1)?);
        cols.2.push(r.get(2)?);
        cols.3.push(r.get(3)?);
        cols.4.push(r.get(4)?);
        cols.5.push(r.get(5)?);
        cols.6.push(r.get(6)?);
        cols.7.push(r.get(7)?);
        cols.8.push(r.get(8)?);
        cols.9.push(r.get(9)?);
    }
    let executions = cols.0.len();
    let schema = Arc::new(parse_message_type(&format!(
        "message execution {{
            REQUIRED INT64 exec_id;
            REQUIRED INT64 trade_id;
            REQUIRED INT64 order_id;
            REQUIRED INT32 account_id;
            REQUIRED BYTE_ARRAY symbol (UTF8);
            REQUIRED BYTE_ARRAY side (UTF8);
            REQUIRED INT64 price (DECIMAL(18, {dec}));
            REQUIRED INT64 quantity;
            REQUIRED BYTE_ARRAY liquidity (UTF8);
            REQUIRED INT64 time (TIMESTAMP(NANOS, true));
        }}"
    ))?);
    let executions_path = out_dir.join(format!("executions-{day}.parquet"));
    let file = std::fs::File::create(&executions_path)
        .with_context(|| format!("creating {}", executions_path.display()))?;
    let mut w = SerializedFileWriter::new(file, schema, props.clone())?;
    let mut rg = w.next_row_group()?;
    let mut i = 0;
    while let Some(mut col) = rg.next_column()? {
        match i {
            0 => col.typed::<Int64Type>().write_batch(&cols.0, None, None)?,
            1 => col.typed::<Int64Type>().write_batch(&cols.1, None, None)?,
            2 => col.typed::<Int64Type>().write_batch(&cols.2, None, None)?,
            3 => col.typed::<Int32Type>().write_batch(&cols.3, None, None)?,
            4 => col
                .typed::<ByteArrayType>()
                .write_batch(&bytes(&cols.4), None, None)?,
            5 => col
                .typed::<ByteArrayType>()
                .write_batch(&bytes(&cols.5), None, None)?,
            6 => col.typed::<Int64Type>().write_batch(&cols.6, None, None)?,
            7 => col.typed::<Int64Type>().write_batch(&cols.7, None, None)?,
            8 => col
                .typed::<ByteArrayType>()
                .write_batch(&bytes(&cols.8), None, None)?,
            _ => col.typed::<Int64Type>().write_batch(&cols.9, None, None)?,
        };
        col.close()?;
        i += 1;
    }
    rg.close()?;
    w.close()?;

    // One-minute candles per symbol from the trades.
    const MINUTE: i64 = 60_000_000_000;
    let mut c = CandleColumns::default();
    let mut stmt = db.prepare(
        "SELECT price, quantity, ts_ns FROM trades WHERE symbol = ?1 AND ts_ns >= ?2 AND ts_ns < ?3 ORDER BY trade_id",
    )?;
    for ins in &config.instruments {
        let trades = stmt
            .query_map(rusqlite::params![ins.symbol, start, end], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for bar in crate::candles::bars(trades, MINUTE) {
            c.0.push(ins.symbol.clone());
            c.1.push(bar.start_ns);
            c.2.push(bar.open);
            c.3.push(bar.high);
            c.4.push(bar.low);
            c.5.push(bar.close);
            c.6.push(bar.volume);
        }
    }
    let candles = c.0.len();
    let schema = Arc::new(parse_message_type(&format!(
        "message candle {{
            REQUIRED BYTE_ARRAY symbol (UTF8);
            REQUIRED INT64 start (TIMESTAMP(NANOS, true));
            REQUIRED INT64 open (DECIMAL(18, {dec}));
            REQUIRED INT64 high (DECIMAL(18, {dec}));
            REQUIRED INT64 low (DECIMAL(18, {dec}));
            REQUIRED INT64 close (DECIMAL(18, {dec}));
            REQUIRED INT64 volume;
        }}"
    ))?);
    let candles_path = out_dir.join(format!("candles-{day}.parquet"));
    let file = std::fs::File::create(&candles_path)
        .with_context(|| format!("creating {}", candles_path.display()))?;
    let mut w = SerializedFileWriter::new(file, schema, props)?;
    let mut rg = w.next_row_group()?;
    let mut i = 0;
    while let Some(mut col) = rg.next_column()? {
        match i {
            0 => col
                .typed::<ByteArrayType>()
                .write_batch(&bytes(&c.0), None, None)?,
            1 => col.typed::<Int64Type>().write_batch(&c.1, None, None)?,
            2 => col.typed::<Int64Type>().write_batch(&c.2, None, None)?,
            3 => col.typed::<Int64Type>().write_batch(&c.3, None, None)?,
            4 => col.typed::<Int64Type>().write_batch(&c.4, None, None)?,
            5 => col.typed::<Int64Type>().write_batch(&c.5, None, None)?,
            _ => col.typed::<Int64Type>().write_batch(&c.6, None, None)?,
        };
        col.close()?;
        i += 1;
    }
    rg.close()?;
    w.close()?;
    Ok(ExportReport {
        executions_path,
        executions,
        candles_path,
        candles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 22), 20_779);
        assert_eq!(
            day_bounds("2026-11-22").unwrap().0,
            20_779 * 86_400_000_000_000
        );
        assert!(day_bounds("2026-13-01").is_none());
        assert!(day_bounds("yesterday").is_none());
    }
}
