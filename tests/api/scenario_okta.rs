//! An Okta provisioning cycle, replayed in Okta's SCIM 2.0 wire format: look-up, create with
//! a password, a retried create after a timeout, updates by GET-modify-PUT, deactivation and
//! reactivation, paged import, group push and membership changes, and the empty-array add
//! Okta sends. Requests are sent raw, with Okta's headers (`Authorization: Bearer`,
//! `Content-Type: application/scim+json; charset=utf-8`, `User-Agent: Okta SCIM Client`).

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{read, spawn, url_encode, Backend, Res, Scim};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// The Okta SCIM client for one partner's token.
struct Okta {
    scim: Scim,
}

impl Okta {
    /// One request exactly as Okta sends it; `path` is below `/scim/v2` and may carry a query.
    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Res {
        let mut req = self
            .scim
            .client
            .request(method, format!("{}/scim/v2{path}", self.scim.base))
            .header("Authorization", format!("Bearer {}", self.scim.token))
            .header("User-Agent", "Okta SCIM Client 1.0.0")
            .header("Accept", "application/scim+json");
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/scim+json; charset=utf-8")
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

    async fn put(&self, path: &str, body: &Value) -> Res {
        self.send(Method::PUT, path, Some(body)).await
    }

    async fn patch(&self, path: &str, operations: Value) -> Res {
        let body = json!({"schemas": [PATCH_OP], "Operations": operations});
        self.send(Method::PATCH, path, Some(&body)).await
    }

    /// Okta's look-up: `GET /Users?filter=userName eq "…"&startIndex=1&count=100`.
    async fn find_user(&self, user_name: &str) -> Res {
        let q = url_encode(&format!("userName eq \"{user_name}\""));
        self.get(&format!("/Users?filter={q}&startIndex=1&count=100"))
            .await
    }

    async fn create_user(&self, body: &Value) -> String {
        let res = self.post("/Users", body).await;
        assert_eq!(res.status, StatusCode::CREATED, "create user: {}", res.body);
        res.body["id"]
            .as_str()
            .expect("id in the 201 body")
            .to_string()
    }
}

/// The body Okta sends to create a user.
fn okta_user(user_name: &str, given: &str, family: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": format!("{given} {family}"),
        "locale": "en-US",
        "externalId": format!("00u{}", &uuid::Uuid::new_v4().simple().to_string()[..17]),
        "groups": [],
        "password": "t1meMa$heen",
        "active": true,
    })
}

fn assert_no_password(body: &Value, what: &str) {
    let text = body.to_string();
    assert!(
        !text.contains("password") && !text.contains("t1meMa$heen"),
        "{what}: the password must never be returned: {body}"
    );
}

