//! The webhook connector: one signed JSON event per change, POSTed to a URL the receiver
//! chose. The body and signature are documented in `docs/webhooks.md`:
//!
//! - body: `{"id", "type": "guest.upserted"|"guest.suspended"|"guest.removed", "occurred_at",
//!   "data": <GuestSnapshot>}` ([`WebhookEvent`]);
//! - headers: `X-Guestbridge-Event-Id`, `X-Guestbridge-Timestamp` (unix seconds),
//!   `X-Guestbridge-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>` and
//!   `Idempotency-Key: <event id>`.
//!
//! A 2xx answer is delivery; 408, 429 and 5xx (and time-outs) are transient, with the
//! receiver's `Retry-After` honoured; any other status, a redirect included, is permanent.
//! Receivers check the signature with [`verify_signature`] (constant time).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::CONTENT_TYPE;
use ring::hmac;
use serde::{Deserialize, Serialize};

use super::http::{self, IDEMPOTENCY_KEY};
use super::{BoxFuture, ConfigError, Connector, DeliveryError, GuestEvent, GuestSnapshot};

pub const EVENT_ID_HEADER: &str = "X-Guestbridge-Event-Id";
pub const TIMESTAMP_HEADER: &str = "X-Guestbridge-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Guestbridge-Signature";

/// Where to send events and the shared secret that signs them.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// The receiver's URL (http or https); redirects are not followed.
    pub url: String,
    /// The HMAC-SHA256 key shared with the receiver; never logged.
    pub secret: String,
}

impl fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL's path or query may be a credential too (some receivers work that way).
        let origin = url::Url::parse(&self.url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| "(invalid)".into());
        f.debug_struct("WebhookTarget")
            .field("url", &format_args!("{origin}/…"))
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The JSON body of a webhook request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WebhookEvent {
    /// The event id; the same on every retry of this event.
    pub id: String,
    /// `guest.upserted`, `guest.suspended` or `guest.removed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When Guestbridge decided the change (RFC 3339, UTC).
    pub occurred_at: DateTime<Utc>,
    /// The guest right after the change.
    pub data: GuestSnapshot,
}

impl WebhookEvent {
    pub fn from_event(event: &GuestEvent) -> Self {
        WebhookEvent {
            id: event.event_id.clone(),
            event_type: event.kind.webhook_type().to_string(),
            occurred_at: event.occurred_at,
            data: event.guest.clone(),
        }
    }
}

/// Signs and POSTs events to one receiver.
pub struct WebhookConnector {
    name: String,
    url: String,
    key: hmac::Key,
    http: reqwest::Client,
}

impl fmt::Debug for WebhookConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConnector")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl WebhookConnector {
    pub fn new(name: impl Into<String>, target: WebhookTarget) -> Result<Self, ConfigError> {
        let url = http::base_url("url", &target.url)?;
        http::non_empty("secret", &target.secret)?;
        Ok(WebhookConnector {
            name: name.into(),
            // Keep the URL as configured (a trailing slash may matter to the receiver).
            url: if target.url.trim().ends_with('/') {
                format!("{url}/")
            } else {
                url
            },
            key: hmac::Key::new(hmac::HMAC_SHA256, target.secret.as_bytes()),
            http: http::client()?,
        })
    }

    // Not `err(Display)`: the full reason may quote the target's reply, which can echo
    // personal data; the log gets the status and our own words only.
    #[tracing::instrument(skip_all, fields(connector = %self.name, event_id = %event.event_id, kind = event.kind.webhook_type()))]
    async fn post(&self, event: &GuestEvent) -> Result<(), DeliveryError> {
        let result = self.post_event(event).await;
        if let Err(err) = &result {
            tracing::warn!(error = %err.log_reason(), "delivery failed");
        }
        result
    }

    async fn post_event(&self, event: &GuestEvent) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(&WebhookEvent::from_event(event))
            .map_err(|e| DeliveryError::permanent(format!("cannot encode the event: {e}")))?;
        let timestamp = Utc::now().timestamp();
        let signature = signature_with_key(&self.key, timestamp, &body);
        let request = self
            .http
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, &event.event_id)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .header(IDEMPOTENCY_KEY, &event.event_id)
            .body(body);
        let reply = http::send(request).await?;
        if reply.is_success() {
            return Ok(());
        }
        // A receiver's 409 is its own verdict on this event, not a race we can wait out.
        if reply.status.as_u16() == 409 {
            return Err(DeliveryError::permanent(format!(
                "HTTP 409: {}",
                http::snippet(&reply.body)
            )));
        }
        Err(reply.error())
    }
}

