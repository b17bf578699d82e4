//! The admin console's pages over HTTP with an admin bearer token: the dashboard's figures
//! match what was provisioned, the expiry chart has one bar per week with the right counts,
//! the guests table searches, filters and pages exactly (no duplicate or gap, even with a
//! guest added between pages), the guest page shows grants, explanation and timeline, and
//! every page escapes what partners send.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{read, spawn_with_rules, test_actor, Backend, Scim, TestApp};
use crate::users_crud::ENTERPRISE;

pub(crate) const APPS: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = "Shared health record"
launch_url = "https://ehr.example/launch"
roles = ["reader"]

[[app]]
id = "scheduling"
name = "Shift scheduling"
description = "Rosters"
launch_url = "https://shifts.example/"
roles = ["viewer"]
"#;

pub(crate) const RULES: &str = r#"
[[partner]]
slug = "acme"
approval = "auto"

[[partner]]
slug = "globex"
approval = "admin"

[[rule]]
id = "cardiology-nurses"
condition = 'department eq "Cardiology" and title co "Nurse"'
grants = [{ app = "ehr-viewer", role = "reader" }]
access_days = 60
sponsor = "dr.grey@hospital.example"

[[rule]]
id = "everyone-schedules"
grants = [{ app = "scheduling", role = "viewer" }]
access_days = 365
"#;

const WEEK_MS: i64 = 7 * 86_400_000;

both_backends!(
    the_dashboard_counts_what_was_provisioned,
    the_guests_table_searches_filters_and_pages_exactly,
    the_guest_page_shows_grants_explanation_and_timeline,
    console_pages_need_an_admin_and_escape_what_partners_send,
    demo_seeds_an_empty_database_once,
);

struct Console<'a> {
    app: &'a TestApp,
    token: String,
}

impl Console<'_> {
    async fn new(app: &TestApp) -> Console<'_> {
        let token = guestbridge::services::partners::issue_admin_token(&app.deps, &test_actor())
            .await
            .unwrap();
        crate::log_scan::register_secret(&token);
        Console { app, token }
    }

    /// A page's status and HTML.
    async fn page(&self, path: &str) -> (StatusCode, String) {
        let res = self
            .app
            .client
            .get(format!("{}{path}", self.app.address))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = res.status();
        if status.is_success() {
            let ct = res.headers()["content-type"].to_str().unwrap().to_string();
            assert!(ct.starts_with("text/html"), "{path}: {ct}");
        }
        (status, res.text().await.unwrap())
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
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        res.body
    }
}

fn person(user_name: &str, given: &str, family: &str, nurse: bool) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        "userName": user_name,
        "displayName": format!("{given} {family}"),
        "name": {"givenName": given, "familyName": family},
        "title": if nurse { "Staff Nurse" } else { "Porter" },
        "emails": [{"value": format!("{}@mail.example", user_name.to_lowercase()), "primary": true}],
        ENTERPRISE: {"department": "Cardiology"}
    })
}

/// The guest id of a SCIM user.
pub(crate) async fn guest_of(app: &TestApp, user_id: &str) -> String {
    sqlx::query_scalar("SELECT id FROM guests WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

/// HTML text back to what was escaped (minijinja escapes `&<>"'/`).
pub(crate) fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// Every value of `attr="…"` in document order.
pub(crate) fn attrs(html: &str, attr: &str) -> Vec<String> {
    let marker = format!("{attr}=\"");
    html.match_indices(&marker)
        .map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            unescape(&rest[..rest.find('"').unwrap()])
        })
        .collect()
}

/// The href of the link with this id, if present.
fn link(html: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\" href=\"");
    html.find(&marker).map(|at| {
        let rest = &html[at + marker.len()..];
        unescape(&rest[..rest.find('"').unwrap()])
    })
}

/// The number in the first `<td class="num">` after `marker`.
fn figure_after(html: &str, marker: &str) -> i64 {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in page"));
    let rest = &html[at..];
    let cell = "<td class=\"num\">";
    let start = rest.find(cell).unwrap() + cell.len();
    rest[start..start + rest[start..].find('<').unwrap()]
        .parse()
        .unwrap()
}

