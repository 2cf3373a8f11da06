//! `serve --demo`: simulated clients trading at a gentle rate, and a live terminal view.
//!
//! With the FIX acceptor enabled, the simulated clients are FIX 4.2 sessions (`DEMO1`,
//! `DEMO2`, ..., one per demo account, added to the configuration) that connect over TCP to the
//! appliance's own acceptor, log on, send NewOrderSingles and OrderCancelRequests and read their
//! ExecutionReports, exactly as a client firm would. Without FIX, they enter the same orders as
//! SBE events into the sequencer's hand-off. Either way they quote around each instrument's last
//! price, cross the spread now and then, and cancel their oldest resting orders, so the book
//! stays alive and bounded. The view follows the outbound journal for trades and reads the
//! replica for the books.

use crate::config::Config;
use crate::replica::Replica;
use journal::{Journal, Publisher};
use matching::{
    CommandKind, MassCancelReason, MassCancelScope, OrderType, Side, StpMode, TimeInForce,
};
use sbe_order_entry as sbe;
use sbe_order_entry::{message_header_codec::ENCODED_LENGTH as HDR, ReadBuf};
use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Session ids of the in-process simulated clients (gateway sessions use smaller numbers, HTTP
/// uses 0).
pub const DEMO_SESSION_BASE: u32 = 60_000;
/// Session ids of the FIX demo sessions added to the configuration.
pub const DEMO_FIX_SESSION_BASE: u32 = 50_000;

/// Adds one FIX session `DEMO<n>` per configured account, for the demo clients.
pub fn add_fix_sessions(config: &mut Config) -> Vec<String> {
    let mut names = Vec::new();
    for (i, a) in config.accounts.clone().iter().enumerate() {
        let name = format!("DEMO{}", i + 1);
        config.fix.sessions.push(crate::config::FixSessionConfig {
            session_id: DEMO_FIX_SESSION_BASE + i as u32 + 1,
            target_comp_id: name.clone(),
            account: a.id,
            password: String::new(),
            cancel_on_disconnect: true,
            reset_on_logon: true,
            rate_per_second: 10_000,
            rate_burst: 10_000,
            rate_action: "reject".into(),
        });
        names.push(name);
    }
    names
}

/// An order the demo decided to send.
struct Quote {
    instrument: usize,
    side: Side,
    price: i64,
    quantity: u64,
    crossing: bool,
}

fn next_quote(config: &Config, replica: &RwLock<Replica>, r: u64) -> Quote {
    let instrument = ((r >> 8) % config.instruments.len() as u64) as usize;
    let ins = &config.instruments[instrument];
    let reference = {
        let rep = replica.read().expect("replica lock");
        let p = rep.engine.reference_price(ins.id);
        if p > 0 {
            p
        } else {
            ins.reference_price
        }
    };
    let side = if (r >> 16) % 2 == 0 {
        Side::Buy
    } else {
        Side::Sell
    };
    // Passive quotes a few ticks away; one order in five crosses.
    let ticks = ((r >> 20) % 8) as i64 + 1;
    let crossing = (r >> 28) % 5 == 0;
    let away = if crossing { -(ticks / 2) } else { ticks };
    let price = match side {
        Side::Buy => reference - away * ins.tick_size,
        Side::Sell => reference + away * ins.tick_size,
    }
    .max(ins.tick_size);
    Quote {
        instrument,
        side,
        price,
        quantity: (1 + (r >> 32) % 10) * ins.lot_size,
        crossing,
    }
}

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Sends one FIX message on the shared connection, numbering it.
fn fix_send(
    conn: &std::sync::Mutex<(std::net::TcpStream, u64)>,
    comp: &str,
    msg_type: &[u8],
    fill: impl FnOnce(&mut fix_codec::Writer),
) -> std::io::Result<()> {
    let mut guard = conn.lock().expect("demo connection");
    let seq = guard.1;
    let mut w = fix_codec::Writer::new(512);
    w.begin(msg_type);
    w.field(49, comp.as_bytes());
    w.field(56, b"EXCH");
    w.field_u64(34, seq);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    w.field_time(52, now);
    fill(&mut w);
    let mut out = Vec::with_capacity(256);
    w.finish(b"FIX.4.2", &mut out);
    guard.0.write_all(&out)?;
    guard.1 = seq + 1;
    Ok(())
}

/// One FIX demo client: logs on as `comp` to `addr` and trades at `rate` orders per second
/// until `stop`, cancelling its oldest resting order when it has more than 20.
pub fn fix_client(
    config: Config,
    addr: std::net::SocketAddr,
    comp: String,
    replica: Arc<RwLock<Replica>>,
    rate: u32,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    use std::io::Read as _;
    use std::sync::Mutex;
    let stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut reader = stream.try_clone()?;
    reader.set_read_timeout(Some(Duration::from_millis(200)))?;
    let conn = Arc::new(Mutex::new((stream, 1_u64)));
    fix_send(&conn, &comp, b"A", |w| {
        w.field(98, b"0");
        w.field(108, b"30");
        w.field(141, b"Y");
    })?;
    // Resting orders (ClOrdID, instrument, side), oldest first, as the acceptor reports them.
    let open: Arc<Mutex<VecDeque<(String, usize, Side)>>> = Arc::default();
    let sent: Arc<Mutex<std::collections::HashMap<String, (usize, Side)>>> = Arc::default();
    let reader_thread = {
        let (conn, open, sent, stop, comp) = (
            conn.clone(),
            open.clone(),
            sent.clone(),
            stop.clone(),
            comp.clone(),
        );
        std::thread::spawn(move || {
            let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
            let mut chunk = [0_u8; 8192];
            while !stop.load(Ordering::Acquire) {
                match reader.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(_) => continue,
                }
                let mut parser = fix_codec::Parser::new(256);
                loop {
                    let len = match fix_codec::check_frame(&buf, b"FIX.4.2", 65_536) {
                        fix_codec::Frame::Complete { len } => len,
                        fix_codec::Frame::Incomplete { .. } => break,
                        fix_codec::Frame::Garbled { skip, .. } => {
                            buf.drain(..skip);
                            continue;
                        }
                        // Not FIX 4.2, or oversized: this demo client gives up.
                        _ => return,
                    };
                    let msg: Vec<u8> = buf.drain(..len).collect();
                    let Ok(m) = parser.parse(&msg) else { continue };
                    match m.msg_type() {
                        b"1" => {
                            let id = m.get(112).unwrap_or(b"").to_vec();
                            let _ = fix_send(&conn, &comp, b"0", |w| w.field(112, &id));
                        }
                        b"8" => {
                            let cl = String::from_utf8_lossy(m.get(11).unwrap_or(b"")).into_owned();
                            let status = m.get(39).unwrap_or(b"");
                            let mut open = open.lock().expect("demo open orders");
                            match status {
                                b"0" => {
                                    if let Some((i, s)) =
                                        sent.lock().expect("demo sent").remove(&cl)
                                    {
                                        open.push_back((cl, i, s));
                                    }
                                }
                                b"2" | b"4" | b"8" => {
                                    let orig = String::from_utf8_lossy(m.get(41).unwrap_or(b""))
                                        .into_owned();
                                    open.retain(|(c, _, _)| *c != cl && *c != orig);
                                    sent.lock().expect("demo sent").remove(&cl);
                                }
                                _ => {}
                            }
                        }
                        _ => {}
                    }
                }
            }
        })
    };
    let mut rnd = rng(seed);
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut next = Instant::now();
    let mut n: u64 = 0;
    let scale = config.instruments.first().map_or(1, |i| i.price_scale);
    let mut decimals = 0;
    let mut s = scale;
    while s > 1 && s % 10 == 0 {
        s /= 10;
        decimals += 1;
    }
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += interval;
        n += 1;
        let oldest = {
            let mut open = open.lock().expect("demo open orders");
            if open.len() > 20 {
                open.pop_front()
            } else {
                None
            }
        };
        if let Some((orig, instrument, side)) = oldest {
            let cl = format!("{comp}-{n}");
            let sym = config.instruments[instrument].symbol.clone();
            fix_send(&conn, &comp, b"F", |w| {
                w.field(41, orig.as_bytes());
                w.field(11, cl.as_bytes());
                w.field(55, sym.as_bytes());
                w.field(54, if side == Side::Buy { b"1" } else { b"2" });
                w.field_time(60, 0);
            })?;
            continue;
        }
        let q = next_quote(&config, &replica, rnd());
        let cl = format!("{comp}-{n}");
        let ins = &config.instruments[q.instrument];
        if !q.crossing {
            sent.lock()
                .expect("demo sent")
                .insert(cl.clone(), (q.instrument, q.side));
        }
        fix_send(&conn, &comp, b"D", |w| {
            w.field(11, cl.as_bytes());
            w.field(21, b"1");
            w.field(55, ins.symbol.as_bytes());
            w.field(54, if q.side == Side::Buy { b"1" } else { b"2" });
            w.field_time(60, 0);
            w.field_u64(38, q.quantity);
            w.field(40, b"2");
            w.field_decimal(44, i128::from(q.price), decimals);
            w.field(59, if q.crossing { b"3" } else { b"0" });
        })?;
    }
    let _ = fix_send(&conn, &comp, b"5", |_| {});
    let _ = reader_thread.join();
    Ok(())
}

