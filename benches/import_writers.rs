//! An import next to live SCIM writers (issue #18), SQLite: a server on a database file, and
//! an import of `BENCH_IMPORT_ROWS` rows (default 200,000) into the same file by services of
//! their own (as `guestbridge import` does, in its own process: the two share only SQLite's
//! lock and the import lock), while `BENCH_CLIENTS` (default 16) clients each create a person
//! and PATCH it, in turn, through SCIM over loopback. Prints the import's duration and its
//! longest writer holds, and the SCIM writes done and failed and their p50/p99 during the
//! import (targets: p99 < 250 ms, 0 failed). Writes target/bench/import_writers.json.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use guestbridge::domain::PartnerSlug;
use guestbridge::import::ColumnMap;
use guestbridge::services::import::{ImportMode, ImportOptions};
use guestbridge::services::{self, Deps};
use serde_json::json;

const TARGET_P99_MS: f64 = 250.0;

fn write_roster(path: &Path, rows: u64) {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("roster"));
    writeln!(out, "userName,givenName,familyName,email,department,title").unwrap();
    let departments = ["Cardiology", "Radiology", "Oncology", "Pediatrics"];
    for i in 0..rows {
        writeln!(
            out,
            "person{i:07}@st-mary.example,Given{i},Family{i},person{i:07}@mail.example,{},Nurse",
            departments[i as usize % departments.len()]
        )
        .unwrap();
    }
    out.flush().unwrap();
}

fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at] as f64 / 1e3
}

