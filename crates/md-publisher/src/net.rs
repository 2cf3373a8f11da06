//! The publisher's network side: multicast sends (with seeded fault injection), the bounded
//! per-channel history that retransmissions are served from, and the TCP fan-out.
//!
//! The history is kept whether or not the sockets are open: a standby publisher
//! ([`Network::standby`]) records every packet exactly as an active one would and sends
//! nothing; [`Network::connect`] opens the sockets when it is promoted.

use crate::config::{FaultConfig, NetConfig, TcpConfig};
use crate::core::PacketSink;
use md_core::Channel;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::time::Instant;

/// Opens the multicast sending socket: bound to the interface, IP_MULTICAST_IF set to it, TTL
/// and loopback as configured. The configuration must have been validated (loopback only).
pub fn multicast_sender(net: &NetConfig) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.bind(&SockAddr::from(SocketAddrV4::new(net.interface, 0)))?;
    s.set_multicast_if_v4(&net.interface)?;
    s.set_multicast_ttl_v4(net.ttl)?;
    s.set_multicast_loop_v4(net.loopback)?;
    s.set_send_buffer_size(4 << 20)?;
    Ok(s.into())
}

/// The last `capacity` packets of one channel, by sequence number. Slots are reused.
#[derive(Debug)]
pub struct History {
    slots: Vec<Vec<u8>>,
    capacity: usize,
    /// Sequence number of the oldest packet held (valid when `len > 0`).
    oldest: u32,
    len: usize,
}

impl History {
    pub fn new(capacity: usize) -> History {
        assert!(capacity > 0);
        History {
            slots: (0..capacity).map(|_| Vec::new()).collect(),
            capacity,
            oldest: 0,
            len: 0,
        }
    }

    /// Records packet `seq`, which must follow the newest one held.
    pub fn push(&mut self, seq: u32, bytes: &[u8]) {
        if self.len == 0 {
            self.oldest = seq;
        } else {
            assert_eq!(seq, self.newest() + 1, "history out of order");
        }
        let slot = &mut self.slots[seq as usize % self.capacity];
        slot.clear();
        slot.extend_from_slice(bytes);
        if self.len == self.capacity {
            self.oldest += 1;
        } else {
            self.len += 1;
        }
    }

    /// Oldest and newest sequence numbers held.
    pub fn range(&self) -> Option<(u32, u32)> {
        (self.len > 0).then(|| (self.oldest, self.newest()))
    }

    fn newest(&self) -> u32 {
        self.oldest + self.len as u32 - 1
    }

    pub fn get(&self, seq: u32) -> Option<&[u8]> {
        let (lo, hi) = self.range()?;
        (lo..=hi)
            .contains(&seq)
            .then(|| self.slots[seq as usize % self.capacity].as_slice())
    }
}

/// Counters of the network side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub send_errors: u64,
    pub injected_losses: u64,
    pub injected_duplicates: u64,
    pub injected_reorders: u64,
    pub tcp_subscribers: u64,
    pub tcp_dropped: u64,
    /// Heartbeat packets sent (each counted once, whatever the number of feeds).
    pub heartbeats_sent: u64,
}

struct Faults {
    config: FaultConfig,
    rng: ChaCha8Rng,
    /// Per feed and channel, a packet held back to be sent after the next one.
    held: Vec<Option<Vec<u8>>>,
}

/// The sockets of an active publisher.
struct Wire {
    socket: UdpSocket,
    feeds: Vec<[SocketAddr; 4]>,
    faults: Option<Faults>,
    tcp: Option<TcpFanout>,
}

/// Sends packets to the feeds, keeps history, fans out over TCP.
pub struct Network {
    pub(crate) history: [History; 4],
    /// None while on standby: packets go to the history only.
    wire: Option<Wire>,
    /// When each channel last sent a packet.
    pub(crate) last_send: [Instant; 4],
    /// The last packet of each channel (to repeat the end-of-session marker).
    last_packet: [Vec<u8>; 4],
    stats: NetStats,
    /// TCP subscribers dropped by fan-outs closed since (kept across deactivations).
    tcp_dropped_closed: u64,
}

