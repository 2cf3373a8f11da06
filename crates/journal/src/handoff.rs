//! Bounded lock-free multi-producer / single-consumer hand-off (Vyukov style).
//!
//! Every slot is preallocated with room for `payload_len_max` bytes and carries
//! its own sequence number (`stamp`):
//!
//! * `stamp == pos`              — slot is free for the producer that claims `pos`;
//! * `stamp == pos + 1`          — slot holds the message for position `pos`;
//! * `stamp == pos + slots`      — consumer released it for the next lap.
//!
//! Producers claim a position with a CAS on `enqueue_pos`, copy the payload into
//! the slot, then publish with a `Release` store of the stamp. The single consumer
//! `Acquire`-loads the stamp, reads the payload in place, and hands the slot back
//! with a `Release` store. No allocation per message, no locks. When the ring is
//! full `try_publish` returns [`PublishError::Full`] immediately (back-pressure).

use crate::doorbell::Doorbell;
use crate::error::PublishError;
use crate::sync::{Arc, AtomicU64, Ordering, UnsafeCell};
use crossbeam_utils::CachePadded;

/// Hard upper bound on the number of slots in one hand-off ring.
pub const SLOTS_MAX: usize = 1 << 20;
/// Hard upper bound on the payload one slot can hold.
pub const SLOT_PAYLOAD_MAX: usize = 1 << 20;

struct SlotData {
    template_id: u16,
    len: u32,
    bytes: Box<[u8]>,
}

struct Slot {
    stamp: AtomicU64,
    data: UnsafeCell<SlotData>,
}

struct Ring {
    enqueue_pos: CachePadded<AtomicU64>,
    mask: u64,
    payload_len_max: usize,
    slots: Box<[CachePadded<Slot>]>,
    /// Rung after every publication.
    bell: std::sync::Arc<Doorbell>,
}

// SAFETY: access to `Slot::data` is serialised by the stamp protocol: a producer
// writes only after winning the CAS for a position whose stamp says "free", the
// consumer reads only after observing the producer's Release store (Acquire).
unsafe impl Sync for Ring {}
// SAFETY: the ring owns plain data; see above for the sharing discipline.
unsafe impl Send for Ring {}

/// Create a bounded hand-off with `slots` slots (power of two) of
/// `payload_len_max` bytes each.
///
/// # Panics
/// If `slots` is not a power of two in `2..=SLOTS_MAX` or `payload_len_max`
/// exceeds [`SLOT_PAYLOAD_MAX`] (configuration is validated before this call
/// by [`crate::JournalConfig::validate`]).
pub fn bounded(slots: usize, payload_len_max: usize) -> (Publisher, Receiver) {
    assert!(slots.is_power_of_two() && (2..=SLOTS_MAX).contains(&slots));
    assert!(payload_len_max <= SLOT_PAYLOAD_MAX);
    let slots_vec: Vec<CachePadded<Slot>> = (0..slots)
        .map(|i| {
            CachePadded::new(Slot {
                stamp: AtomicU64::new(i as u64),
                data: UnsafeCell::new(SlotData {
                    template_id: 0,
                    len: 0,
                    bytes: vec![0u8; payload_len_max].into_boxed_slice(),
                }),
            })
        })
        .collect();
    let ring = Arc::new(Ring {
        enqueue_pos: CachePadded::new(AtomicU64::new(0)),
        mask: (slots - 1) as u64,
        payload_len_max,
        slots: slots_vec.into_boxed_slice(),
        bell: Default::default(),
    });
    (
        Publisher { ring: ring.clone() },
        Receiver {
            ring,
            dequeue_pos: 0,
        },
    )
}

/// Producer handle; clone one per producer thread.
#[derive(Clone)]
pub struct Publisher {
    ring: Arc<Ring>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("slots", &self.ring.slots.len())
            .field("payload_len_max", &self.ring.payload_len_max)
            .finish()
    }
}

impl Publisher {
    /// Copy `payload` into a free slot. Never blocks, never allocates.
    ///
    /// Returns [`PublishError::Full`] when every slot is occupied (the
    /// sequencer is behind) and [`PublishError::TooLarge`] when the payload
    /// exceeds the configured maximum.
    pub fn try_publish(&self, template_id: u16, payload: &[u8]) -> Result<(), PublishError> {
        self.publish_inner(template_id, payload, true)
    }

