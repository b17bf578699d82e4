//! The admin API's OpenAPI 3.1 description, generated from the handlers' `#[utoipa::path]`
//! annotations and the response types they return, served at `GET /api/v1/openapi.json`.
//! The document is public (it describes the API; every operation in it still needs an admin
//! bearer token or a console session), so a client generator can fetch it without a secret.

use actix_web::{web, HttpResponse};
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Object, Ref, Required, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi};

use super::{
    audit_api, guest_actions_api, guests_api, imports_api, jobs_api, mappings_api, partners_api,
    sync_api, tokens_api,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Guestbridge admin API",
        description = "Partners, guests, imports, mappings, jobs, sync and audit. Errors are \
                       `{\"error\": …, \"request_id\": …}` with the status."
    ),
    paths(
        guests_api::list_guests,
        guest_actions_api::invite,
        guests_api::get_guest,
        guests_api::explain_guest,
        guests_api::approve_guest,
        guests_api::resend_invitation,
        guests_api::revoke_invitation,
        guests_api::reset_mfa,
        guest_actions_api::suspend,
        guest_actions_api::resume,
        guest_actions_api::remove,
        guest_actions_api::extend,
        guest_actions_api::revoke_grant,
        imports_api::post_import,
        imports_api::list_imports,
        imports_api::get_import,
        imports_api::get_import_errors,
        mappings_api::get_mappings,
        mappings_api::diff_mappings,
        mappings_api::reload_mappings,
        sync_api::get_sync,
        sync_api::replay_event,
        sync_api::reconcile_target,
        partners_api::list_partners,
        partners_api::create_partner,
        partners_api::get_partner,
        partners_api::edit_partner,
        partners_api::disable,
        partners_api::enable,
        partners_api::issue_token,
        tokens_api::list_partner_tokens,
        tokens_api::revoke_partner_token,
        tokens_api::list_admin_tokens,
        tokens_api::revoke_admin_token,
        jobs_api::list_jobs,
        jobs_api::list_runs,
        jobs_api::run_job,
        audit_api::list,
        audit_api::export_csv,
        audit_api::verify,
        get_openapi,
    ),
    modifiers(&Credentials),
    security(("admin_token" = []), ("session_cookie" = []))
)]
pub struct AdminApiDoc;

/// The two ways to authenticate: an admin bearer token, or a console session cookie (whose
/// changes also need the session's `X-CSRF-Token` header, which `AdminCaller` checks on every
/// POST, PUT, PATCH and DELETE, so it is added to each of those here); and the 500 any
/// operation may answer (`AdminError` for an internal error: only a reference id).
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An admin token (`guestbridge admin token`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::services::admin_auth::session_cookie_name(false),
                "A console session (`__Host-gb_admin` over https); changes also need its \
                 X-CSRF-Token header",
            ))),
        );
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                op.parameters.get_or_insert_with(Vec::new).push(
                    ParameterBuilder::new()
                        .name("X-CSRF-Token")
                        .parameter_in(ParameterIn::Header)
                        .required(Required::False)
                        .description(Some(
                            "With a console session cookie: the session's CSRF token (403 \
                             without it). Not used with a bearer token.",
                        ))
                        .schema(Some(Object::with_type(Type::String)))
                        .build(),
                );
            }
            let ops: [&mut Option<Operation>; 5] = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                let internal = ResponseBuilder::new()
                    .description("An internal error: the body names only a reference the log has")
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build();
                op.responses
                    .responses
                    .entry("500".to_string())
                    .or_insert(internal.into());
            }
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(get_openapi));
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn get_openapi() -> HttpResponse {
    HttpResponse::Ok().json(AdminApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_schema_it_refers_to() {
        let doc = serde_json::to_value(AdminApiDoc::openapi()).unwrap();
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            doc["openapi"]
        );
        if let Ok(path) = std::env::var("GUESTBRIDGE_OPENAPI_DUMP") {
            std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        }
        // Every `$ref` names a schema in the components (a type left out of the derive shows here).
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{name} is referred to but not defined"
            );
        }
    }
}