/// Five acme nurses (invited), one of them deactivated (suspended), two acme porters
/// (schedule only), two globex people awaiting approval.
async fn provision(acme: &Scim, globex: &Scim) -> Vec<String> {
    let mut ids = Vec::new();
    for (u, g, f) in [
        ("ann.lee", "Ann", "Lee"),
        ("Annika.Berg", "Annika", "Berg"),
        ("bob.stone", "Bob", "Stone"),
        ("cyd.oak", "Cyd", "Oak"),
        ("dee.ray", "Dee", "Ray"),
    ] {
        ids.push(acme.create_user(&person(u, g, f, true)).await);
    }
    for (u, g, f) in [("eve.moss", "Eve", "Moss"), ("fay.dunn", "Fay", "Dunn")] {
        ids.push(acme.create_user(&person(u, g, f, false)).await);
    }
    for (u, g, f) in [("gus.hale", "Gus", "Hale"), ("hal.ives", "Anna", "Ives")] {
        ids.push(globex.create_user(&person(u, g, f, true)).await);
    }
    let res = acme
        .patch(
            &format!("/Users/{}", ids[4]),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "active", "value": false}]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    ids
}

async fn the_dashboard_counts_what_was_provisioned(backend: Backend) {
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await;
    let (_, acme) = app.partner("acme").await;
    let (_, globex) = app.partner("globex").await;
    let users = provision(&acme, &globex).await;
    let console = Console::new(&app).await;

    // Grant ends placed in known weeks (3 hours into each, so the page's own clock, a
    // moment later, puts them in the same week); every other grant ends far away.
    let now = chrono::Utc::now().timestamp_millis();
    let pool = app.deps.db.pool();
    sqlx::query("UPDATE guest_grants SET valid_until = $1")
        .bind(now + 400 * 86_400_000)
        .execute(pool)
        .await
        .unwrap();
    let weeks = [0i64, 2, 2, 5, 12];
    for (user, week) in users.iter().zip(weeks) {
        let guest = guest_of(&app, user).await;
        sqlx::query(
            "UPDATE guest_grants SET valid_until = $1 WHERE guest_id = $2 AND app_id = 'ehr-viewer'",
        )
        .bind(now + week * WEEK_MS + 3 * 3_600_000)
        .bind(&guest)
        .execute(pool)
        .await
        .unwrap();
    }

    let html = console.ok("/admin/dashboard").await;
    // Counts by state and by partner, checked against the JSON API's totals too.
    for (state, want) in [("invited", 6), ("pending_approval", 2)] {
        assert_eq!(
            figure_after(&html, &format!("data-state=\"{state}\"")),
            want,
            "{state}"
        );
        let api = console.api(&format!("/guests?state={state}")).await;
        assert_eq!(api["total"], want, "{state}");
    }
    let suspended = console.api("/guests?state=suspended").await;
    assert_eq!(suspended["total"], 1);
    let suspended_state = suspended["guests"][0]["suspended_reason"].as_str().unwrap();
    assert_eq!(
        figure_after(
            &html,
            &format!("data-state=\"suspended:{suspended_state}\"")
        ),
        1
    );
    assert!(html.contains("<div class=\"figure\" id=\"guest-total\">9</div>"));
    // acme: 0 pending, 6 invited, 0 active, 1 suspended, 0 removed, 7 in all.
    let acme_row = &html[html.find("data-partner=\"acme\"").unwrap()..];
    let acme_row = &acme_row[..acme_row.find("</tr>").unwrap()];
    let cells: Vec<i64> = acme_row
        .split("<td class=\"num\">")
        .skip(1)
        .map(|c| c[..c.find('<').unwrap()].parse().unwrap())
        .collect();
    assert_eq!(cells, [0, 6, 0, 1, 0, 7]);
    assert_eq!(figure_after(&html, "data-partner=\"globex\""), 2);

    // Invitations awaiting redemption: what the guests' own records say is open.
    let mut open = 0;
    for user in &users {
        let guest = guest_of(&app, user).await;
        let detail = console.api(&format!("/guests/{guest}")).await;
        open += detail["invitations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["status"] == "open")
            .count();
    }
    assert!(open > 0);
    assert!(
        html.contains(&format!(
            "<div class=\"figure\" id=\"open-invitations\">{open}</div>"
        )),
        "{open}"
    );

    // One bar per week of the 90 days, each with its count, and the same in the table.
    let counts: Vec<i64> = attrs(&html, "data-count")
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(attrs(&html, "data-week").len(), 13);
    let mut want = [0i64; 13];
    for w in weeks {
        want[w as usize] += 1;
    }
    assert_eq!(counts, want);
    assert!(html.contains("<div class=\"figure\" id=\"grant-ends\">5</div>"));
    assert!(html.contains("<title id=\"chart-title\">"));
    let table = &html[html.find("id=\"expiry-table\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    assert_eq!(table.matches("<th scope=\"row\">").count(), 13);
    // No sync targets here, and no job has run yet.
    assert!(html.contains("No sync targets are configured."));
    assert_eq!(html.matches("never run").count(), 6);
}

async fn the_guests_table_searches_filters_and_pages_exactly(backend: Backend) {
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await;
    let (acme_partner, acme) = app.partner("acme").await;
    let (_, globex) = app.partner("globex").await;
    let users = provision(&acme, &globex).await;
    let console = Console::new(&app).await;

    // Search: a case-insensitive prefix of userName, display name or e-mail.
    let find = |q: &str| format!("/admin/guests?q={}", crate::helpers::url_encode(q));
    let names = |html: &str| {
        let mut v: Vec<String> = attrs(html, "data-guest");
        v.sort();
        v
    };
    let mut guests = Vec::new();
    for u in &users {
        guests.push(guest_of(&app, u).await);
    }
    let expect = |idx: &[usize]| {
        let mut v: Vec<String> = idx.iter().map(|i| guests[*i].clone()).collect();
        v.sort();
        v
    };
    // "ann": ann.lee and Annika.Berg by userName, hal.ives by display name "Anna Ives".
    assert_eq!(names(&console.ok(&find("ANN")).await), expect(&[0, 1, 8]));
    assert_eq!(names(&console.ok(&find("annik")).await), expect(&[1]));
    // By e-mail only (userName "bob.stone", e-mail "bob.stone@mail.example").
    assert_eq!(
        names(&console.ok(&find("bob.stone@mail")).await),
        expect(&[2])
    );
    // Not a prefix: "lee" is inside "ann.lee" but starts nothing.
    assert_eq!(names(&console.ok(&find("lee")).await), expect(&[]));

    // Filters, alone and together.
    let f = |q: &str| format!("/admin/guests?{q}");
    assert_eq!(
        names(&console.ok(&f("state=pending_approval")).await),
        expect(&[7, 8])
    );
    assert_eq!(
        names(&console.ok(&f("state=suspended")).await),
        expect(&[4])
    );
    assert_eq!(
        names(&console.ok(&f("partner=globex")).await),
        expect(&[7, 8])
    );
    assert_eq!(
        names(&console.ok(&f("app=ehr-viewer&partner=acme")).await),
        expect(&[0, 1, 2, 3, 4])
    );
    assert_eq!(
        names(
            &console
                .ok(&f("sponsor=dr.grey%40hospital.example&state=invited"))
                .await
        ),
        expect(&[0, 1, 2, 3])
    );
    // E-mail addresses compare without case, as the API's sponsor filter does.
    assert_eq!(
        names(
            &console
                .ok(&f("sponsor=Dr.Grey%40Hospital.example&state=invited"))
                .await
        ),
        expect(&[0, 1, 2, 3])
    );
    assert_eq!(
        names(&console.ok(&f("q=a&partner=acme")).await),
        expect(&[0, 1])
    );
    // Bad filters are a clear 400 page.
    for (query, message) in [
        ("state=asleep", "the state must be one of"),
        ("partner=initech", "there is no partner"),
        ("after=nobody", "the page cursor names no guest"),
    ] {
        let (status, html) = console.page(&f(query)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(html.contains(message), "{query}: {html}");
    }

    // Paging: 130 more guests (names of mixed case), pages of 50 in (lower(userName), id)
    // order, forward then back, stable when a guest is added between pages.
    let pool = app.deps.db.pool();
    let now = chrono::Utc::now().timestamp_millis();
    for i in 0..130 {
        let name = if i % 2 == 0 {
            format!("Page{:03}", 129 - i)
        } else {
            format!("page{:03}", 129 - i)
        };
        sqlx::query(
            "INSERT INTO guests (id, partner_id, user_id, user_name, email, state, approved,
             mfa_required, created_at, updated_at) VALUES ($1, $2, $3, $4, NULL, 'invited', 1, 0, $5, $5)",
        )
        .bind(format!("pg-{i:03}"))
        .bind(&acme_partner.id)
        .bind(format!("pu-{i:03}"))
        .bind(&name)
        .bind(now)
        .execute(pool)
        .await
        .unwrap();
    }
    let mut all: Vec<(String, String)> =
        sqlx::query_as::<_, (String, String)>("SELECT user_name, id FROM guests")
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(n, id)| (n.to_lowercase(), id))
            .collect();
    all.sort();
    let order: Vec<String> = all.into_iter().map(|(_, id)| id).collect();
    assert_eq!(order.len(), 139);

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut path = "/admin/guests".to_string();
    loop {
        let html = console.ok(&path).await;
        let rows = attrs(&html, "data-guest");
        assert!(rows.len() <= 50);
        if pages.is_empty() {
            assert!(link(&html, "previous").is_none());
            // A guest added after the first page sorts before the current position: it
            // must not shift the pages that follow.
            sqlx::query(
                "INSERT INTO guests (id, partner_id, user_id, user_name, state, approved,
                 mfa_required, created_at, updated_at) VALUES ('zz-new', $1, 'zz-user', 'aaa.early', 'invited', 1, 0, $2, $2)",
            )
            .bind(&acme_partner.id)
            .bind(now)
            .execute(pool)
            .await
            .unwrap();
        }
        seen.extend(rows.clone());
        pages.push((path.clone(), rows));
        match link(&html, "next") {
            Some(next) => path = next,
            None => break,
        }
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages.iter().map(|(_, r)| r.len()).collect::<Vec<_>>(),
        [50, 50, 39]
    );
    assert_eq!(seen, order, "no duplicate, no gap, in order");
    // Back from the last page: the previous links give the same pages.
    let last = console.ok(&pages[2].0).await;
    let back = link(&last, "previous").expect("a previous link");
    let middle = console.ok(&back).await;
    assert_eq!(attrs(&middle, "data-guest"), pages[1].1);
    // The first page reached backwards now shows the guest added meanwhile first, and
    // still the same 50 before the middle page.
    let first = console.ok(&link(&middle, "previous").unwrap()).await;
    assert_eq!(attrs(&first, "data-guest"), pages[0].1);
    assert!(link(&first, "previous").is_some());
    let newest = console.ok(&link(&first, "previous").unwrap()).await;
    assert_eq!(attrs(&newest, "data-guest"), ["zz-new"]);
    assert!(link(&newest, "previous").is_none());

    // Filters survive paging: acme's guests in pages, then globex has a single page.
    let acme_first = console.ok("/admin/guests?partner=acme&q=page").await;
    let next = link(&acme_first, "next").unwrap();
    assert!(
        next.contains("partner=acme") && next.contains("q=page"),
        "{next}"
    );
    let acme_second = console.ok(&next).await;
    assert_eq!(
        attrs(&acme_first, "data-guest").len() + attrs(&acme_second, "data-guest").len(),
        100
    );
    let globex_page = console.ok("/admin/guests?partner=globex").await;
    assert!(link(&globex_page, "next").is_none());
}

