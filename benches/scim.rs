//! SCIM benchmarks over loopback against the real server, measured against bounds taken in the
//! same run (see docs/performance.md). `cargo bench --bench scim` starts the built
//! `guestbridge serve` binary as a separate process (with the shipped mapping rules, so every
//! create also evaluates rules and writes guests, grants and audit), seeds it with a generated
//! roster, and drives it with a closed-loop load generator of 32 concurrent tasks:
//! POST /Users, GET /Users/{id}, GET with a `userName eq` filter, PATCH replace, and a list page
//! of 100, at 10,000 users (and 100,000 with `BENCH_FULL=1`), plus the 10,000-member group
//! PATCH. Bounds: a bare actix-web handler under the same load generator, and sqlx's
//! single-row INSERT and SELECT-by-key rates on the same backend. It prints a table and writes
//! `target/bench/scim.json`. GUESTBRIDGE_BENCH_POSTGRES_URL adds the PostgreSQL backend.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::load::{self, expect_status, Load, Outcome};
use common::roster::{Rng, Roster};
use common::{status_mib, thousands, Profile};
use serde_json::{json, Value};

const CONCURRENCY: usize = 32;
const PARTNER: &str = "st-mary";
const ORGANIZATION: &str = "St Mary Hospital";
const GROUP_MEMBERS: usize = 10_000;
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// One load-generator measurement, with the bounds it is compared against.
struct Row {
    backend: &'static str,
    users: u64,
    scenario: &'static str,
    outcome: Outcome,
    /// Peak RSS of the server process during the scenario, MiB.
    peak_mib: Option<f64>,
    /// The bound's name and rate.
    bound: Option<(&'static str, f64)>,
    /// The rate of the bare actix-web handler measured on this backend's run.
    bare_rate: Option<f64>,
    target: Option<Target>,
}

/// A target of issue 9 and whether this run met it.
struct Target {
    text: String,
    met: bool,
}

/// A one-off figure (a single timed request, a memory reading).
struct Figure {
    backend: &'static str,
    users: u64,
    scenario: String,
    value: f64,
    unit: &'static str,
    target: Option<Target>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    figures: Vec<Figure>,
}

/// The server binary: cargo builds `guestbridge` with the bench; `BENCH_SERVER_BIN` runs
/// another build instead (a build with debug line tables for profiling, say).
fn server_binary() -> PathBuf {
    std::env::var_os("BENCH_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_guestbridge")))
}

/// A `guestbridge serve` process of our own.
struct Server {
    child: Child,
    pid: String,
    base: String,
    log: PathBuf,
}

impl Server {
    /// The last error lines of the server's log, to say why requests failed.
    fn log_errors(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
        errors[errors.len().saturating_sub(5)..].join("\n")
    }

    fn rss_mib(&self) -> Option<f64> {
        status_mib(&self.pid, "VmRSS")
    }

    fn peak_mib(&self) -> Option<f64> {
        status_mib(&self.pid, "VmHWM")
    }

    fn reset_peak(&self) {
        common::reset_peak(&self.pid);
    }

    /// SIGTERM (graceful drain), then wait for the process to exit.
    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    /// A bench that fails midway (a panic) must not leave its server running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The environment of every `guestbridge` command of one backend's run.
fn server_env(database_url: &str, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("GUESTBRIDGE_DATABASE_URL", database_url.to_string()),
        ("GUESTBRIDGE_LISTEN", format!("127.0.0.1:{port}")),
        ("GUESTBRIDGE_JOBS", "off".to_string()),
        (
            "GUESTBRIDGE_MAPPINGS",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("mappings")
                .display()
                .to_string(),
        ),
        ("GUESTBRIDGE_MAX_BODY_BYTES", "16777216".to_string()),
    ]
}

