//! The console's operations pages over HTTP with bearer tokens: the jobs page lists every
//! job and shows a run made through the API, with a job's history; the sync page shows each
//! target's counts and the dead letters in exact pages of 50 with their replay buttons; the
//! audit page filters and pages exactly as `GET /api/v1/audit` does, links the CSV export
//! with the same filters and verifies the chains on demand; auditors see no action buttons,
//! partner admins are refused, and what partners send is escaped.

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::console_pages::{attrs, APPS, RULES};
use crate::helpers::{
    eventually, read, spawn_with, spawn_with_rules, test_actor, Backend, TestApp,
};
use guestbridge::domain::{AdminRole, JobName, PartnerSlug};
use guestbridge::services::admin_auth::RoleGrant;
use guestbridge::services::partners;

both_backends!(
    the_jobs_page_lists_every_job_and_its_runs,
    the_sync_page_counts_and_pages_dead_letters,
    the_audit_page_filters_pages_exports_and_verifies,
    auditors_see_no_buttons_partner_admins_are_refused_and_values_are_escaped,
);

/// A console caller with a bearer token of one role.
struct Console<'a> {
    app: &'a TestApp,
    token: String,
}

impl Console<'_> {
    async fn new<'a>(app: &'a TestApp, role: AdminRole, partner: Option<&str>) -> Console<'a> {
        let grant = RoleGrant {
            role,
            partner: partner.map(|p| PartnerSlug::parse(p).unwrap()),
            sponsor: None,
        };
        let issued =
            partners::issue_admin_token_with_role(&app.deps, &test_actor(), "t", None, &grant)
                .await
                .unwrap();
        crate::log_scan::register_secret(&issued.secret);
        Console {
            app,
            token: issued.secret,
        }
    }

    async fn page(&self, path: &str) -> (StatusCode, String) {
        let res = self
            .app
            .client
            .get(format!("{}{path}", self.app.address))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    }

    async fn ok(&self, path: &str) -> String {
        let (status, html) = self.page(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {html}");
        html
    }

    async fn api(&self, path: &str) -> Value {
        let res = read(
            self.app
                .client
                .get(format!("{}/api/v1{path}", self.app.address))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.body);
        res.body
    }

    async fn post(&self, path: &str) -> Value {
        let res = read(
            self.app
                .client
                .post(format!("{}/api/v1{path}", self.app.address))
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.body);
        res.body
    }
}

/// The unescaped href of the element with this id.
fn href_of(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    attrs(tag, "href").into_iter().next()
}

/// The row of the table whose `data-{key}` is `value`.
fn row<'h>(html: &'h str, key: &str, value: &str) -> &'h str {
    let at = html
        .find(&format!("data-{key}=\"{value}\""))
        .unwrap_or_else(|| panic!("no row {key}={value} in {html}"));
    &html[at..at + html[at..].find("</tr>").unwrap()]
}

async fn person(scim: &crate::helpers::Scim, user_name: &str) -> String {
    scim.create_user(&json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "title": "Nurse",
    }))
    .await
}

