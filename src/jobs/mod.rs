//! Scheduled jobs. Every job is `run_once(ctx)` over the work due at `ctx.now` (so a run
//! after downtime catches up), with effects made idempotent by unique rows written in the
//! same transaction as the mail they cause. One registry declares every job; a lease row
//! makes one instance run a job at a time, and a crashed run's lease expires.

pub mod deprovision;
pub mod expiry;
pub mod housekeeping;
pub mod reconcile;
pub mod reminders;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::clock::{to_millis, FixedClock};
use crate::config::{JobSettings, Settings};
use crate::domain::lifecycle::{transition, Event, GuestState};
use crate::mail::smtp::SmtpSender;
use crate::services::invitations::{audit_guest, partner_of};
use crate::services::outbox::{self, RetryPolicy};
use crate::services::{Actor, Deps, ServiceError};
use crate::store::guests::{self as guest_store, GuestRow};
use crate::store::jobs as job_store;
use crate::store::{invitations as inv_store, sessions as session_store, Tx};

/// Every job, in the order `jobs list` shows them.
pub const JOBS: &[&str] = &[
    "reminders",
    "expiry",
    "deprovision",
    "outbox",
    "reconcile",
    "housekeeping",
];

/// What one run did: counts by effect.
pub type Counts = BTreeMap<&'static str, u64>;

/// Everything a job needs; jobs never read the environment.
pub struct JobContext<'a> {
    /// Services whose clock stands at `now`.
    pub deps: &'a Deps,
    pub settings: &'a JobSettings,
    pub now: DateTime<Utc>,
    pub actor: Actor,
    pub smtp: Option<&'a SmtpSender>,
    pub retry: RetryPolicy,
    /// The outbound sync targets (for reconciliation).
    pub sync: &'a crate::config::SyncSettings,
}

impl JobContext<'_> {
    pub fn now_ms(&self) -> i64 {
        to_millis(self.now)
    }
}

/// How many due items one query takes; a run loops until nothing is due.
pub(crate) const BATCH: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("unknown job {name:?}; jobs are {}", JOBS.join(", "))]
    Unknown { name: String },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<crate::store::DbError> for JobError {
    fn from(e: crate::store::DbError) -> Self {
        JobError::Service(e.into())
    }
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub job: String,
    pub counts: Counts,
    /// False when another instance held the lease and this one did nothing.
    pub ran: bool,
}

