//! The HTTP API (seed 001's API section), on axum.
//!
//! Orders entered here go through the same sequencer, journal and risk checks as FIX: the
//! handler encodes a `NewOrderEvent` (session 0) into the inbound journal's hand-off and waits
//! for the engine's outcome, which the query replica reports. Reads come from the replica
//! (balances, books) and from the reporter's database (orders, executions, candles).

use crate::config::Config;
use crate::idempotency::{Claim, Keys};
use crate::metrics::Metrics;
use crate::replica::{Outcome, Pending, Replica, HTTP_SESSION};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use journal::{Journal, PublishError, Publisher};
use matching::{
    CancelReason, CommandKind, Event, OrderType, RejectReason, Side, StpMode, TimeInForce,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use subtle::ConstantTimeEq;

pub struct AppState {
    pub config: Config,
    pub publisher: Publisher,
    pub inbound: Journal,
    pub outbound: Journal,
    pub replica: Arc<RwLock<Replica>>,
    pub pending: Arc<Pending>,
    pub metrics: Arc<Metrics>,
    pub db_path: PathBuf,
    pub next_client_order_id: AtomicU64,
    /// Set by a worker thread that stopped with an error.
    pub failed: Arc<AtomicBool>,
    /// Trades and top-of-book changes for the server-sent-events stream.
    pub stream: tokio::sync::broadcast::Sender<StreamEvent>,
    /// The FIX gateway, once started (for its counters).
    pub gateway: Arc<std::sync::Mutex<Option<gateway::Gateway>>>,
    /// Cluster mode: this node's membership.
    pub cluster: Option<Arc<cluster::Cluster>>,
    /// `Idempotency-Key`s of `POST /v1/order`.
    pub idempotency: Keys,
}

/// The HTTP address of a cluster node, from the configuration.
fn peer_http(state: &AppState, id: Option<u64>) -> Option<String> {
    let id = id?;
    state
        .config
        .cluster
        .peers
        .iter()
        .find(|p| p.id == id && !p.http.is_empty())
        .map(|p| format!("http://{}", p.http))
}

/// The FIX gateway's counters, as (name, help, value).
fn gateway_counters(state: &AppState) -> Vec<(&'static str, &'static str, u64)> {
    let g = state.gateway.lock().expect("gateway slot");
    let Some(g) = g.as_ref() else {
        return Vec::new();
    };
    let s = g.stats();
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    vec![
        (
            "appliance_fix_connections_accepted_total",
            "FIX connections accepted",
            l(&s.connections_accepted),
        ),
        (
            "appliance_fix_connections_refused_total",
            "FIX connections refused (caps, limits)",
            l(&s.connections_refused),
        ),
        (
            "appliance_fix_logons_total",
            "FIX logons accepted",
            l(&s.logons),
        ),
        (
            "appliance_fix_garbled_total",
            "Garbled FIX messages ignored",
            l(&s.garbled),
        ),
        (
            "appliance_fix_rate_limited_total",
            "FIX messages over a session's rate limit",
            l(&s.rate_limited),
        ),
        (
            "appliance_fix_slow_consumers_total",
            "FIX connections dropped as slow consumers",
            l(&s.slow_consumers),
        ),
        (
            "appliance_fix_socket_backlogs_total",
            "Direct ExecutionReport writes a client's socket did not take whole (slow reader)",
            l(&s.socket_backlogs),
        ),
        (
            "appliance_fix_assisted_batches_total",
            "Engine results routed by the FIX I/O thread that read the orders (threads.io_assist)",
            l(&s.assisted_batches),
        ),
        (
            "appliance_fix_tls_handshake_failures_total",
            "Failed TLS handshakes",
            l(&s.tls_handshake_failures),
        ),
        (
            "appliance_fix_backpressure_total",
            "FIX orders refused because the sequencer was full",
            l(&s.publish_back_pressure),
        ),
        (
            "appliance_fix_poss_dup_ignored_total",
            "PossDupFlag=Y orders whose ClOrdID was already journaled (ignored)",
            l(&s.poss_dup_ignored),
        ),
        (
            "appliance_fix_checkpoints_published_total",
            "Replicated session checkpoints published (cluster mode)",
            l(&s.checkpoints_published),
        ),
        (
            "appliance_fix_reports_redelivered_total",
            "ExecutionReports sent again with PossResend=Y after a takeover",
            l(&s.reports_redelivered),
        ),
        (
            "appliance_fix_redelivery_truncated_total",
            "Reports too old to redeliver after a takeover",
            l(&s.redelivery_truncated),
        ),
        (
            "appliance_fix_seq_reservation_exhausted_total",
            "Sessions logged out at the end of their MsgSeqNum reservation",
            l(&s.seq_reservation_exhausted),
        ),
        (
            "appliance_fix_router_stopped",
            "1 once the report router stopped on a fault: no ExecutionReports go out (the health check fails; restart the appliance)",
            l(&s.router_stopped),
        ),
    ]
}

/// Whether the gateway's report router stopped on a fault.
fn router_stopped(state: &AppState) -> bool {
    let g = state.gateway.lock().expect("gateway slot");
    g.as_ref()
        .is_some_and(|g| g.stats().router_stopped.load(Ordering::Relaxed) > 0)
}

/// One server-sent event: its symbol (for the subscriber's filter), kind and JSON data.
#[derive(Clone, Debug)]
pub struct StreamEvent {
    pub symbol: Arc<str>,
    pub kind: &'static str,
    pub data: String,
}

type Shared = Arc<AppState>;

/// A JSON error naming the field (when there is one).
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<&'static str>,
}

