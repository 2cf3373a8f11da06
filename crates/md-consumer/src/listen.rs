//! The market-data listener behind `md-listen` and `appliance md listen`: joins the channels and shows a live top of book and depth for the
//! chosen symbols; `--print` also prints every decoded message as JSON.
//!
//! ```text
//! md-listen --group 239.255.0.1 --port 40000 --retransmit 127.0.0.1:40100,127.0.0.1:40101 --symbols INST1,INST2 --depth 5
//! md-listen --tcp 127.0.0.1:40200 --print      # the publisher's TCP fan-out instead of multicast
//! ```

use crate::{Consumer, ConsumerConfig, MdClient, TcpConsumer};
use md_core::{Channel, FeedGroups, PacketMessages, Side};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Command-line arguments of the listener.
#[derive(clap::Parser, Debug, Clone)]
#[command(about = "Listen to the appliance's market data")]
pub struct Args {
    /// Multicast group of feed A.
    #[arg(long, default_value = "239.255.0.1")]
    pub group: Ipv4Addr,
    /// First port of feed A (L1, L2, L3, snapshot on consecutive ports).
    #[arg(long, default_value_t = 40_000)]
    pub port: u16,
    /// Group of feed B (same ports + 10), if any.
    #[arg(long)]
    pub group_b: Option<Ipv4Addr>,
    /// Interface to join on.
    #[arg(long, default_value = "127.0.0.1")]
    pub interface: Ipv4Addr,
    /// Retransmission servers, tried in this order (every node of a cluster: a request the
    /// current one leaves unanswered goes to the next). Comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    pub retransmit: Vec<SocketAddr>,
    /// Symbols to show (all when empty).
    #[arg(long, value_delimiter = ',')]
    pub symbols: Vec<String>,
    /// Levels of depth to show.
    #[arg(long, default_value_t = 5)]
    pub depth: usize,
    /// Print every decoded message as JSON.
    #[arg(long)]
    pub print: bool,
    /// Refresh period of the book display, ms.
    #[arg(long, default_value_t = 1000)]
    pub refresh_ms: u64,
    /// Read the publisher's TCP fan-out at this address instead of joining multicast.
    #[arg(long)]
    pub tcp: Option<SocketAddr>,
    /// Exit after this many seconds (0: run until the session ends).
    #[arg(long, default_value_t = 0)]
    pub seconds: u64,
}

/// Runs the listener until the session ends or `--seconds` elapse.
pub fn run(args: Args) -> std::io::Result<()> {
    let mut cfg = ConsumerConfig::new(FeedGroups::on_group(args.group, args.port));
    cfg.interface = args.interface;
    cfg.feed_b = args
        .group_b
        .map(|g| FeedGroups::on_group(g, args.port + 10));
    cfg.retransmit_server = args.retransmit.first().copied();
    cfg.retransmit_alternates = args.retransmit.iter().skip(1).copied().collect();
    let mut source = match args.tcp {
        Some(addr) => {
            let c = TcpConsumer::connect(addr, cfg)?;
            println!("connected to {addr}");
            Source::Tcp(c)
        }
        None => {
            let c = Consumer::open(cfg)?;
            println!(
                "joined {}:{}..{} on {}",
                args.group,
                args.port,
                args.port + 3,
                args.interface
            );
            Source::Multicast(c)
        }
    };
    let start = Instant::now();
    let mut last_show = Instant::now();
    let print = args.print;
    loop {
        let mut observe = |c: Channel, packet: &[u8]| {
            if print {
                print_packet(c, packet);
            }
        };
        let n = match &mut source {
            Source::Multicast(c) => c.poll_with(&mut observe),
            Source::Tcp(c) => c.poll_with(&mut observe)?,
        };
        if n == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let client = source.client();
        if last_show.elapsed() >= Duration::from_millis(args.refresh_ms) {
            last_show = Instant::now();
            show(client, &args);
        }
        if client.session_ended() {
            show(client, &args);
            println!("end of session");
            return Ok(());
        }
        if args.seconds > 0 && start.elapsed() >= Duration::from_secs(args.seconds) {
            show(client, &args);
            return Ok(());
        }
    }
}

enum Source {
    Multicast(Consumer),
    Tcp(TcpConsumer),
}

impl Source {
    fn client(&self) -> &MdClient {
        match self {
            Source::Multicast(c) => c.client(),
            Source::Tcp(c) => c.client(),
        }
    }
}

fn print_packet(c: Channel, packet: &[u8]) {
    let Ok((h, msgs)) = PacketMessages::new(packet) else {
        println!("{c:?} malformed packet of {} bytes", packet.len());
        return;
    };
    for m in msgs {
        match m.map(sbe_market_data::message_to_json) {
            Ok(Ok(json)) => println!("{c:?} seq={} t={} {json}", h.seq, h.sending_time_ns),
            Ok(Err(e)) => println!("{c:?} seq={} undecodable message: {e}", h.seq),
            Err(e) => println!("{c:?} seq={} {e}", h.seq),
        }
    }
}

fn show(client: &MdClient, args: &Args) {
    let s = client.stats();
    println!(
        "-- packets {} dup {} gaps {} resend-req {} skipped {} snapshots {} | seq L1 {} L2 {} L3 {}",
        s.packets,
        s.duplicates,
        s.gaps_detected,
        s.retransmit_requests,
        s.packets_skipped,
        s.snapshots_applied,
        client.applied_seq(Channel::L1),
        client.applied_seq(Channel::L2),
        client.applied_seq(Channel::L3)
    );
    for (id, i) in client.instruments() {
        let sym = i.symbol();
        if !args.symbols.is_empty() && !args.symbols.contains(&sym) {
            continue;
        }
        let fmt = |l: Option<md_core::PriceLevel>| {
            l.map_or("-".to_string(), |l| format!("{}x{}", l.quantity, l.price))
        };
        println!(
            "{sym:<10} id {id:<4} bid {:<16} ask {:<16} last {:?} trades {} {}",
            fmt(i.bbo.bid),
            fmt(i.bbo.ask),
            i.last_trade,
            i.trades,
            if i.is_synced(Channel::L2) {
                ""
            } else {
                "(L2 not in sync)"
            }
        );
        let bids = i.l2.levels(Side::Buy);
        let asks = i.l2.levels(Side::Sell);
        for k in 0..args.depth {
            let b = bids.get(k).map_or(String::new(), |l| {
                format!("{:>6} {:>10}", l.quantity, l.price)
            });
            let a = asks.get(k).map_or(String::new(), |l| {
                format!("{:<10} {:<6}", l.price, l.quantity)
            });
            if b.is_empty() && a.is_empty() {
                break;
            }
            println!("    {b:>17} | {a}");
        }
    }
}
