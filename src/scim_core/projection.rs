//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9): which attributes a
//! response carries, honouring each attribute's `returned` characteristic (RFC 7643 §2.2).

use serde_json::{Map, Value};

use super::schema::{AttrDef, ResourceTypeDef, Returned, SchemaDef};

/// A requested attribute: its schema, attribute and optional sub-attribute.
#[derive(Debug, Clone)]
struct Selector {
    schema: &'static SchemaDef,
    attr: &'static AttrDef,
    sub: Option<&'static AttrDef>,
}

/// Parsed projection parameters for one resource type.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    include: Option<Vec<Selector>>,
    exclude: Vec<Selector>,
}

/// Parse a comma-separated attribute list; unknown names are ignored (they select nothing).
fn parse_list(list: &str, rt: &'static ResourceTypeDef) -> Vec<Selector> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter_map(|item| {
            let (uri, rest) = if item.to_ascii_lowercase().starts_with("urn:") {
                match item.rsplit_once(':') {
                    Some((u, r)) => (Some(u), r),
                    None => (None, item),
                }
            } else {
                (None, item)
            };
            // A bare extension URN selects the whole extension.
            if let Some(ext) = rt.extension(item) {
                return Some(
                    ext.attributes
                        .iter()
                        .map(move |a| Selector {
                            schema: ext,
                            attr: a,
                            sub: None,
                        })
                        .collect::<Vec<_>>(),
                );
            }
            let (name, sub) = match rest.split_once('.') {
                Some((n, s)) => (n, Some(s)),
                None => (rest, None),
            };
            let (schema, attr) = rt.resolve(uri, name)?;
            let sub = match sub {
                Some(s) => Some(attr.sub_attribute(s)?),
                None => None,
            };
            Some(vec![Selector { schema, attr, sub }])
        })
        .flatten()
        .collect()
}

impl Projection {
    pub fn new(
        attributes: Option<&str>,
        excluded: Option<&str>,
        rt: &'static ResourceTypeDef,
    ) -> Self {
        Projection {
            include: attributes.map(|a| parse_list(a, rt)),
            exclude: excluded.map(|e| parse_list(e, rt)).unwrap_or_default(),
        }
    }

    /// True when `attr` of `schema` will appear in the output (lets callers skip loading it).
    pub fn wants(&self, schema: &SchemaDef, attr: &str) -> bool {
        let hit = |sels: &[Selector]| {
            sels.iter()
                .any(|s| s.schema.id == schema.id && s.attr.name == attr)
        };
        match &self.include {
            Some(list) => hit(list),
            None => !self
                .exclude
                .iter()
                .any(|s| s.schema.id == schema.id && s.attr.name == attr && s.sub.is_none()),
        }
    }

    /// Apply to a rendered resource (with `schemas`, `id`, `meta`).
    pub fn apply(&self, resource: Value, rt: &'static ResourceTypeDef) -> Value {
        let Value::Object(mut obj) = resource else {
            return resource;
        };
        let mut out = Map::new();
        if let Some(v) = obj.remove("schemas") {
            out.insert("schemas".into(), v);
        }
        for schema in rt.schemas() {
            let is_core = std::ptr::eq(schema, rt.schema);
            let source = if is_core {
                Some(&mut obj)
            } else {
                obj.get_mut(schema.id).and_then(Value::as_object_mut)
            };
            let Some(source) = source else { continue };
            let mut kept = Map::new();
            for attr in schema.attributes {
                let Some(value) = source.remove(attr.name) else {
                    continue;
                };
                if let Some(v) = self.project_attr(schema, attr, value) {
                    kept.insert(attr.name.to_string(), v);
                }
            }
            if is_core {
                for (k, v) in kept {
                    out.insert(k, v);
                }
            } else if !kept.is_empty() {
                out.insert(schema.id.to_string(), Value::Object(kept));
            }
        }
        // `schemas` lists only the extensions that remain in the response.
        if let Some(Value::Array(list)) = out.get("schemas") {
            let kept: Vec<Value> = list
                .iter()
                .filter(|s| {
                    s.as_str()
                        .is_some_and(|id| id == rt.schema.id || out.contains_key(id))
                })
                .cloned()
                .collect();
            out.insert("schemas".into(), Value::Array(kept));
        }
        Value::Object(out)
    }

