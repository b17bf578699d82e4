//! Invitations: a 256-bit single-use link, stored only as a hash, mailed through the
//! outbox in the same transaction; and what a guest does with it (accept with consent,
//! decline).

use chrono::Duration;
use serde_json::{json, Map, Value};

use super::lifecycle::Outcome;
use super::mailer::{self, MailRequest};
use super::{Actor, Deps, ServiceError};
use crate::auth::secrets::{hash_token, random_token};
use crate::clock::from_millis;
use crate::domain::lifecycle::{transition, Event, GuestState};
use crate::domain::Partner;
use crate::mail::templates::invitation_variant;
use crate::store::audit::{self, AuditEntry};
use crate::store::guests::{self as guest_store, GrantRow, GuestRow};
use crate::store::invitations::{self as inv_store, InvitationRow};
use crate::store::work::Work;
use crate::store::{partners as partner_store, Tx};

/// The version of the consent text shown on the invitation page; recorded with each decision.
pub const CONSENT_VERSION: &str = "2026-11-v1";

pub(crate) fn audit_entry<'a>(
    actor: &'a Actor,
    guest: &'a GuestRow,
    action: &'a str,
    detail: Value,
) -> AuditEntry<'a> {
    AuditEntry {
        actor: &actor.label,
        partner_id: Some(&guest.partner_id),
        action,
        target_type: "guest",
        target_id: Some(&guest.id),
        request_id: actor.request_id.as_deref(),
        detail,
    }
}

fn queue_audit(
    w: &mut Work,
    actor: &Actor,
    guest: &GuestRow,
    action: &str,
    detail: Value,
    now: i64,
) {
    audit::queue(w, &audit_entry(actor, guest, action, detail), now);
}

pub(crate) async fn audit_guest(
    tx: &mut Tx,
    actor: &Actor,
    guest: &GuestRow,
    action: &str,
    detail: Value,
    now: i64,
) -> Result<(), ServiceError> {
    audit::append(tx, &audit_entry(actor, guest, action, detail), now).await?;
    Ok(())
}

/// Apps a guest is granted, for mails and pages: (app, roles, latest end).
pub(crate) async fn granted_apps(
    tx: &mut sqlx::AnyConnection,
    deps: &Deps,
    guest_id: &str,
) -> Result<Vec<Value>, ServiceError> {
    let grants = guest_store::grants(tx, guest_id).await?;
    Ok(apps_of(deps, &grants))
}

