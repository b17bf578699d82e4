//! Rules shared across instances on one database: a reload on one reaches the others within
//! seconds, the rule set in force survives a restart, and a reload racing SCIM
//! deactivations through another instance never gives a deactivated person access back.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{read, spawn_peer, spawn_with_rules, test_actor, Backend, Res, TestApp};
use crate::users_crud::ENTERPRISE;

both_backends!(
    a_reload_on_one_instance_reaches_the_others,
    the_rules_in_force_survive_a_restart_and_outrank_new_files,
    a_reload_racing_deactivations_never_restores_access,
    a_group_change_after_a_reload_elsewhere_uses_the_new_rules,
);

const V1: &str = r#"
[[app]]
id = "ehr"
name = "EHR"
description = "Records"
launch_url = "https://ehr.example/"
roles = ["reader", "clinician"]

[[partner]]
slug = "acme"
approval = "auto"

[[rule]]
id = "nurses"
condition = 'title co "Nurse"'
grants = [{ app = "ehr", role = "reader" }]
"#;

fn v2() -> String {
    V1.replace("role = \"reader\"", "role = \"clinician\"")
}

fn nurse(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": user_name,
        "title": "Staff Nurse",
        "emails": [{"value": user_name, "primary": true}],
    })
}

async fn admin_token(app: &TestApp) -> String {
    guestbridge::services::partners::issue_admin_token(&app.deps, &test_actor())
        .await
        .unwrap()
}

