//! Rule conditions: SCIM filters (RFC 7644 §3.4.2.2) over a person's User resource, made
//! strict at load time. Every attribute path is resolved against the User resource type
//! (core schema, URN-qualified extensions, and, for convenience, an unqualified name that
//! is not a core attribute resolves to the first extension that defines it, enterprise
//! then guest); a path that resolves to nothing is an error, unlike in SCIM listing. The
//! resolved filter carries the extension URN and the schema's spelling of every name, so
//! evaluation is [`filter::matches`] with `caseExact` taken from the schema (RFC 7643 §2.2).

use crate::scim_core::filter::{self, AttrPath, Filter};
use crate::scim_core::schema::{AttrDef, AttrType, SchemaDef, USER_RESOURCE};

/// A path of a condition that resolves to no attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unresolved {
    pub(crate) message: String,
    /// The path as written, for finding it in the condition's text.
    pub(crate) written: String,
}

/// Resolves every attribute path of `filter` in place; the error names the first path that
/// does not resolve.
pub(crate) fn resolve(filter: &mut Filter) -> Result<(), Unresolved> {
    match filter {
        Filter::Compare { path, .. } | Filter::Present(path) => {
            let written = path.to_string();
            resolve_path(path)
                .map(|_| ())
                .map_err(|message| Unresolved { message, written })
        }
        Filter::And(left, right) | Filter::Or(left, right) => {
            resolve(left)?;
            resolve(right)
        }
        Filter::Not(inner) => resolve(inner),
        Filter::ValuePath { attr, filter } => {
            let written = attr.to_string();
            let def = match resolve_path(attr) {
                Ok(def) if def.ty == AttrType::Complex => def,
                Ok(def) => {
                    let message = format!(
                        "'{}' is not a complex attribute, so it cannot take a '[…]' filter",
                        def.name
                    );
                    return Err(Unresolved { message, written });
                }
                Err(message) => return Err(Unresolved { message, written }),
            };
            resolve_relative(filter, def).map_err(|(message, inner)| Unresolved {
                message,
                written: inner.unwrap_or(written),
            })
        }
    }
}

/// Paths inside a value path's `[…]` name sub-attributes of `parent`; the error carries
/// the offending path as written when there is one.
fn resolve_relative(
    filter: &mut Filter,
    parent: &'static AttrDef,
) -> Result<(), (String, Option<String>)> {
    match filter {
        Filter::Compare { path, .. } | Filter::Present(path) => {
            if path.uri.is_some() || path.sub_attr.is_some() {
                let message = format!(
                    "'{path}' inside '{}[…]' must be a plain sub-attribute name",
                    parent.name
                );
                return Err((message, Some(path.to_string())));
            }
            let Some(sub) = parent.sub_attribute(&path.attr) else {
                let message = format!(
                    "unknown attribute '{}.{}': '{}' has the sub-attributes {}",
                    parent.name,
                    path.attr,
                    parent.name,
                    names(parent.sub_attributes)
                );
                return Err((message, Some(path.to_string())));
            };
            sub.name.clone_into(&mut path.attr);
            Ok(())
        }
        Filter::And(left, right) | Filter::Or(left, right) => {
            resolve_relative(left, parent)?;
            resolve_relative(right, parent)
        }
        Filter::Not(inner) => resolve_relative(inner, parent),
        // The parser refuses nested value paths.
        Filter::ValuePath { .. } => Err((
            format!(
                "nested value paths are not allowed inside '{}[…]'",
                parent.name
            ),
            None,
        )),
    }
}

fn names(attrs: &[AttrDef]) -> String {
    attrs.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
}

