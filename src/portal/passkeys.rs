//! The passkey pages and their JSON endpoints: enrolment and removal (`/mfa/passkeys`), a
//! passkey as the second step (`/mfa/passkey/*`), and sign-in with a passkey
//! (`/signin/passkey/*`). The browser side is `/passkey.js` (the CSP allows only our own
//! scripts). Each JSON call carries the page's CSRF token in its body.

use actix_web::cookie::Cookie;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    client_ip, csrf_ok, current, forbidden, internal, next_step, page, pre_key, see_other,
    session_cookie, session_csrf, SignedIn, PRE_COOKIE,
};
use crate::app_state::AppState;
use crate::auth::csrf::check_pre_session_csrf;
use crate::auth::secrets::hash_token;
use crate::services::guest_auth::{CodeOutcome, GuestSession};
use crate::services::guest_passkeys::{self, SigninOutcome};
use crate::services::ServiceError;

/// The CSRF form name of the passkey calls made from a signed-in page.
const FORM: &str = "passkey";

const SCRIPT: &str = include_str!("../portal_pages/passkey.js");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/passkey.js", web::get().to(get_script))
        .route("/mfa/passkeys", web::get().to(get_passkeys))
        .route(
            "/mfa/passkeys/register/start",
            web::post().to(post_register_start),
        )
        .route(
            "/mfa/passkeys/register/finish",
            web::post().to(post_register_finish),
        )
        .route("/mfa/passkeys/{id}/remove", web::post().to(post_remove))
        .route("/mfa/passkey/start", web::post().to(post_mfa_start))
        .route("/mfa/passkey/finish", web::post().to(post_mfa_finish))
        .route("/signin/passkey/start", web::post().to(post_signin_start))
        .route("/signin/passkey/finish", web::post().to(post_signin_finish));
}

/// The body of every passkey call.
#[derive(Deserialize)]
struct Call {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    credential: Value,
}

fn refusal(status: StatusCode, error: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"error": error, "message": message}))
}

fn json_ok(body: Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

fn outcome_refusal(outcome: CodeOutcome) -> HttpResponse {
    match outcome {
        CodeOutcome::RateLimited => refusal(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many attempts. Please wait 15 minutes and try again.",
        ),
        CodeOutcome::NotAllowed => refusal(
            StatusCode::FORBIDDEN,
            "not_allowed",
            "Finish signing in with your second step first.",
        ),
        CodeOutcome::Wrong | CodeOutcome::Accepted => refusal(
            StatusCode::BAD_REQUEST,
            "refused",
            "That passkey was not accepted. Try again.",
        ),
    }
}

fn json_internal(e: ServiceError) -> HttpResponse {
    let error_id = uuid::Uuid::new_v4();
    tracing::error!(%error_id, error = %e, "portal passkey error");
    refusal(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        &format!("Something went wrong. Reference {error_id}."),
    )
}

/// The body, parsed; a body that is not the expected JSON is refused the same way.
fn parse(body: &[u8]) -> Result<Call, Box<HttpResponse>> {
    serde_json::from_slice(body).map_err(|_| {
        Box::new(refusal(
            StatusCode::BAD_REQUEST,
            "malformed",
            "The request was not understood.",
        ))
    })
}

/// The signed-in guest whose page made this call, with a valid CSRF token.
async fn caller(
    state: &AppState,
    req: &HttpRequest,
    body: &[u8],
) -> Result<(GuestSession, Call), Box<HttpResponse>> {
    let gs = match current(state, req).await {
        Ok(Some(gs)) => gs,
        Ok(None) => {
            return Err(Box::new(refusal(
                StatusCode::UNAUTHORIZED,
                "no_session",
                "Your session ended. Sign in again.",
            )))
        }
        Err(e) => return Err(Box::new(json_internal(e))),
    };
    let call = parse(body)?;
    if !csrf_ok(&gs, FORM, &call.csrf) {
        return Err(Box::new(refusal(
            StatusCode::FORBIDDEN,
            "csrf",
            "The page expired. Reload it and try again.",
        )));
    }
    Ok((gs, call))
}

pub async fn get_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(SCRIPT)
}

fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

pub async fn get_passkeys(state: web::Data<AppState>, SignedIn(gs): SignedIn) -> HttpResponse {
    let deps = &state.deps;
    let (list, may_enrol) = match (
        guest_passkeys::list(deps, &gs.guest.id).await,
        guest_passkeys::may_enrol(deps, &gs).await,
    ) {
        (Ok(l), Ok(m)) => (l, m),
        (Err(e), _) | (_, Err(e)) => return internal(e),
    };
    let passkeys: Vec<Value> = list
        .iter()
        .map(|p| json!({"id": p.id, "name": p.name, "created": date(p.created_at), "last_used": p.last_used_at.map(date)}))
        .collect();
    page(
        &state,
        StatusCode::OK,
        "passkeys.html",
        json!({
            "passkeys": passkeys,
            "may_enrol": may_enrol,
            "needs_mfa": gs.needs_mfa(),
            "csrf": session_csrf(&gs, FORM),
            "default_name": format!("Passkey {}", list.len() + 1),
        }),
    )
}

