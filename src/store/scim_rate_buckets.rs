//! Token buckets of partners' SCIM request rates kept in the database, so that every
//! instance draws on one budget per partner. A request refills the bucket for the time
//! since the last one and takes a token if there is one, in a single statement, so that
//! concurrent requests on any instance are serialised by the row and none needs a lock.

use sqlx::{AnyConnection, Row};

use super::DbError;

/// What taking a token found: whether one was taken, and the tokens left after.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Taken {
    pub admitted: bool,
    pub tokens: f64,
}

/// Refill `key`'s bucket (`rate` tokens a second up to `burst`) to `now_ms` and take one
/// token if a whole one is there. A new bucket starts full.
pub async fn take(
    conn: &mut AnyConnection,
    key: &str,
    now_ms: i64,
    rate: f64,
    burst: f64,
) -> Result<Taken, DbError> {
    // `refilled` is written out in each SET: both backends read the old row there.
    let refilled =
        "(CASE WHEN scim_rate_buckets.tokens + (CASE WHEN $2 > scim_rate_buckets.updated_at \
                    THEN $2 - scim_rate_buckets.updated_at ELSE 0 END) * $3 / 1000.0 > $4 THEN $4 \
                    ELSE scim_rate_buckets.tokens + (CASE WHEN $2 > scim_rate_buckets.updated_at \
                    THEN $2 - scim_rate_buckets.updated_at ELSE 0 END) * $3 / 1000.0 END)";
    let sql = format!(
        "INSERT INTO scim_rate_buckets (partner_id, tokens, updated_at, admitted)
         VALUES ($1, $4 - 1.0, $2, 1)
         ON CONFLICT (partner_id) DO UPDATE SET
            tokens = CASE WHEN {refilled} >= 1.0 THEN {refilled} - 1.0 ELSE {refilled} END,
            admitted = CASE WHEN {refilled} >= 1.0 THEN 1 ELSE 0 END,
            updated_at = CASE WHEN $2 > scim_rate_buckets.updated_at THEN $2
                         ELSE scim_rate_buckets.updated_at END
         RETURNING tokens, admitted"
    );
    let row = sqlx::query(&sql)
        .bind(key)
        .bind(now_ms)
        .bind(rate)
        .bind(burst)
        .fetch_one(conn)
        .await?;
    let admitted: i64 = row.try_get("admitted")?;
    Ok(Taken {
        admitted: admitted == 1,
        tokens: row.try_get("tokens")?,
    })
}
