//! People signing in to the console: `admin create-login` prints a one-time setup link whose
//! GET shows a form and uses nothing; its POST (with the page's CSRF token) sets the password
//! and kills the link. `/admin/login` gives a session cookie that reaches `/api/v1` and
//! `/admin`; with the cookie, a change without the session's CSRF token is 403 and writes
//! nothing. Wrong passwords are refused the same way as unknown names, and rate-limited;
//! sign-out, the idle and absolute timeouts and disabling the login end the session.

use std::process::Command;
use std::sync::Arc;

use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::{
    spawn_with_clock, spawn_with_rules, test_actor, Backend, StepClock, TestApp, TEST_SECRET_KEY,
};
use guestbridge::services::admin_auth::{self, RoleGrant};

both_backends!(
    the_setup_link_shows_a_page_then_sets_the_password_once,
    a_session_reaches_the_api_and_the_console_and_needs_csrf_to_change,
    wrong_passwords_are_refused_like_unknown_names_and_rate_limited,
    idle_and_absolute_timeouts_and_disabling_end_sessions,
);

pub const PASSWORD: &str = "correct horse battery staple";

/// A cookie-keeping client that does not follow redirects.
pub struct Visitor<'a> {
    pub app: &'a TestApp,
    client: reqwest::Client,
    cookies: std::collections::BTreeMap<String, String>,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Page {
    /// The value of the hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field")
            + 19;
        self.body[at..].split('"').next().unwrap().to_string()
    }
}

