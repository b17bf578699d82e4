//! What the console's sync page reads of the outbox: per-target counts including delivered
//! events (which `/metrics` does not count), and dead letters in keyset pages, so a target
//! with thousands of dead letters is still browsable.

use sqlx::{AnyConnection, Row};

use super::DbError;

/// One target's outbox figures.
#[derive(Debug, Clone, Default)]
pub struct TargetCounts {
    pub target: String,
    pub pending: i64,
    pub delivered: i64,
    pub dead: i64,
    /// Created at of the oldest pending event (epoch ms).
    pub oldest_pending: Option<i64>,
}

/// A dead letter as the console lists it (no payload: it may name the person).
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: String,
    pub target: String,
    pub guest_id: String,
    pub kind: String,
    pub attempts: i64,
    pub created_at: i64,
    pub dead_at: i64,
    pub last_error: Option<String>,
}

pub async fn counts(conn: &mut AnyConnection) -> Result<Vec<TargetCounts>, DbError> {
    let rows = sqlx::query(
        "SELECT target,
            COALESCE(SUM(CASE WHEN delivered_at IS NULL AND dead_at IS NULL THEN 1 ELSE 0 END), 0) AS pending,
            COALESCE(SUM(CASE WHEN delivered_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS delivered,
            COALESCE(SUM(CASE WHEN dead_at IS NOT NULL AND replayed_at IS NULL THEN 1 ELSE 0 END), 0) AS dead,
            MIN(CASE WHEN delivered_at IS NULL AND dead_at IS NULL THEN created_at END) AS oldest
         FROM sync_outbox GROUP BY target ORDER BY target",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TargetCounts {
                target: r.try_get("target")?,
                pending: r.try_get("pending")?,
                delivered: r.try_get("delivered")?,
                dead: r.try_get("dead")?,
                oldest_pending: r.try_get("oldest")?,
            })
        })
        .collect()
}

/// Dead letters not yet replayed, newest first, after the key `(dead_at, id)` of the
/// previous page's last row; `limit` rows at most.
pub async fn dead_page(
    conn: &mut AnyConnection,
    before: Option<(i64, &str)>,
    limit: i64,
) -> Result<Vec<DeadLetter>, DbError> {
    const SELECT: &str = "SELECT id, target, guest_id, kind, attempts, created_at, dead_at, last_error FROM sync_outbox WHERE dead_at IS NOT NULL AND replayed_at IS NULL";
    let rows = match before {
        Some((at, id)) => {
            sqlx::query(&format!(
                "{SELECT} AND (dead_at, id) < ($1, $2) ORDER BY dead_at DESC, id DESC LIMIT $3"
            ))
            .bind(at)
            .bind(id.to_string())
            .bind(limit)
            .fetch_all(conn)
            .await?
        }
        None => {
            sqlx::query(&format!("{SELECT} ORDER BY dead_at DESC, id DESC LIMIT $1"))
                .bind(limit)
                .fetch_all(conn)
                .await?
        }
    };
    rows.iter()
        .map(|r| {
            Ok(DeadLetter {
                id: r.try_get("id")?,
                target: r.try_get("target")?,
                guest_id: r.try_get("guest_id")?,
                kind: r.try_get("kind")?,
                attempts: r.try_get("attempts")?,
                created_at: r.try_get("created_at")?,
                dead_at: r.try_get("dead_at")?,
                last_error: r.try_get("last_error")?,
            })
        })
        .collect()
}
