//! The isolation attack suite: with partner A's token, every way we know to read or change
//! partner B's data, generated as a matrix of route × method × B's identifiers × headers.
//! An attempt leaks when its reply differs from the reply to the same request naming an
//! identifier that exists nowhere (status, scimType, body with the identifier masked: that
//! is how an error revealing existence is caught), when any of B's identifying strings show
//! in a reply's body or headers, or when B's data or audit trail changed afterwards.

use std::collections::BTreeMap;
use std::sync::Mutex;

use reqwest::Method;
use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::{spawn_with_rules, test_actor, url_encode, Backend, Scim, TestApp};

#[path = "isolation_portal.rs"]
mod portal;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

pub const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = "Records"
launch_url = "https://ehr.example/launch"
roles = ["reader"]

[[app]]
id = "imaging"
name = "Imaging Archive"
description = "Images"
launch_url = "https://imaging.example/launch"
roles = ["viewer"]

[[rule]]
id = "everyone"
grants = [{ app = "ehr-viewer", role = "reader" }]

[[rule]]
id = "globex-imaging"
partners = ["globex"]
grants = [{ app = "imaging", role = "viewer" }]
"#;

/// Update one `key value…` line of a count file under target/tmp (tests share the files).
pub fn record_count(file: &str, key: &str, line: &str) {
    static WRITE: Mutex<()> = Mutex::new(());
    let _guard = WRITE.lock().unwrap();
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    let mut lines: BTreeMap<String, String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    lines.insert(key.to_string(), line.to_string());
    let text: String = lines.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Record one part's attempts and leaks (`scim+admin`, `portal`) and the backend's total over
/// the parts recorded so far (the parts run in parallel: the last to finish has them all).
pub fn record_attack_count(backend: Backend, part: &str, tried: usize, leaks: usize) {
    static TOTAL: Mutex<()> = Mutex::new(());
    let _guard = TOTAL.lock().unwrap();
    let name = backend_name(backend);
    let line = format!("attempts={tried} leaks={leaks}");
    eprintln!("isolation attacks ({name}, {part}): {line}");
    record_count("isolation-attacks.count", &format!("{part}.{name}"), &line);
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("isolation-attacks.count");
    let (mut all_tried, mut all_leaks) = (0usize, 0usize);
    for l in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let Some((key, rest)) = l.split_once(' ') else {
            continue;
        };
        if key.starts_with("total.") || !key.ends_with(&format!(".{name}")) {
            continue;
        }
        for (k, v) in rest.split(' ').filter_map(|kv| kv.split_once('=')) {
            let n: usize = v.parse().unwrap_or(0);
            match k {
                "attempts" => all_tried += n,
                "leaks" => all_leaks += n,
                _ => {}
            }
        }
    }
    record_count(
        "isolation-attacks.count",
        &format!("total.{name}"),
        &format!("attempts={all_tried} leaks={all_leaks}"),
    );
}

pub fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// One of B's identifiers and the never-issued identifier of the same shape it is compared
/// with.
struct Probe {
    value: String,
    ghost: String,
}

/// A request with `{X}` standing for the identifier.
struct Attempt {
    method: Method,
    path: String,
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
}

impl Attempt {
    fn new(method: Method, path: impl Into<String>) -> Attempt {
        Attempt {
            method,
            path: path.into(),
            body: None,
            headers: Vec::new(),
        }
    }

