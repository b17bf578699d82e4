//! App launch tokens: short-lived JWTs (RFC 7519) signed with EdDSA (Ed25519, RFC 8037) by the
//! active [`SigningKey`], with its `kid` in the header. `/apps/{app}/launch` hands one to the
//! app; the app verifies it against `/.well-known/jwks.json`. [`verify_launch`] is that
//! verification, for tests and as the reference for app developers: EdDSA only, key found by
//! `kid`, `iss` and `aud` exact, `nbf`/`exp` checked against the given instant with
//! [`LEEWAY_SECS`] of clock skew.

use chrono::Duration;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::keys::SigningKey;
use super::secrets::random_token;

/// How long a launch token is valid.
pub const LAUNCH_TOKEN_LIFETIME_SECS: i64 = 60;
/// Clock skew tolerated by [`verify_launch`] on `nbf` and `exp`.
pub const LEEWAY_SECS: i64 = 5;

/// How long the OpenID Connect provider's ID and access tokens are valid.
pub const OIDC_TOKEN_LIFETIME_SECS: i64 = 300;

/// How long a retired key stays in the JWKS: as long as the longest-lived token it signed.
pub fn published_key_lifetime() -> Duration {
    Duration::seconds(LAUNCH_TOKEN_LIFETIME_SECS.max(OIDC_TOKEN_LIFETIME_SECS))
}

/// The claims of a launch token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchClaims {
    /// Guestbridge's public URL.
    pub iss: String,
    /// The app id.
    pub aud: String,
    /// The guest id.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// A random id, so an app can refuse a token it has already seen.
    pub jti: String,
}

impl LaunchClaims {
    /// Claims issued at `now` (Unix seconds), valid for [`LAUNCH_TOKEN_LIFETIME_SECS`], with a
    /// random `jti`; email, name and roles start empty.
    pub fn new(issuer: &str, app_id: &str, guest_id: &str, now: i64) -> Self {
        LaunchClaims {
            iss: issuer.to_owned(),
            aud: app_id.to_owned(),
            sub: guest_id.to_owned(),
            email: None,
            name: None,
            roles: Vec::new(),
            iat: now,
            nbf: now,
            exp: now + LAUNCH_TOKEN_LIFETIME_SECS,
            jti: random_token(16),
        }
    }
}

/// Why a token was not signed or not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("signing key {0} is retired")]
    RetiredKey(String),
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token algorithm is not EdDSA")]
    WrongAlgorithm,
    #[error("token header has no kid")]
    MissingKid,
    #[error("no usable key with kid {0} in the JWKS")]
    UnknownKey(String),
    #[error("token signature is invalid")]
    InvalidSignature,
    #[error("token issuer is not the expected one")]
    WrongIssuer,
    #[error("token audience is not this app")]
    WrongAudience,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
}

/// Signs `claims` with `key` (EdDSA, `kid` in the header). Refuses a retired key.
pub fn sign_launch(key: &SigningKey, claims: &LaunchClaims) -> Result<String, JwtError> {
    if key.retired_at.is_some() {
        return Err(JwtError::RetiredKey(key.kid.clone()));
    }
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    let encoding_key = EncodingKey::from_ed_der(&key.private_pkcs8_der);
    jsonwebtoken::encode(&header, claims, &encoding_key)
        .map_err(|e| JwtError::Signing(e.to_string()))
}

/// Signs any claims with `key` (EdDSA, `kid` and, if given, `typ` in the header): ID tokens and
/// access tokens of the OpenID Connect provider. Refuses a retired key.
pub fn sign_claims<T: Serialize>(
    key: &SigningKey,
    claims: &T,
    typ: Option<&str>,
) -> Result<String, JwtError> {
    if key.retired_at.is_some() {
        return Err(JwtError::RetiredKey(key.kid.clone()));
    }
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    if let Some(typ) = typ {
        header.typ = Some(typ.to_owned());
    }
    let encoding_key = EncodingKey::from_ed_der(&key.private_pkcs8_der);
    jsonwebtoken::encode(&header, claims, &encoding_key)
        .map_err(|e| JwtError::Signing(e.to_string()))
}

/// Verifies the signature and issuer of a token this server signed, and decodes its claims;
/// `exp` is checked against `now` unless `check_exp` is false (an `id_token_hint` at logout
/// may have expired). The audience is the caller's check.
pub fn verify_own<T: serde::de::DeserializeOwned>(
    token: &str,
    jwks: &Value,
    issuer: &str,
    now: i64,
    check_exp: bool,
) -> Result<T, JwtError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
    if header.alg != Algorithm::EdDSA {
        return Err(JwtError::WrongAlgorithm);
    }
    let kid = header.kid.ok_or(JwtError::MissingKid)?;
    let decoding_key = find_key(jwks, &kid)?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let data =
        jsonwebtoken::decode::<Value>(token, &decoding_key, &validation).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature => JwtError::InvalidSignature,
                ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
                ErrorKind::InvalidAlgorithm => JwtError::WrongAlgorithm,
                _ => JwtError::Malformed(e.to_string()),
            }
        })?;
    let exp = data.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if check_exp && now >= exp + LEEWAY_SECS {
        return Err(JwtError::Expired);
    }
    serde_json::from_value(data.claims).map_err(|e| JwtError::Malformed(e.to_string()))
}

