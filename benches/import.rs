//! CSV roster import benchmarks (issue #6). Writes a generated roster of one partner hospital
//! (standard columns, groups included) and measures, per backend:
//! - the bound: sqlx inserting the same rows into `scim_users` with prepared single-row
//!   INSERTs in transactions of 1,000 rows, no logic (the CSV is read and parsed the same way),
//!   on Guestbridge's write connection (`Db::begin_write`) and on one tuned as an import's is
//!   (wider page cache, in-memory statement journals); the target is judged against the
//!   faster of the two;
//! - the import: `services::import::run` in delta mode under the shipped rules (normalisation,
//!   uniqueness, leaf values, audit, rule evaluation, guests, grants, invitations, sync outbox),
//!   rows/s and the ratio to the bound (target ≥ 50 % on SQLite at 100,000 rows);
//! - a dry run of the same file on an empty database (target < 5 s at 100,000 rows) and a
//!   re-import of the same file (every row unchanged);
//! - with `BENCH_FULL=1` (or `BENCH_IMPORT_MILLION=1`), a 1,000,000-row file imported by the
//!   `guestbridge import` command in its own process, with that process's peak RSS
//!   (target < 150 MB).
//!
//! `BENCH_IMPORT_ROWS` changes the row count (default 100,000). PostgreSQL runs too when
//! GUESTBRIDGE_BENCH_POSTGRES_URL is set. Prints a table and writes target/bench/import.json.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::roster::Roster;
use common::{status_mib, thousands};
use guestbridge::domain::{Partner, PartnerSlug};
use guestbridge::import::ColumnMap;
use guestbridge::mapping::load_sources;
use guestbridge::services::import::{ImportMode, ImportOptions, ImportReport};
use guestbridge::services::{self, Deps};
use serde_json::{json, Value};

const PARTNER: (&str, &str) = ("st-mary", "St Mary Hospital");
const TARGET_RATIO: f64 = 0.50;
const TARGET_DRY_RUN_SECONDS: f64 = 5.0;
const TARGET_PEAK_MIB: f64 = 150.0;
/// Rows per transaction of the raw bound.
const BOUND_BATCH: usize = 1000;

const HEADER: [&str; 14] = [
    "userName",
    "externalId",
    "givenName",
    "familyName",
    "displayName",
    "email",
    "phone",
    "title",
    "department",
    "employeeNumber",
    "active",
    "accessEndDate",
    "sponsorEmail",
    "groups",
];

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_str().unwrap_or("")
}

/// Write `rows` people of the generated roster as a standard-column CSV file.
fn write_roster(path: &Path, rows: u64) -> u64 {
    let roster = Roster::new(common::env_or("BENCH_SEED", 42), PARTNER.0, PARTNER.1);
    let mut out = csv::Writer::from_path(path).expect("roster file");
    out.write_record(HEADER).expect("header");
    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    const GUEST: &str = "urn:guestbridge:params:scim:schemas:extension:guest:1.0:User";
    for i in 0..rows {
        let p = roster.person(i);
        let b = &p.body;
        let end = text(b, &[GUEST, "accessEndDate"]);
        out.write_record([
            p.user_name.as_str(),
            text(b, &["externalId"]),
            text(b, &["name", "givenName"]),
            text(b, &["name", "familyName"]),
            text(b, &["displayName"]),
            b["emails"][0]["value"].as_str().unwrap_or(""),
            b["phoneNumbers"][0]["value"].as_str().unwrap_or(""),
            text(b, &["title"]),
            text(b, &[ENT, "department"]),
            text(b, &[ENT, "employeeNumber"]),
            if b["active"] == Value::Bool(false) {
                "false"
            } else {
                "true"
            },
            end.get(..10).unwrap_or(end),
            text(b, &[GUEST, "sponsorEmail"]),
            &p.groups.join(";"),
        ])
        .expect("row");
    }
    out.flush().expect("flush");
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn shipped_rules() -> guestbridge::mapping::RuleSet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("mappings folder") {
        let path = entry.expect("mappings entry").path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.ends_with(".toml") && !name.starts_with('.') && !name.starts_with("columns-") {
            files.push((name, std::fs::read_to_string(&path).expect("rule file")));
        }
    }
    load_sources(&files).unwrap_or_else(|errors| panic!("shipped rules: {errors:?}"))
}

