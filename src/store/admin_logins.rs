//! Console logins and their one-time setup links. Names are unique case-insensitively; a
//! link's secret and a password are kept only as hashes.

use sqlx::{AnyConnection, Row};

use super::tokens::principal;
use super::DbError;
use crate::domain::{AdminPrincipal, AdminRole, PrincipalKind};

/// A new login: its role and scope columns as [`super::tokens::principal`] reads them.
pub struct NewLogin<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub role: AdminRole,
    pub partner_id: Option<&'a str>,
    pub sponsor_email: Option<&'a str>,
}

pub async fn insert(conn: &mut AnyConnection, l: &NewLogin<'_>, now: i64) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO admin_logins (id, name, name_lower, role, partner_id, sponsor_email, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(l.id)
    .bind(l.name)
    .bind(l.name.to_lowercase())
    .bind(l.role.as_str())
    .bind(l.partner_id)
    .bind(l.sponsor_email)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A login as the sign-in path reads it.
#[derive(Debug, Clone)]
pub struct LoginRow {
    pub id: String,
    pub name: String,
    pub principal: AdminPrincipal,
    pub password_hash: Option<String>,
    pub disabled_at: Option<i64>,
}

const COLUMNS: &str =
    "id, name, role, partner_id, sponsor_email, password_hash, disabled_at FROM admin_logins";

fn from_row(row: &sqlx::any::AnyRow) -> Result<LoginRow, DbError> {
    let id: String = row.try_get("id")?;
    Ok(LoginRow {
        principal: principal(row, PrincipalKind::Login, &id)?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        disabled_at: row.try_get("disabled_at")?,
        id,
    })
}

pub async fn by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<LoginRow>, DbError> {
    sqlx::query(&format!("SELECT {COLUMNS} WHERE name_lower = $1"))
        .bind(name.to_lowercase())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub async fn by_id(conn: &mut AnyConnection, id: &str) -> Result<Option<LoginRow>, DbError> {
    sqlx::query(&format!("SELECT {COLUMNS} WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Whether any login exists (`serve` tells a fresh install how to make the first).
pub async fn any(conn: &mut AnyConnection) -> Result<bool, DbError> {
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM admin_logins")
        .fetch_one(conn)
        .await?
        .try_get(0)?;
    Ok(n > 0)
}

pub async fn set_password(
    conn: &mut AnyConnection,
    id: &str,
    password_hash: &str,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query("UPDATE admin_logins SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(password_hash)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn record_sign_in(conn: &mut AnyConnection, id: &str, now: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE admin_logins SET last_login_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Disable the login; false when there is no such enabled login.
pub async fn disable(conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE admin_logins SET disabled_at = $1, updated_at = $1 WHERE id = $2 AND disabled_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn insert_link(
    conn: &mut AnyConnection,
    id: &str,
    login_id: &str,
    secret_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO admin_login_links (id, login_id, secret_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
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

/// The login whose unused, unexpired setup link has this hash (and is not disabled).
pub async fn link_login(
    conn: &mut AnyConnection,
    secret_hash: &str,
    now: i64,
) -> Result<Option<String>, DbError> {
    sqlx::query(
        "SELECT l.login_id FROM admin_login_links l JOIN admin_logins a ON a.id = l.login_id
         WHERE l.secret_hash = $1 AND l.used_at IS NULL AND l.expires_at > $2 AND a.disabled_at IS NULL",
    )
    .bind(secret_hash)
    .bind(now)
    .fetch_optional(conn)
    .await?
    .map(|r| r.try_get("login_id"))
    .transpose()
}

/// Use the link once: the login it was for, or None when it was used, expired or unknown.
/// The condition is in the UPDATE, so two posts of one link cannot both use it.
pub async fn use_link(
    conn: &mut AnyConnection,
    secret_hash: &str,
    now: i64,
) -> Result<Option<String>, DbError> {
    sqlx::query(
        "UPDATE admin_login_links SET used_at = $1
         WHERE secret_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING login_id",
    )
    .bind(now)
    .bind(secret_hash)
    .fetch_optional(conn)
    .await?
    .map(|r| r.try_get("login_id"))
    .transpose()
}
