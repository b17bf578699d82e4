//! Time-based one-time passwords (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps) for MFA
//! enrolment and sign-in, plus the emailed 6-digit fallback code. Enrolment shows an
//! `otpauth://` URI (the de-facto Key Uri Format read by authenticator apps) both as text and
//! as a server-rendered inline SVG QR code, so the page needs no JavaScript. [`verify`]
//! accepts the current step and one either side, and refuses any step at or before the last
//! one used, so a code observed over a shoulder cannot be replayed; callers store the
//! returned step.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use rand::{Rng, RngCore};
use totp_rs::{Algorithm, TOTP};

use super::secrets::constant_time_eq;

/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Bytes of a new secret (160 bits, the HMAC-SHA-1 output size RFC 4226 recommends).
pub const SECRET_LEN: usize = 20;

/// RFC 3986 unreserved characters stay; everything else in a label or issuer is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a QR code could not be drawn.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the otpauth URI is too long for a QR code")]
pub struct QrError;

fn totp(secret: &[u8]) -> TOTP {
    // `new_unchecked` because RFC 6238's own test secret is shorter than totp-rs's minimum.
    TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 1, STEP_SECS, secret.to_vec())
}

/// A new random secret of [`SECRET_LEN`] bytes.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_LEN];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The secret in base32 (RFC 4648, no padding), as authenticator apps take it typed in.
pub fn secret_base32(secret: &[u8]) -> String {
    totp(secret).get_secret_base32()
}

/// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`,
/// issuer and account percent-encoded (a `:` inside either is encoded too).
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let issuer = utf8_percent_encode(issuer, COMPONENT).to_string();
    let account = utf8_percent_encode(account, COMPONENT);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        secret_base32(secret)
    )
}

/// The QR code of `uri` as an inline `<svg>` element (no XML declaration), labelled for
/// screen readers and scalable with CSS.
pub fn qr_svg(uri: &str) -> Result<String, QrError> {
    let code = QrCode::with_error_correction_level(uri, EcLevel::M).map_err(|_| QrError)?;
    let image = code
        .render::<svg::Color>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .quiet_zone(true)
        .build();
    let start = image.find("<svg").ok_or(QrError)?;
    Ok(image[start..].replacen(
        "<svg ",
        r#"<svg role="img" aria-label="QR code for your authenticator app" "#,
        1,
    ))
}

/// The code for the step containing `unix_time`.
pub fn code_at(secret: &[u8], unix_time: u64) -> String {
    totp(secret).generate(unix_time)
}

/// Checks `code` (spaces allowed) for the step containing `unix_time` or one step either
/// side, skipping steps at or before `last_used_step`. Returns the matched step, which the
/// caller stores as the new `last_used_step`.
pub fn verify(
    secret: &[u8],
    code: &str,
    unix_time: u64,
    last_used_step: Option<u64>,
) -> Option<u64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = unix_time / STEP_SECS;
    let totp = totp(secret);
    let mut matched = None;
    // Every candidate is computed and compared, so timing does not tell which step matched.
    for step in current.saturating_sub(1)..=current.saturating_add(1) {
        let fresh = last_used_step.is_none_or(|last| step > last);
        let equal = constant_time_eq(totp.generate(step * STEP_SECS).as_bytes(), code.as_bytes());
        if fresh && equal {
            matched = Some(step);
        }
    }
    matched
}

/// Six random digits (leading zeros kept) for the emailed fallback code.
pub fn email_code() -> String {
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_sha1_vectors() {
        // RFC 6238 Appendix B gives 8 digits; the 6-digit code is the last six.
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(RFC_SECRET, t), eight[2..], "t={t}");
        }
        assert_eq!(code_at(RFC_SECRET, 59), "287082");
        assert_eq!(code_at(RFC_SECRET, 1_111_111_109), "081804");
    }

    #[test]
    fn verify_accepts_one_step_either_side() {
        let t = 1_111_111_109;
        let step = t / STEP_SECS;
        let code = code_at(RFC_SECRET, t);
        assert_eq!(verify(RFC_SECRET, &code, t, None), Some(step));
        assert_eq!(verify(RFC_SECRET, "081 804", t, None), Some(step));
        assert_eq!(verify(RFC_SECRET, &code, t + STEP_SECS, None), Some(step));
        assert_eq!(verify(RFC_SECRET, &code, t - STEP_SECS, None), Some(step));
        assert_eq!(verify(RFC_SECRET, &code, t + 2 * STEP_SECS, None), None);
        assert_eq!(verify(RFC_SECRET, &code, t - 2 * STEP_SECS, None), None);
    }

    #[test]
    fn verify_refuses_replay_and_junk() {
        let t = 1_111_111_109;
        let step = t / STEP_SECS;
        let code = code_at(RFC_SECRET, t);
        let used = verify(RFC_SECRET, &code, t, None).unwrap();
        assert_eq!(verify(RFC_SECRET, &code, t, Some(used)), None);
        assert_eq!(verify(RFC_SECRET, &code, t + 10, Some(used)), None);
        // A later step's code is still accepted after an earlier one was used.
        let next = code_at(RFC_SECRET, t + STEP_SECS);
        assert_eq!(verify(RFC_SECRET, &next, t, Some(step - 1)), Some(step + 1));
        assert_eq!(verify(RFC_SECRET, &next, t, Some(step)), Some(step + 1));
        assert_eq!(verify(RFC_SECRET, &next, t, Some(step + 1)), None);
        for junk in ["", "08180", "0818040", "08180a", "０８１８０４", "-81804"] {
            assert_eq!(verify(RFC_SECRET, junk, t, None), None, "{junk}");
        }
        assert_eq!(verify(b"another secret!!", &code, t, None), None);
        // Near the epoch there is no step before 0.
        assert_eq!(
            verify(RFC_SECRET, &code_at(RFC_SECRET, 0), 5, None),
            Some(0)
        );
    }

    #[test]
    fn secrets_and_email_codes_are_random() {
        let s = new_secret();
        assert_eq!(s.len(), 20);
        assert_ne!(s, new_secret());
        let codes: Vec<String> = (0..50).map(|_| email_code()).collect();
        assert!(codes
            .iter()
            .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        assert!(codes.iter().any(|c| c != &codes[0]));
    }

    #[test]
    fn otpauth_uri_format() {
        let uri = otpauth_uri(RFC_SECRET, "St Mary's Hospital", "ann.lee+1@acme.example");
        assert_eq!(
            uri,
            "otpauth://totp/St%20Mary%27s%20Hospital:ann.lee%2B1%40acme.example\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=St%20Mary%27s%20Hospital\
             &algorithm=SHA1&digits=6&period=30"
        );
        assert!(otpauth_uri(&new_secret(), "A:B", "c").starts_with("otpauth://totp/A%3AB:c?"));
        assert_eq!(secret_base32(&new_secret()).len(), 32);
    }

    #[test]
    fn qr_is_inline_svg() {
        let uri = otpauth_uri(&new_secret(), "Guestbridge", "ann@acme.example");
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg "), "{}", &svg[..60]);
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains("viewBox"));
        assert_eq!(qr_svg(&"x".repeat(5000)), Err(QrError));
    }
}