/// Resolves one absolute path, rewriting it to the canonical URN and spelling.
fn resolve_path(path: &mut AttrPath) -> Result<&'static AttrDef, String> {
    let (schema, def) = lookup(path.uri.as_deref(), &path.attr)?;
    path.uri = if std::ptr::eq(schema, USER_RESOURCE.schema) {
        None
    } else {
        Some(schema.id.to_string())
    };
    def.name.clone_into(&mut path.attr);
    if let Some(sub_name) = &path.sub_attr {
        let sub = def.sub_attribute(sub_name).ok_or_else(|| {
            if def.sub_attributes.is_empty() {
                format!("'{}' has no sub-attributes, found '{path}'", def.name)
            } else {
                format!(
                    "unknown attribute '{path}': '{}' has the sub-attributes {}",
                    def.name,
                    names(def.sub_attributes)
                )
            }
        })?;
        path.sub_attr = Some(sub.name.to_string());
    }
    Ok(def)
}

fn lookup(uri: Option<&str>, name: &str) -> Result<(&'static SchemaDef, &'static AttrDef), String> {
    match uri {
        Some(uri) => USER_RESOURCE.resolve(Some(uri), name).ok_or_else(|| {
            let known = uri.eq_ignore_ascii_case(USER_RESOURCE.schema.id)
                || USER_RESOURCE.extension(uri).is_some();
            if known {
                format!("unknown attribute '{name}' in schema {uri}")
            } else {
                format!("unknown schema URN '{uri}' (a User has the core schema, the enterprise extension and the Guestbridge guest extension)")
            }
        }),
        None => USER_RESOURCE
            .resolve(None, name)
            .or_else(|| {
                USER_RESOURCE
                    .extensions
                    .iter()
                    .find_map(|(ext, _)| ext.attribute(name).map(|a| (*ext, a)))
            })
            .ok_or_else(|| {
                format!("unknown attribute '{name}': not in the User schema or its extensions")
            }),
    }
}

/// `caseExact` for a resolved path, as [`filter::matches`] asks it: a complex attribute
/// compared without a sub-attribute compares its `value`. Resolved paths use the schema's
/// spelling, so this compares names exactly against the few case-exact attributes of the
/// User resource type instead of resolving the path again on every comparison.
pub(crate) fn case_exact(path: &AttrPath) -> bool {
    let uri = path.uri.as_deref().unwrap_or(USER_RESOURCE.schema.id);
    let sub = path.sub_attr.as_deref();
    case_exact_paths()
        .iter()
        .any(|p| p.attr == path.attr && p.sub == sub && p.schema == uri)
}

/// An attribute path whose string comparisons are case-sensitive; `sub` is `None` for a
/// simple attribute, and a complex attribute appears a second time with `sub: None` when
/// its `value` is case-exact.
#[derive(Debug)]
struct ExactPath {
    schema: &'static str,
    attr: &'static str,
    sub: Option<&'static str>,
}

fn case_exact_paths() -> &'static [ExactPath] {
    static PATHS: std::sync::OnceLock<Vec<ExactPath>> = std::sync::OnceLock::new();
    PATHS.get_or_init(|| {
        let mut out = Vec::new();
        for schema in USER_RESOURCE.schemas() {
            for def in schema.attributes {
                let exact = |sub: Option<&'static str>| ExactPath {
                    schema: schema.id,
                    attr: def.name,
                    sub,
                };
                if def.ty != AttrType::Complex {
                    if def.case_exact {
                        out.push(exact(None));
                    }
                    continue;
                }
                for sub in def.sub_attributes.iter().filter(|s| s.case_exact) {
                    out.push(exact(Some(sub.name)));
                    if sub.name == "value" {
                        out.push(exact(None));
                    }
                }
            }
        }
        out
    })
}

/// Whether a resolved condition holds for the User JSON.
pub(crate) fn holds(condition: &Filter, user: &serde_json::Value) -> bool {
    filter::matches(condition, user, &case_exact)
}

