//! `guestbridge keys reseal`: every sealed secret moves to the new key in one go, a wrong
//! old key changes nothing, and a server on the new key opens everything.

use std::process::{Command, Output};
use std::time::Duration;

use guestbridge::auth::secrets::SecretBox;
use serde_json::json;

use crate::both_backends;
use crate::helpers::{spawn_peer_with, spawn_with_rules, Backend, TestApp, TEST_SECRET_KEY};
use crate::smtp::TestSmtp;
use crate::users_crud::ENTERPRISE;

both_backends!(reseal_moves_every_secret_to_the_new_key_or_changes_nothing);

const NEW_KEY: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1eff";
const WRONG_KEY: &str = "aa0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1eaa";

const RULES: &str = r#"
[[app]]
id = "ehr"
name = "EHR"
description = "Records"
launch_url = "https://ehr.example/"
roles = ["reader"]

[[partner]]
slug = "acme"
approval = "auto"

[[rule]]
id = "everyone"
condition = 'userName pr'
grants = [{ app = "ehr", role = "reader" }]
"#;

fn reseal(app: &TestApp, old_key: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .args(["keys", "reseal"])
        .env("GUESTBRIDGE_DATABASE_URL", &app.database_url)
        .env("GUESTBRIDGE_MAPPINGS", &app.mappings)
        .env("GUESTBRIDGE_SECRET_KEY", old_key)
        .env("GUESTBRIDGE_NEW_SECRET_KEY", NEW_KEY)
        .env_remove("RUST_LOG")
        .output()
        .expect("run guestbridge")
}

/// Every sealed value with the row it is bound to: (what, bound to, sealed text).
async fn sealed(app: &TestApp) -> Vec<(String, String, String)> {
    let pool = app.deps.db.pool();
    let mut out = Vec::new();
    for (what, sql) in [
        (
            "key",
            "SELECT kid, private_sealed FROM signing_keys ORDER BY kid",
        ),
        (
            "totp",
            "SELECT guest_id, totp_secret_sealed FROM guest_mfa ORDER BY guest_id",
        ),
        (
            "mail",
            "SELECT idempotency_key, body_sealed FROM mail_outbox WHERE body_sealed IS NOT NULL ORDER BY id",
        ),
    ] {
        let rows: Vec<(String, String)> = sqlx::query_as(sql).fetch_all(pool).await.unwrap();
        out.extend(rows.into_iter().map(|(b, s)| (what.to_string(), b, s)));
    }
    out
}

fn opens_all(key: &str, values: &[(String, String, String)]) -> bool {
    let sb = SecretBox::from_setting(key).unwrap();
    values
        .iter()
        .all(|(_, bound, s)| sb.open(s, bound.as_bytes()).is_ok())
}

fn opens_none(key: &str, values: &[(String, String, String)]) -> bool {
    let sb = SecretBox::from_setting(key).unwrap();
    values
        .iter()
        .all(|(_, bound, s)| sb.open(s, bound.as_bytes()).is_err())
}

async fn reseal_moves_every_secret_to_the_new_key_or_changes_nothing(backend: Backend) {
    let a = spawn_with_rules(backend, &[("rules.toml", RULES)]).await;
    guestbridge::services::signing::ensure_key(&a.deps)
        .await
        .unwrap();
    let (_, acme) = a.partner("acme").await;
    for name in ["ann@acme.example", "bo@acme.example"] {
        acme.create_user(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
            "userName": name,
            "emails": [{"value": name, "primary": true}],
        }))
        .await;
    }
    let guest_id: String = sqlx::query_scalar("SELECT id FROM guests ORDER BY id LIMIT 1")
        .fetch_one(a.deps.db.pool())
        .await
        .unwrap();
    let seed = guestbridge::auth::totp::new_secret();
    let sealed_seed = a
        .deps
        .portal
        .secrets
        .seal(&seed, guest_id.as_bytes())
        .unwrap();
    sqlx::query(
        "INSERT INTO guest_mfa (guest_id, totp_secret_sealed, enrolled_at) VALUES ($1, $2, $3)",
    )
    .bind(&guest_id)
    .bind(&sealed_seed)
    .bind(1_i64)
    .execute(a.deps.db.pool())
    .await
    .unwrap();
    let before = sealed(&a).await;
    let mails = before.iter().filter(|(w, _, _)| w == "mail").count();
    let keys = before.iter().filter(|(w, _, _)| w == "key").count();
    assert!(mails >= 2 && keys >= 1, "{before:?}");
    assert!(opens_all(TEST_SECRET_KEY, &before));

    // A wrong current key: refused, nothing changed.
    let refused = reseal(&a, WRONG_KEY);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert!(!stderr.contains(NEW_KEY) && !stderr.contains(WRONG_KEY));
    assert_eq!(sealed(&a).await, before);

    let done = reseal(&a, TEST_SECRET_KEY);
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    println!("{}", stdout.trim());
    assert!(
        stdout.contains(&format!(
            "resealed {keys} signing key(s), 1 TOTP seed(s), {mails} mail bod(ies)"
        )),
        "{stdout}"
    );
    let after = sealed(&a).await;
    assert_eq!(after.len(), before.len());
    assert!(opens_all(NEW_KEY, &after));
    assert!(opens_none(TEST_SECRET_KEY, &after));

    // A server on the new key: its signing key loads, the TOTP seed verifies, mail sends.
    let b = spawn_peer_with(
        &a,
        &[("rules.toml", RULES)],
        &[("GUESTBRIDGE_SECRET_KEY", NEW_KEY)],
    )
    .await;
    guestbridge::services::signing::active_key(&b.deps)
        .await
        .expect("the signing key opens under the new key");
    let stored: String =
        sqlx::query_scalar("SELECT totp_secret_sealed FROM guest_mfa WHERE guest_id = $1")
            .bind(&guest_id)
            .fetch_one(b.deps.db.pool())
            .await
            .unwrap();
    let opened = b
        .deps
        .portal
        .secrets
        .open(&stored, guest_id.as_bytes())
        .unwrap();
    let now = chrono::Utc::now().timestamp() as u64;
    let code = guestbridge::auth::totp::code_at(&opened, now);
    assert!(guestbridge::auth::totp::verify(&opened, &code, now, None).is_some());
    let smtp = TestSmtp::start();
    let sender = guestbridge::mail::smtp::SmtpSender::new(
        &smtp.url,
        "guestbridge@hospital.example",
        Duration::from_secs(30),
    )
    .unwrap();
    let policy = guestbridge::services::mail_sender::RetryPolicy {
        base_ms: 100,
        max_attempts: 3,
        lease_ms: 10_000,
    };
    let delivery =
        guestbridge::services::mail_sender::deliver_due(&b.deps, &sender, policy, "reseal")
            .await
            .unwrap();
    assert_eq!(delivery.sent as usize, mails, "{delivery:?}");
    assert_eq!(
        smtp.wait_for(mails, Duration::from_secs(10)).await.len(),
        mails
    );
    // The old key opens nothing any more: the server still on it fails to load its keys.
    assert!(guestbridge::services::signing::active_key(&a.deps)
        .await
        .is_err());
}
