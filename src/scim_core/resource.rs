//! Resource documents (RFC 7643 §2–§4): turn a client's JSON into our normalised document
//! (canonical attribute names, typed values, extensions under their URN, no `id`/`meta`),
//! flatten it into indexable leaf values, and render it back with `schemas`, `id` and `meta`.

use serde_json::{Map, Value};

use super::error::ScimError;
use super::schema::{AttrDef, AttrType, Mutability, ResourceTypeDef, SchemaDef};

/// Why a document is being normalised: the rules for `id` and required attributes differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode<'a> {
    /// POST: the server assigns `id`.
    Create,
    /// PUT or the result of a PATCH on the resource with this id.
    Replace { id: &'a str },
}

/// Validate and normalise a resource body against its resource type.
pub fn normalize(
    input: &Value,
    rt: &'static ResourceTypeDef,
    mode: WriteMode<'_>,
) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(obj) = input else {
        return Err(ScimError::invalid_syntax(
            "the request body must be a JSON object",
        ));
    };
    if let Some(schemas) = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v)
    {
        check_schemas(schemas, rt)?;
    }
    let mut out = Map::new();
    for (key, value) in obj {
        if key.eq_ignore_ascii_case("schemas") || key.eq_ignore_ascii_case("meta") {
            // `meta` is server-maintained; clients often echo it back on PUT, so it is ignored.
            continue;
        }
        if key.eq_ignore_ascii_case("id") {
            match (mode, value) {
                (_, Value::Null) => {}
                (WriteMode::Replace { id }, Value::String(s)) if s == id => {}
                _ => {
                    return Err(ScimError::mutability(
                        "attribute 'id' is readOnly and assigned by the server",
                    ))
                }
            }
            continue;
        }
        if let Some(ext) = rt.extension(key) {
            let Value::Object(ext_obj) = value else {
                if value.is_null() {
                    continue;
                }
                return Err(ScimError::invalid_value(format!(
                    "extension {} must be a JSON object",
                    ext.id
                )));
            };
            let normalized = normalize_attributes(ext_obj, ext)?;
            if !normalized.is_empty() {
                out.insert(ext.id.to_string(), Value::Object(normalized));
            }
            continue;
        }
        if let Some(def) = rt.schema.attribute(key) {
            insert_attr(&mut out, def, value, "")?;
        }
        // Unknown attributes are ignored, as RFC 7644 §3.3 allows, so that clients sending
        // extra vendor attributes keep working.
    }
    check_required(&out, rt.schema)?;
    Ok(out)
}

fn check_schemas(schemas: &Value, rt: &'static ResourceTypeDef) -> Result<(), ScimError> {
    let Value::Array(list) = schemas else {
        return Err(ScimError::invalid_value(
            "'schemas' must be an array of schema URNs",
        ));
    };
    let mut has_core = false;
    for s in list {
        let Some(urn) = s.as_str() else {
            return Err(ScimError::invalid_value(
                "'schemas' must be an array of schema URNs",
            ));
        };
        // Other URNs are ignored with their attributes: Entra ID lists a Microsoft marker
        // schema on every group it creates.
        if urn.eq_ignore_ascii_case(rt.schema.id) {
            has_core = true;
        }
    }
    if !has_core {
        return Err(ScimError::invalid_value(format!(
            "'schemas' must include {}",
            rt.schema.id
        )));
    }
    Ok(())
}

fn normalize_attributes(
    obj: &Map<String, Value>,
    schema: &'static SchemaDef,
) -> Result<Map<String, Value>, ScimError> {
    let mut out = Map::new();
    for (key, value) in obj {
        if let Some(def) = schema.attribute(key) {
            insert_attr(&mut out, def, value, &format!("{}:", schema.id))?;
        }
    }
    Ok(out)
}

