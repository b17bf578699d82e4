//! The write path: creates waiting together are committed in one transaction (issue 9),
//! and each request must still get its own outcome, a failing create not taking the others
//! with it. A partner's hourly limit on deactivations refuses the ones past it, whole.

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{Backend, StepClock};
use crate::lifecycle::app_with_rules;
use crate::users_crud::clinician;

both_backends!(
    concurrent_creates_each_get_their_own_outcome,
    deactivations_past_the_partners_hourly_limit_are_refused,
);

const LIMITED: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = ""
launch_url = "https://ehr.example/"
roles = ["reader"]

[[partner]]
slug = "acme"
max_deactivations_per_hour = 2

[[rule]]
id = "everyone"
grants = [{ app = "ehr-viewer", role = "reader" }]
"#;

async fn deactivations_past_the_partners_hourly_limit_are_refused(backend: Backend) {
    let clock = StepClock::new();
    let app =
        crate::helpers::spawn_with_clock(backend, &[("rules.toml", LIMITED)], &[], clock.clone())
            .await;
    let (_, acme) = app.partner("acme").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            acme.create_user(&clinician(&format!("p{i}@acme.example")))
                .await,
        );
    }
    let deactivate = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]
    });
    let guest_state = |id: String| {
        let app = &app;
        async move {
            sqlx::query_scalar::<_, String>("SELECT state FROM guests WHERE user_id = $1")
                .bind(id)
                .fetch_one(app.deps.db.pool())
                .await
                .unwrap()
        }
    };

    // Two removals fit in the hour: a PATCH and a PUT.
    let first = acme.patch(&format!("/Users/{}", ids[0]), &deactivate).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let mut inactive = clinician("p1@acme.example");
    inactive["active"] = serde_json::json!(false);
    let second = acme.put(&format!("/Users/{}", ids[1]), &inactive).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(guest_state(ids[0].clone()).await, "suspended:deactivated");

    // The third and a deletion are refused, and change nothing.
    let third = acme.patch(&format!("/Users/{}", ids[2]), &deactivate).await;
    third.assert_scim_error(429, None);
    assert!(
        third.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("max_deactivations_per_hour")),
        "{}",
        third.body
    );
    let retry_after: u64 = third.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let deleted = acme.delete(&format!("/Users/{}", ids[3])).await;
    deleted.assert_scim_error(429, None);
    assert_eq!(
        acme.get(&format!("/Users/{}", ids[2])).await.body["active"],
        true
    );
    assert_eq!(
        acme.get(&format!("/Users/{}", ids[3])).await.status,
        StatusCode::OK
    );
    assert_eq!(guest_state(ids[2].clone()).await, "invited");
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.deactivation_refused'"
        )
        .await,
        2
    );

    // Bringing someone back is not limited; an hour later removals go through again.
    let back = serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": true}]
    });
    let res = acme.patch(&format!("/Users/{}", ids[0]), &back).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    clock.advance_ms(60 * 60 * 1000);
    let later = acme.patch(&format!("/Users/{}", ids[2]), &deactivate).await;
    assert_eq!(later.status, StatusCode::OK, "{}", later.body);
    let gone = acme.delete(&format!("/Users/{}", ids[3])).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.body);
}

async fn count(app: &crate::helpers::TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.deps.db.pool())
        .await
        .expect(sql)
}

async fn concurrent_creates_each_get_their_own_outcome(backend: Backend) {
    let app = app_with_rules(backend).await;
    let (_, acme) = app.partner("acme").await;
    // 40 distinct people and 8 creates of one userName, all in flight at once.
    let bodies: Vec<_> = (0..48)
        .map(|i| {
            let name = if i % 6 == 5 {
                "twin@acme.example".to_string()
            } else {
                format!("nurse{i}@acme.example")
            };
            clinician(&name)
        })
        .collect();
    let results =
        futures_util::future::join_all(bodies.iter().map(|body| acme.post("/Users", body))).await;

    let created: Vec<_> = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    let conflicts: Vec<_> = results
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .collect();
    assert_eq!(created.len(), 41, "{results:?}");
    assert_eq!(conflicts.len(), 7);
    for c in &conflicts {
        assert_eq!(c.body["scimType"], "uniqueness", "{}", c.body);
    }
    let twins: Vec<_> = created
        .iter()
        .filter(|r| r.body["userName"] == "twin@acme.example")
        .collect();
    assert_eq!(twins.len(), 1);

    // Everything each successful create wrote is there, and nothing of the failed ones.
    for r in &created {
        let got = acme
            .get(&format!("/Users/{}", r.body["id"].as_str().unwrap()))
            .await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body["userName"], r.body["userName"]);
    }
    let list = acme.get("/Users?count=0").await;
    assert_eq!(list.body["totalResults"], 41);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM guests").await, 41);
    // Each clinician matches `cardiology-nurses` and `everyone-schedules`.
    assert_eq!(count(&app, "SELECT COUNT(*) FROM guest_grants").await, 82);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM invitations").await, 41);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'user.created'"
        )
        .await,
        41
    );
}
