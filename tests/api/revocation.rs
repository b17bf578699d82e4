//! Revocation end to end: every cause of a loss of access reaches every sync target, once,
//! in order. The targets are servers on real sockets: a second Guestbridge as the downstream
//! SCIM server, the Microsoft Graph stand-in of the connector tests, and a webhook receiver
//! that records what it accepts. Jobs run at chosen instants.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{eventually, read, spawn, spawn_with, test_actor, Backend, Scim, TestApp};

const RULES: &str = r#"
[[app]]
id = "ehr"
name = "EHR Viewer"
description = ""
launch_url = "https://ehr.example/"
roles = ["reader"]

[[app]]
id = "lab"
name = "Lab Results"
description = ""
launch_url = "https://lab.example/"
roles = ["viewer", "icu"]

[[rule]]
id = "nurses-ehr"
condition = 'title co "Nurse"'
grants = [{ app = "ehr", role = "reader" }]
access_until = 2030-01-31

[[rule]]
id = "nurses-lab"
condition = 'title co "Nurse"'
grants = [{ app = "lab", role = "viewer" }]
access_until = 2030-06-30

[[rule]]
id = "icu"
groups = ["ICU"]
grants = [{ app = "lab", role = "icu" }]
"#;

both_backends!(
    scim_deactivation_reaches_every_target_once,
    scim_delete_removes_everywhere_and_ends_links_and_sessions,
    full_import_without_the_person_reaches_every_target_once,
    rule_reload_that_drops_a_grant_reaches_every_target_once,
    group_removal_reaches_every_target_once,
    expiry_of_one_grant_then_of_the_last_reaches_every_target_once,
    invitation_lapse_reaches_every_target_once_and_an_admin_can_reinvite,
    inactivity_reaches_every_target_once,
    deprovision_safety_net_reaches_every_target_once,
    a_name_and_address_change_reaches_every_target_once,
    a_replayed_dead_letter_sends_the_current_state_and_is_audited,
);

/// A webhook receiver that accepts everything (optionally slowly) and records each event.
#[derive(Clone, Default)]
pub struct Hook {
    pub events: Arc<Mutex<Vec<Value>>>,
    /// Milliseconds each request takes before it is answered.
    pub delay_ms: Arc<AtomicU64>,
    /// Answer 400 (a permanent refusal) while set.
    pub refuse: Arc<std::sync::atomic::AtomicBool>,
}

impl Hook {
    pub async fn start() -> (String, Hook) {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let hook = Hook::default();
        let state = hook.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            let state = state.clone();
            App::new().route(
                "/hook",
                web::post().to(move |body: web::Bytes| {
                    let state = state.clone();
                    async move {
                        let delay = state.delay_ms.load(Ordering::SeqCst);
                        if delay > 0 {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                        }
                        if state.refuse.load(Ordering::SeqCst) {
                            return HttpResponse::BadRequest().finish();
                        }
                        state
                            .events
                            .lock()
                            .unwrap()
                            .push(serde_json::from_slice(&body).unwrap());
                        HttpResponse::NoContent().finish()
                    }
                }),
            )
        })
        .listen(listener)
        .unwrap()
        .workers(4)
        .run();
        tokio::spawn(server);
        (url, hook)
    }

    /// The events accepted for one guest, in order of arrival.
    pub fn of(&self, guest_id: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["data"]["guest_id"] == guest_id)
            .cloned()
            .collect()
    }

    /// Every accepted event once, per guest in ascending version: (duplicates, inversions).
    pub fn audit(&self) -> (usize, usize) {
        let events = self.events.lock().unwrap();
        let mut seen = HashSet::new();
        let mut duplicates = 0;
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        let mut inversions = 0;
        for e in events.iter() {
            if !seen.insert(e["id"].as_str().unwrap().to_string()) {
                duplicates += 1;
            }
            let guest = e["data"]["guest_id"].as_str().unwrap().to_string();
            let version = e["data"]["version"].as_i64().unwrap_or(0);
            if let Some(prev) = last.insert(guest, version) {
                if version <= prev {
                    inversions += 1;
                }
            }
        }
        (duplicates, inversions)
    }
}

