//! Guests signing in and using their apps: sessions, redemption, TOTP enrolment and
//! verification (with an emailed code as fallback), magic sign-in links, and app launch
//! with a signed short-lived token. Attempts are rate-limited per guest and per address.

use chrono::Duration;
use serde_json::json;

use super::invitations::{audit_guest, granted_apps, partner_of};
use super::mailer::{self, MailRequest};
use super::{Actor, Deps, ServiceError};
use crate::auth::jwt::{self, LaunchClaims};
use crate::auth::secrets::{hash_token, random_token};
use crate::auth::totp;
use crate::domain::lifecycle::{transition, Event, GuestState};
use crate::store::guests::{self as guest_store, GuestRow};
use crate::store::sessions::{self as session_store, SessionRow};
use crate::store::{invitations as inv_store, mfa as mfa_store, rate_limits, Tx};

/// How long a guest session lasts.
pub const SESSION_HOURS: i64 = 12;
/// How long a sign-in link and an emailed code stay valid.
pub const LINK_MINUTES: i64 = 15;
/// Rate-limit window.
const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Code attempts per guest and per address in a window.
const CODE_ATTEMPTS_PER_GUEST: i64 = 5;
const CODE_ATTEMPTS_PER_IP: i64 = 30;
/// Link or code mails per address in a window.
const MAILS_PER_EMAIL: i64 = 3;
const MAILS_PER_IP: i64 = 10;

fn guest_actor(guest_id: &str) -> Actor {
    Actor {
        label: format!("guest:{guest_id}"),
        request_id: None,
    }
}

fn state_of(g: &GuestRow) -> Result<GuestState, ServiceError> {
    g.state
        .parse()
        .map_err(|e: crate::domain::lifecycle::UnknownState| ServiceError::Corrupt(e.to_string()))
}

/// Start a session; returns the cookie secret (only its hash is stored).
pub async fn start_session(
    tx: &mut Tx,
    guest_id: &str,
    now: i64,
    mfa_passed: bool,
) -> Result<String, ServiceError> {
    let secret = random_token(32);
    session_store::insert_session(
        tx,
        &SessionRow {
            id_hash: hash_token(&secret),
            guest_id: guest_id.to_string(),
            created_at: now,
            expires_at: now + Duration::hours(SESSION_HOURS).num_milliseconds(),
            mfa_passed,
            csrf_secret: random_token(32),
        },
    )
    .await?;
    crate::store::jobs::touch_seen(tx, guest_id, now).await?;
    Ok(secret)
}

/// The guest has redeemed the invitation: Invited → Active.
pub async fn redeem(
    tx: &mut Tx,
    deps: &Deps,
    actor: &Actor,
    guest: &GuestRow,
    now: i64,
) -> Result<(), ServiceError> {
    let from = state_of(guest)?;
    let Ok(to) = transition(from, Event::Redeem) else {
        return Ok(());
    };
    if to == from {
        return Ok(());
    }
    guest_store::update(
        tx,
        &GuestRow {
            state: to.to_string(),
            redeemed_at: guest.redeemed_at.or(Some(now)),
            updated_at: now,
            ..guest.clone()
        },
    )
    .await?;
    audit_guest(
        tx,
        actor,
        guest,
        "guest.state_changed",
        json!({"from": from.to_string(), "to": to.to_string(), "event": "Redeem"}),
        now,
    )
    .await?;
    super::sync::emit(tx, deps, &guest.id).await
}

/// A signed-in guest.
#[derive(Debug, Clone)]
pub struct GuestSession {
    pub session: SessionRow,
    pub guest: GuestRow,
}

impl GuestSession {
    pub fn state(&self) -> Option<GuestState> {
        self.guest.state.parse().ok()
    }

    /// Whether MFA still has to be passed in this session.
    pub fn needs_mfa(&self) -> bool {
        self.guest.mfa_required && !self.session.mfa_passed
    }
}

