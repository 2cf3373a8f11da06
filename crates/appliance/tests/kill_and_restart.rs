//! The real binary, killed with SIGKILL under load and restarted: nothing acknowledged is lost
//! or duplicated.
//!
//! The test starts `appliance serve` on a fresh data directory and an ephemeral HTTP port, and
//! trades over HTTP from two accounts (resting orders, crossing orders, cancels) while another
//! thread keeps entering orders. It kills the process with SIGKILL at seeded moments, several
//! times, restarting it on the same data directory each time. Then it checks, through HTTP and
//! through the reporter's SQLite database:
//! - every order the API acknowledged (answered with an order id) is still there, in a state
//!   at least as advanced as the acknowledgement said;
//! - no execution is duplicated: per order, the executions' quantities add up to the order's
//!   filled quantity, and every trade has exactly two executions;
//! - account balances (from the replica) are consistent with the executions;
//! - engine snapshots are written (every 300 events here) and restarts restore them;
//! - `appliance replay` reproduces the recorded outbound journal byte for byte;
//! - a graceful SIGTERM exits 0.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_appliance");

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test must not leave the process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &Path) -> Server {
    // Frequent snapshots, so restarts restore one and replay only the rest.
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        "[snapshots]\nevery_events = 300\nkeep_max = 2\n[market_data]\nenabled = false\n[fix]\nenabled = false\n[threads]\nmatching = { idle = \"backoff\", cpu = 0 }\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--http-listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start appliance");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(stdout);
    out.read_line(&mut line).unwrap();
    // Keep reading what the server prints, so it never writes into a closed pipe.
    std::thread::spawn(move || for _ in out.lines() {});
    let base = line
        .trim()
        .rsplit(' ')
        .next()
        .expect("the first line names the HTTP address")
        .to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    Server { child, base }
}

fn kill9(mut s: Server) {
    unsafe_kill(s.child.id() as i32, 9);
    let _ = s.child.wait();
}

fn must_order(c: &reqwest::blocking::Client, base: &str, key: &str, body: Value) -> Value {
    let r = c
        .post(format!("{base}/v1/order"))
        .header("X-API-Key", key)
        .json(&body)
        .send()
        .unwrap();
    let status = r.status();
    let v: Value = r.json().unwrap();
    assert!(status.is_success(), "{status}: {v}");
    v
}

