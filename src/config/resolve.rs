//! From the file and the environment to validated settings: the environment wins, defaults
//! fill the rest, and an error names the setting.

use std::collections::BTreeMap;
use std::path::Path;

use super::file::{FileJobs, FileSettings, FileSync};
use super::*;

fn invalid(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_string(),
        message: message.into(),
    }
}

impl Settings {
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
        let admin_sso = super::admin_sso::resolve(f.admin_sso, env)?;
        Ok(Settings {
            admin_sso,
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
