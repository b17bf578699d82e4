//! The one way a guest's state changes outside reconciliation (jobs, admin actions, the
//! guest's own answers): read the guest under lock, ask the state machine, write the row and
//! its audit entry, end open invitations and sessions when access ends, and queue the sync
//! targets' events, all in the caller's transaction. Reconciliation (`lifecycle::reconcile`
//! and `invitations::after_reconcile`) does the same for rule-driven changes in a `Work`.

use serde_json::{json, Value};
use sqlx::AnyConnection;

use super::invitations::audit_entry;
use super::{Actor, Deps, ServiceError};
use crate::domain::lifecycle::{transition, Event, GuestState, InvalidTransition};
use crate::store::audit;
use crate::store::guests::{self as guest_store, GuestRow};
use crate::store::{invitations as inv_store, sessions as session_store};

/// What applying an event did.
#[derive(Debug, Clone)]
pub enum Applied {
    /// The state changed; the guest as written.
    Changed {
        from: GuestState,
        to: GuestState,
        guest: Box<GuestRow>,
    },
    /// The event holds already (deactivating a deactivated guest).
    Unchanged,
    /// The event does not apply in the guest's state.
    Refused(InvalidTransition),
}

/// Whether a guest in `state` is in force: may use what they are granted, or is on the way
/// to (invited, waiting for approval). Leaving it ends links and sessions.
fn in_force(state: GuestState) -> bool {
    matches!(
        state,
        GuestState::Invited | GuestState::Active | GuestState::PendingApproval
    )
}

/// The guest `id`, locked for a change in this transaction (see `guests::get_locked`).
pub async fn lock(conn: &mut AnyConnection, id: &str) -> Result<Option<GuestRow>, ServiceError> {
    Ok(guest_store::get_locked(conn, id).await?)
}

/// Apply `event` to `guest` (read with [`lock`] in this transaction). `edit` adjusts the
/// written row beyond its state (the redemption time, say); `detail` is added to the audit
/// entry, whose `cause.via` says what caused the change.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    conn: &mut AnyConnection,
    deps: &Deps,
    actor: &Actor,
    via: &str,
    guest: &GuestRow,
    event: Event,
    detail: Value,
    edit: impl FnOnce(&mut GuestRow),
) -> Result<Applied, ServiceError> {
    let from = super::stored::guest_state(guest)?;
    let to = match transition(from, event) {
        Ok(to) => to,
        Err(refused) => return Ok(Applied::Refused(refused)),
    };
    if to == from {
        return Ok(Applied::Unchanged);
    }
    let now = deps.now_ms();
    let mut updated = GuestRow {
        state: to.to_string(),
        updated_at: now,
        ..guest.clone()
    };
    if to == GuestState::Removed {
        updated.access_until = None;
    }
    edit(&mut updated);
    guest_store::update(conn, &updated).await?;
    let mut detail = match detail {
        Value::Object(m) => Value::Object(m),
        _ => json!({}),
    };
    detail["from"] = json!(from.to_string());
    detail["to"] = json!(to.to_string());
    detail["event"] = json!(format!("{event:?}"));
    detail["cause"] = json!({"via": via, "actor": actor.label, "request_id": actor.request_id});
    audit::append(
        conn,
        &audit_entry(actor, &updated, "guest.state_changed", detail),
        now,
    )
    .await?;
    if !in_force(to) {
        end_access(conn, &updated.id, now).await?;
    }
    super::sync::emit(conn, deps, &updated.id).await?;
    Ok(Applied::Changed {
        from,
        to,
        guest: Box::new(updated),
    })
}

/// Access has ended: links not yet used stop working and the portal signs the guest out.
pub async fn end_access(
    conn: &mut AnyConnection,
    guest_id: &str,
    now: i64,
) -> Result<(), ServiceError> {
    inv_store::revoke_open(&mut *conn, guest_id, now).await?;
    session_store::delete_guest_sessions(conn, guest_id).await?;
    Ok(())
}

/// Some of a guest's grants have ended while others go on: audit each end and tell the sync
/// targets (the snapshot no longer lists them). `ended` holds (app, role, rule, end).
pub async fn grants_ended(
    conn: &mut AnyConnection,
    deps: &Deps,
    actor: &Actor,
    via: &str,
    guest: &GuestRow,
    ended: &[(&str, &str, &str, i64)],
) -> Result<bool, ServiceError> {
    let now = deps.now_ms();
    for (app, role, rule, until) in ended {
        let detail = json!({"app": app, "role": role, "rule": rule, "valid_until": until,
                            "cause": {"via": via, "actor": actor.label, "request_id": actor.request_id}});
        audit::append(conn, &audit_entry(actor, guest, "grant.ended", detail), now).await?;
    }
    super::sync::emit_current(conn, deps, &guest.id, false).await
}
