//! `/api/v1/sync`: outbound sync queue per target, dead letters, replay, and reconciliation
//! of a SCIM target (with a dry run).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::error_shape::ErrorBody;
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

#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReconcileQuery {
    /// Only show the plan.
    dry_run: Option<bool>,
    /// Apply even past the deactivation cap.
    force: Option<bool>,
}

/// A reconciliation's plan (dry run) or what it did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct ReconcileDone(serde_json::Value);

/// A reconciliation refused: it would deactivate more than the cap.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconcileRefused {
    pub error: String,
    pub plan: ReconcileDone,
}

/// One target's outbound queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetQueue {
    pub name: String,
    pub pending: i64,
    pub dead: i64,
    #[schema(required = true)]
    pub oldest_pending: Option<String>,
}

/// An event that ran out of attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetter {
    pub id: String,
    pub target: String,
    pub guest_id: String,
    pub kind: String,
    pub attempts: i64,
    pub created_at: String,
    #[schema(required = true)]
    pub dead_at: Option<String>,
    #[schema(required = true)]
    pub last_error: Option<String>,
}

/// Outbound sync: queues per target and the latest dead letters.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncOverview {
    pub targets: Vec<TargetQueue>,
    pub dead_letters: Vec<DeadLetter>,
}

/// A dead letter queued again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    /// The dead letter's id.
    pub id: String,
    /// `queued`.
    pub status: &'static str,
    /// The new event's id.
    pub event: String,
}

/// `POST /sync/targets/{name}/reconcile?dry_run=BOOL&force=BOOL`: the plan (dry run) or what
/// was done; `409` with the plan when it would deactivate more than the cap.
#[utoipa::path(post, path = "/api/v1/sync/targets/{name}/reconcile", tag = "sync",
    params(("name" = String, Path, description = "The sync target's name"), ReconcileQuery),
    responses(
        (status = 200, description = "The plan or what was done", body = ReconcileDone),
        (status = 400, description = "Not a SCIM target, or a bad query", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such target", body = ErrorBody),
        (status = 409, description = "Refused past the deactivation cap, with the plan", body = ReconcileRefused),
        (status = 502, description = "The target failed", body = ErrorBody),
    ))]
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
    let body = ReconcileDone(outcome.to_json());
    Ok(match &outcome.refused {
        Some(reason) if !options.dry_run => HttpResponse::Conflict().json(ReconcileRefused {
            error: reason.clone(),
            plan: body,
        }),
        _ => HttpResponse::Ok().json(body),
    })
}

/// Outbound sync queues per target and the latest dead letters (200 at most).
#[utoipa::path(get, path = "/api/v1/sync", tag = "sync",
    responses(
        (status = 200, description = "The queues and dead letters", body = SyncOverview),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
    ))]
pub async fn get_sync(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let (depth, dead) = crate::services::sync::overview(&state.deps, 200).await?;
    let targets = state
        .deps
        .portal
        .sync_targets
        .iter()
        .map(|t| {
            let d = depth.iter().find(|(name, ..)| name == t);
            TargetQueue {
                name: t.clone(),
                pending: d.map(|x| x.1).unwrap_or(0),
                dead: d.map(|x| x.2).unwrap_or(0),
                oldest_pending: d.and_then(|x| x.3).map(|ms| to_rfc3339(from_millis(ms))),
            }
        })
        .collect();
    let dead_letters = dead
        .iter()
        .map(|e| DeadLetter {
            id: e.id.clone(),
            target: e.target.clone(),
            guest_id: e.guest_id.clone(),
            kind: e.kind.clone(),
            attempts: e.attempts,
            created_at: to_rfc3339(from_millis(e.created_at)),
            dead_at: e.dead_at.map(|t| to_rfc3339(from_millis(t))),
            last_error: e.last_error.clone(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(SyncOverview {
        targets,
        dead_letters,
    }))
}

/// Queue a dead letter again.
#[utoipa::path(post, path = "/api/v1/sync/events/{id}/replay", tag = "sync",
    params(("id" = String, Path, description = "The dead letter's id")),
    responses(
        (status = 200, description = "Queued again", body = Replayed),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such dead letter", body = ErrorBody),
    ))]
pub async fn replay_event(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    match crate::services::sync::replay(&state.deps, &admin.actor, &id).await {
        Ok(event) => Ok(HttpResponse::Ok().json(Replayed {
            id: id.into_inner(),
            status: "queued",
            event,
        })),
        Err(ServiceError::NotFound) => Err(AdminError::new(
            StatusCode::NOT_FOUND,
            "no such dead letter",
        )),
        Err(e) => Err(e.into()),
    }
}
