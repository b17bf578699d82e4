//! Ownership and safety valves of outbound sync, against a second Guestbridge as the
//! downstream SCIM directory: a directory shared with staff, the deactivation cap, and users
//! found by their recorded id after a restart. (An unreadable snapshot is tested against the
//! SCIM stand-in in tests/connectors: no database state makes one today.)

use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{
    eventually, fresh_database, read, spawn, spawn_with, test_actor, Backend, Scim, TestApp,
};

const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = ""
launch_url = "https://ehr.example/"
roles = ["reader"]

[[rule]]
id = "nurses"
condition = 'title co "Nurse"'
grants = [{ app = "ehr-viewer", role = "reader" }]
"#;

const GROUP: &str = "gb-ehr-viewer:reader";

both_backends!(
    reconcile_touches_only_owned_users_among_1000_staff,
    reconcile_refuses_past_the_cap_unless_forced,
    admin_api_answers_a_plan_past_the_cap_with_409,
    owned_users_are_found_by_id_after_their_external_id_changed
);

/// A downstream Guestbridge and a partner token that sees everyone in its directory.
async fn downstream(backend: Backend) -> (TestApp, Scim) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("hospital").await;
    (app, scim)
}

fn targets(down: &TestApp, scim: &Scim) -> String {
    json!([{"name": "downstream", "type": "scim", "url": format!("{}/scim/v2", down.address),
            "secret": scim.token, "group_prefix": "gb-"}])
    .to_string()
}

/// Staff provisioned by someone else: `count` active users with externalIds `{prefix}NNNN`,
/// created with SCIM Bulk (RFC 7644 §3.7) in request-sized chunks. Their ids, in order.
async fn create_staff(scim: &Scim, prefix: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let numbers: Vec<usize> = (0..count).collect();
    for chunk in numbers.chunks(150) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|n| {
                json!({"method": "POST", "path": "/Users", "bulkId": format!("s{n}"), "data": {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("{prefix}{n:04}@hospital.example"),
                    "externalId": format!("{prefix}{n:04}"), "active": true}})
            })
            .collect();
        let res = scim
            .post(
                "/Bulk",
                &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}),
            )
            .await;
        assert_eq!(res.status.as_u16(), 200, "{}", res.body);
        for op in res.body["Operations"].as_array().unwrap() {
            assert_eq!(op["status"], "201", "{op}");
            let location = op["location"].as_str().unwrap();
            ids.push(location.rsplit('/').next().unwrap().to_string());
        }
    }
    ids
}

/// How many users the downstream directory holds that match `filter`.
async fn count(scim: &Scim, filter: &str) -> u64 {
    let res = scim.filter_users(filter).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.body);
    res.body["totalResults"].as_u64().unwrap()
}

async fn downstream_user(scim: &Scim, id: &str) -> Value {
    let res = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(res.status.as_u16(), 200, "{}", res.body);
    res.body
}

async fn by_external_id(scim: &Scim, external_id: &str) -> Option<Value> {
    scim.filter_users(&format!("externalId eq \"{external_id}\""))
        .await
        .body["Resources"]
        .as_array()
        .and_then(|a| a.first().cloned())
}