fn ids_of(list: &Res) -> Vec<String> {
    list.body["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("Resources array expected: {}", list.body))
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

fn member_ids(group: &Value) -> BTreeSet<String> {
    group
        .get("members")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|m| m["value"].as_str().expect("member value").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

both_backends!(okta_user_provisioning_cycle, okta_group_push_cycle);

async fn okta_user_provisioning_cycle(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("okta-partner").await;
    let okta = Okta { scim };
    let user_name = "test.user@okta.local";

    // 1. Does the user exist? An empty ListResponse with an integer totalResults.
    let res = okta.find_user(user_name).await;
    assert_eq!(res.status, StatusCode::OK, "step 1: {}", res.body);
    assert_eq!(
        res.body["schemas"],
        json!([LIST_RESPONSE]),
        "step 1: {}",
        res.body
    );
    assert!(
        res.body["totalResults"].is_u64() && res.body["totalResults"] == 0,
        "step 1: totalResults must be the integer 0: {}",
        res.body
    );
    assert_eq!(res.body["startIndex"], 1, "step 1: {}", res.body);
    assert_eq!(res.body["itemsPerPage"], 0, "step 1: {}", res.body);

    // 2. Create, with the password Okta sends; it is never returned.
    let body = okta_user(user_name, "Test", "User");
    let res = okta.post("/Users", &body).await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "step 2: create: {}",
        res.body
    );
    let id = res.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("step 2: the 201 body needs an id: {}", res.body))
        .to_string();
    assert_eq!(res.body["userName"], user_name, "step 2: {}", res.body);
    assert_eq!(res.body["locale"], "en-US", "step 2: {}", res.body);
    assert_eq!(
        res.body["externalId"], body["externalId"],
        "step 2: {}",
        res.body
    );
    assert_eq!(res.body["active"], true, "step 2: {}", res.body);
    assert_no_password(&res.body, "step 2: POST response");
    let user = format!("/Users/{id}");
    let got = okta.get(&user).await;
    assert_eq!(got.status, StatusCode::OK, "step 2: GET: {}", got.body);
    assert_no_password(&got.body, "step 2: GET response");
    let found = okta.find_user(user_name).await;
    assert_eq!(
        found.body["totalResults"], 1,
        "step 2: look-up: {}",
        found.body
    );
    assert_eq!(
        found.body["Resources"][0]["id"],
        id.as_str(),
        "step 2: {}",
        found.body
    );
    assert_no_password(&found.body, "step 2: list response");

    // 3. The same create retried after a timeout: 409 uniqueness naming the existing id.
    let res = okta.post("/Users", &body).await;
    res.assert_scim_error(409, Some("uniqueness"));
    assert!(
        res.body["detail"].as_str().is_some_and(|d| d.contains(&id)),
        "step 3: detail must name the existing id {id}: {}",
        res.body
    );
    let all = okta.get("/Users?startIndex=1&count=100").await;
    assert_eq!(
        all.body["totalResults"], 1,
        "step 3: still one user: {}",
        all.body
    );
    assert_eq!(ids_of(&all), vec![id.clone()], "step 3: {}", all.body);

    // 4. Update the Okta way: GET, modify, PUT everything back (id, schemas, meta included).
    let mut current = okta.get(&user).await.body;
    current["name"]["familyName"] = json!("User-Renamed");
    let res = okta.put(&user, &current).await;
    assert_eq!(res.status, StatusCode::OK, "step 4: PUT: {}", res.body);
    assert_eq!(
        res.body["name"]["familyName"], "User-Renamed",
        "step 4: {}",
        res.body
    );
    assert_no_password(&res.body, "step 4: PUT response");
    let got = okta.get(&user).await;
    assert_eq!(
        got.body["name"]["familyName"], "User-Renamed",
        "step 4: {}",
        got.body
    );
    assert_eq!(
        got.body["name"]["givenName"], "Test",
        "step 4: {}",
        got.body
    );
    assert_eq!(got.body["emails"], body["emails"], "step 4: {}", got.body);

    // Deactivation by PUT with active false.
    let mut current = got.body.clone();
    current["active"] = json!(false);
    let res = okta.put(&user, &current).await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "step 4: deactivate: {}",
        res.body
    );
    assert_eq!(res.body["active"], false, "step 4: {}", res.body);
    let got = okta.get(&user).await;
    assert_eq!(got.body["active"], false, "step 4: {}", got.body);
    assert_eq!(
        got.body["name"]["familyName"], "User-Renamed",
        "step 4: {}",
        got.body
    );

    // Reactivation by a path-less PATCH with a real boolean and a lower-case op.
    let res = okta
        .patch(&user, json!([{"op": "replace", "value": {"active": true}}]))
        .await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "step 4: reactivate: {}",
        res.body
    );
    assert_eq!(res.body["active"], true, "step 4: {}", res.body);
    let got = okta.get(&user).await;
    assert_eq!(got.body["active"], true, "step 4: {}", got.body);

    // 5. Paged import: 8 users in pages of 3, none twice, none missing, totals stable.
    let mut expected = vec![id.clone()];
    for i in 0..7 {
        expected.push(
            okta.create_user(&okta_user(
                &format!("user{i}@okta.local"),
                "User",
                &format!("N{i}"),
            ))
            .await,
        );
    }
    let mut seen: Vec<String> = Vec::new();
    for (start, per_page) in [(1, 3), (4, 3), (7, 2)] {
        let page = okta
            .get(&format!("/Users?startIndex={start}&count=3"))
            .await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "step 5: page {start}: {}",
            page.body
        );
        assert!(
            page.body["totalResults"].is_u64() && page.body["totalResults"] == 8,
            "step 5: page {start}: totalResults must be the integer 8: {}",
            page.body
        );
        assert_eq!(
            page.body["startIndex"], start,
            "step 5: page {start}: {}",
            page.body
        );
        assert_eq!(
            page.body["itemsPerPage"], per_page,
            "step 5: page {start}: {}",
            page.body
        );
        let ids = ids_of(&page);
        assert_eq!(ids.len(), per_page, "step 5: page {start}: {}", page.body);
        seen.extend(ids);
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "step 5: a user appeared twice: {seen:?}"
    );
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    expected.sort();
    assert_eq!(sorted_seen, expected, "step 5: every user exactly once");

    // 7. An add of an empty array changes nothing.
    let before = okta.get(&user).await.body;
    let res = okta
        .patch(&user, json!([{"op": "add", "path": "emails", "value": []}]))
        .await;
    assert_eq!(res.status, StatusCode::OK, "step 7: {}", res.body);
    assert_eq!(res.body["emails"], before["emails"], "step 7: {}", res.body);
    let after = okta.get(&user).await.body;
    assert_eq!(
        after, before,
        "step 7: nothing changes, not even meta.version"
    );
}

