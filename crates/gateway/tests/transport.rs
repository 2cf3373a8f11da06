//! Transport and protection rules through real loopback sockets, and a restart.
//!
//! Proves: TLS (rustls, certificates made here by rcgen from a test CA and loaded from PEM files)
//! carries a logon, an order and its ExecutionReport; a TLS handshake that never starts, a
//! connection that never logs on, a first message that is not a Logon and a Logon with unknown
//! CompIDs are all dropped; a second connection for a logged-on session is refused while the
//! first keeps working; the per-IP cap on unauthenticated sockets holds; garbled messages are
//! ignored without consuming a sequence number; the governor rate limit rejects or logs out as
//! configured; a slow consumer is dropped past its byte budget; and a restarted gateway resumes
//! sequence numbers, serves ResendRequests for messages sent before the restart, and still
//! knows the ClOrdIDs of the day (rebuilt from the journals).

mod common;
use common::*;
use std::sync::Arc;
use std::time::Duration;

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

/// True when the server closes the connection within `within`.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0_u8; 1024];
    loop {
        match tokio::time::timeout(within, s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

struct Pki {
    ca_der: rustls::pki_types::CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn make_pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "gateway test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca_der: ca_cert.der().clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

async fn tls_client(
    addr: std::net::SocketAddr,
    ca: &rustls::pki_types::CertificateDer<'static>,
    sender: &str,
) -> Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    Client::over(Box::new(tls), sender)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_carries_logon_orders_and_reports() {
    let pki = make_pki();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &pki.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &pki.key_pem).unwrap();
    let tls =
        gateway::tls_from_pem_files(&dir.path().join("cert.pem"), &dir.path().join("key.pem"))
            .unwrap();
    let (_d, _engine, gw) = setup(|c| {
        c.tls_listen = Some("127.0.0.1:0".parse().unwrap());
        c.tls = Some(tls);
        c.tls_handshake_timeout_ms = 1_500;
    })
    .await;
    let addr = gw.tls_addr.unwrap();
    let mut a = tls_client(addr, &pki.ca_der, "CLIENT1").await;
    a.logon().await;
    a.send("D", &nos("T-1", "1", "100", "100.25")).await;
    let er = a.recv_app().await;
    assert_eq!(
        (er.msg_type(), er.get(150), er.get(11)),
        ("8", Some("0"), Some("T-1"))
    );

    // A TCP connection to the TLS port that never starts the handshake is dropped.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(10)).await);
    assert!(
        gw.stats()
            .tls_handshake_failures
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    gw.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_that_do_not_log_on_properly_are_dropped() {
    let (_d, _engine, gw) = setup(|c| c.logon_timeout_ms = 300).await;
    let addr = gw.tcp_addr.unwrap();
    // Silence.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    // First message not a Logon.
    let mut c = Client::tcp(addr, "CLIENT1").await;
    c.send("0", "").await;
    assert!(c.until_closed().await.is_empty());
    // Unknown CompIDs.
    let mut c = Client::tcp(addr, "STRANGER").await;
    c.send("A", "98=0|108=30|").await;
    assert!(c.until_closed().await.is_empty());
    // Garbage.
    let mut c = Client::tcp(addr, "CLIENT1").await;
    c.send_raw(b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(c.until_closed().await.is_empty());
    // Wrong BeginString.
    let mut c = Client::tcp(addr, "CLIENT1").await;
    let raw = String::from_utf8(c.build("A", 1, "", "98=0|108=30|"))
        .unwrap()
        .replace("FIX.4.2", "FIX.4.4");
    c.send_raw(raw.as_bytes()).await;
    assert!(c.until_closed().await.is_empty());
    gw.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_for_a_logged_on_session_is_refused() {
    let (_d, _engine, gw) = setup(|_| {}).await;
    let addr = gw.tcp_addr.unwrap();
    let mut a = Client::tcp(addr, "CLIENT1").await;
    a.logon().await;
    let mut b = Client::tcp(addr, "CLIENT1").await;
    b.seq = 2;
    b.send("A", "98=0|108=30|").await;
    assert!(b.until_closed().await.is_empty());
    a.send("1", "112=still-here|").await;
    let hb = a.recv().await.unwrap();
    assert_eq!((hb.msg_type(), hb.get(112)), ("0", Some("still-here")));
    gw.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_sockets_per_ip_are_capped() {
    let (_d, _engine, gw) = setup(|c| c.unauthenticated_per_ip_max = 2).await;
    let addr = gw.tcp_addr.unwrap();
    let _one = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _two = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut three = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut three, Duration::from_secs(5)).await);
    // A logged-on session does not count against the cap.
    drop(_one);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut a = Client::tcp(addr, "CLIENT1").await;
    a.logon().await;
    let mut b = Client::tcp(addr, "CLIENT2").await;
    b.logon().await;
    gw.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_messages_are_ignored_without_using_a_sequence_number() {
    let (_d, _engine, gw) = setup(|_| {}).await;
    let mut a = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    a.logon().await;
    let mut bad = a.build("1", 2, "", "112=lost|");
    let n = bad.len();
    bad[n - 3] = if bad[n - 3] == b'9' { b'0' } else { b'9' }; // wrong CheckSum
    a.send_raw(&bad).await;
    a.send("1", "112=next|").await; // still number 2
    let m = a.recv().await.unwrap();
    assert_eq!((m.msg_type(), m.get(112)), ("0", Some("next")), "{m:?}");
    assert_eq!(
        gw.stats()
            .garbled
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    gw.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_rejects_or_logs_out_as_configured() {
    let (_d, _engine, gw) = setup(|c| {
        c.sessions[0].rate_limit = gateway::RateLimit {
            per_second: 1,
            burst: 2,
            action: gateway::RateLimitAction::Reject,
        };
        c.sessions[1].rate_limit = gateway::RateLimit {
            per_second: 1,
            burst: 1,
            action: gateway::RateLimitAction::Logout,
        };
    })
    .await;
    let addr = gw.tcp_addr.unwrap();
    let mut a = Client::tcp(addr, "CLIENT1").await;
    a.logon().await;
    for i in 0..3 {
        a.send("D", &nos(&format!("RL-{i}"), "1", "10", "100.00"))
            .await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(a.recv_app().await);
    }
    let throttled: Vec<_> = got.iter().filter(|m| m.msg_type() == "j").collect();
    assert_eq!(throttled.len(), 1, "{got:?}");
    assert_eq!(
        (throttled[0].get(380), throttled[0].get(58)),
        (Some("0"), Some("Message rate limit exceeded"))
    );

    let mut b = Client::tcp(addr, "CLIENT2").await;
    b.logon().await;
    b.send("D", &nos("RL-A", "1", "10", "100.00")).await;
    b.send("D", &nos("RL-B", "1", "10", "100.00")).await;
    let rest = b.until_closed().await;
    assert!(
        rest.iter()
            .any(|m| m.msg_type() == "5" && m.get(58) == Some("Message rate limit exceeded")),
        "{rest:?}"
    );
    gw.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_dropped_past_its_byte_budget() {
    let (_d, _engine, gw) = setup(|c| c.outbound_bytes_max = 64).await;
    let mut a = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    a.logon().await;
    a.send("D", &nos("S-1", "1", "10", "100.00")).await;
    a.until_closed().await;
    assert_eq!(
        gw.stats()
            .slow_consumers
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    gw.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_resumes_sessions_and_knows_the_days_orders() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let store = dir.path().join("store");
    let gw = gateway::Gateway::start(gateway_config(&store), &engine.inbound, &engine.outbound)
        .await
        .unwrap();
    let mut a = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    a.logon().await;
    a.send("D", &nos("P-1", "1", "10", "100.00")).await;
    let ack = a.recv_app().await;
    assert_eq!(ack.seq(), 2);
    a.send("5", "").await;
    assert_eq!(a.recv().await.unwrap().msg_type(), "5");
    gw.shutdown();

    let gw = gateway::Gateway::start(gateway_config(&store), &engine.inbound, &engine.outbound)
        .await
        .unwrap();
    assert_eq!(gw.session_seq_nums(1), Some((4, 4)));
    let mut a = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    a.seq = 4;
    let logon = a.logon().await;
    assert_eq!(logon.seq(), 4);
    a.send("2", "7=2|16=2|").await;
    let r = a.recv_app().await;
    assert_eq!(
        (r.seq(), r.get(43), r.get(11), r.get(17)),
        (2, Some("Y"), Some("P-1"), ack.get(17))
    );
    a.send("D", &nos("P-1", "1", "10", "100.00")).await;
    let dup = a.recv_app().await;
    assert_eq!(
        (dup.get(150), dup.get(103)),
        (Some("8"), Some("6")),
        "{dup:?}"
    );
    a.send(
        "F",
        &format!("41=P-1|11=P-2|55=ACME|54=1|60={}|", ts(now_ns())),
    )
    .await;
    let cxl = a.recv_app().await;
    assert_eq!(
        (cxl.get(150), cxl.get(11), cxl.get(41), cxl.get(37)),
        (Some("4"), Some("P-2"), Some("P-1"), ack.get(37)),
        "{cxl:?}"
    );
    gw.shutdown();
}

/// A client that stops reading while thousands of reports are due: the router's direct
/// writes fill its socket, the connection's task writes the rest as the client drains it, and
/// the client still gets every report exactly once, in MsgSeqNum order, each order's ack
/// before its cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_stay_in_order_when_a_client_socket_backs_up() {
    use std::io::{Read, Write};
    // About 7 MB of reports: more than the gateway's socket send buffer takes (4 MiB at most).
    const ORDERS: u64 = 16_000;
    let (_d, _engine, gw) = setup(|c| {
        c.outbound_bytes_max = 64 << 20;
        c.sessions[0].rate_limit.per_second = 1_000_000;
        c.sessions[0].rate_limit.burst = 1_000_000;
    })
    .await;
    let addr = gw.tcp_addr.unwrap();
    // Messages built by the test client's own builder (its socket is never used).
    let builder = Client::over(Box::new(tokio::io::duplex(64).0), "CLIENT1");
    let logon = builder.build("A", 1, "", "98=0|108=30|");
    let orders: Vec<Vec<u8>> = (0..ORDERS)
        .map(|i| {
            // IOC buys into an empty book: an ack, then the IOC remainder's cancel.
            let body = format!(
                "11=B-{i}|21=1|55=ACME|54=1|60={}|38=10|40=2|44=100.00|59=3|",
                ts(now_ns())
            );
            builder.build("D", i + 2, "", &body)
        })
        .collect();
    let received = tokio::task::spawn_blocking(move || {
        // A small receive buffer, so that the reports back up into the gateway's socket.
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&addr.into()).unwrap();
        let mut s = std::net::TcpStream::from(socket);
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(&logon).unwrap();
        let mut writer = s.try_clone().unwrap();
        // The orders go out from a thread of their own (the connection's task stops reading
        // while it waits to write, so one thread doing both would deadlock), in 100 bursts
        // over about half a second, so that reports keep coming (and the router keeps
        // writing) while the reader below drains the backed-up socket slowly.
        let sender = std::thread::spawn(move || {
            for burst in orders.chunks(orders.len() / 100) {
                writer.write_all(&burst.concat()).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        let mut buf = Vec::new();
        let mut tmp = vec![0_u8; 16 << 10];
        let mut msgs = Vec::new();
        let mut parser = fix_codec::Parser::new(256);
        while msgs.len() < 1 + 2 * ORDERS as usize {
            let n = s.read(&mut tmp).expect("reports within 30 s");
            assert!(n > 0, "closed after {} messages", msgs.len());
            // About 8 MB/s, half the rate the reports are produced at.
            std::thread::sleep(Duration::from_millis(2));
            buf.extend_from_slice(&tmp[..n]);
            while let fix_codec::Frame::Complete { len } =
                fix_codec::check_frame(&buf, b"FIX.4.2", 1 << 20)
            {
                let m = parser.parse(&buf[..len]).unwrap();
                let field = |tag| m.get(tag).map(|v| String::from_utf8_lossy(v).into_owned());
                let msg_type = String::from_utf8_lossy(m.msg_type()).into_owned();
                if msg_type != "0" {
                    msgs.push((msg_type, field(34), field(11), field(150)));
                }
                buf.drain(..len);
            }
        }
        sender.join().unwrap();
        msgs
    })
    .await
    .unwrap();
    assert_eq!(received[0].0, "A");
    let mut expect_ack = 0_u64;
    let mut open = std::collections::HashSet::new();
    for (next_seq, (msg_type, seq, cl, exec_type)) in (2_u64..).zip(&received[1..]) {
        assert_eq!(msg_type, "8");
        let seq: u64 = seq.as_deref().unwrap().parse().unwrap();
        assert_eq!(seq, next_seq, "MsgSeqNum in order, no gap or repeat");
        let cl = cl.clone().unwrap();
        match exec_type.as_deref() {
            Some("0") => {
                assert_eq!(cl, format!("B-{expect_ack}"), "acks in order");
                expect_ack += 1;
                open.insert(cl);
            }
            Some("4") => assert!(open.remove(&cl), "cancel of {cl} after its ack"),
            other => panic!("unexpected ExecType {other:?}"),
        }
    }
    assert_eq!(expect_ack, ORDERS);
    assert!(open.is_empty());
    assert!(
        gw.stats()
            .socket_backlogs
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "the client's socket backed up (the test exercised the task's part)"
    );
    gw.shutdown();
}

/// The pipeline's stages behind a lock, run only by the gateway's connection tasks (no thread).
struct AssistOnly(std::sync::Mutex<(journal::Sequencer, matching_agent::MatchingAgent)>);

impl gateway::PipelineAssist for AssistOnly {
    // No thread of its own takes turns: nothing to ring.
    fn set_router_bell(&self, _bell: Arc<journal::Doorbell>) {}

    fn assist(&self) -> Option<usize> {
        let Ok(mut g) = self.0.try_lock() else {
            return None;
        };
        let (sequencer, agent) = &mut *g;
        Some(sequencer.do_work().unwrap() + agent.do_work().unwrap())
    }
}

/// With a pipeline assist, the connection task that read an order runs sequencing and
/// matching itself and routes the results: here nothing else runs the engine, and the router
/// thread sleeps 3 s between looks (no doorbell), so every ack that arrives within that time
/// was journaled, matched, routed and written by the reading thread. Each order's batch is
/// counted in `assisted_batches`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reading_thread_runs_the_pipeline_and_writes_the_report() {
    const ORDERS: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let (inbound, sequencer, agent) = open_pipeline(dir.path());
    let outbound = agent.outbound_journal().clone();
    let assist = Arc::new(AssistOnly(std::sync::Mutex::new((sequencer, agent))));
    let mut c = gateway_config(&dir.path().join("store"));
    c.pipeline_assist = Some(assist);
    c.router_doorbell = false;
    c.router_wait = journal::WaitStrategy::Backoff {
        spins_max: 0,
        yields_max: 0,
        park_min: Duration::from_secs(3),
        park_max: Duration::from_secs(3),
    };
    let started = std::time::Instant::now();
    let gw = gateway::Gateway::start(c, &inbound, &outbound)
        .await
        .unwrap();
    let mut client = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    client.logon().await;
    for i in 0..ORDERS {
        client
            .send("D", &nos(&format!("A-{i}"), "1", "10", "100.00"))
            .await;
        let m = client.recv_app().await;
        assert_eq!(m.msg_type(), "8", "{m:?}");
        assert_eq!(m.get(11), Some(format!("A-{i}").as_str()), "{m:?}");
        assert_eq!(m.get(150), Some("0"), "{m:?}");
    }
    let elapsed = started.elapsed();
    let assisted = gw
        .stats()
        .assisted_batches
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        elapsed < Duration::from_secs(3),
        "the router thread may have woken up ({elapsed:?}): the test proves nothing"
    );
    assert!(assisted >= ORDERS, "assisted batches {assisted}");
    gw.shutdown();
}

/// With `read_spin`, a connection's task polls its socket for a while after each message
/// instead of parking: reports the router hands to the task meanwhile (no direct writes here)
/// still leave at once, and messages that arrive during the polling are handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_connection_still_writes_what_the_router_hands_it() {
    let (_d, _engine, gw) = setup(|c| {
        c.read_spin = Duration::from_millis(20);
        c.direct_write = false;
    })
    .await;
    let mut client = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    client.logon().await;
    for i in 0..30 {
        client
            .send("D", &nos(&format!("S-{i}"), "1", "10", "100.00"))
            .await;
        // Each ack comes at once (a wake-up the polling swallowed would leave it to the
        // task's next timer, up to a second later).
        let m = tokio::time::timeout(Duration::from_millis(300), client.recv_app())
            .await
            .expect("the ack while the connection polls");
        assert_eq!(m.get(11), Some(format!("S-{i}").as_str()), "{m:?}");
        assert_eq!(m.get(150), Some("0"), "{m:?}");
    }
    gw.shutdown();
}

/// With a pipeline assist, a connection whose messages fill the sequencer's hand-off drains it
/// itself instead of refusing them ("Engine busy"): here a 4-slot hand-off, no thread of the
/// pipeline's own, and 40 orders in one write all get their acks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hand_off_is_drained_by_the_publishing_thread() {
    const ORDERS: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let (inbound, sequencer, agent) = open_pipeline_with(dir.path(), |c| c.handoff_slots = 4);
    let outbound = agent.outbound_journal().clone();
    let assist = Arc::new(AssistOnly(std::sync::Mutex::new((sequencer, agent))));
    let mut c = gateway_config(&dir.path().join("store"));
    c.pipeline_assist = Some(assist);
    let gw = gateway::Gateway::start(c, &inbound, &outbound)
        .await
        .unwrap();
    let mut client = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    client.logon().await;
    let mut batch = Vec::new();
    for i in 0..ORDERS {
        batch.extend(client.build(
            "D",
            client.seq + i,
            "",
            &nos(&format!("H-{i}"), "1", "10", "100.00"),
        ));
    }
    client.seq += ORDERS;
    client.send_raw(&batch).await;
    for i in 0..ORDERS {
        let m = client.recv_app().await;
        assert_eq!(m.msg_type(), "8", "{m:?}");
        assert_eq!(m.get(11), Some(format!("H-{i}").as_str()), "{m:?}");
        assert_eq!(m.get(150), Some("0"), "{m:?}");
    }
    assert_eq!(
        gw.stats()
            .publish_back_pressure
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    gw.shutdown();
}

/// An assist that can be held: while `held`, its turns move nothing (as when the journal
/// behind the sequencer is itself full), so nothing drains the hand-off. A publication must
/// still give up after its bounded wait instead of taking such turns forever.
struct HeldAssist {
    held: std::sync::atomic::AtomicBool,
    pipeline: std::sync::Mutex<(journal::Sequencer, matching_agent::MatchingAgent)>,
}

impl gateway::PipelineAssist for HeldAssist {
    fn set_router_bell(&self, _bell: Arc<journal::Doorbell>) {}

    fn assist(&self) -> Option<usize> {
        if self.held.load(std::sync::atomic::Ordering::Acquire) {
            return Some(0);
        }
        let mut g = self.pipeline.try_lock().ok()?;
        let (sequencer, agent) = &mut *g;
        Some(sequencer.do_work().unwrap() + agent.do_work().unwrap())
    }
}

/// When the engine cannot take a request (its 4-slot hand-off full and nothing draining it
/// for longer than the gateway waits), the request is refused with BusinessMessageReject
/// (380=4, "Engine busy") and forgotten: the same ClOrdID sent again later is a new order or
/// cancel, not a duplicate, and a refused cancel leaves its order cancellable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_engine_cannot_take_is_refused_and_forgotten() {
    use std::sync::atomic::Ordering::{Relaxed, Release};
    let dir = tempfile::tempdir().unwrap();
    let (inbound, sequencer, agent) = open_pipeline_with(dir.path(), |c| c.handoff_slots = 4);
    let outbound = agent.outbound_journal().clone();
    let assist = Arc::new(HeldAssist {
        held: false.into(),
        pipeline: std::sync::Mutex::new((sequencer, agent)),
    });
    let mut c = gateway_config(&dir.path().join("store"));
    c.pipeline_assist = Some(assist.clone());
    let gw = gateway::Gateway::start(c, &inbound, &outbound)
        .await
        .unwrap();
    let mut client = Client::tcp(gw.tcp_addr.unwrap(), "CLIENT1").await;
    client.logon().await;
    client.send("D", &nos("B-0", "1", "10", "100.00")).await;
    let ack = client.recv_app().await;
    assert_eq!(
        (ack.get(11), ack.get(150)),
        (Some("B-0"), Some("0")),
        "{ack:?}"
    );

    // Held: four orders fill the hand-off, the cancel of B-0 and a fifth order find it full.
    assist.held.store(true, Release);
    let cancel = |cl: &str| format!("41=B-0|11={cl}|55=ACME|54=1|60={}|", ts(now_ns()));
    let mut batch = Vec::new();
    for i in 1..=4 {
        batch.extend(client.build(
            "D",
            client.seq,
            "",
            &nos(&format!("B-{i}"), "1", "10", "100.00"),
        ));
        client.seq += 1;
    }
    let cancel_seq = client.seq;
    batch.extend(client.build("F", client.seq, "", &cancel("C-0")));
    client.seq += 1;
    batch.extend(client.build("D", client.seq, "", &nos("B-5", "1", "10", "100.00")));
    client.seq += 1;
    client.send_raw(&batch).await;
    for (seq, msg_type) in [(cancel_seq, "F"), (cancel_seq + 1, "D")] {
        let j = client.recv_app().await;
        assert_eq!(j.msg_type(), "j", "{j:?}");
        assert_eq!(
            (j.get(45), j.get(372), j.get(380)),
            (Some(seq.to_string().as_str()), Some(msg_type), Some("4")),
            "{j:?}"
        );
        assert!(j.get(58).unwrap_or("").starts_with("Engine busy"), "{j:?}");
    }
    assert_eq!(gw.stats().publish_back_pressure.load(Relaxed), 2);

    // Released: the same cancel and order again are accepted as new requests.
    assist.held.store(false, Release);
    client.send("F", &cancel("C-0")).await;
    client.send("D", &nos("B-5", "1", "10", "100.00")).await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let m = client.recv_app().await;
        assert_eq!(m.msg_type(), "8", "{m:?}");
        seen.push((
            m.get(11).unwrap_or("").to_string(),
            m.get(150).unwrap_or("").to_string(),
        ));
    }
    let expected: Vec<(String, String)> = [
        ("B-1", "0"),
        ("B-2", "0"),
        ("B-3", "0"),
        ("B-4", "0"),
        ("C-0", "4"),
        ("B-5", "0"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(seen, expected);
    gw.shutdown();
}
