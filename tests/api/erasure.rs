//! Erasure is complete: after a removed guest's retention period, no table holds the
//! person's name, e-mail or userName in any form, while the audit log keeps every entry
//! (with a placeholder); settled outbox rows are pruned after their own retention.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::Row;

use crate::both_backends;
use crate::helpers::{eventually, spawn_with, Backend, TestApp};
use crate::smtp::TestSmtp;

const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = ""
launch_url = "https://ehr.example/"
roles = ["reader"]

[[rule]]
id = "everyone"
grants = [{ app = "ehr-viewer", role = "reader" }]
access_days = 30
"#;

const USER_NAME: &str = "zq-4471-UName";
const EMAIL: &str = "Zebulon.Private@Mailbox.example";
const GIVEN: &str = "Zébulon";
const FAMILY: &str = "Quarterfield";

both_backends!(
    nothing_names_an_erased_person,
    settled_outbox_rows_are_pruned
);

/// A webhook target that accepts every event and keeps its body.
async fn start_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let state = accepted.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new().route(
            "/hook",
            web::post().to(move |body: web::Bytes| {
                let state = state.clone();
                async move {
                    state
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    HttpResponse::NoContent().finish()
                }
            }),
        )
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .run();
    tokio::spawn(server);
    (url, accepted)
}

async fn app(backend: Backend, smtp: &TestSmtp, hook: &str) -> TestApp {
    let targets = json!([{"name": "hooks", "type": "webhook", "url": hook, "secret": "s3cret-shared-with-the-receiver"}]).to_string();
    spawn_with(
        backend,
        &[("rules.toml", RULES)],
        &[
            ("GUESTBRIDGE_SMTP_URL", smtp.url.as_str()),
            ("GUESTBRIDGE_MAIL_RETRY_BASE_MS", "200"),
            ("GUESTBRIDGE_SYNC_TARGETS", targets.as_str()),
            ("GUESTBRIDGE_SYNC_RETRY_BASE_MS", "100"),
        ],
    )
    .await
}

async fn run(
    app: &TestApp,
    job: &str,
    at: DateTime<Utc>,
) -> std::collections::BTreeMap<&'static str, u64> {
    let settings = guestbridge::config::Settings::load(None, &Default::default()).unwrap();
    let report = guestbridge::jobs::run_once(job, &app.deps, &settings, None, at, "test")
        .await
        .unwrap();
    assert!(report.ran, "{job} ran");
    report.counts
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

/// Every column of every table of the current schema, from the catalogue, so that a table
/// added later is searched too.
async fn columns(app: &TestApp, backend: Backend) -> Vec<(String, String)> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY 1, 2"
        }
        Backend::Postgres => {
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() ORDER BY 1, 2"
        }
    };
    let rows = sqlx::query(sql)
        .fetch_all(app.deps.db.pool())
        .await
        .unwrap();
    assert!(rows.len() > 100, "the catalogue lists the schema's columns");
    rows.iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect()
}

/// Where any of the person's strings occurs: `table.column: value`, case-insensitive, raw
/// and JSON-escaped.
async fn occurrences(app: &TestApp, backend: Backend) -> Vec<String> {
    let mut needles = Vec::new();
    for s in [USER_NAME, EMAIL, GIVEN, FAMILY] {
        needles.push(s.to_lowercase());
        let escaped = serde_json::to_string(&s).unwrap();
        needles.push(escaped.trim_matches('"').to_lowercase());
        // serde_json leaves non-ASCII as is; other writers escape it as \uXXXX.
        let ascii: String = s
            .chars()
            .map(|c| {
                if c.is_ascii() {
                    c.to_string()
                } else {
                    format!("\\u{:04x}", c as u32)
                }
            })
            .collect();
        needles.push(ascii.to_lowercase());
    }
    let mut hits = Vec::new();
    for (table, column) in columns(app, backend).await {
        // Bytes on SQLite, whose columns may hold any type (a sealed value is not UTF-8).
        // On PostgreSQL convert_to, not a cast: a cast to BYTEA reads backslashes as escapes.
        let sql = match backend {
            Backend::Sqlite => {
                format!("SELECT CAST(CAST(\"{column}\" AS TEXT) AS BLOB) FROM \"{table}\"")
            }
            Backend::Postgres => {
                format!("SELECT convert_to(CAST(\"{column}\" AS TEXT), 'UTF8') FROM \"{table}\"")
            }
        };
        let values: Vec<Option<Vec<u8>>> = sqlx::query_scalar(&sql)
            .fetch_all(app.deps.db.pool())
            .await
            .unwrap();
        for v in values.into_iter().flatten() {
            let v = String::from_utf8_lossy(&v);
            let lower = v.to_lowercase();
            if needles.iter().any(|n| lower.contains(n.as_str())) {
                hits.push(format!("{table}.{column}: {v}"));
            }
        }
    }
    hits
}