/// A migrated, empty database with the partner registered.
async fn fresh(database_url: &str) -> (Deps, Partner) {
    let settings = guestbridge::config::Settings::load(None, &common::bench_env(database_url))
        .expect("settings");
    let db = guestbridge::store::Db::connect(&settings.database)
        .await
        .expect("database");
    db.migrate().await.expect("migrations");
    let deps = Deps::new(
        db,
        Arc::new(guestbridge::clock::SystemClock),
        shipped_rules(),
        guestbridge::services::portal_env::PortalEnv::from_settings(&settings).expect("portal"),
    );
    let partner = services::partners::add_partner(
        &deps,
        &common::bench_actor(),
        &PartnerSlug::parse(PARTNER.0).expect("slug"),
        PARTNER.1,
    )
    .await
    .expect("partner");
    (deps, partner)
}

/// The raw bound: the same rows, parsed from the same file, inserted with no logic, on
/// Guestbridge's write connection (`Db::begin_write`), or (`tuned`) on a connection set up
/// as an import's is (`Db::begin_bulk_write`: wider page cache, in-memory statement journals).
async fn raw_insert(deps: &Deps, partner: &Partner, file: &Path, tuned: bool) -> u64 {
    let mut reader = csv::Reader::from_path(file).expect("roster");
    let begin = || async {
        if tuned {
            deps.db.begin_bulk_write().await.expect("begin")
        } else {
            deps.db.begin_write().await.expect("begin")
        }
    };
    let mut tx = begin().await;
    let mut in_tx = 0;
    let mut rows = 0u64;
    let now = chrono::Utc::now().timestamp_millis();
    for record in reader.records() {
        let r = record.expect("record");
        let doc = json!({
            "userName": &r[0], "externalId": &r[1],
            "name": {"givenName": &r[2], "familyName": &r[3]},
            "displayName": &r[4], "emails": [{"value": &r[5], "primary": true}],
        })
        .to_string();
        sqlx::query(
            "INSERT INTO scim_users (id, partner_id, user_name, user_name_lower, external_id,
                active, display_name, primary_email_lower, doc, version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&partner.id)
        .bind(&r[0])
        .bind(r[0].to_lowercase())
        .bind(&r[1])
        .bind(i64::from(&r[10] == "true"))
        .bind(&r[4])
        .bind(r[5].to_lowercase())
        .bind(doc)
        .bind(1i64)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("insert");
        rows += 1;
        in_tx += 1;
        if in_tx == BOUND_BATCH {
            tx.commit().await.expect("commit");
            tx = begin().await;
            in_tx = 0;
        }
    }
    tx.commit().await.expect("commit");
    rows
}

async fn import(deps: &Deps, partner: &Partner, file: &Path, dry_run: bool) -> ImportReport {
    let opts = ImportOptions {
        mode: ImportMode::Delta,
        dry_run,
        force: false,
        max_deactivate_share: 0.10,
        delimiter: None,
        file_name: "roster.csv".into(),
        id: None,
    };
    let input =
        std::io::BufReader::with_capacity(64 * 1024, std::fs::File::open(file).expect("roster"));
    services::import::run(
        deps,
        &common::bench_actor(),
        partner,
        input,
        &ColumnMap::default(),
        &opts,
        &|_, _| {},
    )
    .await
    .expect("import")
}

struct Figures {
    backend: &'static str,
    rows: u64,
    bound_rows_per_s: f64,
    tuned_bound_rows_per_s: f64,
    import_rows_per_s: f64,
    import_peak_delta_mib: f64,
    dry_run_seconds: f64,
    reimport_seconds: f64,
    created: u64,
    reimport_unchanged: u64,
}

