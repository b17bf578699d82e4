//! Erasing a removed guest's personal data from every table that holds it (see
//! docs/security.md, "Personal data: erasure and retention", for the table-by-table list).
//! The guest row stays, under a pseudonym, so grants, consents and the audit log keep
//! pointing at something; everything that names the person goes.

use sqlx::AnyConnection;

use super::audit;
use super::DbError;

/// Removed guests due for erasure: removed before `cutoff`, not erased yet, and with every
/// sync event settled (delivered or dead), so that a deprovision still reaches its target
/// with the payload it was written with.
pub async fn due(
    conn: &mut AnyConnection,
    cutoff: i64,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar(
        "SELECT g.id FROM guests g
         WHERE g.state = 'removed' AND g.erased_at IS NULL AND g.updated_at <= $1
           AND NOT EXISTS (SELECT 1 FROM sync_outbox s
                           WHERE s.guest_id = g.id AND s.delivered_at IS NULL AND s.dead_at IS NULL)
         ORDER BY g.updated_at LIMIT $2",
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Who is erased: the guest, the SCIM user it came from and the strings that named them.
pub struct Person<'a> {
    pub guest_id: &'a str,
    pub user_id: &'a str,
    pub partner_id: &'a str,
    /// userName, e-mail, display name: searched for in free-text reports.
    pub identifiers: Vec<String>,
}

/// Statements deleting a guest's rows outright, each by the guest id (`$1`). Rows that name
/// nobody but serve as evidence (grants, consents) are kept; see docs/security.md.
const DELETE_BY_GUEST: [&str; 11] = [
    "DELETE FROM mail_outbox WHERE guest_id = $1",
    "DELETE FROM sync_outbox WHERE guest_id = $1",
    "DELETE FROM guest_sync WHERE guest_id = $1",
    "DELETE FROM invitation_reminders WHERE invitation_id IN (SELECT id FROM invitations WHERE guest_id = $1)",
    "DELETE FROM invitations WHERE guest_id = $1",
    "DELETE FROM guest_sessions WHERE guest_id = $1",
    "DELETE FROM signin_links WHERE guest_id = $1",
    "DELETE FROM email_codes WHERE guest_id = $1",
    "DELETE FROM guest_mfa WHERE guest_id = $1",
    "DELETE FROM guest_passkeys WHERE guest_id = $1",
    "DELETE FROM notices WHERE guest_id = $1",
];

/// Erase `person` in the caller's transaction; how many rows were deleted or cleared.
pub async fn erase(
    conn: &mut AnyConnection,
    person: &Person<'_>,
    now: i64,
) -> Result<u64, DbError> {
    let mut n = 0;
    sqlx::query(
        "UPDATE guests SET user_name = $1, email = NULL, display_name = NULL, sponsor = NULL,
                erased_at = $2
         WHERE id = $3",
    )
    .bind(format!("erased:{}", person.guest_id))
    .bind(now)
    .bind(person.guest_id)
    .execute(&mut *conn)
    .await?;
    for sql in DELETE_BY_GUEST {
        n += sqlx::query(sql)
            .bind(person.guest_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    n += audit::erase_subjects(conn, &[person.guest_id, person.user_id]).await?;
    // Mail about the guest sent to someone else (a sponsor) carries the guest id; mail to
    // the address without it (a sign-in link asked for by address) is found by the address.
    for id in &person.identifiers {
        if id.contains('@') {
            n += sqlx::query("DELETE FROM mail_outbox WHERE lower(to_addr) = $1")
                .bind(id.to_lowercase())
                .execute(&mut *conn)
                .await?
                .rows_affected();
        }
    }
    n += clear_import_reports(conn, person).await?;
    Ok(n)
}

/// An import's error report is one text for the whole file (`line,column,reason`): the
/// reports of the partner's imports that mention the person are dropped whole, since a line
/// cannot be told apart from its neighbours without parsing every report. The counts stay.
async fn clear_import_reports(
    conn: &mut AnyConnection,
    person: &Person<'_>,
) -> Result<u64, DbError> {
    let mut n = 0;
    for id in person.identifiers.iter().filter(|s| !s.is_empty()) {
        n += sqlx::query(
            "UPDATE imports SET error_report = NULL
             WHERE partner_id = $1 AND error_report IS NOT NULL
               AND lower(error_report) LIKE '%' || $2 || '%'",
        )
        .bind(person.partner_id)
        .bind(id.to_lowercase())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok(n)
}
