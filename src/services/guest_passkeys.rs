//! Passkeys (WebAuthn) for guests: enrolment from the portal, a passkey as the second factor,
//! and sign-in with a passkey alone (a discoverable credential). Every ceremony requires user
//! verification (a PIN or biometric on the authenticator), so a passkey is possession and
//! knowledge or inherence at once: it passes MFA by itself.
//!
//! The ceremony state (challenge and allowed credentials) stays server-side, in
//! `passkey_ceremonies`, bound to what started it (the guest session, or the sign-in page's
//! pre-session cookie), for a few minutes and for one finish only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Duration;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn,
    WebauthnBuilder,
};

use super::guest_auth::{
    allow, guest_actor, start_session, CodeOutcome, GuestSession, SessionOrigin,
};
use super::guest_mfa::{mfa_passed, redeem_if_consented};
use super::invitations::{audit_guest, partner_of};
use super::{Deps, ServiceError};
use crate::auth::secrets::hash_token;
use crate::domain::lifecycle::GuestState;
use crate::store::guests as guest_store;
use crate::store::mfa as mfa_store;
use crate::store::passkeys::{self as passkey_store, PasskeyRow};

/// How long a ceremony may take between its start and its finish.
const CEREMONY_MINUTES: i64 = 5;
/// Passkey attempts per guest and per address in a rate-limit window.
const ATTEMPTS_PER_GUEST: i64 = 10;
const ATTEMPTS_PER_IP: i64 = 30;
/// Longest name a guest may give a passkey.
const NAME_MAX: usize = 60;

const REGISTER: &str = "register";
const AUTHENTICATE: &str = "authenticate";
const SIGNIN: &str = "signin";

/// The relying party: its id is the public URL's host, its origin the public URL.
fn relying_party(deps: &Deps) -> Result<Webauthn, ServiceError> {
    let corrupt = |e: &dyn std::fmt::Display| ServiceError::Corrupt(format!("passkeys: {e}"));
    let origin = Url::parse(&deps.portal.public_url).map_err(|e| corrupt(&e))?;
    let host = origin
        .host_str()
        .ok_or_else(|| corrupt(&"the public URL has no host"))?
        .to_string();
    WebauthnBuilder::new(&host, &origin)
        .and_then(|b| b.rp_name(&deps.portal.organization).build())
        .map_err(|e| corrupt(&e))
}