impl ApiError {
    fn bad(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field),
        }
    }
    fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
        }
    }
}

impl ApiError {
    fn body(&self) -> Value {
        match self.field {
            Some(f) => json!({ "error": self.message, "field": f }),
            None => json!({ "error": self.message }),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body();
        (self.status, Json(body)).into_response()
    }
}

/// Serves `app` on `listener` until `stop`: HTTP/1.1 with a header read timeout (slowloris
/// clients are cut off) and at most `connections_max` open connections; open connections finish
/// their current request on shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    config: crate::config::HttpConfig,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let permits = Arc::new(tokio::sync::Semaphore::new(config.connections_max));
    let header_timeout = Duration::from_millis(config.header_read_timeout_ms);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => p?,
            _ = tick.tick() => {
                if stop.load(Ordering::Acquire) { break; }
                continue;
            }
        };
        let (stream, _) = tokio::select! {
            r = listener.accept() => r?,
            _ = tick.tick() => {
                if stop.load(Ordering::Acquire) { break; }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut done = done_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = done.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
    let _ = done_tx.send(true);
    Ok(())
}

pub fn router(state: Shared) -> Router {
    let body_max = state.config.http.body_bytes_max;
    let timeout = Duration::from_millis(state.config.http.request_timeout_ms);
    let concurrency = state.config.http.concurrency_max;
    Router::new()
        .route("/v1/order", post(new_order))
        .route("/v1/order/{id}", get(get_order).delete(cancel_order))
        .route("/v1/execution", get(executions))
        .route("/v1/account", get(account))
        .route("/marketdata/book/{symbol}", get(book))
        .route("/marketdata/candles", get(candles))
        .route("/v1/stream", get(stream))
        .route("/healthz", get(healthz))
        .route("/v1/cluster", get(cluster_status))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(body_max))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(tower::limit::ConcurrencyLimitLayer::new(concurrency))
        .with_state(state)
}

/// The account of the request's API key (`X-API-Key`), compared in constant time.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<u32, ApiError> {
    state.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    let Some(key) = headers.get("x-api-key").map(|v| v.as_bytes()) else {
        state
            .metrics
            .http_rejects_auth
            .fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::status(
            StatusCode::UNAUTHORIZED,
            "missing X-API-Key header",
        ));
    };
    let mut found = 0_u32;
    for a in &state.config.accounts {
        // Every key is compared, whether or not an earlier one matched.
        let eq: bool = a.api_key.as_bytes().ct_eq(key).into();
        if eq {
            found = a.id;
        }
    }
    if found == 0 {
        state
            .metrics
            .http_rejects_auth
            .fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::status(
            StatusCode::UNAUTHORIZED,
            "unknown API key",
        ));
    }
    Ok(found)
}

/// Parses a decimal price ("100.25") into the instrument's integer units, exactly.
pub fn parse_price(text: &str, price_scale: i64) -> Option<i64> {
    let text = text.trim();
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.len() + frac.len() > 30
    {
        return None;
    }
    let mantissa: i128 = format!("{int}{frac}").parse().ok()?;
    let pow = 10_i128.checked_pow(frac.len() as u32)?;
    let scaled = mantissa.checked_mul(i128::from(price_scale))?;
    if scaled % pow != 0 {
        return None;
    }
    let v = i64::try_from(scaled / pow).ok()?;
    Some(if neg { -v } else { v })
}

/// Formats integer price units as a decimal when the scale is a power of ten.
pub fn format_units(units: i128, scale: i64) -> String {
    let mut places = 0;
    let mut s = scale;
    while s > 1 && s % 10 == 0 {
        s /= 10;
        places += 1;
    }
    if s != 1 || places == 0 {
        return units.to_string();
    }
    let neg = units < 0;
    let abs = units.unsigned_abs();
    let div = 10_u128.pow(places);
    format!(
        "{}{}.{:0width$}",
        if neg { "-" } else { "" },
        abs / div,
        abs % div,
        width = places as usize
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewOrderBody {
    symbol: Option<String>,
    side: Option<String>,
    order_type: Option<String>,
    price: Option<Value>,
    quantity: Option<Value>,
    time_in_force: Option<String>,
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

fn reject_name(r: RejectReason) -> String {
    sbe_order_entry::RejectReason::from(r as u8).to_string()
}

fn cancel_name(r: CancelReason) -> String {
    sbe_order_entry::CancelReason::from(r as u8).to_string()
}

async fn submit(
    state: &AppState,
    kind: CommandKind,
    client_order_id: u64,
) -> Result<Outcome, ApiError> {
    if let Some(c) = &state.cluster {
        if !c.is_serving() {
            let leader = peer_http(state, c.status().leader);
            return Err(ApiError::status(
                StatusCode::SERVICE_UNAVAILABLE,
                match leader {
                    Some(l) => format!("not the cluster leader: send orders to {l}"),
                    None => "not the cluster leader, and no leader is known yet".to_string(),
                },
            ));
        }
    }
    let mut buf = [0_u8; matching_agent::inbound::ENCODED_LEN_MAX];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let (t, len) = matching_agent::inbound::encode(&kind, now, &mut buf)
        .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let rx = state.pending.register(client_order_id);
    match state.publisher.try_publish(t, &buf[..len]) {
        Ok(()) => {}
        Err(PublishError::Full) => {
            state.pending.forget(client_order_id);
            state
                .metrics
                .http_backpressure
                .fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::status(
                StatusCode::SERVICE_UNAVAILABLE,
                "the sequencer is full; retry",
            ));
        }
        Err(e) => {
            state.pending.forget(client_order_id);
            return Err(ApiError::status(
                StatusCode::INTERNAL_SERVER_ERROR,
                e.to_string(),
            ));
        }
    }
    let wait = Duration::from_millis(state.config.http.order_timeout_ms);
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(outcome)) => Ok(outcome),
        _ => {
            state.pending.forget(client_order_id);
            // The event is in the journal: its outcome will be decided, just not reported here.
            Err(ApiError::status(
                StatusCode::GATEWAY_TIMEOUT,
                "the order is journaled but its outcome did not arrive in time; query it later",
            ))
        }
    }
}