    fn body(mut self, body: Value) -> Attempt {
        self.body = Some(body.to_string());
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Attempt {
        self.headers.push((name, value.to_string()));
        self
    }

    fn describe(&self) -> String {
        format!(
            "{} {} {:?} {}",
            self.method,
            self.path,
            self.headers,
            self.body.as_deref().unwrap_or("")
        )
    }
}

/// What a reply says, with the identifier it was asked about masked and everything that
/// differs between any two replies (fresh ids, instants) made uniform.
#[derive(Debug, PartialEq)]
struct Reply {
    status: u16,
    scim_type: Option<String>,
    headers: Vec<(String, String)>,
    body: String,
}

/// Send `attempt` naming `value`; the reply masked, and its raw text for the string scan.
async fn send(scim: &Scim, attempt: &Attempt, value: &str) -> (Reply, String) {
    let fill = |s: &str| s.replace("{XQ}", &url_encode(value)).replace("{X}", value);
    let mut req = scim
        .client
        .request(
            attempt.method.clone(),
            format!("{}/scim/v2{}", scim.base, fill(&attempt.path)),
        )
        .bearer_auth(&scim.token);
    for (k, v) in &attempt.headers {
        req = req.header(*k, fill(v));
    }
    if let Some(b) = &attempt.body {
        req = req
            .header("Content-Type", "application/scim+json")
            .body(fill(b));
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let mut headers: Vec<(String, String)> = res
        .headers()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "date" | "content-length" | "x-request-id"))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
        .collect();
    headers.sort();
    let text = res.text().await.expect("body");
    let raw = format!("{headers:?}\n{text}");
    let scim_type = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["scimType"].as_str().map(str::to_string));
    let headers = headers
        .into_iter()
        .map(|(k, v)| (k, mask(&v, value)))
        .collect();
    let body = mask(&text, value);
    (
        Reply {
            status,
            scim_type,
            headers,
            body,
        },
        mask_only_value(&raw, value),
    )
}

fn mask_only_value(text: &str, value: &str) -> String {
    let lower = text.to_lowercase();
    let value = value.to_lowercase();
    let value_q = url_encode(&value).to_lowercase();
    lower.replace(&value, "<x>").replace(&value_q, "<x>")
}

/// Lower-case, the identifier replaced by `<x>`, UUIDs by `<id>`, RFC 3339 instants by `<t>`.
fn mask(text: &str, value: &str) -> String {
    let s = mask_only_value(text, value);
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if let Some(n) = uuid_at(b, i) {
            out.push_str("<id>");
            i += n;
        } else if let Some(n) = instant_at(b, i) {
            out.push_str("<t>");
            i += n;
        } else {
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn uuid_at(b: &[u8], i: usize) -> Option<usize> {
    let groups = [8, 4, 4, 4, 12];
    let mut j = i;
    for (n, len) in groups.iter().enumerate() {
        for _ in 0..*len {
            if !b.get(j)?.is_ascii_hexdigit() {
                return None;
            }
            j += 1;
        }
        if n < 4 {
            if *b.get(j)? != b'-' {
                return None;
            }
            j += 1;
        }
    }
    Some(j - i)
}

fn instant_at(b: &[u8], i: usize) -> Option<usize> {
    // 2026-12-02t22:01:34[.123]z (lower-cased by then)
    let shape = b"dddd-dd-ddtdd:dd:dd";
    for (k, c) in shape.iter().enumerate() {
        let got = *b.get(i + k)?;
        let ok = if *c == b'd' {
            got.is_ascii_digit()
        } else {
            got == *c
        };
        if !ok {
            return None;
        }
    }
    let mut j = i + shape.len();
    while b.get(j).is_some_and(|c| c.is_ascii_digit() || *c == b'.') {
        j += 1;
    }
    if b.get(j) == Some(&b'z') {
        j += 1;
    }
    Some(j - i)
}

/// B's resources and audit as B and the database see them.
async fn snapshot(app: &TestApp, b: &Scim, partner_id: &str) -> Value {
    let users = b.get("/Users?count=1000").await.body;
    let groups = b.get("/Groups?count=1000").await.body;
    let mut counts = serde_json::Map::new();
    for table in [
        "scim_users",
        "scim_groups",
        "group_members",
        "scim_values",
        "audit_log",
        "guests",
        "partner_tokens",
    ] {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {table} WHERE partner_id = $1"
        ))
        .bind(partner_id)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
        counts.insert(table.into(), n.into());
    }
    json!({"users": users, "groups": groups, "counts": counts})
}

fn user(user_name: &str, external_id: &str, display: &str, email: &str) -> Value {
    json!({"schemas": [USER], "userName": user_name, "externalId": external_id,
           "displayName": display, "name": {"givenName": display, "familyName": "Secret"},
           "emails": [{"value": email, "type": "work", "primary": true},
                      {"value": format!("home.{email}"), "type": "home"}]})
}

