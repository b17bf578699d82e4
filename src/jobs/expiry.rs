//! `expiry`: warn guests (and sponsors) K days before a grant ends, once per grant end; at
//! the end, a guest with no grant left is suspended.

use chrono::Duration;
use serde_json::json;

use super::{apply_event, Counts, JobContext, JobError, BATCH};
use crate::clock::from_millis;
use crate::domain::lifecycle::Event;
use crate::services::mailer::{self, MailRequest};
use crate::store::guests as guest_store;
use crate::store::jobs as job_store;

pub async fn run_once(ctx: &JobContext<'_>) -> Result<Counts, JobError> {
    let mut counts = Counts::new();
    let now = ctx.now_ms();
    let horizon =
        now + Duration::days(i64::from(ctx.settings.expiry_warning_days)).num_milliseconds();
    let rules = ctx.deps.rules();
    // Warnings: every grant ending within the horizon, each end warned once.
    let mut from = now;
    loop {
        let ending = {
            let mut conn = ctx.deps.db.pool().acquire().await?;
            job_store::grants_ending(&mut conn, from, horizon, BATCH).await?
        };
        let Some(last) = ending.last() else { break };
        let next_from = last.4;
        for (guest_id, app, role, rule, until) in &ending {
            let key = format!("expiry_warning:{guest_id}:{app}:{role}:{rule}:{until}");
            let mut tx = ctx.deps.db.begin_write().await?;
            let Some(guest) = guest_store::get(&mut tx, guest_id).await? else {
                continue;
            };
            if !matches!(guest.state.as_str(), "invited" | "active") {
                continue;
            }
            if job_store::record_notice(&mut tx, &key, guest_id, now).await? {
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
        from = next_from;
    }
    // Ends: guests whose last grant has ended.
    loop {
        let due = {
            let mut conn = ctx.deps.db.pool().acquire().await?;
            job_store::guests_expired(&mut conn, now, BATCH).await?
        };
        let mut changed = 0;
        // One transaction per batch: each guest's change is still whole, and a batch that
        // fails is simply done again by the next run.
        let mut tx = ctx.deps.db.begin_write().await?;
        for id in &due {
            let Some(guest) = guest_store::get(&mut tx, id).await? else {
                continue;
            };
            if apply_event(&mut tx, ctx, &guest, Event::Expire).await? {
                changed += 1;
            }
        }
        tx.commit().await?;
        if changed > 0 {
            *counts.entry("expired").or_default() += changed;
        }
        if changed == 0 || due.len() < BATCH as usize {
            return Ok(counts);
        }
    }
}
