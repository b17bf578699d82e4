//! `/admin/login` and `/admin/logout`. The login form's CSRF token is bound to a random
//! pre-session cookie (there is no session yet); a failure says only that the name or the
//! password is wrong.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{
    forbidden, internal, page, pre_key, request_id, see_other, session_cookie, signed_in, CsrfForm,
};
use crate::app_state::AppState;
use crate::auth::csrf::{check_pre_session_csrf, pre_session_csrf_token};
use crate::auth::secrets::{hash_token, random_token};
use crate::services::admin_auth::{self, SignIn};
use crate::services::Actor;

const LOGIN_FORM: &str = "admin-login";

fn pre_cookie_name(state: &AppState) -> &'static str {
    if state.deps.portal.secure_cookies {
        "__Host-gb_admin_pre"
    } else {
        "gb_admin_pre"
    }
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    pre: &str,
    error: Option<&str>,
    name: &str,
) -> HttpResponse {
    page(
        state,
        status,
        "login.html",
        json!({
            "csrf": pre_session_csrf_token(&pre_key(state), &hash_token(pre), LOGIN_FORM),
            "error": error,
            "name": name,
            "sso_name": state.settings.admin_sso.as_ref().map(|s| s.display_name.clone()),
        }),
    )
}

pub async fn get_login(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match signed_in(&state, &req).await {
        Ok(Some(_)) => return see_other("/admin"),
        Ok(None) => {}
        Err(res) => return res,
    }
    let pre = req
        .cookie(pre_cookie_name(&state))
        .map(|c| c.value().to_string())
        .filter(|v| v.len() >= 32)
        .unwrap_or_else(|| random_token(32));
    let mut res = login_page(&state, StatusCode::OK, &pre, None, "");
    let cookie = Cookie::build(pre_cookie_name(&state), pre)
        .path("/")
        .http_only(true)
        .secure(state.deps.portal.secure_cookies)
        .same_site(SameSite::Strict)
        .finish();
    let _ = res.add_cookie(&cookie);
    res
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

pub async fn post_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    let Some(pre) = req
        .cookie(pre_cookie_name(&state))
        .map(|c| c.value().to_string())
    else {
        return forbidden(&state);
    };
    if !check_pre_session_csrf(&pre_key(&state), &hash_token(&pre), LOGIN_FORM, &form.csrf) {
        return forbidden(&state);
    }
    let ip = crate::edge::client_ip(&req)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into());
    match admin_auth::sign_in(
        &state.deps,
        &form.name,
        &form.password,
        &ip,
        request_id(&req),
    )
    .await
    {
        Ok(SignIn::Session(secret)) => {
            let mut res = see_other("/admin");
            let _ = res.add_cookie(&session_cookie(&state, secret));
            res
        }
        Ok(SignIn::Refused) => login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            &pre,
            Some("The name or the password is wrong."),
            &form.name,
        ),
        Ok(SignIn::RateLimited) => login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &pre,
            Some("Too many attempts. Wait 15 minutes and try again."),
            &form.name,
        ),
        Err(e) => internal(e),
    }
}

/// End the session (the form's CSRF token must be the session's) and forget the cookie.
pub async fn post_logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let user = match signed_in(&state, &req).await {
        Ok(Some(user)) => user,
        Ok(None) => return see_other("/admin/login"),
        Err(res) => return res,
    };
    if !user.csrf_ok(&form.csrf) {
        return forbidden(&state);
    }
    let actor = Actor {
        label: user.session.principal.actor_label(),
        request_id: request_id(&req),
    };
    if let Err(e) = admin_auth::sign_out(&state.deps, &user.secret, &actor).await {
        return internal(e);
    }
    let mut res = see_other("/admin/login");
    let _ = res.add_cookie(&session_cookie(&state, String::new()));
    res
}
