//! Orders through real sockets: FIX client → gateway → inbound journal → matching agent →
//! outbound journal → gateway → ExecutionReports.
//!
//! Each test starts real journals in a temporary directory, the real matching agent on an
//! engine thread, and the gateway on a loopback port, then plays a FIX 4.2 client over TCP. The
//! tests prove that orders are normalised into the SBE events the engine expects (with the
//! ClOrdIDs in the events), that engine results come back as ExecutionReports and
//! OrderCancelRejects with the FIX 4.2 fields set right (ExecTransType, ExecType, OrdStatus,
//! OrderID, ExecID, ClOrdID, OrigClOrdID, LastShares, LastPx, LeavesQty, CumQty, AvgPx,
//! OrdRejReason, CxlRejResponseTo, CxlRejReason), that the gateway's own rejects (duplicate
//! ClOrdID, unknown symbol, off tick, off lot) are specific, and that cancel-on-disconnect
//! publishes a mass cancel the engine executes.

mod common;
use common::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_acknowledged_filled_and_reported_on_both_sides() {
    let (_dir, engine, gw) = setup(|_| {}).await;
    let addr = gw.tcp_addr.unwrap();
    let mut a = Client::tcp(addr, "CLIENT1").await;
    let mut b = Client::tcp(addr, "CLIENT2").await;
    a.logon().await;
    b.logon().await;

    a.send("D", &nos("BUY-1", "1", "100", "100.25")).await;
    let ack = a.recv_app().await;
    assert_eq!(ack.msg_type(), "8", "{ack:?}");
    assert_eq!(
        (ack.get(20), ack.get(150), ack.get(39)),
        (Some("0"), Some("0"), Some("0"))
    );
    assert_eq!(
        (ack.get(11), ack.get(55), ack.get(54)),
        (Some("BUY-1"), Some("ACME"), Some("1"))
    );
    assert_eq!(
        (ack.get(151), ack.get(14), ack.get(38), ack.get(44)),
        (Some("100"), Some("0"), Some("100"), Some("100.25"))
    );
    let order_id = ack.get(37).unwrap().to_string();
    assert_ne!(order_id, "NONE");

    // The sell crosses 40 of the 100.
    b.send("D", &nos("SELL-1", "2", "40", "100.00")).await;
    let b_ack = b.recv_app().await;
    assert_eq!(b_ack.get(150), Some("0"));
    let b_fill = b.recv_app().await;
    assert_eq!(
        (b_fill.get(150), b_fill.get(39)),
        (Some("2"), Some("2")),
        "{b_fill:?}"
    );
    assert_eq!(
        (b_fill.get(32), b_fill.get(31)),
        (Some("40"), Some("100.25"))
    );
    assert_eq!((b_fill.get(151), b_fill.get(14)), (Some("0"), Some("40")));
    let a_fill = a.recv_app().await;
    assert_eq!(
        (a_fill.get(150), a_fill.get(39)),
        (Some("1"), Some("1")),
        "{a_fill:?}"
    );
    assert_eq!(
        (
            a_fill.get(32),
            a_fill.get(31),
            a_fill.get(151),
            a_fill.get(14)
        ),
        (Some("40"), Some("100.25"), Some("60"), Some("40"))
    );
    assert_eq!(a_fill.get(6), Some("100.250000"));
    assert_eq!(a_fill.get(37), Some(order_id.as_str()));
    assert_ne!(a_fill.get(17), ack.get(17), "ExecIDs are unique");

    // Replace the rest, then cancel it.
    a.send(
        "G",
        &format!(
            "41=BUY-1|11=BUY-2|21=1|55=ACME|54=1|60={}|38=120|40=2|44=100.50|",
            ts(now_ns())
        ),
    )
    .await;
    let rep = a.recv_app().await;
    assert_eq!(
        (rep.get(150), rep.get(39), rep.get(11), rep.get(41)),
        (Some("5"), Some("5"), Some("BUY-2"), Some("BUY-1")),
        "{rep:?}"
    );
    assert_eq!(
        (rep.get(151), rep.get(14), rep.get(44)),
        (Some("80"), Some("40"), Some("100.50"))
    );
    a.send(
        "F",
        &format!("41=BUY-2|11=CXL-1|55=ACME|54=1|60={}|", ts(now_ns())),
    )
    .await;
    let cxl = a.recv_app().await;
    assert_eq!(
        (cxl.get(150), cxl.get(39), cxl.get(11), cxl.get(41)),
        (Some("4"), Some("4"), Some("CXL-1"), Some("BUY-2")),
        "{cxl:?}"
    );
    assert_eq!((cxl.get(151), cxl.get(14)), (Some("0"), Some("40")));

    // Cancel again: the order is closed.
    a.send(
        "F",
        &format!("41=BUY-2|11=CXL-2|55=ACME|54=1|60={}|", ts(now_ns())),
    )
    .await;
    let rej = a.recv_app().await;
    assert_eq!(
        (rej.msg_type(), rej.get(434), rej.get(39)),
        ("9", Some("1"), Some("4")),
        "{rej:?}"
    );

    // The replaced order's first ClOrdID and the finished cancel's stay used for the day; the
    // first names no order any more; the order's status is still found by its ClOrdID.
    for cl in ["BUY-1", "CXL-1"] {
        a.send("D", &nos(cl, "1", "1", "100.00")).await;
        let r = a.recv_app().await;
        assert_eq!(
            (r.get(39), r.get(103), r.get(58)),
            (Some("8"), Some("6"), Some("Duplicate ClOrdID")),
            "{cl}: {r:?}"
        );
    }
    a.send(
        "F",
        &format!("41=BUY-1|11=CXL-3|55=ACME|54=1|60={}|", ts(now_ns())),
    )
    .await;
    let r = a.recv_app().await;
    assert_eq!(
        (r.msg_type(), r.get(102), r.get(58)),
        ("9", Some("1"), Some("Unknown order")),
        "{r:?}"
    );
    a.send("H", "11=BUY-2|55=ACME|54=1|").await;
    let r = a.recv_app().await;
    assert_eq!(
        (r.msg_type(), r.get(150), r.get(39), r.get(14), r.get(151)),
        ("8", Some("4"), Some("4"), Some("40"), Some("0")),
        "{r:?}"
    );

    // The inbound journal holds the events with their ClOrdIDs.
    let inbound = engine.inbound_frames();
    assert!(inbound.iter().any(|(t, j)| *t == 1
        && j.contains(r#""clOrdId":"BUY-1""#)
        && j.contains(r#""price":10025"#)));
    assert!(inbound.iter().any(|(t, j)| *t == 3
        && j.contains(r#""clOrdId":"BUY-2""#)
        && j.contains(r#""origClOrdId":"BUY-1""#)));
    assert!(inbound
        .iter()
        .any(|(t, j)| *t == 2 && j.contains(r#""clOrdId":"CXL-1""#)));
    assert!(inbound
        .iter()
        .any(|(t, j)| *t == 5 && j.contains(r#""eventType":"LoggedOn""#)));
    gw.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_rejects_specifically() {
    let (_dir, _engine, gw) = setup(|_| {}).await;
    let mut a = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    a.logon().await;
    a.send("D", &nos("X-1", "1", "100", "100.25")).await;
    assert_eq!(a.recv_app().await.get(150), Some("0"));

    let cases: [(String, &str, &str); 5] = [
        (nos("X-1", "1", "100", "100.25"), "6", "Duplicate ClOrdID"),
        (
            nos("X-2", "1", "100", "100.25").replace("55=ACME", "55=NOPE"),
            "1",
            "Unknown symbol",
        ),
        (
            nos("X-3", "1", "100", "100.26"),
            "0",
            "Price is not on the tick",
        ),
        (
            nos("X-4", "1", "100", "100.251"),
            "0",
            "Price is not on the tick",
        ),
        (
            nos("X-5", "1", "105", "100.25"),
            "0",
            "OrderQty is not a multiple of the lot size",
        ),
    ];
    for (body, reason, text) in cases {
        a.send("D", &body).await;
        let r = a.recv_app().await;
        assert_eq!(
            (r.msg_type(), r.get(150), r.get(39)),
            ("8", Some("8"), Some("8")),
            "{r:?}"
        );
        assert_eq!((r.get(103), r.get(58)), (Some(reason), Some(text)), "{r:?}");
    }
    // Engine rejects carry the engine's reason: outside the price band.
    a.send("D", &nos("X-6", "1", "100", "150.00")).await;
    let r = a.recv_app().await;
    assert_eq!(
        (r.get(150), r.get(58)),
        (Some("8"), Some("Price outside the band")),
        "{r:?}"
    );
    // Cancel and replace of unknown orders.
    a.send(
        "F",
        &format!("41=NOPE|11=C-1|55=ACME|54=1|60={}|", ts(now_ns())),
    )
    .await;
    let r = a.recv_app().await;
    assert_eq!(
        (r.msg_type(), r.get(102), r.get(434), r.get(39)),
        ("9", Some("1"), Some("1"), Some("8"))
    );
    a.send(
        "G",
        &format!(
            "41=NOPE|11=C-2|21=1|55=ACME|54=1|60={}|38=10|40=2|44=100|",
            ts(now_ns())
        ),
    )
    .await;
    let r = a.recv_app().await;
    assert_eq!(
        (r.msg_type(), r.get(102), r.get(434)),
        ("9", Some("1"), Some("2"))
    );
    // An engine-side replace reject names the replace's ClOrdID.
    a.send(
        "G",
        &format!(
            "41=X-1|11=X-7|21=1|55=ACME|54=1|60={}|38=100|40=2|44=150.00|",
            ts(now_ns())
        ),
    )
    .await;
    let r = a.recv_app().await;
    assert_eq!(
        (r.msg_type(), r.get(11), r.get(41), r.get(434), r.get(102)),
        ("9", Some("X-7"), Some("X-1"), Some("2"), Some("2")),
        "{r:?}"
    );
    // Order status from the gateway's view.
    a.send("H", "11=X-1|55=ACME|54=1|").await;
    let r = a.recv_app().await;
    assert_eq!(
        (r.get(20), r.get(39), r.get(151), r.get(11)),
        (Some("3"), Some("0"), Some("100"), Some("X-1")),
        "{r:?}"
    );
    // An unsupported application message: BusinessMessageReject.
    a.send("R", "131=Q1|").await;
    let r = a.recv_app().await;
    assert_eq!((r.msg_type(), r.get(380)), ("j", Some("3")));
    gw.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_on_disconnect_cancels_the_sessions_orders() {
    let (_dir, engine, gw) = setup(|c| c.sessions[0].cancel_on_disconnect = true).await;
    let mut a = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    a.logon().await;
    a.send("D", &nos("R-1", "1", "100", "100.25")).await;
    assert_eq!(a.recv_app().await.get(150), Some("0"));
    drop(a);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let frames = engine.outbound_frames();
        if frames
            .iter()
            .any(|(_, j)| j.contains(r#""reason":"MassCancelDisconnect""#))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no cancel on disconnect: {frames:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The report was sent while the client was away (stored as number 3): wait for it.
    while gw.session_seq_nums(1).unwrap().0 < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the cancel report was not stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // On reconnect the client sees the gap and recovers the report by ResendRequest.
    let mut a = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    a.seq = 3;
    let logon = a.logon().await;
    assert_eq!(logon.seq(), 4);
    a.send("2", "7=3|16=0|").await;
    let r = a.recv_app().await;
    assert_eq!(
        (r.msg_type(), r.seq(), r.get(43)),
        ("8", 3, Some("Y")),
        "{r:?}"
    );
    assert_eq!(
        (r.get(150), r.get(11), r.get(58)),
        (Some("4"), Some("R-1"), Some("Cancel on disconnect"))
    );
    assert!(r.get(122).is_some(), "OrigSendingTime on a resent message");
    gw.shutdown();
}

/// ClOrdIDs are held inline, at most 64 bytes: one of 64 bytes is an order like any other (and
/// its cancel finds it), one of 65 is rejected with a reason, even when the configuration
/// allows longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clordids_of_up_to_64_bytes_are_taken_and_longer_ones_rejected() {
    let (_dir, _engine, gw) = setup(|c| c.cl_ord_id_len_max = 1_000).await;
    let mut a = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    a.logon().await;
    let longest = "L".repeat(64);
    a.send("D", &nos(&longest, "1", "10", "100.00")).await;
    let ack = a.recv_app().await;
    assert_eq!(
        (ack.msg_type(), ack.get(11), ack.get(150)),
        ("8", Some(longest.as_str()), Some("0")),
        "{ack:?}"
    );
    let too_long = "T".repeat(65);
    a.send("D", &nos(&too_long, "1", "10", "100.00")).await;
    let rej = a.recv_app().await;
    assert_eq!(
        (rej.msg_type(), rej.get(150), rej.get(39), rej.get(58)),
        ("8", Some("8"), Some("8"), Some("ClOrdID too long")),
        "{rej:?}"
    );
    a.send(
        "F",
        &format!("41={longest}|11=CXL-1|55=ACME|54=1|60={}|", ts(now_ns())),
    )
    .await;
    let cxl = a.recv_app().await;
    assert_eq!(
        (cxl.get(150), cxl.get(11), cxl.get(41)),
        (Some("4"), Some("CXL-1"), Some(longest.as_str())),
        "{cxl:?}"
    );
    gw.shutdown();
}

/// A fault while routing (a panic with the router's state held) stops the router, and the
/// gateway says so (health checks read it), instead of accepting orders whose reports never go
/// out while looking healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routing_fault_stops_the_router_and_says_so() {
    let (_dir, _engine, gw) = setup(|_| {}).await;
    let mut a = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    a.logon().await;
    a.send("D", &nos("R-1", "1", "100", "100.25")).await;
    assert_eq!(a.recv_app().await.get(150), Some("0"));
    let stopped = |gw: &gateway::Gateway| {
        gw.stats()
            .router_stopped
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(stopped(&gw), 0);
    gw.panic_while_routing_for_tests();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while stopped(&gw) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(stopped(&gw), 1, "the router says it stopped");
    gw.shutdown();
}
