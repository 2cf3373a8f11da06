//! FIX sessions survive a failover: a new gateway on the same journals, with an empty store,
//! resumes them from the journal alone.
//!
//! The bug this guards against: after a leader dies, the node that takes over has the
//! replicated journals but not the old leader's FIX stores, so it would greet clients with
//! sequence numbers they have already seen (and be logged out for it), lose the ExecutionReports
//! that were in flight, or journal an order a second time when the client resends it.
//!
//! Each scenario runs real journals and the real matching agent in a temporary directory,
//! gateway A with replicated sessions on its own tokio runtime, and two reconnecting clients
//! (`loadgen::resilient`) over TCP. They trade (fills between the two sessions, resting
//! orders), then A is aborted as a crash would: no Logout, sockets dropped, in-flight reports
//! lost (the clients drop their unread input too). Orders are in flight at that moment: some
//! journaled and matched but never read by the client, some journaled while matching is paused
//! (so their results appear only after the takeover), and one sent while no gateway is up.
//! Gateway B starts on the same journals with a fresh `store_dir`, the clients reconnect, and
//! the tests prove that:
//! - no client was logged out or saw a MsgSeqNum below what it expected;
//! - every order sent was journaled exactly once (count of NewOrderEvents per ClOrdID) and
//!   ends in its expected state (filled, or resting and acknowledged);
//! - every ExecID of the session in the outbound journal reached the client, and a report the
//!   client had already received came again only with PossResend(97)=Y;
//! - results of events journaled before the takeover came with PossResend=Y.
//!
//! Another runs three takeovers: A dies with a fill unread, B starts and dies before any client
//! came back (its checkpoints must not claim reports it never sent), C serves the clients, then
//! dies with another fill unread, and D serves them.
//!
//! One shows the redelivery bound: with room for one report, the newest is redelivered and the
//! truncation is counted.
//!
//! A further test shows cancel on disconnect across a failover: a session logged on to the node
//! that dies has its open orders cancelled by the node that takes over.
//!
//! The first scenario checkpoints rarely (only at logon and start), so B asks the clients
//! for everything since their logon (resent with PossDupFlag=Y and ignored as known) and
//! redelivers every report since; the second checkpoints every 50 ms, so only the tail moves.

