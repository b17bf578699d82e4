//! `/api/v1/guests`: list, inspect, explain and approve guests.

use actix_web::{web, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error_shape::ErrorBody;
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

fn time(ms: Option<i64>) -> Option<String> {
    ms.map(|t| to_rfc3339(from_millis(t)))
}

/// A guest as the admin API shows it; instants are RFC 3339.
#[derive(Debug, Serialize, ToSchema)]
pub struct GuestView {
    pub id: String,
    /// The partner's slug.
    pub partner: String,
    pub user_id: String,
    pub user_name: String,
    #[schema(required = true)]
    pub email: Option<String>,
    #[schema(required = true)]
    pub display_name: Option<String>,
    /// `pending_approval`, `invited`, `active`, `suspended` or `removed`.
    #[schema(required = true)]
    pub state: Option<String>,
    /// Why a suspended guest is suspended (`expired`, `admin`, …).
    #[schema(required = true)]
    pub suspended_reason: Option<&'static str>,
    pub approved: bool,
    pub mfa_required: bool,
    #[schema(required = true)]
    pub sponsor: Option<String>,
    #[schema(required = true)]
    pub template: Option<String>,
    #[schema(required = true)]
    pub language: Option<String>,
    #[schema(required = true)]
    pub access_until: Option<String>,
    #[schema(required = true)]
    pub invited_at: Option<String>,
    #[schema(required = true)]
    pub redeemed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[schema(required = true)]
    pub rules_fingerprint: Option<String>,
}

pub fn guest_json(g: &GuestRow, partner_slug: &str) -> GuestView {
    let state: Option<GuestState> = g.state.parse().ok();
    GuestView {
        id: g.id.clone(),
        partner: partner_slug.to_string(),
        user_id: g.user_id.clone(),
        user_name: g.user_name.clone(),
        email: g.email.clone(),
        display_name: g.display_name.clone(),
        state: state.map(|s| match s {
            GuestState::Suspended(_) => "suspended".to_string(),
            other => other.to_string(),
        }),
        suspended_reason: state
            .and_then(GuestState::suspend_reason)
            .map(|r| r.as_str()),
        approved: g.approved,
        mfa_required: g.mfa_required,
        sponsor: g.sponsor.clone(),
        template: g.template.clone(),
        language: g.language.clone(),
        access_until: time(g.access_until),
        invited_at: time(g.invited_at),
        redeemed_at: time(g.redeemed_at),
        created_at: to_rfc3339(from_millis(g.created_at)),
        updated_at: to_rfc3339(from_millis(g.updated_at)),
        rules_fingerprint: g.rules_fingerprint.clone(),
    }
}

/// One app role a rule grants the guest, with its window.
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    pub app: String,
    pub role: String,
    /// The rule that grants it.
    pub rule: String,
    pub valid_from: String,
    #[schema(required = true)]
    pub valid_until: Option<String>,
    /// What ends it (`rule_duration`, `partner_end_date`, `admin_revocation`, …).
    #[schema(required = true)]
    pub ends_by: Option<String>,
}

pub fn grant_json(g: &GrantRow) -> GrantView {
    GrantView {
        app: g.app_id.clone(),
        role: g.role.clone(),
        rule: g.rule_id.clone(),
        valid_from: to_rfc3339(from_millis(g.valid_from)),
        valid_until: time(g.valid_until),
        ends_by: g.ends_by.clone(),
    }
}

/// A guest with its grants: what each action on a guest answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct GuestWithGrants {
    #[serde(flatten)]
    pub guest: GuestView,
    pub grants: Vec<GrantView>,
}

/// One invitation link sent to the guest.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: String,
    /// `open`, `used`, `revoked` or `expired`.
    pub status: &'static str,
    pub created_at: String,
    pub expires_at: String,
    #[schema(required = true)]
    pub used_at: Option<String>,
    #[schema(required = true)]
    pub revoked_at: Option<String>,
    pub reminders_sent: i64,
}

