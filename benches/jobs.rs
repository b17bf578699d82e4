//! Jobs over many guests with few due (issue 7): 1,000,000 guests of which 1,000 are due;
//! a run must cost what is due, not the table. `cargo bench --bench jobs` (BENCH_GUESTS
//! changes the population). Prints a table and writes target/bench/jobs.json.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use guestbridge::clock::SystemClock;
use guestbridge::config::Settings;
use serde_json::json;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let total: usize = std::env::var("BENCH_GUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
        let due = 1_000usize;
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        let env: BTreeMap<String, String> = [
            ("GUESTBRIDGE_DATABASE_URL", url.as_str()),
            ("GUESTBRIDGE_LISTEN", "127.0.0.1:0"),
            ("GUESTBRIDGE_JOBS", "off"),
            ("GUESTBRIDGE_MAPPINGS", "/nonexistent"),
            ("GUESTBRIDGE_SECRET_KEY", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let settings = Settings::load(None, &env).expect("settings");
        let app = guestbridge::startup::Application::build(settings.clone(), Arc::new(SystemClock)).await.expect("app");
        let deps = app.deps();
        let pool = deps.db.pool().clone();
        let now = chrono::Utc::now().timestamp_millis();
        sqlx::query("INSERT INTO partners (id, slug, name, created_at) VALUES ('p', 'bench', 'Bench', 0)").execute(&pool).await.expect("partner");
        let seeding = Instant::now();
        let mut tx = pool.begin().await.expect("tx");
        for chunk_start in (0..total).step_by(500) {
            let mut sql = String::from(
                "INSERT INTO guests (id, partner_id, user_id, user_name, email, state, approved, mfa_required, access_until, invited_at, created_at, updated_at, last_seen_at) VALUES ",
            );
            for i in chunk_start..(chunk_start + 500).min(total) {
                // The first `due` guests ended yesterday; the rest end next year.
                let until = if i < due { now - 86_400_000 } else { now + 365 * 86_400_000 };
                if i > chunk_start {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "('g{i}', 'p', 'u{i}', 'person{i}@bench.example', 'person{i}@bench.example', 'invited', 1, 0, {until}, {now}, {now}, {now}, {now})"
                ));
            }
            sqlx::query(&sql).execute(&mut *tx).await.expect("seed");
        }
        tx.commit().await.expect("commit");
        let seeded = seeding.elapsed();
        let mut figures = Vec::new();
        for job in ["expiry", "deprovision"] {
            let started = Instant::now();
            let report = guestbridge::jobs::run_once(job, &deps, &settings, None, chrono::Utc::now(), "bench").await.expect("run");
            let took = started.elapsed();
            println!("jobs: {job} over {total} guests ({due} due): {:.1} ms, {:?} (target < 1000 ms)", took.as_secs_f64() * 1000.0, report.counts);
            figures.push(json!({"scenario": format!("{job} over {total} guests, {due} due"), "ms": took.as_secs_f64() * 1000.0, "counts": report.counts, "target_ms": 1000}));
        }
        println!("jobs: seeding {total} guests took {:.1} s", seeded.as_secs_f64());
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
        let _ = std::fs::create_dir_all(&out);
        let _ = std::fs::write(out.join("jobs.json"), serde_json::to_string_pretty(&figures).unwrap_or_default());
    });
}
