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

/// The filters other than the search.
fn conditions(filter: &TableFilter) -> Sql {
    let mut cond = Sql::new("1 = 1");
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
        // E-mail addresses compare without case, as everywhere else sponsors are matched.
        cond.push(" AND LOWER(g.sponsor) = ")
            .bind(Arg::Text(s.to_lowercase()));
    }
    if let Some(app) = &filter.app {
        // A probe of the grants' primary key per guest walked in table order, which stops
        // with the page; `IN (SELECT …)` built the set of every holder of the app first.
        cond.push(
            " AND EXISTS (SELECT 1 FROM guest_grants gg WHERE gg.guest_id = g.id AND gg.app_id = ",
        )
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

const TABLE_COLUMNS: &str = "g.id, g.partner_id, g.user_name, g.display_name, g.email, \
    g.state, g.sponsor, g.access_until";

/// Where a page starts in (lower(userName), id) order, and which way it reads.
struct Start {
    key: String,
    id: String,
    backwards: bool,
}

/// `SELECT columns FROM guests g WHERE filters [AND prefix of column] [AND past start]`,
/// in table order (reversed when reading backwards), at most `limit` rows.
fn ordered(
    columns: &str,
    filter: &TableFilter,
    prefix: Option<(&str, &str)>,
    start: Option<&Start>,
    backwards: bool,
    limit: i64,
) -> Sql {
    let mut sql = Sql::new(format!("SELECT {columns} FROM guests g WHERE "));
    sql.append(conditions(filter));
    if let Some((column, q)) = prefix {
        sql.push(" AND ");
        prefix_range(&mut sql, column, q);
    }
    if let Some(start) = start {
        sql.push(if start.backwards {
            " AND (lower(g.user_name), g.id) < ("
        } else {
            " AND (lower(g.user_name), g.id) > ("
        })
        .bind(Arg::text(&start.key))
        .push(", ")
        .bind(Arg::text(&start.id))
        .push(")");
    }
    // A branch searching names or e-mails must read its own column's range and sort what
    // it finds: ordered by the bare sort key, PostgreSQL's generic plan walked the userName
    // index through every guest when few names matched. `|| ''` keeps the order (and
    // the "C" collation) but no index provides it.
    let key = match prefix {
        Some((column, _)) if column != "g.user_name" => "(lower(g.user_name) || '')",
        _ => "lower(g.user_name)",
    };
    let direction = if backwards { " DESC" } else { "" };
    sql.push(&format!(
        " ORDER BY {key}{direction}, g.id{direction} LIMIT "
    ))
    .bind(Arg::Int(limit));
    sql
}

/// A page of at most `limit` guests in (lower(userName), id) order. `Ok(None)` when the
/// cursor names no guest.
pub async fn guests_page(
    conn: &mut AnyConnection,
    filter: &TableFilter,
    cursor: &Cursor,
    limit: i64,
) -> Result<Option<TablePage>, DbError> {
    let backwards = matches!(cursor, Cursor::Before(_));
    let start = match cursor {
        Cursor::First => None,
        Cursor::After(id) | Cursor::Before(id) => {
            let Some(key) = sort_key(&mut *conn, id).await? else {
                return Ok(None);
            };
            Some(Start {
                key,
                id: id.clone(),
                backwards,
            })
        }
    };
    let search = filter.search.as_deref().filter(|q| !q.is_empty());
    let sql = match search {
        None => ordered(
            TABLE_COLUMNS,
            filter,
            None,
            start.as_ref(),
            backwards,
            limit + 1,
        ),
        // One branch per searched column, each an index range cut to a page; the union
        // (at most three pages) is then ordered. An OR of the three ranges let PostgreSQL
        // walk the whole userName index when the prefix matched only names or e-mails.
        Some(q) => {
            let mut sql = Sql::new(format!(
                "SELECT {TABLE_COLUMNS} FROM guests g WHERE g.id IN ("
            ));
            for (i, column) in ["g.user_name", "g.display_name", "g.email"]
                .into_iter()
                .enumerate()
            {
                if i > 0 {
                    sql.push(" UNION ");
                }
                sql.push("SELECT id FROM (");
                sql.append(ordered(
                    "g.id",
                    filter,
                    Some((column, q)),
                    start.as_ref(),
                    backwards,
                    limit + 1,
                ));
                sql.push(&format!(") s{i}"));
            }
            sql.push(if backwards {
                ") ORDER BY lower(g.user_name) DESC, g.id DESC LIMIT "
            } else {
                ") ORDER BY lower(g.user_name), g.id LIMIT "
            })
            .bind(Arg::Int(limit + 1));
            sql
        }
    };
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
