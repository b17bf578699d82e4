//! The SCIM PATCH engine (RFC 7644 §3.5.2): parses a `PatchOp` request body
//! ([`parse_patch_request`]) and applies its `add` (§3.5.2.1), `remove` (§3.5.2.2) and
//! `replace` (§3.5.2.3) operations to a normalised resource document as produced by
//! `resource::normalize` (canonical attribute names, no `id`/`meta`/`schemas`, extension
//! attributes under their schema URN, multi-valued attributes as arrays). Paths are parsed by
//! `filter::parse_patch_path` (`attrPath / valuePath [subAttr]`, §3.5.2) and resolved
//! case-insensitively against the resource type's schemas (RFC 7643 §2.1); value filters are
//! evaluated with `filter::matches`, honouring each sub-attribute's `caseExact` (RFC 7643
//! §2.2). Mutability is enforced from the schema (RFC 7643 §2.2: readOnly and immutable).
//! Operations run in order on a copy of the document, so a failing operation leaves the
//! original untouched (§3.5.2: a PATCH request "SHALL be treated as atomic"); values are
//! inserted as the client sent them under canonical names, and the caller re-normalises the
//! result to validate types and required attributes. Where the RFC leaves a choice open, and
//! for the shapes Entra ID and Okta actually send, the rules are:
//!
//! * `remove` of a value filter matching nothing, or of an attribute that has no value, is
//!   a successful no-op (idempotent retries); `replace` with a filter matching nothing is
//!   `noTarget`, as §3.5.2.3 requires.
//! * `add` with `multi[filter]` or `multi[filter].sub` matching nothing creates a new element
//!   from the filter when it is an `eq` comparison or an `and` of them (Entra ID's
//!   `emails[type eq "work"].value`); any other filter is `noTarget`.
//! * `add` to a multi-valued complex attribute treats an element whose `value` equals an
//!   existing element's `value` (per `caseExact`) as that element and merges the given
//!   sub-attributes into it ("If the target location already contains the value specified,
//!   no changes SHOULD be made"), keeping its immutable sub-attributes that have a value;
//!   elements without `value` are skipped when exactly equal.
//! * `replace` of `multi[filter]` replaces each matching element whole (§3.5.2.3); `add` of
//!   `multi[filter]` merges the given sub-attributes into each matching element.
//! * `add`/`replace` of `multi.sub` without a filter sets the sub-attribute of every element
//!   (creating one element when there is none); `remove` of it removes it from every element.
//! * A `value` on `remove` of a multi-valued attribute (Azure's
//!   `{"op":"Remove","path":"members","value":[{"value":"id"}]}`) removes only the elements it
//!   names: by `value` when given, otherwise by all the given sub-attributes.
//! * A JSON `null` value means unassigned (RFC 7643 §2.5): `replace` with null removes the
//!   target, `add` with null (or an empty array, as Okta sends) changes nothing.
//! * A single-valued complex attribute given a string (Entra ID's manager id) takes it as its
//!   `value` sub-attribute; given an array of one object, it takes that object.
//! * In a path-less value, `schemas` is ignored, unknown attributes are ignored (as
//!   `normalize` does for POST and PUT), keys may be attribute paths (`name.givenName`,
//!   URN-qualified `urn:…:User:department`), and readOnly attributes such as `id`/`meta` are
//!   `mutability` errors (except, with [`apply_patch_with_id`], an `id` equal to the
//!   resource's own).
//! * Removing a required attribute is `invalidValue`; changing a readOnly attribute, or an
//!   immutable one that already has a value, is `mutability`.
//! * After an operation sets `primary` true on an element of a multi-valued attribute, the
//!   `primary` sub-attribute is removed from every element the operation did not touch
//!   (RFC 7643 §2.4: at most one primary value).
//! * More than `max_operations` operations is HTTP 413, as for bulk (RFC 7644 §3.7.4).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{matches, parse_patch_path, AttrPath, CompValue, CompareOp, Filter};
use super::resource::parse_bool;
use super::schema::{AttrDef, AttrType, Mutability, ResourceTypeDef, SchemaDef};

/// The PATCH request message schema (RFC 7644 §3.5.2).
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// How much of a path or operation name an error message quotes.
const MAX_QUOTED_CHARS: usize = 200;

/// The `op` of one PATCH operation (RFC 7644 §3.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOpKind {
    Add,
    Remove,
    Replace,
}

impl PatchOpKind {
    /// The operation name in canonical (lower) case.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOpKind::Add => "add",
            PatchOpKind::Remove => "remove",
            PatchOpKind::Replace => "replace",
        }
    }

    /// Case-insensitive lookup: Entra ID sends `Add`, `Replace`, `Remove`.
    fn from_name(name: &str) -> Option<Self> {
        [PatchOpKind::Add, PatchOpKind::Remove, PatchOpKind::Replace]
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

/// One PATCH operation (RFC 7644 §3.5.2). `value` is `Some(Value::Null)` for an explicit
/// JSON null and `None` when the member is absent.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOp {
    pub op: PatchOpKind,
    pub path: Option<String>,
    pub value: Option<Value>,
}

/// Parse a PatchOp request body (RFC 7644 §3.5.2): `schemas` must contain
/// [`PATCH_OP_SCHEMA`], `Operations` (any key case) must be a non-empty array of at most
/// `max_operations` operations, op names are case-insensitive, `add` and `replace` need a
/// `value`. An empty `path` counts as absent.
pub fn parse_patch_request(body: &Value, max_operations: usize) -> Result<Vec<PatchOp>, ScimError> {
    let Value::Object(obj) = body else {
        return Err(ScimError::invalid_syntax(
            "the PATCH request body must be a JSON object",
        ));
    };
    let has_schema = match get_ci(obj, "schemas") {
        Some(Value::Array(list)) => list.iter().any(|s| {
            s.as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_SCHEMA))
        }),
        _ => false,
    };
    if !has_schema {
        return Err(ScimError::invalid_value(format!(
            "'schemas' must be an array containing {PATCH_OP_SCHEMA}"
        )));
    }
    let ops = match get_ci(obj, "Operations") {
        Some(Value::Array(ops)) => ops,
        Some(_) => {
            return Err(ScimError::invalid_syntax(
                "'Operations' must be an array of PATCH operations",
            ))
        }
        None => {
            return Err(ScimError::invalid_syntax(
                "the PATCH request body has no 'Operations' array",
            ))
        }
    };
    if ops.is_empty() {
        return Err(ScimError::invalid_syntax(
            "'Operations' must contain at least one operation",
        ));
    }
    if ops.len() > max_operations {
        return Err(ScimError::new(
            413,
            None,
            format!(
                "the PATCH request has {} operations; at most {max_operations} are allowed",
                ops.len()
            ),
        ));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_operation(op).map_err(|e| in_operation(e, i)))
        .collect()
}

fn parse_operation(op: &Value) -> Result<PatchOp, ScimError> {
    let Value::Object(obj) = op else {
        return Err(ScimError::invalid_syntax(
            "an operation must be a JSON object",
        ));
    };
    let kind = match get_ci(obj, "op") {
        Some(Value::String(name)) => PatchOpKind::from_name(name).ok_or_else(|| {
            ScimError::invalid_syntax(format!(
                "unknown op {:?}; expected \"add\", \"remove\" or \"replace\"",
                shorten(name)
            ))
        })?,
        Some(_) => return Err(ScimError::invalid_syntax("'op' must be a string")),
        None => return Err(ScimError::invalid_syntax("the operation has no 'op'")),
    };
    let path = match get_ci(obj, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err(ScimError::invalid_syntax("'path' must be a string")),
    };
    let value = get_ci(obj, "value").cloned();
    if kind != PatchOpKind::Remove && value.is_none() {
        return Err(ScimError::invalid_value(format!(
            "operation '{}' requires a 'value'",
            kind.as_str()
        )));
    }
    Ok(PatchOp {
        op: kind,
        path,
        value,
    })
}

/// Apply all operations, in order, to a copy of `doc` (RFC 7644 §3.5.2). On any error the
/// original is untouched and no partial result is returned.
pub fn apply_patch(
    doc: &Map<String, Value>,
    ops: &[PatchOp],
    rt: &'static ResourceTypeDef,
) -> Result<Map<String, Value>, ScimError> {
    apply_all(doc, ops, rt, None)
}

