//! Injected clocks for timestamping frames.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Source of frame timestamps (nanoseconds).
pub trait Clock: Send + 'static {
    /// Current time in nanoseconds.
    fn now_ns(&self) -> u64;
}

/// Wall clock: nanoseconds since the Unix epoch (`CLOCK_REALTIME`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    }
}

/// Deterministic clock for tests: starts at `start`, advances by `step` on
/// every call; shareable via `Arc` so a test can also `set` it.
#[derive(Debug)]
pub struct TestClock {
    now: AtomicU64,
    step: u64,
}

impl TestClock {
    /// New clock at `start` ns advancing `step` ns per reading.
    pub fn new(start: u64, step: u64) -> Self {
        Self {
            now: AtomicU64::new(start),
            step,
        }
    }

    /// Set the current time.
    pub fn set(&self, ns: u64) {
        self.now.store(ns, Ordering::Relaxed);
    }
}

impl Clock for TestClock {
    fn now_ns(&self) -> u64 {
        self.now.fetch_add(self.step, Ordering::Relaxed)
    }
}

/// A clock its owner sets: frames are stamped with the time it was last set
/// to (still never below the previous frame's). Replicas use it to append
/// frames with the timestamps the replication leader gave them, so every
/// replica's journal is byte-identical.
#[derive(Debug, Default)]
pub struct ExternalClock {
    now: AtomicU64,
}

impl ExternalClock {
    /// A clock reading `ns` until set again.
    pub fn new(ns: u64) -> Self {
        Self {
            now: AtomicU64::new(ns),
        }
    }

    /// Set the time the next frames are stamped with.
    pub fn set(&self, ns: u64) {
        self.now.store(ns, Ordering::Relaxed);
    }
}

impl Clock for ExternalClock {
    #[inline]
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
}

impl<C: Clock + Sync> Clock for std::sync::Arc<C> {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
}
