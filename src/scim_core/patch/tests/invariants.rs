//! What holds across operations: one primary value, atomic requests, scale, and read-back of
//! every simple attribute.

use super::*;
use crate::scim_core::resource::parse_bool;

#[test]
fn primary_stays_unique() {
    let primaries = |doc: &Map<String, Value>| -> Vec<String> {
        emails(doc)
            .iter()
            .filter(|e| e.get("primary").and_then(parse_bool) == Some(true))
            .map(|e| e["value"].as_str().unwrap().to_string())
            .collect()
    };
    let out = patch_user(json!([{"op": "add", "path": "emails",
        "value": [{"value": "new@acme.example", "type": "other", "primary": "True"}]}]))
    .unwrap();
    assert_eq!(primaries(&out), ["new@acme.example"]);
    assert!(
        emails(&out)[0].get("primary").is_none(),
        "removed, not set false"
    );

    let out = patch_user(
        json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]),
    )
    .unwrap();
    assert_eq!(primaries(&out), ["ann@home.example"]);

    let out = patch_user(json!([{"op": "Add", "path": "emails[type eq \"other\"].value", "value": "o@x.example"},
                                {"op": "Add", "path": "emails[type eq \"other\"].primary", "value": "true"}]))
    .unwrap();
    assert_eq!(primaries(&out), ["o@x.example"]);

    let out = patch_user(json!([{"op": "replace", "value": {"emails": [
        {"value": "a@x.example", "primary": true}, {"value": "b@x.example"}]}}]))
    .unwrap();
    assert_eq!(primaries(&out), ["a@x.example"]);

    // Setting a non-primary element leaves the primary alone.
    let out = patch_user(
        json!([{"op": "add", "path": "emails[type eq \"home\"].display", "value": "H"}]),
    )
    .unwrap();
    assert_eq!(primaries(&out), ["ann.lee@acme.example"]);
}

// -- atomicity and scale --------------------------------------------------

#[test]
fn failing_operation_leaves_the_original_untouched() {
    let original = user();
    let snapshot = original.clone();
    let ops = request(json!([
        {"op": "replace", "path": "title", "value": "Changed"},
        {"op": "remove", "path": "emails[type eq \"home\"]"},
        {"op": "replace", "path": "emails[type eq \"fax\"].value", "value": "x"}
    ]));
    let err = apply_patch(&original, &ops, &USER_RESOURCE).unwrap_err();
    assert_eq!(err.scim_type, Some(ScimType::NoTarget));
    assert!(err.detail.starts_with("Operations[2]"), "{err}");
    assert_eq!(original, snapshot);
}

#[test]
fn adding_ten_thousand_members_is_fast() {
    let existing: Vec<Value> = (0..10_000)
        .map(|i| json!({"value": format!("u-{i}")}))
        .collect();
    let mut doc = group();
    doc.insert("members".into(), Value::Array(existing));
    let added: Vec<Value> = (5_000..15_000)
        .map(|i| json!({"value": format!("u-{i}"), "display": "x"}))
        .collect();
    let ops = request(json!([{"op": "Add", "path": "members", "value": added}]));
    let start = std::time::Instant::now();
    let out = apply_patch(&doc, &ops, &GROUP_RESOURCE).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(out["members"].as_array().unwrap().len(), 15_000);
    assert!(
        elapsed < std::time::Duration::from_secs(5),
        "took {elapsed:?}"
    );

    let removed: Vec<Value> = (0..10_000)
        .map(|i| json!({"value": format!("u-{i}")}))
        .collect();
    let ops = request(json!([{"op": "Remove", "path": "members", "value": removed}]));
    let out = apply_patch(&out, &ops, &GROUP_RESOURCE).unwrap();
    assert_eq!(out["members"].as_array().unwrap().len(), 5_000);
}

// -- property -------------------------------------------------------------

const SIMPLE_ATTRS: &[&str] = &[
    "userName",
    "externalId",
    "displayName",
    "nickName",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "profileUrl",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
    "name.givenName",
    "name.familyName",
];

fn read_back<'d>(doc: &'d Map<String, Value>, path: &str) -> Option<&'d Value> {
    match path.rsplit_once(':') {
        Some((urn, attr)) => doc.get(urn)?.get(attr),
        None => match path.split_once('.') {
            Some((attr, sub)) => doc.get(attr)?.get(sub),
            None => doc.get(path),
        },
    }
}

proptest::proptest! {
    #[test]
    fn replace_then_read_back(
        index in 0..SIMPLE_ATTRS.len(),
        upper in proptest::bool::ANY,
        // Control characters are refused by normalisation (single-line strings), as written.
        value in "[^\\x00-\\x1f\\x7f-\\x9f]{0,39}[a-zA-Z0-9]",
        pathless in proptest::bool::ANY,
    ) {
        let canonical = SIMPLE_ATTRS[index];
        let written = if upper { canonical.to_uppercase() } else { canonical.to_string() };
        let op = if pathless {
            json!({"op": "Replace", "value": {written: value}})
        } else {
            json!({"op": "Replace", "path": written, "value": value})
        };
        let out = apply_patch(&user(), &request(json!([op])), &USER_RESOURCE).unwrap();
        proptest::prop_assert_eq!(read_back(&out, canonical), Some(&Value::String(value.clone())));
        renormalise(&out, &USER_RESOURCE);
    }
}
