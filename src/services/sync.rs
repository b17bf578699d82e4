//! Outbound sync events: whenever what targets know of a guest changes (state, grants,
//! names, address), an event per configured target is written in the same transaction (the
//! outbox), carrying a snapshot of the guest as it now stands and the guest's event version.
//! The snapshot's digest is kept per guest (`store::guest_sync`), so a change that leaves the
//! snapshot as it was sends nothing, and any cause of change (SCIM, import, reload, job,
//! admin) only has to ask for the guest's events: it cannot send too few or too many.
//! The worker in `services::sync_sender` delivers them.

use chrono::Utc;
use serde_json::{json, Map, Value};

use super::{Actor, Deps, ServiceError};
use crate::clock::{from_millis, to_millis};
use crate::domain::sync_event::{EventKind, GrantSnapshot, GuestEvent, GuestSnapshot};
use crate::domain::GuestState;
use crate::store::guest_sync;
use crate::store::guests::{self as guest_store, GrantRow, GuestRow};
use crate::store::sync_outbox::{self, NewSyncEvent};
use crate::store::work::Work;

/// The event kinds, as sent.
pub fn kind_for(state: Option<GuestState>) -> EventKind {
    match state {
        Some(GuestState::Removed) => EventKind::GuestRemoved,
        Some(GuestState::Suspended(_)) => EventKind::GuestSuspended,
        _ => EventKind::GuestUpserted,
    }
}

/// The guest as targets see it (the `guest` of an event), from its record, its grants and
/// the person's names.
fn guest_snapshot(
    deps: &Deps,
    guest: &GuestRow,
    state: Option<GuestState>,
    grants: &[GrantRow],
    names: (Option<&str>, Option<&str>),
    partner: &str,
) -> GuestSnapshot {
    let now = deps.now_ms();
    let grants = grants
        .iter()
        .filter(|g| g.valid_until.is_none_or(|u| u > now))
        .map(|g| GrantSnapshot {
            app: g.app_id.clone(),
            role: g.role.clone(),
            valid_until: g.valid_until.map(from_millis),
        })
        .collect();
    let simple_state = match state {
        Some(GuestState::Suspended(_)) => "suspended".to_string(),
        Some(s) => s.to_string(),
        None => guest.state.clone(),
    };
    GuestSnapshot {
        guest_id: guest.id.clone(),
        partner: partner.to_string(),
        user_name: guest.user_name.clone(),
        email: guest.email.clone(),
        display_name: guest.display_name.clone(),
        given_name: names.0.map(str::to_string),
        family_name: names.1.map(str::to_string),
        state: simple_state,
        grants,
        version: 0,
    }
}

/// The guest as targets see it, read from the database, or None when there is no guest.
pub async fn snapshot(
    conn: &mut sqlx::AnyConnection,
    deps: &Deps,
    guest_id: &str,
) -> Result<Option<GuestSnapshot>, ServiceError> {
    Ok(read(conn, deps, guest_id)
        .await?
        .map(|(_, snapshot)| snapshot))
}

async fn read(
    conn: &mut sqlx::AnyConnection,
    deps: &Deps,
    guest_id: &str,
) -> Result<Option<(Option<GuestState>, GuestSnapshot)>, ServiceError> {
    let Some(guest) = guest_store::get(conn, guest_id).await? else {
        return Ok(None);
    };
    Ok(Some(read_for(conn, deps, &guest).await?))
}

/// The snapshot of a guest already read, with its grants and the person's names.
async fn read_for(
    conn: &mut sqlx::AnyConnection,
    deps: &Deps,
    guest: &GuestRow,
) -> Result<(Option<GuestState>, GuestSnapshot), ServiceError> {
    let state: Option<GuestState> = guest.state.parse().ok();
    let grants = guest_store::grants(conn, &guest.id).await?;
    let doc: Map<String, Value> =
        match crate::store::users::get(conn, &guest.partner_id, &guest.user_id).await? {
            Some(u) => serde_json::from_str(&u.doc).unwrap_or_default(),
            None => Map::new(),
        };
    let partner = super::invitations::partner_of(conn, guest).await?;
    let snapshot = guest_snapshot(
        deps,
        guest,
        state,
        &grants,
        names(&doc),
        partner.slug.as_str(),
    );
    Ok((state, snapshot))
}

/// The person's given and family names, for the snapshot.
fn names(doc: &Map<String, Value>) -> (Option<&str>, Option<&str>) {
    let name = |key: &str| {
        doc.get("name")
            .and_then(|n| n.get(key))
            .and_then(Value::as_str)
    };
    (name("givenName"), name("familyName"))
}

/// One event to write for a target.
struct Event<'a> {
    target: &'a str,
    id: String,
    kind: EventKind,
    payload: String,
    now: i64,
    due: i64,
}

impl Event<'_> {
    fn row<'b>(&'b self, guest_id: &'b str) -> NewSyncEvent<'b> {
        NewSyncEvent {
            id: &self.id,
            target: self.target,
            guest_id,
            kind: self.kind.as_str(),
            payload: &self.payload,
            now: self.now,
            due: self.due,
        }
    }
}

