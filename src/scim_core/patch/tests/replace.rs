//! `replace` operations (RFC 7644 §3.5.2.3).

use super::*;

#[test]
fn entra_and_okta_deactivation() {
    let out = patch_user(json!([{"op": "Replace", "value": {"active": false}}])).unwrap();
    assert_eq!(out["active"], false);
    let out = patch_user(json!([{"op": "Replace", "value": {"active": "False"}}])).unwrap();
    assert_eq!(
        out["active"], "False",
        "left as sent; re-normalisation converts it"
    );
    assert_eq!(renormalise(&out, &USER_RESOURCE)["active"], false);
    let out = patch_user(json!([{"op": "replace", "path": "active", "value": false}])).unwrap();
    assert_eq!(out["active"], false);
    let out = patch_user(json!([{"op": "Replace", "path": "Active", "value": "True"}])).unwrap();
    assert_eq!(renormalise(&out, &USER_RESOURCE)["active"], true);
}

#[test]
fn replace_without_path_replaces_each_attribute_and_merges_complex_ones() {
    let out = patch_user(json!([{"op": "replace", "value": {
        "displayName": "Ann B. Lee",
        "name": {"familyName": "Barker"},
        "emails": [{"value": "ann.barker@acme.example", "type": "work"}],
        ENT: {"department": "Oncology"}
    }}]))
    .unwrap();
    assert_eq!(out["displayName"], "Ann B. Lee");
    assert_eq!(
        out["name"],
        json!({"givenName": "Ann", "familyName": "Barker", "formatted": "Ann Lee"})
    );
    assert_eq!(
        out["emails"],
        json!([{"value": "ann.barker@acme.example", "type": "work"}])
    );
    assert_eq!(out[ENT]["department"], "Oncology");
    assert_eq!(out[ENT]["employeeNumber"], "42");
}

#[test]
fn replace_with_paths() {
    let out = patch_user(json!([
        {"op": "replace", "path": "userName", "value": "ann.barker@acme.example"},
        {"op": "replace", "path": "name.familyName", "value": "Barker"},
        {"op": "replace", "path": format!("{ENT}:department"), "value": "ICU"},
        {"op": "replace", "path": format!("{ENT}:manager.value"), "value": "mgr-3"},
        {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "ann.barker@acme.example"},
        {"op": "replace", "path": "phoneNumbers[type eq \"work\"]", "value": {"value": "+1 555 0111", "type": "work"}},
        {"op": "replace", "path": "nickName", "value": "Annie"}
    ]))
    .unwrap();
    assert_eq!(out["userName"], "ann.barker@acme.example");
    assert_eq!(out["name"]["familyName"], "Barker");
    assert_eq!(out["name"]["givenName"], "Ann");
    assert_eq!(out[ENT]["department"], "ICU");
    assert_eq!(out[ENT]["manager"]["value"], "mgr-3");
    assert_eq!(
        emails(&out)[0],
        json!({"value": "ann.barker@acme.example", "type": "work", "primary": true})
    );
    assert_eq!(
        out["phoneNumbers"],
        json!([{"value": "+1 555 0111", "type": "work"}])
    );
    assert_eq!(
        out["nickName"], "Annie",
        "replace of an unassigned attribute adds it"
    );
}

#[test]
fn replace_of_multi_valued_without_filter_replaces_the_array() {
    let out =
        patch_group(json!([{"op": "replace", "path": "members", "value": [{"value": "u-9"}]}]))
            .unwrap();
    assert_eq!(out["members"], json!([{"value": "u-9"}]));
    let out = patch_group(json!([{"op": "replace", "path": "members", "value": []}])).unwrap();
    assert!(!out.contains_key("members"));
}

#[test]
fn replace_of_filtered_element_replaces_it_whole() {
    let out = patch_user(json!([{"op": "replace", "path": "emails[type eq \"home\"]",
        "value": {"value": "ann@new-home.example"}}]))
    .unwrap();
    assert_eq!(emails(&out)[1], json!({"value": "ann@new-home.example"}));
}

#[test]
fn replace_with_unmatched_filter_is_no_target() {
    for path in [
        "emails[type eq \"other\"].value",
        "emails[type eq \"other\"]",
    ] {
        let r = patch_user(json!([{"op": "replace", "path": path, "value": {"value": "x"}}]));
        assert_eq!(scim_type(r), ScimType::NoTarget, "{path}");
    }
    let mut doc = user();
    doc.shift_remove("emails");
    let r = apply_patch(
        &doc,
        &request(
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "x"}]),
        ),
        &USER_RESOURCE,
    );
    assert_eq!(scim_type(r), ScimType::NoTarget);
}

#[test]
fn replace_with_null_unassigns() {
    let out = patch_user(json!([
        {"op": "replace", "path": "title", "value": null},
        {"op": "replace", "path": "name.formatted", "value": null},
        {"op": "replace", "value": {ENT: {"department": null}}}
    ]))
    .unwrap();
    assert!(!out.contains_key("title"));
    assert!(out["name"].get("formatted").is_none());
    assert!(out[ENT].get("department").is_none());
}