async fn group_members(scim: &Scim) -> Vec<String> {
    let res = scim
        .get(&format!(
            "/Groups?filter={}",
            crate::helpers::url_encode(&format!("displayName eq \"{GROUP}\""))
        ))
        .await;
    res.body["Resources"][0]["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["value"].as_str().map(str::to_string))
        .collect()
}

/// An upstream Guestbridge syncing to `targets`, with `n` nurse guests of partner acme,
/// each delivered downstream. The guests' ids.
async fn upstream_with_guests(
    backend: Backend,
    targets: &str,
    down: &Scim,
    n: usize,
) -> (TestApp, Scim, Vec<String>) {
    let app = spawn_with(
        backend,
        &[("rules.toml", RULES)],
        &[
            ("GUESTBRIDGE_SYNC_TARGETS", targets),
            ("GUESTBRIDGE_SYNC_RETRY_BASE_MS", "200"),
        ],
    )
    .await;
    let (_, acme) = app.partner("acme").await;
    for i in 0..n {
        acme.create_user(&json!({"userName": format!("nurse{i}@acme.example"), "title": "Staff Nurse",
                                 "name": {"givenName": "Ann", "familyName": format!("Lee{i}")},
                                 "emails": [{"value": format!("nurse{i}@acme.example"), "primary": true}]}))
            .await;
    }
    let guests: Vec<String> = sqlx::query_scalar("SELECT id FROM guests ORDER BY id")
        .fetch_all(app.deps.db.pool())
        .await
        .unwrap();
    assert_eq!(guests.len(), n);
    eventually("every guest delivered downstream", || async {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sync_outbox WHERE delivered_at IS NULL")
                .fetch_one(app.deps.db.pool())
                .await
                .unwrap();
        pending == 0
    })
    .await;
    for g in &guests {
        assert!(
            by_external_id(down, g).await.is_some(),
            "guest {g} downstream"
        );
    }
    (app, acme, guests)
}

fn settings_with_targets(targets: &str) -> guestbridge::config::Settings {
    guestbridge::config::Settings::load(
        None,
        &[("GUESTBRIDGE_SYNC_TARGETS".to_string(), targets.to_string())]
            .into_iter()
            .collect(),
    )
    .unwrap()
}

async fn run_reconcile_job(app: &TestApp, targets: &str) -> guestbridge::jobs::Counts {
    let report = guestbridge::jobs::run_once(
        "reconcile",
        &app.deps,
        &settings_with_targets(targets),
        None,
        chrono::Utc::now(),
        "test",
    )
    .await
    .unwrap();
    assert!(report.ran);
    report.counts
}

/// The README's shared IdM: 1,000 staff with externalIds (three of them in our prefixed
/// group) and 10 guests. A dry run and a real run touch only the 10; the 1,000 are listed
/// as unowned and stay active, in their groups.
async fn reconcile_touches_only_owned_users_among_1000_staff(backend: Backend) {
    let (down_app, down) = downstream(backend).await;
    let staff = create_staff(&down, "staff-", 1000).await;
    let group = down
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": GROUP,
                    "members": staff[..3].iter().map(|id| json!({"value": id})).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(group.status.as_u16(), 201, "{}", group.body);
    let targets = targets(&down_app, &down);
    let (app, _, guests) = upstream_with_guests(backend, &targets, &down, 10).await;
    assert_eq!(count(&down, "active eq true").await, 1010);

    let token = guestbridge::services::partners::issue_admin_token(&app.deps, &test_actor())
        .await
        .unwrap();
    let dry = read(
        app.client
            .post(format!(
                "{}/api/v1/sync/targets/downstream/reconcile?dry_run=true",
                app.address
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(dry.status.as_u16(), 200, "{}", dry.body);
    assert_eq!(dry.body["dry_run"], true);
    assert_eq!(dry.body["owned"], 10);
    assert_eq!(dry.body["report"]["unchanged"], 10);
    assert_eq!(dry.body["report"]["deactivated"], 0);
    assert_eq!(dry.body["report"]["unowned_count"], 1000);
    assert_eq!(dry.body["report"]["actions"], json!([]));
    let listed: Vec<&str> = dry.body["report"]["unowned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["external_id"].as_str().unwrap())
        .collect();
    assert!(listed.iter().all(|e| e.starts_with("staff-")));

    let counts = run_reconcile_job(&app, &targets).await;
    assert_eq!(counts.get("deactivated"), Some(&0), "{counts:?}");
    assert_eq!(counts.get("unowned"), Some(&1000), "{counts:?}");
    assert_eq!(counts.get("created"), Some(&0), "{counts:?}");
    assert_eq!(
        count(&down, "active eq true").await,
        1010,
        "nobody deactivated"
    );
    let members = group_members(&down).await;
    for id in &staff[..3] {
        assert!(members.contains(id), "staff {id} kept in {GROUP}");
    }
    assert_eq!(members.len(), 13);

    // Drift on one guest is still repaired: reconcile touches the guests it owns.
    let user = by_external_id(&down, &guests[0]).await.unwrap();
    let tamper = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "active", "value": false}]});
    down.patch(&format!("/Users/{}", user["id"].as_str().unwrap()), &tamper)
        .await;
    let counts = run_reconcile_job(&app, &targets).await;
    assert_eq!(counts.get("updated"), Some(&1), "{counts:?}");
    assert_eq!(count(&down, "active eq true").await, 1010);
}

fn guestbridge(database_url: &str, targets: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .args(args)
        .env("GUESTBRIDGE_DATABASE_URL", database_url)
        .env("GUESTBRIDGE_SYNC_TARGETS", targets)
        .env(
            "GUESTBRIDGE_MAPPINGS",
            "/nonexistent/guestbridge-test-mappings",
        )
        .env_remove("RUST_LOG")
        .output()
        .expect("run guestbridge")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// 60 owned users whose guests are gone (an emptied table, say): more than the cap of 50.
/// The job and the CLI refuse, audited, and change nothing; a dry run lists the 60; with
/// `--force` they are deactivated.
async fn reconcile_refuses_past_the_cap_unless_forced(backend: Backend) {
    let (down_app, down) = downstream(backend).await;
    let lost = create_staff(&down, "lost-guest-", 60).await;
    let targets = targets(&down_app, &down);
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    let migrate = guestbridge(&url, &targets, &["migrate"]);
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let db = guestbridge::store::Db::connect(&crate::helpers::settings_for(&url).database)
        .await
        .unwrap();
    {
        let mut conn = db.pool().acquire().await.unwrap();
        for (n, remote_id) in lost.iter().enumerate() {
            let owned = guestbridge::store::ownership::Owned {
                guest_id: format!("lost-guest-{n:04}"),
                remote_id: remote_id.clone(),
                adopted: false,
            };
            guestbridge::store::ownership::record(&mut conn, "downstream", &owned, 1)
                .await
                .unwrap();
        }
    }

    let job = guestbridge(&url, &targets, &["jobs", "run", "reconcile"]);
    assert!(
        job.status.success(),
        "{}",
        String::from_utf8_lossy(&job.stderr)
    );
    assert!(stdout(&job).contains("refused=1"), "{}", stdout(&job));
    assert!(
        stdout(&job).contains("would_deactivate=60"),
        "{}",
        stdout(&job)
    );
    assert_eq!(count(&down, "active eq true").await, 60, "nothing changed");

    let dry = guestbridge(
        &url,
        &targets,
        &["sync", "reconcile", "downstream", "--dry-run"],
    );
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let out = stdout(&dry);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("deactivate ")).count(),
        60,
        "{out}"
    );
    assert_eq!(
        out.lines().last().unwrap(),
        "created=0 changed=0 deactivated=60 deleted=0 unchanged=0 unowned=0 errors=0"
    );
    assert_eq!(count(&down, "active eq true").await, 60);

    let refused = guestbridge(&url, &targets, &["sync", "reconcile", "downstream"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("more than the cap of 50"), "{err}");
    assert_eq!(count(&down, "active eq true").await, 60);
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'sync.reconcile_refused' AND target_id = 'downstream'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(
        audited, 2,
        "the job's and the command's refusals are audited"
    );

    let forced = guestbridge(
        &url,
        &targets,
        &["sync", "reconcile", "downstream", "--force"],
    );
    assert!(
        forced.status.success(),
        "{}",
        String::from_utf8_lossy(&forced.stderr)
    );
    assert!(
        stdout(&forced)
            .lines()
            .last()
            .unwrap()
            .starts_with("created=0 changed=0 deactivated=60 "),
        "{}",
        stdout(&forced)
    );
    assert_eq!(count(&down, "active eq true").await, 0);
    db.close().await;
}

/// Someone changes the externalId of a guest's user downstream. Reconcile (a new connector)
/// still finds it by its recorded id and puts the externalId back, creating nobody; a
/// suspension delivered by yet another connector instance reaches it too.
async fn owned_users_are_found_by_id_after_their_external_id_changed(backend: Backend) {
    let (down_app, down) = downstream(backend).await;
    let targets = targets(&down_app, &down);
    let (app, _, guests) = upstream_with_guests(backend, &targets, &down, 1).await;
    let user = by_external_id(&down, &guests[0]).await.unwrap();
    let id = user["id"].as_str().unwrap().to_string();
    let retag = |ext: &str| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "path": "externalId", "value": ext}]})
    };
    down.patch(&format!("/Users/{id}"), &retag("retagged-by-hr"))
        .await;

    let counts = run_reconcile_job(&app, &targets).await;
    assert_eq!(counts.get("created"), Some(&0), "{counts:?}");
    assert_eq!(counts.get("updated"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("deactivated"), Some(&0), "{counts:?}");
    assert_eq!(downstream_user(&down, &id).await["externalId"], guests[0]);
    assert_eq!(count(&down, "userName pr").await, 1, "nobody created");

    down.patch(&format!("/Users/{id}"), &retag("retagged-again"))
        .await;
    let settings = settings_with_targets(&targets);
    let fresh =
        guestbridge::connectors::build::scim_connector(&settings.sync.targets[0], &app.deps.db)
            .unwrap();
    let mut conn = app.deps.db.pool().acquire().await.unwrap();
    let mut snapshot = guestbridge::services::sync::snapshot(&mut conn, &app.deps, &guests[0])
        .await
        .unwrap()
        .unwrap();
    snapshot.state = "suspended".into();
    let event = guestbridge::connectors::GuestEvent {
        event_id: "suspend-after-restart".into(),
        kind: guestbridge::connectors::EventKind::GuestSuspended,
        occurred_at: chrono::Utc::now(),
        guest: snapshot,
    };
    use guestbridge::connectors::Connector;
    fresh.deliver(&event).await.unwrap();
    assert_eq!(downstream_user(&down, &id).await["active"], false);
    assert!(!group_members(&down).await.contains(&id));
}

