//! Conformance walk through RFC 7643, RFC 7644 and RFC 9865, a test per section (the name
//! says which). Users CRUD, filters and PATCH have their own files (users_*.rs); this file
//! covers the rest of the protocol: Groups, sorting, paging, search, bulk, ETags, schema
//! characteristics and discovery.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{read, spawn, Backend, Scim};
use crate::users_crud::{clinician, ENTERPRISE};

const GUEST: &str = "urn:guestbridge:params:scim:schemas:extension:guest:1.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

both_backends!(
    rfc7643_2_2_write_only_and_read_only_attributes,
    rfc7643_4_2_groups_members_and_derived_user_groups,
    rfc7643_4_2_group_display_name_is_unique_per_partner,
    rfc7643_4_2_members_must_be_users_of_the_same_partner,
    rfc7644_3_4_2_3_sorting,
    rfc7644_3_4_2_4_index_paging_is_stable,
    rfc9865_cursor_paging,
    rfc7644_3_4_3_search_with_post,
    rfc7644_3_5_2_group_patch_scales_and_answers_204,
    rfc7644_3_7_bulk_with_bulk_id_references,
    rfc7644_3_7_bulk_fail_on_errors_and_limits,
    rfc7644_3_14_group_etags,
    rfc7644_4_discovery_describes_what_is_supported,
    guest_extension_is_stored_and_filterable,
);

fn ops(operations: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": operations})
}

async fn users(scim: &Scim, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            scim.create_user(&clinician(&format!("u{i:02}@acme.example")))
                .await,
        );
    }
    ids
}

