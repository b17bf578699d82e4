//! `/api/v1/partners`: the partner organisations — list (with the policy the rule set in
//! force declares for each, token and people counts, whether disabled), one partner, create,
//! disable and enable (a disabled partner's SCIM tokens get 401 until enabled), and issue a
//! SCIM token (its secret shown once).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::error_shape::ErrorBody;
use super::paging::{self, Page, PageQuery};
use super::{AdminCaller, AdminError, Need};
use crate::app_state::AppState;
use crate::clock::{from_millis, to_rfc3339};
use crate::domain::PartnerSlug;
use crate::mapping::PartnerPolicy;
use crate::services::partner_admin::{self, PartnerSummary};
use crate::services::partners;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/partners", web::get().to(list_partners))
        .route("/partners", web::post().to(create_partner))
        .route("/partners/{slug}", web::get().to(get_partner))
        .route("/partners/{slug}", web::patch().to(edit_partner))
        .route("/partners/{slug}/disable", web::post().to(disable))
        .route("/partners/{slug}/enable", web::post().to(enable))
        .route("/partners/{slug}/tokens", web::post().to(issue_token));
}

fn slug(s: &str) -> Result<PartnerSlug, AdminError> {
    PartnerSlug::parse(s).map_err(|e| AdminError::bad_request(e.to_string()))
}

fn time(ms: Option<i64>) -> Option<String> {
    ms.map(|t| to_rfc3339(from_millis(t)))
}

/// A partner organisation with its policy and counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartnerView {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: String,
    pub disabled: bool,
    #[schema(required = true)]
    pub disabled_at: Option<String>,
    /// SCIM tokens in use.
    pub tokens: i64,
    pub people: i64,
    pub guests: i64,
    /// The policy the rule set in force declares for the partner (or the default), with
    /// `declared` telling which.
    #[schema(value_type = Object)]
    pub policy: serde_json::Value,
    pub rules_fingerprint: String,
}

fn partner_json(state: &AppState, p: &PartnerSummary) -> PartnerView {
    let rules = state.deps.rules();
    let declared = rules
        .partners
        .iter()
        .find(|x| x.slug == p.partner.slug.as_str());
    let policy = declared
        .cloned()
        .unwrap_or_else(|| PartnerPolicy::default_for(p.partner.slug.as_str()));
    let mut policy = serde_json::to_value(&policy).unwrap_or_default();
    policy["declared"] = json!(declared.is_some());
    PartnerView {
        id: p.partner.id.clone(),
        slug: p.partner.slug.as_str().to_string(),
        name: p.partner.name.clone(),
        created_at: to_rfc3339(from_millis(p.created_at)),
        disabled: p.disabled_at.is_some(),
        disabled_at: time(p.disabled_at),
        tokens: p.tokens,
        people: p.people,
        guests: p.guests,
        policy,
        rules_fingerprint: rules.fingerprint.clone(),
    }
}

/// List partners by slug, in pages.
#[utoipa::path(get, path = "/api/v1/partners", tag = "partners", params(PageQuery),
    responses(
        (status = 200, description = "A page of partners", body = Page<PartnerView>),
        (status = 400, description = "A bad limit or cursor", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
    ))]
pub async fn list_partners(
    state: web::Data<AppState>,
    admin: AdminCaller,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let limit = query.limit()?;
    let after = query.after()?;
    let rows = partner_admin::page(&state.deps, after.as_deref(), limit).await?;
    let last = rows.last().map(|p| p.partner.slug.as_str().to_string());
    let items = rows.iter().map(|p| partner_json(&state, p)).collect();
    Ok(HttpResponse::Ok().json(paging::page(items, limit, last)))
}

/// One partner.
#[utoipa::path(get, path = "/api/v1/partners/{slug}", tag = "partners", params(("slug" = String, Path, description = "The partner's slug")),
    responses(
        (status = 200, description = "The partner", body = PartnerView),
        (status = 400, description = "Not a slug", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such partner", body = ErrorBody),
    ))]
pub async fn get_partner(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let p = partner_admin::get(&state.deps, &slug(&path)?).await?;
    Ok(HttpResponse::Ok().json(partner_json(&state, &p)))
}

/// A new partner.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// Lower-case letters, digits and dashes.
    slug: String,
    /// 1 to 200 characters.
    name: String,
}

fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(bytes)
        .map_err(|e| AdminError::bad_request(format!("invalid JSON body: {e}")))
}

/// Create a partner.
#[utoipa::path(post, path = "/api/v1/partners", tag = "partners", request_body = CreateBody,
    responses(
        (status = 201, description = "The new partner", body = PartnerView),
        (status = 400, description = "A bad body, slug or name", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 409, description = "The slug is taken", body = ErrorBody),
    ))]
