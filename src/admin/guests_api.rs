//! `/api/v1/guests`: list, inspect, explain and approve guests.

use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AdminCaller, AdminError, Need};
use crate::app_state::AppState;
use crate::clock::{from_millis, to_rfc3339};
use crate::domain::{GuestState, Partner, PartnerSlug};
use crate::services::guests::{self, GuestQuery};
use crate::services::{lifecycle, rules};
use crate::store::guests::{GrantRow, GuestRow};

/// Largest page of guests.
const MAX_LIMIT: i64 = 500;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/guests", web::get().to(list_guests))
        .route("/guests/{id}", web::get().to(get_guest))
        .route("/guests/{id}/explain", web::get().to(explain_guest))
        .route("/guests/{id}/approve", web::post().to(approve_guest))
        .route("/guests/{id}/invitation", web::post().to(resend_invitation))
        .route("/guests/{id}/mfa/reset", web::post().to(reset_mfa))
        .route(
            "/guests/{id}/invitation",
            web::delete().to(revoke_invitation),
        );
}

fn time(ms: Option<i64>) -> Value {
    ms.map(|t| json!(to_rfc3339(from_millis(t))))
        .unwrap_or(Value::Null)
}

pub fn guest_json(g: &GuestRow, partner_slug: &str) -> Value {
    let state: Option<GuestState> = g.state.parse().ok();
    json!({
        "id": g.id,
        "partner": partner_slug,
        "user_id": g.user_id,
        "user_name": g.user_name,
        "email": g.email,
        "display_name": g.display_name,
        "state": state.map(|s| match s { GuestState::Suspended(_) => "suspended".to_string(), other => other.to_string() }),
        "suspended_reason": state.and_then(GuestState::suspend_reason).map(|r| r.as_str()),
        "approved": g.approved,
        "mfa_required": g.mfa_required,
        "sponsor": g.sponsor,
        "template": g.template,
        "language": g.language,
        "access_until": time(g.access_until),
        "invited_at": time(g.invited_at),
        "redeemed_at": time(g.redeemed_at),
        "created_at": time(Some(g.created_at)),
        "updated_at": time(Some(g.updated_at)),
        "rules_fingerprint": g.rules_fingerprint,
    })
}

fn grant_json(g: &GrantRow) -> Value {
    json!({
        "app": g.app_id,
        "role": g.role,
        "rule": g.rule_id,
        "valid_from": time(Some(g.valid_from)),
        "valid_until": time(g.valid_until),
        "ends_by": g.ends_by,
    })
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    partner: Option<String>,
    state: Option<String>,
    app: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

fn encode_cursor(g: &GuestRow) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", g.created_at, g.id))
}

fn decode_cursor(c: &str) -> Result<(i64, String), AdminError> {
    let bad = || AdminError::bad_request("invalid cursor");
    let raw =
        String::from_utf8(URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?).map_err(|_| bad())?;
    let (t, id) = raw.split_once(':').ok_or_else(bad)?;
    Ok((t.parse().map_err(|_| bad())?, id.to_string()))
}

const STATES: &[&str] = &[
    "pending_approval",
    "invited",
    "active",
    "suspended",
    "removed",
];

