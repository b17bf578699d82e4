//! A person's first sign-in in a real browser (headless Chromium over WebDriver): the link
//! `admin create-login` prints, the password form, the sign-in form, `/admin` naming them and
//! their role; then the admin's work: invite a guest by hand, import a roster (dry run, Apply
//! with its progress bar, the result), find a guest, open the explanation, suspend them and
//! see the timeline, manage partners and their tokens, change the rules (refused with file and
//! line, previewed, reloaded); sign-out. Each console page is checked at 1280 and 768 px for sideways
//! scrolling and unlabelled inputs, and saved under `target/screenshots/` (`admin-login.png`,
//! `admin-home.png`, and `-768` variants).

use std::panic::AssertUnwindSafe;
use std::path::Path;

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{json, Value};

use crate::admin_login::{create_login_cli, PASSWORD};
use crate::browser::{require_browser, ChromeDriver};
use crate::console_pages::{guest_of, APPS, RULES};
use crate::helpers::{spawn_with_rules, Backend, TestApp};

mod first_login_from_the_setup_link_to_the_console_in_chromium {
    use crate::helpers::{self, Backend};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(gb_browser),
        ignore = "chromium or chromium-driver was missing when the tests were built"
    )]
    async fn sqlite() {
        super::first_login(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(all(gb_browser, gb_postgres)),
        ignore = "needs chromium and GUESTBRIDGE_TEST_POSTGRES_URL when the tests are built"
    )]
    async fn postgres() {
        helpers::require_postgres();
        super::first_login(Backend::Postgres).await
    }
}

const WIDE: u32 = 1280;
const TABLET: u32 = 768;

async fn open(driver: &ChromeDriver, profile: &Path) -> Client {
    std::fs::create_dir_all(profile).expect("profile dir");
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", format!("--window-size={WIDE},900"),
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| panic!("cannot start Chromium: {e}; {}", driver.log_text()))
}

async fn first_login(backend: Backend) {
    require_browser();
    let app = spawn_with_rules(backend, &[("apps.toml", APPS), ("rules.toml", RULES)]).await;
    let link = create_login_cli(&app, "Bea Browser", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let driver = ChromeDriver::start(dir.path()).await;
    let b = open(&driver, &dir.path().join("profile")).await;
    let prefix = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => "postgres-",
    };
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).expect("target/screenshots");
    let outcome = AssertUnwindSafe(journey(&b, &app, &link, &shots, prefix))
        .catch_unwind()
        .await;
    if outcome.is_err() {
        if let Ok(png) = b.screenshot().await {
            let _ = std::fs::write(shots.join(format!("{prefix}admin-failure.png")), png);
        }
    }
    let closed = b.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    closed.expect("close the browser");
}

async fn fill(b: &Client, css: &str, value: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .send_keys(value)
        .await
        .unwrap_or_else(|e| panic!("type into {css}: {e}"));
}

async fn click(b: &Client, xpath: &str) {
    b.find(Locator::XPath(xpath))
        .await
        .unwrap_or_else(|e| panic!("no {xpath}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {xpath}: {e}"));
}

async fn path(b: &Client) -> String {
    b.current_url().await.expect("url").path().to_string()
}

