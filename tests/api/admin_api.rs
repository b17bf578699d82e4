//! The admin API's partners, jobs and manual invitation end to end, with one error shape
//! (`error` and `request_id`) and keyset pages (`items`, `next_cursor`).

use std::process::Command;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use crate::admin_client::{assert_error_shape, expect, AdminApi};
use crate::both_backends;
use crate::helpers::{read, spawn_with, Backend, Scim, TestApp, TEST_SECRET_KEY};
use crate::smtp::TestSmtp;

const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = ""
launch_url = "https://ehr.example/"
roles = ["reader"]

[[app]]
id = "rota"
name = "Rota"
description = ""
launch_url = "https://rota.example/"
roles = ["viewer"]

[[partner]]
slug = "acme"
max_access_days = 120
mfa = true

[[rule]]
id = "acme-staff"
partners = ["acme"]
grants = [{ app = "ehr-viewer", role = "reader" }, { app = "rota", role = "viewer" }]
access_days = 30
"#;

both_backends!(
    partners_are_listed_created_disabled_and_given_tokens,
    a_guest_invited_by_hand_goes_through_the_rules_and_is_mailed,
    jobs_are_listed_run_at_an_instant_and_kept_in_history
);

async fn app(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    spawn_with(backend, &[("rules.toml", RULES)], extra).await
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

async fn scim_status(app: &TestApp, token: &str) -> u16 {
    let scim = Scim {
        base: app.address.clone(),
        token: token.to_string(),
        client: app.client.clone(),
    };
    scim.get("/Users").await.status.as_u16()
}

async fn partners_are_listed_created_disabled_and_given_tokens(backend: Backend) {
    let app = app(backend, &[]).await;
    let admin = AdminApi::new(&app).await;
    let (_, acme) = app.partner("acme").await;
    acme.create_user(&json!({"userName": "ann@acme.example"}))
        .await;

    // Without a token: 401 in the one shape.
    let res = read(
        app.client
            .get(format!("{}/partners", admin.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    expect(&res, 401);
    assert_error_shape(&res);

    let res = admin
        .post(
            "/partners",
            &json!({"slug": "globex", "name": "Globex Clinic"}),
        )
        .await;
    expect(&res, 201);
    assert_eq!(res.body["slug"], "globex");
    assert_eq!(res.body["disabled"], false);
    expect(
        &admin
            .post("/partners", &json!({"slug": "globex", "name": "Again"}))
            .await,
        409,
    );
    expect(
        &admin
            .post("/partners", &json!({"slug": "Not A Slug", "name": "X"}))
            .await,
        400,
    );
    expect(
        &admin
            .post("/partners", &json!({"slug": "initech", "name": " "}))
            .await,
        400,
    );
    expect(
        &admin.post("/partners", &json!({"slug": "initech"})).await,
        400,
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM partners WHERE slug = 'initech'").await,
        0
    );

    // Pages of one: acme, then globex, then the end.
    let first = admin.get("/partners?limit=1").await;
    expect(&first, 200);
    let item = &first.body["items"][0];
    assert_eq!(item["slug"], "acme", "{}", first.body);
    assert_eq!(item["people"], 1);
    assert_eq!(item["tokens"], 1);
    assert_eq!(item["policy"]["declared"], true);
    assert_eq!(item["policy"]["max_access_days"], 120);
    assert_eq!(item["policy"]["mfa"], true);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_string();
    let second = admin
        .get(&format!("/partners?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(second.body["items"][0]["slug"], "globex", "{}", second.body);
    assert_eq!(second.body["items"][0]["policy"]["declared"], false);
    let cursor = second.body["next_cursor"].as_str().unwrap().to_string();
    let end = admin
        .get(&format!("/partners?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(end.body["items"], json!([]));
    assert!(end.body["next_cursor"].is_null());
    for bad in ["limit=0", "limit=501", "cursor=%%%", "limit=x"] {
        expect(&admin.get(&format!("/partners?{bad}")).await, 400);
    }
    let one = admin.get("/partners/acme").await;
    expect(&one, 200);
    assert_eq!(one.body["name"], "Test Partner");
    expect(&admin.get("/partners/nobody").await, 404);

    // A named token with an end, shown once, works on SCIM.
    let res = admin
        .post(
            "/partners/globex/tokens",
            &json!({"name": "hr feed", "expires_days": 30}),
        )
        .await;
    expect(&res, 201);
    let token = res.body["token"].as_str().unwrap().to_string();
    crate::log_scan::register_secret(&token);
    assert_eq!(res.body["name"], "hr feed");
    assert!(res.body["expires_at"].is_string());
    assert_eq!(scim_status(&app, &token).await, 200);
    // A token past its end is refused (its end moved into the past before its first use).
    let res = admin
        .post("/partners/globex/tokens", &json!({"expires_days": 1}))
        .await;
    expect(&res, 201);
    let ended = res.body["token"].as_str().unwrap().to_string();
    crate::log_scan::register_secret(&ended);
    sqlx::query("UPDATE partner_tokens SET expires_at = 1 WHERE id = $1")
        .bind(res.body["id"].as_str().unwrap())
        .execute(app.deps.db.pool())
        .await
        .unwrap();
    assert_eq!(scim_status(&app, &ended).await, 401);
    for bad in [
        json!({"expires_days": 0}),
        json!({"name": ""}),
        json!({"x": 1}),
    ] {
        expect(&admin.post("/partners/globex/tokens", &bad).await, 400);
    }
    expect(&admin.post_empty("/partners/nobody/tokens").await, 404);

    // Disabled: every token of the partner gets 401 at once; enabled: they work again.
    let res = admin.post_empty("/partners/globex/disable").await;
    expect(&res, 200);
    assert_eq!(res.body["disabled"], true);
    assert_eq!(scim_status(&app, &token).await, 401);
    assert_eq!(
        scim_status(&app, &acme.token).await,
        200,
        "others unaffected"
    );
    expect(&admin.post_empty("/partners/globex/disable").await, 409);
    let res = admin.post_empty("/partners/globex/enable").await;
    expect(&res, 200);
    assert_eq!(res.body["disabled"], false);
    assert_eq!(scim_status(&app, &token).await, 200);
    expect(&admin.post_empty("/partners/globex/enable").await, 409);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action IN ('partner.disabled', 'partner.enabled')"
        )
        .await,
        2
    );
}

fn invitee(partner: &str, user_name: &str) -> Value {
    json!({"partner": partner, "userName": user_name, "givenName": "Dana", "familyName": "Ortiz",
           "email": user_name})
}

async fn a_guest_invited_by_hand_goes_through_the_rules_and_is_mailed(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app(backend, &[("GUESTBRIDGE_SMTP_URL", smtp.url.as_str())]).await;
    let admin = AdminApi::new(&app).await;
    app.partner("acme").await;
    app.partner("globex").await;

    let until = (Utc::now() + Duration::days(10)).to_rfc3339();
    let mut body = invitee("acme", "dana@acme.example");
    body["until"] = json!(until);
    body["sponsor"] = json!("dr.house@hospital.example");
    let res = admin.post("/guests", &body).await;
    expect(&res, 201);
    assert_eq!(res.body["partner"], "acme");
    assert_eq!(
        res.body["sponsor"], "dr.house@hospital.example",
        "the sponsor the admin named: {}",
        res.body
    );
    assert_eq!(res.body["state"], "invited");
    assert_eq!(res.body["mfa_required"], true, "the partner's policy");
    assert_eq!(res.body["grants"].as_array().unwrap().len(), 2);
    assert_eq!(
        res.body["grants"][0]["ends_by"], "partner_end_date",
        "{}",
        res.body
    );
    let mails = smtp.wait_for(1, StdDuration::from_secs(15)).await;
    assert_eq!(mails[0].to, vec!["dana@acme.example".to_string()]);
    assert!(
        mails[0].text_body().unwrap().contains("EHR Viewer"),
        "{}",
        mails[0].raw()
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM admin_created_people").await,
        1
    );
    let history = admin
        .get(&format!("/guests/{}", res.body["id"].as_str().unwrap()))
        .await;
    assert!(history.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["action"] == "guest.created" && h["detail"]["cause"]["via"] == "admin:invite"));

    // Only some apps: the others are revoked as an administrator revokes them.
    let mut body = invitee("acme", "eve@acme.example");
    body["apps"] = json!(["rota"]);
    let res = admin.post("/guests", &body).await;
    expect(&res, 201);
    let ends: Vec<(&str, &str)> = res.body["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["app"].as_str().unwrap(),
                g["ends_by"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        ends,
        [
            ("ehr-viewer", "admin_revocation"),
            ("rota", "rule_duration")
        ]
    );

    // Refused, writing nothing: a taken userName, bad fields, nobody the rules grant to.
    let people = || count(&app, "SELECT COUNT(*) FROM scim_users");
    let before = people().await;
    expect(
        &admin
            .post("/guests", &invitee("acme", "dana@acme.example"))
            .await,
        409,
    );
    let res = admin
        .post(
            "/guests",
            &json!({"partner": "nobody", "userName": "", "email": "not-an-address", "until": "2000-01-01T00:00:00Z",
                    "apps": ["imaging"]}),
        )
        .await;
    expect(&res, 400);
    let fields: Vec<&str> = res.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in [
        "partner",
        "userName",
        "givenName",
        "familyName",
        "email",
        "apps",
        "until",
    ] {
        assert!(fields.contains(&f), "{f} in {}", res.body);
    }
    expect(&admin.post("/guests", &json!({"until": "soon"})).await, 400);
    expect(&admin.post("/guests", &json!({"nickname": "x"})).await, 400);
    expect(
        &admin
            .post("/guests", &invitee("globex", "gil@globex.example"))
            .await,
        409,
    );
    assert_eq!(people().await, before);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM admin_created_people").await,
        2
    );
}

fn cli(app: &TestApp, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .args(args)
        .env("GUESTBRIDGE_DATABASE_URL", &app.database_url)
        .env("GUESTBRIDGE_MAPPINGS", &app.mappings)
        .env("GUESTBRIDGE_SECRET_KEY", TEST_SECRET_KEY)
        .env_remove("RUST_LOG")
        .output()
        .expect("run guestbridge");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn jobs_are_listed_run_at_an_instant_and_kept_in_history(backend: Backend) {
    let app = app(backend, &[]).await;
    let admin = AdminApi::new(&app).await;
    app.partner("acme").await;
    let mut body = invitee("acme", "fay@acme.example");
    body["until"] = json!((Utc::now() + Duration::days(3)).to_rfc3339());
    let res = admin.post("/guests", &body).await;
    expect(&res, 201);
    let id = res.body["id"].as_str().unwrap().to_string();

    let res = admin.get("/jobs").await;
    expect(&res, 200);
    let names: Vec<&str> = res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "reminders",
            "expiry",
            "deprovision",
            "outbox",
            "reconcile",
            "housekeeping"
        ]
    );
    let expiry = &res.body["items"][1];
    assert_eq!(expiry["status"], "never_run", "{expiry}");
    assert!(expiry["schedule"].is_string() && expiry["next_run"].is_string());

    // Four days on, the guest's grants have ended: the run expires them.
    let at = (Utc::now() + Duration::days(4)).to_rfc3339();
    let res = admin.post("/jobs/expiry/run", &json!({"now": at})).await;
    expect(&res, 200);
    assert_eq!(res.body["counts"]["expired"], 1, "{}", res.body);
    assert_eq!(res.body["run"]["outcome"], "ok", "{}", res.body);
    let guest = admin.get(&format!("/guests/{id}")).await;
    assert_eq!(guest.body["suspended_reason"], "expired");

    // The command line at the same instant runs the same job: nothing is left to do, as a
    // second run through the API finds too.
    let out = cli(&app, &["jobs", "run", "expiry", "--now", &at]);
    assert!(out.contains("nothing due"), "{out}");
    let res = admin.post("/jobs/expiry/run", &json!({"now": at})).await;
    expect(&res, 200);
    assert_eq!(res.body["counts"], json!({}), "{}", res.body);

    // History, newest first, in pages.
    let page = admin.get("/jobs/expiry/runs?limit=2").await;
    expect(&page, 200);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items[1]["instance"].as_str().unwrap().starts_with("cli:"));
    let cursor = page.body["next_cursor"].as_str().unwrap().to_string();
    let rest = admin
        .get(&format!("/jobs/expiry/runs?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest.body["items"][0]["counts"]["expired"], 1);
    assert!(rest.body["next_cursor"].is_null());
    let res = admin.get("/jobs").await;
    assert_eq!(res.body["items"][1]["status"], "ok");

    // A run in progress elsewhere: refused.
    let far = Utc::now().timestamp_millis() + 3_600_000;
    sqlx::query("INSERT INTO job_leases (job, owner, until) VALUES ('reminders', 'elsewhere', $1)")
        .bind(far)
        .execute(app.deps.db.pool())
        .await
        .unwrap();
    expect(&admin.post_empty("/jobs/reminders/run").await, 409);
    let res = admin.get("/jobs").await;
    assert_eq!(res.body["items"][0]["status"], "running");
    expect(&admin.post_empty("/jobs/expire/run").await, 404);
    expect(&admin.get("/jobs/expire/runs").await, 404);
    expect(
        &admin
            .post("/jobs/expiry/run", &json!({"now": "tomorrow"}))
            .await,
        400,
    );
    expect(&admin.get("/jobs/expiry/runs?cursor=bm9wZQ").await, 400);
}
