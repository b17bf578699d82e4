//! SCIM Users: one row per user (the JSON document plus indexed columns) and its leaf values
//! in `scim_values` for filtering. Every query is scoped by partner.

use sqlx::{AnyConnection, Row};

use super::listing::{self, ListQuery};
use super::scim_filter::{Column, ColumnKind, Relation};
use super::sql::{Arg, Sql};
use super::values;
use super::work::{Table, Work};
use super::DbError;
use crate::scim_core::resource::LeafValue;

/// A stored user.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub partner_id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub display_name: Option<String>,
    pub primary_email: Option<String>,
    /// The normalised SCIM document as JSON text.
    pub doc: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str =
    "r.id, r.partner_id, r.user_name, r.external_id, r.active, r.display_name, r.primary_email_lower, r.doc, r.version, r.created_at, r.updated_at";

/// The user's groups as one text column, so that reading a user with its `groups` is one
/// statement rather than two (each is a round trip to the sqlx-sqlite worker thread). Each
/// group is `len:id` then `len:display` with lengths in characters, so a display name may
/// hold any character; `string_agg` with `ORDER BY` is spelled the same on PostgreSQL and on
/// SQLite (3.44+, bundled). NULL when the user is in no group.
const GROUPS_PACKED: &str = "(SELECT string_agg(
        CAST(length(g.id) AS TEXT) || ':' || g.id
          || CAST(length(g.display_name) AS TEXT) || ':' || g.display_name,
        '' ORDER BY g.display_name_lower, g.id)
      FROM group_members gm JOIN scim_groups g ON g.id = gm.group_id
      WHERE gm.member_id = r.id) AS groups_packed";

/// Reads [`GROUPS_PACKED`] back into (group id, display name) pairs; None when the text is
/// not in that form (a server encoding whose `length` is not in characters, say), in which
/// case the caller reads the groups with a query of their own.
pub fn unpack_groups(packed: &str) -> Option<Vec<(String, String)>> {
    fn field(rest: &mut std::str::Chars<'_>) -> Option<String> {
        let mut len = 0usize;
        loop {
            match rest.next()? {
                ':' => break,
                c => len = len.checked_mul(10)?.checked_add(c.to_digit(10)? as usize)?,
            }
        }
        let mut out = String::new();
        for _ in 0..len {
            out.push(rest.next()?);
        }
        Some(out)
    }
    let mut rest = packed.chars();
    let mut groups = Vec::new();
    while !rest.as_str().is_empty() {
        let id = field(&mut rest)?;
        let display = field(&mut rest)?;
        groups.push((id, display));
    }
    Some(groups)
}

/// A user row and its packed groups ([`GROUPS_PACKED`]; None when in no group).
pub type UserRowWithGroups = (UserRow, Option<String>);

