//! The outbound sync outbox: events per target, delivered in order per guest.

use sqlx::{AnyConnection, Row};

use super::sql::Arg;
use super::work::{Table, Work};
use super::DbError;

#[derive(Debug, Clone)]
pub struct SyncEvent {
    pub seq: i64,
    pub id: String,
    pub target: String,
    pub guest_id: String,
    pub kind: String,
    pub payload: String,
    pub created_at: i64,
    pub attempts: i64,
    pub delivered_at: Option<i64>,
    pub dead_at: Option<i64>,
    pub last_error: Option<String>,
}

const COLUMNS: &str = "seq, id, target, guest_id, kind, payload, created_at, attempts, delivered_at, dead_at, last_error";

fn from_row(r: &sqlx::any::AnyRow) -> Result<SyncEvent, DbError> {
    Ok(SyncEvent {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        target: r.try_get("target")?,
        guest_id: r.try_get("guest_id")?,
        kind: r.try_get("kind")?,
        payload: r.try_get("payload")?,
        created_at: r.try_get("created_at")?,
        attempts: r.try_get("attempts")?,
        delivered_at: r.try_get("delivered_at")?,
        dead_at: r.try_get("dead_at")?,
        last_error: r.try_get("last_error")?,
    })
}

/// A new event for one target.
pub struct NewSyncEvent<'a> {
    pub id: &'a str,
    pub target: &'a str,
    pub guest_id: &'a str,
    pub kind: &'a str,
    pub payload: &'a str,
    pub now: i64,
    /// First delivery attempt (wall clock).
    pub due: i64,
}

pub async fn insert(conn: &mut AnyConnection, e: &NewSyncEvent<'_>) -> Result<(), DbError> {
    let NewSyncEvent {
        id,
        target,
        guest_id,
        kind,
        payload,
        now,
        due,
    } = *e;
    sqlx::query(
        "INSERT INTO sync_outbox (id, target, guest_id, kind, payload, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(target)
    .bind(guest_id)
    .bind(kind)
    .bind(payload)
    .bind(now)
    .bind(due)
    .execute(conn)
    .await?;
    Ok(())
}

/// Queue an event in `work`.
pub fn queue(work: &mut Work, e: &NewSyncEvent<'_>) {
    work.queue(
        Table::Sync,
        vec![
            Arg::text(e.id),
            Arg::text(e.target),
            Arg::text(e.guest_id),
            Arg::text(e.kind),
            Arg::text(e.payload),
            Arg::Int(e.now),
            Arg::Int(e.due),
        ],
    );
}

/// Lease due events whose earlier events (same target and guest) are all settled, so each
/// guest's changes reach each target in order.
pub async fn claim_due(
    conn: &mut AnyConnection,
    owner: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<SyncEvent>, DbError> {
    let (materialized, lock) = super::claim_pick(conn, "o");
    sqlx::query(&format!(
        "WITH picked AS{materialized} (SELECT o.seq FROM sync_outbox o
                       WHERE o.delivered_at IS NULL AND o.dead_at IS NULL AND o.next_attempt_at <= $3
                         AND (o.lease_until IS NULL OR o.lease_until < $3)
                         AND NOT EXISTS (SELECT 1 FROM sync_outbox p
                                         WHERE p.target = o.target AND p.guest_id = o.guest_id AND p.seq < o.seq
                                           AND p.delivered_at IS NULL AND p.dead_at IS NULL)
                       ORDER BY o.seq LIMIT $4{lock})
         UPDATE sync_outbox SET lease_owner = $1, lease_until = $2
         WHERE seq IN (SELECT seq FROM picked)
           AND delivered_at IS NULL AND dead_at IS NULL AND (lease_until IS NULL OR lease_until < $3)",
    ))
    .bind(owner)
    .bind(lease_until)
    .bind(now)
    .bind(limit)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM sync_outbox WHERE lease_owner = $1 AND lease_until = $2 AND delivered_at IS NULL AND dead_at IS NULL ORDER BY seq"
    ))
    .bind(owner)
    .bind(lease_until)
    .fetch_all(conn)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Extend the lease of an event this owner still holds, just before delivering it; false
