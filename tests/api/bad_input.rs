//! The bad input suite: SQL metacharacters and Unicode edge cases in filters, PATCH paths and
//! names; JSON nested 10,000 deep; a 100 MB body; invalid UTF-8; rule files with `..` and
//! odd names. Each input gets a clear 4xx (never a 5xx) and nothing is written.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn, url_encode, Backend, Scim, TestApp};
use crate::isolation_attacks::{backend_name, record_count};

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Strings that have broken parsers and SQL before.
fn nasty() -> Vec<String> {
    let mut v: Vec<String> = [
        "'",
        "\"",
        "' OR '1'='1",
        "\" or \"1\"=\"1",
        "'; DROP TABLE scim_users; --",
        "%",
        "_",
        "\\",
        "\\\"",
        "$1",
        "?",
        "/*",
        "*/",
        "--",
        ";",
        "`",
        "\u{0}",
        "a\u{0}b",
        "\u{202e}evil",
        "\u{200f}\u{200e}",
        "e\u{301}\u{301}\u{301}",
        "\u{fffd}",
        "\u{feff}",
        "\r\nBcc: x@evil.example",
        "\n",
        "\t",
        "😀",
        "𝔘𝔫𝔦",
        "..",
        "../../etc/passwd",
        "%00",
        "%27",
        "()",
        "[",
        "]",
        "{}",
        "\u{7f}",
        "\u{2028}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("x".repeat(10_000));
    v.push("é".repeat(5_000));
    v
}

async fn counts(app: &TestApp) -> Vec<i64> {
    let mut out = Vec::new();
    for table in [
        "scim_users",
        "scim_groups",
        "group_members",
        "scim_values",
        "audit_log",
        "guests",
    ] {
        out.push(
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(app.deps.db.pool())
                .await
                .unwrap(),
        );
    }
    out
}

async fn raw(scim: &Scim, method: Method, path: &str, body: Vec<u8>) -> (u16, String) {
    let res = scim
        .client
        .request(method, format!("{}/scim/v2{path}", scim.base))
        .bearer_auth(&scim.token)
        .header("Content-Type", "application/scim+json")
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

both_backends!(bad_input_is_refused_and_writes_nothing);

async fn bad_input_is_refused_and_writes_nothing(backend: Backend) {
    let app = spawn(backend).await;
    let (_, a) = app.partner("acme").await;
    let ann = a
        .create_user(
            &json!({"userName": "ann@acme.example", "emails": [{"value": "ann@acme.example"}]}),
        )
        .await;
    let before = counts(&app).await;
    let mut tried = 0usize;
    let mut failures: Vec<String> = Vec::new();
    macro_rules! check {
        ($what:expr, $status:expr, $body:expr, $ok:expr) => {{
            tried += 1;
            if !$ok.contains(&$status) {
                let body: &str = &$body;
                let end = body.char_indices().nth(300).map_or(body.len(), |(i, _)| i);
                failures.push(format!("{}: {} {}", $what, $status, &body[..end]));
            }
        }};
    }

    for s in nasty() {
        let quoted = serde_json::to_string(&s).unwrap();
        for filter in [
            format!("userName eq {quoted}"),
            format!("emails[value co {quoted}]"),
            format!("{s} eq \"x\""),
            format!("userName eq \"{s}\""),
            format!("userName sw {quoted} or {s}"),
        ] {
            let (st, body) = raw(
                &a,
                Method::GET,
                &format!("/Users?filter={}", url_encode(&filter)),
                vec![],
            )
            .await;
            // A well-formed filter over odd text finds nothing (200); a malformed one is a 400.
            check!(format!("filter {filter:?}"), st, &body, &[200, 400]);
            if st == 200 && !body.contains("\"totalResults\":0") {
                failures.push(format!("filter {filter:?} found something: {body}"));
            }
        }
        for path in [
            s.clone(),
            format!("emails[value eq {quoted}]"),
            format!("name.{s}"),
        ] {
            let op = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": path, "value": "x"}]});
            let (st, body) = raw(
                &a,
                Method::PATCH,
                &format!("/Users/{ann}"),
                op.to_string().into_bytes(),
            )
            .await;
            // A path that names nothing is a 400; a value filter matching no element too.
            check!(format!("PATCH path {path:?}"), st, &body, &[400]);
        }
        // A userName carrying control characters or NUL must be refused; others may be
        // accepted (then deleted again below, so counts compare).
        let (st, body) = raw(
            &a,
            Method::POST,
            "/Users",
            json!({"userName": s}).to_string().into_bytes(),
        )
        .await;
        check!(format!("userName {s:?}"), st, &body, &[201, 400, 409, 413]);
        if st == 201 {
            let id: Value = serde_json::from_str(&body).unwrap();
            a.delete(&format!("/Users/{}", id["id"].as_str().unwrap()))
                .await;
        }
    }

    // Invalid UTF-8, in a body and in a query.
    for bytes in [
        b"{\"userName\": \"\xff\xfe\"}".to_vec(),
        b"{\"userName\": \"\xed\xa0\x80\"}".to_vec(),
        b"{\"userName\": \"\\ud800\"}".to_vec(),
        b"\xef\xbb\xbf{\"userName\": 1}".to_vec(),
    ] {
        let (st, body) = raw(&a, Method::POST, "/Users", bytes.clone()).await;
        check!(format!("body {bytes:?}"), st, &body, &[400]);
    }
    let (st, body) = raw(
        &a,
        Method::GET,
        "/Users?filter=userName%20eq%20%22%FF%22",
        vec![],
    )
    .await;
    // Decoded lossily: a replacement character that matches nobody.
    check!("query %FF", st, &body, &[200, 400]);

    // JSON nested 10,000 deep, as a body and inside a PATCH value.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let (st, body) = raw(&a, Method::POST, "/Users", deep.clone().into_bytes()).await;
    check!("deep body", st, &body, &[400]);
    let deep_patch = format!(
        "{{\"schemas\":[\"{PATCH}\"],\"Operations\":[{{\"op\":\"add\",\"path\":\"title\",\"value\":{deep}}}]}}"
    );
    let (st, body) = raw(
        &a,
        Method::PATCH,
        &format!("/Users/{ann}"),
        deep_patch.into_bytes(),
    )
    .await;
    check!("deep PATCH value", st, &body, &[400]);
    let (st, body) = raw(
        &a,
        Method::POST,
        "/Bulk",
        format!("{{\"Operations\":{deep}}}").into_bytes(),
    )
    .await;
    check!("deep Bulk", st, &body, &[400, 413]);

    // 100 MB streamed: refused early, long before it could all be sent.
    let started = Instant::now();
    tried += 1;
    match huge_body_status(&a).await {
        Some(413) => {}
        other => failures.push(format!("100 MB body: {other:?}")),
    }
    if started.elapsed() > Duration::from_secs(10) {
        failures.push(format!("100 MB body took {:?}", started.elapsed()));
    }

    let after = counts(&app).await;
    // The nasty userNames that were accepted were deleted again: their audit rows remain.
    let mut before_no_audit = before.clone();
    let mut after_no_audit = after.clone();
    before_no_audit.remove(4);
    after_no_audit.remove(4);
    if before_no_audit != after_no_audit {
        failures.push(format!("rows written: {before:?} → {after:?}"));
    }
    let line = format!("inputs={tried} failures={}", failures.len());
    eprintln!("bad input ({}): {line}", backend_name(backend));
    record_count(
        "bad-input.count",
        &format!("http.{}", backend_name(backend)),
        &line,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Announce a 100 MB body, send at most its first 8 MB, and read the status the server
/// answers with meanwhile (it must not wait for the rest).
async fn huge_body_status(a: &Scim) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = a.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.ok()?;
    let head = format!(
        "POST /scim/v2/Users HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n",
        a.token,
        100 * 1024 * 1024
    );
    conn.write_all(head.as_bytes()).await.ok()?;
    let chunk = vec![b' '; 1 << 20];
    let (mut rd, mut wr) = conn.into_split();
    let writer = tokio::spawn(async move {
        for _ in 0..8 {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    writer.abort();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split(' ').nth(1)?.parse().ok()
}
