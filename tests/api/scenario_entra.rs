//! A Microsoft Entra ID provisioning cycle, replayed in Entra's wire format: test connection,
//! look-up before create, create, look-up, PATCH with Entra's operation shapes, soft delete,
//! group create and membership changes, hard delete. Requests are sent raw, as Entra sends
//! them: `Content-Type: application/json`, `Authorization: Bearer`, filters encoded with `+`
//! for spaces, capitalised PATCH operations, string booleans, `"$ref": null` in members.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{read, spawn, url_encode, Backend, Res, Scim};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The second schema URN Entra ID puts on every group it creates (Microsoft's "Create Group"
/// example in "Develop and plan provisioning for a SCIM endpoint").
const ADSCIM_GROUP: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

/// The Entra ID provisioning client for one partner's token.
struct Entra {
    scim: Scim,
}

impl Entra {
    /// One request exactly as Entra sends it; `path` is below `/scim/v2` and may carry a query.
    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Res {
        let mut req = self
            .scim
            .client
            .request(method, format!("{}/scim/v2{path}", self.scim.base))
            .header("Authorization", format!("Bearer {}", self.scim.token));
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        read(req.send().await.expect("request")).await
    }

    async fn get(&self, path: &str) -> Res {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Res {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, operations: Value) -> Res {
        let body = json!({"schemas": [PATCH_OP], "Operations": operations});
        self.send(Method::PATCH, path, Some(&body)).await
    }

    async fn delete(&self, path: &str) -> Res {
        self.send(Method::DELETE, path, None).await
    }

    /// `GET /{resource}?filter=…` with the filter form-encoded the way Entra encodes it.
    async fn filter(&self, resource: &str, filter: &str, extra: &str) -> Res {
        let q = url_encode(filter).replace("%20", "+");
        self.get(&format!("/{resource}?{extra}filter={q}")).await
    }

    /// Create a user with Entra's body and return its id.
    async fn create_user(&self, body: &Value) -> String {
        let res = self.post("/Users", body).await;
        assert_eq!(res.status, StatusCode::CREATED, "create user: {}", res.body);
        res.body["id"]
            .as_str()
            .expect("id in the 201 body")
            .to_string()
    }
}

/// The body Entra ID sends to create a user (schemas core + enterprise, `meta` with only
/// `resourceType`, empty `roles`, manager as a complex value).
fn entra_user(user_name: &str, external_id: &str, manager: Option<&str>) -> Value {
    let mut enterprise = json!({
        "employeeNumber": "70012",
        "department": "Cardiology",
        "organization": "Partner Health",
        "costCenter": "CC-310",
    });
    if let Some(m) = manager {
        enterprise["manager"] = json!({"value": m});
    }
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "displayName": "Jane Young",
        "emails": [{"primary": true, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Jane Young", "familyName": "Young", "givenName": "Jane"},
        "roles": [],
        ENTERPRISE: enterprise,
    })
}

/// The body Entra ID sends to create a group.
fn entra_group(display_name: &str) -> Value {
    json!({
        "schemas": [GROUP_SCHEMA, ADSCIM_GROUP],
        "externalId": uuid::Uuid::new_v4().to_string(),
        "displayName": display_name,
        "meta": {"resourceType": "Group"},
        "members": [],
    })
}

fn assert_empty_list(res: &Res, what: &str) {
    assert_eq!(res.status, StatusCode::OK, "{what}: {}", res.body);
    assert_eq!(
        res.body["schemas"],
        json!([LIST_RESPONSE]),
        "{what}: {}",
        res.body
    );
    assert_eq!(res.body["totalResults"], json!(0), "{what}: {}", res.body);
    assert!(
        res.body["totalResults"].is_u64(),
        "{what}: totalResults must be an integer: {}",
        res.body
    );
    let resources = res.body.get("Resources").and_then(Value::as_array);
    assert!(
        resources.is_none_or(|r| r.is_empty()),
        "{what}: no resources expected: {}",
        res.body
    );
}

/// The single resource of a ListResponse.
fn only_resource<'a>(res: &'a Res, what: &str) -> &'a Value {
    assert_eq!(res.status, StatusCode::OK, "{what}: {}", res.body);
    assert_eq!(res.body["totalResults"], json!(1), "{what}: {}", res.body);
    &res.body["Resources"][0]
}

