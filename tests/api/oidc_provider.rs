//! The OpenID Connect provider against a stock relying party: openid-client (npm), run by Node
//! from `tests/oidc_rp/`, does discovery, the code flow with PKCE, ID token validation,
//! userinfo and refresh, while this test holds the guest's portal session as their browser
//! would. Also: refresh-token rotation and reuse detection, a replayed code, a redirect URI
//! mismatch, a public client without PKCE, a guest without a grant (`access_denied`), a
//! suspended guest's refresh and userinfo, `prompt=none` and `prompt=login`, the launch
//! button's initiate-login, and RP-initiated logout.
//!
//! Without Node and `npm ci --prefix tests/oidc_rp` the test is reported as ignored (build.rs
//! looks), unless GUESTBRIDGE_REQUIRE_OIDC_RP=1 (CI), where it runs and fails.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::helpers::{spawn_with, test_actor, Backend, Scim, TestApp};
use crate::portal::{accepted_invitation, Browser};
use crate::smtp::TestSmtp;

const WAIT: Duration = Duration::from_secs(15);
/// `printf %s "$SECRET" | sha256sum` of this secret is in the rules below.
const EHR_SECRET: &str = "ehr-secret-0123456789abcdef";
const EHR_REDIRECT: &str = "http://127.0.0.1:9/ehr/callback";
const SPA_REDIRECT: &str = "http://127.0.0.1:9/spa/callback";

const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = "Shared health record"
launch_url = "http://127.0.0.1:9/ehr/"
roles = ["reader"]
oidc_client_id = "ehr-client"
oidc_client_secret_sha256 = "bd9f67fb8fbe0da945ea3d65c6196e84fea3cfa0b92e3a5fc070234bd27b92e2"
oidc_redirect_uris = ["http://127.0.0.1:9/ehr/callback"]
oidc_post_logout_redirect_uris = ["http://127.0.0.1:9/ehr/bye"]
oidc_initiate_login_uri = "http://127.0.0.1:9/ehr/login"

[[app]]
id = "rota"
name = "Rota"
description = "Shifts, a single-page app"
launch_url = "http://127.0.0.1:9/spa/"
roles = ["viewer"]
oidc_client_id = "spa-client"
oidc_public = true
oidc_redirect_uris = ["http://127.0.0.1:9/spa/callback"]
oidc_scopes = ["openid", "email", "roles"]

[[app]]
id = "imaging"
name = "Imaging"
description = "Not granted to anyone"
launch_url = "http://127.0.0.1:9/img/"
roles = ["viewer"]
oidc_client_id = "imaging-client"
oidc_public = true
oidc_redirect_uris = ["http://127.0.0.1:9/img/callback"]

[[partner]]
slug = "globex"

[[rule]]
id = "everyone"
grants = [{ app = "ehr-viewer", role = "reader" }, { app = "rota", role = "viewer" }]
sponsor = "dr.grey@hospital.example"
"#;

mod a_stock_relying_party_signs_guests_in {
    use crate::helpers::{self, Backend};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(gb_oidc_rp),
        ignore = "node or tests/oidc_rp/node_modules was missing when the tests were built"
    )]
    async fn sqlite() {
        super::a_stock_relying_party_signs_guests_in(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(all(gb_oidc_rp, gb_postgres)),
        ignore = "needs node, tests/oidc_rp/node_modules and GUESTBRIDGE_TEST_POSTGRES_URL"
    )]
    async fn postgres() {
        helpers::require_postgres();
        super::a_stock_relying_party_signs_guests_in(Backend::Postgres).await
    }
}

crate::both_backends!(bad_authorization_and_token_requests_are_refused);

/// The relying party process: one JSON command in, one JSON answer out.
struct Rp {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Rp {
    async fn start(issuer: &str, client_id: &str, secret: Option<&str>, redirect: &str) -> Rp {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc_rp");
        assert!(
            dir.join("node_modules/openid-client").exists(),
            "the OIDC test needs `npm ci --prefix tests/oidc_rp` (GUESTBRIDGE_REQUIRE_OIDC_RP=1)"
        );
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("rp.mjs"))
            .env("ISSUER", issuer)
            .env("CLIENT_ID", client_id)
            .env("REDIRECT_URI", redirect)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(secret) = secret {
            cmd.env("CLIENT_SECRET", secret);
        }
        let mut child = cmd.spawn().expect("start node");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Rp {
            _child: child,
            stdin,
            lines,
        }
    }

    async fn call(&mut self, cmd: Value) -> Value {
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        let answer = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("the relying party answers")
            .unwrap()
            .expect("a line");
        serde_json::from_str(&answer).unwrap()
    }

