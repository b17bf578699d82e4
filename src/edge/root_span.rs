//! The request span. The default one of tracing-actix-web records the full target with its
//! query string and the client address from headers anyone can send; ours records the path
//! with secret segments replaced (`/invite/{token}`), no query (a SCIM `filter=` carries
//! names and e-mail addresses), and the client address as the rate limits see it.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

/// Path parameters whose value is a secret (invitation and sign-in links).
const SECRET_PARAMS: &[&str] = &["{token}"];

/// Shown instead of a segment that may be a secret.
pub const REDACTED: &str = "…";

/// Segments at least this long are taken for secrets on paths that match no route (a
/// mangled link); ids and names of the routes themselves are shorter or matched.
const LONG_SEGMENT: usize = 16;

pub struct RedactedRootSpan;

/// The path to log: the matched route where it has a secret parameter; on other routes the
/// path with each parameter that is not shaped like an id we issue replaced (a client may put
/// an e-mail address where an id belongs); long segments replaced when no route matched;
/// never the query string.
pub fn loggable_path(path: &str, pattern: Option<&str>) -> String {
    match pattern {
        Some(p) if SECRET_PARAMS.iter().any(|s| p.contains(s)) => p.to_string(),
        Some(p) => path
            .split('/')
            .zip(p.split('/').chain(std::iter::repeat("")))
            .map(|(seg, pat)| {
                if pat.starts_with('{') && looks_random(seg) {
                    REDACTED
                } else if pat.starts_with('{') {
                    crate::telemetry::loggable_id(seg)
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/"),
        None => path
            .split('/')
            .map(|seg| {
                if seg.chars().count() >= LONG_SEGMENT {
                    REDACTED
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/"),
    }
}

/// Long enough for a link secret or session id (43 characters of base64url) and not one of
/// our UUIDs: a guest who pastes a link's secret where an app id or resource id goes
/// (`/apps/{secret}/launch`) must not have it written into the request's every log line.
fn looks_random(seg: &str) -> bool {
    seg.len() >= 32 && uuid::Uuid::try_parse(seg).is_err()
}

impl RootSpanBuilder for RedactedRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let pattern = request.match_pattern();
        let route = pattern.clone().unwrap_or_else(|| "default".into());
        let target = loggable_path(request.path(), pattern.as_deref());
        let client_ip = super::client_ip(request.request())
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        let method = request.method().as_str().to_string();
        tracing::info_span!(
            "HTTP request",
            http.method = %method,
            http.route = %route,
            http.target = %target,
            http.client_ip = %client_ip,
            http.status_code = tracing::field::Empty,
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
        )
    }

    /// A client error's message echoes the request (a taken userName, an invalid value:
    /// names and e-mail addresses), and the client has it in the response, so only its
    /// status is recorded. A server error is logged once, with its message.
    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, error) = match outcome {
            Ok(res) => (
                res.status(),
                res.response()
                    .error()
                    .map(|e| e.as_response_error().to_string()),
            ),
            Err(e) => (e.as_response_error().status_code(), Some(e.to_string())),
        };
        span.record("http.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            let message = error.unwrap_or_else(|| status.to_string());
            span.in_scope(
                || tracing::error!(status = status.as_u16(), error = %message, "request failed"),
            );
        } else {
            span.record("otel.status_code", "OK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_segments_and_queries_stay_out() {
        assert_eq!(
            loggable_path("/invite/abcDEF123", Some("/invite/{token}")),
            "/invite/{token}"
        );
        assert_eq!(
            loggable_path("/scim/v2/Users/0193", Some("/scim/v2/Users/{id}")),
            "/scim/v2/Users/0193"
        );
        assert_eq!(
            loggable_path(
                "/scim/v2/Users/ann@acme.example",
                Some("/scim/v2/Users/{id}")
            ),
            "/scim/v2/Users/…"
        );
        assert_eq!(
            loggable_path(
                "/apps/dr40kzJxOt04AlAwongcR4LYXO--2ZhlHTvW7mBfS98/launch",
                Some("/apps/{app}/launch")
            ),
            "/apps/…/launch"
        );
        assert_eq!(
            loggable_path(
                "/scim/v2/Users/0199e0c2-7b8a-7000-8000-000000000000",
                Some("/scim/v2/Users/{id}")
            ),
            "/scim/v2/Users/0199e0c2-7b8a-7000-8000-000000000000"
        );
        assert_eq!(
            loggable_path("/invite/aVeryLongSecretTokenValue/x", None),
            "/invite/…/x"
        );
    }
}
