//! `/api/v1/partners`: the partner organisations — list (with the policy the rule set in
//! force declares for each, token and people counts, whether disabled), one partner, create,
//! disable and enable (a disabled partner's SCIM tokens get 401 until enabled), and issue a
//! SCIM token (its secret shown once).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::paging::{self, PageQuery};
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
        .route("/partners/{slug}/disable", web::post().to(disable))
        .route("/partners/{slug}/enable", web::post().to(enable))
        .route("/partners/{slug}/tokens", web::post().to(issue_token));
}

fn slug(s: &str) -> Result<PartnerSlug, AdminError> {
    PartnerSlug::parse(s).map_err(|e| AdminError::bad_request(e.to_string()))
}

fn time(ms: Option<i64>) -> Value {
    ms.map(|t| json!(to_rfc3339(from_millis(t))))
        .unwrap_or(Value::Null)
}

fn partner_json(state: &AppState, p: &PartnerSummary) -> Value {
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
    json!({
        "id": p.partner.id,
        "slug": p.partner.slug.as_str(),
        "name": p.partner.name,
        "created_at": time(Some(p.created_at)),
        "disabled": p.disabled_at.is_some(),
        "disabled_at": time(p.disabled_at),
        "tokens": p.tokens,
        "people": p.people,
        "guests": p.guests,
        "policy": policy,
        "rules_fingerprint": rules.fingerprint,
    })
}

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

pub async fn get_partner(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let p = partner_admin::get(&state.deps, &slug(&path)?).await?;
    Ok(HttpResponse::Ok().json(partner_json(&state, &p)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    slug: String,
    name: String,
}

fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(bytes)
        .map_err(|e| AdminError::bad_request(format!("invalid JSON body: {e}")))
}

pub async fn create_partner(
    state: web::Data<AppState>,
    admin: AdminCaller,
    bytes: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    let b: CreateBody = json_body(&bytes)?;
    let s = slug(&b.slug)?;
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(AdminError::bad_request(
            "name must be 1 to 200 characters without control characters",
        ));
    }
    partners::add_partner(&state.deps, &admin.actor, &s, name).await?;
    let p = partner_admin::get(&state.deps, &s).await?;
    Ok(HttpResponse::Created().json(partner_json(&state, &p)))
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

pub async fn disable(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    set_disabled(state, admin, path, true).await
}

pub async fn enable(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    set_disabled(state, admin, path, false).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: Option<String>,
    expires_days: Option<u32>,
}

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
        .json(json!({
            "id": t.id,
            "partner": s.as_str(),
            "name": t.name,
            "expires_at": time(t.expires_at),
            "token": t.secret,
        })))
}
