//! `/oauth2/authorize` (OIDC Core §3.1.2). Until the client and its redirect URI are known
//! good, errors are a page of ours: redirecting them would make us an open redirector. After
//! that, errors go back to the app at its redirect URI with `state` and `iss` (RFC 9207).
//!
//! A guest who must sign in first is sent to the portal's sign-in; the request waits in a
//! short-lived cookie and resumes when the access panel is reached signed in.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::app_state::AppState;
use crate::services::guest_auth::GuestSession;
use crate::services::oidc::{self, Authorization};

use super::super::{current, internal, message, see_other, session_cookie, SESSION_COOKIE};

pub const RESUME_COOKIE: &str = "gb_oidc_resume";
/// The largest authorization request kept for after sign-in.
const RESUME_MAX_BYTES: usize = 3000;

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct AuthorizeParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_challenge: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code_challenge_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    login_hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_uri: Option<String>,
}

pub async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
    params: web::Query<AuthorizeParams>,
) -> HttpResponse {
    authorize(&state, &req, params.into_inner()).await
}

pub async fn post(
    state: web::Data<AppState>,
    req: HttpRequest,
    params: web::Form<AuthorizeParams>,
) -> HttpResponse {
    authorize(&state, &req, params.into_inner()).await
}

fn bad_request(state: &AppState, text: &str) -> HttpResponse {
    message(
        state,
        StatusCode::BAD_REQUEST,
        "This sign-in request is not valid",
        text,
        Some(("/apps", "Your applications")),
    )
}

/// The redirect back to the app: `code` or `error`, with `state` and `iss`.
fn back_to_app(
    redirect_uri: &str,
    iss: &str,
    pairs: &[(&str, &str)],
    st: Option<&str>,
) -> HttpResponse {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return internal("a registered redirect URI does not parse");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        if let Some(st) = st {
            q.append_pair("state", st);
        }
        q.append_pair("iss", iss);
    }
    see_other(url.as_str())
}

