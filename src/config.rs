//! Typed settings: defaults, then an optional TOML file, then `GUESTBRIDGE_*` environment
//! variables (which win). Everything is validated at start-up; an error names the setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// Variables this program reads; any other `GUESTBRIDGE_*` variable draws a warning.
const KNOWN_ENV: &[&str] = &[
    "GUESTBRIDGE_CONFIG",
    // Read by `keys reseal` only.
    "GUESTBRIDGE_NEW_SECRET_KEY",
    "GUESTBRIDGE_DATABASE_URL",
    "GUESTBRIDGE_DATABASE_MAX_CONNECTIONS",
    "GUESTBRIDGE_LISTEN",
    "GUESTBRIDGE_PUBLIC_URL",
    "GUESTBRIDGE_MAX_BODY_BYTES",
    "GUESTBRIDGE_METRICS_TOKEN",
    "GUESTBRIDGE_SMTP_URL",
    "GUESTBRIDGE_MAPPINGS",
    "GUESTBRIDGE_JOBS",
    "GUESTBRIDGE_LOG_FORMAT",
    "GUESTBRIDGE_TEST_POSTGRES_URL",
    "GUESTBRIDGE_BENCH_POSTGRES_URL",
    "GUESTBRIDGE_REQUIRE_BROWSER",
    "GUESTBRIDGE_SECRET_KEY",
    "GUESTBRIDGE_SECRET_KEY_FILE",
    "GUESTBRIDGE_MAIL_FROM",
    "GUESTBRIDGE_ORGANIZATION",
    "GUESTBRIDGE_MAIL_RETRY_BASE_MS",
    "GUESTBRIDGE_SYNC_TARGETS",
    "GUESTBRIDGE_SYNC_RETRY_BASE_MS",
    "GUESTBRIDGE_TRUSTED_PROXIES",
    "GUESTBRIDGE_FORWARDED_HEADER",
    "GUESTBRIDGE_TLS_CERT_FILE",
    "GUESTBRIDGE_TLS_KEY_FILE",
];

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

