//! The admin console's guests table over 100,000 guests (issue 19): searches, filters and
//! deep pages over real HTTP must answer in under 100 ms. `cargo bench --bench console`
//! (BENCH_GUESTS changes the population, BENCH_REQUESTS the requests per scenario;
//! GUESTBRIDGE_BENCH_POSTGRES_URL or GUESTBRIDGE_TEST_POSTGRES_URL adds PostgreSQL).
//! Prints p50/p99 per scenario and the query plans, and writes target/bench/console.json.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::roster::Rng;
use guestbridge::clock::SystemClock;
use guestbridge::config::Settings;
use serde_json::{json, Value};

const TARGET_MS: f64 = 100.0;
const GIVEN: &[&str] = &[
    "Ann", "Bob", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jana", "Kai", "Lea", "Max",
    "Nia", "Oto", "Pia", "Rui", "Sam", "Tea", "Uma", "Vic", "Wim", "Xia", "Yan", "Zoe",
];
const FAMILY: &[&str] = &[
    "Lee", "Berg", "Stone", "Oak", "Ray", "Moss", "Dunn", "Hale", "Ives", "Jansen", "Kovac",
    "Lind", "Meyer", "Novak", "Olsen", "Peters", "Quinn", "Rossi", "Smit", "Tan", "Ueda", "Visser",
    "Wong", "Young", "Zeller",
];
const STATES: &[(&str, u64)] = &[
    ("active", 60),
    ("invited", 20),
    ("pending_approval", 5),
    ("suspended:deactivated", 10),
    ("removed", 5),
];
const APPS: &[&str] = &["ehr-viewer", "shift-scheduling", "imaging-viewer"];

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let total: usize = common::env_or("BENCH_GUESTS", 100_000);
        let requests: usize = common::env_or("BENCH_REQUESTS", 200);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut figures = Vec::new();
        let sqlite = format!("sqlite://{}", dir.path().join("console.db").display());
        figures.extend(run("sqlite", &sqlite, total, requests).await);
        let pg = common::postgres_url().or_else(|| {
            std::env::var("GUESTBRIDGE_TEST_POSTGRES_URL")
                .ok()
                .filter(|s| !s.is_empty())
        });
        if let Some(base) = pg {
            let schema = common::PgSchema::create(&base, "gbbench_console").await;
            figures.extend(run("postgres", &schema.url, total, requests).await);
            schema.drop().await;
        }
        common::write_json(
            "console",
            &json!({"machine": common::machine(), "figures": figures}),
        );
    });
}

