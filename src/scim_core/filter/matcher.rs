//! In-memory evaluation of a filter against one JSON object.

use std::borrow::Cow;
use std::cmp::Ordering;

use chrono::DateTime;
use serde_json::Value;

use super::ast::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim_core::text::member_ci;

/// Core schemas whose attributes live at the top level of a resource.
const CORE_SCHEMAS: [&str; 2] = [
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:core:2.0:Group",
];

/// In-memory evaluation against one JSON object (a resource or one element of a multi-valued attribute).
/// `case_exact(path)` says whether string comparisons for that attribute are case-sensitive.
///
/// Inside a [`Filter::ValuePath`] the callback is given the absolute path
/// (`emails[type eq "x"]` asks about `emails.type`), with the value path's
/// URN; the inner filter is evaluated against each object element.
pub fn matches(filter: &Filter, object: &Value, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
    match filter {
        Filter::Compare { path, op, value } => compare(object, path, *op, value, case_exact(path)),
        Filter::Present(path) => present(object, path),
        Filter::And(left, right) => {
            matches(left, object, case_exact) && matches(right, object, case_exact)
        }
        Filter::Or(left, right) => {
            matches(left, object, case_exact) || matches(right, object, case_exact)
        }
        Filter::Not(inner) => !matches(inner, object, case_exact),
        Filter::ValuePath { attr, filter } => {
            let Some(target) = lookup(object, attr) else {
                return false;
            };
            let absolute = |inner: &AttrPath| {
                case_exact(&AttrPath {
                    uri: attr.uri.clone(),
                    attr: attr.attr.clone(),
                    sub_attr: Some(inner.attr.clone()),
                })
            };
            match target {
                Value::Array(items) => items
                    .iter()
                    .any(|item| item.is_object() && matches(filter, item, &absolute)),
                Value::Object(_) => matches(filter, target, &absolute),
                _ => false,
            }
        }
    }
}

/// The attribute's value (ignoring `sub_attr`): core-schema URNs address the
/// top level, other URNs the extension object stored under that URN.
fn top_value<'v>(object: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    let container = match &path.uri {
        Some(uri) if !CORE_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(uri)) => {
            member_ci(object, uri)?
        }
        _ => object,
    };
    member_ci(container, &path.attr)
}

/// The value the whole path addresses, for single-valued complex attributes.
fn lookup<'v>(object: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    let value = top_value(object, path)?;
    match &path.sub_attr {
        Some(sub) => member_ci(value, sub),
        None => Some(value),
    }
}

/// The values a comparison looks at: for a multi-valued attribute every
/// element (its `sub_attr`, or its `value` member when the elements are
/// objects and no sub-attribute is named).
fn candidates<'v>(object: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let mut out = Vec::new();
    let Some(value) = top_value(object, path) else {
        return out;
    };
    let mut push = |v: &'v Value| match v {
        Value::Array(items) => out.extend(items.iter()),
        other => out.push(other),
    };
    match (&path.sub_attr, value) {
        (Some(sub), Value::Array(items)) => {
            items
                .iter()
                .filter_map(|item| member_ci(item, sub))
                .for_each(&mut push);
        }
        (Some(sub), _) => {
            if let Some(v) = member_ci(value, sub) {
                push(v);
            }
        }
        (None, Value::Array(items)) => {
            for item in items {
                if item.is_object() {
                    if let Some(v) = member_ci(item, "value") {
                        out.push(v);
                    }
                } else {
                    out.push(item);
                }
            }
        }
        (None, other) => out.push(other),
    }
    out
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn present(object: &Value, path: &AttrPath) -> bool {
    if path.sub_attr.is_none() {
        top_value(object, path).is_some_and(is_present)
    } else {
        candidates(object, path).into_iter().any(is_present)
    }
}

fn compare(object: &Value, path: &AttrPath, op: CompareOp, value: &CompValue, exact: bool) -> bool {
    let values = candidates(object, path);
    match (op, value) {
        // `eq null` is absence and `ne null` presence, judged as `pr` judges.
        (CompareOp::Eq, CompValue::Null) => !present(object, path),
        (CompareOp::Ne, CompValue::Null) => present(object, path),
        (CompareOp::Ne, _) => !values
            .iter()
            .any(|v| compare_one(v, CompareOp::Eq, value, exact)),
        _ => values.iter().any(|v| compare_one(v, op, value, exact)),
    }
}

fn ordering_matches(op: CompareOp, ordering: Option<Ordering>) -> bool {
    matches!(
        (op, ordering),
        (
            CompareOp::Eq | CompareOp::Ge | CompareOp::Le,
            Some(Ordering::Equal)
        ) | (CompareOp::Gt | CompareOp::Ge, Some(Ordering::Greater))
            | (CompareOp::Lt | CompareOp::Le, Some(Ordering::Less))
    )
}

fn bool_from_str(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// One resource value against the filter value (`op` is never `Ne` here).
fn compare_one(actual: &Value, op: CompareOp, expected: &CompValue, exact: bool) -> bool {
    match expected {
        CompValue::Null => false,
        CompValue::Bool(b) => {
            let actual = match actual {
                Value::Bool(a) => Some(*a),
                Value::String(s) => bool_from_str(s),
                _ => None,
            };
            op == CompareOp::Eq && actual == Some(*b)
        }
        CompValue::Number(n) => match (actual, n.as_f64()) {
            (Value::Number(a), Some(b)) => {
                ordering_matches(op, a.as_f64().and_then(|a| a.partial_cmp(&b)))
            }
            _ => false,
        },
        CompValue::Str(s) => match actual {
            Value::String(a) => compare_str(a, op, s, exact),
            Value::Bool(a) => op == CompareOp::Eq && bool_from_str(s) == Some(*a),
            _ => false,
        },
    }
}

fn compare_str(actual: &str, op: CompareOp, expected: &str, exact: bool) -> bool {
    if op == CompareOp::Eq || op.is_ordering() {
        if let (Ok(a), Ok(b)) = (
            DateTime::parse_from_rfc3339(actual),
            DateTime::parse_from_rfc3339(expected),
        ) {
            return ordering_matches(op, Some(a.cmp(&b)));
        }
    }
    let (a, b): (Cow<'_, str>, Cow<'_, str>) = if exact {
        (Cow::Borrowed(actual), Cow::Borrowed(expected))
    } else {
        (
            Cow::Owned(actual.to_lowercase()),
            Cow::Owned(expected.to_lowercase()),
        )
    };
    match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        CompareOp::Co => a.contains(b.as_ref()),
        CompareOp::Sw => a.starts_with(b.as_ref()),
        CompareOp::Ew => a.ends_with(b.as_ref()),
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
            ordering_matches(op, Some(a.cmp(&b)))
        }
    }
}
