//! JSON values as the schema sees them: canonical names, assigned or not (RFC 7643 §2.5),
//! equality by type and `caseExact`.

use serde_json::{Map, Value};

use crate::scim_core::error::ScimError;
use crate::scim_core::resource::parse_bool;
use crate::scim_core::schema::{AttrDef, AttrType};
use crate::scim_core::text::shorten;

use super::MAX_QUOTED_CHARS;

/// The elements of a multi-valued value (an array or one element), nulls and empty
/// objects dropped, complex elements with canonical sub-attribute names.
pub(super) fn canon_items(
    def: &'static AttrDef,
    value: &Value,
    text: &str,
) -> Result<Vec<Value>, ScimError> {
    let raw: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let mut out = Vec::with_capacity(raw.len());
    for item in raw.into_iter().filter(|v| !v.is_null()) {
        if def.ty == AttrType::Complex {
            let obj = canon_object(def, item, text)?;
            if !obj.is_empty() {
                out.push(Value::Object(obj));
            }
        } else {
            out.push(item.clone());
        }
    }
    Ok(out)
}

/// A complex value with canonical sub-attribute names; unknown sub-attributes are dropped
/// (as `normalize` would). A string or number stands for `{"value": …}` and, for a
/// single-valued attribute, an array of one object for that object.
pub(super) fn canon_object(
    def: &'static AttrDef,
    value: &Value,
    text: &str,
) -> Result<Map<String, Value>, ScimError> {
    let invalid = || {
        ScimError::invalid_value(format!(
            "the value for '{}' must be a complex value (JSON object) of '{}' sub-attributes",
            shorten(text, MAX_QUOTED_CHARS),
            def.name
        ))
    };
    let obj = match value {
        Value::Object(o) => o,
        Value::Array(items) if !def.multi_valued => match items.as_slice() {
            [Value::Object(o)] => o,
            _ => return Err(invalid()),
        },
        Value::String(_) | Value::Number(_) => {
            let Some(value_def) = def.sub_attribute("value") else {
                return Err(invalid());
            };
            let mut out = Map::new();
            out.insert(value_def.name.to_string(), value.clone());
            return Ok(out);
        }
        _ => return Err(invalid()),
    };
    let mut out = Map::new();
    for (k, v) in obj {
        if let Some(sub) = def.sub_attribute(k) {
            out.insert(sub.name.to_string(), v.clone());
        }
    }
    Ok(out)
}

/// Merge sub-attributes; a null removes the sub-attribute (RFC 7643 §2.5).
pub(super) fn merge(target: &mut Map<String, Value>, new: Map<String, Value>) {
    for (k, v) in new {
        if v.is_null() {
            remove_key(target, &k);
        } else {
            target.insert(k, v);
        }
    }
}

pub(super) fn set_or_remove(m: &mut Map<String, Value>, name: &str, value: &Value) {
    if value.is_null() {
        remove_key(m, name);
    } else {
        canonicalise_key(m, name);
        m.insert(name.to_string(), value.clone());
    }
}

pub(super) fn remove_key(m: &mut Map<String, Value>, name: &str) {
    m.retain(|k, _| !k.eq_ignore_ascii_case(name));
}

/// Rename a key that differs from `name` only in case to `name`.
pub(super) fn canonicalise_key(m: &mut Map<String, Value>, name: &str) {
    if m.contains_key(name) {
        return;
    }
    let Some(key) = m.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned() else {
        return;
    };
    if let Some(v) = m.shift_remove(&key) {
        m.insert(name.to_string(), v);
    }
}

/// Run `f` on the slot as an array (an absent value is empty, a lone value one element).
pub(super) fn with_array<R>(slot: &mut Option<Value>, f: impl FnOnce(&mut Vec<Value>) -> R) -> R {
    let mut arr = match slot.take() {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => Vec::new(),
        Some(other) => vec![other],
    };
    let result = f(&mut arr);
    *slot = Some(Value::Array(arr));
    result
}

/// Run `f` on the slot as an object (anything but an object counts as empty).
pub(super) fn with_object<R>(
    slot: &mut Option<Value>,
    f: impl FnOnce(&mut Map<String, Value>) -> R,
) -> R {
    let mut obj = match slot.take() {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let result = f(&mut obj);
    *slot = Some(Value::Object(obj));
    result
}

/// RFC 7643 §2.5: null, an empty array and (by extension) an empty object are unassigned.
pub(super) fn is_assigned(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => true,
    }
}

pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Equality as the attribute's type and `caseExact` define it.
pub(super) fn same_value(def: &AttrDef, a: &Value, b: &Value) -> bool {
    if a == b {
        return true;
    }
    match def.ty {
        AttrType::Boolean => parse_bool(a).is_some() && parse_bool(a) == parse_bool(b),
        AttrType::Complex => false,
        _ => match (scalar_text(a), scalar_text(b)) {
            (Some(x), Some(y)) if def.case_exact => x == y,
            (Some(x), Some(y)) => x.to_lowercase() == y.to_lowercase(),
            _ => false,
        },
    }
}

/// The value with object keys sorted, so equal values print equally.
pub(super) fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}
