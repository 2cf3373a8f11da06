//! A session's byte stream: plain TCP, or TLS (rustls) over TCP. The sender writes and the
//! session's receiver thread reads at the same time, so the TLS state sits behind a mutex that
//! is held only while bytes move, never while waiting: the receiver waits for the socket with
//! `poll(2)` first, then takes the lock to decrypt what arrived.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a read waits before it reports `WouldBlock` (so the receiver can check for stop).
const READ_WAIT: Duration = Duration::from_millis(50);

pub struct Tls {
    sock: TcpStream,
    conn: Mutex<rustls::ClientConnection>,
}

#[derive(Clone)]
pub enum Transport {
    Tcp(Arc<TcpStream>),
    Tls(Arc<Tls>),
}

/// A client configuration trusting the PEM certificates in `ca_pem` (the appliance's
/// self-signed certificate, or its CA).
pub fn client_config(ca_pem: &std::path::Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca_pem)?;
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert?)?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(cfg))
}

impl Transport {
    /// Connects, and for TLS completes the handshake with server name `localhost`.
    pub fn connect(
        addr: std::net::SocketAddr,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> anyhow::Result<Transport> {
        let sock = TcpStream::connect(addr)?;
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(READ_WAIT))?;
        let Some(cfg) = tls else {
            return Ok(Transport::Tcp(Arc::new(sock)));
        };
        let name = rustls::pki_types::ServerName::try_from("localhost")?;
        let mut conn = rustls::ClientConnection::new(cfg.clone(), name)?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut &sock)?;
        }
        sock.set_read_timeout(Some(READ_WAIT))?;
        Ok(Transport::Tls(Arc::new(Tls {
            sock,
            conn: Mutex::new(conn),
        })))
    }

    pub fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => (&**s).write_all(bytes),
            Transport::Tls(t) => {
                let mut c = t
                    .conn
                    .lock()
                    .map_err(|_| io::Error::other("TLS lock poisoned"))?;
                c.writer().write_all(bytes)?;
                while c.wants_write() {
                    c.write_tls(&mut &t.sock)?;
                }
                Ok(())
            }
        }
    }

    /// Reads what is available; `Ok(0)` is the end of the stream; `WouldBlock`/`TimedOut`
    /// after about 50 ms without data.
    pub fn read(&self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => (&**s).read(out),
            Transport::Tls(t) => {
                if let Some(n) = t.plaintext(out)? {
                    return Ok(n);
                }
                let mut fds = libc::pollfd {
                    fd: t.sock.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd, for the duration of the call.
                let ready = unsafe { libc::poll(&mut fds, 1, READ_WAIT.as_millis() as i32) };
                if ready < 0 {
                    return Err(io::Error::last_os_error());
                }
                if ready == 0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                {
                    let mut c = t
                        .conn
                        .lock()
                        .map_err(|_| io::Error::other("TLS lock poisoned"))?;
                    if c.read_tls(&mut &t.sock)? == 0 {
                        return Ok(0);
                    }
                    c.process_new_packets().map_err(io::Error::other)?;
                    while c.wants_write() {
                        c.write_tls(&mut &t.sock)?;
                    }
                }
                match t.plaintext(out)? {
                    Some(n) => Ok(n),
                    None => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }
}

impl Tls {
    /// Decrypted bytes already buffered: `Some(n)` (0 = closed by the peer) or `None`.
    fn plaintext(&self, out: &mut [u8]) -> io::Result<Option<usize>> {
        let mut c = self
            .conn
            .lock()
            .map_err(|_| io::Error::other("TLS lock poisoned"))?;
        match c.reader().read(out) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}
