//! Console sessions, by the hash of the cookie's secret. A session is usable while not
//! ended, before its absolute expiry and within the idle timeout of its last use, and only
//! while its login is enabled.

use sqlx::{AnyConnection, Row};

use super::admin_logins::LoginRow;
use super::tokens::principal;
use super::DbError;
use crate::domain::PrincipalKind;

pub async fn insert(
    conn: &mut AnyConnection,
    id: &str,
    login_id: &str,
    secret_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO admin_sessions (id, login_id, secret_hash, created_at, last_seen_at, expires_at)
         VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(id)
    .bind(login_id)
    .bind(secret_hash)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A usable session: its id, when it was last used, and its login.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub last_seen_at: i64,
    pub login: LoginRow,
}

pub async fn usable(
    conn: &mut AnyConnection,
    secret_hash: &str,
    now: i64,
    idle_ms: i64,
) -> Result<Option<SessionRow>, DbError> {
    let row = sqlx::query(
        "SELECT s.id AS session_id, s.last_seen_at, a.id, a.name, a.role, a.partner_id,
                a.sponsor_email, a.password_hash, a.disabled_at
         FROM admin_sessions s JOIN admin_logins a ON a.id = s.login_id
         WHERE s.secret_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2
           AND s.last_seen_at > $3 AND a.disabled_at IS NULL",
    )
    .bind(secret_hash)
    .bind(now)
    .bind(now - idle_ms)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let id: String = row.try_get("id")?;
    Ok(Some(SessionRow {
        id: row.try_get("session_id")?,
        last_seen_at: row.try_get("last_seen_at")?,
        login: LoginRow {
            principal: principal(&row, PrincipalKind::Login, &id)?,
            name: row.try_get("name")?,
            password_hash: row.try_get("password_hash")?,
            disabled_at: row.try_get("disabled_at")?,
            id,
        },
    }))
}

pub async fn touch(conn: &mut AnyConnection, id: &str, now: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE admin_sessions SET last_seen_at = $1 WHERE id = $2 AND ended_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// End the session with this secret hash; its login id when it was open.
pub async fn end(
    conn: &mut AnyConnection,
    secret_hash: &str,
    now: i64,
) -> Result<Option<String>, DbError> {
    sqlx::query(
        "UPDATE admin_sessions SET ended_at = $1 WHERE secret_hash = $2 AND ended_at IS NULL
         RETURNING login_id",
    )
    .bind(now)
    .bind(secret_hash)
    .fetch_optional(conn)
    .await?
    .map(|r| r.try_get("login_id"))
    .transpose()
}

/// End every open session of a login; how many.
pub async fn end_all(conn: &mut AnyConnection, login_id: &str, now: i64) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE admin_sessions SET ended_at = $1 WHERE login_id = $2 AND ended_at IS NULL",
    )
    .bind(now)
    .bind(login_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
