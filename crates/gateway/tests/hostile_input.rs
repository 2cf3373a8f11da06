//! Hostile input through a real socket never takes the gateway down.
//!
//! A logged-on client sends a deterministic stream (seeded linear congruential generator) of
//! valid orders with bytes flipped, inserted and removed, random tag=value soup, huge
//! NumInGroup counts, absurd sequence numbers and plain junk; whenever the gateway closes the
//! connection the client reconnects and logs on again. Afterwards the test proves the gateway
//! still works: a fresh session logs on, places an order and gets its ExecutionReport, and the
//! session that was hammered can log on again. A panic in a connection task while it holds a
//! session's lock would poison that lock and fail the last step.

mod common;
use common::*;

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn mutate(rng: &mut Lcg, mut m: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(4) {
        if m.is_empty() {
            break;
        }
        let i = rng.below(m.len() as u64) as usize;
        match rng.below(4) {
            0 => m[i] = rng.next() as u8,
            1 => m.insert(
                i,
                if rng.below(3) == 0 {
                    1
                } else {
                    rng.next() as u8
                },
            ),
            2 => {
                m.remove(i);
            }
            _ => m[i] = 1,
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_streams_do_not_hurt_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let mut c = gateway_config(&dir.path().join("store"));
    c.logon_timeout_ms = 300;
    let gw = gateway::Gateway::start(c, &engine.inbound, &engine.outbound)
        .await
        .unwrap();
    let addr = gw.tcp_addr.unwrap();
    let mut rng = Lcg(0x5eed);

    let mut a = Client::tcp(addr, "CLIENT1").await;
    a.send("A", "98=0|108=30|141=Y|").await;
    let _ = a.recv().await;
    for round in 0..400 {
        let kind = rng.below(6);
        let seq = a.seq;
        let raw = match kind {
            0 => mutate(
                &mut rng,
                a.build(
                    "D",
                    seq,
                    "",
                    &nos(&format!("H{round}"), "1", "10", "100.00"),
                ),
            ),
            1 => {
                let soup: String = (0..rng.below(12))
                    .map(|_| format!("{}={}|", rng.below(12_000), rng.next() % 1000))
                    .collect();
                a.build("D", seq, "", &soup)
            }
            2 => a.build(
                "D",
                seq,
                "",
                &format!(
                    "{}78={}|79=X|",
                    nos(&format!("G{round}"), "2", "10", "100.00"),
                    rng.next()
                ),
            ),
            3 => a.build(
                "2",
                seq,
                "",
                &format!("7={}|16={}|", rng.next(), rng.next()),
            ),
            4 => a.build("4", rng.next(), "", &format!("36={}|", rng.next())),
            _ => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
        };
        a.seq += 1;
        a.send_raw(&raw).await;
        if round % 20 == 19 {
            // Reconnect (the gateway may have closed the connection, which is fine).
            drop(a);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            a = Client::tcp(addr, "CLIENT1").await;
            a.seq = 1;
            a.send("A", "98=0|108=30|141=Y|").await;
            let _ = a.recv().await;
        }
    }
    drop(a);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    // Another session is unaffected.
    let mut b = Client::tcp(addr, "CLIENT2").await;
    b.logon().await;
    b.send("D", &nos("AFTER-1", "2", "10", "100.00")).await;
    let er = b.recv().await.expect("the order's report");
    assert_eq!(
        (er.msg_type(), er.get(11), er.get(150)),
        ("8", Some("AFTER-1"), Some("0")),
        "{er:?}"
    );
    // The hammered session still works.
    let mut a = Client::tcp(addr, "CLIENT1").await;
    a.send("A", "98=0|108=30|141=Y|").await;
    let logon = a.recv().await.expect("logon answer");
    assert_eq!(logon.msg_type(), "A");
    a.send("1", "112=alive|").await;
    let hb = a.recv().await.expect("an answer to the TestRequest");
    assert!(hb.msg_type() == "0" || hb.msg_type() == "1", "{hb:?}");
    gw.shutdown();
}
