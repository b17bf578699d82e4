//! SCIM Groups and their memberships. The group document is stored without `members`;
//! memberships are rows in `group_members`, so listing groups never touches them and a
//! membership change writes only the difference.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::scim_filter::{Column, ColumnKind, Relation};
use super::sql::{Arg, Sql};
use super::work::{Table, Work};
use super::{values, DbError};
use crate::scim_core::resource::LeafValue;

#[derive(Debug, Clone)]
pub struct GroupRow {
    pub id: String,
    pub partner_id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    /// The normalised SCIM document without `members`, as JSON text.
    pub doc: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One member as rendered: the user's id and a display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub display: String,
}

const COLUMNS: &str =
    "r.id, r.partner_id, r.display_name, r.external_id, r.doc, r.version, r.created_at, r.updated_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<GroupRow, DbError> {
    Ok(GroupRow {
        id: row.try_get("id")?,
        partner_id: row.try_get("partner_id")?,
        display_name: row.try_get("display_name")?,
        external_id: row.try_get("external_id")?,
        doc: row.try_get("doc")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

static MEMBER_VALUE: Relation = Relation {
    select: "SELECT gm.group_id FROM group_members gm",
    partner_column: "gm.partner_id",
    value_column: "gm.member_id",
    lower: false,
};

static MEMBER_DISPLAY: Relation = Relation {
    select: "SELECT gm.group_id FROM group_members gm JOIN scim_users mu ON mu.id = gm.member_id",
    partner_column: "gm.partner_id",
    value_column: "mu.user_name_lower",
    lower: true,
};

/// Attributes of the Group resource held in columns or relations, for the filter compiler.
pub fn group_columns(attr: &str, sub: Option<&str>) -> Option<Column> {
    let col = |expr, kind| Some(Column { expr, kind });
    match (
        attr.to_ascii_lowercase().as_str(),
        sub.map(str::to_ascii_lowercase).as_deref(),
    ) {
        ("id", None) => col("r.id", ColumnKind::TextExact),
        ("displayname", None) => col("r.display_name_lower", ColumnKind::TextLower),
        ("externalid", None) => col("r.external_id", ColumnKind::TextExact),
        ("meta", Some("created")) => col("r.created_at", ColumnKind::Millis),
        ("meta", Some("lastmodified")) => col("r.updated_at", ColumnKind::Millis),
        ("members", None | Some("value")) => col("", ColumnKind::Related(&MEMBER_VALUE)),
        ("members", Some("display")) => col("", ColumnKind::Related(&MEMBER_DISPLAY)),
        _ => None,
    }
}

pub async fn insert(
    conn: &mut AnyConnection,
    g: &GroupRow,
    leaves: &[LeafValue],
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO scim_groups (id, partner_id, display_name, display_name_lower, external_id,
            doc, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&g.id)
    .bind(&g.partner_id)
    .bind(&g.display_name)
    .bind(g.display_name.to_lowercase())
    .bind(&g.external_id)
    .bind(&g.doc)
    .bind(g.version)
    .bind(g.created_at)
    .bind(g.updated_at)
    .execute(&mut *conn)
    .await?;
    values::insert(conn, &g.id, &g.partner_id, leaves).await
}

/// Overwrite a group whose stored version is `expected_version`; false when it changed.
pub async fn update(
    conn: &mut AnyConnection,
    g: &GroupRow,
    expected_version: i64,
    leaves: Option<&[LeafValue]>,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE scim_groups SET display_name = $1, display_name_lower = $2, external_id = $3,
            doc = $4, version = $5, updated_at = $6
         WHERE id = $7 AND partner_id = $8 AND version = $9",
    )
    .bind(&g.display_name)
    .bind(g.display_name.to_lowercase())
    .bind(&g.external_id)
    .bind(&g.doc)
    .bind(g.version)
    .bind(g.updated_at)
    .bind(&g.id)
    .bind(&g.partner_id)
    .bind(expected_version)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    if let Some(leaves) = leaves {
        values::replace(conn, &g.id, &g.partner_id, leaves).await?;
    }
    Ok(true)
}

pub async fn get(
    conn: &mut AnyConnection,
    partner_id: &str,
    id: &str,
) -> Result<Option<GroupRow>, DbError> {
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM scim_groups r WHERE r.partner_id = $1 AND r.id = $2"
    ))
    .bind(partner_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

/// A partner's group read to be changed in this transaction (see `store::for_update`): two
/// writes of one group take turns, so a write without If-Match never fails on a version the
/// other moved on.
pub async fn get_locked(
    conn: &mut AnyConnection,
    partner_id: &str,
    id: &str,
) -> Result<Option<GroupRow>, DbError> {
    let lock = super::for_update(conn);
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM scim_groups r WHERE r.partner_id = $1 AND r.id = $2{lock}"
    ))
    .bind(partner_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .map(|r| from_row(&r))
    .transpose()
}

/// The id of the partner's group with this display name (case-insensitive), if any.
pub async fn id_by_display_name(
    conn: &mut AnyConnection,
    partner_id: &str,
    display_name: &str,
) -> Result<Option<String>, DbError> {
    sqlx::query_scalar(
        "SELECT id FROM scim_groups WHERE partner_id = $1 AND display_name_lower = $2",
    )
    .bind(partner_id)
    .bind(display_name.to_lowercase())
    .fetch_optional(conn)
    .await
}

