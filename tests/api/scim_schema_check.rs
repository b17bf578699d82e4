//! The schema self-check: every SCIM response a test reads through `helpers::read` is checked
//! against the schemas this very server serves at `/Schemas` and `/ResourceTypes` (RFC 7643
//! §2: declared attributes only, their types, `returned`, `schemas` naming each extension
//! present) and against the message and discovery schemas that RFC 7643 §5–§7 and RFC 7644
//! §3.4.2, §3.7, §3.12 define. A failure panics in the test that received the response.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
const SPC: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// Responses validated by this test process.
pub static VALIDATED: AtomicU64 = AtomicU64::new(0);

/// Where the count is written, since the test harness has no end-of-run hook.
const COUNT_FILE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/scim-schema-check.count");

/// What one running app serves: schemas by id, resource types by core schema id.
struct Served {
    schemas: HashMap<String, Value>,
    types: HashMap<String, Value>,
}

static CACHE: Mutex<Option<HashMap<String, Arc<Served>>>> = Mutex::new(None);
static WRITE: Mutex<()> = Mutex::new(());

async fn served(origin: &str) -> Arc<Served> {
    if let Some(s) = CACHE
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .get(origin)
    {
        return s.clone();
    }
    let fetch = |what: &'static str| async move {
        let url = format!("{origin}/scim/v2/{what}");
        let v: Value = reqwest::get(&url)
            .await
            .expect(what)
            .json()
            .await
            .expect(what);
        v["Resources"].as_array().cloned().unwrap_or_default()
    };
    let schemas = fetch("Schemas").await;
    let types = fetch("ResourceTypes").await;
    let served = Arc::new(Served {
        schemas: schemas
            .into_iter()
            .map(|s| (s["id"].as_str().unwrap_or_default().to_string(), s))
            .collect(),
        types: types
            .into_iter()
            .map(|t| (t["schema"].as_str().unwrap_or_default().to_string(), t))
            .collect(),
    });
    CACHE
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(origin.to_string(), served.clone());
    served
}

/// Check one response body received from `url`; non-SCIM URLs are not checked.
pub async fn check(url: &reqwest::Url, body: &Value) {
    if !url.path().contains("/scim/v2") || body.is_null() {
        return;
    }
    let origin = url.origin().ascii_serialization();
    let served = served(&origin).await;
    let mut problems = Vec::new();
    match body {
        Value::Object(obj) => message(&served, obj, "", &mut problems),
        other => problems.push(format!("the body is not a JSON object: {other}")),
    }
    assert!(
        problems.is_empty(),
        "schema self-check of {url}:\n  {}\nbody: {body}",
        problems.join("\n  ")
    );
    let _guard = WRITE.lock().unwrap();
    let n = VALIDATED.fetch_add(1, Ordering::SeqCst) + 1;
    let _ = std::fs::write(COUNT_FILE, format!("{n}\n"));
}

fn schemas_of(obj: &Map<String, Value>) -> Vec<&str> {
    obj.get("schemas")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn message(served: &Served, obj: &Map<String, Value>, at: &str, out: &mut Vec<String>) {
    let schemas = schemas_of(obj);
    let Some(first) = schemas.first().copied() else {
        out.push(format!("{at}: no 'schemas'"));
        return;
    };
    match first {
        ERROR => fixed(
            obj,
            at,
            &[("status", "s!"), ("scimType", "s"), ("detail", "s")],
            out,
        ),
        LIST => {
            fixed(
                obj,
                at,
                &[
                    ("totalResults", "i!"),
                    ("startIndex", "i"),
                    ("itemsPerPage", "i"),
                    ("Resources", "a"),
                    // RFC 9865 §2.2.
                    ("nextCursor", "s"),
                    ("previousCursor", "s"),
                ],
                out,
            );
            for (i, r) in obj
                .get("Resources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                match r.as_object() {
                    Some(r) => message(served, r, &format!("{at}Resources[{i}]"), out),
                    None => out.push(format!("{at}Resources[{i}]: not an object")),
                }
            }
        }
        BULK => {
            fixed(obj, at, &[("Operations", "a!")], out);
            for (i, op) in obj
                .get("Operations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let at = format!("{at}Operations[{i}]");
                let Some(op) = op.as_object() else {
                    out.push(format!("{at}: not an object"));
                    continue;
                };
                let mut fields = op.clone();
                let response = fields.remove("response");
                // An operation result is not a resource: it has no `schemas` of its own.
                fields.insert("schemas".into(), Value::Array(vec![BULK.into()]));
                fixed(
                    &fields,
                    &at,
                    &[
                        ("method", "s!"),
                        ("bulkId", "s"),
                        ("version", "s"),
                        ("location", "s"),
                        ("status", "s!"),
                    ],
                    out,
                );
                if let Some(r) = response {
                    match r.as_object() {
                        Some(r) => message(served, r, &format!("{at}.response"), out),
                        None => out.push(format!("{at}.response: not an object")),
                    }
                }
            }
        }
        SPC => service_provider_config(obj, at, out),
        RESOURCE_TYPE => resource_type(served, obj, at, out),
        SCHEMA => schema_document(obj, at, out),
        _ => resource(served, obj, at, out),
    }
}

