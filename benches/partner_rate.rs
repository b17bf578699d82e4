//! A partner's SCIM request rate (issue 21): a client sending faster than the partner's
//! `scim_requests_per_second` gets that many requests a second through (after the burst) and
//! 429 for the rest. `cargo bench --bench partner_rate` (BENCH_RATE the configured rate,
//! default 50; BENCH_SECONDS the run, default 5) drives 16 concurrent tasks against the real
//! server over loopback and prints accepted and refused requests per second: on SQLite (one
//! instance), and with GUESTBRIDGE_BENCH_POSTGRES_URL or GUESTBRIDGE_TEST_POSTGRES_URL on
//! PostgreSQL with two instances sharing the partner's budget.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use guestbridge::clock::SystemClock;
use guestbridge::config::Settings;
use guestbridge::domain::PartnerSlug;
use guestbridge::services;

const CONCURRENCY: usize = 16;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let rate: u32 = common::env_or("BENCH_RATE", 50);
        let seconds: u64 = common::env_or("BENCH_SECONDS", 5);
        let dir = tempfile::tempdir().expect("tempdir");
        let mappings = dir.path().join("mappings");
        std::fs::create_dir_all(&mappings).expect("mappings");
        std::fs::write(
            mappings.join("partners.toml"),
            format!("[[partner]]\nslug = \"acme\"\nscim_requests_per_second = {rate}\n"),
        )
        .expect("rules");
        let sqlite = format!("sqlite://{}", dir.path().join("rate.db").display());
        run("sqlite", &sqlite, &mappings, 1, rate, seconds).await;
        let pg = common::postgres_url().or_else(|| {
            std::env::var("GUESTBRIDGE_TEST_POSTGRES_URL")
                .ok()
                .filter(|s| !s.is_empty())
        });
        if let Some(base) = pg {
            let schema = common::PgSchema::create(&base, "gbbench_partner_rate").await;
            run("postgres", &schema.url, &mappings, 2, rate, seconds).await;
            schema.drop().await;
        }
    });
}

/// Start `instances` servers on `url`, then send as fast as 16 tasks can, spread over them.
async fn run(
    backend: &str,
    url: &str,
    mappings: &std::path::Path,
    instances: usize,
    rate: u32,
    seconds: u64,
) {
    let mut bases = Vec::new();
    let mut deps = None;
    for _ in 0..instances {
        let mut env = common::bench_env(url);
        env.insert("GUESTBRIDGE_LISTEN".into(), "127.0.0.1:0".into());
        env.insert("GUESTBRIDGE_JOBS".into(), "off".into());
        env.insert(
            "GUESTBRIDGE_MAPPINGS".into(),
            mappings.display().to_string(),
        );
        let settings = Settings::load(None, &env).expect("settings");
        let app = guestbridge::startup::Application::build(settings, Arc::new(SystemClock))
            .await
            .expect("app");
        bases.push(format!("http://127.0.0.1:{}/scim/v2", app.port()));
        deps.get_or_insert_with(|| app.deps());
        tokio::spawn(app.run_until_stopped());
    }
    let deps = deps.expect("an instance");
    let slug = PartnerSlug::parse("acme").expect("slug");
    services::partners::add_partner(&deps, &common::bench_actor(), &slug, "Acme")
        .await
        .expect("partner");
    let token = services::partners::issue_partner_token(&deps, &common::bench_actor(), &slug)
        .await
        .expect("token");

    let per_second: Arc<Vec<(AtomicU64, AtomicU64)>> = Arc::new(
        (0..seconds)
            .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
            .collect(),
    );
    let client = reqwest::Client::new();
    let started = Instant::now();
    let end = Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|task| {
            let (client, token, counts) = (client.clone(), token.clone(), per_second.clone());
            let base = bases[task % bases.len()].clone();
            tokio::spawn(async move {
                while started.elapsed() < end {
                    let res = client
                        .get(format!("{base}/Users?count=1"))
                        .bearer_auth(&token)
                        .send()
                        .await
                        .expect("request");
                    let second = started.elapsed().as_secs() as usize;
                    let Some((accepted, refused)) = counts.get(second) else {
                        break;
                    };
                    match res.status().as_u16() {
                        200 => accepted.fetch_add(1, Ordering::Relaxed),
                        429 => refused.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected status {other}"),
                    };
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    println!(
        "{backend}: {instances} instance(s), scim_requests_per_second = {rate} (burst {rate}), \
         {CONCURRENCY} tasks"
    );
    println!("{:>6} {:>9} {:>9}", "second", "accepted", "refused");
    let mut after_burst = 0;
    for (i, (accepted, refused)) in per_second.iter().enumerate() {
        let (a, r) = (
            accepted.load(Ordering::Relaxed),
            refused.load(Ordering::Relaxed),
        );
        if i > 0 {
            after_burst += a;
        }
        println!("{i:>6} {a:>9} {r:>9}");
    }
    if seconds > 1 {
        println!(
            "accepted after the first second: {:.1}/s (configured {rate}/s)",
            after_burst as f64 / (seconds - 1) as f64
        );
    }
}
