//! The inactive-guest policy per partner: `policy preview` (the command line, changing
//! nothing) lists who a `deprovision` run at an instant suspends or removes, and the run at
//! that instant does exactly that. (Activity through an app is checked in forward_auth.rs
//! and oidc_provider.rs.)

use std::collections::BTreeMap;
use std::process::Command;

use chrono::{DateTime, Duration, Utc};

use crate::both_backends;
use crate::helpers::{spawn_with, Backend, TestApp};

const RULES: &str = r#"
[[app]]
id = "ehr"
name = "EHR"
description = ""
launch_url = "https://ehr.example/"
roles = ["reader"]

[[partner]]
slug = "acme"
inactive_days = 30
inactive_remove_after_days = 10

[[rule]]
id = "everyone"
grants = [{ app = "ehr", role = "reader" }]
"#;

both_backends!(preview_and_run_agree_exactly);

fn days(n: i64) -> Duration {
    Duration::days(n)
}

/// A guest of `partner` in `state`, last seen at `seen`.
async fn guest(
    app: &TestApp,
    scim: &crate::helpers::Scim,
    user: &str,
    state: &str,
    seen: DateTime<Utc>,
) {
    scim.create_user(&serde_json::json!({"userName": user, "emails": [{"value": user}]}))
        .await;
    // Bound, not spelled in the SQL: statements are logged, and the log scan refuses e-mails.
    sqlx::query("UPDATE guests SET state = $1, last_seen_at = $2 WHERE user_name = $3")
        .bind(state)
        .bind(seen.timestamp_millis())
        .bind(user)
        .execute(app.deps.db.pool())
        .await
        .unwrap();
}

fn preview(app: &TestApp, args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .args(["policy", "preview"])
        .args(args)
        .env("GUESTBRIDGE_DATABASE_URL", &app.database_url)
        .env("GUESTBRIDGE_MAPPINGS", &app.mappings)
        .env("GUESTBRIDGE_SECRET_KEY", crate::helpers::TEST_SECRET_KEY)
        .env_remove("RUST_LOG")
        .output()
        .expect("run guestbridge");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

async fn states(app: &TestApp) -> BTreeMap<String, String> {
    sqlx::query_as::<_, (String, String)>("SELECT user_name, state FROM guests")
        .fetch_all(app.deps.db.pool())
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn preview_and_run_agree_exactly(backend: Backend) {
    let app = spawn_with(backend, &[("rules.toml", RULES)], &[]).await;
    let (_, acme) = app.partner("acme").await;
    let (_, globex) = app.partner("globex").await;
    let t0 = Utc::now();
    // acme: 30 days, then removal 10 days later. globex: the 90-day default, no removal.
    guest(&app, &acme, "a-35@acme.example", "active", t0 - days(35)).await;
    guest(&app, &acme, "a-45@acme.example", "active", t0 - days(45)).await;
    guest(&app, &acme, "a-20@acme.example", "active", t0 - days(20)).await;
    guest(
        &app,
        &acme,
        "a-38-suspended@acme.example",
        "suspended:inactive",
        t0 - days(38),
    )
    .await;
    guest(
        &app,
        &acme,
        "a-50-suspended@acme.example",
        "suspended:inactive",
        t0 - days(50),
    )
    .await;
    guest(
        &app,
        &acme,
        "a-50-admin@acme.example",
        "suspended:admin",
        t0 - days(50),
    )
    .await;
    guest(
        &app,
        &globex,
        "g-95@globex.example",
        "active",
        t0 - days(95),
    )
    .await;
    guest(
        &app,
        &globex,
        "g-70@globex.example",
        "active",
        t0 - days(70),
    )
    .await;
    guest(
        &app,
        &globex,
        "g-200-suspended@globex.example",
        "suspended:inactive",
        t0 - days(200),
    )
    .await;
    let before = states(&app).await;

    let now = guestbridge::clock::to_rfc3339(t0);
    let lines = preview(&app, &["--now", &now]);
    let listed = |kind: &str| {
        let mut out: Vec<String> = lines
            .iter()
            .filter(|l| l.split(' ').nth(1) == Some(kind))
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                format!("{} {}", f[2], f[4].trim_start_matches("userName="))
            })
            .collect();
        out.sort();
        out
    };
    let due = listed("due");
    assert_eq!(
        due,
        [
            "remove a-45@acme.example",
            "remove a-50-suspended@acme.example",
            "suspend a-35@acme.example",
            "suspend a-45@acme.example",
            "suspend g-95@globex.example",
        ],
        "{lines:#?}"
    );
    assert_eq!(
        listed("upcoming"),
        [
            // Still unseen by then, an active guest's suspension is followed by removal.
            "remove a-20@acme.example",
            "remove a-35@acme.example",
            "remove a-38-suspended@acme.example",
            "suspend a-20@acme.example",
            "suspend g-70@globex.example",
        ],
        "{lines:#?}"
    );
    assert_eq!(
        lines.last().unwrap(),
        &format!("at {now}: due suspend=3 remove=2; next 30 days suspend=2 remove=3")
    );
    assert_eq!(states(&app).await, before, "a preview changes nothing");
    let only_globex = preview(&app, &["--now", &now, "--partner", "globex", "--days", "0"]);
    assert_eq!(only_globex.len(), 2, "{only_globex:#?}");
    assert!(only_globex[0].contains("suspend") && only_globex[0].contains("g-95@globex.example"));

    // The run at the same instant does exactly what was listed as due.
    let report = guestbridge::jobs::run_once(
        "deprovision",
        &app.deps,
        &guestbridge::config::Settings::load(None, &BTreeMap::new()).unwrap(),
        None,
        t0,
        "a",
    )
    .await
    .unwrap();
    assert_eq!(
        report.counts.get("inactive"),
        Some(&3),
        "{:?}",
        report.counts
    );
    assert_eq!(
        report.counts.get("inactive_removed"),
        Some(&2),
        "{:?}",
        report.counts
    );
    let after = states(&app).await;
    let changed: Vec<String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    assert_eq!(
        changed,
        [
            "a-35@acme.example suspended:inactive",
            "a-45@acme.example removed",
            "a-50-suspended@acme.example removed",
            "g-95@globex.example suspended:inactive",
        ]
    );
    // Now nothing more is due at that instant.
    let again = preview(&app, &["--now", &now, "--days", "0"]);
    assert_eq!(
        again,
        [format!(
            "at {now}: due suspend=0 remove=0; next 0 days suspend=0 remove=0"
        )]
    );
}