impl Connector for WebhookConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(&'a self, event: &'a GuestEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(self.post(event))
    }
}

/// The `X-Guestbridge-Signature` value for a body sent at `timestamp` (unix seconds):
/// `v1=` and the lower-case hex HMAC-SHA256 of `"{timestamp}.{body}"` keyed with `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    signature_with_key(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        timestamp,
        body,
    )
}

fn signature_with_key(key: &hmac::Key, timestamp: i64, body: &[u8]) -> String {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("v1={}", hex::encode(ctx.sign().as_ref()))
}

/// For receivers: whether `header` (the `X-Guestbridge-Signature` value; several
/// comma-separated `v1=` entries are accepted, any one matching) signs `body` sent at
/// `timestamp` (the `X-Guestbridge-Timestamp` value) with `secret`, and `timestamp` is
/// within `tolerance` of `now` either way (replay protection). The comparison is constant
/// time.
pub fn verify_signature(
    secret: &str,
    timestamp: &str,
    body: &[u8],
    header: &str,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> bool {
    let timestamp = timestamp.trim();
    let Ok(sent_at) = timestamp.parse::<i64>() else {
        return false;
    };
    let skew = now.timestamp().abs_diff(sent_at);
    if skew > tolerance.as_secs() {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut message = Vec::with_capacity(body.len() + 21);
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    header
        .split(',')
        .filter_map(|entry| entry.trim().strip_prefix("v1="))
        .filter_map(|tag| hex::decode(tag.trim()).ok())
        .any(|tag| hmac::verify(&key, &message, &tag).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn signature_matches_a_known_vector() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec
        assert_eq!(
            sign("whsec", 1_700_000_000, br#"{"a":1}"#),
            "v1=8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032"
        );
    }

    #[test]
    fn verify_accepts_own_signatures_within_tolerance() {
        let body = br#"{"id":"e1"}"#;
        let header = sign("s3cret", 1_700_000_000, body);
        let tol = Duration::from_secs(300);
        assert!(verify_signature(
            "s3cret",
            "1700000000",
            body,
            &header,
            at(1_700_000_100),
            tol
        ));
        assert!(verify_signature(
            "s3cret",
            "1700000000",
            body,
            &header,
            at(1_699_999_900),
            tol
        ));
        // Too old, from the future, wrong secret, changed body, changed timestamp.
        assert!(!verify_signature(
            "s3cret",
            "1700000000",
            body,
            &header,
            at(1_700_000_301),
            tol
        ));
        assert!(!verify_signature(
            "s3cret",
            "1700000000",
            body,
            &header,
            at(1_699_999_000),
            tol
        ));
        assert!(!verify_signature(
            "other",
            "1700000000",
            body,
            &header,
            at(1_700_000_000),
            tol
        ));
        assert!(!verify_signature(
            "s3cret",
            "1700000000",
            b"{}",
            &header,
            at(1_700_000_000),
            tol
        ));
        assert!(!verify_signature(
            "s3cret",
            "1700000001",
            body,
            &header,
            at(1_700_000_000),
            tol
        ));
    }

    #[test]
    fn verify_accepts_any_of_several_entries_and_rejects_garbage() {
        let body = b"x";
        let good = sign("k", 10, body);
        let tol = Duration::from_secs(5);
        let several = format!("v1=00ff, {good}");
        assert!(verify_signature("k", "10", body, &several, at(10), tol));
        for bad in ["", "v1=", "v1=zz", "v0=00", good.trim_start_matches("v1=")] {
            assert!(
                !verify_signature("k", "10", body, bad, at(10), tol),
                "{bad}"
            );
        }
        assert!(!verify_signature("k", "ten", body, &good, at(10), tol));
    }

    #[test]
    fn debug_hides_the_secret_and_the_url_path() {
        let target = WebhookTarget {
            url: "https://hooks.example/T0/secretpath?token=abc".into(),
            secret: "whsec_live".into(),
        };
        let shown = format!("{target:?}");
        assert!(!shown.contains("whsec_live"), "{shown}");
        assert!(
            !shown.contains("secretpath") && !shown.contains("abc"),
            "{shown}"
        );
        assert!(shown.contains("https://hooks.example"));
    }
}
