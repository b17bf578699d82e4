//! Three real `guestbridge serve` processes on one PostgreSQL schema under load for
//! `GUESTBRIDGE_SCALE_SECS` (default 60): SCIM PATCHes of the same people through different
//! instances (with and without If-Match), group membership changes, an admin-API import, a
//! rule reload through one instance and job runs from other processes, all at once. At the
//! end every guest is what a fresh evaluation of the final people under the final rules
//! decides, the audit log explains each guest's state, and the sync outbox holds one ordered
//! event stream per guest. Then a reload through A reaches B and C within 5 s.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::helpers::{read, spawn_with_rules, test_actor, Backend, Scim, TestApp, TEST_SECRET_KEY};
use crate::users_crud::ENTERPRISE;

const PEOPLE: usize = 24;
const PATCHERS: usize = 6;
const GROUP_CHANGERS: usize = 4;
const IMPORTED: usize = 60;
const GROUPS: [&str; 2] = ["Ward 1", "Ward 2"];
const TITLES: [&str; 4] = ["Staff Nurse", "Clerk", "Nurse Lead", "Porter"];

const V1: &str = r#"
[[app]]
id = "ehr"
name = "EHR"
description = "Records"
launch_url = "https://ehr.example/"
roles = ["reader", "clinician", "admin"]

[[partner]]
slug = "acme"
approval = "auto"

[[rule]]
id = "nurses"
condition = 'title co "Nurse"'
grants = [{ app = "ehr", role = "reader" }]

[[rule]]
id = "ward"
condition = 'groups.display eq "Ward 1"'
grants = [{ app = "ehr", role = "clinician" }]
"#;

/// The rules the load reloads to mid-way.
fn v2() -> String {
    V1.replace("role = \"reader\"", "role = \"admin\"")
}

/// The rules of the propagation check after the load.
fn v3() -> String {
    V1.replace("role = \"clinician\"", "role = \"reader\"")
        .replace("id = \"nurses\"", "id = \"nurses-v3\"")
}

