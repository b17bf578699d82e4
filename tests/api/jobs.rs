//! Scheduled jobs at chosen instants: reminders, lapse, expiry warnings and ends,
//! deprovisioning; each effect once, catch-up after downtime, concurrent runs, stale leases.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{spawn_with, Backend, TestApp};
use crate::smtp::TestSmtp;
use guestbridge::config::Settings;
use guestbridge::mail::smtp::SmtpSender;

const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = ""
launch_url = "https://ehr.example/"
roles = ["reader"]

[[rule]]
id = "ten-days"
grants = [{ app = "ehr-viewer", role = "reader" }]
access_days = 10
sponsor = "dr.grey@hospital.example"
"#;

const WAIT: Duration = Duration::from_secs(15);

fn settings() -> Settings {
    Settings::load(None, &BTreeMap::new()).unwrap()
}

async fn app(backend: Backend, smtp: &TestSmtp) -> TestApp {
    spawn_with(
        backend,
        &[("rules.toml", RULES)],
        &[
            ("GUESTBRIDGE_SMTP_URL", smtp.url.as_str()),
            ("GUESTBRIDGE_MAIL_RETRY_BASE_MS", "200"),
        ],
    )
    .await
}

async fn run(
    app: &TestApp,
    job: &str,
    at: DateTime<Utc>,
    instance: &str,
) -> BTreeMap<&'static str, u64> {
    let report = guestbridge::jobs::run_once(job, &app.deps, &settings(), None, at, instance)
        .await
        .unwrap();
    assert!(report.ran, "{job} ran");
    report.counts
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

async fn kinds(smtp: &TestSmtp) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(600)).await;
    smtp.received()
        .iter()
        .map(|m| m.header("X-Guestbridge-Kind").unwrap_or_default())
        .collect()
}

