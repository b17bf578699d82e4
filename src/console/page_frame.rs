//! What every console page shares: its caller (session or bearer, with a redirect to the
//! sign-in page for a browser without either), the frame it renders into, the assets, and
//! how instants and states read.

use super::{signed_in, SignedIn};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use serde_json::{json, Value};

use crate::admin::{AdminCaller, AdminError, Need};
use crate::app_state::AppState;
use crate::clock::{from_millis, to_rfc3339};

/// Assets change only with the binary; a year's cache is safe as long as the release
/// replaces them, and they are small enough that a stale copy costs little.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, ASSET_CACHE))
        .body(crate::console_pages::CONSOLE_CSS)
}

pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, ASSET_CACHE))
        .body(crate::console_pages::CONSOLE_JS)
}

/// The caller of a console page: an admin principal (session cookie or bearer token) and,
/// with a session, what the layout shows and the CSRF token its buttons send. Without any
/// credential a browser is sent to the sign-in page instead of a JSON 401.
pub struct ConsoleCaller {
    pub admin: AdminCaller,
    session: Option<SignedIn>,
}

impl std::ops::Deref for ConsoleCaller {
    type Target = AdminCaller;
    fn deref(&self) -> &AdminCaller {
        &self.admin
    }
}

impl FromRequest for ConsoleCaller {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let admin = AdminCaller::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let admin = match admin.await {
                Ok(a) => a,
                Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                    return Err(actix_web::error::InternalError::from_response(
                        "not signed in",
                        HttpResponse::SeeOther()
                            .insert_header((header::LOCATION, "/admin/login"))
                            .finish(),
                    )
                    .into())
                }
                Err(e) => return Err(e.into()),
            };
            let session = match req.app_data::<web::Data<AppState>>() {
                Some(state) => signed_in(state, &req).await.ok().flatten(),
                None => None,
            };
            Ok(ConsoleCaller { admin, session })
        })
    }
}

/// What the layout shows of the signed-in admin. Bearer callers have no session, so no
/// CSRF token (their scripts call the JSON API themselves).
fn layout_context(caller: &ConsoleCaller, active: &str, mut ctx: Value) -> Value {
    let (user, csrf) = match &caller.session {
        Some(s) => (s.user_json(), s.csrf()),
        None => (
            json!({"name": caller.admin.actor.label, "role": caller.admin.role().as_str()}),
            String::new(),
        ),
    };
    if let Some(obj) = ctx.as_object_mut() {
        obj.insert("user".into(), user);
        obj.insert("csrf".into(), json!(csrf));
        obj.entry("active").or_insert(json!(active));
    }
    ctx
}

/// The caller of a console form that posts here (not to the JSON API): a bearer token, or a
/// session whose form carries its CSRF token in the `csrf` field. Without either, the answer
/// to send instead: to the sign-in page, or the "form expired" page.
pub async fn form_caller(
    state: &AppState,
    req: &HttpRequest,
    csrf: &str,
) -> Result<ConsoleCaller, HttpResponse> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return match AdminCaller::from_request(req, &mut actix_web::dev::Payload::None).await {
            Ok(admin) => Ok(ConsoleCaller {
                admin,
                session: None,
            }),
            Err(e) => Err(e.error_response()),
        };
    }
    let session = match signed_in(state, req).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/admin/login"))
                .finish())
        }
        Err(res) => return Err(res),
    };
    if !session.csrf_ok(csrf) {
        return Err(super::forbidden(state));
    }
    let admin = AdminCaller {
        actor: crate::services::Actor {
            label: session.session.principal.actor_label(),
            request_id: super::request_id(req),
        },
        principal: session.session.principal.clone(),
    };
    Ok(ConsoleCaller {
        admin,
        session: Some(session),
    })
}

/// A console page's failure. A role refusal (403) is an HTML page a person can read and
/// leave; other failures keep the admin API's JSON answer.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PageError(#[from] pub AdminError);

impl From<crate::services::ServiceError> for PageError {
    fn from(e: crate::services::ServiceError) -> Self {
        PageError(e.into())
    }
}

impl actix_web::ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.0.status != StatusCode::FORBIDDEN {
            return self.0.error_response();
        }
        let ctx = json!({
            "heading": "Not for your role",
            "text": format!("{}. Ask an administrator if you need it.", capitalised(&self.0.message)),
            "link": "/admin", "link_text": "Back to the console",
        });
        match crate::console_pages::render("message.html", &ctx) {
            Ok(body) => HttpResponse::Forbidden()
                .content_type("text/html; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body(body),
            Err(_) => self.0.error_response(),
        }
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// 403 as an HTML page, for a role that may not see this page or do this.
pub fn require(caller: &ConsoleCaller, need: Need) -> Result<(), PageError> {
    Ok(caller.admin.require(need)?)
}

/// Render a page for the caller, with this status.
pub fn html(
    caller: &ConsoleCaller,
    status: StatusCode,
    template: &str,
    ctx: Value,
) -> Result<HttpResponse, PageError> {
    let body =
        crate::console_pages::render(template, &layout_context(caller, active_of(template), ctx))
            .map_err(|e| {
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

pub fn not_found(caller: &ConsoleCaller, message: &str) -> Result<HttpResponse, PageError> {
    html(
        caller,
        StatusCode::NOT_FOUND,
        "not_found.html",
        json!({"message": message}),
    )
}

/// An instant as the console shows it: minutes, UTC.
pub fn when(ms: Option<i64>) -> Value {
    match ms {
        Some(t) => json!(from_millis(t).format("%Y-%m-%d %H:%M UTC").to_string()),
        None => Value::Null,
    }
}

/// An instant for a `datetime` attribute.
pub fn iso(ms: Option<i64>) -> Value {
    ms.map(|t| json!(to_rfc3339(from_millis(t))))
        .unwrap_or(Value::Null)
}

/// A stored state as people read it: `suspended:deactivated` is "suspended (deactivated)".
pub fn state_label(stored: &str) -> String {
    match stored.split_once(':') {
        Some((s, reason)) => format!("{} ({})", s, reason.replace('_', " ")),
        None => stored.replace('_', " "),
    }
}

/// The navigation entry a page belongs to.
fn active_of(template: &str) -> &'static str {
    match template {
        "dashboard.html" => "dashboard",
        "jobs.html" | "job_runs.html" => "jobs",
        "sync.html" => "sync",
        "audit.html" => "audit",
        "imports.html" | "import.html" => "imports",
        "mappings.html" => "mappings",
        "partners.html" | "partner.html" => "partners",
        _ => "guests",
    }
}
