//! CSV roster import. Rows go through exactly the path of SCIM writes (normalisation,
//! uniqueness, audit, rule evaluation). All valid rows of one import commit in ONE
//! transaction, so a crash at any moment leaves nothing or everything visible, and re-running
//! the same file finds every row unchanged. A dry run is the same run, rolled back.

use std::collections::HashSet;
use std::io::Read;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::groups;
use super::users::{self, User};
use super::{Actor, Deps, ServiceError};
use crate::domain::Partner;
use crate::import::{
    Column, ColumnMap, HeaderError, RosterReader, ENTERPRISE_USER_SCHEMA, GUEST_SCHEMA,
};
use crate::scim::resource::{self, WriteMode};
use crate::scim::schema::USER_RESOURCE;
use crate::store::imports::{self as import_store, ImportRecord};
use crate::store::users as user_store;

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
    pub errors: Vec<ImportIssue>,
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
            self.created,
            self.updated,
            self.deactivated,
            self.unchanged,
            self.errors.len()
        )
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

/// Most errors kept in the downloadable report.
const MAX_REPORTED_ERRORS: usize = 10_000;

/// The error report as CSV (`line,column,reason`), quoted as spreadsheets expect.
pub fn error_report(errors: &[ImportIssue]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut out = String::from("line,column,reason\n");
    for e in errors.iter().take(MAX_REPORTED_ERRORS) {
        out.push_str(&format!(
            "{},{},{}\n",
            e.line,
            quote(e.column.as_deref().unwrap_or("")),
            quote(&e.reason)
        ));
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
    let mut report = ImportReport {
        dry_run: opts.dry_run,
        ..ImportReport::default()
    };
    let file_name = opts.file_name.as_str();
    let via = format!("import:{file_name}");
    let mut seen: HashSet<String> = HashSet::new();
    let mut fatal: Option<String> = None;
    let mut tx = deps.db.begin_write().await.map_err(ServiceError::from)?;
    {
        let mut reader = RosterReader::new(&mut hashing, map, opts.delimiter)?;
        let columns: HashSet<Column> = reader
            .columns()
            .iter()
            .filter_map(|name| Column::ALL.iter().copied().find(|c| c.name() == name))
            .collect();
        for item in reader.by_ref() {
            report.rows += 1;
            if report.rows.is_multiple_of(1000) {
                progress(report.rows, 0);
            }
            let row = match item {
                Ok(row) => row,
                Err(e) => {
                    if let Some(u) = &e.user_name {
                        seen.insert(u.to_lowercase());
                    }
                    if e.is_fatal() {
                        fatal = Some(e.reason.clone());
                    }
                    report.errors.push(ImportIssue {
                        line: e.line,
                        column: e.column.clone(),
                        reason: e.reason.clone(),
                    });
                    continue;
                }
            };
            seen.insert(row.user_name.to_lowercase());
            let incoming =
                match resource::normalize(&row.to_scim(), &USER_RESOURCE, WriteMode::Create) {
                    Ok(doc) => doc,
                    Err(e) => {
                        report.errors.push(ImportIssue {
                            line: row.line,
                            column: None,
                            reason: e.detail,
                        });
                        continue;
                    }
                };
            let change = match users::find_in(&mut tx, partner, &row.user_name).await? {
                None => {
                    let attributes = changed_attributes(&Map::new(), &incoming);
                    let user =
                        users::insert_in(&mut tx, deps, actor, partner, incoming, &via).await?;
                    if columns.contains(&Column::Groups) && !row.groups.is_empty() {
                        groups::set_user_groups_in(
                            &mut tx,
                            deps,
                            actor,
                            partner,
                            &user.row.id,
                            &row.groups,
                            &via,
                        )
                        .await?;
                        users::reconcile_user(
                            &mut tx, deps, actor, partner, &user.row, &user.doc, &via,
                        )
                        .await?;
                    }
                    report.created += 1;
                    ImportChange {
                        line: Some(row.line),
                        user_name: row.user_name.clone(),
                        action: "created",
                        attributes,
                    }
                }
                Some(current) => {
                    let mut doc = current.doc.clone();
                    clear_columns(&mut doc, &columns);
                    merge(&mut doc, incoming);
                    // Same validation as a SCIM PUT of the merged document.
                    let doc = match resource::normalize(
                        &Value::Object(doc),
                        &USER_RESOURCE,
                        WriteMode::Replace {
                            id: &current.row.id,
                        },
                    ) {
                        Ok(mut d) => {
                            d.entry("active").or_insert(Value::Bool(true));
                            d
                        }
                        Err(e) => {
                            report.errors.push(ImportIssue {
                                line: row.line,
                                column: None,
                                reason: e.detail,
                            });
                            continue;
                        }
                    };
                    let groups_changed = columns.contains(&Column::Groups)
                        && groups::set_user_groups_in(
                            &mut tx,
                            deps,
                            actor,
                            partner,
                            &current.row.id,
                            &row.groups,
                            &via,
                        )
                        .await?;
                    if doc == current.doc {
                        if groups_changed {
                            users::reconcile_user(
                                &mut tx,
                                deps,
                                actor,
                                partner,
                                &current.row,
                                &current.doc,
                                &via,
                            )
                            .await?;
                            report.updated += 1;
                            report.changes.push(ImportChange {
                                line: Some(row.line),
                                user_name: row.user_name.clone(),
                                action: "updated",
                                attributes: vec!["groups".into()],
                            });
                        } else {
                            report.unchanged += 1;
                        }
                        continue;
                    }
                    let mut attributes = changed_attributes(&current.doc, &doc);
                    if groups_changed {
                        attributes.push("groups".into());
                    }
                    users::update_in(
                        &mut tx,
                        deps,
                        actor,
                        partner,
                        &current,
                        doc,
                        "user.imported",
                        &via,
                    )
                    .await?;
                    report.updated += 1;
                    ImportChange {
                        line: Some(row.line),
                        user_name: row.user_name.clone(),
                        action: "updated",
                        attributes,
                    }
                }
            };
            if report.changes.len() < MAX_LISTED {
                report.changes.push(change);
            } else {
                report.changes_truncated = true;
            }
        }
    }
    if opts.mode == ImportMode::Full {
        if let Some(reason) = fatal {
            return Err(ImportError::Unreadable(reason));
        }
        deactivate_missing(
            &mut tx,
            deps,
            actor,
            partner,
            &seen,
            opts,
            &via,
            &mut report,
        )
        .await?;
    }
    report.file_sha256 = hex::encode(hashing.hasher.finalize());
    let outcome = if opts.dry_run { "dry_run" } else { "applied" };
    if opts.dry_run {
        tx.rollback().await.map_err(ServiceError::from)?;
        tx = deps.db.begin_write().await.map_err(ServiceError::from)?;
    }
    import_store::insert(
        &mut tx,
        &ImportRecord {
            id: opts
                .id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
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
            errors: report.errors.len() as i64,
            outcome: outcome.into(),
            error_report: error_report(&report.errors),
        },
    )
    .await?;
    tx.commit().await.map_err(ServiceError::from)?;
    progress(report.rows, 0);
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn deactivate_missing(
    tx: &mut crate::store::Tx,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    seen: &HashSet<String>,
    opts: &ImportOptions,
    via: &str,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let active = user_store::count_active(tx, &partner.id).await?;
    // First count, so that the safety limit is checked before anything is deactivated.
    let mut missing: Vec<User> = Vec::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = user_store::page_after(tx, &partner.id, after.as_ref(), 500).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id.clone()));
        for row in page {
            if row.active && !seen.contains(&row.user_name.to_lowercase()) {
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
    if would > 0 && share > opts.max_deactivate_share && !opts.force {
        return Err(ImportError::SafetyLimit {
            would,
            active,
            share: share * 100.0,
            limit: opts.max_deactivate_share * 100.0,
        });
    }
    for user in missing {
        let mut doc = user.doc.clone();
        doc.insert("active".into(), Value::Bool(false));
        users::update_in(
            tx,
            deps,
            actor,
            partner,
            &user,
            doc,
            "user.deactivated_by_import",
            via,
        )
        .await?;
        report.deactivated += 1;
        if report.changes.len() < MAX_LISTED {
            report.changes.push(ImportChange {
                line: None,
                user_name: user.row.user_name.clone(),
                action: "deactivated",
                attributes: vec!["active".into()],
            });
        } else {
            report.changes_truncated = true;
        }
    }
    Ok(())
}
