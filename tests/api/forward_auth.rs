//! Forward-auth behind a real nginx (Debian's package, started here on a loopback port with a
//! generated config): nginx asks `/auth/verify` before each request to an upstream test app,
//! which echoes the identity headers it received. A granted guest reaches the app with their
//! identity; no session is redirected to the portal's sign-in; no grant, or a suspended guest,
//! is refused; a header forged by the client never reaches the app.
//!
//! Without nginx the tests are reported as ignored (build.rs looks for it), unless
//! GUESTBRIDGE_REQUIRE_NGINX=1 (CI), where they run and fail.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use reqwest::StatusCode;
use serde_json::{json, Map, Value};

use crate::helpers::{spawn_with, test_actor, Backend, Scim, TestApp};
use crate::portal::{accepted_invitation, Browser};
use crate::smtp::TestSmtp;

const NGINX: &str = "/usr/sbin/nginx";
const WAIT: Duration = Duration::from_secs(15);

const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = "Shared health record"
launch_url = "http://ehr.example/"
roles = ["reader", "clinician"]

[[app]]
id = "imaging"
name = "Imaging"
description = "Images"
launch_url = "http://imaging.example/"
roles = ["viewer"]

[[partner]]
slug = "globex"

[[partner]]
slug = "acme"
mfa = true

[[rule]]
id = "everyone"
grants = [{ app = "ehr-viewer", role = "reader" }, { app = "ehr-viewer", role = "clinician" }]
sponsor = "dr.grey@hospital.example"
"#;

// Not `both_backends!`: a missing nginx is reported as ignored, on top of the PostgreSQL
// variant's own condition.
mod nginx_lets_only_granted_guests_through {
    use crate::helpers::{self, Backend};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(not(gb_nginx), ignore = "nginx was missing when the tests were built")]
    async fn sqlite() {
        super::nginx_lets_only_granted_guests_through(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(all(gb_nginx, gb_postgres)),
        ignore = "needs nginx and GUESTBRIDGE_TEST_POSTGRES_URL when the tests are built"
    )]
    async fn postgres() {
        helpers::require_postgres();
        super::nginx_lets_only_granted_guests_through(Backend::Postgres).await
    }
}

crate::both_backends!(the_verify_endpoint_answers_as_proxies_expect);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The on-premises app: answers every path with the `x-guestbridge-*` headers it was given.
async fn echo(req: HttpRequest) -> HttpResponse {
    let mut seen = Map::new();
    for (name, value) in req.headers() {
        if name.as_str().starts_with("x-guestbridge-") {
            seen.insert(
                name.as_str().to_string(),
                json!(value.to_str().unwrap_or("")),
            );
        }
    }
    HttpResponse::Ok().json(json!({"app": "upstream", "path": req.path(), "headers": seen}))
}

fn start_upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| App::new().default_service(web::to(echo)))
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
    tokio::spawn(server);
    port
}

/// nginx with the configuration docs/apps.md shows: `/` is the EHR viewer, `/imaging/` the
/// imaging app, each behind `auth_request`.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn protected(location: &str, app: &str, upstream: u16) -> String {
    format!(
        r#"
        location {location} {{
            auth_request /_guestbridge/{app};
            auth_request_set $gb_user $upstream_http_x_guestbridge_user;
            auth_request_set $gb_email $upstream_http_x_guestbridge_email;
            auth_request_set $gb_roles $upstream_http_x_guestbridge_roles;
            auth_request_set $gb_signin $upstream_http_x_guestbridge_signin;
            error_page 401 = @signin;
            proxy_set_header X-Guestbridge-User $gb_user;
            proxy_set_header X-Guestbridge-Email $gb_email;
            proxy_set_header X-Guestbridge-Roles $gb_roles;
            proxy_pass http://127.0.0.1:{upstream};
        }}
        location = /_guestbridge/{app} {{
            internal;
            proxy_pass http://guestbridge/auth/verify?app={app};
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }}
"#
    )
}

fn start_nginx(guestbridge: &str, upstream: u16) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let gb = guestbridge.trim_start_matches("http://");
    let conf = format!(
        r#"
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream guestbridge {{ server {gb}; }}
    server {{
        listen 127.0.0.1:{port};
        {ehr}
        {imaging}
        location @signin {{
            return 302 $gb_signin;
        }}
    }}
}}
"#,
        dir = dir.path().display(),
        ehr = protected("/", "ehr-viewer", upstream),
        imaging = protected("/imaging/", "imaging", upstream),
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    assert!(
        Path::new(NGINX).exists(),
        "nginx is required (GUESTBRIDGE_REQUIRE_NGINX=1) but {NGINX} is missing"
    );
    let child = Command::new(NGINX)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < WAIT, "nginx did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx {
        child,
        port,
        _dir: dir,
    }
}

/// A guest of globex (no MFA) who accepted their invitation: the browser holds their session.
/// Gives the browser and the person's SCIM id.
async fn signed_in_guest(
    app: &TestApp,
    globex: &Scim,
    smtp: &TestSmtp,
    user_name: &str,
    n: usize,
) -> (Browser, String) {
    accepted_invitation(app, globex, smtp, user_name, n, "/apps").await
}

async fn app_with_smtp(backend: Backend, smtp: &TestSmtp) -> TestApp {
    spawn_with(
        backend,
        &[("rules.toml", RULES)],
        &[("GUESTBRIDGE_SMTP_URL", smtp.url.as_str())],
    )
    .await
}

