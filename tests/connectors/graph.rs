//! The Graph connector against a stand-in: a local actix-web server that plays Entra ID's
//! token endpoint and the part of Microsoft Graph v1.0 the connector uses, checking every
//! request against the shapes Microsoft documents (client-credentials form fields, bearer
//! tokens, the invitation resource, `$ref` bodies, `accountEnabled` PATCH, OData `$filter`)
//! and answering as Graph does (invitations of a known address return the existing user, a
//! second `$ref` add is a 400 "already exist", missing objects are 404). It is not
//! Microsoft Graph; the tests are named `graph_stand_in_*` to say so.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse};
use guestbridge::connectors::graph::{GraphConnector, GraphTarget};
use guestbridge::connectors::{Connector, DeliveryError, EventKind};
use serde_json::{json, Value};

use guestbridge::store::Db;

use crate::both_backends;
use crate::support::{database, event, guest, owned, serve, Backend};

struct User {
    mail: String,
    display_name: String,
    enabled: bool,
    /// `Guest` for B2B guests, `Member` for the tenant's own staff.
    user_type: &'static str,
}

#[derive(Default)]
struct Tenant {
    base: String,
    token_requests: usize,
    valid_tokens: HashSet<String>,
    /// Answer 401 to every Graph request, whatever the token.
    refuse_all_tokens: bool,
    users: BTreeMap<String, User>,
    groups: BTreeMap<String, BTreeSet<String>>,
    /// Statuses (with an optional Retry-After) to answer the next Graph requests with.
    inject: VecDeque<(u16, Option<&'static str>)>,
    /// memberOf answers no groups (as if the read raced a concurrent add).
    hide_memberships: bool,
    violations: Vec<String>,
    requests: Vec<String>,
    /// `GET /users?$filter=mail eq …` requests seen.
    mail_lookups: usize,
    next_id: usize,
}

type Shared = Arc<Mutex<Tenant>>;

const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT_SECRET: &str = "client~secret";
const REDIRECT: &str = "https://apps.hospital.example/welcome";

fn graph_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .json(json!({"error": {"code": code, "message": message}}))
}

/// Record a violation of the documented shapes and answer 400, so the test fails loudly.
fn violation(t: &mut Tenant, what: String) -> HttpResponse {
    t.violations.push(what.clone());
    graph_error(400, "StandInViolation", &what)
}

async fn token(req: HttpRequest, body: Bytes, state: web::Data<Shared>) -> HttpResponse {
    let mut t = state.lock().unwrap();
    t.token_requests += 1;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return violation(&mut t, format!("token: content-type {content_type}"));
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let expected_keys: BTreeSet<&str> =
        ["grant_type", "client_id", "client_secret", "scope"].into();
    let keys: BTreeSet<&str> = form.keys().map(String::as_str).collect();
    if keys != expected_keys {
        return violation(&mut t, format!("token: form fields {keys:?}"));
    }
    if form["grant_type"] != "client_credentials" {
        return violation(&mut t, format!("token: grant_type {}", form["grant_type"]));
    }
    if form["scope"] != "https://graph.microsoft.com/.default" {
        return violation(&mut t, format!("token: scope {}", form["scope"]));
    }
    if form["client_id"] != CLIENT_ID || form["client_secret"] != CLIENT_SECRET {
        // What Entra ID answers for a wrong secret.
        return HttpResponse::Unauthorized().json(json!({
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.",
            "error_codes": [7000215]
        }));
    }
    let access_token = format!("eyJ0eXAi.stand-in-token-{}", t.token_requests);
    t.valid_tokens.insert(access_token.clone());
    HttpResponse::Ok().json(json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": access_token
    }))
}