/// A `guestbridge serve` child process, killed when dropped.
struct Instance {
    name: &'static str,
    child: Child,
    base: String,
    mappings: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn instance_env(cmd: &mut Command, url: &str, mappings: &Path) {
    // A sync target that refuses connections: events stay queued, in order, to be checked.
    let targets = json!([{"name": "hooks", "type": "webhook", "url": "http://127.0.0.1:9/hook",
                          "secret": "scale-test-shared-secret"}])
    .to_string();
    cmd.env("GUESTBRIDGE_DATABASE_URL", url)
        .env("GUESTBRIDGE_SECRET_KEY", TEST_SECRET_KEY)
        .env("GUESTBRIDGE_MAPPINGS", mappings)
        .env("GUESTBRIDGE_DATABASE_MAX_CONNECTIONS", "6")
        .env("GUESTBRIDGE_RULES_POLL_MS", "500")
        .env("GUESTBRIDGE_SYNC_TARGETS", targets)
        .env("GUESTBRIDGE_SYNC_RETRY_BASE_MS", "60000")
        .env_remove("GUESTBRIDGE_SCALE_SECS")
        .env_remove("RUST_LOG");
}

async fn start(name: &'static str, url: &str, jobs: bool) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let mappings = dir.path().join("mappings");
    std::fs::create_dir_all(&mappings).unwrap();
    std::fs::write(mappings.join("rules.toml"), V1).unwrap();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_guestbridge"));
    cmd.arg("serve");
    instance_env(&mut cmd, url, &mappings);
    cmd.env("GUESTBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("GUESTBRIDGE_JOBS", if jobs { "on" } else { "off" })
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = cmd.spawn().expect("start guestbridge serve");
    let base = format!("http://127.0.0.1:{port}");
    let instance = Instance {
        name,
        child,
        base,
        mappings,
        _dir: dir,
    };
    let client = load_client();
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{}/readyz", instance.base)).send().await {
            if r.status().is_success() {
                return instance;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("instance {name} did not become ready");
}

/// What the load did.
#[derive(Default)]
struct Tally {
    operations: AtomicU64,
    conflicts_retried: AtomicU64,
    failures: AtomicU64,
    failure_samples: Mutex<Vec<String>>,
}

impl Tally {
    fn op(&self) {
        self.operations.fetch_add(1, Ordering::Relaxed);
    }

    fn conflict(&self) {
        self.conflicts_retried.fetch_add(1, Ordering::Relaxed);
    }

    fn fail(&self, what: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut s = self.failure_samples.lock().unwrap();
        if s.len() < 10 {
            s.push(what);
        }
    }
}

/// A client that lets go of idle connections before the server's 5 s keep-alive does: under
/// load a request sent on a connection the server is just closing fails with
/// `IncompleteMessage`, a race of the test client, not a failure of the bridge.
fn load_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build()
        .expect("an HTTP client")
}

fn patch_op(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn person(user_name: &str, title: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": user_name,
        "title": title,
        "emails": [{"value": user_name, "primary": true}],
    })
}

/// PATCH random people's title and active flag through random instances until `deadline`;
/// half the writes carry If-Match, and a 412 is re-read and retried.
async fn patcher(scims: Vec<Scim>, ids: Arc<Vec<String>>, deadline: Instant, tally: Arc<Tally>) {
    while Instant::now() < deadline {
        let (scim, id, title, active, if_match) = {
            let mut rng = rand::thread_rng();
            (
                scims[rng.gen_range(0..scims.len())].clone(),
                ids[rng.gen_range(0..ids.len())].clone(),
                TITLES[rng.gen_range(0..TITLES.len())],
                rng.gen_bool(0.8),
                rng.gen_bool(0.5),
            )
        };
        let body = patch_op(json!([
            {"op": "replace", "path": "title", "value": title},
            {"op": "replace", "path": "active", "value": active},
        ]));
        for attempt in 0.. {
            let etag = if if_match {
                let got = scim.get(&format!("/Users/{id}")).await;
                match got.header("etag") {
                    Some(t) => Some(t.to_string()),
                    None => {
                        tally.fail(format!("GET user {}: {}", got.status, got.body));
                        break;
                    }
                }
            } else {
                None
            };
            let headers: Vec<(&str, &str)> = etag
                .as_deref()
                .map(|t| vec![("If-Match", t)])
                .unwrap_or_default();
            let res = scim
                .send(
                    Method::PATCH,
                    &format!("/Users/{id}"),
                    Some(&body),
                    &headers,
                )
                .await;
            match res.status.as_u16() {
                200 | 204 => {
                    tally.op();
                    break;
                }
                412 if attempt < 50 => tally.conflict(),
                s => {
                    tally.fail(format!("PATCH user {s}: {}", res.body));
                    break;
                }
            }
        }
    }
}

/// Add and remove random people to and from the groups through random instances.
async fn group_changer(
    scims: Vec<Scim>,
    ids: Arc<Vec<String>>,
    groups: Arc<Vec<String>>,
    deadline: Instant,
    tally: Arc<Tally>,
) {
    while Instant::now() < deadline {
        let (scim, id, group, add) = {
            let mut rng = rand::thread_rng();
            (
                scims[rng.gen_range(0..scims.len())].clone(),
                ids[rng.gen_range(0..ids.len())].clone(),
                groups[rng.gen_range(0..groups.len())].clone(),
                rng.gen_bool(0.5),
            )
        };
        let ops = if add {
            json!([{"op": "add", "path": "members", "value": [{"value": id}]}])
        } else {
            json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}])
        };
        let res = scim
            .patch(&format!("/Groups/{group}"), &patch_op(ops))
            .await;
        if res.status.is_success() {
            tally.op();
        } else {
            tally.fail(format!("PATCH group {}: {}", res.status, res.body));
        }
    }
}

