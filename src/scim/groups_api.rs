//! `/scim/v2/Groups` (RFC 7644 §3.2–§3.6, RFC 7643 §4.2). Members are loaded only when the
//! response includes them, so `excludedAttributes=members` never reads memberships.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::http::{
    if_match, not_modified, read_json, resource_response, scim_error, scim_json, with_etag,
    ScimPartner,
};
use super::list_params::{check_search_schema, list_response, RawListParams};
use super::routes::resource;
use super::users_api::{ProjectionQuery, MAX_PATCH_OPERATIONS};
use crate::app_state::AppState;
use crate::clock::{from_millis, to_rfc3339};
use crate::domain::Partner;
use crate::scim_core::error::ScimError;
use crate::scim_core::patch::parse_patch_request;
use crate::scim_core::projection::Projection;
use crate::scim_core::resource::{render, Meta};
use crate::scim_core::schema::{GROUP, GROUP_RESOURCE};
use crate::services::groups::{self, Group};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/Groups", "GET, POST")
            .route(web::get().to(list_groups))
            .route(web::post().to(create_group)),
    )
    .service(resource("/Groups/.search", "POST").route(web::post().to(search_groups)))
    .service(
        resource("/Groups/{id}", "GET, PUT, PATCH, DELETE")
            .route(web::get().to(get_group))
            .route(web::put().to(replace_group))
            .route(web::patch().to(patch_group))
            .route(web::delete().to(delete_group)),
    );
}

pub fn group_json(state: &AppState, group: Group) -> Value {
    let base = &state.settings.http.public_url;
    let meta = Meta {
        created: to_rfc3339(from_millis(group.row.created_at)),
        last_modified: to_rfc3339(from_millis(group.row.updated_at)),
        location: format!("{base}/scim/v2/Groups/{}", group.row.id),
        version: group.etag(),
    };
    let mut body = render(&GROUP_RESOURCE, &group.row.id, group.doc, &meta);
    if let Some(members) = group.members.as_ref().filter(|m| !m.is_empty()) {
        body["members"] = Value::Array(
            members
                .iter()
                .map(|m| {
                    json!({
                        "value": m.id,
                        "$ref": format!("{base}/scim/v2/Users/{}", m.id),
                        "display": m.display,
                        "type": "User",
                    })
                })
                .collect(),
        );
    }
    body
}

async fn respond(
    state: &AppState,
    status: StatusCode,
    mut group: Group,
    projection: &Projection,
) -> Result<HttpResponse, ScimError> {
    if projection.wants(&GROUP, "members") {
        groups::attach_members(&state.deps, std::slice::from_mut(&mut group))
            .await
            .map_err(scim_error)?;
    }
    let etag = group.etag();
    let body = projection.apply(group_json(state, group), &GROUP_RESOURCE);
    Ok(resource_response(status, &body, &etag))
}

/// Run a list or search for groups and render the ListResponse body.
pub async fn search(
    state: &AppState,
    partner: &Partner,
    raw: &RawListParams,
) -> Result<Value, ScimError> {
    let params = raw.parse(state.settings.http.max_page_size as i64)?;
    let mut page = groups::list(&state.deps, partner, &params)
        .await
        .map_err(scim_error)?;
    let projection = Projection::new(
        raw.attributes.as_deref(),
        raw.excluded_attributes.as_deref(),
        &GROUP_RESOURCE,
    );
    if projection.wants(&GROUP, "members") {
        groups::attach_members(&state.deps, &mut page.items)
            .await
            .map_err(scim_error)?;
    }
    let resources = std::mem::take(&mut page.items)
        .into_iter()
        .map(|g| projection.apply(group_json(state, g), &GROUP_RESOURCE))
        .collect();
    Ok(list_response(&page, resources))
}

pub async fn list_groups(
    state: web::Data<AppState>,
    caller: ScimPartner,
    query: web::Query<RawListParams>,
) -> Result<HttpResponse, ScimError> {
    let body = search(&state, &caller.partner, &query).await?;
    Ok(scim_json(StatusCode::OK, &body))
}

pub async fn search_groups(
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

pub async fn create_group(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    payload: web::Payload,
    query: web::Query<ProjectionQuery>,
) -> Result<HttpResponse, ScimError> {
    let body = read_json(&req, payload, state.settings.http.max_body_bytes).await?;
    let group = groups::create(&state.deps, &caller.actor, &caller.partner, &body)
        .await
        .map_err(scim_error)?;
    respond(
        &state,
        StatusCode::CREATED,
        group,
        &query.projection(&GROUP_RESOURCE),
    )
    .await
}

pub async fn get_group(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    id: web::Path<String>,
    query: web::Query<ProjectionQuery>,
) -> Result<HttpResponse, ScimError> {
    let group = groups::get(&state.deps, &caller.partner, &id)
        .await
        .map_err(scim_error)?;
    if let Some(res) = not_modified(&req, &group.etag()) {
        return Ok(res);
    }
    respond(
        &state,
        StatusCode::OK,
        group,
        &query.projection(&GROUP_RESOURCE),
    )
    .await
}

pub async fn replace_group(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    query: web::Query<ProjectionQuery>,
) -> Result<HttpResponse, ScimError> {
    let body = read_json(&req, payload, state.settings.http.max_body_bytes).await?;
    let group = groups::replace(
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
        group,
        &query.projection(&GROUP_RESOURCE),
    )
    .await
}

/// PATCH answers 204 (what Entra ID expects) unless the client asks for attributes back.
pub async fn patch_group(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    query: web::Query<ProjectionQuery>,
) -> Result<HttpResponse, ScimError> {
    let body = read_json(&req, payload, state.settings.http.max_body_bytes).await?;
    let ops = parse_patch_request(&body, MAX_PATCH_OPERATIONS)?;
    let group = groups::patch(
        &state.deps,
        &caller.actor,
        &caller.partner,
        &id,
        &ops,
        if_match(&req).as_deref(),
    )
    .await
    .map_err(scim_error)?;
    if query.attributes.is_none() && query.excluded_attributes.is_none() {
        return Ok(with_etag(HttpResponse::NoContent().finish(), &group.etag()));
    }
    respond(
        &state,
        StatusCode::OK,
        group,
        &query.projection(&GROUP_RESOURCE),
    )
    .await
}

pub async fn delete_group(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    groups::delete(
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
