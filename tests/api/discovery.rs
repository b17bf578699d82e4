//! Discovery endpoints (RFC 7644 §4) tell the truth about this build.

use crate::both_backends;
use crate::helpers::{read, spawn, Backend};
use crate::users_crud::ENTERPRISE;

both_backends!(discovery_describes_what_is_supported);

async fn discovery_describes_what_is_supported(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;

    let spc = scim.get("/ServiceProviderConfig").await;
    assert_eq!(spc.status.as_u16(), 200);
    assert_eq!(spc.body["patch"]["supported"], true);
    assert_eq!(spc.body["filter"]["supported"], true);
    assert_eq!(spc.body["filter"]["maxResults"], 1000);
    assert_eq!(spc.body["etag"]["supported"], true);
    assert_eq!(spc.body["bulk"]["supported"], false);
    assert_eq!(spc.body["sort"]["supported"], false);
    assert_eq!(
        spc.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );
    // Sorting is not advertised, so `count` beyond maxResults is capped to it.
    let capped = scim.get("/Users?count=5000").await;
    assert_eq!(capped.status.as_u16(), 200);

    let types = scim.get("/ResourceTypes").await;
    assert_eq!(types.body["totalResults"], 1);
    let user_type = &types.body["Resources"][0];
    assert_eq!(user_type["endpoint"], "/Users");
    assert_eq!(user_type["schemaExtensions"][0]["schema"], ENTERPRISE);
    assert_eq!(scim.get("/ResourceTypes/User").await.body["name"], "User");
    scim.get("/ResourceTypes/Group")
        .await
        .assert_scim_error(404, None);

    let schemas = scim.get("/Schemas").await;
    let ids: Vec<&str> = schemas.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec!["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE]
    );
    let user = scim
        .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await;
    let user_name = user.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "userName")
        .unwrap();
    assert_eq!(user_name["uniqueness"], "server");
    assert_eq!(user_name["caseExact"], false);
    assert_eq!(user_name["required"], true);

    // Discovery carries no tenant data and needs no token.
    let anonymous = read(app.get("/scim/v2/ServiceProviderConfig").await).await;
    assert_eq!(anonymous.status.as_u16(), 200);
}
