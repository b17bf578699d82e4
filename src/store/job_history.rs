//! Reading job runs and leases for administrators: a job's runs newest first (keyset), and
//! whether a run holds the job's lease now.

use sqlx::{AnyConnection, Row};

use super::DbError;

/// One recorded run.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: String,
    pub job: String,
    pub instance: String,
    /// The instant the run acted at (`--now`).
    pub run_for: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// `running`, `ok` or `failed`.
    pub outcome: String,
    /// The counts as JSON text.
    pub counts: String,
    pub error: Option<String>,
}

fn run(r: &sqlx::any::AnyRow) -> Result<RunRow, DbError> {
    Ok(RunRow {
        id: r.try_get("id")?,
        job: r.try_get("job")?,
        instance: r.try_get("instance")?,
        run_for: r.try_get("run_for")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        outcome: r.try_get("outcome")?,
        counts: r.try_get("counts")?,
        error: r.try_get("error")?,
    })
}

const COLUMNS: &str = "id, job, instance, run_for, started_at, finished_at, outcome, counts, error";

/// A job's runs, newest first, before the run (started_at, id) if given.
pub async fn runs(
    conn: &mut AnyConnection,
    job: &str,
    before: Option<(i64, &str)>,
    limit: i64,
) -> Result<Vec<RunRow>, DbError> {
    let rows = match before {
        Some((t, id)) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM job_runs WHERE job = $1 AND (started_at, id) < ($2, $3)
                 ORDER BY started_at DESC, id DESC LIMIT $4"
            ))
            .bind(job)
            .bind(t)
            .bind(id)
            .bind(limit)
            .fetch_all(conn)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM job_runs WHERE job = $1
                 ORDER BY started_at DESC, id DESC LIMIT $2"
            ))
            .bind(job)
            .bind(limit)
            .fetch_all(conn)
            .await?
        }
    };
    rows.iter().map(run).collect()
}

/// Whether a run holds `job`'s lease at `now` (wall clock).
pub async fn lease_held(conn: &mut AnyConnection, job: &str, now: i64) -> Result<bool, DbError> {
    let row = sqlx::query("SELECT 1 AS one FROM job_leases WHERE job = $1 AND until >= $2")
        .bind(job)
        .bind(now)
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}
