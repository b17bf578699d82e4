//! The SCIM documents we send and read (RFC 7643/7644): the user as the target should hold
//! it, PATCH operations and PUT bodies, filter literals, list pages and group members.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::connectors::GuestSnapshot;

pub(crate) const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub(super) const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub(crate) const SCIM_JSON: &str = "application/scim+json";

/// One page of a ListResponse (RFC 7644 §3.4.2).
pub(super) struct ListPage {
    pub resources: Vec<Value>,
    pub total: Option<usize>,
}

impl ListPage {
    pub(super) fn parse(page: &Value) -> Self {
        ListPage {
            resources: page["Resources"].as_array().cloned().unwrap_or_default(),
            total: page["totalResults"]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok()),
        }
    }
}

/// The user as the target should hold it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DesiredUser {
    pub user_name: String,
    pub external_id: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub active: bool,
}

pub(super) fn non_blank(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl DesiredUser {
    pub(crate) fn from_snapshot(guest: &GuestSnapshot, active: bool) -> Self {
        let email = non_blank(&guest.email);
        DesiredUser {
            user_name: email.clone().unwrap_or_else(|| guest.user_name.clone()),
            external_id: guest.guest_id.clone(),
            display_name: non_blank(&guest.display_name),
            given_name: non_blank(&guest.given_name),
            family_name: non_blank(&guest.family_name),
            email,
            active,
        }
    }

    /// The `POST /Users` body.
    pub(crate) fn resource(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("schemas".into(), json!([USER_SCHEMA]));
        doc.insert("userName".into(), json!(self.user_name));
        doc.insert("externalId".into(), json!(self.external_id));
        if let Some(display) = &self.display_name {
            doc.insert("displayName".into(), json!(display));
        }
        let mut name = Map::new();
        if let Some(given) = &self.given_name {
            name.insert("givenName".into(), json!(given));
        }
        if let Some(family) = &self.family_name {
            name.insert("familyName".into(), json!(family));
        }
        if !name.is_empty() {
            doc.insert("name".into(), Value::Object(name));
        }
        if let Some(email) = &self.email {
            doc.insert("emails".into(), emails_value(email));
        }
        doc.insert("active".into(), json!(self.active));
        Value::Object(doc)
    }

    /// PATCH operations (RFC 7644 §3.5.2) turning `existing` into this user; empty when
    /// nothing we manage differs. userName and emails compare case-insensitively (RFC 7643
    /// §4.1.1, §4.1.2: caseExact false).
    pub(crate) fn patch_ops(&self, existing: &Value) -> Vec<Value> {
        let mut ops = Vec::new();
        let same_user_name = existing["userName"]
            .as_str()
            .is_some_and(|u| u.to_lowercase() == self.user_name.to_lowercase());
        if !same_user_name {
            ops.push(replace_op("userName", json!(self.user_name)));
        }
        if existing["externalId"].as_str() != Some(self.external_id.as_str()) {
            ops.push(replace_op("externalId", json!(self.external_id)));
        }
        optional_op(
            &mut ops,
            "displayName",
            &existing["displayName"],
            &self.display_name,
        );
        optional_op(
            &mut ops,
            "name.givenName",
            &existing["name"]["givenName"],
            &self.given_name,
        );
        optional_op(
            &mut ops,
            "name.familyName",
            &existing["name"]["familyName"],
            &self.family_name,
        );
        match (primary_email(existing), &self.email) {
            (Some(have), Some(want)) if have.to_lowercase() == want.to_lowercase() => {}
            (_, Some(want)) => ops.push(replace_op("emails", emails_value(want))),
            (Some(_), None) => ops.push(json!({ "op": "remove", "path": "emails" })),
            (None, None) => {}
        }
        if existing["active"].as_bool().unwrap_or(true) != self.active {
            ops.push(replace_op("active", json!(self.active)));
        }
        ops
    }

    /// The `PUT /Users/{id}` body: `existing` (less its read-only parts) with what we manage
    /// replaced, so attributes set by others survive.
    pub(crate) fn apply(&self, existing: &Value) -> Value {
        let mut doc = existing.as_object().cloned().unwrap_or_default();
        strip_read_only(&mut doc);
        if !doc.contains_key("schemas") {
            doc.insert("schemas".into(), json!([USER_SCHEMA]));
        }
        doc.insert("userName".into(), json!(self.user_name));
        doc.insert("externalId".into(), json!(self.external_id));
        set_or_remove(&mut doc, "displayName", &self.display_name);
        let mut name = doc
            .get("name")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        set_or_remove(&mut name, "givenName", &self.given_name);
        set_or_remove(&mut name, "familyName", &self.family_name);
        if name.is_empty() {
            doc.remove("name");
        } else {
            doc.insert("name".into(), Value::Object(name));
        }
        match (primary_email(existing), &self.email) {
            (Some(have), Some(want)) if have.to_lowercase() == want.to_lowercase() => {}
            (_, Some(want)) => {
                doc.insert("emails".into(), emails_value(want));
            }
            (_, None) => {
                doc.remove("emails");
            }
        }
        doc.insert("active".into(), json!(self.active));
        Value::Object(doc)
    }
}

/// Which memberships to add (group names) and remove (name, id).
#[derive(Debug, PartialEq)]
pub(crate) struct MembershipPlan {
    pub add: Vec<String>,
    pub remove: Vec<(String, String)>,
}

impl MembershipPlan {
    pub(crate) fn new(wanted: &BTreeSet<String>, current: &BTreeMap<String, String>) -> Self {
        MembershipPlan {
            add: wanted
                .iter()
                .filter(|name| !current.contains_key(*name))
                .cloned()
                .collect(),
            remove: current
                .iter()
                .filter(|(name, _)| !wanted.contains(*name))
                .map(|(name, id)| (name.clone(), id.clone()))
                .collect(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// The group names a guest's grants call for: `{prefix}{app}:{role}`.
pub(crate) fn group_names(prefix: &str, guest: &GuestSnapshot) -> BTreeSet<String> {
    guest
        .grant_keys()
        .into_iter()
        .map(|key| format!("{prefix}{key}"))
        .collect()
}

/// A filter comparison value: a JSON string (RFC 7644 §3.4.2.2), quotes and backslashes
/// escaped.
pub(crate) fn filter_literal(value: &str) -> String {
    Value::String(value.to_string()).to_string()
}

pub(super) fn patch_request(ops: Vec<Value>) -> Value {
    json!({ "schemas": [PATCH_SCHEMA], "Operations": ops })
}

pub(super) fn replace_op(path: &str, value: Value) -> Value {
    json!({ "op": "replace", "path": path, "value": value })
}

pub(super) fn add_member_op(user_id: &str) -> Value {
    json!({ "op": "add", "path": "members", "value": [{ "value": user_id }] })
}

pub(super) fn remove_member_op(user_id: &str) -> Value {
    json!({ "op": "remove", "path": format!("members[value eq {}]", filter_literal(user_id)) })
}

/// Replace when `want` differs, remove when we want none and the target has one.
pub(super) fn optional_op(ops: &mut Vec<Value>, path: &str, have: &Value, want: &Option<String>) {
    match (have.as_str(), want) {
        (Some(have), Some(want)) if have == want => {}
        (_, Some(want)) => ops.push(replace_op(path, json!(want))),
        (Some(_), None) => ops.push(json!({ "op": "remove", "path": path })),
        (None, None) => {}
    }
}

pub(super) fn set_or_remove(doc: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    match value {
        Some(value) => {
            doc.insert(key.to_string(), json!(value));
        }
        None => {
            doc.remove(key);
        }
    }
}

pub(super) fn emails_value(email: &str) -> Value {
    json!([{ "value": email, "type": "work", "primary": true }])
}

/// The primary email, else the first.
pub(super) fn primary_email(user: &Value) -> Option<&str> {
    let emails = user["emails"].as_array()?;
    emails
        .iter()
        .find(|e| e["primary"].as_bool() == Some(true))
        .or_else(|| emails.first())
        .and_then(|e| e["value"].as_str())
}

/// Attributes a client does not send back (RFC 7643 §2.2 mutability readOnly).
pub(super) fn strip_read_only(doc: &mut Map<String, Value>) {
    doc.remove("meta");
    doc.remove("groups");
}

pub(super) fn members(group: &Value) -> impl Iterator<Item = &str> {
    group["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["value"].as_str())
}

/// The `PUT /Groups/{id}` body of `group` with `user_id` added or removed.
pub(super) fn group_with_member(group: &Value, user_id: &str, add: bool) -> Value {
    let mut doc = group.as_object().cloned().unwrap_or_default();
    strip_read_only(&mut doc);
    let mut list: Vec<Value> = doc
        .get("members")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["value"].as_str() != Some(user_id))
        .map(|m| json!({ "value": m["value"] }))
        .collect();
    if add {
        list.push(json!({ "value": user_id }));
    }
    doc.insert("members".into(), Value::Array(list));
    Value::Object(doc)
}
