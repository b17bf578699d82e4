//! Reconciling a SCIM sync target with the guests decided here: one path for the scheduled
//! `reconcile` job, `guestbridge sync reconcile` and the admin API. The connector plans first;
//! a dry run stops there. A plan that would take access from more users than the cap allows
//! is refused (and audited) unless forced, because a mass deactivation is far more often a
//! fault (an emptied table, a wrong token or prefix) than an intent.

use serde_json::json;

use super::{sync, Actor, Deps, ServiceError};
use crate::config::{SyncSettings, TargetKind};
use crate::connectors::scim::{DriftReport, Expected};
use crate::connectors::{DeliveryError, GuestSnapshot};
use crate::store::audit::{self, AuditEntry};
use crate::store::due_work;

#[derive(Debug, Clone, Copy, Default)]
pub struct ReconcileOptions {
    /// Plan and report; change nothing.
    pub dry_run: bool,
    /// Go ahead even past the deactivation cap.
    pub force: bool,
}

/// What one reconciliation of one target planned, and did unless a dry run or refused.
#[derive(Debug, Clone)]
pub struct ReconcileOutcome {
    pub target: String,
    pub dry_run: bool,
    /// Users in the target's ownership records before the run.
    pub owned: usize,
    /// The most users the run may deactivate or delete without `force`.
    pub cap: usize,
    /// The plan's counts and changes when nothing was applied, else what was done.
    pub report: DriftReport,
    /// Why the plan was refused (nothing was changed), if it was.
    pub refused: Option<String>,
}

impl ReconcileOutcome {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "target": self.target,
            "dry_run": self.dry_run,
            "owned": self.owned,
            "cap": self.cap,
            "refused": self.refused,
            "report": self.report.to_json(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("no sync target named {0:?}")]
    UnknownTarget(String),
    #[error("sync target {0:?} is not a SCIM target; only SCIM targets are reconciled")]
    NotScim(String),
    #[error("reconciling {target}: {error}")]
    Target {
        target: String,
        error: DeliveryError,
    },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<crate::store::DbError> for ReconcileError {
    fn from(e: crate::store::DbError) -> Self {
        ReconcileError::Service(e.into())
    }
}

/// Every guest as targets should see it; a snapshot that does not read back is listed apart
/// so that its guest's users are left alone rather than taken for strangers.
pub async fn expected_guests(deps: &Deps) -> Result<Expected, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let mut expected = Expected::default();
    for id in due_work::all_guest_ids(&mut conn).await? {
        let Some(snapshot) = sync::snapshot(&mut conn, deps, &id).await? else {
            continue;
        };
        add_snapshot(&mut expected, id, snapshot);
    }
    Ok(expected)
}

/// The states a snapshot can carry (suspension reasons folded into `suspended`).
const SNAPSHOT_STATES: [&str; 5] = [
    "invited",
    "active",
    "suspended",
    "removed",
    "pending_approval",
];

/// Add one guest's snapshot to `expected`, or to its unreadable guests when its stored state
/// is none we know: its user downstream is then left alone, not taken for a stranger's.
fn add_snapshot(expected: &mut Expected, guest_id: String, snapshot: GuestSnapshot) {
    if SNAPSHOT_STATES.contains(&snapshot.state.as_str()) {
        expected.guests.push(snapshot);
    } else {
        tracing::error!(%guest_id, "guest state unreadable; not reconciled");
        let why = format!("unknown state {:?}", snapshot.state);
        expected.unreadable.push((guest_id, why));
    }
}

/// Reconcile the SCIM target `name` with `expected`.
#[tracing::instrument(skip_all, fields(target = name, dry_run = options.dry_run, force = options.force), err(Display))]
pub async fn reconcile_target(
    deps: &Deps,
    sync: &SyncSettings,
    actor: &Actor,
    name: &str,
    expected: &Expected,
    options: ReconcileOptions,
) -> Result<ReconcileOutcome, ReconcileError> {
    let target = sync
        .targets
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| ReconcileError::UnknownTarget(name.to_string()))?;
    if target.kind != TargetKind::Scim {
        return Err(ReconcileError::NotScim(name.to_string()));
    }
    let to_target = |error: DeliveryError| ReconcileError::Target {
        target: name.to_string(),
        error,
    };
    let connector = crate::connectors::build::scim_connector(target, &deps.db)
        .map_err(|e| ServiceError::Corrupt(format!("sync target {name}: {e}")))?;
    let plan = connector.plan(expected).await.map_err(to_target)?;
    let mut outcome = ReconcileOutcome {
        target: name.to_string(),
        dry_run: options.dry_run,
        owned: plan.owned,
        cap: plan.cap(),
        report: plan.report.clone(),
        refused: None,
    };
    let removals = plan.report.removals();
    if removals > outcome.cap && !options.force {
        let reason = format!(
            "reconciling {name} would deactivate or delete {removals} users, more than the cap of {} ({} owned); nothing was changed (force to go ahead)",
            outcome.cap, outcome.owned
        );
        if !options.dry_run {
            audit_run(deps, actor, name, "sync.reconcile_refused", &outcome).await?;
        }
        tracing::error!(
            target_name = name,
            removals,
            cap = outcome.cap,
            "reconcile refused"
        );
        outcome.refused = Some(reason);
        return Ok(outcome);
    }
    if options.dry_run {
        return Ok(outcome);
    }
    outcome.report = connector.apply(plan).await.map_err(to_target)?;
    audit_run(deps, actor, name, "sync.reconciled", &outcome).await?;
    Ok(outcome)
}

async fn audit_run(
    deps: &Deps,
    actor: &Actor,
    name: &str,
    action: &str,
    outcome: &ReconcileOutcome,
) -> Result<(), ServiceError> {
    let r = &outcome.report;
    let entry = AuditEntry {
        actor: &actor.label,
        partner_id: None,
        action,
        target_type: "sync_target",
        target_id: Some(name),
        request_id: actor.request_id.as_deref(),
        detail: json!({
            "owned": outcome.owned, "cap": outcome.cap, "created": r.created, "changed": r.updated,
            "deactivated": r.deactivated, "deleted": r.deleted, "unowned": r.unowned.len(),
            "errors": r.failures.len(),
        }),
    };
    let mut conn = deps.db.pool().acquire().await?;
    audit::append(&mut conn, &entry, deps.now_ms()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_snapshot_is_kept_apart_not_dropped() {
        let mut expected = Expected::default();
        let snapshot = |id: &str, state: &str| GuestSnapshot {
            guest_id: id.into(),
            partner: "acme".into(),
            user_name: "a".into(),
            email: None,
            display_name: None,
            given_name: None,
            family_name: None,
            state: state.into(),
            grants: Vec::new(),
            version: 0,
        };
        add_snapshot(&mut expected, "g1".into(), snapshot("g1", "active"));
        add_snapshot(&mut expected, "g2".into(), snapshot("g2", "frozen"));
        assert_eq!(expected.guests.len(), 1);
        assert_eq!(expected.unreadable.len(), 1);
        assert_eq!(expected.unreadable[0].0, "g2");
    }
}