/// Run a `guestbridge` command in `dir`, so that anything it keeps beside itself (the
/// sealing key file, say) stays in the bench's scratch folder.
fn guestbridge(dir: &Path, env: &[(&'static str, String)], args: &[&str]) -> String {
    let out = Command::new(server_binary())
        .current_dir(dir)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run guestbridge");
    assert!(
        out.status.success(),
        "guestbridge {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Migrate, add the partner and issue its token (first start only), then serve.
async fn start_server(database_url: &str, log: &Path, first: bool) -> (Server, Option<String>) {
    let port = free_port();
    let env = server_env(database_url, port);
    let dir = log.parent().unwrap_or(Path::new("."));
    let token = if first {
        guestbridge(dir, &env, &["migrate"]);
        guestbridge(
            dir,
            &env,
            &["partner", "add", PARTNER, "--name", ORGANIZATION],
        );
        let out = guestbridge(dir, &env, &["token", "issue", PARTNER]);
        Some(out.lines().last().unwrap_or_default().trim().to_string())
    } else {
        None
    };
    let log_path = log;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("server log");
    let child = Command::new(server_binary())
        .current_dir(dir)
        .arg("serve")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        // As deploy/guestbridge.service runs it (two malloc arenas), unless told otherwise.
        .env(
            "MALLOC_ARENA_MAX",
            std::env::var("MALLOC_ARENA_MAX").unwrap_or_else(|_| "2".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn guestbridge serve");
    let server = Server {
        pid: child.id().to_string(),
        child,
        base: format!("http://127.0.0.1:{port}"),
        log: log_path.to_path_buf(),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(res) = client.get(format!("{}/healthz", server.base)).send().await {
            if res.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "guestbridge serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (server, token)
}

/// The bare bound: an actix-web server with one handler answering a fixed JSON body of the
/// size of a user, two workers like the real server, in its own thread.
fn start_bare(body: String) -> (u16, actix_web::dev::ServerHandle) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let body = web::Bytes::from(body);
            let server = HttpServer::new(move || {
                let body = body.clone();
                App::new().route(
                    "/bare",
                    web::get().to(move || {
                        let body = body.clone();
                        async move {
                            HttpResponse::Ok()
                                .content_type("application/scim+json")
                                .body(body)
                        }
                    }),
                )
            })
            .workers(2)
            .bind("127.0.0.1:0")
            .expect("bind bare server");
            let port = server.addrs()[0].port();
            let running = server.run();
            let _ = tx.send((port, running.handle()));
            let _ = running.await;
        });
    });
    rx.recv().expect("bare server started")
}

async fn bare_bound(plan: &Plan, body: String) -> Outcome {
    let (port, handle) = start_bare(body);
    let client = load::client(CONCURRENCY);
    let url = format!("http://127.0.0.1:{port}/bare");
    let outcome = load::run(&plan.load(), 0, move |_| {
        expect_status(client.get(&url), 200)
    })
    .await;
    handle.stop(true).await;
    outcome
}

/// sqlx's raw single-row rates on the same backend, with the application's own pool
/// settings and connection set-up: autocommit INSERTs of a row the size of a user into a
/// scratch table with a primary key and a unique index, then SELECT by primary key.
/// INSERTs run both from one task and from 32 (over the pool); the better is the bound.
async fn sqlx_bounds(plan: &Plan, database_url: &str, roster: &Roster) -> [Outcome; 3] {
    let env: BTreeMap<String, String> = [("GUESTBRIDGE_DATABASE_URL", database_url)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let settings = guestbridge::config::Settings::load(None, &env).expect("settings");
    let db = guestbridge::store::Db::connect(&settings.database)
        .await
        .expect("scratch database");
    let pool = db.pool().clone();
    sqlx::query(
        "CREATE TABLE bench_raw (id TEXT PRIMARY KEY, partner_id TEXT NOT NULL,
            user_name TEXT NOT NULL, doc TEXT NOT NULL, created_at BIGINT NOT NULL)",
    )
    .execute(&pool)
    .await
    .expect("scratch table");
    sqlx::query("CREATE UNIQUE INDEX bench_raw_user_name ON bench_raw (partner_id, user_name)")
        .execute(&pool)
        .await
        .expect("scratch index");
    let doc = Arc::new(roster.person(0).body.to_string());
    let insert = |first: u64, load: Load| {
        let pool = pool.clone();
        let doc = doc.clone();
        async move {
            load::run(&load, first, move |i| {
                let pool = pool.clone();
                let doc = doc.clone();
                async move {
                    sqlx::query(
                        "INSERT INTO bench_raw (id, partner_id, user_name, doc, created_at)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(format!("{i:016x}-raw"))
                    .bind("partner")
                    .bind(format!("user{i}@raw.example"))
                    .bind(doc.as_str())
                    .bind(i as i64)
                    .execute(&pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
                }
            })
            .await
        }
    };
    let sequential = insert(
        0,
        Load {
            concurrency: 1,
            ..plan.load()
        },
    )
    .await;
    let concurrent = insert(sequential.issued, plan.load()).await;
    let rows = concurrent.issued;
    let seed = plan.seed;
    let select = load::run(&plan.load(), 0, move |i| {
        let pool = pool.clone();
        async move {
            let key = Rng::new(seed ^ i).below(rows);
            let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM bench_raw WHERE id = $1")
                .bind(format!("{key:016x}-raw"))
                .fetch_optional(&pool)
                .await
                .map_err(|e| e.to_string())?;
            row.map(|_| ()).ok_or_else(|| format!("row {key} missing"))
        }
    })
    .await;
    let _ = sqlx::query("DROP TABLE bench_raw").execute(db.pool()).await;
    db.close().await;
    [sequential, concurrent, select]
}

/// What this run covers.
struct Plan {
    seed: u64,
    levels: Vec<u64>,
    warm_up: Duration,
    duration: Duration,
}

impl Plan {
    fn from_env() -> Plan {
        let default_levels = if common::full() {
            "10000,100000"
        } else {
            "10000"
        };
        let levels = std::env::var("BENCH_USERS")
            .unwrap_or_else(|_| default_levels.to_string())
            .split(',')
            .filter_map(|s| s.trim().replace('_', "").parse().ok())
            .collect();
        Plan {
            seed: common::env_or("BENCH_SEED", 42),
            levels,
            warm_up: Duration::from_secs_f64(common::env_or("BENCH_WARM_UP_SECONDS", 1.0)),
            duration: Duration::from_secs_f64(common::env_or("BENCH_SECONDS", 5.0)),
        }
    }

    fn load(&self) -> Load {
        Load {
            concurrency: CONCURRENCY,
            warm_up: self.warm_up,
            duration: self.duration,
            max_requests: u64::MAX,
        }
    }
}

/// The state of one backend's server while levels grow.
struct Run {
    backend: &'static str,
    server: Server,
    client: reqwest::Client,
    token: Arc<str>,
    roster: Arc<Roster>,
    /// Ids of every user created so far.
    ids: Arc<Mutex<Vec<String>>>,
    /// The next roster index to create.
    next: u64,
}

impl Run {
    fn users_url(&self) -> String {
        format!("{}/scim/v2/Users", self.server.base)
    }

    /// POST roster people from `self.next` on, under `load`, recording their ids.
    async fn post_users(&mut self, load: Load) -> Outcome {
        let client = self.client.clone();
        let url = self.users_url();
        let token = self.token.clone();
        let roster = self.roster.clone();
        let ids = self.ids.clone();
        let outcome = load::run(&load, self.next, move |i| {
            let request = client
                .post(&url)
                .bearer_auth(&*token)
                .json(&roster.person(i).body);
            let ids = ids.clone();
            async move {
                let res = request.send().await.map_err(|e| format!("send: {e}"))?;
                let status = res.status().as_u16();
                let body: Value = res.json().await.map_err(|e| format!("body: {e}"))?;
                if status != 201 {
                    return Err(format!("status {status}: {body}"));
                }
                let id = body["id"].as_str().ok_or("no id")?.to_string();
                ids.lock().map_err(|e| e.to_string())?.push(id);
                Ok(())
            }
        })
        .await;
        self.next = outcome.issued;
        outcome
    }

    fn profile(&self, label: &str) -> Profile {
        Profile::start(
            &self.server.pid,
            &format!("{}-{}-{label}", self.backend, self.user_count()),
        )
    }

    fn user_count(&self) -> u64 {
        self.ids.lock().map(|ids| ids.len() as u64).unwrap_or(0)
    }

    /// Grow the population to `users` with concurrent POSTs.
    async fn seed_to(&mut self, users: u64) -> Option<Outcome> {
        let have = self.user_count();
        if have >= users {
            return None;
        }
        eprintln!(
            "scim[{}]: seeding {} users over HTTP ({} → {})",
            self.backend,
            thousands(users - have),
            thousands(have),
            thousands(users)
        );
        let outcome = self
            .post_users(Load {
                concurrency: CONCURRENCY,
                warm_up: Duration::ZERO,
                duration: Duration::from_secs(3600),
                max_requests: users - have,
            })
            .await;
        assert_eq!(
            outcome.errors,
            0,
            "seeding failed: {:?}\nserver log:\n{}",
            outcome.first_error,
            self.server.log_errors()
        );
        Some(outcome)
    }

    fn ids_snapshot(&self) -> Arc<Vec<String>> {
        Arc::new(self.ids.lock().map(|ids| ids.clone()).unwrap_or_default())
    }

    /// One load-generator scenario against the server, with the server's peak RSS.
    async fn scenario<F, Fut>(&self, label: &str, load: Load, op: F) -> (Outcome, Option<f64>)
    where
        F: Fn(u64) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        self.server.reset_peak();
        let profile = self.profile(label);
        let outcome = load::run(&load, 0, op).await;
        profile.stop();
        if outcome.errors > 0 {
            eprintln!(
                "scim[{}]: {} errors, first: {}\nserver log:\n{}",
                self.backend,
                outcome.errors,
                outcome.first_error.as_deref().unwrap_or(""),
                self.server.log_errors()
            );
        }
        (outcome, self.server.peak_mib())
    }
}

struct Bounds {
    bare: f64,
    insert: f64,
    select: f64,
}

async fn level(run: &mut Run, plan: &Plan, bounds: &Bounds, report: &mut Report) {
    let users = run.user_count();
    let ids = run.ids_snapshot();
    let seed = plan.seed ^ users;
    let backend = run.backend;
    let row = |scenario, outcome, peak_mib, bound, target| Row {
        backend,
        users,
        scenario,
        outcome,
        peak_mib,
        bound,
        bare_rate: Some(bounds.bare),
        target,
    };

    // GET /Users/{id}
    let (client, token, base) = (run.client.clone(), run.token.clone(), run.users_url());
    let pick = ids.clone();
    let (outcome, peak) = run
        .scenario("get-id", plan.load(), move |i| {
            let id = &pick[Rng::new(seed ^ i).below(pick.len() as u64) as usize];
            expect_status(client.get(format!("{base}/{id}")).bearer_auth(&*token), 200)
        })
        .await;
    report.rows.push(row(
        "GET /Users/{id}",
        outcome,
        peak,
        Some(("sqlx select", bounds.select)),
        None,
    ));

    // GET /Users?filter=userName eq "…"
    let (client, token, base) = (run.client.clone(), run.token.clone(), run.users_url());
    let roster = run.roster.clone();
    let created = run.next;
    let (outcome, peak) = run
        .scenario("get-filter", plan.load(), move |i| {
            let user_name = roster.user_name(Rng::new(seed ^ i).below(created));
            expect_status(
                client
                    .get(&base)
                    .query(&[("filter", format!("userName eq \"{user_name}\""))])
                    .bearer_auth(&*token),
                200,
            )
        })
        .await;
    let target = (users >= 100_000).then(|| {
        let share = outcome.rate() / bounds.bare;
        Target {
            text: "p99 < 10 ms and ≥ 30 % of bare".into(),
            met: outcome.p99_ms() < 10.0 && share >= 0.30,
        }
    });
    report.rows.push(row(
        "GET /Users?filter=userName eq",
        outcome,
        peak,
        Some(("sqlx select", bounds.select)),
        target,
    ));

    // PATCH replace title
    let (client, token, base) = (run.client.clone(), run.token.clone(), run.users_url());
    let pick = ids.clone();
    let (outcome, peak) = run
        .scenario("patch", plan.load(), move |i| {
            let id = &pick[Rng::new(seed ^ i).below(pick.len() as u64) as usize];
            let body = json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "replace", "path": "title", "value": format!("Senior Nurse {}", i % 7)}
            ]});
            expect_status(
                client
                    .patch(format!("{base}/{id}"))
                    .bearer_auth(&*token)
                    .json(&body),
                200,
            )
        })
        .await;
    report.rows.push(row(
        "PATCH /Users/{id} replace title",
        outcome,
        peak,
        Some(("sqlx insert", bounds.insert)),
        None,
    ));

    // A page of 100 at a random offset.
    let (client, token, base) = (run.client.clone(), run.token.clone(), run.users_url());
    let (outcome, peak) = run
        .scenario("list", plan.load(), move |i| {
            let start = 1 + Rng::new(seed ^ i).below(users.saturating_sub(100).max(1));
            expect_status(
                client
                    .get(format!("{base}?startIndex={start}&count=100"))
                    .bearer_auth(&*token),
                200,
            )
        })
        .await;
    report.rows.push(row(
        "GET /Users?startIndex=…&count=100",
        outcome,
        peak,
        Some(("sqlx select", bounds.select)),
        None,
    ));

    // POST /Users: new people (the population grows by what this creates).
    run.server.reset_peak();
    let profile = run.profile("post");
    let outcome = run.post_users(plan.load()).await;
    profile.stop();
    let peak = run.server.peak_mib();
    let target = Some(Target {
        text: "≥ 25 % of sqlx insert".into(),
        met: outcome.rate() / bounds.insert >= 0.25,
    });
    report.rows.push(row(
        "POST /Users",
        outcome,
        peak,
        Some(("sqlx insert", bounds.insert)),
        target,
    ));
}

