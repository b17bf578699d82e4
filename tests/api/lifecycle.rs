//! Mapping rules and the guest lifecycle end to end: SCIM writes drive guest state and
//! grants; the admin API lists, explains, approves, diffs and reloads.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{read, spawn_with_rules, test_actor, Backend, Res, TestApp};
use crate::users_crud::ENTERPRISE;

const APPS: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = "Shared health record"
launch_url = "https://ehr.example/launch"
roles = ["reader", "clinician"]

[[app]]
id = "scheduling"
name = "Shift scheduling"
description = "Rosters"
launch_url = "https://shifts.example/"
roles = ["viewer"]
"#;

const RULES: &str = r#"
[[partner]]
slug = "acme"
approval = "auto"
max_access_days = 180

[[partner]]
slug = "globex"
approval = "admin"

[[rule]]
id = "cardiology-nurses"
condition = 'department eq "Cardiology" and title co "Nurse"'
grants = [{ app = "ehr-viewer", role = "reader" }]
access_days = 90
sponsor = "dr.grey@hospital.example"

[[rule]]
id = "everyone-schedules"
partners = ["acme", "globex"]
grants = [{ app = "scheduling", role = "viewer" }]
access_days = 365

[[rule]]
id = "icu-clinicians"
groups = ["ICU"]
grants = [{ app = "ehr-viewer", role = "clinician" }]
mfa = true
"#;

both_backends!(
    matching_people_become_invited_guests_with_audited_grants,
    deactivation_suspends_and_reactivation_restores_the_same_grants,
    losing_a_rule_removes_only_its_grants,
    deleting_the_person_removes_the_guest,
    approval_partners_wait_for_an_admin,
    group_membership_drives_group_rules,
    explain_shows_each_rule_and_its_checks,
    reload_is_previewed_by_diff_then_applied,
    the_admin_api_requires_an_admin_token,
    admins_see_resend_and_revoke_invitations,
    a_missing_invitation_template_falls_back_to_the_standard_one,
);

fn nurse(user_name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": user_name,
        "title": "Staff Nurse",
        "emails": [{"value": user_name, "primary": true}],
        ENTERPRISE: {"department": "Cardiology"}
    })
}

struct Admin<'a> {
    app: &'a TestApp,
    token: String,
}