/// Start the Graph stand-in with the groups the rules' grants map to.
fn start_graph() -> (String, crate::graph_stand_in::Shared) {
    use actix_web::{web, App, HttpServer};
    let state: crate::graph_stand_in::Shared = Default::default();
    let data = web::Data::new(state.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route(
                "/tenant-id/oauth2/v2.0/token",
                web::post().to(crate::graph_stand_in::token),
            )
            .default_service(web::to(crate::graph_stand_in::graph))
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .run();
    tokio::spawn(server);
    {
        let mut t = state.lock().unwrap();
        t.base = format!("{url}/v1.0");
        for gid in ["grp-ehr", "grp-lab", "grp-icu"] {
            t.groups.insert(gid.into(), Default::default());
        }
    }
    (url, state)
}

/// The bridge under test with its two targets.
struct Bridge {
    app: TestApp,
    acme: Scim,
    hook: Hook,
    /// The downstream Guestbridge, seen as the hospital's SCIM directory.
    down: Scim,
    /// The Graph stand-in's tenant.
    graph: crate::graph_stand_in::Shared,
    env: Vec<(String, String)>,
    _downstream: TestApp,
}

impl Bridge {
    async fn start(backend: Backend) -> Bridge {
        let downstream = spawn(backend).await;
        let (_, down) = downstream.partner("hospital").await;
        let (url, hook) = Hook::start().await;
        let (graph_url, graph) = start_graph();
        let targets = json!([
            {"name": "hooks", "type": "webhook", "url": url, "secret": "hook-secret"},
            {"name": "idm", "type": "scim", "url": format!("{}/scim/v2", downstream.address), "secret": down.token, "group_prefix": "gb-"},
            {"name": "entra", "type": "graph", "url": format!("{graph_url}/v1.0"),
             "token_url": format!("{graph_url}/tenant-id/oauth2/v2.0/token"),
             "client_id": crate::graph_stand_in::CLIENT_ID, "secret": crate::graph_stand_in::CLIENT_SECRET,
             "redirect_url": crate::graph_stand_in::REDIRECT,
             "groups": {"ehr:reader": "grp-ehr", "lab:viewer": "grp-lab", "lab:icu": "grp-icu"}},
        ])
        .to_string();
        let env = vec![
            ("GUESTBRIDGE_SYNC_TARGETS".to_string(), targets),
            (
                "GUESTBRIDGE_SYNC_RETRY_BASE_MS".to_string(),
                "100".to_string(),
            ),
        ];
        let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let app = spawn_with(backend, &[("rules.toml", RULES)], &extra).await;
        let (_, acme) = app.partner("acme").await;
        Bridge {
            app,
            acme,
            hook,
            down,
            graph,
            env,
            _downstream: downstream,
        }
    }

    /// The Graph user with this mail: (enabled, group ids), or None when there is none.
    fn graph_user(&self, mail: &str) -> Option<(bool, Vec<String>)> {
        let t = self.graph.lock().unwrap();
        let (id, user) = t.users.iter().find(|(_, u)| u.mail == mail)?;
        let groups = t
            .groups
            .iter()
            .filter(|(_, m)| m.contains(id))
            .map(|(g, _)| g.clone())
            .collect();
        Some((user.enabled, groups))
    }

    /// Each target's events for the guest, delivered, as counted in the outbox.
    async fn per_target(&self, guest_id: &str) -> BTreeMap<String, i64> {
        sqlx::query_as::<_, (String, i64)>(
            "SELECT target, COUNT(*) FROM sync_outbox WHERE guest_id = $1 AND delivered_at IS NOT NULL GROUP BY target",
        )
        .bind(guest_id)
        .fetch_all(self.app.deps.db.pool())
        .await
        .unwrap()
        .into_iter()
        .collect()
    }

    fn settings(&self) -> guestbridge::config::Settings {
        guestbridge::config::Settings::load(None, &self.env.iter().cloned().collect()).unwrap()
    }

    async fn run_job(&self, name: &str, now: &str) -> BTreeMap<&'static str, u64> {
        let now: DateTime<Utc> = now.parse().unwrap();
        let report =
            guestbridge::jobs::run_once(name, &self.app.deps, &self.settings(), None, now, "test")
                .await
                .unwrap();
        assert!(report.ran);
        report.counts
    }

    /// A nurse (two grants, and the ICU grant when in the ICU group); returns (user id, guest id).
    async fn nurse(&self, user_name: &str) -> (String, String) {
        let user = self
            .acme
            .create_user(&json!({"userName": user_name, "title": "Staff Nurse",
                                  "name": {"givenName": "Ann", "familyName": "Lee"},
                                  "emails": [{"value": user_name, "primary": true}]}))
            .await;
        let guest = self.guest_of(&user).await;
        (user, guest)
    }

    async fn guest_of(&self, user_id: &str) -> String {
        sqlx::query_scalar("SELECT id FROM guests WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(self.app.deps.db.pool())
            .await
            .unwrap()
    }

    /// Wait until every queued event is delivered and the webhook holds `n` for the guest.
    async fn settled(&self, guest_id: &str, n: usize) -> Vec<Value> {
        let all = n as i64;
        self.settled_with(guest_id, n, [("entra", all), ("hooks", all), ("idm", all)])
            .await
    }

    /// As `settled`, with each target's delivered count given (one target refused some).
    async fn settled_with(
        &self,
        guest_id: &str,
        n: usize,
        per_target: [(&str, i64); 3],
    ) -> Vec<Value> {
        eventually(&format!("{n} events for the guest"), || async {
            self.hook.of(guest_id).len() >= n && self.pending().await == 0
        })
        .await;
        // Long enough for a duplicate to show if one were on its way.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let events = self.hook.of(guest_id);
        assert_eq!(events.len(), n, "{events:#?}");
        assert_eq!(self.hook.audit(), (0, 0), "no duplicates, no inversions");
        let expected: BTreeMap<String, i64> = per_target
            .iter()
            .map(|(t, n)| (t.to_string(), *n))
            .collect();
        assert_eq!(
            self.per_target(guest_id).await,
            expected,
            "each target's events"
        );
        let violations = self.graph.lock().unwrap().violations.clone();
        assert!(violations.is_empty(), "Graph stand-in: {violations:?}");
        events
    }

    async fn pending(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM sync_outbox WHERE delivered_at IS NULL AND dead_at IS NULL",
        )
        .fetch_one(self.app.deps.db.pool())
        .await
        .unwrap()
    }

    /// The downstream user standing for this guest.
    async fn downstream(&self, guest_id: &str) -> Option<Value> {
        let res = self
            .down
            .filter_users(&format!("externalId eq \"{guest_id}\""))
            .await;
        res.body["Resources"]
            .as_array()
            .and_then(|a| a.first().cloned())
    }

    /// The groups the downstream user is in, by display name.
    async fn downstream_groups(&self, guest_id: &str) -> Vec<String> {
        let user = self.downstream(guest_id).await.expect("downstream user");
        let mut groups: Vec<String> = user["groups"]
            .as_array()
            .map(|g| {
                g.iter()
                    .map(|g| g["display"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        groups.sort();
        groups
    }

    /// POST to the admin API with a new admin token.
    async fn admin_post(&self, path: &str) -> crate::helpers::Res {
        let token = self.admin_token().await;
        read(
            self.app
                .client
                .post(format!("{}/api/v1{path}", self.app.address))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn admin_token(&self) -> String {
        guestbridge::services::partners::issue_admin_token(&self.app.deps, &test_actor())
            .await
            .unwrap()
    }

    async fn state(&self, guest_id: &str) -> String {
        sqlx::query_scalar("SELECT state FROM guests WHERE id = $1")
            .bind(guest_id)
            .fetch_one(self.app.deps.db.pool())
            .await
            .unwrap()
    }

    async fn open_invitations(&self, guest_id: &str) -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM invitations WHERE guest_id = $1 AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(guest_id)
        .fetch_one(self.app.deps.db.pool())
        .await
        .unwrap()
    }
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn grants(event: &Value) -> Vec<String> {
    let mut g: Vec<String> = event["data"]["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            format!(
                "{}:{}",
                g["app"].as_str().unwrap(),
                g["role"].as_str().unwrap()
            )
        })
        .collect();
    g.sort();
    g
}

async fn scim_deactivation_reaches_every_target_once(backend: Backend) {
    let b = Bridge::start(backend).await;
    let (user, guest) = b.nurse("ann@acme.example").await;
    b.settled(&guest, 1).await;
    b.acme
        .patch(
            &format!("/Users/{user}"),
            &patch(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    let events = b.settled(&guest, 2).await;
    assert_eq!(events[1]["type"], "guest.suspended");
    assert_eq!(events[1]["data"]["version"], 2);
    eventually("the downstream user disabled", || async {
        b.downstream(&guest)
            .await
            .is_some_and(|u| u["active"] == false)
    })
    .await;
    assert_eq!(
        b.graph_user("ann@acme.example"),
        Some((false, vec![])),
        "the Graph user disabled and out of every group"
    );
}

async fn scim_delete_removes_everywhere_and_ends_links_and_sessions(backend: Backend) {
    let b = Bridge::start(backend).await;
    let (user, guest) = b.nurse("ann@acme.example").await;
    b.settled(&guest, 1).await;
    let now = b.app.deps.now_ms();
    sqlx::query("INSERT INTO guest_sessions (id_hash, guest_id, created_at, expires_at, mfa_passed, csrf_secret) VALUES ('h', $1, $2, $3, 1, 'c')")
        .bind(&guest)
        .bind(now)
        .bind(now + 3_600_000)
        .execute(b.app.deps.db.pool())
        .await
        .unwrap();
    let res = b.acme.delete(&format!("/Users/{user}")).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    let events = b.settled(&guest, 2).await;
    assert_eq!(events[1]["type"], "guest.removed");
    eventually("the downstream user deleted", || async {
        b.downstream(&guest).await.is_none()
    })
    .await;
    assert_eq!(
        b.graph_user("ann@acme.example"),
        None,
        "the Graph user deleted"
    );
    let open = b.open_invitations(&guest).await;
    assert_eq!(open, 0, "the open invitation is revoked");
    let sessions: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM guest_sessions WHERE guest_id = $1")
            .bind(&guest)
            .fetch_one(b.app.deps.db.pool())
            .await
            .unwrap();
    assert_eq!(sessions, 0, "the portal session is ended");
}

async fn full_import_without_the_person_reaches_every_target_once(backend: Backend) {
    let b = Bridge::start(backend).await;
    let (_, ann) = b.nurse("ann@acme.example").await;
    let (_, bob) = b.nurse("bob@acme.example").await;
    b.settled(&ann, 1).await;
    b.settled(&bob, 1).await;
    let token = b.admin_token().await;
    let csv = "userName,title,email\nbob@acme.example,Staff Nurse,bob@acme.example\n";
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::text(csv).file_name("roster.csv"),
    );
    let res = read(
        b.app
            .client
            .post(format!(
                "{}/api/v1/imports?partner=acme&mode=full&force=true",
                b.app.address
            ))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(res.status.is_success(), "{}", res.body);
    let events = b.settled(&ann, 2).await;
    assert_eq!(events[1]["type"], "guest.suspended");
    assert_eq!(b.hook.of(&bob).len(), 1, "bob is unchanged: nothing sent");
}

async fn rule_reload_that_drops_a_grant_reaches_every_target_once(backend: Backend) {
    let b = Bridge::start(backend).await;
    let (_, guest) = b.nurse("ann@acme.example").await;
    let events = b.settled(&guest, 1).await;
    assert_eq!(grants(&events[0]), ["ehr:reader", "lab:viewer"]);
    let without_lab = RULES.replace(
        "grants = [{ app = \"lab\", role = \"viewer\" }]",
        "grants = [{ app = \"lab\", role = \"viewer\" }]\npartners = [\"nobody\"]",
    );
    std::fs::write(b.app.mappings.join("rules.toml"), without_lab).unwrap();
    let rules = guestbridge::startup::load_rules(&b.app.mappings).unwrap();
    guestbridge::services::rules::reload(&b.app.deps, &test_actor(), rules)
        .await
        .unwrap();
    let events = b.settled(&guest, 2).await;
    assert_eq!(events[1]["type"], "guest.upserted");
    assert_eq!(grants(&events[1]), ["ehr:reader"]);
    eventually("the downstream group membership gone", || async {
        b.downstream_groups(&guest).await == ["gb-ehr:reader"]
    })
    .await;
}

async fn group_removal_reaches_every_target_once(backend: Backend) {
    let b = Bridge::start(backend).await;
    let (user, guest) = b.nurse("ann@acme.example").await;
    let group = b
        .acme
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "ICU",
                    "members": [{"value": user}]}),
        )
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.body);
    let events = b.settled(&guest, 2).await;
    assert_eq!(grants(&events[1]), ["ehr:reader", "lab:icu", "lab:viewer"]);
    let gid = group.body["id"].as_str().unwrap();
    let res = b
        .acme
        .patch(
            &format!("/Groups/{gid}"),
            &patch(json!([{"op": "remove", "path": format!("members[value eq \"{user}\"]")}])),
        )
        .await;
    assert!(res.status.is_success(), "{}", res.body);
    let events = b.settled(&guest, 3).await;
    assert_eq!(grants(&events[2]), ["ehr:reader", "lab:viewer"]);
}

async fn expiry_of_one_grant_then_of_the_last_reaches_every_target_once(backend: Backend) {
    let b = Bridge::start(backend).await;
    let (_, guest) = b.nurse("ann@acme.example").await;
    b.settled(&guest, 1).await;
    // The EHR grant ends on 2030-01-31; the lab grant goes on until 2030-06-30.
    let counts = b.run_job("expiry", "2030-02-15T00:00:00Z").await;
    assert_eq!(counts.get("grants_ended"), Some(&1), "{counts:?}");
    let events = b.settled(&guest, 2).await;
    assert_eq!(events[1]["type"], "guest.upserted");
    assert_eq!(grants(&events[1]), ["lab:viewer"]);
    eventually("the downstream EHR membership gone", || async {
        b.downstream_groups(&guest).await == ["gb-lab:viewer"]
    })
    .await;
    assert_eq!(
        b.graph_user("ann@acme.example"),
        Some((true, vec!["grp-lab".to_string()])),
        "the Graph user keeps the lab group only"
    );
    // Run again at the same instant: nothing more to tell.
    b.run_job("expiry", "2030-02-15T00:00:00Z").await;
    b.settled(&guest, 2).await;
    // The last grant ends: the guest is suspended, once.
    let counts = b.run_job("expiry", "2030-07-15T00:00:00Z").await;
    assert_eq!(counts.get("expired"), Some(&1), "{counts:?}");
    let events = b.settled(&guest, 3).await;
    assert_eq!(events[2]["type"], "guest.suspended");
    eventually("the downstream user disabled", || async {
        b.downstream(&guest)
            .await
            .is_some_and(|u| u["active"] == false)
    })
    .await;
}

async fn invitation_lapse_reaches_every_target_once_and_an_admin_can_reinvite(backend: Backend) {
    let b = Bridge::start(backend).await;
    let (_, guest) = b.nurse("ann@acme.example").await;
    b.settled(&guest, 1).await;
    // Reminders, then the lapse, each run further on (defaults: every 3 days, 2 reminders).
    let start = Utc::now();
    let mut lapsed = 0;
    for day in [4, 8, 12, 16, 20] {
        let at = (start + chrono::Duration::days(day)).to_rfc3339();
        lapsed += b
            .run_job("reminders", &at)
            .await
            .get("lapsed")
            .copied()
            .unwrap_or(0);
    }
    assert_eq!(lapsed, 1);
    let events = b.settled(&guest, 2).await;
    assert_eq!(events[1]["type"], "guest.suspended");
    assert_eq!(b.state(&guest).await, "suspended:lapsed");

    // An admin invites the guest again: invited, with a new open invitation, and synced.
    let res = b.admin_post(&format!("/guests/{guest}/invitation")).await;
    assert!(res.status.is_success(), "{} {}", res.status, res.body);
    assert_eq!(b.state(&guest).await, "invited");
    let open = b.open_invitations(&guest).await;
    assert_eq!(open, 1);
    let events = b.settled(&guest, 3).await;
    assert_eq!(events[2]["type"], "guest.upserted");
    assert_eq!(events[2]["data"]["state"], "invited");
}

/// Make the guest active (as if they had redeemed), last seen at `seen`.
async fn make_active(b: &Bridge, guest: &str, seen: i64) {
    sqlx::query(
        "UPDATE guests SET state = 'active', redeemed_at = $1, last_seen_at = $1 WHERE id = $2",
    )
    .bind(seen)
    .bind(guest)
    .execute(b.app.deps.db.pool())
    .await
    .unwrap();
}

async fn inactivity_reaches_every_target_once(backend: Backend) {
    let b = Bridge::start(backend).await;
    let (_, guest) = b.nurse("ann@acme.example").await;
    b.settled(&guest, 1).await;
    make_active(&b, &guest, b.app.deps.now_ms()).await;
    let later = (Utc::now() + chrono::Duration::days(400)).to_rfc3339();
    let counts = b.run_job("deprovision", &later).await;
    assert_eq!(counts.get("inactive"), Some(&1), "{counts:?}");
    let events = b.settled(&guest, 2).await;
    assert_eq!(events[1]["type"], "guest.suspended");
    assert_eq!(b.graph_user("ann@acme.example"), Some((false, vec![])));
    eventually("the downstream user disabled", || async {
        b.downstream(&guest)
            .await
            .is_some_and(|u| u["active"] == false)
    })
    .await;
}

async fn deprovision_safety_net_reaches_every_target_once(backend: Backend) {
    let b = Bridge::start(backend).await;
    let (user, guest) = b.nurse("ann@acme.example").await;
    b.settled(&guest, 1).await;
    // The person is inactive while the guest still has access (a write that bypassed the
    // lifecycle): the safety net catches it.
    sqlx::query("UPDATE scim_users SET active = 0 WHERE id = $1")
        .bind(&user)
        .execute(b.app.deps.db.pool())
        .await
        .unwrap();
    let counts = b.run_job("deprovision", &Utc::now().to_rfc3339()).await;
    assert_eq!(counts.get("deactivated"), Some(&1), "{counts:?}");
    let events = b.settled(&guest, 2).await;
    assert_eq!(events[1]["type"], "guest.suspended");
}

async fn a_name_and_address_change_reaches_every_target_once(backend: Backend) {
    let b = Bridge::start(backend).await;
    let (user, guest) = b.nurse("ann@acme.example").await;
    b.settled(&guest, 1).await;
    let res = b
        .acme
        .patch(
            &format!("/Users/{user}"),
            &patch(json!([
                {"op": "replace", "path": "name.familyName", "value": "Lee-Smith"},
                {"op": "replace", "path": "emails[primary eq true].value", "value": "ann.smith@acme.example"},
            ])),
        )
        .await;
    assert!(res.status.is_success(), "{}", res.body);
    let events = b.settled(&guest, 2).await;
    assert_eq!(events[1]["data"]["family_name"], "Lee-Smith");
    assert_eq!(events[1]["data"]["email"], "ann.smith@acme.example");
    eventually("the downstream name changed", || async {
        b.downstream(&guest)
            .await
            .is_some_and(|u| u["name"]["familyName"] == "Lee-Smith")
    })
    .await;
    // A change no target sees (an attribute outside the snapshot) sends nothing.
    b.acme
        .patch(
            &format!("/Users/{user}"),
            &patch(json!([{"op": "replace", "path": "nickName", "value": "Annie"}])),
        )
        .await;
    b.settled(&guest, 2).await;
}

async fn a_replayed_dead_letter_sends_the_current_state_and_is_audited(backend: Backend) {
    let b = Bridge::start(backend).await;
    let (user, guest) = b.nurse("ann@acme.example").await;
    b.settled(&guest, 1).await;
    // The receiver refuses the suspension: a dead letter.
    b.hook.refuse.store(true, Ordering::SeqCst);
    b.acme
        .patch(
            &format!("/Users/{user}"),
            &patch(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    let dead_id = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT id FROM sync_outbox WHERE dead_at IS NOT NULL AND replayed_at IS NULL",
        )
        .fetch_optional(b.app.deps.db.pool())
        .await
        .unwrap()
    };
    eventually("a dead letter", || async { dead_id().await.is_some() }).await;
    let dead = dead_id().await.unwrap();
    // Meanwhile the partner deletes the person; that event goes out.
    b.hook.refuse.store(false, Ordering::SeqCst);
    b.acme.delete(&format!("/Users/{user}")).await;
    let events = b
        .settled_with(&guest, 2, [("entra", 3), ("hooks", 2), ("idm", 3)])
        .await;
    assert_eq!(events[1]["type"], "guest.removed");
    // Replaying the old suspension sends the current state (removed), not the stale one.
    let res = b.admin_post(&format!("/sync/events/{dead}/replay")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let events = b
        .settled_with(&guest, 3, [("entra", 3), ("hooks", 3), ("idm", 3)])
        .await;
    assert_eq!(events[2]["type"], "guest.removed");
    assert!(events[2]["data"]["version"].as_i64() > events[1]["data"]["version"].as_i64());
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'sync.replayed' AND target_id = $1",
    )
    .bind(&guest)
    .fetch_one(b.app.deps.db.pool())
    .await
    .unwrap();
    assert_eq!(audited, 1);
    // A dead letter is replayed once.
    let again = b.admin_post(&format!("/sync/events/{dead}/replay")).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}
