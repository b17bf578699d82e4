//! Job bookkeeping (runs, leases) and the due-work queries of each job. Every due query is
//! "at or before now" on an indexed column, so a run costs what is due, not the table.

use sqlx::{AnyConnection, Row};

use super::DbError;

/// Take (or renew) the lease on `job` until `until`; false when another owner holds it.
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
    let done = sqlx::query("UPDATE job_leases SET owner = $1, until = $2 WHERE job = $3 AND (until < $4 OR owner = $1)")
        .bind(owner)
        .bind(until)
        .bind(job)
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

/// Open invitations whose next action (a reminder or the lapse) is due.
pub async fn due_invitations(
    conn: &mut AnyConnection,
    now: i64,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar(
        "SELECT id FROM invitations WHERE next_action_at <= $1 AND used_at IS NULL AND revoked_at IS NULL
         ORDER BY next_action_at LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn set_next_action(
    conn: &mut AnyConnection,
    invitation_id: &str,
    at: Option<i64>,
) -> Result<(), DbError> {
    sqlx::query("UPDATE invitations SET next_action_at = $1 WHERE id = $2")
        .bind(at)
        .bind(invitation_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Record reminder `number` of an invitation; false when it was already sent.
pub async fn record_reminder(
    conn: &mut AnyConnection,
    invitation_id: &str,
    number: i64,
    now: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO invitation_reminders (invitation_id, number, sent_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(invitation_id)
    .bind(number)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        sqlx::query(
            "UPDATE invitations SET reminders_sent = $1, last_reminder_at = $2 WHERE id = $3",
        )
        .bind(number)
        .bind(now)
        .bind(invitation_id)
        .execute(conn)
        .await?;
    }
    Ok(done.rows_affected() == 1)
}

/// Record a one-off notice; false when it was already given.
pub async fn record_notice(
    conn: &mut AnyConnection,
    key: &str,
    guest_id: &str,
    now: i64,
) -> Result<bool, DbError> {
    Ok(sqlx::query(
        "INSERT INTO notices (key, guest_id, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(key)
    .bind(guest_id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Grants ending in (from, to]: (guest id, app, role, rule, valid_until).
pub async fn grants_ending(
    conn: &mut AnyConnection,
    from: i64,
    to: i64,
    limit: i64,
) -> Result<Vec<(String, String, String, String, i64)>, DbError> {
    let rows = sqlx::query(
        "SELECT guest_id, app_id, role, rule_id, valid_until FROM guest_grants
         WHERE valid_until > $1 AND valid_until <= $2 ORDER BY valid_until LIMIT $3",
    )
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            ))
        })
        .collect()
}

/// Invited or active guests whose last grant has ended.
pub async fn guests_expired(
    conn: &mut AnyConnection,
    now: i64,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar(
        "SELECT id FROM guests WHERE access_until <= $1 AND state IN ('invited', 'active', 'pending_approval')
         ORDER BY access_until LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Guests still in force although their partner deactivated the person.
pub async fn guests_of_inactive_people(
    conn: &mut AnyConnection,
    limit: i64,
) -> Result<Vec<(String, String)>, DbError> {
    let rows = sqlx::query(
        "SELECT g.id, u.partner_id FROM scim_users u JOIN guests g ON g.user_id = u.id
         WHERE u.active = 0 AND g.state IN ('invited', 'active', 'pending_approval') LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Active guests not seen since `cutoff`.
pub async fn guests_inactive_since(
    conn: &mut AnyConnection,
    cutoff: i64,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar(
        "SELECT id FROM guests WHERE state = 'active' AND last_seen_at <= $1 ORDER BY last_seen_at LIMIT $2",
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Removed guests whose personal data is due for erasure.
pub async fn removed_before(
    conn: &mut AnyConnection,
    cutoff: i64,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar(
        "SELECT id FROM guests WHERE state = 'removed' AND updated_at <= $1 AND email IS NOT NULL LIMIT $2",
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Replace a removed guest's personal data with a pseudonym.
pub async fn erase_guest(
    conn: &mut AnyConnection,
    guest_id: &str,
    pseudonym: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE guests SET user_name = $1, email = NULL, display_name = NULL, sponsor = NULL WHERE id = $2")
        .bind(pseudonym)
        .bind(guest_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn touch_seen(conn: &mut AnyConnection, guest_id: &str, now: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE guests SET last_seen_at = $1 WHERE id = $2")
        .bind(now)
        .bind(guest_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Every guest id, for a full reconciliation with a target.
pub async fn all_guest_ids(conn: &mut AnyConnection) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar("SELECT id FROM guests ORDER BY created_at, id")
        .fetch_all(conn)
        .await
}