async fn the_guest_page_shows_grants_explanation_and_timeline(backend: Backend) {
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await;
    let (_, acme) = app.partner("acme").await;
    let (_, globex) = app.partner("globex").await;
    let users = provision(&acme, &globex).await;
    let console = Console::new(&app).await;

    let guest = guest_of(&app, &users[0]).await;
    let html = console.ok(&format!("/admin/guests/{guest}")).await;
    assert!(html.contains("<dd>ann.lee</dd>"));
    assert!(html.contains("<dd>dr.grey@hospital.example</dd>"));
    assert!(html.contains("data-state=\"invited\""));
    // Grants with their rule, and the actions on each.
    assert!(html.contains("data-app=\"ehr-viewer\" data-rule=\"cardiology-nurses\""));
    assert!(html.contains("data-app=\"scheduling\" data-rule=\"everyone-schedules\""));
    assert_eq!(html.matches("/extend\"").count(), 2);
    // Why: each rule in force, matched, with its checks.
    assert!(
        html.contains("data-rule=\"cardiology-nurses\" data-matched=\"true\""),
        "{}",
        &html[html.find("id=\"why\"").unwrap()..]
    );
    assert!(html.contains("data-rule=\"everyone-schedules\" data-matched=\"true\""));
    assert!(html.contains("does not hold") || html.contains("holds"));
    // Timeline of the guest and its SCIM user, newest first.
    let actions = attrs(&html, "data-action");
    assert!(actions.contains(&"user.created".to_string()), "{actions:?}");
    assert!(
        actions.contains(&"guest.created".to_string()),
        "{actions:?}"
    );
    // Invitations, and the buttons an invited guest has.
    assert!(html.contains("<td>open</td>"));
    assert!(html.contains(&format!("/api/v1/guests/{guest}/suspend")));
    assert!(!html.contains(&format!("/api/v1/guests/{guest}/resume")));
    assert!(!html.contains(&format!("/api/v1/guests/{guest}/approve")));

    // The suspended guest offers resume; the one awaiting approval offers approve.
    let suspended = guest_of(&app, &users[4]).await;
    let html = console.ok(&format!("/admin/guests/{suspended}")).await;
    assert!(html.contains(&format!("/api/v1/guests/{suspended}/resume")));
    assert!(attrs(&html, "data-action").contains(&"guest.state_changed".to_string()));
    let pending = guest_of(&app, &users[7]).await;
    let html = console.ok(&format!("/admin/guests/{pending}")).await;
    assert!(html.contains(&format!("/api/v1/guests/{pending}/approve")));

    // Unknown guest: a 404 page.
    let (status, html) = console.page("/admin/guests/no-such-guest").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("There is no guest with this id."));
}

