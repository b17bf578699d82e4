//! The tamper-evident audit log: after real SCIM and admin actions `audit verify` (the CLI
//! binary and the service) passes; it names the first bad row once a row is edited, a middle
//! row deleted, two rows swapped or the last row deleted behind the triggers' back;
//! TRUNCATE, deleting heads and moving them back are refused; concurrent writers (and two
//! instances on PostgreSQL) leave valid chains; an erased person's entries still verify
//! (the query API and the CSV export: `audit_query`).

use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

use guestbridge::services::audit::{verify, Breach, VerifyReport};
use guestbridge::store::audit::{self, AuditEntry};
use guestbridge::store::work::Work;

use crate::audit_query::list;
use crate::both_backends;
use crate::helpers::{spawn, spawn_peer, test_actor, Backend, Scim, TestApp};
use crate::users_crud::clinician;

both_backends!(
    verify_passes_after_real_actions_and_names_an_edited_row,
    verify_names_a_deleted_middle_row,
    verify_names_a_row_moved_off_its_chain,
    verify_names_swapped_rows,
    verify_names_a_deleted_last_row,
    truncate_head_deletion_and_rewinding_are_refused,
    concurrent_appends_leave_valid_chains,
    an_erased_persons_entries_still_verify,
);

fn guestbridge(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .args(args)
        .env("GUESTBRIDGE_DATABASE_URL", database_url)
        .env_remove("RUST_LOG")
        .output()
        .expect("run guestbridge")
}

pub async fn admin_token(app: &TestApp) -> String {
    let token = guestbridge::services::partners::issue_admin_token(&app.deps, &test_actor())
        .await
        .expect("admin token");
    crate::log_scan::register_secret(&token);
    token
}

/// A partner's people created, replaced, patched and deleted, and a token issued: every
/// kind of write path (group-committed creates, units with their own transaction, direct
/// appends).
pub async fn real_actions(app: &TestApp, slug: &str) -> Scim {
    let (_, scim) = app.partner(slug).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            scim.create_user(&clinician(&format!("p{i}@{slug}.example")))
                .await,
        );
    }
    let res = scim
        .patch(
            &format!("/Users/{}", ids[0]),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "title", "value": "Clerk"}]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let res = scim
        .put(
            &format!("/Users/{}", ids[1]),
            &clinician(&format!("p1b@{slug}.example")),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        scim.delete(&format!("/Users/{}", ids[2])).await.status,
        StatusCode::NO_CONTENT
    );
    guestbridge::services::partners::issue_partner_token(
        &app.deps,
        &test_actor(),
        &guestbridge::domain::PartnerSlug::parse(slug).unwrap(),
    )
    .await
    .map(|t| crate::log_scan::register_secret(&t))
    .expect("token");
    scim
}

pub async fn chained_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE chain IS NOT NULL")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

/// Verify through the service and the CLI binary; both must agree it passes.
pub async fn assert_verifies(app: &TestApp) -> VerifyReport {
    let report = verify(&app.deps.db).await.expect("verify");
    assert!(report.ok, "{}", report.summary());
    assert_eq!(report.rows, chained_rows(app).await);
    let out = guestbridge(&app.database_url, &["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.trim_end().ends_with(&format!(
            "audit verify: {} rows in {} chains ok ({} legacy rows unchained)",
            report.rows, report.chains, report.legacy
        )),
        "{stdout}"
    );
    report
}

/// The report of a verify that must fail, the CLI's too (non-zero, naming the row).
async fn assert_fails(app: &TestApp, kind: Breach, id: i64) -> VerifyReport {
    let report = verify(&app.deps.db).await.expect("verify");
    assert!(!report.ok, "{}", report.summary());
    let problem = report.problem.clone().expect("a problem");
    assert_eq!(problem.kind, kind, "{}", report.summary());
    assert_eq!(problem.id, Some(id), "{}", report.summary());
    let out = guestbridge(&app.database_url, &["audit", "verify"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("FAILED at row {id} ")) && stderr.contains(kind.as_str()),
        "{stderr}"
    );
    report
}

/// The ids of the chain holding most rows, in order.
async fn busiest_chain(app: &TestApp) -> Vec<i64> {
    let chain: i64 = sqlx::query_scalar(
        "SELECT chain FROM audit_log WHERE chain IS NOT NULL GROUP BY chain ORDER BY COUNT(*) DESC, chain LIMIT 1",
    )
    .fetch_one(app.deps.db.pool())
    .await
    .unwrap();
    sqlx::query_scalar("SELECT id FROM audit_log WHERE chain = $1 ORDER BY id")
        .bind(chain)
        .fetch_all(app.deps.db.pool())
        .await
        .unwrap()
}