impl<'a> Visitor<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Visitor {
            app,
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: Default::default(),
        }
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        headers: &[(&str, &str)],
    ) -> Page {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.app.address)
        };
        let mut req = self.client.request(method, url);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("Cookie", jar.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(f) = form {
            req = req.form(f);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let location = res
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let set_cookies: Vec<String> = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        for c in &set_cookies {
            let (pair, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            crate::log_scan::register_secret(v);
            if v.is_empty() || attrs.to_ascii_lowercase().contains("max-age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let body = res.text().await.unwrap_or_default();
        crate::log_scan::check();
        Page {
            status,
            location,
            set_cookies,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form), &[]).await
    }

    /// Sign in through the form; the answer to the POST.
    pub async fn sign_in(&mut self, name: &str, password: &str) -> Page {
        let form = self.get("/admin/login").await;
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        self.post(
            "/admin/login",
            &[("csrf", &csrf), ("name", name), ("password", password)],
        )
        .await
    }

    pub fn has_session(&self) -> bool {
        self.cookies.contains_key("gb_admin")
    }
}

/// `guestbridge admin create-login NAME ARGS…` against the app's database; the link.
pub fn create_login_cli(app: &TestApp, name: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .args(["admin", "create-login", name])
        .args(args)
        .env("GUESTBRIDGE_DATABASE_URL", &app.database_url)
        .env("GUESTBRIDGE_PUBLIC_URL", &app.address)
        .env("GUESTBRIDGE_SECRET_KEY", TEST_SECRET_KEY)
        .env_remove("RUST_LOG")
        .output()
        .expect("run guestbridge");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("login ") && lines[0].contains(" role="),
        "{stdout}"
    );
    let link = lines[1].to_string();
    assert!(
        link.starts_with(&format!("{}/admin/setup/", app.address)),
        "{stdout}"
    );
    crate::log_scan::register_secret(link.rsplit('/').next().unwrap());
    link
}

/// A login with PASSWORD set, made through the services (fast, no CLI).
pub async fn login_with_password(app: &TestApp, name: &str, grant: RoleGrant) {
    let created = admin_auth::create_login(&app.deps, &test_actor(), name, &grant)
        .await
        .unwrap();
    crate::log_scan::register_secret(&created.setup_secret);
    let set = admin_auth::set_password(&app.deps, &created.setup_secret, PASSWORD, None)
        .await
        .unwrap();
    assert_eq!(set, Ok(()));
}

async fn the_setup_link_shows_a_page_then_sets_the_password_once(backend: Backend) {
    crate::log_scan::register_secret(PASSWORD);
    let app = spawn_with_rules(backend, &[]).await;
    let link = create_login_cli(&app, "Ann Admin", &["--role", "auditor"]);
    let mut v = Visitor::new(&app);

    // Looking (GET, HEAD, again) uses nothing.
    let shown = v.get(&link).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(
        shown.body.contains("Ann Admin") && shown.body.contains("type=\"password\""),
        "{}",
        shown.body
    );
    assert!(shown.set_cookies.is_empty(), "{:?}", shown.set_cookies);
    assert_eq!(v.send(Method::HEAD, &link, None, &[]).await.status, 200);
    let csrf = v.get(&link).await.csrf();

    // A forged post, a weak or mismatched password: refused, the link still works.
    let forged = v
        .post(
            &link,
            &[("csrf", "x"), ("password", PASSWORD), ("confirm", PASSWORD)],
        )
        .await;
    assert_eq!(forged.status, 403);
    let short = v
        .post(
            &link,
            &[
                ("csrf", &csrf),
                ("password", "short pass"),
                ("confirm", "short pass"),
            ],
        )
        .await;
    assert_eq!(short.status, 400);
    assert!(
        short.body.contains("at least 12 characters"),
        "{}",
        short.body
    );
    let differ = v
        .post(
            &link,
            &[
                ("csrf", &csrf),
                ("password", PASSWORD),
                ("confirm", "correct horse battery stapl"),
            ],
        )
        .await;
    assert_eq!(differ.status, 400);
    assert_eq!(
        v.sign_in("Ann Admin", "short pass").await.status,
        401,
        "no password was set"
    );

    let set = v
        .post(
            &link,
            &[
                ("csrf", &csrf),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert!(set.body.contains("Your password is set"), "{}", set.body);
    // The link is dead now, for looking and for posting.
    assert_eq!(v.get(&link).await.status, 410);
    let again = v
        .post(
            &link,
            &[
                ("csrf", &csrf),
                ("password", "another long password"),
                ("confirm", "another long password"),
            ],
        )
        .await;
    assert_eq!(again.status, 410);

    let signed = v.sign_in("ann admin", PASSWORD).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    let home = v.get("/admin").await;
    assert!(
        home.body
            .contains("Signed in as <strong>Ann Admin</strong> (auditor)"),
        "{}",
        home.body
    );

    // Audited, without the name or the password.
    let mut conn = app.deps.db.pool().acquire().await.unwrap();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT actor, action, detail FROM audit_log WHERE target_type = 'admin_login' ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        actions,
        [
            "admin.login_created",
            "admin.sign_in_failed",
            "admin.password_set",
            "admin.signed_in"
        ],
        "{rows:?}"
    );
    for (actor, _, detail) in &rows {
        assert!(
            !actor.contains("Ann") && !detail.contains("Ann") && !detail.contains("horse"),
            "{rows:?}"
        );
    }
    assert!(rows[3].0.starts_with("auditor:login:"), "{rows:?}");
    assert!(rows[2].0.starts_with("login:"), "{rows:?}");
}

async fn a_session_reaches_the_api_and_the_console_and_needs_csrf_to_change(backend: Backend) {
    let app = spawn_with_rules(backend, &[("rules.toml", crate::admin_roles::RULES)]).await;
    let (_, acme) = app.partner("acme").await;
    acme.create_user(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a1@acme.example", "title": "grey"})).await;
    login_with_password(&app, "ops", RoleGrant::admin()).await;
    let mut v = Visitor::new(&app);

    // Signed out: `/` explains the server; `/admin` sends to the sign-in page.
    let landing = v.get("/").await;
    assert_eq!(landing.status, 200);
    let text = landing.body.replace("&#x2f;", "/");
    assert!(
        text.contains(&format!("{}/scim/v2", app.address))
            && text.contains("href=\"/admin/login\""),
        "{text}"
    );
    assert_eq!(
        v.get("/admin").await.location.as_deref(),
        Some("/admin/login")
    );
    assert_eq!(v.get("/api/v1/guests").await.status, 401);

    let signed = v.sign_in("ops", PASSWORD).await;
    assert_eq!(signed.status, 303);
    assert_eq!(signed.location.as_deref(), Some("/admin"));
    let cookie = signed
        .set_cookies
        .iter()
        .find(|c| c.starts_with("gb_admin="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let home = v.get("/admin").await;
    assert_eq!(home.status, 200);
    assert!(
        home.body
            .contains("Signed in as <strong>ops</strong> (admin)"),
        "{}",
        home.body
    );
    let csrf = home.csrf();
    let list = v.get("/api/v1/guests").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let guests: serde_json::Value = serde_json::from_str(&list.body).unwrap();
    let id = guests["guests"][0]["id"].as_str().unwrap().to_string();
    let approve = format!("/api/v1/guests/{id}/approve");

    // A change with the cookie needs the session's CSRF token; refused ones write nothing.
    assert_eq!(v.send(Method::POST, &approve, None, &[]).await.status, 403);
    assert_eq!(
        v.send(Method::POST, &approve, None, &[("X-CSRF-Token", "forged")])
            .await
            .status,
        403
    );
    let other = admin_auth::csrf_token("another session's secret");
    assert_eq!(
        v.send(Method::POST, &approve, None, &[("X-CSRF-Token", &other)])
            .await
            .status,
        403
    );
    let still: serde_json::Value =
        serde_json::from_str(&v.get(&format!("/api/v1/guests/{id}")).await.body).unwrap();
    assert_eq!(still["state"], "pending_approval");
    let done = v
        .send(Method::POST, &approve, None, &[("X-CSRF-Token", &csrf)])
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let after: serde_json::Value = serde_json::from_str(&done.body).unwrap();
    assert_eq!(after["state"], "invited");

    // Sign-out needs the token too, then ends the session everywhere.
    assert_eq!(
        v.post("/admin/logout", &[("csrf", "forged")]).await.status,
        403
    );
    assert_eq!(v.get("/api/v1/guests").await.status, 200);
    let kept = v.cookies.clone();
    let out = v.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert!(!v.has_session());
    v.cookies = kept;
    assert_eq!(
        v.get("/api/v1/guests").await.status,
        401,
        "the old cookie is dead"
    );
    assert_eq!(
        v.get("/admin").await.location.as_deref(),
        Some("/admin/login")
    );
}

async fn wrong_passwords_are_refused_like_unknown_names_and_rate_limited(backend: Backend) {
    let app = spawn_with_rules(backend, &[]).await;
    login_with_password(&app, "ops", RoleGrant::admin()).await;
    let mut v = Visitor::new(&app);
    let unknown = v.sign_in("nobody", PASSWORD).await;
    let wrong = v.sign_in("ops", "not the password at all").await;
    assert_eq!(
        (unknown.status, wrong.status),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    let msg = |p: &Page| p.body.contains("The name or the password is wrong.");
    assert!(msg(&unknown) && msg(&wrong));
    assert!(!v.has_session());
    // A form without the pre-session cookie's token is refused before any check.
    let mut bare = Visitor::new(&app);
    assert_eq!(
        bare.post(
            "/admin/login",
            &[("csrf", "x"), ("name", "ops"), ("password", PASSWORD)]
        )
        .await
        .status,
        403
    );
    for _ in 0..4 {
        assert_eq!(v.sign_in("ops", "still not the password").await.status, 401);
    }
    // Five attempts for the name in the window: now even the right password waits.
    let limited = v.sign_in("ops", PASSWORD).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(!v.has_session());
}

async fn idle_and_absolute_timeouts_and_disabling_end_sessions(backend: Backend) {
    let clock = StepClock::new();
    let app = spawn_with_clock(backend, &[], &[], clock.clone()).await;
    login_with_password(&app, "ops", RoleGrant::admin()).await;
    login_with_password(&app, "idle", RoleGrant::admin()).await;
    login_with_password(&app, "gone", RoleGrant::admin()).await;
    let minute = 60_000;

    // Idle: 29 minutes is fine, 31 more without a request is not.
    let mut idle = Visitor::new(&app);
    assert_eq!(idle.sign_in("idle", PASSWORD).await.status, 303);
    clock.advance_ms(29 * minute);
    assert_eq!(idle.get("/api/v1/guests").await.status, 200);
    clock.advance_ms(31 * minute);
    assert_eq!(idle.get("/api/v1/guests").await.status, 401);

    // Absolute: a session used every 20 minutes still ends 12 hours after sign-in.
    let mut busy = Visitor::new(&app);
    assert_eq!(busy.sign_in("ops", PASSWORD).await.status, 303);
    let mut elapsed = 0;
    while elapsed + 20 * minute < 12 * 60 * minute {
        clock.advance_ms(20 * minute);
        elapsed += 20 * minute;
        assert_eq!(
            busy.get("/api/v1/guests").await.status,
            200,
            "at {elapsed} ms"
        );
    }
    clock.advance_ms(20 * minute);
    assert_eq!(busy.get("/api/v1/guests").await.status, 401);

    // Disabling a login ends its sessions and refuses its password.
    let mut d = Visitor::new(&app);
    assert_eq!(d.sign_in("gone", PASSWORD).await.status, 303);
    assert_eq!(d.get("/api/v1/guests").await.status, 200);
    let ended = admin_auth::disable_login(&app.deps, &test_actor(), "gone")
        .await
        .unwrap();
    assert_eq!(ended, 1);
    assert_eq!(d.get("/api/v1/guests").await.status, 401);
    assert_eq!(
        Visitor::new(&app).sign_in("gone", PASSWORD).await.status,
        401
    );
    let _ = Arc::strong_count(&clock);
}

both_backends!(serve_prints_the_console_url_and_on_a_fresh_install_how_to_begin);

/// What `serve` prints on stdout in its first seconds (then it is stopped).
fn serve_banner(database_url: &str) -> String {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .arg("serve")
        .env("GUESTBRIDGE_DATABASE_URL", database_url)
        .env("GUESTBRIDGE_LISTEN", "127.0.0.1:0")
        .env("GUESTBRIDGE_PUBLIC_URL", "https://gb.example")
        .env("GUESTBRIDGE_SECRET_KEY", TEST_SECRET_KEY)
        .env("GUESTBRIDGE_JOBS", "off")
        .env(
            "GUESTBRIDGE_MAPPINGS",
            "/nonexistent/guestbridge-test-mappings",
        )
        .env("RUST_LOG", "off")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = String::new();
    // The first line may wait for migrations; the rest follows at once.
    let mut wait = std::time::Duration::from_secs(60);
    while let Ok(line) = rx.recv_timeout(wait) {
        out.push_str(&line);
        out.push('\n');
        wait = std::time::Duration::from_millis(1500);
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}

async fn serve_prints_the_console_url_and_on_a_fresh_install_how_to_begin(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::helpers::fresh_database(backend, &dir).await;
    let banner = |url: &str| {
        let url = url.to_string();
        tokio::task::spawn_blocking(move || serve_banner(&url))
    };
    let fresh = banner(&url).await.unwrap();
    assert!(
        fresh.starts_with("Admin console: https://gb.example/admin\n"),
        "{fresh}"
    );
    assert!(
        fresh.contains("guestbridge admin create-login NAME"),
        "{fresh}"
    );

    // Once a login exists, only the console's address.
    let out = Command::new(env!("CARGO_BIN_EXE_guestbridge"))
        .args(["admin", "create-login", "first"])
        .env("GUESTBRIDGE_DATABASE_URL", &url)
        .env("GUESTBRIDGE_SECRET_KEY", TEST_SECRET_KEY)
        .output()
        .unwrap();
    assert!(out.status.success());
    if let Some(link) = String::from_utf8_lossy(&out.stdout).lines().last() {
        crate::log_scan::register_secret(link.rsplit('/').next().unwrap());
    }
    let later = banner(&url).await.unwrap();
    assert_eq!(later, "Admin console: https://gb.example/admin\n");
}