/// The 10,000-member group PATCH of the SCIM issue (add all, then remove all, one request
/// each), and listing groups without members while the group is full.
async fn group_membership(run: &Run, report: &mut Report) {
    let ids = run.ids_snapshot();
    let members: Vec<Value> = ids
        .iter()
        .take(GROUP_MEMBERS)
        .map(|id| json!({"value": id}))
        .collect();
    let base = format!("{}/scim/v2/Groups", run.server.base);
    let group: Value = run
        .client
        .post(&base)
        .bearer_auth(&*run.token)
        .json(&json!({"displayName": "Everyone"}))
        .send()
        .await
        .expect("create group")
        .json()
        .await
        .expect("json");
    let gid = group["id"].as_str().expect("group id").to_string();
    let patch = |op: &str| json!({"schemas": [PATCH_OP], "Operations": [{"op": op, "path": "members", "value": members}]});
    for (label, body) in [("add", patch("add")), ("remove", patch("remove"))] {
        run.server.reset_peak();
        let profile = run.profile(&format!("group-{label}"));
        let started = Instant::now();
        let res = run
            .client
            .patch(format!("{base}/{gid}"))
            .bearer_auth(&*run.token)
            .json(&body)
            .send()
            .await
            .expect("patch");
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        profile.stop();
        let status = res.status().as_u16();
        assert_eq!(status, 204, "{}", res.text().await.unwrap_or_default());
        report.figures.push(Figure {
            backend: run.backend,
            users: run.user_count(),
            scenario: format!(
                "group PATCH {label} {} members (peak RSS {:.0} MiB)",
                thousands(members.len() as u64),
                run.server.peak_mib().unwrap_or_default()
            ),
            value: ms,
            unit: "ms",
            target: Some(Target {
                text: "< 1000 ms".into(),
                met: ms < 1000.0,
            }),
        });
    }
    run.client
        .patch(format!("{base}/{gid}"))
        .bearer_auth(&*run.token)
        .json(&patch("add"))
        .send()
        .await
        .expect("patch");
    let rounds = 50;
    let started = Instant::now();
    for _ in 0..rounds {
        let res = run
            .client
            .get(format!("{base}?excludedAttributes=members"))
            .bearer_auth(&*run.token)
            .send()
            .await
            .expect("list");
        assert!(res.status().is_success());
    }
    report.figures.push(Figure {
        backend: run.backend,
        users: run.user_count(),
        scenario: format!(
            "GET /Groups?excludedAttributes=members (group of {})",
            thousands(members.len() as u64)
        ),
        value: started.elapsed().as_secs_f64() * 1000.0 / f64::from(rounds),
        unit: "ms/request",
        target: None,
    });
}

