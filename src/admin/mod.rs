//! The admin JSON API under `/api/v1`, authenticated with an admin bearer token
//! (`guestbridge admin token`) or a console session cookie (with its CSRF token on changes);
//! every handler checks the principal's role and scope. Errors are `{"error": …, "request_id": …}` with the status.

pub mod audit_api;
pub mod error_shape;
pub mod guest_actions_api;
pub mod guests_api;
pub mod imports_api;
pub mod jobs_api;
pub mod mappings_api;
pub mod openapi;
pub mod paging;
pub mod partners_api;
pub mod sync_api;
pub mod tokens_api;

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use crate::app_state::AppState;
use crate::auth::tokens;
use crate::domain::{AdminPrincipal, AdminRole, AdminScope};
use crate::services::admin_auth::{self, RequestAuth};
use crate::services::admin_policy;
use crate::services::{Actor, ServiceError};
use crate::store::guests::GuestRow;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(guests_api::configure)
        .configure(imports_api::configure)
        .configure(mappings_api::configure)
        .configure(sync_api::configure)
        .configure(tokens_api::configure)
        .configure(guest_actions_api::configure)
        .configure(partners_api::configure)
        .configure(jobs_api::configure)
        .configure(audit_api::configure)
        .configure(openapi::configure);
}

/// An admin API error.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AdminError {
    pub status: StatusCode,
    pub message: String,
    /// Itemised problems (such as each invalid mapping rule), returned as `errors`.
    pub errors: Option<serde_json::Value>,
}

impl AdminError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AdminError {
            status,
            message: message.into(),
            errors: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ServiceError> for AdminError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound => AdminError::new(StatusCode::NOT_FOUND, "not found"),
            ServiceError::Conflict(m) => AdminError::new(StatusCode::CONFLICT, m),
            ServiceError::PreconditionFailed(v) => AdminError::new(
                StatusCode::PRECONDITION_FAILED,
                format!("changed; current version {v}"),
            ),
            ServiceError::Invalid(e) => AdminError::new(StatusCode::BAD_REQUEST, e.detail),
            ServiceError::TooMany { message, .. } => {
                AdminError::new(StatusCode::TOO_MANY_REQUESTS, message)
            }
            other => {
                let error_id = uuid::Uuid::new_v4();
                tracing::error!(%error_id, error = %other, "internal error");
                AdminError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal error; reference {error_id}"),
                )
            }
        }
    }
}

impl AdminError {
    /// The error body, without the request id (`error_shape` adds it).
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({"error": self.message});
        if let Some(errors) = &self.errors {
            body["errors"] = errors.clone();
        }
        body
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"guestbridge-admin\"",
            ));
        }
        res.json(self.body())
    }
}

pub use crate::services::admin_policy::Need;

/// An authenticated admin principal (bearer token or console session) and what it may do.
/// Handlers call [`AdminCaller::require`] for the role, and the scope checks for rows.
pub struct AdminCaller {
    pub actor: Actor,
    pub principal: AdminPrincipal,
}

fn forbidden() -> AdminError {
    AdminError::new(StatusCode::FORBIDDEN, "your role does not allow this")
}

fn not_found() -> AdminError {
    AdminError::new(StatusCode::NOT_FOUND, "not found")
}

impl AdminCaller {
    pub fn role(&self) -> AdminRole {
        self.principal.role
    }

    /// 403 unless the role allows what is needed.
    pub fn require(&self, need: Need) -> Result<(), AdminError> {
        if admin_policy::allows(self.principal.role, need) {
            Ok(())
        } else {
            Err(forbidden())
        }
    }

    /// 404 (as if it did not exist) unless the scope covers this partner.
    pub fn require_partner(&self, partner_id: &str) -> Result<(), AdminError> {
        if admin_policy::covers_partner(&self.principal, partner_id) {
            Ok(())
        } else {
            Err(not_found())
        }
    }

    pub fn can_see_guest(&self, guest: &GuestRow) -> bool {
        admin_policy::sees_guest(&self.principal, &guest.partner_id, guest.sponsor.as_deref())
    }

    /// 404 unless the scope shows this guest.
    pub fn require_guest(&self, guest: &GuestRow) -> Result<(), AdminError> {
        if self.can_see_guest(guest) {
            Ok(())
        } else {
            Err(not_found())
        }
    }

    /// The partner id a list is limited to, if any.
    pub fn partner_scope(&self) -> Option<&str> {
        match &self.principal.scope {
            AdminScope::Partner(id) => Some(id),
            _ => None,
        }
    }

    /// The sponsor e-mail a list is limited to, if any.
    pub fn sponsor_scope(&self) -> Option<&str> {
        match &self.principal.scope {
            AdminScope::Sponsor(email) => Some(email),
            _ => None,
        }
    }
}

/// Methods that change something: a session cookie must come with its CSRF token for them.
fn is_unsafe(method: &actix_web::http::Method) -> bool {
    !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS")
}

impl FromRequest for AdminCaller {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|h| h.to_str().unwrap_or("").to_string());
        let csrf = req
            .headers()
            .get("x-csrf-token")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let unsafe_method = is_unsafe(req.method());
        let cookie_of = |secure| {
            req.cookie(admin_auth::session_cookie_name(secure))
                .map(|c| c.value().to_string())
        };
        let cookies = [cookie_of(false), cookie_of(true)];
        let request_id = req
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(|r| r.to_string());
        Box::pin(async move {
            let unauthorized = || {
                AdminError::new(
                    StatusCode::UNAUTHORIZED,
                    "a valid admin bearer token or console session is required",
                )
            };
            let state = state.ok_or_else(|| {
                AdminError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "application state missing",
                )
            })?;
            // Only the cookie this instance sets counts (`__Host-` when https).
            let cookie = cookies[usize::from(state.deps.portal.secure_cookies)].as_deref();
            let auth = admin_auth::authenticate_request(
                &state.deps,
                header.as_deref().and_then(tokens::bearer),
                header.is_some(),
                cookie,
                unsafe_method,
                csrf.as_deref(),
            )
            .await?;
            let principal = match auth {
                RequestAuth::Principal(p) => p,
                RequestAuth::Unauthenticated => return Err(unauthorized()),
                RequestAuth::CsrfMissing => {
                    return Err(AdminError::new(
                        StatusCode::FORBIDDEN,
                        "a console session's changes need its X-CSRF-Token header",
                    ))
                }
            };
            Ok(AdminCaller {
                actor: Actor {
                    label: principal.actor_label(),
                    request_id,
                },
                principal,
            })
        })
    }
}
