//! Parsing a PatchOp request body (RFC 7644 §3.5.2) into operations.

use serde_json::Value;

use crate::scim_core::error::ScimError;
use crate::scim_core::text::{get_ci, shorten};

use super::{MAX_QUOTED_CHARS, PATCH_OP_SCHEMA};

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

pub(super) fn parse_operation(op: &Value) -> Result<PatchOp, ScimError> {
    let Value::Object(obj) = op else {
        return Err(ScimError::invalid_syntax(
            "an operation must be a JSON object",
        ));
    };
    let kind = match get_ci(obj, "op") {
        Some(Value::String(name)) => PatchOpKind::from_name(name).ok_or_else(|| {
            ScimError::invalid_syntax(format!(
                "unknown op {:?}; expected \"add\", \"remove\" or \"replace\"",
                shorten(name, MAX_QUOTED_CHARS)
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

/// Prefix an error's detail with the operation's index.
pub(super) fn in_operation(mut e: ScimError, index: usize) -> ScimError {
    e.detail = format!("Operations[{index}]: {}", e.detail);
    e
}
