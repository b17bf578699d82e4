//! Guest authentication that survives a security review: links in mails that scanners may
//! fetch without effect (only the page's POST with its CSRF token acts), a second factor that
//! is not the mailbox again, TOTP enrolment that two page loads cannot split, and an
//! administrator's MFA reset (API and command line, audited) that forces a new enrolment.

use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn_with, test_actor, Backend, TestApp};
use crate::portal::{base32_decode, field, Browser, Page};
use crate::smtp::TestSmtp;

const WAIT: Duration = Duration::from_secs(15);

/// acme requires MFA without the e-mailed fallback; initech requires it and opts in to the
/// fallback; globex requires nothing.
const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = "Shared health record"
launch_url = "https://ehr.example/launch"
roles = ["reader"]

[[partner]]
slug = "acme"
mfa = true

[[partner]]
slug = "initech"
mfa = true
mfa_email_fallback = true

[[partner]]
slug = "globex"

[[rule]]
id = "everyone"
grants = [{ app = "ehr-viewer", role = "reader" }]
"#;

both_backends!(
    mail_links_only_act_on_their_post,
    link_posts_without_the_right_csrf_are_refused_and_the_link_kept,
    emailed_codes_are_refused_after_an_emailed_link,
    totp_is_required_and_enforced_after_a_signin_link,
    concurrent_setup_loads_show_one_secret,
    admins_reset_mfa_by_api_and_cli_and_the_guest_enrols_again,
);

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

fn person(user_name: &str) -> Value {
    json!({"userName": user_name, "displayName": "Ann Lee", "emails": [{"value": user_name, "primary": true}]})
}

