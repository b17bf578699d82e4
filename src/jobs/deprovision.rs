//! `deprovision`: the safety net behind the SCIM and import paths (a person the partner
//! deactivated loses access; deletion removes the guest in the deleting transaction itself), suspension after N days without sign-in, and
//! erasure of removed guests' personal data after the retention period, from every table
//! that holds it (`store::erasure`), once their last sync event is settled.

use chrono::Duration;
use serde_json::json;

use super::{apply_event, lock_guest, Counts, JobContext, JobError, BATCH};
use crate::domain::lifecycle::Event;
use crate::services::inactivity::{self, Step};
use crate::services::invitations::audit_guest;
use crate::store::due_work;
use crate::store::erasure;

pub async fn run_once(ctx: &JobContext<'_>) -> Result<Counts, JobError> {
    let mut counts = Counts::new();
    let now = ctx.now_ms();
    let mut conn = ctx.deps.db.pool().acquire().await?;

    for (guest_id, _) in due_work::guests_of_inactive_people(&mut conn, BATCH * 20).await? {
        let mut tx = ctx.deps.db.begin_write().await?;
        if let Some(g) = lock_guest(&mut tx, &guest_id).await? {
            if apply_event(&mut tx, ctx, &g, Event::Deactivate).await? {
                *counts.entry("deactivated").or_default() += 1;
            }
        }
        tx.commit().await?;
    }

    // The per-partner inactivity policy; `policy preview` lists the same plan.
    let due = inactivity::plan(ctx.deps, ctx.settings.inactivity_days, None, now).await?;
    for planned in due {
        let mut tx = ctx.deps.db.begin_write().await?;
        if let Some(g) = lock_guest(&mut tx, &planned.guest_id).await? {
            // Seen again since the plan was read: the policy no longer applies.
            let seen = due_work::last_seen(&mut tx, &g.id).await?;
            if seen == Some(planned.last_seen_at) {
                let (event, count) = match planned.step {
                    Step::Suspend => (Event::Inactivity, "inactive"),
                    Step::Remove => (Event::Remove, "inactive_removed"),
                };
                let eligible = match planned.step {
                    Step::Suspend => g.state == "active",
                    Step::Remove => g.state == "suspended:inactive",
                };
                if eligible && apply_event(&mut tx, ctx, &g, event).await? {
                    *counts.entry(count).or_default() += 1;
                }
            }
        }
        tx.commit().await?;
    }

    let retention = now - Duration::days(i64::from(ctx.settings.retention_days)).num_milliseconds();
    for guest_id in erasure::due(&mut conn, retention, BATCH * 20).await? {
        let mut tx = ctx.deps.db.begin_write().await?;
        if let Some(g) = lock_guest(&mut tx, &guest_id).await? {
            let identifiers = [
                Some(&g.user_name),
                g.email.as_ref(),
                g.display_name.as_ref(),
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
            let person = erasure::Person {
                guest_id: &g.id,
                user_id: &g.user_id,
                partner_id: &g.partner_id,
                identifiers,
            };
            let rows = erasure::erase(&mut tx, &person, now).await?;
            audit_guest(
                &mut tx,
                &ctx.actor,
                &g,
                "guest.erased",
                json!({"retention_days": ctx.settings.retention_days, "rows": rows}),
                now,
            )
            .await?;
            *counts.entry("erased").or_default() += 1;
        }
        tx.commit().await?;
    }
    Ok(counts)
}
