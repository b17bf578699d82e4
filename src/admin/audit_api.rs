//! `/api/v1/audit`: query the audit log (filters, keyset pages, newest first), export it as
//! CSV (streamed page by page), and verify its hash chains.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::error_shape::ErrorBody;
use super::{AdminCaller, AdminError, Need};
use crate::app_state::AppState;
use crate::clock::{from_millis, to_rfc3339};
use crate::services::audit::{self, AuditQuery, Resolved};
use crate::store::audit::AuditRecord;
use crate::store::Db;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/audit", web::get().to(list))
        .route("/audit/export.csv", web::get().to(export_csv))
        .route("/audit/verify", web::get().to(verify));
}

/// One audit log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    #[schema(required = true)]
    pub partner_id: Option<String>,
    pub action: String,
    pub target_type: String,
    #[schema(required = true)]
    pub target_id: Option<String>,
    #[schema(required = true)]
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A page of audit entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The hash chains' check.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyView {
    pub ok: bool,
    /// Chained rows checked.
    pub rows: i64,
    /// Chains that hold rows.
    pub chains: i64,
    /// Rows written before chaining, not checked.
    pub legacy: i64,
    /// The first bad row found.
    #[schema(value_type = Option<Object>)]
    #[schema(required = true)]
    pub problem: Option<audit::Problem>,
    /// The line `guestbridge audit verify` prints.
    pub summary: String,
}

fn entry(r: &AuditRecord) -> AuditEntry {
    AuditEntry {
        id: r.id,
        at: to_rfc3339(from_millis(r.at)),
        actor: r.actor.clone(),
        partner_id: r.partner_id.clone(),
        action: r.action.clone(),
        target_type: r.target_type.clone(),
        target_id: r.target_id.clone(),
        request_id: r.request_id.clone(),
        detail: r.detail.clone(),
    }
}

fn query_error(e: actix_web::error::QueryPayloadError) -> AdminError {
    AdminError::bad_request(format!("bad query: {e}"))
}

fn parse_query(req: &actix_web::HttpRequest) -> Result<AuditQuery, AdminError> {
    web::Query::<AuditQuery>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(query_error)
}

/// `GET /audit?actor=&action=&target_type=&target_id=&partner=SLUG&since=RFC3339&until=RFC3339&limit=N&cursor=C`
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(
        ("actor" = Option<String>, Query, description = "Exactly this actor"),
        ("action" = Option<String>, Query, description = "Exactly this action, e.g. `guest.suspended`"),
        ("target_type" = Option<String>, Query, description = "e.g. `guest`"),
        ("target_id" = Option<String>, Query, description = "The target's id"),
        ("partner" = Option<String>, Query, description = "A partner's slug"),
        ("since" = Option<String>, Query, description = "RFC 3339: entries at or after it"),
        ("until" = Option<String>, Query, description = "RFC 3339: entries before it"),
        ("limit" = Option<i64>, Query, description = "Page size"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 400, description = "A bad filter, limit or cursor", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such partner", body = ErrorBody),
    ))]
pub async fn list(
    state: web::Data<AppState>,
    admin: AdminCaller,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let query = parse_query(&req)?;
    let resolved = audit::resolve(&state.deps, &query).await?;
    let (records, next) = audit::page(&state.deps.db, &resolved).await?;
    Ok(HttpResponse::Ok().json(AuditPage {
        items: records.iter().map(entry).collect(),
        next_cursor: next,
    }))
}

/// Where an export stands between pages.
struct Export {
    db: Db,
    query: Resolved,
    first: Option<Vec<AuditRecord>>,
}

/// `GET /audit/export.csv` with the same filters (`limit` and `cursor` are ignored: every
/// matching entry, newest first). The first page is read before answering, so a bad query
/// or a database error is a status code; later pages are streamed as they are read.
#[utoipa::path(get, path = "/api/v1/audit/export.csv", tag = "audit", params(
        ("actor" = Option<String>, Query, description = "Exactly this actor"),
        ("action" = Option<String>, Query, description = "Exactly this action, e.g. `guest.suspended`"),
        ("target_type" = Option<String>, Query, description = "e.g. `guest`"),
        ("target_id" = Option<String>, Query, description = "The target's id"),
        ("partner" = Option<String>, Query, description = "A partner's slug"),
        ("since" = Option<String>, Query, description = "RFC 3339: entries at or after it"),
        ("until" = Option<String>, Query, description = "RFC 3339: entries before it"),
    ),
    responses(
        (status = 200, description = "Every matching entry, newest first", content_type = "text/csv", body = String),
        (status = 400, description = "A bad filter", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such partner", body = ErrorBody),
    ))]
pub async fn export_csv(
    state: web::Data<AppState>,
    admin: AdminCaller,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::AuditExport)?;
    let query = AuditQuery {
        limit: None,
        cursor: None,
        ..parse_query(&req)?
    };
    let mut resolved = audit::resolve(&state.deps, &query).await?;
    resolved.limit = audit::MAX_LIMIT;
    let db = state.deps.db.clone();
    let (first, _) = audit::page(&db, &resolved).await?;
    let start = Export {
        db,
        query: resolved,
        first: Some(first),
    };
    let body = futures_util::stream::unfold(Some(start), |state| async move {
        let mut export = state?;
        let (mut chunk, records) = match export.first.take() {
            Some(first) => (audit::CSV_HEADER.to_string(), first),
            None => match audit::page(&export.db, &export.query).await {
                Ok((records, _)) => (String::new(), records),
                Err(e) => {
                    let e = AdminError::from(e);
                    return Some((Err(actix_web::Error::from(e)), None));
                }
            },
        };
        if records.is_empty() && chunk.is_empty() {
            return None;
        }
        chunk.push_str(&audit::csv_lines(&records));
        let more = records.len() as i64 == export.query.limit;
        export.query.before_id = records.last().map(|r| r.id);
        let next = more.then_some(export);
        Some((Ok(web::Bytes::from(chunk)), next))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"audit.csv\"",
        ))
        .streaming(body))
}

/// `GET /audit/verify`: the chains' check, as `guestbridge audit verify` runs it
/// (200 with `"ok": false` and the first problem when a chain is broken).
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses(
        (status = 200, description = "The check's result", body = VerifyView),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
    ))]
pub async fn verify(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let report = audit::verify(&state.deps.db).await?;
    let summary = report.summary();
    Ok(HttpResponse::Ok().json(VerifyView {
        ok: report.ok,
        rows: report.rows,
        chains: report.chains,
        legacy: report.legacy,
        problem: report.problem,
        summary,
    }))
}
