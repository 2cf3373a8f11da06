//! Wake-ups for parked agents: the producer side of a hand-off or journal rings a [`Doorbell`]
//! after it publishes, and every consumer thread parked on that bell is unparked at once instead
//! of sleeping out its back-off period.
//!
//! Without it an idle agent under [`crate::WaitStrategy::Backoff`] sleeps up to `park_max`
//! (1 ms by default, plus the kernel's timer slack), so at moderate rates, where the agents
//! between the gateway and the client are often parked, each hand-off could add tens to
//! hundreds of microseconds. With it a parked agent wakes within one futex wake-up.
//!
//! The protocol is the classic store-then-check on both sides (a Dekker pair), so no wake-up is
//! lost:
//! - the consumer *arms* (stores `parked = true`, then a `SeqCst` fence), polls its source once
//!   more, and parks (with a timeout) only if that poll found nothing;
//! - the producer publishes (a Release store of its position), then a `SeqCst` fence, then
//!   loads each `parked` flag and unparks the armed threads.
//!
//! Either the producer sees the flag (and unparks: `std::thread::park` returns at once when an
//! unpark came first), or the consumer's last poll sees the publication. Ringing costs one fence
//! and a load per registered waiter when nobody is parked: no lock, no system call.
//! [`crate::IdleStrategy::wait_on`] does the consumer's part. Cross-process readers do not
//! register and keep the timed back-off.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

/// How many threads can wait on one bell; further registrations are refused (those threads
/// keep the timed back-off).
pub const DOORBELL_WAITERS_MAX: usize = 16;

#[derive(Default)]
struct Slot {
    in_use: AtomicBool,
    parked: AtomicBool,
    /// Read by a producer only when `parked` was set (the consumer is idle).
    thread: Mutex<Option<Thread>>,
}

/// A set of consumer threads that a producer wakes after publishing. Cheap to share
/// (`Arc<Doorbell>`); `Send + Sync`.
pub struct Doorbell {
    slots: Box<[CachePadded<Slot>]>,
    /// One past the highest slot ever taken (producers scan `slots[..len]`).
    len: AtomicUsize,
}

impl std::fmt::Debug for Doorbell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doorbell")
            .field("waiters", &self.waiters())
            .finish()
    }
}

impl Default for Doorbell {
    fn default() -> Self {
        Self::new()
    }
}

impl Doorbell {
    /// A bell nobody waits on yet.
    pub fn new() -> Doorbell {
        Doorbell {
            slots: (0..DOORBELL_WAITERS_MAX)
                .map(|_| CachePadded::new(Slot::default()))
                .collect(),
            len: AtomicUsize::new(0),
        }
    }

    /// Wakes every registered thread that is parked on this bell. Call it after publishing
    /// (after the Release store that makes the new data visible).
    #[inline]
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        let len = self.len.load(Ordering::Acquire);
        for slot in &self.slots[..len] {
            // Only one producer unparks a given park (the swap); the others see `false`.
            if slot.parked.load(Ordering::Relaxed) && slot.parked.swap(false, Ordering::AcqRel) {
                self.unpark(slot);
            }
        }
    }

    #[cold]
    fn unpark(&self, slot: &Slot) {
        let guard = match slot.thread.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(t) = guard.as_ref() {
            t.unpark();
        }
    }

    /// Registers the calling thread. `None` when [`DOORBELL_WAITERS_MAX`] threads already
    /// wait on this bell. The registration ends when the returned value is dropped.
    pub fn register(self: &Arc<Self>) -> Option<Registration> {
        for (i, slot) in self.slots.iter().enumerate() {
            if slot
                .in_use
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                *slot.thread.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(std::thread::current());
                slot.parked.store(false, Ordering::Relaxed);
                self.len.fetch_max(i + 1, Ordering::AcqRel);
                return Some(Registration {
                    bell: self.clone(),
                    index: i,
                });
            }
        }
        None
    }

    /// Threads registered now.
    pub fn waiters(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.in_use.load(Ordering::Relaxed))
            .count()
    }
}