/// A message with a fixed set of members: `s` string, `i` integer, `a` array, `b` boolean,
/// `o` object; `!` required. `schemas` and (for discovery documents) `meta` are common.
fn fixed(obj: &Map<String, Value>, at: &str, members: &[(&str, &str)], out: &mut Vec<String>) {
    for (key, v) in obj {
        if key == "schemas" || key == "meta" && members.iter().any(|(k, _)| *k == "meta") {
            continue;
        }
        let Some((_, kind)) = members.iter().find(|(k, _)| k == key) else {
            out.push(format!(
                "{at}: '{key}' is not defined by the message schema"
            ));
            continue;
        };
        let ok = match kind.trim_end_matches('!') {
            "s" => v.is_string(),
            "i" => v.is_i64() || v.is_u64(),
            "a" => v.is_array(),
            "b" => v.is_boolean(),
            "o" => v.is_object(),
            _ => true,
        };
        if !ok {
            out.push(format!("{at}: '{key}' has the wrong type: {v}"));
        }
    }
    for (key, kind) in members {
        if kind.ends_with('!') && !obj.contains_key(*key) {
            out.push(format!("{at}: required '{key}' is missing"));
        }
    }
}

/// RFC 7643 §5 (plus RFC 9865 §4's `pagination`).
fn service_provider_config(obj: &Map<String, Value>, at: &str, out: &mut Vec<String>) {
    fixed(
        obj,
        at,
        &[
            ("documentationUri", "s"),
            ("patch", "o!"),
            ("bulk", "o!"),
            ("filter", "o!"),
            ("changePassword", "o!"),
            ("sort", "o!"),
            ("etag", "o!"),
            ("authenticationSchemes", "a!"),
            ("pagination", "o"),
            ("meta", "o"),
        ],
        out,
    );
    let sub = |key: &str, members: &[(&str, &str)], out: &mut Vec<String>| {
        if let Some(Value::Object(o)) = obj.get(key) {
            let mut o = o.clone();
            o.insert("schemas".into(), Value::Null);
            fixed(&o, &format!("{at}{key}"), members, out);
        }
    };
    for key in ["patch", "changePassword", "sort", "etag"] {
        sub(key, &[("supported", "b!")], out);
    }
    sub(
        "bulk",
        &[
            ("supported", "b!"),
            ("maxOperations", "i!"),
            ("maxPayloadSize", "i!"),
        ],
        out,
    );
    sub("filter", &[("supported", "b!"), ("maxResults", "i!")], out);
    sub(
        "pagination",
        &[
            ("cursor", "b"),
            ("index", "b"),
            ("defaultPaginationMethod", "s"),
            ("defaultPageSize", "i"),
            ("maxPageSize", "i"),
            ("cursorTimeout", "i"),
        ],
        out,
    );
    for (i, scheme) in obj
        .get("authenticationSchemes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mut o = scheme.as_object().cloned().unwrap_or_default();
        o.insert("schemas".into(), Value::Null);
        fixed(
            &o,
            &format!("{at}authenticationSchemes[{i}]"),
            &[
                ("type", "s!"),
                ("name", "s!"),
                ("description", "s!"),
                ("specUri", "s"),
                ("documentationUri", "s"),
                ("primary", "b"),
            ],
            out,
        );
    }
}

/// RFC 7643 §6; the schemas it names must be served.
fn resource_type(served: &Served, obj: &Map<String, Value>, at: &str, out: &mut Vec<String>) {
    fixed(
        obj,
        at,
        &[
            ("id", "s"),
            ("name", "s!"),
            ("description", "s"),
            ("endpoint", "s!"),
            ("schema", "s!"),
            ("schemaExtensions", "a"),
            ("meta", "o"),
        ],
        out,
    );
    let mut named: Vec<&str> = obj
        .get("schema")
        .and_then(Value::as_str)
        .into_iter()
        .collect();
    for (i, e) in obj
        .get("schemaExtensions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let mut o = e.as_object().cloned().unwrap_or_default();
        o.insert("schemas".into(), Value::Null);
        fixed(
            &o,
            &format!("{at}schemaExtensions[{i}]"),
            &[("schema", "s!"), ("required", "b!")],
            out,
        );
        named.extend(e["schema"].as_str());
    }
    for s in named {
        if !served.schemas.contains_key(s) {
            out.push(format!(
                "{at}: names schema {s}, which /Schemas does not serve"
            ));
        }
    }
}

