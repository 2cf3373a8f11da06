//! Sockets of the consumer: multicast receivers for every channel of feed A (and B), one
//! unicast socket per incremental channel for retransmission requests and their answers, and a
//! TCP reader for the publisher's fan-out.
//!
//! Retransmission servers are tried in the configured order
//! ([`ConsumerConfig::retransmit_servers`]): per channel, a request sent when the previous one
//! brought no datagram at all goes to the next server of the list. After a failover the dead
//! leader's server stays silent, so within one `retransmit_timeout` the requests reach the new
//! leader, whose history holds the same packets.

use crate::client::MdClient;
use crate::config::ConsumerConfig;
use md_core::{Channel, MdMsg};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::Instant;

/// Joins `group` on `interface` with a socket bound to the group's address and port (so it
/// receives only that group), address reuse on so several consumers share the port.
pub fn join_multicast(
    group: SocketAddrV4,
    interface: Ipv4Addr,
    receive_buffer: usize,
) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_recv_buffer_size(receive_buffer)?;
    s.bind(&SockAddr::from(group))?;
    s.join_multicast_v4(group.ip(), &interface)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The retransmission requests of one channel: answers come back to the socket that asked.
struct Requester {
    channel: Channel,
    socket: UdpSocket,
    /// Index of the server requests go to.
    server: usize,
    /// A request was sent and nothing has come back since.
    unanswered: bool,
}

/// A consumer on real sockets: [`Consumer::poll`] reads what arrived, feeds the
/// [`MdClient`] and sends the retransmission requests it asks for.
pub struct Consumer {
    client: MdClient,
    receivers: Vec<(Channel, UdpSocket)>,
    /// One per incremental channel (none without a retransmission server).
    requesters: Vec<Requester>,
    servers: Vec<SocketAddr>,
    reads_max: usize,
    buf: Vec<u8>,
    scratch: [u8; 64],
}

impl Consumer {
    pub fn open(config: ConsumerConfig) -> io::Result<Consumer> {
        let mut receivers = Vec::new();
        for feed in std::iter::once(&config.feed_a).chain(config.feed_b.iter()) {
            for c in Channel::ALL {
                receivers.push((
                    c,
                    join_multicast(feed.get(c), config.interface, config.socket_receive_buffer)?,
                ));
            }
        }
        let servers = config.retransmit_servers();
        let mut requesters = Vec::new();
        if !servers.is_empty() {
            for channel in Channel::INCREMENTAL {
                let socket = UdpSocket::bind(SocketAddrV4::new(config.interface, 0))?;
                socket.set_nonblocking(true)?;
                requesters.push(Requester {
                    channel,
                    socket,
                    server: 0,
                    unanswered: false,
                });
            }
        }
        Ok(Consumer {
            client: MdClient::new(config.clone(), !servers.is_empty()),
            receivers,
            requesters,
            servers,
            reads_max: config.reads_per_poll_max,
            buf: vec![0; 65_536],
            scratch: [0; 64],
        })
    }

    pub fn client(&self) -> &MdClient {
        &self.client
    }

    /// The retransmission server the channel's next request goes to (None without servers).
    pub fn retransmit_server_in_use(&self, channel: Channel) -> Option<SocketAddr> {
        let r = self.requesters.iter().find(|r| r.channel == channel)?;
        Some(self.servers[r.server])
    }

    /// Reads every socket, applies what arrived (calling `observe` with each datagram first)
    /// and sends due retransmission requests; returns the datagrams read.
    pub fn poll_with(&mut self, mut observe: impl FnMut(Channel, &[u8])) -> usize {
        let mut n = 0;
        let sockets = self.receivers.iter().map(|(c, s)| (*c, s, None));
        let answers = self
            .requesters
            .iter_mut()
            .map(|r| (r.channel, &r.socket, Some(&mut r.unanswered)));
        for (c, s, mut unanswered) in sockets.chain(answers) {
            for _ in 0..self.reads_max {
                match s.recv_from(&mut self.buf) {
                    Ok((len, _)) => {
                        if let Some(u) = unanswered.as_deref_mut() {
                            *u = false;
                        }
                        observe(c, &self.buf[..len]);
                        self.client.on_packet(c, &self.buf[..len], Instant::now());
                        n += 1;
                    }
                    Err(_) => break,
                }
            }
        }
        for req in self.client.gap_requests(Instant::now()) {
            let msg = MdMsg::RetransmitRequest {
                channel: req.channel as u8,
                first_seq: req.first_seq,
                count: req.count,
            };
            let len = msg
                .encode(&mut self.scratch)
                .expect("a request fits 64 bytes");
            let Some(r) = self
                .requesters
                .iter_mut()
                .find(|r| r.channel == req.channel)
            else {
                continue;
            };
            if r.unanswered {
                // The last request went unanswered: that server may be gone (a failed-over
                // leader); try the next one.
                r.server = (r.server + 1) % self.servers.len();
            }
            r.unanswered = true;
            let _ = r
                .socket
                .send_to(&self.scratch[..len], self.servers[r.server]);
        }
        n
    }

    pub fn poll(&mut self) -> usize {
        self.poll_with(|_, _| {})
    }
}

/// Reads the TCP fan-out's frames (u16 LE length, u8 channel, packet) into an [`MdClient`].
pub struct TcpConsumer {
    client: MdClient,
    stream: TcpStream,
    buf: Vec<u8>,
    filled: usize,
}

impl TcpConsumer {
    pub fn connect(addr: SocketAddr, config: ConsumerConfig) -> io::Result<TcpConsumer> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        Ok(TcpConsumer {
            client: MdClient::new(config, false),
            stream,
            buf: vec![0; 1 << 17],
            filled: 0,
        })
    }

    pub fn client(&self) -> &MdClient {
        &self.client
    }

    /// Reads what is available; calls `observe` with each packet before applying it. Returns
    /// the packets read, or an error if the stream closed or sent a frame that cannot be one.
    pub fn poll_with(&mut self, mut observe: impl FnMut(Channel, &[u8])) -> io::Result<usize> {
        match self.stream.read(&mut self.buf[self.filled..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => self.filled += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let mut at = 0;
        let mut packets = 0;
        while self.filled - at >= 3 {
            let len = usize::from(u16::from_le_bytes([self.buf[at], self.buf[at + 1]]));
            if len < 1 {
                return Err(io::ErrorKind::InvalidData.into());
            }
            if self.filled - at < 2 + len {
                break;
            }
            let Some(c) = Channel::from_u8(self.buf[at + 2]) else {
                return Err(io::ErrorKind::InvalidData.into());
            };
            let packet = &self.buf[at + 3..at + 2 + len];
            observe(c, packet);
            self.client.on_packet(c, packet, Instant::now());
            packets += 1;
            at += 2 + len;
        }
        self.buf.copy_within(at..self.filled, 0);
        self.filled -= at;
        // No retransmission over TCP: a gap (packets sent before we connected) is skipped
        // after the timeout, and the instruments it touched resync from snapshots.
        let requests = self.client.gap_requests(Instant::now());
        debug_assert!(requests.is_empty());
        Ok(packets)
    }
}
