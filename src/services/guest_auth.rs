//! Guests signing in and using their apps: sessions (and how each began), redemption,
//! sign-in links, and app launch with a signed short-lived token. The second factor is in
//! `guest_mfa`. Attempts are rate-limited per guest and per address.

use chrono::Duration;
use serde_json::json;

use super::invitations::{audit_guest, granted_apps, partner_of};
use super::mailer::{self, MailRequest};
use super::{Actor, Deps, ServiceError};
use crate::auth::jwt::{self, LaunchClaims};
use crate::auth::secrets::{hash_token, random_token};
use crate::domain::lifecycle::{transition, Event, GuestState};
use crate::store::guests::{self as guest_store, GuestRow};
use crate::store::sessions::{self as session_store, SessionRow};
use crate::store::{rate_limits, Tx};

/// How long a guest session lasts.
pub const SESSION_HOURS: i64 = 12;
/// How long a sign-in link and an emailed code stay valid.
pub const LINK_MINUTES: i64 = 15;
/// Rate-limit window.
const WINDOW_MS: i64 = 15 * 60 * 1000;
/// Sign-in link mails per address in a window.
const MAILS_PER_EMAIL: i64 = 3;
const MAILS_PER_IP: i64 = 10;

pub(super) fn guest_actor(guest_id: &str) -> Actor {
    Actor {
        label: format!("guest:{guest_id}"),
        request_id: None,
    }
}

/// How a session began. Recorded with the session because it decides which second factors
/// count: a factor must prove something other than what began the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionOrigin {
    /// Accepting the e-mailed invitation.
    Invitation,
    /// An e-mailed sign-in link.
    SigninLink,
    /// A passkey with user verification: possession and a PIN or biometric, so also MFA.
    Passkey,
}

impl SessionOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionOrigin::Invitation => "invitation",
            SessionOrigin::SigninLink => "signin_link",
            SessionOrigin::Passkey => "passkey",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "invitation" => Some(SessionOrigin::Invitation),
            "signin_link" => Some(SessionOrigin::SigninLink),
            "passkey" => Some(SessionOrigin::Passkey),
            _ => None,
        }
    }

    /// Whether beginning the session proved control of the guest's mailbox.
    pub fn by_email(self) -> bool {
        match self {
            SessionOrigin::Invitation | SessionOrigin::SigninLink => true,
            SessionOrigin::Passkey => false,
        }
    }
}

