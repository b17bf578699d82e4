//! `/admin`: the console's first page. A placeholder the dashboard replaces.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{page, SignedIn};
use crate::app_state::AppState;
use crate::domain::AdminRole;

fn role_text(role: AdminRole) -> &'static str {
    match role {
        AdminRole::Admin => {
            "Everything: partners, guests, imports, rules, jobs, sync and the audit log."
        }
        AdminRole::Auditor => {
            "Read everything and export the audit log; you cannot change anything."
        }
        AdminRole::PartnerAdmin => {
            "Your partner's people and guests, its imports and its SCIM tokens."
        }
        AdminRole::Sponsor => {
            "The guests you sponsor: see them, approve them and invite them again."
        }
    }
}

pub async fn get_home(state: web::Data<AppState>, user: SignedIn) -> HttpResponse {
    page(
        &state,
        StatusCode::OK,
        "home.html",
        json!({
            "user": user.user_json(),
            "csrf": user.csrf(),
            "active": "dashboard",
            "role_text": role_text(user.session.principal.role),
        }),
    )
}
