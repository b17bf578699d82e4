//! `reconcile`: compare each SCIM target with what Guestbridge has decided and repair drift
//! in the users Guestbridge owns there (see `services::reconcile`). Never forced: a run that
//! would deactivate more than the cap is refused, audited and counted as `refused`.

use super::{Counts, JobContext, JobError};
use crate::config::TargetKind;
use crate::services::reconcile::{self, ReconcileError, ReconcileOptions};
use crate::services::ServiceError;

pub async fn run_once(ctx: &JobContext<'_>) -> Result<Counts, JobError> {
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
    let expected = reconcile::expected_guests(ctx.deps).await?;
    for t in targets {
        let outcome = reconcile::reconcile_target(
            ctx.deps,
            ctx.sync,
            &ctx.actor,
            &t.name,
            &expected,
            ReconcileOptions::default(),
        )
        .await
        .map_err(|e| match e {
            ReconcileError::Service(e) => e,
            other => ServiceError::Corrupt(other.to_string()),
        })?;
        let r = &outcome.report;
        if outcome.refused.is_some() {
            *counts.entry("refused").or_default() += 1;
            *counts.entry("would_deactivate").or_default() += r.removals() as u64;
        } else {
            *counts.entry("created").or_default() += r.created as u64;
            *counts.entry("updated").or_default() += r.updated as u64;
            *counts.entry("deactivated").or_default() += r.deactivated as u64;
            *counts.entry("deleted").or_default() += r.deleted as u64;
        }
        *counts.entry("unowned").or_default() += r.unowned.len() as u64;
        *counts.entry("failures").or_default() += r.failures.len() as u64;
    }
    Ok(counts)
}
