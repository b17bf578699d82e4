//! Portal sessions of one guest on another guest's URLs: Ann (partner acme) signs in
//! through her invitation, Bob (partner globex, TOTP enrolled, an app Ann lacks) through his,
//! and Carol (globex) has an invitation not yet used and Bob a sign-in link not yet used.
//! With Ann's cookie and her CSRF token the suite sends every portal route, carrying each of
//! B's identifiers in the path, the query and the form. An attempt leaks when a reply shows
//! any of B's strings (JWTs in a redirect decoded), when a link page answers Ann differently
//! from a browser without a session, on a 5xx, or when anything of Bob's or Carol's changed.

use std::time::Duration;

use base64::Engine;
use reqwest::redirect::Policy;
use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn_with, url_encode, Backend, TestApp};
use crate::isolation_attacks::record_attack_count;
use crate::portal::{base32_decode, field, Browser};
use crate::smtp::TestSmtp;

const WAIT: Duration = Duration::from_secs(15);

const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = "Shared health record"
launch_url = "https://ehr.example/launch"
roles = ["reader"]

[[app]]
id = "imaging"
name = "Imaging Archive"
description = "Globex images"
launch_url = "https://imaging.example/launch"
roles = ["viewer"]

[[partner]]
slug = "globex"
mfa = true

[[rule]]
id = "everyone"
grants = [{ app = "ehr-viewer", role = "reader" }]

[[rule]]
id = "globex-imaging"
partners = ["globex"]
grants = [{ app = "imaging", role = "viewer" }]
"#;

both_backends!(portal_sessions_stay_with_their_guest);

fn person(email: &str, display: &str) -> Value {
    json!({"userName": email, "displayName": display,
           "name": {"givenName": display, "familyName": "Secret"},
           "emails": [{"value": email, "primary": true}]})
}

async fn link_to(smtp: &TestSmtp, n: usize, to: &str, prefix: &str) -> String {
    smtp.wait_for(n, WAIT)
        .await
        .iter()
        .rev()
        .filter(|m| m.to.iter().any(|t| t == to))
        .find_map(|m| m.find_link(prefix))
        .unwrap_or_else(|| panic!("no {prefix} link to {to}"))
}

async fn accept(b: &mut Browser, link: &str) -> Option<String> {
    let page = b.get(link).await;
    let accepted = b
        .post(
            link,
            &[
                ("csrf", &field(&page.body, "csrf")),
                ("decision", "accept"),
                ("consent_version", &field(&page.body, "consent_version")),
            ],
        )
        .await;
    accepted.location
}

fn totp(secret: &[u8], steps_ahead: u64) -> String {
    let now = chrono::Utc::now().timestamp() as u64;
    guestbridge::auth::totp::code_at(secret, now + steps_ahead * 30)
}