/// Runs the simulated clients until `stop`: about `rate` orders per second in total.
pub fn clients(
    config: Config,
    publisher: Publisher,
    replica: Arc<RwLock<Replica>>,
    rate: u32,
    stop: Arc<AtomicBool>,
) {
    let accounts: Vec<u32> = config.accounts.iter().map(|a| a.id).collect();
    if accounts.is_empty() {
        return;
    }
    let mut rnd = rng(0x9E37_79B9_7F4A_7C15);
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut next = Instant::now();
    let mut client_order_id: u64 = 1;
    let mut buf = [0_u8; matching_agent::inbound::ENCODED_LEN_MAX];
    let mut sent: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += interval;
        let r = rnd();
        let slot = (r % accounts.len() as u64) as usize;
        let session_id = DEMO_SESSION_BASE + slot as u32;
        let account_id = accounts[slot];
        let kind = if sent % 500 == 499 {
            CommandKind::MassCancel {
                scope: MassCancelScope::Session(session_id),
                reason: MassCancelReason::User,
            }
        } else {
            let q = next_quote(&config, &replica, r);
            CommandKind::NewOrder {
                session_id,
                account_id,
                client_order_id,
                instrument_id: config.instruments[q.instrument].id,
                side: q.side,
                order_type: OrderType::Limit,
                price: q.price,
                quantity: q.quantity,
                time_in_force: if q.crossing {
                    TimeInForce::Ioc
                } else {
                    TimeInForce::Day
                },
                stp_mode: StpMode::CancelIncoming,
            }
        };
        client_order_id += 1;
        sent += 1;
        if let Ok((t, len)) = matching_agent::inbound::encode(&kind, 0, &mut buf) {
            // A full hand-off means the sequencer is behind: skip, as a throttled client would.
            let _ = publisher.try_publish(t, &buf[..len]);
        }
    }
}

