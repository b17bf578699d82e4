//! The SCIM connector's HTTP flow against a small in-memory SCIM stand-in. This only
//! exercises the flow (look-up, create, PATCH or PUT, groups, paging, reconcile); it is not
//! a conformance test: the SCIM connector's real test runs against a second Guestbridge
//! instance in the main project. The stand-in understands just the filters and PATCH paths
//! the connector sends and records anything else as a violation.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse};
use guestbridge::connectors::scim::{DriftReport, Expected, ScimConnector, ScimTarget};
use guestbridge::connectors::{Connector, DeliveryError, EventKind, GrantSnapshot, GuestSnapshot};
use serde_json::{json, Map, Value};

use guestbridge::store::Db;

use crate::both_backends;
use crate::support::{database, event, guest, serve, Backend};

const TOKEN: &str = "partner-token-abc";

struct Directory {
    patch_supported: bool,
    max_results: usize,
    users: BTreeMap<String, Value>,
    groups: BTreeMap<String, Value>,
    inject: VecDeque<(u16, Option<&'static str>)>,
    requests: Vec<String>,
    spc_reads: usize,
    violations: Vec<String>,
    next: usize,
}

type Shared = Arc<Mutex<Directory>>;

fn scim_error(status: u16, scim_type: Option<&str>, detail: &str) -> HttpResponse {
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.to_string(),
        "detail": detail,
    });
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/scim+json")
        .body(body.to_string())
}

fn ok(status: u16, body: &Value) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/scim+json")
        .body(body.to_string())
}

fn violation(d: &mut Directory, what: String) -> HttpResponse {
    d.violations.push(what.clone());
    scim_error(400, Some("invalidSyntax"), &what)
}

/// One clause of the filters the connector sends.
fn clause_matches(doc: &Value, clause: &str) -> Option<bool> {
    let mut parts = clause.splitn(3, ' ');
    let attr = parts.next()?;
    let op = parts.next()?;
    let value: Option<String> = match parts.next() {
        Some(raw) => Some(serde_json::from_str(raw).ok()?),
        None => None,
    };
    let values: Vec<&str> = match attr {
        "members.value" => doc["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["value"].as_str())
            .collect(),
        "externalId" | "displayName" => doc[attr].as_str().into_iter().collect(),
        _ => return None,
    };
    match (op, value) {
        ("pr", None) => Some(!values.is_empty()),
        ("eq", Some(v)) => Some(values.iter().any(|x| *x == v)),
        ("sw", Some(v)) => Some(values.iter().any(|x| x.starts_with(&v))),
        _ => None,
    }
}

fn list(d: &mut Directory, req: &HttpRequest, groups: bool) -> HttpResponse {
    let q: BTreeMap<String, String> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect();
    let start: usize = q
        .get("startIndex")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let count: usize = q
        .get("count")
        .and_then(|s| s.parse().ok())
        .unwrap_or(d.max_results);
    if count > d.max_results {
        return violation(d, format!("count {count} above maxResults"));
    }
    let store = if groups { &d.groups } else { &d.users };
    let mut matched = Vec::new();
    for doc in store.values() {
        let keep = match q.get("filter") {
            None => Some(true),
            Some(filter) => filter
                .split(" and ")
                .map(|c| clause_matches(doc, c))
                .try_fold(true, |all, m| m.map(|m| all && m)),
        };
        match keep {
            Some(true) => matched.push(doc.clone()),
            Some(false) => {}
            None => return violation(d, format!("filter {:?}", q.get("filter"))),
        }
    }
    let total = matched.len();
    let page: Vec<Value> = matched
        .into_iter()
        .skip(start.saturating_sub(1))
        .take(count)
        .map(|mut doc| {
            if q.get("excludedAttributes").map(String::as_str) == Some("members") {
                doc.as_object_mut().map(|o| o.remove("members"));
            }
            if q.get("attributes").map(String::as_str) == Some("displayName") {
                doc = json!({"id": doc["id"], "displayName": doc["displayName"]});
            }
            doc
        })
        .collect();
    ok(
        200,
        &json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    )
}

fn apply_user_op(doc: &mut Map<String, Value>, op: &Value) -> Result<(), String> {
    let path = op["path"].as_str().ok_or("op without path")?;
    let (attr, sub) = match path.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (path, None),
    };
    let allowed = [
        "userName",
        "externalId",
        "displayName",
        "name",
        "emails",
        "active",
    ];
    if !allowed.contains(&attr) || (sub.is_some() && attr != "name") {
        return Err(format!("unexpected PATCH path {path}"));
    }
    match (op["op"].as_str(), sub) {
        (Some("replace"), None) => {
            doc.insert(attr.into(), op["value"].clone());
        }
        (Some("replace"), Some(sub)) => {
            let name = doc.entry("name").or_insert_with(|| json!({}));
            name[sub] = op["value"].clone();
        }
        (Some("remove"), None) => {
            doc.remove(attr);
        }
        (Some("remove"), Some(sub)) => {
            if let Some(name) = doc.get_mut("name").and_then(Value::as_object_mut) {
                name.remove(sub);
            }
        }
        other => return Err(format!("unexpected op {other:?}")),
    }
    Ok(())
}

