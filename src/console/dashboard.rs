//! `GET /admin/dashboard`: guests by state and partner, invitations awaiting redemption,
//! grant ends over the next 90 days, sync health and each job's last run. Every figure is
//! a grouped count or a capped count over an index; no guest row is loaded.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::expiry_chart::{self, WEEKS, WEEK_MS};
use super::page_frame::{html, require, state_label, when, ConsoleCaller, PageError};
use crate::admin::{AdminError, Need};
use crate::app_state::AppState;
use crate::domain::JobName;
use crate::services::ServiceError;
use crate::store::{console_queries as q, job_runs, outbox_gauges, partners};

/// Queue counts stop here: beyond it the figure reads "10000+".
const QUEUE_CAP: i64 = 10_000;

/// The states as columns, in lifecycle order; suspensions are summed under one column.
const STATE_COLUMNS: &[&str] = &[
    "pending_approval",
    "invited",
    "active",
    "suspended",
    "removed",
];

fn column_of(stored: &str) -> &str {
    stored.split(':').next().unwrap_or(stored)
}

pub async fn page(
    state: web::Data<AppState>,
    caller: ConsoleCaller,
) -> Result<HttpResponse, PageError> {
    // Figures over every partner: for the roles that read everything.
    require(&caller, Need::ReadEverything)?;
    let ctx = figures(&state).await.map_err(AdminError::from)?;
    html(&caller, StatusCode::OK, "dashboard.html", ctx)
}

async fn figures(state: &AppState) -> Result<Value, ServiceError> {
    let deps = &state.deps;
    let now = deps.now_ms();
    let mut conn = deps.db.pool().acquire().await?;
    let partner_list = partners::list(&mut conn).await?;
    let groups = q::guests_by_partner_state(&mut conn).await?;

    // Rows per partner, columns per state; plus the detail of suspension reasons.
    let mut by_partner: BTreeMap<String, BTreeMap<&str, i64>> = BTreeMap::new();
    let mut by_state: BTreeMap<String, i64> = BTreeMap::new();
    for g in &groups {
        *by_partner
            .entry(g.partner_id.clone())
            .or_default()
            .entry(column_of(&g.state))
            .or_default() += g.count;
        *by_state.entry(g.state.clone()).or_default() += g.count;
    }
    let partner_rows: Vec<Value> = partner_list
        .iter()
        .map(|p| {
            let counts = by_partner.get(&p.id);
            let cells: Vec<i64> = STATE_COLUMNS
                .iter()
                .map(|s| counts.and_then(|c| c.get(s)).copied().unwrap_or(0))
                .collect();
            json!({"slug": p.slug.as_str(), "name": p.name, "counts": cells,
                   "total": cells.iter().sum::<i64>()})
        })
        .collect();
    let column_totals: Vec<i64> = STATE_COLUMNS
        .iter()
        .map(|s| {
            by_partner
                .values()
                .map(|c| c.get(s).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let state_rows: Vec<Value> = by_state
        .iter()
        .map(|(s, n)| json!({"state": s, "label": state_label(s), "count": n}))
        .collect();

    let (open, oldest) = q::open_invitations(&mut conn, now).await?;
    let weeks = q::grant_ends_by_week(&mut conn, now, WEEK_MS, WEEKS).await?;
    let chart = expiry_chart::layout(now, &weeks);

    let mut sync = Vec::new();
    for target in &state.settings.sync.targets {
        let name = target.name.as_str();
        let pending = outbox_gauges::sync_pending(&mut conn, name, QUEUE_CAP).await?;
        let dead = outbox_gauges::sync_dead(&mut conn, name, QUEUE_CAP).await?;
        let oldest = outbox_gauges::sync_oldest_pending(&mut conn, name).await?;
        sync.push(
            json!({"target": name, "pending": capped(pending), "dead": capped(dead),
                         "oldest": when(oldest)}),
        );
    }

    let mut jobs = Vec::new();
    for job in JobName::ALL {
        let last = job_runs::last_run(&mut conn, job.as_str()).await?;
        jobs.push(match last {
            Some((started, finished, outcome, counts)) => json!({
                "job": job.as_str(), "started": when(Some(started)), "finished": when(finished),
                "outcome": outcome, "counts": counts,
            }),
            None => json!({"job": job.as_str(), "started": null}),
        });
    }

    Ok(json!({
        "states": STATE_COLUMNS.iter().map(|s| s.replace('_', " ")).collect::<Vec<_>>(),
        "partners": partner_rows,
        "column_totals": column_totals,
        "guest_total": column_totals.iter().sum::<i64>(),
        "by_state": state_rows,
        "invitations": {"open": open, "oldest": when(oldest)},
        "chart": chart,
        "horizon_days": expiry_chart::HORIZON_DAYS,
        "sync": sync,
        "jobs": jobs,
    }))
}

fn capped(n: i64) -> String {
    if n >= QUEUE_CAP {
        format!("{QUEUE_CAP}+")
    } else {
        n.to_string()
    }
}