/// The WebAuthn user handle of a guest: stable, and not the guest id itself.
pub fn user_handle(guest_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("guestbridge-passkey:{guest_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

fn ceremony_id(kind: &str, binding: &str) -> String {
    hash_token(&format!("{kind}:{binding}"))
}

fn credential_key(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, ServiceError> {
    serde_json::to_string(v).map_err(|e| ServiceError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, ServiceError> {
    serde_json::from_str(s).map_err(|e| ServiceError::Corrupt(e.to_string()))
}

/// The guest's passkeys, oldest first.
pub async fn list(deps: &Deps, guest_id: &str) -> Result<Vec<PasskeyRow>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(passkey_store::for_guest(&mut conn, guest_id).await?)
}

pub async fn has_passkeys(deps: &Deps, guest_id: &str) -> Result<bool, ServiceError> {
    Ok(!list(deps, guest_id).await?.is_empty())
}

/// Whether the guest's partner requires a passkey (`mfa = "passkey"`): only a passkey
/// passes MFA, the code from an app does not.
pub async fn passkey_only(deps: &Deps, gs: &GuestSession) -> Result<bool, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let partner = partner_of(&mut conn, &gs.guest).await?;
    Ok(deps.rules().policy(partner.slug.as_str()).mfa_passkey)
}

/// Whether this session may enrol a passkey: after MFA, or at the first sign-in of a guest
/// who has no second factor yet (then the enrolment is the factor, as a first TOTP code is).
/// Never as a way round an enrolled factor.
pub async fn may_enrol(deps: &Deps, gs: &GuestSession) -> Result<bool, ServiceError> {
    if !gs.needs_mfa() {
        return Ok(true);
    }
    let mut conn = deps.db.pool().acquire().await?;
    let totp = mfa_store::get(&mut conn, &gs.guest.id)
        .await?
        .is_some_and(|r| r.enrolled_at.is_some());
    Ok(!totp
        && passkey_store::for_guest(&mut conn, &gs.guest.id)
            .await?
            .is_empty())
}

fn limits(guest: Option<&str>, ip: &str) -> Vec<(String, i64)> {
    let mut l = vec![(format!("passkey:ip:{ip}"), ATTEMPTS_PER_IP)];
    if let Some(g) = guest {
        l.push((format!("passkey:guest:{g}"), ATTEMPTS_PER_GUEST));
    }
    l
}

async fn store_ceremony(
    deps: &Deps,
    id: &str,
    kind: &str,
    state: &str,
) -> Result<(), ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    passkey_store::put_ceremony(
        &mut tx,
        id,
        kind,
        state,
        now,
        now + Duration::minutes(CEREMONY_MINUTES).num_milliseconds(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Options for `navigator.credentials.create`, or None when this session may not enrol.
pub async fn start_registration(
    deps: &Deps,
    gs: &GuestSession,
) -> Result<Option<Value>, ServiceError> {
    if !may_enrol(deps, gs).await? {
        return Ok(None);
    }
    let existing = list(deps, &gs.guest.id).await?;
    let exclude = existing
        .iter()
        .map(|r| from_json::<Passkey>(&r.passkey).map(|p| p.cred_id().clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let name = gs
        .guest
        .email
        .clone()
        .unwrap_or_else(|| gs.guest.user_name.clone());
    let display = gs
        .guest
        .display_name
        .clone()
        .unwrap_or_else(|| name.clone());
    let (options, state): (_, PasskeyRegistration) = relying_party(deps)?
        .start_passkey_registration(user_handle(&gs.guest.id), &name, &display, Some(exclude))
        .map_err(|e| ServiceError::Corrupt(format!("passkeys: {e}")))?;
    store_ceremony(
        deps,
        &ceremony_id(REGISTER, &gs.session.id_hash),
        REGISTER,
        &to_json(&state)?,
    )
    .await?;
    let mut options =
        serde_json::to_value(&options).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    // A discoverable credential, so that the passkey can also sign in without an address.
    // The server's check does not depend on it.
    if let Some(sel) = options.pointer_mut("/publicKey/authenticatorSelection") {
        sel["residentKey"] = json!("required");
        sel["requireResidentKey"] = json!(true);
    }
    Ok(Some(options))
}

fn clean_name(name: &str) -> String {
    let name: String = name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(NAME_MAX)
        .collect();
    if name.is_empty() {
        "Passkey".to_string()
    } else {
        name
    }
}

/// Finish an enrolment with the browser's answer. At the first sign-in it also passes MFA.
pub async fn finish_registration(
    deps: &Deps,
    gs: &GuestSession,
    name: &str,
    credential: &Value,
    ip: &str,
) -> Result<CodeOutcome, ServiceError> {
    if !may_enrol(deps, gs).await? {
        return Ok(CodeOutcome::NotAllowed);
    }
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    if !allow(&mut tx, now, &limits(Some(&gs.guest.id), ip)).await? {
        tx.commit().await?;
        return Ok(CodeOutcome::RateLimited);
    }
    let state = passkey_store::take_ceremony(
        &mut tx,
        &ceremony_id(REGISTER, &gs.session.id_hash),
        REGISTER,
        now,
    )
    .await?;
    let parsed = serde_json::from_value::<RegisterPublicKeyCredential>(credential.clone());
    let (Some(state), Ok(answer)) = (state, parsed) else {
        tx.commit().await?;
        return Ok(CodeOutcome::Wrong);
    };
    let state: PasskeyRegistration = from_json(&state)?;
    let passkey = match relying_party(deps)?.finish_passkey_registration(&answer, &state) {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(error = %e, "passkey enrolment refused");
            audit_guest(
                &mut tx,
                &guest_actor(&gs.guest.id),
                &gs.guest,
                "mfa.failed",
                json!({"method": "passkey", "step": "enrol"}),
                now,
            )
            .await?;
            tx.commit().await?;
            return Ok(CodeOutcome::Wrong);
        }
    };
    let credential_id = credential_key(passkey.cred_id().as_ref());
    if passkey_store::by_credential(&mut tx, &credential_id)
        .await?
        .is_some()
    {
        tx.commit().await?;
        return Ok(CodeOutcome::Wrong);
    }
    let row = PasskeyRow {
        id: uuid::Uuid::new_v4().to_string(),
        guest_id: gs.guest.id.clone(),
        credential_id,
        passkey: to_json(&passkey)?,
        name: clean_name(name),
        created_at: now,
        last_used_at: Some(now),
    };
    passkey_store::insert(&mut tx, &row).await?;
    audit_guest(
        &mut tx,
        &guest_actor(&gs.guest.id),
        &gs.guest,
        "mfa.enrolled",
        json!({"method": "passkey", "passkey": row.id, "session_origin": gs.session.origin}),
        now,
    )
    .await?;
    if gs.needs_mfa() {
        mfa_passed(&mut tx, deps, gs, "passkey", now).await?;
    }
    tx.commit().await?;
    Ok(CodeOutcome::Accepted)
}

/// Options for `navigator.credentials.get` with the guest's passkeys, or None without any.
pub async fn start_authentication(
    deps: &Deps,
    gs: &GuestSession,
) -> Result<Option<Value>, ServiceError> {
    let passkeys = list(deps, &gs.guest.id)
        .await?
        .iter()
        .map(|r| from_json::<Passkey>(&r.passkey))
        .collect::<Result<Vec<_>, _>>()?;
    if passkeys.is_empty() {
        return Ok(None);
    }
    let (options, state): (_, PasskeyAuthentication) = relying_party(deps)?
        .start_passkey_authentication(&passkeys)
        .map_err(|e| ServiceError::Corrupt(format!("passkeys: {e}")))?;
    store_ceremony(
        deps,
        &ceremony_id(AUTHENTICATE, &gs.session.id_hash),
        AUTHENTICATE,
        &to_json(&state)?,
    )
    .await?;
    Ok(Some(
        serde_json::to_value(&options).map_err(|e| ServiceError::Corrupt(e.to_string()))?,
    ))
}

/// Update the stored counter and backup state after a use.
async fn record_use(
    tx: &mut crate::store::Tx,
    row: &PasskeyRow,
    result: &webauthn_rs::prelude::AuthenticationResult,
    now: i64,
) -> Result<(), ServiceError> {
    let mut passkey: Passkey = from_json(&row.passkey)?;
    passkey.update_credential(result);
    passkey_store::record_use(tx, &row.id, &to_json(&passkey)?, now).await?;
    Ok(())
}

/// A passkey as the second factor of this session.
pub async fn finish_authentication(
    deps: &Deps,
    gs: &GuestSession,
    credential: &Value,
    ip: &str,
) -> Result<CodeOutcome, ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    if !allow(&mut tx, now, &limits(Some(&gs.guest.id), ip)).await? {
        tx.commit().await?;
        return Ok(CodeOutcome::RateLimited);
    }
    let state = passkey_store::take_ceremony(
        &mut tx,
        &ceremony_id(AUTHENTICATE, &gs.session.id_hash),
        AUTHENTICATE,
        now,
    )
    .await?;
    let parsed = serde_json::from_value::<PublicKeyCredential>(credential.clone());
    let (Some(state), Ok(answer)) = (state, parsed) else {
        tx.commit().await?;
        return Ok(CodeOutcome::Wrong);
    };
    let state: PasskeyAuthentication = from_json(&state)?;
    let row = passkey_store::by_credential(&mut tx, &credential_key(answer.get_credential_id()))
        .await?
        .filter(|r| r.guest_id == gs.guest.id);
    let verified = row.as_ref().and_then(|_| {
        relying_party(deps)
            .ok()?
            .finish_passkey_authentication(&answer, &state)
            .map_err(|e| tracing::info!(error = %e, "passkey refused"))
            .ok()
    });
    let (Some(row), Some(result)) = (row, verified) else {
        audit_guest(
            &mut tx,
            &guest_actor(&gs.guest.id),
            &gs.guest,
            "mfa.failed",
            json!({"method": "passkey"}),
            now,
        )
        .await?;
        tx.commit().await?;
        return Ok(CodeOutcome::Wrong);
    };
    record_use(&mut tx, &row, &result, now).await?;
    mfa_passed(&mut tx, deps, gs, "passkey", now).await?;
    tx.commit().await?;
    Ok(CodeOutcome::Accepted)
}

/// Options for a sign-in with a discoverable passkey, bound to the sign-in page's
/// pre-session cookie. Asks nothing about the guest, so it tells nothing either.
pub async fn start_signin(deps: &Deps, binding: &str) -> Result<Value, ServiceError> {
    let (options, state): (_, DiscoverableAuthentication) = relying_party(deps)?
        .start_discoverable_authentication()
        .map_err(|e| ServiceError::Corrupt(format!("passkeys: {e}")))?;
    store_ceremony(
        deps,
        &ceremony_id(SIGNIN, binding),
        SIGNIN,
        &to_json(&state)?,
    )
    .await?;
    let mut options =
        serde_json::to_value(&options).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    // A button starts this ceremony, so the browser shows its dialog (not autofill).
    if let Some(o) = options.as_object_mut() {
        o.remove("mediation");
    }
    Ok(options)
}

pub enum SigninOutcome {
    /// A new session; the cookie secret.
    SignedIn(String),
    Refused,
    RateLimited,
}

/// Finish a passkey sign-in: a new session that has passed MFA.
pub async fn finish_signin(
    deps: &Deps,
    binding: &str,
    credential: &Value,
    ip: &str,
) -> Result<SigninOutcome, ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    if !allow(&mut tx, now, &limits(None, ip)).await? {
        tx.commit().await?;
        return Ok(SigninOutcome::RateLimited);
    }
    let state =
        passkey_store::take_ceremony(&mut tx, &ceremony_id(SIGNIN, binding), SIGNIN, now).await?;
    let parsed = serde_json::from_value::<PublicKeyCredential>(credential.clone());
    let (Some(state), Ok(answer)) = (state, parsed) else {
        tx.commit().await?;
        return Ok(SigninOutcome::Refused);
    };
    let state: DiscoverableAuthentication = from_json(&state)?;
    let rp = relying_party(deps)?;
    let Ok((handle, raw_id)) = rp.identify_discoverable_authentication(&answer) else {
        tx.commit().await?;
        return Ok(SigninOutcome::Refused);
    };
    let Some(row) = passkey_store::by_credential(&mut tx, &credential_key(raw_id))
        .await?
        .filter(|r| user_handle(&r.guest_id) == handle)
    else {
        tx.commit().await?;
        return Ok(SigninOutcome::Refused);
    };
    let Some(guest) = guest_store::get_locked(&mut tx, &row.guest_id).await? else {
        tx.commit().await?;
        return Ok(SigninOutcome::Refused);
    };
    let passkey: Passkey = from_json(&row.passkey)?;
    let result = match rp.finish_discoverable_authentication(
        &answer,
        state,
        &[DiscoverableKey::from(&passkey)],
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = %e, "passkey sign-in refused");
            audit_guest(
                &mut tx,
                &guest_actor(&guest.id),
                &guest,
                "mfa.failed",
                json!({"method": "passkey", "step": "signin"}),
                now,
            )
            .await?;
            tx.commit().await?;
            return Ok(SigninOutcome::Refused);
        }
    };
    if !matches!(
        super::stored::guest_state(&guest)?,
        GuestState::Invited | GuestState::Active
    ) {
        tx.commit().await?;
        return Ok(SigninOutcome::Refused);
    }
    record_use(&mut tx, &row, &result, now).await?;
    let secret = start_session(&mut tx, &guest.id, now, true, SessionOrigin::Passkey).await?;
    redeem_if_consented(&mut tx, deps, &guest.id, now).await?;
    audit_guest(
        &mut tx,
        &guest_actor(&guest.id),
        &guest,
        "guest.signed_in",
        json!({"method": "passkey", "passkey": row.id}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(SigninOutcome::SignedIn(secret))
}

/// Remove one of the guest's passkeys. Refused (Conflict) for the last second factor of a
/// guest who must use MFA: the next e-mailed link could otherwise enrol a new one.
pub async fn remove(deps: &Deps, gs: &GuestSession, id: &str) -> Result<bool, ServiceError> {
    if gs.needs_mfa() {
        return Ok(false);
    }
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let passkeys = passkey_store::for_guest(&mut tx, &gs.guest.id).await?;
    if !passkeys.iter().any(|p| p.id == id) {
        tx.commit().await?;
        return Ok(false);
    }
    let totp = mfa_store::get(&mut tx, &gs.guest.id)
        .await?
        .is_some_and(|r| r.enrolled_at.is_some());
    if gs.guest.mfa_required && passkeys.len() == 1 && !totp {
        return Err(ServiceError::Conflict(
            "the last second factor cannot be removed".into(),
        ));
    }
    passkey_store::delete(&mut tx, &gs.guest.id, id).await?;
    audit_guest(
        &mut tx,
        &guest_actor(&gs.guest.id),
        &gs.guest,
        "passkey.removed",
        json!({"passkey": id}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// For an MFA reset: remove every passkey of the guest (the caller audits).
pub(super) async fn remove_all(
    tx: &mut crate::store::Tx,
    guest_id: &str,
) -> Result<u64, ServiceError> {
    Ok(passkey_store::delete_all(tx, guest_id).await?)
}