async fn scenario(backend: &'static str, urls: [String; 4], file: &Path, rows: u64) -> Figures {
    let [bound_url, tuned_url, import_url, dry_url] = urls;
    let mut bounds = Vec::new();
    for (url, tuned) in [(&bound_url, false), (&tuned_url, true)] {
        eprintln!("import[{backend}]: raw insert bound (tuned connection: {tuned})");
        let (deps, partner) = fresh(url).await;
        let started = Instant::now();
        let inserted = raw_insert(&deps, &partner, file, tuned).await;
        bounds.push(inserted as f64 / started.elapsed().as_secs_f64());
        deps.db.close().await;
    }

    eprintln!("import[{backend}]: dry run on an empty database");
    let (deps, partner) = fresh(&dry_url).await;
    let started = Instant::now();
    let report = import(&deps, &partner, file, true).await;
    let dry_run_seconds = started.elapsed().as_secs_f64();
    assert_eq!(report.created, rows, "dry run counts every row as created");
    deps.db.close().await;

    eprintln!("import[{backend}]: import");
    let (deps, partner) = fresh(&import_url).await;
    let rss_before = status_mib("self", "VmRSS").unwrap_or_default();
    common::reset_peak("self");
    let profile = common::Profile::start(
        &std::process::id().to_string(),
        &format!("import-{backend}-{rows}"),
    );
    let started = Instant::now();
    let report = import(&deps, &partner, file, false).await;
    let seconds = started.elapsed().as_secs_f64();
    profile.stop();
    let peak = status_mib("self", "VmHWM").unwrap_or_default();
    assert!(
        report.errors.is_empty(),
        "errors: {:?}",
        &report.errors[..3.min(report.errors.len())]
    );

    eprintln!("import[{backend}]: re-import");
    let started = Instant::now();
    let again = import(&deps, &partner, file, false).await;
    let reimport_seconds = started.elapsed().as_secs_f64();
    deps.db.close().await;
    Figures {
        backend,
        rows,
        bound_rows_per_s: bounds[0],
        tuned_bound_rows_per_s: bounds[1],
        import_rows_per_s: rows as f64 / seconds,
        import_peak_delta_mib: (peak - rss_before).max(0.0),
        dry_run_seconds,
        reimport_seconds,
        created: report.created,
        reimport_unchanged: again.unchanged,
    }
}

