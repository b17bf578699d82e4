//! The mail outbox: mail is written in the transaction of the change that causes it and
//! delivered later by the sender worker. Bodies are sealed (they carry one-time links) and
//! erased once sent.

use sqlx::{AnyConnection, Row};

use super::sql::Arg;
use super::work::{Table, Work};
use super::DbError;

#[derive(Debug, Clone)]
pub struct QueuedMail {
    pub id: String,
    pub kind: String,
    pub to_addr: String,
    pub subject: String,
    pub body_sealed: Option<String>,
    pub guest_id: Option<String>,
    pub idempotency_key: String,
    pub attempts: i64,
}

/// Queue a mail created at `now`, first deliverable at `due`; a second mail with the same
/// idempotency key is ignored (false).
pub async fn enqueue(
    conn: &mut AnyConnection,
    m: &QueuedMail,
    now: i64,
    due: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO mail_outbox (id, kind, to_addr, subject, body_sealed, guest_id, idempotency_key, created_at,
            attempts, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9)
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&m.id)
    .bind(&m.kind)
    .bind(&m.to_addr)
    .bind(&m.subject)
    .bind(&m.body_sealed)
    .bind(&m.guest_id)
    .bind(&m.idempotency_key)
    .bind(now)
    .bind(due)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Queue a mail in `work` (see [`enqueue`]); a second mail under the same key is dropped.
pub fn queue(work: &mut Work, m: &QueuedMail, now: i64, due: i64) {
    work.queue(
        Table::Mail,
        vec![
            Arg::text(m.id.as_str()),
            Arg::text(m.kind.as_str()),
            Arg::text(m.to_addr.as_str()),
            Arg::text(m.subject.as_str()),
            Arg::opt_text(m.body_sealed.as_deref()),
            Arg::opt_text(m.guest_id.as_deref()),
            Arg::text(m.idempotency_key.as_str()),
            Arg::Int(now),
            Arg::Int(0),
            Arg::Int(due),
        ],
    );
}

/// Lease up to `limit` due mails to `owner` until `lease_until`. The lease condition is
/// repeated in the outer WHERE so that, on PostgreSQL, a claimer re-checks it on the rows it
/// locked; rows another claimer holds locked are skipped (`store::claim_pick`).
pub async fn claim_due(
    conn: &mut AnyConnection,
    owner: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<QueuedMail>, DbError> {
    let (materialized, lock) = super::claim_pick(conn, "m");
    sqlx::query(&format!(
        "WITH picked AS{materialized} (SELECT m.id FROM mail_outbox m
                      WHERE m.sent_at IS NULL AND m.failed_at IS NULL AND m.next_attempt_at <= $3
                        AND (m.lease_until IS NULL OR m.lease_until < $3)
                      ORDER BY m.next_attempt_at LIMIT $4{lock})
         UPDATE mail_outbox SET lease_owner = $1, lease_until = $2
         WHERE id IN (SELECT id FROM picked)
           AND sent_at IS NULL AND failed_at IS NULL AND (lease_until IS NULL OR lease_until < $3)",
    ))
    .bind(owner)
    .bind(lease_until)
    .bind(now)
    .bind(limit)
    .execute(&mut *conn)
    .await?;
    let rows = sqlx::query(
        "SELECT id, kind, to_addr, subject, body_sealed, guest_id, idempotency_key, attempts FROM mail_outbox
         WHERE lease_owner = $1 AND lease_until = $2 AND sent_at IS NULL AND failed_at IS NULL ORDER BY next_attempt_at",
    )
    .bind(owner)
    .bind(lease_until)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(QueuedMail {
                id: r.try_get("id")?,
                kind: r.try_get("kind")?,
                to_addr: r.try_get("to_addr")?,
                subject: r.try_get("subject")?,
                body_sealed: r.try_get("body_sealed")?,
                guest_id: r.try_get("guest_id")?,
                idempotency_key: r.try_get("idempotency_key")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect()
}

/// Extend the lease of a mail this owner still holds, just before sending it; false when
/// the lease has passed to another sender.
pub async fn renew(
    conn: &mut AnyConnection,
    id: &str,
    owner: &str,
    lease_until: i64,
) -> Result<bool, DbError> {
    Ok(sqlx::query(
        "UPDATE mail_outbox SET lease_until = $1
         WHERE id = $2 AND lease_owner = $3 AND sent_at IS NULL AND failed_at IS NULL",
    )
    .bind(lease_until)
    .bind(id)
    .bind(owner)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Delivered: the body is erased.
pub async fn mark_sent(conn: &mut AnyConnection, id: &str, now: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE mail_outbox SET sent_at = $1, body_sealed = NULL, lease_owner = NULL, lease_until = NULL, attempts = attempts + 1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Failed this time: try again at `next_attempt_at`, or give up (dead letter) when `give_up`;
/// recorded only while `owner` holds the mail.
pub async fn mark_failed(
    conn: &mut AnyConnection,
    id: &str,
    owner: &str,
    now: i64,
    next_attempt_at: i64,
    give_up: bool,
    error: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2,
            failed_at = $3, lease_owner = NULL, lease_until = NULL
         WHERE id = $4 AND lease_owner = $5",
    )
    .bind(next_attempt_at)
    .bind(error)
    .bind(give_up.then_some(now))
    .bind(id)
    .bind(owner)
    .execute(conn)
    .await?;
    Ok(())
}
