//! Console single sign-on against a real OpenID Connect provider: panva's `oidc-provider`
//! from npm (tests/oidc_provider/, installed with `npm ci --prefix tests/oidc_provider`),
//! started on a random loopback port with a confidential client for our callback and
//! accounts with groups. A reqwest client with its own cookie jar plays the browser over
//! real sockets, through the provider's own login and consent forms. Cases: each role from
//! its group (the first listed group wins), the session reaching the API and its limits, a
//! person in no allowed group, someone leaving their group (refused, old session ended), a
//! forged state, the provider's own refusal, a wrong client secret, an unreachable provider,
//! `client_secret_post`, and a key rotation at the provider that sign-in survives without a
//! restart.
//!
//! A second test runs one sign-in in headless Chromium with the provider on another site.
//!
//! Without node or the installed provider the tests are reported as ignored (build.rs
//! looks), unless GUESTBRIDGE_REQUIRE_OIDC=1 (CI), where they run and fail.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use reqwest::redirect::Policy;
use serde_json::{json, Value};

use crate::helpers::{spawn_with, Backend, TestApp};

const CLIENT_ID: &str = "guestbridge-console";
const CLIENT_SECRET: &str = "sso-test-client-secret-6d1f0a";
const GROUPS: &str =
    "gb-admins=admin,gb-auditors=auditor,acme-hr=partner-admin:acme,gb-sponsors=sponsor";

crate::both_backends!(without_a_reachable_provider_sso_fails_with_a_page);

/// Tests that need the provider: reported as ignored where build.rs found no node or no
/// installed provider (`gb_oidc_provider`), on top of the PostgreSQL variant's own condition.
macro_rules! with_provider {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use crate::helpers::{self, Backend};

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(gb_oidc_provider),
                    ignore = "node or tests/oidc_provider/node_modules was missing when the tests were built"
                )]
                async fn sqlite() {
                    super::$name(Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(all(gb_oidc_provider, gb_postgres)),
                    ignore = "needs node, tests/oidc_provider/node_modules and GUESTBRIDGE_TEST_POSTGRES_URL"
                )]
                async fn postgres() {
                    helpers::require_postgres();
                    super::$name(Backend::Postgres).await
                }
            }
        )*
    };
}

with_provider!(
    sso_signs_in_with_the_role_of_the_group,
    a_provider_taking_only_client_secret_post_gets_it
);

fn provider_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc_provider")
}

/// Whether the provider can run here; when it cannot, skip, or fail where it is required.
fn provider_available() -> bool {
    let installed = provider_dir().join("node_modules/oidc-provider").is_dir();
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if installed && node {
        return true;
    }
    let why = if node {
        "tests/oidc_provider/node_modules is missing (npm ci --prefix tests/oidc_provider)"
    } else {
        "node is not installed"
    };
    assert!(
        std::env::var("GUESTBRIDGE_REQUIRE_OIDC").as_deref() != Ok("1"),
        "GUESTBRIDGE_REQUIRE_OIDC=1 but the OIDC provider cannot run: {why}"
    );
    eprintln!("admin_sso skipped: {why}");
    false
}

/// The provider process, spoken to one JSON line at a time (see provider.js); killed on drop.
struct Provider {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    issuer: String,
}

impl Provider {
    /// Start the provider; its issuer will be `http://HOST:PORT`.
    fn start(host: &str) -> Provider {
        let mut child = Command::new("node")
            .arg("provider.js")
            .current_dir(provider_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start node provider.js");
        let stdin = child.stdin.take().expect("provider stdin");
        let stdout = BufReader::new(child.stdout.take().expect("provider stdout"));
        let mut p = Provider {
            child,
            stdin,
            stdout,
            issuer: String::new(),
        };
        let port = p.read()["port"].as_u64().expect("the provider's port");
        p.issuer = format!("http://{host}:{port}");
        p
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("provider output");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("provider said {line:?}: {e}"))
    }

    fn send(&mut self, msg: Value) -> Value {
        writeln!(self.stdin, "{msg}").expect("write to the provider");
        self.stdin.flush().expect("flush to the provider");
        self.read()
    }

