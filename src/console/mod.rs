//! The admin console's HTML side: sign-in (`/admin/login`, `/admin/logout`), the setup link
//! (`/admin/setup/{token}`), the console home (`/admin`) and the landing page (`/`). Pages
//! are server-rendered (`console_pages`); every form carries a CSRF token; the session
//! cookie is HttpOnly, SameSite=Strict, and `__Host-` prefixed and Secure over https.

pub mod audit_page;
pub mod dashboard;
pub mod expiry_chart;
pub mod guest_page;
pub mod guests_table;
mod home;
pub mod imports_page;
pub mod invite_page;
pub mod jobs_page;
mod landing;
mod login;
pub mod mappings_page;
pub mod page_frame;
pub mod partners_page;
mod setup;
mod sso;
pub mod sync_page;

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde_json::json;

use crate::app_state::AppState;
use crate::services::admin_auth::{self, AdminSession};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(landing::get_landing))
        .route("/admin", web::get().to(home::get_home))
        .route("/admin/", web::get().to(home::get_home))
        .route("/admin/login", web::get().to(login::get_login))
        .route("/admin/login", web::post().to(login::post_login))
        .route("/admin/logout", web::post().to(login::post_logout))
        .route("/admin/login/sso", web::get().to(sso::start_sso))
        .route(
            "/admin/login/sso/callback",
            web::get().to(sso::sso_callback),
        )
        // The link from `create-login` answers HEAD like GET (link scanners); only POST acts.
        .route("/admin/setup/{token}", web::get().to(setup::get_setup))
        .route("/admin/setup/{token}", web::head().to(setup::get_setup))
        .route("/admin/setup/{token}", web::post().to(setup::post_setup))
        .route("/admin/dashboard", web::get().to(dashboard::page))
        .route("/admin/guests", web::get().to(guests_table::page))
        .route("/admin/guests/new", web::get().to(invite_page::page))
        .route("/admin/guests/{id}", web::get().to(guest_page::page))
        .route("/admin/jobs", web::get().to(jobs_page::page))
        .route("/admin/jobs/{name}", web::get().to(jobs_page::runs))
        .route("/admin/sync", web::get().to(sync_page::page))
        .route("/admin/audit", web::get().to(audit_page::page))
        .route("/admin/imports", web::get().to(imports_page::list))
        .route("/admin/imports/{id}", web::get().to(imports_page::detail))
        .route("/admin/partners", web::get().to(partners_page::list))
        .route(
            "/admin/partners/{slug}",
            web::get().to(partners_page::detail),
        )
        .route("/admin/mappings", web::get().to(mappings_page::page))
        .route(
            "/admin/mappings/preview",
            web::post().to(mappings_page::preview),
        )
        .route(
            "/admin/mappings/reload",
            web::post().to(mappings_page::reload),
        )
        .route(
            "/admin/assets/console.css",
            web::get().to(page_frame::stylesheet),
        )
        .route(
            "/admin/assets/console.js",
            web::get().to(page_frame::script),
        );
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// Render a console page; `organization` is available to every page.
fn page(
    state: &AppState,
    status: StatusCode,
    name: &str,
    mut ctx: serde_json::Value,
) -> HttpResponse {
    if let Some(obj) = ctx.as_object_mut() {
        obj.insert("organization".into(), json!(state.deps.portal.organization));
    }
    match crate::console_pages::render(name, &ctx) {
        Ok(body) => html(status, body),
        Err(e) => internal(e),
    }
}

fn message(
    state: &AppState,
    status: StatusCode,
    heading: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> HttpResponse {
    page(
        state,
        status,
        "message.html",
        json!({"heading": heading, "text": text, "link": link.map(|l| l.0), "link_text": link.map(|l| l.1)}),
    )
}

fn internal(e: impl std::fmt::Display) -> HttpResponse {
    let error_id = uuid::Uuid::new_v4();
    tracing::error!(%error_id, error = %e, "console error");
    HttpResponse::InternalServerError()
        .content_type("text/plain; charset=utf-8")
        .body(format!("Something went wrong. Reference {error_id}."))
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn forbidden(state: &AppState) -> HttpResponse {
    message(
        state,
        StatusCode::FORBIDDEN,
        "Please try again",
        "The form expired or did not come from this site. Go back, reload the page and try again.",
        None,
    )
}

/// The key that binds the CSRF tokens of pages shown before a session exists.
fn pre_key(state: &AppState) -> [u8; 32] {
    state
        .deps
        .portal
        .secrets
        .derive_key("csrf:admin-pre-session")
}

fn cookie_name(state: &AppState) -> &'static str {
    admin_auth::session_cookie_name(state.deps.portal.secure_cookies)
}

/// The session cookie (or, with an empty value, the one that removes it).
fn session_cookie(state: &AppState, value: String) -> Cookie<'static> {
    let mut c = Cookie::build(cookie_name(state), value)
        .path("/")
        .http_only(true)
        .secure(state.deps.portal.secure_cookies)
        .same_site(SameSite::Strict)
        .finish();
    if c.value().is_empty() {
        c.set_max_age(CookieDuration::ZERO);
    }
    c
}

fn request_id(req: &HttpRequest) -> Option<String> {
    use actix_web::HttpMessage;
    req.extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(|r| r.to_string())
}

/// A signed-in console user: the session and the cookie's secret (its CSRF tokens derive
/// from it). Handlers that need one take `Option<SignedIn>`-like care themselves: a missing
/// or dead session is `None` here, never an error.
pub struct SignedIn {
    pub session: AdminSession,
    secret: String,
}

impl SignedIn {
    /// The CSRF token for this session's forms (field `csrf`) and API calls (`X-CSRF-Token`).
    pub fn csrf(&self) -> String {
        admin_auth::csrf_token(&self.secret)
    }

    pub fn csrf_ok(&self, token: &str) -> bool {
        admin_auth::csrf_ok(&self.secret, token)
    }

    /// What the layout shows of the user.
    pub fn user_json(&self) -> serde_json::Value {
        json!({"name": self.session.login_name, "role": self.session.principal.role.as_str()})
    }
}

/// The console session of this request, if any.
pub async fn signed_in(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<SignedIn>, HttpResponse> {
    let Some(cookie) = req.cookie(cookie_name(state)) else {
        return Ok(None);
    };
    let secret = cookie.value().to_string();
    if secret.is_empty() {
        return Ok(None);
    }
    match admin_auth::session(&state.deps, &secret).await {
        Ok(Some(session)) => Ok(Some(SignedIn { session, secret })),
        Ok(None) => Ok(None),
        Err(e) => Err(internal(e)),
    }
}

/// A form's CSRF field, read leniently so that a form without it is refused as forged.
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

// Kept for handlers that extract the session like `AdminCaller` does.
impl FromRequest for SignedIn {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
                return Err(actix_web::error::ErrorInternalServerError("state missing"));
            };
            match signed_in(&state, &req).await {
                Ok(Some(s)) => Ok(s),
                Ok(None) => Err(actix_web::error::InternalError::from_response(
                    "not signed in",
                    see_other("/admin/login"),
                )
                .into()),
                Err(res) => {
                    Err(actix_web::error::InternalError::from_response("console error", res).into())
                }
            }
        })
    }
}