/// Whether a resolved condition reads the user's `groups`.
pub(crate) fn mentions_groups(filter: &Filter) -> bool {
    match filter {
        Filter::Compare { path, .. } | Filter::Present(path) => is_groups(path),
        Filter::ValuePath { attr, .. } => is_groups(attr),
        Filter::And(left, right) | Filter::Or(left, right) => {
            mentions_groups(left) || mentions_groups(right)
        }
        Filter::Not(inner) => mentions_groups(inner),
    }
}

fn is_groups(path: &AttrPath) -> bool {
    path.uri.is_none() && path.attr == "groups"
}

/// The comparisons of a condition, in reading order: comparisons, `pr` and whole value
/// paths; `and`, `or` and `not` are looked through.
pub(crate) fn leaves(filter: &Filter) -> Vec<&Filter> {
    fn walk<'f>(filter: &'f Filter, out: &mut Vec<&'f Filter>) {
        match filter {
            Filter::And(left, right) | Filter::Or(left, right) => {
                walk(left, out);
                walk(right, out);
            }
            Filter::Not(inner) => walk(inner, out),
            leaf => out.push(leaf),
        }
    }
    let mut out = Vec::new();
    walk(filter, &mut out);
    out
}

/// Canonical text of a resolved leaf, in its shortest form: the URN is left out where the
/// unqualified name resolves to the same attribute.
pub(crate) fn leaf_text(leaf: &Filter) -> String {
    match leaf {
        Filter::Compare { path, op, value } => Filter::Compare {
            path: shortest(path),
            op: *op,
            value: value.clone(),
        }
        .to_string(),
        Filter::Present(path) => Filter::Present(shortest(path)).to_string(),
        Filter::ValuePath { attr, filter } => Filter::ValuePath {
            attr: shortest(attr),
            filter: filter.clone(),
        }
        .to_string(),
        other => other.to_string(),
    }
}