fn next_id(state: &AppState) -> u64 {
    // Unique across restarts: at least the wall clock in ns, strictly increasing.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut cur = state.next_client_order_id.load(Ordering::Relaxed);
    loop {
        let next = cur.max(now) + 1;
        match state.next_client_order_id.compare_exchange_weak(
            cur,
            next,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return next,
            Err(actual) => cur = actual,
        }
    }
}

async fn new_order(
    State(state): State<Shared>,
    headers: HeaderMap,
    body: Result<Json<NewOrderBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let account_id = authenticate(&state, &headers)?;
    let bad = |f, m: &str| {
        state
            .metrics
            .http_rejects_bad_request
            .fetch_add(1, Ordering::Relaxed);
        ApiError::bad(f, m)
    };
    let Json(body) = body.map_err(|e| {
        state
            .metrics
            .http_rejects_bad_request
            .fetch_add(1, Ordering::Relaxed);
        ApiError::status(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body: {}", e.body_text()),
        )
    })?;
    let symbol = body.symbol.ok_or_else(|| bad("symbol", "required"))?;
    let instrument = state
        .config
        .instruments
        .iter()
        .find(|i| i.symbol == symbol)
        .ok_or_else(|| bad("symbol", "unknown symbol"))?;
    let side = match body.side.as_deref() {
        Some("buy") => Side::Buy,
        Some("sell") => Side::Sell,
        Some(_) => return Err(bad("side", "must be \"buy\" or \"sell\"")),
        None => return Err(bad("side", "required")),
    };
    let order_type = match body.order_type.as_deref().unwrap_or("limit") {
        "limit" => OrderType::Limit,
        "market" => OrderType::Market,
        _ => return Err(bad("orderType", "must be \"limit\" or \"market\"")),
    };
    let price = match (order_type, &body.price) {
        (OrderType::Limit, Some(Value::String(p))) => parse_price(p, instrument.price_scale)
            .ok_or_else(|| {
                bad(
                    "price",
                    "not a decimal number representable in the instrument's price scale",
                )
            })?,
        (OrderType::Limit, Some(_)) => {
            return Err(bad("price", "must be a decimal string such as \"100.25\""))
        }
        (OrderType::Limit, None) => return Err(bad("price", "required for a limit order")),
        (OrderType::Market, None) => 0,
        (OrderType::Market, Some(_)) => return Err(bad("price", "a market order has no price")),
    };
    let quantity = match &body.quantity {
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|q| *q > 0)
            .ok_or_else(|| bad("quantity", "must be a positive integer"))?,
        Some(_) => return Err(bad("quantity", "must be a positive integer")),
        None => return Err(bad("quantity", "required")),
    };
    let time_in_force = match body.time_in_force.as_deref().unwrap_or("day") {
        "day" => TimeInForce::Day,
        "gtc" => TimeInForce::Gtc,
        "ioc" => TimeInForce::Ioc,
        "fok" => TimeInForce::Fok,
        _ => return Err(bad("timeInForce", "must be day, gtc, ioc or fok")),
    };
    let key = match idempotency_key(&headers)? {
        None => None,
        Some(k) => {
            let fingerprint = order_fingerprint(
                instrument.id,
                side,
                order_type,
                price,
                quantity,
                time_in_force,
            );
            match state
                .idempotency
                .claim(account_id, &k, fingerprint, std::time::Instant::now())
            {
                Claim::New => Some(k),
                Claim::Replay(status, body) => {
                    return Ok(
                        (status, [("idempotent-replayed", "true")], Json(body)).into_response()
                    )
                }
                Claim::InProgress => {
                    return Err(ApiError::status(
                        StatusCode::CONFLICT,
                        "a request with this Idempotency-Key is still waiting for its outcome; \
                         retry later",
                    ))
                }
                Claim::Mismatch => {
                    return Err(ApiError::status(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "this Idempotency-Key was used for a different order",
                    ))
                }
            }
        }
    };
    let order = NewOrder {
        account_id,
        symbol,
        instrument_id: instrument.id,
        price_scale: instrument.price_scale,
        side,
        order_type,
        price,
        quantity,
        time_in_force,
    };
    let Some(key) = key else {
        return place_order(&state, order)
            .await
            .map(|body| (StatusCode::OK, Json(body)).into_response());
    };
    // With a key the order runs to its outcome on a task of its own, so a client that hangs up
    // does not leave its key claimed by an abandoned request: the retry gets the answer.
    let task_state = state.clone();
    let result = tokio::spawn(async move {
        let state = task_state;
        let result = place_order(&state, order).await;
        match &result {
            Ok(body) => state
                .idempotency
                .finish(account_id, &key, StatusCode::OK, body.clone()),
            // Journaled, outcome unknown: the key stays taken, with this answer.
            Err(e) if e.status == StatusCode::GATEWAY_TIMEOUT => {
                state
                    .idempotency
                    .finish(account_id, &key, e.status, e.body())
            }
            // Refused before the journal: nothing was placed.
            Err(_) => state.idempotency.release(account_id, &key),
        }
        result
    })
    .await
    .map_err(|_| {
        ApiError::status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the order's task failed; its outcome is unknown",
        )
    })?;
    result.map(|body| (StatusCode::OK, Json(body)).into_response())
}

