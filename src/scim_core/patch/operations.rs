//! `add`, `replace` and `remove` (RFC 7644 §3.5.2.1–3) applied to the one attribute a
//! target names.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::scim_core::error::ScimError;
use crate::scim_core::filter::{matches, Filter};
use crate::scim_core::schema::{AttrDef, AttrType};
use crate::scim_core::text::shorten;

use super::multi_valued::{
    append_items, drop_empty_elements, enforce_primary, update_element, value_key, value_sub,
};
use super::mutability::{check_immutable_attr, needs_snapshot, required_error};
use super::request::PatchOpKind;
use super::target::Target;
use super::value_filter::{case_exact_fn, eq_clauses, matching};
use super::values::{
    canon_items, canon_object, canonicalise_key, is_assigned, merge, remove_key, same_value,
    set_or_remove, with_array, with_object,
};
use super::MAX_QUOTED_CHARS;

pub(super) fn apply_target(
    doc: &mut Map<String, Value>,
    kind: PatchOpKind,
    t: &Target,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    with_container(doc, t.ext, |container| {
        with_attr(container, t.def.name, |slot| {
            apply_to_slot(slot, kind, t, value)
        })
    })
}

/// Run `f` on the object holding the target's attribute: the document itself, or the
/// extension object (created when missing, removed when left empty).
pub(super) fn with_container<R>(
    doc: &mut Map<String, Value>,
    ext: Option<&str>,
    f: impl FnOnce(&mut Map<String, Value>) -> R,
) -> R {
    let Some(urn) = ext else {
        return f(doc);
    };
    canonicalise_key(doc, urn);
    let mut obj = match doc.get_mut(urn).map(std::mem::take) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let result = f(&mut obj);
    if obj.is_empty() {
        doc.shift_remove(urn);
    } else {
        doc.insert(urn.to_string(), Value::Object(obj));
    }
    result
}

/// Run `f` on the attribute's value, taken out of `container` under its canonical name and
/// put back in place (or removed when unassigned).
pub(super) fn with_attr(
    container: &mut Map<String, Value>,
    name: &str,
    f: impl FnOnce(&mut Option<Value>) -> Result<(), ScimError>,
) -> Result<(), ScimError> {
    canonicalise_key(container, name);
    let mut slot = container.get_mut(name).map(std::mem::take);
    let result = f(&mut slot);
    match slot {
        Some(v) if is_assigned(&v) => {
            container.insert(name.to_string(), v);
        }
        _ => {
            container.shift_remove(name);
        }
    }
    result
}

pub(super) fn apply_to_slot(
    slot: &mut Option<Value>,
    kind: PatchOpKind,
    t: &Target,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let def = t.def;
    let before = needs_snapshot(def).then(|| slot.clone());
    let missing =
        || ScimError::invalid_value(format!("operation '{}' requires a 'value'", kind.as_str()));
    match kind {
        PatchOpKind::Add => add(slot, t, value.ok_or_else(missing)?)?,
        PatchOpKind::Replace => replace(slot, t, value.ok_or_else(missing)?)?,
        PatchOpKind::Remove => remove(slot, t, value)?,
    }
    if slot.as_ref().is_some_and(|v| !is_assigned(v)) {
        *slot = None;
    }
    if let Some(before) = before {
        check_immutable_attr(t, before.as_ref(), slot.as_ref())?;
    }
    if def.required && slot.is_none() {
        return Err(required_error(&t.text));
    }
    if def.defaulted && t.sub.is_none() && slot.is_none() {
        // Unassigning it would either be undone by the server default at once (a "remove"
        // that reactivates a deactivated guest) or leave a representation that filters on
        // the attribute contradict; Table 9: not compatible with its current state.
        return Err(ScimError::mutability(format!(
            "'{}' always has a value here and cannot be removed; replace it with true or false",
            shorten(&t.text, MAX_QUOTED_CHARS)
        )));
    }
    Ok(())
}

/// RFC 7644 §3.5.2.1.
pub(super) fn add(slot: &mut Option<Value>, t: &Target, value: &Value) -> Result<(), ScimError> {
    let def = t.def;
    if value.is_null() {
        return Ok(());
    }
    if let Some(filter) = &t.filter {
        return with_array(slot, |arr| add_filtered(arr, t, filter, value));
    }
    if let Some(sub) = t.sub {
        return set_sub(slot, t, sub, value);
    }
    if def.multi_valued {
        let items = canon_items(def, value, &t.text)?;
        if items.is_empty() {
            return Ok(());
        }
        with_array(slot, |arr| {
            let touched = append_items(def, arr, items, &t.text)?;
            enforce_primary(def, arr, &touched);
            Ok(())
        })
    } else if def.ty == AttrType::Complex {
        let obj = canon_object(def, value, &t.text)?;
        with_object(slot, |m| merge(m, obj));
        Ok(())
    } else {
        *slot = Some(value.clone());
        Ok(())
    }
}

