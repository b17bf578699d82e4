//! One way to start the real application for a test: port 0, a fresh SQLite file or a fresh
//! PostgreSQL schema, migrations applied, and a typed HTTP client.

use std::collections::BTreeMap;
use std::sync::Arc;

use guestbridge::clock::SystemClock;
use guestbridge::config::Settings;
use guestbridge::domain::{Partner, PartnerSlug};
use guestbridge::services::{self, Actor, Deps};
use guestbridge::startup::Application;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests may use, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("GUESTBRIDGE_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// Generate a `sqlite` and a `postgres` test for each named async fn taking a `Backend`.
/// Built without GUESTBRIDGE_TEST_POSTGRES_URL, the postgres variant is reported as ignored
/// (build.rs sets `gb_postgres`).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(gb_postgres),
                    ignore = "GUESTBRIDGE_TEST_POSTGRES_URL was not set when the tests were built"
                )]
                async fn postgres() {
                    $crate::helpers::require_postgres();
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}

/// For a test that runs only where PostgreSQL is configured: fails, rather than passing
/// unrun, when the binary was built for PostgreSQL but started without it.
pub fn require_postgres() {
    assert!(
        postgres_url().is_some(),
        "GUESTBRIDGE_TEST_POSTGRES_URL is not set: run the tests through `cargo test` with it set"
    );
}

pub struct TestApp {
    pub address: String,
    /// The running app's own services (same pool, clock and rules).
    pub deps: Deps,
    /// The app's mappings folder.
    pub mappings: std::path::PathBuf,
    /// The database the app runs on (for tests that reach it with other tools).
    pub database_url: String,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A fresh database URL for this test.
pub async fn fresh_database(backend: Backend, dir: &tempfile::TempDir) -> String {
    crate::log_scan::install();
    // Tests open their own AnyPool on the URL; the drivers must be there whatever ran first.
    sqlx::any::install_default_drivers();
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("guestbridge.db").display()),
        Backend::Postgres => {
            let base = postgres_url().expect("GUESTBRIDGE_TEST_POSTGRES_URL");
            let schema = format!("gbt_{}", uuid::Uuid::new_v4().simple());
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
                .await
                .expect("connect to test PostgreSQL");
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut conn)
                .await
                .expect("create test schema");
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}options=-c%20search_path%3D{schema}")
        }
    }
}

/// A fixed sealing key for tests (never used outside them).
pub const TEST_SECRET_KEY: &str =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

pub fn settings_for(database_url: &str) -> Settings {
    settings_with_mappings(
        database_url,
        std::path::Path::new("/nonexistent/guestbridge-test-mappings"),
    )
}

pub fn settings_with_mappings(database_url: &str, mappings: &std::path::Path) -> Settings {
    settings_with(database_url, mappings, &[])
}

