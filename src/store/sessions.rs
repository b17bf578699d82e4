//! Guest sign-in state: sessions, magic sign-in links and emailed one-time codes, each
//! stored as a hash of its secret.

use sqlx::{AnyConnection, Row};

use super::DbError;

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id_hash: String,
    pub guest_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub mfa_passed: bool,
    pub csrf_secret: String,
    /// How the session began (`invitation`, `signin_link`); see `guest_auth::SessionOrigin`.
    pub origin: String,
    /// Which factor passed MFA (`totp`, `email`, `passkey`); None before it passed.
    pub mfa_method: Option<String>,
}

pub async fn insert_session(conn: &mut AnyConnection, s: &SessionRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO guest_sessions (id_hash, guest_id, created_at, expires_at, mfa_passed, csrf_secret, origin, mfa_method)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&s.id_hash)
    .bind(&s.guest_id)
    .bind(s.created_at)
    .bind(s.expires_at)
    .bind(i64::from(s.mfa_passed))
    .bind(&s.csrf_secret)
    .bind(&s.origin)
    .bind(&s.mfa_method)
    .execute(conn)
    .await?;
    Ok(())
}

/// A live session.
pub async fn session(
    conn: &mut AnyConnection,
    id_hash: &str,
    now: i64,
) -> Result<Option<SessionRow>, DbError> {
    let row = sqlx::query(
        "SELECT id_hash, guest_id, created_at, expires_at, mfa_passed, csrf_secret, origin, mfa_method FROM guest_sessions
         WHERE id_hash = $1 AND expires_at > $2",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(SessionRow {
            id_hash: r.try_get("id_hash")?,
            guest_id: r.try_get("guest_id")?,
            created_at: r.try_get("created_at")?,
            expires_at: r.try_get("expires_at")?,
            mfa_passed: r.try_get::<i64, _>("mfa_passed")? != 0,
            csrf_secret: r.try_get("csrf_secret")?,
            origin: r.try_get("origin")?,
            mfa_method: r.try_get("mfa_method")?,
        })
    })
    .transpose()
}

/// MFA passed in this session, with `method`.
pub async fn set_mfa_passed(
    conn: &mut AnyConnection,
    id_hash: &str,
    method: &str,
) -> Result<(), DbError> {
    sqlx::query("UPDATE guest_sessions SET mfa_passed = 1, mfa_method = $1 WHERE id_hash = $2")
        .bind(method)
        .bind(id_hash)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete_session(conn: &mut AnyConnection, id_hash: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM guest_sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// End every session of a guest (suspension, removal, MFA reset).
pub async fn delete_guest_sessions(
    conn: &mut AnyConnection,
    guest_id: &str,
) -> Result<u64, DbError> {
    Ok(
        sqlx::query("DELETE FROM guest_sessions WHERE guest_id = $1")
            .bind(guest_id)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

pub async fn insert_signin_link(
    conn: &mut AnyConnection,
    token_hash: &str,
    guest_id: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    sqlx::query("INSERT INTO signin_links (token_hash, guest_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(token_hash)
        .bind(guest_id)
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// The guest a sign-in link is for, if it is still usable; reading it does not use it.
pub async fn signin_link(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: i64,
) -> Result<Option<String>, DbError> {
    sqlx::query_scalar(
        "SELECT guest_id FROM signin_links WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Use a sign-in link once: the guest id, or None if unknown, used or expired.
pub async fn use_signin_link(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: i64,
) -> Result<Option<String>, DbError> {
    let guest: Option<String> = sqlx::query_scalar(
        "SELECT guest_id FROM signin_links WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(guest) = guest else { return Ok(None) };
    let done = sqlx::query(
        "UPDATE signin_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
    )
    .bind(now)
    .bind(token_hash)
    .execute(conn)
    .await?;
    Ok((done.rows_affected() == 1).then_some(guest))
}

pub async fn insert_email_code(
    conn: &mut AnyConnection,
    guest_id: &str,
    code_hash: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    sqlx::query("INSERT INTO email_codes (id, guest_id, code_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(guest_id)
        .bind(code_hash)
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Use an emailed code once: true when it was valid.
pub async fn use_email_code(
    conn: &mut AnyConnection,
    guest_id: &str,
    code_hash: &str,
    now: i64,
) -> Result<bool, DbError> {
    Ok(sqlx::query(
        "UPDATE email_codes SET used_at = $1
         WHERE guest_id = $2 AND code_hash = $3 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(guest_id)
    .bind(code_hash)
    .execute(conn)
    .await?
    .rows_affected()
        > 0)
}
