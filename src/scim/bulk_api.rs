//! `/scim/v2/Bulk` (RFC 7644 §3.7): several operations in one request, each applied through
//! the same services as its single-resource form, with `bulkId` references resolved between
//! them. Each operation commits on its own (the RFC does not make bulk atomic).

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::http::{read_json, scim_error, scim_json, ScimPartner};
use super::users_api::MAX_PATCH_OPERATIONS;
use crate::app_state::AppState;
use crate::scim_core::bulk_order::Schedule;
use crate::scim_core::error::ScimError;
use crate::scim_core::patch::parse_patch_request;
use crate::services::{groups, users, Actor};

pub const BULK_REQUEST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// Most operations one bulk request may carry (advertised in ServiceProviderConfig).
pub const MAX_BULK_OPERATIONS: usize = 1000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::routes::resource("/Bulk", "POST").route(web::post().to(post_bulk)));
}

/// One parsed operation.
struct BulkOp {
    method: String,
    bulk_id: Option<String>,
    version: Option<String>,
    path: String,
    data: Option<Value>,
}

fn parse_ops(body: &Value) -> Result<(Vec<BulkOp>, Option<usize>), ScimError> {
    let Value::Object(obj) = body else {
        return Err(ScimError::invalid_syntax(
            "the BulkRequest must be a JSON object",
        ));
    };
    let schemas_ok = obj
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|v| v.as_str() == Some(BULK_REQUEST_SCHEMA)));
    if !schemas_ok {
        return Err(ScimError::invalid_value(format!(
            "'schemas' must contain {BULK_REQUEST_SCHEMA}"
        )));
    }
    let fail_on_errors =
        match obj.get("failOnErrors") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                ScimError::invalid_value("failOnErrors must be a positive integer")
            })? as usize),
        };
    let list = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .and_then(|(_, v)| v.as_array())
        .ok_or_else(|| ScimError::invalid_syntax("the BulkRequest needs an 'Operations' array"))?;
    if list.len() > MAX_BULK_OPERATIONS {
        return Err(ScimError::payload_too_large(format!(
            "the bulk request has {} operations; at most {MAX_BULK_OPERATIONS} are allowed",
            list.len()
        )));
    }
    let mut ops = Vec::with_capacity(list.len());
    for (i, op) in list.iter().enumerate() {
        let field = |k: &str| op.get(k).and_then(Value::as_str).map(str::to_string);
        let method = field("method")
            .map(|m| m.to_ascii_uppercase())
            .filter(|m| matches!(m.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
            .ok_or_else(|| {
                ScimError::invalid_syntax(format!(
                    "Operations[{i}]: method must be POST, PUT, PATCH or DELETE"
                ))
            })?;
        let path = field("path").ok_or_else(|| {
            ScimError::invalid_syntax(format!("Operations[{i}]: path is required"))
        })?;
        let bulk_id = field("bulkId");
        if method == "POST" && bulk_id.is_none() {
            return Err(ScimError::invalid_syntax(format!(
                "Operations[{i}]: POST needs a bulkId"
            )));
        }
        ops.push(BulkOp {
            method,
            bulk_id,
            version: field("version"),
            path,
            data: op.get("data").cloned(),
        });
    }
    Ok((ops, fail_on_errors))
}

/// Parse a BulkRequest and order its operations as [`post_bulk`] would if each succeeded,
/// executing nothing: (the order they run in, those left waiting on a cycle). The fuzz
/// target's way into the parser and the scheduler.
#[doc(hidden)]
pub fn plan(body: &Value) -> Result<(Vec<usize>, Vec<usize>), ScimError> {
    let (ops, _) = parse_ops(body)?;
    let defined: Vec<Option<String>> = ops.iter().map(|o| o.bulk_id.clone()).collect();
    let refs: Vec<Vec<String>> = ops.iter().map(op_references).collect();
    let mut schedule = Schedule::new(&defined, &refs);
    let mut order = Vec::with_capacity(ops.len());
    while let Some(i) = schedule.next() {
        if ops[i].method == "PATCH" {
            if let Some(d) = &ops[i].data {
                let _ = parse_patch_request(d, MAX_PATCH_OPERATIONS);
            }
        }
        order.push(i);
        schedule.finish(i);
    }
    Ok((order, schedule.stuck().collect()))
}

/// Every `bulkId:X` a value mentions.
fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:") {
                out.push(id.to_string());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        Value::Object(o) => o.values().for_each(|x| references(x, out)),
        _ => {}
    }
}

/// Every `bulkId:X` an operation mentions, in its data or as a path segment.
fn op_references(op: &BulkOp) -> Vec<String> {
    let mut refs = Vec::new();
    if let Some(d) = &op.data {
        references(d, &mut refs);
    }
    for segment in op.path.split('/') {
        references(&Value::String(segment.to_string()), &mut refs);
    }
    refs
}

fn substitute(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:").and_then(|b| ids.get(b)) {
                *s = id.clone();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, ids)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, ids)),
        _ => {}
    }
}

/// The outcome of one operation: (status, location, version, created id).
type Outcome = Result<(StatusCode, Option<String>, Option<String>, Option<String>), ScimError>;