pub fn settings_with(
    database_url: &str,
    mappings: &std::path::Path,
    extra: &[(&str, &str)],
) -> Settings {
    let mappings = mappings.display().to_string();
    let mut env: BTreeMap<String, String> = [
        ("GUESTBRIDGE_MAPPINGS", mappings.as_str()),
        ("GUESTBRIDGE_SECRET_KEY", TEST_SECRET_KEY),
        ("GUESTBRIDGE_DATABASE_URL", database_url),
        ("GUESTBRIDGE_LISTEN", "127.0.0.1:0"),
        ("GUESTBRIDGE_JOBS", "off"),
        ("GUESTBRIDGE_DATABASE_MAX_CONNECTIONS", "5"),
        ("GUESTBRIDGE_MAX_BODY_BYTES", "65536"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    Settings::load(None, &env).expect("test settings")
}

/// Start the app with no mapping rules.
pub async fn spawn(backend: Backend) -> TestApp {
    spawn_with_rules(backend, &[]).await
}

/// Start the app with these rule files (name, TOML) in its mappings folder.
pub async fn spawn_with_rules(backend: Backend, rule_files: &[(&str, &str)]) -> TestApp {
    spawn_with(backend, rule_files, &[]).await
}

/// Start the app with rule files and extra settings (`GUESTBRIDGE_*` pairs).
pub async fn spawn_with(
    backend: Backend,
    rule_files: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> TestApp {
    spawn_with_clock(backend, rule_files, extra, Arc::new(SystemClock)).await
}

/// Start the app with rule files, extra settings and this clock.
pub async fn spawn_with_clock(
    backend: Backend,
    rule_files: &[(&str, &str)],
    extra: &[(&str, &str)],
    clock: guestbridge::clock::SharedClock,
) -> TestApp {
    // Every app's log lines are scanned for secrets (TEST_LOG also shows them on stderr).
    crate::log_scan::install();
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = fresh_database(backend, &dir).await;
    let mappings = dir.path().join("mappings");
    std::fs::create_dir_all(&mappings).expect("mappings dir");
    for (name, content) in rule_files {
        let path = mappings.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mappings sub-folder");
        }
        std::fs::write(path, content).expect("rule file");
    }
    let settings = settings_with(&database_url, &mappings, extra);
    let app = Application::build(settings.clone(), clock)
        .await
        .expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    let deps = app.deps();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        deps,
        mappings,
        database_url,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

pub fn test_actor() -> Actor {
    Actor {
        label: "test".into(),
        request_id: None,
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Res {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Assert an RFC 7644 error with this status and scimType.
    pub fn assert_scim_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status.to_string(), "{}", self.body);
        match scim_type {
            Some(t) => assert_eq!(self.body["scimType"], t, "{}", self.body),
            None => assert!(self.body.get("scimType").is_none(), "{}", self.body),
        }
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

/// A SCIM client for one partner's token.
#[derive(Clone)]
pub struct Scim {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl Scim {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Res {
        let mut req = self
            .client
            .request(method, format!("{}/scim/v2{}", self.base, path))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        read(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Res {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Res {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Res {
        self.send(Method::PUT, path, Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Res {
        self.send(Method::PATCH, path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Res {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// GET /Users with a filter, URL-encoded.
    pub async fn filter_users(&self, filter: &str) -> Res {
        let q: String = url_encode(filter);
        self.get(&format!("/Users?filter={q}")).await
    }

    /// Create a user and return its id.
    pub async fn create_user(&self, body: &Value) -> String {
        let res = self.post("/Users", body).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        res.body["id"].as_str().expect("id").to_string()
    }
}

pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Read a response whole; a SCIM response is checked against the schemas the server serves
/// (see `scim_schema_check`).
pub async fn read(res: reqwest::Response) -> Res {
    let url = res.url().clone();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    crate::scim_schema_check::check(&url, &body).await;
    for cookie in headers.get_all("set-cookie") {
        if let Some((_, value)) = cookie
            .to_str()
            .ok()
            .and_then(|c| c.split(';').next())
            .and_then(|c| c.split_once('='))
        {
            crate::log_scan::register_secret(value);
        }
    }
    crate::log_scan::check();
    Res {
        status,
        headers,
        body,
    }
}

impl TestApp {
    /// Register a partner and issue it a token, through the same services as the CLI.
    pub async fn partner(&self, slug: &str) -> (Partner, Scim) {
        let slug = PartnerSlug::parse(slug).expect("slug");
        let partner =
            services::partners::add_partner(&self.deps, &test_actor(), &slug, "Test Partner")
                .await
                .expect("add partner");
        let token = services::partners::issue_partner_token(&self.deps, &test_actor(), &slug)
            .await
            .expect("issue token");
        crate::log_scan::register_secret(&token);
        (
            partner,
            Scim {
                base: self.address.clone(),
                token,
                client: self.client.clone(),
            },
        )
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{}", self.address, path))
            .send()
            .await
            .expect("request")
    }
}

impl Drop for TestApp {
    /// A test fails when its app (or another running at the same time) logged a secret.
    fn drop(&mut self) {
        crate::log_scan::check();
    }
}

/// A clock that stands still until moved.
#[derive(Debug)]
pub struct StepClock(std::sync::Mutex<chrono::DateTime<chrono::Utc>>);

impl StepClock {
    pub fn new() -> Arc<Self> {
        Arc::new(StepClock(std::sync::Mutex::new(chrono::Utc::now())))
    }

    pub fn advance_ms(&self, ms: i64) {
        *self.0.lock().unwrap() += chrono::Duration::milliseconds(ms);
    }
}

impl guestbridge::clock::Clock for StepClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock().unwrap()
    }
}

/// Wait (up to 20 s, polling every 100 ms) until `check` holds; panic naming `what` if not.
/// For effects that happen in the background: workers delivering, servers receiving.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Another instance on `app`'s database (a second replica), with these rule files in its own
/// mappings folder.
pub async fn spawn_peer(app: &TestApp, rule_files: &[(&str, &str)]) -> TestApp {
    spawn_peer_with(app, rule_files, &[("GUESTBRIDGE_RULES_POLL_MS", "500")]).await
}

/// [`spawn_peer`] with these settings.
pub async fn spawn_peer_with(
    app: &TestApp,
    rule_files: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mappings = dir.path().join("mappings");
    std::fs::create_dir_all(&mappings).expect("mappings dir");
    for (name, content) in rule_files {
        std::fs::write(mappings.join(name), content).expect("rule file");
    }
    let settings = settings_with(&app.database_url, &mappings, extra);
    let peer = Application::build(settings, Arc::new(SystemClock))
        .await
        .expect("build peer");
    let address = format!("http://127.0.0.1:{}", peer.port());
    let deps = peer.deps();
    tokio::spawn(peer.run_until_stopped());
    TestApp {
        address,
        deps,
        mappings,
        database_url: app.database_url.clone(),
        client: reqwest::Client::new(),
        _dir: dir,
    }
}
