//! Invitation links (stored as hashes) and consent records.

use sqlx::{AnyConnection, Row};

use super::sql::Arg;
use super::work::{Table, Work};
use super::DbError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRow {
    pub id: String,
    pub guest_id: String,
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub reminders_sent: i64,
    pub last_reminder_at: Option<i64>,
}

impl InvitationRow {
    /// Open: neither used, revoked nor expired at `now`.
    pub fn is_open(&self, now: i64) -> bool {
        self.used_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

const COLUMNS: &str =
    "id, guest_id, token_hash, created_at, expires_at, used_at, revoked_at, reminders_sent, last_reminder_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<InvitationRow, DbError> {
    Ok(InvitationRow {
        id: r.try_get("id")?,
        guest_id: r.try_get("guest_id")?,
        token_hash: r.try_get("token_hash")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        used_at: r.try_get("used_at")?,
        revoked_at: r.try_get("revoked_at")?,
        reminders_sent: r.try_get("reminders_sent")?,
        last_reminder_at: r.try_get("last_reminder_at")?,
    })
}

/// Queue a new invitation in `work`, with when the reminder job should first look at it.
pub fn queue_insert(work: &mut Work, i: &InvitationRow, next_action_at: Option<i64>) {
    work.queue(
        Table::Invitations,
        vec![
            Arg::text(i.id.as_str()),
            Arg::text(i.guest_id.as_str()),
            Arg::text(i.token_hash.as_str()),
            Arg::Int(i.created_at),
            Arg::Int(i.expires_at),
            Arg::opt_int(i.used_at),
            Arg::opt_int(i.revoked_at),
            Arg::Int(i.reminders_sent),
            Arg::opt_int(i.last_reminder_at),
            Arg::opt_int(next_action_at),
        ],
    );
}

pub async fn by_token_hash(
    conn: &mut AnyConnection,
    hash: &str,
) -> Result<Option<InvitationRow>, DbError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM invitations WHERE token_hash = $1"
    ))
    .bind(hash)
    .fetch_optional(conn)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

/// A guest's invitations, newest first.
pub async fn for_guest(
    conn: &mut AnyConnection,
    guest_id: &str,
) -> Result<Vec<InvitationRow>, DbError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM invitations WHERE guest_id = $1 ORDER BY created_at DESC, id"
    ))
    .bind(guest_id)
    .fetch_all(conn)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// Void every open invitation of a guest (a new one replaces them, or an admin revokes).
pub async fn revoke_open(
    conn: &mut AnyConnection,
    guest_id: &str,
    now: i64,
) -> Result<u64, DbError> {
    Ok(sqlx::query("UPDATE invitations SET revoked_at = $1 WHERE guest_id = $2 AND used_at IS NULL AND revoked_at IS NULL")
        .bind(now)
        .bind(guest_id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Mark used, if still open; false when someone else used it first (single use).
pub async fn mark_used(conn: &mut AnyConnection, id: &str, now: i64) -> Result<bool, DbError> {
    Ok(sqlx::query(
        "UPDATE invitations SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

pub async fn record_consent(
    conn: &mut AnyConnection,
    guest_id: &str,
    now: i64,
    text_version: &str,
    accepted: bool,
) -> Result<(), DbError> {
    sqlx::query("INSERT INTO consents (id, guest_id, at, text_version, accepted) VALUES ($1, $2, $3, $4, $5)")
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(guest_id)
        .bind(now)
        .bind(text_version)
        .bind(i64::from(accepted))
        .execute(conn)
        .await?;
    Ok(())
}

/// The latest consent decision of a guest: (at, text version, accepted).
pub async fn latest_consent(
    conn: &mut AnyConnection,
    guest_id: &str,
) -> Result<Option<(i64, String, bool)>, DbError> {
    let row = sqlx::query("SELECT at, text_version, accepted FROM consents WHERE guest_id = $1 ORDER BY at DESC LIMIT 1")
        .bind(guest_id)
        .fetch_optional(conn)
        .await?;
    row.map(|r| {
        Ok((
            r.try_get("at")?,
            r.try_get("text_version")?,
            r.try_get::<i64, _>("accepted")? != 0,
        ))
    })
    .transpose()
}