    async fn ok(&mut self, cmd: Value) -> Value {
        let answer = self.call(cmd.clone()).await;
        assert_eq!(answer["ok"], true, "{cmd} -> {answer}");
        answer
    }
}

async fn app_with_smtp(backend: Backend, smtp: &TestSmtp) -> TestApp {
    spawn_with(
        backend,
        &[("rules.toml", RULES)],
        &[("GUESTBRIDGE_SMTP_URL", smtp.url.as_str())],
    )
    .await
}

/// A globex guest who accepted their invitation; the browser holds their portal session.
async fn signed_in(app: &TestApp, globex: &Scim, smtp: &TestSmtp, user: &str, n: usize) -> Browser {
    accepted_invitation(app, globex, smtp, user, n, "/apps")
        .await
        .0
}

async fn guest_id(app: &TestApp, user: &str) -> String {
    sqlx::query_scalar("SELECT id FROM guests WHERE user_name = $1")
        .bind(user)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

fn query_of(location: &str) -> Vec<(String, String)> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(location: &str, name: &str) -> Option<String> {
    query_of(location)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The browser follows the authorization URL; the answer is our redirect to the app.
async fn authorize(b: &mut Browser, url: &str) -> String {
    let res = b.get(url).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    res.location.expect("a redirect")
}

async fn a_stock_relying_party_signs_guests_in(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(backend, &smtp).await;
    let (_, globex) = app.partner("globex").await;
    let mut gus = signed_in(&app, &globex, &smtp, "gus@globex.example", 1).await;
    let gus_id = guest_id(&app, "gus@globex.example").await;

    let mut rp = Rp::start(&app.address, "ehr-client", Some(EHR_SECRET), EHR_REDIRECT).await;
    let discovered = rp.ok(json!({"op": "discover"})).await;
    assert_eq!(discovered["issuer"], app.address.as_str());

    // The code flow with PKCE: the library validates the ID token (signature against our
    // JWKS, iss, aud, exp, nonce) and the `iss` of the authorization response (RFC 9207).
    let start = rp.ok(json!({"op": "authorize_url"})).await;
    let back = authorize(&mut gus, start["url"].as_str().unwrap()).await;
    assert!(back.starts_with(EHR_REDIRECT), "{back}");
    assert_eq!(param(&back, "state").as_deref(), start["state"].as_str());
    let tokens = rp.ok(json!({"op": "callback", "url": back})).await;
    let claims = &tokens["claims"];
    assert_eq!(claims["sub"], gus_id.as_str());
    assert_eq!(claims["aud"], "ehr-client");
    assert_eq!(claims["email"], "gus@globex.example");
    assert_eq!(claims["name"], "Gus Guest");
    assert_eq!(claims["roles"], json!(["reader"]));
    assert_eq!(claims["amr"], json!(["email"]));
    assert!(claims["auth_time"].is_i64());
    assert!(tokens["expires_in"].as_i64().unwrap() <= 300, "short-lived");

    // A replayed code is refused, and revokes what its first use issued.
    let replay = rp.call(json!({"op": "callback", "url": back})).await;
    assert_eq!(replay["ok"], false, "{replay}");
    assert_eq!(replay["error"], "invalid_grant", "{replay}");
    let revoked = rp
        .call(json!({"op": "refresh", "refresh_token": tokens["refresh_token"]}))
        .await;
    assert_eq!(
        revoked["error"], "invalid_grant",
        "the replay revoked the family: {revoked}"
    );

    // A fresh login; userinfo; refresh rotates, and reusing the old token ends the family.
    let start = rp.ok(json!({"op": "authorize_url"})).await;
    let back = authorize(&mut gus, start["url"].as_str().unwrap()).await;
    let tokens = rp.ok(json!({"op": "callback", "url": back})).await;
    let info = rp
        .ok(json!({"op": "userinfo", "access_token": tokens["access_token"], "sub": gus_id}))
        .await;
    assert_eq!(info["info"]["email"], "gus@globex.example");
    assert_eq!(info["info"]["roles"], json!(["reader"]));
    let first = tokens["refresh_token"].as_str().unwrap().to_string();
    let rotated = rp
        .ok(json!({"op": "refresh", "refresh_token": first}))
        .await;
    let second = rotated["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(first, second, "rotated");
    assert_eq!(rotated["claims"]["sub"], gus_id.as_str());
    let reuse = rp
        .call(json!({"op": "refresh", "refresh_token": first}))
        .await;
    assert_eq!(reuse["error"], "invalid_grant", "{reuse}");
    let after = rp
        .call(json!({"op": "refresh", "refresh_token": second}))
        .await;
    assert_eq!(
        after["error"], "invalid_grant",
        "the whole family is revoked: {after}"
    );
    let reused: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'oidc.refresh_reused'")
            .fetch_one(app.deps.db.pool())
            .await
            .unwrap();
    // Each presentation of a used or revoked token is on record: the one the replayed code
    // revoked, the reused one, and its revoked successor.
    assert_eq!(reused, 3);

    // A public client (a single-page app) with PKCE and no secret.
    let mut spa = Rp::start(&app.address, "spa-client", None, SPA_REDIRECT).await;
    spa.ok(json!({"op": "discover"})).await;
    let start = spa.ok(json!({"op": "authorize_url"})).await;
    let back = authorize(&mut gus, start["url"].as_str().unwrap()).await;
    let spa_tokens = spa.ok(json!({"op": "callback", "url": back})).await;
    assert_eq!(spa_tokens["claims"]["roles"], json!(["viewer"]));
    assert!(
        spa_tokens["claims"]["name"].is_null(),
        "no profile scope for this client"
    );

    // prompt=none while signed in gives a code at once; prompt=login asks for a new sign-in,
    // ending this session and keeping the request for after it.
    let silent = rp
        .ok(json!({"op": "authorize_url", "prompt": "none"}))
        .await;
    let back = authorize(&mut gus, silent["url"].as_str().unwrap()).await;
    assert!(param(&back, "code").is_some(), "{back}");
    // The access panel's button for an OIDC app starts the app's own login with us.
    let launch = gus.get("/apps/ehr-viewer/launch").await;
    assert_eq!(
        launch.location.as_deref(),
        Some(
            format!(
                "http://127.0.0.1:9/ehr/login?iss={}",
                crate::helpers::url_encode(&app.address)
            )
            .as_str()
        )
    );

    // RP-initiated logout with the ID token as hint: the portal session ends, back to the app.
    let logout = rp
        .ok(json!({
            "op": "logout_url",
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": "http://127.0.0.1:9/ehr/bye",
            "state": "s-42",
        }))
        .await;
    let res = gus.get(logout["url"].as_str().unwrap()).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    assert_eq!(
        res.location.as_deref(),
        Some("http://127.0.0.1:9/ehr/bye?state=s-42")
    );
    assert_eq!(gus.get("/apps").await.location.as_deref(), Some("/signin"));
    // Signed out: prompt=none says so at the redirect URI; without it, sign in first.
    let silent = rp
        .ok(json!({"op": "authorize_url", "prompt": "none"}))
        .await;
    let back = authorize(&mut gus, silent["url"].as_str().unwrap()).await;
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("login_required"),
        "{back}"
    );
    let start = rp.ok(json!({"op": "authorize_url"})).await;
    let res = gus.get(start["url"].as_str().unwrap()).await;
    assert_eq!(res.location.as_deref(), Some("/signin"));
    assert!(gus.cookies.iter().any(|(k, _)| k == "gb_oidc_resume"));

    // A second guest, suspended by an administrator: their refresh and userinfo stop at once.
    let mut ann = signed_in(&app, &globex, &smtp, "ann@globex.example", 2).await;
    let ann_id = guest_id(&app, "ann@globex.example").await;
    let start = rp.ok(json!({"op": "authorize_url"})).await;
    let back = authorize(&mut ann, start["url"].as_str().unwrap()).await;
    let tokens = rp.ok(json!({"op": "callback", "url": back})).await;
    guestbridge::services::guest_actions::suspend(&app.deps, &test_actor(), &ann_id, None)
        .await
        .expect("suspend");
    let refused = rp
        .call(json!({"op": "refresh", "refresh_token": tokens["refresh_token"]}))
        .await;
    assert_eq!(refused["error"], "invalid_grant", "{refused}");
    let refused = rp
        .call(json!({"op": "userinfo", "access_token": tokens["access_token"], "sub": ann_id}))
        .await;
    assert_eq!(refused["ok"], false, "{refused}");
}

async fn bad_authorization_and_token_requests_are_refused(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(backend, &smtp).await;
    let (_, globex) = app.partner("globex").await;
    let mut gus = signed_in(&app, &globex, &smtp, "gus@globex.example", 1).await;
    let auth = |client: &str, redirect: &str, extra: &str| {
        format!(
            "/oauth2/authorize?response_type=code&scope=openid&client_id={client}&redirect_uri={}&state=st{extra}",
            crate::helpers::url_encode(redirect)
        )
    };
    let challenge =
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";

    let discovery: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], app.address.as_str());
    assert_eq!(
        discovery["code_challenge_methods_supported"],
        json!(["S256"])
    );

    // An unknown client or a redirect URI not registered exactly: our page, never a redirect.
    for url in [
        auth("nobody", EHR_REDIRECT, ""),
        auth("ehr-client", "http://127.0.0.1:9/ehr/callback/../evil", ""),
        auth("ehr-client", "http://127.0.0.1:9/ehr/callback?x=1", ""),
    ] {
        let res = gus.get(&url).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{url}");
        assert!(res.location.is_none());
    }
    // A public client without PKCE, or with the plain method: refused at the redirect URI.
    for extra in ["", "&code_challenge=abc&code_challenge_method=plain"] {
        let back = authorize(&mut gus, &auth("spa-client", SPA_REDIRECT, extra)).await;
        assert_eq!(
            param(&back, "error").as_deref(),
            Some("invalid_request"),
            "{back}"
        );
        assert_eq!(param(&back, "state").as_deref(), Some("st"));
        assert_eq!(param(&back, "iss").as_deref(), Some(app.address.as_str()));
    }
    // No grant for the app: access_denied, not a code.
    let back = authorize(
        &mut gus,
        &auth(
            "imaging-client",
            "http://127.0.0.1:9/img/callback",
            challenge,
        ),
    )
    .await;
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("access_denied"),
        "{back}"
    );
    // Other response types and a missing openid scope.
    let back = authorize(
        &mut gus,
        &auth("ehr-client", EHR_REDIRECT, "").replace("response_type=code", "response_type=token"),
    )
    .await;
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("unsupported_response_type")
    );
    let back = authorize(
        &mut gus,
        &auth("ehr-client", EHR_REDIRECT, "").replace("scope=openid", "scope=email"),
    )
    .await;
    assert_eq!(param(&back, "error").as_deref(), Some("invalid_scope"));

    // The token endpoint: a wrong secret, a code for a PKCE request without its verifier, and
    // a code presented with another redirect URI.
    let token = |form: Vec<(&'static str, String)>, basic: Option<(&str, &str)>| {
        let mut req = app
            .client
            .post(format!("{}/oauth2/token", app.address))
            .form(&form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        req.send()
    };
    let code_for = |b: String| param(&b, "code").expect("a code");
    let res = token(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", "x".into()),
        ],
        Some(("ehr-client", "wrong")),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("www-authenticate"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");

    let code = code_for(authorize(&mut gus, &auth("ehr-client", EHR_REDIRECT, challenge)).await);
    let res = token(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code),
            ("redirect_uri", EHR_REDIRECT.into()),
        ],
        Some(("ehr-client", EHR_SECRET)),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "no code_verifier: {body}");

    let code = code_for(authorize(&mut gus, &auth("ehr-client", EHR_REDIRECT, "")).await);
    let res = token(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("redirect_uri", "http://127.0.0.1:9/other".into()),
        ],
        Some(("ehr-client", EHR_SECRET)),
    )
    .await
    .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    // The code was spent by that attempt.
    let res = token(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code),
            ("redirect_uri", EHR_REDIRECT.into()),
        ],
        Some(("ehr-client", EHR_SECRET)),
    )
    .await
    .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // Codes and refresh tokens are stored as hashes only.
    let code = code_for(authorize(&mut gus, &auth("ehr-client", EHR_REDIRECT, "")).await);
    let stored: Vec<String> = sqlx::query_scalar("SELECT code_hash FROM oauth_codes")
        .fetch_all(app.deps.db.pool())
        .await
        .unwrap();
    assert!(!stored.contains(&code));
    let res = token(
        vec![
            ("grant_type", "authorization_code".into()),
            ("code", code),
            ("redirect_uri", EHR_REDIRECT.into()),
        ],
        Some(("ehr-client", EHR_SECRET)),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM oauth_refresh_tokens")
        .fetch_all(app.deps.db.pool())
        .await
        .unwrap();
    assert!(!stored.contains(&refresh));
    // An ID token is not an access token.
    let res = app
        .client
        .get(format!("{}/oauth2/userinfo", app.address))
        .bearer_auth(body["id_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app
        .client
        .get(format!("{}/oauth2/userinfo", app.address))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // prompt=login: a new sign-in is needed, so this session ends and the request waits.
    let res = gus
        .get(&auth("ehr-client", EHR_REDIRECT, "&prompt=login"))
        .await;
    assert_eq!(res.location.as_deref(), Some("/signin"));
    assert!(gus.cookies.iter().any(|(k, _)| k == "gb_oidc_resume"));
    assert_eq!(gus.get("/apps").await.location.as_deref(), Some("/signin"));
}
