//! The environment side of the settings: which `GUESTBRIDGE_*` variables are read, and
//! loading from the process environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{ConfigError, Settings};

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
    "GUESTBRIDGE_ADMIN_OIDC_ISSUER",
    "GUESTBRIDGE_ADMIN_OIDC_CLIENT_ID",
    "GUESTBRIDGE_ADMIN_OIDC_CLIENT_SECRET",
    "GUESTBRIDGE_ADMIN_OIDC_CLIENT_SECRET_FILE",
    "GUESTBRIDGE_ADMIN_OIDC_GROUPS",
    "GUESTBRIDGE_ADMIN_OIDC_GROUPS_CLAIM",
    "GUESTBRIDGE_ADMIN_OIDC_NAME",
    "GUESTBRIDGE_ADMIN_OIDC_SCOPES",
    // Read by the admin SSO test only.
    "GUESTBRIDGE_REQUIRE_OIDC",
    // Read by build.rs for the forward-auth and OIDC provider tests only.
    "GUESTBRIDGE_REQUIRE_NGINX",
    "GUESTBRIDGE_REQUIRE_OIDC_RP",
    "GUESTBRIDGE_REQUIRE_OPENAPI_VALIDATOR",
];

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
}