fn member_ids(group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group
        .get("members")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|m| m["value"].as_str().expect("member value").to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

both_backends!(
    entra_user_provisioning_cycle,
    entra_matches_users_on_the_work_email,
    entra_group_provisioning_cycle,
    entra_group_members_must_be_the_partners_own_users,
);

async fn entra_user_provisioning_cycle(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("contoso").await;
    let entra = Entra { scim };

    // 1. "Test connection": a random userName and a random id are simply not there.
    let probe = uuid::Uuid::new_v4().to_string();
    let res = entra
        .filter("Users", &format!("userName eq \"{probe}\""), "")
        .await;
    assert_empty_list(&res, "step 1: test connection by userName");
    let res = entra
        .filter("Users", &format!("id eq \"{probe}\""), "")
        .await;
    assert_empty_list(&res, "step 1: test connection by id");

    // 2. Look-up before create, quoted and unquoted (Entra sends both forms).
    let res = entra.filter("Users", "externalId eq \"jyoung\"", "").await;
    assert_empty_list(&res, "step 2: externalId look-up (quoted)");
    let res = entra.filter("Users", "externalId eq jyoung", "").await;
    assert_empty_list(&res, "step 2: externalId look-up (unquoted)");

    // 3. Create, with a manager who is already provisioned.
    let manager = entra
        .create_user(&entra_user("mchen@partner.example", "mchen", None))
        .await;
    let new_manager = entra
        .create_user(&entra_user("pkumar@partner.example", "pkumar", None))
        .await;
    let res = entra
        .post(
            "/Users",
            &entra_user("jyoung@partner.example", "jyoung", Some(&manager)),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "step 3: create: {}",
        res.body
    );
    let id = res.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("step 3: the 201 body needs an id: {}", res.body))
        .to_string();
    assert_eq!(
        res.body["userName"], "jyoung@partner.example",
        "step 3: {}",
        res.body
    );
    assert_eq!(res.body["externalId"], "jyoung", "step 3: {}", res.body);
    assert_eq!(res.body["active"], true, "step 3: {}", res.body);
    assert_eq!(
        res.body[ENTERPRISE]["department"], "Cardiology",
        "step 3: {}",
        res.body
    );
    assert_eq!(
        res.body[ENTERPRISE]["manager"]["value"],
        manager.as_str(),
        "step 3: {}",
        res.body
    );
    assert_eq!(
        res.body["meta"]["resourceType"], "User",
        "step 3: {}",
        res.body
    );
    let user = format!("/Users/{id}");

    // 4. Look-up again: found, same id; the unquoted externalId form finds it too.
    let res = entra
        .filter("Users", "userName eq \"jyoung@partner.example\"", "")
        .await;
    assert_eq!(
        only_resource(&res, "step 4: userName look-up")["id"],
        id.as_str()
    );
    let res = entra.filter("Users", "externalId eq jyoung", "").await;
    assert_eq!(
        only_resource(&res, "step 4: externalId look-up")["id"],
        id.as_str()
    );

    // 5. Update with Entra's operation shapes.
    let res = entra
        .patch(
            &user,
            json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "jane.young@partner.example"},
                {"op": "Add", "path": "title", "value": "Nurse"},
                {"op": "Replace", "value": {"name.givenName": "Jo", "displayName": "Jo Young"}},
                {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Oncology"},
                {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": new_manager},
            ]),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "step 5: PATCH: {}", res.body);
    let got = entra.get(&user).await;
    assert_eq!(got.status, StatusCode::OK, "step 5: GET: {}", got.body);
    let b = &got.body;
    assert_eq!(
        b["emails"],
        json!([{"primary": true, "type": "work", "value": "jane.young@partner.example"}]),
        "step 5: emails: {b}"
    );
    assert_eq!(b["title"], "Nurse", "step 5: title: {b}");
    assert_eq!(b["name"]["givenName"], "Jo", "step 5: name.givenName: {b}");
    assert_eq!(
        b["name"]["familyName"], "Young",
        "step 5: name.familyName kept: {b}"
    );
    assert_eq!(
        b["name"]["formatted"], "Jane Young",
        "step 5: name.formatted kept: {b}"
    );
    assert_eq!(b["displayName"], "Jo Young", "step 5: displayName: {b}");
    assert_eq!(
        b[ENTERPRISE]["department"], "Oncology",
        "step 5: department: {b}"
    );
    assert_eq!(
        b[ENTERPRISE]["employeeNumber"], "70012",
        "step 5: employeeNumber kept: {b}"
    );
    assert_eq!(
        b[ENTERPRISE]["manager"]["value"],
        new_manager.as_str(),
        "step 5: manager: {b}"
    );
    assert_eq!(
        got.body, res.body,
        "step 5: the PATCH response is the stored user"
    );
    // 6. Soft delete with a string boolean: the user stays readable and is found as inactive.
    let res = entra
        .patch(
            &user,
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "step 6: disable: {}", res.body);
    assert_eq!(res.body["active"], false, "step 6: {}", res.body);
    let got = entra.get(&user).await;
    assert_eq!(
        got.status,
        StatusCode::OK,
        "step 6: GET after disable: {}",
        got.body
    );
    assert_eq!(got.body["active"], false, "step 6: {}", got.body);
    let res = entra.filter("Users", "active eq false", "").await;
    assert_eq!(
        only_resource(&res, "step 6: active eq false")["id"],
        id.as_str()
    );

    // 8. Hard delete.
    let res = entra.delete(&user).await;
    assert_eq!(
        res.status,
        StatusCode::NO_CONTENT,
        "step 8: DELETE: {}",
        res.body
    );
    let res = entra.get(&user).await;
    res.assert_scim_error(404, None);
    let res = entra
        .filter("Users", "userName eq \"jyoung@partner.example\"", "")
        .await;
    assert_empty_list(&res, "step 8: look-up after delete");
}