/// Start a session; returns the cookie secret (only its hash is stored).
pub async fn start_session(
    tx: &mut Tx,
    guest_id: &str,
    now: i64,
    mfa_passed: bool,
    origin: SessionOrigin,
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
            origin: origin.as_str().to_string(),
            // A passkey sign-in is itself the second factor (user verification required).
            mfa_method: (origin == SessionOrigin::Passkey).then(|| "passkey".to_string()),
        },
    )
    .await?;
    crate::store::due_work::touch_seen(tx, guest_id, now).await?;
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
    let from = super::stored::guest_state(guest)?;
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

    pub fn origin(&self) -> Option<SessionOrigin> {
        SessionOrigin::parse(&self.session.origin)
    }

    /// Whether the session began from an e-mail; an origin this version does not know
    /// counts as e-mail, so it never unlocks the e-mailed code.
    pub fn began_by_email(&self) -> bool {
        self.origin().is_none_or(SessionOrigin::by_email)
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
pub(super) async fn allow(
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeOutcome {
    Accepted,
    Wrong,
    RateLimited,
    /// This kind of code is not a second factor for this session (see `guest_mfa`).
    NotAllowed,
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
        if !matches!(
            super::stored::guest_state(&guest)?,
            GuestState::Invited | GuestState::Active
        ) {
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

/// Whether a sign-in link can still be used (the page a GET shows); it stays unused.
pub async fn signin_link_usable(deps: &Deps, token: &str) -> Result<bool, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(
        session_store::signin_link(&mut conn, &hash_token(token), deps.now_ms())
            .await?
            .is_some(),
    )
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
    let Some(guest) = guest_store::get_locked(&mut tx, &guest_id).await? else {
        return Ok(None);
    };
    if !matches!(
        super::stored::guest_state(&guest)?,
        GuestState::Invited | GuestState::Active
    ) {
        tx.commit().await?;
        return Ok(None);
    }
    let secret = start_session(
        &mut tx,
        &guest.id,
        now,
        !guest.mfa_required,
        SessionOrigin::SigninLink,
    )
    .await?;
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

/// How often an app's use counts as new activity: at most one write per guest per interval,
/// however many requests a proxy checks.
const ACTIVITY_EVERY_MS: i64 = 5 * 60 * 1000;

/// Record that the guest used an app (an OIDC token, a forward-auth check), for the
/// inactivity policy.
pub async fn record_activity(deps: &Deps, guest_id: &str) -> Result<(), ServiceError> {
    // A proxy asks on every request: read first, so only a stale mark takes the writer turn.
    let now = deps.now_ms();
    let seen = {
        let mut conn = deps.db.pool().acquire().await?;
        crate::store::due_work::last_seen(&mut conn, guest_id).await?
    };
    if seen.is_some_and(|s| s >= now - ACTIVITY_EVERY_MS) {
        return Ok(());
    }
    let mut tx = deps.db.begin_write().await?;
    crate::store::due_work::touch_seen_at_most(&mut tx, guest_id, now, ACTIVITY_EVERY_MS).await?;
    tx.commit().await?;
    Ok(())
}

/// The roles of `app_id` this guest may use now, sorted and without repeats: none unless the
/// guest is active, the app is declared, and a grant for it has not ended. MFA is the caller's
/// check (a launch refuses, forward-auth sends the guest to finish signing in).
pub async fn usable_roles(
    deps: &Deps,
    guest: &GuestRow,
    app_id: &str,
) -> Result<Vec<String>, ServiceError> {
    if super::stored::guest_state(guest)? != GuestState::Active
        || deps.rules().app(app_id).is_none()
    {
        return Ok(Vec::new());
    }
    let now = deps.now_ms();
    let mut conn = deps.db.pool().acquire().await?;
    let mut roles: Vec<String> = guest_store::grants(&mut conn, &guest.id)
        .await?
        .into_iter()
        .filter(|g| g.app_id == app_id && g.valid_until.is_none_or(|u| u > now))
        .map(|g| g.role)
        .collect();
    roles.sort();
    roles.dedup();
    Ok(roles)
}

/// A launch: the app's URL with a signed token for this guest, or None when the guest has
/// no current grant for that app.
pub async fn launch(
    deps: &Deps,
    gs: &GuestSession,
    app_id: &str,
) -> Result<Option<String>, ServiceError> {
    if gs.needs_mfa() {
        return Ok(None);
    }
    let now = deps.now_ms();
    let roles = usable_roles(deps, &gs.guest, app_id).await?;
    let rules = deps.rules();
    let Some(app) = rules.app(app_id) else {
        return Ok(None);
    };
    if roles.is_empty() {
        return Ok(None);
    }
    // An OIDC app starts its own login with us (OIDC Core §4, third-party initiated login).
    if let Some(initiate) = app
        .oidc
        .as_ref()
        .and_then(|c| c.initiate_login_uri.as_deref())
    {
        let mut url =
            url::Url::parse(initiate).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("iss", deps.portal.public_url.trim_end_matches('/'));
        let mut tx = deps.db.begin_write().await?;
        audit_guest(
            &mut tx,
            &guest_actor(&gs.guest.id),
            &gs.guest,
            "app.launched",
            json!({"app": app_id, "oidc": true}),
            now,
        )
        .await?;
        tx.commit().await?;
        return Ok(Some(url.to_string()));
    }
    let key = super::signing::active_key(deps).await?;
    let mut claims = LaunchClaims::new(&deps.portal.public_url, app_id, &gs.guest.id, now / 1000);
    claims.email = gs.guest.email.clone();
    claims.name = gs
        .guest
        .display_name
        .clone()
        .or_else(|| Some(gs.guest.user_name.clone()));
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
