//! One error shape for the whole admin API: `{"error": …, "request_id": …}` (plus `errors`
//! where there are itemised problems), whatever failed — a handler, an extractor (a body
//! that is not JSON, a bad query) or authentication. The request id is the one in the
//! `x-request-id` header and the request's log lines, so a report can be traced.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderValue, CONTENT_TYPE};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use serde_json::json;

use super::AdminError;

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
            let mut body = match err.as_error::<AdminError>() {
                Some(admin) => admin.body(),
                None => json!({"error": err.to_string()}),
            };
            body["request_id"] = json!(request_id);
            body
        }
        _ => return Ok(res.map_into_boxed_body()),
    };
    Ok(res.map_body(|head, _| {
        head.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        BoxBody::new(body.to_string())
    }))
}