impl Admin<'_> {
    async fn send(&self, method: reqwest::Method, path: &str) -> Res {
        read(
            self.app
                .client
                .request(method, format!("{}/api/v1{path}", self.app.address))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn new(app: &TestApp) -> Admin<'_> {
        let token = guestbridge::services::partners::issue_admin_token(&app.deps, &test_actor())
            .await
            .unwrap();
        Admin { app, token }
    }

    async fn get(&self, path: &str) -> Res {
        read(
            self.app
                .client
                .get(format!("{}/api/v1{path}", self.app.address))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn post(&self, path: &str) -> Res {
        read(
            self.app
                .client
                .post(format!("{}/api/v1{path}", self.app.address))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// The guest of a SCIM user, via the list API.
    async fn guest_of(&self, user_id: &str) -> Option<Value> {
        let list = self.get("/guests?limit=500").await;
        list.body["guests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["user_id"] == user_id)
            .cloned()
    }

    async fn detail(&self, user_id: &str) -> Value {
        let g = self.guest_of(user_id).await.expect("guest");
        self.get(&format!("/guests/{}", g["id"].as_str().unwrap()))
            .await
            .body
    }
}

fn grants(detail: &Value) -> Vec<(String, String, String)> {
    let mut g: Vec<_> = detail["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["app"].as_str().unwrap().to_string(),
                g["role"].as_str().unwrap().to_string(),
                g["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    g.sort();
    g
}

fn g(app: &str, role: &str, rule: &str) -> (String, String, String) {
    (app.into(), role.into(), rule.into())
}

pub(crate) async fn app_with_rules(backend: Backend) -> TestApp {
    spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await
}

async fn matching_people_become_invited_guests_with_audited_grants(backend: Backend) {
    let app = app_with_rules(backend).await;
    let (_, acme) = app.partner("acme").await;
    let (_, other) = app.partner("initech").await;
    let admin = Admin::new(&app).await;
    let ann = acme.create_user(&nurse("ann@acme.example")).await;
    let nobody = other
        .create_user(&json!({"userName": "zed@initech.example", "title": "Nurse"}))
        .await;

    let d = admin.detail(&ann).await;
    assert_eq!(d["state"], "invited", "{d}");
    assert_eq!(d["partner"], "acme");
    assert_eq!(d["sponsor"], "dr.grey@hospital.example");
    assert_eq!(d["mfa_required"], false);
    assert_eq!(
        grants(&d),
        vec![
            g("ehr-viewer", "reader", "cardiology-nurses"),
            g("scheduling", "viewer", "everyone-schedules")
        ]
    );
    // Each grant has its own window: 90 days for the rule, 180 days partner cap over 365.
    let until = |rule: &str| {
        let gr = d["grants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["rule"] == rule)
            .unwrap();
        let from =
            chrono::DateTime::parse_from_rfc3339(gr["valid_from"].as_str().unwrap()).unwrap();
        let to = chrono::DateTime::parse_from_rfc3339(gr["valid_until"].as_str().unwrap()).unwrap();
        (
            (to - from).num_days(),
            gr["ends_by"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(
        until("cardiology-nurses"),
        (90, "rule_duration".to_string())
    );
    assert_eq!(
        until("everyone-schedules"),
        (180, "partner_maximum".to_string())
    );

    let actions: Vec<&str> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "guest.created",
            "grant.added",
            "grant.added",
            "invitation.issued"
        ]
    );
    assert_eq!(
        d["history"][0]["detail"]["cause"]["via"],
        "scim:user.created"
    );
    assert_eq!(d["history"][0]["actor"], "partner:acme");
    assert_eq!(
        d["history"][0]["detail"]["rules"],
        json!(["cardiology-nurses", "everyone-schedules"])
    );

    assert!(
        admin.guest_of(&nobody).await.is_none(),
        "no rule grants initech anything"
    );
    let by_app = admin
        .get("/guests?app=ehr-viewer&state=invited&partner=acme")
        .await;
    assert_eq!(by_app.body["total"], 1);
    let none = admin.get("/guests?state=active").await;
    assert_eq!(none.body["total"], 0);
    admin.get("/guests?state=bored").await;
    assert_eq!(
        admin.get("/guests?state=bored").await.status,
        StatusCode::BAD_REQUEST
    );
}

async fn deactivation_suspends_and_reactivation_restores_the_same_grants(backend: Backend) {
    let app = app_with_rules(backend).await;
    let (_, acme) = app.partner("acme").await;
    let admin = Admin::new(&app).await;
    let ann = acme.create_user(&nurse("ann@acme.example")).await;
    let before = grants(&admin.detail(&ann).await);
    let patch = |active: &str| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                      "Operations": [{"op": "Replace", "value": {"active": active}}]})
    };
    acme.patch(&format!("/Users/{ann}"), &patch("False")).await;
    let d = admin.detail(&ann).await;
    assert_eq!(d["state"], "suspended");
    assert_eq!(d["suspended_reason"], "deactivated");
    assert_eq!(grants(&d), before, "suspension keeps grants for a return");
    let last = d["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "guest.state_changed");
    assert_eq!(last["detail"]["from"], "invited");
    assert_eq!(last["detail"]["to"], "suspended:deactivated");
    assert_eq!(last["detail"]["cause"]["via"], "scim:user.patched");

    acme.patch(&format!("/Users/{ann}"), &patch("True")).await;
    let d = admin.detail(&ann).await;
    assert_eq!(d["state"], "invited");
    assert_eq!(grants(&d), before);
    // A deactivated person pushed for the first time does not become a guest.
    let mut inactive = nurse("bob@acme.example");
    inactive["active"] = json!(false);
    let bob = acme.create_user(&inactive).await;
    assert!(admin.guest_of(&bob).await.is_none());
}

async fn losing_a_rule_removes_only_its_grants(backend: Backend) {
    let app = app_with_rules(backend).await;
    let (_, acme) = app.partner("acme").await;
    let admin = Admin::new(&app).await;
    let ann = acme.create_user(&nurse("ann@acme.example")).await;
    let mut changed = nurse("ann@acme.example");
    changed["title"] = json!("Porter");
    acme.put(&format!("/Users/{ann}"), &changed).await;
    let d = admin.detail(&ann).await;
    assert_eq!(
        grants(&d),
        vec![g("scheduling", "viewer", "everyone-schedules")]
    );
    assert_eq!(d["state"], "invited");
    let removed: Vec<&Value> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["action"] == "grant.removed")
        .collect();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["detail"]["rule"], "cardiology-nurses");
    assert_eq!(removed[0]["detail"]["cause"]["via"], "scim:user.replaced");
}

async fn deleting_the_person_removes_the_guest(backend: Backend) {
    let app = app_with_rules(backend).await;
    let (_, acme) = app.partner("acme").await;
    let admin = Admin::new(&app).await;
    let ann = acme.create_user(&nurse("ann@acme.example")).await;
    assert_eq!(
        acme.delete(&format!("/Users/{ann}")).await.status,
        StatusCode::NO_CONTENT
    );
    let d = admin.detail(&ann).await;
    assert_eq!(d["state"], "removed");
    assert_eq!(d["grants"], json!([]));
    assert_eq!(
        d["history"].as_array().unwrap().last().unwrap()["detail"]["cause"]["via"],
        "scim:user.deleted"
    );
    assert_eq!(admin.get("/guests?state=removed").await.body["total"], 1);
}

async fn approval_partners_wait_for_an_admin(backend: Backend) {
    let app = app_with_rules(backend).await;
    let (_, globex) = app.partner("globex").await;
    let admin = Admin::new(&app).await;
    let bob = globex
        .create_user(&json!({"userName": "bob@globex.example"}))
        .await;
    let guest = admin.guest_of(&bob).await.unwrap();
    assert_eq!(guest["state"], "pending_approval");
    assert_eq!(guest["invited_at"], Value::Null);
    let id = guest["id"].as_str().unwrap();
    let approved = admin.post(&format!("/guests/{id}/approve")).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(approved.body["state"], "invited");
    assert!(approved.body["invited_at"].is_string());
    let again = admin.post(&format!("/guests/{id}/approve")).await;
    assert_eq!(again.status, StatusCode::OK, "approving twice is harmless");
    assert_eq!(
        admin.post("/guests/nope/approve").await.status,
        StatusCode::NOT_FOUND
    );
}

async fn group_membership_drives_group_rules(backend: Backend) {
    let app = app_with_rules(backend).await;
    let (_, acme) = app.partner("acme").await;
    let admin = Admin::new(&app).await;
    let ann = acme
        .create_user(&json!({"userName": "ann@acme.example"}))
        .await;
    assert_eq!(
        grants(&admin.detail(&ann).await),
        vec![g("scheduling", "viewer", "everyone-schedules")]
    );
    let gid = acme
        .post("/Groups", &json!({"displayName": "ICU"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                     "Operations": [{"op": "add", "path": "members", "value": [{"value": ann}]}]});
    assert_eq!(
        acme.patch(&format!("/Groups/{gid}"), &add).await.status,
        StatusCode::NO_CONTENT
    );
    let d = admin.detail(&ann).await;
    assert_eq!(
        grants(&d),
        vec![
            g("ehr-viewer", "clinician", "icu-clinicians"),
            g("scheduling", "viewer", "everyone-schedules")
        ]
    );
    assert_eq!(d["mfa_required"], true, "the strictest MFA setting wins");
    acme.delete(&format!("/Groups/{gid}")).await;
    let d = admin.detail(&ann).await;
    assert_eq!(
        grants(&d),
        vec![g("scheduling", "viewer", "everyone-schedules")]
    );
    assert_eq!(d["mfa_required"], false);
}

async fn explain_shows_each_rule_and_its_checks(backend: Backend) {
    let app = app_with_rules(backend).await;
    let (_, acme) = app.partner("acme").await;
    let admin = Admin::new(&app).await;
    let ann = acme.create_user(&nurse("ann@acme.example")).await;
    let guest = admin.guest_of(&ann).await.unwrap();
    let res = admin
        .get(&format!(
            "/guests/{}/explain",
            guest["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let rules = res.body["explanation"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 3);
    let cardio = &rules[0];
    assert_eq!(cardio["rule_id"], "cardiology-nurses");
    assert_eq!(cardio["matched"], true);
    assert_eq!(cardio["checks"].as_array().unwrap().len(), 2);
    assert!(cardio["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["result"] == true));
    let icu = &rules[2];
    assert_eq!(icu["matched"], false);
    assert_eq!(icu["in_groups"], false);
    assert_eq!(
        res.body["explanation"]["decision"]["grants"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

async fn reload_is_previewed_by_diff_then_applied(backend: Backend) {
    let app = app_with_rules(backend).await;
    let (_, acme) = app.partner("acme").await;
    let admin = Admin::new(&app).await;
    let ann = acme.create_user(&nurse("ann@acme.example")).await;
    let mut porter = nurse("pat@acme.example");
    porter["title"] = json!("Porter");
    let pat = acme.create_user(&porter).await;
    // The new rules drop the scheduling rule and grant nurses the clinician role instead.
    let new_rules = RULES
        .replace(
            "partners = [\"acme\", \"globex\"]",
            "partners = [\"nobody\"]",
        )
        .replace("role = \"reader\"", "role = \"clinician\"");
    std::fs::write(app.mappings.join("rules.toml"), &new_rules).unwrap();
    let diff = admin.post("/mappings/diff").await;
    assert_eq!(diff.status, StatusCode::OK, "{}", diff.body);
    let d = &diff.body["diff"];
    assert_eq!(d["people"], 2);
    assert_eq!(d["people_changed"], 2);
    assert_eq!(d["guests_losing_all_grants"], 1);
    assert_eq!(d["grants_added"], 1);
    assert_eq!(d["grants_removed"], 3);
    // Nothing is applied by a diff.
    assert_eq!(grants(&admin.detail(&ann).await).len(), 2);

    let reload = admin.post("/mappings/reload").await;
    assert_eq!(reload.status, StatusCode::OK, "{}", reload.body);
    assert_eq!(reload.body["people_changed"], 2);
    assert_eq!(
        grants(&admin.detail(&ann).await),
        vec![g("ehr-viewer", "clinician", "cardiology-nurses")]
    );
    let p = admin.detail(&pat).await;
    assert_eq!(p["state"], "suspended");
    assert_eq!(p["suspended_reason"], "no_grants");
    assert_eq!(
        p["history"].as_array().unwrap().last().unwrap()["detail"]["cause"]["via"],
        "mappings:reload"
    );

    std::fs::write(
        app.mappings.join("rules.toml"),
        "[[rule]]\nid = \"broken\"\ngrants = [{ app = \"nope\", role = \"x\" }]\n",
    )
    .unwrap();
    let bad = admin.post("/mappings/reload").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["file"], "rules.toml");
    assert!(bad.body["errors"][0]["line"].as_u64().unwrap() >= 1);
    assert_eq!(
        grants(&admin.detail(&ann).await).len(),
        1,
        "invalid rules leave the old ones in force"
    );
}

async fn the_admin_api_requires_an_admin_token(backend: Backend) {
    let app = app_with_rules(backend).await;
    let (_, acme) = app.partner("acme").await;
    let anonymous = read(
        app.client
            .get(format!("{}/api/v1/guests", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let partner_token = read(
        app.client
            .get(format!("{}/api/v1/guests", app.address))
            .bearer_auth(&acme.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        partner_token.status,
        StatusCode::UNAUTHORIZED,
        "a partner token is not an admin token"
    );
}

async fn admins_see_resend_and_revoke_invitations(backend: Backend) {
    let app = app_with_rules(backend).await;
    let (_, acme) = app.partner("acme").await;
    let admin = Admin::new(&app).await;
    let ann = acme.create_user(&nurse("ann@acme.example")).await;
    let d = admin.detail(&ann).await;
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(d["invitations"].as_array().unwrap().len(), 1);
    assert_eq!(d["invitations"][0]["status"], "open");
    assert_eq!(d["consent"], Value::Null);
    assert_eq!(d["mfa_enrolled"], false);
    // Without SMTP the mail waits in the outbox.
    let queued: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM mail_outbox WHERE kind = 'invitation' AND sent_at IS NULL",
    )
    .fetch_one(app.deps.db.pool())
    .await
    .unwrap();
    assert_eq!(queued, 1);
    let resent = admin
        .send(reqwest::Method::POST, &format!("/guests/{id}/invitation"))
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.body);
    let statuses: Vec<&str> = resent.body["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["open", "revoked"]);
    let revoked = admin
        .send(reqwest::Method::DELETE, &format!("/guests/{id}/invitation"))
        .await;
    assert_eq!(revoked.body["revoked"], 1);
    let d = admin.detail(&ann).await;
    assert!(d["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "revoked"));
    let history: Vec<&str> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        history
            .iter()
            .filter(|a| **a == "invitation.issued")
            .count(),
        2
    );
    assert!(history.contains(&"invitation.revoked"));
}

async fn a_missing_invitation_template_falls_back_to_the_standard_one(backend: Backend) {
    let rules = RULES.replace(
        "sponsor = \"dr.grey@hospital.example\"",
        "sponsor = \"dr.grey@hospital.example\"\ntemplate = \"clinician\"",
    );
    assert!(rules.contains("template = \"clinician\""));
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", &rules)]).await;
    let (_, acme) = app.partner("acme").await;
    let res = acme.post("/Users", &nurse("ann@acme.example")).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let kind: String = sqlx::query_scalar("SELECT kind FROM mail_outbox")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert_eq!(kind, "invitation");
}
