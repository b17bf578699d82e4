//! `reminders`: an invitation not redeemed after N days gets a reminder, up to M; after the
//! last one has had its time, the invitation lapses, the guest is suspended and the sponsor
//! is told. Each reminder is a unique (invitation, number) row written with its mail.

use chrono::Duration;
use serde_json::json;

use super::{apply_event, lock_guest, partner_for, Counts, JobContext, JobError, BATCH};
use crate::clock::from_millis;
use crate::domain::lifecycle::Event;
use crate::domain::GuestState;
use crate::services::invitations::{audit_guest, granted_apps};
use crate::services::mailer::{self, MailRequest};
use crate::store::due_work;

pub async fn run_once(ctx: &JobContext<'_>) -> Result<Counts, JobError> {
    let mut counts = Counts::new();
    let interval = Duration::days(i64::from(ctx.settings.reminder_after_days)).num_milliseconds();
    let now = ctx.now_ms();
    loop {
        let due = {
            let mut conn = ctx.deps.db.pool().acquire().await?;
            due_work::due_invitations(&mut conn, now, BATCH).await?
        };
        if due.is_empty() {
            return Ok(counts);
        }
        for id in due {
            let mut tx = ctx.deps.db.begin_write().await?;
            // Due-ness is decided again here, under the lock, not from the list: two runs at
            // one instant list the same invitations, and only the first to get here acts.
            let Some((guest_id, sent)) = due_work::lock_due_invitation(&mut tx, &id, now).await?
            else {
                continue;
            };
            let Some(guest) = lock_guest(&mut tx, &guest_id).await? else {
                continue;
            };
            if guest.state.parse::<GuestState>().ok() != Some(GuestState::Invited) {
                due_work::set_next_action(&mut tx, &id, None).await?;
                tx.commit().await?;
                continue;
            }
            let partner = partner_for(&mut tx, &guest).await?;
            let number = sent + 1;
            if number <= i64::from(ctx.settings.max_reminders) {
                if due_work::record_reminder(&mut tx, &id, number, now).await? {
                    if let Some(email) = guest.email.as_deref() {
                        let apps = granted_apps(&mut tx, ctx.deps, &guest.id).await?;
                        // A reminder carries a fresh link: the old secret is not stored to re-send.
                        let token = crate::auth::secrets::random_token(32);
                        sqlx::query("UPDATE invitations SET token_hash = $1 WHERE id = $2")
                            .bind(crate::auth::secrets::hash_token(&token))
                            .bind(&id)
                            .execute(&mut *tx)
                            .await?;
                        let expires_at: i64 =
                            sqlx::query_scalar("SELECT expires_at FROM invitations WHERE id = $1")
                                .bind(&id)
                                .fetch_one(&mut *tx)
                                .await?;
                        mailer::queue(
                            &mut tx,
                            ctx.deps,
                            MailRequest {
                                to: email,
                                template: "reminder",
                                partner: Some(partner.slug.as_str()),
                                language: guest.language.as_deref(),
                                context: json!({
                                    "guest_name": guest.display_name.clone().unwrap_or_else(|| guest.user_name.clone()),
                                    "inviter": ctx.deps.portal.organization,
                                    "partner_name": partner.name,
                                    "apps": apps,
                                    "link": format!("{}/invite/{token}", ctx.deps.portal.public_url),
                                    "expires_at": from_millis(expires_at).format("%-d %B %Y").to_string(),
                                    "sponsor": guest.sponsor,
                                    "reminder_number": number,
                                }),
                                idempotency_key: format!("reminder:{id}:{number}"),
                                guest_id: Some(&guest.id),
                            },
                        )
                        .await?;
                    }
                    audit_guest(
                        &mut tx,
                        &ctx.actor,
                        &guest,
                        "invitation.reminded",
                        json!({"invitation": id, "number": number}),
                        now,
                    )
                    .await?;
                    *counts.entry("reminders_sent").or_default() += 1;
                }
                due_work::set_next_action(&mut tx, &id, Some(now + interval)).await?;
            } else {
                // Every reminder has had its time: the invitation lapses.
                apply_event(&mut tx, ctx, &guest, Event::Lapse).await?;
                due_work::set_next_action(&mut tx, &id, None).await?;
                if let Some(sponsor) = guest.sponsor.as_deref() {
                    mailer::queue(
                        &mut tx,
                        ctx.deps,
                        MailRequest {
                            to: sponsor,
                            template: "lapsed_notice",
                            partner: Some(partner.slug.as_str()),
                            language: None,
                            context: json!({"guest_name": guest.display_name.clone().unwrap_or_else(|| guest.user_name.clone()), "partner_name": partner.name}),
                            idempotency_key: format!("lapsed:{id}"),
                            guest_id: Some(&guest.id),
                        },
                    )
                    .await?;
                }
                *counts.entry("lapsed").or_default() += 1;
            }
            tx.commit().await?;
        }
    }
}
