//! The scheduled jobs as administrators see them: each job's schedule, latest run, next run
//! and whether it runs now, and its history. Running a job once is `jobs::run_once`, the
//! same function as `guestbridge jobs run NAME --now` (the jobs sit above the services).

use chrono::{DateTime, Utc};

use super::{Deps, ServiceError};
use crate::domain::JobName;
use crate::store::job_history::{self, RunRow};

/// One job's standing.
#[derive(Debug, Clone)]
pub struct JobStatus {
    pub name: JobName,
    /// The cron schedule (with seconds), when the job is scheduled.
    pub schedule: Option<String>,
    pub last_run: Option<RunRow>,
    pub next_run: Option<DateTime<Utc>>,
    /// A run holds the job's lease now.
    pub running: bool,
}

/// The next time `cron` fires after `now`, read as the scheduler reads it.
pub fn next_run(cron: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    croner::Cron::new(cron)
        .with_seconds_required()
        .with_dom_and_dow()
        .parse()
        .ok()?
        .find_next_occurrence(&now, false)
        .ok()
}

/// Every job, in `jobs list` order, with `schedules` the settings' (name, cron) pairs. The
/// next run is when the schedule next fires (an instance with `GUESTBRIDGE_JOBS=off` runs
/// none itself; another instance may).
pub async fn list(
    deps: &Deps,
    schedules: &[(String, String)],
) -> Result<Vec<JobStatus>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let wall = Utc::now();
    let mut out = Vec::new();
    for name in JobName::ALL {
        let schedule = schedules
            .iter()
            .find(|(n, _)| n == name.as_str())
            .map(|(_, c)| c.clone());
        let last_run = job_history::runs(&mut conn, name.as_str(), None, 1)
            .await?
            .into_iter()
            .next();
        let running =
            job_history::lease_held(&mut conn, name.as_str(), crate::clock::to_millis(wall))
                .await?;
        let next_run = schedule.as_deref().and_then(|c| next_run(c, wall));
        out.push(JobStatus {
            name,
            schedule,
            last_run,
            next_run,
            running,
        });
    }
    Ok(out)
}

/// A page of a job's runs, newest first, before `before` (started_at, id).
pub async fn runs(
    deps: &Deps,
    job: JobName,
    before: Option<(i64, String)>,
    limit: i64,
) -> Result<Vec<RunRow>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(job_history::runs(
        &mut conn,
        job.as_str(),
        before.as_ref().map(|(t, id)| (*t, id.as_str())),
        limit,
    )
    .await?)
}