/// The link in the newest mail to `to` whose URL starts with `path` (after the address).
async fn link_in_mail(app: &TestApp, smtp: &TestSmtp, n: usize, to: &str, path: &str) -> String {
    let mails = smtp.wait_for(n, WAIT).await;
    mails
        .iter()
        .rev()
        .filter(|m| m.to.iter().any(|t| t == to))
        .find_map(|m| m.find_link(&format!("{}{path}", app.address)))
        .unwrap_or_else(|| panic!("no {path} link in a mail to {to}"))
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

/// A fetch the way a mail scanner does it: no cookies kept, redirects not followed.
async fn scanner_fetch(method: Method, url: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .request(method, url)
        .send()
        .await
        .unwrap()
}

/// Several GETs and a HEAD of a mail link: each answers 200 and sets no cookie.
async fn scan(url: &str) {
    for method in [Method::GET, Method::HEAD, Method::GET, Method::GET] {
        let res = scanner_fetch(method.clone(), url).await;
        assert_eq!(res.status(), StatusCode::OK, "{method} {url}");
        assert!(
            res.headers().get("set-cookie").is_none(),
            "{method} {url} set a cookie"
        );
    }
}

/// The page's form posts to the link itself and carries a hidden `csrf` input.
fn assert_link_form(page: &Page, link: &str) {
    let path = url::Url::parse(link).unwrap().path().to_string();
    let body = crate::portal::html_unescape(&page.body);
    assert!(
        body.contains(&format!(r#"<form method="post" action="{path}">"#)),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"type="hidden" name="csrf""#));
}

/// Ask for a sign-in link for `email` and return it.
async fn request_signin(app: &TestApp, smtp: &TestSmtp, n: usize, email: &str) -> String {
    let mut b = Browser::new(app);
    let form = b.get("/signin").await;
    let sent = b
        .post(
            "/signin",
            &[("csrf", &field(&form.body, "csrf")), ("email", email)],
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    link_in_mail(app, smtp, n, email, "/signin/").await
}

/// Open a link's page and press its button.
async fn follow(b: &mut Browser, link: &str, form: &[(&str, &str)]) -> Page {
    let page = b.get(link).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = field(&page.body, "csrf");
    let mut fields = vec![("csrf", csrf.as_str())];
    fields.extend_from_slice(form);
    b.post(link, &fields).await
}

/// Accept the invitation (the consent page's button).
async fn accept(b: &mut Browser, link: &str) -> Page {
    let page = b.get(link).await;
    let version = field(&page.body, "consent_version");
    let csrf = field(&page.body, "csrf");
    b.post(
        link,
        &[
            ("csrf", &csrf),
            ("decision", "accept"),
            ("consent_version", &version),
        ],
    )
    .await
}

/// The secret the enrolment page shows (the key typed by hand).
fn secret_on(page: &Page) -> Vec<u8> {
    let text = page
        .body
        .split("<code>")
        .nth(1)
        .unwrap_or_else(|| panic!("no key on {}", page.body))
        .split("</code>")
        .next()
        .unwrap();
    base32_decode(text)
}

/// A current code that has not been used yet: enrolment and sign-in within the same 30
/// seconds need different steps, so later calls use the next step (accepted as ±1).
fn code(secret: &[u8], steps_ahead: u64) -> String {
    let now = chrono::Utc::now().timestamp() as u64;
    guestbridge::auth::totp::code_at(secret, now + steps_ahead * 30)
}

/// Accept the invitation and enrol TOTP; returns the secret.
async fn enrol(b: &mut Browser, link: &str) -> Vec<u8> {
    let accepted = accept(b, link).await;
    assert_eq!(accepted.location.as_deref(), Some("/mfa/setup"));
    let setup = b.get("/mfa/setup").await;
    let secret = secret_on(&setup);
    let done = b
        .post(
            "/mfa/setup",
            &[
                ("csrf", &field(&setup.body, "csrf")),
                ("code", &code(&secret, 0)),
            ],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/apps"), "{}", done.body);
    secret
}

async fn sign_out(b: &mut Browser) {
    let panel = b.get("/apps").await;
    let out = b
        .post("/signout", &[("csrf", &field(&panel.body, "csrf"))])
        .await;
    assert_eq!(out.status, StatusCode::OK);
}

async fn guest_id(app: &TestApp, email: &str) -> String {
    sqlx::query_scalar("SELECT id FROM guests WHERE email = $1")
        .bind(email)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

async fn mail_links_only_act_on_their_post(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app(backend, &smtp).await;
    let (_, globex) = app.partner("globex").await;
    globex.create_user(&person("bob@globex.example")).await;
    let invite = link_in_mail(&app, &smtp, 1, "bob@globex.example", "/invite/").await;

    scan(&invite).await;
    let page = Browser::new(&app).get(&invite).await;
    assert_link_form(&page, &invite);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM invitations WHERE used_at IS NULL"
        )
        .await,
        1
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM guest_sessions").await, 0);
    let mut b = Browser::new(&app);
    let accepted = accept(&mut b, &invite).await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    assert!(b.cookies.iter().any(|(k, _)| k == "gb_session"));
    assert_eq!(
        Browser::new(&app).get(&invite).await.status,
        StatusCode::GONE
    );

    let signin = request_signin(&app, &smtp, 2, "bob@globex.example").await;
    let sessions = count(&app, "SELECT COUNT(*) FROM guest_sessions").await;
    scan(&signin).await;
    let page = Browser::new(&app).get(&signin).await;
    assert_link_form(&page, &signin);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM signin_links WHERE used_at IS NULL"
        )
        .await,
        1,
        "fetching the link did not use it"
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM guest_sessions").await,
        sessions,
        "fetching the link started no session"
    );
    // The contract: POST csrf=<value> to the same path uses the link and answers 303 with
    // the session cookie.
    let csrf = field(&page.body, "csrf");
    let without = Browser::new(&app).post(&signin, &[]).await;
    assert_eq!(
        without.status,
        StatusCode::FORBIDDEN,
        "a POST without the token"
    );
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(&signin)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .unwrap_or_default();
    assert!(cookie.starts_with("gb_session="), "{cookie}");
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM guest_sessions").await,
        sessions + 1
    );
    let again = Browser::new(&app)
        .post(&signin, &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(again.status, StatusCode::GONE, "once only");
    assert_eq!(
        Browser::new(&app).get(&signin).await.status,
        StatusCode::GONE
    );
}

async fn link_posts_without_the_right_csrf_are_refused_and_the_link_kept(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app(backend, &smtp).await;
    let (_, globex) = app.partner("globex").await;
    globex.create_user(&person("bob@globex.example")).await;
    globex.create_user(&person("cy@globex.example")).await;
    let invite = link_in_mail(&app, &smtp, 2, "bob@globex.example", "/invite/").await;
    let other_invite = link_in_mail(&app, &smtp, 2, "cy@globex.example", "/invite/").await;
    let mut b = Browser::new(&app);
    // A token from another link's page is as wrong as a made-up one.
    let other_csrf = field(&b.get(&other_invite).await.body, "csrf");
    for form in [
        vec![("decision", "accept")],
        vec![("csrf", ""), ("decision", "accept")],
        vec![("csrf", "forged"), ("decision", "accept")],
        vec![("csrf", other_csrf.as_str()), ("decision", "accept")],
    ] {
        let refused = b.post(&invite, &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(b.cookies.iter().all(|(k, _)| k != "gb_session"));
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM consents").await, 0);
    assert_eq!(
        accept(&mut b, &invite).await.status,
        StatusCode::SEE_OTHER,
        "the invitation still works"
    );

    let signin = request_signin(&app, &smtp, 3, "bob@globex.example").await;
    let other = request_signin(&app, &smtp, 4, "cy@globex.example").await;
    let other_csrf = field(&Browser::new(&app).get(&other).await.body, "csrf");
    let mut fresh = Browser::new(&app);
    for form in [
        vec![],
        vec![("csrf", "")],
        vec![("csrf", "forged")],
        vec![("csrf", other_csrf.as_str())],
    ] {
        let refused = fresh.post(&signin, &form).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{form:?}");
        assert!(fresh.cookies.is_empty(), "{form:?} set a cookie");
    }
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM signin_links WHERE used_at IS NOT NULL"
        )
        .await,
        0
    );
    let signed_in = follow(&mut fresh, &signin, &[]).await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "the link still works"
    );
    assert!(fresh.cookies.iter().any(|(k, _)| k == "gb_session"));
}

async fn emailed_codes_are_refused_after_an_emailed_link(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app(backend, &smtp).await;
    let (_, acme) = app.partner("acme").await;
    let (_, initech) = app.partner("initech").await;
    acme.create_user(&person("ann@acme.example")).await;
    initech.create_user(&person("ian@initech.example")).await;
    let mut mails = 2;
    for email in ["ann@acme.example", "ian@initech.example"] {
        let invite = link_in_mail(&app, &smtp, 2, email, "/invite/").await;
        let id = guest_id(&app, email).await;
        let mut b = Browser::new(&app);
        // After the invitation (an e-mail), with or without the partner's opt-in.
        assert_eq!(
            accept(&mut b, &invite).await.location.as_deref(),
            Some("/mfa/setup")
        );
        let setup = b.get("/mfa/setup").await;
        assert!(
            !setup.body.contains("/mfa/email"),
            "{email}: no e-mail offer"
        );
        let csrf = field(&setup.body, "csrf");
        let refused = b.post("/mfa/email", &[("csrf", &csrf)]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{email}");
        // A valid code in the store (as if sent earlier) is refused as well.
        let now = app.deps.now_ms();
        let hash = guestbridge::auth::secrets::hash_token(&format!("{id}:123456"));
        guestbridge::store::sessions::insert_email_code(
            &mut app.deps.db.pool().acquire().await.unwrap(),
            &id,
            &hash,
            now,
            now + 600_000,
        )
        .await
        .unwrap();
        let refused = b
            .post("/mfa/email/verify", &[("csrf", &csrf), ("code", "123456")])
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{email}");
        assert_eq!(b.get("/apps").await.location.as_deref(), Some("/mfa/setup"));

        // After a sign-in link (an e-mail too), once TOTP is enrolled.
        let secret = secret_on(&setup);
        let done = b
            .post(
                "/mfa/setup",
                &[("csrf", &csrf), ("code", &code(&secret, 0))],
            )
            .await;
        assert_eq!(done.location.as_deref(), Some("/apps"));
        sign_out(&mut b).await;
        mails += 1;
        let link = request_signin(&app, &smtp, mails, email).await;
        let mut b = Browser::new(&app);
        let signed_in = follow(&mut b, &link, &[]).await;
        assert_eq!(signed_in.location.as_deref(), Some("/mfa"), "{email}");
        let prompt = b.get("/mfa").await;
        assert!(
            !prompt.body.contains("/mfa/email"),
            "{email}: no e-mail offer"
        );
        let csrf = field(&prompt.body, "csrf");
        let refused = b.post("/mfa/email", &[("csrf", &csrf)]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{email}");
        let refused = b
            .post("/mfa/email/verify", &[("csrf", &csrf), ("code", "123456")])
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{email}");
        assert_eq!(b.get("/apps").await.location.as_deref(), Some("/mfa"));
        let used: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM email_codes WHERE guest_id = $1 AND used_at IS NOT NULL",
        )
        .bind(&id)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
        assert_eq!(used, 0, "{email}: the stored code was not accepted");
    }
    // Refusals write nothing: no code mail queued, no code stored but the test's own.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM mail_outbox WHERE kind = 'otp_code'"
        )
        .await,
        0
    );
    assert_eq!(
        smtp.received().len(),
        mails,
        "invitations and sign-in links only"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM email_codes").await, 2);
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'mfa.failed'"
        )
        .await,
        0
    );
}

async fn totp_is_required_and_enforced_after_a_signin_link(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app(backend, &smtp).await;
    let (_, acme) = app.partner("acme").await;
    acme.create_user(&person("ann@acme.example")).await;
    let invite = link_in_mail(&app, &smtp, 1, "ann@acme.example", "/invite/").await;
    let mut b = Browser::new(&app);
    let secret = enrol(&mut b, &invite).await;
    sign_out(&mut b).await;

    let link = request_signin(&app, &smtp, 2, "ann@acme.example").await;
    let mut b = Browser::new(&app);
    let signed_in = follow(&mut b, &link, &[]).await;
    assert_eq!(signed_in.location.as_deref(), Some("/mfa"));
    // Nothing is reachable before the code.
    assert_eq!(b.get("/apps").await.location.as_deref(), Some("/mfa"));
    assert_eq!(
        b.get("/apps/ehr-viewer/launch").await.status,
        StatusCode::FORBIDDEN
    );
    // The enrolled guest cannot enrol another authenticator with the mailbox alone.
    assert_eq!(b.get("/mfa/setup").await.location.as_deref(), Some("/mfa"));
    let prompt = b.get("/mfa").await;
    let csrf = field(&prompt.body, "csrf");
    let wrong = b.post("/mfa", &[("csrf", &csrf), ("code", "000000")]).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(b.get("/apps").await.location.as_deref(), Some("/mfa"));
    let right = b
        .post("/mfa", &[("csrf", &csrf), ("code", &code(&secret, 1))])
        .await;
    assert_eq!(right.location.as_deref(), Some("/apps"), "{}", right.body);
    assert_eq!(b.get("/apps").await.status, StatusCode::OK);
    assert_eq!(
        b.get("/apps/ehr-viewer/launch").await.status,
        StatusCode::SEE_OTHER
    );
}

async fn concurrent_setup_loads_show_one_secret(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app(backend, &smtp).await;
    let (_, acme) = app.partner("acme").await;
    acme.create_user(&person("ann@acme.example")).await;
    let invite = link_in_mail(&app, &smtp, 1, "ann@acme.example", "/invite/").await;
    let mut b = Browser::new(&app);
    assert_eq!(
        accept(&mut b, &invite).await.location.as_deref(),
        Some("/mfa/setup")
    );
    let cookie = b
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let loads = (0..6).map(|_| {
        let url = format!("{}/mfa/setup", app.address);
        let cookie = cookie.clone();
        let client = app.client.clone();
        tokio::spawn(async move {
            let res = client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.text().await.unwrap()
        })
    });
    let pages: Vec<String> = futures_util::future::join_all(loads)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let secrets: Vec<Vec<u8>> = pages
        .iter()
        .map(|body| {
            secret_on(&Page {
                status: StatusCode::OK,
                location: None,
                body: body.clone(),
                headers: Default::default(),
            })
        })
        .collect();
    assert!(
        secrets.iter().all(|s| s == &secrets[0]),
        "every page shows the one pending secret"
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM guest_mfa").await, 1);
    // A code from the first page's secret enrols.
    let csrf = field(&pages[0], "csrf");
    let done = b
        .post(
            "/mfa/setup",
            &[("csrf", &csrf), ("code", &code(&secrets[0], 0))],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/apps"), "{}", done.body);
}

async fn admin_post(app: &TestApp, token: &str, path: &str) -> (StatusCode, Value) {
    let res = app
        .client
        .post(format!("{}/api/v1{path}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn admins_reset_mfa_by_api_and_cli_and_the_guest_enrols_again(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app(backend, &smtp).await;
    let (_, acme) = app.partner("acme").await;
    acme.create_user(&person("ann@acme.example")).await;
    let id = guest_id(&app, "ann@acme.example").await;
    let invite = link_in_mail(&app, &smtp, 1, "ann@acme.example", "/invite/").await;
    let mut b = Browser::new(&app);
    let old_secret = enrol(&mut b, &invite).await;
    assert_eq!(b.get("/apps").await.status, StatusCode::OK);

    let token = guestbridge::services::partners::issue_admin_token(&app.deps, &test_actor())
        .await
        .unwrap();
    let path = format!("/guests/{id}/mfa/reset");
    assert_eq!(
        admin_post(&app, "not-a-token", &path).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        admin_post(&app, &token, "/guests/no-such-guest/mfa/reset")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = admin_post(&app, &token, &path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mfa_enrolled"], false);
    assert_eq!(body["mfa_reset"]["was_enrolled"], true);
    assert_eq!(body["mfa_reset"]["sessions_ended"], 1);
    // The guest's session has ended.
    assert_eq!(b.get("/apps").await.location.as_deref(), Some("/signin"));
    let audited: (String, String) = sqlx::query_as(
        "SELECT actor, detail FROM audit_log WHERE action = 'guest.mfa_reset' AND target_id = $1",
    )
    .bind(&id)
    .fetch_one(app.deps.db.pool())
    .await
    .unwrap();
    assert!(audited.0.starts_with("admin"), "{}", audited.0);
    assert!(audited.1.contains("\"was_enrolled\":true"), "{}", audited.1);

    // The next sign-in enrols a new authenticator; the old one no longer counts.
    let link = request_signin(&app, &smtp, 2, "ann@acme.example").await;
    let mut b = Browser::new(&app);
    let signed_in = follow(&mut b, &link, &[]).await;
    assert_eq!(signed_in.location.as_deref(), Some("/mfa/setup"));
    let setup = b.get("/mfa/setup").await;
    let new_secret = secret_on(&setup);
    assert_ne!(new_secret, old_secret);
    let csrf = field(&setup.body, "csrf");
    let stale = b
        .post(
            "/mfa/setup",
            &[("csrf", &csrf), ("code", &code(&old_secret, 1))],
        )
        .await;
    assert_eq!(
        stale.status,
        StatusCode::BAD_REQUEST,
        "the lost authenticator"
    );
    let done = b
        .post(
            "/mfa/setup",
            &[("csrf", &csrf), ("code", &code(&new_secret, 1))],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/apps"), "{}", done.body);

    // The command line does the same through the same service.
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_guestbridge"))
            .args(args)
            .env("GUESTBRIDGE_DATABASE_URL", &app.database_url)
            .env("GUESTBRIDGE_MAPPINGS", &app.mappings)
            .env("GUESTBRIDGE_SECRET_KEY", crate::helpers::TEST_SECRET_KEY)
            .env_remove("RUST_LOG")
            .output()
            .expect("run guestbridge")
    };
    let out = cli(&["guest", "reset-mfa", &id]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim().lines().last(),
        Some(
            format!("guest {id} mfa reset: was_enrolled=true sessions_ended=1 passkeys_removed=0")
                .as_str()
        )
    );
    assert_eq!(b.get("/apps").await.location.as_deref(), Some("/signin"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM guest_mfa").await, 0);
    let actors: Vec<String> = sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE action = 'guest.mfa_reset' ORDER BY at, id",
    )
    .fetch_all(app.deps.db.pool())
    .await
    .unwrap();
    assert_eq!(actors.len(), 2);
    assert!(actors[1].starts_with("cli"), "{actors:?}");
    let unknown = cli(&["guest", "reset-mfa", "no-such-guest"]);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
}
