//! `/metrics` with `metrics_token` set answers only that bearer token; without it, anyone.

use crate::both_backends;
use crate::helpers::{spawn, spawn_with, Backend};

both_backends!(metrics_want_the_token_when_one_is_set);

async fn metrics_want_the_token_when_one_is_set(backend: Backend) {
    let token = "mt_3f9a1c77e2";
    let app = spawn_with(backend, &[], &[("GUESTBRIDGE_METRICS_TOKEN", token)]).await;
    let url = format!("{}/metrics", app.address);
    let no_token = app.client.get(&url).send().await.unwrap();
    assert_eq!(no_token.status().as_u16(), 401);
    assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
    for wrong in ["mt_3f9a1c77e", "mt_3f9a1c77e2x", ""] {
        let res = app
            .client
            .get(&url)
            .bearer_auth(wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401, "{wrong:?}");
    }
    let ok = app
        .client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert!(ok.text().await.unwrap().contains("guestbridge_mail_outbox"));
    // The token is a secret: the settings never print it.
    let settings = crate::helpers::settings_with(
        "sqlite:///nonexistent/guestbridge.db",
        std::path::Path::new("/nonexistent"),
        &[("GUESTBRIDGE_METRICS_TOKEN", token)],
    );
    assert!(settings.http.metrics_token.is_some());
    assert!(!format!("{settings:?}").contains(token));

    let open = spawn(backend).await;
    let res = open
        .client
        .get(format!("{}/metrics", open.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        200,
        "without metrics_token /metrics stays open"
    );
}

both_backends!(queue_gauges_count_each_state_up_to_the_cap);

/// `n` mail rows (every `sent_every`-th sent, the others pending) and `n` sync events of
/// target `hooks` (likewise delivered or pending), written straight into the tables.
/// Retries due in 2100: the app's own senders, running beside the test, must not claim the
/// rows (a delivery to the hooks target would turn one into a dead letter mid-count).
const NOT_DUE: i64 = 4_102_444_800_000;

async fn fill_outboxes(app: &crate::helpers::TestApp, n: i64, sent_every: i64) {
    let mut conn = app.deps.db.pool().acquire().await.unwrap();
    let mail = format!(
        "INSERT INTO mail_outbox (id, kind, to_addr, subject, idempotency_key, created_at, next_attempt_at, sent_at)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
         SELECT 'm' || i, 'invitation', 'recipient', 's', 'k' || i, i, {NOT_DUE} + i,
                CASE WHEN i % {sent_every} = 0 THEN i ELSE NULL END FROM n"
    );
    sqlx::query(&mail).execute(&mut *conn).await.unwrap();
    let sync = format!(
        "INSERT INTO sync_outbox (id, target, guest_id, kind, payload, created_at, next_attempt_at, delivered_at)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
         SELECT 'e' || i, 'hooks', 'g' || i, 'guest_upserted', '{{}}', i, {NOT_DUE} + i,
                CASE WHEN i % {sent_every} = 0 THEN i ELSE NULL END FROM n"
    );
    sqlx::query(&sync).execute(&mut *conn).await.unwrap();
}

async fn scrape(app: &crate::helpers::TestApp) -> (std::time::Duration, String) {
    let started = std::time::Instant::now();
    let res = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    (took, res.text().await.unwrap())
}

const HOOKS: &str =
    r#"[{"name":"hooks","type":"webhook","url":"http://127.0.0.1:9/h","secret":"whsec_x"}]"#;

async fn queue_gauges_count_each_state_up_to_the_cap(backend: Backend) {
    let app = spawn_with(backend, &[], &[("GUESTBRIDGE_SYNC_TARGETS", HOOKS)]).await;
    fill_outboxes(&app, 30, 3).await;
    let (_, text) = scrape(&app).await;
    for line in [
        "guestbridge_mail_outbox{state=\"pending\"} 20",
        "guestbridge_mail_outbox{state=\"sent\"} 10",
        "guestbridge_mail_outbox{state=\"failed\"} 0",
        "guestbridge_sync_queue_depth{target=\"hooks\"} 20",
        "guestbridge_sync_dead_letters{target=\"hooks\"} 0",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
    // Past the cap the count stops: 15,000 more pending rows still read as 10,000.
    fill_outboxes_from(&app, 31, 15_030).await;
    let (_, text) = scrape(&app).await;
    assert!(
        text.contains("guestbridge_mail_outbox{state=\"pending\"} 10000"),
        "{text}"
    );
    assert!(
        text.contains("guestbridge_sync_queue_depth{target=\"hooks\"} 10000"),
        "{text}"
    );
}

/// Pending rows numbered `from..=to` in both outboxes.
async fn fill_outboxes_from(app: &crate::helpers::TestApp, from: i64, to: i64) {
    let mut conn = app.deps.db.pool().acquire().await.unwrap();
    for sql in [
        format!("INSERT INTO mail_outbox (id, kind, to_addr, subject, idempotency_key, created_at, next_attempt_at)
         WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to})
         SELECT 'm' || i, 'invitation', 'recipient', 's', 'k' || i, i, {NOT_DUE} + i FROM n"),
        format!("INSERT INTO sync_outbox (id, target, guest_id, kind, payload, created_at, next_attempt_at)
         WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to})
         SELECT 'e' || i, 'hooks', 'g' || i, 'guest_upserted', '{{}}', i, {NOT_DUE} + i FROM n"),
    ] {
        sqlx::query(&sql).execute(&mut *conn).await.unwrap();
    }
}

/// The figure in docs/performance.md: scrape time with 10 and with 1,000,000 rows in each
/// outbox (99 % settled). `cargo test --release --test api scrape_cost -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn scrape_cost_with_ten_and_a_million_outbox_rows() {
    let backends = if crate::helpers::postgres_url().is_some() {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        vec![Backend::Sqlite]
    };
    for backend in backends {
        for n in [10, 1_000_000] {
            let app = spawn_with(backend, &[], &[("GUESTBRIDGE_SYNC_TARGETS", HOOKS)]).await;
            fill_outboxes(&app, n, if n == 10 { 2 } else { 100 }).await;
            if backend == Backend::Postgres {
                // As autovacuum would after such a load: the planner needs the statistics to
                // see that the partial indexes are small.
                let mut conn = app.deps.db.pool().acquire().await.unwrap();
                sqlx::query("ANALYZE").execute(&mut *conn).await.unwrap();
            }
            scrape(&app).await;
            let mut best = std::time::Duration::MAX;
            for _ in 0..5 {
                best = best.min(scrape(&app).await.0);
            }
            eprintln!("{backend:?}: /metrics with {n} rows per outbox: {best:?}");
        }
    }
}