/// when the lease has passed to another worker (this one stalled past it), which then owns
/// the event and everything after it.
pub async fn renew(
    conn: &mut AnyConnection,
    seq: i64,
    owner: &str,
    lease_until: i64,
) -> Result<bool, DbError> {
    Ok(sqlx::query(
        "UPDATE sync_outbox SET lease_until = $1
         WHERE seq = $2 AND lease_owner = $3 AND delivered_at IS NULL AND dead_at IS NULL",
    )
    .bind(lease_until)
    .bind(seq)
    .bind(owner)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Delivered, if this owner still held the event; false when another worker had taken it.
pub async fn mark_delivered(
    conn: &mut AnyConnection,
    seq: i64,
    owner: &str,
    now: i64,
) -> Result<bool, DbError> {
    Ok(sqlx::query("UPDATE sync_outbox SET delivered_at = $1, attempts = attempts + 1, lease_owner = NULL, lease_until = NULL WHERE seq = $2 AND lease_owner = $3")
        .bind(now)
        .bind(seq)
        .bind(owner)
        .execute(conn)
        .await?
        .rows_affected()
        == 1)
}

/// A failed attempt, if this owner still held the event (see [`mark_delivered`]).
#[allow(clippy::too_many_arguments)]
pub async fn mark_failed(
    conn: &mut AnyConnection,
    seq: i64,
    owner: &str,
    now: i64,
    next_attempt_at: i64,
    dead: bool,
    error: &str,
) -> Result<bool, DbError> {
    Ok(sqlx::query(
        "UPDATE sync_outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, dead_at = $3,
            lease_owner = NULL, lease_until = NULL WHERE seq = $4 AND lease_owner = $5",
    )
    .bind(next_attempt_at)
    .bind(error)
    .bind(dead.then_some(now))
    .bind(seq)
    .bind(owner)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Dead letters not yet replayed, newest first.
pub async fn dead(conn: &mut AnyConnection, limit: i64) -> Result<Vec<SyncEvent>, DbError> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM sync_outbox WHERE dead_at IS NOT NULL AND replayed_at IS NULL ORDER BY dead_at DESC LIMIT $1"))
        .bind(limit)
        .fetch_all(conn)
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// A dead letter not yet replayed, by id.
pub async fn dead_letter(conn: &mut AnyConnection, id: &str) -> Result<Option<SyncEvent>, DbError> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM sync_outbox WHERE id = $1 AND dead_at IS NOT NULL AND replayed_at IS NULL"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Mark a dead letter replayed: a new event with the guest's current state takes its place,
/// so its own, older snapshot is never sent again. False when it was not a dead letter.
pub async fn mark_replayed(conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool, DbError> {
    Ok(sqlx::query("UPDATE sync_outbox SET replayed_at = $1 WHERE id = $2 AND dead_at IS NOT NULL AND replayed_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected()
        == 1)
}

/// Per target: (pending, dead, oldest pending created_at).
pub async fn depth(
    conn: &mut AnyConnection,
) -> Result<Vec<(String, i64, i64, Option<i64>)>, DbError> {
    let rows = sqlx::query(
        "SELECT target,
            COALESCE(SUM(CASE WHEN delivered_at IS NULL AND dead_at IS NULL THEN 1 ELSE 0 END), 0) AS pending,
            COALESCE(SUM(CASE WHEN dead_at IS NOT NULL AND replayed_at IS NULL THEN 1 ELSE 0 END), 0) AS dead,
            MIN(CASE WHEN delivered_at IS NULL AND dead_at IS NULL THEN created_at END) AS oldest
         FROM sync_outbox GROUP BY target ORDER BY target",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("target")?,
                r.try_get("pending")?,
                r.try_get("dead")?,
                r.try_get("oldest")?,
            ))
        })
        .collect()
}

pub async fn for_guest(
    conn: &mut AnyConnection,
    guest_id: &str,
) -> Result<Vec<SyncEvent>, DbError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM sync_outbox WHERE guest_id = $1 ORDER BY seq"
    ))
    .bind(guest_id)
    .fetch_all(conn)
    .await?
    .iter()
    .map(from_row)
    .collect()
}
