//! Outbound connectors: what the outbox worker calls to push one guest change to one target.
//!
//! The worker stores [`GuestEvent`]s (JSON) and hands each to every configured
//! [`Connector`] in order per guest. A connector answers `Ok(())` when the target holds the
//! change, or a [`DeliveryError`] that says whether a later attempt can succeed
//! ([`DeliveryError::Transient`], with the target's `Retry-After` when it gave one) or not
//! ([`DeliveryError::Permanent`]: dead-letter it). Every delivery is idempotent (look-up
//! before create, `404` on delete is success), so the worker may retry or replay any event.
//!
//! Ownership: the SCIM and Graph connectors are given the database when they are built
//! ([`build::build_connectors`]) and keep, per target, the id of each downstream object they
//! created or adopted ([`crate::store::ownership`]). They change only objects so recorded,
//! which is what keeps a directory shared with staff safe: an object that merely looks like
//! ours (an externalId, a prefixed group, a matching address) is never suspended or deleted.
//! The records live in the database, so they outlast restarts and every instance sees them.
//! The webhook connector owns nothing and needs no database.
//!
//! - [`scim::ScimConnector`]: a downstream SCIM 2.0 server (RFC 7643/7644), grants as groups.
//! - [`graph::GraphConnector`]: Microsoft Graph B2B invitations and group membership.
//! - [`webhook::WebhookConnector`]: a signed JSON event per change.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub mod build;
pub mod graph;
mod http;
pub mod scim;
pub mod webhook;

/// A boxed, `Send` future borrowing from the connector and the event; keeps [`Connector`]
/// object-safe so the worker can hold `Vec<Box<dyn Connector>>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub use crate::domain::sync_event::{EventKind, GrantSnapshot, GuestEvent, GuestSnapshot};

/// What the connectors do with a guest, from the event kind and the snapshot's state
/// (an `upserted` event of a suspended or removed guest is treated as what the state says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Should have access: exists, enabled, in the groups of its grants.
    Enable,
    /// Should exist at most disabled and in none of our groups (`pending_approval`).
    Hold,
    /// Exists disabled and in none of our groups, if it exists at all.
    Suspend,
    /// Should not exist.
    Remove,
}

impl GuestSnapshot {
    pub(crate) fn intent(&self, kind: EventKind) -> Intent {
        match (kind, self.state.as_str()) {
            (EventKind::GuestRemoved, _) | (_, "removed") => Intent::Remove,
            (EventKind::GuestSuspended, _) | (_, "suspended") => Intent::Suspend,
            _ if self.is_enabled() => Intent::Enable,
            _ => Intent::Hold,
        }
    }
}

/// What a delivery attempt says when it did not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Retry later; `retry_after` when the target said when (`Retry-After` in seconds or as
    /// an HTTP date).
    #[error("transient delivery failure: {reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying will not help (a 4xx other than 408/409/429, a bad configuration, a guest
    /// the target cannot take): dead-letter it, fix, replay.
    #[error("permanent delivery failure: {reason}")]
    Permanent { reason: String },
}

impl DeliveryError {
    pub(crate) fn transient(reason: impl Into<String>) -> Self {
        DeliveryError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub(crate) fn permanent(reason: impl Into<String>) -> Self {
        DeliveryError::Permanent {
            reason: reason.into(),
        }
    }

    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, DeliveryError::Transient { .. })
    }

    /// The delay the target asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::Transient { retry_after, .. } => *retry_after,
            DeliveryError::Permanent { .. } => None,
        }
    }

    /// The reason as logs may carry it: our own words and the target's status code, without
    /// what the target wrote after it. A target's reply often echoes the request (a userName,
    /// an e-mail address) and logs must hold no personal data; the full reason stays in the
    /// outbox row, where an admin reads it.
    pub fn log_reason(&self) -> String {
        let reason = match self {
            DeliveryError::Transient { reason, .. } | DeliveryError::Permanent { reason } => {
                reason.as_str()
            }
        };
        let kind = if self.is_transient() {
            "transient delivery failure"
        } else {
            "permanent delivery failure"
        };
        match status_marker_end(reason) {
            Some(end) => format!("{kind}: {} (reply left out of the log)", &reason[..end]),
            None => format!("{kind}: {reason}"),
        }
    }

    /// The same error with "`context`: " before its reason.
    pub(crate) fn context(self, context: &str) -> Self {
        match self {
            DeliveryError::Transient {
                reason,
                retry_after,
            } => DeliveryError::Transient {
                reason: format!("{context}: {reason}"),
                retry_after,
            },
            DeliveryError::Permanent { reason } => DeliveryError::Permanent {
                reason: format!("{context}: {reason}"),
            },
        }
    }
}

/// Where the first `HTTP nnn` of a reason ends: [`http::status_error`] and
/// [`http::Reply::json`] put the target's own words after it.
fn status_marker_end(reason: &str) -> Option<usize> {
    reason.match_indices("HTTP ").find_map(|(at, marker)| {
        let digits = &reason.as_bytes()[at + marker.len()..];
        (digits.len() >= 3 && digits[..3].iter().all(u8::is_ascii_digit))
            .then_some(at + marker.len() + 3)
    })
}