async fn guest_id(app: &TestApp, email: &str) -> String {
    sqlx::query_scalar("SELECT id FROM guests WHERE email = $1")
        .bind(email)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

/// Everything the portal can change about a guest, as the database holds it.
async fn state_of(app: &TestApp, guest: &str) -> Vec<String> {
    let pool = app.deps.db.pool();
    let mut out = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM invitations WHERE guest_id = $1 AND used_at IS NULL AND revoked_at IS NULL",
        "SELECT COUNT(*) FROM invitations WHERE guest_id = $1",
        "SELECT COUNT(*) FROM consents WHERE guest_id = $1",
        "SELECT COUNT(*) FROM guest_sessions WHERE guest_id = $1",
        "SELECT COUNT(*) FROM guest_mfa WHERE guest_id = $1",
        "SELECT COUNT(*) FROM guest_mfa WHERE guest_id = $1 AND enrolled_at IS NOT NULL",
        "SELECT COALESCE(MAX(last_step), 0) FROM guest_mfa WHERE guest_id = $1",
        "SELECT COUNT(*) FROM email_codes WHERE guest_id = $1",
        "SELECT COUNT(*) FROM signin_links WHERE guest_id = $1 AND used_at IS NULL",
        "SELECT COUNT(*) FROM guest_grants WHERE guest_id = $1",
        "SELECT COUNT(*) FROM mail_outbox WHERE guest_id = $1",
        "SELECT COUNT(*) FROM audit_log WHERE partner_id = (SELECT partner_id FROM guests WHERE id = $1)",
    ] {
        let n: i64 = sqlx::query_scalar(sql)
            .bind(guest)
            .fetch_one(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        out.push(format!("{sql} = {n}"));
    }
    let row: (String, Option<String>) =
        sqlx::query_as("SELECT state, display_name FROM guests WHERE id = $1")
            .bind(guest)
            .fetch_one(pool)
            .await
            .unwrap();
    out.push(format!("guest {row:?}"));
    let secret: Option<String> =
        sqlx::query_scalar("SELECT totp_secret_sealed FROM guest_mfa WHERE guest_id = $1")
            .bind(guest)
            .fetch_optional(pool)
            .await
            .unwrap();
    out.push(format!("secret {secret:?}"));
    out
}

/// A request of Ann's (or of a browser with no session when `cookie` is empty).
struct Sent {
    status: u16,
    location: String,
    set_cookie: bool,
    body: String,
}

async fn send(
    app: &TestApp,
    cookie: &str,
    method: Method,
    path: &str,
    form: &[(String, String)],
) -> Sent {
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let mut req = client.request(method.clone(), format!("{}{path}", app.address));
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    if method == Method::POST {
        req = req.form(form);
    }
    let res = req.send().await.unwrap();
    let location = res
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap_or("?").to_string())
        .unwrap_or_default();
    Sent {
        status: res.status().as_u16(),
        set_cookie: res.headers().get("set-cookie").is_some(),
        location,
        body: res.text().await.unwrap(),
    }
}

