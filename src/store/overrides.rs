//! An administrator's changes to one app of a guest: every grant row of the app gets the
//! end and the bound (`ends_by`) the administrator set (see `services::grant_overrides`).

use sqlx::AnyConnection;

use super::DbError;

/// Set the end of every grant of `app` of the guest, with `ends_by` naming the
/// administrator's bound; `end_seen_at` is given for an end that needs no notice (a
/// revocation, told to the targets in the same transaction) and cleared otherwise, so the
/// expiry job warns about and acts on a new end. Returns how many grants changed.
pub async fn set_app_end(
    conn: &mut AnyConnection,
    guest_id: &str,
    app: &str,
    until: i64,
    ends_by: &str,
    end_seen_at: Option<i64>,
) -> Result<u64, DbError> {
    let done = sqlx::query(
        "UPDATE guest_grants SET valid_until = $1, ends_by = $2, end_seen_at = $3
         WHERE guest_id = $4 AND app_id = $5",
    )
    .bind(until)
    .bind(ends_by)
    .bind(end_seen_at)
    .bind(guest_id)
    .bind(app)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Mark a person as invited by an administrator rather than sent by their partner.
pub async fn record_admin_created(
    conn: &mut AnyConnection,
    user_id: &str,
    partner_id: &str,
    actor: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO admin_created_people (user_id, partner_id, actor, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(partner_id)
    .bind(actor)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether an administrator created this person.
pub async fn is_admin_created(conn: &mut AnyConnection, user_id: &str) -> Result<bool, DbError> {
    let row = sqlx::query("SELECT 1 AS one FROM admin_created_people WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}
