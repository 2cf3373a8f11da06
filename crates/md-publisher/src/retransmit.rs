//! Retransmission server in the MoldUDP64 manner.
//!
//! A consumer sends a `RetransmitRequest` (channel, first sequence, count) as one UDP datagram
//! (a bare SBE message, no packet header). The server answers from the channel's bounded history
//! with the original packets, byte for byte, sent back to the requester's address. A request it
//! cannot serve is answered with one packet of sequence number 0 holding a `RetransmitReject`:
//! `NotAvailable` (with the oldest and newest sequence held) when the first packet asked for is
//! older than the history or not sent yet, `RateLimited` when the requester's token bucket is
//! empty, `UnknownChannel`, or `InvalidRequest` (undecodable, count 0 or above the maximum).
//! Requests for packets past the newest are served up to the newest.

use crate::config::RetransmitConfig;
use crate::net::History;
use md_core::{Channel, MdMsg, PacketBuilder, RejectReason};
use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::time::Instant;

/// Requests handled per poll at most.
const REQUESTS_PER_POLL_MAX: usize = 64;
const MICROS: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetransmitStats {
    pub requests: u64,
    pub packets_resent: u64,
    pub not_available: u64,
    pub rate_limited: u64,
    pub invalid: u64,
}

struct Requester {
    addr: SocketAddr,
    /// Tokens in packet-microseconds (a packet costs 1_000_000), so refill needs no floats.
    tokens: u64,
    last: Instant,
}

pub struct RetransmitServer {
    socket: UdpSocket,
    config: RetransmitConfig,
    requesters: Vec<Requester>,
    buf: Vec<u8>,
    reject: PacketBuilder,
    scratch: [u8; 64],
    stats: RetransmitStats,
}

impl RetransmitServer {
    pub fn open(
        bind: SocketAddrV4,
        config: RetransmitConfig,
        packet_size_max: usize,
    ) -> io::Result<RetransmitServer> {
        let socket = UdpSocket::bind(bind)?;
        socket.set_nonblocking(true)?;
        Ok(RetransmitServer {
            socket,
            requesters: Vec::with_capacity(config.requesters_max),
            config,
            buf: vec![0; 2048],
            reject: PacketBuilder::new(packet_size_max),
            scratch: [0; 64],
            stats: RetransmitStats::default(),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub fn stats(&self) -> RetransmitStats {
        self.stats
    }

    /// Answers the pending requests; returns how many it handled.
    pub fn poll(&mut self, history: &[History; 4], now_ns: u64) -> usize {
        let mut n = 0;
        while n < REQUESTS_PER_POLL_MAX {
            let (len, from) = match self.socket.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(_) => break,
            };
            n += 1;
            self.stats.requests += 1;
            let req = MdMsg::decode(&self.buf[..len]);
            let (channel, first_seq, count) = match req {
                Ok(MdMsg::RetransmitRequest {
                    channel,
                    first_seq,
                    count,
                }) => (channel, first_seq, count),
                _ => {
                    self.stats.invalid += 1;
                    self.answer_reject(from, 0, 0, 0, (0, 0), RejectReason::InvalidRequest, now_ns);
                    continue;
                }
            };
            let ch = match Channel::from_u8(channel) {
                Some(c) if c != Channel::Snapshot => c,
                _ => {
                    self.stats.invalid += 1;
                    self.answer_reject(
                        from,
                        channel,
                        first_seq,
                        count,
                        (0, 0),
                        RejectReason::UnknownChannel,
                        now_ns,
                    );
                    continue;
                }
            };
            let h = &history[ch.index()];
            let range = h.range().unwrap_or((0, 0));
            if count == 0 || count > self.config.request_count_max || first_seq == 0 {
                self.stats.invalid += 1;
                self.answer_reject(
                    from,
                    channel,
                    first_seq,
                    count,
                    range,
                    RejectReason::InvalidRequest,
                    now_ns,
                );
                continue;
            }
            let (lo, hi) = match h.range() {
                Some((lo, hi)) if first_seq >= lo && first_seq <= hi => (lo, hi),
                _ => {
                    self.stats.not_available += 1;
                    self.answer_reject(
                        from,
                        channel,
                        first_seq,
                        count,
                        range,
                        RejectReason::NotAvailable,
                        now_ns,
                    );
                    continue;
                }
            };
            debug_assert!(lo <= first_seq);
            let last = hi.min(first_seq.saturating_add(u32::from(count) - 1));
            let packets = u64::from(last - first_seq + 1);
            if !self.take_tokens(from, packets) {
                self.stats.rate_limited += 1;
                self.answer_reject(
                    from,
                    channel,
                    first_seq,
                    count,
                    range,
                    RejectReason::RateLimited,
                    now_ns,
                );
                continue;
            }
            for seq in first_seq..=last {
                let p = h.get(seq).expect("inside the history range");
                if self.socket.send_to(p, from).is_ok() {
                    self.stats.packets_resent += 1;
                }
            }
        }
        n
    }

    /// Token bucket per requester address.
    fn take_tokens(&mut self, addr: SocketAddr, packets: u64) -> bool {
        let now = Instant::now();
        let cap = u64::from(self.config.burst_packets) * MICROS;
        let i = match self.requesters.iter().position(|r| r.addr == addr) {
            Some(i) => i,
            None => {
                if self.requesters.len() == self.config.requesters_max {
                    // Forget the requester seen least recently.
                    let oldest = self
                        .requesters
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, r)| r.last)
                        .map(|(i, _)| i)
                        .expect("requesters_max > 0");
                    self.requesters.swap_remove(oldest);
                }
                self.requesters.push(Requester {
                    addr,
                    tokens: cap,
                    last: now,
                });
                self.requesters.len() - 1
            }
        };
        let r = &mut self.requesters[i];
        let elapsed_us = now
            .duration_since(r.last)
            .as_micros()
            .min(u128::from(u32::MAX)) as u64;
        r.tokens = r
            .tokens
            .saturating_add(elapsed_us * u64::from(self.config.packets_per_second))
            .min(cap);
        r.last = now;
        let cost = packets * MICROS;
        if r.tokens < cost {
            return false;
        }
        r.tokens -= cost;
        true
    }

    #[allow(clippy::too_many_arguments)]
    fn answer_reject(
        &mut self,
        to: SocketAddr,
        channel: u8,
        first_seq: u32,
        count: u16,
        range: (u32, u32),
        reason: RejectReason,
        now_ns: u64,
    ) {
        let msg = MdMsg::RetransmitReject {
            channel,
            first_seq,
            count,
            oldest_available: range.0,
            newest_available: range.1,
            reason,
        };
        let len = msg
            .encode(&mut self.scratch)
            .expect("a reject fits 64 bytes");
        self.reject.reset();
        assert!(self.reject.push(&self.scratch[..len]));
        let p = self.reject.finish(0, now_ns);
        let _ = self.socket.send_to(p, to);
    }
}
