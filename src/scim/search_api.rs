//! `POST /scim/v2/.search` at the service root (RFC 7644 §3.4.3): one query over Users and
//! Groups. Results list Users first, then Groups; index paging spans both.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::http::{read_json, scim_json, ScimPartner};
use super::list_params::{check_search_schema, RawListParams, LIST_RESPONSE_SCHEMA};
use crate::app_state::AppState;
use crate::scim_core::error::ScimError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::routes::resource("/.search", "POST").route(web::post().to(search_root)));
}

fn total(v: &Value) -> i64 {
    v["totalResults"].as_i64().unwrap_or(0)
}

fn resources(v: Value) -> Vec<Value> {
    match v {
        Value::Object(mut o) => match o.remove("Resources") {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

pub async fn search_root(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ScimError> {
    let body = read_json(&req, payload, state.settings.http.max_body_bytes).await?;
    check_search_schema(&body)?;
    let mut raw = RawListParams::from_search_body(&body)?;
    if raw.cursor.is_some() {
        return Err(ScimError::invalid_value(
            "cursor paging is available per resource type, not at the root",
        ));
    }
    // Validate once, with the caller's paging, before splitting it across the two types.
    let max = state.settings.http.max_page_size as i64;
    let params = raw.parse(max)?;
    let (start, count) = match params.paging {
        crate::services::listing::Paging::Index { start_index, count } => (start_index, count),
        crate::services::listing::Paging::Cursor { .. } => (1, max),
    };
    raw.start_index = Some(start.to_string());
    raw.count = Some(count.to_string());
    let users = super::users_api::search(&state, &caller.partner, &raw).await?;
    let users_total = total(&users);
    let mut items = resources(users);
    let remaining = count - items.len() as i64;
    // Groups continue where users end.
    raw.start_index = Some((start - users_total).max(1).to_string());
    raw.count = Some(remaining.max(0).to_string());
    let groups = super::groups_api::search(&state, &caller.partner, &raw).await?;
    let groups_total = total(&groups);
    if remaining > 0 {
        items.extend(resources(groups));
    }
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": users_total + groups_total,
            "startIndex": start,
            "itemsPerPage": items.len(),
            "Resources": items,
        }),
    ))
}
