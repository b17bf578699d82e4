//! What each guest's sync targets were last told (see migration 13): the digest of the
//! snapshot last queued and the version of that event.

use sqlx::AnyConnection;

use super::sql::Arg;
use super::work::{Table, Work};
use super::DbError;

/// Move a guest on to `digest` and return the new version, or None when the targets were
/// already told exactly this (unless `force`). The row is written before any event of the
/// change, so on PostgreSQL a second transaction changing the same guest waits here until the
/// first commits, and a guest's events enter the outbox in commit order.
pub async fn advance(
    conn: &mut AnyConnection,
    guest_id: &str,
    digest: &str,
    now: i64,
    force: bool,
) -> Result<Option<i64>, DbError> {
    sqlx::query_scalar(
        "INSERT INTO guest_sync (guest_id, digest, version, updated_at) VALUES ($1, $2, 1, $3)
         ON CONFLICT (guest_id) DO UPDATE SET digest = excluded.digest,
             version = guest_sync.version + 1, updated_at = excluded.updated_at
         WHERE guest_sync.digest <> excluded.digest OR $4 = 1
         RETURNING version",
    )
    .bind(guest_id)
    .bind(digest)
    .bind(now)
    .bind(i64::from(force))
    .fetch_optional(conn)
    .await
}

/// Queue the first state of a guest created in this unit of work (version 1).
pub fn queue_first(work: &mut Work, guest_id: &str, digest: &str, now: i64) {
    work.queue(
        Table::GuestSync,
        vec![
            Arg::text(guest_id),
            Arg::text(digest),
            Arg::Int(1),
            Arg::Int(now),
        ],
    );
}
