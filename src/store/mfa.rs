//! Guests' TOTP enrolment (the secret sealed with the instance key).

use sqlx::{AnyConnection, Row};

use super::DbError;

#[derive(Debug, Clone)]
pub struct MfaRow {
    pub guest_id: String,
    pub totp_secret_sealed: String,
    pub enrolled_at: Option<i64>,
    pub last_step: Option<i64>,
}

pub async fn get(conn: &mut AnyConnection, guest_id: &str) -> Result<Option<MfaRow>, DbError> {
    let row = sqlx::query("SELECT guest_id, totp_secret_sealed, enrolled_at, last_step FROM guest_mfa WHERE guest_id = $1")
        .bind(guest_id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok(MfaRow {
            guest_id: r.try_get("guest_id")?,
            totp_secret_sealed: r.try_get("totp_secret_sealed")?,
            enrolled_at: r.try_get("enrolled_at")?,
            last_step: r.try_get("last_step")?,
        })
    })
    .transpose()
}

/// Start an enrolment with this sealed secret unless the guest already has one (pending or
/// enrolled), then read back whichever secret is stored. Run in a write transaction, so two
/// concurrent page loads both get the secret the first one stored.
pub async fn begin_or_current(
    conn: &mut AnyConnection,
    guest_id: &str,
    sealed: &str,
) -> Result<MfaRow, DbError> {
    sqlx::query(
        "INSERT INTO guest_mfa (guest_id, totp_secret_sealed) VALUES ($1, $2)
         ON CONFLICT (guest_id) DO NOTHING",
    )
    .bind(guest_id)
    .bind(sealed)
    .execute(&mut *conn)
    .await?;
    get(conn, guest_id).await?.ok_or(DbError::RowNotFound)
}

/// Remove the guest's enrolment (pending or complete); true when there was one.
pub async fn delete(conn: &mut AnyConnection, guest_id: &str) -> Result<bool, DbError> {
    Ok(sqlx::query("DELETE FROM guest_mfa WHERE guest_id = $1")
        .bind(guest_id)
        .execute(conn)
        .await?
        .rows_affected()
        > 0)
}

/// A code for `step` was accepted: enrol if not yet, and remember the step against replay.
pub async fn accept_step(
    conn: &mut AnyConnection,
    guest_id: &str,
    step: i64,
    now: i64,
) -> Result<(), DbError> {
    sqlx::query("UPDATE guest_mfa SET last_step = $1, enrolled_at = COALESCE(enrolled_at, $2) WHERE guest_id = $3")
        .bind(step)
        .bind(now)
        .bind(guest_id)
        .execute(conn)
        .await?;
    Ok(())
}