pub async fn session(deps: &Deps, secret: &str) -> Result<Option<GuestSession>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let Some(session) =
        session_store::session(&mut conn, &hash_token(secret), deps.now_ms()).await?
    else {
        return Ok(None);
    };
    let Some(guest) = guest_store::get(&mut conn, &session.guest_id).await? else {
        return Ok(None);
    };
    Ok(Some(GuestSession { session, guest }))
}

pub async fn end_session(deps: &Deps, secret: &str) -> Result<(), ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    session_store::delete_session(&mut conn, &hash_token(secret)).await?;
    Ok(())
}

/// Count a hit against each key; false when any is over its limit.
async fn allow(
    conn: &mut sqlx::AnyConnection,
    now: i64,
    limits: &[(String, i64)],
) -> Result<bool, ServiceError> {
    let mut ok = true;
    for (key, limit) in limits {
        if rate_limits::hit(conn, key, now, WINDOW_MS).await? > *limit {
            ok = false;
        }
    }
    Ok(ok)
}

/// What the TOTP enrolment page shows.
pub struct Enrolment {
    pub otpauth_uri: String,
    pub qr_svg: String,
    pub secret_text: String,
}

/// Start (or continue) TOTP enrolment; the secret stays the same until enrolled, so
/// reloading the page does not invalidate a scanned code.
pub async fn enrolment(deps: &Deps, gs: &GuestSession) -> Result<Enrolment, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let aad = gs.guest.id.as_bytes();
    let secret = match mfa_store::get(&mut conn, &gs.guest.id).await? {
        Some(row) if row.enrolled_at.is_none() => deps
            .portal
            .secrets
            .open(&row.totp_secret_sealed, aad)
            .map_err(|e| ServiceError::Corrupt(e.to_string()))?,
        Some(_) => return Err(ServiceError::Conflict("already enrolled".into())),
        None => {
            let secret = totp::new_secret();
            let sealed = deps
                .portal
                .secrets
                .seal(&secret, aad)
                .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
            mfa_store::begin(&mut conn, &gs.guest.id, &sealed).await?;
            secret
        }
    };
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeOutcome {
    Accepted,
    Wrong,
    RateLimited,
}

/// MFA passed in this session: remember it, and a consented invited guest has redeemed.
async fn mfa_passed(
    tx: &mut Tx,
    deps: &Deps,
    gs: &GuestSession,
    now: i64,
) -> Result<(), ServiceError> {
    session_store::set_mfa_passed(tx, &gs.session.id_hash).await?;
    let guest = guest_store::get(tx, &gs.guest.id)
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
            json!({"method": "totp"}),
            now,
        )
        .await?;
    }
    mfa_passed(&mut tx, deps, gs, now).await?;
    tx.commit().await?;
    Ok(CodeOutcome::Accepted)
}

fn code_hash(guest_id: &str, code: &str) -> String {
    hash_token(&format!("{guest_id}:{code}"))
}

