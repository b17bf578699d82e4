//! `/admin/login/sso` and its callback: console sign-in through the organisation's OpenID
//! Connect provider. The start sends the browser to the provider with a fresh state, nonce
//! and PKCE challenge, and keeps state, nonce and verifier in a sealed (encrypted and
//! authenticated), HttpOnly, ten-minute cookie, so that only this browser can finish the
//! sign-in. The callback checks the state, exchanges the code, validates the ID token and
//! gives the same session cookie as the password sign-in. Every failure is a page that says
//! what went wrong, and no session.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{internal, message, request_id, see_other, session_cookie, signed_in};
use crate::app_state::AppState;
use crate::auth::oidc_client::{OidcClient, OidcError};
use crate::auth::secrets::constant_time_eq;
use crate::config::AdminSsoSettings;
use crate::services::admin_sso::{self, FederatedIdentity, SsoSignIn};

/// How long a started sign-in may take at the provider.
const FLOW_SECONDS: i64 = 600;
/// What the flow cookie is sealed for (another sealed value cannot pass as one).
const FLOW_AAD: &[u8] = b"guestbridge:admin-sso-flow";
const CALLBACK_PATH: &str = "/admin/login/sso/callback";

fn flow_cookie_name(state: &AppState) -> &'static str {
    if state.deps.portal.secure_cookies {
        "__Host-gb_admin_sso"
    } else {
        "gb_admin_sso"
    }
}

/// What the browser carries between the start and the callback.
#[derive(Serialize, Deserialize)]
struct Flow {
    state: String,
    nonce: String,
    verifier: String,
    /// When the flow stops being accepted, in Unix milliseconds.
    expires_at: i64,
}

fn flow_cookie(state: &AppState, value: String, max_age: CookieDuration) -> Cookie<'static> {
    // Lax, not Strict: the callback is a top-level navigation from the provider's site,
    // on which a Strict cookie would not be sent.
    Cookie::build(flow_cookie_name(state), value)
        .path("/")
        .http_only(true)
        .secure(state.deps.portal.secure_cookies)
        .same_site(SameSite::Lax)
        .max_age(max_age)
        .finish()
}

/// The client and its settings, when single sign-on is set up.
fn configured(state: &AppState) -> Option<(std::sync::Arc<OidcClient>, &AdminSsoSettings)> {
    Some((state.admin_sso.clone()?, state.settings.admin_sso.as_ref()?))
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}{CALLBACK_PATH}", state.settings.http.public_url)
}

/// A failure page; the flow cookie is removed whatever happened (a flow is used once).
fn failed(state: &AppState, status: StatusCode, text: &str) -> HttpResponse {
    let mut res = message(
        state,
        status,
        "Single sign-on did not work",
        text,
        Some(("/admin/login", "Back to sign-in")),
    );
    let _ = res.add_cookie(&flow_cookie(state, String::new(), CookieDuration::ZERO));
    res
}

fn not_configured(state: &AppState) -> HttpResponse {
    failed(
        state,
        StatusCode::NOT_FOUND,
        "Single sign-on is not set up on this server. Sign in with a console login instead.",
    )
}

/// A failure whose cause belongs in the log, not on the page: the page gives a reference.
fn failed_with_reference(
    state: &AppState,
    status: StatusCode,
    text: &str,
    e: &OidcError,
) -> HttpResponse {
    let error_id = uuid::Uuid::new_v4();
    tracing::warn!(%error_id, error = %e, "admin single sign-on failed");
    failed(state, status, &format!("{text} Reference {error_id}."))
}

pub async fn start_sso(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let Some((client, sso)) = configured(&state) else {
        return not_configured(&state);
    };
    match signed_in(&state, &req).await {
        Ok(Some(_)) => return see_other("/admin"),
        Ok(None) => {}
        Err(res) => return res,
    }
    let auth = match client.authorize(&redirect_uri(&state)).await {
        Ok(a) => a,
        Err(e) => {
            return failed_with_reference(
                &state,
                StatusCode::BAD_GATEWAY,
                &format!("{} cannot be reached right now. Try again in a minute, or sign in with a console login.", sso.display_name),
                &e,
            )
        }
    };
    let flow = Flow {
        state: auth.state,
        nonce: auth.nonce,
        verifier: auth.verifier,
        expires_at: state.deps.now_ms() + FLOW_SECONDS * 1000,
    };
    let sealed = match serde_json::to_vec(&flow)
        .map_err(|e| e.to_string())
        .and_then(|json| {
            state
                .deps
                .portal
                .secrets
                .seal(&json, FLOW_AAD)
                .map_err(|e| e.to_string())
        }) {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let mut res = see_other(&auth.url);
    let _ = res.add_cookie(&flow_cookie(
        &state,
        sealed,
        CookieDuration::seconds(FLOW_SECONDS),
    ));
    res
}

/// The provider's answer (RFC 6749 §4.1.2, §4.1.2.1; `iss` from RFC 9207).
#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    iss: Option<String>,
}