async fn console_pages_need_an_admin_and_escape_what_partners_send(backend: Backend) {
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await;
    let (_, acme) = app.partner("acme").await;
    let hostile = "<script>alert(1)</script>";
    let user = acme
        .create_user(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": hostile,
            "displayName": "<img src=x onerror=alert(2)>",
        }))
        .await;
    let guest = guest_of(&app, &user).await;

    for path in [
        "/admin/dashboard".to_string(),
        "/admin/guests".to_string(),
        format!("/admin/guests/{guest}"),
    ] {
        // A browser without a session (or a script with a dead token) is sent to sign in.
        let res = app.get(&path).await;
        assert_eq!(res.url().path(), "/admin/login", "{path}");
        assert!(!res.text().await.unwrap().contains(hostile), "{path}");
        let res = app
            .client
            .get(format!("{}{path}", app.address))
            .bearer_auth("gba_not-a-real-token")
            .send()
            .await
            .unwrap();
        assert_eq!(res.url().path(), "/admin/login", "{path}");
    }

    let console = Console::new(&app).await;
    for path in [
        "/admin/guests".to_string(),
        format!("/admin/guests?q={}", crate::helpers::url_encode("<scr")),
        format!("/admin/guests/{guest}"),
    ] {
        let html = console.ok(&path).await;
        assert!(!html.contains(hostile), "{path}");
        assert!(!html.contains("<img src=x"), "{path}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{path}"
        );
        assert!(
            attrs(&html, "data-guest").contains(&guest) || path.contains(&guest),
            "{path}"
        );
    }
    // The assets are served with long cache lifetimes.
    let css = app.get("/admin/assets/console.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert!(css.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age=31536000"));
    assert!(css.text().await.unwrap().contains("focus-visible"));
}

