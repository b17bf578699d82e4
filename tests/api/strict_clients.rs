//! What strict SCIM clients check (issue 15): discovery documents carry only what their
//! schemas define, unsupported methods are 405 with `Allow`, `active` cannot be unassigned,
//! and the URLs clients build with extra slashes reach the same routes.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{spawn, url_encode, Backend};
use crate::users_crud::clinician;

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

both_backends!(
    service_provider_config_has_only_schema_attributes,
    unsupported_methods_are_405_with_allow,
    active_cannot_be_removed,
    trailing_and_doubled_slashes_reach_the_routes,
);

async fn service_provider_config_has_only_schema_attributes(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let spc = scim.get("/ServiceProviderConfig").await;
    assert_eq!(spc.status, StatusCode::OK);
    assert!(spc.body.get("maxPatchOperations").is_none(), "{}", spc.body);
}

async fn unsupported_methods_are_405_with_allow(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let id = scim.create_user(&clinician("ann@acme.example")).await;
    let user = format!("/Users/{id}");
    let read_only = [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/ResourceTypes/User",
        "/Schemas",
        "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
    ];
    for path in read_only {
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            let res = scim.send(method.clone(), path, Some(&json!({})), &[]).await;
            res.assert_scim_error(405, None);
            assert_eq!(res.header("allow"), Some("GET"), "{method} {path}");
        }
    }
    let others = [
        (Method::PUT, "/Users", "GET, POST"),
        (Method::DELETE, "/Groups", "GET, POST"),
        (Method::POST, user.as_str(), "GET, PUT, PATCH, DELETE"),
        (Method::PATCH, "/Bulk", "POST"),
        (Method::GET, "/Bulk", "POST"),
        (Method::GET, "/.search", "POST"),
        (Method::GET, "/Users/.search", "POST"),
        (Method::PUT, "/Groups/.search", "POST"),
    ];
    for (method, path, allow) in others {
        let res = scim.send(method.clone(), path, Some(&json!({})), &[]).await;
        res.assert_scim_error(405, None);
        assert_eq!(res.header("allow"), Some(allow), "{method} {path}");
    }
}

async fn active_cannot_be_removed(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let mut body = clinician("ann@acme.example");
    body.as_object_mut().unwrap().remove("active");
    let id = scim.create_user(&body).await;
    let path = format!("/Users/{id}");
    assert_eq!(
        scim.get(&path).await.body["active"],
        true,
        "absent on create is active"
    );
    scim.patch(
        &path,
        &json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": false}]}),
    )
    .await;
    for op in [
        json!({"op": "remove", "path": "active"}),
        json!({"op": "replace", "path": "active", "value": null}),
    ] {
        scim.patch(&path, &json!({"schemas": [PATCH_OP], "Operations": [op]}))
            .await
            .assert_scim_error(400, Some("mutability"));
    }
    let after = scim.get(&path).await;
    assert_eq!(
        after.body["active"], false,
        "a refused remove changes nothing"
    );
    assert_eq!(after.body["meta"]["version"], "W/\"2\"");
}

async fn trailing_and_doubled_slashes_reach_the_routes(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let created = scim.post("/Users/", &clinician("ann@acme.example")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    let filter = url_encode("userName eq \"ann@acme.example\"");
    let gets = [
        "/Users/".to_string(),
        format!("/Users/?filter={filter}"),
        format!("//Users?filter={filter}"),
        format!("/Users/{id}/"),
        format!("//Users//{id}"),
    ];
    for path in &gets {
        let res = scim.get(path).await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.body);
        let found = res.body.get("Resources").map_or(&res.body, |r| &r[0]);
        assert_eq!(found["id"], id.as_str(), "{path}");
    }
    assert_eq!(scim.get("/Groups/").await.status, StatusCode::OK);
    assert_eq!(
        scim.get("/ServiceProviderConfig/").await.status,
        StatusCode::OK
    );
    let deleted = scim.delete(&format!("/Users/{id}/")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    // Other routes keep exact matching.
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}
