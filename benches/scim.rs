//! SCIM benchmarks over loopback against the real application (see docs/performance.md).
//! `cargo bench --bench scim` prints a table and writes target/bench/scim.json. Set
//! GUESTBRIDGE_BENCH_POSTGRES_URL to run the PostgreSQL backend as well.

use std::sync::Arc;
use std::time::{Duration, Instant};

use guestbridge::clock::SystemClock;
use guestbridge::config::Settings;
use guestbridge::domain::PartnerSlug;
use guestbridge::services::{self, Actor};
use guestbridge::startup::Application;
use serde_json::{json, Value};

struct Figure {
    backend: &'static str,
    scenario: String,
    value: f64,
    unit: &'static str,
    target: Option<String>,
}

fn actor() -> Actor {
    Actor {
        label: "bench".into(),
        request_id: None,
    }
}

async fn start(database_url: &str) -> (String, services::Deps, String) {
    let env = [
        ("GUESTBRIDGE_DATABASE_URL", database_url),
        ("GUESTBRIDGE_LISTEN", "127.0.0.1:0"),
        ("GUESTBRIDGE_JOBS", "off"),
        (
            "GUESTBRIDGE_MAPPINGS",
            "/nonexistent/guestbridge-bench-mappings",
        ),
        ("GUESTBRIDGE_MAX_BODY_BYTES", "16777216"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = Settings::load(None, &env).expect("settings");
    let app = Application::build(settings.clone(), Arc::new(SystemClock))
        .await
        .expect("app");
    let base = format!("http://127.0.0.1:{}", app.port());
    let app_deps = app.deps();
    tokio::spawn(app.run_until_stopped());
    let deps = app_deps;
    let slug = PartnerSlug::parse("bench").expect("slug");
    services::partners::add_partner(&deps, &actor(), &slug, "Bench")
        .await
        .expect("partner");
    let token = services::partners::issue_partner_token(&deps, &actor(), &slug)
        .await
        .expect("token");
    (base, deps, token)
}

/// The 10,000-member group PATCH of the SCIM issue: add all, then remove all, in one request each.
async fn group_membership(backend: &'static str, database_url: &str, out: &mut Vec<Figure>) {
    const MEMBERS: usize = 10_000;
    let (base, deps, token) = start(database_url).await;
    let partner =
        services::partners::find_partner(&deps, &PartnerSlug::parse("bench").expect("slug"))
            .await
            .expect("partner");
    let mut ids = Vec::with_capacity(MEMBERS);
    for i in 0..MEMBERS {
        let u = services::users::create(
            &deps,
            &actor(),
            &partner,
            &json!({"userName": format!("member{i}@bench.example")}),
        )
        .await
        .expect("user");
        ids.push(u.row.id);
    }
    let client = reqwest::Client::new();
    let group: Value = client
        .post(format!("{base}/scim/v2/Groups"))
        .bearer_auth(&token)
        .json(&json!({"displayName": "Everyone"}))
        .send()
        .await
        .expect("create group")
        .json()
        .await
        .expect("json");
    let gid = group["id"].as_str().expect("id").to_string();
    let patch = |op: &str| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
            {"op": op, "path": "members", "value": ids.iter().map(|i| json!({"value": i})).collect::<Vec<_>>()}
        ]})
    };
    for (label, body) in [("add", patch("add")), ("remove", patch("remove"))] {
        let started = Instant::now();
        let res = client
            .patch(format!("{base}/scim/v2/Groups/{gid}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("patch");
        let elapsed = started.elapsed();
        assert_eq!(
            res.status().as_u16(),
            204,
            "{}",
            res.text().await.unwrap_or_default()
        );
        out.push(Figure {
            backend,
            scenario: format!("group PATCH {label} {MEMBERS} members"),
            value: elapsed.as_secs_f64() * 1000.0,
            unit: "ms",
            target: Some("< 1000 ms".into()),
        });
    }
    // Listing groups without members never reads memberships: time it with members present.
    client
        .patch(format!("{base}/scim/v2/Groups/{gid}"))
        .bearer_auth(&token)
        .json(&patch("add"))
        .send()
        .await
        .expect("patch");
    let rounds = 50;
    let started = Instant::now();
    for _ in 0..rounds {
        let res = client
            .get(format!("{base}/scim/v2/Groups?excludedAttributes=members"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("list");
        assert!(res.status().is_success());
    }
    out.push(Figure {
        backend,
        scenario: "GET /Groups?excludedAttributes=members (group of 10,000)".into(),
        value: started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds),
        unit: "ms/request",
        target: None,
    });
}

fn print(figures: &[Figure]) {
    println!(
        "{:<10} {:<60} {:>12} {:<12} target",
        "backend", "scenario", "value", "unit"
    );
    for f in figures {
        println!(
            "{:<10} {:<60} {:>12.1} {:<12} {}",
            f.backend,
            f.scenario,
            f.value,
            f.unit,
            f.target.as_deref().unwrap_or("")
        );
    }
    let json: Vec<Value> = figures
        .iter()
        .map(|f| json!({"backend": f.backend, "scenario": f.scenario, "value": f.value, "unit": f.unit, "target": f.target}))
        .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(
            dir.join("scim.json"),
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut figures = Vec::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        group_membership("sqlite", &sqlite, &mut figures).await;
        if let Ok(base) = std::env::var("GUESTBRIDGE_BENCH_POSTGRES_URL") {
            let schema = format!("gbbench_{}", uuid::Uuid::new_v4().simple());
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
                .await
                .expect("pg");
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut conn)
                .await
                .expect("schema");
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
            group_membership("postgres", &url, &mut figures).await;
            let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut conn)
                .await;
        }
        print(&figures);
        tokio::time::sleep(Duration::from_millis(10)).await;
    });
}