async fn okta_group_push_cycle(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("okta-partner").await;
    let okta = Okta { scim };
    let id1 = okta
        .create_user(&okta_user("ann@okta.local", "Ann", "Lee"))
        .await;
    let id2 = okta
        .create_user(&okta_user("bob@okta.local", "Bob", "Ray"))
        .await;
    let id3 = okta
        .create_user(&okta_user("cat@okta.local", "Cat", "Yu"))
        .await;

    // Okta's first contact with groups.
    let res = okta.get("/Groups?startIndex=1&count=100").await;
    assert_eq!(res.status, StatusCode::OK, "step 6: {}", res.body);
    assert_eq!(res.body["totalResults"], 0, "step 6: {}", res.body);

    // 6. Push a group with a member.
    let res = okta
        .post(
            "/Groups",
            &json!({
                "schemas": [GROUP_SCHEMA],
                "displayName": "Test SCIMv2",
                "members": [{"value": id1, "display": "ann@okta.local"}],
            }),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "step 6: create group: {}",
        res.body
    );
    let gid = res.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("step 6: the 201 body needs an id: {}", res.body))
        .to_string();
    assert_eq!(member_ids(&res.body), set(&[&id1]), "step 6: {}", res.body);
    let group = format!("/Groups/{gid}");

    // Rename: a path-less replace that echoes the group's own id.
    let res = okta
        .patch(
            &group,
            json!([{"op": "replace", "value": {"id": gid, "displayName": "Renamed"}}]),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::NO_CONTENT,
        "step 6: rename: {}",
        res.body
    );
    let got = okta.get(&group).await;
    assert_eq!(got.body["displayName"], "Renamed", "step 6: {}", got.body);
    assert_eq!(
        member_ids(&got.body),
        set(&[&id1]),
        "step 6: rename keeps members: {}",
        got.body
    );

    // Add a member.
    let res = okta
        .patch(
            &group,
            json!([{"op": "add", "path": "members", "value": [{"value": id2, "display": "bob@okta.local"}]}]),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::NO_CONTENT,
        "step 6: add member: {}",
        res.body
    );
    let got = okta.get(&group).await;
    assert_eq!(
        member_ids(&got.body),
        set(&[&id1, &id2]),
        "step 6: {}",
        got.body
    );

    // Remove it again by a value filter.
    let res = okta
        .patch(
            &group,
            json!([{"op": "remove", "path": format!("members[value eq \"{id2}\"]")}]),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::NO_CONTENT,
        "step 6: remove member: {}",
        res.body
    );
    let got = okta.get(&group).await;
    assert_eq!(member_ids(&got.body), set(&[&id1]), "step 6: {}", got.body);

    // PUT with the full member list replaces membership.
    let res = okta
        .put(
            &group,
            &json!({
                "schemas": [GROUP_SCHEMA],
                "id": gid,
                "displayName": "Renamed",
                "members": [
                    {"value": id2, "display": "bob@okta.local"},
                    {"value": id3, "display": "cat@okta.local"},
                ],
            }),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "step 6: PUT group: {}",
        res.body
    );
    assert_eq!(
        member_ids(&res.body),
        set(&[&id2, &id3]),
        "step 6: {}",
        res.body
    );
    let got = okta.get(&group).await;
    assert_eq!(got.body["displayName"], "Renamed", "step 6: {}", got.body);
    assert_eq!(
        member_ids(&got.body),
        set(&[&id2, &id3]),
        "step 6: {}",
        got.body
    );
    let ann = okta.get(&format!("/Users/{id1}")).await;
    assert!(
        ann.body.get("groups").is_none_or(|g| g == &json!([])),
        "step 6: a user dropped by the PUT has no groups: {}",
        ann.body
    );
    let bob = okta.get(&format!("/Users/{id2}")).await;
    assert_eq!(
        bob.body["groups"][0]["value"],
        gid.as_str(),
        "step 6: {}",
        bob.body
    );
    assert_eq!(
        bob.body["groups"][0]["display"], "Renamed",
        "step 6: {}",
        bob.body
    );
}
