//! The sync worker: leases due outbox events (in order per guest and target), hands each to
//! its target's connector, and records the outcome: delivered; retried later with
//! exponential backoff and jitter (or when the target's `Retry-After` says); or, after the
//! attempt limit or a permanent refusal, a dead letter an admin can replay.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::{Connector, GuestEvent};
use crate::services::{Deps, ServiceError};
use crate::store::{sync_outbox, Db};

/// Connectors by target name.
pub type Connectors = HashMap<String, Arc<dyn Connector>>;

#[derive(Debug, Clone, Copy)]
pub struct SyncPolicy {
    pub base_ms: u64,
    pub max_attempts: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncDelivery {
    pub delivered: u64,
    pub retrying: u64,
    pub dead: u64,
}

const BATCH: i64 = 50;
const LEASE_MS: i64 = 120_000;

fn backoff_ms(policy: SyncPolicy, attempts: i64, retry_after: Option<Duration>) -> i64 {
    if let Some(d) = retry_after {
        return i64::try_from(d.as_millis())
            .unwrap_or(i64::MAX)
            .min(3_600_000);
    }
    let exp = policy
        .base_ms
        .saturating_mul(1u64 << attempts.clamp(0, 16) as u32)
        .min(3_600_000);
    let jitter = rand::thread_rng().gen_range(0..=exp / 4);
    i64::try_from(exp + jitter).unwrap_or(i64::MAX)
}

/// Deliver every event due now.
pub async fn deliver_due(
    deps: &Deps,
    connectors: &Connectors,
    policy: SyncPolicy,
    owner: &str,
) -> Result<SyncDelivery, ServiceError> {
    let mut report = SyncDelivery::default();
    loop {
        let now = crate::clock::to_millis(chrono::Utc::now());
        let batch = {
            let mut conn = deps.db.pool().acquire().await?;
            sync_outbox::claim_due(&mut conn, owner, now, now + LEASE_MS, BATCH).await?
        };
        if batch.is_empty() {
            return Ok(report);
        }
        for e in batch {
            let result = match (
                connectors.get(&e.target),
                serde_json::from_str::<GuestEvent>(&e.payload),
            ) {
                (None, _) => Err(super::DeliveryError::Permanent {
                    reason: format!("no target named {:?} is configured", e.target),
                }),
                (_, Err(err)) => Err(super::DeliveryError::Permanent {
                    reason: format!("unreadable event: {err}"),
                }),
                (Some(c), Ok(event)) => c.deliver(&event).await,
            };
            let now = crate::clock::to_millis(chrono::Utc::now());
            let mut conn = deps.db.pool().acquire().await?;
            match result {
                Ok(()) => {
                    sync_outbox::mark_delivered(&mut conn, e.seq, now).await?;
                    report.delivered += 1;
                }
                Err(err) => {
                    let attempts = e.attempts + 1;
                    let dead = !err.is_transient() || attempts >= i64::from(policy.max_attempts);
                    let next = now + backoff_ms(policy, e.attempts, err.retry_after());
                    sync_outbox::mark_failed(&mut conn, e.seq, now, next, dead, &err.to_string())
                        .await?;
                    if dead {
                        tracing::error!(target_name = %e.target, event = %e.id, attempts, error = %err, "sync event dead-lettered");
                        report.dead += 1;
                    } else {
                        tracing::warn!(target_name = %e.target, event = %e.id, attempts, error = %err, "sync delivery failed; will retry");
                        report.retrying += 1;
                    }
                }
            }
        }
    }
}

/// Run the worker for the life of the process: on every queued event and at least every `poll`.
pub fn spawn(
    deps: Deps,
    connectors: Arc<Connectors>,
    policy: SyncPolicy,
    poll: Duration,
) -> tokio::task::JoinHandle<()> {
    let owner = format!("sync:{}", uuid::Uuid::new_v4());
    tokio::spawn(async move {
        loop {
            if let Err(e) = deliver_due(&deps, &connectors, policy, &owner).await {
                tracing::error!(error = %e, "sync round failed");
            }
            let _ = tokio::time::timeout(poll, deps.portal.sync_queued.notified()).await;
        }
    })
}

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