fn invalid(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        message: message.into(),
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The TOML file's shape; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    portal: Option<FilePortal>,
    sync: Option<FileSync>,
    database: Option<FileDatabase>,
    http: Option<FileHttp>,
    smtp: Option<FileSmtp>,
    mappings_dir: Option<PathBuf>,
    rules_poll_ms: Option<u64>,
    jobs: Option<FileJobs>,
    log_format: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDatabase {
    url: Option<String>,
    max_connections: Option<u32>,
    busy_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHttp {
    listen: Option<String>,
    public_url: Option<String>,
    max_body_bytes: Option<usize>,
    max_page_size: Option<usize>,
    trusted_proxies: Option<Vec<String>>,
    forwarded_header: Option<String>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    metrics_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSync {
    #[serde(default)]
    targets: Vec<SyncTarget>,
    max_attempts: Option<u32>,
    retry_base_ms: Option<u64>,
    lease_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJobs {
    enabled: Option<bool>,
    schedules: Option<BTreeMap<String, String>>,
    reminder_after_days: Option<u32>,
    max_reminders: Option<u32>,
    expiry_warning_days: Option<u32>,
    inactivity_days: Option<u32>,
    retention_days: Option<u32>,
    job_run_days: Option<u32>,
    sync_retention_days: Option<u32>,
    mail_retention_days: Option<u32>,
    lease_seconds: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePortal {
    secret_key: Option<String>,
    secret_key_file: Option<PathBuf>,
    mail_from: Option<String>,
    organization: Option<String>,
    invitation_days: Option<u32>,
    mail_retry_base_ms: Option<u64>,
    mail_max_attempts: Option<u32>,
    mail_lease_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSmtp {
    url: Option<String>,
}

impl Settings {
    /// Load from the process environment and the file it names (`--config` wins over
    /// `GUESTBRIDGE_CONFIG`).
    pub fn from_env(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("GUESTBRIDGE_"))
            .collect();
        let file = config_file
            .map(Path::to_path_buf)
            .or_else(|| env.get("GUESTBRIDGE_CONFIG").map(PathBuf::from));
        Self::load(file.as_deref(), &env)
    }

    /// `GUESTBRIDGE_*` variables in the environment that no setting reads (likely typos);
    /// the caller warns about them once logging is up.
    pub fn unknown_env_vars() -> Vec<String> {
        std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with("GUESTBRIDGE_") && !KNOWN_ENV.contains(&k.as_str()))
            .collect()
    }

    /// Load from an explicit file and variable map (tests pass their own).
    pub fn load(file: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let file_settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str::<FileSettings>(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
            None => FileSettings::default(),
        };
        Self::resolve(file_settings, env)
    }

    fn resolve(f: FileSettings, env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let db = f.database.unwrap_or_default();
        let http = f.http.unwrap_or_default();
        let var = |name: &str| env.get(name).cloned();

        let url = var("GUESTBRIDGE_DATABASE_URL")
            .or(db.url)
            .unwrap_or_else(|| "sqlite://guestbridge.db".to_string());
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url (GUESTBRIDGE_DATABASE_URL)",
                "must start with sqlite:// or postgres://",
            ));
        }
        if url.starts_with("sqlite:") && (url.contains(":memory:") || url.contains("mode=memory")) {
            // Every pooled connection would open a database of its own, and the writer's
            // rows would be invisible to the readers.
            return Err(invalid(
                "database.url (GUESTBRIDGE_DATABASE_URL)",
                "an in-memory SQLite database cannot be shared by the connection pool; use a file (sqlite://guestbridge.db)",
            ));
        }
        let max_connections = match var("GUESTBRIDGE_DATABASE_MAX_CONNECTIONS") {
            Some(v) => parse_number(&v, "GUESTBRIDGE_DATABASE_MAX_CONNECTIONS")?,
            None => db.max_connections.unwrap_or(10),
        };
        if max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }

        let listen_text = var("GUESTBRIDGE_LISTEN")
            .or(http.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_string());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "http.listen (GUESTBRIDGE_LISTEN)",
                format!("{listen_text:?} is not an address such as 127.0.0.1:8080"),
            )
        })?;
        let public_url = var("GUESTBRIDGE_PUBLIC_URL")
            .or(http.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        let parsed = url::Url::parse(&public_url).map_err(|e| {
            invalid(
                "http.public_url (GUESTBRIDGE_PUBLIC_URL)",
                format!("{public_url:?}: {e}"),
            )
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid(
                "http.public_url (GUESTBRIDGE_PUBLIC_URL)",
                "must be an http:// or https:// URL",
            ));
        }
        let max_body_bytes = match var("GUESTBRIDGE_MAX_BODY_BYTES") {
            Some(v) => parse_number(&v, "GUESTBRIDGE_MAX_BODY_BYTES")?,
            None => http.max_body_bytes.unwrap_or(1024 * 1024),
        };
        let edge = crate::edge::EdgeSettings::resolve(
            crate::edge::FileEdge {
                trusted_proxies: http.trusted_proxies,
                forwarded_header: http.forwarded_header,
                tls_cert_file: http.tls_cert_file,
                tls_key_file: http.tls_key_file,
            },
            env,
        )
        .map_err(|(name, message)| invalid(name, message))?;
        let max_page_size = http.max_page_size.unwrap_or(1000);
        let metrics_token = var("GUESTBRIDGE_METRICS_TOKEN")
            .or(http.metrics_token)
            .filter(|t| !t.is_empty())
            .map(SecretString::from);
        if max_page_size == 0 {
            return Err(invalid("http.max_page_size", "must be at least 1"));
        }

        let smtp_url = var("GUESTBRIDGE_SMTP_URL").or(f.smtp.and_then(|s| s.url));
        if let Some(u) = &smtp_url {
            let ok = url::Url::parse(u)
                .map(|p| matches!(p.scheme(), "smtp" | "smtps"))
                .unwrap_or(false);
            if !ok {
                // The URL may carry a password, so it is not echoed.
                return Err(invalid(
                    "smtp.url (GUESTBRIDGE_SMTP_URL)",
                    "must be smtp://host:port or smtps://user:pass@host",
                ));
            }
        }

        let jobs_enabled = match var("GUESTBRIDGE_JOBS") {
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => {
                    return Err(invalid(
                        "GUESTBRIDGE_JOBS",
                        format!("{v:?} is neither on nor off"),
                    ))
                }
            },
            None => f.jobs.as_ref().and_then(|j| j.enabled).unwrap_or(true),
        };
        let jobs = resolve_jobs(f.jobs.unwrap_or_default())?;

        let log_format = match var("GUESTBRIDGE_LOG_FORMAT")
            .or(f.log_format)
            .as_deref()
            .unwrap_or("text")
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log_format (GUESTBRIDGE_LOG_FORMAT)",
                    format!("{other:?} is neither text nor json"),
                ))
            }
        };

        let portal = f.portal.unwrap_or_default();
        let invitation_days = portal.invitation_days.unwrap_or(14);
        if !(1..=365).contains(&invitation_days) {
            return Err(invalid(
                "portal.invitation_days",
                "must be between 1 and 365",
            ));
        }
        let mail_from = var("GUESTBRIDGE_MAIL_FROM")
            .or(portal.mail_from)
            .unwrap_or_else(|| "guestbridge@localhost".to_string());
        if !mail_from.contains('@') {
            return Err(invalid(
                "portal.mail_from (GUESTBRIDGE_MAIL_FROM)",
                "must be an email address",
            ));
        }
        let default_key_file = match url
            .strip_prefix("sqlite://")
            .map(|p| p.split('?').next().unwrap_or(p))
        {
            Some(db) if db != ":memory:" => Path::new(db).with_extension("key"),
            _ => PathBuf::from("guestbridge.key"),
        };
        let portal = PortalSettings {
            secret_key: var("GUESTBRIDGE_SECRET_KEY")
                .or(portal.secret_key)
                .map(SecretString::from),
            secret_key_file: var("GUESTBRIDGE_SECRET_KEY_FILE")
                .map(PathBuf::from)
                .or(portal.secret_key_file)
                .unwrap_or(default_key_file),
            mail_from,
            organization: var("GUESTBRIDGE_ORGANIZATION")
                .or(portal.organization)
                .unwrap_or_else(|| "Guestbridge".to_string()),
            invitation_days,
            mail_retry_base_ms: match var("GUESTBRIDGE_MAIL_RETRY_BASE_MS") {
                Some(v) => parse_number(&v, "GUESTBRIDGE_MAIL_RETRY_BASE_MS")?,
                None => portal.mail_retry_base_ms.unwrap_or(10_000),
            },
            mail_max_attempts: portal.mail_max_attempts.unwrap_or(10).max(1),
            mail_lease_ms: match var("GUESTBRIDGE_MAIL_LEASE_MS") {
                Some(v) => parse_number(&v, "GUESTBRIDGE_MAIL_LEASE_MS")?,
                None => portal.mail_lease_ms.unwrap_or(120_000),
            }
            .max(200),
        };
        let sync = resolve_sync(f.sync.unwrap_or_default(), env)?;
        Ok(Settings {
            sync,
            portal,
            database: DatabaseSettings {
                url,
                max_connections,
                busy_timeout_ms: db.busy_timeout_ms.unwrap_or(5000),
            },
            http: HttpSettings {
                listen,
                public_url: public_url.trim_end_matches('/').to_string(),
                max_body_bytes,
                max_page_size,
                edge,
                metrics_token,
            },
            smtp_url: smtp_url.map(SecretString::from),
            mappings_dir: var("GUESTBRIDGE_MAPPINGS")
                .map(PathBuf::from)
                .or(f.mappings_dir)
                .unwrap_or_else(|| PathBuf::from("mappings")),
            rules_poll_ms: match var("GUESTBRIDGE_RULES_POLL_MS") {
                Some(v) => parse_number(&v, "GUESTBRIDGE_RULES_POLL_MS")?,
                None => f.rules_poll_ms.unwrap_or(2000),
            }
            .max(100),
            jobs_enabled,
            jobs,
            log_format,
        })
    }
}

