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
use crate::domain::lifecycle::Event;
use crate::mail::smtp::SmtpSender;
use crate::services::invitations::partner_of;
use crate::services::mail_sender::{self, RetryPolicy};
use crate::services::{access, Actor, Deps, ServiceError};
use crate::store::guests::GuestRow;
use crate::store::job_runs;
use crate::store::Tx;

pub use crate::domain::JobName;

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
    #[error(transparent)]
    Unknown(#[from] crate::domain::job::UnknownJob),
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
    let job: JobName = name.parse()?;
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
        if !job_runs::acquire_lease(&mut conn, name, instance, wall, lease_until).await? {
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
        job_runs::start_run(&mut conn, &run_id, name, instance, now_ms, wall).await?;
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
            lease_ms: settings.portal.mail_lease_ms,
        },
        sync: &settings.sync,
    };
    // The lease is renewed while the run works, so a run longer than the lease is not
    // joined by a second one; a run that lost it anyway (stalled past it) overlaps at worst,
    // and every job re-checks what is due in the transaction that acts on it.
    let renewal = keep_lease(
        deps.db.clone(),
        name.to_string(),
        instance.to_string(),
        i64::from(settings.jobs.lease_seconds) * 1000,
    );
    let result = match job {
        JobName::Reminders => reminders::run_once(&ctx).await,
        JobName::Expiry => expiry::run_once(&ctx).await,
        JobName::Deprovision => deprovision::run_once(&ctx).await,
        JobName::Reconcile => reconcile::run_once(&ctx).await,
        JobName::Housekeeping => housekeeping::run_once(&ctx).await,
        JobName::Outbox => run_outbox(&ctx, instance).await,
    };
    drop(renewal);
    let mut conn = deps.db.pool().acquire().await?;
    let finished = to_millis(Utc::now());
    match &result {
        Ok(counts) => {
            job_runs::finish_run(
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
            job_runs::finish_run(
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
    job_runs::release_lease(&mut conn, name, instance).await?;
    Ok(RunReport {
        job: name.to_string(),
        counts: result?,
        ran: true,
    })
}

/// A task that stops when dropped, so a cancelled run stops renewing its lease.
struct Renewal(tokio::task::JoinHandle<()>);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renew a job's lease every third of its length while the returned guard lives.
fn keep_lease(db: crate::store::Db, job: String, owner: String, lease_ms: i64) -> Renewal {
    Renewal(tokio::spawn(async move {
        let every =
            std::time::Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1).max(1));
        loop {
            tokio::time::sleep(every).await;
            let wall = to_millis(Utc::now());
            let renewed = match db.pool().acquire().await {
                Ok(mut conn) => {
                    job_runs::renew_lease(&mut conn, &job, &owner, wall, wall + lease_ms).await
                }
                Err(e) => Err(e),
            };
            match renewed {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(job = %job, "job lease lost while running; another run may overlap");
                    return;
                }
                Err(e) => tracing::warn!(job = %job, error = %e, "could not renew the job lease"),
            }
        }
    }))
}

async fn run_outbox(ctx: &JobContext<'_>, instance: &str) -> Result<Counts, JobError> {
    let mut counts = Counts::new();
    let Some(smtp) = ctx.smtp else {
        counts.insert("skipped_no_smtp", 1);
        return Ok(counts);
    };
    let d = mail_sender::deliver_due(ctx.deps, smtp, ctx.retry, &format!("job:{instance}")).await?;
    counts.insert("sent", d.sent);
    counts.insert("retrying", d.retrying);
    counts.insert("given_up", d.given_up);
    Ok(counts)
}

/// The guest `id`, locked for a change in `tx` (see `services::access::lock`). Jobs read a
/// guest they may change this way, so a run decides on what another instance just wrote.
pub(crate) async fn lock_guest(tx: &mut Tx, id: &str) -> Result<Option<GuestRow>, JobError> {
    Ok(access::lock(tx, id).await?)
}

/// Apply a lifecycle event to a guest (read with [`lock_guest`]) in `tx`. This is the only
/// way a job changes a guest's access, and it goes through `services::access`, which writes
/// the audit entry, ends open invitations and sessions when access ends, and queues the sync
/// targets' events. Returns whether the state changed.
pub(crate) async fn apply_event(
    tx: &mut Tx,
    ctx: &JobContext<'_>,
    guest: &GuestRow,
    event: Event,
) -> Result<bool, JobError> {
    let applied = access::apply(
        tx,
        ctx.deps,
        &ctx.actor,
        &ctx.actor.label,
        guest,
        event,
        json!({"run": ctx.actor.request_id}),
        |_| {},
    )
    .await?;
    Ok(matches!(applied, access::Applied::Changed { .. }))
}

/// Some of a guest's grants ended while others go on (see `services::access::grants_ended`).
pub(crate) async fn grants_ended(
    tx: &mut Tx,
    ctx: &JobContext<'_>,
    guest: &GuestRow,
    ended: &[(&str, &str, &str, i64)],
) -> Result<bool, JobError> {
    Ok(access::grants_ended(tx, ctx.deps, &ctx.actor, &ctx.actor.label, guest, ended).await?)
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
