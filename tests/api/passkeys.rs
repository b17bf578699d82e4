//! Passkeys (WebAuthn) for guests. In headless Chromium with chromedriver's virtual
//! authenticator (the WebDriver WebAuthn extension): a guest of a `mfa = "passkey"` partner
//! accepts the invitation, enrols a passkey as the second step and reaches the access panel;
//! signs out and signs in with the passkey alone; a forged credential claiming to be theirs
//! is refused; the session records the passkey (the ID token's `amr` says `hwk`); an
//! administrator's MFA reset removes the passkeys (audited). Screenshots at phone and laptop
//! widths under `target/screenshots/passkey-*.png`.
//!
//! Without a browser, the same way as `browser.rs`: ignored, unless CI requires it. The JSON
//! endpoints' refusals (no session, bad CSRF, malformed body or credential, used or expired
//! ceremony state) are tested over plain HTTP on both backends.

use std::path::{Path, PathBuf};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::browser::{button, free_port, path, require_browser, text, ChromeDriver};
use crate::helpers::{spawn_with, test_actor, Backend, TestApp};
use crate::portal::{field, Browser};
use crate::smtp::TestSmtp;

const CHROMIUM: &str = "/usr/bin/chromium";
const WAIT: Duration = Duration::from_secs(15);
const PHONE_WIDTH: u64 = 390;
const LAPTOP_WIDTH: u64 = 1280;

const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = "Shared health record"
launch_url = "https://ehr.example/launch?site=main"
roles = ["reader"]

[[partner]]
slug = "acme"
mfa = "passkey"

[[partner]]
slug = "globex"
mfa = true

[[rule]]
id = "everyone"
grants = [{ app = "ehr-viewer", role = "reader" }]
sponsor = "dr.grey@hospital.example"
"#;

/// The app on a port of its own, its public URL on `localhost`: WebAuthn refuses an IP
/// address as the relying party id.
async fn app(backend: Backend, smtp: &TestSmtp) -> (TestApp, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let public = format!("http://localhost:{port}");
    let app = spawn_with(
        backend,
        &[("rules.toml", RULES)],
        &[
            ("GUESTBRIDGE_SMTP_URL", smtp.url.as_str()),
            ("GUESTBRIDGE_MAIL_RETRY_BASE_MS", "200"),
            ("GUESTBRIDGE_LISTEN", listen.as_str()),
            ("GUESTBRIDGE_PUBLIC_URL", public.as_str()),
        ],
    )
    .await;
    (app, public)
}

async fn invite(app: &TestApp, smtp: &TestSmtp, slug: &str, email: &str, public: &str) -> String {
    let (_, partner) = app.partner(slug).await;
    partner
        .create_user(&json!({
            "userName": email,
            "displayName": "Ann Lee",
            "emails": [{"value": email, "primary": true}],
        }))
        .await;
    let mails = smtp.wait_for(1, WAIT).await;
    mails
        .iter()
        .find_map(|m| m.find_link(&format!("{public}/invite/")))
        .expect("an invitation link in the mail")
}