/// Apps the given grants give, for mails and pages: (app, roles, latest end).
fn apps_of(deps: &Deps, grants: &[GrantRow]) -> Vec<Value> {
    let rules = deps.rules();
    let now = deps.now_ms();
    let mut apps: Vec<Value> = Vec::new();
    for g in grants
        .iter()
        .filter(|g| g.valid_until.is_none_or(|u| u > now))
    {
        let Some(app) = rules.app(&g.app_id) else {
            continue;
        };
        let ends = g
            .valid_until
            .map(|t| from_millis(t).format("%-d %B %Y").to_string());
        if let Some(existing) = apps.iter_mut().find(|a| a["id"] == app.id) {
            if let Some(roles) = existing["roles_list"].as_array_mut() {
                if !roles.contains(&json!(g.role)) {
                    roles.push(json!(g.role));
                }
            }
            continue;
        }
        apps.push(json!({
            "id": app.id, "name": app.name, "description": app.description, "icon": app.icon,
            "launch_url": app.launch_url, "roles_list": [g.role], "ends": ends,
        }));
    }
    for a in apps.iter_mut() {
        let joined = a["roles_list"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        a["roles"] = json!(joined);
    }
    apps
}

/// Issue a new invitation (voiding open ones) and queue its mail, in `tx`.
pub async fn issue(
    w: &mut Work,
    deps: &Deps,
    actor: &Actor,
    guest: &GuestRow,
    grants: &[GrantRow],
    partner: &Partner,
) -> Result<Option<String>, ServiceError> {
    issue_in(w, deps, actor, guest, grants, partner, false).await
}

/// [`issue`], for a guest created in this unit of work (`new_guest`: no invitation to void).
async fn issue_in(
    w: &mut Work,
    deps: &Deps,
    actor: &Actor,
    guest: &GuestRow,
    grants: &[GrantRow],
    partner: &Partner,
    new_guest: bool,
) -> Result<Option<String>, ServiceError> {
    let now = deps.now_ms();
    if !new_guest {
        inv_store::revoke_open(w.conn().await?, &guest.id, now).await?;
    }
    let token = random_token(32);
    let expires_at =
        now + Duration::days(i64::from(deps.portal.invitation_days)).num_milliseconds();
    let invitation = InvitationRow {
        id: crate::store::new_row_id(),
        guest_id: guest.id.clone(),
        token_hash: hash_token(&token),
        created_at: now,
        expires_at,
        used_at: None,
        revoked_at: None,
        reminders_sent: 0,
        last_reminder_at: None,
    };
    let first_reminder =
        now + Duration::days(i64::from(deps.portal.reminder_after_days)).num_milliseconds();
    inv_store::queue_insert(w, &invitation, Some(first_reminder));
    let Some(email) = guest.email.as_deref() else {
        queue_audit(
            w,
            actor,
            guest,
            "invitation.not_sent",
            json!({"invitation": invitation.id, "reason": "the person has no email address"}),
            now,
        );
        return Ok(None);
    };
    let apps = apps_of(deps, grants);
    let context = json!({
        "guest_name": guest.display_name.clone().unwrap_or_else(|| guest.user_name.clone()),
        "inviter": deps.portal.organization,
        "partner_name": partner.name,
        "apps": apps,
        "link": format!("{}/invite/{token}", deps.portal.public_url),
        "expires_at": from_millis(expires_at).format("%-d %B %Y").to_string(),
        "sponsor": guest.sponsor,
    });
    // A rule may name a template that no file provides (`mappings check` reports it); the
    // guest is still invited, with the standard text, and the gap is logged for the operator.
    let template = match guest.template.as_deref().map(invitation_variant) {
        Some(t)
            if deps.portal.templates.has(
                &t,
                Some(partner.slug.as_str()),
                guest.language.as_deref(),
            ) =>
        {
            t
        }
        Some(t) => {
            tracing::warn!(
                template = t,
                "mail template named by a rule is missing; using the standard invitation"
            );
            "invitation".to_string()
        }
        None => "invitation".to_string(),
    };
    mailer::queue_new(
        w,
        deps,
        MailRequest {
            to: email,
            template: &template,
            partner: Some(partner.slug.as_str()),
            language: guest.language.as_deref(),
            context,
            idempotency_key: format!("invitation:{}", invitation.id),
            guest_id: Some(&guest.id),
        },
    )?;
    queue_audit(
        w,
        actor,
        guest,
        "invitation.issued",
        json!({"invitation": invitation.id, "expires_at": expires_at}),
        now,
    );
    Ok(Some(invitation.id))
}

/// After reconciliation: invite a guest who just became invitable; end the access of one
/// who was suspended or removed (open invitations voided, sessions ended).
/// `doc` is the person's document (for the names that sync events carry).
pub async fn after_reconcile(
    w: &mut Work,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    outcome: &Outcome,
    doc: &Map<String, Value>,
) -> Result<(), ServiceError> {
    let (Some(guest), Some(to)) = (&outcome.guest, &outcome.to) else {
        return Ok(());
    };
    // Every reconciliation asks: a change of name or address matters to targets as much as
    // one of state or grants, and an unchanged snapshot sends nothing.
    super::sync::emit_known(
        w,
        deps,
        partner.slug.as_str(),
        guest,
        &outcome.grants,
        doc,
        outcome.created,
    )
    .await?;
    if outcome.from.as_deref() == Some(to.as_str()) && !outcome.created {
        return Ok(());
    }
    let guest_id = &guest.id;
    match super::stored::guest_state(guest)? {
        GuestState::Invited => {
            let open = !outcome.created
                && inv_store::for_guest(w.conn().await?, guest_id)
                    .await?
                    .iter()
                    .any(|i| i.is_open(deps.now_ms()));
            if !open {
                issue_in(
                    w,
                    deps,
                    actor,
                    guest,
                    &outcome.grants,
                    partner,
                    outcome.created,
                )
                .await?;
            }
        }
        GuestState::Suspended(_) | GuestState::Removed => {
            super::access::end_access(w.conn().await?, guest_id, deps.now_ms()).await?;
        }
        GuestState::PendingApproval | GuestState::Active => {}
    }
    Ok(())
}

/// An admin invites a guest again: a new link, the old one void. A guest suspended for a
/// reason of their own (declined, let the invitation lapse, went inactive) is restored to
/// invited through the state machine, provided the partner still sends the person and the
/// rules still grant something; other suspensions end when their cause does.
pub async fn resend(deps: &Deps, actor: &Actor, guest_id: &str) -> Result<(), ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let mut guest = guest_store::get_locked(&mut tx, guest_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let grants = guest_store::grants(&mut tx, guest_id).await?;
    let state = super::stored::guest_state(&guest)?;
    if state != GuestState::Invited {
        let person_active = crate::store::users::get(&mut tx, &guest.partner_id, &guest.user_id)
            .await?
            .is_some_and(|u| u.active);
        let granted = grants.iter().any(|g| g.valid_until.is_none_or(|u| u > now));
        if !person_active || !granted {
            return Err(ServiceError::Conflict(format!(
                "this guest is {} and cannot be invited again: {}",
                guest.state,
                if person_active {
                    "the rules grant them nothing now"
                } else {
                    "the partner no longer sends this person as active"
                }
            )));
        }
        match super::access::apply(
            &mut tx,
            deps,
            actor,
            "admin:reinvite",
            &guest,
            Event::Reinvite,
            json!({}),
            |g| {
                g.invited_at = Some(now);
                // They redeem the new invitation; until then they have not.
                g.redeemed_at = None;
            },
        )
        .await?
        {
            super::access::Applied::Changed { guest: g, .. } => guest = *g,
            _ => {
                return Err(ServiceError::Conflict(format!(
                    "only invited guests and guests suspended as declined, lapsed or inactive can be invited again; this guest is {}",
                    guest.state
                )))
            }
        }
    }
    let partner = partner_of(&mut tx, &guest).await?;
    let mut w = Work::from_tx(tx, &deps.db);
    issue(&mut w, deps, actor, &guest, &grants, &partner).await?;
    w.commit().await?;
    Ok(())
}

/// An admin voids a guest's open invitation.
pub async fn revoke(deps: &Deps, actor: &Actor, guest_id: &str) -> Result<u64, ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let guest = guest_store::get_locked(&mut tx, guest_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let n = inv_store::revoke_open(&mut tx, guest_id, now).await?;
    audit_guest(
        &mut tx,
        actor,
        &guest,
        "invitation.revoked",
        json!({"count": n}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(n)
}

pub(crate) async fn partner_of(
    conn: &mut sqlx::AnyConnection,
    guest: &GuestRow,
) -> Result<Partner, ServiceError> {
    partner_store::list(conn)
        .await?
        .into_iter()
        .find(|p| p.id == guest.partner_id)
        .ok_or_else(|| ServiceError::Corrupt(format!("guest {} has no partner", guest.id)))
}

/// What the invitation page shows.
#[derive(Debug, Clone)]
pub struct InvitationView {
    pub token_hash: String,
    pub guest: GuestRow,
    pub partner: Partner,
    pub apps: Vec<Value>,
}

/// Why a link does not work; the page says so without revealing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProblem {
    Unknown,
    Used,
    Revoked,
    Expired,
}

/// Look up an invitation link.
pub async fn open(
    deps: &Deps,
    token: &str,
) -> Result<Result<InvitationView, LinkProblem>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let hash = hash_token(token);
    let Some(inv) = inv_store::by_token_hash(&mut conn, &hash).await? else {
        return Ok(Err(LinkProblem::Unknown));
    };
    if inv.used_at.is_some() {
        return Ok(Err(LinkProblem::Used));
    }
    if inv.revoked_at.is_some() {
        return Ok(Err(LinkProblem::Revoked));
    }
    if inv.expires_at <= deps.now_ms() {
        return Ok(Err(LinkProblem::Expired));
    }
    let guest = guest_store::get(&mut conn, &inv.guest_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let partner = partner_of(&mut conn, &guest).await?;
    let apps = granted_apps(&mut conn, deps, &guest.id).await?;
    Ok(Ok(InvitationView {
        token_hash: hash,
        guest,
        partner,
        apps,
    }))
}

/// The guest's answer on the invitation page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Decline,
}

/// Record the answer; on accept, the guest is signed in (the caller sets the session cookie
/// from the returned secret). The link is used up either way.
pub async fn answer(
    deps: &Deps,
    token: &str,
    decision: Decision,
    consent_version: &str,
) -> Result<Result<Option<String>, LinkProblem>, ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let Some(inv) = inv_store::by_token_hash(&mut tx, &hash_token(token)).await? else {
        return Ok(Err(LinkProblem::Unknown));
    };
    if !inv_store::mark_used(&mut tx, &inv.id, now).await? {
        return Ok(Err(if inv.revoked_at.is_some() {
            LinkProblem::Revoked
        } else if inv.used_at.is_some() {
            LinkProblem::Used
        } else {
            LinkProblem::Expired
        }));
    }
    let guest = guest_store::get_locked(&mut tx, &inv.guest_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let actor = Actor {
        label: format!("guest:{}", guest.id),
        request_id: None,
    };
    inv_store::record_consent(
        &mut tx,
        &guest.id,
        now,
        consent_version,
        decision == Decision::Accept,
    )
    .await?;
    let state = super::stored::guest_state(&guest)?;
    match decision {
        Decision::Decline => {
            let new = transition(state, Event::Decline).unwrap_or(state);
            guest_store::update(
                &mut tx,
                &GuestRow {
                    state: new.to_string(),
                    updated_at: now,
                    ..guest.clone()
                },
            )
            .await?;
            audit_guest(&mut tx, &actor, &guest, "guest.state_changed", json!({"from": state.to_string(), "to": new.to_string(), "event": "Decline", "consent_version": consent_version}), now).await?;
            super::sync::emit(&mut tx, deps, &guest.id).await?;
            if let Some(sponsor) = guest.sponsor.as_deref() {
                let partner = partner_of(&mut tx, &guest).await?;
                mailer::queue(
                    &mut tx,
                    deps,
                    MailRequest {
                        to: sponsor,
                        template: "declined_notice",
                        partner: Some(partner.slug.as_str()),
                        language: None,
                        context: json!({"guest_name": guest.display_name.clone().unwrap_or_else(|| guest.user_name.clone()), "partner_name": partner.name}),
                        idempotency_key: format!("declined:{}", inv.id),
                        guest_id: Some(&guest.id),
                    },
                )
                .await?;
            }
            tx.commit().await?;
            Ok(Ok(None))
        }
        Decision::Accept => {
            audit_guest(
                &mut tx,
                &actor,
                &guest,
                "guest.consented",
                json!({"consent_version": consent_version, "invitation": inv.id}),
                now,
            )
            .await?;
            // Without MFA the guest has redeemed now; with MFA, once the first code is proven.
            if !guest.mfa_required {
                super::guest_auth::redeem(&mut tx, deps, &actor, &guest, now).await?;
            }
            let secret = super::guest_auth::start_session(
                &mut tx,
                &guest.id,
                now,
                !guest.mfa_required,
                super::guest_auth::SessionOrigin::Invitation,
            )
            .await?;
            tx.commit().await?;
            Ok(Ok(Some(secret)))
        }
    }
}
