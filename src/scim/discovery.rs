//! Discovery endpoints (RFC 7644 §4): `/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas`.
//! They describe exactly what this build supports and carry no tenant data, so they are
//! served without authentication (RFC 7644 §4 allows it). With a partner's token,
//! `/Schemas` lists only the User attributes kept from that partner (`kept_attributes`).

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::bulk_api::MAX_BULK_OPERATIONS;
use super::http::{scim_json, ScimPartner};
use super::list_params::LIST_RESPONSE_SCHEMA;
use super::routes::resource;
use crate::app_state::AppState;
use crate::scim_core::error::ScimError;
use crate::scim_core::minimise::{self, KeptPath};
use crate::scim_core::schema::{
    all_schemas, ResourceTypeDef, SchemaDef, GROUP_RESOURCE, USER_RESOURCE,
};

/// Resource types served by this build.
fn resource_types() -> [&'static ResourceTypeDef; 2] {
    [&USER_RESOURCE, &GROUP_RESOURCE]
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Read-only documents: any other method is 405 with `Allow: GET` (RFC 7644 §4).
    cfg.service(
        resource("/ServiceProviderConfig", "GET").route(web::get().to(get_service_provider_config)),
    )
    .service(resource("/ResourceTypes", "GET").route(web::get().to(list_resource_types)))
    .service(resource("/ResourceTypes/{name}", "GET").route(web::get().to(get_resource_type)))
    .service(resource("/Schemas", "GET").route(web::get().to(list_schemas)))
    .service(resource("/Schemas/{id}", "GET").route(web::get().to(get_schema)));
}

fn list_response(resources: Vec<Value>) -> HttpResponse {
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_RESPONSE_SCHEMA],
            "totalResults": resources.len(),
            "startIndex": 1,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}

pub async fn get_service_provider_config(state: web::Data<AppState>) -> HttpResponse {
    let base = &state.settings.http.public_url;
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": format!("{base}/docs"),
            "patch": {"supported": true},
            "bulk": {
                "supported": true,
                "maxOperations": MAX_BULK_OPERATIONS,
                "maxPayloadSize": state.settings.http.max_body_bytes,
            },
            "filter": {"supported": true, "maxResults": state.settings.http.max_page_size},
            "changePassword": {"supported": false},
            "sort": {"supported": true},
            "etag": {"supported": true},
            // RFC 9865 §4: both paging styles; index is the default.
            "pagination": {
                "cursor": true,
                "index": true,
                "defaultPaginationMethod": "index",
                "defaultPageSize": state.settings.http.max_page_size,
                "maxPageSize": state.settings.http.max_page_size,
            },
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A partner token issued by `guestbridge token issue`, sent as Authorization: Bearer.",
                "primary": true
            }],
            "meta": {
                "resourceType": "ServiceProviderConfig",
                "location": format!("{base}/scim/v2/ServiceProviderConfig"),
            }
        }),
    )
}

pub async fn list_resource_types(state: web::Data<AppState>) -> HttpResponse {
    let base = &state.settings.http.public_url;
    list_response(resource_types().iter().map(|rt| rt.to_json(base)).collect())
}

pub async fn get_resource_type(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    let rt = resource_types()
        .into_iter()
        .find(|rt| rt.name.eq_ignore_ascii_case(&name))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {name:?}")))?;
    Ok(scim_json(
        StatusCode::OK,
        &rt.to_json(&state.settings.http.public_url),
    ))
}

/// The kept attributes of the partner whose token the request carries, if it carries one
/// and that partner keeps only some; a token that does not authenticate is refused (401)
/// rather than answered as if absent.
async fn kept_for_caller(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<Vec<KeptPath>>, ScimError> {
    if !req
        .headers()
        .contains_key(actix_web::http::header::AUTHORIZATION)
    {
        return Ok(None);
    }
    let caller = ScimPartner::extract(req).await?;
    let limits = state
        .deps
        .rules()
        .policy(caller.partner.slug.as_str())
        .limits;
    Ok(limits
        .kept_attributes
        .map(|paths| minimise::parse_all(&paths)))
}

/// A schema resource, narrowed to the caller's kept attributes for User schemas.
fn schema_json(schema: &'static SchemaDef, base: &str, kept: Option<&[KeptPath]>) -> Value {
    let json = schema.to_json(base);
    match kept {
        Some(kept) if USER_RESOURCE.schemas().any(|s| std::ptr::eq(s, schema)) => {
            minimise::narrow_schema_json(json, schema, kept)
        }
        _ => json,
    }
}

pub async fn list_schemas(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ScimError> {
    let kept = kept_for_caller(&state, &req).await?;
    let base = &state.settings.http.public_url;
    let served: Vec<&str> = resource_types()
        .iter()
        .flat_map(|rt| rt.schemas().map(|s| s.id))
        .collect();
    Ok(list_response(
        all_schemas()
            .into_iter()
            .filter(|s| served.contains(&s.id))
            .map(|s| schema_json(s, base, kept.as_deref()))
            .collect(),
    ))
}

pub async fn get_schema(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ScimError> {
    let kept = kept_for_caller(&state, &req).await?;
    let schema = resource_types()
        .iter()
        .flat_map(|rt| rt.schemas())
        .find(|s| s.id.eq_ignore_ascii_case(&id))
        .ok_or_else(|| ScimError::not_found(format!("no schema {id:?}")))?;
    Ok(scim_json(
        StatusCode::OK,
        &schema_json(schema, &state.settings.http.public_url, kept.as_deref()),
    ))
}
