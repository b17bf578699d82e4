//! The due-work queries of each job. Every one is "at or before now" on an indexed column,
//! so a run costs what is due, not the table.

use sqlx::{AnyConnection, Row};

use super::sql::{Arg, Sql};
use super::DbError;

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

/// An invitation whose next action is due at `now`, locked for this transaction: (guest id,
/// reminders sent). None when it is no longer due: another run (on another instance, or one
/// that outlived its lease) acted on it since it was listed.
pub async fn lock_due_invitation(
    conn: &mut AnyConnection,
    invitation_id: &str,
    now: i64,
) -> Result<Option<(String, i64)>, DbError> {
    let lock = super::for_update(conn);
    sqlx::query_as(&format!(
        "SELECT guest_id, reminders_sent FROM invitations
         WHERE id = $1 AND next_action_at <= $2 AND used_at IS NULL AND revoked_at IS NULL{lock}"
    ))
    .bind(invitation_id)
    .bind(now)
    .fetch_optional(conn)
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

/// One grant's end: (guest id, app, role, rule, valid_until).
pub type GrantEnd = (String, String, String, String, i64);

fn grant_ends(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<GrantEnd>, DbError> {
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

/// Grants ending in (from, to], in order of (end, guest, app, role, rule), after `after`
/// when given: many grants share one end (a rule's `access_until`), so a page continues
/// after the last grant it held, not after its end.
pub async fn grants_ending(
    conn: &mut AnyConnection,
    from: i64,
    to: i64,
    after: Option<&GrantEnd>,
    limit: i64,
) -> Result<Vec<GrantEnd>, DbError> {
    let mut sql = Sql::new("SELECT guest_id, app_id, role, rule_id, valid_until FROM guest_grants WHERE valid_until > ");
    sql.bind(Arg::Int(from))
        .push(" AND valid_until <= ")
        .bind(Arg::Int(to));
    if let Some((guest, app, role, rule, until)) = after {
        sql.push(" AND (valid_until, guest_id, app_id, role, rule_id) > (")
            .bind(Arg::Int(*until))
            .push(", ")
            .bind(Arg::text(guest.as_str()))
            .push(", ")
            .bind(Arg::text(app.as_str()))
            .push(", ")
            .bind(Arg::text(role.as_str()))
            .push(", ")
            .bind(Arg::text(rule.as_str()))
            .push(")");
    }
    sql.push(" ORDER BY valid_until, guest_id, app_id, role, rule_id LIMIT ")
        .bind(Arg::Int(limit));
    grant_ends(sql.query().fetch_all(conn).await?)
}

/// Grants that have ended by `now` and whose end the expiry job has not yet acted on.
pub async fn grants_ended(
    conn: &mut AnyConnection,
    now: i64,
    limit: i64,
) -> Result<Vec<GrantEnd>, DbError> {
    let rows = sqlx::query(
        "SELECT guest_id, app_id, role, rule_id, valid_until FROM guest_grants
         WHERE valid_until <= $1 AND end_seen_at IS NULL ORDER BY valid_until LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    grant_ends(rows)
}

/// The expiry job has acted on every grant of these guests that has ended by `now`.
pub async fn mark_ends_seen(
    conn: &mut AnyConnection,
    guest_ids: &[&str],
    now: i64,
) -> Result<(), DbError> {
    if guest_ids.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new("UPDATE guest_grants SET end_seen_at = ");
    sql.bind(Arg::Int(now))
        .push(" WHERE end_seen_at IS NULL AND valid_until <= ")
        .bind(Arg::Int(now))
        .push(" AND guest_id IN (");
    for (i, id) in guest_ids.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.bind(Arg::text(*id));
    }
    sql.push(")");
    sql.query().execute(conn).await?;
    Ok(())
}

/// Invited or active guests whose last grant has ended, in order of (end, id) after `after`.
/// A guest waiting for approval has no access to end; approving them later invites them
/// with whatever is still granted.
pub async fn guests_expired(
    conn: &mut AnyConnection,
    now: i64,
    after: Option<&(i64, String)>,
    limit: i64,
) -> Result<Vec<(i64, String)>, DbError> {
    let mut sql = Sql::new("SELECT access_until, id FROM guests WHERE access_until <= ");
    sql.bind(Arg::Int(now))
        .push(" AND state IN ('invited', 'active')");
    if let Some((until, id)) = after {
        sql.push(" AND (access_until, id) > (")
            .bind(Arg::Int(*until))
            .push(", ")
            .bind(Arg::text(id.as_str()))
            .push(")");
    }
    sql.push(" ORDER BY access_until, id LIMIT ")
        .bind(Arg::Int(limit));
    sql.query()
        .fetch_all(conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
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

/// One partner's guests in `states` last seen at or before `cutoff`, oldest first: those an
/// inactivity threshold (and grace) has caught up with.
pub async fn partner_guests_unseen_since(
    conn: &mut AnyConnection,
    partner_id: &str,
    states: &[&str],
    cutoff: i64,
    limit: i64,
) -> Result<Vec<(String, String, i64, String)>, DbError> {
    let mut sql = String::from(
        "SELECT id, user_name, last_seen_at, state FROM guests
         WHERE partner_id = $1 AND last_seen_at <= $2 AND state IN (",
    );
    for i in 0..states.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("${}", i + 4));
    }
    sql.push_str(") ORDER BY last_seen_at, id LIMIT $3");
    let mut q = sqlx::query(&sql).bind(partner_id).bind(cutoff).bind(limit);
    for st in states {
        q = q.bind(*st);
    }
    let rows = q.fetch_all(conn).await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect()
}

/// A guest's last activity, read under the caller's lock on the row.
pub async fn last_seen(conn: &mut AnyConnection, guest_id: &str) -> Result<Option<i64>, DbError> {
    Ok(
        sqlx::query_scalar::<_, Option<i64>>("SELECT last_seen_at FROM guests WHERE id = $1")
            .bind(guest_id)
            .fetch_optional(conn)
            .await?
            .flatten(),
    )
}

/// Record activity, at most once per `every_ms`, so a proxy's sub-request per page does not
/// write per page.
pub async fn touch_seen_at_most(
    conn: &mut AnyConnection,
    guest_id: &str,
    now: i64,
    every_ms: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE guests SET last_seen_at = $1
         WHERE id = $2 AND (last_seen_at IS NULL OR last_seen_at < $3)",
    )
    .bind(now)
    .bind(guest_id)
    .bind(now - every_ms)
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
