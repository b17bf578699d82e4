//! Health, readiness and metrics endpoints.

use crate::both_backends;
use crate::helpers::{spawn, Backend};
use crate::users_crud::clinician;

both_backends!(probes_answer_and_metrics_count_requests);

async fn probes_answer_and_metrics_count_requests(backend: Backend) {
    let app = spawn(backend).await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status().as_u16(), 200);
    let request_id = health.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{request_id}");
    assert_eq!(app.get("/readyz").await.status().as_u16(), 200);
    let (_, scim) = app.partner("acme").await;
    let id = scim.create_user(&clinician("ann@acme.example")).await;
    scim.get(&format!("/Users/{id}")).await;
    scim.get("/Users/missing").await;
    let res = app.get("/metrics").await;
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    assert!(
        text.contains(r#"guestbridge_http_requests_total{method="POST",route="/scim/v2/Users",status="201"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/scim/v2/Users/{id}",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/scim/v2/Users/{id}",status="404"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("guestbridge_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains(&id), "ids never become labels");
}
