//! The admin JSON API under `/api/v1`, authenticated with an admin bearer token
//! (`guestbridge admin token`). Errors are `{"error": …, "request_id": …}` with the status.

pub mod audit_api;
pub mod error_shape;
pub mod guest_actions_api;
pub mod guests_api;
pub mod imports_api;
pub mod jobs_api;
pub mod mappings_api;
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
use crate::services::{Actor, ServiceError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(guests_api::configure)
        .configure(imports_api::configure)
        .configure(mappings_api::configure)
        .configure(sync_api::configure)
        .configure(tokens_api::configure)
        .configure(guest_actions_api::configure)
        .configure(partners_api::configure)
        .configure(jobs_api::configure)
        .configure(audit_api::configure);
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

/// An authenticated admin.
pub struct AdminCaller {
    pub actor: Actor,
}

impl FromRequest for AdminCaller {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let request_id = req
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(|r| r.to_string());
        Box::pin(async move {
            let unauthorized = || {
                AdminError::new(
                    StatusCode::UNAUTHORIZED,
                    "a valid admin bearer token is required",
                )
            };
            let state = state.ok_or_else(|| {
                AdminError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "application state missing",
                )
            })?;
            let secret = header
                .as_deref()
                .and_then(tokens::bearer)
                .ok_or_else(unauthorized)?;
            let token_id = crate::services::partners::authenticate_admin(&state.deps, secret)
                .await?
                .ok_or_else(unauthorized)?;
            Ok(AdminCaller {
                actor: Actor {
                    label: format!("admin:{token_id}"),
                    request_id,
                },
            })
        })
    }
}
