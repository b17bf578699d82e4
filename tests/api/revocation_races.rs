//! Revocation under concurrency and at volume: runs that overlap, workers that outlive their
//! leases, and due lists larger than one batch. Each test prints its figures.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{eventually, spawn_with, Backend, Scim, TestApp};
use crate::revocation::Hook;
use crate::smtp::TestSmtp;

both_backends!(
    six_hundred_grants_sharing_one_end_are_all_warned,
    pending_guests_past_their_end_do_not_stop_expiry,
    two_reminder_runs_at_one_instant_send_one_reminder_each,
    workers_that_outlive_their_lease_deliver_each_event_once_in_order,
    senders_that_outlive_their_lease_send_each_mail_once,
    a_guests_events_enter_the_outbox_in_commit_order,
);

const APP: &str = r#"
[[app]]
id = "ehr"
name = "EHR Viewer"
description = ""
launch_url = "https://ehr.example/"
roles = ["reader"]
"#;

/// Create `n` people (16 at a time) with this title; returns their user ids.
async fn people(scim: &Scim, prefix: &str, title: &str, n: usize) -> Vec<String> {
    futures_util::stream::iter(0..n)
        .map(|i| {
            let scim = scim.clone();
            let user_name = format!("{prefix}{i}@acme.example");
            let title = title.to_string();
            async move {
                scim.create_user(&json!({"userName": user_name, "title": title,
                                         "emails": [{"value": user_name, "primary": true}]}))
                    .await
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

fn settings(lease_seconds: u32) -> guestbridge::config::Settings {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("guestbridge.toml");
    std::fs::write(&file, format!("[jobs]\nlease_seconds = {lease_seconds}\n")).unwrap();
    guestbridge::config::Settings::load(Some(&file), &BTreeMap::new()).unwrap()
}

async fn run(app: &TestApp, job: &str, now: &str, instance: &str) -> BTreeMap<&'static str, u64> {
    let now: DateTime<Utc> = now.parse().unwrap();
    guestbridge::jobs::run_once(job, &app.deps, &settings(300), None, now, instance)
        .await
        .unwrap()
        .counts
}

async fn six_hundred_grants_sharing_one_end_are_all_warned(backend: Backend) {
    let rules = format!(
        "{APP}\n[[rule]]\nid = \"nurses\"\ncondition = 'title co \"Nurse\"'\ngrants = [{{ app = \"ehr\", role = \"reader\" }}]\naccess_until = 2030-01-31\n"
    );
    let app = spawn_with(backend, &[("rules.toml", &rules)], &[]).await;
    let (_, acme) = app.partner("acme").await;
    people(&acme, "n", "Nurse", 600).await;
    let counts = run(&app, "expiry", "2030-01-28T00:00:00Z", "test").await;
    eprintln!("600 grants ending 2030-01-31: {counts:?}");
    assert_eq!(counts.get("warnings"), Some(&600), "{counts:?}");
    // Each warned once: a second run warns nobody.
    let again = run(&app, "expiry", "2030-01-29T00:00:00Z", "test").await;
    assert_eq!(again.get("warnings"), None, "{again:?}");
}

async fn pending_guests_past_their_end_do_not_stop_expiry(backend: Backend) {
    // Guests waiting for approval end first, so before the fix every batch of the due list
    // was full of them: they cannot expire, the loop saw no change and stopped.
    let rules = format!(
        "{APP}\n[[rule]]\nid = \"students\"\npartners = [\"globex\"]\ngrants = [{{ app = \"ehr\", role = \"reader\" }}]\naccess_until = 2030-01-01\n\n[[rule]]\nid = \"nurses\"\npartners = [\"acme\"]\ngrants = [{{ app = \"ehr\", role = \"reader\" }}]\naccess_until = 2030-01-31\n"
    );
    let partners = "[[partner]]\nslug = \"globex\"\napproval = \"admin\"\n";
    let app = spawn_with(
        backend,
        &[("rules.toml", &rules), ("partners.toml", partners)],
        &[],
    )
    .await;
    let (_, globex) = app.partner("globex").await;
    let (_, acme) = app.partner("acme").await;
    people(&globex, "s", "Student", 600).await;
    people(&acme, "n", "Nurse", 10).await;
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM guests WHERE state = 'pending_approval'")
            .fetch_one(app.deps.db.pool())
            .await
            .unwrap();
    assert_eq!(pending, 600);
    let counts = run(&app, "expiry", "2030-03-01T00:00:00Z", "test").await;
    eprintln!("600 pending + 10 invited past their end: {counts:?}");
    assert_eq!(counts.get("expired"), Some(&10), "{counts:?}");
    let expired: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM guests WHERE state = 'suspended:expired'")
            .fetch_one(app.deps.db.pool())
            .await
            .unwrap();
    assert_eq!(expired, 10);
}

async fn two_reminder_runs_at_one_instant_send_one_reminder_each(backend: Backend) {
    let rules = format!(
        "{APP}\n[[rule]]\nid = \"nurses\"\ncondition = 'title co \"Nurse\"'\ngrants = [{{ app = \"ehr\", role = \"reader\" }}]\n"
    );
    let app = spawn_with(backend, &[("rules.toml", &rules)], &[]).await;
    let (_, acme) = app.partner("acme").await;
    people(&acme, "n", "Nurse", 1500).await;
    let now: DateTime<Utc> = Utc::now() + chrono::Duration::days(4);
    // A 1-second lease: the first run outlives it, and the second starts at the same instant
    // once the lease would have lapsed.
    let short = settings(1);
    let started = std::time::Instant::now();
    let first =
        guestbridge::jobs::run_once("reminders", &app.deps, &short, None, now, "instance-a");
    let second = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        guestbridge::jobs::run_once("reminders", &app.deps, &short, None, now, "instance-b").await
    };
    // The same instance's scheduler firing again while its run goes on must not overlap it.
    let same_instance = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        guestbridge::jobs::run_once("reminders", &app.deps, &short, None, now, "instance-a").await
    };
    let (a, b, again) = tokio::join!(first, second, same_instance);
    let (a, b, again) = (a.unwrap(), b.unwrap(), again.unwrap());
    assert!(
        !again.ran,
        "a second run of one instance waits: {:?}",
        again.counts
    );
    let per_guest: Vec<(String, i64)> = sqlx::query_as(
        "SELECT guest_id, COUNT(*) FROM mail_outbox WHERE kind = 'reminder' GROUP BY guest_id",
    )
    .fetch_all(app.deps.db.pool())
    .await
    .unwrap();
    let twice = per_guest.iter().filter(|(_, n)| *n > 1).count();
    eprintln!(
        "reminders over 1,500 invited guests: first run {:?} (ran {}), second {:?} (ran {}), {:.1} s; guests reminded {}, twice {twice}",
        a.counts,
        a.ran,
        b.counts,
        b.ran,
        started.elapsed().as_secs_f64(),
        per_guest.len()
    );
    assert_eq!(per_guest.len(), 1500);
    assert_eq!(twice, 0);
}

/// Two more workers beside the app's own, on the same database, with a 1-second lease and a
/// target that takes 250 ms an event: a batch takes far longer than its lease.
async fn workers_that_outlive_their_lease_deliver_each_event_once_in_order(backend: Backend) {
    let (url, hook) = Hook::start().await;
    hook.delay_ms.store(250, Ordering::SeqCst);
    let targets =
        json!([{"name": "hooks", "type": "webhook", "url": url, "secret": "hook-secret"}])
            .to_string();
    let rules = format!(
        "{APP}\n[[rule]]\nid = \"nurses\"\ncondition = 'title co \"Nurse\"'\ngrants = [{{ app = \"ehr\", role = \"reader\" }}]\n"
    );
    let env = [
        ("GUESTBRIDGE_SYNC_TARGETS", targets.as_str()),
        ("GUESTBRIDGE_SYNC_RETRY_BASE_MS", "100"),
        ("GUESTBRIDGE_SYNC_LEASE_MS", "1000"),
    ];
    let app = spawn_with(backend, &[("rules.toml", &rules)], &env).await;
    let (_, acme) = app.partner("acme").await;
    let users = people(&acme, "n", "Nurse", 12).await;
    for user in &users {
        acme.patch(
            &format!("/Users/{user}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await;
    }
    let sync = guestbridge::config::Settings::load(
        None,
        &env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .unwrap()
    .sync;
    let connectors = guestbridge::connectors::build::build_connectors(&sync, &app.deps.db).unwrap();
    let policy = guestbridge::services::sync_sender::SyncPolicy {
        base_ms: 100,
        max_attempts: 8,
        lease_ms: 1000,
    };
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(
        guestbridge::services::sync_sender::deliver_due(&app.deps, &connectors, policy, "worker-a"),
        guestbridge::services::sync_sender::deliver_due(&app.deps, &connectors, policy, "worker-b"),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    eventually("every event delivered", || async {
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sync_outbox WHERE delivered_at IS NULL AND dead_at IS NULL",
        )
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
        pending == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (duplicates, inversions) = hook.audit();
    let delivered = hook.events.lock().unwrap().len();
    eprintln!(
        "3 workers, lease 1 s, 250 ms per event: delivered {delivered}, duplicates {duplicates}, inversions {inversions}; worker a {a:?}, b {b:?}, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(delivered, 24);
    assert_eq!((duplicates, inversions), (0, 0));
    let kinds: Vec<Value> = hook
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["type"].clone())
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "guest.suspended").count(), 12);
}

/// Two senders on one outbox, a 1-second lease and an SMTP server that takes about 0.3 s a
/// mail: each batch of 20 outlives its lease many times over.
async fn senders_that_outlive_their_lease_send_each_mail_once(backend: Backend) {
    let rules = format!(
        "{APP}\n[[rule]]\nid = \"nurses\"\ncondition = 'title co \"Nurse\"'\ngrants = [{{ app = \"ehr\", role = \"reader\" }}]\n"
    );
    let app = spawn_with(backend, &[("rules.toml", &rules)], &[]).await;
    let (_, acme) = app.partner("acme").await;
    people(&acme, "n", "Nurse", 12).await;
    let smtp = TestSmtp::start();
    smtp.set_reply_delay(Duration::from_millis(50));
    let sender = guestbridge::mail::smtp::SmtpSender::new(
        &smtp.url,
        "guestbridge@hospital.example",
        Duration::from_secs(30),
    )
    .unwrap();
    let policy = guestbridge::services::mail_sender::RetryPolicy {
        base_ms: 100,
        max_attempts: 10,
        lease_ms: 1000,
    };
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(
        guestbridge::services::mail_sender::deliver_due(&app.deps, &sender, policy, "sender-a"),
        guestbridge::services::mail_sender::deliver_due(&app.deps, &sender, policy, "sender-b"),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // A send cut off at half the lease is retried later: run until the outbox is empty.
    for _ in 0..20 {
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        guestbridge::services::mail_sender::deliver_due(&app.deps, &sender, policy, "sender-a")
            .await
            .unwrap();
    }
    let received = smtp.received();
    let mut to: Vec<String> = received.iter().flat_map(|m| m.to.clone()).collect();
    let total = to.len();
    to.sort();
    to.dedup();
    eprintln!(
        "2 senders, lease 1 s, ~0.3 s per mail: received {total}, distinct recipients {}; sender a {a:?}, b {b:?}, {:.1} s",
        to.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(to.len(), 12);
    assert_eq!(total, 12, "no mail twice");
}

/// Two transactions change one guest's grants. The second, begun while the first is still
/// open, must queue its event after the first commits: a worker that delivered it while the
/// first was uncommitted (invisible, with a lower sequence number) would deliver the two out of
/// order. Both write other rows (grants), so only the guest's sync row orders them.
async fn a_guests_events_enter_the_outbox_in_commit_order(backend: Backend) {
    let (url, hook) = Hook::start().await;
    let targets =
        json!([{"name": "hooks", "type": "webhook", "url": url, "secret": "hook-secret"}])
            .to_string();
    let rules = format!(
        "{APP}\n[[rule]]\nid = \"nurses\"\ncondition = 'title co \"Nurse\"'\ngrants = [{{ app = \"ehr\", role = \"reader\" }}]\n"
    );
    let env = [
        ("GUESTBRIDGE_SYNC_TARGETS", targets.as_str()),
        ("GUESTBRIDGE_SYNC_RETRY_BASE_MS", "100"),
    ];
    let app = spawn_with(backend, &[("rules.toml", &rules)], &env).await;
    let (_, acme) = app.partner("acme").await;
    let user = people(&acme, "n", "Nurse", 1).await.remove(0);
    let guest: String = sqlx::query_scalar("SELECT id FROM guests WHERE user_id = $1")
        .bind(&user)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    eventually("the create event", || async { hook.of(&guest).len() == 1 }).await;
    let first = add_grant(app.deps.clone(), guest.clone(), "first").await;
    let (deps, id) = (app.deps.clone(), guest.clone());
    let second =
        tokio::spawn(async move { add_grant(deps, id, "second").await.commit().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !second.is_finished(),
        "the second change waits for the first to commit"
    );
    assert_eq!(hook.of(&guest).len(), 1, "nothing uncommitted is delivered");
    first.commit().await.unwrap();
    second.await.unwrap();
    eventually("both events", || async { hook.of(&guest).len() == 3 }).await;
    let events = hook.of(&guest);
    let apps = |e: &Value| -> Vec<String> {
        e["data"]["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["app"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        apps(&events[1]).contains(&"first".to_string()),
        "{events:#?}"
    );
    assert!(
        apps(&events[2]).contains(&"second".to_string()),
        "{events:#?}"
    );
    assert_eq!(events[1]["data"]["version"], 2);
    assert_eq!(events[2]["data"]["version"], 3);
    assert_eq!(hook.audit(), (0, 0));
}

/// In a transaction left open: give the guest a grant of `app_id` and queue its events.
async fn add_grant(
    deps: guestbridge::services::Deps,
    guest: String,
    app_id: &'static str,
) -> guestbridge::store::Tx {
    let mut tx = deps.db.begin_write().await.unwrap();
    sqlx::query("INSERT INTO guest_grants (guest_id, app_id, role, rule_id, valid_from) VALUES ($1, $2, 'x', 'manual', 0)")
        .bind(&guest)
        .bind(app_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    guestbridge::services::sync::emit(&mut tx, &deps, &guest)
        .await
        .unwrap();
    tx
}
