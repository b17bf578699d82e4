//! `/oauth2/logout` (OpenID Connect RP-Initiated Logout 1.0). With an `id_token_hint` we signed
//! for the signed-in guest, their portal session ends and they return to a registered
//! `post_logout_redirect_uri` with `state`. Without one we do not end the session (a link on
//! any page could otherwise sign guests out) and say how to sign out.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::app_state::AppState;
use crate::services::{guest_auth, oidc};

use super::super::{current, internal, message, see_other, session_cookie, SESSION_COOKIE};

#[derive(Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
}

pub async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
    params: web::Query<LogoutParams>,
) -> HttpResponse {
    let hint = match params.id_token_hint.as_deref() {
        Some(h) => match oidc::id_token_hint(&state.deps, h).await {
            Ok(hint) => hint,
            Err(e) => return internal(e),
        },
        None => None,
    };
    let Some((sub, client_id)) = hint else {
        return message(
            &state,
            StatusCode::BAD_REQUEST,
            "Sign out from your applications page",
            "This sign-out request cannot be checked. Use the Sign out button of your applications page.",
            Some(("/apps", "Your applications")),
        );
    };
    if params.client_id.as_deref().is_some_and(|c| c != client_id) {
        return message(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-out request is not valid",
            "The application and the sign-in it names do not match.",
            None,
        );
    }
    let session = match current(&state, &req).await {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let mut ended = false;
    if session.is_some_and(|gs| gs.guest.id == sub) {
        if let Some(c) = req.cookie(SESSION_COOKIE) {
            if let Err(e) = guest_auth::end_session(&state.deps, c.value()).await {
                return internal(e);
            }
            ended = true;
        }
    }
    let rules = state.deps.rules();
    let registered = params.post_logout_redirect_uri.as_deref().filter(|uri| {
        rules
            .oidc_app(&client_id)
            .and_then(|a| a.oidc.as_ref())
            .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|u| u == uri))
    });
    let mut res = match registered {
        Some(uri) => match url::Url::parse(uri) {
            Ok(mut url) => {
                if let Some(st) = &params.state {
                    url.query_pairs_mut().append_pair("state", st);
                }
                see_other(url.as_str())
            }
            Err(e) => return internal(e),
        },
        None => message(
            &state,
            StatusCode::OK,
            "Signed out",
            "You are signed out.",
            Some(("/signin", "Sign in again")),
        ),
    };
    if ended {
        let mut gone = session_cookie(&state, String::new());
        gone.make_removal();
        let _ = res.add_cookie(&gone);
    }
    res
}