/// The page's text once it contains `needle`: a click that submits a form or follows a link
/// navigates after it returns, so the old page (or a stale body element) may answer first.
async fn wait_text(b: &Client, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut last = String::new();
    loop {
        if let Ok(body) = b.find(Locator::Css("body")).await {
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

/// Wait until the browser is at `want` (see [`wait_text`]).
async fn wait_path(b: &Client, want: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let at = path(b).await;
        if at == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "at {at}, not {want}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// At each width: nothing scrolls sideways, every input is labelled; a screenshot.
async fn check_and_shoot(b: &Client, shots: &Path, prefix: &str, page: &str) {
    for width in [WIDE, TABLET] {
        b.set_window_size(width, 900).await.expect("resize");
        let layout = b
            .execute(
                "return {inner: window.innerWidth, scroll: document.documentElement.scrollWidth,
                  unlabelled: [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                    .filter(e => e.labels.length === 0).map(e => e.outerHTML),
                  skip: !!document.querySelector('a.skip[href=\"#main\"]')};",
                vec![],
            )
            .await
            .expect("measure");
        let inner = layout["inner"].as_u64().unwrap();
        let scroll = layout["scroll"].as_u64().unwrap();
        assert!(
            inner <= u64::from(width) && inner + 40 >= u64::from(width),
            "{page} at {width}: inner {inner}"
        );
        assert!(
            scroll <= inner,
            "{page} at {width}: scrolls sideways ({scroll} in {inner})"
        );
        assert_eq!(layout["unlabelled"], json!([]), "{page}: unlabelled inputs");
        assert_eq!(layout["skip"], true, "{page}: a skip link");
        let png = b.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"));
        let name = if width == WIDE {
            format!("{prefix}{page}.png")
        } else {
            format!("{prefix}{page}-{width}.png")
        };
        std::fs::write(shots.join(name), png).expect("write screenshot");
    }
    b.set_window_size(WIDE, 900).await.expect("resize");
}

async fn journey(b: &Client, app: &TestApp, link: &str, shots: &Path, prefix: &str) {
    // The first visit: what this server is, and the way to the console.
    b.goto(&format!("{}/", app.address)).await.expect("open /");
    wait_text(b, "This is a Guestbridge server").await;

    b.goto(link).await.expect("open the setup link");
    wait_text(b, "Bea Browser").await;
    check_and_shoot(b, shots, prefix, "admin-setup").await;
    fill(b, "#password", PASSWORD).await;
    fill(b, "#confirm", PASSWORD).await;
    click(b, "//button[normalize-space()='Set password']").await;
    wait_text(b, "Your password is set").await;
    click(b, "//a[normalize-space()='Sign in']").await;
    wait_path(b, "/admin/login").await;
    check_and_shoot(b, shots, prefix, "admin-login").await;

    fill(b, "#name", "Bea Browser").await;
    fill(b, "#password", PASSWORD).await;
    click(b, "//button[normalize-space()='Sign in']").await;
    wait_path(b, "/admin").await;
    wait_text(b, "Signed in as Bea Browser (admin)").await;
    for nav in [
        "Dashboard",
        "Guests",
        "Imports",
        "Partners",
        "Mappings",
        "Jobs",
        "Sync",
        "Audit",
    ] {
        b.find(Locator::XPath(&format!(
            "//nav//a[normalize-space()='{nav}']"
        )))
        .await
        .unwrap_or_else(|e| panic!("no {nav} in the navigation: {e}"));
    }
    check_and_shoot(b, shots, prefix, "admin-home").await;

    let (_, acme) = app.partner("acme").await;
    invite_by_hand(b, app, shots, prefix).await;
    import_a_roster(b, app, shots, prefix).await;

    // The console over a real guest: dashboard, the table's search, the guest page, and an
    // action button that posts to the JSON API with the session's CSRF token.
    let user = acme
        .create_user(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "zoe.browser@acme.example",
            "name": {"givenName": "Zoe", "familyName": "Browser"},
            "emails": [{"value": "zoe.browser@acme.example", "primary": true}],
        }))
        .await;
    let guest = guest_of(app, &user).await;
    click(b, "//nav//a[normalize-space()='Dashboard']").await;
    wait_path(b, "/admin/dashboard").await;
    b.find(Locator::Css("svg")).await.expect("the expiry chart");
    check_and_shoot(b, shots, prefix, "admin-dashboard").await;
    click(b, "//nav//a[normalize-space()='Guests']").await;
    fill(b, "input[name=q]", "zoe.b").await;
    click(b, "//form//button[normalize-space()='Find']").await;
    wait_text(b, "zoe.browser@acme.example").await;
    check_and_shoot(b, shots, prefix, "admin-guests").await;
    click(b, "//a[contains(., 'zoe.browser@acme.example')]").await;
    wait_path(b, &format!("/admin/guests/{guest}")).await;
    check_and_shoot(b, shots, prefix, "admin-guest").await;
    // The explanation: every rule in force, and whether it matched this person.
    click(b, "//a[@id='why-link']").await;
    let rules = b
        .execute(
            "return [...document.querySelectorAll('#rules tbody tr')].map(r => [r.dataset.rule, r.dataset.matched]);",
            vec![],
        )
        .await
        .expect("read the rules");
    assert_eq!(
        rules,
        json!([
            ["cardiology-nurses", "false"],
            ["everyone-schedules", "true"]
        ]),
        "the explanation"
    );
    assert!(b
        .current_url()
        .await
        .expect("url")
        .as_str()
        .ends_with("#why"));
    click(b, "//button[normalize-space()='Suspend']").await;
    let mut state = String::new();
    for _ in 0..50 {
        if let Ok(el) = b.find(Locator::Css("#state")).await {
            state = el
                .attr("data-state")
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            if state.starts_with("suspended") {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        state, "suspended:admin",
        "the Suspend button's call took effect"
    );
    let stored: String = sqlx::query_scalar("SELECT state FROM guests WHERE id = $1")
        .bind(&guest)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert_eq!(stored, "suspended:admin");
    // The timeline shows the administrator's suspension once the page has reloaded.
    wait_text(b, "suspended:admin").await;
    for (nav, at, shot) in [
        ("Jobs", "/admin/jobs", "admin-jobs"),
        ("Sync", "/admin/sync", "admin-sync"),
        ("Audit", "/admin/audit", "admin-audit"),
    ] {
        click(b, &format!("//nav//a[normalize-space()='{nav}']")).await;
        wait_path(b, at).await;
        check_and_shoot(b, shots, prefix, shot).await;
    }
    manage_partners(b, app, shots, prefix).await;
    change_the_rules(b, shots, prefix).await;

    click(b, "//button[normalize-space()='Sign out']").await;
    wait_path(b, "/admin/login").await;
    b.goto(&format!("{}/admin", app.address))
        .await
        .expect("open /admin");
    wait_path(b, "/admin/login").await;
}

/// Read a script's answer in the page.
async fn eval(b: &Client, script: &str) -> Value {
    b.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Wait until a script answers true (see [`wait_text`]).
async fn wait_until(b: &Client, script: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if eval(b, script).await == json!(true) {
            return;
        }
        let status = eval(b, "return document.getElementById('action-status')?.textContent || document.body.innerText.slice(0, 500);").await;
        assert!(
            std::time::Instant::now() < deadline,
            "{script} never held; the page says {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn select(b: &Client, css: &str, value: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("choose {value} in {css}: {e}"));
}

/// The invite form: a field error shown beside its field, then a guest invited and their
/// page opened, with the invitation that was mailed.
async fn invite_by_hand(b: &Client, app: &TestApp, shots: &Path, prefix: &str) {
    click(b, "//nav//a[normalize-space()='Guests']").await;
    wait_path(b, "/admin/guests").await;
    click(b, "//a[normalize-space()='Invite a guest by hand']").await;
    wait_path(b, "/admin/guests/new").await;
    check_and_shoot(b, shots, prefix, "admin-guest-new").await;
    fill(b, "#givenName", "Ivy").await;
    fill(b, "#familyName", "Hand").await;
    fill(b, "#email", "ivy.hand-at-acme").await;
    select(b, "#partner", "acme").await;
    click(
        b,
        "//form[@id='invite']//button[normalize-space()='Invite']",
    )
    .await;
    wait_until(
        b,
        "return document.getElementById('err-email').textContent.length > 0 && document.getElementById('email').getAttribute('aria-invalid') === 'true';",
    )
    .await;
    b.find(Locator::Css("#email"))
        .await
        .expect("#email")
        .clear()
        .await
        .expect("clear #email");
    fill(b, "#email", "ivy.hand@acme.example").await;
    b.find(Locator::Css("input[name=apps][value=scheduling]"))
        .await
        .expect("the scheduling box")
        .click()
        .await
        .expect("tick scheduling");
    fill(b, "#sponsor", "dr.grey@hospital.example").await;
    click(
        b,
        "//form[@id='invite']//button[normalize-space()='Invite']",
    )
    .await;
    wait_text(b, "ivy.hand@acme.example").await;
    let id: String = sqlx::query_scalar("SELECT id FROM guests WHERE user_name = $1")
        .bind("ivy.hand@acme.example")
        .fetch_one(app.deps.db.pool())
        .await
        .expect("the invited guest");
    wait_path(b, &format!("/admin/guests/{id}")).await;
    wait_text(b, "Ivy Hand").await;
    let grants = eval(b, "return [...document.querySelectorAll('#grants tbody tr[data-app]')].map(r => r.dataset.app);").await;
    assert_eq!(grants, json!(["scheduling"]), "only the app ticked");
}

const ROSTER: &str = "userName,givenName,familyName,email,title,department\n\
ann.roster@acme.example,Ann,Roster,ann.roster@acme.example,Staff Nurse,Cardiology\n\
bob.roster@acme.example,Bob,Roster,bob.roster@acme.example,Porter,Facilities\n\
cara.roster@acme.example,Cara,Roster,not-an-email,Nurse,Cardiology\n";

/// The import page: a dry run's diff with the row in error by line, nothing written; then
/// Apply, its progress bar, the result and the error report's link.
async fn import_a_roster(b: &Client, app: &TestApp, shots: &Path, prefix: &str) {
    // The API takes plain file names only: no leading dot, as tempfile's default has.
    let file = tempfile::Builder::new()
        .prefix("roster-")
        .suffix(".csv")
        .tempfile()
        .expect("roster file");
    std::fs::write(file.path(), ROSTER).expect("write the roster");
    click(b, "//nav//a[normalize-space()='Imports']").await;
    wait_path(b, "/admin/imports").await;
    check_and_shoot(b, shots, prefix, "admin-imports").await;
    select(b, "#import-partner", "acme").await;
    fill(b, "#import-file", &file.path().display().to_string()).await;
    click(b, "//button[normalize-space()='Check the file']").await;
    wait_until(
        b,
        "return !document.getElementById('apply-box').classList.contains('hidden');",
    )
    .await;
    let counts = eval(
        b,
        "return Object.fromEntries([...document.querySelectorAll('#dry-run [data-count]')].map(e => [e.dataset.count, Number(e.textContent)]));",
    )
    .await;
    assert_eq!(
        counts,
        json!({"created": 2, "updated": 0, "deactivated": 0, "unchanged": 0, "errors": 1}),
        "the dry run's diff"
    );
    let lines = eval(
        b,
        "return [...document.querySelectorAll('#dry-run tr[data-line]')].map(r => r.dataset.line);",
    )
    .await;
    assert_eq!(lines, json!(["4"]), "the row in error, by line");
    wait_text(b, "dry run — nothing was changed").await;
    let people: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM scim_users WHERE user_name LIKE '%.roster@%'")
            .fetch_one(app.deps.db.pool())
            .await
            .unwrap();
    assert_eq!(people, 0, "a dry run writes nothing");
    check_and_shoot(b, shots, prefix, "admin-imports-dry-run").await;

    click(b, "//button[@id='apply-button']").await;
    wait_until(b, "return document.querySelector('#apply-result [data-outcome]')?.dataset.outcome === 'applied';").await;
    let bar = eval(
        b,
        "const p = document.getElementById('import-progress'); return [p.value, p.max];",
    )
    .await;
    assert_eq!(bar, json!([3, 3]), "the progress bar ends full");
    wait_text(b, "The import is applied.").await;
    let report = eval(
        b,
        "return document.querySelector('#apply-result a.error-report').getAttribute('href');",
    )
    .await;
    assert!(
        report.as_str().is_some_and(|h| h.ends_with("/errors.csv")),
        "{report}"
    );
    let people: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM scim_users WHERE user_name LIKE '%.roster@%'")
            .fetch_one(app.deps.db.pool())
            .await
            .unwrap();
    assert_eq!(people, 2, "the applied import");
    check_and_shoot(b, shots, prefix, "admin-imports-applied").await;
    // The import's own page, as the past imports' table links it.
    let id = eval(
        b,
        "return document.querySelector('#apply-result [data-import]').dataset.import;",
    )
    .await;
    let id = id.as_str().expect("the import's id").to_string();
    click(b, "//nav//a[normalize-space()='Imports']").await;
    click(b, &format!("//tr[@data-import='{id}']//a")).await;
    wait_path(b, &format!("/admin/imports/{id}")).await;
    wait_text(b, "rows in error").await;
    check_and_shoot(b, shots, prefix, "admin-import").await;
}

/// Click a button whose form asks first, and say yes.
async fn click_and_confirm(b: &Client, xpath: &str) {
    click(b, xpath).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while b.accept_alert().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "no confirmation for {xpath}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The partners page: add a partner, disable it; one partner's page: issue a token (its
/// secret shown once, and working against SCIM), then revoke it.
async fn manage_partners(b: &Client, app: &TestApp, shots: &Path, prefix: &str) {
    click(b, "//nav//a[normalize-space()='Partners']").await;
    wait_path(b, "/admin/partners").await;
    fill(b, "#partner-name", "Globex Corporation").await;
    fill(b, "#partner-slug", "globex").await;
    click(b, "//button[normalize-space()='Add partner']").await;
    wait_until(
        b,
        "return !!document.querySelector('tr[data-partner=globex][data-state=enabled]');",
    )
    .await;
    check_and_shoot(b, shots, prefix, "admin-partners").await;
    click_and_confirm(
        b,
        "//tr[@data-partner='globex']//button[normalize-space()='Disable']",
    )
    .await;
    wait_until(
        b,
        "return !!document.querySelector('tr[data-partner=globex][data-state=disabled]');",
    )
    .await;

    click(b, "//a[normalize-space()='Test Partner']").await;
    wait_path(b, "/admin/partners/acme").await;
    fill(b, "#token-name", "HR feed").await;
    fill(b, "#token-days", "30").await;
    click(b, "//button[normalize-space()='Issue token']").await;
    wait_until(
        b,
        "return !document.getElementById('new-token').classList.contains('hidden');",
    )
    .await;
    let secret = eval(
        b,
        "return document.querySelector('#new-token .secret').textContent;",
    )
    .await;
    let secret = secret.as_str().expect("the secret").to_string();
    crate::log_scan::register_secret(&secret);
    let scim = app
        .client
        .get(format!("{}/scim/v2/Users", app.address))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("SCIM with the new token");
    assert_eq!(
        scim.status(),
        reqwest::StatusCode::OK,
        "the issued token works"
    );
    check_and_shoot(b, shots, prefix, "admin-partner").await;
    click(b, "//a[normalize-space()='Done: show the list']").await;
    let row = "//tr[th[normalize-space()='HR feed']]";
    wait_until(b, "return [...document.querySelectorAll('#tokens th')].some(t => t.textContent === 'HR feed');").await;
    let text = eval(
        b,
        "return document.querySelector('#tokens tbody tr').innerText;",
    )
    .await;
    assert!(
        !text.as_str().unwrap_or("").contains(&secret),
        "the secret is shown once"
    );
    click_and_confirm(b, &format!("{row}//button[normalize-space()='Revoke']")).await;
    wait_until(b, "return [...document.querySelectorAll('#tokens tr[data-status=revoked] th')].some(t => t.textContent === 'HR feed');").await;
    let scim = app
        .client
        .get(format!("{}/scim/v2/Users", app.address))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("SCIM with the revoked token");
    assert_eq!(scim.status(), reqwest::StatusCode::UNAUTHORIZED, "revoked");
}

/// The mappings page: an invalid change is refused with its file and line; a valid one is
/// previewed person by person, then reloaded and in force.
async fn change_the_rules(b: &Client, shots: &Path, prefix: &str) {
    click(b, "//nav//a[normalize-space()='Mappings']").await;
    wait_path(b, "/admin/mappings").await;
    check_and_shoot(b, shots, prefix, "admin-mappings").await;
    let file = eval(b, "return document.getElementById('edit-file').value;").await;
    assert_eq!(file, json!("rules.toml"));
    let append = |rule: &str| {
        format!(
            "const t = document.getElementById('edit-content'); t.value = t.value + {}; return true;",
            json!(rule)
        )
    };
    eval(b, &append("\n[[rule]]\nid = \"porters-ehr\"\ncondition = 'title eq \"Porter\"'\ngrants = [{ app = \"no-such-app\", role = \"reader\" }]\n")).await;
    click(b, "//button[normalize-space()='Preview']").await;
    wait_text(b, "The changed rules are invalid").await;
    let at = eval(
        b,
        "return [...document.querySelectorAll('#problems li')].map(l => l.dataset.where);",
    )
    .await;
    let at = at.as_array().expect("problems").clone();
    assert!(
        at.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.starts_with("rules.toml:") && w != "rules.toml:0")),
        "the problem's file and line: {at:?}"
    );
    check_and_shoot(b, shots, prefix, "admin-mappings-invalid").await;
    eval(
        b,
        "const t = document.getElementById('edit-content'); t.value = t.value.replace('no-such-app', 'ehr-viewer'); return true;",
    )
    .await;
    click(b, "//button[normalize-space()='Preview']").await;
    wait_text(b, "What the changed rules would do").await;
    let changes = eval(b, "return [...document.querySelectorAll('#diff-people tr[data-user]')].map(r => [r.dataset.user, r.dataset.change]);").await;
    assert_eq!(
        changes,
        json!([["bob.roster@acme.example", "grants_changed"]]),
        "the preview, person by person"
    );
    check_and_shoot(b, shots, prefix, "admin-mappings-preview").await;
    click(b, "//button[normalize-space()='Reload with these rules']").await;
    wait_text(b, "Reloaded: the rules").await;
    b.find(Locator::Css("#rules tr[data-rule=porters-ehr]"))
        .await
        .expect("the new rule in force");
}
