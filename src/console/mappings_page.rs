//! `GET /admin/mappings`: the rule set in force (its files, apps, partners and rules). An
//! admin edits one file (typed, pasted or read from a chosen file) and previews it: the
//! changed set is checked (each problem with its file and line) and compared over every
//! current person as `POST /api/v1/mappings/diff` does (summary and per person); "Reload"
//! then puts exactly the previewed set in force for every instance, as
//! `POST /api/v1/mappings/reload` does. The files on this server's disk are not rewritten:
//! the set in force is the one stored in the database.
//!
//! The preview and reload forms post here (with the session's CSRF token in the form) since
//! the JSON API reads rule files from disk only.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::page_frame::{form_caller, html, require, ConsoleCaller, PageError};
use super::sync_page::urlencoding;
use crate::admin::Need;
use crate::app_state::AppState;
use crate::domain::AdminRole;
use crate::mapping::{load_sources, MappingError, RuleSet};
use crate::services::rules;

/// Largest rule file the form takes.
const MAX_FILE_BYTES: usize = 1024 * 1024;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingsQuery {
    /// The file to put in the editor.
    file: Option<String>,
}

/// The edit form, as posted by "Preview" and "Reload".
#[derive(Debug, serde::Deserialize)]
pub struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    content: String,
    /// The fingerprint of the previewed set ("Reload" only).
    #[serde(default)]
    fingerprint: String,
}

/// What the page shows of a rule set.
fn set_json(r: &RuleSet) -> Value {
    json!({
        "fingerprint": r.fingerprint,
        "files": r.sources.iter().map(|(name, text)| json!({
            "name": name, "lines": text.lines().count(),
            "edit": format!("/admin/mappings?file={}#edit", urlencoding(name)),
        })).collect::<Vec<_>>(),
        "apps": r.apps.iter().map(|a| json!({"id": a.id, "name": a.name, "roles": a.roles})).collect::<Vec<_>>(),
        "partners": r.partners.iter().map(|p| json!({
            "slug": p.slug, "approval": serde_json::to_value(p.approval).unwrap_or(Value::Null), "mfa": p.mfa,
        })).collect::<Vec<_>>(),
        "rules": r.rules.iter().map(|x| json!({
            "id": x.id, "description": x.description, "partners": x.partners,
            "condition": x.condition_text, "groups": x.groups,
            "grants": x.grants.iter().map(|g| format!("{}:{}", g.app, g.role)).collect::<Vec<_>>(),
            "access_days": x.access_days,
        })).collect::<Vec<_>>(),
    })
}

/// The page, with what the editor holds and what a preview or reload found.
fn render(
    caller: &ConsoleCaller,
    state: &AppState,
    status: StatusCode,
    editor: (&str, &str),
    found: Value,
) -> Result<HttpResponse, PageError> {
    let current = state.deps.rules();
    let mut ctx = json!({
        "set": set_json(&current),
        "can_edit": caller.role() == AdminRole::Admin,
        "editor": {"file": editor.0, "content": editor.1},
        "max_bytes": MAX_FILE_BYTES,
    });
    if let (Some(obj), Value::Object(found)) = (ctx.as_object_mut(), found) {
        obj.extend(found);
    }
    html(caller, status, "mappings.html", ctx)
}

pub async fn page(
    state: web::Data<AppState>,
    caller: ConsoleCaller,
    query: web::Query<MappingsQuery>,
) -> Result<HttpResponse, PageError> {
    require(&caller, Need::ReadEverything)?;
    let current = state.deps.rules();
    let chosen = query
        .file
        .as_deref()
        .and_then(|f| current.sources.iter().find(|(name, _)| name == f))
        .or_else(|| {
            current
                .sources
                .iter()
                .find(|(name, _)| name.starts_with("rules"))
        })
        .or(current.sources.first());
    let (file, content) = chosen
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .unwrap_or(("rules.toml", ""));
    render(&caller, &state, StatusCode::OK, (file, content), json!({}))
}

/// The set in force with the edited file put in (or added).
fn edited_set(current: &RuleSet, form: &EditForm) -> Result<RuleSet, Vec<MappingError>> {
    let file = form.file.trim();
    if form.content.len() > MAX_FILE_BYTES {
        return Err(vec![MappingError {
            file: file.to_string(),
            line: 0,
            message: format!("the file exceeds {MAX_FILE_BYTES} bytes"),
        }]);
    }
    let mut sources: Vec<(String, String)> = current
        .sources
        .iter()
        .filter(|(name, _)| name != file)
        .cloned()
        .collect();
    // Browsers send text areas with CRLF line ends.
    sources.push((file.to_string(), form.content.replace("\r\n", "\n")));
    load_sources(&sources)
}

fn problems_json(errors: &[MappingError]) -> Value {
    json!({"problems": errors.iter().map(|e| json!({"file": e.file, "line": e.line, "message": e.message})).collect::<Vec<_>>()})
}

pub async fn preview(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<EditForm>,
) -> Result<HttpResponse, PageError> {
    let caller = match form_caller(&state, &req, &form.csrf).await {
        Ok(c) => c,
        Err(res) => return Ok(res),
    };
    require(&caller, Need::Write)?;
    let editor = (form.file.as_str(), form.content.as_str());
    let set = match edited_set(&state.deps.rules(), &form) {
        Ok(set) => set,
        Err(errors) => {
            let found = problems_json(&errors);
            return render(
                &caller,
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                editor,
                found,
            );
        }
    };
    let diff = rules::diff(&state.deps, &set).await?;
    let found = json!({"preview": {"fingerprint": set.fingerprint, "diff": diff}});
    render(&caller, &state, StatusCode::OK, editor, found)
}

pub async fn reload(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<EditForm>,
) -> Result<HttpResponse, PageError> {
    let caller = match form_caller(&state, &req, &form.csrf).await {
        Ok(c) => c,
        Err(res) => return Ok(res),
    };
    require(&caller, Need::Write)?;
    let editor = (form.file.as_str(), form.content.as_str());
    let set = match edited_set(&state.deps.rules(), &form) {
        Ok(set) => set,
        Err(errors) => {
            let found = problems_json(&errors);
            return render(
                &caller,
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                editor,
                found,
            );
        }
    };
    // The rules in force changed since the preview (another admin, another instance): what
    // would be reloaded is not what was reviewed.
    if set.fingerprint != form.fingerprint {
        let diff = rules::diff(&state.deps, &set).await?;
        let found = json!({
            "error": "The rules changed since this preview. Review the new preview before reloading.",
            "preview": {"fingerprint": set.fingerprint, "diff": diff},
        });
        return render(&caller, &state, StatusCode::CONFLICT, editor, found);
    }
    let report = rules::reload(&state.deps, &caller.actor, set).await?;
    let found = json!({
        "notice": format!(
            "Reloaded: the rules {} are in force; {} people re-evaluated, {} changed.",
            short(&report.fingerprint), report.people, report.people_changed
        ),
        "reloaded": true,
    });
    render(&caller, &state, StatusCode::OK, editor, found)
}

/// The first characters of a fingerprint, as people compare them.
fn short(fingerprint: &str) -> &str {
    fingerprint.get(..12).unwrap_or(fingerprint)
}
