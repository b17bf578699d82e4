//! App-launch signing keys: Ed25519 key pairs (private key as PKCS#8 v2 DER, public key as
//! its raw 32 bytes), their publication as a JWKS (RFC 7517, OKP keys of RFC 8037) and
//! rotation. The `kid` is the first 16 hex characters of the SHA-256 of the public key: stable,
//! derived from the key alone, so every instance names a key the same way. Rotation retires
//! the active key rather than deleting it; a retired key stays published until every token it
//! can have signed has expired. The store keeps `private_pkcs8_der` sealed with
//! [`crate::auth::secrets::SecretBox`] (suggested associated data: `b"signing_key:" + kid`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::jwt::LEEWAY_SECS;

/// Why a key could not be made or used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("the operating system's random generator failed")]
    Random,
    #[error("stored signing key {0} is not a valid Ed25519 PKCS#8 key")]
    Invalid(String),
    #[error("stored signing key {0} does not match its public key")]
    Mismatch(String),
}

/// One Ed25519 signing key. `Debug` leaves out the private key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub private_pkcs8_der: Vec<u8>,
    /// The raw 32-byte Ed25519 public key.
    pub public_raw: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("private_pkcs8_der", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

impl SigningKey {
    /// A new key pair from the OS random generator, active from `now`.
    pub fn generate(now: DateTime<Utc>) -> Result<Self, KeyError> {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Random)?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| KeyError::Invalid("(new)".into()))?;
        let public_raw = pair.public_key().as_ref().to_vec();
        Ok(SigningKey {
            kid: kid_for(&public_raw),
            private_pkcs8_der: pkcs8.as_ref().to_vec(),
            public_raw,
            created_at: now,
            retired_at: None,
        })
    }

    /// Checks a key read back from storage: the private key parses and matches the public
    /// key and the `kid`.
    pub fn check(&self) -> Result<(), KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.private_pkcs8_der)
            .map_err(|_| KeyError::Invalid(self.kid.clone()))?;
        if pair.public_key().as_ref() != self.public_raw.as_slice()
            || kid_for(&self.public_raw) != self.kid
        {
            return Err(KeyError::Mismatch(self.kid.clone()));
        }
        Ok(())
    }

    /// The public key as a JWK (RFC 8037 OKP).
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(&self.public_raw),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        })
    }

    fn is_published(&self, now: DateTime<Utc>, token_lifetime: Duration) -> bool {
        match self.retired_at {
            None => true,
            Some(retired) => retired + token_lifetime + Duration::seconds(LEEWAY_SECS) > now,
        }
    }
}

/// First 16 hex characters of SHA-256(public key).
fn kid_for(public_raw: &[u8]) -> String {
    let mut kid = hex::encode(Sha256::digest(public_raw));
    kid.truncate(16);
    kid
}

/// The key to sign with: the newest key not retired.
pub fn active(keys: &[SigningKey]) -> Option<&SigningKey> {
    keys.iter()
        .filter(|k| k.retired_at.is_none())
        .max_by_key(|k| k.created_at)
}