/// A target the outbox worker pushes guest changes to.
pub trait Connector: Send + Sync {
    /// A stable name for this target (outbox rows, metrics, logs).
    fn name(&self) -> &str;

    /// Push one event. Idempotent: delivering the same event twice leaves the target as
    /// delivering it once does.
    fn deliver<'a>(&'a self, event: &'a GuestEvent) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// Why a connector could not be built from its settings (checked at start-up).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{field}: not a usable http(s) URL: {value}")]
    InvalidUrl { field: &'static str, value: String },
    #[error("{field}: must not be empty")]
    Empty { field: &'static str },
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn snapshot(state: &str) -> GuestSnapshot {
        GuestSnapshot {
            guest_id: "g1".into(),
            partner: "acme".into(),
            user_name: "ann@acme.example".into(),
            email: None,
            display_name: None,
            given_name: None,
            family_name: None,
            state: state.into(),
            grants: vec![],
            version: 1,
        }
    }

    #[test]
    fn intent_follows_kind_then_state() {
        use EventKind::*;
        assert_eq!(snapshot("active").intent(GuestUpserted), Intent::Enable);
        assert_eq!(snapshot("invited").intent(GuestUpserted), Intent::Enable);
        assert_eq!(
            snapshot("pending_approval").intent(GuestUpserted),
            Intent::Hold
        );
        assert_eq!(snapshot("suspended").intent(GuestUpserted), Intent::Suspend);
        assert_eq!(snapshot("active").intent(GuestSuspended), Intent::Suspend);
        assert_eq!(snapshot("removed").intent(GuestUpserted), Intent::Remove);
        assert_eq!(snapshot("active").intent(GuestRemoved), Intent::Remove);
    }

    #[tokio::test]
    async fn connectors_live_together_behind_the_trait() {
        let (_dir, db) = crate::store::test_db().await;
        let connectors: Vec<Box<dyn Connector>> = vec![
            Box::new(
                scim::ScimConnector::new(
                    "scim",
                    scim::ScimTarget {
                        base_url: "https://down.example/scim/v2".into(),
                        bearer_token: "t".into(),
                        group_prefix: "gb-".into(),
                    },
                    db.clone(),
                )
                .unwrap(),
            ),
            Box::new(
                graph::GraphConnector::new(
                    "graph",
                    graph::GraphTarget {
                        base_url: graph::DEFAULT_BASE_URL.into(),
                        token_url: "https://login.example/t/oauth2/v2.0/token".into(),
                        client_id: "c".into(),
                        client_secret: "s".into(),
                        redirect_url: "https://apps.example".into(),
                        group_ids: Default::default(),
                    },
                    db.clone(),
                )
                .unwrap(),
            ),
            Box::new(
                webhook::WebhookConnector::new(
                    "hook",
                    webhook::WebhookTarget {
                        url: "https://hooks.example/in".into(),
                        secret: "s".into(),
                    },
                )
                .unwrap(),
            ),
        ];
        let names: Vec<&str> = connectors.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["scim", "graph", "hook"]);
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let err = webhook::WebhookConnector::new(
            "hook",
            webhook::WebhookTarget {
                url: "hooks.example/in".into(),
                secret: "s".into(),
            },
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("url:"), "{err}");
        let err = webhook::WebhookConnector::new(
            "hook",
            webhook::WebhookTarget {
                url: "https://hooks.example/in".into(),
                secret: " ".into(),
            },
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "secret: must not be empty");
    }

    #[test]
    fn log_reasons_keep_the_status_and_drop_what_the_target_wrote() {
        let headers = reqwest::header::HeaderMap::new();
        let body = br#"{"detail":"userName ann@acme.example is already in use"}"#;
        let err = http::status_error(reqwest::StatusCode::CONFLICT, &headers, body, Utc::now())
            .context("create user");
        assert!(err.to_string().contains("ann@acme.example"), "{err}");
        assert_eq!(
            err.log_reason(),
            "transient delivery failure: create user: HTTP 409 (reply left out of the log)"
        );
        let err = http::status_error(reqwest::StatusCode::BAD_REQUEST, &headers, body, Utc::now());
        assert_eq!(
            err.log_reason(),
            "permanent delivery failure: HTTP 400 (reply left out of the log)"
        );
        let own = DeliveryError::transient("connection failed: refused");
        assert_eq!(
            own.log_reason(),
            "transient delivery failure: connection failed: refused"
        );
    }

    #[test]
    fn event_round_trips_as_json_with_snake_case_kind() {
        let event = GuestEvent {
            event_id: "e1".into(),
            kind: EventKind::GuestSuspended,
            occurred_at: DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
                .unwrap()
                .with_timezone(&Utc),
            guest: snapshot("suspended"),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "guest_suspended");
        assert_eq!(json["occurred_at"], "2025-01-02T03:04:05Z");
        let back: GuestEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }
}
