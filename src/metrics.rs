//! Prometheus metrics over HTTP: the middleware recording request counts and latencies by
//! route pattern and status (into [`Metrics`]), and `/metrics` with the queue gauges.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;

use crate::app_state::AppState;
pub use crate::request_metrics::Metrics;

/// Middleware recording every request. The route label is the matched pattern (never the
/// raw path, whose ids would explode the label set).
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().to_string();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let request_id = req
        .extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(|r| r.to_string());
    let mut res = next.call(req).await?;
    if let Some(m) = metrics {
        m.observe(
            &route,
            &method,
            res.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
    }
    // The request id ties a client's report to our logs.
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), id);
    }
    Ok(res)
}

/// Whether the request may read the metrics: always when no `metrics_token` is set,
/// otherwise with that bearer token. Digests are compared, in constant time, so neither the
/// token's bytes nor its length show in the timing.
fn may_scrape(state: &AppState, req: &HttpRequest) -> bool {
    let Some(expected) = &state.settings.http.metrics_token else {
        return true;
    };
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let digest = |t: &str| ring::digest::digest(&ring::digest::SHA256, t.as_bytes());
    crate::auth::secrets::constant_time_eq(
        digest(given).as_ref(),
        digest(expected.expose_secret()).as_ref(),
    )
}

pub async fn get_metrics(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if !may_scrape(&state, &req) {
        return HttpResponse::Unauthorized()
            .insert_header((WWW_AUTHENTICATE, "Bearer"))
            .body("metrics need the bearer token set as metrics_token\n");
    }
    let mut text = state.metrics.render();
    // Queue figures come from the database, so every instance reports the shared truth.
    if let Ok(mut conn) = state.deps.db.pool().acquire().await {
        let targets: Vec<&str> = state
            .settings
            .sync
            .targets
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        if let Ok(figures) = queue_figures(&mut conn, &targets).await {
            text.push_str(&figures);
        }
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}

/// Counts stop here: a queue this deep is an alarm whatever its exact size, and counting
/// further would make a scrape cost as much as the backlog.
pub const QUEUE_COUNT_CAP: i64 = 10_000;

/// The outbox gauges. Each figure is a count of one state through that state's partial
/// index, stopped at [`QUEUE_COUNT_CAP`], or one index probe (the oldest pending event), so
/// a scrape reads at most a few caps' worth of index entries however large the tables
/// grow. We chose this over counters kept by the writers: those would put one hot row in
/// every transaction that queues mail or sync events (serialising them on PostgreSQL) and
/// would have to follow every path that inserts, leases, settles or deletes rows.
async fn queue_figures(
    conn: &mut sqlx::AnyConnection,
    targets: &[&str],
) -> Result<String, crate::store::DbError> {
    use crate::store::outbox_gauges as g;
    let now = crate::clock::to_millis(chrono::Utc::now());
    let mut depth = Vec::new();
    for target in targets {
        depth.push((
            *target,
            g::sync_pending(conn, target, QUEUE_COUNT_CAP).await?,
            g::sync_dead(conn, target, QUEUE_COUNT_CAP).await?,
            g::sync_oldest_pending(conn, target).await?,
        ));
    }
    let mut text = String::new();
    text.push_str("# HELP guestbridge_sync_queue_depth Sync events waiting per target (counted up to 10000)\n# TYPE guestbridge_sync_queue_depth gauge\n");
    for (t, pending, _, _) in &depth {
        text.push_str(&format!(
            "guestbridge_sync_queue_depth{{target=\"{t}\"}} {pending}\n"
        ));
    }
    text.push_str("# HELP guestbridge_sync_dead_letters Sync events given up per target (counted up to 10000)\n# TYPE guestbridge_sync_dead_letters gauge\n");
    for (t, _, dead, _) in &depth {
        text.push_str(&format!(
            "guestbridge_sync_dead_letters{{target=\"{t}\"}} {dead}\n"
        ));
    }
    text.push_str("# HELP guestbridge_sync_lag_seconds Age of the oldest waiting sync event per target\n# TYPE guestbridge_sync_lag_seconds gauge\n");
    for (t, _, _, oldest) in &depth {
        let lag = oldest
            .map(|o| (now - o).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        text.push_str(&format!(
            "guestbridge_sync_lag_seconds{{target=\"{t}\"}} {lag}\n"
        ));
    }
    let (pending, sent, failed) = g::mail_counts(conn, QUEUE_COUNT_CAP).await?;
    text.push_str(&format!(
        "# HELP guestbridge_mail_outbox Mail by delivery state (counted up to 10000)\n# TYPE guestbridge_mail_outbox gauge\nguestbridge_mail_outbox{{state=\"pending\"}} {pending}\nguestbridge_mail_outbox{{state=\"sent\"}} {sent}\nguestbridge_mail_outbox{{state=\"failed\"}} {failed}\n"
    ));
    Ok(text)
}
