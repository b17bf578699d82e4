//! Jobs over many guests with few due (issue 7): 1,000,000 guests of which 1,000 are due;
//! a run must cost what is due, not the table. `cargo bench --bench jobs` (BENCH_GUESTS
//! changes the population; GUESTBRIDGE_BENCH_POSTGRES_URL adds PostgreSQL). Prints a table
//! and writes target/bench/jobs.json.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use guestbridge::clock::SystemClock;
use guestbridge::config::Settings;
use serde_json::{json, Value};

const DUE: usize = 1_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let total: usize = common::env_or("BENCH_GUESTS", 1_000_000);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut figures = Vec::new();
        let sqlite = format!("sqlite://{}", dir.path().join("jobs.db").display());
        figures.extend(run("sqlite", &sqlite, total).await);
        if let Some(base) = common::postgres_url() {
            let schema = common::PgSchema::create(&base, "gbbench_jobs").await;
            figures.extend(run("postgres", &schema.url, total).await);
            schema.drop().await;
        }
        common::write_json(
            "jobs",
            &json!({"machine": common::machine(), "figures": figures}),
        );
    });
}

/// Seed `total` guests on the database at `url`, then run each job once at the current instant.
async fn run(backend: &str, url: &str, total: usize) -> Vec<Value> {
    let env: BTreeMap<String, String> = [
        ("GUESTBRIDGE_DATABASE_URL", url),
        ("GUESTBRIDGE_LISTEN", "127.0.0.1:0"),
        ("GUESTBRIDGE_JOBS", "off"),
        ("GUESTBRIDGE_MAPPINGS", "/nonexistent"),
        (
            "GUESTBRIDGE_SECRET_KEY",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = Settings::load(None, &env).expect("settings");
    let app = guestbridge::startup::Application::build(settings.clone(), Arc::new(SystemClock))
        .await
        .expect("app");
    let deps = app.deps();
    let seeding = Instant::now();
    seed(&deps.db, total).await;
    let seeded = seeding.elapsed();
    println!(
        "jobs[{backend}]: seeding {} guests took {:.1} s",
        common::thousands(total as u64),
        seeded.as_secs_f64()
    );
    let mut figures = Vec::new();
    for job in ["expiry", "deprovision"] {
        let started = Instant::now();
        let report =
            guestbridge::jobs::run_once(job, &deps, &settings, None, chrono::Utc::now(), "bench")
                .await
                .expect("run");
        let took = started.elapsed();
        let ms = took.as_secs_f64() * 1000.0;
        let verdict = if ms < 1000.0 { "MET" } else { "MISSED" };
        println!(
            "jobs[{backend}]: {job} over {} guests ({DUE} past their end): {ms:.1} ms, {:?} ({verdict} < 1000 ms)",
            common::thousands(total as u64),
            report.counts
        );
        figures.push(json!({
            "backend": backend,
            "scenario": format!("{job} over {total} guests, {DUE} past their end"),
            "ms": ms,
            "counts": report.counts,
            "target_ms": 1000,
        }));
    }
    deps.db.close().await;
    figures
}

/// A partner and `total` invited guests with a grant each; the first `DUE` guests' access
/// ended yesterday, the rest end next year.
async fn seed(db: &guestbridge::store::Db, total: usize) {
    let pool = db.pool();
    let now = chrono::Utc::now().timestamp_millis();
    sqlx::query(
        "INSERT INTO partners (id, slug, name, created_at) VALUES ('p', 'bench', 'Bench', 0)",
    )
    .execute(pool)
    .await
    .expect("partner");
    let mut tx = db.begin_write().await.expect("tx");
    for chunk_start in (0..total).step_by(500) {
        let mut sql = String::from(
            "INSERT INTO guests (id, partner_id, user_id, user_name, email, state, approved, \
             mfa_required, access_until, invited_at, created_at, updated_at, last_seen_at) VALUES ",
        );
        for i in chunk_start..(chunk_start + 500).min(total) {
            let until = if i < DUE {
                now - 86_400_000
            } else {
                now + 365 * 86_400_000
            };
            if i > chunk_start {
                sql.push(',');
            }
            sql.push_str(&format!(
                "('g{i}', 'p', 'u{i}', 'person{i}@bench.example', 'person{i}@bench.example', \
                 'invited', 1, 0, {until}, {now}, {now}, {now}, {now})"
            ));
        }
        sqlx::query(&sql).execute(&mut *tx).await.expect("seed");
        // Each guest's one grant ends with their access: the expiry job finds the due ends
        // by the grants' end index, the guests by theirs.
        let mut grants = String::from(
            "INSERT INTO guest_grants (guest_id, app_id, role, rule_id, valid_from, valid_until) VALUES ",
        );
        for i in chunk_start..(chunk_start + 500).min(total) {
            let until = if i < DUE {
                now - 86_400_000
            } else {
                now + 365 * 86_400_000
            };
            if i > chunk_start {
                grants.push(',');
            }
            grants.push_str(&format!(
                "('g{i}', 'ehr', 'reader', 'bench', {now}, {until})"
            ));
        }
        sqlx::query(&grants)
            .execute(&mut *tx)
            .await
            .expect("seed grants");
    }
    tx.commit().await.expect("commit");
    // The planner's statistics, as after an import (PostgreSQL).
    db.analyze_after_bulk().await.expect("analyze");
}