async fn nothing_names_an_erased_person(backend: Backend) {
    let smtp = TestSmtp::start();
    let (hook, events) = start_receiver().await;
    let app = app(backend, &smtp, &hook).await;
    let (_, acme) = app.partner("acme").await;
    let user_id = acme
        .create_user(&json!({
            "userName": USER_NAME,
            "displayName": format!("{GIVEN} {FAMILY}"),
            "name": {"givenName": GIVEN, "familyName": FAMILY},
            "emails": [{"value": EMAIL, "primary": true}],
        }))
        .await;
    let pool = app.deps.db.pool();
    let guest_id: String = sqlx::query_scalar("SELECT id FROM guests")
        .fetch_one(pool)
        .await
        .unwrap();
    // The invitation reaches the sink, the first event the target.
    eventually("the invitation mail", || async {
        smtp.received()
            .iter()
            .any(|m| m.raw().to_lowercase().contains(&EMAIL.to_lowercase()))
    })
    .await;
    eventually("the upsert event", || async {
        !events.lock().unwrap().is_empty()
    })
    .await;
    eventually("the mail marked sent", || async {
        scalar(
            &app,
            "SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL",
        )
        .await
            == 0
    })
    .await;
    // An import report that quotes the person (as a reason may), beside one that does not.
    let partner: String = sqlx::query_scalar("SELECT id FROM partners")
        .fetch_one(pool)
        .await
        .unwrap();
    for (id, report) in [
        (
            "imp-1",
            format!("line,column,reason\n3,email,{EMAIL} appears twice\n"),
        ),
        (
            "imp-2",
            "line,column,reason\n4,userName,userName is empty\n".to_string(),
        ),
    ] {
        sqlx::query(
            "INSERT INTO imports (id, partner_id, actor, file_name, file_sha256, mode, dry_run, started_at,
                finished_at, rows_read, created, updated, deactivated, unchanged, errors, outcome, error_report)
             VALUES ($1, $2, 'cli', 'roster.csv', 'x', 'delta', 0, 1, 2, 3, 0, 0, 0, 2, 1, 'ok', $3)",
        )
        .bind(id)
        .bind(&partner)
        .bind(report)
        .execute(pool)
        .await
        .unwrap();
    }
    // Before erasure the audit log shows who was created.
    let mut conn = pool.acquire().await.unwrap();
    let created = guestbridge::store::audit::for_target(&mut conn, "user", &user_id, 50)
        .await
        .unwrap();
    assert_eq!(created[0].detail["userName"], USER_NAME, "{:?}", created[0]);
    drop(conn);
    assert!(
        !occurrences(&app, backend).await.is_empty(),
        "the scan finds the living person"
    );

    // The partner deletes the person: the deprovision event still reaches the target.
    let res = acme.delete(&format!("/Users/{user_id}")).await;
    assert_eq!(res.status, 204, "{}", res.body);
    eventually("every event delivered", || async {
        scalar(
            &app,
            "SELECT COUNT(*) FROM sync_outbox WHERE delivered_at IS NULL",
        )
        .await
            == 0
    })
    .await;
    let last = events.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last["type"], "guest.removed", "{last}");
    let audited_before = scalar(&app, "SELECT COUNT(*) FROM audit_log").await;

    let later = Utc::now() + chrono::Duration::days(400);
    assert_eq!(
        run(&app, "deprovision", later).await.get("erased"),
        Some(&1)
    );
    run(&app, "housekeeping", later).await;
    let hits = occurrences(&app, backend).await;
    assert!(
        hits.is_empty(),
        "still naming the person:\n{}",
        hits.join("\n")
    );

    // Every entry is still there (one more: the erasure), with a placeholder for the name.
    let audited_after = scalar(&app, "SELECT COUNT(*) FROM audit_log").await;
    assert_eq!(audited_after, audited_before + 1);
    let mut conn = pool.acquire().await.unwrap();
    let history = guestbridge::store::audit::for_target(&mut conn, "user", &user_id, 50)
        .await
        .unwrap();
    let actions: Vec<&str> = history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(actions, ["user.created", "user.deleted"]);
    for h in &history {
        assert_eq!(
            h.detail["userName"],
            guestbridge::store::audit::ERASED,
            "{h:?}"
        );
    }
    let guest = guestbridge::store::audit::for_target(&mut conn, "guest", &guest_id, 50)
        .await
        .unwrap();
    assert_eq!(guest.last().unwrap().action, "guest.erased");
    drop(conn);
    let kept: Option<String> =
        sqlx::query_scalar("SELECT error_report FROM imports WHERE id = 'imp-2'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(kept.is_some(), "a report not naming the person is kept");
    // A second run finds nothing to do.
    assert!(!run(&app, "deprovision", later).await.contains_key("erased"));
}