async fn guest_id(app: &TestApp, email: &str) -> String {
    sqlx::query_scalar("SELECT id FROM guests WHERE email = $1")
        .bind(email)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

// ---- Over plain HTTP: the JSON endpoints' refusals, and the policy's pages. ----

/// POST a JSON body with the browser's cookies.
async fn post_json(b: &Browser, app: &TestApp, path: &str, body: &str) -> (StatusCode, Value) {
    let cookies = b
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let res = app
        .client
        .post(format!("{}{path}", app.address))
        .header("cookie", cookies)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Accept the invitation over HTTP: a session that still has to pass MFA.
async fn accept(b: &mut Browser, link: &str) -> Option<String> {
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
    .location
}

both_backends!(passkey_calls_refuse_no_session_bad_csrf_and_bad_credentials);

async fn passkey_calls_refuse_no_session_bad_csrf_and_bad_credentials(backend: Backend) {
    let smtp = TestSmtp::start();
    let (app, public) = app(backend, &smtp).await;
    let link = invite(&app, &smtp, "acme", "ann@acme.example", &public).await;

    // No session.
    let nobody = Browser::new(&app);
    for path in [
        "/mfa/passkeys/register/start",
        "/mfa/passkeys/register/finish",
        "/mfa/passkey/start",
        "/mfa/passkey/finish",
    ] {
        let (status, body) = post_json(&nobody, &app, path, r#"{"csrf":"x"}"#).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(body["error"], "no_session", "{path}");
    }

    // The partner requires a passkey: the invitation leads to passkey enrolment, and the
    // authenticator app is not offered.
    let mut b = Browser::new(&app);
    assert_eq!(
        accept(&mut b, &link).await.as_deref(),
        Some("/mfa/passkeys")
    );
    assert_eq!(
        b.get("/mfa/setup").await.location.as_deref(),
        Some("/mfa/passkeys")
    );
    let page = b.get("/mfa/passkeys").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Add a passkey"), "{}", page.body);
    let csrf = passkey_csrf(&page.body);

    // A bad CSRF token, a body that is not JSON.
    let (status, body) = post_json(
        &b,
        &app,
        "/mfa/passkeys/register/start",
        r#"{"csrf":"forged"}"#,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf"))
    );
    let (status, body) = post_json(&b, &app, "/mfa/passkeys/register/start", "csrf=forged").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed"))
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM passkey_ceremonies").await,
        0
    );

    // The options: this relying party, user verification required, a discoverable key.
    let start = json!({"csrf": csrf}).to_string();
    let (status, options) = post_json(&b, &app, "/mfa/passkeys/register/start", &start).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let pk = &options["publicKey"];
    assert_eq!(pk["rp"]["id"], "localhost");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
    assert!(
        pk["challenge"].as_str().is_some_and(|c| c.len() >= 43),
        "{pk}"
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM passkey_ceremonies").await,
        1
    );

    // A malformed credential is refused, and the ceremony is used up by the attempt.
    let bad = json!({"csrf": csrf, "credential": {"id": "x", "type": "public-key"}}).to_string();
    let (status, body) = post_json(&b, &app, "/mfa/passkeys/register/finish", &bad).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("refused")),
        "{body}"
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM passkey_ceremonies").await,
        0
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM guest_passkeys").await, 0);
    // Still not past MFA.
    assert_eq!(
        b.get("/apps").await.location.as_deref(),
        Some("/mfa/passkeys")
    );

    // Without passkeys there is nothing to authenticate with.
    let (status, _) = post_json(&b, &app, "/mfa/passkey/start", &start).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The sign-in ceremony needs the sign-in page's cookie and token; it asks nothing about
    // the guest (no allowed credentials), so it tells nothing either.
    let (status, body) = post_json(&nobody, &app, "/signin/passkey/start", &start).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf"))
    );
    let mut visitor = Browser::new(&app);
    let signin = visitor.get("/signin").await;
    let token = field(&signin.body, "csrf");
    let call = json!({"csrf": token}).to_string();
    let (status, options) = post_json(&visitor, &app, "/signin/passkey/start", &call).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    assert_eq!(options["publicKey"]["allowCredentials"], json!([]));
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert!(options.get("mediation").is_none(), "{options}");
    let forged = json!({"csrf": token, "credential": {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {"authenticatorData": "AAAA", "clientDataJSON": "AAAA", "signature": "AAAA", "userHandle": "AAAA"}}}).to_string();
    let (status, body) = post_json(&visitor, &app, "/signin/passkey/finish", &forged).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("refused")),
        "{body}"
    );
    assert!(!visitor.cookies.iter().any(|(k, _)| k == "gb_session"));
}

/// The page's passkey CSRF token (the `data-csrf` of the passkey box).
fn passkey_csrf(body: &str) -> String {
    let marker = "data-csrf=\"";
    let start = body.find(marker).expect("the passkey CSRF token") + marker.len();
    let end = body[start..].find('"').unwrap() + start;
    crate::portal::html_unescape(&body[start..end])
}

both_backends!(with_mfa_true_totp_stays_and_a_mail_link_cannot_add_a_passkey);