/// Run statements on audit_log as someone with direct database access would: with its
/// append-only triggers out of the way, then put back.
async fn behind_the_triggers(app: &TestApp, backend: Backend, statements: &[(&str, Vec<Value>)]) {
    let pool = app.deps.db.pool();
    let mut conn = pool.acquire().await.unwrap();
    let (off, on): (&[&str], &[&str]) = match backend {
        Backend::Postgres => (
            &["ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change"],
            &["ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change"],
        ),
        Backend::Sqlite => (
            &[
                "DROP TRIGGER audit_log_no_update",
                "DROP TRIGGER audit_log_no_delete",
            ],
            &[
                "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log \
                 BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
                "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log \
                 BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
            ],
        ),
    };
    for s in off {
        sqlx::query(s).execute(&mut *conn).await.unwrap();
    }
    for (sql, args) in statements {
        let mut q = sqlx::query(sql);
        for a in args {
            q = match a {
                Value::Number(n) => q.bind(n.as_i64().unwrap()),
                Value::String(s) => q.bind(s.clone()),
                _ => q.bind(None::<String>),
            };
        }
        q.execute(&mut *conn).await.unwrap();
    }
    for s in on {
        sqlx::query(s).execute(&mut *conn).await.unwrap();
    }
    // The triggers are back: the log refuses changes again.
    assert!(sqlx::query("UPDATE audit_log SET actor = 'x'")
        .execute(&mut *conn)
        .await
        .is_err());
}

