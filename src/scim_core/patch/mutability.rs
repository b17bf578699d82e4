//! Mutability and required attributes (RFC 7643 §2.2): immutable values that may not change,
//! and the errors for both.

use std::collections::HashSet;

use serde_json::Value;

use crate::scim_core::error::ScimError;
use crate::scim_core::schema::{AttrDef, AttrType, Mutability};
use crate::scim_core::text::shorten;

use super::target::Target;
use super::values::{is_assigned, same_value, sorted};
use super::MAX_QUOTED_CHARS;

/// Whether `check_immutable_attr` needs the attribute's value from before the operation.
pub(super) fn needs_snapshot(def: &AttrDef) -> bool {
    def.mutability == Mutability::Immutable
        || (!def.multi_valued
            && def
                .sub_attributes
                .iter()
                .any(|s| s.mutability == Mutability::Immutable))
}

/// An immutable attribute with a value may only gain values (multi-valued) or keep its value;
/// an immutable sub-attribute of a single-valued complex attribute likewise.
pub(super) fn check_immutable_attr(
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

pub(super) fn immutable_error(attr: &str, path: &str) -> ScimError {
    ScimError::mutability(format!(
        "attribute '{attr}' (path '{}') is immutable and already has a value; it cannot be replaced or removed",
        shorten(path, MAX_QUOTED_CHARS)
    ))
}

pub(super) fn required_error(what: &str) -> ScimError {
    ScimError::invalid_value(format!(
        "'{}' is a required attribute and cannot be removed",
        shorten(what, MAX_QUOTED_CHARS)
    ))
}
