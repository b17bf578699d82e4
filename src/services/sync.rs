//! Outbound sync events: whenever a guest or their grants change, an event per configured
//! target is written in the same transaction (the outbox), carrying a snapshot of the guest
//! as it now stands. The worker in `connectors::worker` delivers them.

use chrono::Utc;
use serde_json::{json, Value};

use super::{Deps, ServiceError};
use crate::clock::{from_millis, to_millis, to_rfc3339};
use crate::domain::GuestState;
use crate::store::guests as guest_store;
use crate::store::sync_outbox::{self, NewSyncEvent};
use crate::store::Tx;

/// The event kinds, as sent.
pub fn kind_for(state: Option<GuestState>) -> &'static str {
    match state {
        Some(GuestState::Removed) => "guest_removed",
        Some(GuestState::Suspended(_)) => "guest_suspended",
        _ => "guest_upserted",
    }
}

/// The guest as targets see it (the `guest` of an event), or None when there is no guest.
pub async fn snapshot(
    conn: &mut sqlx::AnyConnection,
    deps: &Deps,
    guest_id: &str,
) -> Result<Option<Value>, ServiceError> {
    let Some(guest) = guest_store::get(conn, guest_id).await? else {
        return Ok(None);
    };
    let state: Option<GuestState> = guest.state.parse().ok();
    let now = deps.now_ms();
    let grants: Vec<Value> = guest_store::grants(conn, guest_id)
        .await?
        .into_iter()
        .filter(|g| g.valid_until.is_none_or(|u| u > now))
        .map(|g| json!({"app": g.app_id, "role": g.role, "valid_until": g.valid_until.map(|t| to_rfc3339(from_millis(t)))}))
        .collect();
    let (given, family) =
        match crate::store::users::get(conn, &guest.partner_id, &guest.user_id).await? {
            Some(u) => {
                let doc: Value = serde_json::from_str(&u.doc).unwrap_or_default();
                (
                    doc.pointer("/name/givenName")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    doc.pointer("/name/familyName")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                )
            }
            None => (None, None),
        };
    let partner = super::invitations::partner_of(conn, &guest).await?;
    let simple_state = match state {
        Some(GuestState::Suspended(_)) => "suspended".to_string(),
        Some(s) => s.to_string(),
        None => guest.state.clone(),
    };
    Ok(Some(json!({
        "guest_id": guest.id, "partner": partner.slug.as_str(), "user_name": guest.user_name,
        "email": guest.email, "display_name": guest.display_name, "given_name": given, "family_name": family,
        "state": simple_state, "grants": grants,
    })))
}

/// Queue an event with the guest's current snapshot for every target (none configured: no-op).
pub async fn emit(tx: &mut Tx, deps: &Deps, guest_id: &str) -> Result<(), ServiceError> {
    if deps.portal.sync_targets.is_empty() {
        return Ok(());
    }
    let Some(guest) = snapshot(tx, deps, guest_id).await? else {
        return Ok(());
    };
    let state: Option<GuestState> = match guest["state"].as_str() {
        Some("suspended") => Some(GuestState::Suspended(
            crate::domain::SuspendReason::Deactivated,
        )),
        Some(s) => s.parse().ok(),
        None => None,
    };
    let now = deps.now_ms();
    let kind = kind_for(state);
    for target in &deps.portal.sync_targets {
        let event_id = uuid::Uuid::new_v4().to_string();
        let payload = json!({
            "event_id": event_id,
            "kind": kind,
            "occurred_at": to_rfc3339(from_millis(now)),
            "guest": guest,
        });
        sync_outbox::insert(
            tx,
            &NewSyncEvent {
                id: &event_id,
                target,
                guest_id,
                kind,
                payload: &payload.to_string(),
                now,
                due: to_millis(Utc::now()),
            },
        )
        .await?;
    }
    deps.portal.sync_queued.notify_one();
    Ok(())
}
