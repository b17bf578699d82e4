//! Admin tokens with names and expiry: `admin token --name N --expires DAYS` prints the id,
//! `admin list` shows every token without its secret, `admin revoke ID` works by id, and an
//! expired token is refused at authentication (401) by the API.

use std::process::{Command, Output};

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{fresh_database, settings_for, Backend, StepClock};

fn guestbridge(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .args(args)
        .env("GUESTBRIDGE_DATABASE_URL", database_url)
        .env_remove("RUST_LOG")
        .output()
        .expect("run guestbridge")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

const DAY_MS: i64 = 86_400_000;

both_backends!(
    admin_tokens_have_names_expiry_and_a_list,
    bad_admin_token_options_write_nothing
);

async fn admin_tokens_have_names_expiry_and_a_list(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    stdout(&guestbridge(&url, &["migrate"]));

    let named = stdout(&guestbridge(
        &url,
        &["admin", "token", "--name", "ops robot", "--expires", "1"],
    ));
    let lines: Vec<&str> = named.lines().collect();
    assert_eq!(lines.len(), 2, "{named}");
    assert!(
        lines[0].starts_with("admin API bearer token ") && lines[0].ends_with("(shown once):"),
        "{named}"
    );
    let id = lines[0].split(' ').nth(4).unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{named}");
    assert!(lines[0].contains("name=\"ops robot\""), "{named}");
    let expiring = lines[1].to_string();
    assert!(expiring.starts_with("gba_"), "{named}");

    // Without options, as before: a token that never expires, alone on the last line.
    let plain = stdout(&guestbridge(&url, &["admin", "token"]));
    let lasting = plain.lines().last().unwrap().to_string();
    assert!(lasting.starts_with("gba_"), "{plain}");
    assert!(plain.contains("name=\"unnamed\" expires=-"), "{plain}");

    let list = stdout(&guestbridge(&url, &["admin", "list"]));
    assert_eq!(list.lines().count(), 2, "{list}");
    let first = list.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("{id} name=\"ops robot\" created=")),
        "{list}"
    );
    assert!(
        !first.contains("expires=-") && first.contains("revoked=-"),
        "{list}"
    );
    let settings = settings_for(&url);
    let db = guestbridge::store::Db::connect(&settings.database)
        .await
        .unwrap();
    let hashes: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM admin_tokens")
        .fetch_all(db.pool())
        .await
        .unwrap();
    for secret in hashes.iter().chain([&expiring, &lasting]) {
        assert!(!list.contains(secret.as_str()), "{list}");
    }

    // A server on the same database, on a clock the test moves.
    let clock = StepClock::new();
    let app = guestbridge::startup::Application::build(settings, clock.clone())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}/api/v1/admin-tokens", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let get = |token: String| {
        let client = client.clone();
        let base = base.clone();
        async move { client.get(&base).bearer_auth(token).send().await.unwrap() }
    };
    let res = get(expiring.clone()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let text = body.to_string();
    assert_eq!(body["tokens"][0]["id"], id.as_str(), "{body}");
    assert_eq!(body["tokens"][0]["name"], "ops robot", "{body}");
    assert!(body["tokens"][0]["expires_at"].is_string(), "{body}");
    assert!(body["tokens"][1]["expires_at"].is_null(), "{body}");
    assert!(body["tokens"][0]["last_used_at"].is_string(), "{body}");
    for secret in hashes.iter().chain([&expiring, &lasting]) {
        assert!(!text.contains(secret.as_str()), "{body}");
    }

    // Ten seconds before its end the named token still works, but is not cached (it ends
    // within the cache's TTL): eleven seconds later it is refused.
    clock.advance_ms(DAY_MS - 10_000);
    assert_eq!(get(expiring.clone()).await.status(), 200);
    clock.advance_ms(11_000);
    assert_eq!(get(expiring.clone()).await.status(), 401);
    assert_eq!(get(lasting.clone()).await.status(), 200);

    // Revoking by id from the command line.
    let lasting_id = list.lines().nth(1).unwrap().split(' ').next().unwrap();
    let revoked = stdout(&guestbridge(&url, &["admin", "revoke", lasting_id]));
    assert_eq!(revoked.trim(), format!("admin token {lasting_id} revoked"));
    let list = stdout(&guestbridge(&url, &["admin", "list"]));
    assert!(
        !list.lines().nth(1).unwrap().contains("revoked=-"),
        "{list}"
    );
    // Past the server's authentication cache, the revoked token is refused too.
    clock.advance_ms(31_000);
    assert_eq!(get(lasting).await.status(), 401);
}

async fn bad_admin_token_options_write_nothing(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    stdout(&guestbridge(&url, &["migrate"]));
    for args in [
        &["admin", "token", "--expires", "0"][..],
        &["admin", "token", "--expires", "3651"],
        &["admin", "token", "--expires", "soon"],
        &["admin", "token", "--name", "  "],
        &["admin", "token", "--name", "tab\there"],
    ] {
        let out = guestbridge(&url, args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty(), "{args:?}: no reason given");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(stdout(&guestbridge(&url, &["admin", "list"])), "");
    let out = guestbridge(&url, &["admin", "revoke", "no-such-id"]);
    assert!(!out.status.success());
}
