//! The floor: raw TCP over loopback with the sizes of the FIX traffic and no protocol at all.
//! A server thread per connection reads fixed-size requests and answers each with a
//! fixed-size reply carrying the request's index. The client side is paced exactly like the
//! FIX runs (same open-loop schedule, same connections, latency from the planned send time),
//! so the ratio of the appliance to it is the cost of FIX, journal, matching and reports.
//! `ping_pong` is the closed-loop variant (one message in flight on one connection).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

fn server(listener: TcpListener, connections: usize, req: usize, rep: usize) {
    for _ in 0..connections {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let _ = s.set_nodelay(true);
        std::thread::spawn(move || {
            let mut inbuf = vec![0_u8; req];
            let mut outbuf = vec![b'x'; rep];
            while s.read_exact(&mut inbuf).is_ok() {
                outbuf[..8].copy_from_slice(&inbuf[..8]);
                if s.write_all(&outbuf).is_err() {
                    return;
                }
            }
        });
    }
}

pub struct FloorOutcome {
    pub latency: Histogram<u64>,
    pub throughput: f64,
}

/// `count` requests over `connections` at `rate` per second (0: as fast as a window of 256 per
/// connection allows), the first `warmup` not recorded.
pub fn open_loop(
    connections: usize,
    rate: f64,
    count: usize,
    warmup: usize,
    req: usize,
    rep: usize,
) -> anyhow::Result<FloorOutcome> {
    assert!(req >= 8 && rep >= 8 && connections > 0);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || server(listener, connections, req, rep));
    let origin = Instant::now();
    let planned: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let answered = Arc::new(AtomicU64::new(0));
    let last = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for _ in 0..connections {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        let mut r = s.try_clone()?;
        r.set_read_timeout(Some(Duration::from_millis(50)))?;
        writers.push(s);
        let (p, a, l, st) = (
            planned.clone(),
            answered.clone(),
            last.clone(),
            stop.clone(),
        );
        readers.push(std::thread::spawn(move || {
            let mut h = hist();
            let mut buf = vec![0_u8; rep];
            let mut have = 0;
            loop {
                match r.read(&mut buf[have..]) {
                    Ok(0) => return h,
                    Ok(n) => have += n,
                    Err(_) if st.load(Ordering::Acquire) => return h,
                    Err(_) => continue,
                }
                if have == rep {
                    have = 0;
                    let now = origin.elapsed().as_nanos() as u64;
                    let i = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")) as usize;
                    a.fetch_add(1, Ordering::AcqRel);
                    if i >= warmup {
                        l.fetch_max(now, Ordering::AcqRel);
                        let t = p[i].load(Ordering::Acquire);
                        h.saturating_record(now.saturating_sub(t).max(1));
                    }
                }
            }
        }));
    }
    let interval = if rate > 0.0 { 1e9 / rate } else { 0.0 };
    crate::run::precise_sleeps();
    let t0 = origin.elapsed().as_nanos() as u64 + 1_000_000;
    let mut out = vec![Vec::with_capacity(64 * 1024); connections];
    let mut msg = vec![b'y'; req];
    let mut i = 0;
    let window = (256 * connections) as u64;
    while i < count {
        let now = origin.elapsed().as_nanos() as u64;
        let due = |i: usize| t0 + (i as f64 * interval) as u64;
        if rate > 0.0 && due(i) > now {
            crate::run::pace(due(i) - now);
            continue;
        }
        if rate == 0.0 && i as u64 >= answered.load(Ordering::Acquire) + window {
            std::thread::yield_now();
            continue;
        }
        let mut batch = 0;
        while i < count && batch < 4096 && (rate == 0.0 || due(i) <= now) {
            if rate == 0.0 && i as u64 >= answered.load(Ordering::Acquire) + window {
                break;
            }
            planned[i].store(if rate > 0.0 { due(i) } else { now }, Ordering::Release);
            msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
            out[i % connections].extend_from_slice(&msg);
            i += 1;
            batch += 1;
        }
        for (w, b) in writers.iter_mut().zip(out.iter_mut()) {
            if !b.is_empty() {
                w.write_all(b)?;
                b.clear();
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::Acquire) < count as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Release);
    let mut latency = hist();
    drop(writers);
    for r in readers {
        latency
            .add(
                &r.join()
                    .map_err(|_| anyhow::anyhow!("floor reader panicked"))?,
            )
            .expect("same bounds");
    }
    let first = planned
        .get(warmup)
        .map_or(t0, |p| p.load(Ordering::Acquire));
    let secs = last.load(Ordering::Acquire).saturating_sub(first) as f64 / 1e9;
    Ok(FloorOutcome {
        throughput: if secs > 0.0 {
            latency.len() as f64 / secs
        } else {
            0.0
        },
        latency,
    })
}

/// Closed loop: one request in flight on one connection, `count` round trips after `warmup`.
pub fn ping_pong(
    count: usize,
    warmup: usize,
    req: usize,
    rep: usize,
) -> anyhow::Result<Histogram<u64>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || server(listener, 1, req, rep));
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut h = hist();
    let mut msg = vec![b'y'; req];
    let mut buf = vec![0_u8; rep];
    for i in 0..count + warmup {
        msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let t = Instant::now();
        s.write_all(&msg)?;
        s.read_exact(&mut buf)?;
        if i >= warmup {
            h.saturating_record(t.elapsed().as_nanos() as u64);
        }
    }
    Ok(h)
}
