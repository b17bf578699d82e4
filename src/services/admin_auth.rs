//! Admin principals beyond the bearer token: roles given to tokens and logins, console
//! logins with a one-time setup link and a local password (argon2id), and console sessions.
//! Sign-in attempts are rate-limited per name and per client address, and a failure takes
//! the same work (one password verification) whether or not the name exists.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};
use serde_json::json;

use super::{Actor, Deps, ServiceError};
use crate::auth::secrets::{hash_token, random_token};
use crate::domain::{AdminPrincipal, AdminRole, PartnerSlug};
use crate::scim_core::error::ScimError;
use crate::store::admin_logins::{self, NewLogin};
use crate::store::admin_sessions;
use crate::store::audit::{self, AuditEntry};
use crate::store::{self, is_unique_violation, rate_limits};

/// How long a setup link works.
pub const SETUP_LINK_HOURS: i64 = 24;
/// A session ends after this long without a request, and in any case after
/// [`SESSION_ABSOLUTE_MS`].
pub const SESSION_IDLE_MS: i64 = 30 * 60 * 1000;
pub const SESSION_ABSOLUTE_MS: i64 = 12 * 60 * 60 * 1000;
/// How stale `last_seen_at` may get before a request refreshes it.
const TOUCH_GRANULARITY_MS: i64 = 60_000;
/// Shortest and longest password.
pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_NAME_CHARS: usize = 100;
/// Sign-in attempts allowed per name and per client address in a window.
const ATTEMPTS_PER_NAME: i64 = 5;
const ATTEMPTS_PER_IP: i64 = 20;
const WINDOW_MS: i64 = 15 * 60 * 1000;

fn invalid(message: impl Into<String>) -> ServiceError {
    ScimError::invalid_value(message.into()).into()
}

/// A role as it is given (CLI options): the partner's slug for a partner-admin, the sponsor
/// e-mail for a sponsor.
#[derive(Debug, Clone)]
pub struct RoleGrant {
    pub role: AdminRole,
    pub partner: Option<PartnerSlug>,
    pub sponsor: Option<String>,
}

impl RoleGrant {
    pub fn admin() -> Self {
        RoleGrant {
            role: AdminRole::Admin,
            partner: None,
            sponsor: None,
        }
    }
}

/// A grant checked against the database: the role with the partner id and the sponsor
/// e-mail (lower-cased) it is bound to.
#[derive(Debug, Clone)]
pub struct ResolvedGrant {
    pub role: AdminRole,
    pub partner_id: Option<String>,
    pub sponsor_email: Option<String>,
}

/// Check that the options fit the role and that the partner exists.
pub async fn resolve_grant(deps: &Deps, grant: &RoleGrant) -> Result<ResolvedGrant, ServiceError> {
    let role = grant.role;
    match (role, &grant.partner, &grant.sponsor) {
        (AdminRole::PartnerAdmin, None, _) => {
            return Err(invalid("a partner-admin needs --partner SLUG"))
        }
        (AdminRole::Sponsor, _, None) => return Err(invalid("a sponsor needs --sponsor EMAIL")),
        (AdminRole::PartnerAdmin, _, Some(_))
        | (AdminRole::Admin | AdminRole::Auditor, _, Some(_)) => {
            return Err(invalid(format!(
                "--sponsor is only for the sponsor role, not {role}"
            )))
        }
        (AdminRole::Sponsor | AdminRole::Admin | AdminRole::Auditor, Some(_), _) => {
            return Err(invalid(format!(
                "--partner is only for the partner-admin role, not {role}"
            )))
        }
        _ => {}
    }
    let partner_id = match &grant.partner {
        Some(slug) => {
            let mut conn = deps.db.pool().acquire().await?;
            Some(
                store::partners::find_by_slug(&mut conn, slug)
                    .await?
                    .ok_or_else(|| invalid(format!("no partner {slug}")))?
                    .id,
            )
        }
        None => None,
    };
    let sponsor_email = match &grant.sponsor {
        Some(s) => {
            let s = s.trim().to_lowercase();
            let plausible = s.len() <= 254
                && s.split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
                && !s.chars().any(|c| c.is_whitespace() || c.is_control());
            if !plausible {
                return Err(invalid("--sponsor must be an e-mail address"));
            }
            Some(s)
        }
        None => None,
    };
    Ok(ResolvedGrant {
        role,
        partner_id,
        sponsor_email,
    })
}

