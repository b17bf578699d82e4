//! `housekeeping`: deletes what no longer serves anything, so that tables written on every
//! sign-in or run do not grow without end: expired portal and console sessions, e-mail codes,
//! sign-in links and console setup links, rate-limit counters of past windows, job runs older than `job_run_days` (each
//! job's latest run is kept), records of expiry warnings whose grant end is long past, and
//! settled sync events and mail older than `sync_retention_days` / `mail_retention_days`.
//! Pruning mail repeats nothing: every effect a mail announces is recorded elsewhere
//! (invitation state, reminder and notice rows), not by the mail's idempotency key alone.
//! Idempotent: a second run finds nothing.

use chrono::Duration;

use super::{Counts, JobContext, JobError, BATCH};
use crate::store::housekeeping::{delete_batch, Expired};

/// Codes and links are kept a day past their end, so a guest who follows a stale one a little
/// late is told it expired rather than that it never existed.
const GRACE_MS: i64 = 24 * 60 * 60 * 1000;

pub async fn run_once(ctx: &JobContext<'_>) -> Result<Counts, JobError> {
    let now = ctx.now_ms();
    let mut counts = Counts::new();
    for what in Expired::ALL {
        let before = match what {
            Expired::Sessions | Expired::AdminSessions => now,
            Expired::EmailCodes
            | Expired::OAuthCodes
            | Expired::RefreshTokens
            | Expired::SigninLinks
            | Expired::AdminLinks
            | Expired::RateLimits => now - GRACE_MS,
            Expired::JobRuns => {
                now - Duration::days(i64::from(ctx.settings.job_run_days)).num_milliseconds()
            }
            // An expiry warning is sent at most `expiry_warning_days` before the end it
            // announces, and `expiry` only looks at ends still to come: past that, its record
            // can never be consulted again. A month's margin covers runs `--now` a little back.
            Expired::SyncDelivered | Expired::SyncDead => {
                now - Duration::days(i64::from(ctx.settings.sync_retention_days)).num_milliseconds()
            }
            Expired::MailSent | Expired::MailFailed => {
                now - Duration::days(i64::from(ctx.settings.mail_retention_days)).num_milliseconds()
            }
            Expired::Notices => {
                now - Duration::days(i64::from(ctx.settings.expiry_warning_days) + 30)
                    .num_milliseconds()
            }
        };
        let mut deleted = 0;
        loop {
            // One short write transaction per batch, so portal sign-ins are not held up.
            let mut tx = ctx.deps.db.begin_write().await?;
            let n = delete_batch(&mut tx, what, before, BATCH).await?;
            tx.commit().await?;
            deleted += n;
            if n < BATCH as u64 {
                break;
            }
        }
        if deleted > 0 {
            counts.insert(what.name(), deleted);
        }
    }
    Ok(counts)
}