async fn run(backend: &str, url: &str, total: usize, requests: usize) -> Vec<Value> {
    let mut env = common::bench_env(url);
    env.insert("GUESTBRIDGE_LISTEN".into(), "127.0.0.1:0".into());
    env.insert("GUESTBRIDGE_JOBS".into(), "off".into());
    let settings = Settings::load(None, &env).expect("settings");
    let app = guestbridge::startup::Application::build(settings, Arc::new(SystemClock))
        .await
        .expect("app");
    let deps = app.deps();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());

    let seeding = Instant::now();
    seed(&deps.db, total).await;
    deps.db.analyze_after_bulk().await.expect("analyze");
    println!(
        "console[{backend}]: seeding {} guests took {:.1} s",
        common::thousands(total as u64),
        seeding.elapsed().as_secs_f64()
    );
    explain(&deps.db, backend).await;

    let token = guestbridge::services::partners::issue_admin_token(&deps, &common::bench_actor())
        .await
        .expect("admin token");
    let client = reqwest::Client::new();
    let mut rng = Rng::new(19);
    let mut figures = Vec::new();
    type Pick = Box<dyn FnMut(&mut Rng) -> String>;
    let scenarios: Vec<(&str, Pick)> = vec![
        (
            "search (2-4 letter prefix of a name)",
            Box::new(|rng: &mut Rng| {
                let names = if rng.chance(50) { GIVEN } else { FAMILY };
                let name = rng.pick(names);
                let len = 2 + rng.below(3) as usize;
                format!("/admin/guests?q={}", &name[..len.min(name.len())])
            }),
        ),
        (
            "filter (state, partner, app or sponsor)",
            Box::new(|rng: &mut Rng| match rng.below(4) {
                0 => format!("/admin/guests?state={}", rng.weighted(STATES)).replace(':', "%3A"),
                1 => "/admin/guests?partner=northside&state=invited".to_string(),
                2 => format!("/admin/guests?app={}", rng.pick(APPS)),
                _ => format!(
                    "/admin/guests?sponsor=sponsor{}%40hospital.example",
                    rng.below(20)
                ),
            }),
        ),
    ];
    for (name, mut pick) in scenarios {
        let mut times = Vec::with_capacity(requests);
        for _ in 0..requests {
            let path = pick(&mut rng);
            times.push(timed_get(&client, &address, &token, &path).await.0);
        }
        figures.push(report(backend, name, total, &mut times));
    }
    // Deep pages: follow "next" from the first page, and from a filtered first page.
    let mut times = Vec::with_capacity(requests);
    let mut path = "/admin/guests".to_string();
    for i in 0..requests {
        let (took, html) = timed_get(&client, &address, &token, &path).await;
        times.push(took);
        path = next_link(&html).unwrap_or_else(|| "/admin/guests".into());
        if i == requests / 2 {
            path = "/admin/guests?state=active&app=ehr-viewer".into();
        }
    }
    figures.push(report(
        backend,
        "page (next, 50 per page)",
        total,
        &mut times,
    ));
    let dashboard = Instant::now();
    timed_get(&client, &address, &token, "/admin/dashboard").await;
    println!(
        "console[{backend}]: dashboard over {} guests: {:.1} ms",
        common::thousands(total as u64),
        dashboard.elapsed().as_secs_f64() * 1000.0
    );
    deps.db.close().await;
    figures
}

