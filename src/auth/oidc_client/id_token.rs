//! Validating an ID token (OpenID Connect Core §3.1.3.7): signature with the provider's key
//! named by `kid`, the algorithm taken from that key (never from the token alone, and never
//! a shared-secret HMAC), then `iss`, `aud` (and `azp` when there are several audiences),
//! `exp`, and the `nonce` we sent.

use std::collections::HashSet;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::auth::secrets::constant_time_eq;

/// Why an ID token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdTokenError {
    #[error("the token is not a JWT: {0}")]
    Malformed(String),
    /// No key of the provider has the token's `kid` (maybe the keys were rotated).
    #[error("no provider key has id {0:?}")]
    UnknownKey(String),
    #[error("algorithm {0} does not fit the provider's key")]
    Algorithm(String),
    #[error("the token failed validation: {0}")]
    Invalid(String),
    #[error("the nonce does not match this sign-in")]
    Nonce,
    #[error("the token has no {0} claim")]
    Missing(&'static str),
}

/// What the token must say.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
}

/// The validated claims of an ID token.
#[derive(Debug, Clone)]
pub struct IdClaims {
    pub subject: String,
    pub claims: serde_json::Map<String, Value>,
}

impl IdClaims {
    pub fn string(&self, name: &str) -> Option<&str> {
        self.claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// The e-mail address, only when the provider says it verified it (as a boolean or,
    /// as some providers send it, the string "true").
    pub fn verified_email(&self) -> Option<&str> {
        let verified = match self.claims.get("email_verified") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        self.string("email").filter(|_| verified)
    }

    /// The groups claim: a list of strings, or one string.
    pub fn groups(&self, claim: &str) -> Vec<String> {
        match self.claims.get(claim) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }
}

/// The provider's keys usable for ID token signatures; keys we cannot use (encryption keys,
/// symmetric keys, types the JWT library does not know) are left out rather than failing
/// the whole set.
pub fn signing_keys(jwks: &Value) -> Vec<Jwk> {
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    keys.iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .filter(|k| !matches!(k.algorithm, AlgorithmParameters::OctetKey(_)))
        .filter(|k| {
            matches!(
                k.common.public_key_use,
                None | Some(PublicKeyUse::Signature)
            )
        })
        .collect()
}

/// The algorithms a key may verify: the one it declares, or else those of its type.
fn algorithms_of(key: &Jwk) -> Vec<Algorithm> {
    if let Some(declared) = key.common.key_algorithm {
        return declared
            .to_string()
            .parse::<Algorithm>()
            .into_iter()
            .filter(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
            .collect();
    }
    match &key.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => vec![],
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
        AlgorithmParameters::OctetKey(_) => vec![],
    }
}

/// Validate `token` against the provider's keys. `exp` is checked against the system clock
/// (the JWT library's), with a minute of leeway for clocks that differ.
pub fn validate(
    token: &str,
    keys: &[Jwk],
    expected: &Expected<'_>,
) -> Result<IdClaims, IdTokenError> {
    let header =
        jsonwebtoken::decode_header(token).map_err(|e| IdTokenError::Malformed(e.to_string()))?;
    let key = match &header.kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.common.key_id.as_deref() == Some(kid.as_str()))
            .ok_or_else(|| IdTokenError::UnknownKey(kid.clone()))?,
        // Without a kid, only an unambiguous key set will do.
        None => match keys {
            [only] => only,
            _ => return Err(IdTokenError::UnknownKey(String::new())),
        },
    };
    if !algorithms_of(key).contains(&header.alg) {
        return Err(IdTokenError::Algorithm(format!("{:?}", header.alg)));
    }
    let decoding = DecodingKey::from_jwk(key).map_err(|e| IdTokenError::Invalid(e.to_string()))?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = 60;
    validation.set_issuer(&[expected.issuer]);
    validation.set_audience(&[expected.client_id]);
    validation.required_spec_claims =
        HashSet::from(["exp", "iss", "aud", "sub"].map(str::to_string));
    let data =
        jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &decoding, &validation)
            .map_err(|e| IdTokenError::Invalid(e.to_string()))?;
    let claims = data.claims;
    // §3.1.3.7 (4, 5): with several audiences, the authorised party must be us.
    if let Some(Value::Array(auds)) = claims.get("aud") {
        if auds.len() > 1 && claims.get("azp").and_then(Value::as_str) != Some(expected.client_id) {
            return Err(IdTokenError::Invalid("azp is not this client".into()));
        }
    }
    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .ok_or(IdTokenError::Missing("nonce"))?;
    if !constant_time_eq(nonce.as_bytes(), expected.nonce.as_bytes()) {
        return Err(IdTokenError::Nonce);
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(IdTokenError::Missing("sub"))?
        .to_string();
    Ok(IdClaims { subject, claims })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    // A test-only P-256 key pair (generated for these tests, used nowhere else).
    const EC_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgpVJr0n9SdzMaOKyJ
+dzKwLugDK/yEY7V4EY/qAjlFwChRANCAAT9xsAmVCFcn39kLNgCWtQ27vbDzdzC
DWNrgUgjDVb036o2LhKjUE6eKo1GO2zA4Bjaq7TDmG7VNFsKe1W0DR+p
-----END PRIVATE KEY-----";
    const EC_X: &str = "_cbAJlQhXJ9_ZCzYAlrUNu72w83cwg1ja4FIIw1W9N8";
    const EC_Y: &str = "qjYuEqNQTp4qjUY7bMDgGNqrtMOYbtU0Wwp7VbQNH6k";

    fn jwks(kid: &str, alg: Option<&str>) -> Vec<Jwk> {
        let mut key =
            json!({"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y, "kid": kid, "use": "sig"});
        if let Some(a) = alg {
            key["alg"] = json!(a);
        }
        signing_keys(&json!({"keys": [key, {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}))
    }

    fn token(kid: &str, claims: Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        encode(
            &header,
            &claims,
            &EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    fn claims() -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": "https://id.example", "aud": "gb", "sub": "u1", "nonce": "n1",
               "exp": now + 300, "iat": now, "email": "a@b.example", "email_verified": true,
               "groups": ["gb-admins"]})
    }

    const EXPECTED: Expected<'static> = Expected {
        issuer: "https://id.example",
        client_id: "gb",
        nonce: "n1",
    };

    #[test]
    fn a_good_token_gives_its_claims() {
        let keys = jwks("k1", Some("ES256"));
        assert_eq!(keys.len(), 1, "the symmetric key is left out");
        let c = validate(&token("k1", claims()), &keys, &EXPECTED).unwrap();
        assert_eq!(c.subject, "u1");
        assert_eq!(c.verified_email(), Some("a@b.example"));
        assert_eq!(c.groups("groups"), vec!["gb-admins".to_string()]);
        // A key without `alg` verifies what its type allows.
        assert!(validate(&token("k1", claims()), &jwks("k1", None), &EXPECTED).is_ok());
    }

    #[test]
    fn each_wrong_claim_is_refused() {
        let keys = jwks("k1", Some("ES256"));
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            validate(&token("k1", c), &keys, &EXPECTED)
        };
        assert!(matches!(
            with("iss", json!("https://evil")),
            Err(IdTokenError::Invalid(_))
        ));
        assert!(matches!(
            with("aud", json!("other")),
            Err(IdTokenError::Invalid(_))
        ));
        assert!(matches!(
            with("exp", json!(1_000_000)),
            Err(IdTokenError::Invalid(_))
        ));
        assert_eq!(with("nonce", json!("n2")).unwrap_err(), IdTokenError::Nonce);
        assert!(matches!(
            with("aud", json!(["gb", "other"])),
            Err(IdTokenError::Invalid(_))
        ));
        assert_eq!(
            validate(&token("k2", claims()), &keys, &EXPECTED).unwrap_err(),
            IdTokenError::UnknownKey("k2".into())
        );
        // A key that declares another algorithm does not verify this one.
        assert!(matches!(
            validate(
                &token("k1", claims()),
                &jwks("k1", Some("ES384")),
                &EXPECTED
            ),
            Err(IdTokenError::Algorithm(_))
        ));
        let mut tampered = token("k1", claims());
        tampered.insert(tampered.len() - 3, 'A');
        assert!(validate(&tampered, &keys, &EXPECTED).is_err());
    }
}