fn insert_attr(
    out: &mut Map<String, Value>,
    def: &'static AttrDef,
    value: &Value,
    prefix: &str,
) -> Result<(), ScimError> {
    if def.mutability == Mutability::ReadOnly {
        // RFC 7643 §2.2: readOnly values sent by a client are ignored.
        return Ok(());
    }
    if def.mutability == Mutability::WriteOnly {
        // Guests never sign in with a partner's password: it is neither stored nor returned.
        return Ok(());
    }
    if let Some(v) = normalize_value(def, value, prefix)? {
        out.insert(def.name.to_string(), v);
    }
    Ok(())
}

/// Normalise one attribute's value; `None` means unassigned (null, empty).
pub fn normalize_value(
    def: &'static AttrDef,
    value: &Value,
    prefix: &str,
) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    if def.multi_valued {
        let items: Vec<&Value> = match value {
            Value::Array(a) => a.iter().collect(),
            single => vec![single],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(v) = normalize_single(def, item, prefix)? {
                out.push(v);
            }
        }
        if def.ty == AttrType::Complex {
            let primaries = out
                .iter()
                .filter(|v| v.get("primary") == Some(&Value::Bool(true)))
                .count();
            if primaries > 1 {
                return Err(ScimError::invalid_value(format!(
                    "attribute '{prefix}{}' has more than one primary value",
                    def.name
                )));
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    if value.is_array() {
        return Err(ScimError::invalid_value(format!(
            "attribute '{prefix}{}' is single-valued",
            def.name
        )));
    }
    normalize_single(def, value, prefix)
}

fn normalize_single(
    def: &'static AttrDef,
    value: &Value,
    prefix: &str,
) -> Result<Option<Value>, ScimError> {
    let name = || format!("{prefix}{}", def.name);
    if value.is_null() {
        return Ok(None);
    }
    Ok(Some(match def.ty {
        AttrType::Complex => {
            let Value::Object(obj) = value else {
                return Err(ScimError::invalid_value(format!(
                    "attribute '{}' must be a complex value (JSON object)",
                    name()
                )));
            };
            let mut out = Map::new();
            for (k, v) in obj {
                if let Some(sub) = def.sub_attribute(k) {
                    if sub.mutability == Mutability::ReadOnly
                        && def.mutability != Mutability::ReadOnly
                    {
                        continue;
                    }
                    if let Some(nv) = normalize_single(sub, v, &format!("{}.", name()))? {
                        out.insert(sub.name.to_string(), nv);
                    }
                }
            }
            if out.is_empty() {
                return Ok(None);
            }
            Value::Object(out)
        }
        AttrType::Boolean => Value::Bool(parse_bool(value).ok_or_else(|| {
            ScimError::invalid_value(format!("attribute '{}' must be a boolean", name()))
        })?),
        AttrType::Integer => match value {
            Value::Number(n) if n.is_i64() => value.clone(),
            Value::String(s) => s.trim().parse::<i64>().map(Value::from).map_err(|_| {
                ScimError::invalid_value(format!("attribute '{}' must be an integer", name()))
            })?,
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "attribute '{}' must be an integer",
                    name()
                )))
            }
        },
        AttrType::Decimal => match value {
            Value::Number(_) => value.clone(),
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "attribute '{}' must be a number",
                    name()
                )))
            }
        },
        AttrType::DateTime => {
            let s = value.as_str().ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "attribute '{}' must be an xsd:dateTime string",
                    name()
                ))
            })?;
            let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|_| {
                ScimError::invalid_value(format!(
                    "attribute '{}' value {s:?} is not an xsd:dateTime",
                    name()
                ))
            })?;
            Value::String(crate::clock::to_rfc3339(t.with_timezone(&chrono::Utc)))
        }
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            // PostgreSQL text cannot hold NUL (the write failed with a 500) and SQLite ends
            // text at it in comparisons.
            Value::String(s) if s.contains('\0') => {
                return Err(ScimError::invalid_value(format!(
                    "attribute '{}' must not contain NUL (\\u0000)",
                    name()
                )))
            }
            // A line break in a name reaches mail headers (a declined notice's subject
            // carries the guest's name); only a postal address is text over several lines.
            Value::String(s)
                if s.chars().any(|c| {
                    c.is_control() && !(is_multi_line(&name()) && matches!(c, '\n' | '\r' | '\t'))
                }) =>
            {
                return Err(ScimError::invalid_value(format!(
                    "attribute '{}' must not contain control characters (line breaks, tabs, U+0000-U+001F, U+007F-U+009F)",
                    name()
                )))
            }
            Value::String(_) => value.clone(),
            // Some HR systems send employee numbers and the like as JSON numbers.
            Value::Number(n) => Value::String(n.to_string()),
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "attribute '{}' must be a string",
                    name()
                )))
            }
        },
    }))
}

