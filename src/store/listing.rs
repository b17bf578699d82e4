//! Listing resources of one partner: filter, order, page and count (RFC 7644 §3.4.2).
//! Index pages use LIMIT/OFFSET; cursor pages (RFC 9865) continue after the last row seen,
//! so their cost does not grow with the position in the list.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::scim_filter::SortKey;
use super::sql::{Arg, Sql};
use super::DbError;

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStart {
    /// Skip this many rows (index pagination).
    Offset(i64),
    /// Continue after this (created_at, id) in the default order; None is the first page.
    After(Option<(i64, String)>),
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<Sql>,
    pub sort: SortKey,
    pub descending: bool,
    pub start: PageStart,
    pub limit: i64,
}

/// Count and fetch one page from `table` (aliased `r`) selecting `columns`.
pub async fn list(
    conn: &mut AnyConnection,
    table: &str,
    columns: &str,
    partner_id: &str,
    query: ListQuery,
) -> Result<(i64, Vec<AnyRow>), DbError> {
    let mut condition = Sql::new("r.partner_id = ");
    condition.bind(Arg::Text(partner_id.to_string()));
    if let Some(f) = query.filter {
        condition.push(" AND ").append(f);
    }
    let mut count = Sql::new(format!("SELECT COUNT(*) FROM {table} r WHERE "));
    count.append(condition.clone());
    let total: i64 = count.query().fetch_one(&mut *conn).await?.try_get(0)?;
    if query.limit == 0 {
        return Ok((total, Vec::new()));
    }
    if let PageStart::Offset(o) = query.start {
        if o >= total {
            return Ok((total, Vec::new()));
        }
    }
    let mut page = Sql::new(format!("SELECT {columns} FROM {table} r WHERE "));
    page.append(condition);
    if let PageStart::After(Some((created_at, id))) = &query.start {
        page.push(" AND (r.created_at > ")
            .bind(Arg::Int(*created_at))
            .push(" OR (r.created_at = ")
            .bind(Arg::Int(*created_at))
            .push(" AND r.id > ")
            .bind(Arg::Text(id.clone()))
            .push("))");
    }
    let dir = if query.descending { "DESC" } else { "ASC" };
    page.push(" ORDER BY ");
    let key = match &query.sort {
        SortKey::Column(expr) => Some(Sql::new(*expr)),
        SortKey::Leaf { path, column } => {
            let mut k = Sql::new(format!(
                "(SELECT MIN(v.{column}) FROM scim_values v WHERE v.resource_id = r.id AND v.path = "
            ));
            k.bind(Arg::Text(path.clone())).push(")");
            Some(k)
        }
        SortKey::Default => None,
    };
    if let Some(key) = key {
        // Resources without a value come last in either direction.
        page.push("CASE WHEN ")
            .append(key.clone())
            .push(" IS NULL THEN 1 ELSE 0 END, ")
            .append(key)
            .push(" ")
            .push(dir)
            .push(", ");
    }
    // The tie-breaker keeps pages stable, as Okta's paging requires.
    page.push("r.created_at, r.id LIMIT ")
        .bind(Arg::Int(query.limit));
    if let PageStart::Offset(o) = query.start {
        page.push(" OFFSET ").bind(Arg::Int(o));
    }
    let rows = page.query().fetch_all(&mut *conn).await?;
    Ok((total, rows))
}
