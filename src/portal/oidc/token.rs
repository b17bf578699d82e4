//! `/oauth2/token` (RFC 6749 §3.2, §4.1.3, §6): client authentication (`client_secret_basic`,
//! `client_secret_post`, or `none` for a public client with PKCE), then the code exchange or
//! the refresh. Answers are JSON and never cached; errors are RFC 6749 §5.2's.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use crate::app_state::AppState;
use crate::mapping::{App, OidcClient};
use crate::services::oidc::{self, TokenError, TokenFailure, Tokens};

#[derive(Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn answer(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

fn error(status: StatusCode, code: &str, description: &str) -> HttpResponse {
    answer(
        status,
        json!({"error": code, "error_description": description}),
    )
}

fn invalid_client(basic: bool) -> HttpResponse {
    let mut res = error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "client authentication failed",
    );
    if basic {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"guestbridge\""),
        );
    }
    res
}

/// The id and secret of HTTP Basic client authentication, form-decoded (RFC 6749 §2.3.1).
fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// The authenticated client, or the response refusing it.
fn authenticate<'a>(
    rules: &'a crate::mapping::RuleSet,
    req: &HttpRequest,
    form: &TokenForm,
) -> Result<(&'a App, &'a OidcClient), Box<HttpResponse>> {
    let basic = basic_credentials(req);
    let used_basic = basic.is_some();
    if used_basic && form.client_secret.is_some() {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "use one client authentication method",
        )));
    }
    let (id, secret) = match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (form.client_id.clone(), form.client_secret.clone()),
    };
    let Some(app) = id.as_deref().and_then(|id| rules.oidc_app(id)) else {
        return Err(Box::new(invalid_client(used_basic)));
    };
    let Some(client) = app.oidc.as_ref() else {
        return Err(Box::new(invalid_client(used_basic)));
    };
    let ok = match (&secret, client.public) {
        (None, true) => true,
        (Some(s), false) => oidc::secret_matches(client, s),
        _ => false,
    };
    if ok {
        Ok((app, client))
    } else {
        Err(Box::new(invalid_client(used_basic)))
    }
}

pub async fn post(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: Result<web::Form<TokenForm>, actix_web::Error>,
) -> HttpResponse {
    let Ok(form) = form else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    };
    let rules = state.deps.rules();
    let (app, client) = match authenticate(&rules, &req, &form) {
        Ok(c) => c,
        Err(res) => return *res,
    };
    let result = match form.grant_type.as_deref() {
        Some("authorization_code") => {
            let Some(code) = form.code.as_deref() else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code is missing",
                );
            };
            oidc::exchange_code(
                &state.deps,
                app,
                client,
                code,
                form.redirect_uri.as_deref(),
                form.code_verifier.as_deref(),
            )
            .await
        }
        Some("refresh_token") => {
            let Some(token) = form.refresh_token.as_deref() else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is missing",
                );
            };
            oidc::refresh(&state.deps, app, client, token).await
        }
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "the grant types are authorization_code and refresh_token",
            )
        }
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is missing",
            )
        }
    };
    match result {
        Ok(tokens) => issued(tokens),
        Err(TokenFailure::Refused(TokenError::InvalidGrant(why))) => {
            error(StatusCode::BAD_REQUEST, "invalid_grant", why)
        }
        Err(TokenFailure::Refused(TokenError::InvalidRequest(why))) => {
            error(StatusCode::BAD_REQUEST, "invalid_request", why)
        }
        Err(TokenFailure::Internal(e)) => {
            let error_id = uuid::Uuid::new_v4();
            tracing::error!(%error_id, error = %e, "token endpoint error");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                &format!("reference {error_id}"),
            )
        }
    }
}

fn issued(t: Tokens) -> HttpResponse {
    let mut body = json!({
        "access_token": t.access_token,
        "token_type": "Bearer",
        "expires_in": t.expires_in,
        "id_token": t.id_token,
        "scope": t.scope,
    });
    if let Some(refresh) = t.refresh_token {
        body["refresh_token"] = json!(refresh);
    }
    answer(StatusCode::OK, body)
}
