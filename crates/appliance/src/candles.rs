//! OHLCV bars from trades: the one aggregation behind `GET /marketdata/candles` and the Parquet
//! export.

/// One bar of `resolution` nanoseconds; prices in the instrument's integer units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candle {
    pub start_ns: i64,
    pub open: i64,
    pub high: i64,
    pub low: i64,
    pub close: i64,
    pub volume: i64,
}

/// Aggregates trades `(price, quantity, time ns)`, in trade order, into bars of `resolution_ns`
/// (a bar starts at a multiple of the resolution; bars without trades are not produced).
pub fn bars(trades: impl IntoIterator<Item = (i64, i64, i64)>, resolution_ns: i64) -> Vec<Candle> {
    assert!(resolution_ns > 0);
    let mut out: Vec<Candle> = Vec::new();
    for (price, quantity, ts) in trades {
        let start_ns = ts.div_euclid(resolution_ns) * resolution_ns;
        match out.last_mut() {
            Some(c) if c.start_ns == start_ns => {
                c.high = c.high.max(price);
                c.low = c.low.min(price);
                c.close = price;
                c.volume += quantity;
            }
            _ => out.push(Candle {
                start_ns,
                open: price,
                high: price,
                low: price,
                close: price,
                volume: quantity,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trades_become_bars() {
        let m = 60_000_000_000;
        let bars = bars(
            [
                (100, 1, 5),
                (103, 2, m - 1),
                (99, 3, 10),
                (101, 4, m),
                (102, 5, 3 * m + 7),
            ],
            m,
        );
        assert_eq!(
            bars,
            [
                Candle {
                    start_ns: 0,
                    open: 100,
                    high: 103,
                    low: 99,
                    close: 99,
                    volume: 6
                },
                Candle {
                    start_ns: m,
                    open: 101,
                    high: 101,
                    low: 101,
                    close: 101,
                    volume: 4
                },
                Candle {
                    start_ns: 3 * m,
                    open: 102,
                    high: 102,
                    low: 102,
                    close: 102,
                    volume: 5
                },
            ]
        );
        assert!(super::bars([], m).is_empty());
    }
}