async fn settled_outbox_rows_are_pruned(backend: Backend) {
    let smtp = TestSmtp::start();
    let (hook, events) = start_receiver().await;
    let app = app(backend, &smtp, &hook).await;
    let (_, acme) = app.partner("acme").await;
    acme.create_user(
        &json!({"userName": "ann@acme.example", "emails": [{"value": "ann@acme.example"}]}),
    )
    .await;
    eventually("the event delivered", || async {
        !events.lock().unwrap().is_empty()
    })
    .await;
    eventually("the mail sent", || async {
        scalar(
            &app,
            "SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NOT NULL",
        )
        .await
            == 1
    })
    .await;
    eventually("the event marked delivered", || async {
        scalar(
            &app,
            "SELECT COUNT(*) FROM sync_outbox WHERE delivered_at IS NOT NULL",
        )
        .await
            == 1
    })
    .await;
    // A dead letter and a failed mail, settled as long ago as the delivered ones.
    let pool = app.deps.db.pool();
    sqlx::query(
        "INSERT INTO sync_outbox (id, target, guest_id, kind, payload, created_at, next_attempt_at, dead_at)
         SELECT 'dead-1', target, guest_id, kind, payload, created_at, next_attempt_at, delivered_at FROM sync_outbox",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO mail_outbox (id, kind, to_addr, subject, guest_id, idempotency_key, created_at, next_attempt_at, failed_at)
         SELECT 'failed-1', kind, to_addr, subject, guest_id, 'failed-1', created_at, next_attempt_at, sent_at FROM mail_outbox",
    )
    .execute(pool)
    .await
    .unwrap();
    // Not yet past the retention window: kept.
    let counts = run(
        &app,
        "housekeeping",
        Utc::now() + chrono::Duration::days(29),
    )
    .await;
    assert!(!counts.contains_key("sync_delivered_deleted"), "{counts:?}");
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM sync_outbox").await, 2);
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM mail_outbox").await, 2);
    let counts = run(
        &app,
        "housekeeping",
        Utc::now() + chrono::Duration::days(31),
    )
    .await;
    assert_eq!(counts.get("sync_delivered_deleted"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("sync_dead_deleted"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("mail_sent_deleted"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("mail_failed_deleted"), Some(&1), "{counts:?}");
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM sync_outbox").await, 0);
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM mail_outbox").await, 0);
    // Idempotent.
    let counts = run(
        &app,
        "housekeeping",
        Utc::now() + chrono::Duration::days(31),
    )
    .await;
    assert!(!counts
        .keys()
        .any(|k| k.starts_with("sync_") || k.starts_with("mail_")));
}
