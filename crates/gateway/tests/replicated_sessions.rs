//! Rules that make sessions resumable from the journal, one at a time, over real sockets.
//!
//! Real journals, the real matching agent and the gateway on loopback, with a scripted FIX
//! client. The tests prove that:
//! - an order, cancel or replace resent with PossDupFlag=Y whose ClOrdID the gateway already
//!   knows (it was journaled) is ignored silently and not journaled again, while a possible
//!   duplicate with a new ClOrdID is handled and a plain duplicate ClOrdID is still rejected;
//!   on a single node (no replicated sessions) as much as with them;
//! - with replicated sessions, the gateway never sends a MsgSeqNum at or above the reservation
//!   it published in the journal: a window too small for what one message needs ends the
//!   session with a Logout that says why, and a small window that suffices works with the
//!   reservations moving ahead in the journal;
//! - a reservation counts only once it is in the journal: with the sequencer held, the
//!   reservations the gateway publishes wait in the hand-off and the session runs out at the
//!   last one journaled (a node that dies with a reservation published but not committed must
//!   not have used it).

mod common;
use common::*;
use std::sync::atomic::Ordering;

async fn setup(
    tweak: impl FnOnce(&mut gateway::GatewayConfig),
) -> (tempfile::TempDir, Engine, gateway::Gateway) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let mut c = gateway_config(&dir.path().join("store"));
    tweak(&mut c);
    let gw = gateway::Gateway::start(c, &engine.inbound, &engine.outbound)
        .await
        .unwrap();
    (dir, engine, gw)
}

fn count_events(engine: &Engine, template: u16, cl: &str) -> usize {
    engine
        .inbound_frames()
        .iter()
        .filter(|(t, j)| *t == template && j.contains(&format!("\"clOrdId\":\"{cl}\"")))
        .count()
}

/// Sends `msg_type` with PossDupFlag=Y and OrigSendingTime, in sequence.
async fn send_poss_dup(c: &mut Client, msg_type: &str, fields: &str) {
    let extra = format!("43=Y|122={}|", ts(now_ns() - 1_000_000_000));
    let raw = c.build(msg_type, c.seq, &extra, fields);
    c.seq += 1;
    c.send_raw(&raw).await;
}

/// The next message must be the Heartbeat answering TestRequest `id` (nothing came before).
async fn nothing_before_test_request(c: &mut Client, id: &str) {
    c.send("1", &format!("112={id}|")).await;
    let m = c.recv().await.expect("an answer");
    assert_eq!((m.msg_type(), m.get(112)), ("0", Some(id)), "{m:?}");
}