async fn admin(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    method: Method,
    path: &str,
) -> crate::helpers::Res {
    read(
        client
            .request(method, format!("{base}/api/v1{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// An admin-API import of new people (half of them in Ward 1) through `base`, to its end.
async fn import(base: String, token: String, tally: Arc<Tally>) {
    let mut csv = String::from(
        "userName,givenName,familyName,email,title,department,active,accessEndDate,groups\n",
    );
    for i in 0..IMPORTED {
        let group = if i % 2 == 0 { "Ward 1" } else { "" };
        csv.push_str(&format!(
            "imp{i}@acme.example,Imp,N{i},imp{i}@acme.example,Staff Nurse,Wards,true,,{group}\n"
        ));
    }
    let client = load_client();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("roster.csv"),
    );
    let res = client
        .post(format!("{base}/api/v1/imports?partner=acme&mode=delta"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    if res.status().as_u16() != 202 {
        tally.fail(format!("import: {}", res.status()));
        return;
    }
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    loop {
        let status = admin(
            &client,
            &base,
            &token,
            Method::GET,
            &format!("/imports/{id}"),
        )
        .await;
        if status.body["status"] == "running" {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        if status.body["status"] == "finished" && status.body["created"] == IMPORTED as u64 {
            tally.op();
        } else {
            tally.fail(format!("import ended: {}", status.body));
        }
        return;
    }
}

/// `guestbridge jobs run` processes on the settings of B and C, one after another, until
/// `deadline`. A job another instance is running is retried.
async fn jobs(url: String, mappings: Vec<PathBuf>, deadline: Instant, tally: Arc<Tally>) {
    let names = ["expiry", "reminders", "deprovision", "outbox"];
    let mut i = 0;
    while Instant::now() < deadline {
        let name = names[i % names.len()];
        let dir = mappings[i % mappings.len()].clone();
        let url = url.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_guestbridge"));
            cmd.args(["jobs", "run", name]);
            instance_env(&mut cmd, &url, &dir);
            cmd.output().expect("run guestbridge jobs run")
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            tally.op();
            i += 1;
        } else if stderr.contains("running on another instance") {
            tally.conflict();
        } else {
            tally.fail(format!("jobs run {name}: {stderr}"));
            i += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn fingerprint_of(client: &reqwest::Client, base: &str, token: &str) -> String {
    let res = admin(client, base, token, Method::GET, "/mappings").await;
    res.body["fingerprint"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn reload(client: &reqwest::Client, a: &Instance, token: &str, rules: &str) -> String {
    std::fs::write(a.mappings.join("rules.toml"), rules).unwrap();
    let res = admin(client, &a.base, token, Method::POST, "/mappings/reload").await;
    assert_eq!(res.status, 200, "reload through {}: {}", a.name, res.body);
    res.body["fingerprint"].as_str().unwrap().to_string()
}

/// The roles of the guest of `user_id`, read from the database.
async fn roles_of(obs: &TestApp, user_id: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT gg.role FROM guest_grants gg JOIN guests g ON g.id = gg.guest_id \
         WHERE g.user_id = $1 ORDER BY gg.role",
    )
    .bind(user_id)
    .fetch_all(obs.deps.db.pool())
    .await
    .unwrap()
}

/// Until the guest a SCIM write through `scim` leaves has the `want` roles: the time taken.
async fn decided_with(obs: &TestApp, scim: &Scim, user_name: &str, want: &[&str]) -> Duration {
    let started = Instant::now();
    let id = scim.create_user(&person(user_name, "Staff Nurse")).await;
    let mut n = 0;
    loop {
        if roles_of(obs, &id).await == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{user_name}: still decided with the old rules after 5 s: {:?}",
            roles_of(obs, &id).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        n += 1;
        let title = if n % 2 == 0 {
            "Staff Nurse"
        } else {
            "Nurse Lead"
        };
        let res = scim
            .patch(
                &format!("/Users/{id}"),
                &patch_op(json!([{"op": "replace", "path": "title", "value": title}])),
            )
            .await;
        assert!(res.status.is_success(), "{}", res.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    not(gb_postgres),
    ignore = "several instances share PostgreSQL: GUESTBRIDGE_TEST_POSTGRES_URL was not set"
)]
async fn three_instances_under_load_agree_with_a_fresh_evaluation() {
    crate::helpers::require_postgres();
    let secs: u64 = std::env::var("GUESTBRIDGE_SCALE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    // The observer: migrations, the partner, the tokens and the final checks; it serves no load.
    let obs = spawn_with_rules(Backend::Postgres, &[("rules.toml", V1)]).await;
    let (partner, acme) = obs.partner("acme").await;
    let token = guestbridge::services::partners::issue_admin_token(&obs.deps, &test_actor())
        .await
        .unwrap();
    let url = obs.database_url.clone();
    let a = start("A", &url, false).await;
    let b = start("B", &url, true).await;
    let c = start("C", &url, true).await;
    let client = load_client();
    let scims: Vec<Scim> = [&a, &b, &c]
        .iter()
        .map(|i| Scim {
            base: i.base.clone(),
            token: acme.token.clone(),
            client: load_client(),
        })
        .collect();

    let mut ids = Vec::new();
    for i in 0..PEOPLE {
        ids.push(
            scims[i % 3]
                .create_user(&person(&format!("p{i}@acme.example"), TITLES[i % 4]))
                .await,
        );
    }
    let mut groups = Vec::new();
    for (i, name) in GROUPS.iter().enumerate() {
        let members: Vec<Value> = ids
            .iter()
            .skip(i)
            .step_by(3)
            .map(|id| json!({"value": id}))
            .collect();
        let res = scims[i]
            .post(
                "/Groups",
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                        "displayName": name, "members": members}),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.body);
        groups.push(res.body["id"].as_str().unwrap().to_string());
    }
    let ids = Arc::new(ids);
    let groups = Arc::new(groups);
    let tally = Arc::new(Tally::default());

    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..PATCHERS {
        tasks.push(tokio::spawn(patcher(
            scims.clone(),
            ids.clone(),
            deadline,
            tally.clone(),
        )));
    }
    for _ in 0..GROUP_CHANGERS {
        tasks.push(tokio::spawn(group_changer(
            scims.clone(),
            ids.clone(),
            groups.clone(),
            deadline,
            tally.clone(),
        )));
    }
    tasks.push(tokio::spawn(jobs(
        url.clone(),
        vec![b.mappings.clone(), c.mappings.clone()],
        deadline,
        tally.clone(),
    )));
    {
        let (base, token, tally) = (c.base.clone(), token.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs / 4)).await;
            import(base, token, tally).await;
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs / 2)).await;
    let reloaded = reload(&client, &a, &token, &v2()).await;
    tally.op();
    for t in tasks {
        t.await.unwrap();
    }
    let duration = started.elapsed();
    for i in [&a, &b, &c] {
        assert_eq!(
            fingerprint_of(&client, &i.base, &token).await,
            reloaded,
            "instance {} after the load",
            i.name
        );
    }

    // The state the load left, before anything re-decides everyone: the final people
    // under the rules in force (those of the reload during the load).
    guestbridge::services::rules_watch::follow(&obs.deps)
        .await
        .unwrap();
    let rules = obs.deps.rules();
    assert_eq!(rules.fingerprint, reloaded);
    let mismatches = check_final_state(&obs, &partner, &rules).await;

    // A reload through A: B and C decide with the new rules within 5 s.
    let reload_started = Instant::now();
    reload(&client, &a, &token, &v3()).await;
    let reload_took = reload_started.elapsed();
    let on_b = decided_with(&obs, &scims[1], "late-b@acme.example", &["reader"]).await;
    let on_c = decided_with(&obs, &scims[2], "late-c@acme.example", &["reader"]).await;
    drop((a, b, c));

    let failures = tally.failures.load(Ordering::Relaxed);
    println!(
        "scale_out: {} s, operations {}, conflicts retried {}, failures {}, mismatches {}; \
         reload through A took {} ms, then decided with on B after {} ms and on C after {} ms",
        duration.as_secs(),
        tally.operations.load(Ordering::Relaxed),
        tally.conflicts_retried.load(Ordering::Relaxed),
        failures,
        mismatches.len(),
        reload_took.as_millis(),
        on_b.as_millis(),
        on_c.as_millis(),
    );
    for m in mismatches.iter().take(20) {
        println!("  mismatch: {m}");
    }
    assert!(failures == 0, "{:?}", tally.failure_samples.lock().unwrap());
    assert!(mismatches.is_empty(), "{} mismatches", mismatches.len());
    assert!(on_b < Duration::from_secs(5) && on_c < Duration::from_secs(5));
}

/// Every person against a fresh evaluation under `rules`, every guest against its audit
/// trail and its sync events; one line per disagreement.
async fn check_final_state(
    obs: &TestApp,
    partner: &guestbridge::domain::Partner,
    rules: &guestbridge::mapping::RuleSet,
) -> Vec<String> {
    use guestbridge::store::{groups as group_store, guests as guest_store, users as user_store};
    let mut conn = obs.deps.db.pool().acquire().await.unwrap();
    let now = chrono::Utc::now();
    let users = user_store::page_after(&mut conn, &partner.id, None, 100_000)
        .await
        .unwrap();
    let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
    let mut groups: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (member, gid, name) in group_store::groups_of_users(&mut conn, &ids).await.unwrap() {
        groups.entry(member).or_default().push((gid, name));
    }
    let guests: HashMap<String, guest_store::GuestRow> = guest_store::by_users(&mut conn, &ids)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.user_id.clone(), g))
        .collect();
    let mut out = Vec::new();
    for u in &users {
        let doc: Map<String, Value> = serde_json::from_str(&u.doc).unwrap();
        let no_groups = Vec::new();
        let person = guestbridge::services::lifecycle::PersonView {
            user_id: &u.id,
            user_name: &u.user_name,
            active: u.active,
            email: u.primary_email.as_deref(),
            display_name: u.display_name.as_deref(),
            doc: &doc,
            groups: groups.get(&u.id).unwrap_or(&no_groups),
        };
        let guest = guests.get(&u.id);
        let decision =
            guestbridge::services::lifecycle::decide(rules, now, partner, &person, guest);
        let entitled = u.active && decision.is_guest();
        let Some(guest) = guest else {
            if entitled {
                out.push(format!(
                    "{}: no guest, the rules make them one",
                    u.user_name
                ));
            }
            continue;
        };
        let want: BTreeSet<(String, String, String)> = decision
            .grants
            .iter()
            .map(|g| (g.app.clone(), g.role.clone(), g.rule_id.clone()))
            .collect();
        let have: BTreeSet<(String, String, String)> = guest_store::grants(&mut conn, &guest.id)
            .await
            .unwrap()
            .into_iter()
            .map(|g| (g.app_id, g.role, g.rule_id))
            .collect();
        if want != have {
            out.push(format!(
                "{}: grants {have:?}, rules say {want:?}",
                u.user_name
            ));
        }
        let state_ok = if entitled {
            guest.state == "invited"
        } else {
            guest.state.starts_with("suspended")
        };
        if !state_ok {
            out.push(format!(
                "{}: state {} (active {}, guest by the rules {})",
                u.user_name,
                guest.state,
                u.active,
                decision.is_guest()
            ));
        }
        if guest.rules_fingerprint.as_deref() != Some(rules.fingerprint.as_str()) {
            out.push(format!(
                "{}: decided with {:?}, the rules in force are {}",
                u.user_name, guest.rules_fingerprint, rules.fingerprint
            ));
        }
        out.extend(audit_explains(&mut conn, guest).await);
        out.extend(sync_stream_ok(&mut conn, obs, guest).await);
    }
    out
}

/// The guest's last state event in the audit log names its current state.
async fn audit_explains(
    conn: &mut sqlx::AnyConnection,
    guest: &guestbridge::store::guests::GuestRow,
) -> Option<String> {
    let last: Option<(String, String)> = sqlx::query_as(
        "SELECT action, detail FROM audit_log WHERE target_type = 'guest' AND target_id = $1 \
         AND action IN ('guest.created', 'guest.state_changed') ORDER BY id DESC LIMIT 1",
    )
    .bind(&guest.id)
    .fetch_optional(&mut *conn)
    .await
    .unwrap();
    let Some((action, detail)) = last else {
        return Some(format!(
            "{}: no state event in the audit log",
            guest.user_name
        ));
    };
    let detail: Value = serde_json::from_str(&detail).unwrap();
    let said = if action == "guest.created" {
        &detail["state"]
    } else {
        &detail["to"]
    };
    (said != guest.state.as_str()).then(|| {
        format!(
            "{}: state {}, the audit log last says {action} {said}",
            guest.user_name, guest.state
        )
    })
}

/// One ordered stream per guest: versions strictly increasing, no event twice, the last one
/// what the guest is now.
async fn sync_stream_ok(
    conn: &mut sqlx::AnyConnection,
    obs: &TestApp,
    guest: &guestbridge::store::guests::GuestRow,
) -> Vec<String> {
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT seq, id, payload FROM sync_outbox WHERE guest_id = $1 ORDER BY seq")
            .bind(&guest.id)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut last_version = 0;
    let mut last = None;
    for (seq, id, payload) in rows {
        let p: Value = serde_json::from_str(&payload).unwrap();
        let version = p["guest"]["version"].as_i64().unwrap_or(-1);
        if !seen.insert(id.clone()) || version <= last_version {
            out.push(format!(
                "{}: sync event seq {seq} has version {version} after {last_version}",
                guest.user_name
            ));
        }
        last_version = version;
        last = Some(p);
    }
    let Some(mut last) = last else {
        out.push(format!("{}: no sync events", guest.user_name));
        return out;
    };
    let now = guestbridge::services::sync::snapshot(conn, &obs.deps, &guest.id)
        .await
        .unwrap()
        .unwrap();
    let mut last: guestbridge::connectors::GuestSnapshot =
        serde_json::from_value(last["guest"].take()).expect("a sync event's guest");
    last.version = now.version;
    if last != now {
        out.push(format!(
            "{}: last sync event {last:?} but the guest is {now:?}",
            guest.user_name
        ));
    }
    out
}