fn query(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

/// Every Graph v1.0 request lands here; dispatched on method and path segments.
async fn graph(req: HttpRequest, body: Bytes, state: web::Data<Shared>) -> HttpResponse {
    let mut guard = state.lock().unwrap();
    let t = &mut *guard;
    let method = req.method().as_str().to_string();
    let path = req.path().trim_start_matches("/v1.0/").to_string();
    t.requests.push(format!("{method} /{path}"));

    if req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        != Some("guestbridge/0.1")
    {
        return violation(t, format!("{method} {path}: User-Agent"));
    }
    let mutating = method != "GET";
    if mutating && req.headers().get("Idempotency-Key").is_none() {
        return violation(t, format!("{method} {path}: no Idempotency-Key"));
    }
    if let Some((status, retry_after)) = t.inject.pop_front() {
        let mut reply = graph_error(status, "TooManyRequests", "injected by the test");
        if let Some(seconds) = retry_after {
            reply.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(seconds),
            );
        }
        return reply;
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    match bearer {
        None => return violation(t, format!("{method} {path}: no bearer token")),
        Some(token) if t.refuse_all_tokens || !t.valid_tokens.contains(&token) => {
            return graph_error(
                401,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            );
        }
        Some(_) => {}
    }
    let json_body: Option<Value> = if body.is_empty() {
        None
    } else {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.starts_with("application/json") {
            return violation(t, format!("{method} {path}: content-type {content_type}"));
        }
        match serde_json::from_slice(&body) {
            Ok(v) => Some(v),
            Err(e) => return violation(t, format!("{method} {path}: body not JSON: {e}")),
        }
    };

    let segments: Vec<&str> = path.split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["invitations"]) => {
            // https://learn.microsoft.com/graph/api/invitation-post (v1.0)
            let Some(Value::Object(inv)) = json_body else {
                return violation(t, "invitation: no JSON object".into());
            };
            let allowed = [
                "invitedUserEmailAddress",
                "invitedUserDisplayName",
                "inviteRedirectUrl",
                "sendInvitationMessage",
                "invitedUserMessageInfo",
                "invitedUserType",
            ];
            if let Some(unknown) = inv.keys().find(|k| !allowed.contains(&k.as_str())) {
                return violation(t, format!("invitation: unknown property {unknown}"));
            }
            let Some(email) = inv.get("invitedUserEmailAddress").and_then(Value::as_str) else {
                return violation(t, "invitation: invitedUserEmailAddress missing".into());
            };
            if !email.contains('@') {
                return violation(t, format!("invitation: bad address {email}"));
            }
            let redirect = inv.get("inviteRedirectUrl").and_then(Value::as_str);
            if redirect != Some(REDIRECT) {
                return violation(t, format!("invitation: inviteRedirectUrl {redirect:?}"));
            }
            if inv.get("sendInvitationMessage") != Some(&json!(false)) {
                return violation(t, "invitation: sendInvitationMessage must be false".into());
            }
            let display = match inv.get("invitedUserDisplayName") {
                Some(Value::String(s)) => s.clone(),
                None => String::new(),
                Some(other) => return violation(t, format!("invitation: display name {other}")),
            };
            let existing = t
                .users
                .iter()
                .find(|(_, u)| u.mail.eq_ignore_ascii_case(email))
                .map(|(id, _)| id.clone());
            let id = existing.unwrap_or_else(|| {
                t.next_id += 1;
                let id = format!("0000000{}-aaaa-bbbb-cccc-dddddddddddd", t.next_id);
                t.users.insert(
                    id.clone(),
                    User {
                        mail: email.to_string(),
                        display_name: display,
                        enabled: true,
                        user_type: "Guest",
                    },
                );
                id
            });
            HttpResponse::Created().json(json!({
                "@odata.context": format!("{}/$metadata#invitations/$entity", t.base),
                "id": "7b92124c-9fa9-406f-8b8e-225df8376ba9",
                "inviteRedeemUrl": "https://login.microsoftonline.com/redeem?rd=stand-in",
                "invitedUserEmailAddress": email,
                "inviteRedirectUrl": REDIRECT,
                "sendInvitationMessage": false,
                "status": "PendingAcceptance",
                "invitedUser": {"id": id}
            }))
        }
        ("GET", ["users"]) => {
            // https://learn.microsoft.com/graph/api/user-list (v1.0): `mail` and `userType`
            // support `eq` in `$filter`.
            t.mail_lookups += 1;
            let q = query(&req);
            let filter = q.get("$filter").cloned().unwrap_or_default();
            let (rest, only_guests) = match filter.strip_suffix(" and userType eq 'Guest'") {
                Some(rest) => (rest, true),
                None => (filter.as_str(), false),
            };
            let Some(mail) = rest
                .strip_prefix("mail eq '")
                .and_then(|rest| rest.strip_suffix('\''))
            else {
                return violation(t, format!("users: $filter {filter}"));
            };
            let mail = mail.replace("''", "'");
            let value: Vec<Value> = t
                .users
                .iter()
                .filter(|(_, u)| u.mail.eq_ignore_ascii_case(&mail))
                .filter(|(_, u)| !only_guests || u.user_type == "Guest")
                .map(|(id, u)| json!({"id": id, "userType": u.user_type, "mail": u.mail}))
                .collect();
            HttpResponse::Ok().json(json!({"value": value}))
        }
        ("GET", ["users", id]) => match t.users.get(*id) {
            Some(u) => HttpResponse::Ok().json(json!({
                "id": id, "mail": u.mail, "userType": u.user_type,
                "displayName": u.display_name, "accountEnabled": u.enabled,
            })),
            None => graph_error(404, "Request_ResourceNotFound", "Resource does not exist."),
        },
        ("GET", ["users", id, "memberOf"]) => {
            if !t.users.contains_key(*id) {
                return graph_error(404, "Request_ResourceNotFound", "Resource does not exist.");
            }
            let mut ids: Vec<&String> = if t.hide_memberships {
                Vec::new()
            } else {
                t.groups
                    .iter()
                    .filter(|(_, members)| members.contains(*id))
                    .map(|(gid, _)| gid)
                    .collect()
            };
            // One object a page, so the connector must follow @odata.nextLink.
            let skip: usize = query(&req)
                .get("$skiptoken")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let page: Vec<Value> = ids
                .drain(..)
                .skip(skip)
                .take(2)
                .map(|gid| json!({"@odata.type": "#microsoft.graph.group", "id": gid}))
                .collect();
            let more = page.len() == 2;
            let mut reply = json!({"value": page});
            if more {
                reply["@odata.nextLink"] = json!(format!(
                    "{}/users/{id}/memberOf?$select=id&$skiptoken={}",
                    t.base,
                    skip + 2
                ));
            }
            HttpResponse::Ok().json(reply)
        }
        ("PATCH", ["users", id]) => {
            let Some(Value::Object(patch)) = json_body else {
                return violation(t, "PATCH user: no JSON object".into());
            };
            // https://learn.microsoft.com/graph/api/user-update (v1.0): the two properties
            // the connector may set.
            let known = patch
                .keys()
                .all(|k| k == "accountEnabled" || k == "displayName");
            let typed = patch.get("accountEnabled").is_none_or(Value::is_boolean)
                && patch.get("displayName").is_none_or(Value::is_string);
            if patch.is_empty() || !known || !typed {
                return violation(t, format!("PATCH user: {patch:?}"));
            }
            match t.users.get_mut(*id) {
                Some(user) => {
                    if let Some(enabled) = patch.get("accountEnabled").and_then(Value::as_bool) {
                        user.enabled = enabled;
                    }
                    if let Some(name) = patch.get("displayName").and_then(Value::as_str) {
                        user.display_name = name.to_string();
                    }
                    HttpResponse::NoContent().finish()
                }
                None => graph_error(404, "Request_ResourceNotFound", "Resource does not exist."),
            }
        }
        ("DELETE", ["users", id]) => {
            if t.users.remove(*id).is_none() {
                return graph_error(404, "Request_ResourceNotFound", "Resource does not exist.");
            }
            for members in t.groups.values_mut() {
                members.remove(*id);
            }
            HttpResponse::NoContent().finish()
        }
        ("POST", ["groups", gid, "members", "$ref"]) => {
            // https://learn.microsoft.com/graph/api/group-post-members (v1.0)
            let Some(Value::Object(reference)) = json_body else {
                return violation(t, "$ref: no JSON object".into());
            };
            let odata_id = reference
                .get("@odata.id")
                .and_then(Value::as_str)
                .unwrap_or("");
            let prefix = format!("{}/directoryObjects/", t.base);
            let Some(user_id) = odata_id.strip_prefix(&prefix).map(str::to_string) else {
                return violation(t, format!("$ref: @odata.id {odata_id}"));
            };
            if reference.len() != 1 {
                return violation(t, format!("$ref: extra properties {reference:?}"));
            }
            if !t.users.contains_key(&user_id) {
                return graph_error(404, "Request_ResourceNotFound", "Resource does not exist.");
            }
            let Some(members) = t.groups.get_mut(*gid) else {
                return graph_error(404, "Request_ResourceNotFound", "Resource does not exist.");
            };
            if !members.insert(user_id) {
                return graph_error(
                    400,
                    "Request_BadRequest",
                    "One or more added object references already exist for the following modified properties: 'members'.",
                );
            }
            HttpResponse::NoContent().finish()
        }
        ("DELETE", ["groups", gid, "members", uid, "$ref"]) => {
            let removed = t
                .groups
                .get_mut(*gid)
                .is_some_and(|members| members.remove(*uid));
            if removed {
                HttpResponse::NoContent().finish()
            } else {
                graph_error(404, "Request_ResourceNotFound", "Resource does not exist.")
            }
        }
        _ => violation(t, format!("unexpected request {method} /{path}")),
    }
}

