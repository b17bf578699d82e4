//! Proof Key for Code Exchange (RFC 7636) with the S256 method: a random verifier kept by
//! us, and its SHA-256 challenge sent with the authorization request, so that a code that
//! leaks on its way back is useless without the verifier.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::auth::secrets::random_token;

/// A verifier and its challenge.
#[derive(Debug, Clone)]
pub struct Pkce {
    /// 43 characters of URL-safe base64 (32 random bytes), within RFC 7636 §4.1's 43–128.
    pub verifier: String,
    pub challenge: String,
}

/// The only method we send (RFC 7636 §4.2); `plain` gives no protection.
pub const METHOD: &str = "S256";

impl Pkce {
    pub fn generate() -> Self {
        let verifier = random_token(32);
        let challenge = challenge_for(&verifier);
        Pkce {
            verifier,
            challenge,
        }
    }
}

/// `BASE64URL(SHA256(ASCII(verifier)))`, RFC 7636 §4.2.
pub fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            challenge_for("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_fresh_and_long_enough() {
        let (a, b) = (Pkce::generate(), Pkce::generate());
        assert_ne!(a.verifier, b.verifier);
        assert_eq!(a.verifier.len(), 43);
        assert_eq!(a.challenge, challenge_for(&a.verifier));
    }
}