impl Network {
    /// An active network: the sockets open at once.
    pub fn open(
        net: &NetConfig,
        history_packets_max: usize,
        tcp: TcpConfig,
        faults: Option<FaultConfig>,
    ) -> io::Result<Network> {
        let mut n = Network::standby(history_packets_max);
        n.connect(net, tcp, faults)?;
        Ok(n)
    }

    /// A network without sockets: packets are kept in the history and sent nowhere.
    pub fn standby(history_packets_max: usize) -> Network {
        Network {
            history: std::array::from_fn(|_| History::new(history_packets_max)),
            wire: None,
            last_send: [Instant::now(); 4],
            last_packet: std::array::from_fn(|_| Vec::new()),
            stats: NetStats::default(),
            tcp_dropped_closed: 0,
        }
    }

    /// Opens the multicast sender and the TCP fan-out (if configured); from now on packets are
    /// sent as well as kept. On error nothing is open. No-op when already connected.
    pub fn connect(
        &mut self,
        net: &NetConfig,
        tcp: TcpConfig,
        faults: Option<FaultConfig>,
    ) -> io::Result<()> {
        if self.wire.is_some() {
            return Ok(());
        }
        let socket = multicast_sender(net)?;
        let groups = |f: &crate::config::FeedGroups| Channel::ALL.map(|c| SocketAddr::V4(f.get(c)));
        let mut feeds = vec![groups(&net.feed_a)];
        if let Some(b) = &net.feed_b {
            feeds.push(groups(b));
        }
        let tcp = match net.tcp_bind {
            Some(addr) => Some(TcpFanout::open(addr, tcp)?),
            None => None,
        };
        self.wire = Some(Wire {
            socket,
            faults: faults.map(|config| Faults {
                config,
                rng: ChaCha8Rng::seed_from_u64(config.seed),
                held: vec![None; feeds.len() * 4],
            }),
            feeds,
            tcp,
        });
        self.last_send = [Instant::now(); 4];
        Ok(())
    }

    /// Closes every socket (TCP subscribers are disconnected); the history stays.
    pub fn disconnect(&mut self) {
        if let Some(w) = self.wire.take() {
            if let Some(t) = w.tcp {
                self.tcp_dropped_closed += t.dropped + t.subs.len() as u64;
            }
        }
    }

    pub fn is_connected(&self) -> bool {
        self.wire.is_some()
    }

    pub fn stats(&self) -> NetStats {
        let mut s = self.stats;
        s.tcp_dropped = self.tcp_dropped_closed;
        if let Some(t) = self.wire.as_ref().and_then(|w| w.tcp.as_ref()) {
            s.tcp_subscribers = t.subs.len() as u64;
            s.tcp_dropped += t.dropped;
        }
        s
    }

    fn tcp(&self) -> Option<&TcpFanout> {
        self.wire.as_ref().and_then(|w| w.tcp.as_ref())
    }

    /// For each TCP subscriber (in order of connection), how many updates it was sent first.
    pub fn tcp_first_counts(&self) -> Vec<u64> {
        self.tcp()
            .map_or_else(Vec::new, |t| t.subs.iter().map(|s| s.firsts).collect())
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp().and_then(|t| t.listener.local_addr().ok())
    }

    pub fn history(&self, channel: Channel) -> &History {
        &self.history[channel.index()]
    }

    fn send(stats: &mut NetStats, socket: &UdpSocket, bytes: &[u8], to: SocketAddr) {
        match socket.send_to(bytes, to) {
            Ok(n) => {
                stats.packets_sent += 1;
                stats.bytes_sent += n as u64;
            }
            Err(_) => stats.send_errors += 1,
        }
    }