/// A few requests to a freshly started server, so its idle footprint includes what serving
/// needs (pool connections, caches), then the resident set.
async fn fresh_idle_rss(
    client: &reqwest::Client,
    token: &str,
    roster: &Roster,
    database_url: &str,
    log: &Path,
) -> Option<f64> {
    let (server, _) = start_server(database_url, log, false).await;
    let base = format!("{}/scim/v2/Users", server.base);
    for i in 0..100u64 {
        let user_name = roster.user_name(i);
        let _ = expect_status(
            client
                .get(&base)
                .query(&[("filter", format!("userName eq \"{user_name}\""))])
                .bearer_auth(token),
            200,
        )
        .await;
        let _ = expect_status(
            client
                .get(format!("{base}?startIndex={}&count=100", 1 + i * 100))
                .bearer_auth(token),
            200,
        )
        .await;
    }
    common::settle().await;
    let rss = server.rss_mib();
    server.stop();
    rss
}

async fn backend(backend: &'static str, database_url: &str, plan: &Plan, report: &mut Report) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let roster = Arc::new(Roster::new(plan.seed, PARTNER, ORGANIZATION));
    let user_body = roster.person(0).body.to_string();

    eprintln!("scim[{backend}]: bounds (bare actix-web handler, sqlx raw rows)");
    let bare = bare_bound(plan, user_body).await;
    let raw_url = if backend == "sqlite" {
        Some(format!(
            "sqlite://{}",
            scratch.path().join("raw.db").display()
        ))
    } else {
        None
    };
    let raw_schema = match &raw_url {
        Some(_) => None,
        None => Some(
            common::PgSchema::create(&common::postgres_url().unwrap_or_default(), "gbbench_raw")
                .await,
        ),
    };
    let raw_url = raw_url.unwrap_or_else(|| {
        raw_schema
            .as_ref()
            .map(|s| s.url.clone())
            .unwrap_or_default()
    });
    let [seq_insert, insert, select] = sqlx_bounds(plan, &raw_url, &roster).await;
    if let Some(schema) = raw_schema {
        schema.drop().await;
    }
    let bounds = Bounds {
        bare: bare.rate(),
        insert: insert.rate().max(seq_insert.rate()),
        select: select.rate(),
    };
    for (scenario, outcome) in [
        ("bound: bare actix-web handler", bare),
        ("bound: sqlx INSERT, 1 task", seq_insert),
        ("bound: sqlx INSERT, 32 tasks", insert),
        ("bound: sqlx SELECT by key", select),
    ] {
        report.rows.push(Row {
            backend,
            users: 0,
            scenario,
            outcome,
            peak_mib: None,
            bound: None,
            bare_rate: None,
            target: None,
        });
    }

    let log = std::env::var_os("BENCH_SERVER_LOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| scratch.path().join("server.log"));
    let (server, token) = start_server(database_url, &log, true).await;
    let mut run = Run {
        backend,
        server,
        client: load::client(CONCURRENCY),
        token: token.unwrap_or_default().into(),
        roster,
        ids: Arc::new(Mutex::new(Vec::new())),
        next: 0,
    };
    for (n, &users) in plan.levels.iter().enumerate() {
        run.server.reset_peak();
        if let Some(seeding) = run.seed_to(users).await {
            report.figures.push(Figure {
                backend,
                users,
                scenario: format!(
                    "seeding {} users by POST (c=32), peak RSS {:.0} MiB",
                    thousands(seeding.requests),
                    run.server.peak_mib().unwrap_or_default()
                ),
                value: seeding.rate(),
                unit: "users/s",
                target: None,
            });
        }
        eprintln!(
            "scim[{backend}]: scenarios at {} users",
            thousands(run.user_count())
        );
        level(&mut run, plan, &bounds, report).await;
        if n == 0 {
            eprintln!("scim[{backend}]: group membership PATCH");
            group_membership(&run, report).await;
        }
    }

    let users = run.user_count();
    common::settle().await;
    let idle = run.server.rss_mib().unwrap_or_default();
    report.figures.push(Figure {
        backend,
        users,
        scenario: format!("idle RSS after the load, {} users", thousands(users)),
        value: idle,
        unit: "MiB",
        target: (users >= 100_000).then(|| Target {
            text: "< 100 MB".into(),
            met: idle * 1.048_576 < 100.0,
        }),
    });
    let Run {
        server,
        client,
        token,
        roster,
        ..
    } = run;
    server.stop();
    if let Some(rss) = fresh_idle_rss(&client, &token, &roster, database_url, &log).await {
        report.figures.push(Figure {
            backend,
            users,
            scenario: format!(
                "idle RSS after a restart and 200 reads, {} users",
                thousands(users)
            ),
            value: rss,
            unit: "MiB",
            target: (users >= 100_000).then(|| Target {
                text: "< 100 MB".into(),
                met: rss * 1.048_576 < 100.0,
            }),
        });
    }
}

fn ratio(rate: f64, bound: f64) -> String {
    if bound > 0.0 {
        format!("{:.0} %", rate / bound * 100.0)
    } else {
        String::new()
    }
}

fn print(report: &Report, plan: &Plan) {
    println!();
    println!(
        "{:<8} {:>7} {:<34} {:>7} {:>8} {:>7} {:>7} {:>6} {:>6} {:>12}  target",
        "backend",
        "users",
        "scenario",
        "reqs",
        "rate/s",
        "p50 ms",
        "p99 ms",
        "peakMB",
        "%bare",
        "%sqlx bound"
    );
    for r in &report.rows {
        let o = &r.outcome;
        let bound = r
            .bound
            .map(|(name, rate)| format!("{} {}", ratio(o.rate(), rate), &name[5..]))
            .unwrap_or_default();
        let target = r
            .target
            .as_ref()
            .map(|t| format!("{} {}", if t.met { "MET" } else { "MISSED" }, t.text))
            .unwrap_or_default();
        println!(
            "{:<8} {:>7} {:<34} {:>7} {:>8.0} {:>7.2} {:>7.2} {:>6} {:>6} {:>12}  {}",
            r.backend,
            if r.users > 0 {
                thousands(r.users)
            } else {
                "-".into()
            },
            r.scenario,
            o.requests,
            o.rate(),
            o.p50_ms(),
            o.p99_ms(),
            r.peak_mib.map(|m| format!("{m:.0}")).unwrap_or_default(),
            r.bare_rate.map(|b| ratio(o.rate(), b)).unwrap_or_default(),
            bound,
            target
        );
    }
    println!();
    for f in &report.figures {
        let target = f
            .target
            .as_ref()
            .map(|t| format!("{} {}", if t.met { "MET" } else { "MISSED" }, t.text))
            .unwrap_or_default();
        println!(
            "{:<8} {:>7} {:<66} {:>9.1} {:<10} {}",
            f.backend,
            thousands(f.users),
            f.scenario,
            f.value,
            f.unit,
            target
        );
    }
    let target_json = |t: &Option<Target>| {
        t.as_ref()
            .map(|t| json!({"text": t.text, "met": t.met}))
            .unwrap_or(Value::Null)
    };
    let json = json!({
        "machine": common::machine(),
        "concurrency": CONCURRENCY,
        "seed": plan.seed,
        "levels": plan.levels,
        "seconds_per_scenario": plan.duration.as_secs_f64(),
        "scenarios": report.rows.iter().map(|r| json!({
            "backend": r.backend,
            "users": r.users,
            "scenario": r.scenario,
            "requests": r.outcome.requests,
            "errors": r.outcome.errors,
            "rate_per_s": r.outcome.rate(),
            "p50_ms": r.outcome.p50_ms(),
            "p99_ms": r.outcome.p99_ms(),
            "peak_rss_mib": r.peak_mib,
            "bare_rate_per_s": r.bare_rate,
            "ratio_to_bare": r.bare_rate.map(|b| r.outcome.rate() / b),
            "bound": r.bound.map(|(n, rate)| json!({"name": n, "rate_per_s": rate, "ratio": r.outcome.rate() / rate})),
            "target": target_json(&r.target),
        })).collect::<Vec<_>>(),
        "figures": report.figures.iter().map(|f| json!({
            "backend": f.backend,
            "users": f.users,
            "scenario": f.scenario,
            "value": f.value,
            "unit": f.unit,
            "target": target_json(&f.target),
        })).collect::<Vec<_>>(),
    });
    if let Some(path) = common::write_json("scim", &json) {
        println!("\nwritten: {}", path.display());
    }
}

fn main() {
    let plan = Plan::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let started = Instant::now();
        let mut report = Report::default();
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = format!("sqlite://{}", dir.path().join("bench.db").display());
        backend("sqlite", &sqlite, &plan, &mut report).await;
        if let Some(base) = common::postgres_url() {
            let schema = common::PgSchema::create(&base, "gbbench").await;
            backend("postgres", &schema.url, &plan, &mut report).await;
            schema.drop().await;
        }
        print(&report, &plan);
        println!(
            "scim: {:.0} s; load average {}",
            started.elapsed().as_secs_f64(),
            common::load_average()
        );
    });
}
