//! `/admin/setup/{token}`: the one-time link `guestbridge admin create-login` prints. GET and
//! HEAD show the form and use nothing (link scanners); the POST, with a CSRF token bound to
//! the link, sets the password and uses the link up.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{forbidden, internal, message, page, pre_key, request_id};
use crate::app_state::AppState;
use crate::auth::csrf::{check_pre_session_csrf, pre_session_csrf_token};
use crate::auth::secrets::hash_token;
use crate::services::admin_auth::{self, SetupProblem, MIN_PASSWORD_CHARS};

const SETUP_FORM: &str = "admin-setup";

fn gone(state: &AppState) -> HttpResponse {
    message(
        state,
        StatusCode::GONE,
        "This link does not work",
        "Setup links work once, for 24 hours. Ask an administrator for a new login link.",
        Some(("/admin/login", "Sign in")),
    )
}

fn setup_page(
    state: &AppState,
    status: StatusCode,
    token: &str,
    login_name: &str,
    error: Option<&str>,
) -> HttpResponse {
    page(
        state,
        status,
        "setup.html",
        json!({
            "token": token,
            "login_name": login_name,
            "min_length": MIN_PASSWORD_CHARS,
            "csrf": pre_session_csrf_token(&pre_key(state), &hash_token(token), SETUP_FORM),
            "error": error,
        }),
    )
}

pub async fn get_setup(state: web::Data<AppState>, token: web::Path<String>) -> HttpResponse {
    match admin_auth::setup_link_login(&state.deps, &token).await {
        Ok(Some(name)) => setup_page(&state, StatusCode::OK, &token, &name, None),
        Ok(None) => gone(&state),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

pub async fn post_setup(
    state: web::Data<AppState>,
    req: HttpRequest,
    token: web::Path<String>,
    form: web::Form<SetupForm>,
) -> HttpResponse {
    if !check_pre_session_csrf(
        &pre_key(&state),
        &hash_token(&token),
        SETUP_FORM,
        &form.csrf,
    ) {
        return forbidden(&state);
    }
    let name = match admin_auth::setup_link_login(&state.deps, &token).await {
        Ok(Some(name)) => name,
        Ok(None) => return gone(&state),
        Err(e) => return internal(e),
    };
    if form.password != form.confirm {
        return setup_page(
            &state,
            StatusCode::BAD_REQUEST,
            &token,
            &name,
            Some("The two passwords differ."),
        );
    }
    match admin_auth::set_password(&state.deps, &token, &form.password, request_id(&req)).await {
        Ok(Ok(())) => message(
            &state,
            StatusCode::OK,
            "Your password is set",
            "Sign in with your name and the new password.",
            Some(("/admin/login", "Sign in")),
        ),
        Ok(Err(SetupProblem::Weak(reason))) => setup_page(
            &state,
            StatusCode::BAD_REQUEST,
            &token,
            &name,
            Some(&reason),
        ),
        Ok(Err(SetupProblem::LinkGone)) => gone(&state),
        Err(e) => internal(e),
    }
}
