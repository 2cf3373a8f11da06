//! OHLCV bars per instrument for 1 s, 1 min, 5 min, 1 h and 1 day, kept in bounded rings.
//!
//! Bars are aligned to multiples of their length since the Unix epoch and driven only by the
//! journal's timestamps, so they are deterministic. A bar closes when time (any frame's
//! timestamp) reaches its end; bars without trades are not created.

use md_core::msg::{Candle, CandleInterval};
use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub struct Candles {
    current: [Option<Candle>; 5],
    closed: [VecDeque<Candle>; 5],
    candles_max: usize,
}

impl Candles {
    /// Keeps at most `candles_max` closed bars per interval.
    pub fn new(candles_max: usize) -> Candles {
        assert!(candles_max > 0);
        Candles {
            current: [None; 5],
            closed: std::array::from_fn(|_| VecDeque::with_capacity(candles_max)),
            candles_max,
        }
    }

    /// Adds a trade to the open bar of every interval (opening one if needed). Call
    /// [`Candles::close_due`] with the trade's time first.
    pub fn on_trade(&mut self, time_ns: u64, price: i64, quantity: u64) {
        for iv in CandleInterval::ALL {
            let len = iv.length_ns();
            let start = time_ns - time_ns % len;
            let slot = &mut self.current[iv.index()];
            match slot {
                Some(c) => {
                    assert_eq!(c.start_ns, start, "a due bar was not closed");
                    c.high = c.high.max(price);
                    c.low = c.low.min(price);
                    c.close = price;
                    c.volume = c.volume.saturating_add(quantity);
                    c.trade_count = c.trade_count.saturating_add(1);
                }
                None => {
                    *slot = Some(Candle {
                        interval: iv,
                        start_ns: start,
                        open: price,
                        high: price,
                        low: price,
                        close: price,
                        volume: quantity,
                        trade_count: 1,
                    });
                }
            }
        }
    }

    /// The earliest end of an open bar (`u64::MAX` when none is open).
    pub fn next_close_ns(&self) -> u64 {
        self.current
            .iter()
            .flatten()
            .map(|c| c.start_ns.saturating_add(c.interval.length_ns()))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// Closes the bars that ended at or before `now_ns`; returns them (at most one per interval).
    pub fn close_due(&mut self, now_ns: u64) -> [Option<Candle>; 5] {
        let mut out = [None; 5];
        for (i, slot) in self.current.iter_mut().enumerate() {
            if let Some(c) = *slot {
                if c.start_ns.saturating_add(c.interval.length_ns()) <= now_ns {
                    *slot = None;
                    let ring = &mut self.closed[i];
                    if ring.len() == self.candles_max {
                        ring.pop_front();
                    }
                    ring.push_back(c);
                    out[i] = Some(c);
                }
            }
        }
        out
    }

    /// The open bar of an interval.
    pub fn current(&self, iv: CandleInterval) -> Option<Candle> {
        self.current[iv.index()]
    }

    /// Closed bars of an interval, oldest first (at most `candles_max`).
    pub fn closed(&self, iv: CandleInterval) -> &VecDeque<Candle> {
        &self.closed[iv.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn bars_aggregate_and_close_on_time() {
        let mut c = Candles::new(2);
        let t0 = 1_700_000_000 * S;
        c.on_trade(t0 + 10, 100, 5);
        c.on_trade(t0 + 20, 103, 1);
        c.on_trade(t0 + 30, 99, 2);
        assert!(c.close_due(t0 + S - 1).iter().all(Option::is_none));
        let closed = c.close_due(t0 + S);
        let s = closed[CandleInterval::OneSecond.index()].unwrap();
        assert_eq!(
            (s.open, s.high, s.low, s.close, s.volume, s.trade_count),
            (100, 103, 99, 99, 8, 3)
        );
        assert!(closed[CandleInterval::OneMinute.index()].is_none());
        assert_eq!(c.current(CandleInterval::OneMinute).unwrap().volume, 8);
        // The ring keeps the newest candles_max bars.
        for k in 1..5 {
            c.on_trade(t0 + k * S, 100 + k as i64, 1);
            c.close_due(t0 + (k + 1) * S);
        }
        let ring = c.closed(CandleInterval::OneSecond);
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.back().unwrap().open, 104);
    }
}