/// [`apply_patch`] for the resource with this `id`: an `id` key equal to it in a path-less
/// value is ignored instead of being a `mutability` error (Okta's group rename sends
/// `{"op":"replace","value":{"id":"…","displayName":"…"}}`), as `normalize` does for PUT.
pub fn apply_patch_with_id(
    doc: &Map<String, Value>,
    ops: &[PatchOp],
    rt: &'static ResourceTypeDef,
    id: &str,
) -> Result<Map<String, Value>, ScimError> {
    apply_all(doc, ops, rt, Some(id))
}

fn apply_all(
    doc: &Map<String, Value>,
    ops: &[PatchOp],
    rt: &'static ResourceTypeDef,
    id: Option<&str>,
) -> Result<Map<String, Value>, ScimError> {
    let mut work = doc.clone();
    for (i, op) in ops.iter().enumerate() {
        apply_one(&mut work, op, rt, id).map_err(|e| in_operation(e, i))?;
    }
    Ok(work)
}

/// Prefix an error's detail with the operation's index.
fn in_operation(mut e: ScimError, index: usize) -> ScimError {
    e.detail = format!("Operations[{index}]: {}", e.detail);
    e
}

fn apply_one(
    doc: &mut Map<String, Value>,
    op: &PatchOp,
    rt: &'static ResourceTypeDef,
    id: Option<&str>,
) -> Result<(), ScimError> {
    let path = op.path.as_deref().map(str::trim).filter(|p| !p.is_empty());
    let value = op.value.as_ref();
    let required_value = || {
        value.ok_or_else(|| {
            ScimError::invalid_value(format!("operation '{}' requires a 'value'", op.op.as_str()))
        })
    };
    match (op.op, path) {
        (PatchOpKind::Remove, None) => Err(ScimError::no_target(
            "operation 'remove' requires a 'path' (RFC 7644 §3.5.2.2)",
        )),
        (kind, None) => apply_pathless(doc, kind, required_value()?, rt, id),
        (kind, Some(path)) => {
            if let Some(ext) = rt.extension(path) {
                let value = if kind == PatchOpKind::Remove {
                    None
                } else {
                    Some(required_value()?)
                };
                return apply_extension(doc, kind, ext, value, rt);
            }
            let target = resolve_path(path, rt)?;
            let value = if kind == PatchOpKind::Remove {
                value
            } else {
                Some(required_value()?)
            };
            apply_target(doc, kind, &target, value)
        }
    }
}

/// A path-less `add` or `replace`: each member of the value object is applied as if it were
/// the path (RFC 7644 §3.5.2.1, §3.5.2.3: "the target is assumed to be the resource itself").
fn apply_pathless(
    doc: &mut Map<String, Value>,
    kind: PatchOpKind,
    value: &Value,
    rt: &'static ResourceTypeDef,
    id: Option<&str>,
) -> Result<(), ScimError> {
    let Value::Object(obj) = value else {
        return Err(ScimError::invalid_value(format!(
            "operation '{}' without a path needs a JSON object of attributes as its value",
            kind.as_str()
        )));
    };
    for (key, v) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if key.eq_ignore_ascii_case("id") && id.is_some() && v.as_str() == id {
            continue;
        }
        if let Some(ext) = rt.extension(key) {
            apply_extension(doc, kind, ext, Some(v), rt)?;
            continue;
        }
        if let Some(target) = resolve_key(rt, None, key)? {
            apply_target(doc, kind, &target, Some(v))?;
        }
    }
    Ok(())
}

/// An operation whose target is a whole extension (path-less key or path equal to its URN).
fn apply_extension(
    doc: &mut Map<String, Value>,
    kind: PatchOpKind,
    ext: &'static SchemaDef,
    value: Option<&Value>,
    rt: &'static ResourceTypeDef,
) -> Result<(), ScimError> {
    match (kind, value) {
        (PatchOpKind::Remove, _) | (PatchOpKind::Replace, Some(Value::Null)) => {
            remove_extension(doc, ext)
        }
        (_, None | Some(Value::Null)) => Ok(()),
        (_, Some(Value::Object(obj))) => {
            for (key, v) in obj {
                if key.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                if let Some(target) = resolve_key(rt, Some(ext.id), key)? {
                    apply_target(doc, kind, &target, Some(v))?;
                }
            }
            Ok(())
        }
        (_, Some(_)) => Err(ScimError::invalid_value(format!(
            "the value for extension {} must be a JSON object",
            ext.id
        ))),
    }
}

fn remove_extension(
    doc: &mut Map<String, Value>,
    ext: &'static SchemaDef,
) -> Result<(), ScimError> {
    if let Some(Value::Object(obj)) = get_ci(doc, ext.id) {
        for def in ext.attributes {
            let set = get_ci(obj, def.name).is_some_and(is_assigned);
            if set && def.required {
                return Err(required_error(&format!("{}:{}", ext.id, def.name)));
            }
            if set && def.mutability == Mutability::Immutable {
                return Err(immutable_error(def.name, ext.id));
            }
        }
    }
    doc.retain(|k, _| !k.eq_ignore_ascii_case(ext.id));
    Ok(())
}

// ---------------------------------------------------------------------------
// Path resolution
// ---------------------------------------------------------------------------

/// A resolved PATCH target.
#[derive(Debug)]
struct Target {
    /// The extension URN whose object holds the attribute; `None` for the core schema.
    ext: Option<&'static str>,
    def: &'static AttrDef,
    /// `attr.sub` or `attr[filter].sub`.
    sub: Option<&'static AttrDef>,
    filter: Option<Filter>,
    /// The path (or path-less key) as written, for messages.
    text: String,
}

fn resolve_path(path: &str, rt: &'static ResourceTypeDef) -> Result<Target, ScimError> {
    let parsed = parse_patch_path(path)
        .map_err(|e| ScimError::invalid_path(format!("invalid path '{}' {e}", shorten(path))))?;
    build_target(
        rt,
        parsed.attr.uri.as_deref(),
        &parsed.attr.attr,
        parsed
            .attr
            .sub_attr
            .as_deref()
            .or(parsed.sub_attr.as_deref()),
        parsed.value_filter,
        path,
    )?
    .ok_or_else(|| {
        ScimError::invalid_path(format!(
            "path '{}' names no attribute of {} resources",
            shorten(path),
            rt.name
        ))
    })
}

/// A key of a path-less value (or of an extension object in one): an attribute name or
/// path. `Ok(None)` for keys that name no attribute, which are ignored.
fn resolve_key(
    rt: &'static ResourceTypeDef,
    ext: Option<&str>,
    key: &str,
) -> Result<Option<Target>, ScimError> {
    let Ok(parsed) = parse_patch_path(key) else {
        return Ok(None);
    };
    build_target(
        rt,
        parsed.attr.uri.as_deref().or(ext),
        &parsed.attr.attr,
        parsed
            .attr
            .sub_attr
            .as_deref()
            .or(parsed.sub_attr.as_deref()),
        parsed.value_filter,
        key,
    )
}

/// `Ok(None)` when the attribute or sub-attribute does not exist.
fn build_target(
    rt: &'static ResourceTypeDef,
    uri: Option<&str>,
    attr: &str,
    sub: Option<&str>,
    filter: Option<Filter>,
    text: &str,
) -> Result<Option<Target>, ScimError> {
    let Some((schema, def)) = rt.resolve(uri, attr) else {
        return Ok(None);
    };
    let ext = (!std::ptr::eq(schema, rt.schema)).then_some(schema.id);
    let is_complex = def.ty == AttrType::Complex;
    if filter.is_some() && !(def.multi_valued && is_complex) {
        return Err(ScimError::invalid_path(format!(
            "path '{}': a value filter needs a multi-valued complex attribute, and '{}' is not one",
            shorten(text),
            def.name
        )));
    }
    let sub = match sub {
        None => None,
        Some(_) if !is_complex => {
            return Err(ScimError::invalid_path(format!(
                "path '{}': attribute '{}' has no sub-attributes",
                shorten(text),
                def.name
            )))
        }
        Some(name) => match def.sub_attribute(name) {
            Some(s) => Some(s),
            None => return Ok(None),
        },
    };
    if let Some(f) = &filter {
        validate_filter(f, def, text)?;
    }
    let read_only = if def.is_read_only() {
        Some(def.name.to_string())
    } else {
        sub.filter(|s| s.is_read_only())
            .map(|s| format!("{}.{}", def.name, s.name))
    };
    if let Some(name) = read_only {
        return Err(ScimError::mutability(format!(
            "attribute '{name}' (path '{}') is readOnly",
            shorten(text)
        )));
    }
    Ok(Some(Target {
        ext,
        def,
        sub,
        filter,
        text: text.to_string(),
    }))
}

