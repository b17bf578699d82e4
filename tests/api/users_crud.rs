//! Users: create, read, replace, delete, pagination, projection, meta and ETags.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn, Backend};

pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

pub fn clinician(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": user_name,
        "externalId": format!("ext-{user_name}"),
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "displayName": "Ann Lee",
        "title": "Staff Nurse",
        "active": true,
        "emails": [{"value": user_name, "type": "work", "primary": true}],
        ENTERPRISE: {"employeeNumber": "1001", "department": "Cardiology"}
    })
}

both_backends!(
    create_then_get_returns_the_resource_with_meta,
    replace_overwrites_and_bumps_version,
    delete_removes_the_user,
    list_paginates_with_total_results,
    attributes_and_excluded_attributes_project_responses,
    etags_on_get_and_if_match_on_writes,
    changes_are_audited,
);

async fn create_then_get_returns_the_resource_with_meta(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let res = scim.post("/Users", &clinician("ann@acme.example")).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let id = res.body["id"].as_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    assert_eq!(res.header("content-type"), Some("application/scim+json"));
    let location = format!("{}/scim/v2/Users/{id}", app.address);
    assert_eq!(res.header("location"), Some(location.as_str()));
    let meta = &res.body["meta"];
    assert_eq!(meta["resourceType"], "User");
    assert_eq!(meta["location"], location);
    assert_eq!(meta["version"], "W/\"1\"");
    assert_eq!(meta["created"], meta["lastModified"]);
    assert!(chrono::DateTime::parse_from_rfc3339(meta["created"].as_str().unwrap()).is_ok());
    assert_eq!(res.header("etag"), Some("W/\"1\""));

    let got = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, res.body);
    assert_eq!(got.body["userName"], "ann@acme.example");
    assert_eq!(got.body["name"]["familyName"], "Lee");
    assert_eq!(got.body[ENTERPRISE]["department"], "Cardiology");
    assert_eq!(
        got.body["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE])
    );
}

async fn replace_overwrites_and_bumps_version(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let created = scim
        .post("/Users", &clinician("ann@acme.example"))
        .await
        .body;
    let id = created["id"].as_str().unwrap();
    // Okta deactivates with a PUT of the whole user, echoing id and meta back.
    let mut body = created.clone();
    body["active"] = json!(false);
    body["title"] = json!("Charge Nurse");
    body.as_object_mut().unwrap().remove("displayName");
    let res = scim.put(&format!("/Users/{id}"), &body).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["active"], false);
    assert_eq!(res.body["title"], "Charge Nurse");
    assert!(
        res.body.get("displayName").is_none(),
        "PUT replaces: omitted attributes are cleared"
    );
    assert_eq!(res.body["meta"]["version"], "W/\"2\"");
    assert_eq!(res.body["meta"]["created"], created["meta"]["created"]);
    let again = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(again.body["active"], false);
}

async fn delete_removes_the_user(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let id = scim.create_user(&clinician("ann@acme.example")).await;
    let res = scim.delete(&format!("/Users/{id}")).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    scim.get(&format!("/Users/{id}"))
        .await
        .assert_scim_error(404, None);
    scim.delete(&format!("/Users/{id}"))
        .await
        .assert_scim_error(404, None);
    // The userName is free again.
    scim.create_user(&clinician("ann@acme.example")).await;
    let list = scim.filter_users("userName eq \"ann@acme.example\"").await;
    assert_eq!(list.body["totalResults"], 1);
}

