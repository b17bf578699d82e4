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

/// The total a page implies without counting, when it implies one. A page shorter than
/// requested ends the list, so the total is where it ends; but an empty page past the first
/// row only says the list ends somewhere before `offset`. `offset` is None where the page's
/// position is unknown (a keyset cursor past the first page).
pub fn total_from_page(offset: Option<i64>, limit: i64, rows: i64) -> Option<i64> {
    let offset = offset?;
    (limit > 0 && rows < limit && (rows > 0 || offset == 0)).then_some(offset + rows)
}

/// Fetch one page from `table` (aliased `r`) selecting `columns`, and the total matching.
/// The total comes from the page when it can ([`total_from_page`]) and from `COUNT(*)`
/// otherwise: a `userName eq` filter, or any first page shorter than asked, is then one
/// statement instead of two.
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
    let count = |condition: Sql| {
        let mut count = Sql::new(format!("SELECT COUNT(*) FROM {table} r WHERE "));
        count.append(condition);
        count
    };
    if query.limit == 0 {
        let total: i64 = count(condition)
            .query()
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        return Ok((total, Vec::new()));
    }
    let mut page = Sql::new(format!("SELECT {columns} FROM {table} r WHERE "));
    page.append(condition.clone());
    if let PageStart::After(Some((created_at, id))) = &query.start {
        // A row value, not `a > x OR (a = x AND b > y)`: PostgreSQL turns only this form
        // into an index range, so a deep page costs what the first one does (SQLite ≥ 3.15
        // accepts it too).
        page.push(" AND (r.created_at, r.id) > (")
            .bind(Arg::Int(*created_at))
            .push(", ")
            .bind(Arg::Text(id.clone()))
            .push(")");
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
    let offset = match query.start {
        PageStart::Offset(o) => Some(o),
        PageStart::After(None) => Some(0),
        PageStart::After(Some(_)) => None,
    };
    let total = match total_from_page(offset, query.limit, rows.len() as i64) {
        Some(total) => total,
        None => count(condition)
            .query()
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?,
    };
    Ok((total, rows))
}

#[cfg(test)]
mod tests {
    use super::total_from_page;

    #[test]
    fn a_short_page_answers_the_total_and_a_full_or_empty_one_does_not() {
        // First page, fewer rows than asked: the list has exactly those.
        assert_eq!(total_from_page(Some(0), 100, 1), Some(1));
        assert_eq!(total_from_page(Some(0), 100, 0), Some(0));
        // A later page that ends short: offset plus what came back.
        assert_eq!(total_from_page(Some(40), 20, 7), Some(47));
        // A full page may have more after it.
        assert_eq!(total_from_page(Some(0), 3, 3), None);
        assert_eq!(total_from_page(Some(40), 20, 20), None);
        // Empty past the start: the list ends somewhere before the offset.
        assert_eq!(total_from_page(Some(40), 20, 0), None);
        // A keyset page does not know its position.
        assert_eq!(total_from_page(None, 20, 5), None);
        // count=0 asks only for the total.
        assert_eq!(total_from_page(Some(0), 0, 0), None);
    }
}