async fn timed_get(
    client: &reqwest::Client,
    address: &str,
    token: &str,
    path: &str,
) -> (Duration, String) {
    let started = Instant::now();
    let res = client
        .get(format!("{address}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200, "{path}");
    let html = res.text().await.expect("body");
    (started.elapsed(), html)
}

fn next_link(html: &str) -> Option<String> {
    let marker = "id=\"next\" href=\"";
    let at = html.find(marker)? + marker.len();
    let href = &html[at..at + html[at..].find('"')?];
    Some(href.replace("&#x2f;", "/").replace("&amp;", "&"))
}

fn report(backend: &str, scenario: &str, total: usize, times: &mut [Duration]) -> Value {
    times.sort();
    let q = |p: f64| {
        let i = ((times.len() as f64 - 1.0) * p).round() as usize;
        times[i].as_secs_f64() * 1000.0
    };
    let (p50, p99) = (q(0.5), q(0.99));
    let verdict = if p99 < TARGET_MS { "MET" } else { "MISSED" };
    println!(
        "console[{backend}]: {scenario} over {} guests, {} requests: p50 {p50:.1} ms, p99 {p99:.1} ms ({verdict} < {TARGET_MS} ms)",
        common::thousands(total as u64),
        times.len()
    );
    json!({"backend": backend, "scenario": scenario, "guests": total, "requests": times.len(),
           "p50_ms": p50, "p99_ms": p99, "target_ms": TARGET_MS})
}

/// Print the plans of the table's statements, to check they are index ranges.
async fn explain(db: &guestbridge::store::Db, backend: &str) {
    let branch = |column: &str| {
        let key = if column == "g.user_name" {
            "lower(g.user_name)"
        } else {
            "(lower(g.user_name) || '')"
        };
        format!(
            "SELECT id FROM (SELECT g.id FROM guests g WHERE 1 = 1 AND (lower({column}) >= lower('ann') \
             AND lower({column}) < lower('ann') || 'z') ORDER BY {key}, g.id LIMIT 51) s"
        )
    };
    let search = format!(
        "SELECT g.id FROM guests g WHERE g.id IN ({} UNION {}1 UNION {}2) ORDER BY lower(g.user_name), g.id LIMIT 51",
        branch("g.user_name"),
        branch("g.display_name"),
        branch("g.email")
    );
    let page = "SELECT g.id FROM guests g WHERE 1 = 1 AND g.partner_id = 'p1'
        AND (lower(g.user_name), g.id) > ('m', 'x') ORDER BY lower(g.user_name), g.id LIMIT 51";
    let sponsor =
        "SELECT g.id FROM guests g WHERE 1 = 1 AND LOWER(g.sponsor) = 'sponsor3@hospital.example'
        ORDER BY lower(g.user_name), g.id LIMIT 51";
    for (name, sql) in [
        ("search", search.as_str()),
        ("page", page),
        ("sponsor", sponsor),
    ] {
        let text = if backend == "sqlite" {
            format!("EXPLAIN QUERY PLAN {sql}")
        } else {
            format!("EXPLAIN {sql}")
        };
        let rows = sqlx::query(&text)
            .fetch_all(db.pool())
            .await
            .expect("explain");
        println!("console[{backend}]: plan of {name}:");
        for row in rows {
            use sqlx::Row;
            let line: String = if backend == "sqlite" {
                row.try_get("detail").unwrap_or_default()
            } else {
                row.try_get(0).unwrap_or_default()
            };
            println!("    {line}");
        }
    }
}

/// Two partners and `total` guests with varied names, states, sponsors and one to three
/// grants each, written in multi-row statements (the population, not the write path, is
/// what this bench measures).
async fn seed(db: &guestbridge::store::Db, total: usize) {
    let now = chrono::Utc::now().timestamp_millis();
    sqlx::query(
        "INSERT INTO partners (id, slug, name, created_at) VALUES ('p1', 'st-mary', 'St Mary', 0), ('p2', 'northside', 'Northside', 0)",
    )
    .execute(db.pool())
    .await
    .expect("partners");
    let mut rng = Rng::new(7);
    let mut tx = db.begin_write().await.expect("tx");
    for start in (0..total).step_by(500) {
        let end = (start + 500).min(total);
        let mut guests = String::from(
            "INSERT INTO guests (id, partner_id, user_id, user_name, email, display_name, state, \
             approved, mfa_required, sponsor, access_until, invited_at, created_at, updated_at) VALUES ",
        );
        let mut grants = String::from(
            "INSERT INTO guest_grants (guest_id, app_id, role, rule_id, valid_from, valid_until) VALUES ",
        );
        for i in start..end {
            let given = rng.pick(GIVEN);
            let family = rng.pick(FAMILY);
            let partner = if rng.chance(60) { "p1" } else { "p2" };
            let state = rng.weighted(STATES);
            let user = format!("{}.{}{i}", given.to_lowercase(), family.to_lowercase());
            let until = now + (1 + rng.below(365) as i64) * 86_400_000;
            let sponsor = rng.below(20);
            if i > start {
                guests.push(',');
                grants.push(',');
            }
            guests.push_str(&format!(
                "('g{i:06}', '{partner}', 'u{i:06}', '{user}', '{user}@{partner}.example', '{given} {family}', \
                 '{state}', 1, 0, 'sponsor{sponsor}@hospital.example', {until}, {now}, {}, {now})",
                now - i as i64
            ));
            let n = 1 + rng.below(3) as usize;
            let grant_rows: Vec<String> = APPS[..n]
                .iter()
                .map(|app| format!("('g{i:06}', '{app}', 'reader', 'bench', {now}, {until})"))
                .collect();
            grants.push_str(&grant_rows.join(","));
        }
        sqlx::query(&guests)
            .execute(&mut *tx)
            .await
            .expect("guests");
        sqlx::query(&grants)
            .execute(&mut *tx)
            .await
            .expect("grants");
    }
    tx.commit().await.expect("commit");
}
