//! The publisher agent: one duty cycle (`do_work`) that polls the outbound journal, answers
//! retransmission requests, serves the TCP fan-out and sends heartbeats and snapshots on time.

use crate::config::{ConfigError, PublisherConfig, SendingTime};
use crate::core::MdCore;
use crate::net::{NetStats, Network};
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

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub struct PublisherAgent {
    config: PublisherConfig,
    core: MdCore,
    reader: Reader,
    net: Network,
    retransmit: RetransmitServer,
    last_snapshot: Instant,
    ended: bool,
    /// Repeats of the end-of-session packets still to send.
    end_repeats_left: u32,
}

impl PublisherAgent {
    /// Opens the sockets and a reader on `journal` from sequence 1, and sends the instrument
    /// definitions on L1.
    pub fn open(
        config: PublisherConfig,
        products: &[matching::ProductConfig],
        journal: &Journal,
    ) -> Result<PublisherAgent, PublisherError> {
        config.validate()?;
        let reader = journal.reader(1)?;
        let mut net = Network::open(
            &config.net,
            config.retransmit.history_packets_max,
            config.tcp,
            config.faults,
        )?;
        let retransmit = RetransmitServer::open(
            config.net.retransmit_bind,
            config.retransmit,
            config.core.packet_size_max,
        )?;
        let mut core = MdCore::new(config.core.clone(), products);
        // With journal time, packets before the first frame carry time 0.
        core.set_time(match config.sending_time {
            SendingTime::Wall => wall_ns(),
            SendingTime::Journal => 0,
        });
        core.send_definitions(&mut net);
        core.flush(&mut net);
        Ok(PublisherAgent {
            config,
            core,
            reader,
            net,
            retransmit,
            last_snapshot: Instant::now(),
            ended: false,
            end_repeats_left: 0,
        })
    }

    pub fn core(&self) -> &MdCore {
        &self.core
    }

    pub fn net_stats(&self) -> NetStats {
        self.net.stats()
    }

    pub fn retransmit_stats(&self) -> RetransmitStats {
        self.retransmit.stats()
    }

    pub fn retransmit_addr(&self) -> SocketAddr {
        self.retransmit.local_addr().expect("bound socket")
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.net.tcp_addr()
    }

    /// Per TCP subscriber, how many updates it was sent first (see [`Network::tcp_first_counts`]).
    pub fn tcp_first_counts(&self) -> Vec<u64> {
        self.net.tcp_first_counts()
    }

    /// The next journal sequence the agent will read.
    pub fn next_journal_seq(&self) -> u64 {
        self.reader.next_sequence()
    }

    fn stamp(&mut self) {
        if self.config.sending_time == SendingTime::Wall {
            self.core.set_time(wall_ns());
        }
    }

    /// One duty cycle; returns the amount of work done (0: idle).
    pub fn do_work(&mut self) -> Result<usize, PublisherError> {
        let mut work = 0;
        let journal_time = self.config.sending_time == SendingTime::Journal;
        for _ in 0..self.config.batch_max {
            let Some(f) = self.reader.poll()? else {
                break;
            };
            if journal_time {
                self.core.set_time(f.timestamp_ns);
            } else {
                self.core.set_time(wall_ns());
            }
            self.core
                .on_frame(f.timestamp_ns, f.template_id, f.payload, &mut self.net);
            work += 1;
        }
        if work > 0 {
            self.stamp();
            self.core.flush(&mut self.net);
        }
        let now_ns = if journal_time {
            self.core.time()
        } else {
            wall_ns()
        };
        work += self.retransmit.poll(&self.net.history, now_ns);
        work += self.net.poll_tcp();
        let now = Instant::now();
        if !self.ended && now.duration_since(self.last_snapshot) >= self.config.snapshot_interval {
            self.last_snapshot = now;
            self.stamp();
            if self.core.snapshot_next(&mut self.net).is_some() {
                work += 1;
            }
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
    /// snapshots are sent (retransmission requests are still answered).
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
        let mut idle = IdleStrategy::new(self.config.idle);
        while !stop.load(Ordering::Acquire) {
            let n = self.do_work()?;
            idle.idle(n);
        }
        Ok(())
    }
}