fn apply_group_op(doc: &mut Value, op: &Value) -> Result<(), String> {
    let members = doc["members"].as_array().cloned().unwrap_or_default();
    let new_members: Vec<Value> = match (op["op"].as_str(), op["path"].as_str()) {
        (Some("add"), Some("members")) => {
            let mut m = members;
            for v in op["value"].as_array().ok_or("add without value list")? {
                if !m.iter().any(|x| x["value"] == v["value"]) {
                    m.push(json!({"value": v["value"]}));
                }
            }
            m
        }
        (Some("remove"), Some(path)) => {
            let inner = path
                .strip_prefix("members[value eq ")
                .and_then(|r| r.strip_suffix(']'))
                .ok_or(format!("remove path {path}"))?;
            let id: String = serde_json::from_str(inner).map_err(|e| e.to_string())?;
            members
                .into_iter()
                .filter(|x| x["value"] != json!(id))
                .collect()
        }
        other => return Err(format!("unexpected group op {other:?}")),
    };
    doc["members"] = Value::Array(new_members);
    Ok(())
}

async fn scim(req: HttpRequest, body: Bytes, state: web::Data<Shared>) -> HttpResponse {
    let mut guard = state.lock().unwrap();
    let d = &mut *guard;
    let method = req.method().as_str().to_string();
    let path = req.path().trim_start_matches("/scim/v2/").to_string();
    d.requests.push(format!("{method} /{path}"));
    if req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        != Some("guestbridge/0.1")
    {
        return violation(d, "User-Agent".into());
    }
    if req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return scim_error(401, None, "bad token");
    }
    if method != "GET" && req.headers().get("Idempotency-Key").is_none() {
        return violation(d, format!("{method} {path}: no Idempotency-Key"));
    }
    if let Some((status, retry_after)) = d.inject.pop_front() {
        let mut reply = scim_error(status, None, "injected");
        if let Some(v) = retry_after {
            reply
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static(v));
        }
        return reply;
    }
    let doc: Option<Value> = if body.is_empty() {
        None
    } else {
        if req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            != Some("application/scim+json")
        {
            return violation(d, format!("{method} {path}: content type"));
        }
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => return violation(d, format!("body: {e}")),
        }
    };
    if method == "PATCH" {
        if !d.patch_supported {
            return violation(d, format!("PATCH {path} though patch.supported is false"));
        }
        let schemas_ok = doc.as_ref().is_some_and(|b| {
            b["schemas"] == json!(["urn:ietf:params:scim:api:messages:2.0:PatchOp"])
                && b["Operations"].is_array()
        });
        if !schemas_ok {
            return violation(d, format!("PATCH {path}: not a PatchOp"));
        }
    }
    let segments: Vec<&str> = path.split('/').collect();
    match (method.as_str(), segments.as_slice(), doc) {
        ("GET", ["ServiceProviderConfig"], _) => {
            d.spc_reads += 1;
            ok(
                200,
                &json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                    "patch": {"supported": d.patch_supported},
                    "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
                    "filter": {"supported": true, "maxResults": d.max_results},
                }),
            )
        }
        ("GET", ["Users"], _) => list(d, &req, false),
        ("GET", ["Groups"], _) => list(d, &req, true),
        ("POST", ["Users"], Some(mut user)) => {
            let Some(user_name) = user["userName"].as_str().map(str::to_lowercase) else {
                return violation(d, "POST /Users without userName".into());
            };
            if user["schemas"] != json!(["urn:ietf:params:scim:schemas:core:2.0:User"]) {
                return violation(d, "POST /Users schemas".into());
            }
            let taken = d
                .users
                .values()
                .any(|u| u["userName"].as_str().map(str::to_lowercase) == Some(user_name.clone()));
            if taken {
                return scim_error(409, Some("uniqueness"), "userName is already taken");
            }
            d.next += 1;
            let id = format!("u{:04}", d.next);
            user["id"] = json!(id);
            user["meta"] = json!({"resourceType": "User"});
            d.users.insert(id, user.clone());
            ok(201, &user)
        }
        ("POST", ["Groups"], Some(mut group)) => {
            let name = group["displayName"].clone();
            if d.groups.values().any(|g| g["displayName"] == name) {
                return scim_error(409, Some("uniqueness"), "displayName taken");
            }
            d.next += 1;
            let id = format!("g{:04}", d.next);
            group["id"] = json!(id);
            group["members"] = json!([]);
            d.groups.insert(id, group.clone());
            ok(201, &group)
        }
        ("GET", ["Users", id], _) => match d.users.get(*id) {
            Some(u) => ok(200, u),
            None => scim_error(404, None, "no such user"),
        },
        ("GET", ["Groups", id], _) => match d.groups.get(*id) {
            Some(g) => ok(200, g),
            None => scim_error(404, None, "no such group"),
        },
        ("PATCH", ["Users", id], Some(patch)) => {
            let Some(user) = d.users.get_mut(*id).and_then(Value::as_object_mut) else {
                return scim_error(404, None, "no such user");
            };
            let mut copy = user.clone();
            for op in patch["Operations"].as_array().into_iter().flatten() {
                if let Err(e) = apply_user_op(&mut copy, op) {
                    return violation(d, e);
                }
            }
            *user = copy.clone();
            ok(200, &Value::Object(copy))
        }
        ("PUT", ["Users", id], Some(mut user)) => {
            if !d.users.contains_key(*id) {
                return scim_error(404, None, "no such user");
            }
            if user.get("meta").is_some()
                || user.get("groups").is_some()
                || user["userName"].is_null()
            {
                return violation(
                    d,
                    "PUT /Users with read-only attributes or no userName".into(),
                );
            }
            user["id"] = json!(id);
            d.users.insert(id.to_string(), user.clone());
            ok(200, &user)
        }
        ("DELETE", ["Users", id], _) => {
            if d.users.remove(*id).is_none() {
                return scim_error(404, None, "no such user");
            }
            for g in d.groups.values_mut() {
                let _ = apply_group_op(
                    g,
                    &json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")}),
                );
            }
            HttpResponse::NoContent().finish()
        }
        ("PATCH", ["Groups", id], Some(patch)) => {
            let Some(group) = d.groups.get(*id).cloned() else {
                return scim_error(404, None, "no such group");
            };
            let mut group = group;
            for op in patch["Operations"].as_array().into_iter().flatten() {
                if let Err(e) = apply_group_op(&mut group, op) {
                    return violation(d, e);
                }
            }
            d.groups.insert(id.to_string(), group);
            HttpResponse::NoContent().finish()
        }
        ("PUT", ["Groups", id], Some(mut group)) => {
            if !d.groups.contains_key(*id) {
                return scim_error(404, None, "no such group");
            }
            group["id"] = json!(id);
            d.groups.insert(id.to_string(), group.clone());
            ok(200, &group)
        }
        _ => violation(d, format!("unexpected {method} /{path}")),
    }
}