/// Verifies a launch token against a JWKS document (`{"keys": [...]}`) for the expected
/// `issuer` and `audience` (the app id) at `now` (Unix seconds).
pub fn verify_launch(
    token: &str,
    jwks: &Value,
    issuer: &str,
    audience: &str,
    now: i64,
) -> Result<LaunchClaims, JwtError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| JwtError::Malformed(e.to_string()))?;
    if header.alg != Algorithm::EdDSA {
        return Err(JwtError::WrongAlgorithm);
    }
    let kid = header.kid.ok_or(JwtError::MissingKid)?;
    let decoding_key = find_key(jwks, &kid)?;

    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    // Time is checked below against the caller's `now`, not the system clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;

    let data = jsonwebtoken::decode::<LaunchClaims>(token, &decoding_key, &validation).map_err(
        |e| match e.kind() {
            ErrorKind::InvalidSignature => JwtError::InvalidSignature,
            ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
            ErrorKind::InvalidAudience => JwtError::WrongAudience,
            ErrorKind::InvalidAlgorithm => JwtError::WrongAlgorithm,
            _ => JwtError::Malformed(e.to_string()),
        },
    )?;
    let claims = data.claims;
    // RFC 7519 §4.1.4: not accepted on or after `exp`.
    if now >= claims.exp + LEEWAY_SECS {
        return Err(JwtError::Expired);
    }
    if now + LEEWAY_SECS < claims.nbf {
        return Err(JwtError::NotYetValid);
    }
    Ok(claims)
}

