//! `GET /auth/verify?app=ID`: the sub-request a reverse proxy (nginx `auth_request`, Traefik
//! ForwardAuth, Caddy `forward_auth`) makes before letting a request through to an on-premises
//! app that knows nothing of sign-in. The answer is decided from the guest's portal session
//! alone, on every request, so a suspension or an ended grant shuts the door at once.
//!
//! nginx treats any answer but 2xx, 401 and 403 as an error of its own, so "not signed in" is a
//! 401 carrying the sign-in address in `X-Guestbridge-Signin` for the proxy to redirect to;
//! Traefik and Caddy hand the answer to the browser as it is, so with `redirect=1` it is a 302.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::current;
use crate::app_state::AppState;
use crate::services::guest_auth;

pub const USER_HEADER: &str = "X-Guestbridge-User";
pub const EMAIL_HEADER: &str = "X-Guestbridge-Email";
pub const NAME_HEADER: &str = "X-Guestbridge-Name";
pub const ROLES_HEADER: &str = "X-Guestbridge-Roles";
pub const SIGNIN_HEADER: &str = "X-Guestbridge-Signin";

#[derive(Deserialize)]
pub struct VerifyQuery {
    app: Option<String>,
    /// `1`: answer "not signed in" with a redirect rather than a 401.
    redirect: Option<String>,
}

fn plain(status: StatusCode, text: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(text.to_string())
}

/// Header values must be visible ASCII; a name or address that is not is left out rather than
/// mangled, and the app still gets the stable id.
fn header_safe(value: &str) -> Option<&str> {
    (!value.is_empty() && value.bytes().all(|b| (0x20..0x7f).contains(&b))).then_some(value)
}

fn sign_in_first(state: &AppState, path: &str, query: &VerifyQuery) -> HttpResponse {
    let url = format!(
        "{}{path}",
        state.deps.portal.public_url.trim_end_matches('/')
    );
    let mut res = if query.redirect.as_deref() == Some("1") {
        let mut res = HttpResponse::Found();
        res.insert_header((header::LOCATION, url.as_str()));
        res
    } else {
        HttpResponse::Unauthorized()
    };
    res.insert_header((SIGNIN_HEADER, url.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/plain; charset=utf-8")
        .body("sign in to the guest portal first")
}

pub async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<VerifyQuery>,
) -> HttpResponse {
    let Some(app_id) = query.app.as_deref().filter(|a| !a.is_empty()) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "the proxy must name the app: /auth/verify?app=ID",
        );
    };
    if state.deps.rules().app(app_id).is_none() {
        // A proxy configured with an app the rules do not declare lets nobody in.
        tracing::warn!(
            app = app_id,
            "forward-auth for an app the mapping rules do not declare"
        );
        return plain(StatusCode::FORBIDDEN, "no such application");
    }
    let session = match current(&state, &req).await {
        Ok(s) => s,
        Err(e) => return super::internal(e),
    };
    let gs = match session {
        Some(gs) if !gs.needs_mfa() => gs,
        Some(_) => return sign_in_first(&state, "/mfa", &query),
        None => return sign_in_first(&state, "/signin", &query),
    };
    let roles = match guest_auth::usable_roles(&state.deps, &gs.guest, app_id).await {
        Ok(r) => r,
        Err(e) => return super::internal(e),
    };
    if roles.is_empty() {
        return plain(
            StatusCode::FORBIDDEN,
            "you have no current access to this application",
        );
    }
    if let Err(e) = guest_auth::record_activity(&state.deps, &gs.guest.id).await {
        // The answer stands; a missed activity mark only brings the inactivity date closer.
        tracing::warn!(error = %e, "forward-auth could not record the guest's activity");
    }
    let mut res = HttpResponse::Ok();
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((USER_HEADER, gs.guest.id.as_str()))
        .insert_header((ROLES_HEADER, roles.join(",")));
    if let Some(email) = gs.guest.email.as_deref().and_then(header_safe) {
        res.insert_header((EMAIL_HEADER, email));
    }
    let name = gs
        .guest
        .display_name
        .as_deref()
        .unwrap_or(&gs.guest.user_name);
    if let Some(name) = header_safe(name) {
        res.insert_header((NAME_HEADER, name));
    }
    res.finish()
}
