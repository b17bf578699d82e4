//! Use cases. Each public function is one transaction; SCIM handlers, the CLI and (later)
//! CSV import and jobs call these, so every path applies the same rules, audit and outbox.

pub mod access;
pub mod admin_auth;
pub mod admin_policy;
pub mod admin_sso;
pub mod audit;
pub(crate) mod bearer_tokens;
pub(crate) mod claim_loop;
pub mod grant_overrides;
pub mod groups;
pub mod guest_actions;
pub mod guest_auth;
pub mod guest_mfa;
pub mod guest_passkeys;
pub mod guests;
pub mod import;
pub mod import_records;
pub mod import_runs;
pub mod inactivity;
pub mod invitations;
pub mod jobs_admin;
pub mod lifecycle;
pub mod listing;
pub mod mail_sender;
pub mod mailer;
pub mod manual_invite;
pub mod oidc;
pub mod partner_admin;
pub mod partner_limits;
pub mod partners;
pub mod portal_env;
pub mod reconcile;
pub mod reseal;
pub mod rules;
pub mod rules_watch;
pub mod scim_rate;
pub mod signing;
mod stored;
pub mod sync;
pub mod sync_sender;
pub mod sync_view;
pub mod users;

use crate::clock::SharedClock;
use crate::scim_core::error::ScimError;
use crate::store::{Db, DbError};

/// What services need from the outside world.
#[derive(Clone, Debug)]
pub struct Deps {
    pub db: Db,
    pub clock: SharedClock,
    /// The mapping rules in force; swapped on reload.
    pub rules: lifecycle::SharedRules,
    /// Keys, templates and URLs of the guest portal and its mail.
    pub portal: std::sync::Arc<portal_env::PortalEnv>,
    /// Recently authenticated bearer tokens of this process (see `auth::cache`).
    pub auth_cache: std::sync::Arc<crate::auth::cache::AuthCache>,
    /// Partners' SCIM request budgets kept in this process (SQLite; see `scim_rate`).
    pub scim_rate: std::sync::Arc<scim_rate::LocalBuckets>,
}

impl Deps {
    pub fn new(
        db: Db,
        clock: SharedClock,
        rules: crate::mapping::RuleSet,
        portal: portal_env::PortalEnv,
    ) -> Self {
        Deps {
            db,
            clock,
            rules: std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(rules))),
            portal: std::sync::Arc::new(portal),
            auth_cache: std::sync::Arc::default(),
            scim_rate: std::sync::Arc::default(),
        }
    }

    /// The rule set in force now.
    pub fn rules(&self) -> std::sync::Arc<crate::mapping::RuleSet> {
        lifecycle::current_rules(&self.rules)
    }

    pub fn now_ms(&self) -> i64 {
        crate::clock::to_millis(self.clock.now())
    }
}

/// Who is acting, for authorisation scoping and the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `partner:SLUG`, `admin:ID`, `cli`, `job:NAME`.
    pub label: String,
    pub request_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("the resource changed since version {0}")]
    PreconditionFailed(String),
    #[error(transparent)]
    Invalid(#[from] ScimError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Corrupt(String),
    /// Refused for now by a limit on how much may happen in a while (HTTP 429), until
    /// `retry_after_secs` have passed.
    #[error("{message}")]
    TooMany {
        message: String,
        retry_after_secs: u64,
    },
}

/// An `If-Match` precondition (RFC 7644 §3.14) against the current ETag: any listed tag or
/// `*` passes.
pub(crate) fn check_if_match(if_match: Option<&str>, etag: &str) -> Result<(), ServiceError> {
    match if_match {
        Some(tags)
            if !tags
                .split(',')
                .map(str::trim)
                .any(|t| t == "*" || t == etag) =>
        {
            Err(ServiceError::PreconditionFailed(etag.to_string()))
        }
        _ => Ok(()),
    }
}
