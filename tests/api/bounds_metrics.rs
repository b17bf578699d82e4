//! `/metrics` with `metrics_token` set answers only that bearer token; without it, anyone.

use crate::both_backends;
use crate::helpers::{spawn, spawn_with, Backend};

both_backends!(metrics_want_the_token_when_one_is_set);

async fn metrics_want_the_token_when_one_is_set(backend: Backend) {
    let token = "mt_3f9a1c77e2";
    let app = spawn_with(backend, &[], &[("GUESTBRIDGE_METRICS_TOKEN", token)]).await;
    let url = format!("{}/metrics", app.address);
    let no_token = app.client.get(&url).send().await.unwrap();
    assert_eq!(no_token.status().as_u16(), 401);
    assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
    for wrong in ["mt_3f9a1c77e", "mt_3f9a1c77e2x", ""] {
        let res = app.client.get(&url).bearer_auth(wrong).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401, "{wrong:?}");
    }
    let ok = app.client.get(&url).bearer_auth(token).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert!(ok.text().await.unwrap().contains("guestbridge_mail_outbox"));
    // The token is a secret: the settings never print it.
    let settings = crate::helpers::settings_with(
        "sqlite:///nonexistent/guestbridge.db",
        std::path::Path::new("/nonexistent"),
        &[("GUESTBRIDGE_METRICS_TOKEN", token)],
    );
    assert!(settings.http.metrics_token.is_some());
    assert!(!format!("{settings:?}").contains(token));

    let open = spawn(backend).await;
    let res = open.client.get(format!("{}/metrics", open.address)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "without metrics_token /metrics stays open");
}
