//! CSV roster import. Rows go through exactly the path of SCIM writes (normalisation,
//! uniqueness, audit, rule evaluation, outbox). An import never holds the writer for long:
//! it stages the file's rows in short transactions (invisible to everyone), checks the whole
//! file (a full import's safety limit, an unreadable file), and only then publishes the
//! staged rows in chunks of short transactions, each taking its turn with the other writers
//! (see `store::work`). A crash before publishing leaves nothing visible and the next import
//! drops the staged rows; re-running the same file finds every published row unchanged. One
//! import at a time runs on a database, across processes (`store::import_staging`). A dry
//! run validates and classifies each row the same way, in read transactions, against what is
//! stored (and counts whom a full import would deactivate), and writes only its record.

mod dry_run;
mod import_run;
mod lock;
mod publish;
mod row_plan;
mod staged_rows;
mod writer_turns;

pub use lock::at_server_start;
pub use writer_turns::WriterHolds;

use std::collections::HashMap;
use std::io::Read;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Actor, Deps, ServiceError};
use crate::domain::Partner;
use crate::import::{Column, ColumnMap, HeaderError, RosterReader};
use crate::store::import_staging::{self as staging, ImportLock};
use crate::store::imports::{self as import_store, ImportRecord};
use crate::store::work::Work;
use import_run::Run;
use publish::{deactivate_missing, missing_people, publish};
use staged_rows::{StagedRow, STAGE_CHUNK};
use writer_turns::ms;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Create and update the rows given.
    Delta,
    /// Also deactivate the partner's people missing from the file.
    Full,
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub mode: ImportMode,
    pub dry_run: bool,
    /// Deactivate even beyond the safety share.
    pub force: bool,
    /// Largest share of active people a full import may deactivate without `force`.
    pub max_deactivate_share: f64,
    pub delimiter: Option<u8>,
    /// The file's name, for the record and the audit cause.
    pub file_name: String,
    /// The record's id, when the caller needs to know it before the import ends.
    pub id: Option<String>,
}

/// One reported problem, with the line the row starts on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImportIssue {
    pub line: u64,
    pub column: Option<String>,
    pub reason: String,
}

/// One person the import changes (listed up to a bound; the counts cover all).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ImportChange {
    pub line: Option<u64>,
    pub user_name: String,
    /// `created`, `updated` or `deactivated`.
    pub action: &'static str,
    /// Attributes that change.
    pub attributes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub deactivated: u64,
    pub unchanged: u64,
    /// The first [`MAX_KEPT_ERRORS`] row errors; `error_count` counts them all.
    pub errors: Vec<ImportIssue>,
    pub error_count: u64,
    pub changes: Vec<ImportChange>,
    pub changes_truncated: bool,
    pub file_sha256: String,
    pub dry_run: bool,
    #[serde(skip)]
    pub writer_holds: WriterHolds,
}

impl ImportReport {
    /// The contract's summary line.
    pub fn summary(&self) -> String {
        format!(
            "created={} updated={} deactivated={} unchanged={} errors={}",
            self.created, self.updated, self.deactivated, self.unchanged, self.error_count
        )
    }

