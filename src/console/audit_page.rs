//! `GET /admin/audit`: the audit log with the API's filters (a GET form), newest first in
//! keyset pages of 50, an "Export CSV" link with the same filters, and the hash chains'
//! verification on demand (`?verify=1`).
//!
//! The service pages only backwards in time, so "Previous" replays the cursors this browser
//! came through: every Next link carries the trail of earlier pages' cursors, and Previous
//! pops one. That keeps pages exact (the same rows as the API's) without a second query shape.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::page_frame::{html, iso, require, when, ConsoleCaller, PageError};
use crate::admin::{AdminError, Need};
use crate::app_state::AppState;
use crate::services::audit::{self, AuditQuery};
use crate::services::ServiceError;

/// Entries on one page.
pub const PAGE_SIZE: i64 = 50;
/// Earlier pages a trail remembers; past that, Previous goes back no further than this.
const MAX_TRAIL: usize = 100;
/// The first page's place in a trail (it has no cursor).
const FIRST: &str = "-";

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditForm {
    actor: Option<String>,
    action: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    partner: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    trail: Option<String>,
    verify: Option<String>,
}

fn filled(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A `datetime-local` value (`2026-11-26T12:00`, read as UTC) or an RFC 3339 instant, as
/// RFC 3339; anything else is left for the service to refuse with its message.
fn instant(v: Option<String>) -> Option<String> {
    let v = v?;
    if chrono::DateTime::parse_from_rfc3339(&v).is_ok() {
        return Some(v);
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(&v, format) {
            return Some(
                t.and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
    }
    Some(v)
}

/// The value a `datetime-local` input shows for an RFC 3339 instant (UTC).
fn local_value(v: &Option<String>) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(v.as_deref()?).ok()?;
    Some(
        t.with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M")
            .to_string(),
    )
}

/// The filters as query pairs, in form order (for links).
fn filter_pairs(q: &AuditQuery) -> Vec<(&'static str, String)> {
    [
        ("actor", &q.actor),
        ("action", &q.action),
        ("target_type", &q.target_type),
        ("target_id", &q.target_id),
        ("partner", &q.partner),
        ("since", &q.since),
        ("until", &q.until),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
    .collect()
}

fn link(base: &str, pairs: &[(&str, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    let q = s.finish();
    if q.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{q}")
    }
}

/// A trail of earlier cursors: `-` (the first page) or an entry id, comma-separated.
fn parse_trail(v: Option<String>) -> Result<Vec<String>, AdminError> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let trail: Vec<String> = v.split(',').map(str::to_string).collect();
    if trail
        .iter()
        .any(|c| c != FIRST && !c.parse::<i64>().is_ok_and(|id| id > 0))
    {
        return Err(AdminError::bad_request(
            "trail is not one this page made; start again from the first page",
        ));
    }
    Ok(trail)
}

fn entry(r: &crate::store::audit::AuditRecord) -> Value {
    json!({
        "id": r.id, "at": when(Some(r.at)), "at_iso": iso(Some(r.at)), "actor": r.actor,
        "partner_id": r.partner_id, "action": r.action, "target_type": r.target_type,
        "target_id": r.target_id, "request_id": r.request_id,
        "detail": match &r.detail { Value::Null => String::new(), d => d.to_string() },
    })
}

pub async fn page(
    state: web::Data<AppState>,
    caller: ConsoleCaller,
    req: HttpRequest,
) -> Result<HttpResponse, PageError> {
    require(&caller, Need::ReadEverything)?;
    let form = web::Query::<AuditForm>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| AdminError::bad_request(format!("bad query: {e}")))?;
    let query = AuditQuery {
        actor: filled(&form.actor),
        action: filled(&form.action),
        target_type: filled(&form.target_type),
        target_id: filled(&form.target_id),
        partner: filled(&form.partner),
        since: instant(filled(&form.since)),
        until: instant(filled(&form.until)),
        limit: Some(PAGE_SIZE),
        cursor: filled(&form.cursor),
    };
    let trail = parse_trail(filled(&form.trail))?;
    let filters = filter_pairs(&query);
    let mut ctx = json!({
        "form": {
            "actor": query.actor, "action": query.action, "target_type": query.target_type,
            "target_id": query.target_id, "partner": query.partner,
            "since": local_value(&query.since).or(query.since.clone()),
            "until": local_value(&query.until).or(query.until.clone()),
        },
        "export": link("/api/v1/audit/export.csv", &filters),
        "verify_link": link("/admin/audit", &[filters.clone(), vec![("verify", "1".into())]].concat()),
        "page_size": PAGE_SIZE,
        "rows": [],
    });
    if filled(&form.verify).is_some() {
        let report = audit::verify(&state.deps.db).await?;
        ctx["verify"] = json!({
            "ok": report.ok, "rows": report.rows, "chains": report.chains,
            "legacy": report.legacy, "summary": report.summary(),
            "problem": report.problem.as_ref().map(|p| p.reason.clone()),
        });
    }
    let resolved = match audit::resolve(&state.deps, &query).await {
        Ok(r) => r,
        // A bad filter is shown above the form (which keeps what was typed); nothing is read.
        Err(ServiceError::Invalid(e)) => {
            ctx["error"] = json!(e.detail);
            return html(&caller, StatusCode::BAD_REQUEST, "audit.html", ctx);
        }
        Err(e) => return Err(e.into()),
    };
    let (records, next) = audit::page(&state.deps.db, &resolved).await?;
    let here = query.cursor.clone().unwrap_or_else(|| FIRST.to_string());
    ctx["next"] = json!(next.map(|c| {
        let mut t = trail.clone();
        t.push(here.clone());
        if t.len() > MAX_TRAIL {
            t.remove(0);
        }
        let mut pairs = filters.clone();
        pairs.push(("cursor", c));
        pairs.push(("trail", t.join(",")));
        link("/admin/audit", &pairs)
    }));
    ctx["previous"] = json!(trail.split_last().map(|(last, rest)| {
        let mut pairs = filters.clone();
        if last != FIRST {
            pairs.push(("cursor", last.clone()));
        }
        if !rest.is_empty() {
            pairs.push(("trail", rest.join(",")));
        }
        link("/admin/audit", &pairs)
    }));
    ctx["rows"] = json!(records.iter().map(entry).collect::<Vec<_>>());
    html(&caller, StatusCode::OK, "audit.html", ctx)
}
