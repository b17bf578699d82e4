//! What the connector tests share: events and snapshots, starting an actix-web server, and
//! the database (SQLite, or PostgreSQL when GUESTBRIDGE_TEST_POSTGRES_URL is set) the
//! connectors keep their ownership records in.

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, Error, HttpServer};
use chrono::{DateTime, Utc};
use guestbridge::config::DatabaseSettings;
use guestbridge::connectors::{EventKind, GrantSnapshot, GuestEvent, GuestSnapshot};
use guestbridge::store::Db;

/// Start `app` on 127.0.0.1 (a free port); the server lives as long as the test's runtime.
/// Returns `http://127.0.0.1:PORT`.
pub fn serve<F, T>(app: F) -> String
where
    F: Fn() -> App<T> + Send + Clone + 'static,
    T: ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse,
            Error = Error,
            InitError = (),
        > + 'static,
{
    let server = HttpServer::new(app)
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .bind(("127.0.0.1", 0))
        .expect("bind a local port");
    let addr = server.addrs()[0];
    tokio::spawn(server.run());
    format!("http://{addr}")
}

pub fn guest(id: &str, email: &str, state: &str, grants: &[(&str, &str)]) -> GuestSnapshot {
    GuestSnapshot {
        guest_id: id.to_string(),
        partner: "acme".into(),
        user_name: format!("{id}-user"),
        email: Some(email.to_string()),
        display_name: None,
        given_name: Some("Ann".into()),
        family_name: Some("Lee".into()),
        state: state.to_string(),
        version: 1,
        grants: grants
            .iter()
            .map(|(app, role)| GrantSnapshot {
                app: app.to_string(),
                role: role.to_string(),
                valid_until: None,
            })
            .collect(),
    }
}

pub fn event(id: &str, kind: EventKind, guest: GuestSnapshot) -> GuestEvent {
    GuestEvent {
        event_id: id.to_string(),
        kind,
        occurred_at: DateTime::parse_from_rfc3339("2025-05-01T08:00:00Z")
            .expect("a date")
            .with_timezone(&Utc),
        guest,
    }
}

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
                    super::$name($crate::support::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(gb_postgres),
                    ignore = "GUESTBRIDGE_TEST_POSTGRES_URL was not set when the tests were built"
                )]
                async fn postgres() {
                    $crate::support::require_postgres();
                    super::$name($crate::support::Backend::Postgres).await
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

/// A migrated database the connectors keep their ownership records in: a SQLite file in
/// `dir`, or a fresh schema on the test PostgreSQL server.
pub async fn database(backend: Backend, dir: &tempfile::TempDir) -> Db {
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("connectors.db").display()),
        Backend::Postgres => {
            let base = postgres_url().expect("GUESTBRIDGE_TEST_POSTGRES_URL");
            let schema = format!("gbc_{}", uuid::Uuid::new_v4().simple());
            sqlx::any::install_default_drivers();
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
    };
    let db = Db::connect(&DatabaseSettings {
        url,
        max_connections: 3,
        busy_timeout_ms: 5_000,
    })
    .await
    .expect("open the test database");
    db.migrate().await.expect("migrations");
    db
}

/// The ownership record of `guest_id` at `target`: (remote id, adopted).
pub async fn owned(db: &Db, target: &str, guest_id: &str) -> Option<(String, bool)> {
    let mut conn = db.pool().acquire().await.expect("a connection");
    guestbridge::store::ownership::get(&mut conn, target, guest_id)
        .await
        .expect("read ownership")
        .map(|o| (o.remote_id, o.adopted))
}
