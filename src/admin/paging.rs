//! Pagination of the admin API's lists: `?limit=&cursor=`, answered as
//! `{"items": [...], "next_cursor": …}`. The cursor is opaque to clients (base64url of the
//! last item's key); lists continue after it (keyset), so a deep page costs what the first
//! does, and `next_cursor` is null on the last page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::AdminError;

/// Largest page any list returns.
pub const MAX_LIMIT: i64 = 500;
/// The page size when none is asked for.
pub const DEFAULT_LIMIT: i64 = 100;

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub limit: Option<i64>,
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

/// A page: the items, and the cursor of the next page when this one is full.
pub fn page(items: Vec<Value>, limit: i64, last_key: Option<String>) -> Value {
    let next = (items.len() as i64 == limit)
        .then_some(last_key)
        .flatten()
        .map(|k| encode(&k));
    json!({"items": items, "next_cursor": next})
}
