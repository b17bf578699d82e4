//! `/api/v1/guests`: what an administrator does to guests — invite one by hand, suspend,
//! resume, remove now, extend or revoke one app's grants. Each answers the guest as it now
//! stands, with its grants.

use actix_web::{web, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::error_shape::ErrorBody;
use super::guests_api::{grant_json, guest_json, GuestWithGrants};
use super::{AdminCaller, AdminError, Need};
use crate::app_state::AppState;
use crate::services::guest_actions;
use crate::services::guests;
use crate::services::manual_invite::{self, InviteError, InviteRequest};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/guests", web::post().to(invite))
        .route("/guests/{id}/suspend", web::post().to(suspend))
        .route("/guests/{id}/resume", web::post().to(resume))
        .route("/guests/{id}/remove", web::post().to(remove))
        .route("/guests/{id}/grants/{app}/extend", web::post().to(extend))
        .route("/guests/{id}/grants/{app}", web::delete().to(revoke_grant));
}

/// A JSON body; `None` for an empty one (where the body is optional).
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, AdminError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| AdminError::bad_request(format!("invalid JSON body: {e}")))
}

/// The guest with its grants, as it stands after an action.
async fn answer(state: &AppState, id: &str, status: u16) -> Result<HttpResponse, AdminError> {
    let d = guests::get(&state.deps, id).await?;
    let body = GuestWithGrants {
        guest: guest_json(&d.guest, d.partner.slug.as_str()),
        grants: d.grants.iter().map(grant_json).collect(),
    };
    let status =
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
    Ok(HttpResponse::build(status).json(body))
}

/// Optional body of a suspension.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendBody {
    /// Why, for the audit log.
    reason: Option<String>,
}

/// Suspend a guest: their access stops until resumed.
#[utoipa::path(post, path = "/api/v1/guests/{id}/suspend", tag = "guests", params(("id" = String, Path, description = "The guest's id")),
    request_body(content = Option<SuspendBody>, description = "Optional"),
    responses(
        (status = 200, description = "The suspended guest", body = GuestWithGrants),
        (status = 400, description = "A bad body", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such guest in the caller's scope", body = ErrorBody),
        (status = 409, description = "The guest cannot be suspended now", body = ErrorBody),
    ))]
pub async fn suspend(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    super::guests_api::visible_guest(&state, &admin, Need::ManageGuests, &id).await?;
    let b: Option<SuspendBody> = body(&bytes)?;
    let reason = b.and_then(|b| b.reason);
    guest_actions::suspend(&state.deps, &admin.actor, &id, reason.as_deref()).await?;
    answer(&state, &id, 200).await
}

/// Resume a suspended guest.
#[utoipa::path(post, path = "/api/v1/guests/{id}/resume", tag = "guests", params(("id" = String, Path, description = "The guest's id")),
    responses(
        (status = 200, description = "The resumed guest", body = GuestWithGrants),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such guest in the caller's scope", body = ErrorBody),
        (status = 409, description = "The guest is not suspended", body = ErrorBody),
    ))]
pub async fn resume(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    super::guests_api::visible_guest(&state, &admin, Need::ManageGuests, &id).await?;
    guest_actions::resume(&state.deps, &admin.actor, &id).await?;
    answer(&state, &id, 200).await
}

/// Remove a guest now: every grant ends and the targets are told.
#[utoipa::path(post, path = "/api/v1/guests/{id}/remove", tag = "guests", params(("id" = String, Path, description = "The guest's id")),
    responses(
        (status = 200, description = "The removed guest", body = GuestWithGrants),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such guest in the caller's scope", body = ErrorBody),
        (status = 409, description = "The guest is already removed", body = ErrorBody),
    ))]
pub async fn remove(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    super::guests_api::visible_guest(&state, &admin, Need::ManageGuests, &id).await?;
    guest_actions::remove(&state.deps, &admin.actor, &id).await?;
    answer(&state, &id, 200).await
}

/// The new end of a grant.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// RFC 3339 instant.
    until: String,
}

fn instant(field: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>, AdminError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| AdminError::bad_request(format!("{field} must be an RFC 3339 instant")))
}

/// Extend the guest's grants of one app to a new end (within the partner's policy).
#[utoipa::path(post, path = "/api/v1/guests/{id}/grants/{app}/extend", tag = "guests", params(("id" = String, Path, description = "The guest's id"), ("app" = String, Path, description = "The app's id")),
    request_body = ExtendBody,
    responses(
        (status = 200, description = "The guest with the extended grants", body = GuestWithGrants),
        (status = 400, description = "A bad body or an end the policy refuses", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such guest in the caller's scope", body = ErrorBody),
        (status = 409, description = "The grant cannot be extended now", body = ErrorBody),
    ))]