    /// [`Publisher::try_publish`] without ringing the doorbell: for a producer that runs the
    /// consumer's turn itself right after (and rings [`Publisher::doorbell`] when it cannot),
    /// so a parked consumer is not woken for nothing.
    pub fn try_publish_quiet(&self, template_id: u16, payload: &[u8]) -> Result<(), PublishError> {
        self.publish_inner(template_id, payload, false)
    }

    /// The bell [`Publisher::try_publish`] rings.
    pub fn doorbell(&self) -> std::sync::Arc<Doorbell> {
        self.ring.bell.clone()
    }

    #[inline]
    fn publish_inner(
        &self,
        template_id: u16,
        payload: &[u8],
        ring_bell: bool,
    ) -> Result<(), PublishError> {
        let ring = &*self.ring;
        if payload.len() > ring.payload_len_max {
            return Err(PublishError::TooLarge {
                len: payload.len(),
                max: ring.payload_len_max,
            });
        }
        let mut pos = ring.enqueue_pos.load(Ordering::Relaxed);
        loop {
            let slot = &ring.slots[(pos & ring.mask) as usize];
            let stamp = slot.stamp.load(Ordering::Acquire);
            let diff = stamp.wrapping_sub(pos) as i64;
            if diff == 0 {
                match ring.enqueue_pos.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        slot.data.with_mut(|d| {
                            // SAFETY: we own position `pos`; nobody else touches
                            // this slot until our Release store below.
                            let d = unsafe { &mut *d };
                            d.template_id = template_id;
                            d.len = payload.len() as u32;
                            d.bytes[..payload.len()].copy_from_slice(payload);
                        });
                        slot.stamp.store(pos + 1, Ordering::Release);
                        if ring_bell {
                            ring.bell.ring();
                        }
                        return Ok(());
                    }
                    Err(actual) => pos = actual,
                }
            } else if diff < 0 {
                return Err(PublishError::Full);
            } else {
                pos = ring.enqueue_pos.load(Ordering::Relaxed);
            }
        }
    }

    /// Maximum payload accepted by [`Publisher::try_publish`].
    pub fn payload_len_max(&self) -> usize {
        self.ring.payload_len_max
    }
}

/// The single consumer side (owned by the sequencer).
pub struct Receiver {
    ring: Arc<Ring>,
    dequeue_pos: u64,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("dequeue_pos", &self.dequeue_pos)
            .finish()
    }
}

impl Receiver {
    /// The bell every [`Publisher::try_publish`] rings: pass it to
    /// [`crate::IdleStrategy::wait_on`] on the consuming thread.
    pub fn doorbell(&self) -> std::sync::Arc<Doorbell> {
        self.ring.bell.clone()
    }

    /// Look at the oldest pending message without consuming it. The closure
    /// gets `(template_id, payload)`; its result is returned. The message
    /// stays queued until [`Receiver::release`] is called, so a failed append
    /// (journal back-pressure) loses nothing.
    #[inline]
    pub fn peek<R>(&mut self, f: impl FnOnce(u16, &[u8]) -> R) -> Option<R> {
        let ring = &*self.ring;
        let pos = self.dequeue_pos;
        let slot = &ring.slots[(pos & ring.mask) as usize];
        let stamp = slot.stamp.load(Ordering::Acquire);
        if stamp != pos + 1 {
            debug_assert_eq!(stamp, pos, "slot stamp out of protocol");
            return None;
        }
        Some(slot.data.with(|d| {
            // SAFETY: the Acquire load above synchronises with the producer's
            // Release store; the producer will not touch the slot again until
            // we release it.
            let d = unsafe { &*d };
            f(d.template_id, &d.bytes[..d.len as usize])
        }))
    }

    /// Hand the slot of the message last returned by `peek` back to producers.
    ///
    /// # Panics
    /// If there is no message to release (protocol violation).
    #[inline]
    pub fn release(&mut self) {
        let ring = &*self.ring;
        let pos = self.dequeue_pos;
        let slot = &ring.slots[(pos & ring.mask) as usize];
        assert_eq!(
            slot.stamp.load(Ordering::Relaxed),
            pos + 1,
            "release without a pending message"
        );
        slot.stamp
            .store(pos + ring.slots.len() as u64, Ordering::Release);
        self.dequeue_pos = pos + 1;
    }

    /// Pop one message into a closure (peek + release).
    pub fn try_recv<R>(&mut self, f: impl FnOnce(u16, &[u8]) -> R) -> Option<R> {
        let r = self.peek(f)?;
        self.release();
        Some(r)
    }
}
