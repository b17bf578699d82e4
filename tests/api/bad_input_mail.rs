//! CR/LF in names that reach mail headers. A single-line SCIM string with a control
//! character is refused (400 invalidValue) on every write path; a name stored before that
//! rule still cannot add a header or a recipient to the mail it appears in (the raw message
//! the SMTP sink receives is checked).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn_with, Backend, TestApp};
use crate::isolation_attacks::{backend_name, record_count};
use crate::portal::{field, Browser};
use crate::smtp::TestSmtp;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const INJECTED: &str = "\r\nBcc: x@evil.test";

const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = "Shared health record"
launch_url = "https://ehr.example/launch"
roles = ["reader"]

[[rule]]
id = "everyone"
grants = [{ app = "ehr-viewer", role = "reader" }]
sponsor = "dr.grey@hospital.example"
"#;

both_backends!(line_breaks_in_names_never_reach_a_mail_header);

async fn users(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM scim_users")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

/// A valid user with `value` put at `attribute` (dotted for a sub-attribute).
fn with(attribute: &str, value: &str) -> Value {
    let mut doc = json!({"schemas": [USER], "userName": "eve@globex.example",
        "displayName": "Eve", "name": {"givenName": "Eve", "familyName": "Stone"},
        "emails": [{"value": "eve@globex.example", "primary": true}]});
    match attribute.split_once('.') {
        Some(("emails", sub)) => doc["emails"][0][sub] = json!(value),
        Some((outer, sub)) => doc[outer][sub] = json!(value),
        None => doc[attribute] = json!(value),
    }
    doc
}

async fn line_breaks_in_names_never_reach_a_mail_header(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = spawn_with(
        backend,
        &[("rules.toml", RULES)],
        &[
            ("GUESTBRIDGE_SMTP_URL", smtp.url.as_str()),
            ("GUESTBRIDGE_MAIL_RETRY_BASE_MS", "200"),
        ],
    )
    .await;
    let (_, globex) = app.partner("globex").await;
    let bob = globex
        .create_user(&json!({"schemas": [USER], "userName": "bob@globex.example",
            "displayName": "Bob", "emails": [{"value": "bob@globex.example", "primary": true}]}))
        .await;
    let before = users(&app).await;
    let mut tried = 0usize;
    let attributes = [
        "userName",
        "displayName",
        "nickName",
        "title",
        "externalId",
        "name.givenName",
        "name.familyName",
        "name.formatted",
        "emails.value",
        "emails.display",
    ];
    for attribute in attributes {
        for value in [
            format!("Eve{INJECTED}"),
            "Eve\nBcc: x@evil.test".to_string(),
            "Eve\rX: y".to_string(),
            "Eve\tStone".to_string(),
            "Eve\u{85}Stone".to_string(),
            "Eve\u{1b}[2J".to_string(),
        ] {
            let doc = with(attribute, &value);
            tried += 3;
            globex
                .post("/Users", &doc)
                .await
                .assert_scim_error(400, Some("invalidValue"));
            globex
                .put(&format!("/Users/{bob}"), &doc)
                .await
                .assert_scim_error(400, Some("invalidValue"));
            let path = attribute.replace("emails.", "emails[primary eq true].");
            globex
                .patch(
                    &format!("/Users/{bob}"),
                    &json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": path, "value": value}]}),
                )
                .await
                .assert_scim_error(400, Some("invalidValue"));
        }
    }
    // The same through Bulk: the operation fails, nothing is created.
    let bulk = globex
        .post(
            "/Bulk",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [{"method": "POST", "bulkId": "e", "path": "/Users",
                                "data": with("displayName", &format!("Eve{INJECTED}"))}]}),
        )
        .await;
    tried += 1;
    assert_eq!(bulk.body["Operations"][0]["status"], "400", "{}", bulk.body);
    // A postal address is text over several lines (RFC 7643 §4.1.2).
    let multi = globex
        .post(
            "/Users",
            &json!({"schemas": [USER], "userName": "multi@globex.example",
                "addresses": [{"formatted": "1 Main St\r\nSpringfield", "type": "work"}]}),
        )
        .await;
    assert_eq!(multi.status, StatusCode::CREATED, "{}", multi.body);
    globex
        .delete(&format!("/Users/{}", multi.body["id"].as_str().unwrap()))
        .await;
    assert_eq!(users(&app).await, before, "a refused write wrote");
    let shown = globex.get(&format!("/Users/{bob}")).await;
    assert_eq!(shown.body["displayName"], "Bob");

    // A name stored before the rule (or by any other way in): the declined notice to the
    // sponsor carries it in its subject.
    sqlx::query("UPDATE guests SET display_name = $1 WHERE user_id = $2")
        .bind(format!("Bob{INJECTED}\r\n\r\nInjected body"))
        .bind(&bob)
        .execute(app.deps.db.pool())
        .await
        .unwrap();
    let mails = smtp.wait_for(1, Duration::from_secs(15)).await;
    let link = mails[0]
        .find_link(&format!("{}/invite/", app.address))
        .expect("invitation link");
    let mut b = Browser::new(&app);
    let page = b.get(&link).await;
    let declined = b
        .post(
            &link,
            &[
                ("csrf", &field(&page.body, "csrf")),
                ("decision", "decline"),
            ],
        )
        .await;
    assert_eq!(declined.status, StatusCode::OK, "{}", declined.body);
    let mails = smtp.wait_for(2, Duration::from_secs(15)).await;
    let notice = mails
        .iter()
        .find(|m| m.to.iter().any(|t| t == "dr.grey@hospital.example"))
        .expect("the sponsor's notice");
    assert_eq!(notice.to, vec!["dr.grey@hospital.example".to_string()]);
    let raw = notice.raw();
    let head = raw.split("\r\n\r\n").next().unwrap();
    for line in head.split("\r\n") {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            !matches!(name.as_str(), "bcc" | "cc" | "injected body"),
            "{raw}"
        );
    }
    assert!(
        head.contains("Bob Bcc: x@evil.test Injected body"),
        "the name kept on the subject's one line: {head}"
    );
    // In the text part the name may break its line: a body line is no header.
    let body_start = raw.find("\r\n\r\n").unwrap();
    assert!(!raw[..body_start].contains("\nBcc:"), "{raw}");
    tried += 1;

    let line = format!("inputs={tried} failures=0");
    eprintln!(
        "bad input ({}, mail headers): {line}",
        backend_name(backend)
    );
    record_count(
        "bad-input.count",
        &format!("mail.{}", backend_name(backend)),
        &line,
    );
}
