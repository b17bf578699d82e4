//! `GET /admin/guests`: the guests table. A GET form (works without script) searches by a
//! prefix of userName, name or e-mail and filters by state, partner, app and sponsor; pages
//! of 50 follow (lower(userName), id) by keyset, so a deep page costs what the first does
//! and a guest added meanwhile neither repeats nor skips a row.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::page_frame::{html, state_label, when, ConsoleCaller, PageError};
use crate::admin::AdminError;
use crate::app_state::AppState;
use crate::domain::PartnerSlug;
use crate::services::ServiceError;
use crate::store::console_queries::{self as q, Cursor, TableFilter};
use crate::store::partners;

pub const PAGE_SIZE: i64 = 50;
/// Longest search text or filter value accepted.
const MAX_INPUT: usize = 200;

/// The state filter's choices: stored states, and every suspension as one.
const STATES: &[&str] = &[
    "pending_approval",
    "invited",
    "active",
    "suspended",
    "removed",
];

#[derive(Debug, Default, Deserialize)]
pub struct TableQuery {
    q: Option<String>,
    state: Option<String>,
    partner: Option<String>,
    app: Option<String>,
    sponsor: Option<String>,
    after: Option<String>,
    before: Option<String>,
}

/// A filter value as given: blank means no filter.
fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub async fn page(
    state: web::Data<AppState>,
    caller: ConsoleCaller,
    query: web::Query<TableQuery>,
) -> Result<HttpResponse, PageError> {
    let query = query.into_inner();
    let mut conn = state
        .deps
        .db
        .pool()
        .acquire()
        .await
        .map_err(|e| AdminError::from(ServiceError::from(e)))?;
    let partner_list = partners::list(&mut conn)
        .await
        .map_err(|e| AdminError::from(ServiceError::from(e)))?;
    let apps: Vec<Value> = state
        .deps
        .rules()
        .apps
        .iter()
        .map(|a| json!({"id": a.id, "name": a.name}))
        .collect();

    let search = given(&query.q);
    let form = json!({
        "q": search, "state": given(&query.state), "partner": given(&query.partner),
        "app": given(&query.app), "sponsor": given(&query.sponsor),
    });
    let mut ctx = json!({
        "form": form,
        "states": STATES.iter().map(|s| json!({"value": s, "label": s.replace('_', " ")})).collect::<Vec<_>>(),
        "partners": partner_list.iter().map(|p| json!({"slug": p.slug.as_str(), "name": p.name})).collect::<Vec<_>>(),
        "apps": apps,
        "rows": [],
    });

    let problem = |ctx: &mut Value, message: String| {
        ctx["error"] = json!(message);
        html(&caller, StatusCode::BAD_REQUEST, "guests.html", ctx.clone())
    };
    for (name, v) in [
        ("search", &search),
        ("app", &given(&query.app)),
        ("sponsor", &given(&query.sponsor)),
    ] {
        if v.as_ref().is_some_and(|s| s.chars().count() > MAX_INPUT) {
            return problem(
                &mut ctx,
                format!("the {name} is longer than {MAX_INPUT} characters"),
            );
        }
    }
    let state_filter = given(&query.state);
    if let Some(s) = &state_filter {
        if !STATES.contains(&s.as_str()) && s.parse::<crate::domain::GuestState>().is_err() {
            return problem(
                &mut ctx,
                format!("the state must be one of {}", STATES.join(", ")),
            );
        }
    }
    let partner_id = match given(&query.partner) {
        Some(slug) => {
            let found = PartnerSlug::parse(&slug)
                .ok()
                .and_then(|s| partner_list.iter().find(|p| p.slug == s));
            match found {
                Some(p) => Some(p.id.clone()),
                None => return problem(&mut ctx, format!("there is no partner {slug:?}")),
            }
        }
        None => None,
    };
    let cursor = match (given(&query.after), given(&query.before)) {
        (Some(_), Some(_)) => {
            return problem(&mut ctx, "give either after or before, not both".into())
        }
        (Some(id), None) => Cursor::After(id),
        (None, Some(id)) => Cursor::Before(id),
        (None, None) => Cursor::First,
    };
    // A scoped role sees its partner's or its own guests whatever the form asks for.
    let partner_id = match caller.partner_scope() {
        Some(own) if partner_id.as_deref().is_some_and(|p| p != own) => {
            return problem(&mut ctx, "there is no such partner".into())
        }
        Some(own) => Some(own.to_string()),
        None => partner_id,
    };
    let sponsor = match caller.sponsor_scope() {
        Some(own) => Some(own.to_string()),
        None => given(&query.sponsor),
    };
    let filter = TableFilter {
        search: search.clone(),
        state: state_filter,
        partner_id,
        app: given(&query.app),
        sponsor,
    };
    let Some(page) = q::guests_page(&mut conn, &filter, &cursor, PAGE_SIZE)
        .await
        .map_err(|e| AdminError::from(ServiceError::from(e)))?
    else {
        return problem(
            &mut ctx,
            "the page cursor names no guest; start from the first page".into(),
        );
    };

    let slug_of = |id: &str| {
        partner_list
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.slug.as_str().to_string())
            .unwrap_or_default()
    };
    ctx["rows"] = page
        .rows
        .iter()
        .map(|r| {
            json!({"id": r.id, "user_name": r.user_name, "display_name": r.display_name,
                   "email": r.email, "state": r.state, "state_label": state_label(&r.state),
                   "partner": slug_of(&r.partner_id), "sponsor": r.sponsor,
                   "access_until": when(r.access_until)})
        })
        .collect();
    let link = |key: &str, id: &str| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", &search),
            ("state", &given(&query.state)),
            ("partner", &given(&query.partner)),
            ("app", &given(&query.app)),
            ("sponsor", &given(&query.sponsor)),
        ] {
            if let Some(v) = v {
                s.append_pair(k, v);
            }
        }
        s.append_pair(key, id);
        format!("/admin/guests?{}", s.finish())
    };
    if page.has_next {
        if let Some(last) = page.rows.last() {
            ctx["next"] = json!(link("after", &last.id));
        }
    }
    if page.has_previous {
        if let Some(first) = page.rows.first() {
            ctx["previous"] = json!(link("before", &first.id));
        }
    }
    html(&caller, StatusCode::OK, "guests.html", ctx)
}
