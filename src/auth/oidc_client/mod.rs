//! A small OpenID Connect relying party for console sign-in: the authorization code flow
//! with PKCE (RFC 6749 §4.1, RFC 7636), a confidential client authenticating at the token
//! endpoint as the discovery document allows (`client_secret_basic`, else `_post`), and ID
//! token validation against the provider's published keys. Tokens are never logged; the
//! access token is not kept (the console needs only who signed in and their groups).

pub mod discovery;
pub mod id_token;
pub mod pkce;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::ExposeSecret;
use serde_json::Value;

use discovery::DiscoveryCache;
use id_token::{Expected, IdClaims, IdTokenError};

/// The most of a token reply we read.
const MAX_TOKEN_REPLY_BYTES: usize = 256 * 1024;

/// Why single sign-on did not work; each says what failed without secrets.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider's discovery document or keys: {0}")]
    Discovery(String),
    #[error("exchanging the code at the token endpoint: {0}")]
    Exchange(String),
    #[error("the ID token: {0}")]
    IdToken(#[from] IdTokenError),
}

/// What the relying party needs to know (from the `admin_sso` settings).
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The issuer, exactly as the discovery document and ID tokens name it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: secrecy::SecretString,
    /// Scopes asked for, space-separated, `openid` among them.
    pub scopes: String,
    /// How long the discovery document and keys are kept.
    pub cache_ttl: Duration,
}

/// The relying party of one provider, with its cached discovery document and keys.
#[derive(Debug)]
pub struct OidcClient {
    settings: ClientSettings,
    http: reqwest::Client,
    cache: DiscoveryCache,
}

/// What starting a sign-in gives: where to send the browser, and what to keep until the
/// browser comes back (state, nonce, PKCE verifier).
pub struct Authorization {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

impl OidcClient {
    pub fn new(settings: ClientSettings) -> anyhow::Result<Self> {
        // No redirects: a token request carrying the client secret never follows a Location.
        let http = reqwest::Client::builder()
            .user_agent("guestbridge/0.1")
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let cache = DiscoveryCache::new(&settings.issuer, settings.cache_ttl, http.clone());
        Ok(OidcClient {
            settings,
            http,
            cache,
        })
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// The provider's authorization URL for a new sign-in returning to `redirect_uri`.
    pub async fn authorize(&self, redirect_uri: &str) -> Result<Authorization, OidcError> {
        let provider = self.cache.get().await?;
        let pkce = pkce::Pkce::generate();
        let state = crate::auth::secrets::random_token(32);
        let nonce = crate::auth::secrets::random_token(32);
        let mut url = url::Url::parse(&provider.metadata.authorization_endpoint)
            .map_err(|e| OidcError::Discovery(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.settings.scopes)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", pkce::METHOD);
        Ok(Authorization {
            url: url.into(),
            state,
            nonce,
            verifier: pkce.verifier,
        })
    }

    /// Exchange the code for tokens and return the validated ID token's claims.
    pub async fn finish(
        &self,
        code: &str,
        verifier: &str,
        nonce: &str,
        redirect_uri: &str,
    ) -> Result<IdClaims, OidcError> {
        let id_token = self.exchange(code, verifier, redirect_uri).await?;
        self.verify(&id_token, nonce).await
    }

    async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<String, OidcError> {
        let provider = self.cache.get().await?;
        let methods = &provider.metadata.token_endpoint_auth_methods_supported;
        let supports = |m: &str| methods.iter().any(|x| x == m);
        let basic = methods.is_empty() || supports("client_secret_basic");
        if !basic && !supports("client_secret_post") {
            return Err(OidcError::Exchange(format!(
                "the provider accepts none of client_secret_basic, client_secret_post (only {})",
                methods.join(", ")
            )));
        }
        let secret = self.settings.client_secret.expose_secret();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        let mut request = self.http.post(&provider.metadata.token_endpoint);
        if basic {
            // RFC 6749 §2.3.1: id and secret are form-encoded before they are joined.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let credentials =
                STANDARD.encode(format!("{}:{}", enc(&self.settings.client_id), enc(secret)));
            request = request.header(
                reqwest::header::AUTHORIZATION,
                format!("Basic {credentials}"),
            );
        } else {
            form.push(("client_id", &self.settings.client_id));
            form.push(("client_secret", secret));
        }
        let mut res = request
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcError::Exchange(e.without_url().to_string()))?;
        let status = res.status();
        let body = discovery::read_bounded(&mut res, MAX_TOKEN_REPLY_BYTES)
            .await
            .map_err(OidcError::Exchange)?;
        let reply: Value = serde_json::from_slice(&body)
            .map_err(|_| OidcError::Exchange(format!("HTTP {status}, not JSON")))?;
        if !status.is_success() {
            // RFC 6749 §5.2: the error code and description say why; neither is a secret.
            let text = |k: &str| reply.get(k).and_then(Value::as_str).unwrap_or("");
            return Err(OidcError::Exchange(format!(
                "HTTP {status}: {} {}",
                text("error"),
                text("error_description")
            )));
        }
        reply
            .get("id_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| OidcError::Exchange("the reply has no id_token".into()))
    }

    /// Validate an ID token; a key id we do not know makes one refetch of the keys.
    async fn verify(&self, id_token: &str, nonce: &str) -> Result<IdClaims, OidcError> {
        let expected = Expected {
            issuer: &self.settings.issuer,
            client_id: &self.settings.client_id,
            nonce,
        };
        let provider = self.cache.get().await?;
        match id_token::validate(id_token, &provider.keys, &expected) {
            Err(IdTokenError::UnknownKey(kid)) => {
                tracing::info!(%kid, "ID token signed with a key not yet seen; fetching the provider's keys again");
                let provider = self.cache.refresh(&provider).await?;
                Ok(id_token::validate(id_token, &provider.keys, &expected)?)
            }
            other => Ok(other?),
        }
    }
}