/// The admin API: past the cap, `409` with the plan and nothing changed; with `force=true`
/// the plan is carried out.
async fn admin_api_answers_a_plan_past_the_cap_with_409(backend: Backend) {
    let (down_app, down) = downstream(backend).await;
    let lost = create_staff(&down, "lost-guest-", 51).await;
    let targets = targets(&down_app, &down);
    let app = spawn_with(
        backend,
        &[],
        &[("GUESTBRIDGE_SYNC_TARGETS", targets.as_str())],
    )
    .await;
    {
        let mut conn = app.deps.db.pool().acquire().await.unwrap();
        for (n, remote_id) in lost.iter().enumerate() {
            let owned = guestbridge::store::ownership::Owned {
                guest_id: format!("lost-guest-{n:04}"),
                remote_id: remote_id.clone(),
                adopted: false,
            };
            guestbridge::store::ownership::record(&mut conn, "downstream", &owned, 1)
                .await
                .unwrap();
        }
    }
    let token = guestbridge::services::partners::issue_admin_token(&app.deps, &test_actor())
        .await
        .unwrap();
    let reconcile = |query: &'static str| {
        let (app, token) = (&app, &token);
        async move {
            read(
                app.client
                    .post(format!(
                        "{}/api/v1/sync/targets/downstream/reconcile?{query}",
                        app.address
                    ))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let refused = reconcile("force=false").await;
    assert_eq!(refused.status.as_u16(), 409, "{}", refused.body);
    assert!(refused.body["error"]
        .as_str()
        .unwrap()
        .contains("more than the cap of 50"));
    assert_eq!(refused.body["plan"]["report"]["deactivated"], 51);
    assert_eq!(refused.body["plan"]["owned"], 51);
    assert_eq!(count(&down, "active eq true").await, 51);

    let unknown = read(
        app.client
            .post(format!(
                "{}/api/v1/sync/targets/nope/reconcile",
                app.address
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unknown.status.as_u16(), 404);

    let forced = reconcile("force=true").await;
    assert_eq!(forced.status.as_u16(), 200, "{}", forced.body);
    assert_eq!(forced.body["report"]["deactivated"], 51);
    assert_eq!(count(&down, "active eq true").await, 0);
}
