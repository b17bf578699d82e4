//! The console's admin pages over HTTP: invite by hand, imports, partners and mappings, each
//! with what it shows, which roles see its buttons and where a partner admin's view stops;
//! and a role refusal on any console page as an HTML page with a way back.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::admin_login::{login_with_password, Visitor, PASSWORD};
use crate::both_backends;
use crate::console_pages::{attrs, unescape, APPS, RULES};
use crate::helpers::{read, spawn_with_rules, test_actor, Backend, TestApp};
use guestbridge::domain::{AdminRole, PartnerSlug};
use guestbridge::services::admin_auth::RoleGrant;
use guestbridge::services::partners;

both_backends!(
    a_role_refusal_is_an_html_page_with_a_way_back,
    the_invite_page_offers_partners_and_apps_to_admins,
    import_pages_show_counts_and_errors_by_line_within_scope,
    partner_pages_show_state_counts_and_tokens_within_scope,
    the_mappings_page_previews_then_reloads_what_was_previewed,
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
            sponsor: (role == AdminRole::Sponsor).then(|| "dr.grey@hospital.example".into()),
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

    async fn form(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let res = self
            .app
            .client
            .post(format!("{}{path}", self.app.address))
            .bearer_auth(&self.token)
            .form(form)
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .app
            .client
            .request(method, format!("{}/api/v1{path}", self.app.address))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = read(req.send().await.unwrap()).await;
        assert!(res.status.is_success(), "{path}: {}", res.body);
        res.body
    }

    /// Upload a roster through the API and wait for its record.
    async fn import(&self, partner: &str, csv: &str, dry_run: bool) -> String {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("roster.csv"),
        );
        let res = self
            .app
            .client
            .post(format!(
                "{}/api/v1/imports?partner={partner}&dry_run={dry_run}",
                self.app.address
            ))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let id = res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        for _ in 0..600 {
            let s = self
                .api(reqwest::Method::GET, &format!("/imports/{id}"), None)
                .await;
            if s["status"] != "running" {
                assert_eq!(s["status"], "finished", "{s}");
                return id;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("import {id} did not finish");
    }
}

const ROSTER: &str = "userName,givenName,familyName,email,title,department\n\
ann.roster@acme.example,Ann,Roster,ann.roster@acme.example,Staff Nurse,Cardiology\n\
bob.roster@acme.example,Bob,Roster,bob.roster@acme.example,Porter,Facilities\n\
cara.roster@acme.example,Cara,Roster,not-an-email,Nurse,Cardiology\n";

async fn a_role_refusal_is_an_html_page_with_a_way_back(backend: Backend) {
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await;
    app.partner("acme").await;
    let pa = Console::new(&app, AdminRole::PartnerAdmin, Some("acme")).await;
    let sponsor = Console::new(&app, AdminRole::Sponsor, None).await;
    let auditor = Console::new(&app, AdminRole::Auditor, None).await;
    for (who, path) in [
        (&pa, "/admin/sync"),
        (&pa, "/admin/dashboard"),
        (&pa, "/admin/mappings"),
        (&pa, "/admin/guests/new"),
        (&sponsor, "/admin/imports"),
        (&sponsor, "/admin/partners"),
        (&auditor, "/admin/guests/new"),
    ] {
        let res = app
            .client
            .get(format!("{}{path}", app.address))
            .bearer_auth(&who.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
        let ct = res.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/html"), "{path}: {ct}");
        let html = unescape(&res.text().await.unwrap());
        assert!(
            html.contains("Your role does not allow this"),
            "{path}: {html}"
        );
        assert!(
            attrs(&html, "href").contains(&"/admin".to_string()),
            "{path}"
        );
        assert!(html.contains("href=\"#main\""), "{path}: the frame");
    }
    // Without credentials a browser is sent to sign in, a form post too.
    for path in [
        "/admin/guests/new",
        "/admin/imports",
        "/admin/partners",
        "/admin/partners/acme",
        "/admin/mappings",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.url().path(), "/admin/login", "{path}");
    }
    let mut v = Visitor::new(&app);
    let post = v
        .post(
            "/admin/mappings/reload",
            &[("file", "rules.toml"), ("content", "")],
        )
        .await;
    assert_eq!(post.status, StatusCode::SEE_OTHER);
    assert_eq!(post.location.as_deref(), Some("/admin/login"));
    // The JSON API keeps its JSON answer.
    let res = app
        .client
        .get(format!("{}/api/v1/sync", app.address))
        .bearer_auth(&pa.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
}

async fn the_invite_page_offers_partners_and_apps_to_admins(backend: Backend) {
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await;
    app.partner("acme").await;
    app.partner("globex").await;
    let admin = Console::new(&app, AdminRole::Admin, None).await;
    let html = admin.ok("/admin/guests/new").await;
    assert!(html.contains("action=\"/api/v1/guests\""), "{html}");
    assert_eq!(
        attrs(&html, "value")
            .into_iter()
            .filter(|v| ["acme", "globex", "ehr-viewer", "scheduling"].contains(&v.as_str()))
            .collect::<Vec<_>>(),
        ["acme", "globex", "ehr-viewer", "scheduling"]
    );
    for field in [
        "givenName",
        "familyName",
        "email",
        "partner",
        "until",
        "sponsor",
    ] {
        assert!(html.contains(&format!("<label for=\"{field}\"")), "{field}");
    }
    // A disabled partner is not offered; the guests table links the page for admins only.
    admin
        .api(reqwest::Method::POST, "/partners/globex/disable", None)
        .await;
    let html = admin.ok("/admin/guests/new").await;
    assert!(!attrs(&html, "value").contains(&"globex".to_string()));
    assert!(admin
        .ok("/admin/guests")
        .await
        .contains("href=\"/admin/guests/new\""));
    let auditor = Console::new(&app, AdminRole::Auditor, None).await;
    assert!(!auditor
        .ok("/admin/guests")
        .await
        .contains("href=\"/admin/guests/new\""));
    // What the form sends lands on the guest's page.
    let guest = admin
        .api(
            reqwest::Method::POST,
            "/guests",
            Some(
                json!({"partner": "acme", "userName": "ivy@acme.example", "givenName": "Ivy",
                        "familyName": "Hand", "email": "ivy@acme.example", "apps": ["scheduling"],
                        "until": "2027-03-31T23:59:59Z"}),
            ),
        )
        .await;
    let page = admin
        .ok(&format!("/admin/guests/{}", guest["id"].as_str().unwrap()))
        .await;
    assert_eq!(attrs(&page, "data-app"), ["scheduling"]);
}

async fn import_pages_show_counts_and_errors_by_line_within_scope(backend: Backend) {
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await;
    app.partner("acme").await;
    app.partner("globex").await;
    let admin = Console::new(&app, AdminRole::Admin, None).await;
    let dry = admin.import("acme", ROSTER, true).await;
    let applied = admin.import("acme", ROSTER, false).await;

    let list = admin.ok("/admin/imports").await;
    assert_eq!(
        attrs(&list, "data-import")[..2],
        [applied.clone(), dry.clone()]
    );
    assert!(list.contains("id=\"upload\""));
    let page = admin.ok(&format!("/admin/imports/{dry}")).await;
    assert!(page.contains("data-outcome=\"dry_run\""));
    assert!(page.contains("dry run — nothing was changed"));
    for (count, n) in [
        ("created", 2),
        ("updated", 0),
        ("deactivated", 0),
        ("errors", 1),
    ] {
        assert!(
            page.contains(&format!("data-count=\"{count}\">{n}<")),
            "{count}: {page}"
        );
    }
    assert_eq!(attrs(&page, "data-line"), ["4"]);
    assert!(page.contains("not-an-email"));
    assert!(page.contains(&format!("href=\"/api/v1/imports/{dry}/errors.csv\"")));
    let page = admin.ok(&format!("/admin/imports/{applied}")).await;
    assert!(page.contains("data-outcome=\"applied\""));
    assert!(page.contains("data-count=\"created\">2<"));
    assert_eq!(
        admin.page("/admin/imports/nope").await.0,
        StatusCode::NOT_FOUND
    );

    // A partner admin sees their own partner's imports only and imports for it alone.
    let acme = Console::new(&app, AdminRole::PartnerAdmin, Some("acme")).await;
    let globex = Console::new(&app, AdminRole::PartnerAdmin, Some("globex")).await;
    let list = acme.ok("/admin/imports").await;
    assert_eq!(attrs(&list, "data-import").len(), 2);
    assert!(list.contains("<option value=\"acme\">"));
    assert!(!list.contains("<option value=\"globex\">"));
    let list = globex.ok("/admin/imports").await;
    assert!(attrs(&list, "data-import").is_empty(), "{list}");
    assert_eq!(
        globex.page(&format!("/admin/imports/{dry}")).await.0,
        StatusCode::NOT_FOUND
    );
    acme.ok(&format!("/admin/imports/{dry}")).await;
    // Auditors read, and see no upload.
    let auditor = Console::new(&app, AdminRole::Auditor, None).await;
    let list = auditor.ok("/admin/imports").await;
    assert_eq!(attrs(&list, "data-import").len(), 2);
    assert!(!list.contains("id=\"upload\""));
}

async fn partner_pages_show_state_counts_and_tokens_within_scope(backend: Backend) {
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await;
    let (_, acme_scim) = app.partner("acme").await;
    app.partner("globex").await;
    acme_scim
        .create_user(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "zoe@acme.example",
            "emails": [{"value": "zoe@acme.example", "primary": true}],
        }))
        .await;
    let admin = Console::new(&app, AdminRole::Admin, None).await;
    admin
        .api(reqwest::Method::POST, "/partners/globex/disable", None)
        .await;
    let issued = admin
        .api(
            reqwest::Method::POST,
            "/partners/acme/tokens",
            Some(json!({"name": "HR <feed>", "expires_days": 30})),
        )
        .await;
    let secret = issued["token"].as_str().unwrap().to_string();
    crate::log_scan::register_secret(&secret);

    let list = admin.ok("/admin/partners").await;
    assert_eq!(attrs(&list, "data-partner"), ["acme", "globex"]);
    assert_eq!(attrs(&list, "data-state"), ["enabled", "disabled"]);
    assert!(list.contains("action=\"/api/v1/partners/globex/enable\""));
    assert!(list.contains("action=\"/api/v1/partners/acme/disable\""));
    assert!(list.contains("id=\"new-partner\""));
    let page = admin.ok("/admin/partners/acme").await;
    assert!(!page.contains(&secret), "the secret is never shown again");
    assert!(page.contains("HR &lt;feed&gt;"), "escaped");
    assert!(page.contains(&format!(
        "action=\"/api/v1/partners/acme/tokens/{}\"",
        issued["id"].as_str().unwrap()
    )));
    // Both tokens (the helper's and the new one) are active; the new one has an end.
    assert_eq!(attrs(&page, "data-status"), ["active", "active"]);
    let expires = issued["expires_at"].as_str().unwrap()[..10].to_string();
    assert!(page.contains(&expires), "{expires}");
    assert!(page.contains("id=\"issue-token\""));
    assert_eq!(
        admin.page("/admin/partners/nope").await.0,
        StatusCode::NOT_FOUND
    );

    let auditor = Console::new(&app, AdminRole::Auditor, None).await;
    for path in ["/admin/partners", "/admin/partners/acme"] {
        let html = auditor.ok(path).await;
        assert!(!html.contains("data-api"), "{path}: no buttons");
        assert!(!html.contains("id=\"new-partner\"") && !html.contains("id=\"issue-token\""));
    }

    let pa = Console::new(&app, AdminRole::PartnerAdmin, Some("acme")).await;
    let list = pa.ok("/admin/partners").await;
    assert_eq!(attrs(&list, "data-partner"), ["acme"]);
    assert!(!list.contains("data-api") && !list.contains("id=\"new-partner\""));
    let page = pa.ok("/admin/partners/acme").await;
    assert!(
        page.contains("id=\"issue-token\""),
        "tokens of their own partner"
    );
    assert!(!page.contains("/disable\""), "no disable");
    assert_eq!(
        pa.page("/admin/partners/globex").await.0,
        StatusCode::NOT_FOUND
    );
}