struct StandIn {
    url: String,
    state: Shared,
    /// Where the connectors keep their ownership records.
    db: Db,
    _dir: tempfile::TempDir,
}

impl StandIn {
    async fn start() -> Self {
        Self::start_on(Backend::Sqlite).await
    }

    async fn start_on(backend: Backend) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = database(backend, &dir).await;
        let state: Shared = Arc::new(Mutex::new(Tenant::default()));
        let data = web::Data::new(state.clone());
        let url = serve(move || {
            App::new()
                .app_data(data.clone())
                .route("/tenant-id/oauth2/v2.0/token", web::post().to(token))
                .default_service(web::to(graph))
        });
        {
            let mut t = state.lock().unwrap();
            t.base = format!("{url}/v1.0");
            for gid in ["grp-ehr", "grp-pacs", "grp-lab", "grp-not-ours"] {
                t.groups.insert(gid.into(), BTreeSet::new());
            }
        }
        StandIn {
            url,
            state,
            db,
            _dir: dir,
        }
    }

    fn target(&self) -> GraphTarget {
        GraphTarget {
            base_url: format!("{}/v1.0", self.url),
            token_url: format!("{}/tenant-id/oauth2/v2.0/token", self.url),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_url: REDIRECT.into(),
            group_ids: [
                ("ehr:reader", "grp-ehr"),
                ("pacs:viewer", "grp-pacs"),
                ("lab:tech", "grp-lab"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    fn connector(&self) -> GraphConnector {
        GraphConnector::new("graph", self.target(), self.db.clone()).unwrap()
    }

    fn tenant(&self) -> std::sync::MutexGuard<'_, Tenant> {
        self.state.lock().unwrap()
    }

    /// The groups (by id) the user with this mail is in, and whether it is enabled.
    fn user(&self, mail: &str) -> Option<(String, BTreeSet<String>, bool)> {
        let t = self.tenant();
        let (id, user) = t.users.iter().find(|(_, u)| u.mail == mail)?;
        let groups = t
            .groups
            .iter()
            .filter(|(_, m)| m.contains(id))
            .map(|(g, _)| g.clone())
            .collect();
        Some((id.clone(), groups, user.enabled))
    }

    fn assert_no_violations(&self) {
        let t = self.tenant();
        assert!(t.violations.is_empty(), "stand-in saw: {:?}", t.violations);
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn graph_stand_in_lifecycle_with_one_token_for_every_delivery() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    let mail = "ann.lee@partner.example";

    let mut ann = guest(
        "g-ann",
        mail,
        "invited",
        &[("ehr", "reader"), ("pacs", "viewer"), ("x-ray", "unmapped")],
    );
    connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    let (user_id, groups, enabled) = graph.user(mail).unwrap();
    assert_eq!(groups, set(&["grp-ehr", "grp-pacs"]));
    assert!(enabled);
    assert_eq!(graph.tenant().users[&user_id].display_name, "Ann Lee");
    assert_eq!(
        connector.user_id_of("g-ann").await.unwrap(),
        Some(user_id.clone())
    );

    // A group someone else manages is never touched.
    graph
        .tenant()
        .groups
        .get_mut("grp-not-ours")
        .unwrap()
        .insert(user_id.clone());

    // Grants change: one group stays, one goes, one comes.
    ann.state = "active".into();
    ann.display_name = Some("Dr Ann Lee".into());
    ann.grants.retain(|g| g.app == "ehr");
    ann.grants.push(guestbridge::connectors::GrantSnapshot {
        app: "lab".into(),
        role: "tech".into(),
        valid_until: None,
    });
    connector
        .deliver(&event("e2", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    let (same_id, groups, _) = graph.user(mail).unwrap();
    assert_eq!(
        same_id, user_id,
        "a second invitation returns the same user"
    );
    assert_eq!(graph.tenant().users[&user_id].display_name, "Dr Ann Lee");
    assert_eq!(groups, set(&["grp-ehr", "grp-lab", "grp-not-ours"]));

    // Delivering the same event again is harmless.
    connector
        .deliver(&event("e2", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();

    // Suspend: out of every configured group, disabled.
    ann.state = "suspended".into();
    connector
        .deliver(&event("e3", EventKind::GuestSuspended, ann.clone()))
        .await
        .unwrap();
    let (_, groups, enabled) = graph.user(mail).unwrap();
    assert_eq!(groups, set(&["grp-not-ours"]));
    assert!(!enabled);

    // Restored: enabled again, groups back.
    ann.state = "active".into();
    connector
        .deliver(&event("e4", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    let (_, groups, enabled) = graph.user(mail).unwrap();
    assert_eq!(groups, set(&["grp-ehr", "grp-lab", "grp-not-ours"]));
    assert!(enabled);

    // Removed, twice (the second finds nobody by mail and succeeds).
    ann.state = "removed".into();
    let removed = event("e5", EventKind::GuestRemoved, ann.clone());
    connector.deliver(&removed).await.unwrap();
    assert!(graph.user(mail).is_none());
    assert_eq!(connector.user_id_of("g-ann").await.unwrap(), None);
    connector.deliver(&removed).await.unwrap();

    assert_eq!(graph.tenant().token_requests, 1, "the token is cached");
    graph.assert_no_violations();
}

#[tokio::test]
async fn graph_stand_in_already_a_member_is_success() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    let ann = guest(
        "g-ann",
        "ann@partner.example",
        "active",
        &[("ehr", "reader")],
    );
    connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    // memberOf now misses the membership, so the connector adds again and gets Graph's 400.
    graph.tenant().hide_memberships = true;
    connector
        .deliver(&event("e2", EventKind::GuestUpserted, ann))
        .await
        .unwrap();
    assert!(
        graph
            .tenant()
            .requests
            .iter()
            .filter(|r| r.as_str() == "POST /groups/grp-ehr/members/$ref")
            .count()
            == 2
    );
    graph.assert_no_violations();
}

#[tokio::test]
async fn graph_stand_in_429_is_transient_with_the_retry_after() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    graph.tenant().inject.push_back((429, Some("17")));
    let ann = guest(
        "g-ann",
        "ann@partner.example",
        "active",
        &[("ehr", "reader")],
    );
    let err = connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Transient { retry_after: Some(d), .. } if *d == Duration::from_secs(17)),
        "{err:?}"
    );
    // The retry goes through.
    connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann))
        .await
        .unwrap();
    assert_eq!(
        graph.user("ann@partner.example").unwrap().1,
        set(&["grp-ehr"])
    );
    graph.assert_no_violations();
}

#[tokio::test]
async fn graph_stand_in_5xx_is_transient_and_retries_complete_the_change() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    let ann = guest(
        "g-ann",
        "ann@partner.example",
        "active",
        &[("ehr", "reader"), ("pacs", "viewer")],
    );
    // Each attempt fails at its first Graph request; nothing is half-done that a retry
    // would not finish.
    for status in [503, 500, 502] {
        graph.tenant().inject.push_back((status, None));
        let err = connector
            .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{status}: {err:?}");
        assert_eq!(err.retry_after(), None);
    }
    graph
        .tenant()
        .inject
        .push_back((503, Some("Wed, 21 Oct 2015 07:28:00 GMT")));
    let err = connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        err.retry_after(),
        Some(Duration::ZERO),
        "a past date means now"
    );
    connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann))
        .await
        .unwrap();
    let (_, groups, _) = graph.user("ann@partner.example").unwrap();
    assert_eq!(groups, set(&["grp-ehr", "grp-pacs"]));
    assert_eq!(graph.tenant().token_requests, 1);
    graph.assert_no_violations();
}

