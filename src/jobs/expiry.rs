//! `expiry`: warn guests (and sponsors) K days before a grant ends, once per grant end. When
//! a grant ends, the sync targets are told (the guest loses that app), and a guest with no
//! grant left is suspended instead, which tells them too.

use chrono::Duration;
use serde_json::json;

use std::collections::BTreeMap;

use super::{apply_event, grants_ended, lock_guest, Counts, JobContext, JobError, BATCH};
use crate::clock::from_millis;
use crate::domain::lifecycle::Event;
use crate::services::mailer::{self, MailRequest};
use crate::store::due_work;
use crate::store::due_work::GrantEnd;
use crate::store::guests as guest_store;

pub async fn run_once(ctx: &JobContext<'_>) -> Result<Counts, JobError> {
    let mut counts = Counts::new();
    let now = ctx.now_ms();
    let horizon =
        now + Duration::days(i64::from(ctx.settings.expiry_warning_days)).num_milliseconds();
    let rules = ctx.deps.rules();
    // Warnings: every grant ending within the horizon, each end warned once.
    let mut after = None;
    loop {
        let ending = {
            let mut conn = ctx.deps.db.pool().acquire().await?;
            due_work::grants_ending(&mut conn, now, horizon, after.as_ref(), BATCH).await?
        };
        let Some(last) = ending.last().cloned() else {
            break;
        };
        for (guest_id, app, role, rule, until) in &ending {
            let key = format!("expiry_warning:{guest_id}:{app}:{role}:{rule}:{until}");
            let mut tx = ctx.deps.db.begin_write().await?;
            let Some(guest) = guest_store::get(&mut tx, guest_id).await? else {
                continue;
            };
            if !matches!(guest.state.as_str(), "invited" | "active") {
                continue;
            }
            if due_work::record_notice(&mut tx, &key, guest_id, now).await? {
                let app_name = rules
                    .app(app)
                    .map(|a| a.name.clone())
                    .unwrap_or_else(|| app.clone());
                let ctx_json = json!({
                    "guest_name": guest.display_name.clone().unwrap_or_else(|| guest.user_name.clone()),
                    "apps": [{"name": app_name}],
                    "ends_at": from_millis(*until).format("%-d %B %Y").to_string(),
                    "sponsor": guest.sponsor,
                });
                let recipients = guest
                    .email
                    .iter()
                    .map(|e| (e.as_str(), ""))
                    .chain(guest.sponsor.iter().map(|s| (s.as_str(), ":sponsor")));
                for (to, suffix) in recipients {
                    mailer::queue(
                        &mut tx,
                        ctx.deps,
                        MailRequest {
                            to,
                            template: "expiry_warning",
                            partner: None,
                            language: guest.language.as_deref(),
                            context: ctx_json.clone(),
                            idempotency_key: format!("{key}{suffix}"),
                            guest_id: Some(guest_id),
                        },
                    )
                    .await?;
                }
                *counts.entry("warnings").or_default() += 1;
            }
            tx.commit().await?;
        }
        if ending.len() < BATCH as usize {
            break;
        }
        after = Some(last);
    }
    end_grants(ctx, &mut counts).await?;
    // Guests whose access ended although no grant end is due now: their ends were seen while
    // they waited for approval, and an admin approved them afterwards.
    let mut after = None;
    loop {
        let due = {
            let mut conn = ctx.deps.db.pool().acquire().await?;
            due_work::guests_expired(&mut conn, now, after.as_ref(), BATCH).await?
        };
        // One transaction per batch: each guest's change is still whole, and a batch that
        // fails is simply done again by the next run.
        let mut tx = ctx.deps.db.begin_write().await?;
        for (_, id) in &due {
            let Some(guest) = lock_guest(&mut tx, id).await? else {
                continue;
            };
            if apply_event(&mut tx, ctx, &guest, Event::Expire).await? {
                *counts.entry("expired").or_default() += 1;
            }
        }
        tx.commit().await?;
        if due.len() < BATCH as usize {
            return Ok(counts);
        }
        after = due.last().cloned();
    }
}

/// Act on every grant end due by now, once each: a guest left with no current grant
/// expires; one who keeps others is synced without the ended grant.
async fn end_grants(ctx: &JobContext<'_>, counts: &mut Counts) -> Result<(), JobError> {
    let now = ctx.now_ms();
    loop {
        let ended = {
            let mut conn = ctx.deps.db.pool().acquire().await?;
            due_work::grants_ended(&mut conn, now, BATCH).await?
        };
        let mut by_guest: BTreeMap<&str, Vec<&GrantEnd>> = BTreeMap::new();
        for end in &ended {
            by_guest.entry(end.0.as_str()).or_default().push(end);
        }
        let mut tx = ctx.deps.db.begin_write().await?;
        // Grants first, then each guest, then its sync row: the order a SCIM write takes them
        // in, so the two never wait on each other in a cycle (PostgreSQL). One statement marks
        // the whole batch's ends.
        let guests: Vec<&str> = by_guest.keys().copied().collect();
        due_work::mark_ends_seen(&mut tx, &guests, now).await?;
        for (guest_id, ends) in by_guest {
            let Some(guest) = lock_guest(&mut tx, guest_id).await? else {
                continue;
            };
            *counts.entry("grants_ended").or_default() += ends.len() as u64;
            // A guest's access ends with their last grant (never, while one is unbounded).
            let current = guest.access_until.is_none_or(|u| u > now);
            if !current && apply_event(&mut tx, ctx, &guest, Event::Expire).await? {
                *counts.entry("expired").or_default() += 1;
                continue;
            }
            let ends: Vec<_> = ends
                .iter()
                .map(|(_, app, role, rule, until)| {
                    (app.as_str(), role.as_str(), rule.as_str(), *until)
                })
                .collect();
            grants_ended(&mut tx, ctx, &guest, &ends).await?;
        }
        tx.commit().await?;
        if ended.len() < BATCH as usize {
            return Ok(());
        }
    }
}
