//! App-launch signing keys (private keys sealed with the instance key).

use sqlx::{AnyConnection, Row};

use super::DbError;

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub kid: String,
    pub private_sealed: String,
    /// Base64url of the raw public key.
    pub public_raw: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

pub async fn all(conn: &mut AnyConnection) -> Result<Vec<KeyRow>, DbError> {
    let rows = sqlx::query("SELECT kid, private_sealed, public_raw, created_at, retired_at FROM signing_keys ORDER BY created_at, kid")
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(KeyRow {
                kid: r.try_get("kid")?,
                private_sealed: r.try_get("private_sealed")?,
                public_raw: r.try_get("public_raw")?,
                created_at: r.try_get("created_at")?,
                retired_at: r.try_get("retired_at")?,
            })
        })
        .collect()
}

pub async fn insert(conn: &mut AnyConnection, k: &KeyRow) -> Result<(), DbError> {
    sqlx::query("INSERT INTO signing_keys (kid, private_sealed, public_raw, created_at, retired_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&k.kid)
        .bind(&k.private_sealed)
        .bind(&k.public_raw)
        .bind(k.created_at)
        .bind(k.retired_at)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn retire_active(conn: &mut AnyConnection, now: i64) -> Result<(), DbError> {
    sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}