/// A validated `POST /v1/order`.
struct NewOrder {
    account_id: u32,
    symbol: String,
    instrument_id: u32,
    price_scale: i64,
    side: Side,
    order_type: OrderType,
    price: i64,
    quantity: u64,
    time_in_force: TimeInForce,
}

/// The order fields an `Idempotency-Key` is bound to.
fn order_fingerprint(
    instrument_id: u32,
    side: Side,
    order_type: OrderType,
    price: i64,
    quantity: u64,
    time_in_force: TimeInForce,
) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    (
        instrument_id,
        side as u8,
        order_type as u8,
        price,
        quantity,
        time_in_force as u8,
    )
        .hash(&mut h);
    h.finish()
}

/// The request's `Idempotency-Key`, if it sent one (400 when it is not 1-255 visible ASCII
/// characters).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    if !crate::idempotency::valid_key(v.as_bytes()) {
        return Err(ApiError::bad(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(String::from_utf8_lossy(v.as_bytes()).into_owned()))
}

/// Journals the order and waits for its outcome; the response body.
async fn place_order(state: &AppState, order: NewOrder) -> Result<Value, ApiError> {
    let NewOrder {
        account_id,
        symbol,
        instrument_id,
        price_scale,
        side,
        order_type,
        price,
        quantity,
        time_in_force,
    } = order;
    state.metrics.http_orders.fetch_add(1, Ordering::Relaxed);
    let client_order_id = next_id(state);
    let kind = CommandKind::NewOrder {
        session_id: HTTP_SESSION,
        account_id,
        client_order_id,
        instrument_id,
        side,
        order_type,
        price,
        quantity,
        time_in_force,
        stp_mode: StpMode::None,
    };
    let outcome = submit(state, kind, client_order_id).await?;
    let scale = price_scale;
    let mut order_id = None;
    let mut status = "new";
    let (mut filled, mut remaining) = (0_u64, quantity);
    let mut reason = None;
    let mut fills = Vec::new();
    for e in &outcome.events {
        match *e {
            Event::Rejected { reason: r, .. } if order_id.is_none() => {
                status = "rejected";
                remaining = 0;
                reason = Some(reject_name(r));
            }
            Event::Accepted { order_id: id, .. } => order_id = Some(id),
            Event::Filled {
                order_id: id,
                exec_id,
                price,
                quantity,
                leaves_quantity,
                cumulative_quantity,
                ..
            } if Some(id) == order_id => {
                filled = cumulative_quantity;
                remaining = leaves_quantity;
                status = if leaves_quantity == 0 {
                    "filled"
                } else {
                    "partially_filled"
                };
                fills.push(json!({ "execId": exec_id, "price": format_units(price.into(), scale), "quantity": quantity }));
            }
            Event::Cancelled {
                order_id: id,
                reason: r,
                ..
            } if Some(id) == order_id => {
                status = "cancelled";
                remaining = 0;
                reason = Some(cancel_name(r));
            }
            _ => {}
        }
    }
    let body = json!({
        "id": order_id,
        "clientOrderId": client_order_id,
        "creationTime": outcome.timestamp_ns,
        "symbol": symbol,
        "side": side_name(side),
        "orderType": if order_type == OrderType::Limit { "limit" } else { "market" },
        "price": if order_type == OrderType::Limit { Some(format_units(price.into(), scale)) } else { None },
        "quantity": quantity,
        "filledQuantity": filled,
        "remainingQuantity": remaining,
        "status": status,
        "reason": reason,
        "fills": fills,
    });
    Ok(body)
}

async fn cancel_order(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let account_id = authenticate(&state, &headers)?;
    let order_id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad("id", "must be an order id"))?;
    let client_order_id = next_id(&state);
    let kind = CommandKind::Cancel {
        session_id: HTTP_SESSION,
        account_id,
        client_order_id,
        order_id,
    };
    let outcome = submit(&state, kind, client_order_id).await?;
    for e in &outcome.events {
        match *e {
            Event::Cancelled {
                cancelled_quantity,
                cumulative_quantity,
                ..
            } => {
                return Ok(Json(json!({
                    "id": order_id,
                    "status": "cancelled",
                    "cancelledQuantity": cancelled_quantity,
                    "filledQuantity": cumulative_quantity,
                }))
                .into_response())
            }
            Event::CancelRejected { reason, .. } => {
                let status = match reason {
                    RejectReason::UnknownOrder | RejectReason::NotOwner => StatusCode::NOT_FOUND,
                    RejectReason::AlreadyClosed => StatusCode::CONFLICT,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                };
                return Err(ApiError::status(
                    status,
                    format!("cancel rejected: {}", reject_name(reason)),
                ));
            }
            _ => {}
        }
    }
    Err(ApiError::status(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the engine gave no answer to the cancel",
    ))
}