/// The reply as text to scan: body, location, and the claims of every JWT in the location.
fn scanned(sent: &Sent) -> String {
    let mut text = format!("{}\n{}", sent.location, sent.body);
    for part in sent.location.split(['=', '&', '?', '#', '/', '.']) {
        if let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part) {
            text.push('\n');
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text.to_lowercase()
}

/// A link page without its per-request parts, for comparing Ann's view with a stranger's.
fn page_shape(sent: &Sent) -> (u16, String, String) {
    let mut body = sent.body.clone();
    let marker = "name=\"csrf\" value=\"";
    if let Some(start) = body.find(marker).map(|i| i + marker.len()) {
        if let Some(len) = body[start..].find('"') {
            body.replace_range(start..start + len, "<masked>");
        }
    }
    (sent.status, sent.location.clone(), body)
}

async fn portal_sessions_stay_with_their_guest(backend: Backend) {
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
    let invite = format!("{}/invite/", app.address);
    let (_, acme) = app.partner("acme").await;
    let (_, globex) = app.partner("globex").await;
    acme.create_user(&person("ann@acme.example", "Ann")).await;
    let ann_link = link_to(&smtp, 1, "ann@acme.example", &invite).await;
    let bob_user = globex
        .create_user(&person("bob.secret@globex.example", "Bobsecret"))
        .await;
    let bob_link = link_to(&smtp, 2, "bob.secret@globex.example", &invite).await;
    let carol_user = globex
        .create_user(&person("carol.secret@globex.example", "Carolsecret"))
        .await;
    let carol_link = link_to(&smtp, 3, "carol.secret@globex.example", &invite).await;

    let mut ann = Browser::new(&app);
    assert_eq!(accept(&mut ann, &ann_link).await.as_deref(), Some("/apps"));
    let mut bob = Browser::new(&app);
    assert_eq!(
        accept(&mut bob, &bob_link).await.as_deref(),
        Some("/mfa/setup")
    );
    let setup = bob.get("/mfa/setup").await;
    let bob_secret = base32_decode(
        setup
            .body
            .split("<code>")
            .nth(1)
            .unwrap()
            .split("</code>")
            .next()
            .unwrap(),
    );
    let done = bob
        .post(
            "/mfa/setup",
            &[
                ("csrf", &field(&setup.body, "csrf")),
                ("code", &totp(&bob_secret, 0)),
            ],
        )
        .await;
    assert_eq!(done.location.as_deref(), Some("/apps"), "{}", done.body);
    assert!(bob.get("/apps").await.body.contains("Imaging Archive"));
    // An unused sign-in link of Bob's.
    let mut asker = Browser::new(&app);
    let form = asker.get("/signin").await;
    asker
        .post(
            "/signin",
            &[
                ("csrf", &field(&form.body, "csrf")),
                ("email", "bob.secret@globex.example"),
            ],
        )
        .await;
    let bob_signin = link_to(
        &smtp,
        4,
        "bob.secret@globex.example",
        &format!("{}/signin/", app.address),
    )
    .await;

    let bob_guest = guest_id(&app, "bob.secret@globex.example").await;
    let carol_guest = guest_id(&app, "carol.secret@globex.example").await;
    let token = |link: &str| link.rsplit('/').next().unwrap().to_string();
    let (bob_invite_token, carol_invite_token, bob_signin_token) =
        (token(&bob_link), token(&carol_link), token(&bob_signin));

    let panel = ann.get("/apps").await;
    assert!(panel.body.contains("EHR Viewer"));
    let csrf = field(&panel.body, "csrf");
    let cookie: String = ann
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");

    let secrets: Vec<String> = [
        bob_user.as_str(),
        carol_user.as_str(),
        bob_guest.as_str(),
        carol_guest.as_str(),
        "bob.secret@globex.example",
        "carol.secret@globex.example",
        "Bobsecret",
        "Carolsecret",
        "Imaging Archive",
        "imaging.example",
        "Globex images",
        bob_invite_token.as_str(),
        carol_invite_token.as_str(),
        bob_signin_token.as_str(),
    ]
    .iter()
    .map(|s| s.to_lowercase())
    .collect();
    let probes: Vec<String> = [
        bob_guest.as_str(),
        carol_guest.as_str(),
        bob_user.as_str(),
        carol_user.as_str(),
        "bob.secret@globex.example",
        "carol.secret@globex.example",
        bob_invite_token.as_str(),
        carol_invite_token.as_str(),
        bob_signin_token.as_str(),
        "imaging",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let bob_code = totp(&bob_secret, 1);

    let before = (
        state_of(&app, &bob_guest).await,
        state_of(&app, &carol_guest).await,
    );
    let mut tried = 0usize;
    let mut leaks: Vec<String> = Vec::new();
    macro_rules! check {
        ($what:expr, $sent:expr) => {{
            let sent: &Sent = $sent;
            tried += 1;
            let text = scanned(sent);
            if sent.status >= 500 {
                leaks.push(format!("{}: {}", $what, sent.status));
            } else if let Some(s) = secrets.iter().find(|s| text.contains(s.as_str())) {
                leaks.push(format!("{}: reply shows {s}: {text}", $what));
            }
        }};
    }

    // Routes that act on the session's guest, with B's identifiers in the query and, for the
    // forms, in every field a handler might read a guest, user, app or token from.
    let session_routes: [(Method, &str); 10] = [
        (Method::GET, "/"),
        (Method::GET, "/apps"),
        (Method::GET, "/apps/ehr-viewer/launch"),
        (Method::GET, "/mfa/setup"),
        (Method::GET, "/mfa"),
        (Method::POST, "/mfa/setup"),
        (Method::POST, "/mfa"),
        (Method::POST, "/mfa/email"),
        (Method::POST, "/mfa/email/verify"),
        (Method::GET, "/signin"),
    ];
    for probe in &probes {
        let q = url_encode(probe);
        for (method, path) in &session_routes {
            let query = format!(
                "{path}?guest={q}&guest_id={q}&user={q}&user_id={q}&id={q}&token={q}&app={q}&email={q}"
            );
            let form: Vec<(String, String)> = [
                ("csrf", csrf.as_str()),
                ("code", bob_code.as_str()),
                ("guest", probe),
                ("guest_id", probe),
                ("user_id", probe),
                ("token", probe),
                ("app", probe),
                ("email", probe),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            let sent = send(&app, &cookie, method.clone(), &query, &form).await;
            check!(format!("{method} {query}"), &sent);
            if *method == Method::GET {
                let sent = send(&app, &cookie, Method::HEAD, &query, &[]).await;
                check!(format!("HEAD {query}"), &sent);
            }
            if *method == Method::POST {
                let sent = send(&app, &cookie, method.clone(), path, &form).await;
                check!(format!("{method} {path} form {probe}"), &sent);
            }
        }
        // B's identifier where an app id goes.
        for launch in [
            format!("/apps/{q}/launch"),
            format!("/apps/{}/launch", url_encode(&probe.to_uppercase())),
            format!("/apps/ehr-viewer%2F..%2F{q}/launch"),
        ] {
            for method in [Method::GET, Method::HEAD] {
                let sent = send(&app, &cookie, method.clone(), &launch, &[]).await;
                check!(format!("{method} {launch}"), &sent);
            }
        }
        // B's identifier where a link token goes: Ann's cookie must add nothing to what a
        // stranger holding the link sees, and her session's CSRF token must not act on it.
        for prefix in ["/invite", "/signin"] {
            let path = format!("{prefix}/{q}");
            for method in [Method::GET, Method::HEAD] {
                let as_ann = send(&app, &cookie, method.clone(), &path, &[]).await;
                let stranger = send(&app, "", method.clone(), &path, &[]).await;
                tried += 1;
                if page_shape(&as_ann) != page_shape(&stranger) || as_ann.set_cookie {
                    leaks.push(format!(
                        "{method} {path}: Ann sees {} {} unlike a stranger's {} {}",
                        as_ann.status, as_ann.body, stranger.status, stranger.body
                    ));
                }
                if as_ann.status >= 500 {
                    leaks.push(format!("{method} {path}: {}", as_ann.status));
                }
            }
            for decision in ["accept", "decline"] {
                let form: Vec<(String, String)> = [
                    ("csrf", csrf.as_str()),
                    ("decision", decision),
                    ("consent_version", "1"),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
                let sent = send(&app, &cookie, Method::POST, &path, &form).await;
                tried += 1;
                if sent.status < 400 || sent.set_cookie {
                    leaks.push(format!(
                        "POST {path} with Ann's CSRF token ({decision}): {} {}",
                        sent.status, sent.body
                    ));
                }
            }
        }
    }
    // Ann is still Ann, with Ann's apps only.
    let panel = ann.get("/apps").await;
    if !panel.body.contains("EHR Viewer") || panel.body.contains("Imaging Archive") {
        leaks.push(format!("Ann's panel changed: {}", panel.body));
    }
    // Sign-out last, since it ends Ann's session: with B's identifiers in it, it ends hers only.
    for probe in &probes {
        let form: Vec<(String, String)> = [
            ("csrf", csrf.as_str()),
            ("guest_id", probe),
            ("token", probe),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let sent = send(
            &app,
            &cookie,
            Method::POST,
            &format!("/signout?guest_id={}", url_encode(probe)),
            &form,
        )
        .await;
        check!(format!("POST /signout with {probe}"), &sent);
    }
    let after = (
        state_of(&app, &bob_guest).await,
        state_of(&app, &carol_guest).await,
    );
    if before != after {
        leaks.push(format!("B's guests changed: {before:?} → {after:?}"));
    }
    let bob_panel = bob.get("/apps").await;
    if !bob_panel.body.contains("Imaging Archive") {
        leaks.push(format!("Bob's session was ended: {}", bob_panel.body));
    }
    // Carol's invitation and Bob's sign-in link still work for their holders.
    let mut carol = Browser::new(&app);
    if accept(&mut carol, &carol_link).await.as_deref() != Some("/mfa/setup") {
        leaks.push("Carol's invitation no longer works".into());
    }
    let mut bob_again = Browser::new(&app);
    let page = bob_again.get(&bob_signin).await;
    let used = bob_again
        .post(&bob_signin, &[("csrf", &field(&page.body, "csrf"))])
        .await;
    if used.status.as_u16() != 303 {
        leaks.push(format!(
            "Bob's sign-in link no longer works: {}",
            used.status
        ));
    }

    record_attack_count(backend, "portal", tried, leaks.len());
    assert!(tried >= 300, "only {tried} attempts");
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}