/// `guestbridge demo` with the shipped mappings: people in varied states through the SCIM
/// path; a second run changes nothing.
async fn demo_seeds_an_empty_database_once(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::helpers::fresh_database(backend, &dir).await;
    let mappings = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let demo = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_guestbridge"))
            .arg("demo")
            .env("GUESTBRIDGE_DATABASE_URL", &url)
            .env("GUESTBRIDGE_MAPPINGS", &mappings)
            .env("GUESTBRIDGE_SECRET_KEY", crate::helpers::TEST_SECRET_KEY)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = demo();
    assert!(first.starts_with("demo seeded: 300 people"), "{first}");

    let settings = crate::helpers::settings_for(&url);
    let db = guestbridge::store::Db::connect(&settings.database)
        .await
        .unwrap();
    let states = |db: guestbridge::store::Db| async move {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, COUNT(*) FROM guests GROUP BY state ORDER BY state")
                .fetch_all(db.pool())
                .await
                .unwrap();
        let audit: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(db.pool())
            .await
            .unwrap();
        (rows, audit)
    };
    let (before, audit_before) = states(db.clone()).await;
    let count = |prefix: &str| -> i64 {
        before
            .iter()
            .filter(|(s, _)| s.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    };
    assert!(count("invited") > 50, "{before:?}");
    assert!(count("pending_approval") > 5, "{before:?}");
    assert!(count("suspended:") > 10, "{before:?}");
    assert!(
        before
            .iter()
            .any(|(s, _)| s.starts_with("suspended:") && s != "suspended:deactivated"),
        "some ended by date: {before:?}"
    );
    let soon: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM guest_grants WHERE valid_until > $1 AND valid_until < $2",
    )
    .bind(chrono::Utc::now().timestamp_millis())
    .bind(chrono::Utc::now().timestamp_millis() + 90 * 86_400_000)
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert!(soon > 10, "{soon}");

    let second = demo();
    assert_eq!(second.trim(), "the demo is already seeded; nothing changed");
    assert_eq!(states(db.clone()).await, (before, audit_before));
}
