//! What an administrator does to one guest: suspend, resume, remove now, extend one app's
//! grants, revoke one app's grants. Each is one transaction with the person and the guest
//! locked (in the order a SCIM write takes them), audited, and tells the sync targets
//! through the same paths as the jobs and the rules (`access::apply`, `lifecycle`).
//! Suspensions, extensions and revocations are recorded where the next decision of the rules
//! reads them (the guest's state, `grant_overrides`), so no reconcile undoes them.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use super::access::{self, Applied};
use super::grant_overrides::{EXTENDED, REVOKED};
use super::invitations::{audit_entry, partner_of};
use super::users::{reconcile_user, Known};
use super::{lifecycle, Actor, Deps, ServiceError};
use crate::clock::{from_millis, to_millis, to_rfc3339};
use crate::domain::lifecycle::{Event, GuestState, SuspendReason};
use crate::mapping::RuleSet;
use crate::scim_core::error::ScimError;
use crate::store::audit;
use crate::store::guests::{self as guest_store, GrantRow, GuestRow};
use crate::store::invitations as inv_store;
use crate::store::overrides;
use crate::store::users::{self as user_store, UserRow};
use crate::store::work::Work;

/// Longest reason an administrator may give for a suspension.
const MAX_REASON: usize = 500;

fn invalid(message: impl Into<String>) -> ServiceError {
    ScimError::invalid_value(message.into()).into()
}

/// The guest `id` and its person, both locked in `w`: the person first, as a SCIM write
/// takes them, so the two never wait on each other in a cycle.
async fn lock_person_and_guest(
    w: &mut Work,
    id: &str,
) -> Result<(UserRow, GuestRow), ServiceError> {
    let conn = w.conn().await?;
    let seen = guest_store::get(&mut *conn, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let person = user_store::get_locked(&mut *conn, &seen.partner_id, &seen.user_id)
        .await?
        .ok_or_else(|| ServiceError::Conflict("the partner no longer sends this person".into()))?;
    let guest = access::lock(conn, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    Ok((person, guest))
}

/// Let the rules decide again about the person of `guest`, in `w` (they respect the
/// administrator's overrides); a guest who ends up invited without an open link gets one.
async fn decide_again(
    w: &mut Work,
    deps: &Deps,
    actor: &Actor,
    person: &UserRow,
    via: &str,
) -> Result<GuestRow, ServiceError> {
    let doc = super::stored::document(&person.doc, "user", &person.id)?;
    let partner = {
        let conn = w.conn().await?;
        crate::store::partners::list(conn)
            .await?
            .into_iter()
            .find(|p| p.id == person.partner_id)
            .ok_or_else(|| ServiceError::Corrupt(format!("user {} has no partner", person.id)))?
    };
    let outcome =
        reconcile_user(w, deps, actor, &partner, person, &doc, via, Known::NOTHING).await?;
    let guest = outcome
        .guest
        .ok_or_else(|| ServiceError::Corrupt("a reconciled guest vanished".into()))?;
    if super::stored::guest_state(&guest)? == GuestState::Invited {
        let now = deps.now_ms();
        let open = inv_store::for_guest(w.conn().await?, &guest.id)
            .await?
            .iter()
            .any(|i| i.is_open(now));
        if !open {
            super::invitations::issue(w, deps, actor, &guest, &outcome.grants, &partner).await?;
        }
    }
    Ok(guest)
}

/// Suspend a guest now: access ends (open links, portal sessions), the targets are told, and
/// only [`resume`] lifts it.
pub async fn suspend(
    deps: &Deps,
    actor: &Actor,
    id: &str,
    reason: Option<&str>,
) -> Result<GuestRow, ServiceError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > MAX_REASON || r.chars().any(char::is_control)) {
        return Err(invalid(format!(
            "reason is at most {MAX_REASON} characters without control characters"
        )));
    }
    let mut tx = deps.db.begin_write().await?;
    let guest = access::lock(&mut tx, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let detail = json!({"reason": reason});
    match access::apply(
        &mut tx,
        deps,
        actor,
        "admin:suspend",
        &guest,
        Event::AdminSuspend,
        detail,
        |_| {},
    )
    .await?
    {
        Applied::Changed { guest, .. } => {
            tx.commit().await?;
            Ok(*guest)
        }
        Applied::Unchanged => Err(ServiceError::Conflict(
            "this guest is already suspended by an administrator".into(),
        )),
        Applied::Refused(e) => Err(ServiceError::Conflict(e.to_string())),
    }
}

/// Lift an administrator's suspension: the guest returns to where they had got to, and the
/// rules decide again from there (a person the partner deactivated meanwhile stays suspended).
pub async fn resume(deps: &Deps, actor: &Actor, id: &str) -> Result<GuestRow, ServiceError> {
    let mut w = Work::begin(&deps.db);
    let (person, guest) = lock_person_and_guest(&mut w, id).await?;
    if super::stored::guest_state(&guest)? != GuestState::Suspended(SuspendReason::Admin) {
        return Err(ServiceError::Conflict(format!(
            "only a guest suspended by an administrator can be resumed; this guest is {}",
            guest.state
        )));
    }
    let event = Event::AdminResume {
        redeemed: guest.redeemed_at.is_some(),
        approved: guest.approved,
    };
    access::apply(
        w.conn().await?,
        deps,
        actor,
        "admin:resume",
        &guest,
        event,
        json!({}),
        |_| {},
    )
    .await?;
    let guest = decide_again(&mut w, deps, actor, &person, "admin:resume").await?;
    w.commit().await?;
    Ok(guest)
}

/// Remove a guest now, as when the partner deletes the person: every grant goes, the guest
/// is removed (final), links and sessions end and the targets are told.
pub async fn remove(deps: &Deps, actor: &Actor, id: &str) -> Result<GuestRow, ServiceError> {
    let mut w = Work::begin(&deps.db);
    let (_, guest) = lock_person_and_guest(&mut w, id).await?;
    if super::stored::guest_state(&guest)? == GuestState::Removed {
        return Err(ServiceError::Conflict(
            "this guest is already removed".into(),
        ));
    }
    let cause = lifecycle::Cause {
        actor,
        via: "admin:remove",
    };
    lifecycle::remove_for_user(&mut w, deps, &guest.user_id, &cause).await?;
    let removed = guest_store::get(w.conn().await?, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    w.commit().await?;
    Ok(removed)
}

/// The guest's grants of `app` an administrator may still change (not revoked).
fn grants_of_app<'a>(grants: &'a [GrantRow], app: &str) -> Vec<&'a GrantRow> {
    grants
        .iter()
        .filter(|g| g.app_id == app && g.ends_by.as_deref() != Some(REVOKED))
        .collect()
}