const PORTERS: &str = "\n[[rule]]\nid = \"porters-ehr\"\ncondition = 'title eq \"Porter\"'\ngrants = [{ app = \"ehr-viewer\", role = \"reader\" }]\n";

async fn the_mappings_page_previews_then_reloads_what_was_previewed(backend: Backend) {
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await;
    app.partner("acme").await;
    let admin = Console::new(&app, AdminRole::Admin, None).await;
    admin.import("acme", ROSTER, false).await;
    let page = admin.ok("/admin/mappings").await;
    assert_eq!(
        attrs(&page, "data-rule"),
        ["cardiology-nurses", "everyone-schedules"]
    );
    assert!(page.contains("id=\"edit-form\""));
    assert!(attrs(&page, "href").contains(&"/admin/mappings?file=apps.toml#edit".to_string()));
    let before = admin.api(reqwest::Method::GET, "/mappings", None).await;

    let bad = format!("{RULES}{}", PORTERS.replace("ehr-viewer", "no-such-app"));
    let (status, html) = admin
        .form(
            "/admin/mappings/preview",
            &[("file", "rules.toml"), ("content", &bad)],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    let wheres = attrs(&html, "data-where");
    assert_eq!(wheres.len(), 1, "{wheres:?}");
    let line: usize = wheres[0]
        .strip_prefix("rules.toml:")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        bad.lines().nth(line - 1).unwrap().contains("no-such-app"),
        "line {line}"
    );
    assert!(
        unescape(&html).contains("no-such-app"),
        "the editor keeps the text"
    );

    let good = format!("{RULES}{PORTERS}");
    let (status, html) = admin
        .form(
            "/admin/mappings/preview",
            &[("file", "rules.toml"), ("content", &good)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(attrs(&html, "data-user"), ["bob.roster@acme.example"]);
    assert_eq!(attrs(&html, "data-change"), ["grants_changed"]);
    assert!(html.contains("data-count=\"people_changed\">1<"));
    let fingerprint = attrs(&html, "value")
        .into_iter()
        .find(|v| v.len() >= 32 && v.chars().all(|c| c.is_ascii_hexdigit()))
        .expect("the previewed fingerprint");
    // The preview changed nothing.
    assert_eq!(
        admin.api(reqwest::Method::GET, "/mappings", None).await,
        before
    );

    // A reload of something other than what was previewed is refused.
    let (status, _) = admin
        .form(
            "/admin/mappings/reload",
            &[
                ("file", "rules.toml"),
                ("content", &good),
                ("fingerprint", "0000"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, html) = admin
        .form(
            "/admin/mappings/reload",
            &[
                ("file", "rules.toml"),
                ("content", &good),
                ("fingerprint", &fingerprint),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Reloaded: the rules"), "{html}");
    let after = admin.api(reqwest::Method::GET, "/mappings", None).await;
    assert_eq!(after["fingerprint"], json!(fingerprint));
    assert!(after["rules"]
        .as_array()
        .unwrap()
        .contains(&json!("porters-ehr")));

    // Auditors read the rules but get no editor, and may not preview.
    let auditor = Console::new(&app, AdminRole::Auditor, None).await;
    let page = auditor.ok("/admin/mappings").await;
    assert!(!page.contains("id=\"edit-form\""));
    let (status, html) = auditor
        .form(
            "/admin/mappings/preview",
            &[("file", "rules.toml"), ("content", &good)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(unescape(&html).contains("Your role does not allow this"));

    // A session's form needs its CSRF token; with it, the preview works as for a bearer.
    crate::log_scan::register_secret(PASSWORD);
    login_with_password(
        &app,
        "Ann Admin",
        RoleGrant {
            role: AdminRole::Admin,
            partner: None,
            sponsor: None,
        },
    )
    .await;
    let mut v = Visitor::new(&app);
    let signed = v.sign_in("Ann Admin", PASSWORD).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    let page = v.get("/admin/mappings").await;
    let csrf = page.csrf();
    let forged = v
        .post(
            "/admin/mappings/preview",
            &[("file", "rules.toml"), ("content", &good)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("The form expired"), "{}", forged.body);
    let ok = v
        .post(
            "/admin/mappings/preview",
            &[("csrf", &csrf), ("file", "rules.toml"), ("content", &good)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}