fn db(state: &AppState) -> Result<rusqlite::Connection, ApiError> {
    rusqlite::Connection::open_with_flags(
        &state.db_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(|e| {
        ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("reporting database: {e}"),
        )
    })
}

fn scale_of(state: &AppState, symbol: &str) -> i64 {
    state
        .config
        .instruments
        .iter()
        .find(|i| i.symbol == symbol)
        .map_or(1, |i| i.price_scale)
}

async fn get_order(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let account_id = authenticate(&state, &headers)?;
    let order_id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad("id", "must be an order id"))?;
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let conn = db(&st)?;
        let row = conn.query_row(
            "SELECT order_id, symbol, side, order_type, time_in_force, price, quantity, filled_quantity, remaining_quantity, status, created_ns, updated_ns
             FROM orders WHERE order_id = ?1 AND account_id = ?2",
            rusqlite::params![order_id, account_id],
            |r| {
                let symbol: String = r.get(1)?;
                let price: Option<i64> = r.get(5)?;
                Ok((symbol, price, json!({
                    "id": r.get::<_, i64>(0)?,
                    "side": r.get::<_, String>(2)?,
                    "orderType": r.get::<_, String>(3)?,
                    "timeInForce": r.get::<_, String>(4)?,
                    "quantity": r.get::<_, i64>(6)?,
                    "filledQuantity": r.get::<_, i64>(7)?,
                    "remainingQuantity": r.get::<_, i64>(8)?,
                    "status": r.get::<_, String>(9)?,
                    "creationTime": r.get::<_, i64>(10)?,
                    "updateTime": r.get::<_, i64>(11)?,
                })))
            },
        );
        match row {
            Ok((symbol, price, mut v)) => {
                v["symbol"] = json!(symbol);
                v["price"] = json!(price.map(|p| format_units(p.into(), scale_of(&st, &symbol))));
                Ok(Json(v).into_response())
            }
            Err(rusqlite::Error::QueryReturnedNoRows) => Err(ApiError::status(StatusCode::NOT_FOUND, "no such order for this account")),
            Err(e) => Err(ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        }
    })
    .await
    .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecQuery {
    symbol: Option<String>,
    order_id: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
}

/// A time bound in milliseconds since the Unix epoch, as nanoseconds.
fn ms_bound(v: &Option<String>, field: &'static str, default: i64) -> Result<i64, ApiError> {
    match v {
        None => Ok(default),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|ms| *ms >= 0 && *ms < i64::MAX / 1_000_000)
            .map(|ms| ms * 1_000_000)
            .ok_or_else(|| ApiError::bad(field, "milliseconds since the Unix epoch")),
    }
}

