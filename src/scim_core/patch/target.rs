//! Resolving a PATCH path, or a key of a path-less value, against the resource type's
//! schemas into the attribute, sub-attribute and value filter it names.

use crate::scim_core::error::ScimError;
use crate::scim_core::filter::{parse_patch_path, Filter};
use crate::scim_core::schema::{AttrDef, AttrType, ResourceTypeDef};
use crate::scim_core::text::shorten;

use super::value_filter::validate_filter;
use super::MAX_QUOTED_CHARS;

/// A resolved PATCH target.
#[derive(Debug)]
pub(super) struct Target {
    /// The extension URN whose object holds the attribute; `None` for the core schema.
    pub(super) ext: Option<&'static str>,
    pub(super) def: &'static AttrDef,
    /// `attr.sub` or `attr[filter].sub`.
    pub(super) sub: Option<&'static AttrDef>,
    pub(super) filter: Option<Filter>,
    /// The path (or path-less key) as written, for messages.
    pub(super) text: String,
}

pub(super) fn resolve_path(path: &str, rt: &'static ResourceTypeDef) -> Result<Target, ScimError> {
    let parsed = parse_patch_path(path).map_err(|e| {
        ScimError::invalid_path(format!(
            "invalid path '{}' {e}",
            shorten(path, MAX_QUOTED_CHARS)
        ))
    })?;
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
            shorten(path, MAX_QUOTED_CHARS),
            rt.name
        ))
    })
}

/// A key of a path-less value (or of an extension object in one): an attribute name or
/// path. `Ok(None)` for keys that name no attribute, which are ignored.
pub(super) fn resolve_key(
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
pub(super) fn build_target(
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
            shorten(text, MAX_QUOTED_CHARS),
            def.name
        )));
    }
    let sub = match sub {
        None => None,
        Some(_) if !is_complex => {
            return Err(ScimError::invalid_path(format!(
                "path '{}': attribute '{}' has no sub-attributes",
                shorten(text, MAX_QUOTED_CHARS),
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
            shorten(text, MAX_QUOTED_CHARS)
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
