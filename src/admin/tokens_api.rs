//! `/api/v1/partners/{slug}/tokens` and `/api/v1/admin-tokens`: see and revoke bearer tokens
//! (ids, names and use; never a secret or its hash).
//! Revocation here takes effect at once on this instance; other instances stop accepting the
//! token within their authentication cache's TTL (`auth::cache`).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{AdminCaller, AdminError, Need};
use crate::app_state::AppState;
use crate::clock::{from_millis, to_rfc3339};
use crate::domain::PartnerSlug;
use crate::services::partners;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/partners/{slug}/tokens",
        web::get().to(list_partner_tokens),
    )
    .route(
        "/partners/{slug}/tokens/{id}",
        web::delete().to(revoke_partner_token),
    )
    .route("/admin-tokens", web::get().to(list_admin_tokens))
    .route("/admin-tokens/{id}", web::delete().to(revoke_admin_token));
}

fn slug(s: &str) -> Result<PartnerSlug, AdminError> {
    PartnerSlug::parse(s).map_err(|e| AdminError::bad_request(e.to_string()))
}

pub async fn list_partner_tokens(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadPartner)?;
    let slug = slug(&path)?;
    scoped_partner(&state, &admin, &slug).await?;
    let tokens = partners::partner_tokens(&state.deps, &slug).await?;
    let time = |t: Option<i64>| t.map(|ms| to_rfc3339(from_millis(ms)));
    Ok(HttpResponse::Ok().json(json!({
        "tokens": tokens.iter().map(|t| json!({
            "id": t.id,
            "created_at": to_rfc3339(from_millis(t.created_at)),
            "last_used_at": time(t.last_used_at),
            "revoked_at": time(t.revoked_at),
        })).collect::<Vec<_>>(),
    })))
}

pub async fn revoke_partner_token(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AdminError> {
    let (s, id) = path.into_inner();
    admin.require(Need::ManagePartner)?;
    let s = slug(&s)?;
    scoped_partner(&state, &admin, &s).await?;
    partners::revoke_partner_token(&state.deps, &admin.actor, &s, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn revoke_admin_token(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    partners::revoke_admin_token(&state.deps, &admin.actor, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list_admin_tokens(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let tokens = partners::admin_tokens(&state.deps).await?;
    let time = |t: Option<i64>| t.map(|ms| to_rfc3339(from_millis(ms)));
    Ok(HttpResponse::Ok().json(json!({
        "tokens": tokens.iter().map(|t| json!({
            "id": t.id,
            "name": t.name,
            "created_at": to_rfc3339(from_millis(t.created_at)),
            "expires_at": time(t.expires_at),
            "last_used_at": time(t.last_used_at),
            "revoked_at": time(t.revoked_at),
            "role": t.role,
        })).collect::<Vec<_>>(),
    })))
}

/// 404 unless the partner exists and is in the caller's scope.
async fn scoped_partner(
    state: &AppState,
    admin: &AdminCaller,
    slug: &PartnerSlug,
) -> Result<(), AdminError> {
    let partner = partners::find_partner(&state.deps, slug).await?;
    admin.require_partner(&partner.id)
}
