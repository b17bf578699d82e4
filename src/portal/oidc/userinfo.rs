//! `/oauth2/userinfo` (OIDC Core §5.3): the claims the access token's scopes release, while
//! the guest may still use the app; otherwise RFC 6750's `invalid_token`.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::app_state::AppState;
use crate::services::oidc;

pub async fn handle(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"guestbridge\""))
            .finish();
    };
    match oidc::userinfo(&state.deps, token.trim()).await {
        Ok(Some(info)) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(info),
        Ok(None) => HttpResponse::build(StatusCode::UNAUTHORIZED)
            .insert_header((
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"guestbridge\", error=\"invalid_token\"",
            ))
            .finish(),
        Err(e) => super::super::internal(e),
    }
}