pub async fn create_partner(
    state: web::Data<AppState>,
    admin: AdminCaller,
    bytes: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    let b: CreateBody = json_body(&bytes)?;
    let s = slug(&b.slug)?;
    let name = partner_admin::partner_name(&b.name)?;
    partners::add_partner(&state.deps, &admin.actor, &s, name).await?;
    let p = partner_admin::get(&state.deps, &s).await?;
    Ok(HttpResponse::Created().json(partner_json(&state, &p)))
}

/// What an administrator may change of a partner.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditBody {
    /// The display name (1 to 200 characters), shown in invitations and the console.
    name: Option<String>,
    /// Not editable here: the policy is declared in the rule files (`[[partner]]`), so that
    /// every instance and every decision's `rules_fingerprint` agree on it. Sending it is a 400
    /// that says so.
    #[schema(value_type = Option<Object>)]
    policy: Option<serde_json::Value>,
}

/// Edit a partner: its name (admin only, audited as `partner.renamed`).
#[utoipa::path(patch, path = "/api/v1/partners/{slug}", tag = "partners",
    params(("slug" = String, Path, description = "The partner's slug")),
    request_body = EditBody,
    responses(
        (status = 200, description = "The partner as it now stands", body = PartnerView),
        (status = 400, description = "A bad body or name, or a policy (edit the rule files)", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such partner", body = ErrorBody),
    ))]
pub async fn edit_partner(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    let s = slug(&path)?;
    let b: EditBody = json_body(&bytes)?;
    if b.policy.is_some() {
        return Err(AdminError::bad_request(
            "a partner's policy is declared in the rule files ([[partner]] in the mappings \
             folder): change it there, preview with POST /api/v1/mappings/diff and apply with \
             POST /api/v1/mappings/reload",
        ));
    }
    let Some(name) = b.name else {
        return Err(AdminError::bad_request(
            "nothing to change: send {\"name\": …}",
        ));
    };
    let p = partner_admin::rename(&state.deps, &admin.actor, &s, &name).await?;
    Ok(HttpResponse::Ok().json(partner_json(&state, &p)))
}

async fn set_disabled(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
    disabled: bool,
) -> Result<HttpResponse, AdminError> {
    let p = partner_admin::set_disabled(&state.deps, &admin.actor, &slug(&path)?, disabled).await?;
    Ok(HttpResponse::Ok().json(partner_json(&state, &p)))
}

/// Disable a partner: its SCIM tokens get 401 until it is enabled.
#[utoipa::path(post, path = "/api/v1/partners/{slug}/disable", tag = "partners", params(("slug" = String, Path, description = "The partner's slug")),
    responses(
        (status = 200, description = "The disabled partner", body = PartnerView),
        (status = 400, description = "Not a slug", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such partner", body = ErrorBody),
        (status = 409, description = "Already disabled", body = ErrorBody),
    ))]
pub async fn disable(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    set_disabled(state, admin, path, true).await
}

/// Enable a disabled partner again.
#[utoipa::path(post, path = "/api/v1/partners/{slug}/enable", tag = "partners", params(("slug" = String, Path, description = "The partner's slug")),
    responses(
        (status = 200, description = "The enabled partner", body = PartnerView),
        (status = 400, description = "Not a slug", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such partner", body = ErrorBody),
        (status = 409, description = "Not disabled", body = ErrorBody),
    ))]
pub async fn enable(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    set_disabled(state, admin, path, false).await
}

/// Optional details of a new SCIM token.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    /// A name to tell it by.
    name: Option<String>,
    /// Days until it ends (none: it does not end).
    expires_days: Option<u32>,
}

/// A new SCIM token; its secret is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    pub id: String,
    /// The partner's slug.
    pub partner: String,
    pub name: String,
    #[schema(required = true)]
    pub expires_at: Option<String>,
    /// The bearer secret.
    pub token: String,
}

/// Issue a SCIM token for the partner (its secret shown once).
#[utoipa::path(post, path = "/api/v1/partners/{slug}/tokens", tag = "tokens", params(("slug" = String, Path, description = "The partner's slug")),
    request_body(content = Option<TokenBody>, description = "Optional"),
    responses(
        (status = 201, description = "The token, with its secret", body = IssuedToken),
        (status = 400, description = "A bad body or slug", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such partner in the caller's scope", body = ErrorBody),
    ))]
pub async fn issue_token(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ManagePartner)?;
    admin.require_partner(&partners::find_partner(&state.deps, &slug(&path)?).await?.id)?;
    let s = slug(&path)?;
    let b: TokenBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        TokenBody::default()
    } else {
        json_body(&bytes)?
    };
    let t = partner_admin::issue_token(
        &state.deps,
        &admin.actor,
        &s,
        b.name.as_deref(),
        b.expires_days,
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(IssuedToken {
            id: t.id,
            partner: s.as_str().to_string(),
            name: t.name,
            expires_at: time(t.expires_at),
            token: t.secret,
        }))
}
