//! The guest portal: server-rendered pages for the invitation, consent, MFA, sign-in and the
//! access panel, plus app launch and the JWKS. Pages work without JavaScript on a 360 px
//! screen; every form carries a CSRF token; responses carry strict security headers.

mod forward_auth;
mod links;
mod mfa;
mod oidc;
mod passkeys;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::app_state::AppState;
use crate::auth::csrf::{check_csrf, check_pre_session_csrf, csrf_token, pre_session_csrf_token};
use crate::auth::secrets::{hash_token, random_token};
use crate::domain::GuestState;
use crate::services::guest_auth::{self, CodeOutcome, GuestSession};
use crate::services::invitations::LinkProblem;
use crate::services::{guest_mfa, guest_passkeys};
use crate::services::{signing, ServiceError};

pub use crate::portal_pages::Pages;

const SESSION_COOKIE: &str = "gb_session";
const PRE_COOKIE: &str = "gb_pre";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(|| async { see_other("/signin") }))
        // Links from mails answer HEAD like GET (scanners use both); only POST acts.
        .route("/invite/{token}", web::get().to(links::get_invite))
        .route("/invite/{token}", web::head().to(links::get_invite))
        .route("/invite/{token}", web::post().to(links::post_invite))
        .route("/mfa/setup", web::get().to(mfa::get_mfa_setup))
        .route("/mfa/setup", web::post().to(mfa::post_mfa_setup))
        .route("/mfa", web::get().to(mfa::get_mfa))
        .route("/mfa", web::post().to(mfa::post_mfa))
        .route("/mfa/email", web::post().to(mfa::post_mfa_email))
        .route(
            "/mfa/email/verify",
            web::post().to(mfa::post_mfa_email_verify),
        )
        .route("/apps", web::get().to(get_apps))
        .route("/apps/{app}/launch", web::get().to(get_launch))
        .route("/signin", web::get().to(get_signin))
        .route("/signin", web::post().to(post_signin))
        .route("/signin/{token}", web::get().to(links::get_signin_link))
        .route("/signin/{token}", web::head().to(links::get_signin_link))
        .route("/signin/{token}", web::post().to(links::post_signin_link))
        .route("/signout", web::post().to(post_signout))
        .route("/.well-known/jwks.json", web::get().to(get_jwks))
        .route("/auth/verify", web::get().to(forward_auth::verify))
        .configure(oidc::configure)
        .configure(passkeys::configure);
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn page(state: &AppState, status: StatusCode, name: &str, ctx: serde_json::Value) -> HttpResponse {
    match state
        .pages
        .render(name, &state.deps.portal.organization, ctx)
    {
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
    tracing::error!(%error_id, error = %e, "portal error");
    HttpResponse::InternalServerError()
        .content_type("text/plain; charset=utf-8")
        .body(format!("Something went wrong. Reference {error_id}."))
}

fn client_ip(req: &HttpRequest) -> String {
    crate::edge::client_ip(req)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn session_cookie<'a>(state: &AppState, value: String) -> Cookie<'a> {
    Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .secure(state.deps.portal.secure_cookies)
        .same_site(SameSite::Lax)
        .finish()
}

fn link_problem(state: &AppState, p: LinkProblem) -> HttpResponse {
    let (status, text) = match p {
        LinkProblem::Unknown => (
            StatusCode::NOT_FOUND,
            "This link is not valid. Check that you copied the whole link from the email.",
        ),
        LinkProblem::Used => (
            StatusCode::GONE,
            "This link has already been used. Sign in to reach your applications.",
        ),
        LinkProblem::Revoked => (
            StatusCode::GONE,
            "This link has been replaced by a newer one. Use the most recent email.",
        ),
        LinkProblem::Expired => (
            StatusCode::GONE,
            "This link has expired. Ask your contact to send a new invitation, or sign in.",
        ),
    };
    message(
        state,
        status,
        "This link does not work",
        text,
        Some(("/signin", "Sign in")),
    )
}

/// The signed-in guest. A handler that takes it sends a request without a valid session to
/// the sign-in page, and one whose session cannot be read to the error page, before it runs.
pub struct SignedIn(GuestSession);

#[derive(Debug)]
pub enum NotSignedIn {
    Missing,
    Failed(String),
}

impl std::fmt::Display for NotSignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotSignedIn::Missing => f.write_str("not signed in"),
            NotSignedIn::Failed(e) => write!(f, "reading the session: {e}"),
        }
    }
}

impl actix_web::ResponseError for NotSignedIn {
    fn error_response(&self) -> HttpResponse {
        match self {
            NotSignedIn::Missing => see_other("/signin"),
            NotSignedIn::Failed(e) => internal(e),
        }
    }
}

impl actix_web::FromRequest for SignedIn {
    type Error = NotSignedIn;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Some(state) = req.app_data::<web::Data<AppState>>() else {
                return Err(NotSignedIn::Failed("no application state".into()));
            };
            match current(state, &req).await {
                Ok(Some(gs)) => Ok(SignedIn(gs)),
                Ok(None) => Err(NotSignedIn::Missing),
                Err(e) => Err(NotSignedIn::Failed(e.to_string())),
            }
        })
    }
}

