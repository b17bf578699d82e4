//! `GET /admin/jobs`: every scheduled job with its schedule, latest run (outcome and
//! counts) and next run, a "Run now" button for admins; `GET /admin/jobs/{name}`: the job's
//! last 20 runs.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::page_frame::{html, iso, not_found, require, when, ConsoleCaller, PageError};
use crate::admin::Need;
use crate::app_state::AppState;
use crate::domain::{AdminRole, JobName};
use crate::services::jobs_admin;
use crate::store::job_history::RunRow;

/// Runs shown on a job's page.
const HISTORY: i64 = 20;

/// A run's counts as one line, `key: n` in the order the job reported them.
fn counts_line(counts: &str) -> String {
    match serde_json::from_str::<Value>(counts) {
        Ok(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

fn run_json(r: &RunRow) -> Value {
    json!({
        "outcome": r.outcome, "instance": r.instance,
        "started": when(Some(r.started_at)), "started_iso": iso(Some(r.started_at)),
        "finished": when(r.finished_at), "run_for": when(Some(r.run_for)),
        "counts": counts_line(&r.counts), "error": r.error,
    })
}

pub async fn page(
    state: web::Data<AppState>,
    caller: ConsoleCaller,
) -> Result<HttpResponse, PageError> {
    require(&caller, Need::ReadEverything)?;
    let jobs = jobs_admin::list(&state.deps, &state.settings.jobs.schedules).await?;
    let items: Vec<Value> = jobs
        .iter()
        .map(|j| {
            json!({
                "name": j.name.as_str(),
                "schedule": j.schedule,
                "running": j.running,
                "last_run": j.last_run.as_ref().map(run_json),
                "next_run": when(j.next_run.map(|t| t.timestamp_millis())),
                "next_run_iso": iso(j.next_run.map(|t| t.timestamp_millis())),
            })
        })
        .collect();
    let ctx = json!({
        "jobs": items,
        "can_run": caller.role() == AdminRole::Admin,
        "scheduler_on": state.settings.jobs_enabled,
    });
    html(&caller, StatusCode::OK, "jobs.html", ctx)
}

pub async fn runs(
    state: web::Data<AppState>,
    caller: ConsoleCaller,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    require(&caller, Need::ReadEverything)?;
    let Ok(job) = name.parse::<JobName>() else {
        return not_found(&caller, "There is no job with this name.");
    };
    let runs = jobs_admin::runs(&state.deps, job, None, HISTORY).await?;
    let ctx = json!({
        "job": job.as_str(),
        "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
        "history": HISTORY,
        "can_run": caller.role() == AdminRole::Admin,
    });
    html(&caller, StatusCode::OK, "job_runs.html", ctx)
}
