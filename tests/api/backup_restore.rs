//! docs/operations.md's backup and restore, done as it says while SCIM clients keep writing:
//! SQLite with the `sqlite3` shell's online `.backup`, PostgreSQL with `pg_dump` /
//! `pg_restore` into a new database. A second instance started on the restored copy must
//! pass the smoke checks: ready, the partner's token works, every user in the copy is whole
//! (readable and found by filter, so the value index matches the rows), and it accepts writes.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use guestbridge::clock::SystemClock;
use guestbridge::startup::Application;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{self, Backend, Scim, TestApp};

// Not `both_backends!`: each backend needs its own tool, and a missing tool is reported as
// ignored (build.rs looks for it on PATH) rather than passing unrun.
mod a_backup_taken_under_load_restores_to_a_working_bridge {
    use crate::helpers::{self, Backend};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(gb_sqlite3_shell),
        ignore = "the sqlite3 shell was not on PATH when the tests were built"
    )]
    async fn sqlite() {
        super::a_backup_taken_under_load_restores_to_a_working_bridge(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(all(gb_postgres, gb_pg_dump)),
        ignore = "needs GUESTBRIDGE_TEST_POSTGRES_URL and pg_dump/pg_restore on PATH at build time"
    )]
    async fn postgres() {
        helpers::require_postgres();
        super::a_backup_taken_under_load_restores_to_a_working_bridge(Backend::Postgres).await
    }
}

const WRITERS: usize = 4;
const USERS_BEFORE_BACKUP: usize = 40;

async fn a_backup_taken_under_load_restores_to_a_working_bridge(backend: Backend) {
    let tool = tool_for(backend).expect("the backup tool found on PATH at build time");
    let app = helpers::spawn(backend).await;
    let (_, scim) = app.partner("acme").await;

    let stop = Arc::new(AtomicBool::new(false));
    let created = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(write_until(scim.clone(), w, stop.clone(), created.clone())))
        .collect();
    helpers::eventually("users to be created before the backup", || {
        let created = created.clone();
        async move { created.load(Ordering::SeqCst) >= USERS_BEFORE_BACKUP }
    })
    .await;

    let work = tempfile::tempdir().expect("tempdir");
    let restored_url = match backend {
        Backend::Sqlite => backup_and_restore_sqlite(&app, &work),
        Backend::Postgres => backup_and_restore_postgres(&app, &work),
    };
    // Writes go on after the backup: the copy must be a consistent point in between.
    let at_backup = created.load(Ordering::SeqCst);
    helpers::eventually("more users to be created after the backup", || {
        let created = created.clone();
        async move { created.load(Ordering::SeqCst) >= at_backup + 10 }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer");
    }
    let total = created.load(Ordering::SeqCst);
    eprintln!("{tool}: {total} users created in all, {at_backup}+ when the backup ran");

    let restored = start_on(&restored_url).await;
    let ready = restored.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK, "restored bridge not ready");
    let copy = Scim {
        base: restored.address.clone(),
        token: scim.token.clone(),
        client: restored.client.clone(),
    };
    let list = copy.get("/Users?count=1000").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let in_copy = list.body["totalResults"].as_u64().expect("totalResults") as usize;
    assert!(
        in_copy >= USERS_BEFORE_BACKUP && in_copy < total,
        "the copy holds {in_copy} users; expected at least {USERS_BEFORE_BACKUP} and fewer than the {total} created by the end"
    );
    let resources = list.body["Resources"].as_array().expect("Resources");
    assert_eq!(resources.len(), in_copy);
    for user in resources {
        let id = user["id"].as_str().expect("id");
        let user_name = user["userName"].as_str().expect("userName");
        let one = copy.get(&format!("/Users/{id}")).await;
        assert_eq!(one.status, StatusCode::OK, "{}", one.body);
        assert_eq!(one.body["userName"], user_name);
        let found = copy
            .filter_users(&format!("userName eq \"{user_name}\""))
            .await;
        assert_eq!(
            found.body["totalResults"], 1,
            "{user_name} is in the copy's users but not found by filter: {}",
            found.body
        );
    }
    let after = copy
        .post(
            "/Users",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "after.restore@acme.example"}),
        )
        .await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.body);
    let jwks = restored.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status(), StatusCode::OK);

    if backend == Backend::Postgres {
        drop(restored);
        drop_database(&restored_url).await;
    }
}

