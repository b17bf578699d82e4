//! SCIM over HTTP: the partner bearer-token extractor, request body reading with the size
//! bound, and the single mapping of errors to RFC 7644 §3.12 responses.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use serde_json::Value;

use crate::app_state::AppState;
use crate::auth::tokens;
use crate::domain::Partner;
use crate::scim_core::error::ScimError;
use crate::services::{Actor, ServiceError};

/// SCIM media type (RFC 7644 §3.1).
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";

impl ResponseError for ScimError {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::from_u16(self.status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE));
        if let Some(seconds) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        if self.status == 401 {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"guestbridge-scim\"",
            ));
        }
        res.body(self.to_json().to_string())
    }
}

/// Map a service failure to a SCIM error; internal causes are logged with an id and only the
/// id is returned.
pub fn scim_error(err: ServiceError) -> ScimError {
    match err {
        ServiceError::NotFound => ScimError::not_found("resource not found"),
        ServiceError::Conflict(msg) => ScimError::uniqueness(msg),
        ServiceError::PreconditionFailed(current) => ScimError::new(
            412,
            None,
            format!("the resource has changed; its current version is {current}"),
        ),
        ServiceError::Invalid(e) => e,
        ServiceError::TooMany {
            message,
            retry_after_secs,
        } => ScimError::too_many(message, retry_after_secs),
        other => {
            let error_id = uuid::Uuid::new_v4();
            tracing::error!(%error_id, error = %other, "internal error");
            ScimError::new(500, None, format!("internal error; reference {error_id}"))
        }
    }
}

/// The authenticated partner of a SCIM request.
pub struct ScimPartner {
    pub partner: Partner,
    pub actor: Actor,
}

impl FromRequest for ScimPartner {
    type Error = ScimError;
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
            let unauthorized =
                || ScimError::new(401, None, "a valid partner bearer token is required");
            let state =
                state.ok_or_else(|| ScimError::new(500, None, "application state missing"))?;
            let secret = header
                .as_deref()
                .and_then(tokens::bearer)
                .ok_or_else(unauthorized)?;
            let partner = crate::services::partners::authenticate_partner(&state.deps, secret)
                .await
                .map_err(scim_error)?
                .ok_or_else(unauthorized)?;
            // Every authenticated SCIM request draws on the partner's rate, before any work.
            crate::services::scim_rate::admit(&state.deps, &partner)
                .await
                .map_err(scim_error)?;
            let actor = Actor {
                label: format!("partner:{}", partner.slug),
                request_id,
            };
            Ok(ScimPartner { partner, actor })
        })
    }
}

/// Read a JSON request body of at most `limit` bytes (413 above it, 400 invalidSyntax when
/// it is not JSON).
pub async fn read_json(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Value, ScimError> {
    let too_large = || {
        ScimError::new(
            413,
            None,
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    };
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large());
        }
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ScimError::invalid_syntax(format!("cannot read the request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|e| ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")))
}

/// A SCIM JSON response.
pub fn scim_json(status: actix_web::http::StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, SCIM_CONTENT_TYPE))
        .body(body.to_string())
}

/// The `If-Match` header, if any (RFC 7644 §3.14).
pub fn if_match(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::IF_MATCH)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
}

/// 304 when `If-None-Match` names the current version (RFC 7644 §3.14).
pub fn not_modified(req: &HttpRequest, etag: &str) -> Option<HttpResponse> {
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t == etag)
        });
    matches.then(|| {
        HttpResponse::NotModified()
            .insert_header((header::ETAG, etag.to_string()))
            .finish()
    })
}

/// Add the `ETag` header.
pub fn with_etag(mut res: HttpResponse, etag: &str) -> HttpResponse {
    if let Ok(v) = header::HeaderValue::from_str(etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// A resource response: SCIM JSON with its `ETag`, and on 201 the `Location` of the new
/// resource (RFC 7644 §3.3).
pub fn resource_response(
    status: actix_web::http::StatusCode,
    body: &Value,
    etag: &str,
) -> HttpResponse {
    let mut res = with_etag(scim_json(status, body), etag);
    if status == actix_web::http::StatusCode::CREATED {
        if let Some(loc) = body
            .pointer("/meta/location")
            .and_then(Value::as_str)
            .and_then(|l| header::HeaderValue::from_str(l).ok())
        {
            res.headers_mut().insert(header::LOCATION, loc);
        }
    }
    res
}