async fn execute(
    state: &AppState,
    partner: &crate::domain::Partner,
    actor: &Actor,
    op: &BulkOp,
) -> Outcome {
    let base = &state.settings.http.public_url;
    let segments: Vec<&str> = op.path.trim_matches('/').split('/').collect();
    let data = || {
        op.data
            .clone()
            .ok_or_else(|| ScimError::invalid_syntax("this operation needs 'data'"))
    };
    let version = op.version.as_deref();
    let deps = &state.deps;
    let loc = |kind: &str, id: &str| Some(format!("{base}/scim/v2/{kind}/{id}"));
    match (op.method.as_str(), segments.as_slice()) {
        ("POST", ["Users"]) => {
            let u = users::create(deps, actor, partner, &data()?)
                .await
                .map_err(scim_error)?;
            Ok((
                StatusCode::CREATED,
                loc("Users", &u.row.id),
                Some(u.etag()),
                Some(u.row.id),
            ))
        }
        ("POST", ["Groups"]) => {
            let g = groups::create(deps, actor, partner, &data()?)
                .await
                .map_err(scim_error)?;
            Ok((
                StatusCode::CREATED,
                loc("Groups", &g.row.id),
                Some(g.etag()),
                Some(g.row.id),
            ))
        }
        ("PUT", ["Users", id]) => {
            let u = users::replace(deps, actor, partner, id, &data()?, version)
                .await
                .map_err(scim_error)?;
            Ok((StatusCode::OK, loc("Users", id), Some(u.etag()), None))
        }
        ("PUT", ["Groups", id]) => {
            let g = groups::replace(deps, actor, partner, id, &data()?, version)
                .await
                .map_err(scim_error)?;
            Ok((StatusCode::OK, loc("Groups", id), Some(g.etag()), None))
        }
        ("PATCH", ["Users", id]) => {
            let ops = parse_patch_request(&data()?, MAX_PATCH_OPERATIONS)?;
            let u = users::patch(deps, actor, partner, id, &ops, version)
                .await
                .map_err(scim_error)?;
            Ok((StatusCode::OK, loc("Users", id), Some(u.etag()), None))
        }
        ("PATCH", ["Groups", id]) => {
            let ops = parse_patch_request(&data()?, MAX_PATCH_OPERATIONS)?;
            let g = groups::patch(deps, actor, partner, id, &ops, version)
                .await
                .map_err(scim_error)?;
            Ok((
                StatusCode::NO_CONTENT,
                loc("Groups", id),
                Some(g.etag()),
                None,
            ))
        }
        ("DELETE", ["Users", id]) => {
            users::delete(deps, actor, partner, id, version)
                .await
                .map_err(scim_error)?;
            Ok((StatusCode::NO_CONTENT, loc("Users", id), None, None))
        }
        ("DELETE", ["Groups", id]) => {
            groups::delete(deps, actor, partner, id, version)
                .await
                .map_err(scim_error)?;
            Ok((StatusCode::NO_CONTENT, loc("Groups", id), None, None))
        }
        _ => Err(ScimError::invalid_path(format!(
            "{} {} is not a supported bulk operation",
            op.method, op.path
        ))),
    }
}

pub async fn post_bulk(
    state: web::Data<AppState>,
    caller: ScimPartner,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ScimError> {
    let body = read_json(&req, payload, state.settings.http.max_body_bytes).await?;
    let (mut ops, fail_on_errors) = parse_ops(&body)?;
    let mut resolved: HashMap<String, String> = HashMap::new();
    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut errors = 0usize;
    let defined: Vec<Option<String>> = ops.iter().map(|o| o.bulk_id.clone()).collect();
    let refs: Vec<Vec<String>> = ops.iter().map(op_references).collect();
    // Request order, except that an operation referring to a bulkId defined later waits for
    // it (RFC 7644 §3.7.2); what waits on a cycle never runs and fails below.
    let mut schedule = Schedule::new(&defined, &refs);
    let mut stopped = false;
    while let Some(i) = schedule.next() {
        if fail_on_errors.is_some_and(|limit| errors >= limit) {
            stopped = true;
            break;
        }
        let unresolved = refs[i].iter().find(|r| !resolved.contains_key(*r));
        let outcome = if let Some(r) = unresolved {
            Err(ScimError::invalid_value(format!(
                "bulkId:{r} does not refer to a created resource"
            )))
        } else {
            let op = &mut ops[i];
            if let Some(d) = op.data.as_mut() {
                substitute(d, &resolved);
            }
            op.path = op
                .path
                .split('/')
                .map(|segment| {
                    let mut v = Value::String(segment.to_string());
                    substitute(&mut v, &resolved);
                    v.as_str().unwrap_or_default().to_string()
                })
                .collect::<Vec<_>>()
                .join("/");
            execute(&state, &caller.partner, &caller.actor, op).await
        };
        let op = &ops[i];
        let mut entry = json!({"method": op.method});
        if let Some(b) = &op.bulk_id {
            entry["bulkId"] = json!(b);
        }
        match outcome {
            Ok((status, location, version, created)) => {
                if let (Some(b), Some(id)) = (&op.bulk_id, created) {
                    resolved.insert(b.clone(), id);
                }
                entry["status"] = json!(status.as_u16().to_string());
                if let Some(l) = location {
                    entry["location"] = json!(l);
                }
                if let Some(v) = version {
                    entry["version"] = json!(v);
                }
            }
            Err(e) => {
                errors += 1;
                entry["status"] = json!(e.status.to_string());
                entry["response"] = e.to_json();
            }
        }
        results[i] = Some(entry);
        schedule.finish(i);
    }
    if !stopped {
        // Circular references: what is left waits on a cycle and can never run.
        for i in schedule.stuck() {
            let e = ScimError::invalid_value("circular bulkId references cannot be resolved");
            results[i] = Some(
                json!({"method": ops[i].method, "bulkId": ops[i].bulk_id, "status": "400", "response": e.to_json()}),
            );
        }
    }
    Ok(scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [BULK_RESPONSE_SCHEMA],
            "Operations": results.into_iter().flatten().collect::<Vec<_>>(),
        }),
    ))
}
