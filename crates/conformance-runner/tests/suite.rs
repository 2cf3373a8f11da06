//! The conformance suite (`conformance/scenarios/*.fixs`) against the real acceptor.
//!
//! Starts real journals, the matching agent and the gateway on a loopback port, then runs
//! every scenario over its own TCP connections with the same runner a client firm uses
//! (`fix-conformance`). Each scenario is keyed to a FIX session-level test case or to a rule of
//! the gateway's rules of engagement; the test fails naming every scenario and line that did
//! not hold.

use conformance_runner::{load_dir, run, Target};
use journal::{Journal, JournalConfig};
use matching::{AccountLimits, Asset, CommandKind, EngineConfig, ProductConfig};
use matching_agent::{inbound, AgentConfig, MatchingAgent};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn journal_config(dir: &Path) -> JournalConfig {
    let mut c = JournalConfig::in_dir(dir);
    c.segment_size = 1 << 20;
    c
}

#[test]
fn every_scenario_passes_against_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let (inbound_journal, mut sequencer) =
        Journal::open(journal_config(&dir.path().join("in"))).unwrap();
    let mut buf = [0_u8; inbound::ENCODED_LEN_MAX];
    for (asset, amount) in [
        (Asset::Cash, 1_000_000_000_000_i128),
        (Asset::Position(1), 1_000_000_i128),
    ] {
        let (t, len) = inbound::encode(
            &CommandKind::Deposit {
                account_id: 1,
                asset,
                amount,
            },
            0,
            &mut buf,
        )
        .unwrap();
        sequencer.append(t, &buf[..len]).unwrap();
    }
    let engine = EngineConfig {
        orders_max: 10_000,
        order_id_window: 16_384,
        levels_per_side_max: 1_000,
        accounts_max: 4,
        instruments_max: 4,
        default_limits: AccountLimits::UNLIMITED,
        products: vec![ProductConfig::simple(1, "ACME", 10_000)],
    };
    let mut agent = MatchingAgent::open(
        AgentConfig::new(engine, journal_config(&dir.path().join("out"))),
        &inbound_journal,
    )
    .unwrap();
    let outbound_journal = agent.outbound_journal().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let engine_thread = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            if sequencer.do_work().unwrap() + agent.do_work().unwrap() == 0 {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = gateway::GatewayConfig::new(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fix-dictionaries/FIX42.xml"
        ),
        dir.path().join("store"),
    );
    config.tcp_listen = Some("127.0.0.1:0".parse().unwrap());
    let mut fix = fix_session::SessionConfig::new("EXCH", "CLIENT1");
    fix.heartbeat_secs_min = 1;
    fix.heartbeat_secs_max = 300;
    config.sessions = vec![gateway::SessionEntry {
        session_id: 1,
        account_id: 1,
        fix,
        cancel_on_disconnect: false,
        rate_limit: gateway::RateLimit {
            per_second: 10_000,
            burst: 10_000,
            action: gateway::RateLimitAction::Reject,
        },
    }];
    config.instruments = vec![gateway::InstrumentEntry {
        symbol: "ACME".into(),
        instrument_id: 1,
        price_decimals: 2,
        tick_size: 1,
        lot_size: 1,
    }];
    let gw = rt
        .block_on(gateway::Gateway::start(
            config,
            &inbound_journal,
            &outbound_journal,
        ))
        .unwrap();
    let target = Target {
        addr: gw.tcp_addr.unwrap().to_string(),
        sender: "CLIENT1".into(),
        target: "EXCH".into(),
        symbol: "ACME".into(),
        price: "100.00".into(),
        timeout: Duration::from_secs(5),
    };
    let scenarios = load_dir(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../conformance/scenarios"
    )))
    .unwrap();
    assert!(scenarios.len() >= 50, "only {} scenarios", scenarios.len());
    let mut failures = Vec::new();
    for (file, s) in &scenarios {
        if let Err(f) = run(s, &target) {
            failures.push(format!("{file} ({}): {f}", s.name));
        }
        // Let the acceptor notice the previous connection is gone before the next logon.
        std::thread::sleep(Duration::from_millis(30));
    }
    // Negative controls: the runner notices wrong values, missing messages and open sessions.
    for bad in [
        "name: wrong value\nconnect\nlogon-reset\nsend: 35=1|112=right\nexpect: 35=0|112=wrong\n",
        "name: absent tag present\nconnect\nlogon-reset\nsend: 35=1|112=right\nexpect: 35=0|!112\n",
        "name: no disconnect\nconnect\nlogon-reset\nsend: 35=1|112=x\nexpect-disconnect\n",
        "name: silence expected\nconnect\nlogon-reset\nsend: 35=1|112=x\nexpect-none: 500\n",
    ] {
        let s = conformance_runner::Scenario::parse(bad).unwrap();
        let short = Target {
            timeout: Duration::from_millis(800),
            ..target.clone()
        };
        assert!(run(&s, &short).is_err(), "the runner accepted: {bad}");
        std::thread::sleep(Duration::from_millis(30));
    }
    rt.block_on(async { gw.shutdown() });
    stop.store(true, Ordering::Relaxed);
    engine_thread.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        scenarios.len(),
        failures.join("\n")
    );
}