/// The signed-in guest, if the session cookie is valid.
async fn current(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<GuestSession>, ServiceError> {
    match req.cookie(SESSION_COOKIE) {
        Some(c) => guest_auth::session(&state.deps, c.value()).await,
        None => Ok(None),
    }
}

fn pre_key(state: &AppState) -> [u8; 32] {
    state.deps.portal.secrets.derive_key("csrf:pre-session")
}

fn session_csrf(gs: &GuestSession, form: &str) -> String {
    csrf_token(gs.session.csrf_secret.as_bytes(), form)
}

fn csrf_ok(gs: &GuestSession, form: &str, token: &str) -> bool {
    check_csrf(gs.session.csrf_secret.as_bytes(), form, token)
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

fn too_many(state: &AppState) -> HttpResponse {
    message(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts",
        "Please wait 15 minutes and try again.",
        None,
    )
}

/// Where a signed-in guest goes next.
async fn next_step(state: &AppState, gs: &GuestSession) -> Result<&'static str, ServiceError> {
    if gs.needs_mfa() {
        return mfa_step(state, gs).await;
    }
    Ok("/apps")
}

/// The MFA page for a guest who still has to pass it: the prompt when a factor is
/// enrolled, else the enrolment (a passkey where the partner requires one).
async fn mfa_step(state: &AppState, gs: &GuestSession) -> Result<&'static str, ServiceError> {
    let deps = &state.deps;
    if guest_mfa::is_enrolled(deps, &gs.guest.id).await?
        || guest_passkeys::has_passkeys(deps, &gs.guest.id).await?
    {
        return Ok("/mfa");
    }
    Ok(if guest_passkeys::passkey_only(deps, gs).await? {
        "/mfa/passkeys"
    } else {
        "/mfa/setup"
    })
}

pub async fn get_apps(
    state: web::Data<AppState>,
    req: HttpRequest,
    SignedIn(gs): SignedIn,
) -> HttpResponse {
    if gs.needs_mfa() {
        return match next_step(&state, &gs).await {
            Ok(next) => see_other(next),
            Err(e) => internal(e),
        };
    }
    if gs.state() != Some(GuestState::Active) {
        return message(
            &state,
            StatusCode::FORBIDDEN,
            "No access at the moment",
            "Your access is not active. Contact the person who invited you.",
            None,
        );
    }
    // An app's sign-in request sent the guest to sign in first: it continues now.
    if let Some(target) = oidc::resume_target(&req) {
        let mut res = see_other(&target);
        let mut gone = Cookie::build(oidc::RESUME_COOKIE, "").path("/").finish();
        gone.make_removal();
        let _ = res.add_cookie(&gone);
        return res;
    }
    let apps = match guest_auth::apps(&state.deps, &gs).await {
        Ok(a) => a,
        Err(e) => return internal(e),
    };
    let partner = guest_auth::partner_name(&state.deps, &gs.guest)
        .await
        .unwrap_or_default();
    page(
        &state,
        StatusCode::OK,
        "apps.html",
        json!({"apps": apps, "guest_name": gs.guest.display_name.clone().unwrap_or_else(|| gs.guest.user_name.clone()), "partner_name": partner, "csrf": session_csrf(&gs, "signout")}),
    )
}

pub async fn get_launch(
    state: web::Data<AppState>,
    app: web::Path<String>,
    SignedIn(gs): SignedIn,
) -> HttpResponse {
    match guest_auth::launch(&state.deps, &gs, &app).await {
        Ok(Some(url)) => see_other(&url),
        Ok(None) => message(
            &state,
            StatusCode::FORBIDDEN,
            "You cannot open this application",
            "You have no current access to it.",
            Some(("/apps", "Back to your applications")),
        ),
        Err(e) => internal(e),
    }
}

pub async fn get_signin(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let pre = req
        .cookie(PRE_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_else(|| random_token(16));
    let mut res = page(
        &state,
        StatusCode::OK,
        "signin.html",
        json!({"csrf": pre_session_csrf_token(&pre_key(&state), &hash_token(&pre), "signin")}),
    );
    let cookie = Cookie::build(PRE_COOKIE, pre)
        .path("/signin")
        .http_only(true)
        .secure(state.deps.portal.secure_cookies)
        .same_site(SameSite::Strict)
        .finish();
    let _ = res.add_cookie(&cookie);
    res
}

#[derive(Deserialize)]
pub struct SigninForm {
    csrf: String,
    email: String,
}

pub async fn post_signin(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<SigninForm>,
) -> HttpResponse {
    let pre = req
        .cookie(PRE_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if pre.is_empty()
        || !check_pre_session_csrf(&pre_key(&state), &hash_token(&pre), "signin", &form.csrf)
    {
        return forbidden(&state);
    }
    match guest_auth::request_signin(&state.deps, &form.email, &client_ip(&req)).await {
        Ok(CodeOutcome::RateLimited) => too_many(&state),
        // The same answer whether or not the address is known.
        Ok(_) => message(&state, StatusCode::OK, "Check your email", "If this address belongs to a guest, we have sent a sign-in link to it. The link works once, for 15 minutes.", None),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn post_signout(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CsrfForm>,
    SignedIn(gs): SignedIn,
) -> HttpResponse {
    if !csrf_ok(&gs, "signout", &form.csrf) {
        return forbidden(&state);
    }
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        if let Err(e) = guest_auth::end_session(&state.deps, c.value()).await {
            return internal(e);
        }
    }
    let mut res = message(
        &state,
        StatusCode::OK,
        "Signed out",
        "You are signed out.",
        Some(("/signin", "Sign in again")),
    );
    let mut gone = session_cookie(&state, String::new());
    gone.make_removal();
    let _ = res.add_cookie(&gone);
    res
}

pub async fn get_jwks(state: web::Data<AppState>) -> HttpResponse {
    match signing::jwks(&state.deps).await {
        Ok(jwks) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
            .json(jwks),
        Err(e) => internal(e),
    }
}