/// Every attempt, for one identifier.
fn attempts(a_user: &str, a_group: &str) -> Vec<Attempt> {
    let mut out = Vec::new();
    let patch_active = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let patch_members_remove = json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": "members[value eq \"{X}\"]"}]});
    for resource in ["Users", "Groups"] {
        let by_id = format!("/{resource}/{{X}}");
        let replacement = if resource == "Users" {
            user(
                "ghost-put@nowhere.example",
                "ghost-put",
                "Ghost",
                "ghost-put@nowhere.example",
            )
        } else {
            json!({"schemas": [GROUP], "displayName": "Ghost put"})
        };
        for (h, v) in [
            ("", ""),
            ("If-None-Match", "W/\"1\""),
            ("If-None-Match", "W/\"2\""),
            ("If-None-Match", "*"),
            ("If-Match", "W/\"1\""),
        ] {
            let with = |a: Attempt| if h.is_empty() { a } else { a.header(h, v) };
            out.push(with(Attempt::new(Method::GET, by_id.clone())));
            out.push(with(Attempt::new(
                Method::GET,
                format!("{by_id}?attributes=id,meta"),
            )));
            out.push(with(Attempt::new(
                Method::GET,
                format!("{by_id}?excludedAttributes=members,groups"),
            )));
            if h != "If-None-Match" {
                out.push(with(
                    Attempt::new(Method::PUT, by_id.clone()).body(replacement.clone()),
                ));
                out.push(with(
                    Attempt::new(Method::PATCH, by_id.clone()).body(patch_active.clone()),
                ));
                out.push(with(
                    Attempt::new(Method::PATCH, by_id.clone()).body(patch_members_remove.clone()),
                ));
                out.push(with(Attempt::new(Method::DELETE, by_id.clone())));
            }
        }
    }
    let user_filters = [
        "id eq \"{X}\"",
        "externalId eq \"{X}\"",
        "userName eq \"{X}\"",
        "userName sw \"{X}\"",
        "emails.value eq \"{X}\"",
        "emails co \"{X}\"",
        "emails[type eq \"work\" and value eq \"{X}\"]",
        "displayName eq \"{X}\"",
        "name.givenName eq \"{X}\"",
        "groups.value eq \"{X}\"",
        "groups eq \"{X}\"",
        "groups.display eq \"{X}\"",
        "userName pr and (id eq \"{X}\" or externalId eq \"{X}\")",
        "not (id ne \"{X}\")",
        "meta.location co \"{X}\"",
    ];
    let group_filters = [
        "id eq \"{X}\"",
        "externalId eq \"{X}\"",
        "displayName eq \"{X}\"",
        "displayName co \"{X}\"",
        "members.value eq \"{X}\"",
        "members eq \"{X}\"",
        "members[value eq \"{X}\"]",
        "members.display eq \"{X}\"",
    ];
    for (resource, filters) in [("Users", &user_filters[..]), ("Groups", &group_filters[..])] {
        for f in filters {
            let q = url_encode(f).replace("%7BX%7D", "{XQ}");
            out.push(Attempt::new(Method::GET, format!("/{resource}?filter={q}")));
            out.push(Attempt::new(
                Method::GET,
                format!("/{resource}?filter={q}&attributes=id&sortBy=meta.created&count=5"),
            ));
            out.push(
                Attempt::new(Method::POST, format!("/{resource}/.search"))
                    .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": f})),
            );
            out.push(
                Attempt::new(Method::POST, "/.search")
                    .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": f})),
            );
        }
    }
    // A's own group pointed at the identifier.
    let a_group_path = format!("/Groups/{a_group}");
    for op in ["add", "replace"] {
        out.push(Attempt::new(Method::PATCH, a_group_path.clone()).body(
            json!({"schemas": [PATCH], "Operations": [{"op": op, "path": "members", "value": [{"value": "{X}"}]}]}),
        ));
        out.push(Attempt::new(Method::PATCH, a_group_path.clone()).body(
            json!({"schemas": [PATCH], "Operations": [{"op": op, "value": {"members": [{"value": "{X}"}]}}]}),
        ));
    }
    out.push(Attempt::new(Method::PUT, a_group_path.clone()).body(
        json!({"schemas": [GROUP], "displayName": "Acme Nurses", "members": [{"value": a_user}, {"value": "{X}"}]}),
    ));
    out.push(Attempt::new(Method::POST, "/Groups").body(
        json!({"schemas": [GROUP], "displayName": "Pointing at {X}", "members": [{"value": "{X}"}]}),
    ));
    out.push(Attempt::new(Method::PATCH, format!("/Users/{a_user}")).body(
        json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "groups", "value": [{"value": "{X}"}]}]}),
    ));
    // A user of A's own carrying the identifier: allowed, and must answer as for any value.
    out.push(
        Attempt::new(Method::POST, "/Users").body(json!({"schemas": [USER], "userName": "{X}"})),
    );
    out.push(Attempt::new(Method::POST, "/Users").body(
        json!({"schemas": [USER], "userName": "x-{X}", "externalId": "{X}", "emails": [{"value": "{X}"}]}),
    ));
    // Bulk: direct ids and bulkId chains.
    let bulk = |ops: Value| {
        Attempt::new(Method::POST, "/Bulk").body(json!({"schemas": [BULK], "Operations": ops}))
    };
    for method in ["PUT", "PATCH", "DELETE"] {
        for resource in ["Users", "Groups"] {
            let data = match (method, resource) {
                ("PATCH", _) => patch_active.clone(),
                ("PUT", "Users") => json!({"schemas": [USER], "userName": "ghost-bulk"}),
                ("PUT", _) => json!({"schemas": [GROUP], "displayName": "ghost-bulk"}),
                _ => Value::Null,
            };
            out.push(bulk(
                json!([{"method": method, "path": format!("/{resource}/{{X}}"), "data": data}]),
            ));
            out.push(bulk(json!([{"method": method, "path": format!("/{resource}/{{X}}"), "version": "W/\"1\"", "data": data}])));
        }
    }
    out.push(bulk(json!([
        {"method": "POST", "bulkId": "g1", "path": "/Groups",
         "data": {"schemas": [GROUP], "displayName": "Bulk group {X}", "members": [{"value": "{X}"}]}}
    ])));
    out.push(bulk(json!([
        {"method": "POST", "bulkId": "{X}", "path": "/Users", "data": {"schemas": [USER], "userName": "bulk-{X}"}},
        {"method": "PATCH", "path": "/Groups/{X}",
         "data": {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:{X}"}]}]}}
    ])));
    out.push(bulk(json!([
        {"method": "PATCH", "path": a_group_path,
         "data": {"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": "bulkId:{X}"}]}]}}
    ])));
    out.push(bulk(json!([
        {"method": "POST", "bulkId": "u1", "path": "/Users", "data": {"schemas": [USER], "userName": "chain-{X}"}},
        {"method": "POST", "bulkId": "g2", "path": "/Groups",
         "data": {"schemas": [GROUP], "displayName": "Chain {X}", "members": [{"value": "bulkId:u1"}, {"value": "{X}"}]}}
    ])));
    out
}

