//! The OpenID Connect provider for guests (OIDC Core 1.0, RFC 6749, RFC 7636): authorization
//! codes for a signed-in guest, their exchange for ID, access and refresh tokens, refresh with
//! rotation (a reused refresh token revokes its whole family), and userinfo. Whether the guest
//! may use the app is asked again at every step, so an ended grant or a suspension refuses the
//! next code, refresh and userinfo call at once.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::guest_auth::{self, guest_actor, GuestSession, SessionOrigin};
use super::invitations::audit_guest;
use super::{Deps, ServiceError};
use crate::auth::jwt::{self, OIDC_TOKEN_LIFETIME_SECS};
use crate::auth::secrets::{constant_time_eq, hash_token, random_token};
use crate::mapping::{App, OidcClient};
use crate::store::guests::{self as guest_store, GuestRow};
use crate::store::oauth::{self, CodeRow, CodeUse, RefreshRow, RefreshUse};

/// How long an authorization code may wait for its exchange.
pub const CODE_SECS: i64 = 60;
/// How long a refresh token stays usable if not rotated.
pub const REFRESH_HOURS: i64 = 12;

/// The issuer identifier: the public URL, without a trailing slash.
pub fn issuer(deps: &Deps) -> String {
    deps.portal.public_url.trim_end_matches('/').to_string()
}

/// What a token-endpoint request can fail with (RFC 6749 §5.2).
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    InvalidGrant(&'static str),
    InvalidRequest(&'static str),
}

impl From<ServiceError> for TokenFailure {
    fn from(e: ServiceError) -> Self {
        TokenFailure::Internal(e)
    }
}

impl From<crate::store::DbError> for TokenFailure {
    fn from(e: crate::store::DbError) -> Self {
        TokenFailure::Internal(e.into())
    }
}

#[derive(Debug)]
pub enum TokenFailure {
    Refused(TokenError),
    Internal(ServiceError),
}

fn refused(e: TokenError) -> TokenFailure {
    TokenFailure::Refused(e)
}

/// What an authorization request asked for, checked by the handler.
pub struct Authorization<'a> {
    pub client: &'a OidcClient,
    pub app: &'a App,
    pub redirect_uri: &'a str,
    pub scopes: Vec<String>,
    pub nonce: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
}

/// How the guest authenticated in this session (RFC 8176 values where one fits).
pub fn amr(gs: &GuestSession) -> Vec<&'static str> {
    // A passkey sign-in: a hardware-bound key with user verification, multi-factor by itself.
    if gs.origin() == Some(SessionOrigin::Passkey) {
        return vec!["hwk", "mfa"];
    }
    let mut amr = vec!["email"];
    // A session that needs no second factor is marked passed without one.
    if gs.guest.mfa_required && gs.session.mfa_passed {
        match gs.session.mfa_method.as_deref() {
            Some("passkey") => amr.extend(["hwk", "mfa"]),
            _ => amr.extend(["otp", "mfa"]),
        }
    }
    amr
}

/// The session's start, in Unix seconds: when the guest last authenticated.
pub fn auth_time(gs: &GuestSession) -> i64 {
    gs.session.created_at / 1000
}