fn open_flow(state: &AppState, req: &HttpRequest) -> Option<Flow> {
    let cookie = req.cookie(flow_cookie_name(state))?;
    let json = state
        .deps
        .portal
        .secrets
        .open(cookie.value(), FLOW_AAD)
        .ok()?;
    let flow: Flow = serde_json::from_slice(&json).ok()?;
    (flow.expires_at > state.deps.now_ms()).then_some(flow)
}

pub async fn sso_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<Callback>,
) -> HttpResponse {
    let Some((client, sso)) = configured(&state) else {
        return not_configured(&state);
    };
    let idp = sso.display_name.clone();
    let Some(flow) = open_flow(&state, &req) else {
        return failed(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-in was not started in this browser, or took longer than ten minutes. Start again from the sign-in page.",
        );
    };
    // The state first: until it matches, nothing in this request is the provider's answer
    // to our request (its error text included).
    let state_ok = query
        .state
        .as_deref()
        .is_some_and(|s| constant_time_eq(s.as_bytes(), flow.state.as_bytes()));
    if !state_ok {
        return failed(
            &state,
            StatusCode::BAD_REQUEST,
            "The answer does not belong to the sign-in this browser started (the state does not match). Start again from the sign-in page.",
        );
    }
    if let Some(error) = &query.error {
        let detail = query.error_description.as_deref().unwrap_or("");
        return failed(
            &state,
            StatusCode::FORBIDDEN,
            &format!("{idp} did not sign you in ({error}). {detail}"),
        );
    }
    // RFC 9207: an answer naming another issuer is a mix-up, whatever it carries.
    if query
        .iss
        .as_deref()
        .is_some_and(|iss| iss != client.settings().issuer)
    {
        return failed(
            &state,
            StatusCode::BAD_REQUEST,
            "The answer came from another identity provider than the one this server trusts.",
        );
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
        return failed(
            &state,
            StatusCode::BAD_REQUEST,
            &format!("{idp} sent no authorization code. Start again from the sign-in page."),
        );
    };
    let claims = match client
        .finish(code, &flow.verifier, &flow.nonce, &redirect_uri(&state))
        .await
    {
        Ok(c) => c,
        Err(e @ OidcError::IdToken(_)) => {
            return failed_with_reference(
                &state,
                StatusCode::UNAUTHORIZED,
                &format!("The identity token from {idp} could not be verified, so you are not signed in."),
                &e,
            )
        }
        Err(e) => {
            return failed_with_reference(
                &state,
                StatusCode::BAD_GATEWAY,
                &format!("Completing the sign-in with {idp} failed. Start again, or sign in with a console login."),
                &e,
            )
        }
    };
    let settings = sso;
    let display_name = ["preferred_username", "email", "name"]
        .into_iter()
        .find_map(|c| claims.string(c))
        .unwrap_or(&claims.subject)
        .chars()
        .take(100)
        .collect::<String>();
    let who = FederatedIdentity {
        issuer: settings.issuer.clone(),
        subject: claims.subject.clone(),
        display_name: display_name.clone(),
        verified_email: claims.verified_email().map(str::to_string),
        groups: claims.groups(&settings.groups_claim),
    };
    let outcome =
        match admin_sso::sign_in(&state.deps, &settings.groups, &who, request_id(&req)).await {
            Ok(o) => o,
            Err(e) => return internal(e),
        };
    let refused = |text: String| failed(&state, StatusCode::FORBIDDEN, &text);
    match outcome {
        SsoSignIn::Session { secret, .. } => {
            // A page, not a redirect: the session cookie is SameSite=Strict, and a browser
            // does not send it on a redirect chain that began at the provider's site; the
            // refresh starts from this page, on this site.
            let mut res = message(
                &state,
                StatusCode::OK,
                "Signed in",
                &format!("You are signed in as {display_name}."),
                Some(("/admin", "Continue to the console")),
            );
            res.headers_mut().insert(
                header::REFRESH,
                header::HeaderValue::from_static("0; url=/admin"),
            );
            let _ = res.add_cookie(&session_cookie(&state, secret));
            let _ = res.add_cookie(&flow_cookie(&state, String::new(), CookieDuration::ZERO));
            res
        }
        SsoSignIn::NoAllowedGroup => refused(format!(
            "{idp} signed you in as {display_name}, but you are in none of the groups allowed to use this console. Ask an administrator to add you to one."
        )),
        SsoSignIn::UnknownPartner(slug) => refused(format!(
            "Your group makes you a partner administrator of {slug}, but this server has no partner {slug}. Ask an administrator."
        )),
        SsoSignIn::SponsorWithoutEmail => refused(format!(
            "Your group makes you a sponsor, but {idp} gave no verified e-mail address, which is how your guests are found. Ask an administrator."
        )),
        SsoSignIn::Disabled => refused(
            "Your console login has been disabled. Ask an administrator.".to_string(),
        ),
    }
}
