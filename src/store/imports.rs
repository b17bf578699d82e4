//! The record of roster imports.

use sqlx::AnyConnection;

use super::DbError;

#[derive(Debug, Clone)]
pub struct ImportRecord {
    pub id: String,
    pub partner_id: String,
    pub actor: String,
    pub file_name: String,
    pub file_sha256: String,
    pub mode: String,
    pub dry_run: bool,
    pub started_at: i64,
    pub finished_at: i64,
    pub rows_read: i64,
    pub created: i64,
    pub updated: i64,
    pub deactivated: i64,
    pub unchanged: i64,
    pub errors: i64,
    /// `applied`, `dry_run`, `refused: …`.
    pub outcome: String,
}

pub async fn insert(conn: &mut AnyConnection, r: &ImportRecord) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO imports (id, partner_id, actor, file_name, file_sha256, mode, dry_run, started_at, finished_at,
            rows_read, created, updated, deactivated, unchanged, errors, outcome)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(&r.id)
    .bind(&r.partner_id)
    .bind(&r.actor)
    .bind(&r.file_name)
    .bind(&r.file_sha256)
    .bind(&r.mode)
    .bind(i64::from(r.dry_run))
    .bind(r.started_at)
    .bind(r.finished_at)
    .bind(r.rows_read)
    .bind(r.created)
    .bind(r.updated)
    .bind(r.deactivated)
    .bind(r.unchanged)
    .bind(r.errors)
    .bind(&r.outcome)
    .execute(conn)
    .await?;
    Ok(())
}
