//! `GET /admin/partners`: the partner organisations with their state and counts, 100 a page
//! in slug order; admins create, disable and enable them. `GET /admin/partners/{slug}`: one
//! partner, the policy the rules declare for it and its SCIM tokens (name, end, last use)
//! with issue (the secret shown once) and revoke. Changes go to the JSON API with the
//! session's CSRF token. A partner admin sees only their own partner; auditors see no buttons.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::page_frame::{html, not_found, require, when, ConsoleCaller, PageError};
use super::sync_page::urlencoding;
use crate::admin::{AdminError, Need};
use crate::app_state::AppState;
use crate::domain::{AdminRole, PartnerSlug};
use crate::services::partner_admin::{self, PartnerSummary, MAX_TOKEN_DAYS};
use crate::services::{admin_policy, partners, ServiceError};

/// Partners a page.
const PAGE_SIZE: i64 = 100;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnersQuery {
    /// The last slug of the previous page.
    after: Option<String>,
}

fn summary_json(p: &PartnerSummary) -> Value {
    json!({
        "slug": p.partner.slug.as_str(), "name": p.partner.name,
        "disabled": p.disabled_at.is_some(), "disabled_at": when(p.disabled_at),
        "created": when(Some(p.created_at)),
        "tokens": p.tokens, "people": p.people, "guests": p.guests,
    })
}

pub async fn list(
    state: web::Data<AppState>,
    caller: ConsoleCaller,
    query: web::Query<PartnersQuery>,
) -> Result<HttpResponse, PageError> {
    require(&caller, Need::ReadPartner)?;
    let after = query.after.as_deref().filter(|a| !a.is_empty());
    let rows: Vec<PartnerSummary> = match caller.partner_scope() {
        // A partner admin's list is their partner alone.
        Some(own) => {
            let mine = partners::list_partners(&state.deps)
                .await?
                .into_iter()
                .find(|p| p.id == own);
            match mine {
                Some(p) => vec![partner_admin::get(&state.deps, &p.slug).await?],
                None => Vec::new(),
            }
        }
        None => partner_admin::page(&state.deps, after, PAGE_SIZE).await?,
    };
    let next = (rows.len() as i64 == PAGE_SIZE)
        .then(|| rows.last())
        .flatten()
        .map(|p| {
            format!(
                "/admin/partners?after={}",
                urlencoding(p.partner.slug.as_str())
            )
        });
    let ctx = json!({
        "partners": rows.iter().map(summary_json).collect::<Vec<_>>(),
        "can_write": caller.role() == AdminRole::Admin,
        "next": next,
        "paged": after.is_some(),
    });
    html(&caller, StatusCode::OK, "partners.html", ctx)
}

pub async fn detail(
    state: web::Data<AppState>,
    caller: ConsoleCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    require(&caller, Need::ReadPartner)?;
    let missing = "There is no partner with this slug.";
    let Ok(slug) = PartnerSlug::parse(&path) else {
        return not_found(&caller, missing);
    };
    let p = match partner_admin::get(&state.deps, &slug).await {
        Ok(p) => p,
        Err(ServiceError::NotFound) => return not_found(&caller, missing),
        Err(e) => return Err(AdminError::from(e).into()),
    };
    if caller.require_partner(&p.partner.id).is_err() {
        return not_found(&caller, missing);
    }
    let now = state.deps.now_ms();
    let tokens = partner_admin::tokens(&state.deps, &p.partner.id).await?;
    let rules = state.deps.rules();
    let declared = rules.partners.iter().any(|x| x.slug == slug.as_str());
    let policy = rules.policy(slug.as_str());
    let ctx = json!({
        "partner": summary_json(&p),
        "policy": {
            "declared": declared,
            "approval": serde_json::to_value(policy.approval).unwrap_or(Value::Null),
            "mfa": policy.mfa, "mfa_email_fallback": policy.mfa_email_fallback,
            "max_access_days": policy.max_access_days,
            "allowed_apps": policy.allowed_apps,
            "max_deactivations_per_hour": policy.max_deactivations_per_hour,
            "limits": &policy.limits,
        },
        "tokens": tokens.iter().map(|t| {
            let status = if t.revoked_at.is_some() { "revoked" }
                else if t.expires_at.is_some_and(|e| e <= now) { "expired" } else { "active" };
            json!({
                "id": t.id, "name": t.name, "created": when(Some(t.created_at)),
                "expires": when(t.expires_at), "last_used": when(t.last_used_at),
                "revoked": when(t.revoked_at), "status": status,
            })
        }).collect::<Vec<_>>(),
        "can_write": caller.role() == AdminRole::Admin,
        "can_manage_tokens": admin_policy::allows(caller.role(), Need::ManagePartner),
        "max_token_days": MAX_TOKEN_DAYS,
    });
    html(&caller, StatusCode::OK, "partner.html", ctx)
}
