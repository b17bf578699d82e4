//! Applying operations in order to a copy of the document: a path, a path-less value, or a
//! whole extension.

use serde_json::{Map, Value};

use crate::scim_core::error::ScimError;
use crate::scim_core::schema::{Mutability, ResourceTypeDef, SchemaDef};
use crate::scim_core::text::get_ci;

use super::mutability::{immutable_error, required_error};
use super::operations::apply_target;
use super::request::{in_operation, PatchOp, PatchOpKind};
use super::target::{resolve_key, resolve_path};
use super::values::is_assigned;

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

pub(super) fn apply_all(
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

pub(super) fn apply_one(
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
pub(super) fn apply_pathless(
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
pub(super) fn apply_extension(
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

pub(super) fn remove_extension(
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
