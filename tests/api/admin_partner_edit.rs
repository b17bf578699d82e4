//! `PATCH /api/v1/partners/{slug}`: an administrator renames a partner (audited with the old
//! and new name); other roles are refused before anything is written; a policy cannot be set
//! here (it is declared in the rule files) and the answer says where to change it.

use reqwest::Method;
use serde_json::{json, Value};

use crate::admin_client::{assert_error_shape, expect, AdminApi};
use crate::both_backends;
use crate::helpers::{read, spawn_with_rules, test_actor, Backend, Res, TestApp};
use guestbridge::domain::{AdminRole, PartnerSlug};
use guestbridge::services::admin_auth::RoleGrant;
use guestbridge::services::partners;

both_backends!(an_admin_renames_a_partner_and_only_an_admin);

const RULES: &str = r#"
[[app]]
id = "ehr"
name = "EHR"
description = ""
launch_url = "https://ehr.example/"
roles = ["reader"]

[[partner]]
slug = "acme"
max_access_days = 90
"#;

async fn token(app: &TestApp, role: AdminRole, partner: Option<&str>) -> String {
    let grant = RoleGrant {
        role,
        partner: partner.map(|p| PartnerSlug::parse(p).unwrap()),
        sponsor: None,
    };
    let issued = partners::issue_admin_token_with_role(&app.deps, &test_actor(), "t", None, &grant)
        .await
        .unwrap();
    crate::log_scan::register_secret(&issued.secret);
    issued.secret
}

async fn patch(app: &TestApp, token: &str, path: &str, body: &Value) -> Res {
    let res = read(
        app.client
            .request(Method::PATCH, format!("{}/api/v1{path}", app.address))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    if !res.status.is_success() {
        assert_error_shape(&res);
    }
    res
}

/// The details of the `partner.renamed` audit entries, oldest first.
async fn renames(admin: &AdminApi) -> Vec<Value> {
    let res = admin.get("/audit?action=partner.renamed").await;
    expect(&res, 200);
    let mut details: Vec<Value> = res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].clone())
        .collect();
    details.reverse();
    details
}

async fn an_admin_renames_a_partner_and_only_an_admin(backend: Backend) {
    let app = spawn_with_rules(backend, &[("rules.toml", RULES)]).await;
    app.partner("acme").await;
    let admin = AdminApi::new(&app).await;
    let renamed = json!({"name": "  Acme Health Trust "});

    // Refused before anything is written: auditor, partner-admin of acme itself, no token.
    for role in [
        token(&app, AdminRole::Auditor, None).await,
        token(&app, AdminRole::PartnerAdmin, Some("acme")).await,
    ] {
        expect(&patch(&app, &role, "/partners/acme", &renamed).await, 403);
    }
    let res = read(
        app.client
            .patch(format!("{}/partners/acme", admin.base))
            .json(&renamed)
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect(&res, 401);
    assert_eq!(
        admin.get("/partners/acme").await.body["name"],
        "Test Partner"
    );
    assert!(renames(&admin).await.is_empty());

    // The admin: renamed (trimmed), shown at once, audited with both names.
    let res = patch(&app, &admin.token, "/partners/acme", &renamed).await;
    expect(&res, 200);
    assert_eq!(res.body["name"], "Acme Health Trust");
    assert_eq!(res.body["slug"], "acme");
    assert_eq!(res.body["policy"]["max_access_days"], 90, "{}", res.body);
    assert_eq!(
        admin.get("/partners/acme").await.body["name"],
        "Acme Health Trust"
    );
    let audited = renames(&admin).await;
    assert_eq!(
        audited,
        [json!({"slug": "acme", "from": "Test Partner", "to": "Acme Health Trust"})]
    );
    let entry = admin.get("/audit?action=partner.renamed").await;
    assert_eq!(entry.body["items"][0]["target_type"], "partner");
    // The same name again changes nothing and writes no entry.
    expect(
        &patch(&app, &admin.token, "/partners/acme", &renamed).await,
        200,
    );
    assert_eq!(renames(&admin).await.len(), 1);

    // Bad requests change nothing.
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(201)}),
        json!({"name": "line\nbreak"}),
        json!({}),
        json!({"slug": "other"}),
    ] {
        expect(
            &patch(&app, &admin.token, "/partners/acme", &bad).await,
            400,
        );
    }
    let res = patch(
        &app,
        &admin.token,
        "/partners/acme",
        &json!({"name": "Acme", "policy": {"mfa": true}}),
    )
    .await;
    expect(&res, 400);
    assert!(
        res.body["error"]
            .as_str()
            .unwrap()
            .contains("/api/v1/mappings/reload"),
        "{}",
        res.body
    );
    expect(
        &patch(&app, &admin.token, "/partners/nobody", &renamed).await,
        404,
    );
    expect(
        &patch(&app, &admin.token, "/partners/Not A Slug", &renamed).await,
        400,
    );
    assert_eq!(
        admin.get("/partners/acme").await.body["name"],
        "Acme Health Trust"
    );
    assert_eq!(renames(&admin).await.len(), 1);
}
