//! The TOML file's shape: every key optional, unknown keys refused, read before the
//! environment is laid over it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::SyncTarget;

/// The TOML file's shape; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSettings {
    pub(super) portal: Option<FilePortal>,
    pub(super) sync: Option<FileSync>,
    pub(super) database: Option<FileDatabase>,
    pub(super) http: Option<FileHttp>,
    pub(super) smtp: Option<FileSmtp>,
    pub(super) mappings_dir: Option<PathBuf>,
    pub(super) rules_poll_ms: Option<u64>,
    pub(super) jobs: Option<FileJobs>,
    pub(super) log_format: Option<String>,
    pub(super) admin_sso: Option<super::admin_sso::FileAdminSso>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDatabase {
    pub(super) url: Option<String>,
    pub(super) max_connections: Option<u32>,
    pub(super) busy_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHttp {
    pub(super) listen: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) max_body_bytes: Option<usize>,
    pub(super) max_page_size: Option<usize>,
    pub(super) trusted_proxies: Option<Vec<String>>,
    pub(super) forwarded_header: Option<String>,
    pub(super) tls_cert_file: Option<PathBuf>,
    pub(super) tls_key_file: Option<PathBuf>,
    pub(super) metrics_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSync {
    #[serde(default)]
    pub(super) targets: Vec<SyncTarget>,
    pub(super) max_attempts: Option<u32>,
    pub(super) retry_base_ms: Option<u64>,
    pub(super) lease_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileJobs {
    pub(super) enabled: Option<bool>,
    pub(super) schedules: Option<BTreeMap<String, String>>,
    pub(super) reminder_after_days: Option<u32>,
    pub(super) max_reminders: Option<u32>,
    pub(super) expiry_warning_days: Option<u32>,
    pub(super) inactivity_days: Option<u32>,
    pub(super) retention_days: Option<u32>,
    pub(super) job_run_days: Option<u32>,
    pub(super) sync_retention_days: Option<u32>,
    pub(super) mail_retention_days: Option<u32>,
    pub(super) lease_seconds: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FilePortal {
    pub(super) secret_key: Option<String>,
    pub(super) secret_key_file: Option<PathBuf>,
    pub(super) mail_from: Option<String>,
    pub(super) organization: Option<String>,
    pub(super) invitation_days: Option<u32>,
    pub(super) mail_retry_base_ms: Option<u64>,
    pub(super) mail_max_attempts: Option<u32>,
    pub(super) mail_lease_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSmtp {
    pub(super) url: Option<String>,
}
