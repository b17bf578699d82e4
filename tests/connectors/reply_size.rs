//! Connector replies are read up to 4 MiB: a receiver answering 5 MiB, with or without a
//! `Content-Length`, gets a permanent delivery error that says why; a 3 MiB reply is read.

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse};
use futures_util::stream;
use guestbridge::connectors::webhook::{WebhookConnector, WebhookTarget};
use guestbridge::connectors::{Connector, DeliveryError, EventKind};

use crate::support::{event, guest, serve};

const MIB: usize = 1024 * 1024;

/// A receiver answering 200 with `size` bytes, in 64 KiB chunks without a length when
/// `chunked` (so only counting what arrives can stop it).
fn answering_with(size: usize, chunked: bool) -> String {
    serve(move || {
        App::new().default_service(web::to(move || async move {
            if chunked {
                let chunks = (0..size.div_ceil(64 * 1024)).map(move |i| {
                    let len = (size - i * 64 * 1024).min(64 * 1024);
                    Ok::<_, actix_web::Error>(Bytes::from(vec![b'x'; len]))
                });
                HttpResponse::Ok().streaming(stream::iter(chunks))
            } else {
                HttpResponse::Ok().body(vec![b'x'; size])
            }
        }))
    })
}

async fn deliver_to(url: String) -> Result<(), DeliveryError> {
    let hook = WebhookConnector::new(
        "hook",
        WebhookTarget {
            url,
            secret: "whsec_size".into(),
        },
    )
    .unwrap();
    hook.deliver(&event(
        "e1",
        EventKind::GuestUpserted,
        guest("g", "a@b.c", "active", &[]),
    ))
    .await
}

#[tokio::test]
async fn a_five_mib_reply_is_a_permanent_error_with_or_without_a_length() {
    for chunked in [false, true] {
        let err = deliver_to(answering_with(5 * MIB, chunked))
            .await
            .expect_err("a 5 MiB reply must not be accepted");
        assert_eq!(
            err,
            DeliveryError::Permanent {
                reason: "HTTP 200: reply larger than the 4 MiB we read".into()
            },
            "chunked={chunked}"
        );
    }
}

#[tokio::test]
async fn a_three_mib_reply_is_read() {
    for chunked in [false, true] {
        deliver_to(answering_with(3 * MIB, chunked))
            .await
            .unwrap_or_else(|e| panic!("chunked={chunked}: {e}"));
    }
}
