//! Data minimisation: the User attributes a partner's writes keep (its `kept_attributes`),
//! dropping the rest of a document before it is stored, and the `/Schemas` that tell the
//! partner what is kept.

use serde_json::{Map, Value};

use super::schema::{AttrDef, SchemaDef, USER_RESOURCE};

/// Attributes every document keeps whatever the list says: what identifies and addresses the
/// person (`id`, `meta` and `schemas` are the server's and never in a stored document).
const ALWAYS_KEPT: &[&str] = &["userName", "externalId", "active", "id", "meta", "schemas"];

/// One kept attribute: its schema (the core User schema or an extension), the attribute,
/// and, when only part of a complex attribute is kept, that sub-attribute.
#[derive(Debug, Clone, Copy)]
pub struct KeptPath {
    pub schema: &'static SchemaDef,
    pub attr: &'static AttrDef,
    pub sub: Option<&'static AttrDef>,
}

impl KeptPath {
    /// Parse `attr`, `attr.sub`, or either prefixed by a schema URN and `:`, against the
    /// User resource type's schemas.
    pub fn parse(path: &str) -> Result<KeptPath, String> {
        let (schema, rest) = match USER_RESOURCE.schemas().find(|s| {
            path.len() > s.id.len()
                && path.is_char_boundary(s.id.len())
                && path[..s.id.len()].eq_ignore_ascii_case(s.id)
                && path[s.id.len()..].starts_with(':')
        }) {
            Some(s) => (s, &path[s.id.len() + 1..]),
            None => (USER_RESOURCE.schema, path),
        };
        let (name, sub) = match rest.split_once('.') {
            Some((name, sub)) => (name, Some(sub)),
            None => (rest, None),
        };
        let attr = schema
            .attribute(name)
            .ok_or_else(|| format!("\"{path}\" is not a User attribute"))?;
        let sub = match sub {
            None => None,
            Some(sub) => Some(attr.sub_attribute(sub).ok_or_else(|| {
                format!("\"{path}\": {} has no sub-attribute \"{sub}\"", attr.name)
            })?),
        };
        Ok(KeptPath { schema, attr, sub })
    }

    /// The path spelled as the schema spells it.
    pub fn canonical(&self) -> String {
        let prefix = if std::ptr::eq(self.schema, USER_RESOURCE.schema) {
            String::new()
        } else {
            format!("{}:", self.schema.id)
        };
        match self.sub {
            Some(sub) => format!("{prefix}{}.{}", self.attr.name, sub.name),
            None => format!("{prefix}{}", self.attr.name),
        }
    }
}

/// The parsed form of a list of kept paths (those that do not parse, which loading refuses,
/// are left out).
pub fn parse_all(paths: &[String]) -> Vec<KeptPath> {
    paths
        .iter()
        .filter_map(|p| KeptPath::parse(p).ok())
        .collect()
}

/// What of `attr` (in `schema`) is kept: `None` nothing, `Some(None)` all of it,
/// `Some(Some(subs))` only these sub-attributes.
fn kept_of(kept: &[KeptPath], schema: &SchemaDef, attr: &str) -> Option<Option<Vec<&'static str>>> {
    let core = std::ptr::eq(schema, USER_RESOURCE.schema);
    if core && ALWAYS_KEPT.iter().any(|a| a.eq_ignore_ascii_case(attr)) {
        return Some(None);
    }
    let mine: Vec<&KeptPath> = kept
        .iter()
        .filter(|k| std::ptr::eq(k.schema, schema) && k.attr.name.eq_ignore_ascii_case(attr))
        .collect();
    if mine.is_empty() {
        return None;
    }
    if mine.iter().any(|k| k.sub.is_none()) {
        return Some(None);
    }
    Some(Some(
        mine.iter().filter_map(|k| k.sub.map(|s| s.name)).collect(),
    ))
}

/// Keep only `subs` of a complex value (or of each value of a multi-valued one); `false`
/// when nothing is left of it.
fn retain_subs(value: &mut Value, subs: &[&str]) -> bool {
    let keep = |obj: &mut Map<String, Value>| {
        obj.retain(|k, _| subs.iter().any(|s| s.eq_ignore_ascii_case(k)));
        !obj.is_empty()
    };
    match value {
        Value::Object(obj) => keep(obj),
        Value::Array(items) => {
            items.retain_mut(|item| match item {
                Value::Object(obj) => keep(obj),
                _ => false,
            });
            !items.is_empty()
        }
        _ => false,
    }
}

