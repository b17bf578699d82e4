//! CSRF protection for the server-rendered forms (synchronizer tokens without server-side
//! state). Each form carries a hidden token that is HMAC-SHA256(secret, form name), base64url:
//! the secret is the session's own random secret (rotated with the session at sign-in), so a
//! token from another session or for another form does not pass. Before there is a session
//! (the invitation page), the token is bound to the invitation token's hash under a server
//! key (for example `SecretBox::derive_key("csrf")`). Checks compare in constant time. This
//! backs up, not replaces, `SameSite=Lax` session cookies.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::secrets::{constant_time_eq, hmac_sha256};

const SESSION_LABEL: &[u8] = b"guestbridge-csrf-session-v1";
const PRE_SESSION_LABEL: &[u8] = b"guestbridge-csrf-presession-v1";

fn mac(key: &[u8], label: &[u8], binding: &str, form: &str) -> String {
    // Length prefixes keep (binding, form) pairs unambiguous.
    let binding_len = (binding.len() as u64).to_be_bytes();
    let form_len = (form.len() as u64).to_be_bytes();
    let tag = hmac_sha256(
        key,
        &[
            label,
            &binding_len,
            binding.as_bytes(),
            &form_len,
            form.as_bytes(),
        ],
    );
    URL_SAFE_NO_PAD.encode(tag)
}

/// The token to put in form `form` for the session whose secret is `session_secret`.
pub fn csrf_token(session_secret: &[u8], form: &str) -> String {
    mac(session_secret, SESSION_LABEL, "", form)
}

/// Whether `token` is the one [`csrf_token`] gives for this session and form.
pub fn check_csrf(session_secret: &[u8], form: &str, token: &str) -> bool {
    !session_secret.is_empty()
        && constant_time_eq(
            csrf_token(session_secret, form).as_bytes(),
            token.as_bytes(),
        )
}

/// The token for form `form` on a page reached before any session exists, bound to the hash
/// of the invitation (or sign-in link) token, under `server_key`.
pub fn pre_session_csrf_token(
    server_key: &[u8],
    invitation_token_hash: &str,
    form: &str,
) -> String {
    mac(server_key, PRE_SESSION_LABEL, invitation_token_hash, form)
}

/// Whether `token` is the one [`pre_session_csrf_token`] gives for this invitation and form.
pub fn check_pre_session_csrf(
    server_key: &[u8],
    invitation_token_hash: &str,
    form: &str,
    token: &str,
) -> bool {
    !server_key.is_empty()
        && !invitation_token_hash.is_empty()
        && constant_time_eq(
            pre_session_csrf_token(server_key, invitation_token_hash, form).as_bytes(),
            token.as_bytes(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::secrets::hash_token;

    #[test]
    fn session_tokens_check_for_their_session_and_form_only() {
        let secret = [1u8; 32];
        let token = csrf_token(&secret, "consent");
        assert_eq!(token.len(), 43);
        assert_eq!(token, csrf_token(&secret, "consent"));
        assert!(check_csrf(&secret, "consent", &token));
        assert!(!check_csrf(&secret, "mfa", &token));
        assert!(!check_csrf(&[2u8; 32], "consent", &token));
        assert!(!check_csrf(&secret, "consent", ""));
        assert!(!check_csrf(&secret, "consent", &token[..42]));
        assert!(!check_csrf(&secret, "consent", &format!("{token}A")));
        assert!(!check_csrf(&[], "consent", &csrf_token(&[], "consent")));
    }

    #[test]
    fn pre_session_tokens_bind_to_the_invitation() {
        let key = [9u8; 32];
        let invite = hash_token("invitation-secret");
        let token = pre_session_csrf_token(&key, &invite, "accept");
        assert!(check_pre_session_csrf(&key, &invite, "accept", &token));
        assert!(!check_pre_session_csrf(&key, &invite, "decline", &token));
        assert!(!check_pre_session_csrf(
            &key,
            &hash_token("other"),
            "accept",
            &token
        ));
        assert!(!check_pre_session_csrf(
            &[8u8; 32], &invite, "accept", &token
        ));
        assert!(!check_pre_session_csrf(
            &key,
            "",
            "accept",
            &pre_session_csrf_token(&key, "", "accept")
        ));
        // The two kinds never stand in for each other, nor do shifted boundaries.
        assert!(!check_csrf(&key, "accept", &token));
        assert_ne!(
            pre_session_csrf_token(&key, "ab", "c"),
            pre_session_csrf_token(&key, "a", "bc")
        );
    }
}
