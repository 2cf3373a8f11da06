//! Wait / idle strategies for readers and agents (Aeron style).

use crate::doorbell::{Doorbell, Registration};
use std::sync::Arc;
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
    /// other threads on small (2-core) machines. The default shape spins 100
    /// times, yields 1,000 times (a fraction of a millisecond: a thread that
    /// yields keeps its vCPU out of the halt state, and waking a halted vCPU
    /// costs tens of microseconds on a VM), then parks from 1 µs to 1 ms; a
    /// park ends early when a doorbell the idler waits on is rung
    /// ([`IdleStrategy::wait_on`]).
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
            yields_max: 1_000,
            park_min: Duration::from_micros(1),
            park_max: Duration::from_millis(1),
        }
    }
}

/// Stateful idler: call [`IdleStrategy::idle`] with the work count of each
/// duty-cycle iteration; it resets itself when work was done.
///
/// With [`IdleStrategy::wait_on`] the park step of [`WaitStrategy::Backoff`] becomes wakeable:
/// before parking, the idler arms its doorbell registrations and returns once without sleeping
/// (so the duty cycle polls its sources one more time); the next idle step parks until a
/// producer rings or the back-off period ends, whichever comes first.
#[derive(Debug)]
pub struct IdleStrategy {
    strategy: WaitStrategy,
    spins: u32,
    yields: u32,
    park: Duration,
    bells: Vec<Registration>,
    armed: bool,
}

impl IdleStrategy {
    /// New idler for a strategy.
    pub fn new(strategy: WaitStrategy) -> Self {
        let mut s = Self {
            strategy,
            spins: 0,
            yields: 0,
            park: Duration::ZERO,
            bells: Vec::new(),
            armed: false,
        };
        s.reset();
        s
    }

    /// Lets producers that ring `bell` wake this thread from its park (call it on the thread
    /// that will idle). Returns `false` when the bell has no room left (the thread then keeps
    /// the timed back-off). Only [`WaitStrategy::Backoff`] parks; the other strategies never
    /// sleep and ignore bells.
    pub fn wait_on(&mut self, bell: &Arc<Doorbell>) -> bool {
        if !matches!(self.strategy, WaitStrategy::Backoff { .. }) {
            return true;
        }
        match bell.register() {
            Some(r) => {
                self.bells.push(r);
                true
            }
            None => false,
        }
    }

    /// Builder form of [`IdleStrategy::wait_on`].
    pub fn waiting_on(mut self, bell: &Arc<Doorbell>) -> Self {
        self.wait_on(bell);
        self
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
        if self.armed {
            self.disarm();
        }
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
                } else if self.bells.is_empty() {
                    std::thread::sleep(self.park);
                    self.park = (self.park * 2).min(park_max);
                } else if !self.armed {
                    // Announce the park and let the caller poll once more: a producer that
                    // publishes from now on will unpark this thread.
                    for b in &self.bells {
                        b.arm();
                    }
                    self.armed = true;
                } else {
                    std::thread::park_timeout(self.park);
                    self.disarm();
                    self.park = (self.park * 2).min(park_max);
                }
            }
        }
    }

    fn disarm(&mut self) {
        for b in &self.bells {
            b.disarm();
        }
        self.armed = false;
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

    #[test]
    fn a_producer_through_the_journal_wakes_a_parked_reader() {
        // A reader thread parks for up to 10 s per idle step; the journal's commit rings its
        // bell, so every frame is seen long before a park would have ended.
        let dir = tempfile::tempdir().unwrap();
        let (journal, mut seq) =
            crate::Journal::open(crate::JournalConfig::in_dir(dir.path())).unwrap();
        let bell = journal.doorbell();
        let mut reader = journal.reader(1).unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let mut idle = IdleStrategy::new(WaitStrategy::Backoff {
                spins_max: 0,
                yields_max: 0,
                park_min: Duration::from_secs(10),
                park_max: Duration::from_secs(10),
            });
            assert!(idle.wait_on(&bell));
            ready_tx.send(()).unwrap();
            let mut seen = 0;
            while seen < 20 {
                let n = usize::from(reader.poll().unwrap().is_some());
                seen += n;
                idle.idle(n);
            }
        });
        ready_rx.recv().unwrap();
        let t0 = Instant::now();
        for i in 0..20_u8 {
            std::thread::sleep(Duration::from_millis(2));
            seq.append(1, &[i]).unwrap();
        }
        t.join().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(9), "{:?}", t0.elapsed());
    }
}
