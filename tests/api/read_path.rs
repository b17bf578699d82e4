//! The read path of issue 9: cached token authentication and its revocation, list totals
//! taken from the page instead of `COUNT(*)`, a user's groups read with the user, and keyset
//! pages that continue correctly across rows created in the same millisecond.

use guestbridge::auth::cache::TOKEN_CACHE_TTL_MS;
use guestbridge::clock::{to_rfc3339, Clock};
use guestbridge::domain::PartnerSlug;
use guestbridge::services::partners;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{
    read, spawn, spawn_with_clock, test_actor, Backend, Res, Scim, StepClock, TestApp,
};
use crate::users_crud::clinician;

both_backends!(
    known_tokens_are_cached_and_revocation_here_is_immediate,
    list_totals_are_right_with_or_without_a_count,
    cursor_pages_continue_across_rows_of_the_same_instant,
    user_groups_come_with_the_user_and_only_when_wanted,
);

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

/// `totalResults` of a list request, checking it against the resources returned.
async fn total(scim: &Scim, query: &str, resources: usize) -> i64 {
    let res = scim.get(query).await;
    assert_eq!(res.status, StatusCode::OK, "{query}: {}", res.body);
    assert_eq!(
        res.body["Resources"].as_array().map_or(0, Vec::len),
        resources,
        "{query}: {}",
        res.body
    );
    res.body["totalResults"].as_i64().expect("totalResults")
}