    /// Register our client for `redirect_uri` and these accounts; the signing key's id.
    fn configure(&mut self, redirect_uri: &str) -> String {
        self.configure_with(redirect_uri, None)
    }

    /// As [`Provider::configure`], offering only this client authentication method.
    fn configure_with(&mut self, redirect_uri: &str, auth_method: Option<&str>) -> String {
        let account = |email: &str, groups: &[&str]| json!({"email": email, "groups": groups});
        let reply = self.send(json!({
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": redirect_uri,
            "issuer_host": url::Url::parse(&self.issuer).unwrap().host_str().unwrap(),
            "auth_method": auth_method,
            "accounts": {
                "alice": account("alice@corp.example", &["staff", "gb-auditors", "gb-admins"]),
                "bob": account("bob@corp.example", &["gb-auditors"]),
                "carol": account("carol@corp.example", &["staff", "gb-admins-old"]),
                "erin": account("erin@corp.example", &["acme-hr"]),
                "dave": account("Dave@Corp.example", &["gb-sponsors"]),
            },
        }));
        assert_eq!(reply["ready"], true, "{reply}");
        assert_eq!(reply["issuer"], self.issuer.as_str());
        reply["kid"].as_str().expect("kid").to_string()
    }

    /// Move a person to other groups at the provider.
    fn set_groups(&mut self, id: &str, email: &str, groups: &[&str]) {
        let reply = self.send(
            json!({"set_account": {"id": id, "account": {"email": email, "groups": groups}}}),
        );
        assert_eq!(reply["updated"], true, "{reply}");
    }

    /// Let the client also return to `redirect_uri` (a second app).
    fn allow(&mut self, redirect_uri: &str) {
        let reply = self.send(json!({"allow_redirect_uri": redirect_uri}));
        assert_eq!(reply["allowed"], true, "{reply}");
    }