/// The Ed25519 key with this `kid` in a JWKS; other keys (any type) are skipped unparsed.
fn find_key(jwks: &Value, kid: &str) -> Result<DecodingKey, JwtError> {
    let unknown = || JwtError::UnknownKey(kid.to_owned());
    let entry = jwks
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
        .ok_or_else(unknown)?;
    let usable = entry.get("kty").and_then(Value::as_str) == Some("OKP")
        && entry.get("crv").and_then(Value::as_str) == Some("Ed25519")
        && entry
            .get("use")
            .and_then(Value::as_str)
            .is_none_or(|u| u == "sig")
        && entry
            .get("alg")
            .and_then(Value::as_str)
            .is_none_or(|a| a == "EdDSA");
    if !usable {
        return Err(unknown());
    }
    let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(|_| unknown())?;
    DecodingKey::from_jwk(&jwk).map_err(|_| unknown())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::{self, SigningKey};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use chrono::{DateTime, TimeZone, Utc};

    const ISS: &str = "https://guests.hospital.example";
    const APP: &str = "radiology-viewer";

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
    }

    fn claims(now: i64) -> LaunchClaims {
        LaunchClaims {
            email: Some("ann@acme.example".into()),
            name: Some("Ann Lee".into()),
            roles: vec!["reader".into()],
            ..LaunchClaims::new(ISS, APP, "guest-42", now)
        }
    }

    fn setup() -> (SigningKey, Value, LaunchClaims, String) {
        let key = SigningKey::generate(t0()).unwrap();
        let jwks = keys::jwks(std::slice::from_ref(&key), t0(), published_key_lifetime());
        let c = claims(t0().timestamp());
        let token = sign_launch(&key, &c).unwrap();
        (key, jwks, c, token)
    }

    #[test]
    fn signed_token_verifies_against_the_jwks() {
        let (key, jwks, c, token) = setup();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        assert_eq!(c.exp - c.iat, 60);
        assert_eq!(c.jti.len(), 22);
        let now = t0().timestamp();
        assert_eq!(verify_launch(&token, &jwks, ISS, APP, now).unwrap(), c);
        // The JWKS survives a trip through its JSON text, as an app would fetch it.
        let fetched: Value = serde_json::from_str(&jwks.to_string()).unwrap();
        assert_eq!(
            verify_launch(&token, &fetched, ISS, APP, now + 30).unwrap(),
            c
        );
    }

    #[test]
    fn wrong_audience_issuer_or_time_fail() {
        let (_, jwks, c, token) = setup();
        let now = c.iat;
        assert_eq!(
            verify_launch(&token, &jwks, ISS, "other-app", now),
            Err(JwtError::WrongAudience)
        );
        assert_eq!(
            verify_launch(&token, &jwks, "https://evil.example", APP, now),
            Err(JwtError::WrongIssuer)
        );
        assert!(verify_launch(&token, &jwks, ISS, APP, c.exp + LEEWAY_SECS - 1).is_ok());
        assert_eq!(
            verify_launch(&token, &jwks, ISS, APP, c.exp + LEEWAY_SECS),
            Err(JwtError::Expired)
        );
        assert!(verify_launch(&token, &jwks, ISS, APP, c.nbf - LEEWAY_SECS).is_ok());
        assert_eq!(
            verify_launch(&token, &jwks, ISS, APP, c.nbf - LEEWAY_SECS - 1),
            Err(JwtError::NotYetValid)
        );
    }

    #[test]
    fn unknown_kid_or_other_keys_fail() {
        let (_, _, c, token) = setup();
        let other = SigningKey::generate(t0()).unwrap();
        let other_jwks = keys::jwks(std::slice::from_ref(&other), t0(), published_key_lifetime());
        assert!(matches!(
            verify_launch(&token, &other_jwks, ISS, APP, c.iat),
            Err(JwtError::UnknownKey(_))
        ));
        assert!(matches!(
            verify_launch(&token, &serde_json::json!({}), ISS, APP, c.iat),
            Err(JwtError::UnknownKey(_))
        ));
        // A JWKS whose entry has the right kid but the wrong key fails on the signature.
        let (key, _, _, _) = setup();
        let mut swapped = other.jwk();
        swapped["kid"] = key.kid.clone().into();
        let token = sign_launch(&key, &c).unwrap();
        assert_eq!(
            verify_launch(
                &token,
                &serde_json::json!({ "keys": [swapped] }),
                ISS,
                APP,
                c.iat
            ),
            Err(JwtError::InvalidSignature)
        );
    }

    #[test]
    fn tampered_tokens_fail() {
        let (_, jwks, c, token) = setup();
        let parts: Vec<&str> = token.split('.').collect();

        // Altered signature.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[0] ^= 1;
        let forged = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
        assert_eq!(
            verify_launch(&forged, &jwks, ISS, APP, c.iat),
            Err(JwtError::InvalidSignature)
        );

        // Altered payload (more roles) with the original signature.
        let mut altered = c.clone();
        altered.roles.push("admin".into());
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&altered).unwrap());
        let forged = format!("{}.{}.{}", parts[0], payload, parts[2]);
        assert_eq!(
            verify_launch(&forged, &jwks, ISS, APP, c.iat),
            Err(JwtError::InvalidSignature)
        );

        // Header switched to "none" or HS256.
        for alg in ["none", "HS256"] {
            let header = serde_json::json!({ "alg": alg, "kid": jwks["keys"][0]["kid"] });
            let head = URL_SAFE_NO_PAD.encode(header.to_string());
            let forged = format!("{head}.{}.{}", parts[1], parts[2]);
            assert!(
                verify_launch(&forged, &jwks, ISS, APP, c.iat).is_err(),
                "{alg}"
            );
        }
        assert!(matches!(
            verify_launch("not a jwt", &jwks, ISS, APP, c.iat),
            Err(JwtError::Malformed(_))
        ));
    }

    #[test]
    fn tokens_of_a_rotated_key_verify_until_they_expire() {
        let mut all = vec![SigningKey::generate(t0()).unwrap()];
        let now = t0().timestamp();
        let old_token = sign_launch(&all[0], &claims(now)).unwrap();
        let rotated = keys::rotate(&mut all, t0()).unwrap().clone();
        assert_eq!(
            sign_launch(&all[0], &claims(now)),
            Err(JwtError::RetiredKey(all[0].kid.clone()))
        );
        let new_token = sign_launch(&rotated, &claims(now)).unwrap();

        let jwks = keys::jwks(
            &all,
            t0() + chrono::Duration::seconds(30),
            published_key_lifetime(),
        );
        assert!(verify_launch(&old_token, &jwks, ISS, APP, now + 30).is_ok());
        assert!(verify_launch(&new_token, &jwks, ISS, APP, now + 30).is_ok());

        let later = t0() + published_key_lifetime() + chrono::Duration::seconds(LEEWAY_SECS);
        let jwks = keys::jwks(&all, later, published_key_lifetime());
        assert!(matches!(
            verify_launch(&old_token, &jwks, ISS, APP, later.timestamp()),
            Err(JwtError::UnknownKey(_))
        ));
    }

    #[test]
    fn token_without_kid_fails() {
        let (key, jwks, c, _) = setup();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &c,
            &EncodingKey::from_ed_der(&key.private_pkcs8_der),
        )
        .unwrap();
        assert_eq!(
            verify_launch(&token, &jwks, ISS, APP, c.iat),
            Err(JwtError::MissingKid)
        );
    }
}
