//! The record of finished roster imports, as the admin API reads it.

use super::{Deps, ServiceError};
use crate::store::imports as import_store;
pub use crate::store::imports::ImportRecord;

/// How many imports the listing shows, newest first.
pub const RECENT_LIMIT: i64 = 100;

/// A fresh import id, given before the import runs so its progress can be asked for.
pub fn new_import_id() -> String {
    crate::store::new_row_id()
}

/// The record of a finished import, if there is one.
pub async fn get(deps: &Deps, id: &str) -> Result<Option<ImportRecord>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(import_store::get(&mut conn, id).await?)
}

/// The latest [`RECENT_LIMIT`] imports, newest first.
pub async fn recent(deps: &Deps) -> Result<Vec<ImportRecord>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(import_store::recent(&mut conn, RECENT_LIMIT).await?)
}
