//! `/api/v1/audit`: query the audit log (filters, keyset pages, newest first), export it as
//! CSV (streamed page by page), and verify its hash chains.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

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

fn entry(r: &AuditRecord) -> serde_json::Value {
    json!({
        "id": r.id,
        "at": to_rfc3339(from_millis(r.at)),
        "actor": r.actor,
        "partner_id": r.partner_id,
        "action": r.action,
        "target_type": r.target_type,
        "target_id": r.target_id,
        "request_id": r.request_id,
        "detail": r.detail,
    })
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
pub async fn list(
    state: web::Data<AppState>,
    admin: AdminCaller,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let query = parse_query(&req)?;
    let resolved = audit::resolve(&state.deps, &query).await?;
    let (records, next) = audit::page(&state.deps.db, &resolved).await?;
    Ok(HttpResponse::Ok().json(json!({
        "items": records.iter().map(entry).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
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
pub async fn verify(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let report = audit::verify(&state.deps.db).await?;
    Ok(HttpResponse::Ok().json(json!({
        "ok": report.ok,
        "rows": report.rows,
        "chains": report.chains,
        "legacy": report.legacy,
        "problem": report.problem,
        "summary": report.summary(),
    })))
}
