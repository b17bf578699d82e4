//! Per-partner quotas and allow-lists (`[[partner]]` keys): e-mail domains a partner may
//! invite and the most people it may have, for SCIM writes and CSV rows alike.

use std::process::Command;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn_peer, spawn_with_rules, Backend, Scim, TestApp};
use crate::users_crud::clinician;

both_backends!(
    e_mail_domains_outside_the_allow_list_are_refused_and_not_written,
    creates_beyond_max_people_are_refused_and_not_written,
    only_kept_attributes_are_stored_returned_and_described,
    the_scim_rate_holds_and_is_shared_by_instances_on_postgres,
    the_partner_page_shows_the_limits,
);

const DOMAINS: &str = r#"
[[partner]]
slug = "acme"
allowed_email_domains = ["acme.example", "Partner.Example"]
"#;

const MAX_PEOPLE: &str = r#"
[[partner]]
slug = "acme"
max_people = 2
"#;

const KEPT: &str = r#"
[[partner]]
slug = "acme"
kept_attributes = ["name.givenName", "emails"]
"#;

const RATE: &str = r#"
[[partner]]
slug = "acme"
scim_requests_per_second = 2
scim_burst = 4
"#;

async fn count_named(acme: &Scim, user_name: &str) -> u64 {
    let res = acme
        .filter_users(&format!("userName eq \"{user_name}\""))
        .await;
    res.body["totalResults"].as_u64().unwrap()
}

/// Run `guestbridge import FILE --partner acme` against the app's database and rules.
fn import(app: &TestApp, csv: &str) -> String {
    let file = app.mappings.parent().unwrap().join("roster.csv");
    std::fs::write(&file, csv).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .args(["import", file.to_str().unwrap(), "--partner", "acme"])
        .env("GUESTBRIDGE_DATABASE_URL", &app.database_url)
        .env("GUESTBRIDGE_MAPPINGS", &app.mappings)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn e_mail_domains_outside_the_allow_list_are_refused_and_not_written(backend: Backend) {
    let app = spawn_with_rules(backend, &[("partners.toml", DOMAINS)]).await;
    let (_, acme) = app.partner("acme").await;

    // Allowed domains match whatever the case.
    let ann = acme.create_user(&clinician("ann@acme.example")).await;
    acme.create_user(&clinician("bo@PARTNER.example")).await;

    let create = acme.post("/Users", &clinician("eve@evil.example")).await;
    create.assert_scim_error(400, Some("invalidValue"));
    let detail = create.body["detail"].as_str().unwrap();
    assert!(detail.contains("\"evil.example\""), "{detail}");
    assert_eq!(count_named(&acme, "eve@evil.example").await, 0);

    // Any address counts, not only the primary one: a PUT and a PATCH adding one are refused.
    let mut two = clinician("ann@acme.example");
    two["emails"] = json!([
        {"value": "ann@acme.example", "primary": true},
        {"value": "ann@sub.acme.example"}
    ]);
    let put = acme.put(&format!("/Users/{ann}"), &two).await;
    put.assert_scim_error(400, Some("invalidValue"));
    assert!(put.body["detail"]
        .as_str()
        .unwrap()
        .contains("sub.acme.example"));
    let patch = acme
        .patch(
            &format!("/Users/{ann}"),
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "emails",
                                "value": [{"value": "ann@evil.example"}]}]
            }),
        )
        .await;
    patch.assert_scim_error(400, Some("invalidValue"));
    let stored = acme.get(&format!("/Users/{ann}")).await;
    assert_eq!(stored.body["emails"].as_array().unwrap().len(), 1);
    assert_eq!(stored.body["meta"]["version"], "W/\"1\"");

    // A CSV row is that row's error, with its line; the other rows go in.
    let out = import(
        &app,
        "userName,email\ncy@acme.example,cy@acme.example\ndee@evil.example,dee@evil.example\n",
    );
    assert!(out.contains("created=1"), "{out}");
    assert!(out.contains("errors=1"), "{out}");
    assert!(
        out.contains("line 3") && out.contains("evil.example"),
        "{out}"
    );
    assert_eq!(count_named(&acme, "cy@acme.example").await, 1);
    assert_eq!(count_named(&acme, "dee@evil.example").await, 0);
}

