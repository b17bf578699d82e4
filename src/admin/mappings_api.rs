//! `/api/v1/mappings`: the rules in force, a dry-run of the rule files on disk, and reload.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::error_shape::ErrorBody;
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

/// An app the rules grant roles of.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppView {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
}

/// The rule set in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct MappingsView {
    pub fingerprint: String,
    pub apps: Vec<AppView>,
    /// The rules' ids, in order.
    pub rules: Vec<String>,
}

/// What reloading the rule files on disk would change.
#[derive(Debug, Serialize, ToSchema)]
pub struct MappingsDiff {
    /// The fingerprint of the rules on disk.
    pub fingerprint: String,
    /// People and grants that would change.
    #[schema(value_type = Object)]
    pub diff: rules::RuleDiff,
}

/// What a reload's re-evaluation changed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct ReloadDone(rules::ReloadReport);

/// The rules in force: their fingerprint, apps and rule ids.
#[utoipa::path(get, path = "/api/v1/mappings", tag = "mappings",
    responses(
        (status = 200, description = "The rules in force", body = MappingsView),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
    ))]
pub async fn get_mappings(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let r = state.deps.rules();
    Ok(HttpResponse::Ok().json(MappingsView {
        fingerprint: r.fingerprint.clone(),
        apps: r
            .apps
            .iter()
            .map(|a| AppView {
                id: a.id.clone(),
                name: a.name.clone(),
                roles: a.roles.clone(),
            })
            .collect(),
        rules: r.rules.iter().map(|x| x.id.clone()).collect(),
    }))
}

/// Dry-run the rule files on disk against everyone: what a reload would change.
#[utoipa::path(post, path = "/api/v1/mappings/diff", tag = "mappings",
    responses(
        (status = 200, description = "The changes", body = MappingsDiff),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 422, description = "The rule files are invalid; each error in `errors`", body = ErrorBody),
    ))]
pub async fn diff_mappings(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let new = load_from_disk(&state)?;
    let d = rules::diff(&state.deps, &new).await?;
    Ok(HttpResponse::Ok().json(MappingsDiff {
        fingerprint: new.fingerprint.clone(),
        diff: d,
    }))
}

/// Put the rule files on disk in force and re-evaluate everyone.
#[utoipa::path(post, path = "/api/v1/mappings/reload", tag = "mappings",
    responses(
        (status = 200, description = "What the re-evaluation changed", body = ReloadDone),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 422, description = "The rule files are invalid; each error in `errors`", body = ErrorBody),
    ))]
pub async fn reload_mappings(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    let new = load_from_disk(&state)?;
    let report = rules::reload(&state.deps, &admin.actor, new).await?;
    Ok(HttpResponse::Ok().json(ReloadDone(report)))
}
