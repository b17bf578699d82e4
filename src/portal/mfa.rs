//! The second-factor pages: TOTP enrolment (`/mfa/setup`), the code prompt (`/mfa`), and the
//! e-mailed code, offered and accepted only where `guest_mfa::email_fallback` allows it.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{
    client_ip, csrf_ok, forbidden, internal, message, page, see_other, session_csrf, too_many,
    SignedIn,
};
use crate::app_state::AppState;
use crate::services::guest_auth::{CodeOutcome, GuestSession};
use crate::services::{guest_mfa, guest_passkeys};

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    code: Option<String>,
}

/// Whether the pages offer the e-mailed code; an error hides the offer rather than the page.
async fn offers_email(state: &AppState, gs: &GuestSession) -> bool {
    guest_mfa::email_fallback(&state.deps, gs)
        .await
        .unwrap_or(false)
}

/// What the code prompt shows of passkeys: whether the guest has any (then "Use a passkey"),
/// and whether only a passkey passes (then no code form). An error shows the code form.
async fn passkey_offer(state: &AppState, gs: &GuestSession) -> (bool, bool) {
    let has = guest_passkeys::has_passkeys(&state.deps, &gs.guest.id)
        .await
        .unwrap_or(false);
    let only = guest_passkeys::passkey_only(&state.deps, gs)
        .await
        .unwrap_or(false);
    (has, only)
}

pub async fn get_mfa_setup(state: web::Data<AppState>, SignedIn(gs): SignedIn) -> HttpResponse {
    match guest_mfa::is_enrolled(&state.deps, &gs.guest.id).await {
        Ok(true) => return see_other("/mfa"),
        Ok(false) => {}
        Err(e) => return internal(e),
    }
    // The partner requires a passkey: enrolment is a passkey, not an app.
    match guest_passkeys::passkey_only(&state.deps, &gs).await {
        Ok(true) => return see_other("/mfa/passkeys"),
        Ok(false) => {}
        Err(e) => return internal(e),
    }
    render_setup(&state, &gs, None).await
}

async fn render_setup(state: &AppState, gs: &GuestSession, error: Option<&str>) -> HttpResponse {
    let email_fallback = offers_email(state, gs).await;
    match guest_mfa::enrolment(&state.deps, gs).await {
        Ok(en) => page(
            state,
            if error.is_some() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            },
            "mfa_setup.html",
            json!({"qr_svg": en.qr_svg, "otpauth_uri": en.otpauth_uri, "secret_text": en.secret_text, "csrf": session_csrf(gs, "mfa"), "error": error, "email_fallback": email_fallback}),
        ),
        Err(e) => internal(e),
    }
}

fn email_not_allowed(state: &AppState) -> HttpResponse {
    message(
        state,
        StatusCode::FORBIDDEN,
        "Use your authenticator app",
        "You signed in with a link from your email, so a code sent to the same email cannot be your second step. Use the code from your authenticator app. If you lost it, ask your contact to reset it.",
        Some(("/mfa", "Enter the code from your app")),
    )
}

pub async fn post_mfa_setup(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CodeForm>,
    SignedIn(gs): SignedIn,
) -> HttpResponse {
    if !csrf_ok(&gs, "mfa", &form.csrf) {
        return forbidden(&state);
    }
    match guest_mfa::verify_totp(
        &state.deps,
        &gs,
        form.code.as_deref().unwrap_or(""),
        &client_ip(&req),
    )
    .await
    {
        Ok(CodeOutcome::Accepted) => see_other("/apps"),
        Ok(CodeOutcome::Wrong | CodeOutcome::NotAllowed) => {
            render_setup(
                &state,
                &gs,
                Some(
                    "That code is not right. Check the time on your phone and try the newest code.",
                ),
            )
            .await
        }
        Ok(CodeOutcome::RateLimited) => too_many(&state),
        Err(e) => internal(e),
    }
}

pub async fn get_mfa(state: web::Data<AppState>, SignedIn(gs): SignedIn) -> HttpResponse {
    // Without an authenticator or a passkey there is nothing to use here yet: enrol first.
    let (passkeys, passkey_only) = passkey_offer(&state, &gs).await;
    match guest_mfa::is_enrolled(&state.deps, &gs.guest.id).await {
        Ok(false) if gs.needs_mfa() && !passkeys => {
            return see_other(if passkey_only {
                "/mfa/passkeys"
            } else {
                "/mfa/setup"
            })
        }
        Ok(_) => {}
        Err(e) => return internal(e),
    }
    let email_fallback = offers_email(&state, &gs).await && !passkey_only;
    page(
        &state,
        StatusCode::OK,
        "mfa_verify.html",
        json!({"csrf": session_csrf(&gs, "mfa"), "emailed": false, "email_fallback": email_fallback, "passkeys": passkeys, "passkey_only": passkey_only, "passkey_csrf": session_csrf(&gs, "passkey")}),
    )
}

async fn verify_code(
    state: &AppState,
    req: &HttpRequest,
    gs: GuestSession,
    form: &CodeForm,
    emailed: bool,
) -> HttpResponse {
    if !csrf_ok(&gs, "mfa", &form.csrf) {
        return forbidden(state);
    }
    let code = form.code.as_deref().unwrap_or("");
    let outcome = if emailed {
        guest_mfa::verify_email_code(&state.deps, &gs, code, &client_ip(req)).await
    } else {
        guest_mfa::verify_totp(&state.deps, &gs, code, &client_ip(req)).await
    };
    match outcome {
        Ok(CodeOutcome::Accepted) => see_other("/apps"),
        Ok(CodeOutcome::Wrong) => {
            let (passkeys, passkey_only) = passkey_offer(state, &gs).await;
            page(
                state,
                StatusCode::BAD_REQUEST,
                "mfa_verify.html",
                json!({"csrf": session_csrf(&gs, "mfa"), "emailed": emailed, "email_fallback": !emailed && offers_email(state, &gs).await, "error": "That code is not right. Try again.", "passkeys": passkeys, "passkey_only": passkey_only, "passkey_csrf": session_csrf(&gs, "passkey")}),
            )
        }
        Ok(CodeOutcome::NotAllowed) => email_not_allowed(state),
        Ok(CodeOutcome::RateLimited) => too_many(state),
        Err(e) => internal(e),
    }
}

pub async fn post_mfa(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CodeForm>,
    SignedIn(gs): SignedIn,
) -> HttpResponse {
    verify_code(&state, &req, gs, &form, false).await
}

pub async fn post_mfa_email_verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CodeForm>,
    SignedIn(gs): SignedIn,
) -> HttpResponse {
    verify_code(&state, &req, gs, &form, true).await
}

pub async fn post_mfa_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CodeForm>,
    SignedIn(gs): SignedIn,
) -> HttpResponse {
    if !csrf_ok(&gs, "mfa", &form.csrf) {
        return forbidden(&state);
    }
    match guest_mfa::send_email_code(&state.deps, &gs, &client_ip(&req)).await {
        Ok(CodeOutcome::RateLimited) => too_many(&state),
        Ok(CodeOutcome::NotAllowed) => email_not_allowed(&state),
        Ok(_) => page(
            &state,
            StatusCode::OK,
            "mfa_verify.html",
            json!({"csrf": session_csrf(&gs, "mfa"), "emailed": true}),
        ),
        Err(e) => internal(e),
    }
}