/// Prints the live view every second until `stop`.
pub fn view(
    config: Config,
    inbound: Journal,
    outbound: Journal,
    replica: Arc<RwLock<Replica>>,
    stop: Arc<AtomicBool>,
) {
    let tty = std::io::stdout().is_terminal();
    let mut reader = match outbound.reader(outbound.committed_seq() + 1) {
        Ok(r) => r,
        Err(_) => return,
    };
    let mut trades: VecDeque<String> = VecDeque::new();
    let mut trade_count = 0_u64;
    let mut last_seq = inbound.committed_seq();
    let mut last_tick = Instant::now();
    let scale = config.instruments.first().map_or(1, |i| i.price_scale);
    let fmt = |p: i64| crate::http::format_units(p.into(), scale);
    while !stop.load(Ordering::Acquire) {
        while let Ok(Some(f)) = reader.poll() {
            if f.template_id == sbe::trade_event_codec::SBE_TEMPLATE_ID {
                let Ok(h) = sbe::MessageHeaderDecoder::default().wrap(ReadBuf::new(f.payload), 0)
                else {
                    continue;
                };
                let Ok(d) = sbe::trade_event_codec::TradeEventDecoder::default().header(h, HDR)
                else {
                    continue;
                };
                let sym = config
                    .instruments
                    .iter()
                    .find(|i| i.id == d.instrument_id())
                    .map_or("?", |i| i.symbol.as_str());
                trade_count += 1;
                trades.push_front(format!(
                    "{sym:<8} {:>6} @ {:>10}  ({} aggressor)",
                    d.quantity(),
                    fmt(d.price()),
                    d.aggressor_side()
                ));
                trades.truncate(6);
            }
        }
        if last_tick.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let seq = inbound.committed_seq();
        let rate = (seq - last_seq) as f64 / last_tick.elapsed().as_secs_f64();
        last_seq = seq;
        last_tick = Instant::now();
        let mut out = String::new();
        if tty {
            out.push_str("\x1b[2J\x1b[H");
        }
        out.push_str(&format!("exchange appliance demo | {rate:>7.0} orders/s | {trade_count} trades | inbound seq {seq}\n\n"));
        out.push_str(&format!(
            "{:<8} {:>18} {:>18} {:>12}\n",
            "symbol", "bid", "ask", "last"
        ));
        {
            let rep = replica.read().expect("replica lock");
            for ins in &config.instruments {
                let q = |s| {
                    rep.engine
                        .best(ins.id, s)
                        .map_or("-".to_string(), |(p, q)| format!("{q} x {}", fmt(p)))
                };
                out.push_str(&format!(
                    "{:<8} {:>18} {:>18} {:>12}\n",
                    ins.symbol,
                    q(Side::Buy),
                    q(Side::Sell),
                    fmt(rep.engine.reference_price(ins.id))
                ));
            }
        }
        out.push_str("\nlast trades\n");
        for t in &trades {
            out.push_str(&format!("  {t}\n"));
        }
        let mut so = std::io::stdout().lock();
        let _ = so.write_all(out.as_bytes());
        let _ = so.flush();
    }
}
