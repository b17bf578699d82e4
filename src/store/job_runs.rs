//! Job bookkeeping: leases (a scheduled run happens once across instances) and run records.

use sqlx::{AnyConnection, Row};

use super::DbError;

/// Take the lease on `job` until `until`; false when it is held, by another instance or by an
/// earlier run of this one (a scheduler whose run outlived its period must not overlap it).
pub async fn acquire_lease(
    conn: &mut AnyConnection,
    job: &str,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<bool, DbError> {
    sqlx::query("INSERT INTO job_leases (job, owner, until) VALUES ($1, '', 0) ON CONFLICT (job) DO NOTHING")
        .bind(job)
        .execute(&mut *conn)
        .await?;
    let done =
        sqlx::query("UPDATE job_leases SET owner = $1, until = $2 WHERE job = $3 AND until < $4")
            .bind(owner)
            .bind(until)
            .bind(job)
            .bind(now)
            .execute(conn)
            .await?;
    Ok(done.rows_affected() == 1)
}

/// Extend a lease this owner still holds; false when it has lapsed or passed to another.
pub async fn renew_lease(
    conn: &mut AnyConnection,
    job: &str,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE job_leases SET until = $1 WHERE job = $2 AND owner = $3 AND until >= $4",
    )
    .bind(until)
    .bind(job)
    .bind(owner)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn release_lease(
    conn: &mut AnyConnection,
    job: &str,
    owner: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE job_leases SET until = 0 WHERE job = $1 AND owner = $2")
        .bind(job)
        .bind(owner)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn start_run(
    conn: &mut AnyConnection,
    id: &str,
    job: &str,
    instance: &str,
    run_for: i64,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query("INSERT INTO job_runs (id, job, instance, run_for, started_at, outcome, counts) VALUES ($1, $2, $3, $4, $5, 'running', '{}')")
        .bind(id)
        .bind(job)
        .bind(instance)
        .bind(run_for)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn finish_run(
    conn: &mut AnyConnection,
    id: &str,
    now: i64,
    outcome: &str,
    counts: &str,
    error: Option<&str>,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE job_runs SET finished_at = $1, outcome = $2, counts = $3, error = $4 WHERE id = $5",
    )
    .bind(now)
    .bind(outcome)
    .bind(counts)
    .bind(error)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The latest run of a job: (started_at, finished_at, outcome, counts).
pub async fn last_run(
    conn: &mut AnyConnection,
    job: &str,
) -> Result<Option<(i64, Option<i64>, String, String)>, DbError> {
    let row = sqlx::query("SELECT started_at, finished_at, outcome, counts FROM job_runs WHERE job = $1 ORDER BY started_at DESC LIMIT 1")
        .bind(job)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok((
            r.try_get("started_at")?,
            r.try_get("finished_at")?,
            r.try_get("outcome")?,
            r.try_get("counts")?,
        ))
    })
    .transpose()
}
