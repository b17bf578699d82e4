//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};

use crate::app_state::AppState;

pub async fn get_healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Ready when the database answers.
pub async fn get_readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.deps.db.ping().await {
        HttpResponse::Ok().content_type("text/plain").body("ready")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("database unreachable")
    }
}