    /// Sends a packet on every feed and to the TCP subscribers (active only).
    fn send_everywhere(&mut self, channel: Channel, bytes: &[u8]) {
        let Some(w) = self.wire.as_mut() else {
            return;
        };
        if let Some(t) = w.tcp.as_mut() {
            t.broadcast(channel, bytes);
        }
        for feed in 0..w.feeds.len() {
            Self::send_to_feed(&mut self.stats, w, feed, channel, bytes);
        }
        self.last_send[channel.index()] = Instant::now();
    }

    fn send_to_feed(
        stats: &mut NetStats,
        w: &mut Wire,
        feed: usize,
        channel: Channel,
        bytes: &[u8],
    ) {
        let to = w.feeds[feed][channel.index()];
        let socket = &w.socket;
        let Some(f) = w.faults.as_mut() else {
            Self::send(stats, socket, bytes, to);
            return;
        };
        let slot = feed * 4 + channel.index();
        let roll = |rng: &mut ChaCha8Rng, ppm: u32| rng.gen_range(0..1_000_000) < ppm;
        if roll(&mut f.rng, f.config.loss_ppm) {
            stats.injected_losses += 1;
            return;
        }
        let duplicate = roll(&mut f.rng, f.config.duplicate_ppm);
        if let Some(held) = f.held[slot].take() {
            // The held packet goes out after this one.
            Self::send(stats, socket, bytes, to);
            Self::send(stats, socket, &held, to);
        } else if roll(&mut f.rng, f.config.reorder_ppm) {
            f.held[slot] = Some(bytes.to_vec());
            stats.injected_reorders += 1;
            return;
        } else {
            Self::send(stats, socket, bytes, to);
        }
        if duplicate {
            stats.injected_duplicates += 1;
            Self::send(stats, socket, bytes, to);
        }
    }

    /// Sends the packets held back for reordering (when the channel goes quiet).
    pub fn release_held(&mut self) -> usize {
        let Some(w) = self.wire.as_mut() else {
            return 0;
        };
        let Some(f) = w.faults.as_mut() else {
            return 0;
        };
        let mut n = 0;
        for (slot, h) in f.held.iter_mut().enumerate() {
            if let Some(p) = h.take() {
                Self::send(&mut self.stats, &w.socket, &p, w.feeds[slot / 4][slot % 4]);
                n += 1;
            }
        }
        n
    }

    /// Sends the channel's last packet again, unchanged (MoldUDP64 repeats its end-of-session
    /// marker so that a receiver that lost it still learns the session ended).
    pub fn repeat_last(&mut self, channel: Channel) {
        let p = std::mem::take(&mut self.last_packet[channel.index()]);
        if !p.is_empty() {
            if let Some(w) = self.wire.as_mut() {
                for feed in 0..w.feeds.len() {
                    Self::send_to_feed(&mut self.stats, w, feed, channel, &p);
                }
            }
        }
        self.last_packet[channel.index()] = p;
        self.last_send[channel.index()] = Instant::now();
    }

    /// Accepts TCP subscribers and flushes their queues.
    pub fn poll_tcp(&mut self) -> usize {
        self.wire
            .as_mut()
            .and_then(|w| w.tcp.as_mut())
            .map_or(0, TcpFanout::poll)
    }

    /// The multicast socket, when active (for tests).
    pub fn socket(&self) -> Option<&UdpSocket> {
        self.wire.as_ref().map(|w| &w.socket)
    }
}

impl PacketSink for Network {
    fn packet(&mut self, channel: Channel, seq: u32, bytes: &[u8]) {
        if channel != Channel::Snapshot {
            self.history[channel.index()].push(seq, bytes);
        }
        self.send_everywhere(channel, bytes);
        let last = &mut self.last_packet[channel.index()];
        last.clear();
        last.extend_from_slice(bytes);
    }

    fn heartbeat(&mut self, channel: Channel, bytes: &[u8]) {
        if self.wire.is_some() {
            self.stats.heartbeats_sent += 1;
        }
        self.send_everywhere(channel, bytes);
    }
}

