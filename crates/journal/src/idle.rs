//! Wait / idle strategies for readers and agents (Aeron style).

use std::time::Duration;

/// How a reader (or any agent loop) waits when it has no work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Spin on the CPU forever. Lowest latency; burns a core. Only for
    /// pinned threads on machines with spare cores.
    BusySpin,
    /// Spin `spins_max` times, then `yield_now` on every further idle round.
    SpinThenYield {
        /// Spins before yielding.
        spins_max: u32,
    },
    /// Spin, then yield, then sleep with exponential backoff from
    /// `park_min` doubling up to `park_max`. The default: it cannot starve
    /// other threads on small (2-core) machines.
    Backoff {
        /// Spins before yielding.
        spins_max: u32,
        /// Yields before parking.
        yields_max: u32,
        /// First park duration.
        park_min: Duration,
        /// Upper bound for the park duration.
        park_max: Duration,
    },
}

impl Default for WaitStrategy {
    fn default() -> Self {
        WaitStrategy::Backoff {
            spins_max: 100,
            yields_max: 10,
            park_min: Duration::from_micros(1),
            park_max: Duration::from_millis(1),
        }
    }
}

/// Stateful idler: call [`IdleStrategy::idle`] with the work count of each
/// duty-cycle iteration; it resets itself when work was done.
#[derive(Debug, Clone)]
pub struct IdleStrategy {
    strategy: WaitStrategy,
    spins: u32,
    yields: u32,
    park: Duration,
}

impl IdleStrategy {
    /// New idler for a strategy.
    pub fn new(strategy: WaitStrategy) -> Self {
        let mut s = Self {
            strategy,
            spins: 0,
            yields: 0,
            park: Duration::ZERO,
        };
        s.reset();
        s
    }

    /// The configured strategy.
    pub fn strategy(&self) -> WaitStrategy {
        self.strategy
    }

    /// Idle according to the strategy if `work_count == 0`, otherwise reset.
    #[inline]
    pub fn idle(&mut self, work_count: usize) {
        if work_count > 0 {
            self.reset();
        } else {
            self.idle_once();
        }
    }

    /// Forget accumulated backoff.
    #[inline]
    pub fn reset(&mut self) {
        self.spins = 0;
        self.yields = 0;
        if let WaitStrategy::Backoff { park_min, .. } = self.strategy {
            self.park = park_min;
        }
    }

    /// One idle step (escalating).
    #[inline]
    pub fn idle_once(&mut self) {
        match self.strategy {
            WaitStrategy::BusySpin => std::hint::spin_loop(),
            WaitStrategy::SpinThenYield { spins_max } => {
                if self.spins < spins_max {
                    self.spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            WaitStrategy::Backoff {
                spins_max,
                yields_max,
                park_max,
                ..
            } => {
                if self.spins < spins_max {
                    self.spins += 1;
                    std::hint::spin_loop();
                } else if self.yields < yields_max {
                    self.yields += 1;
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(self.park);
                    self.park = (self.park * 2).min(park_max);
                }
            }
        }
    }

    /// Current park duration (for tests / diagnostics).
    pub fn current_park(&self) -> Duration {
        self.park
    }
}

impl Default for IdleStrategy {
    fn default() -> Self {
        Self::new(WaitStrategy::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn backoff_escalates_and_is_bounded() {
        let mut idle = IdleStrategy::new(WaitStrategy::Backoff {
            spins_max: 3,
            yields_max: 2,
            park_min: Duration::from_micros(10),
            park_max: Duration::from_micros(80),
        });
        for _ in 0..5 {
            idle.idle(0);
        }
        assert_eq!(idle.current_park(), Duration::from_micros(10));
        idle.idle(0);
        assert_eq!(idle.current_park(), Duration::from_micros(20));
        for _ in 0..10 {
            idle.idle(0);
        }
        assert_eq!(idle.current_park(), Duration::from_micros(80));
        idle.idle(1);
        assert_eq!(idle.current_park(), Duration::from_micros(10));
    }

    #[test]
    fn backoff_actually_sleeps() {
        let mut idle = IdleStrategy::new(WaitStrategy::Backoff {
            spins_max: 0,
            yields_max: 0,
            park_min: Duration::from_millis(2),
            park_max: Duration::from_millis(2),
        });
        let t = Instant::now();
        for _ in 0..5 {
            idle.idle(0);
        }
        assert!(t.elapsed() >= Duration::from_millis(10));
    }

    #[test]
    fn spin_strategies_return_quickly() {
        for s in [
            WaitStrategy::BusySpin,
            WaitStrategy::SpinThenYield { spins_max: 10 },
        ] {
            let mut idle = IdleStrategy::new(s);
            let t = Instant::now();
            for _ in 0..1000 {
                idle.idle(0);
            }
            assert!(t.elapsed() < Duration::from_secs(1));
        }
        assert!(matches!(
            IdleStrategy::default().strategy(),
            WaitStrategy::Backoff { .. }
        ));
    }
}