/// A partner with `mfa = true`: the authenticator app is still offered (with a passkey as
/// the alternative). Once the guest has a factor, a session from an e-mailed link that has
/// not passed MFA cannot enrol a passkey, which would get round it.
async fn with_mfa_true_totp_stays_and_a_mail_link_cannot_add_a_passkey(backend: Backend) {
    let smtp = TestSmtp::start();
    let (app, public) = app(backend, &smtp).await;
    let link = invite(&app, &smtp, "globex", "bob@globex.example", &public).await;
    let mut b = Browser::new(&app);
    assert_eq!(accept(&mut b, &link).await.as_deref(), Some("/mfa/setup"));
    let setup = b.get("/mfa/setup").await;
    assert_eq!(setup.status, StatusCode::OK);
    assert!(
        setup.body.contains("href=\"/mfa/passkeys\""),
        "{}",
        setup.body
    );
    // Enrol the app.
    let key = setup
        .body
        .split("<code>")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap();
    let secret = crate::portal::base32_decode(key);
    let now = chrono::Utc::now().timestamp() as u64;
    let done = b
        .post(
            "/mfa/setup",
            &[
                ("csrf", &field(&setup.body, "csrf")),
                ("code", &guestbridge::auth::totp::code_at(&secret, now)),
            ],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/apps"), "{}", done.body);
    // After MFA, adding a passkey is offered and may start.
    let page = b.get("/mfa/passkeys").await;
    let csrf = passkey_csrf(&page.body);
    let call = json!({"csrf": csrf}).to_string();
    let (status, _) = post_json(&b, &app, "/mfa/passkeys/register/start", &call).await;
    assert_eq!(status, StatusCode::OK);

    // A new session from a sign-in link, MFA not passed: no enrolment.
    let mut other = Browser::new(&app);
    let form = other.get("/signin").await;
    other
        .post(
            "/signin",
            &[
                ("csrf", &field(&form.body, "csrf")),
                ("email", "bob@globex.example"),
            ],
        )
        .await;
    let mails = smtp.wait_for(2, WAIT).await;
    let signin = mails
        .iter()
        .find_map(|m| m.find_link(&format!("{public}/signin/")))
        .expect("a sign-in link");
    let page = other.get(&signin).await;
    let signed_in = other
        .post(&signin, &[("csrf", &field(&page.body, "csrf"))])
        .await;
    assert_eq!(signed_in.location.as_deref(), Some("/mfa"));
    // The code form is there (TOTP stays available), and no passkey button without passkeys.
    let prompt = other.get("/mfa").await;
    assert!(prompt.body.contains("6-digit code"), "{}", prompt.body);
    assert!(!prompt.body.contains("Use a passkey"), "{}", prompt.body);
    let page = other.get("/mfa/passkeys").await;
    assert!(!page.body.contains("Add a passkey"), "{}", page.body);
    assert!(!page.body.contains("data-csrf"), "{}", page.body);
    let token = guestbridge::auth::csrf::csrf_token(
        session_csrf_secret(&app, &other).await.as_bytes(),
        "passkey",
    );
    let call = json!({"csrf": token}).to_string();
    let (status, body) = post_json(&other, &app, "/mfa/passkeys/register/start", &call).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_allowed")),
        "{body}"
    );
    let (status, body) = post_json(&other, &app, "/mfa/passkeys/register/finish", &call).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("not_allowed")),
        "{body}"
    );
}

/// The CSRF secret of the browser's session (to make a valid token for a page that does not
/// offer the call).
async fn session_csrf_secret(app: &TestApp, b: &Browser) -> String {
    let cookie = b
        .cookies
        .iter()
        .find(|(k, _)| k == "gb_session")
        .map(|(_, v)| v.clone())
        .expect("a session cookie");
    guestbridge::services::guest_auth::session(&app.deps, &cookie)
        .await
        .unwrap()
        .expect("a live session")
        .session
        .csrf_secret
}

both_backends!(ceremony_state_is_single_use_and_short_lived);

/// The store's guarantee the endpoints rely on: a ceremony's state is taken once, only for
/// its kind, and not after it expired.
async fn ceremony_state_is_single_use_and_short_lived(backend: Backend) {
    use guestbridge::store::passkeys::{put_ceremony, take_ceremony};
    let smtp = TestSmtp::start();
    let (app, _) = app(backend, &smtp).await;
    let mut conn = app.deps.db.pool().acquire().await.unwrap();
    let now = 1_000_000;
    put_ceremony(&mut conn, "c1", "register", "state-1", now, now + 300_000)
        .await
        .unwrap();
    assert_eq!(
        take_ceremony(&mut conn, "c1", "signin", now).await.unwrap(),
        None
    );
    assert_eq!(
        take_ceremony(&mut conn, "c1", "register", now + 1)
            .await
            .unwrap()
            .as_deref(),
        Some("state-1")
    );
    // Replayed.
    assert_eq!(
        take_ceremony(&mut conn, "c1", "register", now + 2)
            .await
            .unwrap(),
        None
    );
    // A second start replaces the first.
    put_ceremony(&mut conn, "c2", "register", "old", now, now + 300_000)
        .await
        .unwrap();
    put_ceremony(&mut conn, "c2", "register", "new", now, now + 300_000)
        .await
        .unwrap();
    assert_eq!(
        take_ceremony(&mut conn, "c2", "register", now)
            .await
            .unwrap()
            .as_deref(),
        Some("new")
    );
    // Expired: refused, and gone.
    put_ceremony(&mut conn, "c3", "authenticate", "late", now, now + 300_000)
        .await
        .unwrap();
    assert_eq!(
        take_ceremony(&mut conn, "c3", "authenticate", now + 300_000)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM passkey_ceremonies").await,
        0
    );
}