#[tokio::test]
async fn graph_stand_in_401_renews_the_token_once() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    let ann = guest("g-ann", "ann@partner.example", "active", &[]);
    connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    assert_eq!(graph.tenant().token_requests, 1);

    // The tenant revokes the token: the next request gets 401, a new token, and goes on.
    graph.tenant().valid_tokens.clear();
    connector
        .deliver(&event("e2", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    assert_eq!(graph.tenant().token_requests, 2);

    // Refused even with a fresh token: transient, after exactly one renewal.
    graph.tenant().refuse_all_tokens = true;
    let err = connector
        .deliver(&event("e3", EventKind::GuestUpserted, ann))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(graph.tenant().token_requests, 3);
    graph.assert_no_violations();
}

#[tokio::test]
async fn graph_stand_in_refused_client_secret_is_permanent_and_not_leaked() {
    let graph = StandIn::start().await;
    let mut target = graph.target();
    target.client_secret = "wrong-secret-value".into();
    let connector = GraphConnector::new("graph", target, graph.db.clone()).unwrap();
    let ann = guest("g-ann", "ann@partner.example", "active", &[]);
    let err = connector
        .deliver(&event("e1", EventKind::GuestUpserted, ann))
        .await
        .unwrap_err();
    match &err {
        DeliveryError::Permanent { reason } => {
            assert!(reason.contains("invalid_client"), "{reason}");
            assert!(!reason.contains("wrong-secret-value"));
        }
        other => panic!("expected permanent, got {other:?}"),
    }
    graph.assert_no_violations();
}

#[tokio::test]
async fn graph_stand_in_guest_without_address_is_permanent_on_invite_and_noop_on_removal() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    let mut nobody = guest("g-x", "unused", "active", &[]);
    nobody.email = None;
    let err = connector
        .deliver(&event("e1", EventKind::GuestUpserted, nobody.clone()))
        .await
        .unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    connector
        .deliver(&event("e2", EventKind::GuestRemoved, nobody))
        .await
        .unwrap();
    assert!(graph.tenant().requests.is_empty());
}

