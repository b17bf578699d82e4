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

use std::collections::{HashMap, HashSet};
use std::io::Read;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::groups;
use super::users::{self, User};
use super::{Actor, Deps, ServiceError};
use crate::domain::Partner;
use crate::import::{
    Column, ColumnMap, HeaderError, RosterReader, RosterRow, ENTERPRISE_USER_SCHEMA, GUEST_SCHEMA,
};
use crate::scim_core::resource::{self, WriteMode};
use crate::scim_core::schema::USER_RESOURCE;
use crate::store::groups as group_store;
use crate::store::import_staging::{self as staging, ImportLock};
use crate::store::imports::{self as import_store, ImportRecord};
use crate::store::users as user_store;
use crate::store::work::Work;

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

/// Remove from `doc` what the given file columns set, so that an empty cell clears the
/// attribute and attributes of columns the file does not have are kept.
fn clear_columns(doc: &mut Map<String, Value>, columns: &HashSet<Column>) {
    let ext = |doc: &mut Map<String, Value>, urn: &str, key: &str| {
        if let Some(Value::Object(m)) = doc.get_mut(urn) {
            m.remove(key);
            if m.is_empty() {
                doc.remove(urn);
            }
        }
    };
    for c in columns {
        match c {
            Column::UserName | Column::Groups => {}
            Column::ExternalId => {
                doc.remove("externalId");
            }
            Column::GivenName | Column::FamilyName => {
                let key = if *c == Column::GivenName {
                    "givenName"
                } else {
                    "familyName"
                };
                if let Some(Value::Object(name)) = doc.get_mut("name") {
                    name.remove(key);
                    if name.is_empty() {
                        doc.remove("name");
                    }
                }
            }
            Column::DisplayName => {
                doc.remove("displayName");
            }
            Column::Email => {
                doc.remove("emails");
            }
            Column::Phone => {
                doc.remove("phoneNumbers");
            }
            Column::Title => {
                doc.remove("title");
            }
            Column::Active => {
                doc.remove("active");
            }
            Column::Department => ext(doc, ENTERPRISE_USER_SCHEMA, "department"),
            Column::EmployeeNumber => ext(doc, ENTERPRISE_USER_SCHEMA, "employeeNumber"),
            Column::AccessEndDate => ext(doc, GUEST_SCHEMA, "accessEndDate"),
            Column::SponsorEmail => ext(doc, GUEST_SCHEMA, "sponsorEmail"),
        }
    }
}

