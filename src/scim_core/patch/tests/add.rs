//! `add` operations (RFC 7644 §3.5.2.1), with and without paths, as Entra ID and Okta send them.

use super::*;

#[test]
fn add_without_path_merges_attributes() {
    let out = patch_user(json!([{"op": "add", "value": {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "nickName": "Annie",
        "TITLE": "Head nurse",
        "name": {"middleName": "J", "GIVENNAME": "Anne"},
        "emails": [
            {"value": "ann.lee@acme.example", "type": "work", "primary": true},
            {"value": "ann@other.example", "type": "other"}
        ],
        "unknownVendorThing": 1
    }}]))
    .unwrap();
    assert_eq!(out["nickName"], "Annie");
    assert_eq!(out["title"], "Head nurse");
    assert!(!out.contains_key("TITLE") && !out.contains_key("schemas"));
    assert!(!out.contains_key("unknownVendorThing"));
    assert_eq!(
        out["name"],
        json!({"givenName": "Anne", "familyName": "Lee", "formatted": "Ann Lee", "middleName": "J"})
    );
    let e = emails(&out);
    assert_eq!(
        e.len(),
        3,
        "the duplicate work email is not appended: {e:?}"
    );
    assert_eq!(e[2]["value"], "ann@other.example");
}

#[test]
fn add_without_path_accepts_extension_objects_and_urn_qualified_keys() {
    let out = patch_user(json!([{"op": "Add", "value": {
        ENT: {"costCenter": "CC-9", "Manager": {"value": "mgr-2"}},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Oncology",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division": "Clinical",
        "urn:ietf:params:scim:schemas:core:2.0:User:nickName": "Annie",
        "name.honorificPrefix": "Dr"
    }}]))
    .unwrap();
    let ext = &out[ENT];
    assert_eq!(ext["costCenter"], "CC-9");
    assert_eq!(ext["department"], "Oncology");
    assert_eq!(ext["division"], "Clinical");
    assert_eq!(ext["employeeNumber"], "42");
    assert_eq!(ext["manager"], json!({"value": "mgr-2"}));
    assert_eq!(out["nickName"], "Annie");
    assert_eq!(out["name"]["honorificPrefix"], "Dr");
    assert_eq!(
        out.keys().filter(|k| k.eq_ignore_ascii_case(ENT)).count(),
        1
    );
}

#[test]
fn pathless_keys_may_be_value_paths_and_paths_may_be_extension_urns() {
    let out = patch_user(json!([
        {"op": "Replace", "value": {"emails[type eq \"work\"].value": "w@acme.example"}},
        {"op": "Add", "path": ENT, "value": {"costCenter": "CC-2", "department": "ICU"}}
    ]))
    .unwrap();
    assert_eq!(emails(&out)[0]["value"], "w@acme.example");
    assert_eq!(out[ENT]["costCenter"], "CC-2");
    assert_eq!(out[ENT]["department"], "ICU");
    assert_eq!(out[ENT]["employeeNumber"], "42");
    let r = patch_user(json!([{"op": "Add", "path": ENT, "value": "x"}]));
    assert_eq!(scim_type(r), ScimType::InvalidValue);
    let r = patch_user(json!([{"op": "Add", "value": ["title"]}]));
    assert_eq!(scim_type(r), ScimType::InvalidValue);
}

#[test]
fn add_creates_extension_object_when_missing() {
    let mut doc = user();
    doc.shift_remove(ENT);
    let out = apply_patch(
        &doc,
        &request(json!([{"op": "Add", "path": format!("{ENT}:employeeNumber"), "value": "77"}])),
        &USER_RESOURCE,
    )
    .unwrap();
    assert_eq!(out[ENT], json!({"employeeNumber": "77"}));
}

#[test]
fn add_with_paths() {
    let out = patch_user(json!([
        {"op": "add", "path": "nickName", "value": "Annie"},
        {"op": "add", "path": "title", "value": "Charge nurse"},
        {"op": "add", "path": "name.middleName", "value": "Jo"},
        {"op": "add", "path": format!("{ENT}:costCenter"), "value": "CC-1"},
        {"op": "add", "path": format!("{ENT}:manager.value"), "value": "mgr-9"},
        {"op": "add", "path": "emails[type eq \"home\"].display", "value": "Home"},
        {"op": "add", "path": "phoneNumbers", "value": {"value": "+1 555 0199", "type": "mobile"}}
    ]))
    .unwrap();
    assert_eq!(out["nickName"], "Annie");
    assert_eq!(out["title"], "Charge nurse");
    assert_eq!(out["name"]["middleName"], "Jo");
    assert_eq!(out["name"]["givenName"], "Ann");
    assert_eq!(out[ENT]["costCenter"], "CC-1");
    assert_eq!(out[ENT]["manager"]["value"], "mgr-9");
    assert_eq!(emails(&out)[1]["display"], "Home");
    assert_eq!(out["phoneNumbers"].as_array().unwrap().len(), 2);
}

