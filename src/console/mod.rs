//! The admin console's pages under `/admin`: server-rendered HTML over the same services as
//! the JSON API, authenticated by `AdminCaller`. Actions post to the JSON API.

pub mod dashboard;
pub mod expiry_chart;
pub mod guest_page;
pub mod guests_table;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use crate::admin::{AdminCaller, AdminError};
use crate::clock::{from_millis, to_rfc3339};

/// Register the console pages and their assets.
pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/dashboard", web::get().to(dashboard::page))
        .route("/admin/guests", web::get().to(guests_table::page))
        .route("/admin/guests/{id}", web::get().to(guest_page::page))
        .route("/admin/assets/console.css", web::get().to(stylesheet))
        .route("/admin/assets/console.js", web::get().to(script));
}

/// Assets change only with the binary; a year's cache is safe as long as the release
/// replaces them, and they are small enough that a stale copy costs little.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, ASSET_CACHE))
        .body(crate::console_pages::CONSOLE_CSS)
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, ASSET_CACHE))
        .body(crate::console_pages::CONSOLE_JS)
}

/// What the layout shows of the signed-in admin. Bearer callers have no session, so no
/// CSRF token; the session sign-in fills it.
fn layout_context(caller: &AdminCaller, mut ctx: Value) -> Value {
    if let Some(obj) = ctx.as_object_mut() {
        obj.insert(
            "console".into(),
            json!({"name": caller.actor.label, "role": "admin"}),
        );
        obj.entry("csrf").or_insert(json!(""));
    }
    ctx
}

/// Render a page for the caller, with this status.
fn html(
    caller: &AdminCaller,
    status: StatusCode,
    template: &str,
    ctx: Value,
) -> Result<HttpResponse, AdminError> {
    let body =
        crate::console_pages::render(template, &layout_context(caller, ctx)).map_err(|e| {
            let error_id = uuid::Uuid::new_v4();
            tracing::error!(%error_id, error = %e, template, "console page failed to render");
            AdminError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("internal error; reference {error_id}"),
            )
        })?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

fn not_found(caller: &AdminCaller, message: &str) -> Result<HttpResponse, AdminError> {
    html(
        caller,
        StatusCode::NOT_FOUND,
        "not_found.html",
        json!({"message": message}),
    )
}

/// An instant as the console shows it: minutes, UTC.
fn when(ms: Option<i64>) -> Value {
    match ms {
        Some(t) => json!(from_millis(t).format("%Y-%m-%d %H:%M UTC").to_string()),
        None => Value::Null,
    }
}

/// An instant for a `datetime` attribute.
fn iso(ms: Option<i64>) -> Value {
    ms.map(|t| json!(to_rfc3339(from_millis(t))))
        .unwrap_or(Value::Null)
}

/// A stored state as people read it: `suspended:deactivated` is "suspended (deactivated)".
fn state_label(stored: &str) -> String {
    match stored.split_once(':') {
        Some((s, reason)) => format!("{} ({})", s, reason.replace('_', " ")),
        None => stored.replace('_', " "),
    }
}
