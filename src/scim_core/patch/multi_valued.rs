//! Elements of multi-valued attributes: appending without duplicates, one primary value
//! (RFC 7643 §2.4), and element updates that keep immutable sub-attributes.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::scim_core::error::ScimError;
use crate::scim_core::resource::parse_bool;
use crate::scim_core::schema::{AttrDef, AttrType, Mutability};

use super::mutability::immutable_error;
use super::values::{is_assigned, merge, remove_key, same_value, scalar_text, sorted};

/// Append elements, merging into an existing element with the same `value` and skipping
/// exact duplicates; O(n + m) through a hash index. Returns the touched indices.
pub(super) fn append_items(
    def: &'static AttrDef,
    arr: &mut Vec<Value>,
    items: Vec<Value>,
    text: &str,
) -> Result<Vec<usize>, ScimError> {
    let value_def = value_sub(def);
    let key_of = |e: &Value| -> (bool, String) {
        match value_def.and_then(|vd| e.get("value").and_then(|v| value_key(vd, v))) {
            Some(k) => (true, k),
            None => (false, sorted(e).to_string()),
        }
    };
    let mut index: HashMap<(bool, String), usize> = HashMap::with_capacity(arr.len() + items.len());
    for (i, e) in arr.iter().enumerate() {
        index.entry(key_of(e)).or_insert(i);
    }
    let mut touched = Vec::new();
    for item in items {
        let key = key_of(&item);
        match index.get(&key) {
            Some(&i) if key.0 => {
                if let (Some(elem), Value::Object(mut new)) = (arr.get_mut(i), item) {
                    // Re-adding a value must not fail on immutable sub-attributes it
                    // already has (a `$ref` spelt differently, say): those are kept.
                    new.retain(|k, _| {
                        !def.sub_attribute(k).is_some_and(|s| {
                            s.mutability == Mutability::Immutable
                                && elem.get(s.name).is_some_and(is_assigned)
                        })
                    });
                    update_element(def, elem, text, |m| merge(m, new))?;
                    touched.push(i);
                }
            }
            Some(_) => {}
            None => {
                arr.push(item);
                index.insert(key, arr.len() - 1);
                touched.push(arr.len() - 1);
            }
        }
    }
    Ok(touched)
}

/// RFC 7643 §2.4: "The primary attribute value "true" MUST appear no more than once." When
/// a touched element is primary, the `primary` sub-attribute is removed from the others.
pub(super) fn enforce_primary(def: &AttrDef, arr: &mut [Value], touched: &[usize]) {
    if def.ty != AttrType::Complex || def.sub_attribute("primary").is_none() {
        return;
    }
    if !touched.iter().any(|&i| arr.get(i).is_some_and(is_primary)) {
        return;
    }
    let touched: HashSet<usize> = touched.iter().copied().collect();
    for (i, elem) in arr.iter_mut().enumerate() {
        if touched.contains(&i) {
            continue;
        }
        if let Value::Object(m) = elem {
            remove_key(m, "primary");
        }
    }
}

pub(super) fn is_primary(elem: &Value) -> bool {
    elem.get("primary").and_then(parse_bool) == Some(true)
}

/// Change one element of a multi-valued complex attribute, refusing changes to immutable
/// sub-attributes that already have a value (RFC 7643 §2.2).
pub(super) fn update_element(
    def: &'static AttrDef,
    elem: &mut Value,
    text: &str,
    f: impl FnOnce(&mut Map<String, Value>),
) -> Result<(), ScimError> {
    if !elem.is_object() {
        *elem = Value::Object(Map::new());
    }
    let old: Vec<(&'static AttrDef, Value)> = def
        .sub_attributes
        .iter()
        .filter(|s| s.mutability == Mutability::Immutable)
        .filter_map(|s| {
            elem.get(s.name)
                .filter(|v| is_assigned(v))
                .map(|v| (s, v.clone()))
        })
        .collect();
    if let Value::Object(m) = elem {
        f(m);
    }
    for (sub, old_value) in old {
        match elem.get(sub.name) {
            Some(new_value) if same_value(sub, &old_value, new_value) => {}
            _ => return Err(immutable_error(&format!("{}.{}", def.name, sub.name), text)),
        }
    }
    Ok(())
}

pub(super) fn drop_empty_elements(arr: &mut Vec<Value>) {
    arr.retain(is_assigned);
}

pub(super) fn value_sub(def: &'static AttrDef) -> Option<&'static AttrDef> {
    if def.ty == AttrType::Complex {
        def.sub_attribute("value")
    } else {
        None
    }
}

/// A `value` as a comparison key, folded when the sub-attribute is not `caseExact`.
pub(super) fn value_key(value_def: &AttrDef, v: &Value) -> Option<String> {
    let s = scalar_text(v)?;
    Some(if value_def.case_exact {
        s
    } else {
        s.to_lowercase()
    })
}
