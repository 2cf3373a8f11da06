//! Cluster mode: promotion to serving leader and stepping down.
//!
//! Every node runs the matching engine, the replica and the reporter on its own copy of the
//! replicated journal (hot standby). Only the serving leader takes input and talks to clients:
//! the FIX acceptor, HTTP order entry (followers answer 503 naming the leader) and the
//! market-data publisher. Promotion, in order:
//! 1. Raft elected this node and it has applied every entry committed before its term;
//! 2. the proposer starts taking events from the hand-off (`set_serving`); a new cluster's
//!    first leader funds the configured accounts;
//! 3. the matching engine has processed the whole inbound journal, so the outbound journal
//!    holds every result the previous leader could have reported;
//! 4. the FIX gateway starts on the journals (sessions resume from the replicated checkpoints)
//!    and the market-data publisher is switched on.
//!
//! A serving leader that loses leadership or has heard from no majority for `fence_ms` stops
//! serving at once (gateway logged out, publisher off, order entry refused) and goes back to
//! waiting; its journals hold only committed entries, so it simply continues as a follower.

use crate::config::Config;
use crate::metrics::Metrics;
use journal::Journal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the supervisor drives.
pub struct Supervised {
    pub cluster: Arc<cluster::Cluster>,
    pub config: Config,
    pub inbound: Journal,
    pub outbound: Journal,
    pub metrics: Arc<Metrics>,
    pub gateway: Arc<Mutex<Option<gateway::Gateway>>>,
    pub md_active: Arc<AtomicBool>,
    pub stop: Arc<AtomicBool>,
}

/// Runs until `stop`: waits to be elected, promotes, watches, steps down, again.
pub async fn supervise(s: Supervised) {
    loop {
        if !s.cluster.wait_until_leader(&s.stop).await {
            return;
        }
        let t0 = Instant::now();
        if let Err(e) = promote(&s).await {
            tracing::error!(error = format!("{e:#}"), "promotion failed; stepping down");
            demote(&s).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        s.metrics.cluster_promotions.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            promotion_ms = t0.elapsed().as_millis() as u64,
            "serving as the cluster leader"
        );
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if s.stop.load(Ordering::Acquire) {
                return;
            }
            if s.cluster.must_step_down() {
                let st = s.cluster.status();
                tracing::error!(
                    role = ?st.role,
                    leader = ?st.leader,
                    millis_since_quorum_ack = ?st.millis_since_quorum_ack,
                    "no longer the leader of a live majority: stepping down"
                );
                demote(&s).await;
                break;
            }
        }
    }
}

async fn promote(s: &Supervised) -> anyhow::Result<()> {
    s.cluster.set_serving(true);
    if s.inbound.written_seq() == 0 {
        // The first leader of a new cluster funds the configured accounts (through Raft, like
        // every event). A later leader finds them in the journal.
        let p = s
            .inbound
            .publisher()
            .ok_or_else(|| anyhow::anyhow!("the inbound journal has no hand-off"))?;
        crate::node::funding_events(&s.config, |t, b| {
            let until = Instant::now() + Duration::from_secs(5);
            while p.try_publish(t, b).is_err() {
                anyhow::ensure!(Instant::now() < until, "hand-off full while funding");
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        })?;
    }
    // The engine must have processed everything committed so far: the gateway rebuilds its
    // sessions and the reports to redeliver from both journals.
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let inbound = s.inbound.committed_seq();
        if s.metrics.matching_seq.load(Ordering::Acquire) >= inbound {
            break;
        }
        anyhow::ensure!(
            Instant::now() < until,
            "the matching engine did not catch up with the journal"
        );
        anyhow::ensure!(!s.stop.load(Ordering::Acquire), "stopping");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if s.config.fix.enabled {
        let mut g = s.config.gateway_config();
        if s.config.fix.dictionary.is_empty() {
            std::fs::write(&g.dictionary_path, crate::config::FIX42_XML)?;
        }
        if g.tls_listen.is_some() {
            g.tls = Some(crate::tls::server_config(&s.config)?);
        }
        let gw = gateway::Gateway::start(g, &s.inbound, &s.outbound).await?;
        tracing::info!(tcp = ?gw.tcp_addr, tls = ?gw.tls_addr, "FIX acceptor listening");
        *s.gateway.lock().expect("gateway slot") = Some(gw);
    }
    s.md_active.store(true, Ordering::Release);
    Ok(())
}

async fn demote(s: &Supervised) {
    s.cluster.set_serving(false);
    s.md_active.store(false, Ordering::Release);
    let g = s.gateway.lock().expect("gateway slot").take();
    if let Some(g) = g {
        // Logs every session out ("gateway shutdown") and joins the router thread.
        let _ = tokio::task::spawn_blocking(move || g.shutdown()).await;
    }
    s.metrics.cluster_step_downs.fetch_add(1, Ordering::Relaxed);
}