/// A value filter may only compare sub-attributes of the attribute it selects from.
fn validate_filter(filter: &Filter, def: &'static AttrDef, text: &str) -> Result<(), ScimError> {
    match filter {
        Filter::Compare { path, .. } | Filter::Present(path) => {
            if path.uri.is_some()
                || path.sub_attr.is_some()
                || def.sub_attribute(&path.attr).is_none()
            {
                return Err(ScimError::invalid_path(format!(
                    "path '{}': '{path}' in the value filter is not a sub-attribute of '{}'",
                    shorten(text),
                    def.name
                )));
            }
            Ok(())
        }
        Filter::And(l, r) | Filter::Or(l, r) => {
            validate_filter(l, def, text)?;
            validate_filter(r, def, text)
        }
        Filter::Not(inner) => validate_filter(inner, def, text),
        Filter::ValuePath { .. } => Err(ScimError::invalid_path(format!(
            "path '{}': value filters cannot be nested",
            shorten(text)
        ))),
    }
}

// ---------------------------------------------------------------------------
// Applying one operation to one attribute
// ---------------------------------------------------------------------------

fn apply_target(
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
fn with_container<R>(
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
fn with_attr(
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

fn apply_to_slot(
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
            shorten(&t.text)
        )));
    }
    Ok(())
}

