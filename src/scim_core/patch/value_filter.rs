//! Value-path filters (`emails[type eq "work"]`, RFC 7644 §3.5.2): what they may name, which
//! elements they select, and the element an `eq` filter describes.

use serde_json::{Map, Value};

use crate::scim_core::error::ScimError;
use crate::scim_core::filter::{matches, AttrPath, CompValue, CompareOp, Filter};
use crate::scim_core::schema::AttrDef;
use crate::scim_core::text::shorten;

use super::MAX_QUOTED_CHARS;

/// A value filter may only compare sub-attributes of the attribute it selects from.
pub(super) fn validate_filter(
    filter: &Filter,
    def: &'static AttrDef,
    text: &str,
) -> Result<(), ScimError> {
    match filter {
        Filter::Compare { path, .. } | Filter::Present(path) => {
            if path.uri.is_some()
                || path.sub_attr.is_some()
                || def.sub_attribute(&path.attr).is_none()
            {
                return Err(ScimError::invalid_path(format!(
                    "path '{}': '{path}' in the value filter is not a sub-attribute of '{}'",
                    shorten(text, MAX_QUOTED_CHARS),
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
            shorten(text, MAX_QUOTED_CHARS)
        ))),
    }
}

pub(super) fn matching(filter: &Filter, def: &'static AttrDef, arr: &[Value]) -> Vec<usize> {
    let case_exact = case_exact_fn(def);
    arr.iter()
        .enumerate()
        .filter(|(_, e)| e.is_object() && matches(filter, e, &case_exact))
        .map(|(i, _)| i)
        .collect()
}

/// `caseExact` of the sub-attribute a value-filter comparison names.
pub(super) fn case_exact_fn(def: &'static AttrDef) -> impl Fn(&AttrPath) -> bool {
    move |p: &AttrPath| def.sub_attribute(&p.attr).is_some_and(|s| s.case_exact)
}

/// The sub-attributes a filter of `eq` comparisons (joined by `and`) fixes, for creating an
/// element no value matched; `false` for any other filter.
pub(super) fn eq_clauses(
    filter: &Filter,
    def: &'static AttrDef,
    out: &mut Map<String, Value>,
) -> bool {
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
