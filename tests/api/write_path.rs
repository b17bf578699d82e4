//! The write path of issue 9 on SQLite: writers wait for their turn in the process, and
//! creates waiting together are committed in one transaction. Each request must still get
//! its own outcome, and a failing create must not take the others with it.

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::Backend;
use crate::lifecycle::app_with_rules;
use crate::users_crud::clinician;

both_backends!(concurrent_creates_each_get_their_own_outcome);

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
