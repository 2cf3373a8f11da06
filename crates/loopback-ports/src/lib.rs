//! Ports on 127.0.0.1 for processes a test (or the load generator) starts and restarts.
//!
//! The usual trick, binding port 0 and closing the socket, returns a port from the kernel's
//! ephemeral range: the same range every outgoing connection's source port and every other
//! `bind(0)` draws from. Between choosing the port and the child binding it, or while a killed
//! child is down and about to be restarted on the same address, any connection on the machine
//! may take it, and the child fails with "address already in use". (The cluster tests hit this:
//! a restarted node could not bind its HTTP port.) Ports below the ephemeral range are never
//! handed out by the kernel, so a port chosen there stays free for as long as nobody binds it
//! explicitly. This crate hands out such ports, each once per process, starting at an offset
//! derived from the process id so that concurrent test processes rarely meet, and checks
//! that TCP and UDP can both bind it now.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

/// Lowest port handed out (above the well-known and most registered service ports in use).
const LOW: u32 = 10_000;

/// The first port of the kernel's ephemeral range (Linux: `ip_local_port_range`).
fn ephemeral_low() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        && UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A port on 127.0.0.1, outside the ephemeral range, not returned before by this process and
/// free for TCP and UDP when returned.
///
/// Falls back to a kernel-chosen (ephemeral) port only when the machine leaves no room below
/// its ephemeral range.
pub fn port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let high = ephemeral_low().min(65_536);
    if high <= LOW + 1_000 {
        return TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind an ephemeral port on 127.0.0.1");
    }
    let start = std::process::id().wrapping_mul(2_654_435_761);
    pick(start, &NEXT, high)
}

/// The first bindable port of the sequence `LOW + (start + k) % (high - LOW)`, k taken from
/// `next`.
fn pick(start: u32, next: &AtomicU32, high: u32) -> u16 {
    let span = high - LOW;
    for _ in 0..span {
        let k = next.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + start.wrapping_add(k) % span) as u16;
        if bindable(port) {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {LOW} and {high}");
}

/// `127.0.0.1:port()`.
pub fn addr() -> std::net::SocketAddr {
    (Ipv4Addr::LOCALHOST, port()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_below_the_ephemeral_range_and_bindable() {
        let high = ephemeral_low();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let p = port();
            assert!(seen.insert(p), "port {p} handed out twice");
            if high > LOW + 1_000 {
                assert!((LOW..high).contains(&u32::from(p)), "{p} outside the range");
            }
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, p)).expect("free when returned");
            drop(l);
        }
    }

    #[test]
    fn a_port_held_by_someone_else_is_skipped() {
        let high = 30_000;
        // Hold the first candidate (TCP) and the second (UDP only): both are skipped.
        let first = pick(0, &AtomicU32::new(0), high);
        let second = pick(0, &AtomicU32::new(1), high);
        let _tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, first)).unwrap();
        let _udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, second)).unwrap();
        let got = pick(0, &AtomicU32::new(0), high);
        assert_ne!(got, first);
        assert_ne!(got, second);
        assert!(got > second);
    }
}