fn from_row_with_groups(row: &sqlx::any::AnyRow) -> Result<UserRowWithGroups, DbError> {
    Ok((from_row(row)?, row.try_get("groups_packed")?))
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<UserRow, DbError> {
    Ok(UserRow {
        id: row.try_get("id")?,
        partner_id: row.try_get("partner_id")?,
        user_name: row.try_get("user_name")?,
        external_id: row.try_get("external_id")?,
        active: row.try_get::<i64, _>("active")? != 0,
        display_name: row.try_get("display_name")?,
        primary_email: row.try_get("primary_email_lower")?,
        doc: row.try_get("doc")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

static GROUP_VALUE: Relation = Relation {
    select: "SELECT gm.member_id FROM group_members gm",
    partner_column: "gm.partner_id",
    value_column: "gm.group_id",
    lower: false,
};

static GROUP_DISPLAY: Relation = Relation {
    select: "SELECT gm.member_id FROM group_members gm JOIN scim_groups g ON g.id = gm.group_id",
    partner_column: "gm.partner_id",
    value_column: "g.display_name_lower",
    lower: true,
};

/// Attributes of the User resource held in columns, for the filter compiler.
pub fn user_columns(attr: &str, sub: Option<&str>) -> Option<Column> {
    let col = |expr, kind| Some(Column { expr, kind });
    match (
        attr.to_ascii_lowercase().as_str(),
        sub.map(str::to_ascii_lowercase).as_deref(),
    ) {
        ("id", None) => col("r.id", ColumnKind::TextExact),
        ("username", None) => col("r.user_name_lower", ColumnKind::TextLower),
        ("externalid", None) => col("r.external_id", ColumnKind::TextExact),
        ("active", None) => col("r.active", ColumnKind::Flag),
        ("meta", Some("created")) => col("r.created_at", ColumnKind::Millis),
        ("meta", Some("lastmodified")) => col("r.updated_at", ColumnKind::Millis),
        ("groups", None | Some("value")) => col("", ColumnKind::Related(&GROUP_VALUE)),
        ("groups", Some("display")) => col("", ColumnKind::Related(&GROUP_DISPLAY)),
        _ => None,
    }
}

/// Queue a new user and its values in `work`; a taken userName fails the flush.
pub fn queue_insert(work: &mut Work, u: &UserRow, leaves: &[LeafValue]) {
    work.queue(
        Table::Users,
        vec![
            Arg::text(u.id.as_str()),
            Arg::text(u.partner_id.as_str()),
            Arg::text(u.user_name.as_str()),
            Arg::Text(u.user_name.to_lowercase()),
            Arg::opt_text(u.external_id.as_deref()),
            Arg::Int(i64::from(u.active)),
            Arg::opt_text(u.display_name.as_deref()),
            Arg::opt_text(
                u.primary_email
                    .as_ref()
                    .map(|e| e.to_lowercase())
                    .as_deref(),
            ),
            Arg::text(u.doc.as_str()),
            Arg::Int(u.version),
            Arg::Int(u.created_at),
            Arg::Int(u.updated_at),
        ],
    );
    values::queue(work, &u.id, &u.partner_id, leaves);
}

/// Overwrite a user whose stored version is `expected_version`; false when it changed meanwhile.
pub async fn update(
    conn: &mut AnyConnection,
    u: &UserRow,
    expected_version: i64,
    leaves: &[LeafValue],
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE scim_users SET user_name = $1, user_name_lower = $2, external_id = $3, active = $4,
            display_name = $5, primary_email_lower = $6, doc = $7, version = $8, updated_at = $9
         WHERE id = $10 AND partner_id = $11 AND version = $12",
    )
    .bind(&u.user_name)
    .bind(u.user_name.to_lowercase())
    .bind(&u.external_id)
    .bind(i64::from(u.active))
    .bind(&u.display_name)
    .bind(u.primary_email.as_ref().map(|e| e.to_lowercase()))
    .bind(&u.doc)
    .bind(u.version)
    .bind(u.updated_at)
    .bind(&u.id)
    .bind(&u.partner_id)
    .bind(expected_version)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    values::replace(conn, &u.id, &u.partner_id, leaves).await?;
    Ok(true)
}

pub async fn get(
    conn: &mut AnyConnection,
    partner_id: &str,
    id: &str,
) -> Result<Option<UserRow>, DbError> {
    get_ending(conn, partner_id, id, "").await
}

async fn get_ending(
    conn: &mut AnyConnection,
    partner_id: &str,
    id: &str,
    lock: &str,
) -> Result<Option<UserRow>, DbError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM scim_users r WHERE r.partner_id = $1 AND r.id = $2{lock}"
    ))
    .bind(partner_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

/// A partner's user read to decide about them in this transaction (see `store::for_update`):
/// a SCIM write of the same person (which updates this row first) waits for the decision, or
/// the decision waits for it and reads what it wrote.
pub async fn get_locked(
    conn: &mut AnyConnection,
    partner_id: &str,
    id: &str,
) -> Result<Option<UserRow>, DbError> {
    let lock = super::for_update(conn);
    get_ending(conn, partner_id, id, lock).await
}

/// A partner's user with its groups, in one statement.
pub async fn get_with_groups(
    conn: &mut AnyConnection,
    partner_id: &str,
    id: &str,
) -> Result<Option<UserRowWithGroups>, DbError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS}, {GROUPS_PACKED} FROM scim_users r WHERE r.partner_id = $1 AND r.id = $2"
    ))
    .bind(partner_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .map(|r| from_row_with_groups(&r))
    .transpose()
}

/// The id of the partner's user with this userName (case-insensitive), if any.
pub async fn id_by_user_name(
    conn: &mut AnyConnection,
    partner_id: &str,
    user_name: &str,
) -> Result<Option<String>, DbError> {
    sqlx::query_scalar("SELECT id FROM scim_users WHERE partner_id = $1 AND user_name_lower = $2")
        .bind(partner_id)
        .bind(user_name.to_lowercase())
        .fetch_optional(conn)
        .await
}

/// A partner's users with these ids (in no particular order; unknown ids are skipped).
pub async fn by_ids(
    conn: &mut AnyConnection,
    partner_id: &str,
    ids: &[&str],
) -> Result<Vec<UserRow>, DbError> {
    let ids: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    select_in(conn, partner_id, "r.id", &ids).await
}

/// A partner's users with any of these userNames (compared case-insensitively).
pub async fn by_user_names(
    conn: &mut AnyConnection,
    partner_id: &str,
    user_names: &[String],
) -> Result<Vec<UserRow>, DbError> {
    let lower: Vec<String> = user_names.iter().map(|n| n.to_lowercase()).collect();
    select_in(conn, partner_id, "r.user_name_lower", &lower).await
}

