//! The admin API against its own OpenAPI document: every operation the document describes is
//! called on the running app (successes and errors: 400, 401, 403, 404, 409, 422), and each
//! answer's status must be documented for that operation and its body must validate against
//! the documented schema (JSON Schema 2020-12, with the document's components embedded so its
//! `$ref`s resolve; objects refuse properties the schema does not name). The CSV downloads are
//! checked by content type. The routes each `configure` in src/admin registers must all be in
//! the document, so an endpoint added without documentation fails here. The document itself
//! is checked against the OpenAPI 3.1 specification by `openapi-spec-validator` (Python);
//! without it that test says it is skipped, unless GUESTBRIDGE_REQUIRE_OPENAPI_VALIDATOR=1
//! (CI), where it fails.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::admin_login::{login_with_password, Visitor, PASSWORD};
use crate::both_backends;
use crate::helpers::{read, spawn, spawn_with, test_actor, Backend, Res, TestApp};
use crate::smtp::TestSmtp;
use guestbridge::domain::{AdminRole, PartnerSlug};
use guestbridge::services::admin_auth::RoleGrant;
use guestbridge::services::partners;

both_backends!(every_operation_answers_as_the_document_says);

#[test]
fn the_document_is_valid_openapi_3_1() {
    use guestbridge::admin::openapi::AdminApiDoc;
    use utoipa::OpenApi;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, AdminApiDoc::openapi().to_json().unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output();
    let required = std::env::var("GUESTBRIDGE_REQUIRE_OPENAPI_VALIDATOR").is_ok_and(|v| v == "1");
    let missing = match &out {
        Err(_) => true,
        Ok(o) => String::from_utf8_lossy(&o.stderr).contains("No module named"),
    };
    if missing {
        assert!(
            !required,
            "GUESTBRIDGE_REQUIRE_OPENAPI_VALIDATOR=1 but python3 -m openapi_spec_validator cannot run"
        );
        eprintln!("skipped: python3 with openapi-spec-validator is not installed");
        return;
    }
    let out = out.unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = ""
launch_url = "https://ehr.example/"
roles = ["reader"]

[[app]]
id = "rota"
name = "Rota"
description = ""
launch_url = "https://rota.example/"
roles = ["viewer"]

[[partner]]
slug = "acme"
max_access_days = 120

[[partner]]
slug = "beta"
approval = "admin"

[[rule]]
id = "nurses"
grants = [{ app = "ehr-viewer", role = "reader" }, { app = "rota", role = "viewer" }]
access_days = 30
"#;

/// What a request sends.
enum Body {
    None,
    Json(Value),
    /// A multipart upload with this CSV as the field `file` (or, with `false`, under another
    /// name, which the import refuses).
    Csv(&'static str, bool),
}

/// The document, the callers, and which operations have been called.
struct Checker {
    base: String,
    client: reqwest::Client,
    doc: Value,
    admin: String,
    auditor: String,
    partner_admin: String,
    called: BTreeSet<(String, String)>,
}

/// A JSON Schema validating a body against `schema`: the document's components are embedded
/// so that its `$ref`s resolve, the references are then inlined, and every object schema that
/// declares properties refuses others (`unevaluatedProperties`), so an undocumented field
/// fails. A schema composed by `allOf` is not closed itself; the one composing it is.
fn with_components(doc: &Value, schema: &Value) -> Value {
    let embedded = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    let inlined = jsonschema::dereference(&embedded).expect("the document's $refs resolve");
    let mut schema = inlined["allOf"][0].clone();
    close_objects(&mut schema, false);
    schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    schema
}

fn declares_properties(schema: &Value) -> bool {
    schema.get("properties").is_some()
        || schema["allOf"]
            .as_array()
            .is_some_and(|all| all.iter().any(declares_properties))
}

fn close_objects(schema: &mut Value, composed: bool) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let close = !composed && {
        let view = Value::Object(object.clone());
        declares_properties(&view)
    };
    if close {
        object.insert("unevaluatedProperties".into(), json!(false));
    }
    if let Some(props) = object.get_mut("properties").and_then(Value::as_object_mut) {
        for p in props.values_mut() {
            close_objects(p, false);
        }
    }
    if let Some(items) = object.get_mut("items") {
        close_objects(items, false);
    }
    for (key, composed) in [("allOf", true), ("oneOf", false), ("anyOf", false)] {
        if let Some(all) = object.get_mut(key).and_then(Value::as_array_mut) {
            for s in all {
                close_objects(s, composed);
            }
        }
    }
}

/// Why `body` does not validate against `schema` (none when it does).
fn schema_errors(doc: &Value, schema: &Value, body: &Value) -> Vec<String> {
    let schema = with_components(doc, schema);
    let validator = jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("bad schema {schema}: {e}"));
    validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The checker is not vacuous: a real answer validates, and the same answer with a field
/// added, a field missing, or a field of the wrong type does not, also inside a page.
fn assert_schema_checks_bite(doc: &Value, partner: &Value) {
    let one = &doc["paths"]["/api/v1/partners/{slug}"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    let page = &doc["paths"]["/api/v1/partners"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    assert_eq!(schema_errors(doc, one, partner), Vec::<String>::new());
    let mut extra = partner.clone();
    extra["surprise"] = json!(1);
    let mut missing = partner.clone();
    missing.as_object_mut().unwrap().remove("slug");
    let mut wrong = partner.clone();
    wrong["disabled"] = json!("no");
    for bad in [&extra, &missing, &wrong] {
        assert!(!schema_errors(doc, one, bad).is_empty(), "{bad} passed");
        let listed = json!({"items": [bad], "next_cursor": null});
        assert!(
            !schema_errors(doc, page, &listed).is_empty(),
            "{listed} passed"
        );
    }
    // A composed schema (a guest with its grants) refuses what is not a guest.
    let guest_with_grants = json!({"$ref": "#/components/schemas/GuestWithGrants"});
    assert!(!schema_errors(doc, &guest_with_grants, partner).is_empty());
}

/// The document's path template for a concrete path: same segments, `{…}` matching any; the
/// template with the most literal segments wins (`/guests/{id}/invitation` over nothing).
fn template_of(doc: &Value, path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .keys()
        .filter_map(|t| {
            let tsegs: Vec<&str> = t.split('/').collect();
            if tsegs.len() != segs.len() {
                return None;
            }
            let mut literal = 0;
            for (a, b) in tsegs.iter().zip(&segs) {
                if a.starts_with('{') {
                    continue;
                }
                if a != b {
                    return None;
                }
                literal += 1;
            }
            Some((literal, t.clone()))
        })
        .max()
        .map(|(_, t)| t)
}

impl Checker {
    /// Send a request as `token` and check the answer against the document.
    async fn call(&mut self, token: Option<&str>, method: Method, path: &str, body: Body) -> Res {
        self.send(token, &[], method, path, body).await
    }

    /// The same with extra headers (a console session's cookie and CSRF token).
    async fn send(
        &mut self,
        token: Option<&str>,
        headers: &[(&str, &str)],
        method: Method,
        path: &str,
        body: Body,
    ) -> Res {
        let url = format!("{}{path}", self.base);
        let mut req = self.client.request(method.clone(), &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Csv(csv, as_file) => req.multipart(reqwest::multipart::Form::new().part(
                if as_file { "file" } else { "other" },
                reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("roster.csv"),
            )),
        };
        let res = read(req.send().await.expect("request")).await;
        self.check(&method, path, &res);
        res
    }

    fn check(&mut self, method: &Method, path: &str, res: &Res) {
        let full = format!("/api/v1{}", path.split('?').next().unwrap_or(path));
        let template = template_of(&self.doc, &full)
            .unwrap_or_else(|| panic!("{method} {full} is in no path of the document"));
        let m = method.as_str().to_ascii_lowercase();
        let op = &self.doc["paths"][&template][&m];
        assert!(op.is_object(), "{method} {template} is not documented");
        self.called.insert((m, template.clone()));
        let status = res.status.as_u16().to_string();
        let documented = &op["responses"][&status];
        assert!(
            documented.is_object(),
            "{method} {path} answered {status}, which {template} does not document: {}",
            res.body
        );
        let content_type = res.header("content-type").unwrap_or("").to_string();
        match documented["content"].as_object() {
            None => assert!(
                res.body.is_null(),
                "{method} {path}: {status} has no documented body, got {}",
                res.body
            ),
            Some(content) if content.contains_key("application/json") => {
                assert!(
                    content_type.starts_with("application/json"),
                    "{method} {path}: {content_type}"
                );
                let schema = &content["application/json"]["schema"];
                let errors = schema_errors(&self.doc, schema, &res.body);
                assert!(
                    errors.is_empty(),
                    "{method} {path} ({status}) does not match its schema: {errors:?}\n{}",
                    res.body
                );
            }
            Some(content) => {
                let documented_type = content.keys().next().unwrap();
                assert!(
                    content_type.starts_with(documented_type.as_str()),
                    "{method} {path}: {content_type}, documented {documented_type}"
                );
            }
        }
    }

    async fn get(&mut self, token: Option<&str>, path: &str, want: u16) -> Res {
        self.expect(token, Method::GET, path, Body::None, want)
            .await
    }

    async fn post(&mut self, token: Option<&str>, path: &str, body: Body, want: u16) -> Res {
        self.expect(token, Method::POST, path, body, want).await
    }

    async fn patch(&mut self, token: Option<&str>, path: &str, body: Body, want: u16) -> Res {
        self.expect(token, Method::PATCH, path, body, want).await
    }

    async fn delete(&mut self, token: Option<&str>, path: &str, want: u16) -> Res {
        self.expect(token, Method::DELETE, path, Body::None, want)
            .await
    }

    async fn expect(
        &mut self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Body,
        want: u16,
    ) -> Res {
        let res = self.call(token, method.clone(), path, body).await;
        assert_eq!(res.status.as_u16(), want, "{method} {path}: {}", res.body);
        res
    }
}

/// A webhook receiver on loopback that refuses every event (400), so events to it become
/// dead letters at once.
async fn refusing_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                // One read is the request's head (and small body); the answer closes.
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    url
}

async fn token_of(app: &TestApp, role: AdminRole, partner: Option<&str>) -> String {
    let grant = RoleGrant {
        role,
        partner: partner.map(|p| PartnerSlug::parse(p).unwrap()),
        sponsor: None,
    };
    let issued = partners::issue_admin_token_with_role(&app.deps, &test_actor(), "t", None, &grant)
        .await
        .unwrap();
    crate::log_scan::register_secret(&issued.secret);
    issued.secret
}

/// The routes src/admin's `configure` functions register: `(method, /api/v1 path)`.
fn registered_routes() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/admin");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for piece in text.split(".route(").skip(1) {
            let path = piece.split('"').nth(1).unwrap();
            let method = piece.split("web::").nth(1).unwrap();
            let method = &method[..method.find('(').unwrap()];
            routes.insert((method.to_string(), format!("/api/v1{path}")));
        }
    }
    routes
}

fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            ops.insert((method.clone(), path.clone()));
        }
    }
    ops
}

async fn every_operation_answers_as_the_document_says(backend: Backend) {
    let smtp = TestSmtp::start();
    let downstream = spawn(backend).await;
    let (_, down) = downstream.partner("hospital").await;
    let hook = refusing_receiver().await;
    let targets = json!([
        {"name": "downstream", "type": "scim", "url": format!("{}/scim/v2", downstream.address), "secret": down.token},
        {"name": "hooks", "type": "webhook", "url": hook, "secret": "shared-with-the-receiver"},
    ])
    .to_string();
    let app = spawn_with(
        backend,
        &[("rules.toml", RULES)],
        &[
            ("GUESTBRIDGE_SYNC_TARGETS", targets.as_str()),
            ("GUESTBRIDGE_SYNC_RETRY_BASE_MS", "100"),
            ("GUESTBRIDGE_SMTP_URL", smtp.url.as_str()),
        ],
    )
    .await;

    // The document itself, without credentials.
    let res = read(
        app.client
            .get(format!("{}/api/v1/openapi.json", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let doc = res.body.clone();

    // Every registered route is documented (and nothing else is).
    let documented = documented_operations(&doc);
    assert_eq!(registered_routes(), documented, "routes vs. the document");

    let (_, acme) = app.partner("acme").await;
    let (_, beta) = app.partner("beta").await;
    let mut c = Checker {
        base: format!("{}/api/v1", app.address),
        client: app.client.clone(),
        doc,
        admin: token_of(&app, AdminRole::Admin, None).await,
        auditor: token_of(&app, AdminRole::Auditor, None).await,
        partner_admin: token_of(&app, AdminRole::PartnerAdmin, Some("acme")).await,
        called: BTreeSet::new(),
    };
    c.check(&Method::GET, "/openapi.json", &res);
    let (admin, auditor, pa) = (c.admin.clone(), c.auditor.clone(), c.partner_admin.clone());
    use Method as M;
    let (a, u, p) = (
        Some(admin.as_str()),
        Some(auditor.as_str()),
        Some(pa.as_str()),
    );

    // Partners.
    c.get(None, "/partners", 401).await;
    let globex = json!({"slug": "globex", "name": "Globex Clinic"});
    c.post(u, "/partners", Body::Json(globex.clone()), 403)
        .await;
    c.post(a, "/partners", Body::Json(globex.clone()), 201)
        .await;
    c.post(a, "/partners", Body::Json(globex), 409).await;
    c.post(
        a,
        "/partners",
        Body::Json(json!({"slug": "Not A Slug", "name": "X"})),
        400,
    )
    .await;
    c.get(a, "/partners?limit=1", 200).await;
    c.get(u, "/partners", 200).await;
    c.get(a, "/partners?limit=0", 400).await;
    let res = c.get(a, "/partners/globex", 200).await;
    assert_schema_checks_bite(&c.doc, &res.body);
    c.get(a, "/partners/nobody", 404).await;
    let renamed = || Body::Json(json!({"name": "Globex Health"}));
    c.patch(a, "/partners/globex", renamed(), 200).await;
    c.patch(u, "/partners/globex", renamed(), 403).await;
    c.patch(a, "/partners/nobody", renamed(), 404).await;
    let policy = Body::Json(json!({"policy": {"mfa": true}}));
    c.patch(a, "/partners/globex", policy, 400).await;
    c.post(u, "/partners/globex/disable", Body::None, 403).await;
    c.post(a, "/partners/globex/disable", Body::None, 200).await;
    c.post(a, "/partners/globex/disable", Body::None, 409).await;
    c.post(a, "/partners/nobody/disable", Body::None, 404).await;
    c.post(a, "/partners/globex/enable", Body::None, 200).await;
    c.post(a, "/partners/globex/enable", Body::None, 409).await;
    c.post(u, "/partners/globex/enable", Body::None, 403).await;

    // Tokens.
    let res = c
        .post(
            a,
            "/partners/globex/tokens",
            Body::Json(json!({"name": "hr feed", "expires_days": 30})),
            201,
        )
        .await;
    crate::log_scan::register_secret(res.body["token"].as_str().unwrap());
    let token_id = res.body["id"].as_str().unwrap().to_string();
    let res = c.post(a, "/partners/globex/tokens", Body::None, 201).await;
    crate::log_scan::register_secret(res.body["token"].as_str().unwrap());
    c.post(
        a,
        "/partners/globex/tokens",
        Body::Json(json!({"x": 1})),
        400,
    )
    .await;
    c.post(a, "/partners/nobody/tokens", Body::None, 404).await;
    c.post(u, "/partners/globex/tokens", Body::None, 403).await;
    c.get(a, "/partners/globex/tokens", 200).await;
    c.get(a, "/partners/nobody/tokens", 404).await;
    c.delete(u, &format!("/partners/globex/tokens/{token_id}"), 403)
        .await;
    c.delete(a, &format!("/partners/globex/tokens/{token_id}"), 204)
        .await;
    c.delete(a, "/partners/globex/tokens/nope", 404).await;
    let spare = partners::issue_named_admin_token(&app.deps, &test_actor(), "spare", None)
        .await
        .unwrap();
    crate::log_scan::register_secret(&spare.secret);
    c.get(a, "/admin-tokens", 200).await;
    c.delete(u, &format!("/admin-tokens/{}", spare.id), 403)
        .await;
    c.delete(a, &format!("/admin-tokens/{}", spare.id), 204)
        .await;
    c.delete(a, "/admin-tokens/nope", 404).await;

    // Guests: one by SCIM from each partner (beta's waits for approval), one invited by hand.
    acme.create_user(
        &json!({"userName": "ann@acme.example", "title": "Staff Nurse",
                             "emails": [{"value": "ann@acme.example", "primary": true}]}),
    )
    .await;
    beta.create_user(&json!({"userName": "bob@beta.example",
                             "emails": [{"value": "bob@beta.example", "primary": true}]}))
        .await;
    let until = (Utc::now() + chrono::Duration::days(20)).to_rfc3339();
    let dana = json!({"partner": "acme", "userName": "dana@acme.example", "givenName": "Dana",
                      "familyName": "Ortiz", "email": "dana@acme.example", "until": until});
    c.post(u, "/guests", Body::Json(dana.clone()), 403).await;
    let res = c.post(a, "/guests", Body::Json(dana.clone()), 201).await;
    let dana_id = res.body["id"].as_str().unwrap().to_string();
    let composed = &c.doc["paths"]["/api/v1/guests"]["post"]["responses"]["201"]["content"]
        ["application/json"]["schema"];
    let mut extra = res.body.clone();
    extra["surprise"] = json!(1);
    assert!(
        !schema_errors(&c.doc, composed, &extra).is_empty(),
        "{extra} passed"
    );
    c.post(a, "/guests", Body::Json(dana), 409).await;
    c.post(a, "/guests", Body::Json(json!({"nickname": "x"})), 400)
        .await;
    let res = c
        .post(
            a,
            "/guests",
            Body::Json(json!({"partner": "nobody", "email": "no"})),
            400,
        )
        .await;
    assert!(res.body["errors"].is_array(), "{}", res.body);
    let res = c.get(a, "/guests", 200).await;
    let id_of = |user: &str| {
        res.body["guests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["user_name"] == user)
            .unwrap_or_else(|| panic!("{user} in {}", res.body))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (ann, bob) = (id_of("ann@acme.example"), id_of("bob@beta.example"));
    c.get(u, "/guests?partner=acme&limit=1", 200).await;
    c.get(a, "/guests?state=bogus", 400).await;
    c.get(a, &format!("/guests/{dana_id}"), 200).await;
    c.get(a, "/guests/nope", 404).await;
    c.get(a, &format!("/guests/{ann}/explain"), 200).await;
    c.get(a, "/guests/nope/explain", 404).await;
    c.post(u, &format!("/guests/{bob}/approve"), Body::None, 403)
        .await;
    c.post(a, &format!("/guests/{bob}/approve"), Body::None, 200)
        .await;
    c.post(a, "/guests/nope/approve", Body::None, 404).await;
    c.post(a, &format!("/guests/{dana_id}/invitation"), Body::None, 200)
        .await;
    c.post(u, &format!("/guests/{dana_id}/invitation"), Body::None, 403)
        .await;
    c.delete(a, &format!("/guests/{dana_id}/invitation"), 200)
        .await;
    c.delete(a, "/guests/nope/invitation", 404).await;
    c.post(a, &format!("/guests/{dana_id}/mfa/reset"), Body::None, 200)
        .await;
    c.post(u, &format!("/guests/{dana_id}/mfa/reset"), Body::None, 403)
        .await;
    let suspend = format!("/guests/{ann}/suspend");
    c.post(a, &suspend, Body::Json(json!({"x": 1})), 400).await;
    c.post(u, &suspend, Body::None, 403).await;
    c.post(
        a,
        &suspend,
        Body::Json(json!({"reason": "left the project"})),
        200,
    )
    .await;
    c.post(a, &format!("/guests/{ann}/resume"), Body::None, 200)
        .await;
    c.post(a, &format!("/guests/{ann}/resume"), Body::None, 409)
        .await;
    c.post(a, "/guests/nope/resume", Body::None, 404).await;
    let extend = format!("/guests/{ann}/grants/ehr-viewer/extend");
    let later = (Utc::now() + chrono::Duration::days(29)).to_rfc3339();
    c.post(a, &extend, Body::Json(json!({"until": later})), 200)
        .await;
    c.post(a, &extend, Body::Json(json!({"until": "soon"})), 400)
        .await;
    c.post(u, &extend, Body::Json(json!({"until": later})), 403)
        .await;
    c.delete(a, &format!("/guests/{ann}/grants/rota"), 200)
        .await;
    c.delete(a, "/guests/nope/grants/rota", 404).await;
    c.post(u, &format!("/guests/{ann}/remove"), Body::None, 403)
        .await;
    c.post(a, &format!("/guests/{ann}/remove"), Body::None, 200)
        .await;
    c.post(a, "/guests/nope/remove", Body::None, 404).await;

    // Imports: a dry run with one bad row, its progress, record and error report.
    let csv = "userName,givenName,familyName,email\nzed@acme.example,Zed,Z,zed@acme.example\n,,,\n";
    c.post(
        u,
        "/imports?partner=acme&dry_run=true",
        Body::Csv(csv, true),
        403,
    )
    .await;
    c.post(a, "/imports?partner=nobody", Body::Csv(csv, true), 404)
        .await;
    c.post(
        a,
        "/imports?partner=acme&mode=sideways",
        Body::Csv(csv, true),
        400,
    )
    .await;
    c.post(a, "/imports?partner=acme", Body::Csv(csv, false), 400)
        .await;
    let res = c
        .post(
            a,
            "/imports?partner=acme&dry_run=true",
            Body::Csv(csv, true),
            202,
        )
        .await;
    let import = res.body["id"].as_str().unwrap().to_string();
    let mut finished = false;
    for _ in 0..300 {
        let res = c.get(a, &format!("/imports/{import}"), 200).await;
        if res.body["status"] != "running" {
            assert_eq!(res.body["status"], "finished", "{}", res.body);
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(finished, "import {import} did not finish");
    c.get(a, "/imports/nope", 404).await;
    c.get(p, "/imports", 200).await;
    c.get(a, "/imports", 200).await;
    c.get(a, &format!("/imports/{import}/errors.csv"), 200)
        .await;
    c.get(a, "/imports/nope/errors.csv", 404).await;

    // Mappings: the rules in force, a diff and reload, and both refused for a broken file.
    c.get(a, "/mappings", 200).await;
    c.post(a, "/mappings/diff", Body::None, 200).await;
    c.post(u, "/mappings/reload", Body::None, 403).await;
    c.post(a, "/mappings/reload", Body::None, 200).await;
    let broken = app.mappings.join("broken.toml");
    std::fs::write(&broken, "[[rule]]\nid = 3\n").unwrap();
    let res = c.post(a, "/mappings/diff", Body::None, 422).await;
    assert!(res.body["errors"].is_array(), "{}", res.body);
    c.post(a, "/mappings/reload", Body::None, 422).await;
    std::fs::remove_file(&broken).unwrap();

    // Jobs.
    c.get(a, "/jobs", 200).await;
    let at = (Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    c.post(a, "/jobs/expiry/run", Body::Json(json!({"now": at})), 200)
        .await;
    c.post(a, "/jobs/housekeeping/run", Body::None, 200).await;
    c.post(u, "/jobs/expiry/run", Body::None, 403).await;
    c.post(a, "/jobs/expire/run", Body::None, 404).await;
    c.post(
        a,
        "/jobs/expiry/run",
        Body::Json(json!({"now": "tomorrow"})),
        400,
    )
    .await;
    c.get(a, "/jobs/expiry/runs?limit=1", 200).await;
    c.get(a, "/jobs/expire/runs", 404).await;
    c.get(a, "/jobs/expiry/runs?cursor=bm9wZQ", 400).await;

    // Sync: the refused webhook events are dead letters; one is replayed; reconcile.
    let mut dead = None;
    for _ in 0..200 {
        let res = c.get(u, "/sync", 200).await;
        if let Some(id) = res.body["dead_letters"][0]["id"].as_str() {
            dead = Some(id.to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = dead.expect("a dead letter from the refusing webhook");
    c.post(u, &format!("/sync/events/{dead}/replay"), Body::None, 403)
        .await;
    c.post(a, &format!("/sync/events/{dead}/replay"), Body::None, 200)
        .await;
    c.post(a, "/sync/events/nope/replay", Body::None, 404).await;
    let reconcile = "/sync/targets/downstream/reconcile?dry_run=true";
    c.post(a, reconcile, Body::None, 200).await;
    c.post(u, reconcile, Body::None, 403).await;
    c.post(a, "/sync/targets/hooks/reconcile", Body::None, 400)
        .await;
    c.post(a, "/sync/targets/nobody/reconcile", Body::None, 404)
        .await;

    // Audit.
    c.get(u, "/audit?limit=5", 200).await;
    c.get(a, "/audit?action=guest.suspended", 200).await;
    c.get(a, "/audit?since=yesterday", 400).await;
    c.get(p, "/audit", 403).await;
    c.get(u, "/audit/export.csv", 200).await;
    c.get(a, "/audit/export.csv?since=yesterday", 400).await;
    c.get(p, "/audit/export.csv", 403).await;
    c.get(u, "/audit/verify", 200).await;
    c.get(p, "/audit/verify", 403).await;

    // A console session instead of a token: reads need only the cookie; a change needs the
    // session's CSRF token too (403 without it, as documented for every change).
    login_with_password(&app, "ops", RoleGrant::admin()).await;
    let mut visitor = Visitor::new(&app);
    let signed = visitor.sign_in("ops", PASSWORD).await;
    assert_eq!(signed.status, 303);
    let cookie = signed
        .set_cookies
        .iter()
        .find_map(|c| c.split(';').next().filter(|c| c.starts_with("gb_admin=")))
        .expect("a session cookie")
        .to_string();
    let csrf = visitor.get("/admin").await.csrf();
    let session = [("Cookie", cookie.as_str())];
    let with_csrf = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let res = c.send(None, &session, M::GET, "/guests", Body::None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let disable = "/partners/globex/disable";
    let res = c.send(None, &session, M::POST, disable, Body::None).await;
    assert_eq!(res.status, 403, "{}", res.body);
    let res = c.send(None, &with_csrf, M::POST, disable, Body::None).await;
    assert_eq!(res.status, 200, "{}", res.body);

    // Every documented operation was called.
    let missed: Vec<_> = documented.difference(&c.called).collect();
    assert!(missed.is_empty(), "documented but not called: {missed:?}");
    drop(downstream);
}
