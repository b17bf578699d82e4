//! `/api/v1/mappings`: the rules in force, a dry-run of the rule files on disk, and reload.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{AdminCaller, AdminError, Need};
use crate::app_state::AppState;
use crate::mapping::{load_dir, RuleSet};
use crate::services::rules;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/mappings", web::get().to(get_mappings))
        .route("/mappings/diff", web::post().to(diff_mappings))
        .route("/mappings/reload", web::post().to(reload_mappings));
}

/// The rule files on disk, or 422 listing every error with file and line.
fn load_from_disk(state: &AppState) -> Result<RuleSet, AdminError> {
    load_dir(&state.settings.mappings_dir).map_err(|errors| AdminError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        message: "the mapping rules are invalid".into(),
        errors: Some(json!(errors
            .iter()
            .map(|e| json!({"file": e.file, "line": e.line, "message": e.message}))
            .collect::<Vec<_>>())),
    })
}

pub async fn get_mappings(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let r = state.deps.rules();
    Ok(HttpResponse::Ok().json(json!({
        "fingerprint": r.fingerprint,
        "apps": r.apps.iter().map(|a| json!({"id": a.id, "name": a.name, "roles": a.roles})).collect::<Vec<_>>(),
        "rules": r.rules.iter().map(|x| x.id.clone()).collect::<Vec<_>>(),
    })))
}

pub async fn diff_mappings(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let new = load_from_disk(&state)?;
    let d = rules::diff(&state.deps, &new).await?;
    Ok(HttpResponse::Ok().json(json!({"fingerprint": new.fingerprint, "diff": d})))
}

pub async fn reload_mappings(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    let new = load_from_disk(&state)?;
    let report = rules::reload(&state.deps, &admin.actor, new).await?;
    Ok(HttpResponse::Ok().json(report))
}
