//! The append-only audit log (UPDATE and DELETE are refused by triggers).

use serde_json::Value;
use sqlx::AnyConnection;

use super::sql::Arg;
use super::work::{Table, Work};
use super::DbError;

/// One audited change.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// Who: `partner:SLUG`, `admin:TOKEN_ID`, `cli`, `job:NAME`.
    pub actor: &'a str,
    pub partner_id: Option<&'a str>,
    /// What, as `noun.verb`: `user.created`, `partner.token_issued`.
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    /// Context without secrets.
    pub detail: Value,
}

pub async fn append(
    conn: &mut AnyConnection,
    entry: &AuditEntry<'_>,
    now_ms: i64,
) -> Result<(), DbError> {
    log(entry);
    sqlx::query(
        "INSERT INTO audit_log (at, actor, partner_id, action, target_type, target_id, request_id, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(now_ms)
    .bind(entry.actor)
    .bind(entry.partner_id)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(entry.request_id)
    .bind(entry.detail.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// Queue an audit row in `work` (written with the unit's other rows).
pub fn queue(work: &mut Work, entry: &AuditEntry<'_>, now_ms: i64) {
    log(entry);
    work.queue(
        Table::Audit,
        vec![
            Arg::Int(now_ms),
            Arg::text(entry.actor),
            Arg::opt_text(entry.partner_id),
            Arg::text(entry.action),
            Arg::text(entry.target_type),
            Arg::opt_text(entry.target_id),
            Arg::opt_text(entry.request_id),
            Arg::Text(entry.detail.to_string()),
        ],
    );
}

fn log(entry: &AuditEntry<'_>) {
    tracing::info!(
        target: "audit",
        actor = entry.actor,
        action = entry.action,
        target_type = entry.target_type,
        target_id = entry.target_id,
        request_id = entry.request_id,
    );
}

/// Number of audit rows for a target (used by tests and the admin API).
pub async fn count_for_target(
    conn: &mut AnyConnection,
    target_type: &str,
    target_id: &str,
) -> Result<i64, DbError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE target_type = $1 AND target_id = $2")
        .bind(target_type)
        .bind(target_id)
        .fetch_one(conn)
        .await
}

/// One audit row, as read back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
}

/// The history of one target, oldest first (bounded).
pub async fn for_target(
    conn: &mut AnyConnection,
    target_type: &str,
    target_id: &str,
    limit: i64,
) -> Result<Vec<AuditRecord>, DbError> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT id, at, actor, action, target_type, target_id, request_id, detail FROM audit_log
         WHERE target_type = $1 AND target_id = $2 ORDER BY id LIMIT $3",
    )
    .bind(target_type)
    .bind(target_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let detail: String = r.try_get("detail")?;
            Ok(AuditRecord {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target_type: r.try_get("target_type")?,
                target_id: r.try_get("target_id")?,
                request_id: r.try_get("request_id")?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
            })
        })
        .collect()
}