async fn poss_dup_rules(replicated: bool) {
    let (_dir, engine, gw) = setup(|c| {
        if replicated {
            c.replicated_sessions = Some(gateway::ReplicatedSessions::default());
        }
    })
    .await;
    let mut a = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    a.logon().await;
    a.send("D", &nos("X1", "1", "10", "100.00")).await;
    let ack = a.recv_app().await;
    assert_eq!((ack.get(11), ack.get(150)), (Some("X1"), Some("0")));
    let new_order = sbe_order_entry::new_order_event_codec::SBE_TEMPLATE_ID;

    // Known ClOrdID, possible duplicate: ignored, not journaled again.
    send_poss_dup(&mut a, "D", &nos("X1", "1", "10", "100.00")).await;
    nothing_before_test_request(&mut a, "T1").await;
    assert_eq!(gw.stats().poss_dup_ignored.load(Ordering::Relaxed), 1);
    assert_eq!(count_events(&engine, new_order, "X1"), 1);

    // A cancel resent as a possible duplicate after it was handled: ignored too.
    a.send("F", "11=C1|41=X1|55=ACME|54=1|60=20251122-00:00:00|")
        .await;
    let cxl = a.recv_app().await;
    assert_eq!(
        (cxl.get(11), cxl.get(150)),
        (Some("C1"), Some("4")),
        "{cxl:?}"
    );
    send_poss_dup(
        &mut a,
        "F",
        "11=C1|41=X1|55=ACME|54=1|60=20251122-00:00:00|",
    )
    .await;
    nothing_before_test_request(&mut a, "T2").await;
    assert_eq!(gw.stats().poss_dup_ignored.load(Ordering::Relaxed), 2);
    let cancel = sbe_order_entry::cancel_order_event_codec::SBE_TEMPLATE_ID;
    assert_eq!(count_events(&engine, cancel, "C1"), 1);

    // A possible duplicate the gateway never saw: handled like any order.
    send_poss_dup(&mut a, "D", &nos("X2", "1", "10", "100.00")).await;
    let ack = a.recv_app().await;
    assert_eq!((ack.get(11), ack.get(150)), (Some("X2"), Some("0")));
    assert_eq!(count_events(&engine, new_order, "X2"), 1);

    // Without PossDupFlag a known ClOrdID is still a duplicate, rejected.
    a.send("D", &nos("X1", "1", "10", "100.00")).await;
    let rej = a.recv_app().await;
    assert_eq!(
        (rej.get(11), rej.get(150), rej.get(103)),
        (Some("X1"), Some("8"), Some("6")),
        "{rej:?}"
    );
    assert_eq!(count_events(&engine, new_order, "X1"), 1);
    assert_eq!(gw.stats().poss_dup_ignored.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poss_dup_with_a_known_cl_ord_id_is_ignored_on_a_single_node() {
    poss_dup_rules(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poss_dup_with_a_known_cl_ord_id_is_ignored_with_replicated_sessions() {
    poss_dup_rules(true).await;
}

/// (senderSeqNumReserved, reason) of session 1's checkpoints in the inbound journal.
fn reservations(engine: &Engine) -> Vec<(u64, String)> {
    engine
        .inbound_frames()
        .iter()
        .filter(|(t, j)| {
            *t == sbe_order_entry::session_checkpoint_event_codec::SBE_TEMPLATE_ID
                && j.contains("\"sessionId\":1,")
        })
        .map(|(_, j)| {
            let k = "\"senderSeqNumReserved\":";
            let i = j.find(k).unwrap() + k.len();
            let n: String = j[i..].chars().take_while(char::is_ascii_digit).collect();
            let r = j.split("\"reason\":\"").nth(1).unwrap().split('"').next();
            (n.parse().unwrap(), r.unwrap().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_would_pass_the_reservation_ends_the_session_with_a_logout() {
    let (_dir, engine, gw) = setup(|c| {
        c.replicated_sessions = Some(gateway::ReplicatedSessions {
            sender_seq_reservation: 2,
            ..gateway::ReplicatedSessions::default()
        });
    })
    .await;
    // Published at start: numbers 1 and 2 (the Logout's).
    assert_eq!(reservations(&engine), [(3, "Start".to_string())]);
    let mut a = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    // A Logon ahead of what the gateway expects needs two numbers: the Logon and a
    // ResendRequest. The window holds one besides the Logout's.
    a.seq = 5;
    a.send("A", "98=0|108=30|").await;
    let got = a.until_closed().await;
    let types: Vec<&str> = got.iter().map(Msg::msg_type).collect();
    assert_eq!(types, ["A", "5"], "{got:?}");
    assert_eq!(got[1].seq(), 2);
    assert!(
        got[1].get(58).unwrap().contains("reservation exhausted"),
        "{got:?}"
    );
    assert!(gw.stats().seq_reservation_exhausted.load(Ordering::Relaxed) >= 1);
    let (next_sender, _) = gw.session_seq_nums(1).unwrap();
    assert_eq!(next_sender, 3, "nothing at or past the reservation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_window_moves_ahead_of_every_message_sent() {
    let (_dir, engine, gw) = setup(|c| {
        c.replicated_sessions = Some(gateway::ReplicatedSessions {
            sender_seq_reservation: 4,
            ..gateway::ReplicatedSessions::default()
        });
    })
    .await;
    let mut a = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    a.logon().await;
    let mut last_seq = 1;
    for i in 0..20 {
        a.send("D", &nos(&format!("W{i}"), "1", "10", "100.00"))
            .await;
        let ack = a.recv_app().await;
        assert_eq!(ack.get(150), Some("0"), "{ack:?}");
        last_seq = ack.seq();
    }
    assert_eq!(last_seq, 21);
    let r = reservations(&engine);
    let moved = r.iter().filter(|(_, why)| why == "Reservation").count();
    assert!(moved >= 10, "{r:?}");
    // Each reservation is ahead of the numbers already used when it was published, and the
    // last one is ahead of everything sent.
    assert!(r.windows(2).all(|w| w[0].0 <= w[1].0), "{r:?}");
    assert!(r.last().unwrap().0 > last_seq);
    assert_eq!(
        gw.stats().seq_reservation_exhausted.load(Ordering::Relaxed),
        0
    );
    // A Logout is checkpointed as such.
    a.send("5", "").await;
    let got = a.until_closed().await;
    assert_eq!(got.last().map(Msg::msg_type), Some("5"));
    let deadline = std::time::Instant::now() + WAIT;
    while !reservations(&engine).iter().any(|(_, why)| why == "Logout") {
        assert!(std::time::Instant::now() < deadline, "no Logout checkpoint");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_not_yet_in_the_journal_is_not_used() {
    let (_dir, engine, gw) = setup(|c| {
        c.replicated_sessions = Some(gateway::ReplicatedSessions {
            sender_seq_reservation: 4,
            ..gateway::ReplicatedSessions::default()
        });
    })
    .await;
    let mut a = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    a.logon().await;
    assert_eq!(reservations(&engine).last().unwrap().0, 5);
    // From here on nothing is journaled: reservations are published, not committed.
    engine.sequencing_paused.store(true, Ordering::Relaxed);
    let mut got = Vec::new();
    for i in 0..3 {
        a.send("1", &format!("112=T{i}|")).await;
        got.push(a.recv().await.expect("an answer"));
    }
    let types: Vec<&str> = got.iter().map(Msg::msg_type).collect();
    assert_eq!(types, ["0", "0", "5"], "{got:?}");
    assert_eq!(got.iter().map(Msg::seq).collect::<Vec<_>>(), [2, 3, 4]);
    assert!(got[2].get(58).unwrap().contains("reservation exhausted"));
    assert_eq!(reservations(&engine).last().unwrap().0, 5);
    // The gateway had published more (they reach the journal once it runs again).
    engine.sequencing_paused.store(false, Ordering::Relaxed);
    let deadline = std::time::Instant::now() + WAIT;
    while reservations(&engine).last().unwrap().0 <= 5 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