/// A code for the signed-in guest, or None when they may not use the app (access_denied).
pub async fn issue_code(
    deps: &Deps,
    gs: &GuestSession,
    req: &Authorization<'_>,
) -> Result<Option<String>, ServiceError> {
    if guest_auth::usable_roles(deps, &gs.guest, &req.app.id)
        .await?
        .is_empty()
    {
        return Ok(None);
    }
    let now = deps.now_ms();
    let code = random_token(32);
    let row = CodeRow {
        code_hash: hash_token(&code),
        client_id: req.client.client_id.clone(),
        guest_id: gs.guest.id.clone(),
        redirect_uri: req.redirect_uri.to_string(),
        scope: req.scopes.join(" "),
        nonce: req.nonce.map(str::to_string),
        code_challenge: req.code_challenge.map(str::to_string),
        auth_time: auth_time(gs),
        amr: amr(gs).join(" "),
        created_at: now,
        expires_at: now + CODE_SECS * 1000,
        family_id: random_token(16),
    };
    let mut tx = deps.db.begin_write().await?;
    oauth::insert_code(&mut tx, &row).await?;
    audit_guest(
        &mut tx,
        &guest_actor(&gs.guest.id),
        &gs.guest,
        "oidc.authorized",
        json!({"app": req.app.id, "client_id": req.client.client_id, "scope": row.scope}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(code))
}

/// The tokens a successful exchange or refresh returns.
pub struct Tokens {
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    pub scope: String,
}

/// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge; a verifier is 43 to 128 of the
/// unreserved characters.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

pub async fn exchange_code(
    deps: &Deps,
    app: &App,
    client: &OidcClient,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<Tokens, TokenFailure> {
    let now = deps.now_ms();
    let key = super::signing::active_key(deps).await?;
    let mut tx = deps.db.begin_write().await?;
    let row = match oauth::use_code(&mut tx, &hash_token(code), now).await? {
        CodeUse::Invalid => {
            return Err(refused(TokenError::InvalidGrant("unknown or expired code")))
        }
        CodeUse::Replayed(row) => {
            // RFC 6749 §4.1.2: a code used twice revokes what the first use issued.
            oauth::revoke_family(&mut tx, &row.family_id, now).await?;
            tx.commit().await?;
            return Err(refused(TokenError::InvalidGrant("code already used")));
        }
        CodeUse::Fresh(row) => row,
    };
    // The code is spent whatever follows: commit that before refusing.
    let refusal = if row.client_id != client.client_id {
        Some(TokenError::InvalidGrant("code issued to another client"))
    } else if redirect_uri != Some(row.redirect_uri.as_str()) {
        Some(TokenError::InvalidGrant(
            "redirect_uri differs from the authorization request",
        ))
    } else {
        match (&row.code_challenge, verifier) {
            (Some(challenge), Some(v)) if pkce_matches(v, challenge) => None,
            (Some(_), _) => Some(TokenError::InvalidGrant("code_verifier does not match")),
            (None, Some(_)) => Some(TokenError::InvalidGrant(
                "code_verifier sent for a code requested without PKCE",
            )),
            (None, None) if client.public => {
                Some(TokenError::InvalidGrant("a public client must use PKCE"))
            }
            (None, None) => None,
        }
    };
    if let Some(refusal) = refusal {
        tx.commit().await?;
        return Err(refused(refusal));
    }
    let Some(guest) = guest_store::get(&mut tx, &row.guest_id).await? else {
        tx.commit().await?;
        return Err(refused(TokenError::InvalidGrant("the guest is gone")));
    };
    let roles = guest_auth::usable_roles(deps, &guest, &app.id).await?;
    if roles.is_empty() {
        tx.commit().await?;
        return Err(refused(TokenError::InvalidGrant(
            "the guest no longer has access to this app",
        )));
    }
    let grant = Grant {
        guest: &guest,
        client,
        scope: &row.scope,
        auth_time: row.auth_time,
        amr: &row.amr,
        nonce: row.nonce.as_deref(),
        roles,
    };
    let tokens = grant.tokens(deps, &key, now)?;
    if let Some(refresh) = &tokens.refresh_token {
        store_refresh(&mut tx, &grant, refresh, &row.family_id, now).await?;
    }
    // Tokens for an app are use of it, for the inactivity policy.
    crate::store::due_work::touch_seen(&mut tx, &guest.id, now).await?;
    audit_guest(
        &mut tx,
        &guest_actor(&guest.id),
        &guest,
        "oidc.tokens_issued",
        json!({"app": app.id, "client_id": client.client_id, "grant": "authorization_code"}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(tokens)
}

pub async fn refresh(
    deps: &Deps,
    app: &App,
    client: &OidcClient,
    refresh_token: &str,
) -> Result<Tokens, TokenFailure> {
    let now = deps.now_ms();
    let key = super::signing::active_key(deps).await?;
    let mut tx = deps.db.begin_write().await?;
    let row = match oauth::use_refresh(&mut tx, &hash_token(refresh_token), now).await? {
        RefreshUse::Invalid => {
            return Err(refused(TokenError::InvalidGrant(
                "unknown or expired refresh token",
            )))
        }
        RefreshUse::Reused(row) => {
            // Someone holds a copy of a rotated token: end the whole family.
            let revoked = oauth::revoke_family(&mut tx, &row.family_id, now).await?;
            if let Some(guest) = guest_store::get(&mut tx, &row.guest_id).await? {
                audit_guest(
                    &mut tx,
                    &guest_actor(&guest.id),
                    &guest,
                    "oidc.refresh_reused",
                    json!({"client_id": row.client_id, "revoked": revoked}),
                    now,
                )
                .await?;
            }
            tx.commit().await?;
            return Err(refused(TokenError::InvalidGrant(
                "refresh token already used",
            )));
        }
        RefreshUse::Fresh(row) => row,
    };
    if row.client_id != client.client_id {
        tx.commit().await?;
        return Err(refused(TokenError::InvalidGrant(
            "refresh token issued to another client",
        )));
    }
    let guest = guest_store::get(&mut tx, &row.guest_id).await?;
    let roles = match &guest {
        Some(g) => guest_auth::usable_roles(deps, g, &app.id).await?,
        None => Vec::new(),
    };
    let Some(guest) = guest.filter(|_| !roles.is_empty()) else {
        oauth::revoke_family(&mut tx, &row.family_id, now).await?;
        tx.commit().await?;
        return Err(refused(TokenError::InvalidGrant(
            "the guest no longer has access to this app",
        )));
    };
    let grant = Grant {
        guest: &guest,
        client,
        scope: &row.scope,
        auth_time: row.auth_time,
        amr: &row.amr,
        nonce: None,
        roles,
    };
    let tokens = grant.tokens(deps, &key, now)?;
    if let Some(next) = &tokens.refresh_token {
        store_refresh(&mut tx, &grant, next, &row.family_id, now).await?;
    }
    crate::store::due_work::touch_seen(&mut tx, &guest.id, now).await?;
    tx.commit().await?;
    Ok(tokens)
}

async fn store_refresh(
    tx: &mut crate::store::Tx,
    grant: &Grant<'_>,
    token: &str,
    family_id: &str,
    now: i64,
) -> Result<(), ServiceError> {
    oauth::insert_refresh(
        tx,
        &RefreshRow {
            token_hash: hash_token(token),
            family_id: family_id.to_string(),
            client_id: grant.client.client_id.clone(),
            guest_id: grant.guest.id.clone(),
            scope: grant.scope.to_string(),
            auth_time: grant.auth_time,
            amr: grant.amr.to_string(),
            created_at: now,
            expires_at: now + REFRESH_HOURS * 3_600_000,
        },
    )
    .await?;
    Ok(())
}

/// What the tokens of one exchange or refresh say.
struct Grant<'a> {
    guest: &'a GuestRow,
    client: &'a OidcClient,
    scope: &'a str,
    auth_time: i64,
    amr: &'a str,
    nonce: Option<&'a str>,
    roles: Vec<String>,
}

impl Grant<'_> {
    fn has_scope(&self, s: &str) -> bool {
        self.scope.split(' ').any(|x| x == s)
    }

    fn tokens(
        &self,
        deps: &Deps,
        key: &crate::auth::keys::SigningKey,
        now_ms: i64,
    ) -> Result<Tokens, ServiceError> {
        let now = now_ms / 1000;
        let iss = issuer(deps);
        let mut id = json!({
            "iss": iss,
            "sub": self.guest.id,
            "aud": self.client.client_id,
            "azp": self.client.client_id,
            "iat": now,
            "exp": now + OIDC_TOKEN_LIFETIME_SECS,
            "auth_time": self.auth_time,
            "amr": self.amr.split(' ').collect::<Vec<_>>(),
        });
        if let Some(nonce) = self.nonce {
            id["nonce"] = json!(nonce);
        }
        for (claim, value) in user_claims(self.guest, &self.roles, |s| self.has_scope(s)) {
            id[claim] = value;
        }
        let access = json!({
            "iss": iss,
            "sub": self.guest.id,
            "aud": self.client.client_id,
            "client_id": self.client.client_id,
            "scope": self.scope,
            "iat": now,
            "exp": now + OIDC_TOKEN_LIFETIME_SECS,
            "jti": random_token(16),
        });
        let sign = |claims: &Value, typ| {
            jwt::sign_claims(key, claims, typ).map_err(|e| ServiceError::Corrupt(e.to_string()))
        };
        Ok(Tokens {
            id_token: sign(&id, None)?,
            // RFC 9068's type, so an ID token is never taken for an access token.
            access_token: sign(&access, Some("at+jwt"))?,
            refresh_token: self
                .client
                .scopes
                .iter()
                .any(|s| s == "offline_access")
                .then(|| random_token(32)),
            expires_in: OIDC_TOKEN_LIFETIME_SECS,
            scope: self.scope.to_string(),
        })
    }
}

/// The claims about the guest that the scopes release.
fn user_claims(
    guest: &GuestRow,
    roles: &[String],
    has_scope: impl Fn(&str) -> bool,
) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    if has_scope("email") {
        if let Some(email) = &guest.email {
            out.push(("email", json!(email)));
            // The guest redeemed an invitation sent to this address.
            out.push(("email_verified", json!(guest.redeemed_at.is_some())));
        }
    }
    if has_scope("profile") {
        out.push((
            "name",
            json!(guest.display_name.as_deref().unwrap_or(&guest.user_name)),
        ));
        out.push(("preferred_username", json!(guest.user_name)));
    }
    if has_scope("roles") {
        out.push(("roles", json!(roles)));
    }
    out
}

#[derive(Deserialize)]
struct AccessClaims {
    sub: String,
    client_id: String,
    scope: String,
}

/// The userinfo answer for an access token, or None when the token is not one of ours, has
/// expired, or the guest may no longer use the app.
pub async fn userinfo(deps: &Deps, access_token: &str) -> Result<Option<Value>, ServiceError> {
    let is_access =
        jsonwebtoken::decode_header(access_token).is_ok_and(|h| h.typ.as_deref() == Some("at+jwt"));
    if !is_access {
        return Ok(None);
    }
    let jwks = super::signing::jwks(deps).await?;
    let Ok(claims) = jwt::verify_own::<AccessClaims>(
        access_token,
        &jwks,
        &issuer(deps),
        deps.now_ms() / 1000,
        true,
    ) else {
        return Ok(None);
    };
    let rules = deps.rules();
    let Some(app) = rules.oidc_app(&claims.client_id) else {
        return Ok(None);
    };
    let mut conn = deps.db.pool().acquire().await?;
    let Some(guest) = guest_store::get(&mut conn, &claims.sub).await? else {
        return Ok(None);
    };
    drop(conn);
    let roles = guest_auth::usable_roles(deps, &guest, &app.id).await?;
    if roles.is_empty() {
        return Ok(None);
    }
    let mut info = json!({"sub": guest.id});
    for (claim, value) in user_claims(&guest, &roles, |s| claims.scope.split(' ').any(|x| x == s)) {
        info[claim] = value;
    }
    Ok(Some(info))
}

#[derive(Deserialize)]
struct HintClaims {
    sub: String,
    aud: Value,
}

/// The (guest id, client id) an `id_token_hint` names, if we signed it; expiry is ignored,
/// as logout comes after the ID token has usually expired.
pub async fn id_token_hint(
    deps: &Deps,
    hint: &str,
) -> Result<Option<(String, String)>, ServiceError> {
    let jwks = super::signing::jwks(deps).await?;
    let Ok(claims) =
        jwt::verify_own::<HintClaims>(hint, &jwks, &issuer(deps), deps.now_ms() / 1000, false)
    else {
        return Ok(None);
    };
    let aud = match &claims.aud {
        Value::String(s) => s.clone(),
        Value::Array(a) => match a.first().and_then(Value::as_str) {
            Some(s) => s.to_string(),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some((claims.sub, aud)))
}

/// A confidential client's secret, compared by its hash in constant time.
pub fn secret_matches(client: &OidcClient, secret: &str) -> bool {
    let Some(expected) = &client.secret_sha256 else {
        return false;
    };
    let got = hex::encode(Sha256::digest(secret.as_bytes()));
    constant_time_eq(got.as_bytes(), expected.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_the_s256_of_the_verifier() {
        // BASE64URL(SHA-256) of this verifier, computed independently (Python's hashlib).
        let verifier = "dBjftJeZ4CVP-mJ92K1yCsnZ7kvsmlKcDQ-W-HD_NiY";
        assert!(pkce_matches(
            verifier,
            "YR_truiJWV4IT3YtPqWFW-Jdv1g4yHBfvpcjubyYm4Q"
        ));
        assert!(!pkce_matches(
            verifier,
            "YR_truiJWV4IT3YtPqWFW-Jdv1g4yHBfvpcjubyYm4R"
        ));
        // Too short, or outside the unreserved characters: never matches.
        assert!(!pkce_matches("short", "anything"));
        let spaced = "dBjftJeZ4CVP mJ92K1yCsnZ7kvsmlKcDQ-W-HD_NiY";
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(spaced.as_bytes()));
        assert!(!pkce_matches(spaced, &challenge));
    }
}

#[cfg(test)]
mod amr_tests {
    use super::*;
    use crate::store::guests::GuestRow;
    use crate::store::sessions::SessionRow;

    fn session(origin: &str, mfa_required: bool, method: Option<&str>) -> GuestSession {
        GuestSession {
            session: SessionRow {
                id_hash: "h".into(),
                guest_id: "g".into(),
                created_at: 0,
                expires_at: 1,
                mfa_passed: method.is_some() || !mfa_required,
                csrf_secret: "c".into(),
                origin: origin.into(),
                mfa_method: method.map(str::to_string),
            },
            guest: GuestRow {
                id: "g".into(),
                partner_id: "p".into(),
                user_id: "u".into(),
                user_name: "ann".into(),
                email: None,
                display_name: None,
                state: "active".into(),
                approved: true,
                mfa_required,
                sponsor: None,
                template: None,
                language: None,
                access_until: None,
                invited_at: None,
                redeemed_at: None,
                created_at: 0,
                updated_at: 0,
                rules_fingerprint: None,
            },
        }
    }

    #[test]
    fn amr_names_the_factor_that_passed() {
        assert_eq!(amr(&session("invitation", false, None)), ["email"]);
        assert_eq!(amr(&session("invitation", true, None)), ["email"]);
        assert_eq!(
            amr(&session("signin_link", true, Some("totp"))),
            ["email", "otp", "mfa"]
        );
        assert_eq!(
            amr(&session("signin_link", true, Some("passkey"))),
            ["email", "hwk", "mfa"]
        );
        // A passkey sign-in: no e-mail involved, the passkey is both factors.
        assert_eq!(
            amr(&session("passkey", true, Some("passkey"))),
            ["hwk", "mfa"]
        );
        assert_eq!(
            amr(&session("passkey", false, Some("passkey"))),
            ["hwk", "mfa"]
        );
    }
}