/// The latest end the rules and the partner policy allow for these grants (the earliest of
/// their declared maxima), `None` when none declares one.
pub fn extension_bound(
    rules: &RuleSet,
    partner_slug: &str,
    guest: &GuestRow,
    grants: &[&GrantRow],
) -> Option<DateTime<Utc>> {
    let start = from_millis(guest.invited_at.unwrap_or(guest.created_at));
    let after_days = |days: u32| start + Duration::days(i64::from(days));
    let mut bounds: Vec<DateTime<Utc>> = Vec::new();
    if let Some(days) = rules
        .partners
        .iter()
        .find(|p| p.slug == partner_slug)
        .and_then(|p| p.max_access_days)
    {
        bounds.push(after_days(days));
    }
    for g in grants {
        if let Some(rule) = rules.rules.iter().find(|r| r.id == g.rule_id) {
            bounds.extend(rule.access_days.map(after_days));
            bounds.extend(rule.access_until);
        }
    }
    bounds.into_iter().min()
}

/// Extend every grant of `app` to `until`, within the maxima the rules and the partner's
/// policy declare. The guest is decided again (an expired guest regains access).
pub async fn extend(
    deps: &Deps,
    actor: &Actor,
    id: &str,
    app: &str,
    until: DateTime<Utc>,
) -> Result<GuestRow, ServiceError> {
    let now = deps.clock.now();
    if until <= now {
        return Err(invalid("until must be in the future"));
    }
    let mut w = Work::begin(&deps.db);
    let (person, guest) = lock_person_and_guest(&mut w, id).await?;
    if super::stored::guest_state(&guest)? == GuestState::Removed {
        return Err(ServiceError::Conflict(
            "this guest is removed; nothing can be extended".into(),
        ));
    }
    let grants = guest_store::grants(w.conn().await?, id).await?;
    let of_app = grants_of_app(&grants, app);
    if of_app.is_empty() {
        return Err(ServiceError::Conflict(format!(
            "this guest has no grant of app {app:?} to extend"
        )));
    }
    let rules = super::rules_watch::in_force(&mut w, deps).await?;
    let partner = partner_of(w.conn().await?, &guest).await?;
    if let Some(bound) = extension_bound(&rules, partner.slug.as_str(), &guest, &of_app) {
        if until > bound {
            return Err(invalid(format!(
                "until may be at most {} (the maximum the rules and partner policy allow)",
                to_rfc3339(bound)
            )));
        }
    }
    let until_ms = to_millis(until);
    let before: Vec<Option<i64>> = of_app.iter().map(|g| g.valid_until).collect();
    let conn = w.conn().await?;
    overrides::set_app_end(conn, id, app, until_ms, EXTENDED, None).await?;
    let detail = json!({"app": app, "from": before, "to": until_ms,
                        "cause": {"via": "admin:extend", "actor": actor.label, "request_id": actor.request_id}});
    audit::append(
        conn,
        &audit_entry(actor, &guest, "grant.extended", detail),
        deps.now_ms(),
    )
    .await?;
    let guest = decide_again(&mut w, deps, actor, &person, "admin:extend").await?;
    w.commit().await?;
    Ok(guest)
}

/// Revoke every grant of `app` now. The guest keeps their other grants; with none left, they
/// are suspended as expired, like a guest whose last grant ended.
pub async fn revoke_grant(
    deps: &Deps,
    actor: &Actor,
    id: &str,
    app: &str,
) -> Result<GuestRow, ServiceError> {
    let now_ms = deps.now_ms();
    let mut w = Work::begin(&deps.db);
    let (person, guest) = lock_person_and_guest(&mut w, id).await?;
    if super::stored::guest_state(&guest)? == GuestState::Removed {
        return Err(ServiceError::Conflict(
            "this guest is removed; nothing can be revoked".into(),
        ));
    }
    let grants = guest_store::grants(w.conn().await?, id).await?;
    if grants_of_app(&grants, app).is_empty() {
        return Err(ServiceError::Conflict(format!(
            "this guest has no grant of app {app:?} to revoke"
        )));
    }
    let conn = w.conn().await?;
    overrides::set_app_end(conn, id, app, now_ms, REVOKED, Some(now_ms)).await?;
    let detail = json!({"app": app,
                        "cause": {"via": "admin:revoke", "actor": actor.label, "request_id": actor.request_id}});
    audit::append(
        conn,
        &audit_entry(actor, &guest, "grant.revoked", detail),
        now_ms,
    )
    .await?;
    let guest = decide_again(&mut w, deps, actor, &person, "admin:revoke").await?;
    w.commit().await?;
    Ok(guest)
}
