//! The staging table's side of an import: rows written there in short transactions before
//! anything is published, and dropped again in deletes sized by time.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::import_run::Run;
use super::writer_turns::{ms, yield_writer, ChunkSizer};
use super::ImportError;
use crate::import::RosterRow;
use crate::services::{Deps, ServiceError};
use crate::store::import_staging as staging;
use crate::store::work::Work;

/// A valid row as staged: what [`plan_row`] and [`Run::apply`] need of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StagedRow {
    pub(super) line: u64,
    pub(super) user_name: String,
    pub(super) scim: Value,
    pub(super) groups: Vec<String>,
}

impl From<RosterRow> for StagedRow {
    fn from(row: RosterRow) -> Self {
        StagedRow {
            scim: row.to_scim(),
            line: row.line,
            user_name: row.user_name,
            groups: row.groups,
        }
    }
}

/// Rows read, then staged in one transaction: staging writes no indexes but the key, so a
/// chunk this size holds the writer for a few milliseconds.
pub(super) const STAGE_CHUNK: usize = 1000;

/// Stage one chunk of rows after the `staged` already there, in one short transaction;
/// the count staged after it.
pub(super) async fn stage(
    deps: &Deps,
    run: &mut Run<'_>,
    id: &str,
    staged: i64,
    rows: &[StagedRow],
) -> Result<i64, ImportError> {
    let json = rows
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServiceError::Corrupt(format!("staging a row: {e}")))?;
    let mut w = Work::begin(&deps.db);
    let conn = w.conn().await?;
    let since = std::time::Instant::now();
    staging::stage(conn, id, staged, &json).await?;
    w.commit().await?;
    run.report.writer_holds.stage_chunk_ms = run.report.writer_holds.stage_chunk_ms.max(ms(since));
    yield_writer(&deps.db, since).await;
    Ok(staged + json.len() as i64)
}

/// Drop a run's staged rows in deletes sized by time, then the run; the longest hold (ms).
pub(super) async fn discard_in_chunks(db: &crate::store::Db, id: &str) -> Result<f64, ImportError> {
    let last = staging::last_seq(&mut *db.pool().acquire().await?, id).await?;
    let mut sizer = ChunkSizer::new(2_000, 100, 50_000);
    let mut from = 0;
    let mut longest: f64 = 0.0;
    while from <= last {
        let to = from + sizer.size as i64;
        let mut w = Work::begin(db);
        let conn = w.conn().await?;
        let since = std::time::Instant::now();
        let gone = staging::discard_range(conn, id, from, to).await?;
        w.commit().await?;
        longest = longest.max(ms(since));
        sizer.held(gone.max(1) as usize, since.elapsed());
        yield_writer(db, since).await;
        from = to;
    }
    let mut w = Work::begin(db);
    staging::discard(w.conn().await?, id).await?;
    w.commit().await?;
    Ok(longest)
}