/// One thread's place on a [`Doorbell`]; unregisters on drop.
pub struct Registration {
    bell: Arc<Doorbell>,
    index: usize,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("index", &self.index)
            .finish()
    }
}

impl Registration {
    fn slot(&self) -> &Slot {
        &self.bell.slots[self.index]
    }

    /// Announces that this thread is about to park. Poll the source once more after this and
    /// park only if that poll found nothing.
    #[inline]
    pub fn arm(&self) {
        self.slot().parked.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Withdraws [`Registration::arm`] (work turned up, or the park is over).
    #[inline]
    pub fn disarm(&self) {
        self.slot().parked.store(false, Ordering::Relaxed);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let slot = self.slot();
        slot.parked.store(false, Ordering::Relaxed);
        *slot.thread.lock().unwrap_or_else(|p| p.into_inner()) = None;
        slot.in_use.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::time::{Duration, Instant};

    #[test]
    fn a_ring_wakes_an_armed_thread_before_its_timeout() {
        let bell = Arc::new(Doorbell::new());
        let data = Arc::new(AtomicU64::new(0));
        let (b, d) = (bell.clone(), data.clone());
        let waiter = std::thread::spawn(move || {
            let reg = b.register().unwrap();
            let t0 = Instant::now();
            loop {
                if d.load(Ordering::Acquire) != 0 {
                    return t0.elapsed();
                }
                reg.arm();
                if d.load(Ordering::Acquire) != 0 {
                    reg.disarm();
                    continue;
                }
                std::thread::park_timeout(Duration::from_secs(30));
                reg.disarm();
            }
        });
        while bell.waiters() == 0 {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(50));
        data.store(1, Ordering::Release);
        bell.ring();
        let waited = waiter.join().unwrap();
        // Without the ring the waiter would sleep 30 s.
        assert!(waited < Duration::from_secs(20), "{waited:?}");
    }

    #[test]
    fn no_wake_up_is_lost_over_many_hand_offs() {
        // Producer and consumer hand a counter back and forth; each side parks for 10 s when
        // idle, so a single lost wake-up would stall the test far beyond its budget.
        let bell_c = Arc::new(Doorbell::new());
        let bell_p = Arc::new(Doorbell::new());
        let to_c = Arc::new(AtomicU64::new(0));
        let to_p = Arc::new(AtomicU64::new(0));
        const N: u64 = 2_000;
        let wait = |bell: &Arc<Doorbell>, cell: &AtomicU64, want: u64| {
            let reg = bell.register().unwrap();
            loop {
                if cell.load(Ordering::Acquire) >= want {
                    return reg;
                }
                reg.arm();
                if cell.load(Ordering::Acquire) >= want {
                    reg.disarm();
                    return reg;
                }
                std::thread::park_timeout(Duration::from_secs(10));
                reg.disarm();
            }
        };
        let (bc, bp, tc, tp) = (bell_c.clone(), bell_p.clone(), to_c.clone(), to_p.clone());
        let t0 = Instant::now();
        let consumer = std::thread::spawn(move || {
            for i in 1..=N {
                drop(wait(&bc, &tc, i));
                tp.store(i, Ordering::Release);
                bp.ring();
            }
        });
        for i in 1..=N {
            to_c.store(i, Ordering::Release);
            bell_c.ring();
            drop(wait(&bell_p, &to_p, i));
        }
        consumer.join().unwrap();
        assert!(t0.elapsed() < Duration::from_secs(9), "{:?}", t0.elapsed());
        assert_eq!(bell_c.waiters() + bell_p.waiters(), 0);
    }

    #[test]
    fn registrations_are_bounded_and_released() {
        let bell = Arc::new(Doorbell::new());
        let regs: Vec<_> = (0..DOORBELL_WAITERS_MAX)
            .map(|_| bell.register().unwrap())
            .collect();
        assert!(bell.register().is_none());
        drop(regs);
        assert_eq!(bell.waiters(), 0);
        assert!(bell.register().is_some());
    }
}