async fn verify_passes_after_real_actions_and_names_an_edited_row(backend: Backend) {
    let app = spawn(backend).await;
    real_actions(&app, "acme").await;
    let report = assert_verifies(&app).await;
    assert!(report.rows >= 8, "{}", report.summary());
    assert_eq!(report.legacy, 0);
    let ids = busiest_chain(&app).await;
    let victim = ids[ids.len() / 2];
    behind_the_triggers(
        &app,
        backend,
        &[(
            "UPDATE audit_log SET actor = 'partner:someone-else' WHERE id = $1",
            vec![json!(victim)],
        )],
    )
    .await;
    let report = assert_fails(&app, Breach::Edited, victim).await;
    assert!(
        report.summary().contains("do not match its hash"),
        "{}",
        report.summary()
    );
    assert_eq!(
        app.get("/api/v1/audit/verify").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let token = admin_token(&app).await;
    let res = app
        .client
        .get(format!("{}/api/v1/audit/verify", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["problem"]["kind"], "edited", "{body}");
    assert_eq!(body["problem"]["id"], victim, "{body}");
}

async fn verify_names_a_deleted_middle_row(backend: Backend) {
    let app = spawn(backend).await;
    real_actions(&app, "acme").await;
    assert_verifies(&app).await;
    let ids = busiest_chain(&app).await;
    let at = ids.len() / 2;
    behind_the_triggers(
        &app,
        backend,
        &[("DELETE FROM audit_log WHERE id = $1", vec![json!(ids[at])])],
    )
    .await;
    assert_fails(&app, Breach::Missing, ids[at + 1]).await;
}

async fn verify_names_a_row_moved_off_its_chain(backend: Backend) {
    let app = spawn(backend).await;
    real_actions(&app, "acme").await;
    assert_verifies(&app).await;
    let ids = busiest_chain(&app).await;
    let victim = ids[ids.len() / 2];
    behind_the_triggers(
        &app,
        backend,
        &[(
            "UPDATE audit_log SET chain = 99 WHERE id = $1",
            vec![json!(victim)],
        )],
    )
    .await;
    let report = assert_fails(&app, Breach::Edited, victim).await;
    assert!(
        report.summary().contains("chain 99 has no head"),
        "{}",
        report.summary()
    );
}

const LINK_COLUMNS: [&str; 12] = [
    "at",
    "actor",
    "partner_id",
    "action",
    "target_type",
    "target_id",
    "request_id",
    "detail",
    "chain",
    "seq",
    "prev_hash",
    "hash",
];

/// Every stored column of a row but its id, as JSON values.
async fn row_values(app: &TestApp, id: i64) -> Vec<Value> {
    let row = sqlx::query(&format!(
        "SELECT {} FROM audit_log WHERE id = $1",
        LINK_COLUMNS.join(", ")
    ))
    .bind(id)
    .fetch_one(app.deps.db.pool())
    .await
    .unwrap();
    LINK_COLUMNS
        .iter()
        .map(|c| match *c {
            "at" | "chain" | "seq" => json!(row.get::<i64, _>(*c)),
            _ => json!(row.get::<Option<String>, _>(*c)),
        })
        .collect()
}

async fn verify_names_swapped_rows(backend: Backend) {
    let app = spawn(backend).await;
    real_actions(&app, "acme").await;
    assert_verifies(&app).await;
    let ids = busiest_chain(&app).await;
    let (a, b) = (ids[ids.len() / 2], ids[ids.len() / 2 + 1]);
    let (va, vb) = (row_values(&app, a).await, row_values(&app, b).await);
    let set: Vec<String> = LINK_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    let sql = format!("UPDATE audit_log SET {} WHERE id = $13", set.join(", "));
    let with_id = |mut v: Vec<Value>, id: i64| {
        v.push(json!(id));
        v
    };
    behind_the_triggers(
        &app,
        backend,
        &[(&sql, with_id(vb, a)), (&sql, with_id(va, b))],
    )
    .await;
    let report = assert_fails(&app, Breach::Reordered, a).await;
    assert!(
        report.summary().contains("reordered"),
        "{}",
        report.summary()
    );
}

async fn verify_names_a_deleted_last_row(backend: Backend) {
    let app = spawn(backend).await;
    real_actions(&app, "acme").await;
    assert_verifies(&app).await;
    let ids = busiest_chain(&app).await;
    let last = *ids.last().unwrap();
    behind_the_triggers(
        &app,
        backend,
        &[("DELETE FROM audit_log WHERE id = $1", vec![json!(last)])],
    )
    .await;
    let report = assert_fails(&app, Breach::HeadMismatch, ids[ids.len() - 2]).await;
    assert!(
        report.summary().contains("head mismatch"),
        "{}",
        report.summary()
    );
}

async fn truncate_head_deletion_and_rewinding_are_refused(backend: Backend) {
    let app = spawn(backend).await;
    real_actions(&app, "acme").await;
    let pool = app.deps.db.pool();
    let before = chained_rows(&app).await;
    if backend == Backend::Postgres {
        for table in ["audit_log", "audit_chain_heads"] {
            let err = sqlx::query(&format!("TRUNCATE {table}"))
                .execute(pool)
                .await
                .expect_err("TRUNCATE must be refused");
            assert!(err.to_string().contains("may not be truncated"), "{err}");
        }
    }
    for sql in [
        "DELETE FROM audit_log",
        "UPDATE audit_log SET detail = '{}'",
        "DELETE FROM audit_chain_heads",
        "UPDATE audit_chain_heads SET seq = seq - 1 WHERE seq > 0",
        "UPDATE audit_chain_heads SET seq = seq WHERE seq > 0",
    ] {
        assert!(sqlx::query(sql).execute(pool).await.is_err(), "{sql} ran");
    }
    assert_eq!(chained_rows(&app).await, before);
    assert_eq!(assert_verifies(&app).await.legacy, 0);
    // A row as written before the chains existed is counted as legacy, not checked.
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, target_type, detail) VALUES (1, 'cli', 'old.entry', 'partner', '{}')",
    )
    .execute(pool)
    .await
    .unwrap();
    let report = assert_verifies(&app).await;
    assert_eq!((report.legacy, report.rows), (1, before));
}