/// RFC 7643 §7.
fn schema_document(obj: &Map<String, Value>, at: &str, out: &mut Vec<String>) {
    fixed(
        obj,
        at,
        &[
            ("id", "s!"),
            ("name", "s"),
            ("description", "s"),
            ("attributes", "a!"),
            ("meta", "o"),
        ],
        out,
    );
    fn attributes(list: Option<&Value>, at: &str, out: &mut Vec<String>) {
        for (i, a) in list
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{at}[{i}]");
            let mut o = a.as_object().cloned().unwrap_or_default();
            o.insert("schemas".into(), Value::Null);
            fixed(
                &o,
                &at,
                &[
                    ("name", "s!"),
                    ("type", "s!"),
                    ("multiValued", "b!"),
                    ("description", "s"),
                    ("required", "b!"),
                    ("canonicalValues", "a"),
                    ("caseExact", "b"),
                    ("mutability", "s!"),
                    ("returned", "s!"),
                    ("uniqueness", "s"),
                    ("referenceTypes", "a"),
                    ("subAttributes", "a"),
                ],
                out,
            );
            let one_of = |key: &str, allowed: &[&str], out: &mut Vec<String>| {
                if let Some(v) = a[key].as_str().filter(|v| !allowed.contains(v)) {
                    out.push(format!("{at}: {key} {v:?} is not one RFC 7643 §7 defines"));
                }
            };
            one_of(
                "type",
                &[
                    "string",
                    "boolean",
                    "decimal",
                    "integer",
                    "dateTime",
                    "reference",
                    "complex",
                    "binary",
                ],
                out,
            );
            one_of(
                "mutability",
                &["readOnly", "readWrite", "immutable", "writeOnly"],
                out,
            );
            one_of("returned", &["always", "never", "default", "request"], out);
            one_of("uniqueness", &["none", "server", "global"], out);
            if (a["type"] == "complex") != a.get("subAttributes").is_some() {
                out.push(format!(
                    "{at}: subAttributes go with type complex, and only with it"
                ));
            }
            attributes(a.get("subAttributes"), &format!("{at}.subAttributes"), out);
        }
    }
    attributes(obj.get("attributes"), &format!("{at}attributes"), out);
}

/// A resource: its core schema's resource type decides which extensions it may carry.
fn resource(served: &Served, obj: &Map<String, Value>, at: &str, out: &mut Vec<String>) {
    let schemas = schemas_of(obj);
    let core = schemas[0];
    let (Some(rt), Some(core_schema)) = (served.types.get(core), served.schemas.get(core)) else {
        out.push(format!(
            "{at}: schema {core} is neither a message nor a served resource type"
        ));
        return;
    };
    let extensions: Vec<&str> = rt["schemaExtensions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["schema"].as_str())
        .collect();
    for s in &schemas[1..] {
        if !extensions.contains(s) {
            out.push(format!(
                "{at}: 'schemas' lists {s}, not an extension of {}",
                rt["name"]
            ));
        }
        if !obj.contains_key(*s) {
            out.push(format!(
                "{at}: 'schemas' lists {s} but the resource has no such extension"
            ));
        }
    }
    for (key, v) in obj {
        if key == "schemas" {
            continue;
        }
        if extensions.contains(&key.as_str()) {
            if !schemas.contains(&key.as_str()) {
                out.push(format!(
                    "{at}: extension {key} is present but not listed in 'schemas'"
                ));
            }
            match (v.as_object(), served.schemas.get(key)) {
                (Some(ext), Some(def)) => {
                    attributes(ext, &def["attributes"], &format!("{at}{key}:"), false, out)
                }
                _ => out.push(format!(
                    "{at}: extension {key} is not an object or not served"
                )),
            }
        }
    }
    let core_members: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| *k != "schemas" && !extensions.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    attributes(&core_members, &core_schema["attributes"], at, true, out);
}

/// The members of `obj` against the attribute definitions `defs` (RFC 7643 §2.2, §7).
fn attributes(obj: &Map<String, Value>, defs: &Value, at: &str, top: bool, out: &mut Vec<String>) {
    let defs: Vec<&Value> = defs.as_array().into_iter().flatten().collect();
    for (key, v) in obj {
        let Some(def) = defs.iter().find(|d| d["name"] == key.as_str()) else {
            out.push(format!(
                "{at}{key}: not an attribute the served schema declares"
            ));
            continue;
        };
        if def["returned"] == "never" {
            out.push(format!("{at}{key}: returned is never, yet it was returned"));
        }
        let path = format!("{at}{key}");
        match (def["multiValued"].as_bool().unwrap_or(false), v) {
            (true, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    value(def, item, &format!("{path}[{i}]"), out);
                }
            }
            (true, other) => out.push(format!("{path}: multi-valued, but not an array: {other}")),
            (false, v) => value(def, v, &path, out),
        }
    }
    if top {
        for def in defs.iter().filter(|d| d["returned"] == "always") {
            let name = def["name"].as_str().unwrap_or_default();
            if !obj.contains_key(name) {
                out.push(format!("{at}{name}: returned is always, yet it is missing"));
            }
        }
    }
}

fn value(def: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let ok = match def["type"].as_str().unwrap_or_default() {
        "string" | "reference" | "binary" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "decimal" => v.is_number(),
        "dateTime" => v
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        "complex" => match v.as_object() {
            Some(o) => {
                attributes(o, &def["subAttributes"], &format!("{at}."), false, out);
                true
            }
            None => false,
        },
        _ => false,
    };
    if !ok {
        out.push(format!("{at}: not a {} value: {v}", def["type"]));
    }
}
