//! Pagination of the admin API's lists: `?limit=&cursor=`, answered as
//! `{"items": [...], "next_cursor": …}`. The cursor is opaque to clients (base64url of the
//! last item's key); lists continue after it (keyset), so a deep page costs what the first
//! does, and `next_cursor` is null on the last page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AdminError;

/// Largest page any list returns.
pub const MAX_LIMIT: i64 = 500;
/// The page size when none is asked for.
pub const DEFAULT_LIMIT: i64 = 100;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 500 (default 100).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, AdminError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
            Some(_) => Err(AdminError::bad_request(format!(
                "limit must be 1 to {MAX_LIMIT}"
            ))),
        }
    }

    /// The key the cursor carries.
    pub fn after(&self) -> Result<Option<String>, AdminError> {
        self.cursor.as_deref().map(decode).transpose()
    }
}

pub fn encode(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

fn decode(cursor: &str) -> Result<String, AdminError> {
    let bad = || AdminError::bad_request("invalid cursor");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    String::from_utf8(raw).map_err(|_| bad())
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// The cursor of the next page; null on the last one.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A page: the items, and the cursor of the next page when this one is full.
pub fn page<T: ToSchema>(items: Vec<T>, limit: i64, last_key: Option<String>) -> Page<T> {
    let next = (items.len() as i64 == limit)
        .then_some(last_key)
        .flatten()
        .map(|k| encode(&k));
    Page {
        items,
        next_cursor: next,
    }
}