async fn admin(app: &TestApp, token: &str, method: reqwest::Method, path: &str) -> Res {
    read(
        app.client
            .request(method, format!("{}/api/v1{path}", app.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn fingerprint(app: &TestApp, token: &str) -> String {
    let res = admin(app, token, reqwest::Method::GET, "/mappings").await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body["fingerprint"].as_str().unwrap().to_string()
}

/// The roles a user's guest holds, and the guest's state.
async fn guest_of(app: &TestApp, user_id: &str) -> Option<(String, Vec<String>)> {
    let pool = app.deps.db.pool();
    let (id, state): (String, String) =
        sqlx::query_as("SELECT id, state FROM guests WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(pool)
            .await
            .unwrap()?;
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT role FROM guest_grants WHERE guest_id = $1 ORDER BY role")
            .bind(&id)
            .fetch_all(pool)
            .await
            .unwrap();
    Some((state, roles))
}

async fn a_reload_on_one_instance_reaches_the_others(backend: Backend) {
    let a = spawn_with_rules(backend, &[("rules.toml", V1)]).await;
    let b = spawn_peer(&a, &[("rules.toml", V1)]).await;
    let token = admin_token(&a).await;
    let (_, acme_b) = b.partner("acme").await;
    let old = fingerprint(&a, &token).await;
    assert_eq!(fingerprint(&b, &token).await, old);

    std::fs::write(a.mappings.join("rules.toml"), v2()).unwrap();
    let started = Instant::now();
    let reload = admin(&a, &token, reqwest::Method::POST, "/mappings/reload").await;
    assert_eq!(reload.status, 200, "{}", reload.body);
    let new = reload.body["fingerprint"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    loop {
        if fingerprint(&b, &token).await == new {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "instance B still has the old rules after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // B's disk still has V1; it decides with the rules in force.
    let bob = acme_b.create_user(&nurse("bob@acme.example")).await;
    let (_, roles) = guest_of(&b, &bob).await.expect("bob is a guest");
    assert_eq!(roles, ["clinician"]);
    let explain = admin(
        &b,
        &token,
        reqwest::Method::GET,
        &format!("/guests/{}/explain", guest_id(&b, &bob).await),
    )
    .await;
    assert_eq!(explain.status, 200, "{}", explain.body);
    assert!(explain.body.to_string().contains("clinician"));
    // The decision records the rules it was made with.
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'grant.added' AND target_id = $1",
    )
    .bind(guest_id(&b, &bob).await)
    .fetch_one(b.deps.db.pool())
    .await
    .unwrap();
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["rules_fingerprint"], new.as_str());
}

async fn guest_id(app: &TestApp, user_id: &str) -> String {
    sqlx::query_scalar("SELECT id FROM guests WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

async fn the_rules_in_force_survive_a_restart_and_outrank_new_files(backend: Backend) {
    let a = spawn_with_rules(backend, &[("rules.toml", V1)]).await;
    let token = admin_token(&a).await;
    std::fs::write(a.mappings.join("rules.toml"), v2()).unwrap();
    let reload = admin(&a, &token, reqwest::Method::POST, "/mappings/reload").await;
    assert_eq!(reload.status, 200, "{}", reload.body);
    let in_force = reload.body["fingerprint"].as_str().unwrap().to_string();
    // A new instance (a restart, or a new pod of a rolling upgrade) with other files on its
    // disk keeps the rules in force until a reload.
    let c = spawn_peer(&a, &[("rules.toml", V1)]).await;
    assert_eq!(fingerprint(&c, &token).await, in_force);
    assert_eq!(fingerprint(&a, &token).await, in_force);
    let (_, acme_c) = c.partner("acme").await;
    let cy = acme_c.create_user(&nurse("cy@acme.example")).await;
    assert_eq!(guest_of(&c, &cy).await.unwrap().1, ["clinician"]);
    // A reload through C publishes C's files, and A follows.
    let reload = admin(&c, &token, reqwest::Method::POST, "/mappings/reload").await;
    assert_eq!(reload.status, 200, "{}", reload.body);
    let v1 = reload.body["fingerprint"].as_str().unwrap().to_string();
    assert_ne!(v1, in_force);
    crate::helpers::eventually("A to follow C's reload", || async {
        fingerprint(&a, &token).await == v1
    })
    .await;
    assert_eq!(guest_of(&a, &cy).await.unwrap().1, ["reader"]);
}

async fn a_reload_racing_deactivations_never_restores_access(backend: Backend) {
    const PEOPLE: usize = 60;
    let a = spawn_with_rules(backend, &[("rules.toml", V1)]).await;
    let b = spawn_peer(&a, &[("rules.toml", V1)]).await;
    let token = admin_token(&a).await;
    let (_, acme_a) = a.partner("acme").await;
    let acme_b = crate::helpers::Scim {
        base: b.address.clone(),
        token: acme_a.token.clone(),
        client: b.client.clone(),
    };
    let mut ids = Vec::new();
    for i in 0..PEOPLE {
        ids.push(
            acme_a
                .create_user(&nurse(&format!("n{i}@acme.example")))
                .await,
        );
    }
    std::fs::write(a.mappings.join("rules.toml"), v2()).unwrap();
    let deactivated: Vec<String> = ids.iter().step_by(2).cloned().collect();
    let reload = {
        let (a, token) = (&a, &token);
        async move { admin(a, token, reqwest::Method::POST, "/mappings/reload").await }
    };
    let deactivations = async {
        // From the end of the scan's order backwards, so they meet the reload midway.
        for id in deactivated.iter().rev() {
            let res = acme_b
                .patch(
                    &format!("/Users/{id}"),
                    &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "path": "active", "value": false}]}),
                )
                .await;
            assert_eq!(res.status, 200, "{}", res.body);
        }
    };
    let (reload, ()) = tokio::join!(reload, deactivations);
    assert_eq!(reload.status, 200, "{}", reload.body);
    assert_eq!(reload.body["people"], PEOPLE as u64);

    for id in &deactivated {
        let (state, _) = guest_of(&a, id).await.unwrap();
        assert!(
            state.starts_with("suspended"),
            "deactivated person {id} has a guest in state {state}"
        );
    }
    // Every guest is what the final rules decide for the final people.
    let diff = admin(&a, &token, reqwest::Method::POST, "/mappings/diff").await;
    assert_eq!(diff.status, 200, "{}", diff.body);
    assert_eq!(diff.body["diff"]["people_changed"], 0, "{}", diff.body);
}

const BY_GROUP_V1: &str = r#"
[[app]]
id = "ehr"
name = "EHR"
description = "Records"
launch_url = "https://ehr.example/"
roles = ["reader", "clinician"]

[[partner]]
slug = "acme"
approval = "auto"

[[rule]]
id = "ward"
condition = 'groups.display eq "Ward 7"'
grants = [{ app = "ehr", role = "reader" }]
"#;

/// An instance that would not notice a new rule set by polling for an hour: only reading
/// the rules in force at decision time (or, on PostgreSQL, the notification) can give it the
/// new ones.
async fn deaf_peer(a: &TestApp) -> TestApp {
    crate::helpers::spawn_peer_with(
        a,
        &[("rules.toml", BY_GROUP_V1)],
        &[("GUESTBRIDGE_RULES_POLL_MS", "3600000")],
    )
    .await
}

async fn a_group_change_after_a_reload_elsewhere_uses_the_new_rules(backend: Backend) {
    let a = spawn_with_rules(backend, &[("rules.toml", BY_GROUP_V1)]).await;
    let b = deaf_peer(&a).await;
    let token = admin_token(&a).await;
    let (_, acme_a) = a.partner("acme").await;
    let acme_b = crate::helpers::Scim {
        base: b.address.clone(),
        token: acme_a.token.clone(),
        client: b.client.clone(),
    };
    let dee = acme_a.create_user(&nurse("dee@acme.example")).await;
    let group = acme_a
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Ward 7"}),
        )
        .await;
    assert_eq!(group.status, 201, "{}", group.body);
    let group_id = group.body["id"].as_str().unwrap().to_string();
    assert!(guest_of(&a, &dee).await.is_none());

    std::fs::write(
        a.mappings.join("rules.toml"),
        BY_GROUP_V1.replace("role = \"reader\"", "role = \"clinician\""),
    )
    .unwrap();
    let reload = admin(&a, &token, reqwest::Method::POST, "/mappings/reload").await;
    assert_eq!(reload.status, 200, "{}", reload.body);
    let new = reload.body["fingerprint"].as_str().unwrap().to_string();

    let added = acme_b
        .patch(
            &format!("/Groups/{group_id}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": dee}]}]}),
        )
        .await;
    assert!(added.status.is_success(), "{} {}", added.status, added.body);
    let (state, roles) = guest_of(&b, &dee).await.expect("dee is a guest");
    assert_eq!(state, "invited");
    assert_eq!(roles, ["clinician"], "B decided with the old rules");
    let guest = admin(
        &b,
        &token,
        reqwest::Method::GET,
        &format!("/guests/{}", guest_id(&b, &dee).await),
    )
    .await;
    assert_eq!(guest.status, 200, "{}", guest.body);
    assert_eq!(
        guest.body["rules_fingerprint"],
        new.as_str(),
        "{}",
        guest.body
    );
}