pub async fn extend(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<(String, String)>,
    bytes: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    super::guests_api::visible_guest(&state, &admin, Need::ManageGuests, &path.0).await?;
    let (id, app) = path.into_inner();
    let b: ExtendBody = body(&bytes)?
        .ok_or_else(|| AdminError::bad_request("a body {\"until\": …} is required"))?;
    let until = instant("until", &b.until)?;
    guest_actions::extend(&state.deps, &admin.actor, &id, &app, until).await?;
    answer(&state, &id, 200).await
}

/// Revoke the guest's grants of one app.
#[utoipa::path(delete, path = "/api/v1/guests/{id}/grants/{app}", tag = "guests", params(("id" = String, Path, description = "The guest's id"), ("app" = String, Path, description = "The app's id")),
    responses(
        (status = 200, description = "The guest without the grant", body = GuestWithGrants),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 404, description = "No such guest in the caller's scope", body = ErrorBody),
        (status = 409, description = "No such grant in force", body = ErrorBody),
    ))]
pub async fn revoke_grant(
    state: web::Data<AppState>,
    admin: AdminCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AdminError> {
    super::guests_api::visible_guest(&state, &admin, Need::ManageGuests, &path.0).await?;
    let (id, app) = path.into_inner();
    guest_actions::revoke_grant(&state.deps, &admin.actor, &id, &app).await?;
    answer(&state, &id, 200).await
}

/// A person to invite by hand; every field is checked and all faults are listed at once.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    /// The partner's slug.
    partner: Option<String>,
    #[serde(rename = "userName")]
    user_name: Option<String>,
    #[serde(rename = "givenName")]
    given_name: Option<String>,
    #[serde(rename = "familyName")]
    family_name: Option<String>,
    email: Option<String>,
    /// Only these of the apps the rules grant (the others are revoked); default all.
    apps: Option<Vec<String>>,
    /// RFC 3339 end of access, within the partner's policy.
    until: Option<String>,
    sponsor: Option<String>,
}

/// Invite a person by hand (201 with the guest); 400 lists every field at fault.
#[utoipa::path(post, path = "/api/v1/guests", tag = "guests",
    request_body = InviteBody,
    responses(
        (status = 201, description = "The invited guest", body = GuestWithGrants),
        (status = 400, description = "Fields at fault, listed in `errors`", body = ErrorBody),
        (status = 401, description = "No valid credentials", body = ErrorBody),
        (status = 403, description = "The role does not allow this", body = ErrorBody),
        (status = 409, description = "The userName is taken, or the rules grant nothing", body = ErrorBody),
    ))]
pub async fn invite(
    state: web::Data<AppState>,
    admin: AdminCaller,
    bytes: web::Bytes,
) -> Result<HttpResponse, AdminError> {
    admin.require(Need::Write)?;
    let b: InviteBody =
        body(&bytes)?.ok_or_else(|| AdminError::bad_request("a body is required"))?;
    let until = match b.until.as_deref() {
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(_) => {
                return Err(fields(vec![manual_invite::FieldError {
                    field: "until",
                    message: "must be an RFC 3339 instant".into(),
                }]))
            }
        },
        None => None,
    };
    let req = InviteRequest {
        partner: b.partner.unwrap_or_default(),
        user_name: b.user_name.unwrap_or_default(),
        given_name: b.given_name.unwrap_or_default(),
        family_name: b.family_name.unwrap_or_default(),
        email: b.email.unwrap_or_default(),
        apps: b.apps,
        until,
        sponsor: b.sponsor,
    };
    match manual_invite::invite(&state.deps, &admin.actor, &req).await {
        Ok((guest, _)) => answer(&state, &guest.id, 201).await,
        Err(InviteError::Fields(errors)) => Err(fields(errors)),
        Err(InviteError::Service(e)) => Err(e.into()),
    }
}

fn fields(errors: Vec<manual_invite::FieldError>) -> AdminError {
    let mut names: Vec<&str> = errors.iter().map(|e| e.field).collect();
    names.dedup();
    let mut err = AdminError::bad_request(format!("invalid fields: {}", names.join(", ")));
    err.errors = Some(Value::Array(
        errors
            .iter()
            .map(|e| json!({"field": e.field, "message": e.message}))
            .collect(),
    ));
    err
}

impl From<InviteError> for AdminError {
    fn from(e: InviteError) -> Self {
        match e {
            InviteError::Fields(errors) => fields(errors),
            InviteError::Service(e) => e.into(),
        }
    }
}
