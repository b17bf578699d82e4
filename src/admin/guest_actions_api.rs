//! `/api/v1/guests`: what an administrator does to guests — invite one by hand, suspend,
//! resume, remove now, extend or revoke one app's grants. Each answers the guest as it now
//! stands, with its grants.

use actix_web::{web, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::guests_api::guest_json;
use super::{AdminCaller, AdminError, Need};
use crate::app_state::AppState;
use crate::clock::{from_millis, to_rfc3339};
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

fn time(ms: Option<i64>) -> Value {
    ms.map(|t| json!(to_rfc3339(from_millis(t))))
        .unwrap_or(Value::Null)
}

/// The guest with its grants, as it stands after an action.
async fn answer(state: &AppState, id: &str, status: u16) -> Result<HttpResponse, AdminError> {
    let d = guests::get(&state.deps, id).await?;
    let mut body = guest_json(&d.guest, d.partner.slug.as_str());
    body["grants"] = Value::Array(
        d.grants
            .iter()
            .map(|g| {
                json!({
                    "app": g.app_id,
                    "role": g.role,
                    "rule": g.rule_id,
                    "valid_from": time(Some(g.valid_from)),
                    "valid_until": time(g.valid_until),
                    "ends_by": g.ends_by,
                })
            })
            .collect(),
    );
    let status =
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
    Ok(HttpResponse::build(status).json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuspendBody {
    reason: Option<String>,
}

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

pub async fn resume(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    super::guests_api::visible_guest(&state, &admin, Need::ManageGuests, &id).await?;
    guest_actions::resume(&state.deps, &admin.actor, &id).await?;
    answer(&state, &id, 200).await
}

pub async fn remove(
    state: web::Data<AppState>,
    admin: AdminCaller,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    super::guests_api::visible_guest(&state, &admin, Need::ManageGuests, &id).await?;
    guest_actions::remove(&state.deps, &admin.actor, &id).await?;
    answer(&state, &id, 200).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    until: String,
}

fn instant(field: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>, AdminError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| AdminError::bad_request(format!("{field} must be an RFC 3339 instant")))
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    partner: Option<String>,
    #[serde(rename = "userName")]
    user_name: Option<String>,
    #[serde(rename = "givenName")]
    given_name: Option<String>,
    #[serde(rename = "familyName")]
    family_name: Option<String>,
    email: Option<String>,
    apps: Option<Vec<String>>,
    until: Option<String>,
    sponsor: Option<String>,
}

/// Invite a person by hand (201 with the guest); 400 lists every field at fault.
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