async fn state(app: &TestApp) -> String {
    sqlx::query_scalar("SELECT state FROM guests")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

both_backends!(
    reminders_then_lapse_each_once_and_catching_up,
    expiry_warns_once_then_suspends,
    deprovision_is_the_safety_net,
    concurrent_runs_send_each_reminder_once,
    housekeeping_deletes_only_what_has_expired,
    the_scheduler_runs_jobs_on_their_schedule,
);

async fn the_scheduler_runs_jobs_on_their_schedule(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::helpers::fresh_database(backend, &dir).await;
    let mut settings = crate::helpers::settings_with_mappings(&url, dir.path());
    settings.jobs_enabled = true;
    settings.jobs.schedules = vec![("housekeeping".into(), "* * * * * *".into())];
    let app = guestbridge::startup::Application::build(
        settings,
        std::sync::Arc::new(guestbridge::clock::SystemClock),
    )
    .await
    .unwrap();
    let deps = app.deps();
    tokio::spawn(app.run_until_stopped());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let runs: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM job_runs WHERE job = 'housekeeping' AND outcome = 'ok'",
        )
        .fetch_one(deps.db.pool())
        .await
        .unwrap();
        if runs >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scheduler ran housekeeping {runs} time(s) in {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

async fn housekeeping_deletes_only_what_has_expired(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app(backend, &smtp).await;
    let (_, acme) = app.partner("acme").await;
    acme.create_user(
        &json!({"userName": "ann@acme.example", "emails": [{"value": "ann@acme.example"}]}),
    )
    .await;
    let guest: String = sqlx::query_scalar("SELECT id FROM guests")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    let now = Utc::now();
    let ms = |t: DateTime<Utc>| t.timestamp_millis();
    let pool = app.deps.db.pool();
    // For each kind of row, one whose use has passed and one still live.
    for (id, expires) in [("s-old", now - days(1)), ("s-live", now + days(1))] {
        sqlx::query(
            "INSERT INTO guest_sessions (id_hash, guest_id, created_at, expires_at, mfa_passed, csrf_secret)
             VALUES ($1, $2, $3, $4, 0, 'x')",
        )
        .bind(id)
        .bind(&guest)
        .bind(ms(now - days(2)))
        .bind(ms(expires))
        .execute(pool)
        .await
        .unwrap();
    }
    for (id, expires) in [
        ("c-old", now - days(3)),
        ("c-live", now - chrono::Duration::hours(1)),
    ] {
        sqlx::query(
            "INSERT INTO email_codes (id, guest_id, code_hash, created_at, expires_at) VALUES ($1, $2, 'h', $3, $4)",
        )
        .bind(id)
        .bind(&guest)
        .bind(ms(now - days(4)))
        .bind(ms(expires))
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO signin_links (token_hash, guest_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(format!("link-{id}"))
        .bind(&guest)
        .bind(ms(now - days(4)))
        .bind(ms(expires))
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 3)")
            .bind(format!("rate-{id}"))
            .bind(ms(expires))
            .execute(pool)
            .await
            .unwrap();
        // OpenID Connect codes and refresh tokens, with the same day's grace.
        sqlx::query(
            "INSERT INTO oauth_codes (code_hash, client_id, guest_id, redirect_uri, scope,
                 auth_time, amr, created_at, expires_at, family_id)
             VALUES ($1, 'c', $2, 'https://a.example/cb', 'openid', 0, 'email', $3, $4, 'f')",
        )
        .bind(format!("code-{id}"))
        .bind(&guest)
        .bind(ms(now - days(4)))
        .bind(ms(expires))
        .execute(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO oauth_refresh_tokens (token_hash, family_id, client_id, guest_id, scope,
                 auth_time, amr, created_at, expires_at)
             VALUES ($1, 'f', 'c', $2, 'openid', 0, 'email', $3, $4)",
        )
        .bind(format!("refresh-{id}"))
        .bind(&guest)
        .bind(ms(now - days(4)))
        .bind(ms(expires))
        .execute(pool)
        .await
        .unwrap();
    }
    // Console sessions (past their absolute end, or live) and setup links (past their end
    // and the day's grace, or only just past it).
    sqlx::query(
        "INSERT INTO admin_logins (id, name, name_lower, role, created_at, updated_at)
         VALUES ('l1', 'Ada', 'ada', 'admin', $1, $1)",
    )
    .bind(ms(now - days(10)))
    .execute(pool)
    .await
    .unwrap();
    for (id, expires) in [("as-old", now - days(1)), ("as-live", now + days(1))] {
        sqlx::query(
            "INSERT INTO admin_sessions (id, login_id, secret_hash, created_at, last_seen_at, expires_at)
             VALUES ($1, 'l1', $1, $2, $2, $3)",
        )
        .bind(id)
        .bind(ms(now - days(2)))
        .bind(ms(expires))
        .execute(pool)
        .await
        .unwrap();
    }
    for (id, expires) in [
        ("al-old", now - days(3)),
        ("al-live", now - chrono::Duration::hours(1)),
    ] {
        sqlx::query(
            "INSERT INTO admin_login_links (id, login_id, secret_hash, created_at, expires_at)
             VALUES ($1, 'l1', $1, $2, $3)",
        )
        .bind(id)
        .bind(ms(now - days(4)))
        .bind(ms(expires))
        .execute(pool)
        .await
        .unwrap();
    }
    // Job runs: two old runs of `expiry` (the later one is its latest, and stays), one old
    // run of `reminders` with a recent one after it.
    for (id, job, started) in [
        ("r1", "expiry", now - days(60)),
        ("r2", "expiry", now - days(50)),
        ("r3", "reminders", now - days(40)),
        ("r4", "reminders", now - days(1)),
    ] {
        sqlx::query(
            "INSERT INTO job_runs (id, job, instance, run_for, started_at, finished_at, outcome, counts)
             VALUES ($1, $2, 'i', $3, $3, $3, 'ok', '{}')",
        )
        .bind(id)
        .bind(job)
        .bind(ms(started))
        .execute(pool)
        .await
        .unwrap();
    }

    // Notices: one sent long ago (its grant end is past), one sent recently.
    for (key, at) in [("n-old", now - days(60)), ("n-live", now - days(3))] {
        sqlx::query("INSERT INTO notices (key, guest_id, at) VALUES ($1, $2, $3)")
            .bind(key)
            .bind(&guest)
            .bind(ms(at))
            .execute(pool)
            .await
            .unwrap();
    }

    let counts = run(&app, "housekeeping", now, "a").await;
    assert_eq!(
        counts,
        BTreeMap::from([
            ("sessions_deleted", 1),
            ("admin_sessions_deleted", 1),
            ("admin_links_deleted", 1),
            ("email_codes_deleted", 1),
            ("oauth_codes_deleted", 1),
            ("refresh_tokens_deleted", 1),
            ("signin_links_deleted", 1),
            ("rate_limits_deleted", 1),
            ("job_runs_deleted", 2),
            ("notices_deleted", 1),
        ])
    );
    let ids: Vec<String> = sqlx::query_scalar("SELECT id_hash FROM guest_sessions")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(ids, ["s-live"]);
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM email_codes")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(ids, ["c-live"]);
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM admin_sessions")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(ids, ["as-live"]);
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM admin_login_links")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(ids, ["al-live"]);
    assert_eq!(count(&app, "signin_links").await, 1);
    let codes: Vec<String> = sqlx::query_scalar("SELECT code_hash FROM oauth_codes")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(codes, ["code-c-live"]);
    let tokens: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM oauth_refresh_tokens")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(tokens, ["refresh-c-live"]);
    assert_eq!(count(&app, "rate_limits").await, 1);
    let mut runs: Vec<String> =
        sqlx::query_scalar("SELECT id FROM job_runs WHERE id IN ('r1', 'r2', 'r3', 'r4')")
            .fetch_all(pool)
            .await
            .unwrap();
    runs.sort();
    assert_eq!(runs, ["r2", "r4"]);
    let notices: Vec<String> = sqlx::query_scalar("SELECT key FROM notices")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(notices, ["n-live"]);

    // A second run finds nothing (its own run record of the first run is recent).
    assert!(run(&app, "housekeeping", now, "a").await.is_empty());
}

async fn reminders_then_lapse_each_once_and_catching_up(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app(backend, &smtp).await;
    let (_, acme) = app.partner("acme").await;
    acme.create_user(
        &json!({"userName": "ann@acme.example", "emails": [{"value": "ann@acme.example"}]}),
    )
    .await;
    smtp.wait_for(1, WAIT).await;
    let t0 = Utc::now();
    assert!(
        run(&app, "reminders", t0 + days(1), "a").await.is_empty(),
        "nothing due after one day"
    );
    // After a long downtime the first due reminder goes out once; the next one waits its turn.
    let late = t0 + days(30);
    assert_eq!(
        run(&app, "reminders", late, "a")
            .await
            .get("reminders_sent"),
        Some(&1)
    );
    assert!(
        run(&app, "reminders", late, "a").await.is_empty(),
        "a second run at the same instant does nothing"
    );
    let mails = smtp.wait_for(2, WAIT).await;
    let fresh = mails[1]
        .find_link(&format!("{}/invite/", app.address))
        .unwrap();
    let old = mails[0]
        .find_link(&format!("{}/invite/", app.address))
        .unwrap();
    assert_eq!(
        app.client
            .get(&fresh)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200,
        "the reminder's link works"
    );
    assert_eq!(
        app.client.get(&old).send().await.unwrap().status().as_u16(),
        404,
        "the reminder replaced the old link"
    );
    assert_eq!(
        run(&app, "reminders", late + days(3), "a")
            .await
            .get("reminders_sent"),
        Some(&1)
    );
    assert_eq!(
        run(&app, "reminders", late + days(6), "a")
            .await
            .get("lapsed"),
        Some(&1)
    );
    assert!(run(&app, "reminders", late + days(9), "a").await.is_empty());
    assert_eq!(state(&app).await, "suspended:lapsed");
    assert_eq!(
        kinds(&smtp).await,
        ["invitation", "reminder", "reminder", "lapsed_notice"]
    );
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM invitation_reminders")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert_eq!(recorded, 2);
    let runs: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM job_runs WHERE job = 'reminders' AND outcome = 'ok'",
    )
    .fetch_one(app.deps.db.pool())
    .await
    .unwrap();
    assert_eq!(runs, 6);
}

