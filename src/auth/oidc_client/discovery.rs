//! The provider's discovery document (OpenID Connect Discovery 1.0 §4) and its signing keys
//! (`jwks_uri`), fetched on first use and kept for a while. After the time to live they are
//! fetched again (a failed refetch keeps the old ones, with a warning, so a provider hiccup
//! does not stop sign-ins); a token signed with a key we do not know makes one refetch, so a
//! key rotation at the provider needs no restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use serde::Deserialize;
use serde_json::Value;

use super::id_token::signing_keys;
use super::OidcError;

/// The most of a discovery document or key set we read (real ones are a few kilobytes).
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// The parts of the discovery document the code flow uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// Absent means `client_secret_basic` only (Discovery §3).
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
}

/// The document and keys as fetched at one time.
#[derive(Debug)]
pub struct ProviderState {
    pub metadata: ProviderMetadata,
    pub keys: Vec<Jwk>,
    fetched_at: Instant,
}

/// The cached provider state of one issuer.
#[derive(Debug)]
pub struct DiscoveryCache {
    issuer: String,
    ttl: Duration,
    http: reqwest::Client,
    /// Held across a fetch, so that concurrent sign-ins make one request, not one each.
    current: tokio::sync::Mutex<Option<Arc<ProviderState>>>,
}

impl DiscoveryCache {
    pub fn new(issuer: &str, ttl: Duration, http: reqwest::Client) -> Self {
        DiscoveryCache {
            issuer: issuer.to_string(),
            ttl,
            http,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The provider's document and keys, fetched when missing or older than the TTL.
    pub async fn get(&self) -> Result<Arc<ProviderState>, OidcError> {
        let mut current = self.current.lock().await;
        match current.as_ref() {
            Some(state) if state.fetched_at.elapsed() < self.ttl => Ok(state.clone()),
            stale => match self.fetch().await {
                Ok(fresh) => {
                    let fresh = Arc::new(fresh);
                    *current = Some(fresh.clone());
                    Ok(fresh)
                }
                Err(e) => match stale {
                    Some(old) => {
                        tracing::warn!(error = %e, "refreshing the SSO provider's discovery document failed; using the previous one");
                        Ok(old.clone())
                    }
                    None => Err(e),
                },
            },
        }
    }

    /// Fetch again because a token named a key missing from `seen`; when another sign-in
    /// has already replaced `seen`, its newer state is used instead of fetching twice.
    pub async fn refresh(
        &self,
        seen: &Arc<ProviderState>,
    ) -> Result<Arc<ProviderState>, OidcError> {
        let mut current = self.current.lock().await;
        if let Some(state) = current.as_ref() {
            if !Arc::ptr_eq(state, seen) {
                return Ok(state.clone());
            }
        }
        let fresh = Arc::new(self.fetch().await?);
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    async fn fetch(&self) -> Result<ProviderState, OidcError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let document = get_json(&self.http, &url).await?;
        let metadata: ProviderMetadata = serde_json::from_value(document)
            .map_err(|e| OidcError::Discovery(format!("{url}: {e}")))?;
        // Discovery §4.3: the document must be for the issuer we trust, or an impostor's
        // endpoints and keys would be taken for the real provider's.
        if metadata.issuer != self.issuer {
            return Err(OidcError::Discovery(format!(
                "{url} names issuer {:?}, not the configured {:?}",
                metadata.issuer, self.issuer
            )));
        }
        let https_issuer = self.issuer.starts_with("https://");
        for endpoint in [
            &metadata.authorization_endpoint,
            &metadata.token_endpoint,
            &metadata.jwks_uri,
        ] {
            let ok = url::Url::parse(endpoint)
                .map(|u| u.scheme() == "https" || (!https_issuer && u.scheme() == "http"))
                .unwrap_or(false);
            if !ok {
                return Err(OidcError::Discovery(format!(
                    "{url}: endpoint {endpoint:?} is not an https URL"
                )));
            }
        }
        if let Some(methods) = &metadata.code_challenge_methods_supported {
            if !methods.iter().any(|m| m == super::pkce::METHOD) {
                return Err(OidcError::Discovery(format!(
                    "{url}: the provider does not support PKCE with S256"
                )));
            }
        }
        let jwks = get_json(&self.http, &metadata.jwks_uri).await?;
        let keys = signing_keys(&jwks);
        if keys.is_empty() {
            return Err(OidcError::Discovery(format!(
                "{}: no usable signing key",
                metadata.jwks_uri
            )));
        }
        tracing::info!(issuer = %self.issuer, keys = keys.len(), "fetched the SSO provider's discovery document and keys");
        Ok(ProviderState {
            metadata,
            keys,
            fetched_at: Instant::now(),
        })
    }
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, OidcError> {
    let failed = |m: String| OidcError::Discovery(format!("{url}: {m}"));
    let mut res = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    if !res.status().is_success() {
        return Err(failed(format!("HTTP {}", res.status())));
    }
    let body = read_bounded(&mut res, MAX_DOCUMENT_BYTES)
        .await
        .map_err(failed)?;
    serde_json::from_slice(&body).map_err(|e| failed(format!("not JSON: {e}")))
}

/// Read a reply up to `limit` bytes; longer is an error, not a truncation.
pub(super) async fn read_bounded(
    res: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(format!("reply larger than {limit} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