/// The attributes RFC 7643 describes as text over several lines.
fn is_multi_line(name: &str) -> bool {
    name.eq_ignore_ascii_case("addresses.formatted")
}

/// A boolean, also from the strings real clients send (Entra ID sends `"False"`).
pub fn parse_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn check_required(doc: &Map<String, Value>, schema: &SchemaDef) -> Result<(), ScimError> {
    for def in schema.attributes.iter().filter(|a| a.required) {
        let present = match doc.get(def.name) {
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(v) => !v.is_null(),
            None => false,
        };
        if !present {
            return Err(ScimError::invalid_value(format!(
                "required attribute '{}' is missing",
                def.name
            )));
        }
    }
    Ok(())
}

/// One indexed leaf value of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct LeafValue {
    /// Lower-cased attribute path: `emails.value`, `name.familyname`, `URN:attr`.
    pub path: String,
    /// Element number within a multi-valued attribute, 0 otherwise.
    pub elem: i64,
    pub value: String,
    pub value_ci: String,
    pub num: Option<f64>,
}

/// The leaf values of a normalised document, for `scim_values`.
pub fn flatten(doc: &Map<String, Value>, rt: &'static ResourceTypeDef) -> Vec<LeafValue> {
    let mut out = Vec::new();
    for schema in rt.schemas() {
        let (obj, prefix) = if std::ptr::eq(schema, rt.schema) {
            (Some(doc), String::new())
        } else {
            (
                doc.get(schema.id).and_then(Value::as_object),
                format!("{}:", schema.id.to_ascii_lowercase()),
            )
        };
        let Some(obj) = obj else { continue };
        for def in schema.attributes {
            let Some(v) = obj.get(def.name) else { continue };
            let path = format!("{prefix}{}", def.name.to_ascii_lowercase());
            match v {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        flatten_value(&path, i as i64, item, &mut out);
                    }
                }
                other => flatten_value(&path, 0, other, &mut out),
            }
        }
    }
    out
}

fn flatten_value(path: &str, elem: i64, v: &Value, out: &mut Vec<LeafValue>) {
    match v {
        Value::Object(obj) => {
            for (k, sub) in obj {
                flatten_value(
                    &format!("{path}.{}", k.to_ascii_lowercase()),
                    elem,
                    sub,
                    out,
                );
            }
        }
        Value::String(s) => out.push(LeafValue {
            path: path.to_string(),
            elem,
            value: s.clone(),
            value_ci: s.to_lowercase(),
            num: None,
        }),
        Value::Bool(b) => out.push(LeafValue {
            path: path.to_string(),
            elem,
            value: b.to_string(),
            value_ci: b.to_string(),
            num: None,
        }),
        Value::Number(n) => out.push(LeafValue {
            path: path.to_string(),
            elem,
            value: n.to_string(),
            value_ci: n.to_string(),
            num: n.as_f64(),
        }),
        Value::Null | Value::Array(_) => {}
    }
}

/// Server-maintained metadata (RFC 7643 §3.1).
#[derive(Debug, Clone)]
pub struct Meta {
    pub created: String,
    pub last_modified: String,
    pub location: String,
    pub version: String,
}

