//! `Idempotency-Key` for `POST /v1/order` (the IETF httpapi draft's header): a client that
//! retries an order after a timeout or a dropped connection sends the same key, and gets the
//! first attempt's answer instead of a second order.
//!
//! A key belongs to the account that sent it. The first request with a key claims it; until
//! its outcome is known a retry is answered 409; afterwards a retry with the same order gets
//! the stored answer again (header `Idempotent-Replayed: true`), one with a different order
//! 422. Requests refused before their order was journaled (not the leader, sequencer full) free
//! the key again; a journaled order whose outcome did not arrive in time keeps it, with that
//! answer (a retry must not place a second order).
//!
//! Keys live in this process's memory: the last [`KEYS_MAX`] of them, for at most
//! [`KEY_TTL`]. A restart or a cluster failover forgets them (docs/cluster.md).

use axum::http::StatusCode;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered at most (the oldest are forgotten first).
pub const KEYS_MAX: usize = 100_000;
/// How long a key is remembered at most.
pub const KEY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest key accepted (the draft leaves it to the server).
pub const KEY_LEN_MAX: usize = 255;

/// What a request with a key may do.
#[derive(Debug, PartialEq)]
pub enum Claim {
    /// The key is this request's now: place the order, then [`Keys::finish`] or
    /// [`Keys::release`].
    New,
    /// Answered before: send this again.
    Replay(StatusCode, Value),
    /// The first request with this key is still waiting for its outcome.
    InProgress,
    /// The key was used for a different order.
    Mismatch,
}

enum State {
    InFlight,
    Done(StatusCode, Value),
}

struct Entry {
    fingerprint: u64,
    generation: u64,
    state: State,
}

#[derive(Default)]
struct Inner {
    map: HashMap<(u32, String), Entry>,
    /// Claims in order, to forget the oldest (an entry is removed only if its generation
    /// still matches: a key released and claimed again is a newer claim).
    order: VecDeque<(Instant, u64, (u32, String))>,
    generation: u64,
}

/// The keys of one process.
#[derive(Default)]
pub struct Keys {
    inner: Mutex<Inner>,
}

impl Keys {
    /// Claims `key` of `account` for a request whose order has `fingerprint`.
    pub fn claim(&self, account: u32, key: &str, fingerprint: u64, now: Instant) -> Claim {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.forget_old(now);
        let id = (account, key.to_string());
        if let Some(e) = g.map.get(&id) {
            if e.fingerprint != fingerprint {
                return Claim::Mismatch;
            }
            return match &e.state {
                State::InFlight => Claim::InProgress,
                State::Done(status, body) => Claim::Replay(*status, body.clone()),
            };
        }
        g.generation += 1;
        let generation = g.generation;
        g.order.push_back((now, generation, id.clone()));
        g.map.insert(
            id,
            Entry {
                fingerprint,
                generation,
                state: State::InFlight,
            },
        );
        Claim::New
    }

    /// Records the answer to the request that claimed `key`.
    pub fn finish(&self, account: u32, key: &str, status: StatusCode, body: Value) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = g.map.get_mut(&(account, key.to_string())) {
            e.state = State::Done(status, body);
        }
    }

    /// Frees `key`: its request placed no order.
    pub fn release(&self, account: u32, key: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.map.remove(&(account, key.to_string()));
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn forget_old(&mut self, now: Instant) {
        while let Some((at, generation, _)) = self.order.front() {
            let expired = now.saturating_duration_since(*at) >= KEY_TTL;
            if !expired && self.map.len() < KEYS_MAX {
                break;
            }
            let generation = *generation;
            let (_, _, id) = self.order.pop_front().expect("front exists");
            if self
                .map
                .get(&id)
                .is_some_and(|e| e.generation == generation)
            {
                self.map.remove(&id);
            }
        }
        // Released keys leave their claims behind: keep the queue from outgrowing the map.
        if self.order.len() > 2 * KEYS_MAX {
            let map = &self.map;
            self.order.retain(|(_, generation, id)| {
                map.get(id).is_some_and(|e| e.generation == *generation)
            });
        }
    }
}

/// Checks a key's syntax: 1 to [`KEY_LEN_MAX`] visible ASCII characters.
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= KEY_LEN_MAX && key.iter().all(|b| (0x21..=0x7e).contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_key_is_claimed_once_answered_again_and_refused_for_another_order() {
        let keys = Keys::default();
        let t = Instant::now();
        assert_eq!(keys.claim(1, "k", 7, t), Claim::New);
        assert_eq!(keys.claim(1, "k", 7, t), Claim::InProgress);
        assert_eq!(keys.claim(1, "k", 8, t), Claim::Mismatch);
        // Another account's key of the same name is another key.
        assert_eq!(keys.claim(2, "k", 8, t), Claim::New);
        keys.finish(1, "k", StatusCode::OK, json!({"id": 5}));
        assert_eq!(
            keys.claim(1, "k", 7, t),
            Claim::Replay(StatusCode::OK, json!({"id": 5}))
        );
        keys.release(2, "k");
        assert_eq!(keys.claim(2, "k", 9, t), Claim::New);
    }

    #[test]
    fn keys_are_forgotten_after_their_time_and_beyond_the_maximum() {
        let keys = Keys::default();
        let t = Instant::now();
        assert_eq!(keys.claim(1, "old", 1, t), Claim::New);
        keys.finish(1, "old", StatusCode::OK, json!({}));
        let later = t + KEY_TTL;
        assert_eq!(keys.claim(1, "new", 1, later), Claim::New);
        // "old" expired: a claim is new again.
        assert_eq!(keys.claim(1, "old", 2, later), Claim::New);
        assert_eq!(keys.len(), 2);

        let keys = Keys::default();
        for i in 0..KEYS_MAX + 10 {
            assert_eq!(keys.claim(1, &i.to_string(), 0, t), Claim::New);
        }
        assert_eq!(keys.len(), KEYS_MAX);
        // The oldest went first.
        assert_eq!(keys.claim(1, "0", 0, t), Claim::New);
        assert_eq!(
            keys.claim(1, &(KEYS_MAX + 9).to_string(), 0, t),
            Claim::InProgress
        );
    }

    #[test]
    fn a_released_and_reclaimed_key_outlives_its_first_claim() {
        let keys = Keys::default();
        let t = Instant::now();
        assert_eq!(keys.claim(1, "k", 1, t), Claim::New);
        keys.release(1, "k");
        assert_eq!(
            keys.claim(1, "k", 1, t + Duration::from_secs(10)),
            Claim::New
        );
        // The first claim's time passes; the second claim stays.
        let at = t + KEY_TTL + Duration::from_secs(1);
        assert_eq!(keys.claim(1, "other", 0, at), Claim::New);
        assert_eq!(keys.claim(1, "k", 1, at), Claim::InProgress);
    }

    #[test]
    fn key_syntax() {
        assert!(valid_key(b"order-2026-12-07-0001"));
        assert!(!valid_key(b""));
        assert!(!valid_key(b"has space"));
        assert!(!valid_key(&[b'a'; KEY_LEN_MAX + 1]));
        assert!(valid_key(&[b'a'; KEY_LEN_MAX]));
    }
}
