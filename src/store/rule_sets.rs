//! The rule sets published to this database and the one in force, shared by all instances.

use sqlx::{AnyConnection, Row};

use super::DbError;

/// Store a rule set's files (JSON map of file name → content) unless already stored: equal
/// fingerprints mean equal files.
pub async fn save(
    conn: &mut AnyConnection,
    fingerprint: &str,
    files_json: &str,
    created_by: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO rule_sets (fingerprint, files, created_at, created_by) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (fingerprint) DO NOTHING",
    )
    .bind(fingerprint)
    .bind(files_json)
    .bind(now_ms)
    .bind(created_by)
    .execute(conn)
    .await?;
    Ok(())
}

/// Make a stored rule set the one in force.
pub async fn set_in_force(
    conn: &mut AnyConnection,
    fingerprint: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO rules_in_force (id, fingerprint, changed_at) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint, changed_at = excluded.changed_at",
    )
    .bind(fingerprint)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Set `fingerprint` in force only if no rule set is in force yet; true when it was.
pub async fn set_in_force_if_none(
    conn: &mut AnyConnection,
    fingerprint: &str,
    now_ms: i64,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "INSERT INTO rules_in_force (id, fingerprint, changed_at) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(fingerprint)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The fingerprint of the rule set in force, if any was ever published.
pub async fn in_force(conn: &mut AnyConnection) -> Result<Option<String>, DbError> {
    let row = sqlx::query("SELECT fingerprint FROM rules_in_force WHERE id = 1")
        .fetch_optional(conn)
        .await?;
    row.map(|r| r.try_get::<String, _>(0)).transpose()
}

/// The files (JSON) of a stored rule set.
pub async fn files(conn: &mut AnyConnection, fingerprint: &str) -> Result<Option<String>, DbError> {
    let row = sqlx::query("SELECT files FROM rule_sets WHERE fingerprint = $1")
        .bind(fingerprint)
        .fetch_optional(conn)
        .await?;
    row.map(|r| r.try_get::<String, _>(0)).transpose()
}
