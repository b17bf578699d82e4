//! The admin API against its own OpenAPI document: every operation the document describes is
//! called on the running app (successes and errors: 400, 401, 403, 404, 409, 422), and each
//! answer's status must be documented for that operation and its body must validate against
//! the documented schema (JSON Schema 2020-12, with the document's components embedded so its
//! `$ref`s resolve; objects refuse properties the schema does not name). The CSV downloads are
//! checked by content type. The routes each `configure` in src/admin registers must all be in
//! the document, so an endpoint added without documentation fails here.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_backends;
use crate::helpers::{read, spawn, spawn_with, test_actor, Backend, Res, TestApp};
use crate::smtp::TestSmtp;
use guestbridge::domain::{AdminRole, PartnerSlug};
use guestbridge::services::admin_auth::RoleGrant;
use guestbridge::services::partners;

both_backends!(every_operation_answers_as_the_document_says);

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
        let url = format!("{}{path}", self.base);
        let mut req = self.client.request(method.clone(), &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
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
    let (a, u) = (Some(admin.as_str()), Some(auditor.as_str()));
    use Method as M;

    // Partners.
    c.expect(None, M::GET, "/partners", Body::None, 401).await;
    let globex = json!({"slug": "globex", "name": "Globex Clinic"});
    c.expect(u, M::POST, "/partners", Body::Json(globex.clone()), 403)
        .await;
    c.expect(a, M::POST, "/partners", Body::Json(globex.clone()), 201)
        .await;
    c.expect(a, M::POST, "/partners", Body::Json(globex), 409)
        .await;
    c.expect(
        a,
        M::POST,
        "/partners",
        Body::Json(json!({"slug": "Not A Slug", "name": "X"})),
        400,
    )
    .await;
    c.expect(a, M::GET, "/partners?limit=1", Body::None, 200)
        .await;
    c.expect(u, M::GET, "/partners", Body::None, 200).await;
    c.expect(a, M::GET, "/partners?limit=0", Body::None, 400)
        .await;
    let res = c
        .expect(a, M::GET, "/partners/globex", Body::None, 200)
        .await;
    assert_schema_checks_bite(&c.doc, &res.body);
    c.expect(a, M::GET, "/partners/nobody", Body::None, 404)
        .await;
    c.expect(u, M::POST, "/partners/globex/disable", Body::None, 403)
        .await;
    c.expect(a, M::POST, "/partners/globex/disable", Body::None, 200)
        .await;
    c.expect(a, M::POST, "/partners/globex/disable", Body::None, 409)
        .await;
    c.expect(a, M::POST, "/partners/nobody/disable", Body::None, 404)
        .await;
    c.expect(a, M::POST, "/partners/globex/enable", Body::None, 200)
        .await;
    c.expect(a, M::POST, "/partners/globex/enable", Body::None, 409)
        .await;
    c.expect(u, M::POST, "/partners/globex/enable", Body::None, 403)
        .await;

    // Tokens.
    let res = c
        .expect(
            a,
            M::POST,
            "/partners/globex/tokens",
            Body::Json(json!({"name": "hr feed", "expires_days": 30})),
            201,
        )
        .await;
    crate::log_scan::register_secret(res.body["token"].as_str().unwrap());
    let token_id = res.body["id"].as_str().unwrap().to_string();
    let res = c
        .expect(a, M::POST, "/partners/globex/tokens", Body::None, 201)
        .await;
    crate::log_scan::register_secret(res.body["token"].as_str().unwrap());
    c.expect(
        a,
        M::POST,
        "/partners/globex/tokens",
        Body::Json(json!({"x": 1})),
        400,
    )
    .await;
    c.expect(a, M::POST, "/partners/nobody/tokens", Body::None, 404)
        .await;
    c.expect(u, M::POST, "/partners/globex/tokens", Body::None, 403)
        .await;
    c.expect(a, M::GET, "/partners/globex/tokens", Body::None, 200)
        .await;
    c.expect(a, M::GET, "/partners/nobody/tokens", Body::None, 404)
        .await;
    c.expect(
        u,
        M::DELETE,
        &format!("/partners/globex/tokens/{token_id}"),
        Body::None,
        403,
    )
    .await;
    c.expect(
        a,
        M::DELETE,
        &format!("/partners/globex/tokens/{token_id}"),
        Body::None,
        204,
    )
    .await;
    c.expect(
        a,
        M::DELETE,
        "/partners/globex/tokens/nope",
        Body::None,
        404,
    )
    .await;
    let spare = partners::issue_named_admin_token(&app.deps, &test_actor(), "spare", None)
        .await
        .unwrap();
    crate::log_scan::register_secret(&spare.secret);
    c.expect(a, M::GET, "/admin-tokens", Body::None, 200).await;
    c.expect(
        u,
        M::DELETE,
        &format!("/admin-tokens/{}", spare.id),
        Body::None,
        403,
    )
    .await;
    c.expect(
        a,
        M::DELETE,
        &format!("/admin-tokens/{}", spare.id),
        Body::None,
        204,
    )
    .await;
    c.expect(a, M::DELETE, "/admin-tokens/nope", Body::None, 404)
        .await;

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
    c.expect(u, M::POST, "/guests", Body::Json(dana.clone()), 403)
        .await;
    let res = c
        .expect(a, M::POST, "/guests", Body::Json(dana.clone()), 201)
        .await;
    let dana_id = res.body["id"].as_str().unwrap().to_string();
    let composed = &c.doc["paths"]["/api/v1/guests"]["post"]["responses"]["201"]["content"]
        ["application/json"]["schema"];
    let mut extra = res.body.clone();
    extra["surprise"] = json!(1);
    assert!(
        !schema_errors(&c.doc, composed, &extra).is_empty(),
        "{extra} passed"
    );
    c.expect(a, M::POST, "/guests", Body::Json(dana), 409).await;
    c.expect(
        a,
        M::POST,
        "/guests",
        Body::Json(json!({"nickname": "x"})),
        400,
    )
    .await;
    let res = c
        .expect(
            a,
            M::POST,
            "/guests",
            Body::Json(json!({"partner": "nobody", "email": "no"})),
            400,
        )
        .await;
    assert!(res.body["errors"].is_array(), "{}", res.body);
    let res = c.expect(a, M::GET, "/guests", Body::None, 200).await;
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
    c.expect(u, M::GET, "/guests?partner=acme&limit=1", Body::None, 200)
        .await;
    c.expect(a, M::GET, "/guests?state=bogus", Body::None, 400)
        .await;
    c.expect(a, M::GET, &format!("/guests/{dana_id}"), Body::None, 200)
        .await;
    c.expect(a, M::GET, "/guests/nope", Body::None, 404).await;
    c.expect(
        a,
        M::GET,
        &format!("/guests/{ann}/explain"),
        Body::None,
        200,
    )
    .await;
    c.expect(a, M::GET, "/guests/nope/explain", Body::None, 404)
        .await;
    c.expect(
        u,
        M::POST,
        &format!("/guests/{bob}/approve"),
        Body::None,
        403,
    )
    .await;
    c.expect(
        a,
        M::POST,
        &format!("/guests/{bob}/approve"),
        Body::None,
        200,
    )
    .await;
    c.expect(a, M::POST, "/guests/nope/approve", Body::None, 404)
        .await;
    c.expect(
        a,
        M::POST,
        &format!("/guests/{dana_id}/invitation"),
        Body::None,
        200,
    )
    .await;
    c.expect(
        u,
        M::POST,
        &format!("/guests/{dana_id}/invitation"),
        Body::None,
        403,
    )
    .await;
    c.expect(
        a,
        M::DELETE,
        &format!("/guests/{dana_id}/invitation"),
        Body::None,
        200,
    )
    .await;
    c.expect(a, M::DELETE, "/guests/nope/invitation", Body::None, 404)
        .await;
    c.expect(
        a,
        M::POST,
        &format!("/guests/{dana_id}/mfa/reset"),
        Body::None,
        200,
    )
    .await;
    c.expect(
        u,
        M::POST,
        &format!("/guests/{dana_id}/mfa/reset"),
        Body::None,
        403,
    )
    .await;
    let suspend = format!("/guests/{ann}/suspend");
    c.expect(a, M::POST, &suspend, Body::Json(json!({"x": 1})), 400)
        .await;
    c.expect(u, M::POST, &suspend, Body::None, 403).await;
    c.expect(
        a,
        M::POST,
        &suspend,
        Body::Json(json!({"reason": "left the project"})),
        200,
    )
    .await;
    c.expect(
        a,
        M::POST,
        &format!("/guests/{ann}/resume"),
        Body::None,
        200,
    )
    .await;
    c.expect(
        a,
        M::POST,
        &format!("/guests/{ann}/resume"),
        Body::None,
        409,
    )
    .await;
    c.expect(a, M::POST, "/guests/nope/resume", Body::None, 404)
        .await;
    let extend = format!("/guests/{ann}/grants/ehr-viewer/extend");
    let later = (Utc::now() + chrono::Duration::days(29)).to_rfc3339();
    c.expect(
        a,
        M::POST,
        &extend,
        Body::Json(json!({"until": later})),
        200,
    )
    .await;
    c.expect(
        a,
        M::POST,
        &extend,
        Body::Json(json!({"until": "soon"})),
        400,
    )
    .await;
    c.expect(
        u,
        M::POST,
        &extend,
        Body::Json(json!({"until": later})),
        403,
    )
    .await;
    c.expect(
        a,
        M::DELETE,
        &format!("/guests/{ann}/grants/rota"),
        Body::None,
        200,
    )
    .await;
    c.expect(a, M::DELETE, "/guests/nope/grants/rota", Body::None, 404)
        .await;
    c.expect(
        u,
        M::POST,
        &format!("/guests/{ann}/remove"),
        Body::None,
        403,
    )
    .await;
    c.expect(
        a,
        M::POST,
        &format!("/guests/{ann}/remove"),
        Body::None,
        200,
    )
    .await;
    c.expect(a, M::POST, "/guests/nope/remove", Body::None, 404)
        .await;

    // Imports: a dry run with one bad row, its progress, record and error report.
    let csv = "userName,givenName,familyName,email\nzed@acme.example,Zed,Z,zed@acme.example\n,,,\n";
    c.expect(
        u,
        M::POST,
        "/imports?partner=acme&dry_run=true",
        Body::Csv(csv, true),
        403,
    )
    .await;
    c.expect(
        a,
        M::POST,
        "/imports?partner=nobody",
        Body::Csv(csv, true),
        404,
    )
    .await;
    c.expect(
        a,
        M::POST,
        "/imports?partner=acme&mode=sideways",
        Body::Csv(csv, true),
        400,
    )
    .await;
    c.expect(
        a,
        M::POST,
        "/imports?partner=acme",
        Body::Csv(csv, false),
        400,
    )
    .await;
    let res = c
        .expect(
            a,
            M::POST,
            "/imports?partner=acme&dry_run=true",
            Body::Csv(csv, true),
            202,
        )
        .await;
    let import = res.body["id"].as_str().unwrap().to_string();
    let mut finished = false;
    for _ in 0..300 {
        let res = c
            .expect(a, M::GET, &format!("/imports/{import}"), Body::None, 200)
            .await;
        if res.body["status"] != "running" {
            assert_eq!(res.body["status"], "finished", "{}", res.body);
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(finished, "import {import} did not finish");
    c.expect(a, M::GET, "/imports/nope", Body::None, 404).await;
    c.expect(Some(pa.as_str()), M::GET, "/imports", Body::None, 200)
        .await;
    c.expect(a, M::GET, "/imports", Body::None, 200).await;
    c.expect(
        a,
        M::GET,
        &format!("/imports/{import}/errors.csv"),
        Body::None,
        200,
    )
    .await;
    c.expect(a, M::GET, "/imports/nope/errors.csv", Body::None, 404)
        .await;

    // Mappings: the rules in force, a diff and reload, and both refused for a broken file.
    c.expect(a, M::GET, "/mappings", Body::None, 200).await;
    c.expect(a, M::POST, "/mappings/diff", Body::None, 200)
        .await;
    c.expect(u, M::POST, "/mappings/reload", Body::None, 403)
        .await;
    c.expect(a, M::POST, "/mappings/reload", Body::None, 200)
        .await;
    let broken = app.mappings.join("broken.toml");
    std::fs::write(&broken, "[[rule]]\nid = 3\n").unwrap();
    let res = c
        .expect(a, M::POST, "/mappings/diff", Body::None, 422)
        .await;
    assert!(res.body["errors"].is_array(), "{}", res.body);
    c.expect(a, M::POST, "/mappings/reload", Body::None, 422)
        .await;
    std::fs::remove_file(&broken).unwrap();

    // Jobs.
    c.expect(a, M::GET, "/jobs", Body::None, 200).await;
    let at = (Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    c.expect(
        a,
        M::POST,
        "/jobs/expiry/run",
        Body::Json(json!({"now": at})),
        200,
    )
    .await;
    c.expect(a, M::POST, "/jobs/housekeeping/run", Body::None, 200)
        .await;
    c.expect(u, M::POST, "/jobs/expiry/run", Body::None, 403)
        .await;
    c.expect(a, M::POST, "/jobs/expire/run", Body::None, 404)
        .await;
    c.expect(
        a,
        M::POST,
        "/jobs/expiry/run",
        Body::Json(json!({"now": "tomorrow"})),
        400,
    )
    .await;
    c.expect(a, M::GET, "/jobs/expiry/runs?limit=1", Body::None, 200)
        .await;
    c.expect(a, M::GET, "/jobs/expire/runs", Body::None, 404)
        .await;
    c.expect(
        a,
        M::GET,
        "/jobs/expiry/runs?cursor=bm9wZQ",
        Body::None,
        400,
    )
    .await;

    // Sync: the refused webhook events are dead letters; one is replayed; reconcile.
    let mut dead = None;
    for _ in 0..200 {
        let res = c.expect(u, M::GET, "/sync", Body::None, 200).await;
        if let Some(id) = res.body["dead_letters"][0]["id"].as_str() {
            dead = Some(id.to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = dead.expect("a dead letter from the refusing webhook");
    c.expect(
        u,
        M::POST,
        &format!("/sync/events/{dead}/replay"),
        Body::None,
        403,
    )
    .await;
    c.expect(
        a,
        M::POST,
        &format!("/sync/events/{dead}/replay"),
        Body::None,
        200,
    )
    .await;
    c.expect(a, M::POST, "/sync/events/nope/replay", Body::None, 404)
        .await;
    let reconcile = "/sync/targets/downstream/reconcile?dry_run=true";
    c.expect(a, M::POST, reconcile, Body::None, 200).await;
    c.expect(u, M::POST, reconcile, Body::None, 403).await;
    c.expect(a, M::POST, "/sync/targets/hooks/reconcile", Body::None, 400)
        .await;
    c.expect(
        a,
        M::POST,
        "/sync/targets/nobody/reconcile",
        Body::None,
        404,
    )
    .await;

    // Audit.
    c.expect(u, M::GET, "/audit?limit=5", Body::None, 200).await;
    c.expect(a, M::GET, "/audit?action=guest.suspended", Body::None, 200)
        .await;
    c.expect(a, M::GET, "/audit?since=yesterday", Body::None, 400)
        .await;
    c.expect(Some(pa.as_str()), M::GET, "/audit", Body::None, 403)
        .await;
    c.expect(u, M::GET, "/audit/export.csv", Body::None, 200)
        .await;
    c.expect(
        a,
        M::GET,
        "/audit/export.csv?since=yesterday",
        Body::None,
        400,
    )
    .await;
    c.expect(
        Some(pa.as_str()),
        M::GET,
        "/audit/export.csv",
        Body::None,
        403,
    )
    .await;
    c.expect(u, M::GET, "/audit/verify", Body::None, 200).await;
    c.expect(Some(pa.as_str()), M::GET, "/audit/verify", Body::None, 403)
        .await;

    // Every documented operation was called.
    let missed: Vec<_> = documented.difference(&c.called).collect();
    assert!(missed.is_empty(), "documented but not called: {missed:?}");
    drop(downstream);
}