/// The guest's latest consent decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentView {
    pub at: String,
    pub text_version: String,
    pub accepted: bool,
}

/// One audit entry about the guest.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub at: String,
    pub actor: String,
    pub action: String,
    #[schema(required = true)]
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A guest in full: grants, invitations, consent, MFA and history.
#[derive(Debug, Serialize, ToSchema)]
pub struct GuestDetailView {
    #[serde(flatten)]
    pub guest: GuestView,
    pub grants: Vec<GrantView>,
    pub invitations: Vec<InvitationView>,
    #[schema(required = true)]
    pub consent: Option<ConsentView>,
    pub mfa_enrolled: bool,
    pub history: Vec<HistoryEntry>,
}

/// A page of guests and how many match in all.
#[derive(Debug, Serialize, ToSchema)]
pub struct GuestList {
    pub total: i64,
    pub guests: Vec<GuestView>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// Why the rules grant the guest what they do.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExplainView {
    pub guest: GuestView,
    pub rules_fingerprint: String,
    /// Each rule's decision for this person.
    #[schema(value_type = Object)]
    pub explanation: crate::mapping::Explanation,
}

/// What an MFA reset removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaResetDone {
    pub was_enrolled: bool,
    pub sessions_ended: u64,
    /// How many passkeys the reset removed.
    pub passkeys_removed: u64,
}

/// The guest after an MFA reset.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaResetView {
    #[serde(flatten)]
    pub guest: GuestView,
    pub mfa_enrolled: bool,
    pub mfa_reset: MfaResetDone,
}

/// How many open invitations were voided.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationsRevoked {
    pub revoked: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A partner's slug.
    partner: Option<String>,
    /// A state (`pending_approval`, `invited`, `active`, `suspended`, `removed`) or a
    /// suspension (`suspended:expired`, …).
    state: Option<String>,
    /// Guests holding a grant of this app.
    app: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 500 (default 100).
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

/// List guests, newest first, filtered; a partner-admin or sponsor sees only their own.
#[utoipa::path(get, path = "/api/v1/guests", tag = "guests", params(ListQuery),
    responses(
        (status = 200, description = "A page of guests", body = GuestList),
        (status = 400, description = "A bad filter or cursor", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(GuestList {
        total,
        guests: rows
            .iter()
            .map(|g| {
                let slug = partners.iter().find(|p| p.id == g.partner_id);
                guest_json(g, slug.map(|p| p.slug.as_str()).unwrap_or(""))
            })
            .collect(),
        next_cursor: next,
    }))
}

async fn partner_slugs(state: &AppState) -> Result<Vec<Partner>, AdminError> {
    Ok(crate::services::partners::list_partners(&state.deps).await?)
}

/// One guest in full.
#[utoipa::path(get, path = "/api/v1/guests/{id}", tag = "guests",
    params(("id" = String, Path, description = "The guest's id")),
    responses(
        (status = 200, description = "The guest", body = GuestDetailView),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 404, description = "No such guest in the caller's scope", body = ErrorBody),
    ))]