pub async fn delete(conn: &mut AnyConnection, partner_id: &str, id: &str) -> Result<bool, DbError> {
    sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND partner_id = $2")
        .bind(id)
        .bind(partner_id)
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query("DELETE FROM scim_groups WHERE partner_id = $1 AND id = $2")
        .bind(partner_id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    values::delete(conn, id).await?;
    Ok(true)
}

/// Members of a group in a stable order, with display names.
pub async fn members(conn: &mut AnyConnection, group_id: &str) -> Result<Vec<Member>, DbError> {
    let rows = sqlx::query(
        "SELECT gm.member_id, COALESCE(u.display_name, u.user_name) AS display
         FROM group_members gm JOIN scim_users u ON u.id = gm.member_id
         WHERE gm.group_id = $1 ORDER BY gm.member_id",
    )
    .bind(group_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Member {
                id: r.try_get("member_id")?,
                display: r.try_get("display")?,
            })
        })
        .collect()
}

/// Most groups whose members one statement reads: a page of the largest default size
/// (`max_page_size` 1000) is one statement.
const MEMBERS_OF_GROUPS_BATCH: usize = 1000;

/// The members of each of these groups (a page of a list), one statement per 1,000
/// groups rather than one per group; groups without members are absent from the map.
pub async fn members_of_groups(
    conn: &mut AnyConnection,
    group_ids: &[&str],
) -> Result<HashMap<String, Vec<Member>>, DbError> {
    let mut out: HashMap<String, Vec<Member>> = HashMap::new();
    for chunk in group_ids.chunks(MEMBERS_OF_GROUPS_BATCH) {
        let mut sql = Sql::new(
            "SELECT gm.group_id, gm.member_id, COALESCE(u.display_name, u.user_name) AS display
             FROM group_members gm JOIN scim_users u ON u.id = gm.member_id
             WHERE gm.group_id IN (",
        );
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Arg::Text((*id).to_string()));
        }
        sql.push(") ORDER BY gm.group_id, gm.member_id");
        for row in sql.query().fetch_all(&mut *conn).await? {
            out.entry(row.try_get("group_id")?)
                .or_default()
                .push(Member {
                    id: row.try_get("member_id")?,
                    display: row.try_get("display")?,
                });
        }
    }
    Ok(out)
}

/// Rows per statement when membership changes are written in batches; small enough that
/// binding stays cheap (see `work::MAX_PARAMS`).
const BATCH: usize = 128;

/// Of `ids`, those that are users of this partner.
pub async fn existing_users(
    conn: &mut AnyConnection,
    partner_id: &str,
    ids: &[&str],
) -> Result<Vec<String>, DbError> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(BATCH) {
        let mut sql = Sql::new("SELECT id FROM scim_users WHERE partner_id = ");
        sql.bind(Arg::Text(partner_id.to_string()))
            .push(" AND id IN (");
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Arg::Text((*id).to_string()));
        }
        sql.push(")");
        for row in sql.query().fetch_all(&mut *conn).await? {
            found.push(row.try_get::<String, _>(0)?);
        }
    }
    Ok(found)
}

pub async fn add_members(
    conn: &mut AnyConnection,
    partner_id: &str,
    group_id: &str,
    ids: &[&str],
) -> Result<(), DbError> {
    for chunk in ids.chunks(BATCH) {
        let mut sql = Sql::new(
            "INSERT INTO group_members (group_id, member_id, partner_id, member_type) VALUES ",
        );
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .bind(Arg::Text(group_id.to_string()))
                .push(", ")
                .bind(Arg::Text((*id).to_string()))
                .push(", ")
                .bind(Arg::Text(partner_id.to_string()))
                .push(", 'User')");
        }
        sql.query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Queue one user's membership of a group in `work`.
pub fn queue_member(work: &mut Work, partner_id: &str, group_id: &str, member_id: &str) {
    work.queue(
        Table::Members,
        vec![
            Arg::text(group_id),
            Arg::text(member_id),
            Arg::text(partner_id),
            Arg::text("User"),
        ],
    );
}

pub async fn remove_members(
    conn: &mut AnyConnection,
    group_id: &str,
    ids: &[&str],
) -> Result<(), DbError> {
    for chunk in ids.chunks(BATCH) {
        let mut sql = Sql::new("DELETE FROM group_members WHERE group_id = ");
        sql.bind(Arg::Text(group_id.to_string()))
            .push(" AND member_id IN (");
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Arg::Text((*id).to_string()));
        }
        sql.push(")");
        sql.query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Groups (id, displayName) of each of these users, for their read-only `groups` attribute.
pub async fn groups_of_users(
    conn: &mut AnyConnection,
    user_ids: &[&str],
) -> Result<Vec<(String, String, String)>, DbError> {
    let mut out = Vec::new();
    for chunk in user_ids.chunks(BATCH) {
        let mut sql = Sql::new(
            "SELECT gm.member_id, g.id, g.display_name FROM group_members gm
             JOIN scim_groups g ON g.id = gm.group_id WHERE gm.member_id IN (",
        );
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Arg::Text((*id).to_string()));
        }
        sql.push(") ORDER BY g.display_name_lower, g.id");
        for row in sql.query().fetch_all(&mut *conn).await? {
            out.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
        }
    }
    Ok(out)
}

/// Ids of a group's members, without touching the users table.
pub async fn member_ids(conn: &mut AnyConnection, group_id: &str) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar("SELECT member_id FROM group_members WHERE group_id = $1 ORDER BY member_id")
        .bind(group_id)
        .fetch_all(conn)
        .await
}

/// One page of a partner's groups and the total matching.
pub async fn list(
    conn: &mut AnyConnection,
    partner_id: &str,
    query: super::listing::ListQuery,
) -> Result<(i64, Vec<GroupRow>), DbError> {
    let (total, rows) =
        super::listing::list(conn, "scim_groups", COLUMNS, partner_id, query).await?;
    let groups = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok((total, groups))
}