mod common;
use common::*;
use loadgen::resilient::{NewOrder, ResilientClient, ResilientConfig};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A gateway on the engine's journals, on a runtime of its own (so it can be crashed alone).
fn start_gateway(
    engine: &Engine,
    config: gateway::GatewayConfig,
) -> (tokio::runtime::Runtime, gateway::Gateway) {
    let rt = runtime();
    let gw = rt
        .block_on(gateway::Gateway::start(
            config,
            &engine.inbound,
            &engine.outbound,
        ))
        .unwrap();
    (rt, gw)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn order(cl: &str, side: u8, qty: u64, price: &str) -> NewOrder {
    NewOrder {
        cl_ord_id: cl.into(),
        symbol: "ACME".into(),
        side,
        quantity: qty,
        price: price.into(),
        time_in_force: b'1',
    }
}

/// The number after `"key":` in a JSON object.
fn json_u64(json: &str, key: &str) -> Option<u64> {
    let k = format!("\"{key}\":");
    let i = json.find(&k)? + k.len();
    let digits: String = json[i..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn json_str<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let k = format!("\"{key}\":\"");
    let i = json.find(&k)? + k.len();
    json[i..].split('"').next()
}

/// Polls both clients until `done` holds for both.
fn pump(
    clients: &mut [&mut ResilientClient],
    within: Duration,
    what: &str,
    done: impl Fn(&ResilientClient) -> bool,
) {
    let deadline = Instant::now() + within;
    loop {
        if clients.iter().all(|c| done(c)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached; notes: {:?} / {:?}",
            clients[0].notes,
            clients.get(1).map(|c| &c.notes)
        );
        for c in clients.iter_mut() {
            c.poll(Duration::from_millis(10));
        }
    }
}

fn wait_until(within: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not reached");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// NewOrderEvents per (session, ClOrdID) in the inbound journal.
fn journaled_orders(engine: &Engine) -> HashMap<(u64, String), usize> {
    let mut m = HashMap::new();
    for (t, j) in engine.inbound_frames() {
        if t == sbe_order_entry::new_order_event_codec::SBE_TEMPLATE_ID {
            let key = (
                json_u64(&j, "sessionId").unwrap(),
                json_str(&j, "clOrdId").unwrap().to_string(),
            );
            *m.entry(key).or_default() += 1;
        }
    }
    m
}

fn scenario(checkpoint_interval_ms: u64) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let replicated = gateway::ReplicatedSessions {
        checkpoint_interval_ms,
        ..gateway::ReplicatedSessions::default()
    };
    let addr_b = loopback_ports::addr();
    let mut config_a = gateway_config(&dir.path().join("store-a"));
    config_a.replicated_sessions = Some(replicated);
    let (rt_a, gw_a) = start_gateway(&engine, config_a);
    let addrs = vec![gw_a.tcp_addr.unwrap(), addr_b];
    let client = |name: &str| {
        let mut c = ResilientConfig::new(addrs.clone(), name, "EXCH");
        c.heartbeat_secs = 2;
        c.connect_timeout = Duration::from_millis(500);
        ResilientClient::new(c)
    };
    let (mut buyer, mut seller) = (client("CLIENT1"), client("CLIENT2"));
    let deadline = Instant::now() + WAIT;
    buyer.connect(deadline).unwrap();
    seller.connect(deadline).unwrap();

    // Trading: five buys filled by five sells, five buys resting.
    for i in 1..=5 {
        buyer.send_order(&order(&format!("B{i}"), b'1', 10, "100.00"));
        buyer.send_order(&order(&format!("R{i}"), b'1', 10, "99.00"));
    }
    pump(&mut [&mut buyer], WAIT, "resting", |c| {
        (1..=5).all(|i| c.order(&format!("R{i}")).is_some())
    });
    for i in 1..=5 {
        seller.send_order(&order(&format!("S{i}"), b'2', 10, "100.00"));
    }
    let filled = |c: &ResilientClient, prefix: &str| {
        (1..=5).all(|i| {
            c.order(&format!("{prefix}{i}"))
                .is_some_and(|o| o.ord_status == b'2')
        })
    };
    pump(&mut [&mut buyer], WAIT, "buys filled", |c| filled(c, "B"));
    pump(&mut [&mut seller], WAIT, "sells filled", |c| filled(c, "S"));
    // Past a checkpoint interval (the second scenario has checkpoints of the trading).
    let settle = Instant::now() + Duration::from_millis(3 * checkpoint_interval_ms.min(100));
    while Instant::now() < settle {
        buyer.poll(Duration::from_millis(10));
        seller.poll(Duration::from_millis(10));
    }

    // In flight at the crash. Two resting buys, acknowledged by the engine and sent by A, but
    // never read by the client.
    let accepted = || {
        engine
            .outbound_frames()
            .iter()
            .filter(|(t, _)| *t == sbe_order_entry::order_accepted_codec::SBE_TEMPLATE_ID)
            .count()
    };
    let accepted_before = accepted();
    buyer.send_order(&order("N1", b'1', 10, "98.00"));
    buyer.send_order(&order("N2", b'1', 10, "98.00"));
    let journaled = |n: &str| {
        engine
            .inbound_frames()
            .iter()
            .any(|(_, j)| j.contains(&format!("\"clOrdId\":\"{n}\"")))
    };
    wait_until(WAIT, "N1, N2 journaled", || {
        journaled("N1") && journaled("N2")
    });
    // Their acks exist once the engine produced them (the outbound journal names no
    // ClOrdID): two more OrderAccepted frames than before.
    wait_until(WAIT, "N1, N2 accepted", || {
        accepted() == accepted_before + 2
    });
    // Three sells crossing R1..R3, journaled while matching is paused: their results appear
    // after the takeover.
    engine.matching_paused.store(true, Ordering::Relaxed);
    for i in 6..=8 {
        seller.send_order(&order(&format!("S{i}"), b'2', 10, "99.00"));
    }
    wait_until(WAIT, "S6..S8 journaled", || {
        (6..=8).all(|i| journaled(&format!("S{i}")))
    });
    let inbound_at_crash = engine.inbound.committed_seq();
    let outbound_at_crash = engine.outbound.committed_seq();

    // The crash: no Logout, the sockets drop, what the clients had not read is lost.
    let stats_a = (
        gw_a.stats().checkpoints_published.load(Ordering::Relaxed),
        gw_a.stats().poss_dup_ignored.load(Ordering::Relaxed),
    );
    gw_a.abort();
    rt_a.shutdown_background();
    buyer.drop_connection();
    seller.drop_connection();
    assert!(stats_a.0 >= 4, "start and logon checkpoints: {stats_a:?}");
    // An order while no gateway is up: it waits in the client's store.
    buyer.send_order(&order("Q1", b'1', 10, "97.00"));

    // The takeover: B on the same journals, an empty store.
    let mut config_b = gateway_config(&dir.path().join("store-b"));
    config_b.tcp_listen = Some(addr_b);
    config_b.replicated_sessions = Some(replicated);
    let (rt_b, gw_b) = start_gateway(&engine, config_b);
    assert!(
        engine.inbound.committed_seq() >= inbound_at_crash + 2,
        "B published its start checkpoints"
    );
    let (next_sender_b, _) = gw_b.session_seq_nums(1).unwrap();
    assert!(
        next_sender_b > 1_000_000,
        "B starts past A's reservation: {next_sender_b}"
    );
    engine.matching_paused.store(false, Ordering::Relaxed);

    let done_buyer = |c: &ResilientClient| {
        filled(c, "B")
            && (1..=3).all(|i| {
                c.order(&format!("R{i}"))
                    .is_some_and(|o| o.ord_status == b'2')
            })
            && ["R4", "R5", "N1", "N2", "Q1"]
                .iter()
                .all(|n| c.order(n).is_some_and(|o| o.ord_status == b'0'))
    };
    let done_seller = |c: &ResilientClient| {
        filled(c, "S")
            && (6..=8).all(|i| {
                c.order(&format!("S{i}"))
                    .is_some_and(|o| o.ord_status == b'2')
            })
    };
    pump(&mut [&mut buyer], WAIT * 2, "buyer resumed", done_buyer);
    pump(&mut [&mut seller], WAIT * 2, "seller resumed", done_seller);

    // Every report of each session in the outbound journal reached its client.
    let exec_ids_of = |session: u64| -> Vec<String> {
        let mut r = engine.outbound.reader(1).unwrap();
        let mut v = Vec::new();
        while let Some(f) = r.poll().unwrap() {
            if f.template_id == journal::TEMPLATE_BATCH_END {
                continue;
            }
            let report = matches!(f.template_id, 20..=24);
            let json = sbe_order_entry::message_to_json(f.payload).unwrap();
            if report && json_u64(&json, "sessionId") == Some(session) {
                v.push(f.sequence.to_string());
            }
        }
        v
    };
    for (c, session) in [(&mut buyer, 1), (&mut seller, 2)] {
        let expected = exec_ids_of(session);
        let mut within = Instant::now() + WAIT;
        while expected.iter().any(|e| !c.exec_ids().contains(e)) {
            assert!(
                Instant::now() < within,
                "session {session}: ExecIDs never received: {:?}",
                expected
                    .iter()
                    .filter(|e| !c.exec_ids().contains(*e))
                    .collect::<Vec<_>>()
            );
            c.poll(Duration::from_millis(10));
        }
        within = Instant::now() + Duration::from_millis(200);
        while Instant::now() < within {
            c.poll(Duration::from_millis(10));
        }
        let s = c.stats;
        assert_eq!(s.reconnects, 1, "session {session}: {s:?}");
        assert_eq!(
            (s.seq_too_low, s.logouts_received),
            (0, 0),
            "session {session}: {:?}",
            c.notes
        );
        assert_eq!(
            s.duplicates_unflagged, 0,
            "session {session}: a duplicate report without PossResend: {s:?}"
        );
        assert_eq!(c.connected_to(), Some(addr_b));
    }

    // Journaled exactly once, every order.
    let journaled_count = journaled_orders(&engine);
    for (c, session) in [(&buyer, 1), (&seller, 2)] {
        for cl in c.sent_orders() {
            assert_eq!(
                journaled_count.get(&(session, cl.clone())),
                Some(&1),
                "session {session} order {cl}"
            );
        }
    }
    assert_eq!(buyer.sent_orders().len(), 13);
    assert_eq!(seller.sent_orders().len(), 8);

    // What B did: the reports A sent but the client never read (N1, N2 acks) were redelivered;
    // the results of S6..S8 (journaled before the takeover) carried PossResend=Y.
    let stats = gw_b.stats();
    assert!(stats.reports_redelivered.load(Ordering::Relaxed) >= 2);
    let late_fills: Vec<(u64, String)> = {
        let mut r = engine.outbound.reader(outbound_at_crash + 1).unwrap();
        let mut v = Vec::new();
        while let Some(f) = r.poll().unwrap() {
            if f.template_id == journal::TEMPLATE_BATCH_END {
                continue;
            }
            let json = sbe_order_entry::message_to_json(f.payload).unwrap();
            if f.template_id == sbe_order_entry::order_filled_codec::SBE_TEMPLATE_ID {
                assert!(json_u64(&json, "inboundSeq").unwrap() <= inbound_at_crash);
                v.push((
                    json_u64(&json, "sessionId").unwrap(),
                    f.sequence.to_string(),
                ));
            }
        }
        v
    };
    assert_eq!(late_fills.len(), 6, "R1..R3 against S6..S8, both sides");
    for (session, e) in &late_fills {
        let c = if *session == 1 { &buyer } else { &seller };
        assert!(
            c.poss_resend_exec_ids().contains(e),
            "report {e} of an event journaled before the takeover came without PossResend"
        );
    }
    if checkpoint_interval_ms > 10_000 {
        // Everything since the logon was asked for again and ignored as known; the reports
        // since the logon were redelivered, so the clients got duplicates (flagged).
        assert!(stats.poss_dup_ignored.load(Ordering::Relaxed) >= 10);
        assert!(buyer.stats.duplicates_poss_resend + seller.stats.duplicates_poss_resend > 0);
    }
    drop(gw_b);
    drop(rt_b);
}

#[test]
fn sessions_resume_on_a_new_gateway_with_checkpoints_only_at_logon() {
    scenario(3_600_000);
}

#[test]
fn sessions_resume_on_a_new_gateway_with_frequent_checkpoints() {
    scenario(50);
}

#[test]
fn cancel_on_disconnect_applies_to_a_session_of_the_failed_node() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let replicated = gateway::ReplicatedSessions::default();
    let cod = |c: &mut gateway::GatewayConfig| {
        c.replicated_sessions = Some(replicated);
        c.sessions[0].cancel_on_disconnect = true;
    };
    let addr_b = loopback_ports::addr();
    let mut config_a = gateway_config(&dir.path().join("store-a"));
    cod(&mut config_a);
    let (rt_a, gw_a) = start_gateway(&engine, config_a);
    let mut c = ResilientConfig::new(vec![gw_a.tcp_addr.unwrap(), addr_b], "CLIENT1", "EXCH");
    c.connect_timeout = Duration::from_millis(500);
    let mut client = ResilientClient::new(c);
    client.connect(Instant::now() + WAIT).unwrap();
    client.send_order(&order("OPEN1", b'1', 10, "95.00"));
    pump(&mut [&mut client], WAIT, "resting", |c| {
        c.order("OPEN1").is_some_and(|o| o.ord_status == b'0')
    });
    gw_a.abort();
    rt_a.shutdown_background();
    client.drop_connection();

    let mut config_b = gateway_config(&dir.path().join("store-b"));
    config_b.tcp_listen = Some(addr_b);
    cod(&mut config_b);
    let (_rt_b, gw_b) = start_gateway(&engine, config_b);
    pump(&mut [&mut client], WAIT, "cancelled", |c| {
        c.order("OPEN1").is_some_and(|o| o.ord_status == b'4')
    });
    assert_eq!(client.stats.seq_too_low, 0);
    // Session 2 was never logged on: nothing of it was cancelled or reported.
    let mass_cancels = engine
        .inbound_frames()
        .iter()
        .filter(|(t, _)| *t == sbe_order_entry::mass_cancel_event_codec::SBE_TEMPLATE_ID)
        .count();
    assert_eq!(mass_cancels, 1);
    drop(gw_b);
}

fn start_on(
    engine: &Engine,
    store: &std::path::Path,
    addr: std::net::SocketAddr,
) -> (tokio::runtime::Runtime, gateway::Gateway) {
    let mut config = gateway_config(store);
    config.tcp_listen = Some(addr);
    config.replicated_sessions = Some(gateway::ReplicatedSessions {
        checkpoint_interval_ms: 50,
        ..gateway::ReplicatedSessions::default()
    });
    start_gateway(engine, config)
}

fn crash(rt: tokio::runtime::Runtime, gw: gateway::Gateway, clients: &mut [&mut ResilientClient]) {
    gw.abort();
    rt.shutdown_background();
    for c in clients.iter_mut() {
        c.drop_connection();
    }
}

/// Every report of each session reached its client, nothing was journaled twice, no client
/// was logged out or saw a number go back, copies came flagged.
fn check_all_delivered(engine: &Engine, clients: &mut [(&mut ResilientClient, u64)]) {
    for (c, session) in clients.iter_mut() {
        let mut expected = Vec::new();
        let mut r = engine.outbound.reader(1).unwrap();
        while let Some(f) = r.poll().unwrap() {
            if f.template_id == journal::TEMPLATE_BATCH_END {
                continue;
            }
            let json = sbe_order_entry::message_to_json(f.payload).unwrap();
            if matches!(f.template_id, 20..=24) && json_u64(&json, "sessionId") == Some(*session) {
                expected.push(f.sequence.to_string());
            }
        }
        let deadline = Instant::now() + WAIT;
        while expected.iter().any(|e| !c.exec_ids().contains(e)) {
            assert!(
                Instant::now() < deadline,
                "session {session}: reports missing"
            );
            c.poll(Duration::from_millis(10));
        }
        let s = c.stats;
        assert_eq!((s.seq_too_low, s.logouts_received), (0, 0), "{:?}", c.notes);
        assert_eq!(s.duplicates_unflagged, 0, "{s:?}");
    }
    let journaled = journaled_orders(engine);
    for (c, session) in clients.iter() {
        for cl in c.sent_orders() {
            assert_eq!(journaled.get(&(*session, cl.clone())), Some(&1), "{cl}");
        }
    }
}

#[test]
fn sessions_survive_a_node_that_died_before_they_returned_and_a_second_failover() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let addrs: Vec<_> = (0..4).map(|_| loopback_ports::addr()).collect();
    let (rt, gw) = start_on(&engine, &dir.path().join("store-a"), addrs[0]);
    let client = |name: &str| {
        let mut c = ResilientConfig::new(addrs.clone(), name, "EXCH");
        c.heartbeat_secs = 2;
        c.connect_timeout = Duration::from_millis(300);
        ResilientClient::new(c)
    };
    let (mut buyer, mut seller) = (client("CLIENT1"), client("CLIENT2"));
    buyer.connect(Instant::now() + WAIT).unwrap();
    seller.connect(Instant::now() + WAIT).unwrap();
    for i in 1..=4 {
        buyer.send_order(&order(&format!("R{i}"), b'1', 10, "99.00"));
    }
    seller.send_order(&order("S1", b'2', 10, "99.00"));
    pump(&mut [&mut buyer], WAIT, "first fill", |c| {
        c.order("R1").is_some_and(|o| o.ord_status == b'2')
    });
    pump(&mut [&mut seller], WAIT, "first sell", |c| {
        c.order("S1").is_some_and(|o| o.ord_status == b'2')
    });
    // In flight at the first crash: a fill the clients never read.
    seller.send_order(&order("S2", b'2', 10, "99.00"));
    let fills = || {
        engine
            .outbound_frames()
            .iter()
            .filter(|(t, _)| *t == sbe_order_entry::order_filled_codec::SBE_TEMPLATE_ID)
            .count()
    };
    wait_until(WAIT, "S2 filled", || fills() == 4);
    crash(rt, gw, &mut [&mut buyer, &mut seller]);

    // B takes over and dies before any client came back.
    let (rt, gw) = start_on(&engine, &dir.path().join("store-b"), addrs[1]);
    std::thread::sleep(Duration::from_millis(120));
    crash(rt, gw, &mut []);

    // C takes over; the clients come back to it.
    let (rt, gw) = start_on(&engine, &dir.path().join("store-c"), addrs[2]);
    pump(&mut [&mut buyer], WAIT, "buyer on C", |c| {
        c.order("R2").is_some_and(|o| o.ord_status == b'2')
    });
    pump(&mut [&mut seller], WAIT, "seller on C", |c| {
        c.order("S2").is_some_and(|o| o.ord_status == b'2')
    });
    assert_eq!(buyer.connected_to(), Some(addrs[2]));
    check_all_delivered(&engine, &mut [(&mut buyer, 1), (&mut seller, 2)]);

    // Trading on C, then C dies with a fill unread, and D takes over.
    seller.send_order(&order("S3", b'2', 10, "99.00"));
    pump(&mut [&mut buyer], WAIT, "R3 on C", |c| {
        c.order("R3").is_some_and(|o| o.ord_status == b'2')
    });
    seller.send_order(&order("S4", b'2', 10, "99.00"));
    wait_until(WAIT, "S4 filled", || fills() == 8);
    crash(rt, gw, &mut [&mut buyer, &mut seller]);
    buyer.send_order(&order("R5", b'1', 10, "98.00"));
    let (rt, gw) = start_on(&engine, &dir.path().join("store-d"), addrs[3]);
    pump(&mut [&mut buyer], WAIT, "buyer on D", |c| {
        c.order("R4").is_some_and(|o| o.ord_status == b'2')
            && c.order("R5").is_some_and(|o| o.ord_status == b'0')
    });
    pump(&mut [&mut seller], WAIT, "seller on D", |c| {
        (3..=4).all(|i| {
            c.order(&format!("S{i}"))
                .is_some_and(|o| o.ord_status == b'2')
        })
    });
    check_all_delivered(&engine, &mut [(&mut buyer, 1), (&mut seller, 2)]);
    assert_eq!((buyer.reconnect_count(), seller.reconnect_count()), (2, 2));
    drop(gw);
    drop(rt);
}