struct StandIn {
    url: String,
    state: Shared,
    /// Where the connector keeps its ownership records.
    db: Db,
    _dir: tempfile::TempDir,
}

impl StandIn {
    async fn start(patch_supported: bool, max_results: usize) -> Self {
        Self::start_on(Backend::Sqlite, patch_supported, max_results).await
    }

    async fn start_on(backend: Backend, patch_supported: bool, max_results: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = database(backend, &dir).await;
        let state: Shared = Arc::new(Mutex::new(Directory {
            patch_supported,
            max_results,
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            inject: VecDeque::new(),
            requests: Vec::new(),
            spc_reads: 0,
            violations: Vec::new(),
            next: 0,
        }));
        let data = web::Data::new(state.clone());
        let url = serve(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(scim))
        });
        StandIn {
            url,
            state,
            db,
            _dir: dir,
        }
    }

    fn connector(&self) -> ScimConnector {
        ScimConnector::new(
            "downstream",
            ScimTarget {
                base_url: format!("{}/scim/v2", self.url),
                bearer_token: TOKEN.into(),
                group_prefix: "gb-".into(),
            },
            self.db.clone(),
        )
        .unwrap()
    }

    fn dir(&self) -> std::sync::MutexGuard<'_, Directory> {
        self.state.lock().unwrap()
    }

    fn user(&self, external_id: &str) -> Option<Value> {
        self.dir()
            .users
            .values()
            .find(|u| u["externalId"] == json!(external_id))
            .cloned()
    }

    /// The names of the groups the user is in.
    fn groups_of(&self, user_id: &str) -> Vec<String> {
        self.dir()
            .groups
            .values()
            .filter(|g| {
                g["members"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|x| x["value"] == json!(user_id)))
            })
            .filter_map(|g| g["displayName"].as_str().map(str::to_string))
            .collect()
    }

    fn add_foreign_group(&self, name: &str, member: &str) {
        let mut d = self.dir();
        d.next += 1;
        let id = format!("g{:04}", d.next);
        d.groups.insert(
            id.clone(),
            json!({"id": id, "displayName": name, "members": [{"value": member}]}),
        );
    }

    fn mutating_requests(&self) -> usize {
        self.dir()
            .requests
            .iter()
            .filter(|r| !r.starts_with("GET"))
            .count()
    }

    fn assert_no_violations(&self) {
        let d = self.dir();
        assert!(d.violations.is_empty(), "stand-in saw: {:?}", d.violations);
    }
}

