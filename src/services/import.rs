//! CSV roster import. Rows go through exactly the path of SCIM writes (normalisation,
//! uniqueness, audit, rule evaluation, outbox). All valid rows of one import commit in ONE
//! unit of work, so a crash at any moment leaves nothing or everything visible, and re-running
//! the same file finds every row unchanged. Rows are read in chunks whose existing people are
//! found in one query. A dry run validates and classifies each row the same way against what
//! is stored (and counts whom a full import would deactivate) but evaluates and writes
//! nothing, so it costs about a tenth of the import.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use serde::Serialize;
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

/// Rows looked up and applied together: one query finds the existing people of a chunk.
const CHUNK: usize = 500;

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
    row: &RosterRow,
    existing: Option<User>,
    columns: &HashSet<Column>,
) -> Result<RowPlan, ImportIssue> {
    let issue = |e: crate::scim_core::error::ScimError| ImportIssue {
        line: row.line,
        column: None,
        reason: e.detail,
    };
    let incoming =
        resource::normalize(&row.to_scim(), &USER_RESOURCE, WriteMode::Create).map_err(issue)?;
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
    async fn chunk(&mut self, w: &mut Work, rows: Vec<RosterRow>) -> Result<(), ImportError> {
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
        row: &RosterRow,
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
        row: &RosterRow,
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
                        let known = users::Known::Existing { groups: &groups };
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

/// Import a roster for a partner. `progress(rows, bytes)` is called as rows are read.
pub async fn run<R: Read>(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    input: R,
    map: &ColumnMap,
    opts: &ImportOptions,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<ImportReport, ImportError> {
    let started = deps.now_ms();
    let mut hashing = HashingReader {
        inner: input,
        hasher: Sha256::new(),
    };
    let file_name = opts.file_name.as_str();
    let mut fatal: Option<String> = None;
    let mut w = Work::begin_bulk(&deps.db)
        .await
        .map_err(ServiceError::from)?;
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
    loop {
        let mut rows = Vec::with_capacity(CHUNK);
        for item in reader.by_ref() {
            run.report.rows += 1;
            match item {
                Ok(row) => {
                    rows.push(row);
                    if rows.len() == CHUNK {
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
        run.chunk(&mut w, rows).await?;
        progress(run.report.rows, reader.bytes_read());
    }
    if opts.mode == ImportMode::Full {
        if let Some(reason) = fatal {
            return Err(ImportError::Unreadable(reason));
        }
        deactivate_missing(&mut w, &reader, &mut run).await?;
    }
    drop(reader);
    let mut report = run.report;
    report.file_sha256 = hex::encode(hashing.hasher.finalize());
    let outcome = if opts.dry_run { "dry_run" } else { "applied" };
    if opts.dry_run {
        // A dry run writes nothing but its record.
        w.rollback().await.map_err(ServiceError::from)?;
        w = Work::begin(&deps.db);
    }
    import_store::insert(
        w.conn().await.map_err(ServiceError::from)?,
        &ImportRecord {
            id: opts.id.clone().unwrap_or_else(crate::store::new_row_id),
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
    w.commit().await.map_err(ServiceError::from)?;
    if !opts.dry_run && report.created + report.updated + report.deactivated > 0 {
        if let Err(e) = deps.db.analyze_after_bulk().await {
            tracing::warn!(error = %e, "refreshing planner statistics after an import failed");
        }
    }
    progress(report.rows, 0);
    Ok(report)
}

async fn deactivate_missing<R: Read>(
    w: &mut Work,
    seen: &RosterReader<R>,
    run: &mut Run<'_>,
) -> Result<(), ImportError> {
    let partner = run.partner;
    let active = user_store::count_active(w.conn().await?, &partner.id).await?;
    // First count, so that the safety limit is checked before anything is deactivated.
    let mut missing: Vec<User> = Vec::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let page =
            user_store::page_after(w.conn().await?, &partner.id, after.as_ref(), 500).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id.clone()));
        for row in page {
            if row.active && !seen.saw(&row.user_name) {
                let doc = match serde_json::from_str(&row.doc) {
                    Ok(Value::Object(m)) => m,
                    _ => continue,
                };
                missing.push(User {
                    row,
                    doc,
                    groups: Vec::new(),
                });
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
    for user in missing {
        if !opts.dry_run {
            let mut doc = user.doc.clone();
            doc.insert("active".into(), Value::Bool(false));
            let via = run.via.clone();
            users::update_in(
                w,
                run.deps,
                run.actor,
                partner,
                &user,
                doc,
                "user.deactivated_by_import",
                &via,
            )
            .await?;
        }
        run.change(
            None,
            &user.row.user_name,
            "deactivated",
            vec!["active".into()],
        );
    }
    Ok(())
}
