//! Guests' passkeys and the WebAuthn ceremonies in progress (their state between start and
//! finish, single use).

use sqlx::{AnyConnection, Row};

use super::DbError;

#[derive(Debug, Clone)]
pub struct PasskeyRow {
    pub id: String,
    pub guest_id: String,
    pub credential_id: String,
    /// The webauthn-rs `Passkey`, serialised as JSON.
    pub passkey: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

const COLUMNS: &str = "id, guest_id, credential_id, passkey, name, created_at, last_used_at";

fn row(r: &sqlx::any::AnyRow) -> Result<PasskeyRow, DbError> {
    Ok(PasskeyRow {
        id: r.try_get("id")?,
        guest_id: r.try_get("guest_id")?,
        credential_id: r.try_get("credential_id")?,
        passkey: r.try_get("passkey")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

pub async fn insert(conn: &mut AnyConnection, p: &PasskeyRow) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO guest_passkeys (id, guest_id, credential_id, passkey, name, created_at, last_used_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&p.id)
    .bind(&p.guest_id)
    .bind(&p.credential_id)
    .bind(&p.passkey)
    .bind(&p.name)
    .bind(p.created_at)
    .bind(p.last_used_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The guest's passkeys, oldest first.
pub async fn for_guest(
    conn: &mut AnyConnection,
    guest_id: &str,
) -> Result<Vec<PasskeyRow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM guest_passkeys WHERE guest_id = $1 ORDER BY created_at, id"
    ))
    .bind(guest_id)
    .fetch_all(conn)
    .await?;
    rows.iter().map(row).collect()
}

pub async fn by_credential(
    conn: &mut AnyConnection,
    credential_id: &str,
) -> Result<Option<PasskeyRow>, DbError> {
    let r = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM guest_passkeys WHERE credential_id = $1"
    ))
    .bind(credential_id)
    .fetch_optional(conn)
    .await?;
    r.as_ref().map(row).transpose()
}

/// After a use: the updated counter and backup state, and when.
pub async fn record_use(
    conn: &mut AnyConnection,
    id: &str,
    passkey: &str,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query("UPDATE guest_passkeys SET passkey = $1, last_used_at = $2 WHERE id = $3")
        .bind(passkey)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Remove one of the guest's passkeys; true when it was theirs.
pub async fn delete(conn: &mut AnyConnection, guest_id: &str, id: &str) -> Result<bool, DbError> {
    Ok(
        sqlx::query("DELETE FROM guest_passkeys WHERE id = $1 AND guest_id = $2")
            .bind(id)
            .bind(guest_id)
            .execute(conn)
            .await?
            .rows_affected()
            > 0,
    )
}

/// Remove all of the guest's passkeys (an MFA reset); how many there were.
pub async fn delete_all(conn: &mut AnyConnection, guest_id: &str) -> Result<u64, DbError> {
    Ok(
        sqlx::query("DELETE FROM guest_passkeys WHERE guest_id = $1")
            .bind(guest_id)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Store a ceremony's state under `id`, replacing an unfinished one with the same id.
pub async fn put_ceremony(
    conn: &mut AnyConnection,
    id: &str,
    kind: &str,
    state: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM passkey_ceremonies WHERE id = $1 OR expires_at <= $2")
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO passkey_ceremonies (id, kind, state, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(kind)
    .bind(state)
    .bind(now)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Take a ceremony's state once: None when unknown, of another kind, expired or already
/// taken (the delete decides, so two finishes cannot both get it).
pub async fn take_ceremony(
    conn: &mut AnyConnection,
    id: &str,
    kind: &str,
    now: i64,
) -> Result<Option<String>, DbError> {
    let state: Option<(String, i64)> = sqlx::query_as(
        "SELECT state, expires_at FROM passkey_ceremonies WHERE id = $1 AND kind = $2",
    )
    .bind(id)
    .bind(kind)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((state, expires_at)) = state else {
        return Ok(None);
    };
    let taken = sqlx::query("DELETE FROM passkey_ceremonies WHERE id = $1 AND kind = $2")
        .bind(id)
        .bind(kind)
        .execute(conn)
        .await?
        .rows_affected()
        == 1;
    Ok((taken && expires_at > now).then_some(state))
}