struct Subscriber {
    stream: TcpStream,
    queue: VecDeque<u8>,
    dead: bool,
    /// Updates in which this subscriber was first in the send order.
    firsts: u64,
}

/// TCP fan-out: every packet goes to every subscriber, in an order shuffled per packet.
///
/// Frame on the stream: u16 LE length of what follows, u8 channel id, then the packet exactly
/// as multicast carries it.
pub struct TcpFanout {
    listener: TcpListener,
    subs: Vec<Subscriber>,
    config: TcpConfig,
    rng: ChaCha8Rng,
    order: Vec<usize>,
    frame: Vec<u8>,
    dropped: u64,
}

impl TcpFanout {
    pub fn open(addr: SocketAddrV4, config: TcpConfig) -> io::Result<TcpFanout> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(TcpFanout {
            listener,
            subs: Vec::with_capacity(config.subscribers_max),
            rng: ChaCha8Rng::seed_from_u64(config.shuffle_seed),
            order: Vec::with_capacity(config.subscribers_max),
            frame: Vec::with_capacity(65_536),
            config,
            dropped: 0,
        })
    }

    fn poll(&mut self) -> usize {
        let mut work = 0;
        while let Ok((stream, _)) = self.listener.accept() {
            work += 1;
            if self.subs.len() >= self.config.subscribers_max
                || stream.set_nonblocking(true).is_err()
                || stream.set_nodelay(true).is_err()
            {
                self.dropped += 1;
                continue;
            }
            self.subs.push(Subscriber {
                stream,
                queue: VecDeque::new(),
                dead: false,
                firsts: 0,
            });
        }
        for s in &mut self.subs {
            if !s.queue.is_empty() {
                work += 1;
                Self::drain(s);
            }
        }
        self.reap();
        work
    }

    fn drain(s: &mut Subscriber) {
        while !s.queue.is_empty() {
            let (a, _) = s.queue.as_slices();
            match s.stream.write(a) {
                Ok(0) => {
                    s.dead = true;
                    return;
                }
                Ok(n) => {
                    s.queue.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    s.dead = true;
                    return;
                }
            }
        }
    }

    fn reap(&mut self) {
        let before = self.subs.len();
        self.subs.retain(|s| !s.dead);
        self.dropped += (before - self.subs.len()) as u64;
    }

    fn broadcast(&mut self, channel: Channel, packet: &[u8]) {
        if self.subs.is_empty() {
            return;
        }
        self.frame.clear();
        let len = u16::try_from(packet.len() + 1).expect("packet below 65535 bytes");
        self.frame.extend_from_slice(&len.to_le_bytes());
        self.frame.push(channel as u8);
        self.frame.extend_from_slice(packet);
        self.order.clear();
        self.order.extend(0..self.subs.len());
        self.order.shuffle(&mut self.rng);
        self.subs[self.order[0]].firsts += 1;
        for &i in &self.order {
            let s = &mut self.subs[i];
            if s.dead {
                continue;
            }
            let mut written = 0;
            if s.queue.is_empty() {
                match s.stream.write(&self.frame) {
                    Ok(n) => written = n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        s.dead = true;
                        continue;
                    }
                }
            }
            let rest = &self.frame[written..];
            if s.queue.len() + rest.len() > self.config.queue_bytes_max {
                // A slow consumer is dropped rather than allowed to hold memory.
                s.dead = true;
                continue;
            }
            s.queue.extend(rest);
        }
        self.reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_newest_packets() {
        let mut h = History::new(3);
        assert_eq!(h.range(), None);
        for seq in 1..=5_u32 {
            h.push(seq, &seq.to_le_bytes());
        }
        assert_eq!(h.range(), Some((3, 5)));
        assert_eq!(h.get(2), None);
        assert_eq!(h.get(4), Some(&4_u32.to_le_bytes()[..]));
        assert_eq!(h.get(6), None);
    }
}