/// The JWKS to serve at `/.well-known/jwks.json`: every key not retired (the active one first),
/// then retired keys that may still have signed a valid token, i.e. retired less than
/// `token_lifetime` plus the verifier's leeway ago.
pub fn jwks(keys: &[SigningKey], now: DateTime<Utc>, token_lifetime: Duration) -> Value {
    let mut published: Vec<&SigningKey> = keys
        .iter()
        .filter(|k| k.is_published(now, token_lifetime))
        .collect();
    // Active (not retired) first, then by newest creation.
    published.sort_by_key(|k| (k.retired_at.is_some(), std::cmp::Reverse(k.created_at)));
    json!({ "keys": published.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// Retires every key still active at `now` and adds a new active key, which it returns.
pub fn rotate(keys: &mut Vec<SigningKey>, now: DateTime<Utc>) -> Result<&SigningKey, KeyError> {
    let new_key = SigningKey::generate(now)?;
    for key in keys.iter_mut().filter(|k| k.retired_at.is_none()) {
        key.retired_at = Some(now);
    }
    keys.push(new_key);
    Ok(&keys[keys.len() - 1])
}

/// Keys that can be deleted: retired and no longer published at `now`.
pub fn expired(keys: &[SigningKey], now: DateTime<Utc>, token_lifetime: Duration) -> Vec<&str> {
    keys.iter()
        .filter(|k| !k.is_published(now, token_lifetime))
        .map(|k| k.kid.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
    }

    fn kids(jwks: &Value) -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn generated_keys_are_ed25519_with_derived_kid() {
        let key = SigningKey::generate(t0()).unwrap();
        assert_eq!(key.public_raw.len(), 32);
        assert_eq!(key.kid.len(), 16);
        assert_eq!(key.kid, hex::encode(Sha256::digest(&key.public_raw))[..16]);
        assert_eq!(key.created_at, t0());
        assert!(key.retired_at.is_none());
        key.check().unwrap();
        assert_ne!(key.kid, SigningKey::generate(t0()).unwrap().kid);
        assert!(!format!("{key:?}").contains(&format!("{:?}", key.private_pkcs8_der)));
    }

    #[test]
    fn check_detects_mixed_up_keys() {
        let a = SigningKey::generate(t0()).unwrap();
        let b = SigningKey::generate(t0()).unwrap();
        let mixed = SigningKey {
            private_pkcs8_der: b.private_pkcs8_der.clone(),
            ..a.clone()
        };
        assert_eq!(mixed.check(), Err(KeyError::Mismatch(a.kid.clone())));
        let broken = SigningKey {
            private_pkcs8_der: vec![1, 2, 3],
            ..a.clone()
        };
        assert_eq!(broken.check(), Err(KeyError::Invalid(a.kid.clone())));
    }

    #[test]
    fn jwk_has_the_okp_members() {
        let key = SigningKey::generate(t0()).unwrap();
        let jwk = key.jwk();
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["alg"], "EdDSA");
        assert_eq!(jwk["kid"], key.kid.as_str());
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        assert_eq!(x, key.public_raw);
        assert!(jwk.get("d").is_none());
    }

    #[test]
    fn active_is_the_newest_unretired_key() {
        assert!(active(&[]).is_none());
        let old = SigningKey::generate(t0()).unwrap();
        let new = SigningKey::generate(t0() + Duration::hours(1)).unwrap();
        let keys = vec![new.clone(), old.clone()];
        assert_eq!(active(&keys).unwrap().kid, new.kid);
        let mut retired = new.clone();
        retired.retired_at = Some(t0() + Duration::hours(2));
        assert_eq!(
            active(&[retired.clone(), old.clone()]).unwrap().kid,
            old.kid
        );
        assert!(active(&[retired]).is_none());
    }

    #[test]
    fn rotation_keeps_old_keys_published_until_their_tokens_expire() {
        let lifetime = Duration::seconds(60);
        let mut keys = vec![SigningKey::generate(t0()).unwrap()];
        let first = keys[0].kid.clone();
        assert_eq!(kids(&jwks(&keys, t0(), lifetime)), vec![first.clone()]);

        let rotated_at = t0() + Duration::days(30);
        let second = rotate(&mut keys, rotated_at).unwrap().kid.clone();
        assert_ne!(first, second);
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].retired_at, Some(rotated_at));
        assert_eq!(active(&keys).unwrap().kid, second);

        // A token signed by the first key just before rotation is valid for 60 s plus leeway.
        let just_before_expiry = rotated_at + lifetime + Duration::seconds(LEEWAY_SECS - 1);
        assert_eq!(
            kids(&jwks(&keys, rotated_at, lifetime)),
            vec![second.clone(), first.clone()]
        );
        assert_eq!(
            kids(&jwks(&keys, just_before_expiry, lifetime)),
            vec![second.clone(), first.clone()]
        );
        assert!(expired(&keys, just_before_expiry, lifetime).is_empty());
        let after = rotated_at + lifetime + Duration::seconds(LEEWAY_SECS);
        assert_eq!(kids(&jwks(&keys, after, lifetime)), vec![second.clone()]);
        assert_eq!(expired(&keys, after, lifetime), vec![first.as_str()]);

        // A second rotation retires only the then-active key.
        let third = rotate(&mut keys, after).unwrap().kid.clone();
        assert_eq!(keys[0].retired_at, Some(rotated_at));
        assert_eq!(keys[1].retired_at, Some(after));
        assert_eq!(kids(&jwks(&keys, after, lifetime)), vec![third, second]);
    }

    #[test]
    fn every_unretired_key_is_published() {
        // Two instances that both generated a key on first start: both can sign, so both show.
        let lifetime = Duration::seconds(60);
        let a = SigningKey::generate(t0()).unwrap();
        let b = SigningKey::generate(t0() + Duration::seconds(1)).unwrap();
        let keys = [a.clone(), b.clone()];
        assert_eq!(kids(&jwks(&keys, t0(), lifetime)), vec![b.kid, a.kid]);
    }
}