/// Deep-merge `new` into `base` (objects merge, everything else replaces).
fn merge(base: &mut Map<String, Value>, new: Map<String, Value>) {
    for (k, v) in new {
        match (base.get_mut(&k), v) {
            (Some(Value::Object(b)), Value::Object(n)) => merge(b, n),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn changed_attributes(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(old.keys().filter(|k| !new.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// What a valid row does to the partner's people.
enum RowPlan {
    Create {
        doc: Map<String, Value>,
    },
    Update {
        current: Box<User>,
        doc: Map<String, Value>,
    },
    Same {
        current: Box<User>,
    },
}

/// Decide what a row does, with the same validation as a SCIM create, or a SCIM PUT of the
/// stored document with the file's columns replaced.
fn plan_row(
    row: &StagedRow,
    existing: Option<User>,
    columns: &HashSet<Column>,
) -> Result<RowPlan, ImportIssue> {
    let issue = |e: crate::scim_core::error::ScimError| ImportIssue {
        line: row.line,
        column: None,
        reason: e.detail,
    };
    let incoming =
        resource::normalize(&row.scim, &USER_RESOURCE, WriteMode::Create).map_err(issue)?;
    let Some(current) = existing else {
        return Ok(RowPlan::Create { doc: incoming });
    };
    let mut doc = current.doc.clone();
    clear_columns(&mut doc, columns);
    merge(&mut doc, incoming);
    let mut doc = resource::normalize(
        &Value::Object(doc),
        &USER_RESOURCE,
        WriteMode::Replace {
            id: &current.row.id,
        },
    )
    .map_err(issue)?;
    doc.entry("active").or_insert(Value::Bool(true));
    Ok(if doc == current.doc {
        RowPlan::Same {
            current: Box::new(current),
        }
    } else {
        RowPlan::Update {
            current: Box::new(current),
            doc,
        }
    })
}

/// What one import run has seen and decided so far.
struct Run<'a> {
    deps: &'a Deps,
    actor: &'a Actor,
    partner: &'a Partner,
    opts: &'a ImportOptions,
    via: String,
    columns: HashSet<Column>,
    groups: HashMap<String, (String, String)>,
    report: ImportReport,
}

impl Run<'_> {
    fn error(&mut self, issue: ImportIssue) {
        self.report.error_count += 1;
        if self.report.errors.len() < MAX_KEPT_ERRORS {
            self.report.errors.push(issue);
        }
    }

    fn change(
        &mut self,
        line: Option<u64>,
        user_name: &str,
        action: &'static str,
        attributes: Vec<String>,
    ) {
        match action {
            "created" => self.report.created += 1,
            "updated" => self.report.updated += 1,
            _ => self.report.deactivated += 1,
        }
        if self.report.changes.len() < MAX_LISTED {
            self.report.changes.push(ImportChange {
                line,
                user_name: user_name.to_string(),
                action,
                attributes,
            });
        } else {
            self.report.changes_truncated = true;
        }
    }

    /// Look up a chunk's people, then apply (or, in a dry run, only classify) each row.
    async fn chunk(&mut self, w: &mut Work, rows: Vec<StagedRow>) -> Result<(), ImportError> {
        let names: Vec<String> = rows.iter().map(|r| r.user_name.clone()).collect();
        let mut existing = users::find_many_in(w, self.partner, &names).await?;
        let with_groups = self.columns.contains(&Column::Groups);
        let memberships = if self.opts.dry_run && with_groups {
            let ids: Vec<&str> = existing.values().map(|u| u.row.id.as_str()).collect();
            group_store::groups_of_users(w.conn().await?, &ids).await?
        } else {
            Vec::new()
        };
        for row in rows {
            let current = existing.remove(&row.user_name.to_lowercase());
            let plan = match plan_row(&row, current, &self.columns) {
                Ok(plan) => plan,
                Err(issue) => {
                    self.error(issue);
                    continue;
                }
            };
            if self.opts.dry_run {
                self.classify(&row, plan, with_groups, &memberships);
            } else {
                self.apply(w, &row, plan, with_groups).await?;
            }
        }
        Ok(())
    }

    /// Dry run: the change a row would make, from what is stored.
    fn classify(
        &mut self,
        row: &StagedRow,
        plan: RowPlan,
        with_groups: bool,
        memberships: &[(String, String, String)],
    ) {
        let groups_change = |user: &User| {
            if !with_groups {
                return false;
            }
            let have: HashSet<String> = memberships
                .iter()
                .filter(|(member, _, _)| *member == user.row.id)
                .map(|(_, _, name)| name.to_lowercase())
                .collect();
            let want: HashSet<String> = row.groups.iter().map(|g| g.to_lowercase()).collect();
            have != want
        };
        match plan {
            RowPlan::Create { doc } => {
                let attributes = changed_attributes(&Map::new(), &doc);
                self.change(Some(row.line), &row.user_name, "created", attributes);
            }
            RowPlan::Update { current, doc } => {
                let mut attributes = changed_attributes(&current.doc, &doc);
                if groups_change(&current) {
                    attributes.push("groups".into());
                }
                self.change(Some(row.line), &row.user_name, "updated", attributes);
            }
            RowPlan::Same { current } if groups_change(&current) => {
                self.change(
                    Some(row.line),
                    &row.user_name,
                    "updated",
                    vec!["groups".into()],
                );
            }
            RowPlan::Same { .. } => self.report.unchanged += 1,
        }
    }

    /// Apply a row through the paths SCIM writes take.
    async fn apply(
        &mut self,
        w: &mut Work,
        row: &StagedRow,
        plan: RowPlan,
        with_groups: bool,
    ) -> Result<(), ImportError> {
        let (deps, actor, partner) = (self.deps, self.actor, self.partner);
        let via = self.via.clone();
        match plan {
            RowPlan::Create { doc } => {
                let attributes = changed_attributes(&Map::new(), &doc);
                let groups = if with_groups && !row.groups.is_empty() {
                    groups::resolve_groups(
                        w,
                        deps,
                        actor,
                        partner,
                        &row.groups,
                        &mut self.groups,
                        &via,
                    )
                    .await?
                } else {
                    Vec::new()
                };
                let user = users::insert_in(w, deps, actor, partner, doc, &via, &groups).await?;
                groups::queue_memberships(w, deps, actor, partner, &user.row.id, &groups, &via);
                self.change(Some(row.line), &row.user_name, "created", attributes);
            }
            RowPlan::Update { current, doc } => {
                let mut attributes = changed_attributes(&current.doc, &doc);
                if with_groups {
                    let (changed, _) = groups::set_user_groups_in(
                        w,
                        deps,
                        actor,
                        partner,
                        &current.row.id,
                        &row.groups,
                        &mut self.groups,
                        &via,
                    )
                    .await?;
                    if changed {
                        attributes.push("groups".into());
                    }
                }
                users::update_in(
                    w,
                    deps,
                    actor,
                    partner,
                    &current,
                    doc,
                    "user.imported",
                    &via,
                )
                .await?;
                self.change(Some(row.line), &row.user_name, "updated", attributes);
            }
            RowPlan::Same { current } => {
                let changed = with_groups && {
                    let (changed, groups) = groups::set_user_groups_in(
                        w,
                        deps,
                        actor,
                        partner,
                        &current.row.id,
                        &row.groups,
                        &mut self.groups,
                        &via,
                    )
                    .await?;
                    if changed {
                        let known = users::Known::existing(&groups);
                        users::reconcile_user(
                            w,
                            deps,
                            actor,
                            partner,
                            &current.row,
                            &current.doc,
                            &via,
                            known,
                        )
                        .await?;
                    }
                    changed
                };
                if changed {
                    self.change(
                        Some(row.line),
                        &row.user_name,
                        "updated",
                        vec!["groups".into()],
                    );
                } else {
                    self.report.unchanged += 1;
                }
            }
        }
        w.flush_if_large().await?;
        Ok(())
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

/// A valid row as staged: what [`plan_row`] and [`Run::apply`] need of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StagedRow {
    line: u64,
    user_name: String,
    scim: Value,
    groups: Vec<String>,
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
const STAGE_CHUNK: usize = 1000;

/// Staged rows applied in one transaction at first, and people deactivated in one. Applying
/// a row writes about twenty rows and evaluates the rules; how long that takes depends on
/// the build, the machine and its load, so publishing then sizes its chunks by the time
/// the last one held the writer ([`ChunkSizer`]).
const PUBLISH_CHUNK: usize = 200;

/// The writer hold a publish or clean-up chunk aims at: SCIM writes queued behind it then
/// wait a few tens of milliseconds, well within their latency budget.
const HOLD_TARGET: std::time::Duration = std::time::Duration::from_millis(50);

/// The next chunk's row count, from how long the last one held the writer per row; it at
/// most doubles at a time, so one fast chunk (a page of unchanged rows) does not make the
/// next one hold for long.
struct ChunkSizer {
    size: usize,
    min: usize,
    max: usize,
}

impl ChunkSizer {
    fn new(start: usize, min: usize, max: usize) -> Self {
        ChunkSizer {
            size: start,
            min,
            max,
        }
    }

    fn held(&mut self, rows: usize, held: std::time::Duration) {
        if rows == 0 {
            return;
        }
        let per_row = held.as_secs_f64() / rows as f64;
        let fits = if per_row > 0.0 {
            (HOLD_TARGET.as_secs_f64() / per_row) as usize
        } else {
            self.max
        };
        self.size = fits.min(self.size * 2).clamp(self.min, self.max);
    }
}

/// Longest writer holds of one import, for the operators' log and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WriterHolds {
    pub stage_chunk_ms: f64,
    pub publish_chunk_ms: f64,
    /// The last step: the record written and the staged rows dropped.
    pub finish_ms: f64,
    pub chunks: u64,
}

impl WriterHolds {
    fn publish(&mut self, since: std::time::Instant) {
        self.chunks += 1;
        self.publish_chunk_ms = self.publish_chunk_ms.max(ms(since));
    }
}

fn ms(since: std::time::Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
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
    let lock = if opts.dry_run {
        None
    } else {
        let waiting = || tracing::info!("another import is running on this database; waiting");
        Some(ImportLock::acquire(&deps.db, &waiting).await?)
    };
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
        discard_dead_runs(&deps.db).await?;
        let mut w = Work::begin(&deps.db);
        staging::begin_run(w.conn().await?, &id, &partner.id, started).await?;
        w.commit().await?;
    }
    let result = stage_and_publish(deps, actor, partner, input, map, opts, progress, &id).await;
    if let (Err(_), Some(_)) = (&result, &lock) {
        // Staged rows are never read again once their import failed; a failure to drop them
        // here leaves them to the next import.
        if let Err(e) = discard_in_chunks(&deps.db, &id).await {
            tracing::warn!(error = %e, "dropping the staged rows of a failed import failed");
        }
    }
    drop(lock);
    result
}

/// At server start: mark the SQLite file as served (a CLI import next to it then says to
/// submit through the server), and clean up the runs of imports that died, unless an import
/// in another process holds the lock (its run is alive; it cleans up itself).
pub async fn at_server_start(db: &crate::store::Db) -> Result<(), ImportError> {
    staging::mark_server(db).await?;
    if let Some(lock) = ImportLock::try_acquire(db).await? {
        discard_dead_runs(db).await?;
        drop(lock);
    }
    Ok(())
}

/// Runs left by imports that died. Called holding the import lock, so none is alive.
async fn discard_dead_runs(db: &crate::store::Db) -> Result<(), ImportError> {
    let dead = staging::runs(&mut *db.pool().acquire().await?).await?;
    for run in dead {
        if run.state == staging::PUBLISHING && run.next_seq > 0 {
            // Chunks already committed stay (see docs/operations.md, "imports"): applying
            // the same file again is idempotent and completes the import.
            tracing::error!(
                import_id = %run.import_id,
                published_rows = run.next_seq,
                "an import died while publishing: the rows before this one are applied, the \
                 rest are not; run the same import again to complete it"
            );
        } else if run.state != staging::DONE {
            tracing::warn!(
                import_id = %run.import_id,
                state = %run.state,
                "dropping the staged rows of an import that did not finish; nothing of it was applied"
            );
        }
        discard_in_chunks(db, &run.import_id).await?;
    }
    Ok(())
}

/// Drop a run's staged rows in deletes sized by time, then the run; the longest hold (ms).
async fn discard_in_chunks(db: &crate::store::Db, id: &str) -> Result<f64, ImportError> {
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
            run.report.writer_holds.stage_chunk_ms =
                run.report.writer_holds.stage_chunk_ms.max(ms(since));
            yield_writer(&deps.db, since).await;
            staged += json.len() as i64;
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
        let longest = discard_in_chunks(&deps.db, id).await?;
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

/// Files of up to this many rows are published in one transaction, all or nothing even
/// against a crash while publishing, for a writer hold of about a second at most in a
/// release build; larger ones in [`PUBLISH_CHUNK`]s, so that no writer waits seconds.
const ONE_STEP_MAX: i64 = 10_000;

/// Apply the staged rows, each transaction taking its turn with the other writers; the
/// run's cursor moves in the transaction of the rows it covers.
async fn publish(deps: &Deps, run: &mut Run<'_>, id: &str, staged: i64) -> Result<(), ImportError> {
    let one_step = staged <= ONE_STEP_MAX;
    let mut next: i64 = 0;
    let mut w = Work::begin(&deps.db);
    let mut since: Option<std::time::Instant> = None;
    let mut sizer = ChunkSizer::new(PUBLISH_CHUNK, 10, 5_000);
    loop {
        // Read before taking the writer turn, which the chunk then holds only to write.
        let json = staging::load(
            &mut *deps.db.pool().acquire().await?,
            id,
            next,
            sizer.size as i64,
        )
        .await?;
        if json.is_empty() {
            break;
        }
        let rows = json
            .iter()
            .map(|j| serde_json::from_str::<StagedRow>(j))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServiceError::Corrupt(format!("reading a staged row: {e}")))?;
        next += rows.len() as i64;
        let count = rows.len();
        if since.is_none() {
            w.conn().await?;
            since = Some(std::time::Instant::now());
        }
        run.chunk(&mut w, rows).await?;
        if !one_step {
            staging::set_state(w.conn().await?, id, staging::PUBLISHING, next).await?;
            std::mem::replace(&mut w, Work::begin(&deps.db))
                .commit()
                .await?;
            let held_since = since.take().unwrap_or_else(std::time::Instant::now);
            sizer.held(count, held_since.elapsed());
            run.report.writer_holds.publish(held_since);
        }
    }
    if let Some(since) = since {
        staging::set_state(w.conn().await?, id, staging::PUBLISHING, next).await?;
        w.commit().await?;
        run.report.writer_holds.publish(since);
        yield_writer(&run.deps.db, since).await;
    }
    Ok(())
}

/// After a chunk, leave SQLite's lock free for twice as long as the chunk held it (at least
/// 50 ms, at most half a second). Writers of this process queue for their turn in order
/// (`store::work`), but those of another process (a server next to `guestbridge import`)
/// wait in SQLite's busy handler, which sleeps and polls (every 25 to 100 ms once it has
/// waited a while): an importer taking the lock again at once starved them past the busy
/// timeout, and one pausing only as long as it held the lock still did under load.
async fn yield_writer(db: &crate::store::Db, held_since: std::time::Instant) {
    use std::time::Duration;
    if db.backend() == crate::store::Backend::Sqlite {
        let pause =
            (held_since.elapsed() * 2).clamp(Duration::from_millis(50), Duration::from_millis(500));
        tokio::time::sleep(pause).await;
    }
}

/// The partner's active people the file does not name, who were there when the import
/// began; checked against the safety limit before anything is published.
async fn missing_people<R: Read>(
    deps: &Deps,
    seen: &RosterReader<R>,
    run: &Run<'_>,
    started: i64,
) -> Result<Vec<String>, ImportError> {
    let partner = run.partner;
    let mut conn = deps.db.pool().acquire().await?;
    let active = user_store::count_active(&mut conn, &partner.id).await?;
    let mut missing = Vec::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = user_store::page_after(&mut conn, &partner.id, after.as_ref(), 500).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id.clone()));
        for row in page {
            if row.active && row.created_at <= started && !seen.saw(&row.user_name) {
                missing.push(row.user_name);
            }
        }
    }
    let would = missing.len() as u64;
    let share = if active > 0 {
        would as f64 / active as f64
    } else {
        0.0
    };
    let opts = run.opts;
    if would > 0 && share > opts.max_deactivate_share && !opts.force {
        return Err(ImportError::SafetyLimit {
            would,
            active,
            share: share * 100.0,
            limit: opts.max_deactivate_share * 100.0,
        });
    }
    Ok(missing)
}

/// Deactivate `missing` (or, in a dry run, count them), [`PUBLISH_CHUNK`] to a transaction;
/// each person is read again inside it, so a change made meanwhile is not overwritten.
async fn deactivate_missing(run: &mut Run<'_>, missing: Vec<String>) -> Result<(), ImportError> {
    let partner = run.partner;
    for names in missing.chunks(PUBLISH_CHUNK) {
        if run.opts.dry_run {
            for name in names {
                run.change(None, name, "deactivated", vec!["active".into()]);
            }
            continue;
        }
        let mut w = Work::begin(&run.deps.db);
        w.conn().await?;
        let since = std::time::Instant::now();
        let mut current = users::find_many_in(&mut w, partner, names).await?;
        for name in names {
            let Some(user) = current.remove(&name.to_lowercase()) else {
                continue;
            };
            if !user.row.active {
                continue;
            }
            let mut doc = user.doc.clone();
            doc.insert("active".into(), Value::Bool(false));
            let via = run.via.clone();
            users::update_in(
                &mut w,
                run.deps,
                run.actor,
                partner,
                &user,
                doc,
                "user.deactivated_by_import",
                &via,
            )
            .await?;
            run.change(
                None,
                &user.row.user_name,
                "deactivated",
                vec!["active".into()],
            );
        }
        w.commit().await?;
        run.report.writer_holds.publish(since);
        yield_writer(&run.deps.db, since).await;
    }
    Ok(())
}

#[cfg(test)]
mod chunk_sizer_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_slow_chunk_shrinks_the_next_to_the_hold_target() {
        let mut s = ChunkSizer::new(200, 10, 5_000);
        // 200 rows in 400 ms: 2 ms a row, so 25 rows fit in 50 ms.
        s.held(200, Duration::from_millis(400));
        assert_eq!(s.size, 25);
        s.held(25, Duration::from_secs(10));
        assert_eq!(s.size, 10, "never below the floor");
    }

    #[test]
    fn a_fast_chunk_at_most_doubles_the_next() {
        let mut s = ChunkSizer::new(200, 10, 5_000);
        s.held(200, Duration::from_millis(1));
        assert_eq!(s.size, 400);
        for _ in 0..10 {
            s.held(s.size, Duration::ZERO);
        }
        assert_eq!(s.size, 5_000, "never above the ceiling");
    }
}
