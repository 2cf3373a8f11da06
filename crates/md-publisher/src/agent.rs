//! The publisher agent: one duty cycle (`do_work`) that polls the outbound journal, answers
//! retransmission requests, serves the TCP fan-out and sends heartbeats and snapshots on time.
//!
//! **Standby and activation.** In a cluster every node runs a publisher on its own copy of the
//! outbound journal (identical on every node); only the leader's is active. A standby publisher
//! ([`PublisherAgent::open_standby`]) reads the journal, rebuilds the books and records every
//! incremental packet in its retransmission history exactly as the active one does, but opens
//! no socket at all: it sends nothing, binds no retransmission or TCP port (so it can share a
//! host, and a configured port, with the active one) and takes no snapshots.
//! [`PublisherAgent::activate`] opens the sockets and sends a heartbeat on every channel at
//! once, naming the next sequence number: consumers that missed the old leader's last packets
//! see the gap immediately and fetch it from this node's history, which holds the packets it
//! built while on standby. Because packet boundaries and sequence numbers are a function of the
//! journal (see [`crate::core`]), the new leader's packets are the old leader's, byte for byte.
//! [`PublisherAgent::deactivate`] closes the sockets again (a demoted leader must stop).

use crate::config::{ConfigError, PublisherConfig, SendingTime};
use crate::core::MdCore;
use crate::net::{History, NetStats, Network};
use crate::retransmit::{RetransmitServer, RetransmitStats};
use journal::{IdleStrategy, Journal, ReadError, Reader, ReaderError};
use md_core::Channel;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublisherError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("journal reader: {0}")]
    Reader(#[from] ReaderError),
    #[error("journal read: {0}")]
    Read(#[from] ReadError),
}

/// How often the duty cycle looks at the retransmission socket and the TCP subscribers.
const SOCKET_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_micros(100);

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub struct PublisherAgent {
    config: PublisherConfig,
    core: MdCore,
    reader: Reader,
    /// When the sockets are polled next (see [`SOCKET_POLL_INTERVAL`]).
    next_socket_poll: Instant,
    /// The outbound journal's bell (rung on each commit of the matching agent).
    bell: std::sync::Arc<journal::Doorbell>,
    net: Network,
    /// Present while active.
    retransmit: Option<RetransmitServer>,
    /// Counters of retransmission servers closed by [`PublisherAgent::deactivate`].
    retransmit_closed: RetransmitStats,
    last_snapshot: Instant,
    ended: bool,
    /// Repeats of the end-of-session packets still to send.
    end_repeats_left: u32,
}

fn add_stats(a: RetransmitStats, b: RetransmitStats) -> RetransmitStats {
    RetransmitStats {
        requests: a.requests + b.requests,
        packets_resent: a.packets_resent + b.packets_resent,
        not_available: a.not_available + b.not_available,
        rate_limited: a.rate_limited + b.rate_limited,
        invalid: a.invalid + b.invalid,
    }
}

impl PublisherAgent {
    /// An active publisher: opens the sockets and a reader on `journal` from sequence 1, and
    /// sends the instrument definitions on L1.
    pub fn open(
        config: PublisherConfig,
        products: &[matching::ProductConfig],
        journal: &Journal,
    ) -> Result<PublisherAgent, PublisherError> {
        Self::open_as(config, products, journal, true)
    }

    /// A standby publisher: everything [`PublisherAgent::open`] does except opening sockets;
    /// the definitions and every later packet go to the history only, until
    /// [`PublisherAgent::activate`].
    pub fn open_standby(
        config: PublisherConfig,
        products: &[matching::ProductConfig],
        journal: &Journal,
    ) -> Result<PublisherAgent, PublisherError> {
        Self::open_as(config, products, journal, false)
    }

    fn open_as(
        config: PublisherConfig,
        products: &[matching::ProductConfig],
        journal: &Journal,
        active: bool,
    ) -> Result<PublisherAgent, PublisherError> {
        config.validate()?;
        let reader = journal.reader(1)?;
        let net = Network::standby(config.retransmit.history_packets_max);
        let core = MdCore::new(config.core.clone(), products);
        let mut agent = PublisherAgent {
            config,
            core,
            reader,
            bell: journal.doorbell(),
            next_socket_poll: Instant::now(),
            net,
            retransmit: None,
            retransmit_closed: RetransmitStats::default(),
            last_snapshot: Instant::now(),
            ended: false,
            end_repeats_left: 0,
        };
        if active {
            agent.open_sockets()?;
        }
        // Definitions first: packets 1.. of L1 on every node, active or not.
        agent.stamp();
        agent.core.send_definitions(&mut agent.net);
        agent.core.flush(&mut agent.net);
        Ok(agent)
    }

    fn open_sockets(&mut self) -> Result<(), PublisherError> {
        let c = &self.config;
        self.net.connect(&c.net, c.tcp, c.faults)?;
        match RetransmitServer::open(c.net.retransmit_bind, c.retransmit, c.core.packet_size_max) {
            Ok(r) => self.retransmit = Some(r),
            Err(e) => {
                self.net.disconnect();
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Promotes a standby publisher: binds the retransmission server (and the TCP fan-out),
    /// opens the multicast sender, and sends a heartbeat on every channel naming the next
    /// sequence number, so that consumers learn at once of packets they missed. From then on
    /// the duty cycle sends what it builds, snapshots and heartbeats included, and answers
    /// retransmission requests from the history built while on standby. On error (a port in
    /// use, typically the old leader's on the same host) nothing is open and the publisher
    /// stays on standby; call again. No-op when active.
    pub fn activate(&mut self) -> Result<(), PublisherError> {
        if self.is_active() {
            return Ok(());
        }
        self.open_sockets()?;
        self.stamp();
        if !self.ended {
            for c in Channel::ALL {
                self.core.heartbeat(c, &mut self.net);
            }
        }
        Ok(())
    }

    /// Back to standby: closes every socket (TCP subscribers are dropped). The journal is
    /// still read and the history still kept, so a later [`PublisherAgent::activate`] carries
    /// on with the same sequence numbers.
    pub fn deactivate(&mut self) {
        self.net.disconnect();
        if let Some(r) = self.retransmit.take() {
            self.retransmit_closed = add_stats(self.retransmit_closed, r.stats());
        }
    }

    /// Sets the mode: [`PublisherAgent::activate`] or [`PublisherAgent::deactivate`].
    pub fn set_active(&mut self, active: bool) -> Result<(), PublisherError> {
        if active {
            self.activate()
        } else {
            self.deactivate();
            Ok(())
        }
    }

    pub fn is_active(&self) -> bool {
        self.retransmit.is_some()
    }

    pub fn core(&self) -> &MdCore {
        &self.core
    }

    pub fn net_stats(&self) -> NetStats {
        self.net.stats()
    }

    /// The packets kept for retransmission on a channel (built whether active or not).
    pub fn history(&self, channel: Channel) -> &History {
        self.net.history(channel)
    }

    pub fn retransmit_stats(&self) -> RetransmitStats {
        match &self.retransmit {
            Some(r) => add_stats(self.retransmit_closed, r.stats()),
            None => self.retransmit_closed,
        }
    }

    /// Where the retransmission server listens; on standby, the configured address it will
    /// bind at activation (port 0 there means: chosen then).
    pub fn retransmit_addr(&self) -> SocketAddr {
        self.retransmit
            .as_ref()
            .and_then(|r| r.local_addr().ok())
            .unwrap_or(SocketAddr::V4(self.config.net.retransmit_bind))
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.net.tcp_addr()
    }

    /// Per TCP subscriber, how many updates it was sent first (see [`Network::tcp_first_counts`]).
    pub fn tcp_first_counts(&self) -> Vec<u64> {
        self.net.tcp_first_counts()
    }

    /// The outbound journal's bell: for an idler on the thread that drives [`Self::do_work`].
    pub fn doorbell(&self) -> std::sync::Arc<journal::Doorbell> {
        self.bell.clone()
    }

    /// The next journal sequence the agent will read.
    pub fn next_journal_seq(&self) -> u64 {
        self.reader.next_sequence()
    }

    /// With wall-clock sending times, reads the clock for the next heartbeat, snapshot or
    /// end-of-session packet (incremental packets always carry journal time).
    fn stamp(&mut self) {
        if self.config.sending_time == SendingTime::Wall {
            self.core.set_time(wall_ns());
        }
    }

    fn snapshot(&mut self, now: Instant) {
        self.last_snapshot = now;
        self.stamp();
        self.core.snapshot_next(&mut self.net);
    }

    /// One duty cycle; returns the amount of work done (0: idle).
    pub fn do_work(&mut self) -> Result<usize, PublisherError> {
        let now = Instant::now();
        let active = self.is_active();
        let journal_time = self.config.sending_time == SendingTime::Journal;
        let mut snapshot_due = active
            && !self.ended
            && now.duration_since(self.last_snapshot) >= self.config.snapshot_interval;
        let mut work = 0;
        while work < self.config.batch_max {
            let Some(f) = self.reader.poll()? else {
                break;
            };
            if journal_time {
                self.core.set_time(f.timestamp_ns);
            }
            if snapshot_due && self.core.at_event_boundary() {
                // No packet open: the snapshot reflects exactly the packets sent.
                self.last_snapshot = now;
                if self.config.sending_time == SendingTime::Wall {
                    self.core.set_time(wall_ns());
                }
                self.core.snapshot_next(&mut self.net);
                snapshot_due = false;
            }
            self.core.on_frame(
                f.timestamp_ns,
                f.template_id,
                f.payload,
                f.end_of_batch,
                &mut self.net,
            );
            work += 1;
        }
        // Packets close at the journal's ends of batch (the matching agent publishes a batch's
        // outputs at once, so a reader that ran dry normally has no packet open); never here.
        if !active {
            return Ok(work);
        }
        if snapshot_due && self.core.at_event_boundary() {
            self.snapshot(now);
            work += 1;
        }
        let now_ns = if journal_time {
            self.core.time()
        } else {
            wall_ns()
        };
        // Requests and subscribers are looked at every SOCKET_POLL_INTERVAL at most: a
        // system call or two per duty cycle was most of this thread's CPU while it spun
        // between orders at moderate rates.
        if now >= self.next_socket_poll {
            self.next_socket_poll = now + SOCKET_POLL_INTERVAL;
            if let Some(r) = self.retransmit.as_mut() {
                work += r.poll(&self.net.history, now_ns);
            }
            work += self.net.poll_tcp();
        }
        if !self.ended {
            for c in Channel::ALL {
                if now.duration_since(self.net.last_send[c.index()])
                    >= self.config.heartbeat_interval
                {
                    self.stamp();
                    self.core.heartbeat(c, &mut self.net);
                    work += 1;
                }
            }
        }
        if self.ended
            && self.end_repeats_left > 0
            && now.duration_since(self.net.last_send[0]) >= self.config.heartbeat_interval
        {
            self.end_repeats_left -= 1;
            for c in Channel::ALL {
                self.net.repeat_last(c);
            }
            work += 1;
        }
        if work == 0 {
            self.net.release_held();
        }
        Ok(work)
    }

    /// Sends the end-of-session marker on every channel, then repeats it
    /// `end_of_session_repeats` times, one `heartbeat_interval` apart; after it no heartbeats or
    /// snapshots are sent (retransmission requests are still answered). On standby the marker
    /// only goes to the history.
    pub fn end_session(&mut self) {
        self.stamp();
        self.core.end_of_session(&mut self.net);
        self.net.release_held();
        self.ended = true;
        self.end_repeats_left = self.config.end_of_session_repeats;
    }

    /// Runs the duty cycle until `stop`, idling with the configured strategy (`config.idle`)
    /// when there is nothing to do.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), PublisherError> {
        let mut idle = IdleStrategy::new(self.config.idle).waiting_on(&self.bell);
        while !stop.load(Ordering::Acquire) {
            let n = self.do_work()?;
            idle.idle(n);
        }
        Ok(())
    }
}
