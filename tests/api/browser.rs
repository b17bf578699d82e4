//! The guest's journey in a real browser: headless Chromium on a phone-sized window, driven
//! over WebDriver (Debian's `chromium` and `chromium-driver`). Invitation mail from a real
//! SMTP server, consent, TOTP enrolment (the test computes the code from the key on the
//! page), access panel, app launch with the JWT verified against the JWKS, sign-out. Each page
//! is checked for horizontal scrolling and labelled inputs, and saved as a screenshot under
//! `target/screenshots/`. Then back by a sign-in link: its page, its button, the code prompt.
//!
//! Built without Chromium the test is reported as ignored, unless GUESTBRIDGE_REQUIRE_BROWSER=1
//! (CI), where it runs and fails.

use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_with, Backend, TestApp};
use crate::smtp::TestSmtp;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// A phone's CSS width.
const PHONE_WIDTH: u64 = 390;
const WAIT: Duration = Duration::from_secs(15);

const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = "Shared health record"
launch_url = "https://ehr.example/launch?site=main"
roles = ["reader"]

[[partner]]
slug = "acme"
mfa = true

[[rule]]
id = "everyone"
grants = [{ app = "ehr-viewer", role = "reader" }]
sponsor = "dr.grey@hospital.example"
"#;

// Not `both_backends!`: a missing browser is reported as ignored (build.rs looks for it),
// on top of the PostgreSQL variant's own condition.
mod invitation_consent_totp_panel_and_launch_in_chromium {
    use crate::helpers::{self, Backend};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(gb_browser),
        ignore = "chromium or chromium-driver was missing when the tests were built"
    )]
    async fn sqlite() {
        super::invitation_consent_totp_panel_and_launch_in_chromium(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(all(gb_browser, gb_postgres)),
        ignore = "needs chromium and GUESTBRIDGE_TEST_POSTGRES_URL when the tests are built"
    )]
    async fn postgres() {
        helpers::require_postgres();
        super::invitation_consent_totp_panel_and_launch_in_chromium(Backend::Postgres).await
    }
}

async fn invitation_consent_totp_panel_and_launch_in_chromium(backend: Backend) {
    require_browser();
    let smtp = TestSmtp::start();
    let app = spawn_with(
        backend,
        &[("rules.toml", RULES)],
        &[
            ("GUESTBRIDGE_SMTP_URL", smtp.url.as_str()),
            ("GUESTBRIDGE_MAIL_RETRY_BASE_MS", "200"),
        ],
    )
    .await;
    let (_, acme) = app.partner("acme").await;
    acme.create_user(&json!({
        "userName": "ann@acme.example",
        "displayName": "Ann Lee",
        "emails": [{"value": "ann@acme.example", "primary": true}],
    }))
    .await;
    let mails = smtp.wait_for(1, WAIT).await;
    let link = mails[0]
        .find_link(&format!("{}/invite/", app.address))
        .expect("an invitation link in the mail");

    let dir = tempfile::tempdir().expect("tempdir");
    let driver = ChromeDriver::start(dir.path()).await;
    let browser = driver.open_browser(&dir.path().join("profile")).await;
    let shots = Screenshots::new(backend);

    let outcome = AssertUnwindSafe(journey(&browser, &app, &smtp, &link, &shots))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        shots.save_failure(&browser).await;
    }
    let closed = browser.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    closed.expect("close the browser session");
}

