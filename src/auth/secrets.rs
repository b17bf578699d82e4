//! Secrets at rest and one-time secrets. [`SecretBox`] encrypts small secrets (signing keys,
//! TOTP seeds) with AES-256-GCM under the 32-byte key of the `GUESTBRIDGE_SECRET_KEY` setting,
//! each with a fresh random 96-bit nonce; the associated data binds a ciphertext to where it is
//! stored (for example `b"signing_key:<kid>"` or `b"totp:<guest id>"`), so a value copied to
//! another row does not open. Sealed text is versioned (`v1.` + base64url(nonce ‖ ciphertext
//! ‖ tag)) so the scheme can change without guessing. Alongside: random URL-safe tokens,
//! their SHA-256 hashes for storage, and constant-time comparison.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use ring::hmac;
use subtle::ConstantTimeEq;

/// The setting that holds the key, named in every key error.
pub const SECRET_KEY_SETTING: &str = "GUESTBRIDGE_SECRET_KEY";

const VERSION_PREFIX: &str = "v1.";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why the key setting was refused. Never carries the key text itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "{SECRET_KEY_SETTING} is empty; set it to 64 hexadecimal characters (32 random bytes)"
    )]
    Empty,
    #[error(
        "{SECRET_KEY_SETTING} must be 64 hexadecimal characters or the base64 of 32 bytes \
         (got {0} characters that are neither)"
    )]
    Malformed(usize),
}

/// Why a sealed secret did not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("sealed secret has an unknown format or version")]
    Format,
    #[error("sealed secret failed authentication (wrong key, wrong context or altered)")]
    Decrypt,
    #[error("secret could not be encrypted")]
    Encrypt,
}

/// AES-256-GCM under the settings key. `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    key: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

impl SecretBox {
    pub fn new(key: [u8; 32]) -> Self {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key));
        SecretBox { cipher, key }
    }

    /// Parses the `GUESTBRIDGE_SECRET_KEY` text: 64 hex characters, or standard or URL-safe
    /// base64 (padded or not) of exactly 32 bytes. Surrounding whitespace is ignored.
    pub fn from_setting(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut key = [0u8; 32];
        if text.len() == 64 && hex::decode_to_slice(text, &mut key).is_ok() {
            return Ok(Self::new(key));
        }
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            if let Ok(bytes) = engine.decode(text) {
                if let Ok(exact) = <[u8; 32]>::try_from(bytes.as_slice()) {
                    return Ok(Self::new(exact));
                }
            }
        }
        Err(KeyError::Malformed(text.chars().count()))
    }

    /// A new random key as the setting expects it (64 hex characters), for the operator to
    /// store.
    pub fn generate_key_text() -> String {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        hex::encode(key)
    }

    /// Encrypts `plaintext`, bound to `aad`. Fails only for absurdly large inputs (GCM's
    /// 64 GiB limit), never for secrets of the sizes stored here.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| SecretError::Encrypt)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(format!("{VERSION_PREFIX}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// Decrypts text made by [`SecretBox::seal`] with the same key and `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, SecretError> {
        let body = sealed
            .strip_prefix(VERSION_PREFIX)
            .ok_or(SecretError::Format)?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| SecretError::Format)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::Format);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| SecretError::Decrypt)
    }

    /// A 32-byte key for another purpose (for example `"csrf"`), derived as
    /// HMAC-SHA256(settings key, `"guestbridge:" + purpose`), so one setting serves several
    /// uses without reusing the encryption key itself.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        hmac_sha256(&self.key, &[b"guestbridge:", purpose.as_bytes()])
    }
}

/// `bytes` bytes of OS randomness as URL-safe base64 without padding (32 bytes → 43 chars).
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Lower-case hex SHA-256 of a token, the form in which random tokens are stored and looked
/// up (a fast hash suffices: the input is random, not a password).
pub fn hash_token(token: &str) -> String {
    super::tokens::hash(token)
}

