//! The webhook connector against local receivers: one that verifies every signature the way
//! a real receiver should (with `verify_signature`), and ones that answer 503, 429, 400 or a
//! redirect, or are not there at all.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse};
use chrono::Utc;
use guestbridge::connectors::webhook::{
    verify_signature, WebhookConnector, WebhookEvent, WebhookTarget,
};
use guestbridge::connectors::{Connector, DeliveryError, EventKind};

use crate::support::{event, guest, serve};

const SECRET: &str = "whsec_9f1c0e";

#[derive(Default)]
struct Received {
    events: Vec<WebhookEvent>,
    rejected: Vec<String>,
}

type Shared = Arc<Mutex<Received>>;

fn header_value<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A receiver as documented: check the signature over the raw body, then parse it.
async fn receive(req: HttpRequest, body: Bytes, state: web::Data<Shared>) -> HttpResponse {
    let mut received = state.lock().unwrap();
    let timestamp = header_value(&req, "X-Guestbridge-Timestamp");
    let signature = header_value(&req, "X-Guestbridge-Signature");
    if !verify_signature(
        SECRET,
        timestamp,
        &body,
        signature,
        Utc::now(),
        Duration::from_secs(300),
    ) {
        received.rejected.push(format!("bad signature {signature}"));
        return HttpResponse::Unauthorized().finish();
    }
    let Ok(parsed) = serde_json::from_slice::<WebhookEvent>(&body) else {
        received.rejected.push("body is not a WebhookEvent".into());
        return HttpResponse::BadRequest().finish();
    };
    let checks = [
        (
            header_value(&req, "X-Guestbridge-Event-Id") == parsed.id,
            "event id header",
        ),
        (
            header_value(&req, "Idempotency-Key") == parsed.id,
            "idempotency key",
        ),
        (
            header_value(&req, "User-Agent") == "guestbridge/0.1",
            "user agent",
        ),
        (
            header_value(&req, "Content-Type") == "application/json",
            "content type",
        ),
    ];
    for (ok, what) in checks {
        if !ok {
            received.rejected.push(what.to_string());
            return HttpResponse::BadRequest().finish();
        }
    }
    received.events.push(parsed);
    HttpResponse::NoContent().finish()
}

fn receiver() -> (String, Shared) {
    let state: Shared = Arc::default();
    let data = web::Data::new(state.clone());
    let url = serve(move || {
        App::new()
            .app_data(data.clone())
            .route("/hooks/guestbridge", web::post().to(receive))
    });
    (format!("{url}/hooks/guestbridge"), state)
}

/// A receiver that always answers `status`, with `Retry-After` if given.
fn answering(status: u16, retry_after: Option<&'static str>) -> String {
    serve(move || {
        App::new().default_service(web::to(move || async move {
            let mut reply =
                HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
            if let Some(value) = retry_after {
                reply.insert_header((header::RETRY_AFTER, value));
            }
            if (300..400).contains(&status) {
                reply.insert_header((header::LOCATION, "http://127.0.0.1:9/elsewhere"));
            }
            reply.body("{\"error\":\"nope\"}")
        }))
    })
}

fn connector(url: &str) -> WebhookConnector {
    WebhookConnector::new(
        "hook",
        WebhookTarget {
            url: url.to_string(),
            secret: SECRET.into(),
        },
    )
    .unwrap()
}

#[tokio::test]
async fn webhook_receiver_verifies_every_signature_and_gets_the_documented_body() {
    let (url, state) = receiver();
    let hook = connector(&url);
    let ann = guest(
        "g-ann",
        "ann@partner.example",
        "active",
        &[("ehr", "reader")],
    );
    let events = [
        event("e1", EventKind::GuestUpserted, ann.clone()),
        event("e2", EventKind::GuestSuspended, ann.clone()),
        event("e3", EventKind::GuestRemoved, ann.clone()),
    ];
    for e in &events {
        hook.deliver(e).await.unwrap();
    }
    let received = state.lock().unwrap();
    assert!(received.rejected.is_empty(), "{:?}", received.rejected);
    let got: Vec<(&str, &str)> = received
        .events
        .iter()
        .map(|e| (e.id.as_str(), e.event_type.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("e1", "guest.upserted"),
            ("e2", "guest.suspended"),
            ("e3", "guest.removed")
        ]
    );
    assert_eq!(received.events[0].data, ann);
    assert_eq!(received.events[0].occurred_at, events[0].occurred_at);
}

#[tokio::test]
async fn webhook_with_the_wrong_secret_is_refused_by_the_receiver() {
    let (url, state) = receiver();
    let hook = WebhookConnector::new(
        "hook",
        WebhookTarget {
            url,
            secret: "not-the-shared-one".into(),
        },
    )
    .unwrap();
    let err = hook
        .deliver(&event(
            "e1",
            EventKind::GuestUpserted,
            guest("g", "a@b.c", "active", &[]),
        ))
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "401 is permanent: {err:?}");
    assert_eq!(state.lock().unwrap().rejected.len(), 1);
}

#[tokio::test]
async fn webhook_503_is_transient_with_retry_after() {
    let hook = connector(&answering(503, Some("42")));
    let err = hook
        .deliver(&event(
            "e1",
            EventKind::GuestUpserted,
            guest("g", "a@b.c", "active", &[]),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DeliveryError::Transient {
            reason: "HTTP 503: {\"error\":\"nope\"}".into(),
            retry_after: Some(Duration::from_secs(42)),
        }
    );
}

#[tokio::test]
async fn webhook_429_without_retry_after_is_transient() {
    let hook = connector(&answering(429, None));
    let err = hook
        .deliver(&event(
            "e1",
            EventKind::GuestUpserted,
            guest("g", "a@b.c", "active", &[]),
        ))
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), None);
}

#[tokio::test]
async fn webhook_400_409_and_redirects_are_permanent() {
    for status in [400, 404, 409, 302] {
        let hook = connector(&answering(status, None));
        let err = hook
            .deliver(&event(
                "e1",
                EventKind::GuestUpserted,
                guest("g", "a@b.c", "active", &[]),
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DeliveryError::Permanent { .. }),
            "{status}: {err:?}"
        );
    }
}

#[tokio::test]
async fn webhook_receiver_down_is_transient() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hook = connector(&format!("http://127.0.0.1:{port}/hook"));
    let err = hook
        .deliver(&event(
            "e1",
            EventKind::GuestUpserted,
            guest("g", "a@b.c", "active", &[]),
        ))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}