async fn journey(b: &Client, app: &TestApp, smtp: &TestSmtp, link: &str, shots: &Screenshots) {
    // 1. The invitation.
    b.goto(link).await.expect("open the invitation link");
    let heading = text(b, "h1").await;
    assert!(heading.ends_with("invites you"), "{heading}");
    let main = text(b, "main").await;
    assert!(
        main.contains("EHR Viewer") && main.contains("Ann Lee"),
        "{main}"
    );
    page_fits_a_phone(b, "invitation").await;
    shots.save(b, 1, "invitation").await;

    // 2. Consent, then the MFA set-up page (acme requires MFA).
    button(b, "Accept and continue").await;
    let label = b
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//label[normalize-space()='6-digit code']"))
        .await
        .expect("the MFA set-up page after consenting");
    assert_eq!(path(b).await, "/mfa/setup");
    b.find(Locator::Css(".qr svg"))
        .await
        .expect("a server-rendered QR code");
    page_fits_a_phone(b, "MFA set-up").await;
    shots.save(b, 2, "mfa-setup").await;

    // The key shown for typing by hand, as an authenticator app would use it.
    let key = text(b, "main code").await;
    let now = chrono::Utc::now().timestamp() as u64;
    let code = guestbridge::auth::totp::code_at(&base32_decode(&key), now);
    let input_id = label
        .attr("for")
        .await
        .expect("label attribute")
        .expect("the code label names its input");
    b.find(Locator::Id(&input_id))
        .await
        .expect("the labelled code input")
        .send_keys(&code)
        .await
        .expect("type the code");
    button(b, "Verify").await;

    // 3. The access panel.
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//h1[normalize-space()='Your applications']",
        ))
        .await
        .expect("the access panel after a right code");
    assert_eq!(path(b).await, "/apps");
    assert_eq!(text(b, ".card h2").await, "EHR Viewer");
    page_fits_a_phone(b, "access panel").await;
    shots.save(b, 3, "access-panel").await;

    // 4. Launch. The launch answers with a redirect to https://ehr.example/..., which does not
    // resolve here: fetch the link with the browser's session cookie instead of following it.
    let href = b
        .find(Locator::LinkText("Open EHR Viewer"))
        .await
        .expect("the launch link")
        .prop("href")
        .await
        .expect("href property")
        .expect("the launch link has an href");
    assert_eq!(href, format!("{}/apps/ehr-viewer/launch", app.address));
    let session = b
        .get_named_cookie("gb_session")
        .await
        .expect("the session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(
        format!("{:?}", session.same_site()),
        "Some(Lax)",
        "{session:?}"
    );
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let launch = http
        .get(&href)
        .header("cookie", format!("gb_session={}", session.value()))
        .send()
        .await
        .expect("launch request");
    assert_eq!(launch.status(), StatusCode::SEE_OTHER);
    let location = launch
        .headers()
        .get("location")
        .expect("launch redirects")
        .to_str()
        .unwrap();
    let target = url::Url::parse(location).expect("an absolute launch URL");
    assert_eq!(target.host_str(), Some("ehr.example"));
    assert_eq!(target.path(), "/launch");
    assert!(target
        .query_pairs()
        .any(|(k, v)| k == "site" && v == "main"));
    let token = target
        .query_pairs()
        .find(|(k, _)| k == "token")
        .expect("a token in the launch URL")
        .1
        .into_owned();
    let jwks: Value = http
        .get(format!("{}/.well-known/jwks.json", app.address))
        .send()
        .await
        .expect("JWKS request")
        .json()
        .await
        .expect("JWKS JSON");
    let claims = guestbridge::auth::jwt::verify_launch(
        &token,
        &jwks,
        &app.address,
        "ehr-viewer",
        chrono::Utc::now().timestamp(),
    )
    .expect("the launch token verifies against the JWKS");
    assert_eq!(claims.aud, "ehr-viewer");
    assert_eq!(claims.email.as_deref(), Some("ann@acme.example"));
    assert_eq!(claims.name.as_deref(), Some("Ann Lee"));
    assert_eq!(claims.roles, vec!["reader".to_string()]);
    let guest_id: String = sqlx::query_scalar("SELECT id FROM guests")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert_eq!(claims.sub, guest_id);

    // 5. Sign out.
    button(b, "Sign out").await;
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//h1[normalize-space()='Signed out']"))
        .await
        .expect("the signed-out page");
    assert!(
        b.get_named_cookie("gb_session").await.is_err(),
        "the session cookie is removed"
    );
    page_fits_a_phone(b, "signed out").await;
    shots.save(b, 4, "signed-out").await;

    // 6. Back by a sign-in link: its page signs in only when its button is pressed, and the
    // second factor is the authenticator app, never a code to the same mailbox.
    b.goto(&format!("{}/signin", app.address))
        .await
        .expect("open the sign-in page");
    b.find(Locator::Id("email"))
        .await
        .expect("the email input")
        .send_keys("ann@acme.example")
        .await
        .expect("type the address");
    button(b, "Email me a sign-in link").await;
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//h1[normalize-space()='Check your email']"))
        .await
        .expect("the check-your-email page");
    let mails = smtp.wait_for(2, WAIT).await;
    let signin = mails[1]
        .find_link(&format!("{}/signin/", app.address))
        .expect("a sign-in link in the mail");
    b.goto(&signin).await.expect("open the sign-in link");
    assert!(
        b.get_named_cookie("gb_session").await.is_err(),
        "opening the link does not sign in"
    );
    page_fits_a_phone(b, "sign-in link").await;
    shots.save(b, 5, "signin-link").await;
    button(b, "Sign in").await;
    let label = b
        .wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//label[normalize-space()='6-digit code']"))
        .await
        .expect("the code prompt after signing in");
    assert_eq!(path(b).await, "/mfa");
    assert!(
        b.find(Locator::XPath(
            "//button[normalize-space()='Email me a code instead']"
        ))
        .await
        .is_err(),
        "no e-mailed code after an e-mailed link"
    );
    page_fits_a_phone(b, "code prompt").await;
    shots.save(b, 6, "mfa-prompt").await;
    // The next step's code: the enrolment used the current one (one step either side counts).
    let now = chrono::Utc::now().timestamp() as u64 + 30;
    let code = guestbridge::auth::totp::code_at(&base32_decode(&key), now);
    let input_id = label
        .attr("for")
        .await
        .expect("label attribute")
        .expect("the code label names its input");
    b.find(Locator::Id(&input_id))
        .await
        .expect("the labelled code input")
        .send_keys(&code)
        .await
        .expect("type the code");
    button(b, "Verify").await;
    b.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath(
            "//h1[normalize-space()='Your applications']",
        ))
        .await
        .expect("the access panel after the code");
    assert_eq!(path(b).await, "/apps");
}

