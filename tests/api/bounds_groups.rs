//! A page of groups reads its members in one statement (`store::groups::members_of_groups`),
//! not one per group: every group of a page of 100 (listed, filtered, paged) has exactly its
//! own members. The statement count has no hook to observe it; the figure is in
//! docs/performance.md.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{url_encode, Backend, Scim};

const GROUPS: usize = 100;

both_backends!(a_page_of_groups_reads_members_in_one_statement);

fn members_by_group(list: &Value) -> BTreeMap<String, Vec<String>> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let mut ids: Vec<String> = g["members"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .map(|m| m["value"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            ids.sort();
            (g["id"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

async fn a_page_of_groups_reads_members_in_one_statement(backend: Backend) {
    let app = crate::helpers::spawn(backend).await;
    let (_, scim): (_, Scim) = app.partner("acme").await;
    let mut users = Vec::new();
    for i in 0..10 {
        users.push(
            scim.create_user(&json!({"userName": format!("u{i}@acme.example")}))
                .await,
        );
    }
    let mut expected = BTreeMap::new();
    for g in 0..GROUPS {
        // Group g has members g mod 10 .. (g mod 4 of them), so groups differ and some are empty.
        let mut ids: Vec<String> = (0..g % 4).map(|k| users[(g + k) % 10].clone()).collect();
        let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
        let res = scim
            .post(
                "/Groups",
                &json!({"displayName": format!("g{g:03}"), "members": members}),
            )
            .await;
        assert_eq!(res.status, 201, "{}", res.body);
        ids.sort();
        expected.insert(res.body["id"].as_str().unwrap().to_string(), ids);
    }

    let started = Instant::now();
    let page = scim.get(&format!("/Groups?count={GROUPS}")).await;
    eprintln!(
        "GET /Groups?count={GROUPS} with members: {:?}",
        started.elapsed()
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(members_by_group(&page.body), expected);

    // Filtered and paged: the second half of the g0xx groups.
    let filter = url_encode("displayName sw \"g0\"");
    let second = scim
        .get(&format!("/Groups?filter={filter}&startIndex=51&count=50"))
        .await;
    let got = members_by_group(&second.body);
    assert_eq!(got.len(), 50, "{}", second.body);
    for (id, members) in &got {
        assert_eq!(Some(members), expected.get(id), "group {id}");
    }
    // Without members in the projection, none are read or shown.
    let bare = scim.get("/Groups?count=5&excludedAttributes=members").await;
    assert!(bare.body["Resources"][0].get("members").is_none());
}