fn grant(app: &str, role: &str) -> GrantSnapshot {
    GrantSnapshot {
        app: app.into(),
        role: role.into(),
        valid_until: None,
    }
}

async fn lifecycle(patch_supported: bool) -> StandIn {
    let scim = StandIn::start(patch_supported, 50).await;
    let connector = scim.connector();
    let mut ann = guest(
        "g-ann",
        "ann@partner.example",
        "invited",
        &[("ehr", "reader"), ("pacs", "viewer")],
    );

    connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    let user = scim.user("g-ann").expect("created");
    let id = user["id"].as_str().unwrap().to_string();
    assert_eq!(user["userName"], "ann@partner.example");
    assert_eq!(user["active"], true);
    assert_eq!(
        user["name"],
        json!({"givenName": "Ann", "familyName": "Lee"})
    );
    assert_eq!(scim.groups_of(&id), vec!["gb-ehr:reader", "gb-pacs:viewer"]);
    // Someone else's group membership at the target.
    scim.add_foreign_group("Nurses", &id);
    scim.dir().users.get_mut(&id).unwrap()["title"] = json!("Nurse");

    // The same event again changes nothing.
    let before = scim.mutating_requests();
    connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    assert_eq!(
        scim.mutating_requests(),
        before,
        "no write for an unchanged guest"
    );

    // A change of name and grants.
    ann.state = "active".into();
    ann.display_name = Some("Dr Ann Lee".into());
    ann.grants = vec![grant("ehr", "reader"), grant("lab", "tech")];
    connector
        .deliver(&event("e2", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    let user = scim.user("g-ann").unwrap();
    assert_eq!(user["displayName"], "Dr Ann Lee");
    assert_eq!(
        user["title"], "Nurse",
        "attributes we do not manage survive"
    );
    let mut groups = scim.groups_of(&id);
    groups.sort();
    assert_eq!(groups, vec!["Nurses", "gb-ehr:reader", "gb-lab:tech"]);

    // Suspended: inactive, out of our groups only.
    ann.state = "suspended".into();
    connector
        .deliver(&event("e3", EventKind::GuestSuspended, ann.clone()))
        .await
        .unwrap();
    assert_eq!(scim.user("g-ann").unwrap()["active"], false);
    assert_eq!(scim.groups_of(&id), vec!["Nurses"]);

    // Removed, twice.
    ann.state = "removed".into();
    let removed = event("e4", EventKind::GuestRemoved, ann);
    connector.deliver(&removed).await.unwrap();
    assert!(scim.user("g-ann").is_none());
    connector.deliver(&removed).await.unwrap();

    assert_eq!(
        scim.dir().spc_reads,
        1,
        "ServiceProviderConfig is read once"
    );
    scim.assert_no_violations();
    scim
}

#[tokio::test]
async fn scim_stand_in_lifecycle_with_patch() {
    let scim = lifecycle(true).await;
    assert!(scim
        .dir()
        .requests
        .iter()
        .any(|r| r.starts_with("PATCH /Users/")));
    assert!(!scim.dir().requests.iter().any(|r| r.starts_with("PUT")));
}

#[tokio::test]
async fn scim_stand_in_lifecycle_with_put_when_patch_is_unsupported() {
    let scim = lifecycle(false).await;
    assert!(scim
        .dir()
        .requests
        .iter()
        .any(|r| r.starts_with("PUT /Users/")));
    assert!(scim
        .dir()
        .requests
        .iter()
        .any(|r| r.starts_with("PUT /Groups/")));
    assert!(!scim.dir().requests.iter().any(|r| r.starts_with("PATCH")));
}

async fn reconcile(connector: &ScimConnector, guests: Vec<GuestSnapshot>) -> DriftReport {
    let expected = Expected {
        guests,
        unreadable: vec![],
    };
    let plan = connector.plan(&expected).await.unwrap();
    connector.apply(plan).await.unwrap()
}

fn counts(r: &DriftReport) -> (usize, usize, usize, usize, usize) {
    (r.created, r.updated, r.deactivated, r.deleted, r.unchanged)
}

#[tokio::test]
async fn scim_stand_in_reconcile_repairs_drift_across_pages() {
    // Two resources a page, so every list is paged.
    let scim = StandIn::start(true, 2).await;
    let connector = scim.connector();
    let a = guest("g-a", "a@partner.example", "active", &[("ehr", "reader")]);
    let b = guest("g-b", "b@partner.example", "active", &[("ehr", "reader")]);
    let c = guest(
        "g-c",
        "c@partner.example",
        "active",
        &[("ehr", "reader"), ("pacs", "viewer")],
    );
    let d = guest("g-d", "d@partner.example", "active", &[("pacs", "viewer")]);
    let mut f = guest("g-f", "f@partner.example", "active", &[]);
    for (i, g) in [&a, &c, &d, &f].into_iter().enumerate() {
        connector
            .deliver(&event(
                &format!("e{i}"),
                EventKind::GuestUpserted,
                g.clone(),
            ))
            .await
            .unwrap();
    }
    // Drift: C renamed and dropped from a group by hand; a user of another source.
    let c_id = scim.user("g-c").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    {
        let mut dir = scim.dir();
        dir.users.get_mut(&c_id).unwrap()["name"]["givenName"] = json!("Changed");
        for g in dir.groups.values_mut() {
            if g["displayName"] == "gb-pacs:viewer" {
                let members: Vec<Value> = g["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["value"] != json!(c_id))
                    .cloned()
                    .collect();
                g["members"] = json!(members);
            }
        }
        dir.next += 1;
        let id = format!("u{:04}", dir.next);
        dir.users.insert(
            id.clone(),
            json!({"id": id, "userName": "local@hospital.example", "active": true}),
        );
        // A staff member provisioned by HR, with an externalId of its own.
        dir.next += 1;
        let id = format!("u{:04}", dir.next);
        dir.users.insert(
            id.clone(),
            json!({"id": id, "userName": "hr@hospital.example", "externalId": "HR-1234", "active": true}),
        );
    }
    f.state = "removed".into();

    // Expected: A as is, B (missing), C, F removed; D is no longer expected.
    let report = reconcile(&connector, vec![a, b, c, f]).await;
    assert_eq!(
        counts(&report),
        (1, 1, 1, 1, 1),
        "created, updated, deactivated, deleted, unchanged: {report:?}"
    );
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.unowned.len(), 1);
    assert_eq!(report.unowned[0].external_id.as_deref(), Some("HR-1234"));
    assert_eq!(scim.user("g-c").unwrap()["name"]["givenName"], "Ann");
    assert_eq!(
        scim.groups_of(&c_id),
        vec!["gb-ehr:reader", "gb-pacs:viewer"]
    );
    let b_id = scim.user("g-b").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(scim.groups_of(&b_id), vec!["gb-ehr:reader"]);
    let d_user = scim.user("g-d").unwrap();
    assert_eq!(d_user["active"], false);
    assert!(scim.groups_of(d_user["id"].as_str().unwrap()).is_empty());
    assert!(scim.user("g-f").is_none());
    for user_name in ["local@hospital.example", "hr@hospital.example"] {
        assert!(scim
            .dir()
            .users
            .values()
            .any(|u| u["userName"] == user_name && u["active"] == true));
    }
    assert!(scim.dir().requests.iter().any(|r| r == "GET /Users"));

    // A second run finds nothing to do.
    let before = scim.mutating_requests();
    let again = reconcile(
        &connector,
        vec![
            guest("g-a", "a@partner.example", "active", &[("ehr", "reader")]),
            guest("g-b", "b@partner.example", "active", &[("ehr", "reader")]),
            guest(
                "g-c",
                "c@partner.example",
                "active",
                &[("ehr", "reader"), ("pacs", "viewer")],
            ),
        ],
    )
    .await;
    assert_eq!(counts(&again), (0, 0, 0, 0, 4), "{again:?}");
    assert!(again.actions.is_empty());
    assert_eq!(scim.mutating_requests(), before);
    scim.assert_no_violations();
}

#[tokio::test]
async fn scim_stand_in_user_name_held_by_another_user_is_permanent() {
    let scim = StandIn::start(true, 50).await;
    scim.dir().users.insert(
        "u9999".into(),
        json!({"id": "u9999", "userName": "ann@partner.example", "active": true}),
    );
    let err = scim
        .connector()
        .deliver(&event(
            "e1",
            EventKind::GuestUpserted,
            guest("g-ann", "ann@partner.example", "active", &[]),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Permanent { .. }), "{err:?}");
    scim.assert_no_violations();
}

#[tokio::test]
async fn scim_stand_in_429_and_5xx_are_transient() {
    let scim = StandIn::start(true, 50).await;
    let connector = scim.connector();
    let ann = guest(
        "g-ann",
        "ann@partner.example",
        "active",
        &[("ehr", "reader")],
    );
    scim.dir().inject.push_back((429, Some("9")));
    let err = connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(9)), "{err:?}");
    // The failed ServiceProviderConfig read is not cached as "no capabilities".
    scim.dir().inject.push_back((502, None));
    assert!(connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap_err()
        .is_transient());
    connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann))
        .await
        .unwrap();
    assert_eq!(scim.dir().spc_reads, 1);
    scim.assert_no_violations();
}