/// Built with the browser present (or required), the test must find it: a failure, never a
/// silent pass.
pub(crate) fn require_browser() {
    let missing: Vec<&str> = [CHROMEDRIVER, CHROMIUM]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "{} is missing: apt-get install chromium chromium-driver",
        missing.join(" and ")
    );
}

/// A chromedriver process on a free loopback port, in its own process group. Dropping it
/// shuts it down and kills whatever it started, even when the test panicked.
pub(crate) struct ChromeDriver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl ChromeDriver {
    pub(crate) async fn start(dir: &Path) -> ChromeDriver {
        let log = dir.join("chromedriver.log");
        let mut last_error = String::new();
        // A port found free can be taken before chromedriver binds it: try a few.
        for _ in 0..3 {
            let port = free_port();
            let child = spawn_process_group(
                Command::new(CHROMEDRIVER)
                    .arg(format!("--port={port}"))
                    .arg(format!("--log-path={}", log.display()))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null()),
            )
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
            let mut driver = ChromeDriver {
                child,
                port,
                log: log.clone(),
            };
            match driver.wait_ready().await {
                Ok(()) => return driver,
                Err(e) => last_error = e,
            }
        }
        panic!("chromedriver did not start: {last_error}");
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls GET /status until chromedriver says it is ready.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}; {}", self.log_text()));
            }
            if let Ok(res) = http.get(format!("{}/status", self.url())).send().await {
                if let Ok(body) = res.json::<Value>().await {
                    if body["value"]["ready"] == true {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!("not ready within {WAIT:?}; {}", self.log_text()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "chromedriver log {}:\n{}",
            self.log.display(),
            tail.join("\n")
        )
    }

    /// A new Chromium session with a phone-sized window and a fresh profile.
    async fn open_browser(&self, profile: &Path) -> Client {
        std::fs::create_dir_all(profile).expect("profile dir");
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--window-size={PHONE_WIDTH},844"),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
                // Desktop Chromium keeps windows at least 500 px wide and ignores the viewport
                // meta tag; a phone's metrics give the real 390 px layout viewport.
                "mobileEmulation": {
                    "deviceMetrics": {"width": PHONE_WIDTH, "height": 844, "pixelRatio": 2.0, "mobile": true, "touch": true},
                },
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url())
            .await
            .unwrap_or_else(|e| panic!("cannot start Chromium: {e}; {}", self.log_text()))
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // Ask politely first (chromedriver then quits its browsers), then make sure: kill it
        // and anything left in its process group (Chromium and its helpers).
        let _ = shutdown_request(self.port);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        kill_process_group(self.child.id());
    }
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Spawns the command as the leader of a new process group, so that everything it starts
/// can be killed together.
fn spawn_process_group(command: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    command.process_group(0).spawn()
}

/// chromedriver's GET /shutdown, with short timeouts (this runs in Drop, outside async).
fn shutdown_request(port: u16) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    stream.write_all(
        format!("GET /shutdown HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map(|_| ())
}

/// SIGKILL to every process left in the group led by `pgid` (no error if there is none).
fn kill_process_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The text of the first element matching `css`.
pub(crate) async fn text(b: &Client, css: &str) -> String {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("text of {css}: {e}"))
}

/// Clicks the button labelled `label`.
pub(crate) async fn button(b: &Client, label: &str) {
    b.find(Locator::XPath(&format!(
        "//button[normalize-space()='{label}']"
    )))
    .await
    .unwrap_or_else(|e| panic!("no button {label:?} on the page: {e}"))
    .click()
    .await
    .unwrap_or_else(|e| panic!("click {label:?}: {e}"));
}

pub(crate) async fn path(b: &Client) -> String {
    b.current_url()
        .await
        .expect("current URL")
        .path()
        .to_string()
}

/// The page is laid out for the phone's width (the viewport meta works, nothing scrolls
/// sideways) and every visible input has a label.
async fn page_fits_a_phone(b: &Client, page: &str) {
    let layout = b
        .execute(
            "return {
                inner: window.innerWidth,
                scroll: document.documentElement.scrollWidth,
                unlabelled: [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                    .filter(e => e.labels.length === 0).map(e => e.outerHTML),
            };",
            vec![],
        )
        .await
        .expect("measure the page");
    let inner = layout["inner"].as_u64().expect("innerWidth");
    let scroll = layout["scroll"].as_u64().expect("scrollWidth");
    assert_eq!(
        inner, PHONE_WIDTH,
        "{page}: the viewport is the phone's width"
    );
    assert!(
        scroll <= inner,
        "{page}: scrolls sideways ({scroll} px of content in {inner} px)"
    );
    assert_eq!(
        layout["unlabelled"],
        json!([]),
        "{page}: inputs without a label"
    );
}

/// Screenshots as target/screenshots/<backend>-<n>-<page>.png.
struct Screenshots {
    dir: PathBuf,
    prefix: &'static str,
}

impl Screenshots {
    fn new(backend: Backend) -> Screenshots {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let prefix = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        std::fs::remove_file(dir.join(format!("{prefix}-failure.png"))).ok();
        Screenshots { dir, prefix }
    }

    async fn save(&self, b: &Client, n: u32, page: &str) {
        let png = b.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let file = self.dir.join(format!("{}-{n}-{page}.png", self.prefix));
        std::fs::write(&file, png).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    }

    /// The page as it was when the test failed, if the browser still answers.
    async fn save_failure(&self, b: &Client) {
        if let Ok(png) = b.screenshot().await {
            let file = self.dir.join(format!("{}-failure.png", self.prefix));
            if std::fs::write(&file, png).is_ok() {
                eprintln!("screenshot of the failure: {}", file.display());
            }
        }
    }
}

/// RFC 4648 base32 (the key as shown for typing by hand; spaces and padding ignored).
fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s
        .trim()
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
    {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .unwrap_or_else(|| panic!("not base32: {s:?}")) as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}