async fn guest_id(app: &TestApp, user_name: &str) -> String {
    sqlx::query_scalar("SELECT id FROM guests WHERE user_name = $1")
        .bind(user_name)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

async fn nginx_lets_only_granted_guests_through(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(backend, &smtp).await;
    let upstream = start_upstream();
    let nginx = start_nginx(&app.address, upstream);
    let site = format!("http://127.0.0.1:{}", nginx.port);

    // No session: nginx sends the browser to the portal's sign-in; the app sees nothing.
    let mut stranger = Browser::new(&app);
    let res = stranger.get(&format!("{site}/chart/42")).await;
    assert_eq!(res.status, StatusCode::FOUND, "{}", res.body);
    assert_eq!(
        res.location.as_deref(),
        Some(format!("{}/signin", app.address).as_str())
    );

    // A granted guest reaches the app, which learns who they are and their roles there. The
    // session cookie is the portal's: cookies are per host, and nginx and the portal share one.
    let (_, globex) = app.partner("globex").await;
    let (mut gus, _) = signed_in_guest(&app, &globex, &smtp, "gus@globex.example", 1).await;
    let gus_id = guest_id(&app, "gus@globex.example").await;
    let forged = reqwest::Client::new()
        .get(format!("{site}/chart/42"))
        .header(
            "cookie",
            gus.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
        .header("x-guestbridge-user", "someone-else")
        .header("x-guestbridge-roles", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::OK);
    let seen: Value = forged.json().await.unwrap();
    assert_eq!(seen["app"], "upstream");
    assert_eq!(seen["path"], "/chart/42");
    assert_eq!(
        seen["headers"],
        json!({
            "x-guestbridge-user": gus_id,
            "x-guestbridge-email": "gus@globex.example",
            "x-guestbridge-roles": "clinician,reader",
        }),
        "the app sees the verified identity, never the client's own headers"
    );

    // Signed in, but no grant for the imaging app: refused.
    let res = gus.get(&format!("{site}/imaging/study/7")).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.body);

    // An administrator suspends the guest: that ends their sessions, so the very next request
    // is sent to sign in (where a suspended guest gets nowhere); no cache to wait out.
    guestbridge::services::guest_actions::suspend(&app.deps, &test_actor(), &gus_id, None)
        .await
        .expect("suspend");
    let res = gus.get(&format!("{site}/chart/42")).await;
    assert_eq!(res.status, StatusCode::FOUND, "{}", res.body);
    assert!(!res.body.contains("upstream"));
}

async fn the_verify_endpoint_answers_as_proxies_expect(backend: Backend) {
    let smtp = TestSmtp::start();
    let app = app_with_smtp(backend, &smtp).await;
    let mut b = Browser::new(&app);

    let res = b.get("/auth/verify").await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "no app named");
    let res = b.get("/auth/verify?app=ehr-viewer").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let signin = format!("{}/signin", app.address);
    assert_eq!(
        res.headers["x-guestbridge-signin"].to_str().unwrap(),
        signin
    );
    assert_eq!(res.headers["cache-control"], "no-store");
    // Traefik and Caddy pass the answer to the browser: with redirect=1 it is a redirect.
    let res = b.get("/auth/verify?app=ehr-viewer&redirect=1").await;
    assert_eq!(res.status, StatusCode::FOUND);
    assert_eq!(res.location.as_deref(), Some(signin.as_str()));

    let (_, globex) = app.partner("globex").await;
    let (mut gus, user_id) = signed_in_guest(&app, &globex, &smtp, "gus@globex.example", 1).await;
    // Use of an app behind the proxy is activity, for the inactivity policy.
    let long_ago = chrono::Utc::now().timestamp_millis() - 40 * 86_400_000;
    sqlx::query("UPDATE guests SET last_seen_at = $1")
        .bind(long_ago)
        .execute(app.deps.db.pool())
        .await
        .unwrap();
    let res = gus.get("/auth/verify?app=ehr-viewer").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let seen: i64 = sqlx::query_scalar("SELECT last_seen_at FROM guests")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert!(seen > long_ago + 39 * 86_400_000, "activity recorded");
    assert_eq!(res.headers["x-guestbridge-roles"], "clinician,reader");
    assert_eq!(res.headers["x-guestbridge-name"], "Gus Guest");
    assert_eq!(
        gus.get("/auth/verify?app=imaging").await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        gus.get("/auth/verify?app=no-such-app").await.status,
        StatusCode::FORBIDDEN
    );

    // When the partner deactivates the person their access ends, and so does the door.
    let res = globex
        .patch(
            &format!("/Users/{user_id}"),
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": false}],
            }),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        gus.get("/auth/verify?app=ehr-viewer").await.status,
        StatusCode::UNAUTHORIZED,
        "the deactivation ended the guest's sessions"
    );

    // A guest whose partner requires MFA is sent to finish signing in, not let through.
    let (_, acme) = app.partner("acme").await;
    let (mut ann, _) =
        accepted_invitation(&app, &acme, &smtp, "ann@acme.example", 2, "/mfa/setup").await;
    let res = ann.get("/auth/verify?app=ehr-viewer").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers["x-guestbridge-signin"].to_str().unwrap(),
        format!("{}/mfa", app.address)
    );
}