#[tokio::test]
async fn scim_stand_in_wrong_token_is_permanent() {
    let scim = StandIn::start(true, 50).await;
    let connector = ScimConnector::new(
        "downstream",
        ScimTarget {
            base_url: format!("{}/scim/v2", scim.url),
            bearer_token: "stale".into(),
            group_prefix: "gb-".into(),
        },
        scim.db.clone(),
    )
    .unwrap();
    let err = connector
        .deliver(&event(
            "e1",
            EventKind::GuestUpserted,
            guest("g", "a@b.c", "active", &[]),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Permanent { .. }), "{err:?}");
}

both_backends!(scim_stand_in_reconcile_leaves_a_guest_with_an_unreadable_snapshot_alone);

/// A guest whose snapshot does not read back is an error of the run, not a stranger: its
/// owned user keeps its access; an owned user of a guest that is really gone is deactivated.
async fn scim_stand_in_reconcile_leaves_a_guest_with_an_unreadable_snapshot_alone(
    backend: Backend,
) {
    let scim = StandIn::start_on(backend, true, 50).await;
    let connector = scim.connector();
    for id in ["g-unreadable", "g-gone"] {
        connector
            .deliver(&event(
                &format!("e-{id}"),
                EventKind::GuestUpserted,
                guest(
                    id,
                    &format!("{id}@partner.example"),
                    "active",
                    &[("ehr", "reader")],
                ),
            ))
            .await
            .unwrap();
    }
    let expected = Expected {
        guests: vec![],
        unreadable: vec![("g-unreadable".into(), "invalid type: integer".into())],
    };
    let plan = connector.plan(&expected).await.unwrap();
    assert_eq!(plan.owned, 2);
    let report = connector.apply(plan).await.unwrap();
    assert_eq!(report.deactivated, 1, "{report:?}");
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].0, "g-unreadable");
    let kept = scim.user("g-unreadable").unwrap();
    assert_eq!(kept["active"], true);
    assert_eq!(
        scim.groups_of(kept["id"].as_str().unwrap()),
        vec!["gb-ehr:reader"]
    );
    assert_eq!(scim.user("g-gone").unwrap()["active"], false);
    scim.assert_no_violations();
}
