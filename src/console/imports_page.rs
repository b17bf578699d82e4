//! `GET /admin/imports`: past roster imports, newest first, and (for roles that may import)
//! the upload form: the file goes to `POST /api/v1/imports` as a dry run first, its diff is
//! shown, and "Apply" sends it again for real with a progress bar fed by the import's
//! progress JSON. `GET /admin/imports/{id}`: one import's counts and its per-row errors with
//! line numbers, linking the CSV error report; the upload page shows this same result.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::page_frame::{html, not_found, require, when, ConsoleCaller, PageError};
use crate::admin::Need;
use crate::app_state::AppState;
use crate::services::admin_policy;
use crate::services::import::FAILED_PREFIX;
use crate::services::import_records::{self, ImportRecord};
use crate::services::import_runs::Progress;
use crate::services::partners;

/// Most error rows the page lists; the CSV report has them all (as kept).
const MAX_SHOWN_ERRORS: usize = 200;

/// The partners the caller may see, by id: slug and name.
async fn partner_names(
    state: &AppState,
    caller: &ConsoleCaller,
) -> Result<HashMap<String, (String, String)>, PageError> {
    Ok(partners::list_partners(&state.deps)
        .await?
        .into_iter()
        .filter(|p| caller.partner_scope().is_none_or(|s| s == p.id))
        .map(|p| (p.id.clone(), (p.slug.as_str().to_string(), p.name.clone())))
        .collect())
}

/// `applied`, `dry run`, `failed`, or the refusal as recorded.
fn outcome_label(outcome: &str) -> String {
    match outcome {
        "dry_run" => "dry run".into(),
        other => match other.strip_prefix(FAILED_PREFIX) {
            Some(_) => "failed".into(),
            None => other.replace('_', " "),
        },
    }
}

fn record_json(r: &ImportRecord, names: &HashMap<String, (String, String)>) -> Value {
    let (slug, name) = names.get(&r.partner_id).cloned().unwrap_or_default();
    json!({
        "id": r.id, "partner_slug": slug, "partner_name": name, "file_name": r.file_name,
        "mode": r.mode, "dry_run": r.dry_run, "actor": r.actor,
        "outcome": r.outcome, "outcome_label": outcome_label(&r.outcome),
        "failure": r.outcome.strip_prefix(FAILED_PREFIX),
        "started": when(Some(r.started_at)), "finished": when(Some(r.finished_at)),
        "rows": r.rows_read, "created": r.created, "updated": r.updated,
        "deactivated": r.deactivated, "unchanged": r.unchanged, "errors": r.errors,
    })
}

pub async fn list(
    state: web::Data<AppState>,
    caller: ConsoleCaller,
) -> Result<HttpResponse, PageError> {
    require(&caller, Need::ReadPartner)?;
    let names = partner_names(&state, &caller).await?;
    let records = import_records::recent(&state.deps).await?;
    let mut upload_partners: Vec<_> = names.values().cloned().collect();
    upload_partners.sort();
    let ctx = json!({
        "imports": records.iter()
            .filter(|r| names.contains_key(&r.partner_id))
            .map(|r| record_json(r, &names)).collect::<Vec<_>>(),
        "can_import": admin_policy::allows(caller.role(), Need::ManagePartner),
        "partners": upload_partners.iter().map(|(slug, name)| json!({"slug": slug, "name": name})).collect::<Vec<_>>(),
    });
    html(&caller, StatusCode::OK, "imports.html", ctx)
}

/// The report's rows (`line,column,reason` after a header), at most [`MAX_SHOWN_ERRORS`];
/// the closing "and N more" row has no line.
fn error_rows(report: &str) -> Vec<Value> {
    csv_records(report)
        .into_iter()
        .skip(1)
        .filter(|r| r.len() == 3)
        .take(MAX_SHOWN_ERRORS)
        .map(|r| json!({"line": r[0], "column": r[1], "reason": r[2]}))
        .collect()
}

/// RFC 4180 records: fields quoted with `"` (doubled inside) may hold commas and newlines.
/// The report is written by this program, so nothing more is needed.
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

pub async fn detail(
    state: web::Data<AppState>,
    caller: ConsoleCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    require(&caller, Need::ReadPartner)?;
    let names = partner_names(&state, &caller).await?;
    let record = match import_records::get(&state.deps, &id).await? {
        Some(r) if names.contains_key(&r.partner_id) => r,
        Some(_) => return not_found(&caller, "There is no import with this id."),
        None => {
            // Still running on this instance (or failed before it was recorded): what the
            // progress JSON says, for the unscoped roles that may follow any import.
            let progress = state
                .imports
                .progress(&id)
                .filter(|_| caller.partner_scope().is_none());
            let Some(progress) = progress else {
                return not_found(&caller, "There is no import with this id.");
            };
            let (status, rows, failure) = match progress {
                Progress::Running { rows } => ("running", rows, None),
                Progress::Failed(reason) => ("failed", 0, Some(reason)),
            };
            let ctx = json!({"id": id.as_str(), "pending": {"status": status, "rows": rows, "failure": failure}});
            return html(&caller, StatusCode::OK, "import.html", ctx);
        }
    };
    let errors = error_rows(&record.error_report);
    let ctx = json!({
        "id": record.id,
        "import": record_json(&record, &names),
        "error_rows": errors,
        "errors_cut": record.errors as usize > errors.len(),
        "max_shown": MAX_SHOWN_ERRORS,
    });
    html(&caller, StatusCode::OK, "import.html", ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_report_with_quotes_commas_and_the_closing_count() {
        let report = crate::services::import::error_report(&[], 3);
        assert_eq!(
            error_rows(&report),
            vec![json!({"line": "", "column": "", "reason": "and 3 more"})]
        );
        let rows = error_rows("line,column,reason\n4,\"email\",\"bad, \"\"x\"\"\nnext\"\n");
        assert_eq!(
            rows,
            vec![json!({"line": "4", "column": "email", "reason": "bad, \"x\"\nnext"})]
        );
    }
}