async fn concurrent_appends_leave_valid_chains(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    // On PostgreSQL a second instance shares the schema and writes at the same time.
    let peer = match backend {
        Backend::Postgres => Some(spawn_peer(&app, &[]).await),
        Backend::Sqlite => None,
    };
    let before = chained_rows(&app).await;
    let mut tasks = Vec::new();
    for t in 0..12 {
        let mut scim = scim.clone();
        if let (Some(peer), true) = (&peer, t % 2 == 1) {
            scim.base = peer.address.clone();
        }
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                scim.create_user(&clinician(&format!("c{t}-{i}@acme.example")))
                    .await;
            }
        }));
    }
    for t in 0..4 {
        let deps = match (&peer, t % 2) {
            (Some(peer), 1) => peer.deps.clone(),
            _ => app.deps.clone(),
        };
        tasks.push(tokio::spawn(async move {
            let slug = guestbridge::domain::PartnerSlug::parse("acme").unwrap();
            for _ in 0..5 {
                let token = guestbridge::services::partners::issue_partner_token(
                    &deps,
                    &test_actor(),
                    &slug,
                )
                .await
                .unwrap();
                crate::log_scan::register_secret(&token);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = assert_verifies(&app).await;
    // 60 creates and 20 tokens.
    assert_eq!(report.rows, before + 60 + 20, "{}", report.summary());
    eprintln!("{backend:?}: {}", report.summary());
}

async fn an_erased_persons_entries_still_verify(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let user = scim.create_user(&clinician("gone@acme.example")).await;
    assert_eq!(
        scim.delete(&format!("/Users/{user}")).await.status,
        StatusCode::NO_CONTENT
    );
    let mut conn = app.deps.db.pool().acquire().await.unwrap();
    let erased = audit::erase_subjects(&mut conn, &[&user]).await.unwrap();
    assert!(erased >= 1);
    drop(conn);
    assert_verifies(&app).await;
    let token = admin_token(&app).await;
    let (status, body) = list(&app, &token, &format!("target_id={user}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let created = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.created")
        .expect("creation entry")
        .clone();
    assert_eq!(created["detail"]["userName"], audit::ERASED, "{body}");
    assert!(!body.to_string().contains("gone@acme.example"), "{body}");
}

/// Figures for docs/security.md: verify's speed over 100,000 rows and the write cost of
/// chaining. `cargo test --test api audit_log::figures -- --ignored --nocapture`
mod figures {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark: run with --ignored --nocapture"]
    async fn sqlite() {
        measure(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark: run with --ignored --nocapture"]
    async fn postgres() {
        crate::helpers::require_postgres();
        measure(Backend::Postgres).await
    }
}

async fn measure(backend: Backend) {
    let app = spawn(backend).await;
    let entry = AuditEntry {
        actor: "job:bench",
        partner_id: None,
        action: "bench.row",
        target_type: "group",
        target_id: Some("g"),
        request_id: None,
        detail: json!({"n": 1, "via": "bench"}),
    };
    // Single audited writes, one transaction each: chained, then as unchained rows.
    let n = 2000;
    let started = std::time::Instant::now();
    for i in 0..n {
        let mut tx = app.deps.db.begin_write().await.unwrap();
        audit::append(&mut tx, &entry, i).await.unwrap();
        tx.commit().await.unwrap();
    }
    let chained = started.elapsed();
    let started = std::time::Instant::now();
    for i in 0..n {
        let mut tx = app.deps.db.begin_write().await.unwrap();
        sqlx::query(
            "INSERT INTO audit_log (at, actor, partner_id, action, target_type, target_id, request_id, detail)
             VALUES ($1, $2, NULL, $3, $4, $5, NULL, $6)",
        )
        .bind(i)
        .bind(entry.actor)
        .bind(entry.action)
        .bind(entry.target_type)
        .bind(entry.target_id)
        .bind(entry.detail.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let plain = started.elapsed();
    eprintln!(
        "{backend:?}: {n} single audited writes: chained {:.1} ms, unchained {:.1} ms ({:.0} us more each)",
        chained.as_secs_f64() * 1e3,
        plain.as_secs_f64() * 1e3,
        (chained.as_secs_f64() - plain.as_secs_f64()) * 1e6 / n as f64
    );
    // Bulk: 100,000 chained rows in units of 1,000.
    let started = std::time::Instant::now();
    for u in 0..100 {
        let mut work = Work::begin_bulk(&app.deps.db).await.unwrap();
        for i in 0..1000 {
            audit::queue(&mut work, &entry, u * 1000 + i);
        }
        work.commit().await.unwrap();
    }
    eprintln!(
        "{backend:?}: 100,000 chained rows in units of 1,000: {:.0} rows/s",
        100_000.0 / started.elapsed().as_secs_f64()
    );
    let started = std::time::Instant::now();
    let report = verify(&app.deps.db).await.unwrap();
    let took = started.elapsed().as_secs_f64();
    assert!(report.ok, "{}", report.summary());
    eprintln!(
        "{backend:?}: {} in {took:.2} s: {:.0} rows/s",
        report.summary(),
        report.rows as f64 / took
    );
}
