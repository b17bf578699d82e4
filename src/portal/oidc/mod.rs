//! The OpenID Connect provider's endpoints: discovery, authorize, token, userinfo and
//! RP-initiated logout. The guest signs in through the portal (its session cookie and MFA),
//! so these live beside the portal's pages; the decisions are in `services::oidc`.

mod authorize;
mod logout;
mod token;
mod userinfo;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::app_state::AppState;
use crate::mapping::OIDC_SCOPES;
use crate::services::oidc::issuer;

pub use authorize::{resume_target, RESUME_COOKIE};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(discovery),
    )
    .route("/oauth2/authorize", web::get().to(authorize::get))
    .route("/oauth2/authorize", web::post().to(authorize::post))
    .route("/oauth2/token", web::post().to(token::post))
    .route("/oauth2/userinfo", web::get().to(userinfo::handle))
    .route("/oauth2/userinfo", web::post().to(userinfo::handle))
    .route("/oauth2/logout", web::get().to(logout::get));
}

async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    let iss = issuer(&state.deps);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(json!({
            "issuer": iss,
            "authorization_endpoint": format!("{iss}/oauth2/authorize"),
            "token_endpoint": format!("{iss}/oauth2/token"),
            "userinfo_endpoint": format!("{iss}/oauth2/userinfo"),
            "jwks_uri": format!("{iss}/.well-known/jwks.json"),
            "end_session_endpoint": format!("{iss}/oauth2/logout"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA"],
            "userinfo_signing_alg_values_supported": ["none"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": OIDC_SCOPES,
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "azp",
                "email", "email_verified", "name", "preferred_username", "roles"],
            "prompt_values_supported": ["none", "login", "consent"],
            "authorization_response_iss_parameter_supported": true,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "claims_parameter_supported": false,
        }))
}