async fn executions(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<ExecQuery>,
) -> Result<Response, ApiError> {
    let account_id = authenticate(&state, &headers)?;
    let symbol = q
        .symbol
        .clone()
        .ok_or_else(|| ApiError::bad("symbol", "required"))?;
    if state.config.instrument_id(&symbol).is_none() {
        return Err(ApiError::bad("symbol", "unknown symbol"));
    }
    let order_id = match &q.order_id {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| ApiError::bad("orderId", "must be an order id"))?,
        ),
    };
    let start = ms_bound(&q.start_time, "startTime", 0)?;
    let end = ms_bound(&q.end_time, "endTime", i64::MAX)?;
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let conn = db(&st)?;
        let scale = scale_of(&st, &symbol);
        let mut stmt = conn
            .prepare(
                "SELECT exec_id, trade_id, order_id, side, price, quantity, liquidity, ts_ns FROM executions
                 WHERE account_id = ?1 AND symbol = ?2 AND ts_ns >= ?3 AND ts_ns <= ?4 AND (?5 IS NULL OR order_id = ?5)
                 ORDER BY exec_id LIMIT 10000",
            )
            .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let rows = stmt
            .query_map(rusqlite::params![account_id, symbol, start, end, order_id], |r| {
                Ok(json!({
                    "id": r.get::<_, i64>(0)?,
                    "tradeId": r.get::<_, i64>(1)?,
                    "orderId": r.get::<_, i64>(2)?,
                    "symbol": symbol,
                    "side": r.get::<_, String>(3)?,
                    "price": format_units(r.get::<_, i64>(4)?.into(), scale),
                    "quantity": r.get::<_, i64>(5)?,
                    "liquidity": r.get::<_, String>(6)?,
                    "time": r.get::<_, i64>(7)?,
                }))
            })
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok(Json(json!({ "executions": rows })).into_response())
    })
    .await
    .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn account(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let account_id = authenticate(&state, &headers)?;
    let replica = state.replica.read().expect("replica lock");
    let scale = state
        .config
        .instruments
        .first()
        .map_or(1, |i| i.price_scale);
    let (available, reserved) = replica.engine.cash(account_id).unwrap_or((0, 0));
    let positions: Vec<Value> = state
        .config
        .instruments
        .iter()
        .map(|i| {
            let (a, r) = replica.engine.position(account_id, i.id).unwrap_or((0, 0));
            json!({ "symbol": i.symbol, "available": a, "reserved": r })
        })
        .collect();
    Ok(Json(json!({
        "accountId": account_id,
        "cash": { "available": format_units(available, scale), "reserved": format_units(reserved, scale) },
        "positions": positions,
        "asOfSequence": replica.processed_seq,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct DepthQuery {
    depth: Option<String>,
}

async fn book(
    State(state): State<Shared>,
    Path(symbol): Path<String>,
    Query(q): Query<DepthQuery>,
) -> Result<Response, ApiError> {
    state.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    let instrument = state
        .config
        .instruments
        .iter()
        .find(|i| i.symbol == symbol)
        .ok_or_else(|| ApiError::status(StatusCode::NOT_FOUND, "unknown symbol"))?;
    let depth = match &q.depth {
        None => 10,
        Some(d) => d
            .parse::<usize>()
            .ok()
            .filter(|d| (1..=1000).contains(d))
            .ok_or_else(|| ApiError::bad("depth", "an integer from 1 to 1000"))?,
    };
    let replica = state.replica.read().expect("replica lock");
    let side = |s| -> Vec<Value> {
        replica
            .engine
            .levels(instrument.id, s)
            .into_iter()
            .take(depth)
            .map(|(p, q, n)| json!({ "price": format_units(p.into(), instrument.price_scale), "quantity": q, "orders": n }))
            .collect()
    };
    Ok(Json(json!({
        "symbol": symbol,
        "bids": side(Side::Buy),
        "asks": side(Side::Sell),
        "asOfSequence": replica.processed_seq,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandleQuery {
    symbol: Option<String>,
    resolution: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
}

async fn candles(
    State(state): State<Shared>,
    Query(q): Query<CandleQuery>,
) -> Result<Response, ApiError> {
    state.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    let symbol = q
        .symbol
        .clone()
        .ok_or_else(|| ApiError::bad("symbol", "required"))?;
    if state.config.instrument_id(&symbol).is_none() {
        return Err(ApiError::bad("symbol", "unknown symbol"));
    }
    let res_ns: i64 = match q.resolution.as_deref().unwrap_or("1m") {
        "1s" => 1_000_000_000,
        "1m" => 60_000_000_000,
        "5m" => 300_000_000_000,
        "1h" => 3_600_000_000_000,
        "1d" => 86_400_000_000_000,
        _ => return Err(ApiError::bad("resolution", "one of 1s, 1m, 5m, 1h, 1d")),
    };
    let start = ms_bound(&q.start_time, "startTime", 0)?;
    let end = ms_bound(&q.end_time, "endTime", i64::MAX)?;
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let conn = db(&st)?;
        let scale = scale_of(&st, &symbol);
        let mut stmt = conn
            .prepare("SELECT price, quantity, ts_ns FROM trades WHERE symbol = ?1 AND ts_ns >= ?2 AND ts_ns <= ?3 ORDER BY trade_id LIMIT 1000000")
            .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let trades = stmt
            .query_map(rusqlite::params![symbol, start, end], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let out: Vec<Value> = crate::candles::bars(trades, res_ns)
            .into_iter()
            .map(|c| {
                json!({
                    "time": c.start_ns / 1_000_000,
                    "open": format_units(c.open.into(), scale),
                    "high": format_units(c.high.into(), scale),
                    "low": format_units(c.low.into(), scale),
                    "close": format_units(c.close.into(), scale),
                    "volume": c.volume,
                })
            })
            .collect();
        Ok(Json(json!({ "symbol": symbol, "resolution": q.resolution.unwrap_or_else(|| "1m".into()), "candles": out })).into_response())
    })
    .await
    .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

#[derive(Deserialize)]
pub struct StreamQuery {
    symbol: Option<String>,
}

/// Server-sent events of trades and top of book, for browsers: `event: trade` and
/// `event: quote`, JSON data; `?symbol=` filters. A subscriber too slow for the bounded buffer
/// misses events (it is told with `event: lagged`) rather than holding memory.
async fn stream(
    State(state): State<Shared>,
    Query(q): Query<StreamQuery>,
) -> Result<
    axum::response::sse::Sse<
        impl tokio_stream::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    ApiError,
> {
    use tokio_stream::StreamExt as _;
    state.metrics.http_requests.fetch_add(1, Ordering::Relaxed);
    if let Some(s) = &q.symbol {
        if state.config.instrument_id(s).is_none() {
            return Err(ApiError::bad("symbol", "unknown symbol"));
        }
    }
    let filter = q.symbol;
    let rx = state.stream.subscribe();
    let events = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(move |m| match m {
        Ok(e) if filter.as_deref().is_none_or(|f| f == &*e.symbol) => {
            Some(Ok(axum::response::sse::Event::default()
                .event(e.kind)
                .data(e.data)))
        }
        Ok(_) => None,
        Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
            Some(Ok(axum::response::sse::Event::default()
                .event("lagged")
                .data(n.to_string())))
        }
    });
    Ok(axum::response::sse::Sse::new(events).keep_alive(axum::response::sse::KeepAlive::default()))
}

/// Follows the outbound journal and publishes trades and top-of-book changes to the stream.
pub fn stream_feeder(state: Shared, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    use sbe_order_entry as sbe;
    use sbe_order_entry::{message_header_codec::ENCODED_LENGTH as HDR, ReadBuf};
    let mut reader = state.outbound.reader(state.outbound.committed_seq() + 1)?;
    let symbols: Vec<(u32, Arc<str>, i64)> = state
        .config
        .instruments
        .iter()
        .map(|i| (i.id, Arc::from(i.symbol.as_str()), i.price_scale))
        .collect();
    let find = |id: u32| symbols.iter().find(|s| s.0 == id);
    let mut dirty: Vec<u32> = Vec::new();
    let mut last_quote: std::collections::BTreeMap<u32, String> = Default::default();
    while !stop.load(Ordering::Acquire) {
        let mut n = 0;
        while let Some(f) = reader.poll()? {
            n += 1;
            let t = f.template_id;
            let Ok(h) = sbe::MessageHeaderDecoder::default().wrap(ReadBuf::new(f.payload), 0)
            else {
                continue;
            };
            match t {
                sbe::trade_event_codec::SBE_TEMPLATE_ID => {
                    let Ok(d) = sbe::trade_event_codec::TradeEventDecoder::default().header(h, HDR)
                    else {
                        continue;
                    };
                    if let Some((_, sym, scale)) = find(d.instrument_id()) {
                        let data = json!({
                            "symbol": &**sym,
                            "tradeId": d.trade_id(),
                            "price": format_units(d.price().into(), *scale),
                            "quantity": d.quantity(),
                            "aggressor": d.aggressor_side().to_string(),
                            "time": f.timestamp_ns,
                        });
                        let _ = state.stream.send(StreamEvent {
                            symbol: sym.clone(),
                            kind: "trade",
                            data: data.to_string(),
                        });
                    }
                }
                sbe::book_order_added_codec::SBE_TEMPLATE_ID
                | sbe::book_order_modified_codec::SBE_TEMPLATE_ID
                | sbe::book_order_deleted_codec::SBE_TEMPLATE_ID
                | sbe::book_order_executed_codec::SBE_TEMPLATE_ID => {
                    let id = match t {
                        sbe::book_order_added_codec::SBE_TEMPLATE_ID => {
                            sbe::book_order_added_codec::BookOrderAddedDecoder::default()
                                .header(h, HDR)
                                .map(|d| d.instrument_id())
                        }
                        sbe::book_order_modified_codec::SBE_TEMPLATE_ID => {
                            sbe::book_order_modified_codec::BookOrderModifiedDecoder::default()
                                .header(h, HDR)
                                .map(|d| d.instrument_id())
                        }
                        sbe::book_order_deleted_codec::SBE_TEMPLATE_ID => {
                            sbe::book_order_deleted_codec::BookOrderDeletedDecoder::default()
                                .header(h, HDR)
                                .map(|d| d.instrument_id())
                        }
                        _ => sbe::book_order_executed_codec::BookOrderExecutedDecoder::default()
                            .header(h, HDR)
                            .map(|d| d.instrument_id()),
                    };
                    if let Ok(id) = id {
                        if !dirty.contains(&id) {
                            dirty.push(id);
                        }
                    }
                }
                _ => {}
            }
            if n >= 1024 {
                break;
            }
        }
        if !dirty.is_empty() {
            // The replica may be a moment behind the outbound journal; quotes are sent when
            // the top of book it reports changes.
            let rep = state.replica.read().expect("replica lock");
            for id in dirty.drain(..) {
                let Some((_, sym, scale)) = find(id) else {
                    continue;
                };
                let q = |s| {
                    rep.engine.best(id, s).map(
                        |(p, q)| json!({"price": format_units(p.into(), *scale), "quantity": q}),
                    )
                };
                let data = json!({"symbol": &**sym, "bid": q(Side::Buy), "ask": q(Side::Sell)})
                    .to_string();
                if last_quote.get(&id) != Some(&data) {
                    last_quote.insert(id, data.clone());
                    let _ = state.stream.send(StreamEvent {
                        symbol: sym.clone(),
                        kind: "quote",
                        data,
                    });
                }
            }
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

/// Cluster mode: this node's Raft status, with every peer's client-facing addresses.
async fn cluster_status(State(state): State<Shared>) -> Response {
    let Some(c) = &state.cluster else {
        return ApiError::status(StatusCode::NOT_FOUND, "not in cluster mode").into_response();
    };
    let st = c.status();
    // The newest engine snapshots' digests: equal on every node at the same sequence.
    let snapshots: Vec<Value> =
        matching_agent::snapshot_digests(&state.config.snapshot_policy().dir)
            .into_iter()
            .take(8)
            .map(|d| {
                json!({
                    "inbound_seq": d.inbound_seq,
                    "outbound_seq": d.outbound_seq,
                    "crc32": format!("{:08x}", d.crc32),
                })
            })
            .collect();
    let body = json!({
        "status": st,
        "engine_snapshots": snapshots,
        "leader_http": peer_http(&state, st.leader),
        "peers": state.config.cluster.peers,
        "inbound_seq": state.inbound.committed_seq(),
        "outbound_seq": state.outbound.committed_seq(),
        "matching_seq": state.metrics.matching_seq.load(Ordering::Relaxed),
    });
    Json(body).into_response()
}

fn cluster_json(state: &AppState) -> Value {
    match &state.cluster {
        None => Value::Null,
        Some(c) => {
            let st = c.status();
            json!({
                "node_id": st.node_id,
                "role": st.role,
                "leader": st.leader,
                "leader_http": peer_http(state, st.leader),
                "serving": st.serving,
                "term": st.term,
                "last_applied_index": st.last_applied_index,
            })
        }
    }
}

async fn healthz(State(state): State<Shared>) -> Response {
    let m = &state.metrics;
    let inbound = state.inbound.committed_seq();
    let outbound = state.outbound.committed_seq();
    let failed = state.failed.load(Ordering::Acquire) || router_stopped(&state);
    let body = json!({
        "status": if failed { "failed" } else { "ok" },
        "inbound": { "written": state.inbound.written_seq(), "committed": inbound },
        "outbound": { "committed": outbound },
        "consumers": {
            "matching": { "seq": m.matching_seq.load(Ordering::Relaxed), "lag": inbound.saturating_sub(m.matching_seq.load(Ordering::Relaxed)) },
            "replica": { "seq": m.replica_seq.load(Ordering::Relaxed), "lag": inbound.saturating_sub(m.replica_seq.load(Ordering::Relaxed)) },
            "reporter": { "seq": m.reporter_seq.load(Ordering::Relaxed), "lag": outbound.saturating_sub(m.reporter_seq.load(Ordering::Relaxed)) },
            "market_data": { "seq": m.md_seq.load(Ordering::Relaxed), "lag": if state.config.market_data.enabled { outbound.saturating_sub(m.md_seq.load(Ordering::Relaxed)) } else { 0 } },
        },
        "cluster": cluster_json(&state),
        "fix": gateway_counters(&state).into_iter().map(|(k, _, v)| (k.trim_start_matches("appliance_fix_").to_string(), json!(v))).collect::<serde_json::Map<String, Value>>(),
    });
    let code = if failed {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(state): State<Shared>) -> Response {
    let mut text = state.metrics.render(
        state.inbound.written_seq(),
        state.inbound.committed_seq(),
        state.outbound.committed_seq(),
        state.config.market_data.enabled,
    );
    use std::fmt::Write as _;
    for (name, help, v) in gateway_counters(&state) {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    if let Some(c) = &state.cluster {
        let st = c.status();
        let m = &state.metrics;
        for (name, help, kind, v) in [
            (
                "appliance_cluster_leader",
                "1 while this node is the serving cluster leader",
                "gauge",
                u64::from(st.serving),
            ),
            ("appliance_cluster_term", "Raft term", "gauge", st.term),
            (
                "appliance_cluster_last_log_index",
                "Last Raft log index held",
                "gauge",
                st.last_log_index.unwrap_or(0),
            ),
            (
                "appliance_cluster_applied_index",
                "Last Raft log index applied to the journal",
                "gauge",
                st.last_applied_index.unwrap_or(0),
            ),
            (
                "appliance_cluster_snapshot_index",
                "Raft log index of the latest snapshot",
                "gauge",
                st.snapshot_index.unwrap_or(0),
            ),
            (
                "appliance_cluster_millis_since_quorum_ack",
                "Leader: milliseconds since a majority last acknowledged",
                "gauge",
                st.millis_since_quorum_ack.unwrap_or(0),
            ),
            (
                "appliance_cluster_promotions_total",
                "Times this node became the serving leader",
                "counter",
                m.cluster_promotions.load(Ordering::Relaxed),
            ),
            (
                "appliance_cluster_step_downs_total",
                "Times this node stopped serving as leader",
                "counter",
                m.cluster_step_downs.load(Ordering::Relaxed),
            ),
            (
                "appliance_cluster_refused_batches_total",
                "Proposed batches not committed (leadership lost)",
                "counter",
                c.refused.load(Ordering::Relaxed),
            ),
            (
                "appliance_cluster_discarded_events_total",
                "Events found in the hand-off while not serving, dropped unproposed",
                "counter",
                c.discarded.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        let _ = writeln!(text, "# HELP appliance_cluster_follower_matched_index Leader: last log index each follower holds\n# TYPE appliance_cluster_follower_matched_index gauge");
        for (id, idx) in &st.replication {
            let _ = writeln!(
                text,
                "appliance_cluster_follower_matched_index{{node=\"{id}\"}} {}",
                idx.unwrap_or(0)
            );
        }
    }
    // Per session, from its sequence numbers (labels are configured CompIDs, never input).
    if let Some(g) = state.gateway.lock().expect("gateway slot").as_ref() {
        let _ = writeln!(text, "# HELP appliance_fix_session_messages FIX messages of a session since its last sequence reset\n# TYPE appliance_fix_session_messages gauge");
        for s in &state.config.fix.sessions {
            if let Some((next_out, next_in)) = g.session_seq_nums(s.session_id) {
                let _ = writeln!(
                    text,
                    "appliance_fix_session_messages{{session=\"{}\",direction=\"in\"}} {}",
                    s.target_comp_id,
                    next_in.saturating_sub(1)
                );
                let _ = writeln!(
                    text,
                    "appliance_fix_session_messages{{session=\"{}\",direction=\"out\"}} {}",
                    s.target_comp_id,
                    next_out.saturating_sub(1)
                );
            }
        }
    }
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_exactly_or_not_at_all() {
        assert_eq!(parse_price("100.25", 100), Some(10025));
        assert_eq!(parse_price("100", 100), Some(10000));
        assert_eq!(parse_price("100.250", 100), Some(10025));
        assert_eq!(parse_price("100.255", 100), None);
        assert_eq!(parse_price(".5", 10), Some(5));
        assert_eq!(parse_price("-1.5", 10), Some(-15));
        assert_eq!(parse_price("1e5", 10), None);
        assert_eq!(parse_price("", 10), None);
        assert_eq!(parse_price(".", 10), None);
        assert_eq!(parse_price("99999999999999999999999", 100), None);
    }

    #[test]
    fn units_format_as_decimals() {
        assert_eq!(format_units(10025, 100), "100.25");
        assert_eq!(format_units(5, 100), "0.05");
        assert_eq!(format_units(-5, 100), "-0.05");
        assert_eq!(format_units(7, 1), "7");
        assert_eq!(format_units(7, 3), "7");
    }
}
