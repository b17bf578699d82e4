//! `GET /admin/guests/new`: invite a guest by hand. The form posts to `POST /api/v1/guests`
//! (the same rules path as a partner's SCIM client) with the session's CSRF token; field
//! errors show beside their fields, and success opens the new guest's page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::page_frame::{html, require, ConsoleCaller, PageError};
use crate::admin::Need;
use crate::app_state::AppState;
use crate::services::partner_admin;

/// Most partners the form offers; more than this many are typed by slug.
const MAX_PARTNERS: i64 = 500;

pub async fn page(
    state: web::Data<AppState>,
    caller: ConsoleCaller,
) -> Result<HttpResponse, PageError> {
    require(&caller, Need::Write)?;
    let partners = partner_admin::page(&state.deps, None, MAX_PARTNERS).await?;
    let rules = state.deps.rules();
    let ctx = json!({
        "partners": partners.iter().filter(|p| p.disabled_at.is_none()).map(|p| json!({
            "slug": p.partner.slug.as_str(), "name": p.partner.name,
        })).collect::<Vec<_>>(),
        "apps": rules.apps.iter().map(|a| json!({"id": a.id, "name": a.name})).collect::<Vec<_>>(),
    });
    html(&caller, StatusCode::OK, "guest_new.html", ctx)
}