    fn project_attr(
        &self,
        schema: &SchemaDef,
        attr: &'static AttrDef,
        value: Value,
    ) -> Option<Value> {
        match attr.returned {
            Returned::Always => return Some(value),
            Returned::Never => return None,
            Returned::Default | Returned::Request => {}
        }
        let matching = |sels: &[Selector]| -> Vec<Option<&'static AttrDef>> {
            sels.iter()
                .filter(|s| s.schema.id == schema.id && std::ptr::eq(s.attr, attr))
                .map(|s| s.sub)
                .collect()
        };
        match &self.include {
            Some(list) => {
                let subs = matching(list);
                if subs.is_empty() {
                    return None;
                }
                if subs.iter().any(Option::is_none) {
                    return Some(value);
                }
                let names: Vec<&str> = subs.iter().flatten().map(|s| s.name).collect();
                retain_subs(value, attr, |n| names.contains(&n))
            }
            None => {
                if attr.returned == Returned::Request {
                    return None;
                }
                let subs = matching(&self.exclude);
                if subs.iter().any(Option::is_none) {
                    return None;
                }
                let names: Vec<&str> = subs.iter().flatten().map(|s| s.name).collect();
                if names.is_empty() {
                    return Some(value);
                }
                retain_subs(value, attr, |n| !names.contains(&n))
            }
        }
    }
}

/// Keep only the chosen sub-attributes of a complex value (or of each element); sub-attributes
/// returned `always` stay.
fn retain_subs(value: Value, attr: &'static AttrDef, keep: impl Fn(&str) -> bool) -> Option<Value> {
    let filter_obj = |v: Value| -> Option<Value> {
        let Value::Object(m) = v else { return Some(v) };
        let m: Map<String, Value> = m
            .into_iter()
            .filter(|(k, _)| {
                attr.sub_attribute(k)
                    .is_some_and(|s| s.returned == Returned::Always || keep(s.name))
            })
            .collect();
        (!m.is_empty()).then_some(Value::Object(m))
    };
    match value {
        Value::Array(items) => {
            let items: Vec<Value> = items.into_iter().filter_map(filter_obj).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        other => filter_obj(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim_core::schema::{ENTERPRISE_USER_SCHEMA, USER_RESOURCE};
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "id": "1",
            "userName": "ann",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": "a@x", "type": "work"}],
            "password": "never",
            ENTERPRISE_USER_SCHEMA: {"department": "Cardio", "employeeNumber": "7"},
            "meta": {"resourceType": "User"}
        })
    }

    #[test]
    fn attributes_keep_only_requested_and_always() {
        let p = Projection::new(
            Some("userName,name.familyName,emails.value"),
            None,
            &USER_RESOURCE,
        );
        let out = p.apply(user(), &USER_RESOURCE);
        assert_eq!(
            out,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "1", "userName": "ann",
                   "name": {"familyName": "Lee"}, "emails": [{"value": "a@x"}]})
        );
    }

    #[test]
    fn excluded_attributes_drop_what_is_named_and_never_returned() {
        let p = Projection::new(None, Some("emails,name.givenName,meta,id"), &USER_RESOURCE);
        let out = p.apply(user(), &USER_RESOURCE);
        assert!(out.get("emails").is_none());
        assert!(out.get("meta").is_none());
        assert!(out.get("password").is_none());
        assert_eq!(out["id"], "1", "id is returned always");
        assert_eq!(out["name"], json!({"familyName": "Lee"}));
        assert_eq!(out[ENTERPRISE_USER_SCHEMA]["department"], "Cardio");
    }

    #[test]
    fn extension_attributes_by_urn() {
        let p = Projection::new(
            Some(&format!("{ENTERPRISE_USER_SCHEMA}:department")),
            None,
            &USER_RESOURCE,
        );
        let out = p.apply(user(), &USER_RESOURCE);
        assert_eq!(out[ENTERPRISE_USER_SCHEMA], json!({"department": "Cardio"}));
        assert!(out.get("userName").is_none());
    }
}