// ---- In Chromium with a virtual authenticator. ----

mod passkey_enrolment_signin_and_reset_in_chromium {
    use crate::helpers::{self, Backend};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(gb_browser),
        ignore = "chromium or chromium-driver was missing when the tests were built"
    )]
    async fn sqlite() {
        super::passkey_enrolment_signin_and_reset_in_chromium(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(all(gb_browser, gb_postgres)),
        ignore = "needs chromium and GUESTBRIDGE_TEST_POSTGRES_URL when the tests are built"
    )]
    async fn postgres() {
        helpers::require_postgres();
        super::passkey_enrolment_signin_and_reset_in_chromium(Backend::Postgres).await
    }
}

/// A Chromium session at this width (a phone's, emulated, or a laptop's window).
async fn open_browser(driver: &ChromeDriver, profile: &Path, width: u64) -> Client {
    std::fs::create_dir_all(profile).expect("profile dir");
    let mut options = json!({
        "binary": CHROMIUM,
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", format!("--window-size={width},900"),
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    if width == PHONE_WIDTH {
        options["mobileEmulation"] = json!({"deviceMetrics": {"width": PHONE_WIDTH, "height": 844, "pixelRatio": 2.0, "mobile": true, "touch": true}});
    }
    let Value::Object(capabilities) =
        json!({"browserName": "chrome", "goog:chromeOptions": options})
    else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| panic!("cannot start Chromium: {e}; {}", driver.log_text()))
}

/// A virtual CTAP2 authenticator with resident keys and user verification, through the
/// WebDriver WebAuthn extension (chromedriver implements it).
async fn add_authenticator(driver: &ChromeDriver, b: &Client) -> String {
    let session = b.session_id().await.unwrap().expect("a WebDriver session");
    let res: Value = reqwest::Client::new()
        .post(format!(
            "{}/session/{session}/webauthn/authenticator",
            driver.url()
        ))
        .json(&json!({
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
            "hasUserVerification": true, "isUserVerified": true,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    res["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no authenticator: {res}"))
        .to_string()
}

async fn credentials(driver: &ChromeDriver, b: &Client, authenticator: &str) -> Vec<Value> {
    let session = b.session_id().await.unwrap().expect("a WebDriver session");
    let res: Value = reqwest::get(format!(
        "{}/session/{session}/webauthn/authenticator/{authenticator}/credentials",
        driver.url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    res["value"].as_array().cloned().unwrap_or_default()
}

struct Shots {
    dir: PathBuf,
    prefix: &'static str,
}

impl Shots {
    fn new(backend: Backend) -> Shots {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let prefix = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        Shots { dir, prefix }
    }

    async fn save(&self, b: &Client, width: u64, n: u32, page: &str) {
        let png = b.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let file = self
            .dir
            .join(format!("passkey-{}-{n}-{page}-{width}.png", self.prefix));
        std::fs::write(&file, png).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    }
}

async fn wait_for_path(b: &Client, want: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let now = path(b).await;
        if now == want {
            return;
        }
        if std::time::Instant::now() > deadline {
            let status = b.find(Locator::Id("passkey-status")).await.ok();
            let status = match status {
                Some(s) => s.text().await.unwrap_or_default(),
                None => String::new(),
            };
            panic!("still on {now}, not {want}; status: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sign out, and wait for the page that says so (a navigation right after the click could
/// otherwise be overtaken by the sign-out's own).
async fn sign_out(b: &Client) {
    button(b, "Sign out").await;
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//h1[normalize-space()='Signed out']"))
        .await
        .expect("the signed-out page");
}

async fn session_of(app: &TestApp, b: &Client) -> guestbridge::services::guest_auth::GuestSession {
    let cookie = b
        .get_named_cookie("gb_session")
        .await
        .expect("the session cookie");
    guestbridge::services::guest_auth::session(&app.deps, cookie.value())
        .await
        .unwrap()
        .expect("a live session")
}

async fn passkey_enrolment_signin_and_reset_in_chromium(backend: Backend) {
    require_browser();
    let smtp = TestSmtp::start();
    let (app, public) = app(backend, &smtp).await;
    let link = invite(&app, &smtp, "acme", "ann@acme.example", &public).await;
    let id = guest_id(&app, "ann@acme.example").await;

    let dir = tempfile::tempdir().expect("tempdir");
    let driver = ChromeDriver::start(dir.path()).await;
    let phone = open_browser(&driver, &dir.path().join("phone"), PHONE_WIDTH).await;
    let laptop = open_browser(&driver, &dir.path().join("laptop"), LAPTOP_WIDTH).await;
    let shots = Shots::new(backend);
    let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(journey(
        &app, &smtp, &driver, &phone, &laptop, &link, &public, &id, &shots,
    )))
    .await;
    if outcome.is_err() {
        for (b, w) in [(&phone, PHONE_WIDTH), (&laptop, LAPTOP_WIDTH)] {
            if let Ok(png) = b.screenshot().await {
                let file = shots
                    .dir
                    .join(format!("passkey-{}-failure-{w}.png", shots.prefix));
                let _ = std::fs::write(&file, png);
                eprintln!("screenshot of the failure: {}", file.display());
            }
        }
    }
    let _ = phone.close().await;
    let _ = laptop.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[allow(clippy::too_many_arguments)]
async fn journey(
    app: &TestApp,
    smtp: &TestSmtp,
    driver: &ChromeDriver,
    phone: &Client,
    laptop: &Client,
    link: &str,
    public: &str,
    id: &str,
    shots: &Shots,
) {
    let authenticator = add_authenticator(driver, phone).await;

    // 1. The invitation, consent, then passkey enrolment (acme requires a passkey).
    phone.goto(link).await.expect("open the invitation link");
    button(phone, "Accept and continue").await;
    wait_for_path(phone, "/mfa/passkeys").await;
    assert_eq!(text(phone, "h1").await, "Your passkeys");
    shots.save(phone, PHONE_WIDTH, 1, "enrol").await;
    button(phone, "Add a passkey").await;

    // 2. The access panel; the session passed MFA with the passkey.
    wait_for_path(phone, "/apps").await;
    assert_eq!(text(phone, ".card h2").await, "EHR Viewer");
    shots.save(phone, PHONE_WIDTH, 2, "panel").await;
    let stored = credentials(driver, phone, &authenticator).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["isResidentCredential"], true, "{stored:?}");
    let gs = session_of(app, phone).await;
    assert_eq!(gs.session.mfa_method.as_deref(), Some("passkey"));
    assert_eq!(
        guestbridge::services::oidc::amr(&gs),
        ["email", "hwk", "mfa"]
    );
    assert_eq!(count(app, "SELECT COUNT(*) FROM guest_passkeys").await, 1);

    // 3. Sign out, then sign in with the passkey alone (no address typed).
    sign_out(phone).await;
    phone.goto(&format!("{public}/signin")).await.unwrap();
    shots.save(phone, PHONE_WIDTH, 3, "signin").await;
    button(phone, "Sign in with a passkey").await;
    wait_for_path(phone, "/apps").await;
    let gs = session_of(app, phone).await;
    assert_eq!(gs.session.origin, "passkey");
    assert_eq!(guestbridge::services::oidc::amr(&gs), ["hwk", "mfa"]);
    shots.save(phone, PHONE_WIDTH, 4, "signed-in").await;
    // The use was recorded (counter or backup state, and when).
    let used: Option<i64> = sqlx::query_scalar("SELECT last_used_at FROM guest_passkeys")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert!(used.is_some());
    let signed_in: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'guest.signed_in' AND target_id = $1 AND detail LIKE '%passkey%'",
    )
    .bind(id)
    .fetch_one(app.deps.db.pool())
    .await
    .unwrap();
    assert_eq!(signed_in, 1);

    // 4. The list of passkeys, on the phone.
    phone.goto(&format!("{public}/mfa/passkeys")).await.unwrap();
    assert_eq!(text(phone, ".card h2").await, "Passkey 1");
    shots.save(phone, PHONE_WIDTH, 5, "list").await;

    // 5. Signed out again, back by an e-mailed sign-in link: the passkey is the second step,
    // and no code form is offered (the partner requires a passkey).
    phone.goto(&format!("{public}/apps")).await.unwrap();
    sign_out(phone).await;
    phone.goto(&format!("{public}/signin")).await.unwrap();
    phone
        .find(Locator::Id("email"))
        .await
        .expect("the email input")
        .send_keys("ann@acme.example")
        .await
        .expect("type the address");
    button(phone, "Email me a sign-in link").await;
    let mails = smtp.wait_for(2, WAIT).await;
    let signin = mails
        .iter()
        .find_map(|m| m.find_link(&format!("{public}/signin/")))
        .expect("a sign-in link in the mail");
    phone.goto(&signin).await.unwrap();
    button(phone, "Sign in").await;
    wait_for_path(phone, "/mfa").await;
    assert_eq!(text(phone, "h1").await, "Confirm it is you");
    assert!(
        phone.find(Locator::Id("code")).await.is_err(),
        "no code form where only a passkey passes"
    );
    shots.save(phone, PHONE_WIDTH, 6, "second-step").await;
    button(phone, "Use a passkey").await;
    wait_for_path(phone, "/apps").await;
    let gs = session_of(app, phone).await;
    assert_eq!(gs.session.origin, "signin_link");
    assert_eq!(gs.session.mfa_method.as_deref(), Some("passkey"));
    assert_eq!(
        guestbridge::services::oidc::amr(&gs),
        ["email", "hwk", "mfa"]
    );

    // 6. On a laptop, another authenticator holds a credential that claims to be Ann's (her
    // user handle) but was never enrolled: refused, no session.
    add_authenticator(driver, laptop).await;
    laptop.goto(&format!("{public}/signin")).await.unwrap();
    shots.save(laptop, LAPTOP_WIDTH, 7, "signin").await;
    let handle = guestbridge::services::guest_passkeys::user_handle(id);
    let made = laptop
        .execute_async(
            "const [handle, done] = arguments;
             navigator.credentials.create({publicKey: {
                 rp: {id: 'localhost', name: 'forger'},
                 user: {id: Uint8Array.from(handle), name: 'ann@acme.example', displayName: 'Ann'},
                 challenge: crypto.getRandomValues(new Uint8Array(32)),
                 pubKeyCredParams: [{type: 'public-key', alg: -7}],
                 authenticatorSelection: {residentKey: 'required', userVerification: 'required'},
             }}).then(() => done('ok'), (e) => done(String(e)));",
            vec![json!(handle.as_bytes().to_vec())],
        )
        .await
        .expect("create the forged credential");
    assert_eq!(made, json!("ok"));
    button(laptop, "Sign in with a passkey").await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status = text(laptop, "#passkey-status").await;
        if status.contains("not accepted") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "status: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(path(laptop).await, "/signin");
    assert!(laptop.get_named_cookie("gb_session").await.is_err());
    shots.save(laptop, LAPTOP_WIDTH, 8, "refused").await;

    // 7. An administrator's MFA reset removes the passkey and ends the session (audited).
    let token = guestbridge::services::partners::issue_admin_token(&app.deps, &test_actor())
        .await
        .unwrap();
    let res: Value = app
        .client
        .post(format!("{}/api/v1/guests/{id}/mfa/reset", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["mfa_reset"]["passkeys_removed"], 1, "{res}");
    assert_eq!(count(app, "SELECT COUNT(*) FROM guest_passkeys").await, 0);
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'guest.mfa_reset' AND target_id = $1",
    )
    .bind(id)
    .fetch_one(app.deps.db.pool())
    .await
    .unwrap();
    assert!(detail.contains("\"passkeys_removed\":1"), "{detail}");
    phone.goto(&format!("{public}/apps")).await.unwrap();
    assert_eq!(path(phone).await, "/signin");
    // The passkey no longer signs in.
    button(phone, "Sign in with a passkey").await;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let status = text(phone, "#passkey-status").await;
        if status.contains("not accepted") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "status: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shots.save(phone, PHONE_WIDTH, 9, "after-reset").await;
}
