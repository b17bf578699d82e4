//! The guest's second factor: TOTP enrolment and verification, the e-mailed code where a
//! partner allows it, and an administrator's reset when the authenticator is lost.
//!
//! Every way to begin a session today proves control of the guest's mailbox (the invitation
//! link, a sign-in link), so the second factor must be something else: the authenticator
//! app. An e-mailed code is the same proof again; it is offered only where the partner opts
//! in (`mfa_email_fallback`) and the session did not itself begin from an e-mail.

use chrono::Duration;
use serde_json::json;

use super::guest_auth::{allow, guest_actor, redeem, CodeOutcome, GuestSession, LINK_MINUTES};
use super::invitations::{audit_guest, partner_of};
use super::mailer::{self, MailRequest};
use super::{Actor, Deps, ServiceError};
use crate::auth::secrets::hash_token;
use crate::auth::totp;
use crate::store::guests as guest_store;
use crate::store::sessions as session_store;
use crate::store::{invitations as inv_store, mfa as mfa_store, Tx};

/// Code attempts per guest and per address in a rate-limit window.
const CODE_ATTEMPTS_PER_GUEST: i64 = 5;
const CODE_ATTEMPTS_PER_IP: i64 = 30;
/// Code mails per guest and per address in a window.
const MAILS_PER_GUEST: i64 = 3;
const MAILS_PER_IP: i64 = 10;

/// Whether an e-mailed code may be the second factor: only with the partner's opt-in, and
/// never in a session that began from an e-mail, where it would prove the mailbox twice.
pub fn email_code_allowed(partner_opts_in: bool, session_began_by_email: bool) -> bool {
    partner_opts_in && !session_began_by_email
}

/// [`email_code_allowed`] for this session, with the partner policy in force now.
pub async fn email_fallback(deps: &Deps, gs: &GuestSession) -> Result<bool, ServiceError> {
    if gs.began_by_email() {
        return Ok(false);
    }
    let mut conn = deps.db.pool().acquire().await?;
    let partner = partner_of(&mut conn, &gs.guest).await?;
    let opted_in = deps
        .rules()
        .policy(partner.slug.as_str())
        .mfa_email_fallback;
    Ok(email_code_allowed(opted_in, gs.began_by_email()))
}

/// What the TOTP enrolment page shows.
pub struct Enrolment {
    pub otpauth_uri: String,
    pub qr_svg: String,
    pub secret_text: String,
}

/// Start (or continue) TOTP enrolment. The pending secret is created once, in a write
/// transaction, and kept until enrolled or reset: every page load (a reload, a second tab,
/// two at once) shows the same secret, so a code from whichever page was scanned works.
pub async fn enrolment(deps: &Deps, gs: &GuestSession) -> Result<Enrolment, ServiceError> {
    let aad = gs.guest.id.as_bytes();
    let existing = {
        let mut conn = deps.db.pool().acquire().await?;
        mfa_store::get(&mut conn, &gs.guest.id).await?
    };
    let row = match existing {
        Some(row) => row,
        None => {
            let sealed = deps
                .portal
                .secrets
                .seal(&totp::new_secret(), aad)
                .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
            let mut tx = deps.db.begin_write().await?;
            let row = mfa_store::begin_or_current(&mut tx, &gs.guest.id, &sealed).await?;
            tx.commit().await?;
            row
        }
    };
    if row.enrolled_at.is_some() {
        return Err(ServiceError::Conflict("already enrolled".into()));
    }
    let secret = deps
        .portal
        .secrets
        .open(&row.totp_secret_sealed, aad)
        .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    let account = gs
        .guest
        .email
        .clone()
        .unwrap_or_else(|| gs.guest.user_name.clone());
    let uri = totp::otpauth_uri(&secret, &deps.portal.organization, &account);
    let svg = totp::qr_svg(&uri).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    Ok(Enrolment {
        // Groups of four are easier to type on a phone; authenticator apps ignore the spaces.
        secret_text: totp::secret_base32(&secret)
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        otpauth_uri: uri,
        qr_svg: svg,
    })
}

/// Whether the guest has an authenticator enrolled.
pub async fn is_enrolled(deps: &Deps, guest_id: &str) -> Result<bool, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(mfa_store::get(&mut conn, guest_id)
        .await?
        .is_some_and(|r| r.enrolled_at.is_some()))
}

