//! `/api/v1/imports`: upload a CSV roster (multipart), run it in the background, poll its
//! progress, list past imports and download the per-row error report as CSV.

use std::io::Write;
use std::sync::atomic::Ordering;

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error_shape::ErrorBody;
use super::{AdminCaller, AdminError, Need};
use crate::app_state::AppState;
use crate::clock::{from_millis, to_rfc3339};
use crate::domain::PartnerSlug;
use crate::services::import::{self as import_service, ImportMode, ImportOptions};
use crate::services::import_records::{self, ImportRecord};
use crate::services::import_runs::Progress;
use crate::services::partners;

/// Largest accepted roster upload.
const MAX_UPLOAD_BYTES: usize = 512 * 1024 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/imports", web::post().to(post_import))
        .route("/imports", web::get().to(list_imports))
        .route("/imports/{id}", web::get().to(get_import))
        .route("/imports/{id}/errors.csv", web::get().to(get_import_errors));
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The partner's slug.
    partner: String,
    /// `delta` (default: rows absent from the file are left alone) or `full` (they are
    /// deactivated, within the cap).
    mode: Option<String>,
    /// Show what would change, changing nothing.
    dry_run: Option<bool>,
    /// Apply a full import even past the deactivation cap.
    force: Option<bool>,
}

/// The multipart upload of a roster.
#[derive(ToSchema)]
pub struct RosterUpload {
    /// The CSV file.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// `running`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunningStatus {
    Running,
}

/// `finished`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishedStatus {
    Finished,
}

/// `failed`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailedStatus {
    Failed,
}

/// The answer to an upload: the import runs; follow it at `href`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportStarted {
    pub id: String,
    pub status: RunningStatus,
    pub href: String,
}

/// An import still running on this instance.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportRunning {
    pub id: String,
    pub status: RunningStatus,
    /// Rows read so far.
    pub rows: u64,
}

/// An import that failed: the reason and, once recorded, who ran which file, how and when
/// (those are absent when the failure could not be recorded either).
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportFailed {
    pub id: String,
    pub status: FailedStatus,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// `delta` or `full`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// A finished import with its counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportFinished {
    pub id: String,
    pub status: FinishedStatus,
    /// `applied`, `dry_run` or `refused: …`.
    pub outcome: String,
    pub actor: String,
    pub file_name: String,
    pub sha256: String,
    pub mode: String,
    pub dry_run: bool,
    pub started_at: String,
    pub finished_at: String,
    pub rows: i64,
    pub created: i64,
    pub updated: i64,
    pub deactivated: i64,
    pub unchanged: i64,
    /// Rows in error (their report is `errors.csv`).
    pub errors: i64,
}

/// An import as it stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ImportView {
    Running(ImportRunning),
    Failed(ImportFailed),
    Finished(ImportFinished),
}

/// Past imports (newest first) and how many run on this instance now.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportList {
    pub imports: Vec<ImportView>,
    pub running: usize,
}

/// Upload a CSV roster for a partner; the import runs in the background (poll its `href`).
#[utoipa::path(post, path = "/api/v1/imports", tag = "imports", params(ImportQuery),
    request_body(content = RosterUpload, content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Started", body = ImportStarted),
        (status = 400, description = "A bad query, upload or file name", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such partner in the caller's scope", body = ErrorBody),
        (status = 413, description = "The file is too large", body = ErrorBody),
    ))]
