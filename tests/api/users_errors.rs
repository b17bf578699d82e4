//! Error responses in the RFC 7644 §3.12 schema, each with its status and scimType.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{spawn, Backend};
use crate::users_crud::clinician;

both_backends!(
    bad_bodies_are_rejected_with_the_right_scim_type,
    duplicate_user_name_is_a_uniqueness_conflict,
    missing_or_bad_tokens_are_401_with_www_authenticate,
    oversized_bodies_are_413,
);

async fn bad_bodies_are_rejected_with_the_right_scim_type(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let raw = scim
        .client
        .post(format!("{}/scim/v2/Users", app.address))
        .bearer_auth(&scim.token)
        .header("Content-Type", "application/scim+json")
        .body("{\"userName\": ")
        .send()
        .await
        .unwrap();
    crate::helpers::read(raw)
        .await
        .assert_scim_error(400, Some("invalidSyntax"));
    scim.post("/Users", &json!(["not", "an", "object"]))
        .await
        .assert_scim_error(400, Some("invalidSyntax"));
    scim.post("/Users", &json!({"name": {"givenName": "x"}}))
        .await
        .assert_scim_error(400, Some("invalidValue"));
    scim.post("/Users", &json!({"userName": "x", "id": "mine"}))
        .await
        .assert_scim_error(400, Some("mutability"));
    scim.post("/Users", &json!({"userName": "x", "active": "perhaps"}))
        .await
        .assert_scim_error(400, Some("invalidValue"));
    scim.post(
        "/Users",
        &json!({"userName": "x", "emails": "not-a-list-of-objects"}),
    )
    .await
    .assert_scim_error(400, Some("invalidValue"));
    let id = scim.create_user(&clinician("ann@acme.example")).await;
    let mut other_id = clinician("ann@acme.example");
    other_id["id"] = json!("another-id");
    scim.put(&format!("/Users/{id}"), &other_id)
        .await
        .assert_scim_error(400, Some("mutability"));
    // Nothing was half-written by the failures.
    let list = scim.get("/Users").await;
    assert_eq!(list.body["totalResults"], 1);
    scim.get("/Users/does-not-exist")
        .await
        .assert_scim_error(404, None);
    scim.get("/Nope").await.assert_scim_error(404, None);
}

async fn duplicate_user_name_is_a_uniqueness_conflict(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    scim.create_user(&clinician("ann@acme.example")).await;
    // userName is unique case-insensitively.
    scim.post("/Users", &clinician("ANN@acme.example"))
        .await
        .assert_scim_error(409, Some("uniqueness"));
    let bob = scim.create_user(&clinician("bob@acme.example")).await;
    scim.put(&format!("/Users/{bob}"), &clinician("Ann@Acme.Example"))
        .await
        .assert_scim_error(409, Some("uniqueness"));
    assert_eq!(
        scim.get(&format!("/Users/{bob}")).await.body["userName"],
        "bob@acme.example"
    );
}

async fn missing_or_bad_tokens_are_401_with_www_authenticate(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    for auth in [
        None,
        Some("Bearer gbp_not-a-real-token"),
        Some("Basic dXNlcjpwYXNz"),
    ] {
        let mut req = app.client.get(format!("{}/scim/v2/Users", app.address));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let res = crate::helpers::read(req.send().await.unwrap()).await;
        res.assert_scim_error(401, None);
        assert!(res
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer"));
    }
    assert_eq!(scim.get("/Users").await.status, StatusCode::OK);
}

async fn oversized_bodies_are_413(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let mut body = clinician("ann@acme.example");
    body["title"] = json!("x".repeat(70_000));
    scim.send(Method::POST, "/Users", Some(&body), &[])
        .await
        .assert_scim_error(413, None);
    assert_eq!(scim.get("/Users").await.body["totalResults"], 0);
}
