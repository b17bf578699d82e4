//! Per-partner quotas and allow-lists (`[[partner]]` keys): e-mail domains a partner may
//! invite and the most people it may have, for SCIM writes and CSV rows alike.

use std::process::Command;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn_with_rules, Backend, Scim, TestApp};
use crate::users_crud::clinician;

both_backends!(
    e_mail_domains_outside_the_allow_list_are_refused_and_not_written,
    creates_beyond_max_people_are_refused_and_not_written,
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
