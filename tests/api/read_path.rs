//! The read path of issue 9: cached token authentication and its revocation.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use guestbridge::auth::cache::TOKEN_CACHE_TTL_MS;
use guestbridge::clock::{to_rfc3339, Clock};
use guestbridge::domain::PartnerSlug;
use guestbridge::services::partners;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{read, spawn_with_clock, test_actor, Backend, Res, Scim, TestApp};

both_backends!(known_tokens_are_cached_and_revocation_here_is_immediate);

/// A clock that stands still until moved.
#[derive(Debug)]
struct StepClock(Mutex<DateTime<Utc>>);

impl StepClock {
    fn new() -> Arc<Self> {
        Arc::new(StepClock(Mutex::new(Utc::now())))
    }

    fn advance_ms(&self, ms: i64) {
        *self.0.lock().unwrap() += chrono::Duration::milliseconds(ms);
    }
}

impl Clock for StepClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

async fn admin(app: &TestApp, token: &str, method: Method, path: &str) -> Res {
    read(
        app.client
            .request(method, format!("{}/api/v1{path}", app.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The partner's token entry with this id, as the admin API lists it.
async fn token_entry(app: &TestApp, admin_token: &str, id: &str) -> Value {
    let list = admin(app, admin_token, Method::GET, "/partners/acme/tokens").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let entry = list.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
        .expect("token listed");
    assert!(entry.get("token_hash").is_none() && entry.get("secret").is_none());
    entry
}

async fn known_tokens_are_cached_and_revocation_here_is_immediate(backend: Backend) {
    let clock = StepClock::new();
    let app = spawn_with_clock(backend, &[], &[], clock.clone()).await;
    let slug = PartnerSlug::parse("acme").unwrap();
    partners::add_partner(&app.deps, &test_actor(), &slug, "Acme")
        .await
        .unwrap();
    let scim_for = |token: String| Scim {
        base: app.address.clone(),
        token,
        client: app.client.clone(),
    };
    let admin_token = partners::issue_admin_token(&app.deps, &test_actor())
        .await
        .unwrap();
    let t0 = clock.now();

    // The first request looks the token up (and records its use); it is then cached.
    let (first_id, first) = partners::issue_partner_token_with_id(&app.deps, &test_actor(), &slug)
        .await
        .unwrap();
    let scim = scim_for(first);
    assert_eq!(scim.get("/Users").await.status, StatusCode::OK);
    let entry = token_entry(&app, &admin_token, &first_id).await;
    assert_eq!(entry["last_used_at"], to_rfc3339(t0));
    assert_eq!(entry["revoked_at"], Value::Null);

    // Revoked by another instance (straight in the database): this one learns of it when
    // its cache entry expires, not before, which is what proves the entry is used.
    sqlx::query("UPDATE partner_tokens SET revoked_at = $1 WHERE id = $2")
        .bind(guestbridge::clock::to_millis(t0))
        .bind(&first_id)
        .execute(app.deps.db.pool())
        .await
        .unwrap();
    clock.advance_ms(TOKEN_CACHE_TTL_MS - 1);
    assert_eq!(scim.get("/Users").await.status, StatusCode::OK);
    clock.advance_ms(1);
    scim.get("/Users").await.assert_scim_error(401, None);

    // Revoked through this instance's admin API: refused on the very next request.
    let (second_id, second) =
        partners::issue_partner_token_with_id(&app.deps, &test_actor(), &slug)
            .await
            .unwrap();
    let scim = scim_for(second);
    assert_eq!(scim.get("/Users").await.status, StatusCode::OK);
    assert_eq!(scim.get("/Users").await.status, StatusCode::OK);
    let path = format!("/partners/acme/tokens/{second_id}");
    let revoked = admin(&app, &admin_token, Method::DELETE, &path).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    scim.get("/Users").await.assert_scim_error(401, None);
    let again = admin(&app, &admin_token, Method::DELETE, &path).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let other_partner = admin(
        &app,
        &admin_token,
        Method::DELETE,
        &format!("/partners/globex/tokens/{second_id}"),
    )
    .await;
    assert_eq!(other_partner.status, StatusCode::NOT_FOUND);
    assert_eq!(
        token_entry(&app, &admin_token, &second_id).await["revoked_at"],
        to_rfc3339(clock.now())
    );

    // last_used_at still advances while a token is served from the cache: at most once per
    // cache entry, when the entry is refilled and the stored value is stale.
    let (third_id, third) = partners::issue_partner_token_with_id(&app.deps, &test_actor(), &slug)
        .await
        .unwrap();
    let scim = scim_for(third);
    let used = clock.now();
    assert_eq!(scim.get("/Users").await.status, StatusCode::OK);
    clock.advance_ms(20_000);
    assert_eq!(scim.get("/Users").await.status, StatusCode::OK);
    assert_eq!(
        token_entry(&app, &admin_token, &third_id).await["last_used_at"],
        to_rfc3339(used)
    );
    clock.advance_ms(41_000);
    assert_eq!(scim.get("/Users").await.status, StatusCode::OK);
    assert_eq!(
        token_entry(&app, &admin_token, &third_id).await["last_used_at"],
        to_rfc3339(clock.now())
    );

    // Admin tokens are cached and revoked the same way, including an admin's own.
    let admin_id: String = sqlx::query_scalar("SELECT id FROM admin_tokens WHERE token_hash = $1")
        .bind(guestbridge::auth::tokens::hash(&admin_token))
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    let own = format!("/admin-tokens/{admin_id}");
    let res = admin(&app, &admin_token, Method::DELETE, &own).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.body);
    let after = admin(&app, &admin_token, Method::GET, "/partners/acme/tokens").await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}
