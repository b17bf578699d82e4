//! Outbound sync end to end: a second Guestbridge instance as the downstream SCIM server,
//! and a local webhook receiver that checks signatures, fails for a while, and refuses.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{eventually, read, spawn, spawn_with, test_actor, Backend, TestApp};

const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = ""
launch_url = "https://ehr.example/"
roles = ["reader"]

[[rule]]
id = "cardiology"
condition = 'title co "Nurse"'
grants = [{ app = "ehr-viewer", role = "reader" }]
"#;

both_backends!(
    guests_reach_a_downstream_scim_server,
    webhook_events_are_signed_retried_and_replayable
);

async fn downstream_user(down: &crate::helpers::Scim, guest_id: &str) -> Option<Value> {
    let res = down
        .filter_users(&format!("externalId eq \"{guest_id}\""))
        .await;
    res.body["Resources"]
        .as_array()
        .and_then(|a| a.first().cloned())
}

async fn guests_reach_a_downstream_scim_server(backend: Backend) {
    let downstream = spawn(backend).await;
    let (_, down) = downstream.partner("hospital").await;
    let targets = json!([{"name": "downstream", "type": "scim", "url": format!("{}/scim/v2", downstream.address), "secret": down.token, "group_prefix": "gb-"}]).to_string();
    let app = spawn_with(
        backend,
        &[("rules.toml", RULES)],
        &[
            ("GUESTBRIDGE_SYNC_TARGETS", targets.as_str()),
            ("GUESTBRIDGE_SYNC_RETRY_BASE_MS", "200"),
        ],
    )
    .await;
    let (_, acme) = app.partner("acme").await;
    let ann = acme
        .create_user(&json!({"userName": "ann@acme.example", "title": "Staff Nurse", "name": {"givenName": "Ann", "familyName": "Lee"},
                              "emails": [{"value": "ann@acme.example", "primary": true}]}))
        .await;
    let guest_id: String = sqlx::query_scalar("SELECT id FROM guests")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();

    eventually("the guest downstream", || async {
        downstream_user(&down, &guest_id).await.is_some()
    })
    .await;
    let user = downstream_user(&down, &guest_id).await.unwrap();
    assert_eq!(user["userName"], "ann@acme.example");
    assert_eq!(user["name"]["familyName"], "Lee");
    assert_eq!(user["active"], true);
    let group = || async {
        down.get("/Groups?filter=displayName%20eq%20%22gb-ehr-viewer%3Areader%22")
            .await
            .body["Resources"][0]
            .clone()
    };
    eventually("the grant as a group membership", || async {
        group().await["members"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    })
    .await;
    assert_eq!(group().await["members"][0]["value"], user["id"]);

    // Drift: someone edits and removes things downstream; the reconcile job repairs them.
    let tamper = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "name.familyName", "value": "Tampered"}]});
    down.patch(&format!("/Users/{}", user["id"].as_str().unwrap()), &tamper)
        .await;
    let settings = guestbridge::config::Settings::load(
        None,
        &[("GUESTBRIDGE_SYNC_TARGETS".to_string(), targets.clone())]
            .into_iter()
            .collect(),
    )
    .unwrap();
    let report = guestbridge::jobs::run_once(
        "reconcile",
        &app.deps,
        &settings,
        None,
        chrono::Utc::now(),
        "test",
    )
    .await
    .unwrap();
    assert_eq!(
        report.counts.get("updated"),
        Some(&1),
        "{:?}",
        report.counts
    );
    assert_eq!(
        downstream_user(&down, &guest_id).await.unwrap()["name"]["familyName"],
        "Lee"
    );
    down.delete(&format!("/Users/{}", user["id"].as_str().unwrap()))
        .await;
    let report = guestbridge::jobs::run_once(
        "reconcile",
        &app.deps,
        &settings,
        None,
        chrono::Utc::now(),
        "test",
    )
    .await
    .unwrap();
    assert_eq!(
        report.counts.get("created"),
        Some(&1),
        "{:?}",
        report.counts
    );
    let user = downstream_user(&down, &guest_id)
        .await
        .expect("recreated downstream");
    eventually("the recreated user in the group", || async {
        group().await["members"][0]["value"] == user["id"]
    })
    .await;

    // Grant change: the rule no longer matches, so the guest loses the group.
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    acme.patch(
        &format!("/Users/{ann}"),
        &patch(json!([{"op": "replace", "path": "title", "value": "Porter"}])),
    )
    .await;
    eventually("the membership gone", || async {
        group().await.get("members").is_none()
    })
    .await;
    // Back again, then suspension: the downstream user is deactivated.
    acme.patch(
        &format!("/Users/{ann}"),
        &patch(json!([{"op": "replace", "path": "title", "value": "Nurse"}])),
    )
    .await;
    eventually("the membership back", || async {
        group().await["members"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    })
    .await;
    acme.patch(
        &format!("/Users/{ann}"),
        &patch(json!([{"op": "replace", "path": "active", "value": false}])),
    )
    .await;
    eventually("the user deactivated", || async {
        downstream_user(&down, &guest_id)
            .await
            .is_some_and(|u| u["active"] == false)
    })
    .await;
    eventually("no membership while suspended", || async {
        group().await.get("members").is_none()
    })
    .await;
    // Deleted upstream: deleted downstream.
    acme.delete(&format!("/Users/{ann}")).await;
    eventually("the user deleted", || async {
        downstream_user(&down, &guest_id).await.is_none()
    })
    .await;
    // The worker records a delivery after the target has answered, so this may lag the target.
    eventually("every event recorded as delivered", || async {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sync_outbox WHERE delivered_at IS NULL")
                .fetch_one(app.deps.db.pool())
                .await
                .unwrap();
        pending == 0
    })
    .await;
    let delivered: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sync_outbox WHERE delivered_at IS NOT NULL")
            .fetch_one(app.deps.db.pool())
            .await
            .unwrap();
    assert!(delivered >= 5);
}

