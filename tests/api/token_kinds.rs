//! Partner and admin bearer tokens go through one authenticate/revoke shape; these pin what
//! each kind must still do: a revoked token stops working at once, a partner revokes only its
//! own tokens, a second revocation finds nothing, and each revocation is audited under its
//! own kind.

use guestbridge::domain::PartnerSlug;
use guestbridge::services::partners;
use guestbridge::services::ServiceError;
use serde_json::{json, Value};
use sqlx::Row;

use crate::both_backends;
use crate::helpers::{spawn, test_actor, Backend, TestApp};

both_backends!(
    partner_tokens_revoke_within_their_partner_and_are_audited,
    admin_tokens_revoke_once_and_are_audited
);

/// The revocation entries for token `id`: (action, target_type, partner_id, detail).
async fn revocations(app: &TestApp, id: &str) -> Vec<(String, String, Option<String>, Value)> {
    let rows = sqlx::query(
        "SELECT action, target_type, partner_id, detail FROM audit_log
         WHERE target_id = $1 AND action LIKE '%.token_revoked' ORDER BY id",
    )
    .bind(id)
    .fetch_all(app.deps.db.pool())
    .await
    .unwrap();
    rows.iter()
        .map(|r| {
            let detail: String = r.get("detail");
            (
                r.get("action"),
                r.get("target_type"),
                r.get("partner_id"),
                serde_json::from_str(&detail).unwrap(),
            )
        })
        .collect()
}

async fn partner_tokens_revoke_within_their_partner_and_are_audited(backend: Backend) {
    let app = spawn(backend).await;
    let (acme, scim) = app.partner("acme").await;
    app.partner("other").await;
    let (acme_slug, other_slug) = (
        PartnerSlug::parse("acme").unwrap(),
        PartnerSlug::parse("other").unwrap(),
    );
    let token_id = partners::partner_tokens(&app.deps, &acme_slug)
        .await
        .unwrap()[0]
        .id
        .clone();
    let authenticated = partners::authenticate_partner(&app.deps, &scim.token)
        .await
        .unwrap()
        .expect("the issued token authenticates");
    assert_eq!(authenticated.id, acme.id);

    // Another partner cannot name acme's token.
    let err = partners::revoke_partner_token(&app.deps, &test_actor(), &other_slug, &token_id)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::NotFound), "{err:?}");
    assert!(partners::authenticate_partner(&app.deps, &scim.token)
        .await
        .unwrap()
        .is_some());

    partners::revoke_partner_token(&app.deps, &test_actor(), &acme_slug, &token_id)
        .await
        .unwrap();
    // Cached a moment ago, refused now: revocation drops it from this process's cache.
    assert!(partners::authenticate_partner(&app.deps, &scim.token)
        .await
        .unwrap()
        .is_none());
    let again = partners::revoke_partner_token(&app.deps, &test_actor(), &acme_slug, &token_id)
        .await
        .unwrap_err();
    assert!(matches!(again, ServiceError::NotFound), "{again:?}");
    assert_eq!(
        revocations(&app, &token_id).await,
        [(
            "partner.token_revoked".to_string(),
            "partner_token".to_string(),
            Some(acme.id.clone()),
            json!({"partner": "acme"}),
        )]
    );
}

async fn admin_tokens_revoke_once_and_are_audited(backend: Backend) {
    let app = spawn(backend).await;
    let issued = partners::issue_named_admin_token(&app.deps, &test_actor(), "robot", Some(30))
        .await
        .unwrap();
    crate::log_scan::register_secret(&issued.secret);
    assert_eq!(
        partners::authenticate_admin(&app.deps, &issued.secret)
            .await
            .unwrap(),
        Some(issued.id.clone())
    );
    partners::revoke_admin_token(&app.deps, &test_actor(), &issued.id)
        .await
        .unwrap();
    assert_eq!(
        partners::authenticate_admin(&app.deps, &issued.secret)
            .await
            .unwrap(),
        None
    );
    let again = partners::revoke_admin_token(&app.deps, &test_actor(), &issued.id)
        .await
        .unwrap_err();
    assert!(matches!(again, ServiceError::NotFound), "{again:?}");
    assert_eq!(
        revocations(&app, &issued.id).await,
        [(
            "admin.token_revoked".to_string(),
            "admin_token".to_string(),
            None,
            json!({}),
        )]
    );
}