#[test]
fn add_to_multi_valued_appends_arrays_and_single_elements_skipping_duplicates() {
    let out = patch_group(json!([
        {"op": "add", "path": "members", "value": [{"value": "u-4"}, {"value": "u-5"}, {"value": "u-4"}]},
        {"op": "add", "path": "members", "value": {"value": "u-6", "display": "Zed"}},
        {"op": "add", "path": "members", "value": [{"value": "u-1", "display": "Ann"}]}
    ]))
    .unwrap();
    let values: Vec<&str> = out["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["u-1", "u-2", "u-3", "u-4", "u-5", "u-6"]);
}

#[test]
fn add_of_an_existing_value_updates_that_element() {
    // Case-insensitive `value` (emails.value is not caseExact): same address.
    let out = patch_user(json!([{"op": "add", "path": "emails",
        "value": [{"value": "ANN@home.example", "primary": true}]}]))
    .unwrap();
    let e = emails(&out);
    assert_eq!(e.len(), 2);
    assert_eq!(e[1]["primary"], true);
    assert!(e[0].get("primary").is_none(), "primary moved: {e:?}");
}

#[test]
fn okta_add_of_empty_array_is_a_no_op() {
    let out = patch_group(json!([{"op": "add", "path": "members", "value": []}])).unwrap();
    assert_eq!(out, group());
    let out = patch_user(json!([{"op": "add", "path": "nickName", "value": null}])).unwrap();
    assert_eq!(out, user());
}

#[test]
fn entra_add_with_unmatched_eq_filter_creates_the_element() {
    let mut doc = user();
    doc.insert(
        "emails".into(),
        json!([{"value": "ann@home.example", "type": "home"}]),
    );
    let ops = request(json!([
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "ann.lee@acme.example"},
        {"op": "Add", "path": "phoneNumbers[type eq \"mobile\" and primary eq true].value", "value": "+1 555 0123"},
        {"op": "Add", "path": "addresses[type eq \"work\"]", "value": {"locality": "Leeds", "country": "GB"}}
    ]));
    let out = apply_patch(&doc, &ops, &USER_RESOURCE).unwrap();
    renormalise(&out, &USER_RESOURCE);
    assert_eq!(
        out["emails"],
        json!([{"value": "ann@home.example", "type": "home"}, {"type": "work", "value": "ann.lee@acme.example"}])
    );
    let phones = out["phoneNumbers"].as_array().unwrap();
    assert_eq!(
        phones[1],
        json!({"type": "mobile", "primary": true, "value": "+1 555 0123"})
    );
    assert!(phones[0].get("primary").is_none());
    assert_eq!(
        out["addresses"],
        json!([{"type": "work", "locality": "Leeds", "country": "GB"}])
    );

    // When an element matches, its sub-attribute is set instead.
    let again = apply_patch(&out, &ops[..1], &USER_RESOURCE).unwrap();
    assert_eq!(again["emails"], out["emails"]);
    let changed = apply_patch(
        &out,
        &request(json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "new@acme.example"}])),
        &USER_RESOURCE,
    )
    .unwrap();
    assert_eq!(changed["emails"][1]["value"], "new@acme.example");
    assert_eq!(changed["emails"].as_array().unwrap().len(), 2);
}

#[test]
fn add_with_unmatched_non_eq_filter_is_no_target() {
    for path in [
        "emails[type co \"wor\"].value",
        "emails[type eq \"work\" or type eq \"other\"].display",
        "emails[not (type eq \"home\")].display",
        "emails[display pr].value",
    ] {
        let mut doc = user();
        doc.insert(
            "emails".into(),
            json!([{"value": "ann@home.example", "type": "home"}]),
        );
        let r = apply_patch(
            &doc,
            &request(json!([{"op": "add", "path": path, "value": "x"}])),
            &USER_RESOURCE,
        );
        assert_eq!(scim_type(r), ScimType::NoTarget, "{path}");
    }
}

#[test]
fn entra_manager_as_plain_string_or_array() {
    let out =
        patch_user(json!([{"op": "Replace", "path": format!("{ENT}:manager"), "value": "mgr-7"}]))
            .unwrap();
    assert_eq!(out[ENT]["manager"], json!({"value": "mgr-7"}));
    let out = patch_user(json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        "value": [{"value": "mgr-8", "$ref": "../Users/mgr-8"}]}]))
    .unwrap();
    assert_eq!(
        out[ENT]["manager"],
        json!({"value": "mgr-8", "$ref": "../Users/mgr-8"})
    );
}
