//! Fixtures shared by the PATCH engine tests.

use super::*;
use crate::scim_core::error::{ScimError, ScimType};
use crate::scim_core::resource::{normalize, WriteMode};
use crate::scim_core::schema::{
    ResourceTypeDef, ENTERPRISE_USER_SCHEMA, GROUP_RESOURCE, USER_RESOURCE,
};
use serde_json::{json, Map, Value};

mod add;
mod invariants;
mod mutability;
mod paths;
mod remove;
mod replace;
mod request;

const ENT: &str = ENTERPRISE_USER_SCHEMA;

/// A normalised User as `resource::normalize` produces it.
fn user() -> Map<String, Value> {
    normalize(
        &json!({
            "userName": "ann.lee@acme.example",
            "externalId": "00u1abc",
            "name": {"givenName": "Ann", "familyName": "Lee", "formatted": "Ann Lee"},
            "displayName": "Ann Lee",
            "title": "Nurse",
            "active": true,
            "emails": [
                {"value": "ann.lee@acme.example", "type": "work", "primary": true},
                {"value": "ann@home.example", "type": "home"}
            ],
            "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
            ENT: {"employeeNumber": "42", "department": "Cardiology", "manager": {"value": "mgr-1"}}
        }),
        &USER_RESOURCE,
        WriteMode::Create,
    )
    .unwrap()
}

fn group() -> Map<String, Value> {
    normalize(
        &json!({
            "displayName": "Ward 7 nurses",
            "members": [
                {"value": "u-1"},
                {"value": "u-2", "type": "User"},
                {"value": "u-3"}
            ]
        }),
        &GROUP_RESOURCE,
        WriteMode::Create,
    )
    .unwrap()
}

fn request(ops: Value) -> Vec<PatchOp> {
    parse_patch_request(
        &json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops}),
        1000,
    )
    .unwrap()
}

fn patch_user(ops: Value) -> Result<Map<String, Value>, ScimError> {
    let out = apply_patch(&user(), &request(ops), &USER_RESOURCE)?;
    renormalise(&out, &USER_RESOURCE);
    Ok(out)
}

fn patch_group(ops: Value) -> Result<Map<String, Value>, ScimError> {
    let out = apply_patch(&group(), &request(ops), &GROUP_RESOURCE)?;
    renormalise(&out, &GROUP_RESOURCE);
    Ok(out)
}

/// What the caller does next: the engine's output must survive re-normalisation.
fn renormalise(doc: &Map<String, Value>, rt: &'static ResourceTypeDef) -> Map<String, Value> {
    normalize(
        &Value::Object(doc.clone()),
        rt,
        WriteMode::Replace { id: "res-1" },
    )
    .unwrap_or_else(|e| panic!("re-normalisation failed: {e}\n{doc:#?}"))
}

fn scim_type(r: Result<Map<String, Value>, ScimError>) -> ScimType {
    match r {
        Ok(doc) => panic!("expected an error, got {}", Value::Object(doc)),
        Err(e) => e.scim_type.unwrap_or_else(|| panic!("no scimType: {e}")),
    }
}

fn emails(doc: &Map<String, Value>) -> Vec<Value> {
    doc["emails"].as_array().unwrap().clone()
}
