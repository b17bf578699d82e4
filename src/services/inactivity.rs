//! The inactive-guest policy, per partner: an active guest not seen for `inactive_days` (the
//! partner's, or the `inactivity_days` setting) is suspended as inactive; with
//! `inactive_remove_after_days`, a guest still unseen that many days later is removed. Both
//! dates follow from the last activity alone, so [`plan`] says exactly what a `deprovision`
//! run at an instant does, and when each later step falls due — the preview and the job are
//! the same code.

use serde::Serialize;

use super::{Deps, ServiceError};
use crate::store::{due_work, partners};

const DAY_MS: i64 = 86_400_000;
/// Most guests one partner's plan lists per step (the job acts on them, a later run on more).
pub const PER_PARTNER: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Suspend,
    Remove,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Suspend => "suspend",
            Step::Remove => "remove",
        }
    }
}

/// One guest the policy reaches by `until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    pub step: Step,
    pub guest_id: String,
    pub user_name: String,
    pub partner: String,
    pub last_seen_at: i64,
    /// When the step is due: last activity plus the threshold (plus the grace, to remove).
    pub due_at: i64,
}

/// What the policy does to guests of `partner` (every partner when `None`) from now up to
/// `until`: those due at or before `now` are what a run at `now` acts on.
pub async fn plan(
    deps: &Deps,
    default_days: u32,
    partner: Option<&str>,
    until: i64,
) -> Result<Vec<Planned>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let rules = deps.rules();
    let mut out = Vec::new();
    for p in partners::list(&mut conn).await? {
        if partner.is_some_and(|s| s != p.slug.as_str()) {
            continue;
        }
        let policy = rules.policy(p.slug.as_str());
        let threshold = i64::from(policy.inactive_days.unwrap_or(default_days)) * DAY_MS;
        let suspend_cutoff = until - threshold;
        for (id, user_name, seen, _) in due_work::partner_guests_unseen_since(
            &mut conn,
            &p.id,
            &["active"],
            suspend_cutoff,
            PER_PARTNER,
        )
        .await?
        {
            out.push(Planned {
                step: Step::Suspend,
                guest_id: id,
                user_name,
                partner: p.slug.to_string(),
                last_seen_at: seen,
                due_at: seen + threshold,
            });
        }
        let Some(grace_days) = policy.inactive_remove_after_days else {
            continue;
        };
        let grace = i64::from(grace_days) * DAY_MS;
        // An active guest this far behind is suspended by a run first, and removed by the
        // same run: the removal step follows the suspension.
        for (id, user_name, seen, _) in due_work::partner_guests_unseen_since(
            &mut conn,
            &p.id,
            &["active", "suspended:inactive"],
            suspend_cutoff - grace,
            PER_PARTNER,
        )
        .await?
        {
            out.push(Planned {
                step: Step::Remove,
                guest_id: id,
                user_name,
                partner: p.slug.to_string(),
                last_seen_at: seen,
                due_at: seen + threshold + grace,
            });
        }
    }
    out.sort_by(|a, b| (a.due_at, a.step, &a.guest_id).cmp(&(b.due_at, b.step, &b.guest_id)));
    Ok(out)
}