/// A new login and the secret of its setup link (shown once).
#[derive(Debug, Clone)]
pub struct CreatedLogin {
    pub id: String,
    pub setup_secret: String,
    pub expires_at: i64,
}

/// Create a console login with this role and a one-time link to set its password.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn create_login(
    deps: &Deps,
    actor: &Actor,
    name: &str,
    grant: &RoleGrant,
) -> Result<CreatedLogin, ServiceError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(invalid(format!(
            "a login name is 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    let resolved = resolve_grant(deps, grant).await?;
    let id = uuid::Uuid::now_v7().to_string();
    let now = deps.now_ms();
    let secret = random_token(32);
    let expires_at = now + SETUP_LINK_HOURS * 3_600_000;
    let mut tx = deps.db.begin_write().await?;
    let new = NewLogin {
        id: &id,
        name,
        role: resolved.role,
        partner_id: resolved.partner_id.as_deref(),
        sponsor_email: resolved.sponsor_email.as_deref(),
    };
    if let Err(e) = admin_logins::insert(&mut tx, &new, now).await {
        return Err(if is_unique_violation(&e) {
            ServiceError::Conflict("a login with this name already exists".into())
        } else {
            e.into()
        });
    }
    let link_id = uuid::Uuid::now_v7().to_string();
    admin_logins::insert_link(
        &mut tx,
        &link_id,
        &id,
        &hash_token(&secret),
        now,
        expires_at,
    )
    .await?;
    audit_login(
        &mut tx,
        actor,
        "admin.login_created",
        &id,
        resolved.partner_id.as_deref(),
        json!({"role": resolved.role.as_str()}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedLogin {
        id,
        setup_secret: secret,
        expires_at,
    })
}

async fn audit_login(
    conn: &mut sqlx::AnyConnection,
    actor: &Actor,
    action: &str,
    login_id: &str,
    partner_id: Option<&str>,
    detail: serde_json::Value,
    now: i64,
) -> Result<(), ServiceError> {
    audit::append(
        conn,
        &AuditEntry {
            actor: &actor.label,
            partner_id,
            action,
            target_type: "admin_login",
            target_id: Some(login_id),
            request_id: actor.request_id.as_deref(),
            detail,
        },
        now,
    )
    .await?;
    Ok(())
}

fn scope_partner(p: &AdminPrincipal) -> Option<&str> {
    match &p.scope {
        crate::domain::AdminScope::Partner(id) => Some(id),
        _ => None,
    }
}

/// The name of the login a setup link is for, while the link works. Looking does not use it.
pub async fn setup_link_login(deps: &Deps, secret: &str) -> Result<Option<String>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let Some(id) = admin_logins::link_login(&mut conn, &hash_token(secret), deps.now_ms()).await?
    else {
        return Ok(None);
    };
    Ok(admin_logins::by_id(&mut conn, &id).await?.map(|l| l.name))
}

/// Why a password was not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupProblem {
    /// The link was used, expired, or never existed.
    LinkGone,
    /// The password is unacceptable; the link still works.
    Weak(String),
}

/// Check a new password against the house rules.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "The password must be at least {MIN_PASSWORD_CHARS} characters long."
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "The password must be at most {MAX_PASSWORD_BYTES} bytes long."
        ));
    }
    Ok(())
}

async fn hash_password(password: String) -> Result<String, ServiceError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Corrupt(format!("hashing a password: {e}")))
    })
    .await
    .map_err(|e| ServiceError::Corrupt(format!("hashing a password: {e}")))?
}

/// A hash of a password nobody knows, verified when the name is unknown so that a failure
/// costs the same time either way.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(random_token(24).as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let stored = hash.unwrap_or_else(|| decoy_hash().to_string());
        let ok = PasswordHash::new(&stored)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
        ok
    })
    .await
    .unwrap_or(false)
}

