//! Fixed-window counters shared by every instance (they live in the database), for limits
//! on code attempts and link requests.

use sqlx::{AnyConnection, Row};

use super::DbError;

/// Count one hit on `key` in the window of `window_ms` containing `now`; returns the count
/// including this hit.
pub async fn hit(
    conn: &mut AnyConnection,
    key: &str,
    now: i64,
    window_ms: i64,
) -> Result<i64, DbError> {
    let window_start = now - now.rem_euclid(window_ms);
    let row = sqlx::query(
        "INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1)
         ON CONFLICT (key) DO UPDATE SET
            count = CASE WHEN rate_limits.window_start = excluded.window_start THEN rate_limits.count + 1 ELSE 1 END,
            window_start = excluded.window_start
         RETURNING count",
    )
    .bind(key)
    .bind(window_start)
    .fetch_one(conn)
    .await?;
    row.try_get("count")
}
