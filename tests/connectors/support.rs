//! What the connector tests share: events and snapshots, and starting an actix-web server.

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, Error, HttpServer};
use chrono::{DateTime, Utc};
use guestbridge::connectors::{EventKind, GrantSnapshot, GuestEvent, GuestSnapshot};

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
