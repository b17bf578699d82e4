//! `reconcile`: compare each SCIM target with what Guestbridge has decided and repair drift
//! (users missing, attributes or memberships changed there, users that should not exist).

use super::{Counts, JobContext, JobError};
use crate::config::TargetKind;
use crate::connectors::scim::{ScimConnector, ScimTarget};
use crate::connectors::GuestSnapshot;
use crate::services::{sync, ServiceError};
use crate::store::jobs as job_store;

pub async fn run_once(ctx: &JobContext<'_>) -> Result<Counts, JobError> {
    use secrecy::ExposeSecret;
    let mut counts = Counts::new();
    let targets: Vec<_> = ctx
        .sync
        .targets
        .iter()
        .filter(|t| t.kind == TargetKind::Scim)
        .collect();
    if targets.is_empty() {
        return Ok(counts);
    }
    let mut conn = ctx.deps.db.pool().acquire().await?;
    let mut expected: Vec<GuestSnapshot> = Vec::new();
    for id in job_store::all_guest_ids(&mut conn).await? {
        if let Some(snapshot) = sync::snapshot(&mut conn, ctx.deps, &id).await? {
            if let Ok(s) = serde_json::from_value(snapshot) {
                expected.push(s);
            }
        }
    }
    for t in targets {
        let connector = ScimConnector::new(
            t.name.clone(),
            ScimTarget {
                base_url: t.url.clone(),
                bearer_token: t
                    .secret
                    .as_ref()
                    .map(|s| s.expose_secret().to_string())
                    .unwrap_or_default(),
                group_prefix: t.group_prefix.clone().unwrap_or_else(|| "gb-".into()),
            },
        )
        .map_err(|e| ServiceError::Corrupt(format!("sync target {}: {e}", t.name)))?;
        match connector.reconcile(&expected).await {
            Ok(r) => {
                *counts.entry("created").or_default() += r.created as u64;
                *counts.entry("updated").or_default() += r.updated as u64;
                *counts.entry("deactivated").or_default() += r.deactivated as u64;
                *counts.entry("deleted").or_default() += r.deleted as u64;
                *counts.entry("failures").or_default() += r.failures.len() as u64;
            }
            Err(e) => {
                return Err(ServiceError::Corrupt(format!("reconciling {}: {e}", t.name)).into())
            }
        }
    }
    Ok(counts)
}