async fn creates_beyond_max_people_are_refused_and_not_written(backend: Backend) {
    let app = spawn_with_rules(backend, &[("partners.toml", MAX_PEOPLE)]).await;
    let (_, acme) = app.partner("acme").await;
    let ann = acme.create_user(&clinician("ann@acme.example")).await;
    acme.create_user(&clinician("bo@acme.example")).await;

    let third = acme.post("/Users", &clinician("cy@acme.example")).await;
    // 400 without scimType: RFC 7644 keeps 409 for duplicates and versions.
    third.assert_scim_error(400, None);
    let detail = third.body["detail"].as_str().unwrap();
    assert!(detail.contains("max_people 2"), "{detail}");
    assert_eq!(count_named(&acme, "cy@acme.example").await, 0);

    // An inactive person takes no place: deactivating one makes room.
    let deactivate = |active: bool| {
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": active}]
        })
    };
    let off = acme
        .patch(&format!("/Users/{ann}"), &deactivate(false))
        .await;
    assert_eq!(off.status.as_u16(), 200, "{}", off.body);
    acme.create_user(&clinician("cy@acme.example")).await;
    // ... and reactivating them beyond the limit is refused like a create.
    let on = acme
        .patch(&format!("/Users/{ann}"), &deactivate(true))
        .await;
    on.assert_scim_error(400, None);
    assert_eq!(
        acme.get(&format!("/Users/{ann}")).await.body["active"],
        Value::Bool(false)
    );

    // A CSV row past the limit is that row's error.
    let out = import(&app, "userName,email\ndee@acme.example,dee@acme.example\n");
    assert!(
        out.contains("created=0") && out.contains("errors=1"),
        "{out}"
    );
    assert!(
        out.contains("line 2") && out.contains("max_people"),
        "{out}"
    );
}

