//! What outbound sync tells a target about a guest: the event the sync outbox stores (as
//! JSON) and the connectors deliver. Services build it, connectors read it; it lives here,
//! below both.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One change to push, as the outbox stores it (JSON-serialisable).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GuestEvent {
    /// Unique per event; also the idempotency key sent to targets.
    pub event_id: String,
    /// What happened to the guest.
    pub kind: EventKind,
    /// When the decision was taken (not when it is delivered).
    pub occurred_at: DateTime<Utc>,
    /// The guest as it was right after the change.
    pub guest: GuestSnapshot,
}

/// The three changes a target hears about.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Created or changed (attributes, state, grants).
    GuestUpserted,
    /// Access taken away for now; the guest may come back.
    GuestSuspended,
    /// The guest is gone for good.
    GuestRemoved,
}

impl EventKind {
    /// The kind as stored (`sync_outbox.kind`) and serialised: `guest_upserted`, …
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::GuestUpserted => "guest_upserted",
            EventKind::GuestSuspended => "guest_suspended",
            EventKind::GuestRemoved => "guest_removed",
        }
    }

    /// The webhook `type` of this kind: `guest.upserted`, `guest.suspended`, `guest.removed`.
    pub fn webhook_type(self) -> &'static str {
        match self {
            EventKind::GuestUpserted => "guest.upserted",
            EventKind::GuestSuspended => "guest.suspended",
            EventKind::GuestRemoved => "guest.removed",
        }
    }
}

/// The guest as pushed to targets.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GuestSnapshot {
    /// Guestbridge's id of the guest; the `externalId` at SCIM targets.
    pub guest_id: String,
    /// The partner's slug.
    pub partner: String,
    /// The partner's userName of the person.
    pub user_name: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// `invited`, `active`, `suspended`, `removed` or `pending_approval`.
    pub state: String,
    /// The app grants in force.
    pub grants: Vec<GrantSnapshot>,
    /// This guest's event number: it grows with each event, in the order the changes were
    /// committed, so a receiver can tell an older event that reaches it late.
    #[serde(default)]
    pub version: i64,
}

/// One app grant of a guest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GrantSnapshot {
    pub app: String,
    pub role: String,
    pub valid_until: Option<DateTime<Utc>>,
}

impl GuestSnapshot {
    /// Whether the guest's state allows access (`active` or `invited`).
    pub fn is_enabled(&self) -> bool {
        matches!(self.state.as_str(), "active" | "invited")
    }

    /// `"{app}:{role}"` of each grant, sorted and without duplicates.
    pub fn grant_keys(&self) -> std::collections::BTreeSet<String> {
        self.grants
            .iter()
            .map(|g| format!("{}:{}", g.app, g.role))
            .collect()
    }
}