async fn list_totals_are_right_with_or_without_a_count(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    for i in 0..5 {
        scim.create_user(&clinician(&format!("u{i}@acme.example")))
            .await;
    }
    let (_, globex) = app.partner("globex").await;
    globex.create_user(&clinician("u0@acme.example")).await;

    let eq = crate::helpers::url_encode("userName eq \"u3@acme.example\"");
    let none = crate::helpers::url_encode("userName eq \"nobody@acme.example\"");
    let sw = crate::helpers::url_encode("userName sw \"u\"");
    for (query, resources, expected) in [
        // Answered by the page: one match, no match, a short first or last page.
        (format!("/Users?filter={eq}"), 1, 1),
        (format!("/Users?filter={none}"), 0, 0),
        ("/Users".to_string(), 5, 5),
        ("/Users?startIndex=5&count=2".to_string(), 1, 5),
        (format!("/Users?filter={sw}&startIndex=3&count=10"), 3, 5),
        (format!("/Users?filter={eq}&startIndex=2"), 0, 1),
        // Counted: a full page, a page past the end, count=0.
        ("/Users?count=2".to_string(), 2, 5),
        ("/Users?startIndex=4&count=2".to_string(), 2, 5),
        ("/Users?startIndex=9&count=2".to_string(), 0, 5),
        ("/Users?count=0".to_string(), 0, 5),
        (format!("/Users?filter={sw}&count=0"), 0, 5),
    ] {
        assert_eq!(total(&scim, &query, resources).await, expected, "{query}");
    }

    // Cursor pages report the total on every page, first, middle and last.
    let mut url = "/Users?cursor=&count=2".to_string();
    let mut sizes = Vec::new();
    loop {
        let page = scim.get(&url).await;
        assert_eq!(page.body["totalResults"], 5, "{url}: {}", page.body);
        sizes.push(page.body["Resources"].as_array().unwrap().len());
        match page.body["nextCursor"].as_str() {
            Some(next) => url = format!("/Users?cursor={next}&count=2"),
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(total(&scim, "/Users?cursor=&count=10", 5).await, 5);

    // Groups list the same way.
    for name in ["Nurses", "Porters"] {
        let res = scim.post("/Groups", &json!({"displayName": name})).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    }
    assert_eq!(total(&scim, "/Groups", 2).await, 2);
    assert_eq!(total(&scim, "/Groups?count=1", 1).await, 2);
    assert_eq!(total(&scim, "/Groups?startIndex=3", 0).await, 2);
    assert_eq!(total(&globex, "/Groups", 0).await, 0);
}

async fn cursor_pages_continue_across_rows_of_the_same_instant(backend: Backend) {
    let clock = StepClock::new();
    let app = spawn_with_clock(backend, &[], &[], clock.clone()).await;
    let (partner, scim) = app.partner("acme").await;
    // Three instants with 3, 4 and 2 users each: pages of 2 and 3 split every group.
    let mut expected = Vec::new();
    let mut n = 0;
    for size in [3, 4, 2] {
        let at = guestbridge::clock::to_millis(clock.now());
        for _ in 0..size {
            let id = scim
                .create_user(&clinician(&format!("u{n}@acme.example")))
                .await;
            expected.push((at, id));
            n += 1;
        }
        clock.advance_ms(1);
    }
    expected.sort();
    let expected_ids: Vec<String> = expected.iter().map(|(_, id)| id.clone()).collect();

    for count in [2, 3] {
        let mut seen = Vec::new();
        let mut url = format!("/Users?cursor=&count={count}");
        loop {
            let page = scim.get(&url).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            for r in page.body["Resources"].as_array().unwrap() {
                seen.push(r["id"].as_str().unwrap().to_string());
            }
            match page.body["nextCursor"].as_str() {
                Some(next) => url = format!("/Users?cursor={next}&count={count}"),
                None => break,
            }
        }
        assert_eq!(seen, expected_ids, "pages of {count}");
    }

    // The store's full-scan pages (rules, imports) continue the same way.
    let mut conn = app.deps.db.pool().acquire().await.unwrap();
    let mut after: Option<(i64, String)> = None;
    let mut seen = Vec::new();
    loop {
        let page = guestbridge::store::users::page_after(&mut conn, &partner.id, after.as_ref(), 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id.clone()));
        seen.extend(page.into_iter().map(|u| u.id));
    }
    assert_eq!(seen, expected_ids);
}

async fn user_groups_come_with_the_user_and_only_when_wanted(backend: Backend) {
    let app = spawn(backend).await;
    let (partner, scim) = app.partner("acme").await;
    let ann = scim.create_user(&clinician("ann@acme.example")).await;
    let bob = scim.create_user(&clinician("bob@acme.example")).await;
    // Display names with separators, digits and characters beyond ASCII.
    let mut gids = Vec::new();
    for name in ["Zoë's rota 🚑", "ICU: 12:beds", "alpha"] {
        let res = scim
            .post(
                "/Groups",
                &json!({"displayName": name, "members": [{"value": ann}]}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        gids.push(res.body["id"].as_str().unwrap().to_string());
    }
    let group = |i: usize, name: &str| {
        json!({"value": gids[i], "$ref": format!("{}/scim/v2/Groups/{}", app.address, gids[i]),
               "display": name, "type": "direct"})
    };
    // Ordered by display name, case-insensitively.
    let expected = json!([
        group(2, "alpha"),
        group(1, "ICU: 12:beds"),
        group(0, "Zoë's rota 🚑")
    ]);

    let one = scim.get(&format!("/Users/{ann}")).await;
    assert_eq!(one.body["groups"], expected);
    // They came packed in the user's own statement, not from the fallback query.
    let mut conn = app.deps.db.pool().acquire().await.unwrap();
    let (_, packed) = guestbridge::store::users::get_with_groups(&mut conn, &partner.id, &ann)
        .await
        .unwrap()
        .unwrap();
    let unpacked = guestbridge::store::users::unpack_groups(&packed.unwrap()).unwrap();
    assert_eq!(unpacked[2], (gids[0].clone(), "Zoë's rota 🚑".to_string()));
    let (_, none) = guestbridge::store::users::get_with_groups(&mut conn, &partner.id, &bob)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(none, None);
    drop(conn);
    let filter = crate::helpers::url_encode("userName eq \"ann@acme.example\"");
    let listed = scim.get(&format!("/Users?filter={filter}")).await;
    assert_eq!(listed.body["Resources"][0]["groups"], expected);
    let all = scim.get("/Users").await;
    let resources = all.body["Resources"].as_array().unwrap();
    assert_eq!(resources.len(), 2);
    let bobs = resources.iter().find(|r| r["id"] == bob.as_str()).unwrap();
    assert!(bobs.get("groups").is_none(), "{bobs}");

    for query in ["excludedAttributes=groups", "attributes=userName"] {
        let one = scim.get(&format!("/Users/{ann}?{query}")).await;
        assert_eq!(one.status, StatusCode::OK);
        assert!(one.body.get("groups").is_none(), "{query}: {}", one.body);
        let listed = scim.get(&format!("/Users?filter={filter}&{query}")).await;
        assert!(
            listed.body["Resources"][0].get("groups").is_none(),
            "{query}: {}",
            listed.body
        );
    }
    let only = scim.get(&format!("/Users/{ann}?attributes=groups")).await;
    assert_eq!(only.body["groups"], expected);

    // A membership change shows on the next read.
    let res = scim
        .patch(
            &format!("/Groups/{}", gids[2]),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "remove", "path": format!("members[value eq \"{ann}\"]")}]}),
        )
        .await;
    assert!(res.status.is_success(), "{}", res.body);
    let one = scim.get(&format!("/Users/{ann}")).await;
    assert_eq!(
        one.body["groups"],
        json!([group(1, "ICU: 12:beds"), group(0, "Zoë's rota 🚑")])
    );
}
