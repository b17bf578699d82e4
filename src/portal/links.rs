//! The pages that e-mailed links open: the invitation and the sign-in link. Mail scanners
//! (Safe Links and the like) fetch every URL in a mail, so a GET or HEAD only shows a page;
//! its button, a POST carrying a CSRF token bound to the link, does the one-time action.
//! The token is derived from the link's hash with the instance key, so only someone who
//! loaded the page can post it, and a refused post leaves the link usable.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{
    forbidden, internal, link_problem, message, next_step, page, pre_key, see_other, session_cookie,
};
use crate::app_state::AppState;
use crate::auth::csrf::{check_pre_session_csrf, pre_session_csrf_token};
use crate::auth::secrets::hash_token;
use crate::services::guest_auth;
use crate::services::invitations::{self, Decision, CONSENT_VERSION};

/// CSRF purposes, one per kind of link.
const INVITE_FORM: &str = "invite";
const SIGNIN_LINK_FORM: &str = "signin-link";

/// A new session's cookie and where the guest goes next.
async fn signed_in(state: &AppState, secret: String) -> HttpResponse {
    let next = match guest_auth::session(&state.deps, &secret).await {
        Ok(Some(gs)) => next_step(state, &gs).await.unwrap_or("/apps"),
        _ => "/apps",
    };
    let mut res = see_other(next);
    let _ = res.add_cookie(&session_cookie(state, secret));
    res
}

pub async fn get_invite(state: web::Data<AppState>, token: web::Path<String>) -> HttpResponse {
    let view = match invitations::open(&state.deps, &token).await {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => return link_problem(&state, p),
        Err(e) => return internal(e),
    };
    let g = &view.guest;
    let mut shared = vec!["your name".to_string()];
    if g.email.is_some() {
        shared.push("your email address".into());
    }
    shared.push(format!("that you work for {}", view.partner.name));
    shared.push("the roles you are given in each application".into());
    page(
        &state,
        StatusCode::OK,
        "invite.html",
        json!({
            "token": token.as_str(),
            "guest_name": g.display_name.clone().unwrap_or_else(|| g.user_name.clone()),
            "partner_name": view.partner.name,
            "apps": view.apps,
            "shared": shared,
            "mfa_required": g.mfa_required,
            "csrf": pre_session_csrf_token(&pre_key(&state), &view.token_hash, INVITE_FORM),
            "consent_version": CONSENT_VERSION,
            "sponsor_text": match &g.sponsor { Some(s) => format!("your contact ({s}) will be told."), None => "your contact will be told.".into() },
            "lang": g.language,
        }),
    )
}

#[derive(Deserialize)]
pub struct InviteForm {
    // Defaults, so that a form without them is refused as forged (403), not as malformed.
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    consent_version: Option<String>,
}

pub async fn post_invite(
    state: web::Data<AppState>,
    token: web::Path<String>,
    form: web::Form<InviteForm>,
) -> HttpResponse {
    if !check_pre_session_csrf(
        &pre_key(&state),
        &hash_token(&token),
        INVITE_FORM,
        &form.csrf,
    ) {
        return forbidden(&state);
    }
    let decision = match form.decision.as_str() {
        "accept" => Decision::Accept,
        "decline" => Decision::Decline,
        _ => {
            return message(
                &state,
                StatusCode::BAD_REQUEST,
                "Please try again",
                "Choose accept or decline.",
                None,
            )
        }
    };
    // Consent is recorded only for the text the guest saw; an older page must be reloaded.
    let version = match form.consent_version.as_deref() {
        Some(v) if v == CONSENT_VERSION => v,
        _ if decision == Decision::Decline => CONSENT_VERSION,
        _ => {
            return message(
                &state,
                StatusCode::CONFLICT,
                "Please read the page again",
                "What is shared has changed since you opened this page. Open the link again to see the current text.",
                None,
            )
        }
    };
    match invitations::answer(&state.deps, &token, decision, version).await {
        Ok(Err(p)) => link_problem(&state, p),
        Ok(Ok(None)) => message(&state, StatusCode::OK, "You declined the invitation", "Nothing has been shared. Your contact has been told. If this was a mistake, ask them for a new invitation.", None),
        Ok(Ok(Some(secret))) => signed_in(&state, secret).await,
        Err(e) => internal(e),
    }
}

fn signin_link_gone(state: &AppState) -> HttpResponse {
    message(
        state,
        StatusCode::GONE,
        "This link does not work",
        "Sign-in links work once, for 15 minutes. Ask for a new one.",
        Some(("/signin", "Sign in")),
    )
}

/// The sign-in link's page: a button that signs in. Showing it uses nothing up.
pub async fn get_signin_link(state: web::Data<AppState>, token: web::Path<String>) -> HttpResponse {
    match guest_auth::signin_link_usable(&state.deps, &token).await {
        Ok(true) => page(
            &state,
            StatusCode::OK,
            "signin_link.html",
            json!({
                "token": token.as_str(),
                "csrf": pre_session_csrf_token(&pre_key(&state), &hash_token(&token), SIGNIN_LINK_FORM),
            }),
        ),
        Ok(false) => signin_link_gone(&state),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    csrf: String,
}

/// The sign-in link's button: uses the link once and starts the session.
pub async fn post_signin_link(
    state: web::Data<AppState>,
    token: web::Path<String>,
    form: web::Form<LinkForm>,
) -> HttpResponse {
    if !check_pre_session_csrf(
        &pre_key(&state),
        &hash_token(&token),
        SIGNIN_LINK_FORM,
        &form.csrf,
    ) {
        return forbidden(&state);
    }
    match guest_auth::use_signin(&state.deps, &token).await {
        Ok(Some(secret)) => signed_in(&state, secret).await,
        Ok(None) => signin_link_gone(&state),
        Err(e) => internal(e),
    }
}
