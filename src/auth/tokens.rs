//! Bearer tokens: 256 random bits, shown once, stored as a SHA-256 hash. A fast hash is the
//! right tool here because the secret is random, not a password: there is nothing to
//! brute-force, and lookups by hash stay indexed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of partner SCIM tokens, so a leaked token is recognisable by secret scanners.
pub const PARTNER_PREFIX: &str = "gbp_";
/// Prefix of admin API tokens.
pub const ADMIN_PREFIX: &str = "gba_";

/// A freshly generated token: the secret to show once and the hash to store.
pub struct NewToken {
    pub secret: String,
    pub hash: String,
}

pub fn generate(prefix: &str) -> NewToken {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&secret);
    NewToken { secret, hash }
}

pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The bearer token from an `Authorization` header value, if it has one.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_to_their_stored_form() {
        let a = generate(PARTNER_PREFIX);
        let b = generate(PARTNER_PREFIX);
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with("gbp_"));
        assert_eq!(a.secret.len(), 4 + 43);
        assert_eq!(hash(&a.secret), a.hash);
        assert!(!a.hash.contains(&a.secret));
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
