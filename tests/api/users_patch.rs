//! PATCH (RFC 7644 §3.5.2) over HTTP, including the shapes Entra ID and Okta send.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn, Backend};
use crate::users_crud::{clinician, ENTERPRISE};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn ops(operations: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": operations})
}

both_backends!(
    patch_add_replace_remove_with_and_without_path,
    entra_and_okta_shapes_are_accepted,
    patch_errors_and_atomicity,
);

async fn patch_add_replace_remove_with_and_without_path(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let id = scim.create_user(&clinician("ann@acme.example")).await;
    let path = format!("/Users/{id}");

    let res = scim
        .patch(
            &path,
            &ops(json!([
                {"op": "replace", "path": "name.familyName", "value": "Lee-Smith"},
                {"op": "add", "path": "nickName", "value": "Annie"},
                {"op": "add", "path": "emails", "value": [{"value": "ann@home.example", "type": "home"}]},
                {"op": "remove", "path": "title"},
                {"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Oncology"},
            ])),
        )
        .await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.body);
    assert_eq!(res.body["name"]["familyName"], "Lee-Smith");
    assert_eq!(res.body["name"]["givenName"], "Ann");
    assert_eq!(res.body["nickName"], "Annie");
    assert_eq!(res.body["emails"].as_array().unwrap().len(), 2);
    assert!(res.body.get("title").is_none());
    assert_eq!(res.body[ENTERPRISE]["department"], "Oncology");
    assert_eq!(res.body["meta"]["version"], "W/\"2\"");

    let res = scim
        .patch(&path, &ops(json!([{"op": "add", "value": {"displayName": "Dr Ann", "preferredLanguage": "nl"}}])))
        .await;
    assert_eq!(res.body["displayName"], "Dr Ann");
    assert_eq!(res.body["preferredLanguage"], "nl");

    let res = scim
        .patch(
            &path,
            &ops(json!([{"op": "remove", "path": "emails[type eq \"home\"]"}])),
        )
        .await;
    assert_eq!(
        res.body["emails"],
        json!([{"value": "ann@acme.example", "type": "work", "primary": true}])
    );

    let res = scim
        .patch(&path, &ops(json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "ann.lee@acme.example"}])))
        .await;
    assert_eq!(res.body["emails"][0]["value"], "ann.lee@acme.example");

    // The change is stored and searchable, not just echoed.
    let found = scim
        .filter_users(
            "emails.value eq \"ann.lee@acme.example\" and name.familyName eq \"Lee-Smith\"",
        )
        .await;
    assert_eq!(found.body["totalResults"], 1);
    let old = scim
        .filter_users("emails.value eq \"ann@acme.example\"")
        .await;
    assert_eq!(old.body["totalResults"], 0);
}

async fn entra_and_okta_shapes_are_accepted(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let id = scim.create_user(&clinician("ann@acme.example")).await;
    let path = format!("/Users/{id}");

    // Entra ID: application/json, capitalised ops, string booleans, path-less deactivation.
    let res = scim
        .client
        .patch(format!("{}/scim/v2{path}", app.address))
        .bearer_auth(&scim.token)
        .header("Content-Type", "application/json")
        .body(
            json!({"schemas": [PATCH_OP], "Operations": [
                {"op": "Replace", "path": "displayName", "value": "Ann L."},
                {"op": "Add", "path": "title", "value": "Ward Sister"},
                {"op": "Replace", "value": {"active": "False"}},
            ]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let res = crate::helpers::read(res).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.body);
    assert_eq!(res.body["active"], false);
    assert_eq!(res.body["displayName"], "Ann L.");
    assert_eq!(res.body["title"], "Ward Sister");
    let inactive = scim.filter_users("active eq false").await;
    assert_eq!(inactive.body["totalResults"], 1);

    // Okta: replace of active with a real boolean.
    let res = scim
        .patch(
            &path,
            &ops(json!([{"op": "replace", "value": {"active": true}}])),
        )
        .await;
    assert_eq!(res.body["active"], true);
    let res = scim
        .patch(
            &path,
            &ops(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    assert_eq!(res.body["active"], false);
}

async fn patch_errors_and_atomicity(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let id = scim.create_user(&clinician("ann@acme.example")).await;
    let path = format!("/Users/{id}");

    scim.patch(&path, &ops(json!([{"op": "remove"}])))
        .await
        .assert_scim_error(400, Some("noTarget"));
    scim.patch(
        &path,
        &ops(json!([{"op": "replace", "path": "id", "value": "x"}])),
    )
    .await
    .assert_scim_error(400, Some("mutability"));
    scim.patch(
        &path,
        &ops(json!([{"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}])),
    )
    .await
    .assert_scim_error(400, Some("mutability"));
    scim.patch(
        &path,
        &ops(json!([{"op": "replace", "path": "emails[type eq \"work\"", "value": "x"}])),
    )
    .await
    .assert_scim_error(400, Some("invalidPath"));
    scim.patch(
        &path,
        &ops(json!([{"op": "replace", "path": "favouriteColour", "value": "x"}])),
    )
    .await
    .assert_scim_error(400, Some("invalidPath"));
    scim.patch(
        &path,
        &ops(json!([{"op": "jump", "path": "title", "value": "x"}])),
    )
    .await
    .assert_scim_error(400, Some("invalidSyntax"));

    // The first operation is valid, the second is not: nothing applies.
    let res = scim
        .patch(
            &path,
            &ops(json!([
                {"op": "replace", "path": "title", "value": "Changed"},
                {"op": "replace", "path": "emails[type eq \"fax\"].value", "value": "x"},
            ])),
        )
        .await;
    res.assert_scim_error(400, Some("noTarget"));
    let unchanged = scim.get(&path).await;
    assert_eq!(unchanged.body["title"], "Staff Nurse");
    assert_eq!(unchanged.body["meta"]["version"], "W/\"1\"");

    // A PATCH that leaves an invalid document is refused whole.
    scim.patch(
        &path,
        &ops(json!([{"op": "replace", "path": "active", "value": "perhaps"}])),
    )
    .await
    .assert_scim_error(400, Some("invalidValue"));
    scim.patch(&path, &ops(json!([{"op": "remove", "path": "userName"}])))
        .await
        .assert_scim_error(400, Some("invalidValue"));
}
