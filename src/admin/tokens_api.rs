//! `/api/v1/partners/{slug}/tokens` and `/api/v1/admin-tokens`: see and revoke bearer tokens
//! (ids, names and use; never a secret or its hash).
//! Revocation here takes effect at once on this instance; other instances stop accepting the
//! token within their authentication cache's TTL (`auth::cache`).

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::error_shape::ErrorBody;
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

/// One of a partner's SCIM tokens (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerTokenView {
    pub id: String,
    pub created_at: String,
    #[schema(required = true)]
    pub last_used_at: Option<String>,
    #[schema(required = true)]
    pub revoked_at: Option<String>,
}

/// A partner's SCIM tokens, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerTokenList {
    pub tokens: Vec<PartnerTokenView>,
}

/// One admin token (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminTokenView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    #[schema(required = true)]
    pub expires_at: Option<String>,
    #[schema(required = true)]
    pub last_used_at: Option<String>,
    #[schema(required = true)]
    pub revoked_at: Option<String>,
    /// `admin`, `auditor`, `partner-admin` or `sponsor`.
    pub role: String,
}

/// The admin tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminTokenList {
    pub tokens: Vec<AdminTokenView>,
}

fn time(t: Option<i64>) -> Option<String> {
    t.map(|ms| to_rfc3339(from_millis(ms)))
}

/// A partner's SCIM tokens.
#[utoipa::path(get, path = "/api/v1/partners/{slug}/tokens", tag = "tokens",
    params(("slug" = String, Path, description = "The partner's slug")),
    responses(
        (status = 200, description = "The tokens", body = PartnerTokenList),
        (status = 400, description = "Not a slug", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such partner in the caller's scope", body = ErrorBody),
    ))]
pub async fn list_partner_tokens(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadPartner)?;
    let slug = slug(&path)?;
    scoped_partner(&state, &admin, &slug).await?;
    let tokens = partners::partner_tokens(&state.deps, &slug).await?;
    Ok(HttpResponse::Ok().json(PartnerTokenList {
        tokens: tokens
            .iter()
            .map(|t| PartnerTokenView {
                id: t.id.clone(),
                created_at: to_rfc3339(from_millis(t.created_at)),
                last_used_at: time(t.last_used_at),
                revoked_at: time(t.revoked_at),
            })
            .collect(),
    }))
}

/// Revoke one of a partner's SCIM tokens.
#[utoipa::path(delete, path = "/api/v1/partners/{slug}/tokens/{id}", tag = "tokens",
    params(("slug" = String, Path, description = "The partner's slug"),
           ("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "Not a slug", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such token or partner in the caller's scope", body = ErrorBody),
    ))]
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

/// Revoke an admin token.
#[utoipa::path(delete, path = "/api/v1/admin-tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such token", body = ErrorBody),
    ))]
pub async fn revoke_admin_token(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    partners::revoke_admin_token(&state.deps, &admin.actor, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The admin tokens.
#[utoipa::path(get, path = "/api/v1/admin-tokens", tag = "tokens",
    responses(
        (status = 200, description = "The tokens", body = AdminTokenList),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
    ))]
pub async fn list_admin_tokens(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let tokens = partners::admin_tokens(&state.deps).await?;
    Ok(HttpResponse::Ok().json(AdminTokenList {
        tokens: tokens
            .iter()
            .map(|t| AdminTokenView {
                id: t.id.clone(),
                name: t.name.clone(),
                created_at: to_rfc3339(from_millis(t.created_at)),
                expires_at: time(t.expires_at),
                last_used_at: time(t.last_used_at),
                revoked_at: time(t.revoked_at),
                role: t.role.clone(),
            })
            .collect(),
    }))
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
