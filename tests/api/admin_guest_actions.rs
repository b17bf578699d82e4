//! The admin API's guest actions end to end: suspend, resume, remove now, extend and revoke
//! one app. Each leaves the guest in the right state with its audit entry, and a second
//! Guestbridge instance, the downstream SCIM target, sees the change; a SCIM PATCH of the
//! person and a rule reload afterwards do not undo what the administrator did.

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::admin_client::{expect, AdminApi};
use crate::both_backends;
use crate::helpers::{eventually, spawn, spawn_with, url_encode, Backend, Scim, TestApp};

const APPS: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = ""
launch_url = "https://ehr.example/"
roles = ["reader"]

[[app]]
id = "rota"
name = "Rota"
description = ""
launch_url = "https://rota.example/"
roles = ["viewer"]

[[partner]]
slug = "acme"
max_access_days = 120
"#;

fn rules(access_days: u32) -> String {
    format!(
        "{APPS}
[[rule]]
id = \"nurses\"
condition = 'title co \"Nurse\"'
grants = [{{ app = \"ehr-viewer\", role = \"reader\" }}, {{ app = \"rota\", role = \"viewer\" }}]
access_days = {access_days}
"
    )
}

both_backends!(
    suspend_and_resume_hold_until_an_admin_lifts_them,
    extend_and_revoke_outlast_scim_patches_and_rule_reloads,
    remove_now_deprovisions_for_good
);

struct World {
    app: TestApp,
    _downstream: TestApp,
    down: Scim,
    acme: Scim,
    admin: AdminApi,
}

async fn world(backend: Backend) -> World {
    let downstream = spawn(backend).await;
    let (_, down) = downstream.partner("hospital").await;
    let targets = json!([{"name": "downstream", "type": "scim", "url": format!("{}/scim/v2", downstream.address), "secret": down.token, "group_prefix": "gb-"}]).to_string();
    let rules = rules(90);
    let app = spawn_with(
        backend,
        &[("rules.toml", rules.as_str())],
        &[
            ("GUESTBRIDGE_SYNC_TARGETS", targets.as_str()),
            ("GUESTBRIDGE_SYNC_RETRY_BASE_MS", "200"),
        ],
    )
    .await;
    let (_, acme) = app.partner("acme").await;
    let admin = AdminApi::new(&app).await;
    World {
        app,
        _downstream: downstream,
        down,
        acme,
        admin,
    }
}

fn nurse(user_name: &str, end: Option<chrono::DateTime<Utc>>) -> Value {
    let mut p = json!({"userName": user_name, "title": "Staff Nurse",
        "name": {"givenName": "Ann", "familyName": "Lee"},
        "emails": [{"value": user_name, "primary": true}]});
    if let Some(end) = end {
        let ext = "urn:guestbridge:params:scim:schemas:extension:guest:1.0:User";
        p["schemas"] = json!(["urn:ietf:params:scim:schemas:core:2.0:User", ext]);
        p[ext] = json!({"accessEndDate": end.to_rfc3339()});
    }
    p
}

async fn guest_of(app: &TestApp, user_id: &str) -> String {
    sqlx::query_scalar("SELECT id FROM guests WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

async fn downstream_user(down: &Scim, guest_id: &str) -> Option<Value> {
    let res = down
        .filter_users(&format!("externalId eq \"{guest_id}\""))
        .await;
    res.body["Resources"]
        .as_array()
        .and_then(|a| a.first().cloned())
}

async fn downstream_active(down: &Scim, guest_id: &str) -> Option<bool> {
    downstream_user(down, guest_id)
        .await
        .and_then(|u| u["active"].as_bool())
}

/// The members of the downstream group of an app role.
async fn group_members(down: &Scim, group: &str) -> usize {
    let filter = url_encode(&format!("displayName eq \"{group}\""));
    let res = down.get(&format!("/Groups?filter={filter}")).await;
    res.body["Resources"][0]["members"]
        .as_array()
        .map_or(0, Vec::len)
}

/// The actions in the guest's history, oldest first, with the `via` of their cause.
async fn history(admin: &AdminApi, id: &str) -> Vec<(String, String)> {
    let res = admin.get(&format!("/guests/{id}")).await;
    expect(&res, 200);
    let mut out: Vec<(String, String)> = res.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["action"].as_str().unwrap_or_default().to_string(),
                h["detail"]["cause"]["via"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    out.reverse();
    out
}

fn grant<'a>(guest: &'a Value, app: &str) -> &'a Value {
    guest["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["app"] == app)
        .unwrap_or_else(|| panic!("no grant of {app}: {guest}"))
}

async fn patch_title(acme: &Scim, user_id: &str, title: &str) {
    let res = acme
        .patch(
            &format!("/Users/{user_id}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "title", "value": title}]}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
}

async fn reload(w: &World, access_days: u32) {
    std::fs::write(w.app.mappings.join("rules.toml"), rules(access_days)).unwrap();
    let res = w.admin.post_empty("/mappings/reload").await;
    expect(&res, 200);
}

async fn suspend_and_resume_hold_until_an_admin_lifts_them(backend: Backend) {
    let w = world(backend).await;
    let user = w.acme.create_user(&nurse("ann@acme.example", None)).await;
    let id = guest_of(&w.app, &user).await;
    eventually("the guest downstream", || async {
        downstream_active(&w.down, &id).await == Some(true)
    })
    .await;

    // A portal session the guest holds ends with the suspension.
    let now_ms = Utc::now().timestamp_millis();
    let session = guestbridge::store::sessions::SessionRow {
        id_hash: format!("test-session-{id}"),
        guest_id: id.clone(),
        created_at: now_ms,
        expires_at: now_ms + 3_600_000,
        mfa_passed: false,
        csrf_secret: "test".into(),
        origin: "invitation".into(),
        mfa_method: None,
    };
    let mut conn = w.app.deps.db.pool().acquire().await.unwrap();
    guestbridge::store::sessions::insert_session(&mut conn, &session)
        .await
        .unwrap();
    drop(conn);
    let sessions = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM guest_sessions WHERE guest_id = $1")
            .bind(&id)
            .fetch_one(w.app.deps.db.pool())
            .await
            .unwrap()
    };
    assert_eq!(sessions().await, 1);
    let res = w
        .admin
        .post(
            &format!("/guests/{id}/suspend"),
            &json!({"reason": "contract under review"}),
        )
        .await;
    assert_eq!(sessions().await, 0, "sessions ended");
    expect(&res, 200);
    assert_eq!(res.body["state"], "suspended", "{}", res.body);
    assert_eq!(res.body["suspended_reason"], "admin", "{}", res.body);
    assert!(
        history(&w.admin, &id)
            .await
            .contains(&("guest.state_changed".into(), "admin:suspend".into())),
        "audited"
    );
    let detail = w.admin.get(&format!("/guests/{id}")).await.body;
    assert!(
        detail["invitations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] != "open"),
        "the open link stops working: {detail}"
    );
    eventually("the suspension downstream", || async {
        downstream_active(&w.down, &id).await == Some(false)
    })
    .await;

    // Neither the partner's next write nor a rule reload lifts it.
    patch_title(&w.acme, &user, "Senior Nurse").await;
    reload(&w, 80).await;
    let res = w.admin.get(&format!("/guests/{id}")).await;
    assert_eq!(res.body["suspended_reason"], "admin", "{}", res.body);

    // Errors: twice, a bad reason, an unknown guest, a body that is not JSON.
    let again = w.admin.post_empty(&format!("/guests/{id}/suspend")).await;
    expect(&again, 409);
    let bad = w
        .admin
        .post(
            &format!("/guests/{id}/suspend"),
            &json!({"reason": "a\u{0}b"}),
        )
        .await;
    expect(&bad, 400);
    let unknown = w
        .admin
        .post_empty("/guests/0190a0a0-0000-7000-8000-000000000000/suspend")
        .await;
    expect(&unknown, 404);
    let not_json = w
        .admin
        .client
        .post(format!("{}/guests/{id}/suspend", w.admin.base))
        .bearer_auth(&w.admin.token)
        .body("{reason")
        .send()
        .await
        .unwrap();
    let not_json = crate::helpers::read(not_json).await;
    expect(&not_json, 400);
    crate::admin_client::assert_error_shape(&not_json);

    // Resuming returns the guest to where they were, decided again by the rules: invited,
    // with a new link, and active downstream again.
    let res = w.admin.post_empty(&format!("/guests/{id}/resume")).await;
    expect(&res, 200);
    assert_eq!(res.body["state"], "invited", "{}", res.body);
    let detail = w.admin.get(&format!("/guests/{id}")).await.body;
    assert!(
        detail["invitations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["status"] == "open"),
        "a new link: {detail}"
    );
    assert!(history(&w.admin, &id)
        .await
        .contains(&("guest.state_changed".into(), "admin:resume".into())));
    eventually("the resumed guest downstream", || async {
        downstream_active(&w.down, &id).await == Some(true)
    })
    .await;
    expect(
        &w.admin.post_empty(&format!("/guests/{id}/resume")).await,
        409,
    );

    // A person the partner deactivated meanwhile stays suspended after the resume, as the
    // rules decide.
    expect(
        &w.admin.post_empty(&format!("/guests/{id}/suspend")).await,
        200,
    );
    let res = w
        .acme
        .patch(
            &format!("/Users/{user}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = w.admin.post_empty(&format!("/guests/{id}/resume")).await;
    expect(&res, 200);
    assert_eq!(res.body["suspended_reason"], "deactivated", "{}", res.body);
}

async fn extend_and_revoke_outlast_scim_patches_and_rule_reloads(backend: Backend) {
    let w = world(backend).await;
    let now = Utc::now();
    // The partner says ten days; the rule allows 90 and the partner policy 120.
    let user = w
        .acme
        .create_user(&nurse("bo@acme.example", Some(now + Duration::days(10))))
        .await;
    let id = guest_of(&w.app, &user).await;
    eventually("both app groups downstream", || async {
        group_members(&w.down, "gb-ehr-viewer:reader").await == 1
            && group_members(&w.down, "gb-rota:viewer").await == 1
    })
    .await;

    let until = (now + Duration::days(60)).to_rfc3339();
    let path = format!("/guests/{id}/grants/ehr-viewer/extend");
    let res = w.admin.post(&path, &json!({"until": until})).await;
    expect(&res, 200);
    let extended = grant(&res.body, "ehr-viewer")["valid_until"].clone();
    assert_eq!(grant(&res.body, "ehr-viewer")["ends_by"], "admin_extension");
    let rota_end = grant(&res.body, "rota")["valid_until"].clone();
    assert_ne!(extended, rota_end, "only the one app is extended");
    assert!(history(&w.admin, &id)
        .await
        .contains(&("grant.extended".into(), "admin:extend".into())));

    // Beyond the rule's 90 days; in the past; not a time; no body; an app without a grant.
    let beyond = (now + Duration::days(100)).to_rfc3339();
    expect(&w.admin.post(&path, &json!({"until": beyond})).await, 400);
    let past = (now - Duration::days(1)).to_rfc3339();
    expect(&w.admin.post(&path, &json!({"until": past})).await, 400);
    expect(&w.admin.post(&path, &json!({"until": "soon"})).await, 400);
    expect(&w.admin.post_empty(&path).await, 400);
    expect(
        &w.admin
            .post(
                &format!("/guests/{id}/grants/imaging/extend"),
                &json!({"until": until}),
            )
            .await,
        409,
    );

    // Revoke one app: gone downstream, the other stays.
    let res = w.admin.delete(&format!("/guests/{id}/grants/rota")).await;
    expect(&res, 200);
    assert_eq!(grant(&res.body, "rota")["ends_by"], "admin_revocation");
    assert_eq!(res.body["state"], "invited", "{}", res.body);
    eventually("the revoked app leaves downstream", || async {
        group_members(&w.down, "gb-rota:viewer").await == 0
    })
    .await;
    assert_eq!(group_members(&w.down, "gb-ehr-viewer:reader").await, 1);
    expect(
        &w.admin.delete(&format!("/guests/{id}/grants/rota")).await,
        409,
    );
    expect(
        &w.admin
            .post(
                &format!("/guests/{id}/grants/rota/extend"),
                &json!({"until": until}),
            )
            .await,
        409,
    );

    // The partner's next write (a shorter end date too) and a rule reload keep both.
    let res = w
        .acme
        .put(
            &format!("/Users/{user}"),
            &nurse("bo@acme.example", Some(now + Duration::days(5))),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.body);
    patch_title(&w.acme, &user, "Night Nurse").await;
    reload(&w, 80).await;
    let res = w.admin.get(&format!("/guests/{id}")).await;
    assert_eq!(grant(&res.body, "ehr-viewer")["valid_until"], extended);
    assert_eq!(grant(&res.body, "ehr-viewer")["ends_by"], "admin_extension");
    assert_eq!(grant(&res.body, "rota")["ends_by"], "admin_revocation");
    assert_eq!(res.body["state"], "invited", "{}", res.body);
    assert_eq!(group_members(&w.down, "gb-rota:viewer").await, 0);

    // Revoking the last app suspends the guest, as the end of their last grant does.
    let res = w
        .admin
        .delete(&format!("/guests/{id}/grants/ehr-viewer"))
        .await;
    expect(&res, 200);
    assert_eq!(res.body["suspended_reason"], "expired", "{}", res.body);
    eventually("the guest suspended downstream", || async {
        downstream_active(&w.down, &id).await == Some(false)
    })
    .await;
    patch_title(&w.acme, &user, "Day Nurse").await;
    let res = w.admin.get(&format!("/guests/{id}")).await;
    assert_eq!(res.body["suspended_reason"], "expired", "{}", res.body);
}

async fn remove_now_deprovisions_for_good(backend: Backend) {
    let w = world(backend).await;
    let user = w.acme.create_user(&nurse("cy@acme.example", None)).await;
    let id = guest_of(&w.app, &user).await;
    eventually("the guest downstream", || async {
        downstream_active(&w.down, &id).await == Some(true)
    })
    .await;
    let res = w.admin.post_empty(&format!("/guests/{id}/remove")).await;
    expect(&res, 200);
    assert_eq!(res.body["state"], "removed", "{}", res.body);
    assert_eq!(res.body["grants"], json!([]), "{}", res.body);
    assert!(history(&w.admin, &id)
        .await
        .contains(&("guest.state_changed".into(), "admin:remove".into())));
    eventually("the removal downstream", || async {
        downstream_active(&w.down, &id).await != Some(true)
    })
    .await;
    patch_title(&w.acme, &user, "Charge Nurse").await;
    reload(&w, 80).await;
    let res = w.admin.get(&format!("/guests/{id}")).await;
    assert_eq!(res.body["state"], "removed", "{}", res.body);
    assert_eq!(res.body["grants"], json!([]), "{}", res.body);
    expect(
        &w.admin.post_empty(&format!("/guests/{id}/remove")).await,
        409,
    );
    expect(
        &w.admin.post_empty(&format!("/guests/{id}/resume")).await,
        409,
    );
}
