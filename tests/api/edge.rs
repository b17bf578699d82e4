//! The edge: the client address behind trusted proxies (rate limits per client, not per
//! proxy), Secure cookies under an https public URL, and native TLS with reload on SIGHUP.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use crate::both_backends;
use crate::helpers::{fresh_database, spawn_with, Backend, TestApp, TEST_SECRET_KEY};

both_backends!(
    forwarded_for_from_an_untrusted_peer_is_ignored,
    clients_behind_a_trusted_proxy_get_their_own_buckets,
    forged_and_malformed_hops_do_not_pick_the_bucket,
    cookies_are_secure_when_the_public_url_is_https,
    native_tls_serves_the_certificate_and_reloads_it_on_sighup
);

/// Sign-in link requests per address in 15 minutes (`MAILS_PER_IP`).
const PER_ADDRESS: usize = 10;

fn csrf_field(body: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = body.find(marker).expect("csrf field") + marker.len();
    let end = body[start..].find('"').expect("end of csrf") + start;
    body[start..end].to_string()
}

/// Ask for a sign-in link as the client behind `forwarded_for` (a fresh address each time,
/// so only the per-address limit can refuse).
async fn ask_for_link(app: &TestApp, forwarded_for: Option<&str>, n: usize) -> StatusCode {
    let with_header = |req: reqwest::RequestBuilder| match forwarded_for {
        Some(v) => req.header("X-Forwarded-For", v),
        None => req,
    };
    let page = with_header(app.client.get(format!("{}/signin", app.address)))
        .send()
        .await
        .unwrap();
    let pre = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("gb_pre="))
        .and_then(|c| c.split(';').next())
        .expect("pre-session cookie")
        .to_string();
    let csrf = csrf_field(&page.text().await.unwrap());
    let email = format!("nobody{n}-{}@edge.example", uuid::Uuid::new_v4().simple());
    with_header(app.client.post(format!("{}/signin", app.address)))
        .header("Cookie", pre)
        .form(&[("csrf", csrf.as_str()), ("email", email.as_str())])
        .send()
        .await
        .unwrap()
        .status()
}

/// Use up the bucket of `forwarded_for`, checking that the requests before were allowed.
async fn exhaust(app: &TestApp, forwarded_for: Option<&str>) {
    for n in 0..PER_ADDRESS {
        assert_eq!(
            ask_for_link(app, forwarded_for, n).await,
            StatusCode::OK,
            "request {n} of {forwarded_for:?}"
        );
    }
    assert_eq!(
        ask_for_link(app, forwarded_for, PER_ADDRESS).await,
        StatusCode::TOO_MANY_REQUESTS,
        "{forwarded_for:?} past its limit"
    );
}

