//! `/api/v1/sync`: outbound sync queue per target, dead letters, replay, and reconciliation
//! of a SCIM target (with a dry run).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{AdminCaller, AdminError, Need};
use crate::app_state::AppState;
use crate::clock::{from_millis, to_rfc3339};
use crate::services::reconcile::{self, ReconcileError, ReconcileOptions};
use crate::services::ServiceError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/sync", web::get().to(get_sync))
        .route("/sync/events/{id}/replay", web::post().to(replay_event))
        .route(
            "/sync/targets/{name}/reconcile",
            web::post().to(reconcile_target),
        );
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileQuery {
    dry_run: Option<bool>,
    force: Option<bool>,
}

/// `POST /sync/targets/{name}/reconcile?dry_run=BOOL&force=BOOL`: the plan (dry run) or what
/// was done; `409` with the plan when it would deactivate more than the cap.
pub async fn reconcile_target(
    state: web::Data<AppState>,
    admin: AdminCaller,
    name: web::Path<String>,
    query: web::Query<ReconcileQuery>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    let options = ReconcileOptions {
        dry_run: query.dry_run.unwrap_or(false),
        force: query.force.unwrap_or(false),
    };
    let expected = reconcile::expected_guests(&state.deps).await?;
    let outcome = reconcile::reconcile_target(
        &state.deps,
        &state.settings.sync,
        &admin.actor,
        &name,
        &expected,
        options,
    )
    .await
    .map_err(|e| match e {
        ReconcileError::UnknownTarget(_) => AdminError::new(StatusCode::NOT_FOUND, e.to_string()),
        ReconcileError::NotScim(_) => AdminError::bad_request(e.to_string()),
        ReconcileError::Target { .. } => AdminError::new(StatusCode::BAD_GATEWAY, e.to_string()),
        ReconcileError::Service(e) => e.into(),
    })?;
    let body = outcome.to_json();
    Ok(match &outcome.refused {
        Some(reason) if !options.dry_run => {
            HttpResponse::Conflict().json(json!({"error": reason, "plan": body}))
        }
        _ => HttpResponse::Ok().json(body),
    })
}

pub async fn get_sync(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let (depth, dead) = crate::services::sync::overview(&state.deps, 200).await?;
    Ok(HttpResponse::Ok().json(json!({
        "targets": state.deps.portal.sync_targets.iter().map(|t| {
            let d = depth.iter().find(|(name, ..)| name == t);
            json!({"name": t, "pending": d.map(|x| x.1).unwrap_or(0), "dead": d.map(|x| x.2).unwrap_or(0),
                   "oldest_pending": d.and_then(|x| x.3).map(|ms| to_rfc3339(from_millis(ms)))})
        }).collect::<Vec<_>>(),
        "dead_letters": dead.iter().map(|e| json!({
            "id": e.id, "target": e.target, "guest_id": e.guest_id, "kind": e.kind, "attempts": e.attempts,
            "created_at": to_rfc3339(from_millis(e.created_at)), "dead_at": e.dead_at.map(|t| to_rfc3339(from_millis(t))), "last_error": e.last_error,
        })).collect::<Vec<_>>(),
    })))
}

pub async fn replay_event(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    match crate::services::sync::replay(&state.deps, &admin.actor, &id).await {
        Ok(event) => {
            Ok(HttpResponse::Ok()
                .json(json!({"id": id.as_str(), "status": "queued", "event": event})))
        }
        Err(ServiceError::NotFound) => Err(AdminError::new(
            StatusCode::NOT_FOUND,
            "no such dead letter",
        )),
        Err(e) => Err(e.into()),
    }
}