    /// A new signing key; the old one leaves the provider's key set.
    fn rotate(&mut self) -> String {
        let reply = self.send(json!({"rotate": true}));
        assert_eq!(reply["rotated"], true, "{reply}");
        reply["kid"].as_str().expect("kid").to_string()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser as far as this flow needs one: no automatic redirects (each hop is looked at),
/// and cookies by name and path. Every server here is on 127.0.0.1, and cookies do not
/// tell ports apart, so one jar serves the provider and the app, as in a browser.
struct Browser {
    http: reqwest::Client,
    jar: Mutex<BTreeMap<(String, String), String>>,
}

struct Page {
    status: u16,
    url: String,
    location: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Page {
    fn next(&self) -> String {
        let loc = self
            .location
            .as_deref()
            .unwrap_or_else(|| panic!("{} {}: no Location\n{}", self.status, self.url, self.body));
        url::Url::parse(&self.url)
            .and_then(|u| u.join(loc))
            .expect("a Location")
            .to_string()
    }

    /// The value of the hidden `csrf` field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a csrf field")
            + 19;
        self.body[at..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            jar: Mutex::default(),
        }
    }

    fn cookies_for(&self, url: &str) -> String {
        let path = url::Url::parse(url).expect("url").path().to_string();
        let jar = self.jar.lock().unwrap();
        jar.iter()
            .filter(|((_, p), _)| path.starts_with(p.as_str()))
            .map(|((name, _), value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn has_cookie(&self, name: &str) -> bool {
        self.jar.lock().unwrap().keys().any(|(n, _)| n == name)
    }

    fn keep(&self, headers: &reqwest::header::HeaderMap) {
        let mut jar = self.jar.lock().unwrap();
        for set in headers.get_all(reqwest::header::SET_COOKIE) {
            let set = set.to_str().expect("Set-Cookie text");
            let mut parts = set.split(';').map(str::trim);
            let (name, value) = parts
                .next()
                .and_then(|p| p.split_once('='))
                .expect("name=value");
            let mut path = "/".to_string();
            let mut gone = value.is_empty();
            for attr in parts {
                let lower = attr.to_ascii_lowercase();
                if let Some(p) = lower.strip_prefix("path=") {
                    path = attr[5..5 + p.len()].to_string();
                }
                gone |= lower == "max-age=0"
                    || (lower.starts_with("expires=") && lower.contains("1970"));
            }
            let key = (name.to_string(), path);
            if gone {
                jar.remove(&key);
            } else {
                jar.insert(key, value.to_string());
            }
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder, url: &str) -> Page {
        let res = req
            .header(reqwest::header::COOKIE, self.cookies_for(url))
            .send()
            .await
            .expect("request");
        self.keep(res.headers());
        Page {
            status: res.status().as_u16(),
            url: url.to_string(),
            location: res
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|l| l.to_str().expect("Location text").to_string()),
            headers: res.headers().clone(),
            body: res.text().await.expect("body"),
        }
    }

    async fn get(&self, url: &str) -> Page {
        self.send(self.http.get(url), url).await
    }

    async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Page {
        self.send(self.http.post(url).form(form), url).await
    }

    async fn post_json(&self, url: &str, body: &Value, csrf: &str) -> Page {
        self.send(
            self.http.post(url).json(body).header("X-CSRF-Token", csrf),
            url,
        )
        .await
    }
}

/// The action of the provider's form on this page.
fn form_action(page: &Page) -> String {
    let at = page
        .body
        .find("action=\"")
        .unwrap_or_else(|| panic!("a form on {}\n{}", page.url, page.body))
        + 8;
    let action = page.body[at..]
        .split('"')
        .next()
        .unwrap_or_default()
        .replace("&amp;", "&");
    url::Url::parse(&page.url)
        .unwrap()
        .join(&action)
        .unwrap()
        .to_string()
}

/// From our `/admin/login/sso` through the provider's login (as `login`) and consent forms,
/// up to the redirect back to our callback, which is returned unvisited. With `abort`, the
/// person cancels at the provider's login form instead of signing in.
async fn through_provider(b: &Browser, app: &TestApp, login: &str, abort: bool) -> String {
    let callback = format!("{}/admin/login/sso/callback", app.address);
    let start = b.get(&format!("{}/admin/login/sso", app.address)).await;
    assert_eq!(start.status, 303, "{}", start.body);
    let mut url = start.next();
    let auth = url::Url::parse(&url).unwrap();
    let q: BTreeMap<String, String> = auth.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43, "{q:?}");
    assert!(b.has_cookie("gb_admin_sso"), "the flow cookie is set");
    for _ in 0..20 {
        if url.starts_with(&callback) {
            return url;
        }
        let page = b.get(&url).await;
        url = match page.status {
            302 | 303 => page.next(),
            200 if page.body.contains("name=\"prompt\" value=\"login\"") => {
                if abort {
                    format!("{}/abort", page.url)
                } else {
                    let action = form_action(&page);
                    let sent = b
                        .post_form(
                            &action,
                            &[("prompt", "login"), ("login", login), ("password", "any")],
                        )
                        .await;
                    sent.next()
                }
            }
            200 if page.body.contains("name=\"prompt\" value=\"consent\"") => {
                let action = form_action(&page);
                b.post_form(&action, &[("prompt", "consent")]).await.next()
            }
            s => panic!("{s} at {}\n{}", page.url, page.body),
        };
    }
    panic!("the provider never sent the browser back");
}

/// A whole sign-in as `login`: the callback's page.
async fn sign_in(b: &Browser, app: &TestApp, login: &str) -> Page {
    let callback = through_provider(b, app, login, false).await;
    let q: BTreeMap<String, String> = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(q.contains_key("code"), "{callback}");
    b.get(&callback).await
}

/// A signed-in browser's role as the console header shows it.
async fn console_role(b: &Browser, app: &TestApp) -> Page {
    let home = b.get(&format!("{}/admin", app.address)).await;
    assert_eq!(home.status, 200, "{}", home.body);
    home
}

/// The app trusting the provider at `issuer`, with this client secret.
async fn spawn_app(backend: Backend, issuer: &str, secret: &str) -> TestApp {
    crate::log_scan::install();
    crate::log_scan::register_secret(secret);
    spawn_with(
        backend,
        &[],
        &[
            ("GUESTBRIDGE_ADMIN_OIDC_ISSUER", issuer),
            ("GUESTBRIDGE_ADMIN_OIDC_CLIENT_ID", CLIENT_ID),
            ("GUESTBRIDGE_ADMIN_OIDC_CLIENT_SECRET", secret),
            ("GUESTBRIDGE_ADMIN_OIDC_GROUPS", GROUPS),
            (
                "GUESTBRIDGE_ADMIN_OIDC_SCOPES",
                "openid email profile groups",
            ),
            ("GUESTBRIDGE_ADMIN_OIDC_NAME", "Corp ID"),
        ],
    )
    .await
}

/// The provider with an issuer on `host`, and the app trusting it, with partner acme; the
/// provider's first signing key id.
async fn start(backend: Backend, host: &str) -> (Provider, TestApp, String) {
    let mut provider = Provider::start(host);
    let app = spawn_app(backend, &provider.issuer.clone(), CLIENT_SECRET).await;
    let first_kid = provider.configure(&format!("{}/admin/login/sso/callback", app.address));
    app.partner("acme").await;
    (provider, app, first_kid)
}

async fn sso_signs_in_with_the_role_of_the_group(backend: Backend) {
    if !provider_available() {
        return;
    }
    let (mut provider, app, first_kid) = start(backend, "127.0.0.1").await;

    // The sign-in page offers the provider beside the password form.
    let login = Browser::new()
        .get(&format!("{}/admin/login", app.address))
        .await;
    assert!(
        login.body.contains("Sign in with Corp ID"),
        "{}",
        login.body
    );
    assert!(login.body.contains("name=\"password\""));

    // alice is in gb-auditors and gb-admins: gb-admins is listed first, so admin.
    let alice = Browser::new();
    let done = sign_in(&alice, &app, "alice").await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("You are signed in as alice"),
        "{}",
        done.body
    );
    assert_eq!(
        done.headers.get("refresh").and_then(|v| v.to_str().ok()),
        Some("0; url=/admin")
    );
    assert!(alice.has_cookie("gb_admin"), "the console session cookie");
    assert!(
        !alice.has_cookie("gb_admin_sso"),
        "the flow cookie is used up"
    );
    let home = console_role(&alice, &app).await;
    assert!(home.body.contains("(admin)"), "{}", home.body);
    let csrf = home.csrf();
    assert_eq!(
        alice
            .get(&format!("{}/api/v1/guests", app.address))
            .await
            .status,
        200
    );
    let created = alice
        .post_json(
            &format!("{}/api/v1/partners", app.address),
            &json!({"slug": "globex", "name": "Globex"}),
            &csrf,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    // Without the session's CSRF token the same change is refused.
    let forged = alice
        .post_json(
            &format!("{}/api/v1/partners", app.address),
            &json!({"slug": "initech", "name": "Initech"}),
            "forged",
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);

    // bob is an auditor: reads, and a change is forbidden.
    let bob = Browser::new();
    assert_eq!(sign_in(&bob, &app, "bob").await.status, 200);
    let home = console_role(&bob, &app).await;
    assert!(home.body.contains("(auditor)"), "{}", home.body);
    assert_eq!(
        bob.get(&format!("{}/api/v1/guests", app.address))
            .await
            .status,
        200
    );
    let change = bob
        .post_json(
            &format!("{}/api/v1/partners", app.address),
            &json!({"slug": "umbrella", "name": "Umbrella"}),
            &home.csrf(),
        )
        .await;
    assert_eq!(change.status, 403, "{}", change.body);

    // erin administers acme's people; dave sponsors by his verified e-mail.
    let erin = Browser::new();
    assert_eq!(sign_in(&erin, &app, "erin").await.status, 200);
    assert!(console_role(&erin, &app)
        .await
        .body
        .contains("(partner-admin)"));
    let dave = Browser::new();
    assert_eq!(sign_in(&dave, &app, "dave").await.status, 200);
    assert!(console_role(&dave, &app).await.body.contains("(sponsor)"));

    // An operator disables erin by her subject (the audit log's): her session ends, and the
    // provider vouching for her again does not bring her back.
    let ended = guestbridge::services::admin_auth::disable_login(
        &app.deps,
        &crate::helpers::test_actor(),
        "erin",
    )
    .await
    .expect("disable erin's login");
    assert_eq!(ended, 1);
    assert_eq!(
        erin.get(&format!("{}/api/v1/guests", app.address))
            .await
            .status,
        401
    );
    let again = sign_in(&Browser::new(), &app, "erin").await;
    assert_eq!(again.status, 403, "{}", again.body);
    assert!(again.body.contains("has been disabled"), "{}", again.body);

    // carol is in none of the allowed groups (a near miss does not count): refused, no session.
    let carol = Browser::new();
    let refused = sign_in(&carol, &app, "carol").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("none of the groups allowed"),
        "{}",
        refused.body
    );
    assert!(!carol.has_cookie("gb_admin"));
    let after = carol.get(&format!("{}/admin", app.address)).await;
    assert_eq!(after.next(), format!("{}/admin/login", app.address));

    // bob leaves gb-auditors at the provider: his next sign-in is refused, and the session he
    // still had ends with it.
    provider.set_groups("bob", "bob@corp.example", &["staff"]);
    let bob_again = Browser::new();
    let refused = sign_in(&bob_again, &app, "bob").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let old = bob.get(&format!("{}/admin", app.address)).await;
    assert_eq!(
        old.next(),
        format!("{}/admin/login", app.address),
        "bob's old session ended"
    );
    assert_eq!(
        bob.get(&format!("{}/api/v1/guests", app.address))
            .await
            .status,
        401
    );

    // A forged state is refused before the code is used, and the flow cannot be retried.
    let mallory = Browser::new();
    let callback = through_provider(&mallory, &app, "alice", false).await;
    let mut forged_url = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = forged_url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged_url.query_pairs_mut().clear().extend_pairs(pairs);
    let forged = mallory.get(forged_url.as_str()).await;
    assert_eq!(forged.status, 400, "{}", forged.body);
    assert!(
        forged.body.contains("state does not match"),
        "{}",
        forged.body
    );
    assert!(!mallory.has_cookie("gb_admin"));
    let replay = mallory.get(&callback).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(!mallory.has_cookie("gb_admin"));

    // The person cancels at the provider: its error, shown, and no session.
    let quitter = Browser::new();
    let callback = through_provider(&quitter, &app, "alice", true).await;
    let cancelled = quitter.get(&callback).await;
    assert_eq!(cancelled.status, 403, "{}", cancelled.body);
    assert!(
        cancelled.body.contains("access_denied"),
        "{}",
        cancelled.body
    );
    assert!(!quitter.has_cookie("gb_admin"));

    // The provider rotates its signing key: the next sign-in's token names a key the app has
    // not seen, and the app fetches the keys again rather than refusing.
    let second_kid = provider.rotate();
    assert_ne!(first_kid, second_kid);
    let again = Browser::new();
    let done = sign_in(&again, &app, "alice").await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(console_role(&again, &app).await.body.contains("(admin)"));

    // A server with a wrong client secret: the provider refuses the code exchange, and the
    // person gets a page with a reference and no session.
    let wrong = spawn_app(
        backend,
        &provider.issuer.clone(),
        "not-the-client-secret-93ab",
    )
    .await;
    provider.allow(&format!("{}/admin/login/sso/callback", wrong.address));
    let eve = Browser::new();
    let failed = sign_in(&eve, &wrong, "alice").await;
    assert_eq!(failed.status, 502, "{}", failed.body);
    assert!(
        failed
            .body
            .contains("Completing the sign-in with Corp ID failed")
            && failed.body.contains("Reference"),
        "{}",
        failed.body
    );
    assert!(!eve.has_cookie("gb_admin"));

    // Audited with subject and role, never a token; one login per person however often.
    let mut conn = app.deps.db.pool().acquire().await.unwrap();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT actor, action, detail FROM audit_log WHERE action LIKE 'admin.sso%' ORDER BY id",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let signed_in: Vec<Value> = rows
        .iter()
        .filter(|r| r.1 == "admin.sso_sign_in")
        .map(|r| serde_json::from_str(&r.2).unwrap())
        .collect();
    let roles: Vec<(&str, &str)> = signed_in
        .iter()
        .map(|d| (d["subject"].as_str().unwrap(), d["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        [
            ("alice", "admin"),
            ("bob", "auditor"),
            ("erin", "partner-admin"),
            ("dave", "sponsor"),
            ("alice", "admin"),
        ]
    );
    assert!(rows.iter().any(|r| r.1 == "admin.sso_sign_in_refused"
        && r.2.contains("no_allowed_group")
        && r.2.contains("carol")));
    for (actor, action, detail) in &rows {
        assert!(!detail.contains("eyJ"), "no JWT in {action}: {detail}");
        assert!(!detail.contains(CLIENT_SECRET), "{action}: {detail}");
        assert!(!actor.contains('@'), "{actor}");
    }
    let logins: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT oidc_subject, role, sponsor_email FROM admin_logins WHERE oidc_subject IS NOT NULL ORDER BY oidc_subject",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert_eq!(logins.len(), 4, "{logins:?}");
    assert!(logins
        .iter()
        .any(|l| l.0 == "dave" && l.1 == "sponsor" && l.2.as_deref() == Some("dave@corp.example")));
}

/// No provider answers at the issuer: starting SSO is a page saying so, a callback without a
/// started flow is refused, and a server without SSO says it has none. Needs no node.
async fn without_a_reachable_provider_sso_fails_with_a_page(backend: Backend) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let issuer = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let app = spawn_app(backend, &issuer, CLIENT_SECRET).await;
    let b = Browser::new();
    let start = b.get(&format!("{}/admin/login/sso", app.address)).await;
    assert_eq!(start.status, 502, "{}", start.body);
    assert!(
        start.body.contains("Corp ID cannot be reached right now"),
        "{}",
        start.body
    );
    assert!(!b.has_cookie("gb_admin_sso"));
    let stray = b
        .get(&format!(
            "{}/admin/login/sso/callback?code=c&state=s",
            app.address
        ))
        .await;
    assert_eq!(stray.status, 400, "{}", stray.body);
    assert!(
        stray.body.contains("not started in this browser"),
        "{}",
        stray.body
    );
    assert!(!b.has_cookie("gb_admin"));

    let plain = crate::helpers::spawn(backend).await;
    let login = b.get(&format!("{}/admin/login", plain.address)).await;
    assert!(!login.body.contains("Sign in with"), "{}", login.body);
    let none = b.get(&format!("{}/admin/login/sso", plain.address)).await;
    assert_eq!(none.status, 404, "{}", none.body);
    assert!(none.body.contains("not set up"), "{}", none.body);
}

/// A provider whose discovery document offers only `client_secret_post`: the code exchange
/// sends the secret in the form instead of the Authorization header, and sign-in works.
async fn a_provider_taking_only_client_secret_post_gets_it(backend: Backend) {
    if !provider_available() {
        return;
    }
    let mut provider = Provider::start("127.0.0.1");
    let app = spawn_app(backend, &provider.issuer.clone(), CLIENT_SECRET).await;
    provider.configure_with(
        &format!("{}/admin/login/sso/callback", app.address),
        Some("client_secret_post"),
    );
    let discovery: Value = reqwest::get(format!(
        "{}/.well-known/openid-configuration",
        provider.issuer
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        discovery["token_endpoint_auth_methods_supported"],
        json!(["client_secret_post"])
    );
    let b = Browser::new();
    let done = sign_in(&b, &app, "bob").await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(console_role(&b, &app).await.body.contains("(auditor)"));
}

mod sso_in_chromium_across_sites {
    use crate::helpers::{self, Backend};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(all(gb_browser, gb_oidc_provider)),
        ignore = "needs chromium, node and tests/oidc_provider/node_modules when the tests are built"
    )]
    async fn sqlite() {
        super::sso_in_chromium(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(all(gb_browser, gb_oidc_provider, gb_postgres)),
        ignore = "needs chromium, node, tests/oidc_provider/node_modules and GUESTBRIDGE_TEST_POSTGRES_URL"
    )]
    async fn postgres() {
        helpers::require_postgres();
        super::sso_in_chromium(Backend::Postgres).await
    }
}

/// The same sign-in in headless Chromium, with the provider on `localhost` and the app on
/// 127.0.0.1: two sites, so the browser applies SameSite as it would with a real provider
/// (the flow cookie must come back on the provider's redirect, and the Strict session
/// cookie must reach `/admin` after it). Screenshots: `admin-sso-login.png`,
/// `admin-sso-signed-in.png` under `target/screenshots/`.
async fn sso_in_chromium(backend: Backend) {
    use std::panic::AssertUnwindSafe;

    use futures_util::FutureExt;

    crate::browser::require_browser();
    if !provider_available() {
        return;
    }
    let (_provider, app, _) = start(backend, "localhost").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let driver = crate::browser::ChromeDriver::start(dir.path()).await;
    let b = chromium(&driver, &dir.path().join("profile")).await;
    let prefix = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => "postgres-",
    };
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).expect("target/screenshots");
    let outcome = AssertUnwindSafe(chromium_sign_in(&b, &app, &shots, prefix))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        if let Ok(png) = b.screenshot().await {
            let _ = std::fs::write(shots.join(format!("{prefix}admin-sso-failure.png")), png);
        }
    }
    let closed = b.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    closed.expect("close the browser");
}