pub async fn list_guests(
    state: web::Data<AppState>,
    admin: AdminCaller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Read)?;
    let partner = query
        .partner
        .as_deref()
        .map(PartnerSlug::parse)
        .transpose()
        .map_err(|e| AdminError::bad_request(e.to_string()))?;
    if let Some(s) = &query.state {
        if !STATES.contains(&s.as_str()) && s.parse::<GuestState>().is_err() {
            return Err(AdminError::bad_request(format!(
                "state must be one of {}",
                STATES.join(", ")
            )));
        }
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let q = GuestQuery {
        partner,
        state: query.state.clone(),
        app: query.app.clone(),
        after: query.cursor.as_deref().map(decode_cursor).transpose()?,
        limit,
        scope_partner_id: admin.partner_scope().map(str::to_string),
        sponsor: admin.sponsor_scope().map(str::to_string),
    };
    let (total, rows) = guests::list(&state.deps, &q).await?;
    let partners = partner_slugs(&state).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(encode_cursor))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({
        "total": total,
        "guests": rows.iter().map(|g| guest_json(g, partners.iter().find(|p| p.id == g.partner_id).map(|p| p.slug.as_str()).unwrap_or(""))).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

async fn partner_slugs(state: &AppState) -> Result<Vec<Partner>, AdminError> {
    Ok(crate::services::partners::list_partners(&state.deps).await?)
}

pub async fn get_guest(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Read)?;
    let d = guests::get(&state.deps, &id).await?;
    admin.require_guest(&d.guest)?;
    let mut body = guest_json(&d.guest, d.partner.slug.as_str());
    body["grants"] = Value::Array(d.grants.iter().map(grant_json).collect());
    let now = state.deps.now_ms();
    body["invitations"] = Value::Array(
        d.invitations
            .iter()
            .map(|i| {
                let status = if i.used_at.is_some() {
                    "used"
                } else if i.revoked_at.is_some() {
                    "revoked"
                } else if i.expires_at <= now {
                    "expired"
                } else {
                    "open"
                };
                json!({"id": i.id, "status": status, "created_at": time(Some(i.created_at)), "expires_at": time(Some(i.expires_at)),
                       "used_at": time(i.used_at), "revoked_at": time(i.revoked_at), "reminders_sent": i.reminders_sent})
            })
            .collect(),
    );
    body["consent"] = match &d.consent {
        Some((at, version, accepted)) => {
            json!({"at": time(Some(*at)), "text_version": version, "accepted": accepted})
        }
        None => Value::Null,
    };
    body["mfa_enrolled"] = json!(d.mfa_enrolled);
    body["history"] = serde_json::to_value(
        d.history
            .iter()
            .map(|h| json!({"at": time(Some(h.at)), "actor": h.actor, "action": h.action, "request_id": h.request_id, "detail": h.detail}))
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    Ok(HttpResponse::Ok().json(body))
}

pub async fn explain_guest(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Read)?;
    let d = guests::get(&state.deps, &id).await?;
    admin.require_guest(&d.guest)?;
    let explanation = rules::explain_user(&state.deps, &d.partner, &d.guest.user_id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "guest": guest_json(&d.guest, d.partner.slug.as_str()),
        "rules_fingerprint": state.deps.rules().fingerprint,
        "explanation": explanation,
    })))
}

/// Issue a new invitation link (the old one stops working) and mail it.
pub async fn resend_invitation(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    visible_guest(&state, &admin, Need::ActOnGuests, &id).await?;
    crate::services::invitations::resend(&state.deps, &admin.actor, &id).await?;
    get_guest(state, admin, id).await
}

/// The guest lost their authenticator: remove it and end their sessions (audited); they
/// enrol again at their next sign-in. Answers the guest, with what the reset removed.
pub async fn reset_mfa(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    visible_guest(&state, &admin, Need::ManageGuests, &id).await?;
    let reset = crate::services::guest_mfa::reset_mfa(&state.deps, &admin.actor, &id).await?;
    let d = guests::get(&state.deps, &id).await?;
    let mut body = guest_json(&d.guest, d.partner.slug.as_str());
    body["mfa_enrolled"] = json!(d.mfa_enrolled);
    body["mfa_reset"] = json!({"was_enrolled": reset.was_enrolled, "sessions_ended": reset.sessions_ended, "passkeys_removed": reset.passkeys_removed});
    Ok(HttpResponse::Ok().json(body))
}

/// Void the guest's open invitation.
pub async fn revoke_invitation(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    visible_guest(&state, &admin, Need::ManageGuests, &id).await?;
    let n = crate::services::invitations::revoke(&state.deps, &admin.actor, &id).await?;
    Ok(HttpResponse::Ok().json(json!({"revoked": n})))
}

pub async fn approve_guest(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    visible_guest(&state, &admin, Need::ActOnGuests, &id).await?;
    let g = lifecycle::approve(&state.deps, &admin.actor, &id).await?;
    let partners = partner_slugs(&state).await?;
    let slug = partners
        .iter()
        .find(|p| p.id == g.partner_id)
        .map(|p| p.slug.as_str())
        .unwrap_or("");
    Ok(HttpResponse::Ok().json(guest_json(&g, slug)))
}

/// Before acting on a guest: 403 when the role may not act so, 404 when the guest is outside
/// the caller's scope (so its existence does not show).
pub(super) async fn visible_guest(
    state: &AppState,
    admin: &AdminCaller,
    need: Need,
    id: &str,
) -> Result<(), AdminError> {
    admin.require(need)?;
    let d = guests::get(&state.deps, id).await?;
    admin.require_guest(&d.guest)
}
