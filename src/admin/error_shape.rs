//! One error shape for the whole admin API: `{"error": …, "request_id": …}` (plus `errors`
//! where there are itemised problems), whatever failed — a handler, an extractor (a body
//! that is not JSON, a bad query) or authentication. The request id is the one in the
//! `x-request-id` header and the request's log lines, so a report can be traced.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use serde::Serialize;
use utoipa::ToSchema;

use super::AdminError;

/// The body of every admin API error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
    /// Itemised problems, where there are several (invalid fields, invalid rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub errors: Option<serde_json::Value>,
    /// The request's id, as in its `x-request-id` header and log lines.
    #[schema(required = true)]
    pub request_id: Option<String>,
}

pub async fn with_request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = req
        .extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(|r| r.to_string());
    let res = next.call(req).await?;
    let status = res.status();
    let body = match res.response().error() {
        Some(err) if status.is_client_error() || status.is_server_error() => {
            let (error, errors) = match err.as_error::<AdminError>() {
                Some(admin) => (admin.message.clone(), admin.errors.clone()),
                None => (err.to_string(), None),
            };
            ErrorBody {
                error,
                errors,
                request_id,
            }
        }
        _ => return Ok(res.map_into_boxed_body()),
    };
    Ok(res.map_body(|head, _| {
        head.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        BoxBody::new(serde_json::to_string(&body).unwrap_or_default())
    }))
}