/// RFC 7644 §3.5.2.1.
fn add(slot: &mut Option<Value>, t: &Target, value: &Value) -> Result<(), ScimError> {
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
fn add_filtered(
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
                shorten(&t.text)
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
fn replace(slot: &mut Option<Value>, t: &Target, value: &Value) -> Result<(), ScimError> {
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

fn replace_filtered(
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
            shorten(&t.text)
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
fn set_sub(
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
fn remove(slot: &mut Option<Value>, t: &Target, value: Option<&Value>) -> Result<(), ScimError> {
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

fn check_sub_removable(t: &Target, sub: &AttrDef, slot: Option<&Value>) -> Result<(), ScimError> {
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
fn remove_values(slot: &mut Option<Value>, t: &Target, value: &Value) -> Result<(), ScimError> {
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
fn element_matches(def: &AttrDef, elem: &Value, pattern: &Value) -> bool {
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

// ---------------------------------------------------------------------------
// Multi-valued helpers
// ---------------------------------------------------------------------------

/// Append elements, merging into an existing element with the same `value` and skipping
/// exact duplicates; O(n + m) through a hash index. Returns the touched indices.
fn append_items(
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
fn enforce_primary(def: &AttrDef, arr: &mut [Value], touched: &[usize]) {
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

fn is_primary(elem: &Value) -> bool {
    elem.get("primary").and_then(parse_bool) == Some(true)
}

/// Change one element of a multi-valued complex attribute, refusing changes to immutable
/// sub-attributes that already have a value (RFC 7643 §2.2).
fn update_element(
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

fn matching(filter: &Filter, def: &'static AttrDef, arr: &[Value]) -> Vec<usize> {
    let case_exact = case_exact_fn(def);
    arr.iter()
        .enumerate()
        .filter(|(_, e)| e.is_object() && matches(filter, e, &case_exact))
        .map(|(i, _)| i)
        .collect()
}

/// `caseExact` of the sub-attribute a value-filter comparison names.
fn case_exact_fn(def: &'static AttrDef) -> impl Fn(&AttrPath) -> bool {
    move |p: &AttrPath| def.sub_attribute(&p.attr).is_some_and(|s| s.case_exact)
}

/// The sub-attributes a filter of `eq` comparisons (joined by `and`) fixes, for creating an
/// element no value matched; `false` for any other filter.
fn eq_clauses(filter: &Filter, def: &'static AttrDef, out: &mut Map<String, Value>) -> bool {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.uri.is_none() && path.sub_attr.is_none() => {
            let Some(sub) = def.sub_attribute(&path.attr) else {
                return false;
            };
            let v = match value {
                CompValue::Str(s) => Value::String(s.clone()),
                CompValue::Bool(b) => Value::Bool(*b),
                CompValue::Number(n) => Value::Number(n.clone()),
                CompValue::Null => return false,
            };
            out.insert(sub.name.to_string(), v);
            true
        }
        Filter::And(l, r) => eq_clauses(l, def, out) && eq_clauses(r, def, out),
        _ => false,
    }
}

fn drop_empty_elements(arr: &mut Vec<Value>) {
    arr.retain(is_assigned);
}

fn value_sub(def: &'static AttrDef) -> Option<&'static AttrDef> {
    if def.ty == AttrType::Complex {
        def.sub_attribute("value")
    } else {
        None
    }
}

/// A `value` as a comparison key, folded when the sub-attribute is not `caseExact`.
fn value_key(value_def: &AttrDef, v: &Value) -> Option<String> {
    let s = scalar_text(v)?;
    Some(if value_def.case_exact {
        s
    } else {
        s.to_lowercase()
    })
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

/// The elements of a multi-valued value (an array or one element), nulls and empty
/// objects dropped, complex elements with canonical sub-attribute names.
fn canon_items(def: &'static AttrDef, value: &Value, text: &str) -> Result<Vec<Value>, ScimError> {
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
fn canon_object(
    def: &'static AttrDef,
    value: &Value,
    text: &str,
) -> Result<Map<String, Value>, ScimError> {
    let invalid = || {
        ScimError::invalid_value(format!(
            "the value for '{}' must be a complex value (JSON object) of '{}' sub-attributes",
            shorten(text),
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
fn merge(target: &mut Map<String, Value>, new: Map<String, Value>) {
    for (k, v) in new {
        if v.is_null() {
            remove_key(target, &k);
        } else {
            target.insert(k, v);
        }
    }
}

fn set_or_remove(m: &mut Map<String, Value>, name: &str, value: &Value) {
    if value.is_null() {
        remove_key(m, name);
    } else {
        canonicalise_key(m, name);
        m.insert(name.to_string(), value.clone());
    }
}

fn remove_key(m: &mut Map<String, Value>, name: &str) {
    m.retain(|k, _| !k.eq_ignore_ascii_case(name));
}

/// Rename a key that differs from `name` only in case to `name`.
fn canonicalise_key(m: &mut Map<String, Value>, name: &str) {
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
fn with_array<R>(slot: &mut Option<Value>, f: impl FnOnce(&mut Vec<Value>) -> R) -> R {
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
fn with_object<R>(slot: &mut Option<Value>, f: impl FnOnce(&mut Map<String, Value>) -> R) -> R {
    let mut obj = match slot.take() {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let result = f(&mut obj);
    *slot = Some(Value::Object(obj));
    result
}

/// RFC 7643 §2.5: null, an empty array and (by extension) an empty object are unassigned.
fn is_assigned(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
        _ => true,
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Equality as the attribute's type and `caseExact` define it.
fn same_value(def: &AttrDef, a: &Value, b: &Value) -> bool {
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
fn sorted(v: &Value) -> Value {
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

// ---------------------------------------------------------------------------
// Mutability and required attributes
// ---------------------------------------------------------------------------

/// Whether `check_immutable_attr` needs the attribute's value from before the operation.
fn needs_snapshot(def: &AttrDef) -> bool {
    def.mutability == Mutability::Immutable
        || (!def.multi_valued
            && def
                .sub_attributes
                .iter()
                .any(|s| s.mutability == Mutability::Immutable))
}

/// An immutable attribute with a value may only gain values (multi-valued) or keep its value;
/// an immutable sub-attribute of a single-valued complex attribute likewise.
fn check_immutable_attr(
    t: &Target,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<(), ScimError> {
    let def = t.def;
    let Some(before) = before.filter(|v| is_assigned(v)) else {
        return Ok(());
    };
    if def.mutability == Mutability::Immutable {
        let kept = match (before, after) {
            (Value::Array(old), Some(Value::Array(new))) => {
                let new: HashSet<String> = new.iter().map(|v| sorted(v).to_string()).collect();
                old.iter().all(|v| new.contains(&sorted(v).to_string()))
            }
            (old, Some(new)) => same_value(def, old, new),
            (_, None) => false,
        };
        if !kept {
            return Err(immutable_error(def.name, &t.text));
        }
    }
    if !def.multi_valued && def.ty == AttrType::Complex {
        if let Some(after) = after {
            for sub in def
                .sub_attributes
                .iter()
                .filter(|s| s.mutability == Mutability::Immutable)
            {
                let Some(old) = before.get(sub.name).filter(|v| is_assigned(v)) else {
                    continue;
                };
                if !after
                    .get(sub.name)
                    .is_some_and(|new| same_value(sub, old, new))
                {
                    return Err(immutable_error(
                        &format!("{}.{}", def.name, sub.name),
                        &t.text,
                    ));
                }
            }
        }
    }
    Ok(())
}

fn immutable_error(attr: &str, path: &str) -> ScimError {
    ScimError::mutability(format!(
        "attribute '{attr}' (path '{}') is immutable and already has a value; it cannot be replaced or removed",
        shorten(path)
    ))
}

fn required_error(what: &str) -> ScimError {
    ScimError::invalid_value(format!(
        "'{}' is a required attribute and cannot be removed",
        shorten(what)
    ))
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// Object member by name, exact match first, then ASCII case-insensitive.
fn get_ci<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::error::ScimType;
    use crate::scim::resource::{normalize, WriteMode};
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP_RESOURCE, USER_RESOURCE};
    use serde_json::json;

    const ENT: &str = ENTERPRISE_USER_SCHEMA;

    /// A normalised User as `resource::normalize` produces it.
    fn user() -> Map<String, Value> {
        normalize(
            &json!({
                "userName": "ann.lee@acme.example",
                "externalId": "00u1abc",
                "name": {"givenName": "Ann", "familyName": "Lee", "formatted": "Ann Lee"},
                "displayName": "Ann Lee",
                "title": "Nurse",
                "active": true,
                "emails": [
                    {"value": "ann.lee@acme.example", "type": "work", "primary": true},
                    {"value": "ann@home.example", "type": "home"}
                ],
                "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
                ENT: {"employeeNumber": "42", "department": "Cardiology", "manager": {"value": "mgr-1"}}
            }),
            &USER_RESOURCE,
            WriteMode::Create,
        )
        .unwrap()
    }

    fn group() -> Map<String, Value> {
        normalize(
            &json!({
                "displayName": "Ward 7 nurses",
                "members": [
                    {"value": "u-1"},
                    {"value": "u-2", "type": "User"},
                    {"value": "u-3"}
                ]
            }),
            &GROUP_RESOURCE,
            WriteMode::Create,
        )
        .unwrap()
    }

    fn request(ops: Value) -> Vec<PatchOp> {
        parse_patch_request(
            &json!({"schemas": [PATCH_OP_SCHEMA], "Operations": ops}),
            1000,
        )
        .unwrap()
    }

    fn patch_user(ops: Value) -> Result<Map<String, Value>, ScimError> {
        let out = apply_patch(&user(), &request(ops), &USER_RESOURCE)?;
        renormalise(&out, &USER_RESOURCE);
        Ok(out)
    }

    fn patch_group(ops: Value) -> Result<Map<String, Value>, ScimError> {
        let out = apply_patch(&group(), &request(ops), &GROUP_RESOURCE)?;
        renormalise(&out, &GROUP_RESOURCE);
        Ok(out)
    }

    /// What the caller does next: the engine's output must survive re-normalisation.
    fn renormalise(doc: &Map<String, Value>, rt: &'static ResourceTypeDef) -> Map<String, Value> {
        normalize(
            &Value::Object(doc.clone()),
            rt,
            WriteMode::Replace { id: "res-1" },
        )
        .unwrap_or_else(|e| panic!("re-normalisation failed: {e}\n{doc:#?}"))
    }

    fn scim_type(r: Result<Map<String, Value>, ScimError>) -> ScimType {
        match r {
            Ok(doc) => panic!("expected an error, got {}", Value::Object(doc)),
            Err(e) => e.scim_type.unwrap_or_else(|| panic!("no scimType: {e}")),
        }
    }

    fn emails(doc: &Map<String, Value>) -> Vec<Value> {
        doc["emails"].as_array().unwrap().clone()
    }

    // -- parse_patch_request ------------------------------------------------

    #[test]
    fn parses_entra_request_shape() {
        let ops = parse_patch_request(
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {"op": "Replace", "path": "active", "value": "False"},
                    {"op": "ADD", "path": "emails[type eq \"work\"].value", "value": "x@y"},
                    {"op": "Remove", "path": "members", "value": [{"value": "u-1"}]}
                ]
            }),
            10,
        )
        .unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0].op, PatchOpKind::Replace);
        assert_eq!(ops[0].value, Some(json!("False")));
        assert_eq!(ops[1].op, PatchOpKind::Add);
        assert_eq!(ops[2].op, PatchOpKind::Remove);
        assert_eq!(ops[2].value, Some(json!([{"value": "u-1"}])));
    }

    #[test]
    fn parses_lower_case_operations_key_and_empty_path() {
        let ops = parse_patch_request(
            &json!({"SCHEMAS": [PATCH_OP_SCHEMA.to_uppercase()],
                    "operations": [{"OP": "replace", "Path": "", "Value": {"active": false}}]}),
            1,
        )
        .unwrap();
        assert_eq!(
            ops,
            vec![PatchOp {
                op: PatchOpKind::Replace,
                path: None,
                value: Some(json!({"active": false}))
            }]
        );
    }

    #[test]
    fn rejects_malformed_requests() {
        let s = json!([PATCH_OP_SCHEMA]);
        let cases = [
            (json!([1]), ScimType::InvalidSyntax),
            (
                json!({"Operations": [{"op": "add", "value": {}}]}),
                ScimType::InvalidValue,
            ),
            (
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                       "Operations": [{"op": "add", "value": {}}]}),
                ScimType::InvalidValue,
            ),
            (json!({"schemas": s}), ScimType::InvalidSyntax),
            (
                json!({"schemas": s, "Operations": {}}),
                ScimType::InvalidSyntax,
            ),
            (
                json!({"schemas": s, "Operations": []}),
                ScimType::InvalidSyntax,
            ),
            (
                json!({"schemas": s, "Operations": ["add"]}),
                ScimType::InvalidSyntax,
            ),
            (
                json!({"schemas": s, "Operations": [{"path": "title"}]}),
                ScimType::InvalidSyntax,
            ),
            (
                json!({"schemas": s, "Operations": [{"op": 1}]}),
                ScimType::InvalidSyntax,
            ),
            (
                json!({"schemas": s, "Operations": [{"op": "add", "path": 7, "value": 1}]}),
                ScimType::InvalidSyntax,
            ),
            (
                json!({"schemas": s, "Operations": [{"op": "add", "path": "title"}]}),
                ScimType::InvalidValue,
            ),
            (
                json!({"schemas": s, "Operations": [{"op": "Replace"}]}),
                ScimType::InvalidValue,
            ),
        ];
        for (body, expected) in cases {
            let err = parse_patch_request(&body, 10).unwrap_err();
            assert_eq!(err.status, 400, "{body}");
            assert_eq!(err.scim_type, Some(expected), "{body}: {err}");
        }
    }

    #[test]
    fn unknown_op_is_invalid_syntax_naming_it() {
        let err = parse_patch_request(
            &json!({"schemas": [PATCH_OP_SCHEMA],
                    "Operations": [{"op": "add", "path": "title", "value": "x"}, {"op": "Merge", "value": {}}]}),
            10,
        )
        .unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::InvalidSyntax));
        assert!(err.detail.contains("\"Merge\""), "{err}");
        assert!(err.detail.contains("Operations[1]"), "{err}");
    }

    #[test]
    fn bounds_the_number_of_operations() {
        let op = json!({"op": "replace", "path": "title", "value": "x"});
        let body =
            json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [op.clone(), op.clone(), op]});
        assert_eq!(parse_patch_request(&body, 3).unwrap().len(), 3);
        let err = parse_patch_request(&body, 2).unwrap_err();
        assert_eq!(err.status, 413);
    }

    // -- add ----------------------------------------------------------------

    #[test]
    fn add_without_path_merges_attributes() {
        let out = patch_user(json!([{"op": "add", "value": {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "nickName": "Annie",
            "TITLE": "Head nurse",
            "name": {"middleName": "J", "GIVENNAME": "Anne"},
            "emails": [
                {"value": "ann.lee@acme.example", "type": "work", "primary": true},
                {"value": "ann@other.example", "type": "other"}
            ],
            "unknownVendorThing": 1
        }}]))
        .unwrap();
        assert_eq!(out["nickName"], "Annie");
        assert_eq!(out["title"], "Head nurse");
        assert!(!out.contains_key("TITLE") && !out.contains_key("schemas"));
        assert!(!out.contains_key("unknownVendorThing"));
        assert_eq!(
            out["name"],
            json!({"givenName": "Anne", "familyName": "Lee", "formatted": "Ann Lee", "middleName": "J"})
        );
        let e = emails(&out);
        assert_eq!(
            e.len(),
            3,
            "the duplicate work email is not appended: {e:?}"
        );
        assert_eq!(e[2]["value"], "ann@other.example");
    }

    #[test]
    fn add_without_path_accepts_extension_objects_and_urn_qualified_keys() {
        let out = patch_user(json!([{"op": "Add", "value": {
            ENT: {"costCenter": "CC-9", "Manager": {"value": "mgr-2"}},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Oncology",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division": "Clinical",
            "urn:ietf:params:scim:schemas:core:2.0:User:nickName": "Annie",
            "name.honorificPrefix": "Dr"
        }}]))
        .unwrap();
        let ext = &out[ENT];
        assert_eq!(ext["costCenter"], "CC-9");
        assert_eq!(ext["department"], "Oncology");
        assert_eq!(ext["division"], "Clinical");
        assert_eq!(ext["employeeNumber"], "42");
        assert_eq!(ext["manager"], json!({"value": "mgr-2"}));
        assert_eq!(out["nickName"], "Annie");
        assert_eq!(out["name"]["honorificPrefix"], "Dr");
        assert_eq!(
            out.keys().filter(|k| k.eq_ignore_ascii_case(ENT)).count(),
            1
        );
    }

    #[test]
    fn pathless_keys_may_be_value_paths_and_paths_may_be_extension_urns() {
        let out = patch_user(json!([
            {"op": "Replace", "value": {"emails[type eq \"work\"].value": "w@acme.example"}},
            {"op": "Add", "path": ENT, "value": {"costCenter": "CC-2", "department": "ICU"}}
        ]))
        .unwrap();
        assert_eq!(emails(&out)[0]["value"], "w@acme.example");
        assert_eq!(out[ENT]["costCenter"], "CC-2");
        assert_eq!(out[ENT]["department"], "ICU");
        assert_eq!(out[ENT]["employeeNumber"], "42");
        let r = patch_user(json!([{"op": "Add", "path": ENT, "value": "x"}]));
        assert_eq!(scim_type(r), ScimType::InvalidValue);
        let r = patch_user(json!([{"op": "Add", "value": ["title"]}]));
        assert_eq!(scim_type(r), ScimType::InvalidValue);
    }

    #[test]
    fn add_creates_extension_object_when_missing() {
        let mut doc = user();
        doc.shift_remove(ENT);
        let out = apply_patch(
            &doc,
            &request(
                json!([{"op": "Add", "path": format!("{ENT}:employeeNumber"), "value": "77"}]),
            ),
            &USER_RESOURCE,
        )
        .unwrap();
        assert_eq!(out[ENT], json!({"employeeNumber": "77"}));
    }

    #[test]
    fn add_with_paths() {
        let out = patch_user(json!([
            {"op": "add", "path": "nickName", "value": "Annie"},
            {"op": "add", "path": "title", "value": "Charge nurse"},
            {"op": "add", "path": "name.middleName", "value": "Jo"},
            {"op": "add", "path": format!("{ENT}:costCenter"), "value": "CC-1"},
            {"op": "add", "path": format!("{ENT}:manager.value"), "value": "mgr-9"},
            {"op": "add", "path": "emails[type eq \"home\"].display", "value": "Home"},
            {"op": "add", "path": "phoneNumbers", "value": {"value": "+1 555 0199", "type": "mobile"}}
        ]))
        .unwrap();
        assert_eq!(out["nickName"], "Annie");
        assert_eq!(out["title"], "Charge nurse");
        assert_eq!(out["name"]["middleName"], "Jo");
        assert_eq!(out["name"]["givenName"], "Ann");
        assert_eq!(out[ENT]["costCenter"], "CC-1");
        assert_eq!(out[ENT]["manager"]["value"], "mgr-9");
        assert_eq!(emails(&out)[1]["display"], "Home");
        assert_eq!(out["phoneNumbers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn add_to_multi_valued_appends_arrays_and_single_elements_skipping_duplicates() {
        let out = patch_group(json!([
            {"op": "add", "path": "members", "value": [{"value": "u-4"}, {"value": "u-5"}, {"value": "u-4"}]},
            {"op": "add", "path": "members", "value": {"value": "u-6", "display": "Zed"}},
            {"op": "add", "path": "members", "value": [{"value": "u-1", "display": "Ann"}]}
        ]))
        .unwrap();
        let values: Vec<&str> = out["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap())
            .collect();
        assert_eq!(values, ["u-1", "u-2", "u-3", "u-4", "u-5", "u-6"]);
    }

    #[test]
    fn add_of_an_existing_value_updates_that_element() {
        // Case-insensitive `value` (emails.value is not caseExact): same address.
        let out = patch_user(json!([{"op": "add", "path": "emails",
            "value": [{"value": "ANN@home.example", "primary": true}]}]))
        .unwrap();
        let e = emails(&out);
        assert_eq!(e.len(), 2);
        assert_eq!(e[1]["primary"], true);
        assert!(e[0].get("primary").is_none(), "primary moved: {e:?}");
    }

    #[test]
    fn okta_add_of_empty_array_is_a_no_op() {
        let out = patch_group(json!([{"op": "add", "path": "members", "value": []}])).unwrap();
        assert_eq!(out, group());
        let out = patch_user(json!([{"op": "add", "path": "nickName", "value": null}])).unwrap();
        assert_eq!(out, user());
    }

    #[test]
    fn entra_add_with_unmatched_eq_filter_creates_the_element() {
        let mut doc = user();
        doc.insert(
            "emails".into(),
            json!([{"value": "ann@home.example", "type": "home"}]),
        );
        let ops = request(json!([
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "ann.lee@acme.example"},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\" and primary eq true].value", "value": "+1 555 0123"},
            {"op": "Add", "path": "addresses[type eq \"work\"]", "value": {"locality": "Leeds", "country": "GB"}}
        ]));
        let out = apply_patch(&doc, &ops, &USER_RESOURCE).unwrap();
        renormalise(&out, &USER_RESOURCE);
        assert_eq!(
            out["emails"],
            json!([{"value": "ann@home.example", "type": "home"}, {"type": "work", "value": "ann.lee@acme.example"}])
        );
        let phones = out["phoneNumbers"].as_array().unwrap();
        assert_eq!(
            phones[1],
            json!({"type": "mobile", "primary": true, "value": "+1 555 0123"})
        );
        assert!(phones[0].get("primary").is_none());
        assert_eq!(
            out["addresses"],
            json!([{"type": "work", "locality": "Leeds", "country": "GB"}])
        );

        // When an element matches, its sub-attribute is set instead.
        let again = apply_patch(&out, &ops[..1], &USER_RESOURCE).unwrap();
        assert_eq!(again["emails"], out["emails"]);
        let changed = apply_patch(
            &out,
            &request(json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "new@acme.example"}])),
            &USER_RESOURCE,
        )
        .unwrap();
        assert_eq!(changed["emails"][1]["value"], "new@acme.example");
        assert_eq!(changed["emails"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn add_with_unmatched_non_eq_filter_is_no_target() {
        for path in [
            "emails[type co \"wor\"].value",
            "emails[type eq \"work\" or type eq \"other\"].display",
            "emails[not (type eq \"home\")].display",
            "emails[display pr].value",
        ] {
            let mut doc = user();
            doc.insert(
                "emails".into(),
                json!([{"value": "ann@home.example", "type": "home"}]),
            );
            let r = apply_patch(
                &doc,
                &request(json!([{"op": "add", "path": path, "value": "x"}])),
                &USER_RESOURCE,
            );
            assert_eq!(scim_type(r), ScimType::NoTarget, "{path}");
        }
    }

    #[test]
    fn entra_manager_as_plain_string_or_array() {
        let out = patch_user(
            json!([{"op": "Replace", "path": format!("{ENT}:manager"), "value": "mgr-7"}]),
        )
        .unwrap();
        assert_eq!(out[ENT]["manager"], json!({"value": "mgr-7"}));
        let out = patch_user(json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            "value": [{"value": "mgr-8", "$ref": "../Users/mgr-8"}]}]))
        .unwrap();
        assert_eq!(
            out[ENT]["manager"],
            json!({"value": "mgr-8", "$ref": "../Users/mgr-8"})
        );
    }

    // -- replace ------------------------------------------------------------

    #[test]
    fn entra_and_okta_deactivation() {
        let out = patch_user(json!([{"op": "Replace", "value": {"active": false}}])).unwrap();
        assert_eq!(out["active"], false);
        let out = patch_user(json!([{"op": "Replace", "value": {"active": "False"}}])).unwrap();
        assert_eq!(
            out["active"], "False",
            "left as sent; re-normalisation converts it"
        );
        assert_eq!(renormalise(&out, &USER_RESOURCE)["active"], false);
        let out = patch_user(json!([{"op": "replace", "path": "active", "value": false}])).unwrap();
        assert_eq!(out["active"], false);
        let out =
            patch_user(json!([{"op": "Replace", "path": "Active", "value": "True"}])).unwrap();
        assert_eq!(renormalise(&out, &USER_RESOURCE)["active"], true);
    }

    #[test]
    fn replace_without_path_replaces_each_attribute_and_merges_complex_ones() {
        let out = patch_user(json!([{"op": "replace", "value": {
            "displayName": "Ann B. Lee",
            "name": {"familyName": "Barker"},
            "emails": [{"value": "ann.barker@acme.example", "type": "work"}],
            ENT: {"department": "Oncology"}
        }}]))
        .unwrap();
        assert_eq!(out["displayName"], "Ann B. Lee");
        assert_eq!(
            out["name"],
            json!({"givenName": "Ann", "familyName": "Barker", "formatted": "Ann Lee"})
        );
        assert_eq!(
            out["emails"],
            json!([{"value": "ann.barker@acme.example", "type": "work"}])
        );
        assert_eq!(out[ENT]["department"], "Oncology");
        assert_eq!(out[ENT]["employeeNumber"], "42");
    }

    #[test]
    fn replace_with_paths() {
        let out = patch_user(json!([
            {"op": "replace", "path": "userName", "value": "ann.barker@acme.example"},
            {"op": "replace", "path": "name.familyName", "value": "Barker"},
            {"op": "replace", "path": format!("{ENT}:department"), "value": "ICU"},
            {"op": "replace", "path": format!("{ENT}:manager.value"), "value": "mgr-3"},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "ann.barker@acme.example"},
            {"op": "replace", "path": "phoneNumbers[type eq \"work\"]", "value": {"value": "+1 555 0111", "type": "work"}},
            {"op": "replace", "path": "nickName", "value": "Annie"}
        ]))
        .unwrap();
        assert_eq!(out["userName"], "ann.barker@acme.example");
        assert_eq!(out["name"]["familyName"], "Barker");
        assert_eq!(out["name"]["givenName"], "Ann");
        assert_eq!(out[ENT]["department"], "ICU");
        assert_eq!(out[ENT]["manager"]["value"], "mgr-3");
        assert_eq!(
            emails(&out)[0],
            json!({"value": "ann.barker@acme.example", "type": "work", "primary": true})
        );
        assert_eq!(
            out["phoneNumbers"],
            json!([{"value": "+1 555 0111", "type": "work"}])
        );
        assert_eq!(
            out["nickName"], "Annie",
            "replace of an unassigned attribute adds it"
        );
    }

    #[test]
    fn replace_of_multi_valued_without_filter_replaces_the_array() {
        let out =
            patch_group(json!([{"op": "replace", "path": "members", "value": [{"value": "u-9"}]}]))
                .unwrap();
        assert_eq!(out["members"], json!([{"value": "u-9"}]));
        let out = patch_group(json!([{"op": "replace", "path": "members", "value": []}])).unwrap();
        assert!(!out.contains_key("members"));
    }

    #[test]
    fn replace_of_filtered_element_replaces_it_whole() {
        let out = patch_user(json!([{"op": "replace", "path": "emails[type eq \"home\"]",
            "value": {"value": "ann@new-home.example"}}]))
        .unwrap();
        assert_eq!(emails(&out)[1], json!({"value": "ann@new-home.example"}));
    }

    #[test]
    fn replace_with_unmatched_filter_is_no_target() {
        for path in [
            "emails[type eq \"other\"].value",
            "emails[type eq \"other\"]",
        ] {
            let r = patch_user(json!([{"op": "replace", "path": path, "value": {"value": "x"}}]));
            assert_eq!(scim_type(r), ScimType::NoTarget, "{path}");
        }
        let mut doc = user();
        doc.shift_remove("emails");
        let r = apply_patch(
            &doc,
            &request(
                json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "x"}]),
            ),
            &USER_RESOURCE,
        );
        assert_eq!(scim_type(r), ScimType::NoTarget);
    }

    #[test]
    fn replace_with_null_unassigns() {
        let out = patch_user(json!([
            {"op": "replace", "path": "title", "value": null},
            {"op": "replace", "path": "name.formatted", "value": null},
            {"op": "replace", "value": {ENT: {"department": null}}}
        ]))
        .unwrap();
        assert!(!out.contains_key("title"));
        assert!(out["name"].get("formatted").is_none());
        assert!(out[ENT].get("department").is_none());
    }

    // -- remove -------------------------------------------------------------

    #[test]
    fn remove_without_path_is_no_target() {
        let r = patch_user(json!([{"op": "remove", "value": {"title": "Nurse"}}]));
        assert_eq!(scim_type(r), ScimType::NoTarget);
    }

    #[test]
    fn remove_with_paths() {
        let out = patch_user(json!([
            {"op": "remove", "path": "title"},
            {"op": "remove", "path": "name.formatted"},
            {"op": "remove", "path": "emails.type"},
            {"op": "remove", "path": "phoneNumbers"},
            {"op": "remove", "path": format!("{ENT}:manager.value")},
            {"op": "remove", "path": "nickName"}
        ]))
        .unwrap();
        assert!(!out.contains_key("title"));
        assert_eq!(
            out["name"],
            json!({"givenName": "Ann", "familyName": "Lee"})
        );
        assert_eq!(
            out["emails"],
            json!([{"value": "ann.lee@acme.example", "primary": true}, {"value": "ann@home.example"}])
        );
        assert!(!out.contains_key("phoneNumbers"));
        assert!(
            out[ENT].get("manager").is_none(),
            "an emptied complex attribute is unassigned"
        );
    }

    #[test]
    fn remove_with_value_filters() {
        let out =
            patch_user(json!([{"op": "remove", "path": "emails[type eq \"home\"]"}])).unwrap();
        assert_eq!(emails(&out).len(), 1);
        let out = patch_user(json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}]))
            .unwrap();
        assert_eq!(
            emails(&out)[0],
            json!({"value": "ann.lee@acme.example", "type": "work"})
        );
        // No match: a successful no-op.
        let out =
            patch_user(json!([{"op": "remove", "path": "emails[type eq \"other\"]"}])).unwrap();
        assert_eq!(out, user());
        // The last value removed leaves the attribute unassigned.
        let out = patch_user(json!([{"op": "remove", "path": "phoneNumbers[type eq \"work\"]"}]))
            .unwrap();
        assert!(!out.contains_key("phoneNumbers"));
        let out =
            patch_group(json!([{"op": "Remove", "path": "members[value eq \"u-2\"]"}])).unwrap();
        assert_eq!(out["members"], json!([{"value": "u-1"}, {"value": "u-3"}]));
    }

    #[test]
    fn remove_of_extension_attribute_and_whole_extension() {
        let out = patch_user(json!([
            {"op": "remove", "path": format!("{ENT}:department")},
            {"op": "remove", "path": format!("{ENT}:employeeNumber")},
            {"op": "remove", "path": format!("{ENT}:manager")}
        ]))
        .unwrap();
        assert!(!out.contains_key(ENT), "an emptied extension is dropped");
        let out = patch_user(json!([{"op": "remove", "path": ENT.to_lowercase()}])).unwrap();
        assert!(!out.contains_key(ENT));
    }

    #[test]
    fn azure_remove_members_with_value_array() {
        let out = patch_group(json!([{"op": "Remove", "path": "members",
            "value": [{"value": "u-1"}, {"value": "u-3", "display": "ignored"}, {"value": "nobody"}]}]))
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "u-2", "type": "User"}]));
        // members.value is caseExact: a different case names a different member.
        let out =
            patch_group(json!([{"op": "Remove", "path": "members", "value": [{"value": "U-2"}]}]))
                .unwrap();
        assert_eq!(out["members"].as_array().unwrap().len(), 3);
        // Without a value, all members go.
        let out = patch_group(json!([{"op": "Remove", "path": "members"}])).unwrap();
        assert!(!out.contains_key("members"));
        // A value without `value` matches on every given sub-attribute.
        let out =
            patch_user(json!([{"op": "remove", "path": "emails", "value": {"type": "HOME"}}]))
                .unwrap();
        assert_eq!(emails(&out).len(), 1);
    }

    #[test]
    fn remove_of_required_attribute_is_invalid_value() {
        let r = patch_user(json!([{"op": "remove", "path": "userName"}]));
        assert_eq!(scim_type(r), ScimType::InvalidValue);
        let r = patch_user(json!([{"op": "replace", "path": "USERNAME", "value": null}]));
        assert_eq!(scim_type(r), ScimType::InvalidValue);
        let r = patch_group(json!([{"op": "remove", "path": "displayName"}]));
        assert_eq!(scim_type(r), ScimType::InvalidValue);
    }

    #[test]
    fn active_cannot_be_unassigned() {
        for ops in [
            json!([{"op": "remove", "path": "active"}]),
            json!([{"op": "Remove", "path": "urn:ietf:params:scim:schemas:core:2.0:User:Active"}]),
            json!([{"op": "replace", "path": "active", "value": null}]),
            json!([{"op": "replace", "value": {"active": null}}]),
        ] {
            assert_eq!(
                scim_type(patch_user(ops.clone())),
                ScimType::Mutability,
                "{ops}"
            );
        }
    }

    #[test]
    fn remove_of_unassigned_attribute_is_a_no_op() {
        let out = patch_user(json!([
            {"op": "remove", "path": "nickName"},
            {"op": "remove", "path": "addresses[type eq \"work\"]"},
            {"op": "remove", "path": "ims.value"}
        ]))
        .unwrap();
        assert_eq!(out, user());
    }

    // -- paths --------------------------------------------------------------

    #[test]
    fn paths_are_case_insensitive_and_output_is_canonical() {
        let out = patch_user(json!([
            {"op": "replace", "path": "Emails[Type eq \"WORK\"].Value", "value": "a@acme.example"},
            {"op": "replace", "path": "NAME.givenname", "value": "Anne"},
            {"op": "add", "path": "NICKNAME", "value": "Annie"},
            {"op": "add", "path": "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:COSTCENTER", "value": "C"},
            {"op": "add", "path": "Emails", "value": [{"Value": "b@acme.example", "TYPE": "other"}]}
        ]))
        .unwrap();
        assert_eq!(emails(&out)[0]["value"], "a@acme.example");
        assert_eq!(out["name"]["givenName"], "Anne");
        assert_eq!(out["nickName"], "Annie");
        assert_eq!(out[ENT]["costCenter"], "C");
        assert_eq!(
            emails(&out)[2],
            json!({"value": "b@acme.example", "type": "other"})
        );
        let keys: Vec<String> = out.keys().map(|k| k.to_lowercase()).collect();
        let unique: HashSet<&String> = keys.iter().collect();
        assert_eq!(
            keys.len(),
            unique.len(),
            "no keys differing only in case: {keys:?}"
        );
    }

    #[test]
    fn filters_honour_case_exact() {
        // emails.type is not caseExact: "WORK" matched above. members.value is caseExact.
        let r = patch_group(
            json!([{"op": "replace", "path": "members[value eq \"U-1\"].type", "value": "User"}]),
        );
        assert_eq!(scim_type(r), ScimType::NoTarget);
        let out = patch_group(
            json!([{"op": "add", "path": "members[value eq \"u-1\"].type", "value": "User"}]),
        )
        .unwrap();
        assert_eq!(out["members"][0], json!({"value": "u-1", "type": "User"}));
    }

    #[test]
    fn unknown_attributes_in_paths_are_invalid_path() {
        for path in [
            "nickname2",
            "name.nickName",
            "emails[type eq \"work\"].label",
            "emails[kind eq \"work\"].value",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:shoeSize",
            "urn:example:unknown:2.0:User:department",
            "members",
        ] {
            let r = patch_user(json!([{"op": "replace", "path": path, "value": "x"}]));
            let err = r.unwrap_err();
            assert_eq!(err.scim_type, Some(ScimType::InvalidPath), "{path}: {err}");
            assert!(err.detail.contains(path), "{path}: {err}");
        }
    }

    #[test]
    fn misused_paths_are_invalid_path() {
        for path in [
            "title.value",
            "name[givenName eq \"Ann\"]",
            "title[value eq \"x\"]",
        ] {
            let r = patch_user(json!([{"op": "replace", "path": path, "value": "x"}]));
            assert_eq!(scim_type(r), ScimType::InvalidPath, "{path}");
        }
    }

    #[test]
    fn malformed_paths_are_invalid_path_with_position() {
        for (path, position) in [
            ("emails[type eq \"work\"", "at position 6"),
            ("name..givenName", "at position 5"),
            ("emails[type eq \"work\"] .value", "at position 23"),
        ] {
            for op in ["add", "replace", "remove"] {
                let r = patch_user(json!([{"op": op, "path": path, "value": "x"}]));
                let err = r.unwrap_err();
                assert_eq!(err.scim_type, Some(ScimType::InvalidPath), "{path}: {err}");
                assert!(err.detail.contains(path), "{err}");
                assert!(err.detail.contains(position), "{err}");
            }
        }
    }

    // -- mutability ---------------------------------------------------------

    #[test]
    fn read_only_attributes_cannot_be_targeted() {
        for op in ["add", "replace", "remove"] {
            for path in [
                "id",
                "meta",
                "meta.lastModified",
                "groups",
                "groups[value eq \"g-1\"]",
                format!("{ENT}:manager.displayName").as_str(),
            ] {
                let r = patch_user(json!([{"op": op, "path": path, "value": "x"}]));
                assert_eq!(scim_type(r), ScimType::Mutability, "{op} {path}");
            }
        }
        let r = patch_group(
            json!([{"op": "replace", "path": "members[value eq \"u-1\"].display", "value": "x"}]),
        );
        assert_eq!(scim_type(r), ScimType::Mutability);
    }

    #[test]
    fn id_and_meta_in_pathless_values_are_mutability_errors() {
        for value in [
            json!({"id": "other", "title": "x"}),
            json!({"meta": {"version": "W/\"1\""}}),
            json!({"groups": [{"value": "g-1"}]}),
        ] {
            for op in ["add", "replace"] {
                let r = patch_user(json!([{"op": op, "value": value}]));
                assert_eq!(scim_type(r), ScimType::Mutability, "{op} {value}");
            }
        }
    }

    #[test]
    fn okta_group_rename_with_own_id_is_accepted_with_apply_patch_with_id() {
        let ops = request(
            json!([{"op": "replace", "value": {"id": "grp-1", "displayName": "Ward 8 nurses"}}]),
        );
        let out = apply_patch_with_id(&group(), &ops, &GROUP_RESOURCE, "grp-1").unwrap();
        assert_eq!(out["displayName"], "Ward 8 nurses");
        let err = apply_patch_with_id(&group(), &ops, &GROUP_RESOURCE, "grp-2").unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::Mutability));
        let err = apply_patch(&group(), &ops, &GROUP_RESOURCE).unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::Mutability));
    }

    #[test]
    fn immutable_sub_attributes_may_be_set_but_not_changed() {
        // Adding new members (with their immutable `value`) is fine.
        patch_group(
            json!([{"op": "add", "path": "members", "value": [{"value": "u-7", "type": "User"}]}]),
        )
        .unwrap();
        // Setting an immutable sub-attribute that has no value yet is fine; the same value too.
        patch_group(
            json!([{"op": "add", "path": "members[value eq \"u-3\"].type", "value": "User"}]),
        )
        .unwrap();
        patch_group(
            json!([{"op": "replace", "path": "members[value eq \"u-2\"].type", "value": "User"}]),
        )
        .unwrap();
        // Changing or removing a set immutable sub-attribute is not.
        for op in [
            json!({"op": "replace", "path": "members[value eq \"u-1\"].value", "value": "u-9"}),
            json!({"op": "add", "path": "members[value eq \"u-2\"].type", "value": "Group"}),
            json!({"op": "replace", "path": "members[value eq \"u-2\"]", "value": {"value": "u-8"}}),
            json!({"op": "replace", "path": "members[value eq \"u-2\"]", "value": {"value": "u-2"}}),
            json!({"op": "remove", "path": "members.value"}),
            json!({"op": "remove", "path": "members[value eq \"u-2\"].type"}),
        ] {
            let r = patch_group(json!([op.clone()]));
            assert_eq!(scim_type(r), ScimType::Mutability, "{op}");
        }
        // Re-adding an existing member keeps its immutable sub-attributes.
        let out = patch_group(json!([{"op": "add", "path": "members",
            "value": [{"value": "u-2", "type": "Group", "$ref": "../Users/u-2"}]}]))
        .unwrap();
        assert_eq!(
            out["members"][1],
            json!({"value": "u-2", "type": "User", "$ref": "../Users/u-2"})
        );
        // Removing whole members and replacing the whole list stay allowed.
        patch_group(json!([{"op": "remove", "path": "members[value eq \"u-2\"]"}])).unwrap();
        patch_group(json!([{"op": "replace", "path": "members", "value": [{"value": "u-5"}]}]))
            .unwrap();
    }

    // -- primary ------------------------------------------------------------

    #[test]
    fn primary_stays_unique() {
        let primaries = |doc: &Map<String, Value>| -> Vec<String> {
            emails(doc)
                .iter()
                .filter(|e| e.get("primary").and_then(parse_bool) == Some(true))
                .map(|e| e["value"].as_str().unwrap().to_string())
                .collect()
        };
        let out = patch_user(json!([{"op": "add", "path": "emails",
            "value": [{"value": "new@acme.example", "type": "other", "primary": "True"}]}]))
        .unwrap();
        assert_eq!(primaries(&out), ["new@acme.example"]);
        assert!(
            emails(&out)[0].get("primary").is_none(),
            "removed, not set false"
        );

        let out = patch_user(
            json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
        )
        .unwrap();
        assert_eq!(primaries(&out), ["ann@home.example"]);

        let out = patch_user(json!([{"op": "Add", "path": "emails[type eq \"other\"].value", "value": "o@x.example"},
                                    {"op": "Add", "path": "emails[type eq \"other\"].primary", "value": "true"}]))
        .unwrap();
        assert_eq!(primaries(&out), ["o@x.example"]);

        let out = patch_user(json!([{"op": "replace", "value": {"emails": [
            {"value": "a@x.example", "primary": true}, {"value": "b@x.example"}]}}]))
        .unwrap();
        assert_eq!(primaries(&out), ["a@x.example"]);

        // Setting a non-primary element leaves the primary alone.
        let out = patch_user(
            json!([{"op": "add", "path": "emails[type eq \"home\"].display", "value": "H"}]),
        )
        .unwrap();
        assert_eq!(primaries(&out), ["ann.lee@acme.example"]);
    }

    // -- atomicity and scale --------------------------------------------------

    #[test]
    fn failing_operation_leaves_the_original_untouched() {
        let original = user();
        let snapshot = original.clone();
        let ops = request(json!([
            {"op": "replace", "path": "title", "value": "Changed"},
            {"op": "remove", "path": "emails[type eq \"home\"]"},
            {"op": "replace", "path": "emails[type eq \"fax\"].value", "value": "x"}
        ]));
        let err = apply_patch(&original, &ops, &USER_RESOURCE).unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::NoTarget));
        assert!(err.detail.starts_with("Operations[2]"), "{err}");
        assert_eq!(original, snapshot);
    }

    #[test]
    fn adding_ten_thousand_members_is_fast() {
        let existing: Vec<Value> = (0..10_000)
            .map(|i| json!({"value": format!("u-{i}")}))
            .collect();
        let mut doc = group();
        doc.insert("members".into(), Value::Array(existing));
        let added: Vec<Value> = (5_000..15_000)
            .map(|i| json!({"value": format!("u-{i}"), "display": "x"}))
            .collect();
        let ops = request(json!([{"op": "Add", "path": "members", "value": added}]));
        let start = std::time::Instant::now();
        let out = apply_patch(&doc, &ops, &GROUP_RESOURCE).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(out["members"].as_array().unwrap().len(), 15_000);
        assert!(
            elapsed < std::time::Duration::from_secs(5),
            "took {elapsed:?}"
        );

        let removed: Vec<Value> = (0..10_000)
            .map(|i| json!({"value": format!("u-{i}")}))
            .collect();
        let ops = request(json!([{"op": "Remove", "path": "members", "value": removed}]));
        let out = apply_patch(&out, &ops, &GROUP_RESOURCE).unwrap();
        assert_eq!(out["members"].as_array().unwrap().len(), 5_000);
    }

    // -- property -------------------------------------------------------------

    const SIMPLE_ATTRS: &[&str] = &[
        "userName",
        "externalId",
        "displayName",
        "nickName",
        "title",
        "userType",
        "preferredLanguage",
        "locale",
        "timezone",
        "profileUrl",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        "name.givenName",
        "name.familyName",
    ];

    fn read_back<'d>(doc: &'d Map<String, Value>, path: &str) -> Option<&'d Value> {
        match path.rsplit_once(':') {
            Some((urn, attr)) => doc.get(urn)?.get(attr),
            None => match path.split_once('.') {
                Some((attr, sub)) => doc.get(attr)?.get(sub),
                None => doc.get(path),
            },
        }
    }

    proptest::proptest! {
        #[test]
        fn replace_then_read_back(
            index in 0..SIMPLE_ATTRS.len(),
            upper in proptest::bool::ANY,
            value in "[^\\x00-\\x1f]{0,39}[a-zA-Z0-9]",
            pathless in proptest::bool::ANY,
        ) {
            let canonical = SIMPLE_ATTRS[index];
            let written = if upper { canonical.to_uppercase() } else { canonical.to_string() };
            let op = if pathless {
                json!({"op": "Replace", "value": {written: value}})
            } else {
                json!({"op": "Replace", "path": written, "value": value})
            };
            let out = apply_patch(&user(), &request(json!([op])), &USER_RESOURCE).unwrap();
            proptest::prop_assert_eq!(read_back(&out, canonical), Some(&Value::String(value.clone())));
            renormalise(&out, &USER_RESOURCE);
        }
    }
}