/// Set the password through the setup link, using the link up.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn set_password(
    deps: &Deps,
    secret: &str,
    password: &str,
    request_id: Option<String>,
) -> Result<Result<(), SetupProblem>, ServiceError> {
    // The link is checked before hashing (a dead link costs nothing) and used in the write.
    if setup_link_login(deps, secret).await?.is_none() {
        return Ok(Err(SetupProblem::LinkGone));
    }
    if let Err(m) = check_password(password) {
        return Ok(Err(SetupProblem::Weak(m)));
    }
    let hash = hash_password(password.to_string()).await?;
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let Some(login_id) = admin_logins::use_link(&mut tx, &hash_token(secret), now).await? else {
        return Ok(Err(SetupProblem::LinkGone));
    };
    admin_logins::set_password(&mut tx, &login_id, &hash, now).await?;
    let actor = Actor {
        label: format!("login:{login_id}"),
        request_id,
    };
    audit_login(
        &mut tx,
        &actor,
        "admin.password_set",
        &login_id,
        None,
        json!({}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// The outcome of a sign-in attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// A new session: the cookie's secret.
    Session(String),
    /// Wrong name or password (the caller cannot tell which).
    Refused,
    /// Too many attempts for this name or from this address.
    RateLimited,
}

/// Sign in with a name and password from a client address.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn sign_in(
    deps: &Deps,
    name: &str,
    password: &str,
    client_ip: &str,
    request_id: Option<String>,
) -> Result<SignIn, ServiceError> {
    let now = deps.now_ms();
    let name = name.trim();
    let limits = [
        (
            format!("admin-login:name:{}", hash_token(&name.to_lowercase())),
            ATTEMPTS_PER_NAME,
        ),
        (
            format!("admin-login:ip:{}", hash_token(client_ip)),
            ATTEMPTS_PER_IP,
        ),
    ];
    let (login, allowed) = {
        let mut tx = deps.db.begin_write().await?;
        let mut allowed = true;
        for (key, limit) in &limits {
            if rate_limits::hit(&mut tx, key, now, WINDOW_MS).await? > *limit {
                allowed = false;
            }
        }
        let login = admin_logins::by_name(&mut tx, name).await?;
        tx.commit().await?;
        (login, allowed)
    };
    let usable = login.as_ref().filter(|l| l.disabled_at.is_none());
    // Verified even when refused for the rate or the name, so every failure takes as long.
    let verified = verify_password(
        password.to_string(),
        usable.and_then(|l| l.password_hash.clone()),
    )
    .await;
    let actor = Actor {
        label: "anonymous".into(),
        request_id,
    };
    let mut tx = deps.db.begin_write().await?;
    let outcome = match usable {
        Some(l) if verified && allowed => {
            let secret = random_token(32);
            let session_id = uuid::Uuid::now_v7().to_string();
            admin_sessions::insert(
                &mut tx,
                &session_id,
                &l.id,
                &hash_token(&secret),
                now,
                now + SESSION_ABSOLUTE_MS,
            )
            .await?;
            admin_logins::record_sign_in(&mut tx, &l.id, now).await?;
            let actor = Actor {
                label: l.principal.actor_label(),
                ..actor
            };
            audit_login(
                &mut tx,
                &actor,
                "admin.signed_in",
                &l.id,
                scope_partner(&l.principal),
                json!({}),
                now,
            )
            .await?;
            SignIn::Session(secret)
        }
        _ => {
            let reason = if allowed { "refused" } else { "rate_limited" };
            audit::append(
                &mut tx,
                &AuditEntry {
                    actor: &actor.label,
                    partner_id: None,
                    action: "admin.sign_in_failed",
                    target_type: "admin_login",
                    target_id: login.as_ref().map(|l| l.id.as_str()),
                    request_id: actor.request_id.as_deref(),
                    detail: json!({"reason": reason}),
                },
                now,
            )
            .await?;
            if allowed {
                SignIn::Refused
            } else {
                SignIn::RateLimited
            }
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// A signed-in person: their principal, their name (for the page header) and the session.
#[derive(Debug, Clone)]
pub struct AdminSession {
    pub session_id: String,
    pub login_name: String,
    pub principal: AdminPrincipal,
}

/// The session of this cookie secret, if usable; refreshes its last use.
pub async fn session(deps: &Deps, secret: &str) -> Result<Option<AdminSession>, ServiceError> {
    let now = deps.now_ms();
    let mut conn = deps.db.pool().acquire().await?;
    let Some(row) =
        admin_sessions::usable(&mut conn, &hash_token(secret), now, SESSION_IDLE_MS).await?
    else {
        return Ok(None);
    };
    drop(conn);
    if now - row.last_seen_at >= TOUCH_GRANULARITY_MS {
        let mut tx = deps.db.begin_write().await?;
        admin_sessions::touch(&mut tx, &row.id, now).await?;
        tx.commit().await?;
    }
    Ok(Some(AdminSession {
        session_id: row.id,
        login_name: row.login.name,
        principal: row.login.principal,
    }))
}

/// End the session with this cookie secret (audited when it was open).
pub async fn sign_out(deps: &Deps, secret: &str, actor: &Actor) -> Result<(), ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    if let Some(login_id) = admin_sessions::end(&mut tx, &hash_token(secret), now).await? {
        audit_login(
            &mut tx,
            actor,
            "admin.signed_out",
            &login_id,
            None,
            json!({}),
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Disable a login by name (or, for a single sign-on login, by its subject at the identity
/// provider) and end its sessions; how many sessions ended.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn disable_login(deps: &Deps, actor: &Actor, name: &str) -> Result<u64, ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let login = match admin_logins::by_name(&mut tx, name.trim()).await? {
        Some(l) => l,
        None => {
            let ids = crate::store::admin_federated::ids_by_subject(&mut tx, name.trim()).await?;
            match ids.as_slice() {
                [id] => admin_logins::by_id(&mut tx, id)
                    .await?
                    .ok_or(ServiceError::NotFound)?,
                [] => return Err(ServiceError::NotFound),
                _ => {
                    return Err(ServiceError::Conflict(
                        "logins of several identity providers have this subject".into(),
                    ))
                }
            }
        }
    };
    if !admin_logins::disable(&mut tx, &login.id, now).await? {
        return Err(ServiceError::Conflict(
            "the login is already disabled".into(),
        ));
    }
    let ended = admin_sessions::end_all(&mut tx, &login.id, now).await?;
    audit_login(
        &mut tx,
        actor,
        "admin.login_disabled",
        &login.id,
        scope_partner(&login.principal),
        json!({"sessions_ended": ended}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(ended)
}

/// Whether neither a login nor an unrevoked admin token exists yet (a fresh install).
pub async fn first_run(deps: &Deps) -> Result<bool, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(!admin_logins::any(&mut conn).await? && !store::tokens::any_admin_token(&mut conn).await?)
}

/// The console session cookie: `__Host-` prefixed (Secure, path `/`, no domain) when the
/// public URL is https, so that no other host or path can set or shadow it.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-gb_admin"
    } else {
        "gb_admin"
    }
}

/// The CSRF purpose every unsafe request of a console session is checked for.
pub const CSRF_FORM: &str = "admin-session";

/// The CSRF token of the session with this cookie secret.
pub fn csrf_token(session_secret: &str) -> String {
    crate::auth::csrf::csrf_token(session_secret.as_bytes(), CSRF_FORM)
}

pub fn csrf_ok(session_secret: &str, token: &str) -> bool {
    crate::auth::csrf::check_csrf(session_secret.as_bytes(), CSRF_FORM, token)
}

/// How a request authenticated.
#[derive(Debug)]
pub enum RequestAuth {
    Principal(AdminPrincipal),
    /// No or an invalid credential.
    Unauthenticated,
    /// A session cookie on an unsafe request without its CSRF token.
    CsrfMissing,
}

/// Authenticate an admin request: the bearer token if there is an Authorization header,
/// else the console session cookie, whose unsafe requests must carry its CSRF token.
pub async fn authenticate_request(
    deps: &Deps,
    bearer: Option<&str>,
    has_authorization: bool,
    cookie: Option<&str>,
    unsafe_method: bool,
    csrf: Option<&str>,
) -> Result<RequestAuth, ServiceError> {
    if has_authorization {
        let Some(secret) = bearer else {
            return Ok(RequestAuth::Unauthenticated);
        };
        return Ok(
            match super::partners::authenticate_admin_principal(deps, secret).await? {
                Some(p) => RequestAuth::Principal(p),
                None => RequestAuth::Unauthenticated,
            },
        );
    }
    let Some(secret) = cookie.filter(|c| !c.is_empty()) else {
        return Ok(RequestAuth::Unauthenticated);
    };
    let Some(s) = session(deps, secret).await? else {
        return Ok(RequestAuth::Unauthenticated);
    };
    if unsafe_method && !csrf.is_some_and(|t| csrf_ok(secret, t)) {
        return Ok(RequestAuth::CsrfMissing);
    }
    Ok(RequestAuth::Principal(s.principal))
}
