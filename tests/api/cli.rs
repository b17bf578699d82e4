//! The command-line contract: partner add, token issue, admin token, migrate, and errors.

use std::process::{Command, Output};

use serde_json::json;

use crate::both_backends;
use crate::helpers::{fresh_database, read, settings_for, Backend, Scim};

fn guestbridge(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .args(args)
        .env("GUESTBRIDGE_DATABASE_URL", database_url)
        .env_remove("RUST_LOG")
        .output()
        .expect("run guestbridge")
}

fn last_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

both_backends!(
    cli_registers_partners_and_issues_working_tokens,
    cli_errors_are_one_line_and_non_zero
);

async fn cli_registers_partners_and_issues_working_tokens(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    let migrate = guestbridge(&url, &["migrate"]);
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let add = guestbridge(&url, &["partner", "add", "acme", "--name", "Acme Health"]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let issue = guestbridge(&url, &["token", "issue", "acme"]);
    assert!(
        issue.status.success(),
        "{}",
        String::from_utf8_lossy(&issue.stderr)
    );
    let token = last_line(&issue);
    assert!(token.starts_with("gbp_") && !token.contains(' '), "{token}");
    let admin = guestbridge(&url, &["admin", "token"]);
    assert!(admin.status.success());
    assert!(last_line(&admin).starts_with("gba_"));

    // Tokens are stored hashed only.
    let settings = settings_for(&url);
    let db = guestbridge::store::Db::connect(&settings.database)
        .await
        .unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM partner_tokens")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token);
    assert_eq!(stored[0], guestbridge::auth::tokens::hash(&token));

    // The issued token works against a server on the same database.
    let app = guestbridge::startup::Application::build(
        settings,
        std::sync::Arc::new(guestbridge::clock::SystemClock),
    )
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let scim = Scim {
        base,
        token,
        client: reqwest::Client::new(),
    };
    let res = scim
        .post("/Users", &json!({"userName": "ann@acme.example"}))
        .await;
    assert_eq!(res.status.as_u16(), 201, "{}", res.body);
    let listed = read(
        scim.client
            .get(format!("{}/scim/v2/Users", scim.base))
            .bearer_auth(&scim.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed.body["totalResults"], 1);

    // The header names the token's id; `token list` shows its use, `token revoke` ends it.
    // This server caches the token, so it learns of a revocation made by another process
    // only when the entry expires; a fresh server refuses the token at once.
    let header = String::from_utf8_lossy(&issue.stdout);
    let id = header
        .split_whitespace()
        .nth(3)
        .expect("token id in the header")
        .to_string();
    let list = guestbridge(&url, &["token", "list", "acme"]);
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.starts_with(&format!("{id} created=")), "{list}");
    assert!(
        list.contains("revoked=-") && !list.contains("last_used=-"),
        "{list}"
    );
    let revoke = guestbridge(&url, &["token", "revoke", "acme", &id]);
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let list = guestbridge(&url, &["token", "list", "acme"]);
    assert!(!String::from_utf8_lossy(&list.stdout).contains("revoked=-"));
    let again = guestbridge(&url, &["token", "revoke", "acme", &id]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not found"));
    let fresh = guestbridge::startup::Application::build(
        settings_for(&url),
        std::sync::Arc::new(guestbridge::clock::SystemClock),
    )
    .await
    .unwrap();
    let fresh_base = format!("http://127.0.0.1:{}", fresh.port());
    tokio::spawn(fresh.run_until_stopped());
    let refused = scim
        .client
        .get(format!("{fresh_base}/scim/v2/Users"))
        .bearer_auth(&scim.token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
}

async fn cli_errors_are_one_line_and_non_zero(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    assert!(
        guestbridge(&url, &["partner", "add", "acme", "--name", "Acme"])
            .status
            .success()
    );
    let cases: [(&[&str], &str); 3] = [
        (
            &["partner", "add", "acme", "--name", "Again"],
            "already exists",
        ),
        (&["partner", "add", "Bad_Slug", "--name", "X"], "slug"),
        (&["token", "issue", "nobody"], "not found"),
    ];
    for (args, needle) in cases {
        let out = guestbridge(&url, args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let bad_setting = Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .args(["migrate"])
        .env("GUESTBRIDGE_DATABASE_URL", &url)
        .env("GUESTBRIDGE_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert!(!bad_setting.status.success());
    assert!(String::from_utf8_lossy(&bad_setting.stderr).contains("GUESTBRIDGE_LISTEN"));
}

both_backends!(cli_mappings_check_diff_and_explain);

async fn cli_mappings_check_diff_and_explain(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings");
    let ok = guestbridge(&url, &["mappings", "check", shipped]);
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );

    let bad_dir = dir.path().join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    std::fs::write(bad_dir.join("rules.toml"), "[[rule]]\nid = \"r\"\n\ngrants = [{ app = \"nope\", role = \"x\" }]\ncondition = 'title eq'\n").unwrap();
    let bad = guestbridge(&url, &["mappings", "check", bad_dir.to_str().unwrap()]);
    assert!(!bad.status.success());
    let out = String::from_utf8_lossy(&bad.stdout);
    assert!(out.lines().count() >= 2, "{out}");
    assert!(out.lines().all(|l| l.starts_with("rules.toml:")), "{out}");
    assert!(
        out.contains("rules.toml:4:") && out.contains("nope"),
        "{out}"
    );
    assert!(out.contains("rules.toml:5:"), "{out}");

    // A rule's own invitation text: reported until its files exist, then accepted.
    let variant_dir = dir.path().join("variant");
    std::fs::create_dir_all(variant_dir.join("templates")).unwrap();
    std::fs::write(
        variant_dir.join("rules.toml"),
        "[[app]]\nid = \"ehr\"\nname = \"EHR\"\ndescription = \"\"\nlaunch_url = \"https://ehr.example/\"\nroles = [\"reader\"]\n\n[[rule]]\nid = \"nurses\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ntemplate = \"clinician\"\n",
    )
    .unwrap();
    let check =
        |dir: &std::path::Path| guestbridge(&url, &["mappings", "check", dir.to_str().unwrap()]);
    let missing = check(&variant_dir);
    assert!(!missing.status.success());
    let out = String::from_utf8_lossy(&missing.stdout);
    assert!(
        out.contains("rules.toml:8: rule \"nurses\": template \"clinician\" has no files")
            && out.contains("templates/invitation-clinician.en.subject.txt"),
        "{out}"
    );
    for (part, text) in [
        ("subject.txt", "Welcome, {{ guest_name }}"),
        ("txt", "Open {{ link }}"),
        ("html", "<a href=\"{{ link }}\">Open</a>"),
    ] {
        std::fs::write(
            variant_dir.join(format!("templates/invitation-clinician.en.{part}")),
            text,
        )
        .unwrap();
    }
    let ok = check(&variant_dir);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    // A template file whose name is neither built in nor a variant is still an error.
    std::fs::write(variant_dir.join("templates/clinician.en.txt"), "x").unwrap();
    let stray = check(&variant_dir);
    assert!(!stray.status.success());
    assert!(
        String::from_utf8_lossy(&stray.stdout).contains("unknown template name \"clinician\""),
        "{}",
        String::from_utf8_lossy(&stray.stdout)
    );

    // A person and the shipped rules: explain shows the decision.
    let settings = crate::helpers::settings_with_mappings(&url, std::path::Path::new(shipped));
    let app = guestbridge::startup::Application::build(
        settings,
        std::sync::Arc::new(guestbridge::clock::SystemClock),
    )
    .await
    .unwrap();
    let deps = app.deps();
    let actor = crate::helpers::test_actor();
    let slug = guestbridge::domain::PartnerSlug::parse("st-mary").unwrap();
    let partner = guestbridge::services::partners::add_partner(&deps, &actor, &slug, "St Mary")
        .await
        .unwrap();
    guestbridge::services::users::create(
        &deps,
        &actor,
        &partner,
        &json!({"userName": "ann@stmary.example", "title": "Staff Nurse", "emails": [{"value": "ann@stmary.example"}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Cardiology"}}),
    )
    .await
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_guestbridge"))
            .args(args)
            .env("GUESTBRIDGE_DATABASE_URL", &url)
            .env("GUESTBRIDGE_MAPPINGS", shipped)
            .output()
            .unwrap()
    };
    let explain = run(&["explain", "st-mary", "ann@stmary.example"]);
    assert!(
        explain.status.success(),
        "{}",
        String::from_utf8_lossy(&explain.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&explain.stdout).unwrap();
    assert!(parsed["rules"].as_array().unwrap().len() >= 2);
    assert!(parsed["decision"]["grants"].is_array());
    let missing = run(&["explain", "st-mary", "nobody@x"]);
    assert!(!missing.status.success());

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let diff = run(&["mappings", "diff", empty.to_str().unwrap()]);
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    let last = last_line(&diff);
    assert!(last.starts_with("people=1 "), "{last}");
}

both_backends!(cli_runs_and_lists_jobs);

async fn cli_runs_and_lists_jobs(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    let run = guestbridge(
        &url,
        &["jobs", "run", "reminders", "--now", "2030-01-01T00:00:00Z"],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        last_line(&run),
        "job reminders at 2030-01-01T00:00:00.000Z: nothing due"
    );
    let bad = guestbridge(&url, &["jobs", "run", "cleanup"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown job"));
    let bad_time = guestbridge(&url, &["jobs", "run", "expiry", "--now", "tomorrow"]);
    assert!(String::from_utf8_lossy(&bad_time.stderr).contains("RFC 3339"));
    let list = guestbridge(&url, &["jobs", "list"]);
    let out = String::from_utf8_lossy(&list.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("reminders") && l.contains("last ") && l.contains(" ok ")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("deprovision") && l.contains("never run")),
        "{out}"
    );
}

both_backends!(cli_reinvites_a_lapsed_guest);

/// `guest reinvite`: a guest whose invitation lapsed (reminders run with `--now`) is invited
/// again with a new open link; an unknown guest is a one-line error.
async fn cli_reinvites_a_lapsed_guest(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    let mappings = dir.path().join("mappings");
    std::fs::create_dir_all(&mappings).unwrap();
    std::fs::write(
        mappings.join("rules.toml"),
        "[[app]]\nid = \"ehr\"\nname = \"EHR\"\ndescription = \"\"\nlaunch_url = \"https://ehr.example/\"\nroles = [\"reader\"]\n\n[[rule]]\nid = \"all\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n",
    )
    .unwrap();
    let roster = dir.path().join("roster.csv");
    std::fs::write(
        &roster,
        "userName,email\nann@acme.example,ann@acme.example\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_guestbridge"))
            .args(args)
            .env("GUESTBRIDGE_DATABASE_URL", &url)
            .env("GUESTBRIDGE_MAPPINGS", &mappings)
            .env("GUESTBRIDGE_SECRET_KEY", crate::helpers::TEST_SECRET_KEY)
            .env_remove("RUST_LOG")
            .output()
            .expect("run guestbridge")
    };
    let ok = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    ok(run(&["partner", "add", "acme", "--name", "Acme"]));
    ok(run(&[
        "import",
        roster.to_str().unwrap(),
        "--partner",
        "acme",
    ]));
    let start = chrono::Utc::now();
    for day in [4, 8, 12] {
        let at = (start + chrono::Duration::days(day)).to_rfc3339();
        ok(run(&["jobs", "run", "reminders", "--now", &at]));
    }
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let (guest, state): (String, String) = sqlx::query_as("SELECT id, state FROM guests")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "suspended:lapsed");

    let out = ok(run(&["guest", "reinvite", &guest]));
    assert_eq!(last_line(&out), format!("guest {guest} invited"));
    let state: String = sqlx::query_scalar("SELECT state FROM guests")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(state, "invited");
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM invitations WHERE used_at IS NULL AND revoked_at IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(open, 1);

    let unknown = run(&["guest", "reinvite", "no-such-guest"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
}