async fn only_kept_attributes_are_stored_returned_and_described(backend: Backend) {
    let app = spawn_with_rules(backend, &[("partners.toml", KEPT)]).await;
    let (_, acme) = app.partner("acme").await;
    let (_, other) = app.partner("initech").await;

    let created = acme.post("/Users", &clinician("ann@acme.example")).await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_string();
    let got = acme.get(&format!("/Users/{id}")).await.body;
    for body in [&created.body, &got] {
        assert_eq!(body["userName"], "ann@acme.example");
        assert_eq!(body["externalId"], "ext-ann@acme.example");
        assert_eq!(body["active"], true);
        assert_eq!(body["name"], json!({"givenName": "Ann"}), "{body}");
        assert_eq!(body["emails"][0]["value"], "ann@acme.example");
        for dropped in ["title", "displayName", crate::users_crud::ENTERPRISE] {
            assert!(body.get(dropped).is_none(), "{dropped} kept: {body}");
        }
    }
    // Not stored at all: neither the document nor the values filters read.
    let doc: String = sqlx::query_scalar("SELECT doc FROM scim_users WHERE id = $1")
        .bind(&id)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert!(
        !doc.contains("Cardiology") && !doc.contains("Staff Nurse"),
        "{doc}"
    );
    let by_title = acme.filter_users("title eq \"Staff Nurse\"").await;
    assert_eq!(by_title.body["totalResults"], 0);

    // /Schemas with this partner's token says what is kept; without a token, or for a
    // partner keeping everything, the whole schema.
    let user_schema = |schemas: &Value| -> Value {
        schemas["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "urn:ietf:params:scim:schemas:core:2.0:User")
            .cloned()
            .unwrap()
    };
    let names = |schema: &Value| -> Vec<String> {
        schema["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_string())
            .collect()
    };
    let mine = user_schema(&acme.get("/Schemas").await.body);
    let kept = names(&mine);
    assert!(kept.contains(&"userName".to_string()), "{kept:?}");
    assert!(kept.contains(&"emails".to_string()), "{kept:?}");
    assert!(!kept.contains(&"title".to_string()), "{kept:?}");
    let name = mine["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "name")
        .unwrap();
    let subs: Vec<&str> = name["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(subs, ["givenName"]);
    let one = acme
        .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
        .await
        .body;
    assert_eq!(names(&one), kept);
    let everything = names(&user_schema(&other.get("/Schemas").await.body));
    assert!(everything.contains(&"title".to_string()), "{everything:?}");
    let anonymous: Value = app.get("/scim/v2/Schemas").await.json().await.unwrap();
    assert_eq!(names(&user_schema(&anonymous)), everything);
    // A token that does not authenticate is refused, not answered as anonymous.
    let forged = Scim {
        token: "gb_forged".into(),
        ..acme.clone()
    };
    assert_eq!(forged.get("/Schemas").await.status.as_u16(), 401);

    // CSV rows are minimised alike; a column that is not kept changes nothing on a rerun.
    let csv = "userName,email,title\ncy@acme.example,cy@acme.example,Porter\n";
    assert!(import(&app, csv).contains("created=1"));
    let again = import(&app, csv);
    assert!(again.contains("unchanged=1"), "{again}");
    let cy = acme.filter_users("userName eq \"cy@acme.example\"").await;
    assert!(
        cy.body["Resources"][0].get("title").is_none(),
        "{}",
        cy.body
    );
}

async fn the_scim_rate_holds_and_is_shared_by_instances_on_postgres(backend: Backend) {
    let app = spawn_with_rules(backend, &[("partners.toml", RATE)]).await;
    let (_, acme) = app.partner("acme").await;
    let (_, other) = app.partner("initech").await;
    // On PostgreSQL a second instance draws on the same budget; on SQLite there is one.
    let peer = match backend {
        Backend::Postgres => Some(spawn_peer(&app, &[("partners.toml", RATE)]).await),
        Backend::Sqlite => None,
    };
    let clients: Vec<Scim> = match &peer {
        Some(peer) => vec![
            acme.clone(),
            Scim {
                base: peer.address.clone(),
                ..acme.clone()
            },
        ],
        None => vec![acme.clone()],
    };

    let started = std::time::Instant::now();
    let (mut admitted, mut refused) = (0u32, Vec::new());
    for i in 0..24 {
        let res = clients[i % clients.len()].get("/Users?count=1").await;
        match res.status.as_u16() {
            200 => admitted += 1,
            429 => refused.push(res),
            other => panic!("unexpected {other}: {}", res.body),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The burst of 4, then 2 a second, for both instances together.
    let most = 4 + (elapsed * 2.0).ceil() as u32;
    eprintln!(
        "{admitted} admitted, {} refused in {elapsed:.2} s",
        refused.len()
    );
    assert!(
        admitted >= 4 && admitted <= most,
        "{admitted} admitted in {elapsed:.2} s"
    );
    let first = &refused[0];
    first.assert_scim_error(429, None);
    assert!(first.body["detail"]
        .as_str()
        .unwrap()
        .contains("scim_requests_per_second"));
    let wait: u64 = first.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");

    // Another partner has its own budget.
    assert_eq!(other.get("/Users?count=1").await.status.as_u16(), 200);
    // After Retry-After, requests pass again.
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    assert_eq!(acme.get("/Users?count=1").await.status.as_u16(), 200);
}

async fn the_partner_page_shows_the_limits(backend: Backend) {
    let all = r#"
[[partner]]
slug = "acme"
allowed_email_domains = ["acme.example", "partner.example"]
max_people = 40
kept_attributes = ["name.givenName", "emails"]
scim_requests_per_second = 5
scim_burst = 20
"#;
    let app = spawn_with_rules(backend, &[("partners.toml", all)]).await;
    app.partner("acme").await;
    app.partner("globex").await;
    let grant = guestbridge::services::admin_auth::RoleGrant {
        role: guestbridge::domain::AdminRole::Admin,
        partner: None,
        sponsor: None,
    };
    let issued = guestbridge::services::partners::issue_admin_token_with_role(
        &app.deps,
        &crate::helpers::test_actor(),
        "t",
        None,
        &grant,
    )
    .await
    .unwrap();
    crate::log_scan::register_secret(&issued.secret);
    let page = |slug: &'static str| {
        let (app, secret) = (&app, issued.secret.clone());
        async move {
            let res = app
                .client
                .get(format!("{}/admin/partners/{slug}", app.address))
                .bearer_auth(secret)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 200);
            res.text().await.unwrap()
        }
    };
    let acme = page("acme").await;
    for shown in [
        "<dd id=\"limit-rate\">5 (burst 20)</dd>",
        "<dd id=\"limit-people\">40 active</dd>",
        "<dd id=\"limit-domains\">acme.example, partner.example</dd>",
        "<dd id=\"limit-kept\">userName, externalId, active, name.givenName, emails</dd>",
    ] {
        assert!(acme.contains(shown), "{shown} not in {acme}");
    }
    let globex = page("globex").await;
    for shown in [
        "<dd id=\"limit-rate\">no limit</dd>",
        "<dd id=\"limit-people\">no limit</dd>",
        "<dd id=\"limit-domains\">any domain</dd>",
        "<dd id=\"limit-kept\">all</dd>",
    ] {
        assert!(globex.contains(shown), "{shown} not in {globex}");
    }
}