/// Microsoft: "Support filtered GET requests for every attribute configured as a matching
/// property … if `emails[type eq "work"].value` is a matching property, your endpoint must
/// handle this request: `GET /scim/v2/Users?filter=emails[type eq "work"].value eq "…"`".
async fn entra_matches_users_on_the_work_email(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("contoso").await;
    let entra = Entra { scim };
    let res = entra
        .filter(
            "Users",
            "emails[type eq \"work\"].value eq \"jyoung@partner.example\"",
            "",
        )
        .await;
    assert_empty_list(&res, "work email look-up before create");
    let id = entra
        .create_user(&entra_user("jyoung@partner.example", "jyoung", None))
        .await;
    let other = entra
        .create_user(&entra_user("mchen@partner.example", "mchen", None))
        .await;
    let res = entra
        .filter(
            "Users",
            "emails[type eq \"work\"].value eq \"jyoung@partner.example\"",
            "",
        )
        .await;
    assert_eq!(only_resource(&res, "work email look-up")["id"], id.as_str());

    // After an Entra email change the new address matches and the old one does not.
    let res = entra
        .patch(
            &format!("/Users/{other}"),
            json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "m.chen@partner.example"}]),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "email change: {}", res.body);
    let res = entra
        .filter(
            "Users",
            "emails[type eq \"work\"].value eq \"m.chen@partner.example\"",
            "",
        )
        .await;
    assert_eq!(only_resource(&res, "new work email")["id"], other.as_str());
    let res = entra
        .filter(
            "Users",
            "emails[type eq \"work\"].value eq \"mchen@partner.example\"",
            "",
        )
        .await;
    assert_empty_list(&res, "old work email");
}