async fn expiry_warns_once_then_suspends(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app(backend, &smtp).await;
    let (_, acme) = app.partner("acme").await;
    acme.create_user(
        &json!({"userName": "ann@acme.example", "emails": [{"value": "ann@acme.example"}]}),
    )
    .await;
    smtp.wait_for(1, WAIT).await;
    let t0 = Utc::now();
    assert!(run(&app, "expiry", t0 + days(1), "a").await.is_empty());
    assert_eq!(
        run(&app, "expiry", t0 + days(5), "a").await.get("warnings"),
        Some(&1)
    );
    assert!(
        run(&app, "expiry", t0 + days(6), "a").await.is_empty(),
        "warned once"
    );
    assert_eq!(
        run(&app, "expiry", t0 + days(11), "a").await.get("expired"),
        Some(&1)
    );
    assert_eq!(state(&app).await, "suspended:expired");
    assert!(run(&app, "expiry", t0 + days(12), "a").await.is_empty());
    assert_eq!(
        kinds(&smtp).await,
        ["invitation", "expiry_warning", "expiry_warning"],
        "guest and sponsor warned"
    );
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM invitations WHERE revoked_at IS NULL AND used_at IS NULL",
    )
    .fetch_one(app.deps.db.pool())
    .await
    .unwrap();
    assert_eq!(open, 0, "an expired guest's invitation is void");
}

