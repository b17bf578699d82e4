//! The shared, read-only state every HTTP handler receives. It sits below the handlers,
//! the metrics middleware and start-up, which all use it; it names only what they share.

use std::sync::Arc;

use crate::config::Settings;
use crate::request_metrics::Metrics;
use crate::services::import_runs::RunningImports;
use crate::services::Deps;

/// Shared, read-only state of a running instance.
pub struct AppState {
    pub deps: Deps,
    /// The guest portal's page templates.
    pub pages: crate::portal_pages::Pages,
    /// Roster imports running in the background on this instance.
    pub imports: RunningImports,
    pub settings: Arc<Settings>,
    pub metrics: Metrics,
    /// Console single sign-on through the organisation's OpenID Connect provider, if set.
    pub admin_sso: Option<Arc<crate::auth::oidc_client::OidcClient>>,
}