/// Import `file` with the `guestbridge import` command in its own process; seconds and the
/// process's peak RSS in MiB (read from /proc while it runs; VmHWM only grows).
fn import_in_child(database_url: &str, file: &Path) -> (f64, f64, String) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .args([
            "import",
            &file.display().to_string(),
            "--partner",
            PARTNER.0,
        ])
        .envs(common::bench_env(database_url))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("guestbridge import");
    let pid = child.id().to_string();
    let mut peak = 0.0f64;
    loop {
        if let Some(hwm) = status_mib(&pid, "VmHWM") {
            peak = peak.max(hwm);
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seconds = started.elapsed().as_secs_f64();
    let out = child.wait_with_output().expect("output");
    let summary = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    (seconds, peak, summary)
}

fn main() {
    let rows: u64 = common::env_or("BENCH_IMPORT_ROWS", 100_000);
    let million = common::full() || std::env::var("BENCH_IMPORT_MILLION").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("roster.csv");
    let bytes = write_roster(&file, rows);
    eprintln!(
        "import: roster of {} rows, {} bytes",
        thousands(rows),
        thousands(bytes)
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sqlite = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let mut results = runtime.block_on(async {
        let mut results = vec![
            scenario(
                "sqlite",
                [
                    sqlite("bound.db"),
                    sqlite("tuned.db"),
                    sqlite("import.db"),
                    sqlite("dry.db"),
                ],
                &file,
                rows,
            )
            .await,
        ];
        if let Some(base) = common::postgres_url() {
            let schemas = [
                common::PgSchema::create(&base, "gbbench_imp").await,
                common::PgSchema::create(&base, "gbbench_imp").await,
                common::PgSchema::create(&base, "gbbench_imp").await,
                common::PgSchema::create(&base, "gbbench_imp").await,
            ];
            let urls = [
                schemas[0].url.clone(),
                schemas[1].url.clone(),
                schemas[2].url.clone(),
                schemas[3].url.clone(),
            ];
            results.push(scenario("postgres", urls, &file, rows).await);
            for s in schemas {
                s.drop().await;
            }
        }
        results
    });
    let mut million_figures = None;
    if million {
        let big = dir.path().join("roster-1m.csv");
        let big_rows = 1_000_000;
        write_roster(&big, big_rows);
        let url = sqlite("million.db");
        runtime.block_on(async {
            let (deps, _) = fresh(&url).await;
            deps.db.close().await;
        });
        eprintln!("import: 1,000,000 rows through `guestbridge import`");
        let (seconds, peak, summary) = import_in_child(&url, &big);
        million_figures = Some((big_rows, seconds, peak, summary));
    }

    println!(
        "\nimport: {} rows of generated roster ({} bytes), delta mode, shipped rules",
        thousands(rows),
        thousands(bytes)
    );
    println!(
        "{:<8} {:>12} {:>12} {:>13} {:>7} {:>7} {:>10} {:>10} {:>10}  targets (ratio to the tuned bound)",
        "backend",
        "bound rows/s",
        "tuned rows/s",
        "import rows/s",
        "ratio",
        "tuned",
        "dry-run s",
        "re-import s",
        "peak +MiB"
    );
    let mut out = Vec::new();
    for r in &mut results {
        let plain_ratio = r.import_rows_per_s / r.bound_rows_per_s;
        // Judged against the bound on a connection tuned as the import's is, the stricter one.
        let ratio = r.import_rows_per_s / r.tuned_bound_rows_per_s.max(r.bound_rows_per_s);
        let sqlite_at_scale = r.backend == "sqlite" && r.rows >= 100_000;
        let targets = if sqlite_at_scale {
            format!(
                "ratio {} ≥ {:.0} %, dry run {} < {TARGET_DRY_RUN_SECONDS} s",
                if ratio >= TARGET_RATIO {
                    "MET"
                } else {
                    "MISSED"
                },
                TARGET_RATIO * 100.0,
                if r.dry_run_seconds < TARGET_DRY_RUN_SECONDS {
                    "MET"
                } else {
                    "MISSED"
                },
            )
        } else {
            String::new()
        };
        println!(
            "{:<8} {:>12.0} {:>12.0} {:>13.0} {:>6.0}% {:>6.0}% {:>10.2} {:>10.2} {:>10.1}  {}",
            r.backend,
            r.bound_rows_per_s,
            r.tuned_bound_rows_per_s,
            r.import_rows_per_s,
            plain_ratio * 100.0,
            ratio * 100.0,
            r.dry_run_seconds,
            r.reimport_seconds,
            r.import_peak_delta_mib,
            targets
        );
        assert_eq!(r.created, r.rows, "every row created");
        assert_eq!(
            r.reimport_unchanged, r.rows,
            "re-import finds every row unchanged"
        );
        out.push(json!({
            "backend": r.backend,
            "rows": r.rows,
            "bound_rows_per_s": r.bound_rows_per_s,
            "tuned_bound_rows_per_s": r.tuned_bound_rows_per_s,
            "import_rows_per_s": r.import_rows_per_s,
            "ratio_to_bound": plain_ratio,
            "ratio": ratio,
            "dry_run_seconds": r.dry_run_seconds,
            "reimport_seconds": r.reimport_seconds,
            "import_peak_delta_mib": r.import_peak_delta_mib,
            "targets": sqlite_at_scale.then(|| json!({
                "ratio": {"text": ">= 50 %", "met": ratio >= TARGET_RATIO},
                "dry_run": {"text": "< 5 s", "met": r.dry_run_seconds < TARGET_DRY_RUN_SECONDS},
            })),
        }));
    }
    let million_json = million_figures.map(|(rows, seconds, peak, summary)| {
        println!(
            "\nimport: {} rows by `guestbridge import`: {:.1} s ({:.0} rows/s), peak RSS {:.1} MiB ({} < {TARGET_PEAK_MIB} MB); {}",
            thousands(rows),
            seconds,
            rows as f64 / seconds,
            peak,
            if peak * 1.048_576 < TARGET_PEAK_MIB { "MET" } else { "MISSED" },
            summary
        );
        json!({"rows": rows, "seconds": seconds, "peak_rss_mib": peak, "summary": summary,
               "target": {"text": "< 150 MB", "met": peak * 1.048_576 < TARGET_PEAK_MIB}})
    });
    let json = json!({
        "machine": common::machine(),
        "rows": rows,
        "results": out,
        "million": million_json,
    });
    if let Some(path) = common::write_json("import", &json) {
        println!("\nwritten: {}", path.display());
    }
}