fn unsafe_kill(pid: i32, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn order(c: &reqwest::blocking::Client, base: &str, key: &str, body: Value) -> Option<Value> {
    let r = c
        .post(format!("{base}/v1/order"))
        .header("X-API-Key", key)
        .json(&body)
        .send()
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().ok()
}

/// Acknowledged orders: id -> (key, the acknowledgement).
type Acks = Arc<Mutex<BTreeMap<u64, (String, Value)>>>;

fn load(base: String, acks: Acks, stop: Arc<AtomicBool>, seed: u64) {
    let c = client();
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while !stop.load(Ordering::Relaxed) {
        let r = next();
        let key = if r % 2 == 0 {
            "demo-key-1"
        } else {
            "demo-key-2"
        };
        let side = if (r >> 1) % 2 == 0 { "buy" } else { "sell" };
        let price = format!("{}.{:02}", 99 + (r >> 2) % 3, (r >> 4) % 100);
        let qty = 1 + (r >> 10) % 20;
        let body = json!({"symbol": "ACME", "side": side, "price": price, "quantity": qty, "timeInForce": "gtc"});
        match order(&c, &base, key, body) {
            Some(ack) => {
                if let Some(id) = ack["id"].as_u64() {
                    acks.lock().unwrap().insert(id, (key.to_string(), ack));
                }
            }
            // The server is being killed: stop this round.
            None => return,
        }
    }
}

fn wait_caught_up(c: &reqwest::blocking::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Value::Null;
    loop {
        if let Ok(r) = c.get(format!("{base}/healthz")).send() {
            let h: Value = r.json().unwrap();
            let lag = |k: &str| h["consumers"][k]["lag"].as_u64().unwrap();
            if lag("matching") == 0 && lag("replica") == 0 && lag("reporter") == 0 {
                return;
            }
            last = h;
        }
        assert!(
            Instant::now() < deadline,
            "consumers did not catch up: {last}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigkill_under_load_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let acks: Acks = Arc::default();
    let c = client();

    for round in 0..4_u64 {
        let server = start(&data);
        let stop = Arc::new(AtomicBool::new(false));
        let loaders: Vec<_> = (0..2)
            .map(|i| {
                let (b, a, s) = (server.base.clone(), acks.clone(), stop.clone());
                std::thread::spawn(move || load(b, a, s, round * 10 + i + 1))
            })
            .collect();
        // A cancel of a resting order, interleaved with the load.
        std::thread::sleep(Duration::from_millis(150 + round * 97));
        let resting = must_order(
            &c,
            &server.base,
            "demo-key-1",
            json!({"symbol": "ACME", "side": "sell", "price": "105.00", "quantity": 5, "timeInForce": "gtc"}),
        );
        let id = resting["id"].as_u64().unwrap();
        acks.lock()
            .unwrap()
            .insert(id, ("demo-key-1".into(), resting));
        let r = c
            .delete(format!("{}/v1/order/{id}", server.base))
            .header("X-API-Key", "demo-key-1")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        std::thread::sleep(Duration::from_millis(100 + round * 53));
        kill9(server);
        stop.store(true, Ordering::Relaxed);
        for l in loaders {
            l.join().unwrap();
        }
    }

    let server = start(&data);
    wait_caught_up(&c, &server.base);
    let snapshots = std::fs::read_dir(data.join("snapshots")).map_or(0, |d| d.count());
    assert!(snapshots > 0, "no engine snapshot was written");
    let acks = acks.lock().unwrap().clone();
    assert!(acks.len() > 20, "only {} orders acknowledged", acks.len());
    let rank = |s: &str| match s {
        "new" => 0,
        "partially_filled" => 1,
        "filled" | "cancelled" => 2,
        other => panic!("status {other}"),
    };
    for (id, (key, ack)) in &acks {
        let r = c
            .get(format!("{}/v1/order/{id}", server.base))
            .header("X-API-Key", key)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged order {id} is missing");
        let now: Value = r.json().unwrap();
        assert!(
            now["filledQuantity"].as_u64() >= ack["filledQuantity"].as_u64(),
            "order {id}: {now} after {ack}"
        );
        let (a, n) = (
            ack["status"].as_str().unwrap(),
            now["status"].as_str().unwrap(),
        );
        assert!(rank(n) >= rank(a), "order {id} went from {a} back to {n}");
    }

    // The database: executions add up, trades have two sides, no duplicates.
    let db = rusqlite::Connection::open(data.join("reporter.sqlite")).unwrap();
    let bad: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM orders o WHERE o.filled_quantity !=
               (SELECT COALESCE(SUM(quantity), 0) FROM executions e WHERE e.order_id = o.order_id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(bad, 0, "orders whose executions do not add up");
    let odd: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM (SELECT trade_id FROM executions GROUP BY trade_id HAVING COUNT(*) != 2)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(odd, 0, "trades without exactly two executions");
    let trades: i64 = db
        .query_row("SELECT COUNT(*) FROM trades", [], |r| r.get(0))
        .unwrap();
    let execs: i64 = db
        .query_row("SELECT COUNT(*) FROM executions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(execs, 2 * trades);
    assert!(trades > 0, "the load never traded");

    // Positions moved by exactly the executions (both accounts started with 100000 ACME).
    for (account, key) in [(1, "demo-key-1"), (2, "demo-key-2")] {
        let bought: i64 = db
            .query_row(
                "SELECT COALESCE(SUM(CASE side WHEN 'buy' THEN quantity ELSE -quantity END), 0) FROM executions WHERE account_id = ?1",
                [account],
                |r| r.get(0),
            )
            .unwrap();
        let acct: Value = c
            .get(format!("{}/v1/account", server.base))
            .header("X-API-Key", key)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let acme = &acct["positions"][0];
        let total = acme["available"].as_i64().unwrap() + acme["reserved"].as_i64().unwrap();
        assert_eq!(total, 100_000 + bought, "account {account}: {acct}");
    }

    unsafe_kill(server.child.id() as i32, 15);
    let mut server = server;
    let status = server.child.wait().unwrap();
    assert!(status.success(), "SIGTERM exit: {status}");

    let out = Command::new(BIN)
        .args(["replay", "--config"])
        .arg(data.with_extension("toml"))
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "replay: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("reproduced byte for byte"), "{text}");
}