#[tokio::test]
async fn graph_stand_in_concurrent_deliveries_share_one_token_request() {
    let graph = StandIn::start().await;
    let connector = graph.connector();
    let events: Vec<_> = (0..6)
        .map(|i| {
            let g = guest(
                &format!("g-{i}"),
                &format!("p{i}@partner.example"),
                "active",
                &[("ehr", "reader")],
            );
            event(&format!("e{i}"), EventKind::GuestUpserted, g)
        })
        .collect();
    let results = futures_util::future::join_all(events.iter().map(|e| connector.deliver(e))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(graph.tenant().token_requests, 1);
    assert_eq!(graph.tenant().groups["grp-ehr"].len(), 6);
    graph.assert_no_violations();
}

both_backends!(
    graph_stand_in_never_touches_a_member_who_has_the_guests_mail,
    graph_stand_in_adopts_an_existing_guest_user_exactly_once,
    graph_stand_in_ids_come_from_the_table_after_a_restart
);

impl StandIn {
    /// A user created in the tenant by someone else (not through this connector).
    fn add_user(&self, id: &str, mail: &str, user_type: &'static str) {
        self.tenant().users.insert(
            id.to_string(),
            User {
                mail: mail.to_string(),
                display_name: "Dr Sam Staff".into(),
                enabled: true,
                user_type,
            },
        );
    }

    fn requests_to(&self, user_id: &str) -> Vec<String> {
        self.tenant()
            .requests
            .iter()
            .filter(|r| !r.starts_with("GET") && r.contains(user_id))
            .cloned()
            .collect()
    }
}

/// A partner sends a guest whose address is a staff member's: the member is never
/// enabled, renamed, put in groups, disabled or deleted, and the upsert is refused for good
/// with a reason that names the conflict.
async fn graph_stand_in_never_touches_a_member_who_has_the_guests_mail(backend: Backend) {
    let graph = StandIn::start_on(backend).await;
    let staff = "staff-0000-aaaa-bbbb-cccc-dddddddddddd";
    let mail = "sam.staff@hospital.example";
    graph.add_user(staff, mail, "Member");
    graph
        .tenant()
        .groups
        .get_mut("grp-lab")
        .unwrap()
        .insert(staff.into());
    let connector = graph.connector();
    let mut impostor = guest("g-imp", mail, "active", &[("ehr", "reader")]);

    let err = connector
        .deliver(&event("e1", EventKind::GuestUpserted, impostor.clone()))
        .await
        .unwrap_err();
    match &err {
        DeliveryError::Permanent { reason } => assert!(
            reason.contains(&format!(
                "a member account already uses mail {mail}; not adopting"
            )),
            "{reason}"
        ),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    impostor.state = "suspended".into();
    connector
        .deliver(&event("e2", EventKind::GuestSuspended, impostor.clone()))
        .await
        .unwrap();
    impostor.state = "removed".into();
    connector
        .deliver(&event("e3", EventKind::GuestRemoved, impostor))
        .await
        .unwrap();

    let (id, groups, enabled) = graph.user(mail).expect("the member still exists");
    assert_eq!(id, staff);
    assert!(enabled, "the member is still enabled");
    assert_eq!(
        groups,
        set(&["grp-lab"]),
        "the member's groups are as they were"
    );
    assert_eq!(graph.tenant().users[staff].display_name, "Dr Sam Staff");
    assert_eq!(graph.requests_to(staff), Vec::<String>::new());
    assert_eq!(owned(&graph.db, "graph", "g-imp").await, None);
    graph.assert_no_violations();
}

/// A guest invited before Guestbridge kept records (or by hand) is adopted by mail, once:
/// the record is written and later deliveries use it.
async fn graph_stand_in_adopts_an_existing_guest_user_exactly_once(backend: Backend) {
    let graph = StandIn::start_on(backend).await;
    let existing = "guest-000-aaaa-bbbb-cccc-dddddddddddd";
    let mail = "ann.lee@partner.example";
    graph.add_user(existing, mail, "Guest");
    let mut ann = guest("g-ann", mail, "active", &[("ehr", "reader")]);

    graph
        .connector()
        .deliver(&event("e1", EventKind::GuestUpserted, ann.clone()))
        .await
        .unwrap();
    assert_eq!(
        owned(&graph.db, "graph", "g-ann").await,
        Some((existing.to_string(), true))
    );
    assert_eq!(graph.user(mail).unwrap().1, set(&["grp-ehr"]));
    assert!(
        !graph
            .tenant()
            .requests
            .iter()
            .any(|r| r == "POST /invitations"),
        "an adopted guest is not invited again"
    );

    ann.state = "suspended".into();
    graph
        .connector()
        .deliver(&event("e2", EventKind::GuestSuspended, ann.clone()))
        .await
        .unwrap();
    ann.state = "active".into();
    graph
        .connector()
        .deliver(&event("e3", EventKind::GuestUpserted, ann))
        .await
        .unwrap();
    assert_eq!(graph.tenant().mail_lookups, 1, "looked up by mail once");
    assert_eq!(graph.tenant().users.len(), 1, "no second user");
    assert!(graph.user(mail).unwrap().2);
    graph.assert_no_violations();
}

/// After a restart (a new connector on the same database) suspension and removal find the
/// user by its recorded id, with no look-up by mail; a second instance shares the records.
async fn graph_stand_in_ids_come_from_the_table_after_a_restart(backend: Backend) {
    let graph = StandIn::start_on(backend).await;
    let mail = "o'neil@partner.example";
    let mut bob = guest("g-bob", mail, "active", &[("ehr", "reader")]);
    graph
        .connector()
        .deliver(&event("e1", EventKind::GuestUpserted, bob.clone()))
        .await
        .unwrap();
    let (user_id, _, _) = graph.user(mail).unwrap();
    assert_eq!(
        owned(&graph.db, "graph", "g-bob").await,
        Some((user_id.clone(), false)),
        "the invited user is recorded as created"
    );
    assert_eq!(
        graph.tenant().mail_lookups,
        1,
        "a guest without a record is looked up (to adopt) before inviting"
    );
    graph.tenant().mail_lookups = 0;

    let restarted = graph.connector();
    bob.state = "suspended".into();
    restarted
        .deliver(&event("e2", EventKind::GuestSuspended, bob.clone()))
        .await
        .unwrap();
    let (_, groups, enabled) = graph.user(mail).unwrap();
    assert!(groups.is_empty() && !enabled);
    bob.state = "removed".into();
    graph
        .connector()
        .deliver(&event("e3", EventKind::GuestRemoved, bob))
        .await
        .unwrap();
    assert!(graph.user(mail).is_none());
    assert_eq!(graph.tenant().mail_lookups, 0, "no look-up by mail");
    assert_eq!(owned(&graph.db, "graph", "g-bob").await, None);

    // A pending guest is not invited at all.
    let carol = guest("g-carol", "carol@partner.example", "pending_approval", &[]);
    restarted
        .deliver(&event("e4", EventKind::GuestUpserted, carol))
        .await
        .unwrap();
    assert!(graph.user("carol@partner.example").is_none());
    graph.assert_no_violations();
}