async fn entra_group_provisioning_cycle(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("contoso").await;
    let entra = Entra { scim };
    let id1 = entra
        .create_user(&entra_user("jyoung@partner.example", "jyoung", None))
        .await;
    let id2 = entra
        .create_user(&entra_user("mchen@partner.example", "mchen", None))
        .await;

    // 7. Look-up by displayName (with members excluded, as Entra asks), then create.
    let res = entra
        .filter(
            "Groups",
            "displayName eq \"Cardiology\"",
            "excludedAttributes=members&",
        )
        .await;
    assert_empty_list(&res, "step 7: group look-up before create");
    let res = entra.post("/Groups", &entra_group("Cardiology")).await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "step 7: create group with Entra's schemas [core, ADSCIM Group]: {}",
        res.body
    );
    let gid = res.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("step 7: the 201 body needs an id: {}", res.body))
        .to_string();
    assert_eq!(
        res.body["displayName"], "Cardiology",
        "step 7: {}",
        res.body
    );
    assert!(member_ids(&res.body).is_empty(), "step 7: {}", res.body);
    let group = format!("/Groups/{gid}");
    let res = entra
        .filter(
            "Groups",
            "displayName eq \"Cardiology\"",
            "excludedAttributes=members&",
        )
        .await;
    assert_eq!(
        only_resource(&res, "step 7: group look-up after create")["id"],
        gid.as_str()
    );

    // Several members in one request, answered with 204 No Content.
    let res = entra
        .patch(
            &group,
            json!([{"op": "Add", "path": "members", "value": [
                {"$ref": null, "value": id1},
                {"$ref": null, "value": id2},
            ]}]),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::NO_CONTENT,
        "step 7: add members: {}",
        res.body
    );
    assert_eq!(res.body, Value::Null, "step 7: 204 has no body");
    let got = entra.get(&group).await;
    assert_eq!(
        got.status,
        StatusCode::OK,
        "step 7: GET group: {}",
        got.body
    );
    let mut both = vec![id1.clone(), id2.clone()];
    both.sort();
    assert_eq!(
        member_ids(&got.body),
        both,
        "step 7: both members: {}",
        got.body
    );
    let member = got.body["members"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["value"] == id1.as_str()))
        .unwrap_or_else(|| panic!("step 7: member {id1}: {}", got.body));
    assert_eq!(
        member["display"], "Jane Young",
        "step 7: member display: {}",
        got.body
    );
    let got = entra.get(&format!("/Users/{id1}")).await;
    let groups = got.body["groups"].as_array().cloned().unwrap_or_default();
    assert!(
        groups
            .iter()
            .any(|g| g["value"] == gid.as_str() && g["display"] == "Cardiology"),
        "step 7: the user's groups name {gid}: {}",
        got.body
    );

    // Removal by a value array (no filter in the path).
    let res = entra
        .patch(
            &group,
            json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": id1}]}]),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::NO_CONTENT,
        "step 7: remove by value: {}",
        res.body
    );
    let got = entra.get(&group).await;
    assert_eq!(
        member_ids(&got.body),
        vec![id2.clone()],
        "step 7: {}",
        got.body
    );
    let got = entra.get(&format!("/Users/{id1}")).await;
    assert!(
        got.body.get("groups").is_none_or(|g| g == &json!([])),
        "step 7: a removed member has no groups: {}",
        got.body
    );

    // Removal by a value filter in the path.
    let res = entra
        .patch(
            &group,
            json!([{"op": "Remove", "path": format!("members[value eq \"{id2}\"]")}]),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::NO_CONTENT,
        "step 7: remove by filter: {}",
        res.body
    );
    let got = entra.get(&group).await;
    assert_eq!(got.status, StatusCode::OK, "step 7: {}", got.body);
    assert!(
        member_ids(&got.body).is_empty(),
        "step 7: group empty: {}",
        got.body
    );

    // Re-add one so that excludedAttributes=members has something to leave out.
    let res = entra
        .patch(
            &group,
            json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": id1}]}]),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::NO_CONTENT,
        "step 7: re-add: {}",
        res.body
    );
    let res = entra.get("/Groups?excludedAttributes=members").await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "step 7: excludedAttributes: {}",
        res.body
    );
    assert_eq!(res.body["totalResults"], 1, "step 7: {}", res.body);
    let listed = &res.body["Resources"][0];
    assert_eq!(listed["id"], gid.as_str(), "step 7: {}", res.body);
    assert_eq!(listed["displayName"], "Cardiology", "step 7: {}", res.body);
    assert!(
        listed.get("members").is_none(),
        "step 7: excludedAttributes=members leaves no members key: {}",
        res.body
    );

    // 8. Hard delete of the group, then of a (former) member.
    let res = entra.delete(&group).await;
    assert_eq!(
        res.status,
        StatusCode::NO_CONTENT,
        "step 8: DELETE group: {}",
        res.body
    );
    entra.get(&group).await.assert_scim_error(404, None);
    let res = entra.delete(&format!("/Users/{id1}")).await;
    assert_eq!(
        res.status,
        StatusCode::NO_CONTENT,
        "step 8: DELETE user: {}",
        res.body
    );
    entra
        .get(&format!("/Users/{id1}"))
        .await
        .assert_scim_error(404, None);
}

async fn entra_group_members_must_be_the_partners_own_users(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("contoso").await;
    let (_, other) = app.partner("fabrikam").await;
    let entra = Entra { scim };
    let foreign = Entra { scim: other }
        .create_user(&entra_user("jyoung@fabrikam.example", "jyoung", None))
        .await;
    let own = entra
        .create_user(&entra_user("jyoung@partner.example", "jyoung", None))
        .await;

    // On create…
    let mut body = entra_group("Cardiology");
    body["members"] = json!([{"value": foreign}]);
    let res = entra.post("/Groups", &body).await;
    res.assert_scim_error(400, Some("invalidValue"));
    assert!(
        res.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&foreign)),
        "the error names the foreign member {foreign}: {}",
        res.body
    );
    let res = entra.get("/Groups").await;
    assert_eq!(res.body["totalResults"], 0, "nothing created: {}", res.body);

    // …and on PATCH, where the whole request is refused.
    let res = entra.post("/Groups", &entra_group("Cardiology")).await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "create group: {}",
        res.body
    );
    let group = format!("/Groups/{}", res.body["id"].as_str().expect("id"));
    let res = entra
        .patch(
            &group,
            json!([{"op": "Add", "path": "members", "value": [
                {"$ref": null, "value": own},
                {"$ref": null, "value": foreign},
            ]}]),
        )
        .await;
    res.assert_scim_error(400, Some("invalidValue"));
    assert!(
        res.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&foreign)),
        "the error names the foreign member {foreign}: {}",
        res.body
    );
    let got = entra.get(&group).await;
    assert!(
        member_ids(&got.body).is_empty(),
        "no member added: {}",
        got.body
    );
}
