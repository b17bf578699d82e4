//! The guest's journey over HTTP with a real SMTP server: invitation mail, consent, TOTP
//! enrolment, access panel, app launch verified against the JWKS; and every way a link or a
//! code can be wrong.

use std::time::Duration;

use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn_with, test_actor, Backend, Scim, TestApp};
use crate::smtp::TestSmtp;

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

[[partner]]
slug = "globex"

[[rule]]
id = "everyone"
grants = [{ app = "ehr-viewer", role = "reader" }]
sponsor = "dr.grey@hospital.example"
"#;

/// A minimal browser: keeps the session cookie, does not follow redirects.
pub(crate) struct Browser {
    base: String,
    client: reqwest::Client,
    pub cookies: Vec<(String, String)>,
}

pub(crate) struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser {
            base: app.address.clone(),
            client: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn take(&mut self, res: reqwest::Response) -> Page {
        for sc in res.headers().get_all("set-cookie") {
            let sc = sc.to_str().unwrap();
            let pair = sc.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.is_empty() && !sc.contains("Max-Age=0") {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
        Page {
            status: res.status(),
            location: res
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string()),
            headers: res.headers().clone(),
            body: res.text().await.unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let res = self
            .client
            .get(self.url(path))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.take(res).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let res = self
            .client
            .post(self.url(path))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.take(res).await
    }
}

/// The value of a hidden input in a page.
pub(crate) fn field(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {body}"))
        + marker.len();
    let end = body[start..].find('"').unwrap() + start;
    html_unescape(&body[start..end])
}

pub(crate) fn html_unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x3d;", "=")
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
}

/// A person of `partner` (created through SCIM) who accepted the invitation mailed to them
/// (the `n`th mail), sent on to `next`: the browser holds their session; gives their SCIM id.
pub(crate) async fn accepted_invitation(
    app: &TestApp,
    partner: &Scim,
    smtp: &TestSmtp,
    user_name: &str,
    n: usize,
    next: &str,
) -> (Browser, String) {
    let user_id = partner
        .create_user(&json!({
            "userName": user_name,
            "displayName": "Gus Guest",
            "emails": [{"value": user_name, "primary": true}],
        }))
        .await;
    let mails = smtp.wait_for(n, WAIT).await;
    let link = mails
        .iter()
        .filter(|m| m.to == vec![user_name.to_string()])
        .find_map(|m| m.find_link(&format!("{}/invite/", app.address)))
        .expect("an invitation link");
    let mut b = Browser::new(app);
    let invite = b.get(&link).await;
    assert_eq!(invite.status, StatusCode::OK, "{}", invite.body);
    let accepted = b
        .post(
            &link,
            &[
                ("csrf", &field(&invite.body, "csrf")),
                ("decision", "accept"),
                ("consent_version", &field(&invite.body, "consent_version")),
            ],
        )
        .await;
    assert_eq!(
        accepted.location.as_deref(),
        Some(next),
        "{}",
        accepted.body
    );
    (b, user_id)
}

async fn app_with_smtp(backend: Backend, smtp: &TestSmtp) -> TestApp {
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

both_backends!(
    invitation_consent_totp_panel_and_launch,
    declining_suspends_and_tells_the_sponsor,
    bad_links_are_refused,
    wrong_codes_are_rate_limited,
    signin_links_do_not_reveal_addresses,
    mail_survives_an_smtp_outage_and_is_sent_once,
    mail_queued_rendered_by_an_earlier_version_is_still_sent,
    mail_that_cannot_be_rendered_is_a_dead_letter_at_once,
    key_rotation_keeps_tokens_of_the_old_key_valid,
    a_rule_can_give_its_guests_their_own_invitation_text,
);

async fn a_rule_can_give_its_guests_their_own_invitation_text(backend: Backend) {
    let smtp = TestSmtp::start();
    let rules = format!(
        "{RULES}\n[[rule]]\nid = \"nurses\"\ncondition = 'title co \"Nurse\"'\ngrants = [{{ app = \"ehr-viewer\", role = \"reader\" }}]\ntemplate = \"clinician\"\n"
    );
    let app = spawn_with(
        backend,
        &[
            ("rules.toml", rules.as_str()),
            (
                "templates/invitation-clinician.en.subject.txt",
                "Welcome to the ward, {{ guest_name }}",
            ),
            (
                "templates/invitation-clinician.en.txt",
                "Your shifts start here: {{ link }}",
            ),
            (
                "templates/invitation-clinician.en.html",
                "<p>Your shifts start here: <a href=\"{{ link }}\">open</a></p>",
            ),
        ],
        &[("GUESTBRIDGE_SMTP_URL", smtp.url.as_str())],
    )
    .await;
    let (_, acme) = app.partner("globex").await;
    acme.create_user(&json!({
        "userName": "nina@globex.example", "displayName": "Nina Park", "title": "Staff Nurse",
        "emails": [{"value": "nina@globex.example"}]
    }))
    .await;
    acme.create_user(&json!({
        "userName": "pat@globex.example", "displayName": "Pat Ode", "title": "Porter",
        "emails": [{"value": "pat@globex.example"}]
    }))
    .await;
    let mails = smtp.wait_for(2, WAIT).await;
    let to = |addr: &str| {
        mails
            .iter()
            .find(|m| m.to.iter().any(|t| t == addr))
            .unwrap_or_else(|| panic!("no mail to {addr}"))
    };
    let nurse = to("nina@globex.example");
    assert_eq!(
        nurse.subject().as_deref(),
        Some("Welcome to the ward, Nina Park")
    );
    assert!(nurse
        .find_link("http://127.0.0.1")
        .is_some_and(|l| l.contains("/invite/")));
    let porter = to("pat@globex.example");
    let subject = porter.subject().unwrap_or_default();
    assert!(!subject.contains("ward"), "{subject}");
    assert!(porter
        .find_link("http://127.0.0.1")
        .is_some_and(|l| l.contains("/invite/")));
}

async fn invitation_link(smtp: &TestSmtp, n: usize) -> String {
    let mails = smtp.wait_for(n, WAIT).await;
    let mail = mails.last().unwrap();
    mail.find_link("http://127.0.0.1")
        .expect("a link in the mail")
}

async fn invitation_consent_totp_panel_and_launch(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(backend, &smtp).await;
    let (_, acme) = app.partner("acme").await;
    acme.create_user(&person("ann@acme.example")).await;
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].to, vec!["ann@acme.example".to_string()]);
    assert!(
        mails[0].text_body().unwrap().contains("EHR Viewer"),
        "{}",
        mails[0].text_body().unwrap()
    );
    let link = mails[0]
        .find_link(&format!("{}/invite/", app.address))
        .expect("invitation link");
    // The link carries 256 random bits.
    assert!(link.rsplit('/').next().unwrap().len() >= 43);

    let mut b = Browser::new(&app);
    let invite = b.get(&link).await;
    assert_eq!(invite.status, StatusCode::OK);
    assert!(
        invite.body.contains("EHR Viewer") && invite.body.contains("Ann Lee"),
        "{}",
        invite.body
    );
    assert_eq!(invite.headers["x-frame-options"], "DENY");
    assert!(invite.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(invite.headers["referrer-policy"], "no-referrer");

    // Without the CSRF token the form is refused.
    let forged = b
        .post(&link, &[("csrf", "nope"), ("decision", "accept")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let csrf = field(&invite.body, "csrf");
    let version = field(&invite.body, "consent_version");
    // Consent is recorded only for the text shown: an outdated page is refused, the link kept.
    let stale = b
        .post(
            &link,
            &[
                ("csrf", &csrf),
                ("decision", "accept"),
                ("consent_version", "2001-old"),
            ],
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    let accepted = b
        .post(
            &link,
            &[
                ("csrf", &csrf),
                ("decision", "accept"),
                ("consent_version", &version),
            ],
        )
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER);
    assert_eq!(
        accepted.location.as_deref(),
        Some("/mfa/setup"),
        "acme requires MFA"
    );
    let set_cookie_ok = b.cookies.iter().any(|(k, _)| k == "gb_session");
    assert!(set_cookie_ok);

    // The panel waits for MFA.
    assert_eq!(b.get("/apps").await.location.as_deref(), Some("/mfa/setup"));
    let setup = b.get("/mfa/setup").await;
    assert!(setup.body.contains("<svg"), "a server-rendered QR code");
    assert!(html_unescape(&setup.body).contains("otpauth://totp/"));
    let secret_text = setup
        .body
        .split("<code>")
        .nth(1)
        .unwrap()
        .split("</code>")
        .next()
        .unwrap()
        .to_string();
    let secret = base32_decode(&secret_text);
    let now = chrono::Utc::now().timestamp() as u64;
    let code = guestbridge::auth::totp::code_at(&secret, now);
    let csrf = field(&setup.body, "csrf");
    let verified = b
        .post("/mfa/setup", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(
        verified.location.as_deref(),
        Some("/apps"),
        "{}",
        verified.body
    );
    // The same code cannot be replayed.
    let replay = b.post("/mfa", &[("csrf", &csrf), ("code", &code)]).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);

    let panel = b.get("/apps").await;
    assert_eq!(panel.status, StatusCode::OK, "{}", panel.body);
    assert!(panel.body.contains("EHR Viewer") && panel.body.contains("/apps/ehr-viewer/launch"));

    let launch = b.get("/apps/ehr-viewer/launch").await;
    assert_eq!(launch.status, StatusCode::SEE_OTHER);
    let target = url::Url::parse(launch.location.as_deref().unwrap()).unwrap();
    assert_eq!(target.host_str(), Some("ehr.example"));
    assert!(target
        .query_pairs()
        .any(|(k, v)| k == "site" && v == "main"));
    let token = target
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .to_string();
    let jwks: Value = app
        .client
        .get(format!("{}/.well-known/jwks.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = guestbridge::auth::jwt::verify_launch(
        &token,
        &jwks,
        &app.address,
        "ehr-viewer",
        chrono::Utc::now().timestamp(),
    )
    .unwrap();
    assert_eq!(claims.email.as_deref(), Some("ann@acme.example"));
    assert_eq!(claims.roles, vec!["reader".to_string()]);
    assert_eq!(claims.exp - claims.iat, 60);
    assert!(guestbridge::auth::jwt::verify_launch(
        &token,
        &jwks,
        &app.address,
        "other-app",
        chrono::Utc::now().timestamp()
    )
    .is_err());
    assert_eq!(
        b.get("/apps/imaging/launch").await.status,
        StatusCode::FORBIDDEN
    );

    // The guest is active, consent recorded; the link is used up.
    let guest: (String, Option<i64>) = sqlx::query_as("SELECT state, redeemed_at FROM guests")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert_eq!(guest.0, "active");
    assert!(guest.1.is_some());
    let consent: (String, i64) = sqlx::query_as("SELECT text_version, accepted FROM consents")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert_eq!(consent, (version, 1));
    assert_eq!(Browser::new(&app).get(&link).await.status, StatusCode::GONE);
    // Stored as a hash only.
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM invitations")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert!(!link.contains(&stored));

    let csrf = field(&panel.body, "csrf");
    let out = b.post("/signout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(b.get("/apps").await.location.as_deref(), Some("/signin"));
    // Every page and form of a signed-in guest sends a request without a session to sign in.
    for path in ["/mfa", "/mfa/setup"] {
        let page = b.get(path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location.as_deref(), Some("/signin"), "{path}");
    }
    for path in [
        "/mfa",
        "/mfa/setup",
        "/mfa/email",
        "/mfa/email/verify",
        "/signout",
    ] {
        let page = b.post(path, &[("csrf", &csrf), ("code", "123456")]).await;
        assert_eq!(page.location.as_deref(), Some("/signin"), "{path}");
    }
}

pub(crate) fn base32_decode(s: &str) -> Vec<u8> {
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
            .unwrap() as u64;
        bits = (bits << 5) | v;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

async fn declining_suspends_and_tells_the_sponsor(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(backend, &smtp).await;
    let (_, globex) = app.partner("globex").await;
    globex.create_user(&person("bob@globex.example")).await;
    let link = invitation_link(&smtp, 1).await;
    let mut b = Browser::new(&app);
    let page = b.get(&link).await;
    let csrf = field(&page.body, "csrf");
    let declined = b
        .post(&link, &[("csrf", &csrf), ("decision", "decline")])
        .await;
    assert_eq!(declined.status, StatusCode::OK);
    assert!(declined.body.contains("declined"));
    let mails = smtp.wait_for(2, WAIT).await;
    assert_eq!(mails[1].to, vec!["dr.grey@hospital.example".to_string()]);
    let state: String = sqlx::query_scalar("SELECT state FROM guests")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert_eq!(state, "suspended:declined");
    let consent: i64 = sqlx::query_scalar("SELECT accepted FROM consents")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert_eq!(consent, 0);
}

async fn bad_links_are_refused(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(backend, &smtp).await;
    let (_, globex) = app.partner("globex").await;
    globex.create_user(&person("bob@globex.example")).await;
    let first = invitation_link(&smtp, 1).await;
    let mut b = Browser::new(&app);
    assert_eq!(
        b.get("/invite/forged-token-that-was-never-issued")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // An admin re-sends: the old link is void, the new one works.
    let guest_id: String = sqlx::query_scalar("SELECT id FROM guests")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    guestbridge::services::invitations::resend(&app.deps, &test_actor(), &guest_id)
        .await
        .unwrap();
    let second = invitation_link(&smtp, 2).await;
    assert_ne!(first, second);
    assert_eq!(b.get(&first).await.status, StatusCode::GONE);
    assert_eq!(b.get(&second).await.status, StatusCode::OK);
    // Expired.
    sqlx::query("UPDATE invitations SET expires_at = 1")
        .execute(app.deps.db.pool())
        .await
        .unwrap();
    let expired = b.get(&second).await;
    assert_eq!(expired.status, StatusCode::GONE);
    assert!(expired.body.contains("expired"));
    // Revoked.
    sqlx::query("UPDATE invitations SET expires_at = 99999999999999")
        .execute(app.deps.db.pool())
        .await
        .unwrap();
    guestbridge::services::invitations::revoke(&app.deps, &test_actor(), &guest_id)
        .await
        .unwrap();
    assert_eq!(b.get(&second).await.status, StatusCode::GONE);
}

async fn wrong_codes_are_rate_limited(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(backend, &smtp).await;
    let (_, acme) = app.partner("acme").await;
    acme.create_user(&person("ann@acme.example")).await;
    let link = invitation_link(&smtp, 1).await;
    let mut b = Browser::new(&app);
    let page = b.get(&link).await;
    let csrf = field(&page.body, "csrf");
    let version = field(&page.body, "consent_version");
    b.post(
        &link,
        &[
            ("csrf", &csrf),
            ("decision", "accept"),
            ("consent_version", &version),
        ],
    )
    .await;
    let setup = b.get("/mfa/setup").await;
    let csrf = field(&setup.body, "csrf");
    for _ in 0..5 {
        let wrong = b
            .post("/mfa/setup", &[("csrf", &csrf), ("code", "000000")])
            .await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    }
    let limited = b
        .post("/mfa/setup", &[("csrf", &csrf), ("code", "000000")])
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    // The limit is per guest: the code prompt is limited as well.
    let still_limited = b.post("/mfa", &[("csrf", &csrf), ("code", "000000")]).await;
    assert_eq!(
        still_limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the per-guest limit covers every code form"
    );
}

async fn signin_links_do_not_reveal_addresses(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(backend, &smtp).await;
    let (_, globex) = app.partner("globex").await;
    globex.create_user(&person("bob@globex.example")).await;
    smtp.wait_for(1, WAIT).await;
    let mut b = Browser::new(&app);
    let form = b.get("/signin").await;
    let csrf = field(&form.body, "csrf");
    let unknown = b
        .post(
            "/signin",
            &[("csrf", &csrf), ("email", "nobody@nowhere.example")],
        )
        .await;
    let known = b
        .post(
            "/signin",
            &[("csrf", &csrf), ("email", "BOB@globex.example")],
        )
        .await;
    assert_eq!(unknown.status, known.status);
    assert_eq!(unknown.body, known.body, "no user enumeration");
    assert_eq!(
        b.post("/signin", &[("csrf", "x"), ("email", "bob@globex.example")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let mails = smtp.wait_for(2, WAIT).await;
    let link = mails[1]
        .find_link(&format!("{}/signin/", app.address))
        .unwrap();
    let page = b.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    let signed_in = b.post(&link, &[("csrf", &field(&page.body, "csrf"))]).await;
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER);
    // An invited (not yet redeemed) guest without MFA lands on the panel but has no access yet.
    assert_eq!(signed_in.location.as_deref(), Some("/apps"));
    assert_eq!(b.get(&link).await.status, StatusCode::GONE, "single use");
    // Link requests are rate limited per address.
    for _ in 0..3 {
        b.post(
            "/signin",
            &[("csrf", &csrf), ("email", "bob@globex.example")],
        )
        .await;
    }
    assert_eq!(
        b.post(
            "/signin",
            &[("csrf", &csrf), ("email", "bob@globex.example")]
        )
        .await
        .status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn mail_survives_an_smtp_outage_and_is_sent_once(backend: Backend) {
    let smtp = TestSmtp::start();
    smtp.stop();
    let app = app_with_smtp(backend, &smtp).await;
    let (_, globex) = app.partner("globex").await;
    globex.create_user(&person("bob@globex.example")).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pending: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
    )
    .fetch_one(app.deps.db.pool())
    .await
    .unwrap();
    assert_eq!(pending, 1, "queued, not lost");
    let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM mail_outbox")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert!(attempts >= 1, "delivery was tried while SMTP was down");
    smtp.start_again();
    let mails = smtp.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.received().len(), 1, "delivered exactly once");
    assert!(mails[0].message_id().unwrap().contains("invitation"));
    let body: Option<String> = sqlx::query_scalar("SELECT body_sealed FROM mail_outbox")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert!(
        body.is_none(),
        "the body (with its link) is erased once sent"
    );
}

/// The outbox now keeps a mail's template and context and renders at delivery; mail queued
/// already rendered (subject in its column, text and HTML sealed) must still go out as queued.
async fn mail_queued_rendered_by_an_earlier_version_is_still_sent(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(backend, &smtp).await;
    let key = "signin_link:legacy-1";
    let body = json!({"text": "Legacy text https://gb.example/signin/old\n", "html": "<p>Legacy html</p>"});
    let sealed = app
        .deps
        .portal
        .secrets
        .seal(body.to_string().as_bytes(), key.as_bytes())
        .unwrap();
    sqlx::query(
        "INSERT INTO mail_outbox (id, kind, to_addr, subject, body_sealed, guest_id, idempotency_key,
            created_at, attempts, next_attempt_at) VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, 0, $8)",
    )
    .bind("legacy-mail")
    .bind("signin_link")
    .bind("ann@acme.example")
    .bind("Legacy subject")
    .bind(sealed)
    .bind(key)
    .bind(0i64)
    .bind(0i64)
    .execute(app.deps.db.pool())
    .await
    .unwrap();
    app.deps.portal.mail_queued.notify_one();
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].subject().as_deref(), Some("Legacy subject"));
    assert!(mails[0].find_link("https://gb.example/signin/").is_some());
}

/// A queued mail names a template that no longer exists: retrying cannot help, so it is given
/// up at the first attempt, and the mail queued after it is still delivered.
async fn mail_that_cannot_be_rendered_is_a_dead_letter_at_once(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(backend, &smtp).await;
    let key = "invitation:gone-template";
    let body =
        json!({"template": "no-such-template", "partner": null, "language": null, "context": {}});
    let sealed = app
        .deps
        .portal
        .secrets
        .seal(body.to_string().as_bytes(), key.as_bytes())
        .unwrap();
    sqlx::query(
        "INSERT INTO mail_outbox (id, kind, to_addr, subject, body_sealed, guest_id, idempotency_key,
            created_at, attempts, next_attempt_at) VALUES ($1, $2, $3, '', $4, NULL, $5, 0, 0, 0)",
    )
    .bind("unrenderable")
    .bind("invitation")
    .bind("ann@acme.example")
    .bind(sealed)
    .bind(key)
    .execute(app.deps.db.pool())
    .await
    .unwrap();
    let (_, globex) = app.partner("globex").await;
    globex.create_user(&person("bob@globex.example")).await;
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].to, vec!["bob@globex.example".to_string()]);
    let (attempts, failed): (i64, Option<i64>) =
        sqlx::query_as("SELECT attempts, failed_at FROM mail_outbox WHERE id = 'unrenderable'")
            .fetch_one(app.deps.db.pool())
            .await
            .unwrap();
    assert_eq!(attempts, 1, "not retried");
    assert!(failed.is_some(), "a dead letter");
}

async fn key_rotation_keeps_tokens_of_the_old_key_valid(backend: Backend) {
    let app = crate::helpers::spawn(backend).await;
    let jwks = |app: &TestApp| {
        let url = format!("{}/.well-known/jwks.json", app.address);
        let client = app.client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let before = jwks(&app).await;
    assert_eq!(before["keys"].as_array().unwrap().len(), 1);
    assert_eq!(before["keys"][0]["alg"], "EdDSA");
    assert_eq!(before["keys"][0]["kty"], "OKP");
    assert!(
        before["keys"][0].get("d").is_none(),
        "never the private key"
    );
    let old = guestbridge::services::signing::active_key(&app.deps)
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims =
        guestbridge::auth::jwt::LaunchClaims::new(&app.address, "ehr-viewer", "guest-1", now);
    let token = guestbridge::auth::jwt::sign_launch(&old, &claims).unwrap();
    let new_kid = guestbridge::services::signing::rotate(&app.deps)
        .await
        .unwrap();
    assert_ne!(new_kid, old.kid);
    let after = jwks(&app).await;
    assert_eq!(after["keys"].as_array().unwrap().len(), 2);
    assert!(
        guestbridge::auth::jwt::verify_launch(&token, &after, &app.address, "ehr-viewer", now)
            .is_ok()
    );
    assert_eq!(
        guestbridge::services::signing::active_key(&app.deps)
            .await
            .unwrap()
            .kid,
        new_kid
    );
    // Private keys are stored sealed, not in the clear.
    let sealed: Vec<String> = sqlx::query_scalar("SELECT private_sealed FROM signing_keys")
        .fetch_all(app.deps.db.pool())
        .await
        .unwrap();
    assert!(sealed.iter().all(|s| s.starts_with("v1.")));
}