async fn write_until(scim: Scim, writer: usize, stop: Arc<AtomicBool>, created: Arc<AtomicUsize>) {
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("w{writer}.u{n}@acme.example"),
            "name": {"givenName": format!("Writer{writer}"), "familyName": format!("Number{n}")},
            "emails": [{"value": format!("w{writer}.u{n}@acme.example"), "type": "work", "primary": true}],
        });
        let res = scim.post("/Users", &body).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        created.fetch_add(1, Ordering::SeqCst);
        n += 1;
    }
}

fn tool_for(backend: Backend) -> Option<&'static str> {
    let (tool, check) = match backend {
        Backend::Sqlite => ("sqlite3", "sqlite3"),
        Backend::Postgres => ("pg_dump", "pg_restore"),
    };
    let present = |t: &str| Command::new(t).arg("--version").output().is_ok();
    (present(tool) && present(check)).then_some(tool)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("start backup tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sqlite_path(url: &str) -> String {
    url.strip_prefix("sqlite://")
        .expect("sqlite URL")
        .to_string()
}

fn backup_and_restore_sqlite(app: &TestApp, work: &tempfile::TempDir) -> String {
    let live = sqlite_path(&app.database_url.clone());
    let backup = work.path().join("backup.db");
    run(Command::new("sqlite3")
        .arg(&live)
        .arg(format!(".backup '{}'", backup.display())));
    let restored = work.path().join("restored").join("guestbridge.db");
    std::fs::create_dir_all(restored.parent().unwrap()).unwrap();
    std::fs::copy(&backup, &restored).expect("copy the backup into place");
    format!("sqlite://{}", restored.display())
}

fn backup_and_restore_postgres(app: &TestApp, work: &tempfile::TempDir) -> String {
    let live = app.database_url.clone();
    let (server, schema) = split_postgres_url(&live);
    let dump = work.path().join("guestbridge.dump");
    run(Command::new("pg_dump")
        .arg("--format=custom")
        .arg(format!("--schema={schema}"))
        .arg(format!("--file={}", dump.display()))
        .arg(&server));
    let database = format!("gbt_restore_{}", uuid::Uuid::new_v4().simple());
    run(Command::new("psql")
        .arg("-q")
        .arg(&server)
        .arg("-c")
        .arg(format!("CREATE DATABASE {database}")));
    let target = with_database(&server, &database);
    run(Command::new("pg_restore")
        .arg("--no-owner")
        .arg(format!("--dbname={target}"))
        .arg(&dump));
    format!("{target}?options=-c%20search_path%3D{schema}")
}

/// The server URL without options, and the schema the test's search_path names.
fn split_postgres_url(url: &str) -> (String, String) {
    let (server, query) = url.split_once('?').expect("test URL has options");
    let schema = query
        .rsplit_once("search_path%3D")
        .map(|(_, s)| s.split('&').next().unwrap_or(s).to_string())
        .expect("search_path in the test URL");
    (server.to_string(), schema)
}

fn with_database(server: &str, database: &str) -> String {
    let mut url = url::Url::parse(server).expect("PostgreSQL URL");
    url.set_path(&format!("/{database}"));
    url.to_string()
}

async fn drop_database(restored_url: &str) {
    let (server, _) = split_postgres_url(restored_url);
    let url = url::Url::parse(&server).expect("URL");
    let database = url.path().trim_start_matches('/').to_string();
    let admin = with_database(&server, "test");
    // The restored app's pool may still hold connections for a moment.
    let _ = Command::new("psql")
        .arg("-q")
        .arg(&admin)
        .arg("-c")
        .arg(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .output();
}

struct Restored {
    address: String,
    client: reqwest::Client,
}

impl Restored {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.address, path))
            .send()
            .await
            .expect("request")
    }
}

async fn start_on(database_url: &str) -> Restored {
    let mappings = std::path::Path::new("/nonexistent/guestbridge-test-mappings");
    let settings = helpers::settings_with_mappings(database_url, mappings);
    let app = Application::build(settings, Arc::new(SystemClock))
        .await
        .expect("start on the restored database");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    Restored {
        address,
        client: reqwest::Client::new(),
    }
}