/// Compares two byte strings in time independent of their contents (the length may show).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// HMAC-SHA256 of the concatenated `parts` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, key));
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_box(byte: u8) -> SecretBox {
        SecretBox::new([byte; 32])
    }

    #[test]
    fn seal_then_open_round_trips() {
        let sb = key_box(7);
        let sealed = sb.seal(b"totp seed", b"totp:guest-1").unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("totp seed"));
        assert_eq!(sb.open(&sealed, b"totp:guest-1").unwrap(), b"totp seed");
        assert_eq!(sb.open(&sb.seal(b"", b"").unwrap(), b"").unwrap(), b"");
    }

    #[test]
    fn nonces_are_fresh() {
        let sb = key_box(7);
        assert_ne!(sb.seal(b"x", b"a").unwrap(), sb.seal(b"x", b"a").unwrap());
    }

    #[test]
    fn wrong_key_aad_or_altered_text_fail() {
        let sb = key_box(7);
        let sealed = sb.seal(b"secret", b"row:1").unwrap();
        assert_eq!(
            key_box(8).open(&sealed, b"row:1"),
            Err(SecretError::Decrypt)
        );
        assert_eq!(sb.open(&sealed, b"row:2"), Err(SecretError::Decrypt));

        let mut raw = URL_SAFE_NO_PAD.decode(&sealed[3..]).unwrap();
        for i in [0, NONCE_LEN, raw.len() - 1] {
            raw[i] ^= 1;
            let altered = format!("v1.{}", URL_SAFE_NO_PAD.encode(&raw));
            assert_eq!(sb.open(&altered, b"row:1"), Err(SecretError::Decrypt));
            raw[i] ^= 1;
        }
        let truncated = format!("v1.{}", URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]));
        assert_eq!(sb.open(&truncated, b"row:1"), Err(SecretError::Decrypt));
    }

    #[test]
    fn unknown_formats_are_refused() {
        let sb = key_box(7);
        let sealed = sb.seal(b"secret", b"").unwrap();
        assert_eq!(
            sb.open(&sealed.replacen("v1.", "v2.", 1), b""),
            Err(SecretError::Format)
        );
        assert_eq!(sb.open("v1.!!!", b""), Err(SecretError::Format));
        assert_eq!(sb.open("v1.AAAA", b""), Err(SecretError::Format));
        assert_eq!(sb.open("", b""), Err(SecretError::Format));
    }

    #[test]
    fn key_setting_accepts_hex_and_base64() {
        let bytes = [0xabu8; 32];
        let sealed = SecretBox::new(bytes).seal(b"s", b"").unwrap();
        for text in [
            hex::encode(bytes),
            hex::encode_upper(bytes),
            format!("  {}\n", hex::encode(bytes)),
            STANDARD.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
        ] {
            let sb = SecretBox::from_setting(&text).unwrap();
            assert_eq!(sb.open(&sealed, b"").unwrap(), b"s", "{text}");
        }
        let generated = SecretBox::generate_key_text();
        assert_eq!(generated.len(), 64);
        assert!(SecretBox::from_setting(&generated).is_ok());
        assert_ne!(generated, SecretBox::generate_key_text());
    }

    #[test]
    fn bad_key_settings_name_the_setting_without_echoing_it() {
        assert_eq!(SecretBox::from_setting(" ").unwrap_err(), KeyError::Empty);
        for bad in [
            "hunter2",
            &"ab".repeat(31),
            &STANDARD.encode([1u8; 16]),
            &"zz".repeat(32),
        ] {
            let err = SecretBox::from_setting(bad).unwrap_err();
            let message = err.to_string();
            assert!(message.contains("GUESTBRIDGE_SECRET_KEY"), "{message}");
            assert!(!message.contains(bad), "{message}");
        }
        assert!(!format!("{:?}", key_box(1)).contains("1"));
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_from_the_key() {
        let sb = key_box(7);
        assert_ne!(sb.derive_key("csrf"), sb.derive_key("other"));
        assert_eq!(sb.derive_key("csrf"), key_box(7).derive_key("csrf"));
        assert_ne!(sb.derive_key("csrf"), [7u8; 32]);
    }

    #[test]
    fn tokens_hashes_and_comparison() {
        let t = random_token(32);
        assert_eq!(t.len(), 43);
        assert!(t
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(t, random_token(32));
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(constant_time_eq(b"same", b"same"));
        assert!(!constant_time_eq(b"same", b"sane"));
        assert!(!constant_time_eq(b"same", b"sam"));
    }
}
