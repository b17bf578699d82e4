//! `/scim/v2/Users` (RFC 7644 §3.2–§3.6): thin handlers that extract, call the user service
//! and render.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ScimError;
use super::filter::parse_filter;
use super::http::{read_json, scim_error, scim_json, ScimPartner};
use super::patch::parse_patch_request;
use super::projection::Projection;
use super::resource::{render, Meta};
use super::schema::USER_RESOURCE;
use crate::clock::{from_millis, to_rfc3339};
use crate::services::users::{self, User};
use crate::startup::AppState;

/// ListResponse schema (RFC 7644 §3.4.2).
pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Longest accepted filter expression.
const MAX_FILTER_LEN: usize = 8 * 1024;

/// Most operations one PATCH request may carry.
pub const MAX_PATCH_OPERATIONS: usize = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/Users")
            .route(web::get().to(list_users))
            .route(web::post().to(create_user)),
    )
    .service(
        web::resource("/Users/{id}")
            .route(web::get().to(get_user))
            .route(web::put().to(replace_user))
            .route(web::patch().to(patch_user))
            .route(web::delete().to(delete_user)),
    );
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionQuery {
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

fn user_json(state: &AppState, user: &User) -> Value {
    let meta = Meta {
        created: to_rfc3339(from_millis(user.row.created_at)),
        last_modified: to_rfc3339(from_millis(user.row.updated_at)),
        location: format!(
            "{}/scim/v2/Users/{}",
            state.settings.http.public_url, user.row.id
        ),
        version: user.etag(),
    };
    render(&USER_RESOURCE, &user.row.id, &user.doc, &meta)
}

fn user_response(
    state: &AppState,
    status: StatusCode,
    user: &User,
    projection: &Projection,
) -> HttpResponse {
    let body = projection.apply(user_json(state, user), &USER_RESOURCE);
    let mut res = scim_json(status, &body);
    if let Ok(v) = header::HeaderValue::from_str(&user.etag()) {
        res.headers_mut().insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED {
        if let Some(loc) = body.pointer("/meta/location").and_then(Value::as_str) {
            if let Ok(v) = header::HeaderValue::from_str(loc) {
                res.headers_mut().insert(header::LOCATION, v);
            }
        }
    }
    res
}

fn if_match(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::IF_MATCH)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
}

/// Parse a non-negative integer query parameter; clients sometimes send junk.
fn int_param(value: Option<&str>, name: &str) -> Result<Option<i64>, ScimError> {
    value
        .map(|v| {
            v.trim().parse::<i64>().map_err(|_| {
                ScimError::invalid_value(format!("query parameter {name} must be an integer"))
            })
        })
        .transpose()
}

pub async fn list_users(
    state: web::Data<AppState>,
    caller: ScimPartner,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ScimError> {
    let filter = match query
        .filter
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        Some(text) if text.len() > MAX_FILTER_LEN => {
            return Err(ScimError::invalid_filter(format!(
                "filter is longer than {MAX_FILTER_LEN} characters"
            )))
        }
        Some(text) => Some(parse_filter(text)?),
        None => None,
    };
    // RFC 7644 §3.4.2.4: startIndex below 1 is 1; negative count is 0; count is capped.
    let start_index = int_param(query.start_index.as_deref(), "startIndex")?
        .unwrap_or(1)
        .max(1);
    let max = state.settings.http.max_page_size as i64;
    let count = int_param(query.count.as_deref(), "count")?
        .unwrap_or(max)
        .clamp(0, max);
    let (total, page) = users::list(
        &state.deps,
        &caller.partner,
        filter.as_ref(),
        start_index,
        count,
    )
    .await
    .map_err(scim_error)?;
    let projection = Projection::new(
        query.attributes.as_deref(),
        query.excluded_attributes.as_deref(),
        &USER_RESOURCE,
    );
    let resources: Vec<Value> = page
        .iter()
        .map(|u| projection.apply(user_json(&state, u), &USER_RESOURCE))
        .collect();
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": total,
            "startIndex": start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    ))
}

pub async fn create_user(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<ProjectionQuery>,
) -> Result<HttpResponse, ScimError> {
    let body = read_json(&req, payload, state.settings.http.max_body_bytes).await?;
    let user = users::create(&state.deps, &caller.actor, &caller.partner, &body)
        .await
        .map_err(scim_error)?;
    let projection = Projection::new(
        query.attributes.as_deref(),
        query.excluded_attributes.as_deref(),
        &USER_RESOURCE,
    );
    Ok(user_response(
        &state,
        StatusCode::CREATED,
        &user,
        &projection,
    ))
}

pub async fn get_user(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<ProjectionQuery>,
) -> Result<HttpResponse, ScimError> {
    let user = users::get(&state.deps, &caller.partner, &id)
        .await
        .map_err(scim_error)?;
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t == user.etag())
        });
    if not_modified {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, user.etag()))
            .finish());
    }
    let projection = Projection::new(
        query.attributes.as_deref(),
        query.excluded_attributes.as_deref(),
        &USER_RESOURCE,
    );
    Ok(user_response(&state, StatusCode::OK, &user, &projection))
}

pub async fn replace_user(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    query: web::Query<ProjectionQuery>,
) -> Result<HttpResponse, ScimError> {
    let body = read_json(&req, payload, state.settings.http.max_body_bytes).await?;
    let user = users::replace(
        &state.deps,
        &caller.actor,
        &caller.partner,
        &id,
        &body,
        if_match(&req).as_deref(),
    )
    .await
    .map_err(scim_error)?;
    let projection = Projection::new(
        query.attributes.as_deref(),
        query.excluded_attributes.as_deref(),
        &USER_RESOURCE,
    );
    Ok(user_response(&state, StatusCode::OK, &user, &projection))
}

pub async fn patch_user(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    query: web::Query<ProjectionQuery>,
) -> Result<HttpResponse, ScimError> {
    let body = read_json(&req, payload, state.settings.http.max_body_bytes).await?;
    let ops = parse_patch_request(&body, MAX_PATCH_OPERATIONS)?;
    let user = users::patch(
        &state.deps,
        &caller.actor,
        &caller.partner,
        &id,
        &ops,
        if_match(&req).as_deref(),
    )
    .await
    .map_err(scim_error)?;
    let projection = Projection::new(
        query.attributes.as_deref(),
        query.excluded_attributes.as_deref(),
        &USER_RESOURCE,
    );
    Ok(user_response(&state, StatusCode::OK, &user, &projection))
}

pub async fn delete_user(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    users::delete(
        &state.deps,
        &caller.actor,
        &caller.partner,
        &id,
        if_match(&req).as_deref(),
    )
    .await
    .map_err(scim_error)?;
    Ok(HttpResponse::NoContent().finish())
}