/// The full wire representation: `schemas`, `id`, attributes, `meta`.
pub fn render(
    rt: &'static ResourceTypeDef,
    id: &str,
    doc: Map<String, Value>,
    meta: &Meta,
) -> Value {
    let mut schemas = vec![Value::String(rt.schema.id.to_string())];
    for (ext, _) in rt.extensions {
        if doc.contains_key(ext.id) {
            schemas.push(Value::String(ext.id.to_string()));
        }
    }
    let mut out = Map::new();
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), Value::String(id.to_string()));
    out.extend(doc);
    out.insert(
        "meta".into(),
        serde_json::json!({
            "resourceType": rt.name,
            "created": meta.created,
            "lastModified": meta.last_modified,
            "location": meta.location,
            "version": meta.version,
        }),
    );
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim_core::schema::{ENTERPRISE_USER_SCHEMA, USER_RESOURCE};
    use serde_json::json;

    #[test]
    fn normalises_names_types_and_extensions() {
        let doc = normalize(
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA],
                "USERNAME": "ann@acme.example",
                "Active": "False",
                "name": {"FamilyName": "Lee", "givenName": "Ann"},
                "emails": {"value": "ann@acme.example", "primary": "true"},
                "groups": [{"value": "x"}],
                "unknownThing": 1,
                ENTERPRISE_USER_SCHEMA: {"employeeNumber": 42, "department": "Cardiology"}
            }),
            &USER_RESOURCE,
            WriteMode::Create,
        )
        .unwrap();
        assert_eq!(doc["userName"], "ann@acme.example");
        assert_eq!(doc["active"], false);
        assert_eq!(doc["name"]["familyName"], "Lee");
        assert_eq!(doc["emails"][0]["primary"], true);
        assert!(!doc.contains_key("groups"));
        assert!(!doc.contains_key("unknownThing"));
        assert_eq!(doc[ENTERPRISE_USER_SCHEMA]["employeeNumber"], "42");
    }

    #[test]
    fn rejects_bad_input_with_scim_types() {
        use crate::scim_core::error::ScimType;
        let cases = [
            (json!({"emails": []}), ScimType::InvalidValue),
            (json!({"userName": "a", "id": "x"}), ScimType::Mutability),
            (
                json!({"userName": "a", "active": "maybe"}),
                ScimType::InvalidValue,
            ),
            (
                json!({"userName": "a", "name": "Ann"}),
                ScimType::InvalidValue,
            ),
            (
                json!({"userName": "a", "schemas": ["urn:nope"]}),
                ScimType::InvalidValue,
            ),
            (
                json!({"userName": "a", "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
                ScimType::InvalidValue,
            ),
        ];
        for (body, expected) in cases {
            let err = normalize(&body, &USER_RESOURCE, WriteMode::Create).unwrap_err();
            assert_eq!(err.scim_type, Some(expected), "{body}: {err}");
        }
    }

    #[test]
    fn flattens_leaves_with_element_numbers() {
        let doc = normalize(
            &json!({"userName": "Ann", "emails": [{"value": "A@x", "type": "work"}, {"value": "b@y"}],
                    ENTERPRISE_USER_SCHEMA: {"department": "Cardio"}}),
            &USER_RESOURCE,
            WriteMode::Create,
        )
        .unwrap();
        let leaves = flatten(&doc, &USER_RESOURCE);
        assert!(leaves
            .iter()
            .any(|l| l.path == "emails.value" && l.elem == 1 && l.value == "b@y"));
        assert!(leaves
            .iter()
            .any(|l| l.path == "emails.type" && l.elem == 0 && l.value_ci == "work"));
        assert!(leaves
            .iter()
            .any(|l| l.path == "username" && l.value_ci == "ann"));
        assert!(leaves
            .iter()
            .any(|l| l.path
                == "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:department"));
    }
}
