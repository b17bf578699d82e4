//! A stand-in for Entra ID's token endpoint and the part of Microsoft Graph v1.0 the Graph
//! connector uses, checking every request against the shapes Microsoft documents and
//! answering as Graph does. Shared by the connector tests and the end-to-end sync tests
//! (`tests/api`), which include this file by path. It is not Microsoft Graph.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

pub struct User {
    pub mail: String,
    pub display_name: String,
    pub enabled: bool,
    /// `Guest` for B2B guests, `Member` for the tenant's own staff.
    pub user_type: &'static str,
}

#[derive(Default)]
pub struct Tenant {
    pub base: String,
    pub token_requests: usize,
    pub valid_tokens: HashSet<String>,
    /// Answer 401 to every Graph request, whatever the token.
    pub refuse_all_tokens: bool,
    pub users: BTreeMap<String, User>,
    pub groups: BTreeMap<String, BTreeSet<String>>,
    /// Statuses (with an optional Retry-After) to answer the next Graph requests with.
    pub inject: VecDeque<(u16, Option<&'static str>)>,
    /// memberOf answers no groups (as if the read raced a concurrent add).
    pub hide_memberships: bool,
    pub violations: Vec<String>,
    pub requests: Vec<String>,
    /// `GET /users?$filter=mail eq …` requests seen.
    pub mail_lookups: usize,
    pub next_id: usize,
}

pub type Shared = Arc<Mutex<Tenant>>;

pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_SECRET: &str = "client~secret";
pub const REDIRECT: &str = "https://apps.hospital.example/welcome";

pub fn graph_error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .json(json!({"error": {"code": code, "message": message}}))
}

/// Record a violation of the documented shapes and answer 400, so the test fails loudly.
pub fn violation(t: &mut Tenant, what: String) -> HttpResponse {
    t.violations.push(what.clone());
    graph_error(400, "StandInViolation", &what)
}

pub async fn token(req: HttpRequest, body: Bytes, state: web::Data<Shared>) -> HttpResponse {
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

pub fn query(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

/// Every Graph v1.0 request lands here; dispatched on method and path segments.
pub async fn graph(req: HttpRequest, body: Bytes, state: web::Data<Shared>) -> HttpResponse {
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