/// A receiver that checks signatures, answers 503 to its first `fail` requests and then
/// `status`, and records the events it accepted.
#[derive(Clone)]
struct Receiver {
    fail: Arc<AtomicUsize>,
    status: Arc<Mutex<u16>>,
    accepted: Arc<Mutex<Vec<Value>>>,
    bad_signatures: Arc<AtomicUsize>,
}

async fn start_receiver(secret: &'static str) -> (String, Receiver) {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let r = Receiver {
        fail: Arc::new(AtomicUsize::new(2)),
        status: Arc::new(Mutex::new(204)),
        accepted: Arc::new(Mutex::new(Vec::new())),
        bad_signatures: Arc::new(AtomicUsize::new(0)),
    };
    let state = r.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/hooks/guestbridge",
        listener.local_addr().unwrap()
    );
    let server = HttpServer::new(move || {
        let state = state.clone();
        App::new().route(
            "/hooks/guestbridge",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let state = state.clone();
                async move {
                    let header = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let ok = guestbridge::connectors::webhook::verify_signature(
                        secret,
                        &header("x-guestbridge-timestamp"),
                        &body,
                        &header("x-guestbridge-signature"),
                        chrono::Utc::now(),
                        Duration::from_secs(300),
                    );
                    if !ok {
                        state.bad_signatures.fetch_add(1, Ordering::SeqCst);
                        return HttpResponse::Unauthorized().finish();
                    }
                    if state.fail.load(Ordering::SeqCst) > 0 {
                        state.fail.fetch_sub(1, Ordering::SeqCst);
                        return HttpResponse::ServiceUnavailable().finish();
                    }
                    let status = *state.status.lock().unwrap();
                    if status >= 300 {
                        return HttpResponse::build(
                            actix_web::http::StatusCode::from_u16(status).unwrap(),
                        )
                        .finish();
                    }
                    state
                        .accepted
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap());
                    HttpResponse::NoContent().finish()
                }
            }),
        )
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .run();
    tokio::spawn(server);
    (url, r)
}

async fn webhook_events_are_signed_retried_and_replayable(backend: Backend) {
    let (url, receiver) = start_receiver("s3cret-shared-with-the-receiver").await;
    let targets = json!([{"name": "hooks", "type": "webhook", "url": url, "secret": "s3cret-shared-with-the-receiver"}]).to_string();
    let app: TestApp = spawn_with(
        backend,
        &[("rules.toml", RULES)],
        &[
            ("GUESTBRIDGE_SYNC_TARGETS", targets.as_str()),
            ("GUESTBRIDGE_SYNC_RETRY_BASE_MS", "100"),
        ],
    )
    .await;
    let (_, acme) = app.partner("acme").await;
    let ann = acme
        .create_user(&json!({"userName": "ann@acme.example", "title": "Nurse"}))
        .await;
    // The receiver is down for the first two attempts; the event arrives once, after retries.
    eventually("the first event", || async {
        receiver.accepted.lock().unwrap().len() == 1
    })
    .await;
    let first = receiver.accepted.lock().unwrap()[0].clone();
    assert_eq!(first["type"], "guest.upserted");
    assert_eq!(first["data"]["user_name"], "ann@acme.example");
    assert_eq!(first["data"]["grants"][0]["app"], "ehr-viewer");
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
    let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM sync_outbox")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert_eq!(attempts, 3);

    // Changes arrive in order.
    let patch = |v: bool| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "active", "value": v}]});
    acme.patch(&format!("/Users/{ann}"), &patch(false)).await;
    acme.patch(&format!("/Users/{ann}"), &patch(true)).await;
    eventually("three events", || async {
        receiver.accepted.lock().unwrap().len() == 3
    })
    .await;
    let types: Vec<String> = receiver
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        ["guest.upserted", "guest.suspended", "guest.upserted"]
    );

    // A refusal is a dead letter, visible to admins and replayable.
    *receiver.status.lock().unwrap() = 400;
    acme.delete(&format!("/Users/{ann}")).await;
    let token = guestbridge::services::partners::issue_admin_token(&app.deps, &test_actor())
        .await
        .unwrap();
    let get_sync = || async {
        read(
            app.client
                .get(format!("{}/api/v1/sync", app.address))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    eventually("a dead letter", || async {
        get_sync().await.body["dead_letters"]
            .as_array()
            .is_some_and(|d| d.len() == 1)
    })
    .await;
    let sync = get_sync().await;
    assert_eq!(sync.body["targets"][0]["dead"], 1);
    let dead_id = sync.body["dead_letters"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sync.body["dead_letters"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("400"));
    let metrics = app
        .client
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("guestbridge_sync_dead_letters{target=\"hooks\"} 1"),
        "{metrics}"
    );
    *receiver.status.lock().unwrap() = 204;
    let replay = read(
        app.client
            .post(format!(
                "{}/api/v1/sync/events/{dead_id}/replay",
                app.address
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(replay.status.as_u16(), 200);
    eventually("the replayed event", || async {
        receiver.accepted.lock().unwrap().len() == 4
    })
    .await;
    assert_eq!(
        receiver.accepted.lock().unwrap()[3]["type"],
        "guest.removed"
    );
}
