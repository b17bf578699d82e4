//! `/api/v1/jobs`: the scheduled jobs — each with its schedule, latest run, next run and
//! status; a job's run history (paginated, newest first); and running a job once, at an
//! optional instant, exactly as `guestbridge jobs run NAME --now` does (the same function,
//! under the same lease: 409 while another run holds it).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::paging::{self, PageQuery};
use super::{AdminCaller, AdminError, Need};
use crate::app_state::AppState;
use crate::clock::{from_millis, to_rfc3339};
use crate::domain::JobName;
use crate::services::jobs_admin;
use crate::store::job_history::RunRow;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/jobs", web::get().to(list_jobs))
        .route("/jobs/{name}/runs", web::get().to(list_runs))
        .route("/jobs/{name}/run", web::post().to(run_job));
}

fn time(ms: Option<i64>) -> Value {
    ms.map(|t| json!(to_rfc3339(from_millis(t))))
        .unwrap_or(Value::Null)
}

fn job(name: &str) -> Result<JobName, AdminError> {
    name.parse().map_err(|e: crate::domain::job::UnknownJob| {
        AdminError::new(actix_web::http::StatusCode::NOT_FOUND, e.to_string())
    })
}

fn run_json(r: &RunRow) -> Value {
    json!({
        "id": r.id,
        "job": r.job,
        "instance": r.instance,
        "run_for": time(Some(r.run_for)),
        "started_at": time(Some(r.started_at)),
        "finished_at": time(r.finished_at),
        "outcome": r.outcome,
        "counts": serde_json::from_str::<Value>(&r.counts).unwrap_or(json!({})),
        "error": r.error,
    })
}

pub async fn list_jobs(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let jobs = jobs_admin::list(&state.deps, &state.settings.jobs.schedules).await?;
    let items: Vec<Value> = jobs
        .iter()
        .map(|j| {
            let status = if j.running {
                "running"
            } else {
                match &j.last_run {
                    Some(r) if r.outcome == "running" => "interrupted",
                    Some(r) => r.outcome.as_str(),
                    None => "never_run",
                }
            };
            json!({
                "name": j.name.as_str(),
                "schedule": j.schedule,
                "scheduled_here": state.settings.jobs_enabled && j.schedule.is_some(),
                "last_run": j.last_run.as_ref().map(run_json),
                "next_run": j.next_run.map(to_rfc3339),
                "status": status,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"items": items, "next_cursor": null})))
}

fn run_key(cursor: &str) -> Result<(i64, String), AdminError> {
    let bad = || AdminError::bad_request("invalid cursor");
    let (t, id) = cursor.split_once(':').ok_or_else(bad)?;
    Ok((t.parse().map_err(|_| bad())?, id.to_string()))
}

pub async fn list_runs(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let name = job(&path)?;
    let limit = query.limit()?;
    let before = query.after()?.as_deref().map(run_key).transpose()?;
    let runs = jobs_admin::runs(&state.deps, name, before, limit).await?;
    let last = runs.last().map(|r| format!("{}:{}", r.started_at, r.id));
    let items = runs.iter().map(run_json).collect();
    Ok(HttpResponse::Ok().json(paging::page(items, limit, last)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    now: Option<String>,
}

/// The SMTP sender the outbox job delivers with, built from the settings as `serve` does.
fn smtp(
    settings: &crate::config::Settings,
) -> Result<Option<crate::mail::smtp::SmtpSender>, AdminError> {
    use secrecy::ExposeSecret;
    let Some(url) = &settings.smtp_url else {
        return Ok(None);
    };
    crate::mail::smtp::SmtpSender::new(
        url.expose_secret(),
        &settings.portal.mail_from,
        std::time::Duration::from_secs(30),
    )
    .map(Some)
    .map_err(|_| {
        AdminError::new(
            actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
            "the SMTP settings do not make a sender",
        )
    })
}

pub async fn run_job(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<String>,
    bytes: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    let name = job(&path)?;
    let b: RunBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        RunBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| AdminError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let now = match b.now.as_deref() {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|_| AdminError::bad_request("now must be an RFC 3339 instant"))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    let smtp = if name == JobName::Outbox {
        smtp(&state.settings)?
    } else {
        None
    };
    let instance = format!("{}:{}", admin.actor.label, uuid::Uuid::new_v4());
    let report = crate::jobs::run_once(
        name.as_str(),
        &state.deps,
        &state.settings,
        smtp.as_ref(),
        now,
        &instance,
    )
    .await
    .map_err(|e| match e {
        crate::jobs::JobError::Service(s) => AdminError::from(s),
        other => AdminError::bad_request(other.to_string()),
    })?;
    if !report.ran {
        return Err(AdminError::new(
            actix_web::http::StatusCode::CONFLICT,
            format!("job {name} is running; try again when it has finished"),
        ));
    }
    let run = jobs_admin::runs(&state.deps, name, None, 1)
        .await?
        .into_iter()
        .next();
    Ok(HttpResponse::Ok().json(json!({
        "job": name.as_str(),
        "now": to_rfc3339(now),
        "counts": report.counts,
        "run": run.as_ref().map(run_json),
    })))
}