async fn deprovision_is_the_safety_net(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app(backend, &smtp).await;
    let (_, acme) = app.partner("acme").await;
    let ann = acme
        .create_user(
            &json!({"userName": "ann@acme.example", "emails": [{"value": "ann@acme.example"}]}),
        )
        .await;
    acme.create_user(
        &json!({"userName": "bob@acme.example", "emails": [{"value": "bob@acme.example"}]}),
    )
    .await;
    let t0 = Utc::now();
    let pool = app.deps.db.pool();
    // Bob redeemed long ago and has not been seen since.
    // Bound, not spelled in the SQL: statements are logged, and the log scan refuses e-mails.
    sqlx::query("UPDATE guests SET state = 'active', last_seen_at = $1 WHERE user_name = $2")
        .bind(t0.timestamp_millis())
        .bind("bob@acme.example")
        .execute(pool)
        .await
        .unwrap();
    // Ann was deactivated behind the lifecycle's back (as if a write had been lost).
    sqlx::query("UPDATE scim_users SET active = 0 WHERE id = $1")
        .bind(&ann)
        .execute(pool)
        .await
        .unwrap();
    let counts = run(&app, "deprovision", t0 + days(91), "a").await;
    assert_eq!(counts.get("deactivated"), Some(&1));
    assert_eq!(counts.get("inactive"), Some(&1));
    let states: Vec<(String, String)> =
        sqlx::query_as("SELECT user_name, state FROM guests ORDER BY user_name")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        states,
        vec![
            ("ann@acme.example".into(), "suspended:deactivated".into()),
            ("bob@acme.example".into(), "suspended:inactive".into())
        ]
    );
    // A removed guest's personal data is erased after the retention period.
    acme.delete(&format!("/Users/{ann}")).await;
    assert!(!run(&app, "deprovision", t0 + days(100), "a")
        .await
        .contains_key("erased"));
    let counts = run(&app, "deprovision", t0 + days(400), "a").await;
    assert_eq!(counts.get("erased"), Some(&1));
    let erased: (String, Option<String>) =
        sqlx::query_as("SELECT user_name, email FROM guests WHERE state = 'removed'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(erased.0.starts_with("erased:") && erased.1.is_none());
    assert!(run(&app, "deprovision", t0 + days(401), "a")
        .await
        .is_empty());
}

async fn concurrent_runs_send_each_reminder_once(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app(backend, &smtp).await;
    let (_, acme) = app.partner("acme").await;
    for i in 0..5 {
        acme.create_user(&json!({"userName": format!("p{i}@acme.example"), "emails": [{"value": format!("p{i}@acme.example")}]})).await;
    }
    smtp.wait_for(5, WAIT).await;
    let at = Utc::now() + days(4);
    // A crashed run left a lease that has expired: it does not block.
    sqlx::query("INSERT INTO job_leases (job, owner, until) VALUES ('reminders', 'crashed', 1)")
        .execute(app.deps.db.pool())
        .await
        .unwrap();
    let s = settings();
    let (a, b) = tokio::join!(
        guestbridge::jobs::run_once("reminders", &app.deps, &s, None, at, "instance-a"),
        guestbridge::jobs::run_once("reminders", &app.deps, &s, None, at, "instance-b"),
    );
    let sent =
        |r: &guestbridge::jobs::RunReport| r.counts.get("reminders_sent").copied().unwrap_or(0);
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        sent(&a) + sent(&b),
        5,
        "a: {:?} b: {:?}",
        a.counts,
        b.counts
    );
    // Once more from both: nothing new.
    let (a, b) = tokio::join!(
        guestbridge::jobs::run_once("reminders", &app.deps, &s, None, at, "instance-a"),
        guestbridge::jobs::run_once("reminders", &app.deps, &s, None, at, "instance-b"),
    );
    assert_eq!(sent(&a.unwrap()) + sent(&b.unwrap()), 0);
    smtp.wait_for(10, WAIT).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let reminders = smtp
        .received()
        .iter()
        .filter(|m| m.header("X-Guestbridge-Kind").as_deref() == Some("reminder"))
        .count();
    assert_eq!(reminders, 5, "each reminder delivered exactly once");
    let _unused: Option<SmtpSender> = None;
}