/// Run one job once at `now`, under its lease, recording the run.
pub async fn run_once(
    name: &str,
    deps: &Deps,
    settings: &Settings,
    smtp: Option<&SmtpSender>,
    now: DateTime<Utc>,
    instance: &str,
) -> Result<RunReport, JobError> {
    if !JOBS.contains(&name) {
        return Err(JobError::Unknown {
            name: name.to_string(),
        });
    }
    // Services inside the run see the run's instant.
    let deps = Deps {
        clock: Arc::new(FixedClock(now)),
        ..deps.clone()
    };
    let now_ms = to_millis(now);
    let wall = to_millis(Utc::now());
    let lease_until = wall + i64::from(settings.jobs.lease_seconds) * 1000;
    {
        let mut conn = deps.db.pool().acquire().await?;
        if !job_store::acquire_lease(&mut conn, name, instance, wall, lease_until).await? {
            return Ok(RunReport {
                job: name.to_string(),
                counts: Counts::new(),
                ran: false,
            });
        }
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    {
        let mut conn = deps.db.pool().acquire().await?;
        job_store::start_run(&mut conn, &run_id, name, instance, now_ms, wall).await?;
    }
    let ctx = JobContext {
        deps: &deps,
        settings: &settings.jobs,
        now,
        actor: Actor {
            label: format!("job:{name}"),
            request_id: Some(run_id.clone()),
        },
        smtp,
        retry: RetryPolicy {
            base_ms: settings.portal.mail_retry_base_ms,
            max_attempts: settings.portal.mail_max_attempts,
        },
        sync: &settings.sync,
    };
    let result = match name {
        "reminders" => reminders::run_once(&ctx).await,
        "expiry" => expiry::run_once(&ctx).await,
        "deprovision" => deprovision::run_once(&ctx).await,
        "reconcile" => reconcile::run_once(&ctx).await,
        "housekeeping" => housekeeping::run_once(&ctx).await,
        _ => run_outbox(&ctx, instance).await,
    };
    let mut conn = deps.db.pool().acquire().await?;
    let finished = to_millis(Utc::now());
    match &result {
        Ok(counts) => {
            job_store::finish_run(
                &mut conn,
                &run_id,
                finished,
                "ok",
                &json!(counts).to_string(),
                None,
            )
            .await?
        }
        Err(e) => {
            job_store::finish_run(
                &mut conn,
                &run_id,
                finished,
                "failed",
                "{}",
                Some(&e.to_string()),
            )
            .await?
        }
    }
    job_store::release_lease(&mut conn, name, instance).await?;
    Ok(RunReport {
        job: name.to_string(),
        counts: result?,
        ran: true,
    })
}

async fn run_outbox(ctx: &JobContext<'_>, instance: &str) -> Result<Counts, JobError> {
    let mut counts = Counts::new();
    let Some(smtp) = ctx.smtp else {
        counts.insert("skipped_no_smtp", 1);
        return Ok(counts);
    };
    let d = outbox::deliver_due(ctx.deps, smtp, ctx.retry, &format!("job:{instance}")).await?;
    counts.insert("sent", d.sent);
    counts.insert("retrying", d.retrying);
    counts.insert("given_up", d.given_up);
    Ok(counts)
}

fn state_of(g: &GuestRow) -> Result<GuestState, ServiceError> {
    g.state
        .parse()
        .map_err(|e: crate::domain::lifecycle::UnknownState| ServiceError::Corrupt(e.to_string()))
}

/// Apply a lifecycle event to a guest in `tx`, with audit; when access ends, open
/// invitations are voided and sessions ended. Returns whether the state changed.
pub(crate) async fn apply_event(
    tx: &mut Tx,
    ctx: &JobContext<'_>,
    guest: &GuestRow,
    event: Event,
) -> Result<bool, JobError> {
    let from = state_of(guest)?;
    let Ok(to) = transition(from, event) else {
        return Ok(false);
    };
    if to == from {
        return Ok(false);
    }
    let now = ctx.now_ms();
    guest_store::update(
        tx,
        &GuestRow {
            state: to.to_string(),
            updated_at: now,
            ..guest.clone()
        },
    )
    .await?;
    audit_guest(
        tx,
        &ctx.actor,
        guest,
        "guest.state_changed",
        json!({"from": from.to_string(), "to": to.to_string(), "event": format!("{event:?}"), "cause": {"via": ctx.actor.label, "run": ctx.actor.request_id}}),
        now,
    )
    .await?;
    if !matches!(
        to,
        GuestState::Invited | GuestState::Active | GuestState::PendingApproval
    ) {
        inv_store::revoke_open(tx, &guest.id, now).await?;
        session_store::delete_guest_sessions(tx, &guest.id).await?;
    }
    Ok(true)
}

/// A job's view of a guest's partner (for mail templates).
pub(crate) async fn partner_for(
    tx: &mut Tx,
    guest: &GuestRow,
) -> Result<crate::domain::Partner, JobError> {
    Ok(partner_of(tx, guest).await?)
}

/// Start the scheduler: each job on its cron schedule, on this instance.
pub async fn start_scheduler(
    deps: Deps,
    settings: Arc<Settings>,
    smtp: Option<Arc<SmtpSender>>,
) -> anyhow::Result<tokio_cron_scheduler::JobScheduler> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let scheduler = JobScheduler::new().await?;
    let instance = format!("instance:{}", uuid::Uuid::new_v4());
    for (name, cron) in settings.jobs.schedules.clone() {
        let (deps, settings, smtp, instance) = (
            deps.clone(),
            settings.clone(),
            smtp.clone(),
            instance.clone(),
        );
        let label = name.clone();
        let job = Job::new_async(cron.as_str(), move |_id, _scheduler| {
            let (deps, settings, smtp, instance, name) = (
                deps.clone(),
                settings.clone(),
                smtp.clone(),
                instance.clone(),
                name.clone(),
            );
            Box::pin(async move {
                match run_once(
                    &name,
                    &deps,
                    &settings,
                    smtp.as_deref(),
                    Utc::now(),
                    &instance,
                )
                .await
                {
                    Ok(r) if r.ran => tracing::info!(job = %name, counts = ?r.counts, "job run"),
                    Ok(_) => tracing::debug!(job = %name, "job held by another instance"),
                    Err(e) => tracing::error!(job = %name, error = %e, "job failed"),
                }
            })
        })
        .map_err(|e| anyhow::anyhow!("setting jobs.schedules.{label}: {e}"))?;
        scheduler.add(job).await?;
    }
    scheduler.start().await?;
    Ok(scheduler)
}