async fn forwarded_for_from_an_untrusted_peer_is_ignored(backend: Backend) {
    let app = spawn_with(backend, &[], &[]).await;
    // Each request claims another address, but nobody vouches for the claims: they all
    // count against the peer.
    for n in 0..PER_ADDRESS {
        let claim = format!("198.51.100.{n}");
        assert_eq!(ask_for_link(&app, Some(&claim), n).await, StatusCode::OK);
    }
    assert_eq!(
        ask_for_link(&app, Some("198.51.100.200"), 99).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        ask_for_link(&app, None, 100).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

const TRUST_LOCALHOST: &[(&str, &str)] = &[("GUESTBRIDGE_TRUSTED_PROXIES", "127.0.0.1/32")];

async fn clients_behind_a_trusted_proxy_get_their_own_buckets(backend: Backend) {
    let app = spawn_with(backend, &[], TRUST_LOCALHOST).await;
    exhaust(&app, Some("198.51.100.1")).await;
    // Another guest behind the same proxy is not locked out, nor is the proxy itself.
    assert_eq!(
        ask_for_link(&app, Some("198.51.100.2"), 0).await,
        StatusCode::OK
    );
    assert_eq!(ask_for_link(&app, None, 0).await, StatusCode::OK);
}

async fn forged_and_malformed_hops_do_not_pick_the_bucket(backend: Backend) {
    let app = spawn_with(backend, &[], TRUST_LOCALHOST).await;
    exhaust(&app, Some("198.51.100.1")).await;
    // The client writes a fresh address in front; the proxy appends the one it saw.
    for forged in ["203.0.113.5, 198.51.100.1", "127.0.0.1, 198.51.100.1"] {
        assert_eq!(
            ask_for_link(&app, Some(forged), 0).await,
            StatusCode::TOO_MANY_REQUESTS,
            "{forged}"
        );
    }
    // A trusted hop in the chain vouches for the one before it.
    assert_eq!(
        ask_for_link(&app, Some("198.51.100.1, 127.0.0.1"), 0).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Malformed headers count against the peer (the proxy's own bucket).
    for n in 0..PER_ADDRESS {
        let bad = ["not-an-ip", "198.51.100.9:x", "[::1", "unknown"][n % 4];
        assert_eq!(
            ask_for_link(&app, Some(bad), n).await,
            StatusCode::OK,
            "{bad}"
        );
    }
    assert_eq!(
        ask_for_link(&app, None, 0).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn cookies_are_secure_when_the_public_url_is_https(backend: Backend) {
    for (url, secure) in [
        ("https://guests.example", true),
        ("http://guests.example", false),
    ] {
        let app = spawn_with(backend, &[], &[("GUESTBRIDGE_PUBLIC_URL", url)]).await;
        let res = app.get("/signin").await;
        let cookie = res
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("a cookie")
            .to_string();
        let has_secure = cookie.split(';').any(|a| a.trim() == "Secure");
        assert_eq!(has_secure, secure, "{url}: {cookie}");
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_cert(dir: &std::path::Path) -> Vec<u8> {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), made.key_pair.serialize_pem()).unwrap();
    made.cert.der().to_vec()
}

/// The certificate a new connection is served, trusting the given ones.
async fn served_cert(url: &str, trusted: &[&[u8]]) -> Option<Vec<u8>> {
    let mut builder = reqwest::Client::builder()
        .tls_info(true)
        .timeout(Duration::from_secs(5));
    for der in trusted {
        builder = builder.add_root_certificate(reqwest::Certificate::from_der(der).unwrap());
    }
    let res = builder.build().unwrap().get(url).send().await.ok()?;
    assert_eq!(res.status(), StatusCode::OK);
    res.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate().map(<[u8]>::to_vec))
}

async fn native_tls_serves_the_certificate_and_reloads_it_on_sighup(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    let first = write_cert(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let serve = |cert: &std::path::Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_guestbridge"));
        command
            .arg("serve")
            .env("GUESTBRIDGE_DATABASE_URL", &url)
            .env("GUESTBRIDGE_SECRET_KEY", TEST_SECRET_KEY)
            .env("GUESTBRIDGE_MAPPINGS", dir.path().join("no-mappings"))
            .env("GUESTBRIDGE_JOBS", "off")
            .env("GUESTBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
            .env("GUESTBRIDGE_TLS_CERT_FILE", cert)
            .env("GUESTBRIDGE_TLS_KEY_FILE", dir.path().join("key.pem"))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    };

    // A certificate file that cannot be read stops start-up, naming the setting.
    let missing = serve(&dir.path().join("missing.pem")).output().unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("tls_cert_file"), "{stderr}");

    let server = Server(
        serve(&dir.path().join("cert.pem"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let healthz = format!("https://127.0.0.1:{port}/healthz");
    let mut served = None;
    for _ in 0..100 {
        served = served_cert(&healthz, &[&first]).await;
        if served.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        served.as_deref(),
        Some(first.as_slice()),
        "first certificate"
    );
    // Plain HTTP is not served on the TLS port.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));

    let second = write_cert(dir.path());
    let hup = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let mut now_served = None;
    for _ in 0..100 {
        now_served = served_cert(&healthz, &[&first, &second]).await;
        if now_served.as_deref() == Some(second.as_slice()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        now_served.as_deref(),
        Some(second.as_slice()),
        "the replaced certificate after SIGHUP"
    );
}
