//! Partner and admin bearer tokens, looked up by hash.

use sqlx::{AnyConnection, Row};

use super::{Db, DbError};
use crate::domain::{Partner, PartnerSlug};

/// How stale `last_used_at` may get before a request refreshes it; saves a write per request.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// Record a token's use through the writer turn, as every write does: on the read pool it
/// raced the writer for SQLite's lock and failed after the busy timeout under a long write.
/// A use that cannot be recorded does not refuse the request; the next one records it.
async fn record_use(db: &Db, update: &'static str, id: &str, now_ms: i64) {
    let result = async {
        let mut tx = db.begin_write().await?;
        sqlx::query(update)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "recording a token's use failed");
    }
}

pub async fn insert_partner_token(
    conn: &mut AnyConnection,
    id: &str,
    partner_id: &str,
    token_hash: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO partner_tokens (id, partner_id, token_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(partner_id)
    .bind(token_hash)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// The partner owning an unrevoked token with this hash; records the use.
pub async fn authenticate_partner(
    db: &Db,
    token_hash: &str,
    now_ms: i64,
) -> Result<Option<Partner>, DbError> {
    let row = sqlx::query(
        "SELECT t.id AS token_id, p.id, p.slug, p.name, t.last_used_at
         FROM partner_tokens t JOIN partners p ON p.id = t.partner_id
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
    )
    .bind(token_hash)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let last_used: Option<i64> = row.try_get("last_used_at")?;
    if last_used.is_none_or(|t| now_ms - t >= LAST_USED_GRANULARITY_MS) {
        let token_id: String = row.try_get("token_id")?;
        record_use(
            db,
            "UPDATE partner_tokens SET last_used_at = $1 WHERE id = $2",
            &token_id,
            now_ms,
        )
        .await;
    }
    let slug: String = row.try_get("slug")?;
    Ok(Some(Partner {
        id: row.try_get("id")?,
        slug: PartnerSlug::parse(&slug).map_err(|e| DbError::Decode(Box::new(e)))?,
        name: row.try_get("name")?,
    }))
}

/// A new admin token: who or what holds it, and when it stops working (None: never).
pub struct NewAdminToken<'a> {
    pub id: &'a str,
    pub token_hash: &'a str,
    pub name: &'a str,
    pub expires_at: Option<i64>,
}

pub async fn insert_admin_token(
    conn: &mut AnyConnection,
    token: &NewAdminToken<'_>,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO admin_tokens (id, token_hash, name, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token.id)
    .bind(token.token_hash)
    .bind(token.name)
    .bind(token.expires_at)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// An admin token that authenticated: its id and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTokenAuth {
    pub id: String,
    pub expires_at: Option<i64>,
}

/// The unrevoked, unexpired admin token with this hash; records the use.
pub async fn authenticate_admin(
    db: &Db,
    token_hash: &str,
    now_ms: i64,
) -> Result<Option<AdminTokenAuth>, DbError> {
    let row = sqlx::query(
        "SELECT id, last_used_at, expires_at FROM admin_tokens
         WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(token_hash)
    .bind(now_ms)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let id: String = row.try_get("id")?;
    let last_used: Option<i64> = row.try_get("last_used_at")?;
    if last_used.is_none_or(|t| now_ms - t >= LAST_USED_GRANULARITY_MS) {
        record_use(
            db,
            "UPDATE admin_tokens SET last_used_at = $1 WHERE id = $2",
            &id,
            now_ms,
        )
        .await;
    }
    Ok(Some(AdminTokenAuth {
        id,
        expires_at: row.try_get("expires_at")?,
    }))
}

/// An admin token as an admin sees it: never the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTokenInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Every admin token, oldest first.
pub async fn admin_tokens(conn: &mut AnyConnection) -> Result<Vec<AdminTokenInfo>, DbError> {
    let rows = sqlx::query(
        "SELECT id, name, created_at, expires_at, last_used_at, revoked_at FROM admin_tokens
         ORDER BY created_at, id",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AdminTokenInfo {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                last_used_at: r.try_get("last_used_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// A partner token as an admin sees it: never the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A partner's tokens, oldest first.
pub async fn partner_tokens(
    conn: &mut AnyConnection,
    partner_id: &str,
) -> Result<Vec<TokenInfo>, DbError> {
    let rows = sqlx::query(
        "SELECT id, created_at, last_used_at, revoked_at FROM partner_tokens
         WHERE partner_id = $1 ORDER BY created_at, id",
    )
    .bind(partner_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TokenInfo {
                id: r.try_get("id")?,
                created_at: r.try_get("created_at")?,
                last_used_at: r.try_get("last_used_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// Revoke a partner's unrevoked token; its hash (to drop it from caches), or None when the
/// partner has no such unrevoked token.
pub async fn revoke_partner_token(
    conn: &mut AnyConnection,
    partner_id: &str,
    id: &str,
    now_ms: i64,
) -> Result<Option<String>, DbError> {
    sqlx::query_scalar(
        "UPDATE partner_tokens SET revoked_at = $1
         WHERE partner_id = $2 AND id = $3 AND revoked_at IS NULL RETURNING token_hash",
    )
    .bind(now_ms)
    .bind(partner_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Revoke an unrevoked admin token; its hash, or None when there is no such token.
pub async fn revoke_admin_token(
    conn: &mut AnyConnection,
    id: &str,
    now_ms: i64,
) -> Result<Option<String>, DbError> {
    sqlx::query_scalar(
        "UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL
         RETURNING token_hash",
    )
    .bind(now_ms)
    .bind(id)
    .fetch_optional(conn)
    .await
}