#[tokio::main]
async fn main() {
    let rows: u64 = common::env_or("BENCH_IMPORT_ROWS", 200_000);
    let clients: usize = common::env_or("BENCH_CLIENTS", 16);
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let settings =
        guestbridge::config::Settings::load(None, &common::bench_env(&url)).expect("settings");

    // The server and its partner token.
    let app = guestbridge::startup::Application::build(
        settings.clone(),
        Arc::new(guestbridge::clock::SystemClock),
    )
    .await
    .expect("server");
    let base = format!("http://127.0.0.1:{}/scim/v2", app.port());
    let _server = tokio::spawn(app.run_until_stopped());

    // The importer's own services, as the CLI builds them.
    let db = guestbridge::store::Db::connect(&settings.database)
        .await
        .expect("database");
    let rules = guestbridge::mapping::load_dir(&settings.mappings_dir).expect("rules");
    let deps = Deps::new(
        db,
        Arc::new(guestbridge::clock::SystemClock),
        rules,
        guestbridge::services::portal_env::PortalEnv::from_settings(&settings).expect("portal"),
    );
    let slug = PartnerSlug::parse("st-mary").expect("slug");
    let partner = services::partners::add_partner(&deps, &common::bench_actor(), &slug, "St Mary")
        .await
        .expect("partner");
    let token = services::partners::issue_partner_token(&deps, &common::bench_actor(), &slug)
        .await
        .expect("token");
    let file = dir.path().join("roster.csv");
    write_roster(&file, rows);

    let client = common::load::client(clients);
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<u32>>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        let (stop, failed, first_error, latencies) = (
            stop.clone(),
            failed.clone(),
            first_error.clone(),
            latencies.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let body = json!({"userName": format!("live{c}-{i}@st-mary.example"),
                                  "name": {"givenName": "Live"}});
                let res = client
                    .post(format!("{base}/Users"))
                    .bearer_auth(&token)
                    .header("Content-Type", "application/scim+json")
                    .body(body.to_string())
                    .send()
                    .await;
                let id = match res {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let v: serde_json::Value = r.json().await.unwrap_or_default();
                        mine.push(started.elapsed().as_micros() as u32);
                        v["id"].as_str().map(str::to_string)
                    }
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let text = match other {
                            Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                            Err(e) => e.to_string(),
                        };
                        first_error.lock().unwrap().get_or_insert(text);
                        None
                    }
                };
                if let Some(id) = id {
                    let started = Instant::now();
                    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "title", "value": format!("T{i}")}]});
                    let res = client
                        .patch(format!("{base}/Users/{id}"))
                        .bearer_auth(&token)
                        .header("Content-Type", "application/scim+json")
                        .body(patch.to_string())
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status().as_u16() == 200 => {
                            let _ = r.bytes().await;
                            mine.push(started.elapsed().as_micros() as u32);
                        }
                        other => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            let text = match other {
                                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                                Err(e) => e.to_string(),
                            };
                            first_error.lock().unwrap().get_or_insert(text);
                        }
                    }
                }
                i += 1;
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }

    let opts = ImportOptions {
        mode: ImportMode::Delta,
        dry_run: false,
        force: false,
        max_deactivate_share: 0.10,
        delimiter: None,
        file_name: "roster.csv".into(),
        id: None,
    };
    let input = std::io::BufReader::with_capacity(64 * 1024, std::fs::File::open(&file).unwrap());
    let started = Instant::now();
    // `server` (the default) is what `guestbridge import --server` does: the file goes to
    // the server's admin API and the server's writer queue orders its chunks; `process`
    // imports with services of the bench's own, as a CLI import without --server does.
    let via = std::env::var("BENCH_IMPORT_VIA").unwrap_or_else(|_| "server".into());
    let (summary, holds) = if via == "process" {
        let report = services::import::run(
            &deps,
            &common::bench_actor(),
            &partner,
            input,
            &ColumnMap::default(),
            &opts,
            &|_, _| {},
        )
        .await
        .expect("import");
        (report.summary(), Some(report.writer_holds))
    } else {
        drop(input);
        let admin = services::partners::issue_admin_token(&deps, &common::bench_actor())
            .await
            .expect("admin token");
        let server = guestbridge::cli::import_submit::Server {
            url: base.trim_end_matches("/scim/v2").to_string(),
            token: admin,
        };
        let what = guestbridge::cli::import_submit::Submission {
            file: &file,
            partner: "st-mary",
            mode: "delta",
            dry_run: false,
            force: false,
        };
        let outcome = guestbridge::cli::import_submit::submit(&server, &what, &|_| {})
            .await
            .expect("import through the server");
        // The server logs its longest holds ("import finished; longest writer holds").
        (outcome.summary(), None)
    };
    let _ = &partner;
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client");
    }
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let (p50, p99) = (quantile(&lat, 0.50), quantile(&lat, 0.99));
    let failed = failed.load(Ordering::Relaxed);
    println!("import of {rows} rows next to {clients} SCIM writers (SQLite), via {via}");
    println!(
        "  import: {seconds:.1} s ({summary}), {:.0} rows/s",
        rows as f64 / seconds
    );
    if let Some(holds) = holds {
        println!(
            "  longest writer hold: staging chunk {:.1} ms, publish chunk {:.1} ms ({} chunks), final step {:.1} ms",
            holds.stage_chunk_ms, holds.publish_chunk_ms, holds.chunks, holds.finish_ms
        );
    } else {
        println!("  longest writer holds: in the server's log (RUST_LOG=info)");
    }
    let holds = holds.unwrap_or_default();
    println!(
        "  SCIM writes during the import: {} ok, {failed} failed; p50 {p50:.1} ms, p99 {p99:.1} ms (target < {TARGET_P99_MS} ms){}",
        lat.len(),
        if p99 < TARGET_P99_MS && failed == 0 { "" } else { "  MISSED" }
    );
    if let Some(e) = first_error.lock().unwrap().as_ref() {
        println!("  first failure: {e}");
    }
    common::write_json(
        "import_writers",
        &json!({
            "rows": rows, "clients": clients, "via": via, "import_seconds": seconds,
            "stage_chunk_ms": holds.stage_chunk_ms, "publish_chunk_ms": holds.publish_chunk_ms,
            "finish_ms": holds.finish_ms, "scim_ok": lat.len(), "scim_failed": failed,
            "p50_ms": p50, "p99_ms": p99, "machine": common::machine(),
        }),
    );
}