fn resolve_sync(f: FileSync, env: &BTreeMap<String, String>) -> Result<SyncSettings, ConfigError> {
    let mut targets = f.targets;
    if let Some(json) = env.get("GUESTBRIDGE_SYNC_TARGETS") {
        let more: Vec<SyncTarget> = serde_json::from_str(json).map_err(|e| {
            invalid(
                "GUESTBRIDGE_SYNC_TARGETS",
                format!("must be a JSON array of targets: {e}"),
            )
        })?;
        targets.extend(more);
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in targets.iter_mut() {
        let name = format!("sync.targets[{}]", t.name);
        if t.name.is_empty() || !seen.insert(t.name.clone()) {
            return Err(invalid(&name, "every target needs a unique name"));
        }
        if url::Url::parse(&t.url).is_err() {
            return Err(invalid(&name, "url must be an absolute URL"));
        }
        if let Some(var) = &t.secret_env {
            let value = env
                .get(var)
                .cloned()
                .or_else(|| std::env::var(var).ok())
                .ok_or_else(|| invalid(&name, format!("secret_env {var} is not set")))?;
            t.secret = Some(SecretString::from(value));
        }
        if t.secret.is_none() {
            return Err(invalid(
                &name,
                "needs a secret (token, client secret or signing secret) or secret_env",
            ));
        }
        if t.kind == TargetKind::Graph && (t.token_url.is_none() || t.client_id.is_none()) {
            return Err(invalid(
                &name,
                "a graph target needs token_url and client_id",
            ));
        }
    }
    Ok(SyncSettings {
        targets,
        max_attempts: f.max_attempts.unwrap_or(8).max(1),
        retry_base_ms: match env.get("GUESTBRIDGE_SYNC_RETRY_BASE_MS") {
            Some(v) => parse_number(v, "GUESTBRIDGE_SYNC_RETRY_BASE_MS")?,
            None => f.retry_base_ms.unwrap_or(2_000),
        },
        lease_ms: match env.get("GUESTBRIDGE_SYNC_LEASE_MS") {
            Some(v) => parse_number(v, "GUESTBRIDGE_SYNC_LEASE_MS")?,
            None => f.lease_ms.unwrap_or(120_000),
        }
        .max(200),
    })
}

fn resolve_jobs(f: FileJobs) -> Result<JobSettings, ConfigError> {
    let mut out = JobSettings::default();
    for (name, cron) in f.schedules.unwrap_or_default() {
        if name.parse::<crate::domain::JobName>().is_err() {
            return Err(invalid(
                &format!("jobs.schedules.{name}"),
                format!("unknown job; jobs are {}", crate::domain::JobName::listed()),
            ));
        }
        if cron.split_whitespace().count() != 6 {
            return Err(invalid(
                &format!("jobs.schedules.{name}"),
                "a cron schedule has six fields: sec min hour day month weekday",
            ));
        }
        if let Some(slot) = out.schedules.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = cron;
        }
    }
    let days = |name: &str, v: Option<u32>, default: u32| -> Result<u32, ConfigError> {
        let v = v.unwrap_or(default);
        if v == 0 || v > 3650 {
            return Err(invalid(
                &format!("jobs.{name}"),
                "must be between 1 and 3650",
            ));
        }
        Ok(v)
    };
    out.reminder_after_days = days(
        "reminder_after_days",
        f.reminder_after_days,
        out.reminder_after_days,
    )?;
    out.max_reminders = f.max_reminders.unwrap_or(out.max_reminders);
    out.expiry_warning_days = days(
        "expiry_warning_days",
        f.expiry_warning_days,
        out.expiry_warning_days,
    )?;
    out.inactivity_days = days("inactivity_days", f.inactivity_days, out.inactivity_days)?;
    out.retention_days = days("retention_days", f.retention_days, out.retention_days)?;
    out.job_run_days = days("job_run_days", f.job_run_days, out.job_run_days)?;
    out.sync_retention_days = days(
        "sync_retention_days",
        f.sync_retention_days,
        out.sync_retention_days,
    )?;
    out.mail_retention_days = days(
        "mail_retention_days",
        f.mail_retention_days,
        out.mail_retention_days,
    )?;
    out.lease_seconds = days("lease_seconds", f.lease_seconds, out.lease_seconds)?;
    Ok(out)
}