pub async fn get_guest(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Read)?;
    let d = guests::get(&state.deps, &id).await?;
    admin.require_guest(&d.guest)?;
    let now = state.deps.now_ms();
    let invitations = d
        .invitations
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
            InvitationView {
                id: i.id.clone(),
                status,
                created_at: to_rfc3339(from_millis(i.created_at)),
                expires_at: to_rfc3339(from_millis(i.expires_at)),
                used_at: time(i.used_at),
                revoked_at: time(i.revoked_at),
                reminders_sent: i.reminders_sent,
            }
        })
        .collect();
    let history = d
        .history
        .iter()
        .map(|h| HistoryEntry {
            at: to_rfc3339(from_millis(h.at)),
            actor: h.actor.clone(),
            action: h.action.clone(),
            request_id: h.request_id.clone(),
            detail: h.detail.clone(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(GuestDetailView {
        guest: guest_json(&d.guest, d.partner.slug.as_str()),
        grants: d.grants.iter().map(grant_json).collect(),
        invitations,
        consent: d
            .consent
            .as_ref()
            .map(|(at, version, accepted)| ConsentView {
                at: to_rfc3339(from_millis(*at)),
                text_version: version.clone(),
                accepted: *accepted,
            }),
        mfa_enrolled: d.mfa_enrolled,
        history,
    }))
}

/// Why the rules in force grant the guest what they do.
#[utoipa::path(get, path = "/api/v1/guests/{id}/explain", tag = "guests",
    params(("id" = String, Path, description = "The guest's id")),
    responses(
        (status = 200, description = "The explanation", body = ExplainView),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 404, description = "No such guest in the caller's scope", body = ErrorBody),
    ))]
pub async fn explain_guest(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Read)?;
    let d = guests::get(&state.deps, &id).await?;
    admin.require_guest(&d.guest)?;
    let explanation = rules::explain_user(&state.deps, &d.partner, &d.guest.user_id).await?;
    Ok(HttpResponse::Ok().json(ExplainView {
        guest: guest_json(&d.guest, d.partner.slug.as_str()),
        rules_fingerprint: state.deps.rules().fingerprint.clone(),
        explanation,
    }))
}

/// Issue a new invitation link (the old one stops working) and mail it.
#[utoipa::path(post, path = "/api/v1/guests/{id}/invitation", tag = "guests",
    params(("id" = String, Path, description = "The guest's id")),
    responses(
        (status = 200, description = "The guest, re-invited", body = GuestDetailView),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such guest in the caller's scope", body = ErrorBody),
        (status = 409, description = "The guest cannot be invited now", body = ErrorBody),
    ))]
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
#[utoipa::path(post, path = "/api/v1/guests/{id}/mfa/reset", tag = "guests",
    params(("id" = String, Path, description = "The guest's id")),
    responses(
        (status = 200, description = "The guest after the reset", body = MfaResetView),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such guest in the caller's scope", body = ErrorBody),
    ))]
pub async fn reset_mfa(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    visible_guest(&state, &admin, Need::ManageGuests, &id).await?;
    let reset = crate::services::guest_mfa::reset_mfa(&state.deps, &admin.actor, &id).await?;
    let d = guests::get(&state.deps, &id).await?;
    Ok(HttpResponse::Ok().json(MfaResetView {
        guest: guest_json(&d.guest, d.partner.slug.as_str()),
        mfa_enrolled: d.mfa_enrolled,
        mfa_reset: MfaResetDone {
            was_enrolled: reset.was_enrolled,
            sessions_ended: reset.sessions_ended,
            passkeys_removed: reset.passkeys_removed,
        },
    }))
}

/// Void the guest's open invitation.
#[utoipa::path(delete, path = "/api/v1/guests/{id}/invitation", tag = "guests",
    params(("id" = String, Path, description = "The guest's id")),
    responses(
        (status = 200, description = "How many were voided", body = InvitationsRevoked),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such guest in the caller's scope", body = ErrorBody),
    ))]
pub async fn revoke_invitation(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    visible_guest(&state, &admin, Need::ManageGuests, &id).await?;
    let n = crate::services::invitations::revoke(&state.deps, &admin.actor, &id).await?;
    Ok(HttpResponse::Ok().json(InvitationsRevoked { revoked: n }))
}

/// Approve a guest waiting for approval (their invitation goes out).
#[utoipa::path(post, path = "/api/v1/guests/{id}/approve", tag = "guests",
    params(("id" = String, Path, description = "The guest's id")),
    responses(
        (status = 200, description = "The approved guest", body = GuestView),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such guest in the caller's scope", body = ErrorBody),
        (status = 409, description = "Not waiting for approval", body = ErrorBody),
    ))]
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
