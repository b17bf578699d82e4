//! List requests shared by every resource type: filter, sort and the two pagination styles
//! (index, RFC 7644 §3.4.2.4; cursor, RFC 9865).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::scim_core::error::{ScimError, ScimType};
use crate::scim_core::filter::{AttrPath, Filter};
use crate::store::listing::{ListQuery, PageStart};
use crate::store::scim_filter::{FilterCompiler, SortKey};

/// How the client pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paging {
    /// 1-based `startIndex` and `count`.
    Index { start_index: i64, count: i64 },
    /// An opaque cursor (None for the first page) and `count`.
    Cursor { cursor: Option<String>, count: i64 },
}

#[derive(Debug, Clone)]
pub struct ListParams {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub descending: bool,
    pub paging: Paging,
}

/// A page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub total: i64,
    pub items: Vec<T>,
    /// For index paging, the 1-based index of the first item.
    pub start_index: Option<i64>,
    /// For cursor paging, the cursor of the next page when there is one.
    pub next_cursor: Option<String>,
}

/// Where a cursor points: after a row in the default order, or at an offset in a sorted
/// order (where keyset continuation would need the sort value too).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cursor {
    After(i64, String),
    Offset(i64),
}

fn encode(c: &Cursor) -> String {
    let raw = match c {
        Cursor::After(t, id) => format!("a:{t}:{id}"),
        Cursor::Offset(o) => format!("o:{o}"),
    };
    URL_SAFE_NO_PAD.encode(raw)
}

fn decode(s: &str) -> Result<Cursor, ScimError> {
    let invalid = || ScimError::bad_request(ScimType::InvalidCursor, "the cursor is not valid");
    let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    match raw.split_once(':') {
        Some(("a", rest)) => {
            let (t, id) = rest.split_once(':').ok_or_else(invalid)?;
            Ok(Cursor::After(
                t.parse().map_err(|_| invalid())?,
                id.to_string(),
            ))
        }
        Some(("o", o)) => Ok(Cursor::Offset(o.parse().map_err(|_| invalid())?)),
        _ => Err(invalid()),
    }
}

/// Translate list parameters into a store query.
pub fn store_query(
    params: &ListParams,
    compiler: &FilterCompiler<'_>,
) -> Result<ListQuery, ScimError> {
    let filter = params
        .filter
        .as_ref()
        .map(|f| compiler.compile(f))
        .transpose()?;
    let sort = params
        .sort_by
        .as_ref()
        .map(|p| compiler.sort_key(p))
        .unwrap_or(SortKey::Default);
    let sorted = !matches!(sort, SortKey::Default);
    let (start, limit) = match &params.paging {
        Paging::Index { start_index, count } => (PageStart::Offset(start_index - 1), *count),
        Paging::Cursor { cursor, count } => {
            let start = match cursor.as_deref().map(decode).transpose()? {
                None if sorted => PageStart::Offset(0),
                None => PageStart::After(None),
                Some(Cursor::Offset(o)) => PageStart::Offset(o),
                Some(Cursor::After(t, id)) if !sorted => PageStart::After(Some((t, id))),
                Some(Cursor::After(..)) => {
                    return Err(ScimError::bad_request(
                        ScimType::InvalidCursor,
                        "the cursor belongs to a differently sorted list",
                    ))
                }
            };
            (start, *count)
        }
    };
    // Descending order only makes sense with a sort key; the default order is fixed.
    let descending = params.descending && sorted;
    Ok(ListQuery {
        filter,
        sort,
        descending,
        start,
        limit,
    })
}

/// Assemble a page; `key` gives an item's (created_at, id) for the next cursor.
pub fn page<T>(
    params: &ListParams,
    query: &ListQuery,
    total: i64,
    items: Vec<T>,
    key: impl Fn(&T) -> (i64, String),
) -> Page<T> {
    match (&params.paging, &query.start) {
        (Paging::Index { start_index, .. }, _) => Page {
            total,
            items,
            start_index: Some(*start_index),
            next_cursor: None,
        },
        (Paging::Cursor { count, .. }, start) => {
            let full = items.len() as i64 == *count && *count > 0;
            let next_cursor = match start {
                PageStart::Offset(o) => {
                    let next = o + items.len() as i64;
                    (full && next < total).then(|| encode(&Cursor::Offset(next)))
                }
                PageStart::After(_) => items.last().filter(|_| full).map(|last| {
                    let (t, id) = key(last);
                    encode(&Cursor::After(t, id))
                }),
            };
            Page {
                total,
                items,
                start_index: None,
                next_cursor,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        for c in [
            Cursor::After(1_700_000_000_000, "abc-def".into()),
            Cursor::Offset(42),
        ] {
            assert_eq!(decode(&encode(&c)).unwrap(), c);
        }
        for junk in [
            "",
            "!!",
            "eA",
            &URL_SAFE_NO_PAD.encode("a:x:y"),
            &URL_SAFE_NO_PAD.encode("z:1"),
        ] {
            let e = decode(junk).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidCursor), "{junk}");
        }
    }
}