    /// Errors counted but not kept (the report says "and N more").
    pub fn errors_not_listed(&self) -> u64 {
        self.error_count - self.errors.len() as u64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Header(#[from] HeaderError),
    #[error("a full import would deactivate {would} of {active} active people ({share:.0} %), more than the {limit:.0} % safety limit; check the file or use --force")]
    SafetyLimit {
        would: u64,
        active: i64,
        share: f64,
        limit: f64,
    },
    #[error("the file could not be read to the end ({0}); a full import deactivates nobody after such an error")]
    Unreadable(String),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<crate::store::DbError> for ImportError {
    fn from(e: crate::store::DbError) -> Self {
        ImportError::Service(e.into())
    }
}

/// Row errors an import keeps (in memory and in its report): a file of a million bad rows
/// would otherwise hold a million reasons; past this only the count grows.
pub const MAX_KEPT_ERRORS: usize = 1_000;

/// The error report as CSV (`line,column,reason`), quoted as spreadsheets expect; errors
/// counted but not kept end it with a line without a number: `,,"and N more"`.
pub fn error_report(errors: &[ImportIssue], not_listed: u64) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from("line,column,reason\n");
    for e in errors {
        out.push_str(&format!(
            "{},{},{}\n",
            e.line,
            quote(e.column.as_deref().unwrap_or("")),
            quote(&e.reason)
        ));
    }
    if not_listed > 0 {
        out.push_str(&format!(",,{}\n", quote(&format!("and {not_listed} more"))));
    }
    out
}

/// Most changes listed in a report.
const MAX_LISTED: usize = 1000;

/// Hash what is read on the way through, so the record names the exact file.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The outcome of an import that ended in an error, as recorded: nothing was applied.
pub const FAILED_PREFIX: &str = "failed: ";

/// Record an import that ended in `reason` (nothing applied), so that its outcome outlives
/// the memory of the instance that ran it.
pub async fn record_failure(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    opts: &ImportOptions,
    started_at: i64,
    reason: &str,
) -> Result<(), ServiceError> {
    let mut w = Work::begin(&deps.db);
    import_store::insert(
        w.conn().await?,
        &ImportRecord {
            id: opts.id.clone().unwrap_or_else(crate::store::new_row_id),
            partner_id: partner.id.clone(),
            actor: actor.label.clone(),
            file_name: opts.file_name.clone(),
            file_sha256: String::new(),
            mode: match opts.mode {
                ImportMode::Delta => "delta".into(),
                ImportMode::Full => "full".into(),
            },
            dry_run: opts.dry_run,
            started_at,
            finished_at: deps.now_ms(),
            rows_read: 0,
            created: 0,
            updated: 0,
            deactivated: 0,
            unchanged: 0,
            errors: 0,
            outcome: format!("{FAILED_PREFIX}{reason}"),
            error_report: error_report(&[], 0),
        },
    )
    .await?;
    w.commit().await?;
    Ok(())
}

/// Import a roster for a partner. `progress(rows, bytes)` is called as rows are read.
///
/// An import (not a dry run) waits for the database's import lock first, so that one import
/// at a time runs, across processes; a dry run writes only its record and needs none.
pub async fn run<R: Read>(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    input: R,
    map: &ColumnMap,
    opts: &ImportOptions,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<ImportReport, ImportError> {
    let lock = lock::take_unless_dry_run(deps, opts).await?;
    run_locked(lock, deps, actor, partner, input, map, opts, progress).await
}

/// [`run`] for a caller that took the import lock itself (`None` only for a dry run).
#[allow(clippy::too_many_arguments)]
pub async fn run_locked<R: Read>(
    lock: Option<ImportLock>,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    input: R,
    map: &ColumnMap,
    opts: &ImportOptions,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<ImportReport, ImportError> {
    let started = deps.now_ms();
    let id = opts.id.clone().unwrap_or_else(crate::store::new_row_id);
    if lock.is_some() {
        lock::discard_dead_runs(&deps.db).await?;
        let mut w = Work::begin(&deps.db);
        staging::begin_run(w.conn().await?, &id, &partner.id, started).await?;
        w.commit().await?;
    }
    let result = stage_and_publish(deps, actor, partner, input, map, opts, progress, &id).await;
    if let (Err(_), Some(_)) = (&result, &lock) {
        // Staged rows are never read again once their import failed; a failure to drop them
        // here leaves them to the next import.
        if let Err(e) = staged_rows::discard_in_chunks(&deps.db, &id).await {
            tracing::warn!(error = %e, "dropping the staged rows of a failed import failed");
        }
    }
    drop(lock);
    result
}

#[allow(clippy::too_many_arguments)]
async fn stage_and_publish<R: Read>(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    input: R,
    map: &ColumnMap,
    opts: &ImportOptions,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
    id: &str,
) -> Result<ImportReport, ImportError> {
    let started = deps.now_ms();
    let mut hashing = HashingReader {
        inner: input,
        hasher: Sha256::new(),
    };
    let file_name = opts.file_name.as_str();
    let mut fatal: Option<String> = None;
    let mut reader = RosterReader::new(&mut hashing, map, opts.delimiter)?;
    let mut run = Run {
        deps,
        actor,
        partner,
        opts,
        via: format!("import:{file_name}"),
        columns: reader
            .columns()
            .iter()
            .filter_map(|name| Column::ALL.iter().copied().find(|c| c.name() == name))
            .collect(),
        groups: HashMap::new(),
        report: ImportReport {
            dry_run: opts.dry_run,
            ..ImportReport::default()
        },
    };
    let mut staged: i64 = 0;
    loop {
        let mut rows: Vec<StagedRow> = Vec::with_capacity(STAGE_CHUNK);
        for item in reader.by_ref() {
            run.report.rows += 1;
            match item {
                Ok(row) => {
                    rows.push(row.into());
                    if rows.len() == STAGE_CHUNK {
                        break;
                    }
                }
                Err(e) => {
                    if e.is_fatal() {
                        fatal = Some(e.reason.clone());
                    }
                    run.error(ImportIssue {
                        line: e.line,
                        column: e.column.clone(),
                        reason: e.reason.clone(),
                    });
                }
            }
        }
        if rows.is_empty() {
            break;
        }
        if opts.dry_run {
            // Reads only, in a read transaction: a dry run holds no writer.
            let mut w = Work::begin_read(&deps.db).await?;
            run.chunk(&mut w, rows).await?;
            w.rollback().await?;
        } else {
            staged = staged_rows::stage(deps, &mut run, id, staged, &rows).await?;
        }
        progress(run.report.rows, reader.bytes_read());
    }
    let mut missing = Vec::new();
    if opts.mode == ImportMode::Full {
        if let Some(reason) = fatal {
            return Err(ImportError::Unreadable(reason));
        }
        missing = missing_people(deps, &reader, &run, started).await?;
    }
    drop(reader);
    if !opts.dry_run {
        // The commit point: from here the run is applied whole.
        let mut w = Work::begin(&deps.db);
        staging::set_state(w.conn().await?, id, staging::PUBLISHING, 0).await?;
        w.commit().await?;
        publish(deps, &mut run, id, staged).await?;
    }
    deactivate_missing(&mut run, missing).await?;
    let mut report = run.report;
    report.file_sha256 = hex::encode(hashing.hasher.finalize());
    let outcome = if opts.dry_run { "dry_run" } else { "applied" };
    let mut w = Work::begin(&deps.db);
    let conn = w.conn().await?;
    let since = std::time::Instant::now();
    import_store::insert(
        conn,
        &ImportRecord {
            id: id.to_string(),
            partner_id: partner.id.clone(),
            actor: actor.label.clone(),
            file_name: file_name.to_string(),
            file_sha256: report.file_sha256.clone(),
            mode: match opts.mode {
                ImportMode::Delta => "delta".into(),
                ImportMode::Full => "full".into(),
            },
            dry_run: opts.dry_run,
            started_at: started,
            finished_at: deps.now_ms(),
            rows_read: report.rows as i64,
            created: report.created as i64,
            updated: report.updated as i64,
            deactivated: report.deactivated as i64,
            unchanged: report.unchanged as i64,
            errors: report.error_count as i64,
            outcome: outcome.into(),
            error_report: error_report(&report.errors, report.errors_not_listed()),
        },
    )
    .await?;
    if !opts.dry_run {
        // Recorded and published: what is left is only clean-up, in short deletes after
        // this commit (deleting 200,000 staged rows at once held the writer for seconds).
        staging::set_state(w.conn().await?, id, staging::DONE, 0).await?;
    }
    w.commit().await?;
    report.writer_holds.finish_ms = ms(since);
    if !opts.dry_run {
        let longest = staged_rows::discard_in_chunks(&deps.db, id).await?;
        report.writer_holds.finish_ms = report.writer_holds.finish_ms.max(longest);
    }
    tracing::info!(
        rows = report.rows,
        stage_chunk_ms = report.writer_holds.stage_chunk_ms,
        publish_chunk_ms = report.writer_holds.publish_chunk_ms,
        finish_ms = report.writer_holds.finish_ms,
        "import finished; longest writer holds"
    );
    if !opts.dry_run && report.created + report.updated + report.deactivated > 0 {
        if let Err(e) = deps.db.analyze_after_bulk().await {
            tracing::warn!(error = %e, "refreshing planner statistics after an import failed");
        }
    }
    progress(report.rows, 0);
    Ok(report)
}

// The tests keep the module name they had inline, so their paths stay the same.
#[cfg(test)]
#[path = "tests.rs"]
mod chunk_sizer_tests;