async fn rfc7643_2_2_write_only_and_read_only_attributes(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let mut body = clinician("ann@acme.example");
    body["password"] = json!("t1meMa$heen");
    body["groups"] = json!([{"value": "made-up"}]);
    body["meta"] = json!({"resourceType": "User", "created": "2001-01-01T00:00:00Z"});
    let res = scim.post("/Users", &body).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert!(
        res.body.get("password").is_none(),
        "writeOnly is never returned"
    );
    assert!(
        res.body.get("groups").is_none(),
        "readOnly groups are ignored on input"
    );
    assert_ne!(res.body["meta"]["created"], "2001-01-01T00:00:00Z");
    let id = res.body["id"].as_str().unwrap();
    let got = scim
        .get(&format!("/Users/{id}?attributes=password,userName"))
        .await;
    assert!(
        got.body.get("password").is_none(),
        "returned=never even when asked"
    );
    let mut conn = app.deps.db.pool().acquire().await.unwrap();
    let doc: String = sqlx::query_scalar("SELECT doc FROM scim_users WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert!(!doc.contains("t1meMa"), "the password is not stored: {doc}");
}

async fn rfc7643_4_2_groups_members_and_derived_user_groups(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let ids = users(&scim, 3).await;
    let res = scim
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Cardiology",
                    "externalId": "g-1", "members": [{"value": ids[0]}, {"value": ids[1], "display": "ignored"}]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let gid = res.body["id"].as_str().unwrap().to_string();
    assert_eq!(res.body["meta"]["resourceType"], "Group");
    let members: Vec<&str> = res.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(members.len(), 2);
    assert!(members.contains(&ids[0].as_str()) && members.contains(&ids[1].as_str()));
    assert_eq!(res.body["members"][0]["type"], "User");
    assert!(res.body["members"][0]["$ref"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/scim/v2/Users/{}", members[0])));

    let user = scim.get(&format!("/Users/{}", ids[0])).await;
    assert_eq!(
        user.body["groups"],
        json!([{"value": gid, "$ref": format!("{}/scim/v2/Groups/{gid}", app.address), "display": "Cardiology", "type": "direct"}])
    );
    let third = scim.get(&format!("/Users/{}", ids[2])).await;
    assert!(third.body.get("groups").is_none());

    // Filters over memberships, from both sides.
    let by_member = scim
        .get(&format!(
            "/Groups?filter={}",
            crate::helpers::url_encode(&format!("members.value eq \"{}\"", ids[1]))
        ))
        .await;
    assert_eq!(by_member.body["totalResults"], 1);
    let by_group = scim
        .filter_users(&format!("groups.value eq \"{gid}\""))
        .await;
    assert_eq!(by_group.body["totalResults"], 2);
    let by_group_name = scim.filter_users("groups.display eq \"cardiology\"").await;
    assert_eq!(by_group_name.body["totalResults"], 2);

    // Members are not loaded or shown when excluded.
    let listed = scim.get("/Groups?excludedAttributes=members").await;
    assert!(listed.body["Resources"][0].get("members").is_none());
    assert_eq!(listed.body["Resources"][0]["displayName"], "Cardiology");

    // Deleting a user removes it from its groups; deleting a group removes the user's link.
    scim.delete(&format!("/Users/{}", ids[0])).await;
    let g = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(g.body["members"].as_array().unwrap().len(), 1);
    assert_eq!(
        scim.delete(&format!("/Groups/{gid}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(scim
        .get(&format!("/Users/{}", ids[1]))
        .await
        .body
        .get("groups")
        .is_none());
    scim.get(&format!("/Groups/{gid}"))
        .await
        .assert_scim_error(404, None);
}

async fn rfc7643_4_2_group_display_name_is_unique_per_partner(backend: Backend) {
    let app = spawn(backend).await;
    let (_, acme) = app.partner("acme").await;
    let (_, globex) = app.partner("globex").await;
    let first = acme
        .post("/Groups", &json!({"displayName": "Nurses"}))
        .await;
    let gid = first.body["id"].as_str().unwrap();
    let dup = acme
        .post("/Groups", &json!({"displayName": "NURSES"}))
        .await;
    dup.assert_scim_error(409, Some("uniqueness"));
    assert!(
        dup.body["detail"].as_str().unwrap().contains(gid),
        "{}",
        dup.body
    );
    assert_eq!(
        globex
            .post("/Groups", &json!({"displayName": "Nurses"}))
            .await
            .status,
        StatusCode::CREATED
    );
    acme.post("/Groups", &json!({"members": []}))
        .await
        .assert_scim_error(400, Some("invalidValue"));
    globex
        .get(&format!("/Groups/{gid}"))
        .await
        .assert_scim_error(404, None);
}

async fn rfc7643_4_2_members_must_be_users_of_the_same_partner(backend: Backend) {
    let app = spawn(backend).await;
    let (_, acme) = app.partner("acme").await;
    let (_, globex) = app.partner("globex").await;
    let theirs = globex.create_user(&clinician("bob@globex.example")).await;
    let mine = acme.create_user(&clinician("ann@acme.example")).await;
    acme.post(
        "/Groups",
        &json!({"displayName": "G", "members": [{"value": theirs}]}),
    )
    .await
    .assert_scim_error(400, Some("invalidValue"));
    acme.post(
        "/Groups",
        &json!({"displayName": "G", "members": [{"value": "no-such-user"}]}),
    )
    .await
    .assert_scim_error(400, Some("invalidValue"));
    acme.post(
        "/Groups",
        &json!({"displayName": "G", "members": [{"value": mine, "type": "Group"}]}),
    )
    .await
    .assert_scim_error(400, Some("invalidValue"));
    let gid = acme
        .post("/Groups", &json!({"displayName": "G"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    acme.patch(&format!("/Groups/{gid}"), &ops(json!([{"op": "add", "path": "members", "value": [{"value": mine}, {"value": theirs}]}])))
        .await
        .assert_scim_error(400, Some("invalidValue"));
    let g = acme.get(&format!("/Groups/{gid}")).await;
    assert!(
        g.body.get("members").is_none(),
        "nothing half-applied: {}",
        g.body
    );
}

async fn rfc7644_3_4_2_3_sorting(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    for (user, family, emp) in [
        ("c@x", "Lee", "30"),
        ("a@x", "adams", "10"),
        ("b@x", "Zhou", "20"),
        ("d@x", "", ""),
    ] {
        let mut body = json!({"userName": user});
        if !family.is_empty() {
            body["name"] = json!({"familyName": family});
            body[ENTERPRISE] = json!({"employeeNumber": emp});
        }
        scim.create_user(&body).await;
    }
    let names = |res: &crate::helpers::Res| -> Vec<String> {
        res.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["userName"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&scim.get("/Users?sortBy=userName").await),
        ["a@x", "b@x", "c@x", "d@x"]
    );
    assert_eq!(
        names(
            &scim
                .get("/Users?sortBy=userName&sortOrder=descending")
                .await
        ),
        ["d@x", "c@x", "b@x", "a@x"]
    );
    // Case-insensitive attribute sorts case-insensitively; missing values sort last.
    assert_eq!(
        names(&scim.get("/Users?sortBy=name.familyName").await),
        ["a@x", "c@x", "b@x", "d@x"]
    );
    assert_eq!(
        names(
            &scim
                .get("/Users?sortBy=name.familyName&sortOrder=descending")
                .await
        ),
        ["b@x", "c@x", "a@x", "d@x"]
    );
    assert_eq!(
        names(
            &scim
                .get(&format!("/Users?sortBy={ENTERPRISE}:employeeNumber"))
                .await
        ),
        ["a@x", "b@x", "c@x", "d@x"]
    );
    assert_eq!(
        names(
            &scim
                .get("/Users?sortBy=userName&startIndex=2&count=2")
                .await
        ),
        ["b@x", "c@x"]
    );
    scim.get("/Users?sortBy=userName&sortOrder=sideways")
        .await
        .assert_scim_error(400, Some("invalidValue"));
    // An unknown attribute leaves the default order.
    assert_eq!(
        scim.get("/Users?sortBy=shoeSize").await.status,
        StatusCode::OK
    );
}

async fn rfc7644_3_4_2_4_index_paging_is_stable(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let ids = users(&scim, 10).await;
    let mut seen = Vec::new();
    for start in [1, 4, 7, 10] {
        let page = scim
            .get(&format!("/Users?startIndex={start}&count=3"))
            .await;
        assert_eq!(page.body["totalResults"], 10);
        assert!(page.body["totalResults"].is_i64());
        assert_eq!(page.body["startIndex"], start);
        for r in page.body["Resources"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen, ids);
}

async fn rfc9865_cursor_paging(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let ids = users(&scim, 7).await;
    let mut seen = Vec::new();
    let mut url = "/Users?cursor=&count=3".to_string();
    let mut pages = 0;
    loop {
        let page = scim.get(&url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.body["totalResults"], 7);
        assert!(page.body.get("startIndex").is_none());
        for r in page.body["Resources"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_string());
        }
        pages += 1;
        match page.body["nextCursor"].as_str() {
            Some(next) => url = format!("/Users?cursor={next}&count=3"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);
    // Sorted lists page by cursor too.
    let sorted = scim
        .get("/Users?cursor=&count=4&sortBy=userName&sortOrder=descending")
        .await;
    let next = sorted.body["nextCursor"].as_str().unwrap();
    let rest = scim
        .get(&format!(
            "/Users?cursor={next}&count=4&sortBy=userName&sortOrder=descending"
        ))
        .await;
    assert_eq!(rest.body["Resources"].as_array().unwrap().len(), 3);
    assert_eq!(rest.body["Resources"][2]["userName"], "u00@acme.example");
    scim.get("/Users?cursor=bm90LWEtY3Vyc29y")
        .await
        .assert_scim_error(400, Some("invalidCursor"));
}

async fn rfc7644_3_4_3_search_with_post(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    users(&scim, 3).await;
    scim.post("/Groups", &json!({"displayName": "u-group"}))
        .await;
    let res = scim
        .post("/Users/.search", &json!({"schemas": [SEARCH], "filter": "userName sw \"u0\"", "attributes": ["userName"],
                                         "sortBy": "userName", "sortOrder": "descending", "startIndex": 1, "count": 2}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["totalResults"], 3);
    assert_eq!(res.body["Resources"][0]["userName"], "u02@acme.example");
    assert!(res.body["Resources"][0].get("emails").is_none());
    let groups = scim
        .post(
            "/Groups/.search",
            &json!({"schemas": [SEARCH], "filter": "displayName eq \"U-GROUP\""}),
        )
        .await;
    assert_eq!(groups.body["totalResults"], 1);
    // Root search spans resource types: users first, then groups.
    let root = scim
        .post(
            "/.search",
            &json!({"schemas": [SEARCH], "startIndex": 3, "count": 5}),
        )
        .await;
    assert_eq!(root.status, StatusCode::OK, "{}", root.body);
    assert_eq!(root.body["totalResults"], 4);
    let kinds: Vec<&str> = root.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meta"]["resourceType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["User", "Group"]);
    scim.post("/Users/.search", &json!({"filter": "userName pr"}))
        .await
        .assert_scim_error(400, Some("invalidValue"));
    scim.post(
        "/.search",
        &json!({"schemas": [SEARCH], "filter": "userName eq"}),
    )
    .await
    .assert_scim_error(400, Some("invalidFilter"));
}

async fn rfc7644_3_5_2_group_patch_scales_and_answers_204(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let ids = users(&scim, 4).await;
    let gid = scim
        .post("/Groups", &json!({"displayName": "Ward 7"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/Groups/{gid}");
    let add = scim
        .patch(&path, &ops(json!([{"op": "Add", "path": "members", "value": ids.iter().map(|i| json!({"value": i})).collect::<Vec<_>>()}])))
        .await;
    assert_eq!(add.status, StatusCode::NO_CONTENT, "{}", add.body);
    assert_eq!(add.header("etag"), Some("W/\"2\""));
    let again = scim
        .patch(
            &path,
            &ops(json!([{"op": "add", "path": "members", "value": [{"value": ids[0]}]}])),
        )
        .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    let g = scim.get(&path).await;
    assert_eq!(
        g.body["members"].as_array().unwrap().len(),
        4,
        "adding an existing member is a no-op"
    );
    assert_eq!(g.body["meta"]["version"], "W/\"2\"");
    let removed = scim
        .patch(
            &path,
            &ops(json!([
                {"op": "Remove", "path": "members", "value": [{"value": ids[0]}]},
                {"op": "remove", "path": format!("members[value eq \"{}\"]", ids[1])},
                {"op": "replace", "path": "displayName", "value": "Ward Seven"},
            ])),
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    let with_body = scim
        .patch(
            &format!("{path}?attributes=displayName,members"),
            &ops(json!([{"op": "replace", "path": "externalId", "value": "w7"}])),
        )
        .await;
    assert_eq!(with_body.status, StatusCode::OK);
    assert_eq!(with_body.body["displayName"], "Ward Seven");
    assert_eq!(with_body.body["members"].as_array().unwrap().len(), 2);
    // Replace members wholesale, then clear them.
    scim.patch(
        &path,
        &ops(json!([{"op": "replace", "path": "members", "value": [{"value": ids[3]}]}])),
    )
    .await;
    assert_eq!(
        scim.get(&path).await.body["members"],
        json!([{"value": ids[3], "$ref": format!("{}/scim/v2/Users/{}", app.address, ids[3]), "display": "Ann Lee", "type": "User"}])
    );
    scim.patch(&path, &ops(json!([{"op": "remove", "path": "members"}])))
        .await;
    assert!(scim.get(&path).await.body.get("members").is_none());
}

async fn rfc7644_3_7_bulk_with_bulk_id_references(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    // The group refers to a user created later in the same request.
    let res = scim
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "Operations": [
                {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {"displayName": "Bulk Group", "members": [{"value": "bulkId:u1"}]}},
                {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"userName": "bulk1@acme.example"}},
                {"method": "POST", "path": "/Users", "bulkId": "u2", "data": {"userName": "bulk2@acme.example"}},
                {"method": "PATCH", "path": "/Users/bulkId:u2", "data": {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "Porter"}]}},
                {"method": "DELETE", "path": "/Users/does-not-exist"},
            ]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        res.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    );
    let results = res.body["Operations"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    let by_bulk = |id: &str| results.iter().find(|r| r["bulkId"] == id).unwrap().clone();
    assert_eq!(by_bulk("u1")["status"], "201");
    assert_eq!(by_bulk("g1")["status"], "201", "{}", res.body);
    let group_location = by_bulk("g1")["location"].as_str().unwrap().to_string();
    let user_location = by_bulk("u1")["location"].as_str().unwrap().to_string();
    let user_id = user_location.rsplit('/').next().unwrap();
    let group = scim
        .get(&format!(
            "/Groups/{}",
            group_location.rsplit('/').next().unwrap()
        ))
        .await;
    assert_eq!(group.body["members"][0]["value"], user_id);
    let patched = results.iter().find(|r| r["method"] == "PATCH").unwrap();
    assert_eq!(patched["status"], "200");
    let deleted = results.iter().find(|r| r["method"] == "DELETE").unwrap();
    assert_eq!(deleted["status"], "404");
    assert_eq!(
        deleted["response"]["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    let u2 = scim
        .filter_users("userName eq \"bulk2@acme.example\"")
        .await;
    assert_eq!(u2.body["Resources"][0]["title"], "Porter");
}

async fn rfc7644_3_7_bulk_fail_on_errors_and_limits(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let res = scim
        .post(
            "/Bulk",
            &json!({"schemas": [BULK], "failOnErrors": 1, "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "ok@acme.example"}},
                {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"userName": "ok@acme.example"}},
                {"method": "POST", "path": "/Users", "bulkId": "c", "data": {"userName": "never@acme.example"}},
            ]}),
        )
        .await;
    let results = res.body["Operations"].as_array().unwrap();
    assert_eq!(
        results.len(),
        2,
        "processing stops after failOnErrors errors: {}",
        res.body
    );
    assert_eq!(results[1]["status"], "409");
    assert_eq!(results[1]["response"]["scimType"], "uniqueness");
    assert_eq!(
        scim.filter_users("userName eq \"never@acme.example\"")
            .await
            .body["totalResults"],
        0
    );

    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/{i}")}))
        .collect();
    scim.post("/Bulk", &json!({"schemas": [BULK], "Operations": too_many}))
        .await
        .assert_scim_error(413, None);
    let big: Vec<Value> = (0..200)
        .map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"), "data": {"userName": format!("{i}{}", "x".repeat(400))}}))
        .collect();
    scim.post("/Bulk", &json!({"schemas": [BULK], "Operations": big}))
        .await
        .assert_scim_error(413, None);
    scim.post("/Bulk", &json!({"Operations": []}))
        .await
        .assert_scim_error(400, Some("invalidValue"));
    let circular = scim
        .post("/Bulk", &json!({"schemas": [BULK], "Operations": [
            {"method": "POST", "path": "/Groups", "bulkId": "x", "data": {"displayName": "X", "members": [{"value": "bulkId:y"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "y", "data": {"displayName": "Y", "members": [{"value": "bulkId:x"}]}},
        ]}))
        .await;
    assert_eq!(
        circular.body["Operations"][0]["status"], "400",
        "{}",
        circular.body
    );
}

async fn rfc7644_3_14_group_etags(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let created = scim.post("/Groups", &json!({"displayName": "E"})).await;
    let gid = created.body["id"].as_str().unwrap();
    assert_eq!(created.header("etag"), Some("W/\"1\""));
    let path = format!("/Groups/{gid}");
    let nm = scim
        .send(Method::GET, &path, None, &[("If-None-Match", "W/\"1\"")])
        .await;
    assert_eq!(nm.status, StatusCode::NOT_MODIFIED);
    scim.send(
        Method::PATCH,
        &path,
        Some(&ops(
            json!([{"op": "replace", "path": "displayName", "value": "F"}]),
        )),
        &[("If-Match", "W/\"9\"")],
    )
    .await
    .assert_scim_error(412, None);
    let ok = scim
        .send(
            Method::PATCH,
            &path,
            Some(&ops(
                json!([{"op": "replace", "path": "displayName", "value": "F"}]),
            )),
            &[("If-Match", "W/\"1\"")],
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
}

async fn rfc7644_4_discovery_describes_what_is_supported(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let spc = scim.get("/ServiceProviderConfig").await;
    assert_eq!(spc.status, StatusCode::OK);
    assert_eq!(spc.body["patch"]["supported"], true);
    assert_eq!(
        spc.body["filter"],
        json!({"supported": true, "maxResults": 1000})
    );
    assert_eq!(spc.body["etag"]["supported"], true);
    assert_eq!(spc.body["sort"]["supported"], true);
    assert_eq!(
        spc.body["bulk"],
        json!({"supported": true, "maxOperations": 1000, "maxPayloadSize": 65536})
    );
    assert_eq!(spc.body["pagination"]["cursor"], true);
    assert_eq!(
        spc.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );

    let types = scim.get("/ResourceTypes").await;
    assert_eq!(types.body["totalResults"], 2);
    let user_type = scim.get("/ResourceTypes/User").await;
    assert_eq!(user_type.body["endpoint"], "/Users");
    let exts: Vec<&str> = user_type.body["schemaExtensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["schema"].as_str().unwrap())
        .collect();
    assert_eq!(exts, [ENTERPRISE, GUEST]);
    assert_eq!(
        scim.get("/ResourceTypes/Group").await.body["schema"],
        "urn:ietf:params:scim:schemas:core:2.0:Group"
    );
    scim.get("/ResourceTypes/Printer")
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
        [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            ENTERPRISE,
            GUEST,
            "urn:ietf:params:scim:schemas:core:2.0:Group"
        ]
    );
    let user = scim
        .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await;
    let attr = |name: &str| {
        user.body["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(attr("userName")["uniqueness"], "server");
    assert_eq!(attr("userName")["required"], true);
    assert_eq!(attr("password")["returned"], "never");
    assert_eq!(attr("password")["mutability"], "writeOnly");
    assert_eq!(attr("groups")["mutability"], "readOnly");
    assert_eq!(
        attr("emails")["subAttributes"][2]["canonicalValues"],
        json!(["work", "home", "other"])
    );
    let guest = scim.get(&format!("/Schemas/{GUEST}")).await;
    assert_eq!(guest.body["attributes"][1]["name"], "accessEndDate");
    assert_eq!(guest.body["attributes"][1]["type"], "dateTime");

    let anonymous = read(app.get("/scim/v2/ServiceProviderConfig").await).await;
    assert_eq!(anonymous.status, StatusCode::OK, "discovery needs no token");
}

async fn guest_extension_is_stored_and_filterable(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let mut body = clinician("ann@acme.example");
    body["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", GUEST]);
    body[GUEST] = json!({"sponsorEmail": "host@hospital.example", "accessEndDate": "2027-03-31T23:59:59+02:00", "homeOrganization": "Acme Health"});
    let res = scim.post("/Users", &body).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(
        res.body[GUEST]["accessEndDate"], "2027-03-31T21:59:59.000Z",
        "dateTimes are normalised to UTC"
    );
    assert!(res.body["schemas"]
        .as_array()
        .unwrap()
        .contains(&json!(GUEST)));
    let found = scim.filter_users(&format!("{GUEST}:accessEndDate lt \"2027-04-01T00:00:00Z\" and {GUEST}:sponsorEmail eq \"HOST@hospital.example\"")).await;
    assert_eq!(found.body["totalResults"], 1);
    let later = scim
        .filter_users(&format!(
            "{GUEST}:accessEndDate gt \"2027-04-01T00:00:00Z\""
        ))
        .await;
    assert_eq!(later.body["totalResults"], 0);
    let mut bad = clinician("bob@acme.example");
    bad[GUEST] = json!({"accessEndDate": "next spring"});
    scim.post("/Users", &bad)
        .await
        .assert_scim_error(400, Some("invalidValue"));
}
