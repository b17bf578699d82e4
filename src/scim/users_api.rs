//! `/scim/v2/Users` (RFC 7644 §3.2–§3.6): thin handlers that extract, call the user service
//! and render.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::{
    if_match, not_modified, read_json, resource_response, scim_error, scim_json, ScimPartner,
};
use super::list_params::{check_search_schema, list_response, RawListParams};
use super::routes::resource;
use crate::app_state::AppState;
use crate::clock::{from_millis, to_rfc3339};
use crate::domain::Partner;
use crate::scim_core::error::ScimError;
use crate::scim_core::patch::parse_patch_request;
use crate::scim_core::projection::Projection;
use crate::scim_core::resource::{render, Meta};
use crate::scim_core::schema::{USER, USER_RESOURCE};
use crate::services::users::{self, User};

/// Most operations one PATCH request may carry.
pub const MAX_PATCH_OPERATIONS: usize = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/Users", "GET, POST")
            .route(web::get().to(list_users))
            .route(web::post().to(create_user)),
    )
    // Before `/Users/{id}`, so that a GET of `.search` is 405 rather than a user look-up.
    .service(resource("/Users/.search", "POST").route(web::post().to(search_users)))
    .service(
        resource("/Users/{id}", "GET, PUT, PATCH, DELETE")
            .route(web::get().to(get_user))
            .route(web::put().to(replace_user))
            .route(web::patch().to(patch_user))
            .route(web::delete().to(delete_user)),
    );
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionQuery {
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

impl ProjectionQuery {
    pub fn projection(&self, rt: &'static crate::scim_core::schema::ResourceTypeDef) -> Projection {
        Projection::new(
            self.attributes.as_deref(),
            self.excluded_attributes.as_deref(),
            rt,
        )
    }
}

/// The full representation of a user (before projection); the document moves into it.
pub fn user_json(state: &AppState, user: User) -> Value {
    let meta = Meta {
        created: to_rfc3339(from_millis(user.row.created_at)),
        last_modified: to_rfc3339(from_millis(user.row.updated_at)),
        location: format!(
            "{}/scim/v2/Users/{}",
            state.settings.http.public_url, user.row.id
        ),
        version: user.etag(),
    };
    let mut body = render(&USER_RESOURCE, &user.row.id, user.doc, &meta);
    if !user.groups.is_empty() {
        body["groups"] = Value::Array(
            user.groups
                .iter()
                .map(|g| {
                    json!({
                        "value": g.id,
                        "$ref": format!("{}/scim/v2/Groups/{}", state.settings.http.public_url, g.id),
                        "display": g.display,
                        "type": "direct",
                    })
                })
                .collect(),
        );
    }
    body
}

/// Render `user`; `groups_read` says its groups were read with it already.
async fn respond(
    state: &AppState,
    status: StatusCode,
    mut user: User,
    groups_read: bool,
    projection: &Projection,
) -> Result<HttpResponse, ScimError> {
    if !groups_read && projection.wants(&USER, "groups") {
        users::attach_groups(&state.deps, std::slice::from_mut(&mut user))
            .await
            .map_err(scim_error)?;
    }
    let etag = user.etag();
    let body = projection.apply(user_json(state, user), &USER_RESOURCE);
    Ok(resource_response(status, &body, &etag))
}

/// Run a list or search for users and render the ListResponse body.
pub async fn search(
    state: &AppState,
    partner: &Partner,
    raw: &RawListParams,
) -> Result<Value, ScimError> {
    let params = raw.parse(state.settings.http.max_page_size as i64)?;
    let projection = Projection::new(
        raw.attributes.as_deref(),
        raw.excluded_attributes.as_deref(),
        &USER_RESOURCE,
    );
    let mut page = users::list(
        &state.deps,
        partner,
        &params,
        projection.wants(&USER, "groups"),
    )
    .await
    .map_err(scim_error)?;
    let resources = std::mem::take(&mut page.items)
        .into_iter()
        .map(|u| projection.apply(user_json(state, u), &USER_RESOURCE))
        .collect();
    Ok(list_response(&page, resources))
}

pub async fn list_users(
    state: web::Data<AppState>,
    caller: ScimPartner,
    query: web::Query<RawListParams>,
) -> Result<HttpResponse, ScimError> {
    let body = search(&state, &caller.partner, &query).await?;
    Ok(scim_json(StatusCode::OK, &body))
}

pub async fn search_users(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ScimError> {
    let body = read_json(&req, payload, state.settings.http.max_body_bytes).await?;
    check_search_schema(&body)?;
    let raw = RawListParams::from_search_body(&body)?;
    let body = search(&state, &caller.partner, &raw).await?;
    Ok(scim_json(StatusCode::OK, &body))
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
    // A user is only made a member through a group, which needs its id: a new user has no
    // groups, and reading them would cost a statement per create.
    respond(
        &state,
        StatusCode::CREATED,
        user,
        true,
        &query.projection(&USER_RESOURCE),
    )
    .await
}

pub async fn get_user(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<ProjectionQuery>,
) -> Result<HttpResponse, ScimError> {
    let projection = query.projection(&USER_RESOURCE);
    let user = users::get(
        &state.deps,
        &caller.partner,
        &id,
        projection.wants(&USER, "groups"),
    )
    .await
    .map_err(scim_error)?;
    if let Some(res) = not_modified(&req, &user.etag()) {
        return Ok(res);
    }
    respond(&state, StatusCode::OK, user, true, &projection).await
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
    respond(
        &state,
        StatusCode::OK,
        user,
        false,
        &query.projection(&USER_RESOURCE),
    )
    .await
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
    respond(
        &state,
        StatusCode::OK,
        user,
        false,
        &query.projection(&USER_RESOURCE),
    )
    .await
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
