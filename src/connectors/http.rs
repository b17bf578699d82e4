//! What every connector's HTTP shares: one client shape (10 s timeouts, `User-Agent:
//! guestbridge/0.1`, no redirects, so a bearer token or a signed body never follows a
//! `Location`), the reading of a reply, the mapping of statuses and transport failures to
//! [`DeliveryError`], `Retry-After` (RFC 9110 §10.2.3) and idempotency keys.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

use super::{ConfigError, DeliveryError};

pub(crate) const USER_AGENT: &str = "guestbridge/0.1";
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// How much of an error body goes into a reason (target errors explain, but can be long).
const SNIPPET_CHARS: usize = 300;
/// The most of a reply we read: the largest thing a target legitimately sends is a list
/// page or a token, far below this, and a reply read whole would let a target (or
/// whatever answers at its address) make us hold as much memory as it likes.
pub const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;

/// The client every connector uses.
pub(crate) fn client() -> Result<reqwest::Client, ConfigError> {
    Ok(reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// An absolute http(s) URL from the settings, without a trailing `/` (so `{base}/Users`).
pub(crate) fn base_url(field: &'static str, value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim().trim_end_matches('/');
    match url::Url::parse(trimmed) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(trimmed.to_string())
        }
        _ => Err(ConfigError::InvalidUrl {
            field,
            value: value.to_string(),
        }),
    }
}

/// A setting that must not be empty (tokens, secrets, ids).
pub(crate) fn non_empty(field: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        Err(ConfigError::Empty { field })
    } else {
        Ok(())
    }
}

/// The idempotency key of one request of a delivery that makes several: the event id, then
/// a short digest of the request, so a retry of the same request repeats the key while two
/// different requests of one event never share one (a target that honours keys answers a
/// reused key with a different body by 422).
pub(crate) fn request_key(event_id: &str, method: &str, url: &str, body: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(method.as_bytes());
    ctx.update(b" ");
    ctx.update(url.as_bytes());
    ctx.update(b"\n");
    ctx.update(body);
    let digest = ctx.finish();
    format!("{event_id}.{}", hex::encode(&digest.as_ref()[..6]))
}

/// A reply read in full.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON; a 2xx with a body that is not JSON is treated as transient (a proxy
    /// or a target in trouble), so the worker's attempt limit decides.
    pub fn json(&self) -> Result<Value, DeliveryError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            DeliveryError::transient(format!(
                "HTTP {}: response is not JSON ({e}): {}",
                self.status.as_u16(),
                snippet(&self.body)
            ))
        })
    }

    /// The error this reply's status means.
    pub fn error(&self) -> DeliveryError {
        status_error(self.status, &self.headers, &self.body, Utc::now())
    }

    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }
}

/// Send and read the reply, at most [`MAX_REPLY_BYTES`] of it; transport failures become
/// [`DeliveryError`]s.
pub(crate) async fn send(request: RequestBuilder) -> Result<Reply, DeliveryError> {
    let response = request.send().await.map_err(transport_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_capped(response, MAX_REPLY_BYTES).await?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// The body, chunk by chunk, stopping as soon as it passes `cap`. A reply too large is
/// permanent: the same request will get the same reply, so retrying only repeats the
/// download; the dead letter says why, and an admin replays once the target is fixed.
async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, DeliveryError> {
    let status = response.status().as_u16();
    let too_large = || {
        DeliveryError::permanent(format!(
            "HTTP {status}: reply larger than the {} MiB we read",
            cap / (1024 * 1024)
        ))
    };
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// 408, 409 (a concurrent change), 425, 429 and 5xx may pass later; a redirect or any other
/// 4xx will not.
pub(crate) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> DeliveryError {
    let reason = format!("HTTP {}: {}", status.as_u16(), snippet(body));
    let transient = status.is_server_error() || matches!(status.as_u16(), 408 | 409 | 425 | 429);
    if transient {
        DeliveryError::Transient {
            reason,
            retry_after: retry_after(headers, now),
        }
    } else if status.is_redirection() {
        DeliveryError::permanent(format!(
            "HTTP {}: unexpected redirect (redirects are not followed; configure the final URL)",
            status.as_u16()
        ))
    } else {
        DeliveryError::permanent(reason)
    }
}

/// Time-outs and connection failures are transient; a request that could not be built is
/// not. The URL is left out of the reason (a webhook URL may carry a secret).
pub(crate) fn transport_error(err: reqwest::Error) -> DeliveryError {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_builder() {
        return DeliveryError::permanent(format!("bad request: {}", err.without_url()));
    } else {
        "transport error"
    };
    DeliveryError::transient(format!("{kind}: {}", err.without_url()))
}

/// `Retry-After` as delta-seconds or an HTTP date (a date in the past means now).
pub(crate) fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is RFC 2822 with the zone "GMT".
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// One URL path segment, percent-encoded (RFC 3986 unreserved characters kept), so an id
/// from a target can never change the path it is put in.
pub(crate) fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    if out == "." || out == ".." {
        out = out.replace('.', "%2E");
    }
    out
}

/// A body made safe and short for an error reason.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.chars().count() > SNIPPET_CHARS {
        out = out.chars().take(SNIPPET_CHARS).collect();
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("(empty body)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(
            parse_retry_after("120", now()),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sat, 01 Mar 2025 12:00:30 GMT", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sat, 01 Mar 2025 11:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("-5", now()), None);
    }

    #[test]
    fn statuses_map_to_transient_or_permanent() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        for code in [408, 409, 429, 500, 502, 503, 504] {
            let err = status_error(StatusCode::from_u16(code).unwrap(), &headers, b"", now());
            assert_eq!(err.retry_after(), Some(Duration::from_secs(7)), "{code}");
        }
        for code in [301, 400, 401, 403, 404, 410, 422] {
            let err = status_error(StatusCode::from_u16(code).unwrap(), &headers, b"x", now());
            assert!(!err.is_transient(), "{code}");
        }
    }

    #[test]
    fn snippets_are_short_and_single_line() {
        let long = "a\n b ".repeat(400);
        let s = snippet(long.as_bytes());
        assert!(s.chars().count() <= SNIPPET_CHARS + 1);
        assert!(!s.contains('\n'));
        assert_eq!(snippet(b""), "(empty body)");
    }

    #[test]
    fn request_keys_repeat_per_request_and_differ_between_requests() {
        let a = request_key("e1", "POST", "https://x/Users", b"{}");
        assert_eq!(a, request_key("e1", "POST", "https://x/Users", b"{}"));
        assert_ne!(a, request_key("e1", "PATCH", "https://x/Users", b"{}"));
        assert!(a.starts_with("e1."));
    }

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(path_segment("a1-b_c.d~"), "a1-b_c.d~");
        assert_eq!(path_segment("../x/y?z"), "..%2Fx%2Fy%3Fz");
        assert_eq!(path_segment(".."), "%2E%2E");
    }

    #[test]
    fn base_urls_must_be_absolute_http() {
        assert_eq!(
            base_url("f", "https://h.example/scim/v2/").unwrap(),
            "https://h.example/scim/v2"
        );
        assert!(base_url("f", "ftp://h.example").is_err());
        assert!(base_url("f", "/scim/v2").is_err());
    }
}