/// Drop from the attributes of one schema what is not kept.
fn minimise_attributes(obj: &mut Map<String, Value>, schema: &SchemaDef, kept: &[KeptPath]) {
    obj.retain(|key, value| match kept_of(kept, schema, key) {
        None => false,
        Some(None) => true,
        Some(Some(subs)) => retain_subs(value, &subs),
    });
}

/// Drop from a normalised User document every attribute `kept` does not list (the
/// identifying ones stay), extensions included; an extension left empty goes.
pub fn minimise(doc: &mut Map<String, Value>, kept: &[KeptPath]) {
    let extensions: Vec<&'static SchemaDef> = USER_RESOURCE.schemas().skip(1).collect();
    doc.retain(|key, value| {
        if let Some(ext) = extensions.iter().find(|s| s.id.eq_ignore_ascii_case(key)) {
            return match value {
                Value::Object(obj) => {
                    minimise_attributes(obj, ext, kept);
                    !obj.is_empty()
                }
                _ => false,
            };
        }
        match kept_of(kept, USER_RESOURCE.schema, key) {
            None => false,
            Some(None) => true,
            Some(Some(subs)) => retain_subs(value, &subs),
        }
    });
}

/// A schema resource (`/Schemas`, as [`SchemaDef::to_json`] renders it) narrowed to what is
/// kept: the attributes not kept are left out, and of a partly kept complex attribute only
/// its kept sub-attributes are listed.
pub fn narrow_schema_json(mut json: Value, schema: &SchemaDef, kept: &[KeptPath]) -> Value {
    if let Some(Value::Array(attrs)) = json.get_mut("attributes") {
        attrs.retain_mut(|attr| {
            let name = attr.get("name").and_then(Value::as_str).unwrap_or_default();
            match kept_of(kept, schema, name) {
                None => false,
                Some(None) => true,
                Some(Some(subs)) => {
                    if let Some(Value::Array(sub_attrs)) = attr.get_mut("subAttributes") {
                        sub_attrs.retain(|s| {
                            let n = s.get("name").and_then(Value::as_str).unwrap_or_default();
                            subs.iter().any(|k| k.eq_ignore_ascii_case(n))
                        });
                    }
                    true
                }
            }
        });
    }
    json
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scim_core::schema::ENTERPRISE_USER_SCHEMA;

    fn kept(paths: &[&str]) -> Vec<KeptPath> {
        paths.iter().map(|p| KeptPath::parse(p).unwrap()).collect()
    }

    #[test]
    fn parses_core_sub_and_extension_paths_case_insensitively() {
        assert_eq!(
            KeptPath::parse("NAME.givenname").unwrap().canonical(),
            "name.givenName"
        );
        let ext = format!("{ENTERPRISE_USER_SCHEMA}:department");
        assert_eq!(KeptPath::parse(&ext).unwrap().canonical(), ext);
        assert!(KeptPath::parse("shoeSize")
            .unwrap_err()
            .contains("shoeSize"));
        assert!(KeptPath::parse("name.nickname").is_err());
    }

    #[test]
    fn drops_what_is_not_kept_and_keeps_identifiers() {
        let mut doc = json!({
            "userName": "ann", "externalId": "e1", "active": true,
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "title": "Nurse",
            "emails": [{"value": "ann@acme.example", "primary": true}],
            ENTERPRISE_USER_SCHEMA: {"department": "Cardiology", "employeeNumber": "7"},
        })
        .as_object()
        .cloned()
        .unwrap();
        let dept = format!("{ENTERPRISE_USER_SCHEMA}:department");
        minimise(&mut doc, &kept(&["name.givenName", "emails", &dept]));
        assert_eq!(
            Value::Object(doc),
            json!({
                "userName": "ann", "externalId": "e1", "active": true,
                "name": {"givenName": "Ann"},
                "emails": [{"value": "ann@acme.example", "primary": true}],
                ENTERPRISE_USER_SCHEMA: {"department": "Cardiology"},
            })
        );
    }
}
