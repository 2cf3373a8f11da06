//! Counters read by the admin side (`/metrics`, `/healthz`); written with relaxed atomics.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    pub http_requests: AtomicU64,
    pub http_orders: AtomicU64,
    pub http_rejects_bad_request: AtomicU64,
    pub http_rejects_auth: AtomicU64,
    pub http_backpressure: AtomicU64,
    pub replica_seq: AtomicU64,
    pub reporter_seq: AtomicU64,
    pub matching_seq: AtomicU64,
    pub md_seq: AtomicU64,
    pub md_packets: AtomicU64,
    pub md_retransmit_requests: AtomicU64,
    pub md_packets_resent: AtomicU64,
    /// Engine events whose market data was split across packets by timing (should stay 0:
    /// packet numbering would then differ between cluster nodes).
    pub md_events_split: AtomicU64,
    pub orders_accepted: AtomicU64,
    pub orders_rejected: AtomicU64,
    pub fills: AtomicU64,
    /// Cluster mode: times this node became the serving leader / stepped down.
    pub cluster_promotions: AtomicU64,
    pub cluster_step_downs: AtomicU64,
    /// Engine rejects by reason code (index = RejectReason as u8).
    pub rejects_by_reason: [AtomicU64; 32],
}

impl Metrics {
    /// Prometheus text exposition. Labels are fixed enum names, never user input.
    /// `market_data`: the publisher runs (its lag behind the outbound journal is exported).
    pub fn render(
        &self,
        inbound_written: u64,
        inbound_committed: u64,
        outbound_committed: u64,
        market_data: bool,
    ) -> String {
        let mut s = String::with_capacity(4096);
        let g = |s: &mut String, name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        g(
            &mut s,
            "appliance_http_requests_total",
            "HTTP requests received",
            "counter",
            self.http_requests.load(Ordering::Relaxed),
        );
        g(
            &mut s,
            "appliance_http_orders_total",
            "Orders entered over HTTP",
            "counter",
            self.http_orders.load(Ordering::Relaxed),
        );
        g(
            &mut s,
            "appliance_http_bad_requests_total",
            "HTTP requests refused as malformed",
            "counter",
            self.http_rejects_bad_request.load(Ordering::Relaxed),
        );
        g(
            &mut s,
            "appliance_http_unauthorized_total",
            "HTTP requests refused for a missing or wrong API key",
            "counter",
            self.http_rejects_auth.load(Ordering::Relaxed),
        );
        g(
            &mut s,
            "appliance_http_backpressure_total",
            "HTTP orders refused because the sequencer was full",
            "counter",
            self.http_backpressure.load(Ordering::Relaxed),
        );
        g(
            &mut s,
            "appliance_inbound_written_seq",
            "Last sequence written to the inbound journal",
            "gauge",
            inbound_written,
        );
        g(
            &mut s,
            "appliance_inbound_committed_seq",
            "Last committed sequence of the inbound journal",
            "gauge",
            inbound_committed,
        );
        g(
            &mut s,
            "appliance_outbound_committed_seq",
            "Last committed sequence of the outbound journal",
            "gauge",
            outbound_committed,
        );
        let consumers = [
            (
                "matching",
                self.matching_seq.load(Ordering::Relaxed),
                inbound_committed,
            ),
            (
                "replica",
                self.replica_seq.load(Ordering::Relaxed),
                inbound_committed,
            ),
            (
                "reporter",
                self.reporter_seq.load(Ordering::Relaxed),
                outbound_committed,
            ),
            (
                "market_data",
                if market_data {
                    self.md_seq.load(Ordering::Relaxed)
                } else {
                    outbound_committed
                },
                outbound_committed,
            ),
        ];
        let _ = writeln!(s, "# HELP appliance_consumer_lag Journal frames a consumer has not processed yet\n# TYPE appliance_consumer_lag gauge");
        for (name, seq, head) in consumers {
            let _ = writeln!(
                s,
                "appliance_consumer_lag{{consumer=\"{name}\"}} {}",
                head.saturating_sub(seq)
            );
        }
        g(
            &mut s,
            "appliance_orders_accepted_total",
            "Orders accepted by the engine",
            "counter",
            self.orders_accepted.load(Ordering::Relaxed),
        );
        g(
            &mut s,
            "appliance_fills_total",
            "Fills (one per side of each trade)",
            "counter",
            self.fills.load(Ordering::Relaxed),
        );
        for (name, help, v) in [
            (
                "appliance_md_packets_total",
                "Market-data packets sent (every channel and feed)",
                &self.md_packets,
            ),
            (
                "appliance_md_retransmit_requests_total",
                "Market-data retransmission requests received",
                &self.md_retransmit_requests,
            ),
            (
                "appliance_md_packets_resent_total",
                "Market-data packets sent again on request",
                &self.md_packets_resent,
            ),
            (
                "appliance_md_events_split_total",
                "Engine events whose market data timing split across packets (should be 0)",
                &self.md_events_split,
            ),
        ] {
            g(&mut s, name, help, "counter", v.load(Ordering::Relaxed));
        }
        let _ = writeln!(s, "# HELP appliance_rejects_total Engine rejects by reason\n# TYPE appliance_rejects_total counter");
        for (i, c) in self.rejects_by_reason.iter().enumerate() {
            let v = c.load(Ordering::Relaxed);
            if v > 0 {
                let reason = sbe_order_entry::RejectReason::from(i as u8);
                let _ = writeln!(s, "appliance_rejects_total{{reason=\"{reason}\"}} {v}");
            }
        }
        s
    }
}
