//! What the admin console's pages read: grouped counts for the dashboard (never rows), and
//! the guests table's keyset pages. Each statement is an index range or a grouped count
//! over an index (migration 23), so its cost does not grow with the number of guests.

use sqlx::{AnyConnection, Row};

use super::sql::{Arg, Sql};
use super::DbError;

/// One (partner, stored state) group of guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    pub partner_id: String,
    pub state: String,
    pub count: i64,
}

/// Guests by partner and stored state (a covering scan of `guests_partner_state`).
pub async fn guests_by_partner_state(conn: &mut AnyConnection) -> Result<Vec<StateCount>, DbError> {
    let rows = sqlx::query(
        "SELECT partner_id, state, COUNT(*) AS n FROM guests GROUP BY partner_id, state
         ORDER BY partner_id, state",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StateCount {
                partner_id: r.try_get("partner_id")?,
                state: r.try_get("state")?,
                count: r.try_get("n")?,
            })
        })
        .collect()
}

/// Invitations not yet redeemed, revoked or expired at `now`: how many, and when the oldest
/// was sent (the `invitations_open` partial index).
pub async fn open_invitations(
    conn: &mut AnyConnection,
    now: i64,
) -> Result<(i64, Option<i64>), DbError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM invitations
         WHERE used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok((row.try_get("n")?, row.try_get("oldest")?))
}

/// Grants ending in `[from, from + weeks * week_ms)`, counted per week from `from` (index
/// 0 first); weeks without an end are absent.
pub async fn grant_ends_by_week(
    conn: &mut AnyConnection,
    from: i64,
    week_ms: i64,
    weeks: i64,
) -> Result<Vec<(i64, i64)>, DbError> {
    let rows = sqlx::query(
        "SELECT (valid_until - $1) / $2 AS week, COUNT(*) AS n FROM guest_grants
         WHERE valid_until >= $3 AND valid_until < $4 GROUP BY (valid_until - $1) / $2
         ORDER BY week",
    )
    .bind(from)
    .bind(week_ms)
    .bind(from)
    .bind(from + weeks * week_ms)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("week")?, r.try_get("n")?)))
        .collect()
}

/// Filters of the guests table; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    /// A prefix of userName, display name or e-mail, compared case-insensitively.
    pub search: Option<String>,
    /// A stored state, or `suspended` for every suspension reason.
    pub state: Option<String>,
    pub partner_id: Option<String>,
    pub app: Option<String>,
    pub sponsor: Option<String>,
}

/// Where a page starts: after or before the guest with this id (in table order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    First,
    After(String),
    Before(String),
}

/// One row of the guests table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRow {
    pub id: String,
    pub partner_id: String,
    pub user_name: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub state: String,
    pub sponsor: Option<String>,
    pub access_until: Option<i64>,
}

/// A page and whether rows exist beyond each end.
#[derive(Debug, Clone, Default)]
pub struct TablePage {
    pub rows: Vec<TableRow>,
    pub has_previous: bool,
    pub has_next: bool,
}

/// The largest code point: a prefix followed by it bounds every string with that prefix
/// in binary (SQLite) and "C" (PostgreSQL) order.
const AFTER_EVERY_CHAR: &str = "\u{10FFFF}";

fn prefix_range(sql: &mut Sql, column: &str, prefix: &str) {
    sql.push(&format!("(lower({column}) >= lower("))
        .bind(Arg::text(prefix))
        .push(&format!(") AND lower({column}) < lower("))
        .bind(Arg::text(prefix))
        .push(") || ")
        .bind(Arg::text(AFTER_EVERY_CHAR))
        .push(")");
}

fn conditions(filter: &TableFilter) -> Sql {
    let mut cond = Sql::new("1 = 1");
    if let Some(q) = filter.search.as_deref().filter(|q| !q.is_empty()) {
        cond.push(" AND (");
        prefix_range(&mut cond, "g.user_name", q);
        cond.push(" OR ");
        prefix_range(&mut cond, "g.display_name", q);
        cond.push(" OR ");
        prefix_range(&mut cond, "g.email", q);
        cond.push(")");
    }
    match filter.state.as_deref() {
        Some("suspended") => {
            cond.push(" AND g.state LIKE 'suspended:%'");
        }
        Some(s) => {
            cond.push(" AND g.state = ").bind(Arg::text(s));
        }
        None => {}
    }
    if let Some(p) = &filter.partner_id {
        cond.push(" AND g.partner_id = ").bind(Arg::text(p));
    }
    if let Some(s) = &filter.sponsor {
        cond.push(" AND g.sponsor = ").bind(Arg::text(s));
    }
    if let Some(app) = &filter.app {
        cond.push(" AND g.id IN (SELECT gg.guest_id FROM guest_grants gg WHERE gg.app_id = ")
            .bind(Arg::text(app))
            .push(")");
    }
    cond
}

/// The sort key of a guest, for a cursor; `None` when there is no such guest.
async fn sort_key(conn: &mut AnyConnection, id: &str) -> Result<Option<String>, DbError> {
    sqlx::query_scalar("SELECT lower(user_name) FROM guests WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// A page of at most `limit` guests in (lower(userName), id) order. `Ok(None)` when the
/// cursor names no guest.
pub async fn guests_page(
    conn: &mut AnyConnection,
    filter: &TableFilter,
    cursor: &Cursor,
    limit: i64,
) -> Result<Option<TablePage>, DbError> {
    let mut sql = Sql::new(
        "SELECT g.id, g.partner_id, g.user_name, g.display_name, g.email, g.state, g.sponsor,
         g.access_until FROM guests g WHERE ",
    );
    sql.append(conditions(filter));
    let backwards = matches!(cursor, Cursor::Before(_));
    match cursor {
        Cursor::First => {}
        Cursor::After(id) | Cursor::Before(id) => {
            let Some(key) = sort_key(&mut *conn, id).await? else {
                return Ok(None);
            };
            sql.push(if backwards {
                " AND (lower(g.user_name), g.id) < ("
            } else {
                " AND (lower(g.user_name), g.id) > ("
            })
            .bind(Arg::Text(key))
            .push(", ")
            .bind(Arg::text(id))
            .push(")");
        }
    }
    sql.push(if backwards {
        " ORDER BY lower(g.user_name) DESC, g.id DESC LIMIT "
    } else {
        " ORDER BY lower(g.user_name), g.id LIMIT "
    })
    .bind(Arg::Int(limit + 1));
    let fetched = sql.query().fetch_all(&mut *conn).await?;
    let mut rows = fetched
        .iter()
        .map(|r| {
            Ok(TableRow {
                id: r.try_get("id")?,
                partner_id: r.try_get("partner_id")?,
                user_name: r.try_get("user_name")?,
                display_name: r.try_get("display_name")?,
                email: r.try_get("email")?,
                state: r.try_get("state")?,
                sponsor: r.try_get("sponsor")?,
                access_until: r.try_get("access_until")?,
            })
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    if backwards {
        rows.reverse();
    }
    Ok(Some(TablePage {
        rows,
        has_previous: if backwards {
            more
        } else {
            *cursor != Cursor::First
        },
        has_next: if backwards { true } else { more },
    }))
}