async fn the_jobs_page_lists_every_job_and_its_runs(backend: Backend) {
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await;
    let admin = Console::new(&app, AdminRole::Admin, None).await;

    let html = admin.ok("/admin/jobs").await;
    let listed = attrs(&html, "data-job");
    let all: Vec<String> = JobName::ALL
        .iter()
        .map(|j| j.as_str().to_string())
        .collect();
    assert_eq!(listed, all, "{html}");
    assert!(html.contains("<caption>"));
    assert!(html.contains("<th scope=\"row\">"));
    assert!(row(&html, "job", "expiry").contains("never"));
    assert!(attrs(&html, "action").contains(&"/api/v1/jobs/expiry/run".to_string()));
    let nav = &html[html.find("<nav class=\"main\"").unwrap()..];
    assert!(
        nav.contains("href=\"&#x2f;admin&#x2f;jobs\" aria-current=\"page\""),
        "{nav}"
    );

    let run = admin.post("/jobs/expiry/run").await;
    let outcome = run["run"]["outcome"].as_str().unwrap().to_string();
    let html = admin.ok("/admin/jobs").await;
    let expiry = row(&html, "job", "expiry");
    assert!(!expiry.contains("never"), "{expiry}");
    assert!(
        expiry.contains(&format!("class=\"outcome\">{outcome}")),
        "{expiry}"
    );
    // The counts the API reported are on the page, each as `key: n`.
    for (k, v) in run["counts"].as_object().unwrap() {
        assert!(expiry.contains(&format!("{k}: {v}")), "{k} in {expiry}");
    }
    assert!(row(&html, "job", "reminders").contains("never"));

    // A job's page lists its runs, newest first; an unknown job is a 404.
    admin.post("/jobs/expiry/run").await;
    let runs = admin.api("/jobs/expiry/runs").await;
    let page = admin.ok("/admin/jobs/expiry").await;
    assert_eq!(page.matches("<tr class=\"run\">").count(), 2, "{page}");
    assert_eq!(runs["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        attrs(&page, "action"),
        ["/admin/logout", "/api/v1/jobs/expiry/run"]
    );
    let empty = admin.ok("/admin/jobs/outbox").await;
    assert!(empty.contains("No runs yet."));
    let (status, html) = admin.page("/admin/jobs/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("There is no job with this name."));
}

/// A webhook receiver that answers `status` to everything.
async fn start_receiver() -> (String, Arc<Mutex<u16>>) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let status = Arc::new(Mutex::new(400u16));
    let shared = status.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let shared = shared.clone();
        App::new().default_service(web::to(move || {
            let code = *shared.lock().unwrap();
            async move {
                HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap()).finish()
            }
        }))
    })
    .listen(listener)
    .unwrap()
    .workers(1)
    .run();
    tokio::spawn(server);
    (url, status)
}

async fn the_sync_page_counts_and_pages_dead_letters(backend: Backend) {
    let (url, status) = start_receiver().await;
    let targets =
        json!([{"name": "hooks", "type": "webhook", "url": url, "secret": "receiver-signing-key"}])
            .to_string();
    let app = spawn_with(
        backend,
        &[("apps.toml", APPS), ("rules.toml", RULES)],
        &[
            ("GUESTBRIDGE_SYNC_TARGETS", targets.as_str()),
            ("GUESTBRIDGE_SYNC_RETRY_BASE_MS", "100"),
        ],
    )
    .await;
    let admin = Console::new(&app, AdminRole::Admin, None).await;
    let html = admin.ok("/admin/sync").await;
    assert!(row(&html, "target", "hooks").contains("class=\"num dead\">0<"));
    assert!(html.contains("No dead letters."));

    // The receiver refuses every event: each guest's first event becomes a dead letter.
    let (_, acme) = app.partner("acme").await;
    for i in 0..52 {
        person(&acme, &format!("n{i:02}@acme.example")).await;
    }
    eventually("52 dead letters", || async {
        admin.api("/sync").await["targets"][0]["dead"] == 52
    })
    .await;
    let api = admin.api("/sync").await;
    let html = admin.ok("/admin/sync").await;
    let hooks = row(&html, "target", "hooks");
    assert!(hooks.contains("class=\"num dead\">52<"), "{hooks}");
    assert!(hooks.contains("class=\"num pending\">0<"), "{hooks}");
    assert!(hooks.contains("class=\"num delivered\">0<"), "{hooks}");
    assert!(hooks.contains("class=\"lag\">none"), "{hooks}");

    // Exactly 50, newest first (as the API lists them), then the other 2; no overlap.
    let first = attrs(&html, "data-event");
    assert_eq!(first.len(), 50);
    let newest: Vec<String> = api["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(newest.len(), 52);
    let mut api_sorted = newest.clone();
    let mut page_sorted = first.clone();
    api_sorted.truncate(50);
    api_sorted.sort();
    page_sorted.sort();
    assert_eq!(page_sorted, api_sorted);
    for id in &first {
        assert!(
            attrs(&html, "action").contains(&format!("/api/v1/sync/events/{id}/replay")),
            "{id}"
        );
    }
    let next = href_of(&html, "next").expect("a next page");
    let second_html = admin.ok(&next).await;
    let second = attrs(&second_html, "data-event");
    assert_eq!(second.len(), 2, "{second_html}");
    assert!(second.iter().all(|id| !first.contains(id)));
    assert!(href_of(&second_html, "next").is_none());
    assert!(href_of(&second_html, "first").is_some());
    let (bad, _) = admin.page("/admin/sync?cursor=nonsense").await;
    assert_eq!(bad, StatusCode::BAD_REQUEST);

    // Once the receiver accepts, a replay is delivered and leaves the dead letters.
    *status.lock().unwrap() = 204;
    let replayed = &first[0];
    admin.post(&format!("/sync/events/{replayed}/replay")).await;
    eventually("the replay delivered", || async {
        let html = admin.ok("/admin/sync").await;
        row(&html, "target", "hooks").contains("class=\"num delivered\">1<")
    })
    .await;
    let html = admin.ok("/admin/sync").await;
    assert!(row(&html, "target", "hooks").contains("class=\"num dead\">51<"));
    assert!(!attrs(&html, "data-event").contains(replayed));
}

/// The ids of an API page of the audit log, and its cursor.
async fn api_page(admin: &Console<'_>, query: &str) -> (Vec<String>, Option<String>) {
    let body = admin.api(&format!("/audit?limit=50&{query}")).await;
    let ids = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].to_string())
        .collect();
    (ids, body["next_cursor"].as_str().map(str::to_string))
}