fn shortest(path: &AttrPath) -> AttrPath {
    let mut short = AttrPath {
        uri: None,
        attr: path.attr.clone(),
        sub_attr: path.sub_attr.clone(),
    };
    let same = match (
        lookup(None, &path.attr),
        lookup(path.uri.as_deref(), &path.attr),
    ) {
        (Ok((a, _)), Ok((b, _))) => std::ptr::eq(a, b),
        _ => false,
    };
    if !same {
        short.uri.clone_from(&path.uri);
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim_core::filter::parse_filter;
    use crate::scim_core::schema::{ENTERPRISE_USER_SCHEMA, GUEST_SCHEMA};
    use serde_json::json;

    fn resolved(text: &str) -> Result<Filter, String> {
        let mut f = parse_filter(text).map_err(|e| e.to_string())?;
        resolve(&mut f).map_err(|e| e.message)?;
        Ok(f)
    }

    #[test]
    fn unqualified_extension_names_get_their_urn_and_spelling() {
        let f = resolved(r#"DEPARTMENT eq "x" and homeorganization pr"#).unwrap();
        let Filter::And(l, r) = &f else { panic!() };
        let Filter::Compare { path, .. } = &**l else {
            panic!()
        };
        assert_eq!(path.uri.as_deref(), Some(ENTERPRISE_USER_SCHEMA));
        assert_eq!(path.attr, "department");
        let Filter::Present(path) = &**r else {
            panic!()
        };
        assert_eq!(path.uri.as_deref(), Some(GUEST_SCHEMA));
        assert_eq!(path.attr, "homeOrganization");
    }

    #[test]
    fn core_names_and_qualified_names_resolve() {
        let f = resolved("urn:ietf:params:scim:schemas:core:2.0:User:name.FAMILYNAME pr").unwrap();
        assert_eq!(f, Filter::Present(AttrPath::with_sub("name", "familyName")));
        let f = resolved(&format!("{ENTERPRISE_USER_SCHEMA}:manager.value pr")).unwrap();
        assert_eq!(leaf_text(&f), "manager.value pr");
        let f = resolved(r#"emails[TYPE eq "work"]"#).unwrap();
        assert_eq!(f.to_string(), r#"emails[type eq "work"]"#);
    }

    #[test]
    fn unknown_attributes_are_errors() {
        for (text, needle) in [
            ("nosuch pr", "unknown attribute 'nosuch'"),
            ("name.nosuch pr", "unknown attribute 'name.nosuch'"),
            ("title.x pr", "'title' has no sub-attributes"),
            ("urn:x:y:department pr", "unknown schema URN 'urn:x:y'"),
            (
                &format!("{GUEST_SCHEMA}:department pr"),
                "unknown attribute 'department' in schema",
            ),
            (
                r#"emails[nosuch eq "x"]"#,
                "unknown attribute 'emails.nosuch'",
            ),
            (
                r#"title[value eq "x"]"#,
                "'title' is not a complex attribute",
            ),
            (
                r#"emails[value.x eq "x"]"#,
                "must be a plain sub-attribute name",
            ),
        ] {
            let e = resolved(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn errors_carry_the_path_as_written() {
        let written = |text: &str| {
            let mut f = parse_filter(text).unwrap();
            resolve(&mut f).unwrap_err().written
        };
        assert_eq!(written(r#"title pr and Departement eq "x""#), "Departement");
        assert_eq!(written("urn:x:y:z pr"), "urn:x:y:z");
        assert_eq!(written(r#"emails[type pr and kind eq "x"]"#), "kind");
        assert_eq!(written(r#"title[value eq "x"]"#), "title");
    }

    #[test]
    fn case_exactness_follows_the_schema() {
        assert!(case_exact(&AttrPath::new("externalId")));
        assert!(!case_exact(&AttrPath::new("userName")));
        assert!(case_exact(&AttrPath::with_sub("meta", "version")));
        let mut manager = AttrPath::with_sub("manager", "value");
        manager.uri = Some(ENTERPRISE_USER_SCHEMA.to_string());
        assert!(case_exact(&manager));
        assert!(!case_exact(&AttrPath::new("emails")));
        assert!(!case_exact(&AttrPath::new("nosuch")));
        // The same answers as resolving through the schema, for every User attribute.
        for schema in USER_RESOURCE.schemas() {
            for def in schema.attributes {
                let uri =
                    (!std::ptr::eq(schema, USER_RESOURCE.schema)).then(|| schema.id.to_string());
                let path = AttrPath {
                    uri: uri.clone(),
                    attr: def.name.to_string(),
                    sub_attr: None,
                };
                let expected = match def.sub_attribute("value") {
                    Some(value) if def.ty == AttrType::Complex => value.case_exact,
                    _ => def.ty != AttrType::Complex && def.case_exact,
                };
                assert_eq!(case_exact(&path), expected, "{path}");
                for sub in def.sub_attributes {
                    let path = AttrPath {
                        uri: uri.clone(),
                        attr: def.name.to_string(),
                        sub_attr: Some(sub.name.to_string()),
                    };
                    assert_eq!(case_exact(&path), sub.case_exact, "{path}");
                }
            }
        }
        let user = json!({"externalId": "AbC", "userName": "Ann"});
        assert!(holds(&resolved(r#"userName eq "ANN""#).unwrap(), &user));
        assert!(!holds(&resolved(r#"externalId eq "abc""#).unwrap(), &user));
    }

    #[test]
    fn finds_group_mentions_and_leaves() {
        assert!(mentions_groups(
            &resolved(r#"groups.display eq "x""#).unwrap()
        ));
        assert!(mentions_groups(
            &resolved(r#"title pr or not (groups[display eq "x"])"#).unwrap()
        ));
        assert!(!mentions_groups(&resolved("title pr").unwrap()));
        let f =
            resolved(r#"title pr and (department eq "a" or not (emails[type eq "x"]))"#).unwrap();
        let texts: Vec<String> = leaves(&f).into_iter().map(leaf_text).collect();
        assert_eq!(
            texts,
            ["title pr", r#"department eq "a""#, r#"emails[type eq "x"]"#]
        );
    }
}