/// Email a one-time code (the fallback when the guest has no authenticator at hand).
pub async fn send_email_code(
    deps: &Deps,
    gs: &GuestSession,
    ip: &str,
) -> Result<CodeOutcome, ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let limits = vec![
        (format!("mail:guest:{}", gs.guest.id), MAILS_PER_EMAIL),
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

pub async fn verify_email_code(
    deps: &Deps,
    gs: &GuestSession,
    code: &str,
    ip: &str,
) -> Result<CodeOutcome, ServiceError> {
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
    mfa_passed(&mut tx, deps, gs, now).await?;
    tx.commit().await?;
    Ok(CodeOutcome::Accepted)
}

/// Mail a sign-in link to every invited or active guest with this address. The caller
/// answers the same whether or not the address is known.
pub async fn request_signin(
    deps: &Deps,
    email: &str,
    ip: &str,
) -> Result<CodeOutcome, ServiceError> {
    let now = deps.now_ms();
    let email = email.trim().to_lowercase();
    let mut tx = deps.db.begin_write().await?;
    let limits = vec![
        (
            format!("link:email:{}", hash_token(&email)),
            MAILS_PER_EMAIL,
        ),
        (format!("link:ip:{ip}"), MAILS_PER_IP),
    ];
    if !allow(&mut tx, now, &limits).await? {
        tx.commit().await?;
        return Ok(CodeOutcome::RateLimited);
    }
    for guest in guest_store::by_email(&mut tx, &email).await? {
        if !matches!(state_of(&guest)?, GuestState::Invited | GuestState::Active) {
            continue;
        }
        let token = random_token(32);
        session_store::insert_signin_link(
            &mut tx,
            &hash_token(&token),
            &guest.id,
            now,
            now + Duration::minutes(LINK_MINUTES).num_milliseconds(),
        )
        .await?;
        mailer::queue(
            &mut tx,
            deps,
            MailRequest {
                to: &email,
                template: "signin_link",
                partner: None,
                language: guest.language.as_deref(),
                context: json!({"link": format!("{}/signin/{token}", deps.portal.public_url), "expires_minutes": LINK_MINUTES}),
                idempotency_key: format!("signin:{}", hash_token(&token)),
                guest_id: Some(&guest.id),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(CodeOutcome::Accepted)
}

/// Use a sign-in link: a new session (the old cookie is replaced by the caller), MFA still
/// to pass where required.
pub async fn use_signin(deps: &Deps, token: &str) -> Result<Option<String>, ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let Some(guest_id) = session_store::use_signin_link(&mut tx, &hash_token(token), now).await?
    else {
        tx.commit().await?;
        return Ok(None);
    };
    let Some(guest) = guest_store::get(&mut tx, &guest_id).await? else {
        return Ok(None);
    };
    if !matches!(state_of(&guest)?, GuestState::Invited | GuestState::Active) {
        tx.commit().await?;
        return Ok(None);
    }
    let secret = start_session(&mut tx, &guest.id, now, !guest.mfa_required).await?;
    audit_guest(
        &mut tx,
        &guest_actor(&guest.id),
        &guest,
        "guest.signed_in",
        json!({"method": "link"}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(secret))
}

/// The apps the access panel lists.
pub async fn apps(deps: &Deps, gs: &GuestSession) -> Result<Vec<serde_json::Value>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    granted_apps(&mut conn, deps, &gs.guest.id).await
}

pub async fn partner_name(deps: &Deps, guest: &GuestRow) -> Result<String, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(partner_of(&mut conn, guest).await?.name)
}

/// A launch: the app's URL with a signed token for this guest, or None when the guest has
/// no current grant for that app.
pub async fn launch(
    deps: &Deps,
    gs: &GuestSession,
    app_id: &str,
) -> Result<Option<String>, ServiceError> {
    if state_of(&gs.guest)? != GuestState::Active || gs.needs_mfa() {
        return Ok(None);
    }
    let now = deps.now_ms();
    let mut conn = deps.db.pool().acquire().await?;
    let roles: Vec<String> = guest_store::grants(&mut conn, &gs.guest.id)
        .await?
        .into_iter()
        .filter(|g| g.app_id == app_id && g.valid_until.is_none_or(|u| u > now))
        .map(|g| g.role)
        .collect();
    let rules = deps.rules();
    let Some(app) = rules.app(app_id) else {
        return Ok(None);
    };
    if roles.is_empty() {
        return Ok(None);
    }
    let key = super::signing::active_key(deps).await?;
    let mut claims = LaunchClaims::new(&deps.portal.public_url, app_id, &gs.guest.id, now / 1000);
    claims.email = gs.guest.email.clone();
    claims.name = gs
        .guest
        .display_name
        .clone()
        .or_else(|| Some(gs.guest.user_name.clone()));
    let mut roles = roles;
    roles.sort();
    roles.dedup();
    claims.roles = roles;
    let token =
        jwt::sign_launch(&key, &claims).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    let mut url =
        url::Url::parse(&app.launch_url).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    url.query_pairs_mut().append_pair("token", &token);
    let mut tx = deps.db.begin_write().await?;
    audit_guest(
        &mut tx,
        &guest_actor(&gs.guest.id),
        &gs.guest,
        "app.launched",
        json!({"app": app_id, "jti": claims.jti}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(url.to_string()))
}