fn parse_number<T: std::str::FromStr>(value: &str, name: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| invalid(name, format!("{value:?} is not a number")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = Settings::load(None, &env(&[])).unwrap();
        assert_eq!(s.database.url, "sqlite://guestbridge.db");
        assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.http.public_url, "http://127.0.0.1:8080");
        assert!(s.smtp_url.is_none());
        assert_eq!(s.mappings_dir, PathBuf::from("mappings"));
        assert!(s.jobs_enabled);
        assert_eq!(s.http.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn environment_wins_over_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(
            &path,
            "[database]\nurl = \"sqlite://file.db\"\n[http]\nlisten = \"0.0.0.0:9000\"\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&path),
            &env(&[("GUESTBRIDGE_DATABASE_URL", "postgres://h/db")]),
        )
        .unwrap();
        assert_eq!(s.database.url, "postgres://h/db");
        assert_eq!(s.http.listen.to_string(), "0.0.0.0:9000");
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let err = Settings::load(None, &env(&[("GUESTBRIDGE_LISTEN", "nowhere")])).unwrap_err();
        assert!(err.to_string().contains("GUESTBRIDGE_LISTEN"), "{err}");
        let err = Settings::load(None, &env(&[("GUESTBRIDGE_JOBS", "maybe")])).unwrap_err();
        assert!(err.to_string().contains("GUESTBRIDGE_JOBS"), "{err}");
        let err =
            Settings::load(None, &env(&[("GUESTBRIDGE_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("database.url"), "{err}");
        for memory in ["sqlite::memory:", "sqlite://file.db?mode=memory"] {
            let err =
                Settings::load(None, &env(&[("GUESTBRIDGE_DATABASE_URL", memory)])).unwrap_err();
            assert!(err.to_string().contains("in-memory"), "{err}");
        }
        let err = Settings::load(None, &env(&[("GUESTBRIDGE_SMTP_URL", "http://u:secret@x")]))
            .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn the_shipped_example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/guestbridge.example.toml");
        let s = Settings::load(Some(&path), &env(&[])).unwrap();
        assert_eq!(s.http.max_page_size, 1000);
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, "[http]\nlisten_port = 1\n").unwrap();
        let err = Settings::load(Some(&path), &env(&[])).unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
    }
}