both_backends!(partner_a_cannot_reach_partner_b);

async fn partner_a_cannot_reach_partner_b(backend: Backend) {
    let app = spawn_with_rules(backend, &[("rules.toml", RULES)]).await;
    let (_, a) = app.partner("acme").await;
    let (globex, b) = app.partner("globex").await;

    let a_user = a
        .create_user(&user(
            "ann@acme.example",
            "acme-ann",
            "Ann",
            "ann@acme.example",
        ))
        .await;
    let a_group_res = a
        .post("/Groups", &json!({"schemas": [GROUP], "displayName": "Acme Nurses", "members": [{"value": a_user}]}))
        .await;
    let a_group = a_group_res.body["id"].as_str().unwrap().to_string();

    let bob = b
        .create_user(&user(
            "bob.secret@globex.example",
            "globex-ext-bob",
            "Bobsecret",
            "bob.work@globex.example",
        ))
        .await;
    let carol = b
        .create_user(&user(
            "carol.secret@globex.example",
            "globex-ext-carol",
            "Carolsecret",
            "carol.work@globex.example",
        ))
        .await;
    let g = b
        .post(
            "/Groups",
            &json!({"schemas": [GROUP], "displayName": "Globex Cardiology Secret",
                    "externalId": "globex-ext-cardio", "members": [{"value": bob}, {"value": carol}]}),
        )
        .await;
    let b_group = g.body["id"].as_str().unwrap().to_string();
    // A second version of bob, so ETags other than W/"1" exist too.
    b.patch(
        &format!("/Users/{bob}"),
        &json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Nurse"}]}),
    )
    .await;

    let secrets: Vec<String> = [
        bob.as_str(),
        carol.as_str(),
        b_group.as_str(),
        "bob.secret@globex.example",
        "carol.secret@globex.example",
        "bob.work@globex.example",
        "home.bob.work@globex.example",
        "carol.work@globex.example",
        "globex-ext-bob",
        "globex-ext-carol",
        "globex-ext-cardio",
        "Bobsecret",
        "Carolsecret",
        "Globex Cardiology Secret",
    ]
    .iter()
    .map(|s| s.to_lowercase())
    .collect();

    let mut probes: Vec<Probe> = Vec::new();
    for (i, s) in [bob.as_str(), carol.as_str(), b_group.as_str()]
        .iter()
        .enumerate()
    {
        let _ = i;
        probes.push(Probe {
            value: s.to_string(),
            ghost: uuid::Uuid::now_v7().to_string(),
        });
    }
    for (i, s) in [
        "bob.secret@globex.example",
        "carol.secret@globex.example",
        "bob.work@globex.example",
        "globex-ext-bob",
        "globex-ext-cardio",
        "Bobsecret",
        "Globex Cardiology Secret",
    ]
    .iter()
    .enumerate()
    {
        let ghost = if s.contains('@') {
            format!("ghost{i}@nowhere.example")
        } else {
            format!("Ghost{i} nowhere")
        };
        probes.push(Probe {
            value: s.to_string(),
            ghost,
        });
    }
    // Case variants last, their ghosts the case variants of the earlier ghosts, so both meet
    // the same case-insensitive uniqueness.
    let upper: Vec<Probe> = probes
        .iter()
        .filter(|p| p.value.contains('@') || p.value.contains('-') && !p.value.contains(' '))
        .map(|p| Probe {
            value: p.value.to_uppercase(),
            ghost: p.ghost.to_uppercase(),
        })
        .collect();
    probes.extend(upper);

    let before = snapshot(&app, &b, globex.id.as_str()).await;

    let matrix = attempts(&a_user, &a_group);
    let mut tried = 0usize;
    let mut leaks: Vec<String> = Vec::new();
    for probe in &probes {
        for attempt in &matrix {
            let (got, raw) = send(&a, attempt, &probe.value).await;
            let (control, _) = send(&a, attempt, &probe.ghost).await;
            tried += 1;
            if got != control {
                leaks.push(format!(
                    "{} with {}: {got:?} differs from {control:?}",
                    attempt.describe(),
                    probe.value
                ));
            } else if let Some(s) = secrets.iter().find(|s| raw.contains(s.as_str())) {
                leaks.push(format!(
                    "{} with {}: reply shows {s}: {raw}",
                    attempt.describe(),
                    probe.value
                ));
            }
            if got.status >= 500 {
                leaks.push(format!(
                    "{} with {}: {got:?}",
                    attempt.describe(),
                    probe.value
                ));
            }
        }
    }
    let after = snapshot(&app, &b, globex.id.as_str()).await;
    if before != after {
        leaks.push(format!("B's data changed: {before} → {after}"));
    }

    let (admin_tried, admin_leaks) = admin_with_partner_tokens(&app, &a, &b, &bob).await;
    tried += admin_tried;
    leaks.extend(admin_leaks);
    let after_admin = snapshot(&app, &b, globex.id.as_str()).await;
    if after != after_admin {
        leaks.push(format!(
            "B's data changed by admin attempts: {after} → {after_admin}"
        ));
    }

    record_attack_count(backend, "scim+admin", tried, leaks.len());
    assert!(tried >= 500, "only {tried} attempts");
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
}