async fn the_audit_page_filters_pages_exports_and_verifies(backend: Backend) {
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await;
    let admin = Console::new(&app, AdminRole::Admin, None).await;
    let (_, acme) = app.partner("acme").await;
    for i in 0..55 {
        person(&acme, &format!("a{i:02}@acme.example")).await;
    }
    let all = admin.api("/audit?limit=500").await;
    let entries = all["items"].as_array().unwrap();
    // The action that 55 people each caused once (or more): more than a page of it.
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for e in entries {
        *counts
            .entry(e["action"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let (action, n) = counts
        .iter()
        .filter(|(_, n)| **n > 50 && **n < 100)
        .map(|(a, n)| (a.clone(), *n))
        .next()
        .unwrap_or_else(|| panic!("no action with a second page: {counts:?}"));
    assert!(counts.len() > 1, "{counts:?}");

    let first_html = admin.ok(&format!("/admin/audit?action={action}")).await;
    let (api_first, cursor) = api_page(&admin, &format!("action={action}")).await;
    let page_first = attrs(&first_html, "data-entry");
    assert_eq!(page_first, api_first);
    assert!(attrs(&first_html, "data-action")
        .iter()
        .all(|a| *a == action));
    assert!(href_of(&first_html, "previous").is_none());
    assert_eq!(
        href_of(&first_html, "export").unwrap(),
        format!("/api/v1/audit/export.csv?action={action}")
    );
    assert!(first_html.contains(&format!("value=\"{action}\"")));

    let next = href_of(&first_html, "next").expect("a second page");
    assert!(next.contains(&format!("action={action}")), "{next}");
    let second_html = admin.ok(&next).await;
    let (api_second, end) = api_page(
        &admin,
        &format!("action={action}&cursor={}", cursor.unwrap()),
    )
    .await;
    let page_second = attrs(&second_html, "data-entry");
    assert_eq!(page_second, api_second);
    assert_eq!(page_first.len() + page_second.len(), n);
    assert!(end.is_none());
    assert!(href_of(&second_html, "next").is_none());
    let back = href_of(&second_html, "previous").expect("a previous page");
    assert_eq!(attrs(&admin.ok(&back).await, "data-entry"), page_first);

    // Since and until as the date-time inputs send them (UTC).
    let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let since = admin
        .ok(&format!("/admin/audit?action={action}&since={hour_ago}"))
        .await;
    assert_eq!(attrs(&since, "data-entry"), page_first);
    assert!(since.contains(&format!("value=\"{hour_ago}\"")));
    let export = href_of(&since, "export").unwrap();
    assert!(
        export.contains(&format!("action={action}")) && export.contains("since="),
        "{export}"
    );
    let csv = app
        .client
        .get(format!("{}{export}", app.address))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert_eq!(csv.text().await.unwrap().lines().count(), n + 1);
    let until = admin
        .ok(&format!("/admin/audit?action={action}&until={hour_ago}"))
        .await;
    assert!(attrs(&until, "data-entry").is_empty());
    assert!(until.contains("No entries match."));
    let (status, bad) = admin.page("/admin/audit?since=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad.contains("since must be an RFC 3339 instant"), "{bad}");
    assert!(attrs(&bad, "data-entry").is_empty());

    // Verification on demand.
    assert!(!first_html.contains("id=\"verify\""));
    let verify_link = href_of(&first_html, "verify-link").unwrap();
    assert!(verify_link.contains("verify=1"));
    let verified = admin.ok(&verify_link).await;
    let report = admin.api("/audit/verify").await;
    assert_eq!(report["ok"], true);
    assert!(verified.contains("data-ok=\"true\""));
    assert!(verified.contains("Verification: ok"));
    assert!(verified.contains(&format!(
        "{} rows checked on {} chains",
        report["rows"], report["chains"]
    )));
}

async fn auditors_see_no_buttons_partner_admins_are_refused_and_values_are_escaped(
    backend: Backend,
) {
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await;
    let (_, acme) = app.partner("acme").await;
    let hostile = "<script>alert(1)</script>";
    person(&acme, hostile).await;

    let auditor = Console::new(&app, AdminRole::Auditor, None).await;
    let jobs = auditor.ok("/admin/jobs").await;
    assert_eq!(attrs(&jobs, "data-job").len(), JobName::ALL.len());
    assert!(!jobs.contains("Run now"));
    assert!(!auditor.ok("/admin/jobs/expiry").await.contains("Run now"));
    let sync = auditor.ok("/admin/sync").await;
    assert!(!sync.contains("Replay") && !sync.contains("data-api"));
    let audit = auditor.ok("/admin/audit").await;
    assert!(!audit.contains("data-api"));
    assert!(!audit.contains(hostile), "{audit}");

    let pa = Console::new(&app, AdminRole::PartnerAdmin, Some("acme")).await;
    for path in [
        "/admin/jobs",
        "/admin/jobs/expiry",
        "/admin/sync",
        "/admin/audit",
    ] {
        let (status, html) = pa.page(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {html}");
    }

    let admin = Console::new(&app, AdminRole::Admin, None).await;
    let q = crate::helpers::url_encode(hostile);
    for path in [
        format!("/admin/audit?action={q}"),
        format!("/admin/audit?actor={q}&target_id={q}"),
        "/admin/audit".to_string(),
    ] {
        let html = admin.ok(&path).await;
        assert!(!html.contains(hostile), "{path}");
        assert!(!html.contains("<script>"), "{path}");
    }
    let html = admin.ok(&format!("/admin/audit?action={q}")).await;
    assert!(html.contains("value=\"&lt;script&gt;alert(1)&lt;&#x2f;script&gt;\""));
    assert_eq!(
        href_of(&html, "export").unwrap(),
        format!("/api/v1/audit/export.csv?action={}", form_encode(hostile))
    );
    // Bad filters are refused with the reason, and nothing is listed.
    let (status, html) = admin.page("/admin/audit?partner=No%20Such").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("partner is not a valid partner slug"),
        "{html}"
    );
    let (status, _) = admin.page("/admin/audit?trail=%3Cx%3E").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn form_encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}
