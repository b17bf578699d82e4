//! `GET /admin/sync`: each target's queue (pending, delivered, dead, lag) and the dead
//! letters, newest first, 50 a page, each with a "Replay" button for admins.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::page_frame::{html, iso, require, when, ConsoleCaller, PageError};
use crate::admin::Need;
use crate::app_state::AppState;
use crate::domain::AdminRole;
use crate::services::sync_view::{self, MAX_DEAD_PAGE};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncQuery {
    cursor: Option<String>,
}

/// A lag as people read it: seconds, minutes, hours or days.
fn lag_text(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

pub async fn page(
    state: web::Data<AppState>,
    caller: ConsoleCaller,
    query: web::Query<SyncQuery>,
) -> Result<HttpResponse, PageError> {
    require(&caller, Need::ReadEverything)?;
    let cursor = query.cursor.as_deref().filter(|c| !c.is_empty());
    let targets = sync_view::targets(&state.deps).await?;
    let dead = sync_view::dead_letters(&state.deps, cursor, MAX_DEAD_PAGE).await?;
    let ctx = json!({
        "targets": targets.iter().map(|t| json!({
            "name": t.counts.target, "pending": t.counts.pending, "delivered": t.counts.delivered,
            "dead": t.counts.dead, "lag": t.lag_ms.map(lag_text),
            "oldest": when(t.counts.oldest_pending),
        })).collect::<Vec<_>>(),
        "dead_letters": dead.items.iter().map(|d| json!({
            "id": d.id, "target": d.target, "guest_id": d.guest_id, "kind": d.kind,
            "attempts": d.attempts, "created": when(Some(d.created_at)),
            "dead_at": when(Some(d.dead_at)), "dead_at_iso": iso(Some(d.dead_at)),
            "last_error": d.last_error,
        })).collect::<Vec<_>>(),
        "next": dead.next.map(|c| format!("/admin/sync?cursor={}", urlencoding(&c))),
        "paged": cursor.is_some(),
        "page_size": MAX_DEAD_PAGE,
        "can_replay": caller.role() == AdminRole::Admin,
    });
    html(&caller, StatusCode::OK, "sync.html", ctx)
}

/// A query value, percent-encoded.
pub(super) fn urlencoding(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}