/// `add` with a value filter: update the matching elements, or create one from an `eq`
/// filter when none matches.
pub(super) fn add_filtered(
    arr: &mut Vec<Value>,
    t: &Target,
    filter: &Filter,
    value: &Value,
) -> Result<(), ScimError> {
    let def = t.def;
    let new_obj = match t.sub {
        Some(_) => None,
        None => Some(canon_object(def, value, &t.text)?),
    };
    let hits = matching(filter, def, arr);
    if hits.is_empty() {
        let mut elem = Map::new();
        if !eq_clauses(filter, def, &mut elem) {
            return Err(ScimError::no_target(format!(
                "no value of '{}' matches path '{}', and only a filter of 'eq' comparisons can describe a new value",
                def.name,
                shorten(&t.text, MAX_QUOTED_CHARS)
            )));
        }
        match (t.sub, new_obj) {
            (Some(sub), _) => {
                elem.insert(sub.name.to_string(), value.clone());
            }
            (None, Some(obj)) => merge(&mut elem, obj),
            (None, None) => {}
        }
        arr.push(Value::Object(elem));
        let created = arr.len() - 1;
        enforce_primary(def, arr, &[created]);
        return Ok(());
    }
    for &i in &hits {
        if let Some(elem) = arr.get_mut(i) {
            update_element(def, elem, &t.text, |m| match (t.sub, &new_obj) {
                (Some(sub), _) => set_or_remove(m, sub.name, value),
                (None, Some(obj)) => merge(m, obj.clone()),
                (None, None) => {}
            })?;
        }
    }
    enforce_primary(def, arr, &hits);
    Ok(())
}

/// RFC 7644 §3.5.2.3.
pub(super) fn replace(
    slot: &mut Option<Value>,
    t: &Target,
    value: &Value,
) -> Result<(), ScimError> {
    let def = t.def;
    if let Some(filter) = &t.filter {
        return with_array(slot, |arr| replace_filtered(arr, t, filter, value));
    }
    if let Some(sub) = t.sub {
        return set_sub(slot, t, sub, value);
    }
    if value.is_null() {
        *slot = None;
    } else if def.multi_valued {
        *slot = Some(Value::Array(canon_items(def, value, &t.text)?));
    } else if def.ty == AttrType::Complex {
        // "Sub-attributes that are not specified in the value parameter are left unchanged."
        let obj = canon_object(def, value, &t.text)?;
        with_object(slot, |m| merge(m, obj));
    } else {
        *slot = Some(value.clone());
    }
    Ok(())
}

pub(super) fn replace_filtered(
    arr: &mut Vec<Value>,
    t: &Target,
    filter: &Filter,
    value: &Value,
) -> Result<(), ScimError> {
    let def = t.def;
    let hits = matching(filter, def, arr);
    if hits.is_empty() {
        return Err(ScimError::no_target(format!(
            "no value of '{}' matches path '{}'",
            def.name,
            shorten(&t.text, MAX_QUOTED_CHARS)
        )));
    }
    match t.sub {
        Some(sub) => {
            for &i in &hits {
                if let Some(elem) = arr.get_mut(i) {
                    update_element(def, elem, &t.text, |m| set_or_remove(m, sub.name, value))?;
                }
            }
        }
        None if value.is_null() => {
            let hits: HashSet<usize> = hits.into_iter().collect();
            let mut i = 0;
            arr.retain(|_| {
                i += 1;
                !hits.contains(&(i - 1))
            });
            return Ok(());
        }
        None => {
            let new_obj = canon_object(def, value, &t.text)?;
            for &i in &hits {
                if let Some(elem) = arr.get_mut(i) {
                    update_element(def, elem, &t.text, |m| *m = new_obj.clone())?;
                }
            }
        }
    }
    enforce_primary(def, arr, &hits);
    drop_empty_elements(arr);
    Ok(())
}

/// `add`/`replace` of `attr.sub` without a filter: the sub-attribute of a single-valued
/// complex attribute, or of every element of a multi-valued one.
pub(super) fn set_sub(
    slot: &mut Option<Value>,
    t: &Target,
    sub: &'static AttrDef,
    value: &Value,
) -> Result<(), ScimError> {
    let def = t.def;
    if !def.multi_valued {
        with_object(slot, |m| set_or_remove(m, sub.name, value));
        return Ok(());
    }
    with_array(slot, |arr| {
        if arr.is_empty() {
            if !value.is_null() {
                let mut elem = Map::new();
                elem.insert(sub.name.to_string(), value.clone());
                arr.push(Value::Object(elem));
            }
            return Ok(());
        }
        for elem in arr.iter_mut() {
            update_element(def, elem, &t.text, |m| set_or_remove(m, sub.name, value))?;
        }
        drop_empty_elements(arr);
        Ok(())
    })
}