async fn chromium(
    driver: &crate::browser::ChromeDriver,
    profile: &std::path::Path,
) -> fantoccini::Client {
    std::fs::create_dir_all(profile).expect("profile dir");
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| panic!("cannot start Chromium: {e}; {}", driver.log_text()))
}

/// The page's text once it contains `needle` (a click navigates after it returns).
async fn wait_text(b: &fantoccini::Client, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut last = String::new();
    loop {
        if let Ok(body) = b.find(fantoccini::Locator::Css("body")).await {
            if let Ok(text) = body.text().await {
                if text.contains(needle) {
                    return text;
                }
                last = text;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {needle:?} on the page; it says: {last}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn click(b: &fantoccini::Client, css: &str) {
    b.find(fantoccini::Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn chromium_sign_in(
    b: &fantoccini::Client,
    app: &TestApp,
    shots: &std::path::Path,
    prefix: &str,
) {
    b.goto(&format!("{}/admin/login", app.address))
        .await
        .expect("open the sign-in page");
    wait_text(b, "Sign in with Corp ID").await;
    let png = b.screenshot().await.expect("screenshot");
    std::fs::write(shots.join(format!("{prefix}admin-sso-login.png")), png).expect("save");
    click(b, "a[href='/admin/login/sso']").await;
    // The provider's own pages: its login form, then its consent form.
    wait_text(b, "Sign-in").await;
    let login = b
        .find(fantoccini::Locator::Css("input[name='login']"))
        .await
        .expect("the provider's login field");
    login.send_keys("alice").await.expect("type the login");
    b.find(fantoccini::Locator::Css("input[name='password']"))
        .await
        .expect("the provider's password field")
        .send_keys("any password")
        .await
        .expect("type the password");
    click(b, "button[type='submit']").await;
    wait_text(b, "Continue").await;
    click(b, "button[type='submit']").await;
    let text = wait_text(b, "Signed in as alice (admin)").await;
    assert!(!text.contains("did not work"), "{text}");
    let at = b.current_url().await.expect("url");
    assert_eq!(at.path(), "/admin");
    assert_eq!(at.host_str(), Some("127.0.0.1"));
    let png = b.screenshot().await.expect("screenshot");
    std::fs::write(shots.join(format!("{prefix}admin-sso-signed-in.png")), png).expect("save");
}
