//! `/api/v1/jobs`: the scheduled jobs — each with its schedule, latest run, next run and
//! status; a job's run history (paginated, newest first); and running a job once, at an
//! optional instant, exactly as `guestbridge jobs run NAME --now` does (the same function,
//! under the same lease: 409 while another run holds it).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::error_shape::ErrorBody;
use super::paging::{self, Page, PageQuery};
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

fn time(ms: Option<i64>) -> Option<String> {
    ms.map(|t| to_rfc3339(from_millis(t)))
}

/// One run of a job.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub job: String,
    /// Who ran it (`cli:…`, an admin's label, or a scheduler instance).
    pub instance: String,
    /// The instant the run acted at.
    pub run_for: String,
    pub started_at: String,
    #[schema(required = true)]
    pub finished_at: Option<String>,
    /// `running`, `ok` or `failed`.
    pub outcome: String,
    /// What the run did, by name (e.g. `expired`).
    #[schema(value_type = Object)]
    pub counts: Value,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// A scheduled job and how it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub name: &'static str,
    /// Its cron schedule; null when it is not scheduled.
    #[schema(required = true)]
    pub schedule: Option<String>,
    /// Whether this instance runs the schedule.
    pub scheduled_here: bool,
    #[schema(required = true)]
    pub last_run: Option<RunView>,
    #[schema(required = true)]
    pub next_run: Option<String>,
    /// `running`, `interrupted`, `never_run`, or the last run's outcome.
    pub status: String,
}

/// What running a job now did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDone {
    pub job: &'static str,
    /// The instant it ran at.
    pub now: String,
    #[schema(value_type = Object)]
    pub counts: crate::jobs::Counts,
    /// The run as recorded.
    #[schema(required = true)]
    pub run: Option<RunView>,
}

fn job(name: &str) -> Result<JobName, AdminError> {
    name.parse().map_err(|e: crate::domain::job::UnknownJob| {
        AdminError::new(actix_web::http::StatusCode::NOT_FOUND, e.to_string())
    })
}

fn run_json(r: &RunRow) -> RunView {
    RunView {
        id: r.id.clone(),
        job: r.job.clone(),
        instance: r.instance.clone(),
        run_for: to_rfc3339(from_millis(r.run_for)),
        started_at: to_rfc3339(from_millis(r.started_at)),
        finished_at: time(r.finished_at),
        outcome: r.outcome.clone(),
        counts: serde_json::from_str::<Value>(&r.counts).unwrap_or(json!({})),
        error: r.error.clone(),
    }
}

/// The scheduled jobs, each with its schedule, last and next run, and status.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    responses(
        (status = 200, description = "The jobs (one page)", body = Page<JobView>),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
    ))]
pub async fn list_jobs(
    state: web::Data<AppState>,
    admin: AdminCaller,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::ReadEverything)?;
    let jobs = jobs_admin::list(&state.deps, &state.settings.jobs.schedules).await?;
    let items: Vec<JobView> = jobs
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
            JobView {
                name: j.name.as_str(),
                schedule: j.schedule.clone(),
                scheduled_here: state.settings.jobs_enabled && j.schedule.is_some(),
                last_run: j.last_run.as_ref().map(run_json),
                next_run: j.next_run.map(to_rfc3339),
                status: status.to_string(),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: None,
    }))
}

fn run_key(cursor: &str) -> Result<(i64, String), AdminError> {
    let bad = || AdminError::bad_request("invalid cursor");
    let (t, id) = cursor.split_once(':').ok_or_else(bad)?;
    Ok((t.parse().map_err(|_| bad())?, id.to_string()))
}

/// A job's runs, newest first, in pages.
#[utoipa::path(get, path = "/api/v1/jobs/{name}/runs", tag = "jobs",
    params(("name" = String, Path, description = "The job's name"), PageQuery),
    responses(
        (status = 200, description = "A page of runs", body = Page<RunView>),
        (status = 400, description = "A bad limit or cursor", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
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

/// Optional instant to run a job at.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// RFC 3339; default the present.
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

/// Run a job once now, or at the instant given, as `guestbridge jobs run NAME --now` does.
#[utoipa::path(post, path = "/api/v1/jobs/{name}/run", tag = "jobs",
    params(("name" = String, Path, description = "The job's name")),
    request_body(content = Option<RunBody>, description = "Optional"),
    responses(
        (status = 200, description = "What the run did", body = RunDone),
        (status = 400, description = "A bad body or instant", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Another run holds the job's lease", body = ErrorBody),
    ))]
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
    Ok(HttpResponse::Ok().json(RunDone {
        job: name.as_str(),
        now: to_rfc3339(now),
        counts: report.counts,
        run: run.as_ref().map(run_json),
    }))
}