/// RFC 7644 §3.5.2.2.
pub(super) fn remove(
    slot: &mut Option<Value>,
    t: &Target,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let def = t.def;
    match (&t.filter, t.sub) {
        (None, None) => {
            if def.multi_valued {
                if let Some(v) = value.filter(|v| !v.is_null()) {
                    return remove_values(slot, t, v);
                }
            }
            *slot = None;
        }
        (None, Some(sub)) => {
            check_sub_removable(t, sub, slot.as_ref())?;
            match slot {
                Some(Value::Array(arr)) => {
                    for elem in arr.iter_mut().filter(|e| e.is_object()) {
                        update_element(def, elem, &t.text, |m| remove_key(m, sub.name))?;
                    }
                    drop_empty_elements(arr);
                }
                Some(Value::Object(m)) => remove_key(m, sub.name),
                _ => {}
            }
        }
        (Some(filter), None) => {
            if let Some(Value::Array(arr)) = slot {
                let case_exact = case_exact_fn(def);
                arr.retain(|e| !(e.is_object() && matches(filter, e, &case_exact)));
            }
        }
        (Some(filter), Some(sub)) => {
            if let Some(Value::Array(arr)) = slot {
                let hits = matching(filter, def, arr);
                for &i in &hits {
                    if let Some(elem) = arr.get_mut(i) {
                        if sub.required && elem.get(sub.name).is_some_and(is_assigned) {
                            return Err(required_error(&t.text));
                        }
                        update_element(def, elem, &t.text, |m| remove_key(m, sub.name))?;
                    }
                }
                drop_empty_elements(arr);
            }
        }
    }
    Ok(())
}

pub(super) fn check_sub_removable(
    t: &Target,
    sub: &AttrDef,
    slot: Option<&Value>,
) -> Result<(), ScimError> {
    if !sub.required {
        return Ok(());
    }
    let set = match slot {
        Some(Value::Array(arr)) => arr.iter().any(|e| e.get(sub.name).is_some_and(is_assigned)),
        Some(v) => v.get(sub.name).is_some_and(is_assigned),
        None => false,
    };
    if set {
        return Err(required_error(&t.text));
    }
    Ok(())
}

/// `remove` of a multi-valued attribute with a `value`: remove the elements it names, by
/// their `value` sub-attribute when given, otherwise by all given sub-attributes.
pub(super) fn remove_values(
    slot: &mut Option<Value>,
    t: &Target,
    value: &Value,
) -> Result<(), ScimError> {
    let def = t.def;
    let Some(Value::Array(arr)) = slot else {
        return Ok(());
    };
    let patterns: Vec<&Value> = match value {
        Value::Array(items) => items.iter().filter(|v| !v.is_null()).collect(),
        one => vec![one],
    };
    let value_def = value_sub(def);
    let mut by_value: HashSet<String> = HashSet::new();
    let mut others: Vec<Value> = Vec::new();
    for p in patterns {
        if def.ty != AttrType::Complex {
            others.push(p.clone());
            continue;
        }
        let obj = canon_object(def, p, &t.text)?;
        let key = value_def.and_then(|vd| obj.get("value").and_then(|v| value_key(vd, v)));
        match key {
            Some(k) => {
                by_value.insert(k);
            }
            None if !obj.is_empty() => others.push(Value::Object(obj)),
            None => {}
        }
    }
    arr.retain(|e| {
        let named_by_value = value_def
            .and_then(|vd| e.get("value").and_then(|v| value_key(vd, v)))
            .is_some_and(|k| by_value.contains(&k));
        !(named_by_value || others.iter().any(|p| element_matches(def, e, p)))
    });
    Ok(())
}

/// Whether an element has every sub-attribute value of `pattern`.
pub(super) fn element_matches(def: &AttrDef, elem: &Value, pattern: &Value) -> bool {
    match (elem, pattern) {
        (Value::Object(e), Value::Object(p)) if def.ty == AttrType::Complex => {
            p.iter().all(|(k, pv)| {
                e.get(k).is_some_and(|ev| match def.sub_attribute(k) {
                    Some(sd) => same_value(sd, ev, pv),
                    None => ev == pv,
                })
            })
        }
        _ => same_value(def, elem, pattern),
    }
}