async fn authorize(state: &AppState, req: &HttpRequest, p: AuthorizeParams) -> HttpResponse {
    let rules = state.deps.rules();
    let Some(app) = p.client_id.as_deref().and_then(|id| rules.oidc_app(id)) else {
        return bad_request(state, "The application that sent you here is not known.");
    };
    let Some(client) = app.oidc.as_ref() else {
        return bad_request(state, "The application that sent you here is not known.");
    };
    let Some(redirect_uri) = p
        .redirect_uri
        .as_deref()
        .filter(|r| client.redirect_uris.iter().any(|u| u == r))
    else {
        return bad_request(
            state,
            "The application asked to return to an address it has not registered.",
        );
    };
    let iss = oidc::issuer(&state.deps);
    let st = p.state.as_deref();
    let fail = |error: &str, description: &str| {
        back_to_app(
            redirect_uri,
            &iss,
            &[("error", error), ("error_description", description)],
            st,
        )
    };
    if p.request.is_some() {
        return fail("request_not_supported", "request objects are not supported");
    }
    if p.request_uri.is_some() {
        return fail("request_uri_not_supported", "request_uri is not supported");
    }
    if p.response_type.as_deref() != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    if p.response_mode.as_deref().is_some_and(|m| m != "query") {
        return fail("invalid_request", "only response_mode=query is supported");
    }
    let asked: Vec<&str> = p.scope.as_deref().unwrap_or("").split(' ').collect();
    if !asked.contains(&"openid") {
        return fail("invalid_scope", "the openid scope is required");
    }
    // Scopes the client may not have are left out (RFC 6749 §3.3), not refused.
    let scopes: Vec<String> = client
        .scopes
        .iter()
        .filter(|s| asked.contains(&s.as_str()))
        .cloned()
        .collect();
    let challenge = p.code_challenge.as_deref().filter(|c| !c.is_empty());
    match (challenge, p.code_challenge_method.as_deref()) {
        (Some(_), Some("S256")) => {}
        (Some(_), _) => return fail("invalid_request", "code_challenge_method must be S256"),
        (None, _) if client.public => {
            return fail("invalid_request", "PKCE (code_challenge, S256) is required")
        }
        (None, _) => {}
    }
    let prompts: Vec<&str> = p
        .prompt
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return fail("invalid_request", "prompt=none cannot be combined");
    }
    let max_age = match p.max_age.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n),
        Some(_) => return fail("invalid_request", "max_age must be a non-negative integer"),
    };

    let session = match current(state, req).await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let now = state.deps.now_ms() / 1000;
    let gs: GuestSession = match session {
        None if prompt_none => return fail("login_required", "the guest is not signed in"),
        None => return sign_in_first(state, &p, "/signin", None).await,
        Some(gs) if gs.needs_mfa() => {
            if prompt_none {
                return fail("interaction_required", "the guest must pass MFA first");
            }
            return sign_in_first(state, &p, "/mfa", None).await;
        }
        Some(gs) => {
            let too_old = max_age.is_some_and(|m| now - oidc::auth_time(&gs) > m);
            if prompts.contains(&"login") || too_old {
                if prompt_none {
                    return fail("login_required", "a fresh sign-in is needed");
                }
                // Re-authentication means a new sign-in: end this session first.
                return sign_in_first(state, &p, "/signin", req.cookie(SESSION_COOKIE)).await;
            }
            gs
        }
    };
    let request = Authorization {
        client,
        app,
        redirect_uri,
        scopes,
        nonce: p.nonce.as_deref(),
        code_challenge: challenge,
    };
    match oidc::issue_code(&state.deps, &gs, &request).await {
        Ok(Some(code)) => back_to_app(redirect_uri, &iss, &[("code", &code)], st),
        Ok(None) => fail(
            "access_denied",
            "the guest has no access to this application",
        ),
        Err(e) => internal(e),
    }
}

/// Keep the request (without what asked for the fresh sign-in, which the sign-in satisfies)
/// and send the guest to sign in.
async fn sign_in_first(
    state: &AppState,
    p: &AuthorizeParams,
    to: &str,
    end_session: Option<Cookie<'static>>,
) -> HttpResponse {
    let mut resumed = p.clone();
    resumed.prompt = None;
    resumed.max_age = None;
    let query = serde_urlencoded::to_string(&resumed).unwrap_or_default();
    let mut res = see_other(to);
    if query.len() <= RESUME_MAX_BYTES {
        let cookie = Cookie::build(RESUME_COOKIE, URL_SAFE_NO_PAD.encode(query))
            .path("/")
            .http_only(true)
            .secure(state.deps.portal.secure_cookies)
            .same_site(SameSite::Lax)
            .max_age(time::Duration::minutes(15))
            .finish();
        let _ = res.add_cookie(&cookie);
    }
    if let Some(old) = end_session {
        if let Err(e) = crate::services::guest_auth::end_session(&state.deps, old.value()).await {
            return internal(e);
        }
        let mut gone = session_cookie(state, String::new());
        gone.make_removal();
        let _ = res.add_cookie(&gone);
    }
    res
}

/// Where a guest who reached the access panel signed in continues: the authorization request
/// that sent them to sign in, if one is waiting.
pub fn resume_target(req: &HttpRequest) -> Option<String> {
    let raw = req.cookie(RESUME_COOKIE)?;
    let bytes = URL_SAFE_NO_PAD.decode(raw.value()).ok()?;
    let query = String::from_utf8(bytes).ok()?;
    // Only our own parameters, re-encoded: the cookie cannot steer the redirect elsewhere.
    let params: AuthorizeParams = serde_urlencoded::from_str(&query).ok()?;
    let query = serde_urlencoded::to_string(&params).ok()?;
    Some(format!("/oauth2/authorize?{query}"))
}