#[test]
fn redelivery_keeps_the_newest_reports_and_counts_what_it_could_not_keep() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let addrs = vec![loopback_ports::addr(), loopback_ports::addr()];
    let replicated = gateway::ReplicatedSessions {
        checkpoint_interval_ms: 3_600_000,
        redelivery_reports_max: 1,
        ..gateway::ReplicatedSessions::default()
    };
    let start = |i: usize| {
        let mut config = gateway_config(&dir.path().join(format!("store-{i}")));
        config.tcp_listen = Some(addrs[i]);
        config.replicated_sessions = Some(replicated);
        start_gateway(&engine, config)
    };
    let (rt, gw) = start(0);
    let mut c = ResilientConfig::new(addrs.clone(), "CLIENT1", "EXCH");
    c.connect_timeout = Duration::from_millis(300);
    let mut client = ResilientClient::new(c);
    client.connect(Instant::now() + WAIT).unwrap();
    for i in 1..=3 {
        client.send_order(&order(&format!("K{i}"), b'1', 10, "90.00"));
    }
    pump(&mut [&mut client], WAIT, "acks", |c| {
        c.acknowledged().len() == 3
    });
    client.send_order(&order("LAST", b'1', 10, "90.00"));
    let accepted = || {
        engine
            .outbound_frames()
            .iter()
            .filter(|(t, _)| *t == sbe_order_entry::order_accepted_codec::SBE_TEMPLATE_ID)
            .count()
    };
    wait_until(WAIT, "LAST accepted", || accepted() == 4);
    crash(rt, gw, &mut [&mut client]);
    let (_rt, gw) = start(1);
    pump(&mut [&mut client], WAIT, "LAST acknowledged", |c| {
        c.order("LAST").is_some()
    });
    let stats = gw.stats();
    assert_eq!(stats.reports_redelivered.load(Ordering::Relaxed), 1);
    assert_eq!(stats.redelivery_truncated.load(Ordering::Relaxed), 1);
    assert_eq!(client.stats.duplicates_unflagged, 0);
}