/// MFA passed in this session: remember it, and a consented invited guest has redeemed.
pub(super) async fn mfa_passed(
    tx: &mut Tx,
    deps: &Deps,
    gs: &GuestSession,
    method: &str,
    now: i64,
) -> Result<(), ServiceError> {
    session_store::set_mfa_passed(tx, &gs.session.id_hash, method).await?;
    redeem_if_consented(tx, deps, &gs.guest.id, now).await
}

/// A guest who has consented and now passed MFA (or signed in with a passkey) has redeemed.
pub(super) async fn redeem_if_consented(
    tx: &mut Tx,
    deps: &Deps,
    guest_id: &str,
    now: i64,
) -> Result<(), ServiceError> {
    let guest = guest_store::get(tx, guest_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let consented = inv_store::latest_consent(tx, &guest.id)
        .await?
        .is_some_and(|(_, _, accepted)| accepted);
    if consented {
        redeem(tx, deps, &guest_actor(&guest.id), &guest, now).await?;
    }
    Ok(())
}

fn code_limits(guest_id: &str, ip: &str) -> Vec<(String, i64)> {
    vec![
        (format!("code:guest:{guest_id}"), CODE_ATTEMPTS_PER_GUEST),
        (format!("code:ip:{ip}"), CODE_ATTEMPTS_PER_IP),
    ]
}

/// Check a TOTP code (enrolling on the first good one).
pub async fn verify_totp(
    deps: &Deps,
    gs: &GuestSession,
    code: &str,
    ip: &str,
) -> Result<CodeOutcome, ServiceError> {
    // The partner requires a passkey: a code from an app is not enough.
    if super::guest_passkeys::passkey_only(deps, gs).await? {
        return Ok(CodeOutcome::NotAllowed);
    }
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    if !allow(&mut tx, now, &code_limits(&gs.guest.id, ip)).await? {
        tx.commit().await?;
        return Ok(CodeOutcome::RateLimited);
    }
    let Some(row) = mfa_store::get(&mut tx, &gs.guest.id).await? else {
        tx.commit().await?;
        return Ok(CodeOutcome::Wrong);
    };
    let secret = deps
        .portal
        .secrets
        .open(&row.totp_secret_sealed, gs.guest.id.as_bytes())
        .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    let unix = u64::try_from(now / 1000).unwrap_or(0);
    let last = row.last_step.and_then(|s| u64::try_from(s).ok());
    let Some(step) = totp::verify(&secret, code, unix, last) else {
        audit_guest(
            &mut tx,
            &guest_actor(&gs.guest.id),
            &gs.guest,
            "mfa.failed",
            json!({"method": "totp"}),
            now,
        )
        .await?;
        tx.commit().await?;
        return Ok(CodeOutcome::Wrong);
    };
    mfa_store::accept_step(
        &mut tx,
        &gs.guest.id,
        i64::try_from(step).unwrap_or(i64::MAX),
        now,
    )
    .await?;
    if row.enrolled_at.is_none() {
        audit_guest(
            &mut tx,
            &guest_actor(&gs.guest.id),
            &gs.guest,
            "mfa.enrolled",
            json!({"method": "totp", "session_origin": gs.session.origin}),
            now,
        )
        .await?;
    }
    mfa_passed(&mut tx, deps, gs, "totp", now).await?;
    tx.commit().await?;
    Ok(CodeOutcome::Accepted)
}

fn code_hash(guest_id: &str, code: &str) -> String {
    hash_token(&format!("{guest_id}:{code}"))
}

/// Email a one-time code. `NotAllowed` (nothing written, nothing sent) unless
/// [`email_fallback`] allows it for this session.
pub async fn send_email_code(
    deps: &Deps,
    gs: &GuestSession,
    ip: &str,
) -> Result<CodeOutcome, ServiceError> {
    if !email_fallback(deps, gs).await? {
        return Ok(CodeOutcome::NotAllowed);
    }
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let limits = vec![
        (format!("mail:guest:{}", gs.guest.id), MAILS_PER_GUEST),
        (format!("mail:ip:{ip}"), MAILS_PER_IP),
    ];
    if !allow(&mut tx, now, &limits).await? {
        tx.commit().await?;
        return Ok(CodeOutcome::RateLimited);
    }
    let Some(email) = gs.guest.email.as_deref() else {
        tx.commit().await?;
        return Ok(CodeOutcome::Wrong);
    };
    let code = totp::email_code();
    let id = uuid::Uuid::new_v4().to_string();
    session_store::insert_email_code(
        &mut tx,
        &gs.guest.id,
        &code_hash(&gs.guest.id, &code),
        now,
        now + Duration::minutes(LINK_MINUTES).num_milliseconds(),
    )
    .await?;
    mailer::queue(
        &mut tx,
        deps,
        MailRequest {
            to: email,
            template: "otp_code",
            partner: None,
            language: gs.guest.language.as_deref(),
            context: json!({"code": code, "expires_minutes": LINK_MINUTES}),
            idempotency_key: format!("otp:{id}"),
            guest_id: Some(&gs.guest.id),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(CodeOutcome::Accepted)
}

/// Check an e-mailed code; `NotAllowed` (nothing written) where [`email_fallback`] refuses
/// it, even for a code that was sent while it was allowed.
pub async fn verify_email_code(
    deps: &Deps,
    gs: &GuestSession,
    code: &str,
    ip: &str,
) -> Result<CodeOutcome, ServiceError> {
    if !email_fallback(deps, gs).await? {
        return Ok(CodeOutcome::NotAllowed);
    }
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    if !allow(&mut tx, now, &code_limits(&gs.guest.id, ip)).await? {
        tx.commit().await?;
        return Ok(CodeOutcome::RateLimited);
    }
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if !session_store::use_email_code(&mut tx, &gs.guest.id, &code_hash(&gs.guest.id, &code), now)
        .await?
    {
        audit_guest(
            &mut tx,
            &guest_actor(&gs.guest.id),
            &gs.guest,
            "mfa.failed",
            json!({"method": "email"}),
            now,
        )
        .await?;
        tx.commit().await?;
        return Ok(CodeOutcome::Wrong);
    }
    mfa_passed(&mut tx, deps, gs, "email", now).await?;
    tx.commit().await?;
    Ok(CodeOutcome::Accepted)
}

/// What an MFA reset removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaReset {
    /// Whether an authenticator was enrolled (rather than only pending, or nothing).
    pub was_enrolled: bool,
    pub sessions_ended: u64,
    /// How many passkeys were removed.
    pub passkeys_removed: u64,
}

/// A guest lost their authenticator: remove the enrolment and passkeys and end their sessions, audited
/// as `guest.mfa_reset` in the same transaction. Their next sign-in enrols a new one.
pub async fn reset_mfa(
    deps: &Deps,
    actor: &Actor,
    guest_id: &str,
) -> Result<MfaReset, ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let guest = guest_store::get_locked(&mut tx, guest_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let was_enrolled = mfa_store::get(&mut tx, guest_id)
        .await?
        .is_some_and(|r| r.enrolled_at.is_some());
    mfa_store::delete(&mut tx, guest_id).await?;
    let passkeys_removed = super::guest_passkeys::remove_all(&mut tx, guest_id).await?;
    let sessions_ended = session_store::delete_guest_sessions(&mut tx, guest_id).await?;
    audit_guest(
        &mut tx,
        actor,
        &guest,
        "guest.mfa_reset",
        json!({"was_enrolled": was_enrolled, "sessions_ended": sessions_ended, "passkeys_removed": passkeys_removed}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(MfaReset {
        was_enrolled,
        sessions_ended,
        passkeys_removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::guest_auth::SessionOrigin;

    #[test]
    fn an_emailed_code_needs_the_opt_in_and_a_session_not_begun_by_email() {
        assert!(!email_code_allowed(false, false));
        assert!(!email_code_allowed(false, true));
        assert!(!email_code_allowed(true, true));
        assert!(email_code_allowed(true, false));
        // Every way to begin a session today is an e-mailed link.
        for origin in [SessionOrigin::Invitation, SessionOrigin::SigninLink] {
            assert!(origin.by_email(), "{origin:?}");
            assert!(!email_code_allowed(true, origin.by_email()));
        }
    }
}
