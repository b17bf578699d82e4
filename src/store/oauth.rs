//! The OpenID Connect provider's state: authorization codes and refresh tokens, each stored as
//! the SHA-256 hash of its secret. "Use once" is a conditional UPDATE, so two instances racing
//! for one code or one refresh token cannot both win.

use sqlx::{AnyConnection, Row};

use super::DbError;

#[derive(Debug, Clone)]
pub struct CodeRow {
    pub code_hash: String,
    pub client_id: String,
    pub guest_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub amr: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub family_id: String,
}

pub async fn insert_code(conn: &mut AnyConnection, c: &CodeRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO oauth_codes (code_hash, client_id, guest_id, redirect_uri, scope, nonce,
             code_challenge, auth_time, amr, created_at, expires_at, family_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&c.code_hash)
    .bind(&c.client_id)
    .bind(&c.guest_id)
    .bind(&c.redirect_uri)
    .bind(&c.scope)
    .bind(&c.nonce)
    .bind(&c.code_challenge)
    .bind(c.auth_time)
    .bind(&c.amr)
    .bind(c.created_at)
    .bind(c.expires_at)
    .bind(&c.family_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// What using a code found.
pub enum CodeUse {
    /// Unknown or past its end.
    Invalid,
    /// Already exchanged once: a replay.
    Replayed(CodeRow),
    /// This call used it.
    Fresh(CodeRow),
}

pub async fn use_code(
    conn: &mut AnyConnection,
    code_hash: &str,
    now: i64,
) -> Result<CodeUse, DbError> {
    let row = sqlx::query(
        "SELECT code_hash, client_id, guest_id, redirect_uri, scope, nonce, code_challenge,
                auth_time, amr, created_at, expires_at, family_id, used_at
         FROM oauth_codes WHERE code_hash = $1",
    )
    .bind(code_hash)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = row else {
        return Ok(CodeUse::Invalid);
    };
    let code = CodeRow {
        code_hash: r.try_get("code_hash")?,
        client_id: r.try_get("client_id")?,
        guest_id: r.try_get("guest_id")?,
        redirect_uri: r.try_get("redirect_uri")?,
        scope: r.try_get("scope")?,
        nonce: r.try_get("nonce")?,
        code_challenge: r.try_get("code_challenge")?,
        auth_time: r.try_get("auth_time")?,
        amr: r.try_get("amr")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        family_id: r.try_get("family_id")?,
    };
    let used_at: Option<i64> = r.try_get("used_at")?;
    if used_at.is_some() {
        return Ok(CodeUse::Replayed(code));
    }
    if code.expires_at <= now {
        return Ok(CodeUse::Invalid);
    }
    let won =
        sqlx::query("UPDATE oauth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL")
            .bind(now)
            .bind(code_hash)
            .execute(conn)
            .await?
            .rows_affected()
            == 1;
    Ok(if won {
        CodeUse::Fresh(code)
    } else {
        CodeUse::Replayed(code)
    })
}

#[derive(Debug, Clone)]
pub struct RefreshRow {
    pub token_hash: String,
    pub family_id: String,
    pub client_id: String,
    pub guest_id: String,
    pub scope: String,
    pub auth_time: i64,
    pub amr: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub async fn insert_refresh(conn: &mut AnyConnection, t: &RefreshRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO oauth_refresh_tokens (token_hash, family_id, client_id, guest_id, scope,
             auth_time, amr, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&t.token_hash)
    .bind(&t.family_id)
    .bind(&t.client_id)
    .bind(&t.guest_id)
    .bind(&t.scope)
    .bind(t.auth_time)
    .bind(&t.amr)
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// What presenting a refresh token found.
pub enum RefreshUse {
    Invalid,
    /// Used before, or its family revoked: the family is (now) revoked.
    Reused(RefreshRow),
    Fresh(RefreshRow),
}

pub async fn use_refresh(
    conn: &mut AnyConnection,
    token_hash: &str,
    now: i64,
) -> Result<RefreshUse, DbError> {
    let row = sqlx::query(
        "SELECT token_hash, family_id, client_id, guest_id, scope, auth_time, amr, created_at,
                expires_at, used_at, revoked_at
         FROM oauth_refresh_tokens WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = row else {
        return Ok(RefreshUse::Invalid);
    };
    let token = RefreshRow {
        token_hash: r.try_get("token_hash")?,
        family_id: r.try_get("family_id")?,
        client_id: r.try_get("client_id")?,
        guest_id: r.try_get("guest_id")?,
        scope: r.try_get("scope")?,
        auth_time: r.try_get("auth_time")?,
        amr: r.try_get("amr")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    };
    let used_at: Option<i64> = r.try_get("used_at")?;
    let revoked_at: Option<i64> = r.try_get("revoked_at")?;
    if used_at.is_some() || revoked_at.is_some() {
        return Ok(RefreshUse::Reused(token));
    }
    if token.expires_at <= now {
        return Ok(RefreshUse::Invalid);
    }
    let won = sqlx::query(
        "UPDATE oauth_refresh_tokens SET used_at = $1
         WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(token_hash)
    .execute(conn)
    .await?
    .rows_affected()
        == 1;
    Ok(if won {
        RefreshUse::Fresh(token)
    } else {
        RefreshUse::Reused(token)
    })
}

/// Revoke every token of a family; returns how many were still live.
pub async fn revoke_family(
    conn: &mut AnyConnection,
    family_id: &str,
    now: i64,
) -> Result<u64, DbError> {
    Ok(sqlx::query(
        "UPDATE oauth_refresh_tokens SET revoked_at = $1
         WHERE family_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(family_id)
    .execute(conn)
    .await?
    .rows_affected())
}