/// A partner's users whose `column` is one of `values`, 500 values a statement.
async fn select_in(
    conn: &mut AnyConnection,
    partner_id: &str,
    column: &'static str,
    values: &[String],
) -> Result<Vec<UserRow>, DbError> {
    let mut out = Vec::with_capacity(values.len());
    for chunk in values.chunks(500) {
        let mut sql = Sql::new(format!(
            "SELECT {COLUMNS} FROM scim_users r WHERE r.partner_id = "
        ));
        sql.bind(Arg::text(partner_id))
            .push(" AND ")
            .push(column)
            .push(" IN (");
        for (i, value) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Arg::text(value.as_str()));
        }
        sql.push(")");
        for row in sql.query().fetch_all(&mut *conn).await? {
            out.push(from_row(&row)?);
        }
    }
    Ok(out)
}

/// Delete a user and its values; false when the partner has no such user.
pub async fn delete(conn: &mut AnyConnection, partner_id: &str, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query("DELETE FROM scim_users WHERE partner_id = $1 AND id = $2")
        .bind(partner_id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    values::delete(&mut *conn, id).await?;
    sqlx::query("DELETE FROM group_members WHERE member_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

/// One page of a partner's users and the total matching.
pub async fn list(
    conn: &mut AnyConnection,
    partner_id: &str,
    query: ListQuery,
) -> Result<(i64, Vec<UserRow>), DbError> {
    let columns = COLUMNS.to_string();
    let (total, rows) = listing::list(conn, "scim_users", &columns, partner_id, query).await?;
    let users = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok((total, users))
}

/// [`list`], each user with its groups, in the page's statement.
pub async fn list_with_groups(
    conn: &mut AnyConnection,
    partner_id: &str,
    query: ListQuery,
) -> Result<(i64, Vec<UserRowWithGroups>), DbError> {
    let columns = format!("{COLUMNS}, {GROUPS_PACKED}");
    let (total, rows) = listing::list(conn, "scim_users", &columns, partner_id, query).await?;
    let users = rows
        .iter()
        .map(from_row_with_groups)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((total, users))
}

/// Up to `limit` of a partner's users after `after` in creation order, without counting:
/// the building block of full scans that must not hold every user at once. The row-value
/// comparison is what lets PostgreSQL start the index scan at `after`; the equivalent
/// `a > x OR (a = x AND b > y)` made it rescan every earlier row on each page.
pub async fn page_after(
    conn: &mut AnyConnection,
    partner_id: &str,
    after: Option<&(i64, String)>,
    limit: i64,
) -> Result<Vec<UserRow>, DbError> {
    let rows = match after {
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM scim_users r WHERE r.partner_id = $1 ORDER BY r.created_at, r.id LIMIT $2"
            ))
            .bind(partner_id)
            .bind(limit)
            .fetch_all(conn)
            .await?
        }
        Some((t, id)) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM scim_users r WHERE r.partner_id = $1
                   AND (r.created_at, r.id) > ($2, $3)
                 ORDER BY r.created_at, r.id LIMIT $4"
            ))
            .bind(partner_id)
            .bind(*t)
            .bind(id)
            .bind(limit)
            .fetch_all(conn)
            .await?
        }
    };
    rows.iter().map(from_row).collect()
}

/// Active users of a partner (for the safety limit of a full import).
pub async fn count_active(conn: &mut AnyConnection, partner_id: &str) -> Result<i64, DbError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM scim_users WHERE partner_id = $1 AND active = 1")
        .bind(partner_id)
        .fetch_one(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::unpack_groups;

    #[test]
    fn packed_groups_read_back_whatever_the_display_name_holds() {
        let pairs = [
            ("g-1", "ICU rota"),
            ("g-22", "a:b 12:x"),
            ("7", ""),
            ("g3", "Zoë 🚑"),
        ];
        let packed: String = pairs
            .iter()
            .map(|(id, d)| format!("{}:{id}{}:{d}", id.chars().count(), d.chars().count()))
            .collect();
        let expected: Vec<(String, String)> = pairs
            .iter()
            .map(|(i, d)| (i.to_string(), d.to_string()))
            .collect();
        assert_eq!(unpack_groups(&packed), Some(expected));
        assert_eq!(unpack_groups(""), Some(vec![]));
        for junk in [
            "3:ab",
            "x:abc1:d",
            "3:abc",
            "3:abc9:short",
            "99999999999999999999999:a",
        ] {
            assert_eq!(unpack_groups(junk), None, "{junk}");
        }
    }
}