pub async fn post_import(
    state: web::Data<AppState>,
    admin: AdminCaller,
    query: web::Query<ImportQuery>,
    mut payload: Multipart,
) -> Result<HttpResponse, AdminError> {
    let slug =
        PartnerSlug::parse(&query.partner).map_err(|e| AdminError::bad_request(e.to_string()))?;
    admin.require(Need::ManagePartner)?;
    let partner = partners::find_partner(&state.deps, &slug).await?;
    admin.require_partner(&partner.id)?;
    let mode = match query.mode.as_deref().unwrap_or("delta") {
        "delta" => ImportMode::Delta,
        "full" => ImportMode::Full,
        other => {
            return Err(AdminError::bad_request(format!(
                "mode must be delta or full, not {other:?}"
            )))
        }
    };
    // The upload goes to a temporary file: the import streams it, never holding it whole.
    let mut file = tempfile::NamedTempFile::new()
        .map_err(|e| AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut file_name = None;
    let mut size = 0usize;
    while let Some(field) = payload.next().await {
        let mut field =
            field.map_err(|e| AdminError::bad_request(format!("cannot read the upload: {e}")))?;
        if field.name() != Some("file") {
            continue;
        }
        file_name = Some(
            field
                .content_disposition()
                .and_then(|cd| cd.get_filename())
                .unwrap_or("roster.csv")
                .to_string(),
        );
        while let Some(chunk) = field.next().await {
            let chunk = chunk
                .map_err(|e| AdminError::bad_request(format!("cannot read the upload: {e}")))?;
            size += chunk.len();
            if size > MAX_UPLOAD_BYTES {
                return Err(AdminError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the file exceeds {MAX_UPLOAD_BYTES} bytes"),
                ));
            }
            file.write_all(&chunk)
                .map_err(|e| AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        }
    }
    let Some(file_name) = file_name else {
        return Err(AdminError::bad_request(
            "send the roster as a multipart field named \"file\"",
        ));
    };
    if !crate::mapping::is_plain_file_name(&file_name) {
        return Err(AdminError::bad_request(
            "the upload's file name must be a plain name: no directories, no \"..\", no control characters",
        ));
    }
    let maps = if state.settings.mappings_dir.exists() {
        crate::import::load_column_maps(&state.settings.mappings_dir).map_err(|e| {
            AdminError::bad_request(format!("invalid column maps: {}", e.join("; ")))
        })?
    } else {
        Default::default()
    };
    let map = maps.get(partner.slug.as_str()).cloned().unwrap_or_default();
    let id = import_records::new_import_id();
    let rows = state.imports.start(&id);
    running_partners().insert(id.clone(), partner.id.clone());
    let opts = ImportOptions {
        mode,
        dry_run: query.dry_run.unwrap_or(false),
        force: query.force.unwrap_or(false),
        max_deactivate_share: 0.10,
        delimiter: None,
        file_name,
        id: Some(id.clone()),
    };
    let (task_state, task_id) = (state.clone(), id.clone());
    let started_at = state.deps.now_ms();
    tokio::spawn(async move {
        let outcome = match std::fs::File::open(file.path()) {
            Ok(f) => {
                let input = std::io::BufReader::with_capacity(64 * 1024, f);
                let counter = rows.clone();
                import_service::run(
                    &task_state.deps,
                    &admin.actor,
                    &partner,
                    input,
                    &map,
                    &opts,
                    &move |n, _| counter.store(n, Ordering::Relaxed),
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        drop(file);
        let unrecorded = match outcome {
            Ok(()) => None,
            Err(reason) => import_service::record_failure(
                &task_state.deps,
                &admin.actor,
                &partner,
                &opts,
                started_at,
                &reason,
            )
            .await
            .err()
            .map(|e| {
                tracing::error!(import = %task_id, error = %e, "recording a failed import");
                reason
            }),
        };
        task_state.imports.finish(&task_id, unrecorded);
        running_partners().remove(&task_id);
    });
    Ok(HttpResponse::Accepted().json(ImportStarted {
        href: format!("/api/v1/imports/{id}"),
        id,
        status: RunningStatus::Running,
    }))
}

/// The partner of each import running on this instance, so that a partner-admin can follow
/// its own import before the record is written.
fn running_partners() -> std::sync::MutexGuard<'static, std::collections::HashMap<String, String>> {
    static RUNNING: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, String>>,
    > = std::sync::OnceLock::new();
    RUNNING
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn record_json(r: &ImportRecord) -> ImportView {
    if let Some(reason) = r.outcome.strip_prefix(import_service::FAILED_PREFIX) {
        return ImportView::Failed(ImportFailed {
            id: r.id.clone(),
            status: FailedStatus::Failed,
            error: reason.to_string(),
            actor: Some(r.actor.clone()),
            file_name: Some(r.file_name.clone()),
            mode: Some(r.mode.clone()),
            dry_run: Some(r.dry_run),
            started_at: Some(to_rfc3339(from_millis(r.started_at))),
            finished_at: Some(to_rfc3339(from_millis(r.finished_at))),
        });
    }
    ImportView::Finished(ImportFinished {
        id: r.id.clone(),
        status: FinishedStatus::Finished,
        outcome: r.outcome.clone(),
        actor: r.actor.clone(),
        file_name: r.file_name.clone(),
        sha256: r.file_sha256.clone(),
        mode: r.mode.clone(),
        dry_run: r.dry_run,
        started_at: to_rfc3339(from_millis(r.started_at)),
        finished_at: to_rfc3339(from_millis(r.finished_at)),
        rows: r.rows_read,
        created: r.created,
        updated: r.updated,
        deactivated: r.deactivated,
        unchanged: r.unchanged,
        errors: r.errors,
    })
}

/// One import: its progress while it runs, then its record.
#[utoipa::path(get, path = "/api/v1/imports/{id}", tag = "imports",
    params(("id" = String, Path, description = "The import's id")),
    responses(
        (status = 200, description = "The import", body = ImportView),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such import in the caller's scope", body = ErrorBody),
    ))]
pub async fn get_import(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadPartner)?;
    // Memory first: an import writes its record before it leaves memory, so an id that is no
    // longer held has its record. Reading the record first would lose an import that ends
    // between the two reads (404 for an import that finished).
    if state.imports.progress(&id).is_some() {
        match running_partners().get(id.as_str()) {
            Some(p) => admin.require_partner(p)?,
            // Failed before it was recorded: only the unscoped roles see it.
            None => admin.require_partner("")?,
        }
    }
    match state.imports.progress(&id) {
        Some(Progress::Failed(failure)) => {
            Ok(HttpResponse::Ok().json(ImportView::Failed(ImportFailed {
                id: id.into_inner(),
                status: FailedStatus::Failed,
                error: failure,
                actor: None,
                file_name: None,
                mode: None,
                dry_run: None,
                started_at: None,
                finished_at: None,
            })))
        }
        Some(Progress::Running { rows }) => {
            Ok(HttpResponse::Ok().json(ImportView::Running(ImportRunning {
                id: id.into_inner(),
                status: RunningStatus::Running,
                rows,
            })))
        }
        None => match import_records::get(&state.deps, &id).await? {
            Some(r) => {
                admin.require_partner(&r.partner_id)?;
                Ok(HttpResponse::Ok().json(record_json(&r)))
            }
            None => Err(AdminError::new(StatusCode::NOT_FOUND, "no such import")),
        },
    }
}

/// Recent imports in the caller's scope, newest first.
#[utoipa::path(get, path = "/api/v1/imports", tag = "imports",
    responses(
        (status = 200, description = "The imports", body = ImportList),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
    ))]
pub async fn list_imports(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadPartner)?;
    let records = import_records::recent(&state.deps).await?;
    Ok(HttpResponse::Ok().json(ImportList {
        imports: records
            .iter()
            .filter(|r| admin.partner_scope().is_none_or(|p| p == r.partner_id))
            .map(record_json)
            .collect(),
        running: state.imports.len(),
    }))
}

/// A finished import's rows in error, as CSV (`line,column,reason`).
#[utoipa::path(get, path = "/api/v1/imports/{id}/errors.csv", tag = "imports",
    params(("id" = String, Path, description = "The import's id")),
    responses(
        (status = 200, description = "The error report", content_type = "text/csv", body = String),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such finished import in the caller's scope", body = ErrorBody),
    ))]
pub async fn get_import_errors(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadPartner)?;
    let record = import_records::get(&state.deps, &id)
        .await?
        .ok_or_else(|| AdminError::new(StatusCode::NOT_FOUND, "no such finished import"))?;
    admin.require_partner(&record.partner_id)?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"import-{}-errors.csv\"", record.id),
        ))
        .body(record.error_report))
}