async fn list_paginates_with_total_results(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            scim.create_user(&clinician(&format!("u{i}@acme.example")))
                .await,
        );
    }
    let page = scim.get("/Users?startIndex=3&count=2").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:ListResponse"
    );
    assert_eq!(page.body["totalResults"], 7);
    assert_eq!(page.body["startIndex"], 3);
    assert_eq!(page.body["itemsPerPage"], 2);
    let got: Vec<&str> = page.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        vec![ids[2].as_str(), ids[3].as_str()],
        "pages follow creation order"
    );

    let all = scim.get("/Users").await;
    assert_eq!(all.body["Resources"].as_array().unwrap().len(), 7);
    let past_end = scim.get("/Users?startIndex=50").await;
    assert_eq!(past_end.body["totalResults"], 7);
    assert_eq!(past_end.body["Resources"], json!([]));
    let zero = scim.get("/Users?count=0").await;
    assert_eq!(zero.body["totalResults"], 7);
    assert_eq!(zero.body["itemsPerPage"], 0);
    // RFC 7644 §3.4.2.4: startIndex < 1 is treated as 1, negative count as 0.
    let clamped = scim.get("/Users?startIndex=-4&count=-1").await;
    assert_eq!(clamped.body["startIndex"], 1);
    assert_eq!(clamped.body["itemsPerPage"], 0);
    scim.get("/Users?count=many")
        .await
        .assert_scim_error(400, Some("invalidValue"));
}

async fn attributes_and_excluded_attributes_project_responses(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let id = scim.create_user(&clinician("ann@acme.example")).await;

    let only = scim
        .get(&format!("/Users/{id}?attributes=userName,name.familyName"))
        .await;
    assert_eq!(
        only.body,
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id,
               "userName": "ann@acme.example", "name": {"familyName": "Lee"}})
    );
    let without = scim
        .get(&format!(
            "/Users/{id}?excludedAttributes=emails,meta,{ENTERPRISE}:department"
        ))
        .await;
    assert!(without.body.get("emails").is_none());
    assert!(without.body.get("meta").is_none());
    assert_eq!(without.body[ENTERPRISE], json!({"employeeNumber": "1001"}));
    assert_eq!(without.body["userName"], "ann@acme.example");

    let listed = scim.get("/Users?attributes=emails.value").await;
    assert_eq!(
        listed.body["Resources"][0],
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": id,
               "emails": [{"value": "ann@acme.example"}]})
    );
}

async fn etags_on_get_and_if_match_on_writes(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let id = scim.create_user(&clinician("ann@acme.example")).await;
    let path = format!("/Users/{id}");
    let not_modified = scim
        .send(
            reqwest::Method::GET,
            &path,
            None,
            &[("If-None-Match", "W/\"1\"")],
        )
        .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    let stale = scim
        .send(
            reqwest::Method::PUT,
            &path,
            Some(&clinician("ann@acme.example")),
            &[("If-Match", "W/\"7\"")],
        )
        .await;
    stale.assert_scim_error(412, None);
    let fresh = scim
        .send(
            reqwest::Method::PUT,
            &path,
            Some(&clinician("ann@acme.example")),
            &[("If-Match", "W/\"1\"")],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert_eq!(fresh.header("etag"), Some("W/\"2\""));
    let modified = scim
        .send(
            reqwest::Method::GET,
            &path,
            None,
            &[("If-None-Match", "W/\"1\"")],
        )
        .await;
    assert_eq!(modified.status, StatusCode::OK);
    let del = scim
        .send(
            reqwest::Method::DELETE,
            &path,
            None,
            &[("If-Match", "W/\"1\"")],
        )
        .await;
    del.assert_scim_error(412, None);
}

async fn changes_are_audited(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let id = scim.create_user(&clinician("ann@acme.example")).await;
    scim.put(&format!("/Users/{id}"), &clinician("ann@acme.example"))
        .await;
    scim.delete(&format!("/Users/{id}")).await;
    let mut conn = app.deps.db.pool().acquire().await.unwrap();
    let n = guestbridge::store::audit::count_for_target(&mut conn, "user", &id)
        .await
        .unwrap();
    assert_eq!(n, 3);
    let actors: Vec<(String, String)> =
        sqlx::query_as("SELECT actor, action FROM audit_log WHERE target_id = $1 ORDER BY id")
            .bind(&id)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    assert_eq!(
        actors,
        vec![
            ("partner:acme".to_string(), "user.created".to_string()),
            ("partner:acme".to_string(), "user.replaced".to_string()),
            ("partner:acme".to_string(), "user.deleted".to_string()),
        ]
    );
    // Append-only: the database refuses to rewrite history.
    assert!(sqlx::query("UPDATE audit_log SET actor = 'x'")
        .execute(&mut *conn)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM audit_log")
        .execute(&mut *conn)
        .await
        .is_err());
}
