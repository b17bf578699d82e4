//! The connectors of the configured sync targets, built from the settings (checked at
//! start-up).

use std::collections::HashMap;
use std::sync::Arc;

use super::Connector;
use crate::store::Db;

/// Connectors by target name.
pub type Connectors = HashMap<String, Arc<dyn Connector>>;

fn secret_of(t: &crate::config::SyncTarget) -> String {
    use secrecy::ExposeSecret;
    t.secret
        .as_ref()
        .map(|s| s.expose_secret().to_string())
        .unwrap_or_default()
}

/// The SCIM connector of a `scim` target, with its ownership records in `db`.
pub fn scim_connector(
    t: &crate::config::SyncTarget,
    db: &Db,
) -> Result<super::scim::ScimConnector, super::ConfigError> {
    super::scim::ScimConnector::new(
        t.name.clone(),
        super::scim::ScimTarget {
            base_url: t.url.clone(),
            bearer_token: secret_of(t),
            group_prefix: t.group_prefix.clone().unwrap_or_else(|| "gb-".into()),
        },
        db.clone(),
    )
}

/// Build every configured target's connector (checked at start-up). SCIM and Graph
/// connectors keep their ownership records in `db`.
pub fn build_connectors(
    settings: &crate::config::SyncSettings,
    db: &Db,
) -> anyhow::Result<Connectors> {
    let mut out = Connectors::new();
    for t in &settings.targets {
        let secret = secret_of(t);
        let context = || format!("sync target {}", t.name);
        let connector: Arc<dyn Connector> = match t.kind {
            crate::config::TargetKind::Scim => {
                Arc::new(scim_connector(t, db).map_err(|e| anyhow::anyhow!("{}: {e}", context()))?)
            }
            crate::config::TargetKind::Graph => Arc::new(
                super::graph::GraphConnector::new(
                    t.name.clone(),
                    super::graph::GraphTarget {
                        base_url: t.url.clone(),
                        token_url: t.token_url.clone().unwrap_or_default(),
                        client_id: t.client_id.clone().unwrap_or_default(),
                        client_secret: secret,
                        redirect_url: t.redirect_url.clone().unwrap_or_default(),
                        group_ids: t.groups.clone().into_iter().collect(),
                    },
                    db.clone(),
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", context()))?,
            ),
            crate::config::TargetKind::Webhook => Arc::new(
                super::webhook::WebhookConnector::new(
                    t.name.clone(),
                    super::webhook::WebhookTarget {
                        url: t.url.clone(),
                        secret,
                    },
                )
                .map_err(|e| anyhow::anyhow!("{}: {e}", context()))?,
            ),
        };
        out.insert(t.name.clone(), connector);
    }
    Ok(out)
}