/// The digest of a snapshot: what the targets were told, to compare the next one with.
/// Taken before the event version is set, so an unchanged guest digests the same.
fn digest(snapshot: &GuestSnapshot) -> String {
    use sha2::Digest as _;
    let text = serde_json::to_string(snapshot).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The events for every target (none configured: none), at event version `version`.
fn events<'a>(
    deps: &'a Deps,
    state: Option<GuestState>,
    guest: &GuestSnapshot,
    version: i64,
) -> Vec<Event<'a>> {
    let now = deps.now_ms();
    // Delivery runs on the wall clock even when a job runs at another instant.
    let due = to_millis(Utc::now());
    let kind = kind_for(state);
    let guest = GuestSnapshot {
        version,
        ..guest.clone()
    };
    deps.portal
        .sync_targets
        .iter()
        .map(|target| {
            let id = crate::store::new_row_id();
            let payload = serde_json::to_string(&GuestEvent {
                event_id: id.clone(),
                kind,
                occurred_at: from_millis(now),
                guest: guest.clone(),
            })
            .unwrap_or_default();
            Event {
                target,
                id,
                kind,
                payload,
                now,
                due,
            }
        })
        .collect()
}

/// Queue an event for every target with the guest's current snapshot, read from the
/// database, when it differs from what the targets were last told (always when `force`).
/// Returns whether events were queued.
pub async fn emit_current(
    conn: &mut sqlx::AnyConnection,
    deps: &Deps,
    guest_id: &str,
    force: bool,
) -> Result<bool, ServiceError> {
    if deps.portal.sync_targets.is_empty() {
        return Ok(false);
    }
    let Some((state, guest)) = read(conn, deps, guest_id).await? else {
        return Ok(false);
    };
    let Some(version) =
        guest_sync::advance(conn, guest_id, &digest(&guest), deps.now_ms(), force).await?
    else {
        return Ok(false);
    };
    for e in events(deps, state, &guest, version) {
        sync_outbox::insert(conn, &e.row(guest_id)).await?;
    }
    deps.portal.sync_queued.notify_one();
    Ok(true)
}

/// Queue the guest's events if what targets know of them changed (see [`emit_current`]).
pub async fn emit(
    conn: &mut sqlx::AnyConnection,
    deps: &Deps,
    guest_id: &str,
) -> Result<(), ServiceError> {
    emit_current(conn, deps, guest_id, false).await.map(|_| ())
}

/// Queue, in `w`, the guest's events as reconciliation left them, if what targets know of
/// them changed. A guest created in this unit needs no read: its first state is queued
/// with it, so a SCIM create still only queues inserts (and joins a group commit).
pub async fn emit_known(
    w: &mut Work,
    deps: &Deps,
    partner: &str,
    guest: &GuestRow,
    grants: &[GrantRow],
    doc: &Map<String, Value>,
    created: bool,
) -> Result<(), ServiceError> {
    if deps.portal.sync_targets.is_empty() {
        return Ok(());
    }
    let state: Option<GuestState> = guest.state.parse().ok();
    let snapshot = guest_snapshot(deps, guest, state, grants, names(doc), partner);
    let digest = digest(&snapshot);
    let version = if created {
        guest_sync::queue_first(w, &guest.id, &digest, deps.now_ms());
        1
    } else {
        let conn = w.conn().await?;
        match guest_sync::advance(conn, &guest.id, &digest, deps.now_ms(), false).await? {
            Some(v) => v,
            None => return Ok(()),
        }
    };
    for e in events(deps, state, &snapshot, version) {
        sync_outbox::queue(w, &e.row(&guest.id));
    }
    deps.portal.sync_queued.notify_one();
    Ok(())
}

/// The queue of one target: (target, pending, dead, oldest pending at, epoch ms).
pub type TargetDepth = (String, i64, i64, Option<i64>);

/// What an admin sees of outbound sync: queue depth per target and the latest dead letters
/// (at most `dead_limit`).
pub async fn overview(
    deps: &Deps,
    dead_limit: i64,
) -> Result<(Vec<TargetDepth>, Vec<sync_outbox::SyncEvent>), ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let depth = sync_outbox::depth(&mut conn).await?;
    let dead = sync_outbox::dead(&mut conn, dead_limit).await?;
    Ok((depth, dead))
}

/// An admin replays a dead letter: its target is sent the guest's *current* state as a new
/// event (the dead one's snapshot may be older than what was delivered since, and re-sending
/// it could grant again what was taken away), the dead letter is marked replayed, and the
/// replay is audited. Returns the new event's id.
pub async fn replay(deps: &Deps, actor: &Actor, event_id: &str) -> Result<String, ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let dead = sync_outbox::dead_letter(&mut tx, event_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let Some(guest_row) = guest_store::get_locked(&mut tx, &dead.guest_id).await? else {
        return Err(ServiceError::Conflict(format!(
            "guest {} of this event no longer exists",
            dead.guest_id
        )));
    };
    let (state, guest) = read_for(&mut tx, deps, &guest_row).await?;
    let version = guest_sync::advance(&mut tx, &dead.guest_id, &digest(&guest), now, true)
        .await?
        .unwrap_or_default();
    let Some(event) = events(deps, state, &guest, version)
        .into_iter()
        .find(|e| e.target == dead.target)
    else {
        return Err(ServiceError::Conflict(format!(
            "no target named {:?} is configured",
            dead.target
        )));
    };
    sync_outbox::insert(&mut tx, &event.row(&dead.guest_id)).await?;
    sync_outbox::mark_replayed(&mut tx, event_id, now).await?;
    crate::store::audit::append(
        &mut tx,
        &super::invitations::audit_entry(
            actor,
            &guest_row,
            "sync.replayed",
            json!({"target": dead.target, "dead_letter": event_id, "event": event.id,
                   "version": version, "last_error": dead.last_error}),
        ),
        now,
    )
    .await?;
    tx.commit().await?;
    deps.portal.sync_queued.notify_one();
    Ok(event.id)
}