/// Every admin route with A's and B's partner tokens: refused, nothing written.
async fn admin_with_partner_tokens(
    app: &TestApp,
    a: &Scim,
    b: &Scim,
    bob_user: &str,
) -> (usize, Vec<String>) {
    let guest_id: String = sqlx::query_scalar("SELECT id FROM guests WHERE user_id = $1")
        .bind(bob_user)
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    let admin = guestbridge::services::partners::issue_admin_token(&app.deps, &test_actor())
        .await
        .unwrap();
    let tokens: Value = app
        .client
        .get(format!("{}/api/v1/partners/globex/tokens", app.address))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = tokens.get("tokens").unwrap_or(&tokens);
    let b_token_id = list[0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{tokens}"))
        .to_string();
    let routes: Vec<(Method, String)> = vec![
        (Method::GET, "/guests".into()),
        (Method::GET, "/guests?partner=globex".into()),
        (Method::GET, format!("/guests/{guest_id}")),
        (Method::GET, format!("/guests/{guest_id}/explain")),
        (Method::POST, format!("/guests/{guest_id}/approve")),
        (Method::POST, format!("/guests/{guest_id}/invitation")),
        (Method::DELETE, format!("/guests/{guest_id}/invitation")),
        (Method::GET, "/imports".into()),
        (Method::GET, format!("/imports/{}", uuid::Uuid::now_v7())),
        (
            Method::GET,
            format!("/imports/{}/errors.csv", uuid::Uuid::now_v7()),
        ),
        (Method::GET, "/partners/globex/tokens".into()),
        (Method::GET, "/partners/acme/tokens".into()),
        (
            Method::DELETE,
            format!("/partners/globex/tokens/{b_token_id}"),
        ),
        (Method::DELETE, format!("/admin-tokens/{b_token_id}")),
        (Method::GET, "/sync".into()),
        (
            Method::POST,
            format!("/sync/events/{}/replay", uuid::Uuid::now_v7()),
        ),
        (Method::POST, "/sync/targets/downstream/reconcile".into()),
        (Method::GET, "/mappings".into()),
        (Method::POST, "/mappings/diff".into()),
        (Method::POST, "/mappings/reload".into()),
    ];
    let imports_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM imports")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    let audit_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    let mut tried = 0;
    let mut leaks = Vec::new();
    for scim in [a, b] {
        for auth in [
            format!("Bearer {}", scim.token),
            format!("bearer {}", scim.token),
            scim.token.clone(),
        ] {
            for (method, path) in &routes {
                let res = app
                    .client
                    .request(method.clone(), format!("{}/api/v1{path}", app.address))
                    .header("Authorization", &auth)
                    .send()
                    .await
                    .unwrap();
                tried += 1;
                let status = res.status().as_u16();
                let text = res.text().await.unwrap();
                if status != 401 && status != 403 {
                    leaks.push(format!(
                        "{method} /api/v1{path} with a partner token: {status} {text}"
                    ));
                }
            }
            for partner in ["globex", "acme"] {
                for dry_run in ["true", "false"] {
                    let form = reqwest::multipart::Form::new().part(
                        "file",
                        reqwest::multipart::Part::bytes(
                            b"userName,email,givenName,familyName\nmallory@globex.example,mallory@globex.example,Mal,Lory\n".to_vec(),
                        )
                        .file_name("roster.csv"),
                    );
                    let res = app
                        .client
                        .post(format!(
                            "{}/api/v1/imports?partner={partner}&mode=full&dry_run={dry_run}&force=true",
                            app.address
                        ))
                        .header("Authorization", &auth)
                        .multipart(form)
                        .send()
                        .await
                        .unwrap();
                    tried += 1;
                    let status = res.status().as_u16();
                    if status != 401 && status != 403 {
                        leaks.push(format!(
                            "import into {partner} with a partner token: {status}"
                        ));
                    }
                }
            }
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let imports_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM imports")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    let audit_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    if imports_after != imports_before || audit_after != audit_before {
        leaks.push(format!(
            "admin attempts wrote: imports {imports_before}→{imports_after}, audit {audit_before}→{audit_after}"
        ));
    }
    // B's token still works: no attempt revoked it.
    if b.get("/Users?count=1").await.status.as_u16() != 200 {
        leaks.push("B's token was revoked by a partner".into());
    }
    (tried, leaks)
}
