//! Bounded counts of the outboxes' states for `/metrics`: each reads one partial index
//! (migration 16) and stops at a cap, so its cost does not grow with the tables.

use sqlx::AnyConnection;

use super::DbError;

async fn capped(
    conn: &mut AnyConnection,
    inner: &str,
    target: Option<&str>,
    cap: i64,
) -> Result<i64, DbError> {
    let sql = format!("SELECT COUNT(*) FROM ({inner} LIMIT {cap}) capped");
    let mut q = sqlx::query_scalar::<_, i64>(&sql);
    if let Some(t) = target {
        q = q.bind(t.to_string());
    }
    q.fetch_one(conn).await
}

/// Mail pending, sent and failed, each counted up to `cap`.
pub async fn mail_counts(conn: &mut AnyConnection, cap: i64) -> Result<(i64, i64, i64), DbError> {
    let pending = capped(
        &mut *conn,
        "SELECT 1 FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        None,
        cap,
    )
    .await?;
    let sent = capped(
        &mut *conn,
        "SELECT 1 FROM mail_outbox WHERE sent_at IS NOT NULL",
        None,
        cap,
    )
    .await?;
    let failed = capped(
        &mut *conn,
        "SELECT 1 FROM mail_outbox WHERE failed_at IS NOT NULL",
        None,
        cap,
    )
    .await?;
    Ok((pending, sent, failed))
}

/// Sync events of `target` waiting for delivery, counted up to `cap`.
pub async fn sync_pending(
    conn: &mut AnyConnection,
    target: &str,
    cap: i64,
) -> Result<i64, DbError> {
    capped(
        conn,
        "SELECT 1 FROM sync_outbox WHERE target = $1 AND delivered_at IS NULL AND dead_at IS NULL",
        Some(target),
        cap,
    )
    .await
}

/// Dead letters of `target` not replayed, counted up to `cap`.
pub async fn sync_dead(conn: &mut AnyConnection, target: &str, cap: i64) -> Result<i64, DbError> {
    capped(
        conn,
        "SELECT 1 FROM sync_outbox WHERE target = $1 AND dead_at IS NOT NULL AND replayed_at IS NULL",
        Some(target),
        cap,
    )
    .await
}

/// When the oldest waiting event of `target` was queued (events queue in `seq` order).
pub async fn sync_oldest_pending(
    conn: &mut AnyConnection,
    target: &str,
) -> Result<Option<i64>, DbError> {
    sqlx::query_scalar::<_, i64>(
        "SELECT created_at FROM sync_outbox
         WHERE target = $1 AND delivered_at IS NULL AND dead_at IS NULL ORDER BY seq LIMIT 1",
    )
    .bind(target)
    .fetch_optional(conn)
    .await
}
