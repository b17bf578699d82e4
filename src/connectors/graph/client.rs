//! How requests reach Graph: every call carries a client-credentials token, cached until
//! shortly before it expires and renewed once when Graph answers `401`.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::{GraphConnector, GRAPH_SCOPE};
use crate::connectors::http::{self, request_key, Reply, IDEMPOTENCY_KEY};
use crate::connectors::{DeliveryError, GuestEvent};

/// A token is renewed this long before it expires (at most half its lifetime).
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

pub(super) struct CachedToken {
    access_token: String,
    renew_at: Instant,
}

impl GraphConnector {
    pub(super) async fn get(
        &self,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<Reply, DeliveryError> {
        self.authorized(|token| {
            self.http
                .get(url)
                .query(query)
                .header(ACCEPT, "application/json")
                .header(AUTHORIZATION, format!("Bearer {token}"))
        })
        .await
    }

    /// A mutating request, with its idempotency key.
    pub(super) async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        event: &GuestEvent,
    ) -> Result<Reply, DeliveryError> {
        let bytes = match body {
            Some(body) => serde_json::to_vec(body)
                .map_err(|e| DeliveryError::permanent(format!("cannot encode request: {e}")))?,
            None => Vec::new(),
        };
        let key = request_key(&event.event_id, method.as_str(), url, &bytes);
        self.authorized(|token| {
            let mut request = self
                .http
                .request(method.clone(), url)
                .header(ACCEPT, "application/json")
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .header(IDEMPOTENCY_KEY, &key);
            if body.is_some() {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(bytes.clone());
            }
            request
        })
        .await
    }

    /// Send with the cached token; on `401` renew it once and repeat, then give up for now.
    pub(super) async fn authorized<F>(&self, build: F) -> Result<Reply, DeliveryError>
    where
        F: Fn(&str) -> reqwest::RequestBuilder,
    {
        let token = self.access_token().await?;
        let reply = http::send(build(&token)).await?;
        if reply.status.as_u16() != 401 {
            return Ok(reply);
        }
        self.drop_token(&token).await;
        let token = self.access_token().await?;
        let reply = http::send(build(&token)).await?;
        if reply.status.as_u16() == 401 {
            return Err(DeliveryError::Transient {
                reason: format!(
                    "HTTP 401 with a fresh token: {}",
                    http::snippet(&reply.body)
                ),
                retry_after: http::retry_after(&reply.headers, chrono::Utc::now()),
            });
        }
        Ok(reply)
    }

    pub(super) async fn access_token(&self) -> Result<String, DeliveryError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.access_token.clone());
        }
        let token = self.fetch_token().await?;
        let access_token = token.access_token.clone();
        *cached = Some(token);
        Ok(access_token)
    }

    pub(super) async fn drop_token(&self, used: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.access_token == used) {
            *cached = None;
        }
    }

    // Not `err(Display)`: the full reason may quote the target's reply, which can echo
    // personal data; the log gets the status and our own words only.
    #[tracing::instrument(skip_all, fields(connector = %self.name))]
    pub(super) async fn fetch_token(&self) -> Result<CachedToken, DeliveryError> {
        let result = self.request_token().await;
        if let Err(err) = &result {
            tracing::warn!(error = %err.log_reason(), "token request failed");
        }
        result
    }

    pub(super) async fn request_token(&self) -> Result<CachedToken, DeliveryError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("scope", GRAPH_SCOPE),
        ];
        let started = Instant::now();
        let reply = http::send(
            self.http
                .post(&self.token_url)
                .header(ACCEPT, "application/json")
                .form(&form),
        )
        .await
        .map_err(|e| e.context("token request"))?;
        if !reply.is_success() {
            return Err(token_error(&reply));
        }
        let parsed: TokenResponse = serde_json::from_slice(&reply.body).map_err(|e| {
            DeliveryError::transient(format!("token response is not a token ({e})"))
        })?;
        if !parsed.token_type.eq_ignore_ascii_case("bearer") || parsed.access_token.is_empty() {
            return Err(DeliveryError::permanent(format!(
                "token endpoint issued a {:?} token, not a bearer token",
                parsed.token_type
            )));
        }
        let lifetime = Duration::from_secs(parsed.expires_in);
        let margin = TOKEN_MARGIN.min(lifetime / 2);
        Ok(CachedToken {
            access_token: parsed.access_token,
            renew_at: started + lifetime - margin,
        })
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    token_type: String,
    access_token: String,
    /// Seconds; Entra ID sends a number (some servers a string, which is refused).
    expires_in: u64,
}

/// A token endpoint error: the OAuth `error` code says whether settings are wrong
/// (`invalid_client`, `unauthorized_client`, `invalid_scope`: permanent) or not.
fn token_error(reply: &Reply) -> DeliveryError {
    let code = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string));
    let err = reply.error();
    match (err, code) {
        (DeliveryError::Permanent { .. }, Some(code)) => DeliveryError::permanent(format!(
            "token request refused (HTTP {}): {code}",
            reply.status.as_u16()
        )),
        (err, _) => err.context("token request"),
    }
}
