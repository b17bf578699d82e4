//! Typed settings: defaults, then an optional TOML file, then `GUESTBRIDGE_*` environment
//! variables (which win). Everything is validated at start-up; an error names the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

mod admin_sso;
mod env;
mod file;
mod resolve;

/// A setting that cannot be used, named as in the file (`section.key`) or the environment.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("setting {name}: {message}")]
    Invalid { name: String, message: String },
}

/// All settings of one Guestbridge instance.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where data lives.
    pub database: DatabaseSettings,
    /// The HTTP server.
    pub http: HttpSettings,
    /// Outgoing mail; `None` keeps mail in the outbox and logs it.
    pub smtp_url: Option<SecretString>,
    /// Folder of mapping rule files.
    pub mappings_dir: PathBuf,
    /// How often an instance checks the database for rules another instance set in force.
    pub rules_poll_ms: u64,
    /// Whether this instance runs the scheduler.
    pub jobs_enabled: bool,
    /// Schedules and numbers of the scheduled jobs.
    pub jobs: JobSettings,
    /// Log line format.
    pub log_format: LogFormat,
    /// The guest portal and its mail.
    pub portal: PortalSettings,
    /// Systems that hear about guests and grants.
    pub sync: SyncSettings,
    /// Console sign-in through the organisation's OpenID Connect provider, if set.
    pub admin_sso: Option<AdminSsoSettings>,
}

/// Outbound sync targets and delivery policy.
#[derive(Debug, Clone, Default)]
pub struct SyncSettings {
    pub targets: Vec<SyncTarget>,
    /// Attempts before an event becomes a dead letter.
    pub max_attempts: u32,
    /// First retry delay in milliseconds; it doubles per attempt (with jitter).
    pub retry_base_ms: u64,
    /// How long the worker holds a claimed event, in milliseconds; renewed before each
    /// event, and a delivery that takes half of it is abandoned and retried.
    pub lease_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Scim,
    Graph,
    Webhook,
}

/// One target; its secret (bearer token, client secret, signing secret) never prints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncTarget {
    /// Unique name, used in the outbox, metrics and the admin API.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: TargetKind,
    /// SCIM base URL (…/scim/v2), Graph base URL, or webhook URL.
    pub url: String,
    #[serde(default)]
    pub secret: Option<SecretString>,
    /// Name of an environment variable holding the secret instead.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// SCIM: prefix of the groups that stand for app roles.
    #[serde(default)]
    pub group_prefix: Option<String>,
    /// Graph: OAuth token endpoint, client id and invitation redirect URL.
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub redirect_url: Option<String>,
    /// Graph: `app:role` → group id.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    /// Cron schedules (with seconds) per job name.
    pub schedules: Vec<(String, String)>,
    /// Days after an invitation (and between reminders) before a reminder is sent.
    pub reminder_after_days: u32,
    /// Reminders per invitation; after the last one the invitation lapses.
    pub max_reminders: u32,
    /// Days before a grant ends that the guest and sponsor are warned.
    pub expiry_warning_days: u32,
    /// Days without sign-in after which an active guest is suspended.
    pub inactivity_days: u32,
    /// Days a removed guest's personal data is kept before it is erased.
    pub retention_days: u32,
    /// Days job runs are kept (each job's latest run is always kept).
    pub job_run_days: u32,
    /// Days delivered and dead sync events are kept (their payloads name the guest).
    pub sync_retention_days: u32,
    /// Days sent and failed mail is kept in the outbox (addresses and subjects name people).
    pub mail_retention_days: u32,
    /// How long a job run holds its lease, in seconds (a crashed run's lease expires).
    pub lease_seconds: u32,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            schedules: vec![
                ("reminders".into(), "0 0 * * * *".into()),
                ("expiry".into(), "0 */15 * * * *".into()),
                ("deprovision".into(), "0 30 * * * *".into()),
                ("outbox".into(), "0 * * * * *".into()),
                ("reconcile".into(), "0 0 3 * * *".into()),
                ("housekeeping".into(), "0 15 4 * * *".into()),
            ],
            reminder_after_days: 3,
            max_reminders: 2,
            expiry_warning_days: 7,
            inactivity_days: 90,
            retention_days: 365,
            job_run_days: 30,
            sync_retention_days: 30,
            mail_retention_days: 30,
            lease_seconds: 300,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PortalSettings {
    /// Key sealing secrets at rest (TOTP secrets, signing keys, queued mail): 64 hex chars or
    /// base64 of 32 bytes. Every instance sharing a database needs the same key.
    pub secret_key: Option<SecretString>,
    /// Where the key is kept when `secret_key` is not set (created on first start).
    pub secret_key_file: PathBuf,
    /// Sender address of outgoing mail.
    pub mail_from: String,
    /// The host organisation's name, shown to guests ("… invites you").
    pub organization: String,
    /// Days an invitation link stays valid, unless a rule says otherwise.
    pub invitation_days: u32,
    /// First retry delay of a failed mail delivery in milliseconds; it doubles per attempt.
    pub mail_retry_base_ms: u64,
    /// Delivery attempts before a mail is given up (dead letter).
    pub mail_max_attempts: u32,
    /// How long the sender holds a claimed mail, in milliseconds; renewed before each mail,
    /// and a delivery that takes half of it is abandoned and retried.
    pub mail_lease_ms: u64,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: String,
    /// Upper bound of the connection pool.
    pub max_connections: u32,
    /// How long SQLite waits on a locked database before giving up, in milliseconds.
    pub busy_timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address to serve HTTP on.
    pub listen: SocketAddr,
    /// Base URL for links and SCIM `meta.location`, without a trailing slash.
    pub public_url: String,
    /// Largest accepted request body in bytes (SCIM `413` above it).
    pub max_body_bytes: usize,
    /// Largest page a SCIM list returns (`filter.maxResults`).
    pub max_page_size: usize,
    /// Where the client address comes from (trusted proxies), and native TLS.
    pub edge: crate::edge::EdgeSettings,
    /// When set, `/metrics` wants `Authorization: Bearer <token>`; unset, it is open.
    pub metrics_token: Option<SecretString>,
}

pub use crate::telemetry::LogFormat;
pub use admin_sso::AdminSsoSettings;

#[cfg(test)]
mod tests;
