//! `/`: what this server is, for a visitor who is not signed in to the console.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{page, see_other, signed_in};
use crate::app_state::AppState;

pub async fn get_landing(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match signed_in(&state, &req).await {
        Ok(Some(_)) => return see_other("/admin"),
        Ok(None) => {}
        Err(res) => return res,
    }
    page(
        &state,
        StatusCode::OK,
        "landing.html",
        json!({"public_url": state.deps.portal.public_url.trim_end_matches('/')}),
    )
}
