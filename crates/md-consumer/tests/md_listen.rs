//! The `md-listen` command-line listener on real loopback multicast.
//!
//! A small sender built from `md-core` (the same framing the publisher uses) multicasts an
//! instrument definition, two resting orders, the matching level updates and a best bid/offer
//! on 127.0.0.1, then the end-of-session marker. The test runs the real `md-listen` binary with
//! `--print` and proves that it prints every decoded message as JSON and shows the top of book
//! and depth for the symbol, and that it exits at the end of the session. A second test feeds
//! it the TCP fan-out framing (u16 length, channel, packet) from a plain TCP server.

use md_core::msg::InstrumentDef;
use md_core::*;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sender() -> UdpSocket {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.bind(&SockAddr::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)))
        .unwrap();
    s.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
    s.set_multicast_ttl_v4(1).unwrap();
    s.set_multicast_loop_v4(true).unwrap();
    s.into()
}

fn packet(seq: u32, msgs: &[MdMsg]) -> Vec<u8> {
    let mut b = PacketBuilder::new(1400);
    let mut buf = [0_u8; 512];
    for m in msgs {
        let n = m.encode(&mut buf).unwrap();
        assert!(b.push(&buf[..n]));
    }
    b.finish(seq, 1).to_vec()
}

#[test]
fn md_listen_prints_decoded_messages_and_the_book() {
    // A group private to this process (two test runs on one host must not hear each other).
    let pid = std::process::id();
    let group = Ipv4Addr::new(239, 100 + (pid % 100) as u8, ((pid / 100) % 250) as u8, 91);
    let group_arg = group.to_string();
    let feed = FeedGroups::on_group(group, 41_090);
    let mut child = Command::new(env!("CARGO_BIN_EXE_md-listen"))
        .args([
            "--group",
            &group_arg,
            "--port",
            "41090",
            "--symbols",
            "ACME",
            "--depth",
            "3",
            "--print",
            "--seconds",
            "20",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut symbol = [0_u8; 16];
    symbol[..4].copy_from_slice(b"ACME");
    let def = MdMsg::InstrumentDefinition(InstrumentDef {
        instrument_id: 5,
        symbol,
        tick_size: 1,
        price_scale: 100,
        lot_size: 1,
        quantity_max: 1000,
        status: Status::Open,
    });
    let add = |rpt_seq, order_id, side, price| MdMsg::OrderAdded {
        time_ns: 1,
        instrument_id: 5,
        rpt_seq,
        order_id,
        side,
        price,
        quantity: 10,
    };
    let level = |rpt_seq, side, price| MdMsg::LevelUpdate {
        time_ns: 1,
        instrument_id: 5,
        rpt_seq,
        entries: vec![LevelEntry {
            side,
            action: Action::New,
            price,
            quantity: 10,
            order_count: 1,
        }],
    };
    let bbo = MdMsg::BestBidOffer {
        time_ns: 1,
        instrument_id: 5,
        rpt_seq: 1,
        bbo: Bbo {
            bid: Some(PriceLevel {
                price: 9_950,
                quantity: 10,
                order_count: 1,
            }),
            ask: Some(PriceLevel {
                price: 10_050,
                quantity: 10,
                order_count: 1,
            }),
        },
    };
    let eos = MdMsg::EndOfSession { time_ns: 2 };
    // The listener joins as a late joiner: it needs a snapshot to trust the books, so send one.
    let snapshot = MdMsg::Snapshot(SnapshotChunk {
        time_ns: 1,
        instrument_id: 5,
        last_seq: [0, 0, 0],
        rpt_seq: [0, 0, 0],
        chunk: 0,
        chunks: 1,
        status: Status::Open,
        levels: Vec::new(),
        orders: Vec::new(),
    });
    // Wait until the listener has joined its groups.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(15)).unwrap();
    assert!(
        first.starts_with(&format!("joined {group}:41090")),
        "{first}"
    );
    let s = sender();
    s.send_to(&packet(1, &[def, snapshot]), feed.snapshot)
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.send_to(&packet(1, &[bbo]), feed.l1).unwrap();
    s.send_to(
        &packet(
            1,
            &[level(1, Side::Buy, 9_950), level(2, Side::Sell, 10_050)],
        ),
        feed.l2,
    )
    .unwrap();
    s.send_to(
        &packet(
            1,
            &[add(1, 1, Side::Buy, 9_950), add(2, 2, Side::Sell, 10_050)],
        ),
        feed.l3,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    for a in [feed.l1, feed.l2, feed.l3] {
        s.send_to(&packet(2, std::slice::from_ref(&eos)), a)
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "md-listen did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    reader.join().unwrap();
    let out: String = rx.try_iter().map(|l| l + "\n").collect();
    assert!(status.success());
    assert!(out.contains(r#""$message":"OrderAdded""#), "{out}");
    assert!(out.contains(r#""$message":"LevelUpdate""#), "{out}");
    assert!(
        out.contains(r#""$message":"InstrumentDefinition""#),
        "{out}"
    );
    assert!(out.contains("ACME"), "{out}");
    assert!(
        out.contains("bid 10x9950") && out.contains("ask 10x10050"),
        "{out}"
    );
    assert!(out.contains("end of session"), "{out}");
}

#[test]
fn md_listen_reads_the_tcp_fan_out() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_md-listen"))
        .args(["--tcp", &addr, "--print", "--seconds", "20"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut stream, _) = listener.accept().unwrap();
    let mut symbol = [0_u8; 16];
    symbol[..3].copy_from_slice(b"XYZ");
    let def = MdMsg::InstrumentDefinition(InstrumentDef {
        instrument_id: 8,
        symbol,
        tick_size: 1,
        price_scale: 100,
        lot_size: 1,
        quantity_max: 10,
        status: Status::Open,
    });
    let snapshot = MdMsg::Snapshot(SnapshotChunk {
        time_ns: 1,
        instrument_id: 8,
        last_seq: [0, 0, 0],
        rpt_seq: [0, 0, 0],
        chunk: 0,
        chunks: 1,
        status: Status::Open,
        levels: vec![SnapshotLevel {
            side: Side::Sell,
            price: 777,
            quantity: 4,
            order_count: 1,
        }],
        orders: vec![SnapshotOrder {
            side: Side::Sell,
            order_id: 1,
            price: 777,
            quantity: 4,
        }],
    });
    let eos = MdMsg::EndOfSession { time_ns: 2 };
    let mut frames = Vec::new();
    let mut frame = |channel: Channel, p: Vec<u8>| {
        frames.extend_from_slice(&((p.len() + 1) as u16).to_le_bytes());
        frames.push(channel as u8);
        frames.extend_from_slice(&p);
    };
    frame(Channel::Snapshot, packet(1, &[def, snapshot]));
    for c in Channel::INCREMENTAL {
        frame(c, packet(1, std::slice::from_ref(&eos)));
    }
    stream.write_all(&frames).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "md-listen did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let out = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    assert!(out.starts_with(&format!("connected to {addr}")), "{out}");
    assert!(out.contains(r#""$message":"SnapshotFullRefresh""#), "{out}");
    assert!(out.contains("XYZ") && out.contains("ask 4x777"), "{out}");
    assert!(out.contains("end of session"), "{out}");
}