pub async fn post_register_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (gs, _) = match caller(&state, &req, &body).await {
        Ok(c) => c,
        Err(res) => return *res,
    };
    match guest_passkeys::start_registration(&state.deps, &gs).await {
        Ok(Some(options)) => json_ok(options),
        Ok(None) => outcome_refusal(CodeOutcome::NotAllowed),
        Err(e) => json_internal(e),
    }
}

pub async fn post_register_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (gs, call) = match caller(&state, &req, &body).await {
        Ok(c) => c,
        Err(res) => return *res,
    };
    let deps = &state.deps;
    match guest_passkeys::finish_registration(
        deps,
        &gs,
        &call.name,
        &call.credential,
        &client_ip(&req),
    )
    .await
    {
        Ok(CodeOutcome::Accepted) => {
            // At the first sign-in the enrolment was the second step: on to the apps.
            let next = if gs.needs_mfa() {
                "/apps"
            } else {
                "/mfa/passkeys"
            };
            json_ok(json!({"next": next}))
        }
        Ok(other) => outcome_refusal(other),
        Err(e) => json_internal(e),
    }
}

#[derive(Deserialize)]
pub struct RemoveForm {
    #[serde(default)]
    csrf: String,
}

pub async fn post_remove(
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: web::Form<RemoveForm>,
    SignedIn(gs): SignedIn,
) -> HttpResponse {
    if !csrf_ok(&gs, FORM, &form.csrf) {
        return forbidden(&state);
    }
    match guest_passkeys::remove(&state.deps, &gs, &id).await {
        Ok(_) => see_other("/mfa/passkeys"),
        Err(ServiceError::Conflict(_)) => super::message(
            &state,
            StatusCode::CONFLICT,
            "This is your only second step",
            "Add another passkey or an authenticator app before you remove this one.",
            Some(("/mfa/passkeys", "Back to your passkeys")),
        ),
        Err(e) => internal(e),
    }
}

pub async fn post_mfa_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (gs, _) = match caller(&state, &req, &body).await {
        Ok(c) => c,
        Err(res) => return *res,
    };
    match guest_passkeys::start_authentication(&state.deps, &gs).await {
        Ok(Some(options)) => json_ok(options),
        Ok(None) => refusal(
            StatusCode::NOT_FOUND,
            "no_passkeys",
            "You have no passkeys yet.",
        ),
        Err(e) => json_internal(e),
    }
}

pub async fn post_mfa_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (gs, call) = match caller(&state, &req, &body).await {
        Ok(c) => c,
        Err(res) => return *res,
    };
    match guest_passkeys::finish_authentication(
        &state.deps,
        &gs,
        &call.credential,
        &client_ip(&req),
    )
    .await
    {
        Ok(CodeOutcome::Accepted) => json_ok(json!({"next": "/apps"})),
        Ok(other) => outcome_refusal(other),
        Err(e) => json_internal(e),
    }
}

/// The sign-in page's pre-session cookie (its hash binds the ceremony) and a valid token.
fn pre_session(state: &AppState, req: &HttpRequest, call: &Call) -> Option<String> {
    let pre = req.cookie(PRE_COOKIE)?.value().to_string();
    let binding = hash_token(&pre);
    (!pre.is_empty() && check_pre_session_csrf(&pre_key(state), &binding, "signin", &call.csrf))
        .then_some(binding)
}

pub async fn post_signin_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let call = match parse(&body) {
        Ok(c) => c,
        Err(res) => return *res,
    };
    let Some(binding) = pre_session(&state, &req, &call) else {
        return refusal(
            StatusCode::FORBIDDEN,
            "csrf",
            "The page expired. Reload it and try again.",
        );
    };
    match guest_passkeys::start_signin(&state.deps, &binding).await {
        Ok(options) => json_ok(options),
        Err(e) => json_internal(e),
    }
}

pub async fn post_signin_finish(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let call = match parse(&body) {
        Ok(c) => c,
        Err(res) => return *res,
    };
    let Some(binding) = pre_session(&state, &req, &call) else {
        return refusal(
            StatusCode::FORBIDDEN,
            "csrf",
            "The page expired. Reload it and try again.",
        );
    };
    match guest_passkeys::finish_signin(&state.deps, &binding, &call.credential, &client_ip(&req))
        .await
    {
        Ok(SigninOutcome::SignedIn(secret)) => {
            let next = match guest_auth_next(&state, &secret).await {
                Ok(n) => n,
                Err(e) => return json_internal(e),
            };
            let mut res = json_ok(json!({"next": next}));
            let _ = res.add_cookie(&session_cookie(&state, secret));
            // The pre-session cookie has done its job.
            let mut gone = Cookie::build(PRE_COOKIE, "").path("/signin").finish();
            gone.make_removal();
            let _ = res.add_cookie(&gone);
            res
        }
        Ok(SigninOutcome::Refused) => outcome_refusal(CodeOutcome::Wrong),
        Ok(SigninOutcome::RateLimited) => outcome_refusal(CodeOutcome::RateLimited),
        Err(e) => json_internal(e),
    }
}

async fn guest_auth_next(state: &AppState, secret: &str) -> Result<&'static str, ServiceError> {
    match crate::services::guest_auth::session(&state.deps, secret).await? {
        Some(gs) => next_step(state, &gs).await,
        None => Ok("/signin"),
    }
}
