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
    /// CSV of the rows in error: `line,column,reason`.
    pub error_report: String,
}

pub async fn insert(conn: &mut AnyConnection, r: &ImportRecord) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO imports (id, partner_id, actor, file_name, file_sha256, mode, dry_run, started_at, finished_at,
            rows_read, created, updated, deactivated, unchanged, errors, outcome, error_report)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
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
    .bind(&r.error_report)
    .execute(conn)
    .await?;
    Ok(())
}

const COLUMNS: &str =
    "id, partner_id, actor, file_name, file_sha256, mode, dry_run, started_at, finished_at,
    rows_read, created, updated, deactivated, unchanged, errors, outcome, error_report";

fn from_row(r: &sqlx::any::AnyRow) -> Result<ImportRecord, DbError> {
    use sqlx::Row;
    Ok(ImportRecord {
        id: r.try_get("id")?,
        partner_id: r.try_get("partner_id")?,
        actor: r.try_get("actor")?,
        file_name: r.try_get("file_name")?,
        file_sha256: r.try_get("file_sha256")?,
        mode: r.try_get("mode")?,
        dry_run: r.try_get::<i64, _>("dry_run")? != 0,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        rows_read: r.try_get("rows_read")?,
        created: r.try_get("created")?,
        updated: r.try_get("updated")?,
        deactivated: r.try_get("deactivated")?,
        unchanged: r.try_get("unchanged")?,
        errors: r.try_get("errors")?,
        outcome: r.try_get("outcome")?,
        error_report: r
            .try_get::<Option<String>, _>("error_report")?
            .unwrap_or_default(),
    })
}

pub async fn get(conn: &mut AnyConnection, id: &str) -> Result<Option<ImportRecord>, DbError> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM imports WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .map(|r| from_row(&r))
        .transpose()
}

/// The latest imports, newest first.
pub async fn recent(conn: &mut AnyConnection, limit: i64) -> Result<Vec<ImportRecord>, DbError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM imports ORDER BY started_at DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(conn)
    .await?
    .iter()
    .map(from_row)
    .collect()
}
