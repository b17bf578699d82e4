//! `remove` operations (RFC 7644 §3.5.2.2).

use super::*;

#[test]
fn remove_without_path_is_no_target() {
    let r = patch_user(json!([{"op": "remove", "value": {"title": "Nurse"}}]));
    assert_eq!(scim_type(r), ScimType::NoTarget);
}

#[test]
fn remove_with_paths() {
    let out = patch_user(json!([
        {"op": "remove", "path": "title"},
        {"op": "remove", "path": "name.formatted"},
        {"op": "remove", "path": "emails.type"},
        {"op": "remove", "path": "phoneNumbers"},
        {"op": "remove", "path": format!("{ENT}:manager.value")},
        {"op": "remove", "path": "nickName"}
    ]))
    .unwrap();
    assert!(!out.contains_key("title"));
    assert_eq!(
        out["name"],
        json!({"givenName": "Ann", "familyName": "Lee"})
    );
    assert_eq!(
        out["emails"],
        json!([{"value": "ann.lee@acme.example", "primary": true}, {"value": "ann@home.example"}])
    );
    assert!(!out.contains_key("phoneNumbers"));
    assert!(
        out[ENT].get("manager").is_none(),
        "an emptied complex attribute is unassigned"
    );
}

#[test]
fn remove_with_value_filters() {
    let out = patch_user(json!([{"op": "remove", "path": "emails[type eq \"home\"]"}])).unwrap();
    assert_eq!(emails(&out).len(), 1);
    let out =
        patch_user(json!([{"op": "remove", "path": "emails[type eq \"work\"].primary"}])).unwrap();
    assert_eq!(
        emails(&out)[0],
        json!({"value": "ann.lee@acme.example", "type": "work"})
    );
    // No match: a successful no-op.
    let out = patch_user(json!([{"op": "remove", "path": "emails[type eq \"other\"]"}])).unwrap();
    assert_eq!(out, user());
    // The last value removed leaves the attribute unassigned.
    let out =
        patch_user(json!([{"op": "remove", "path": "phoneNumbers[type eq \"work\"]"}])).unwrap();
    assert!(!out.contains_key("phoneNumbers"));
    let out = patch_group(json!([{"op": "Remove", "path": "members[value eq \"u-2\"]"}])).unwrap();
    assert_eq!(out["members"], json!([{"value": "u-1"}, {"value": "u-3"}]));
}

#[test]
fn remove_of_extension_attribute_and_whole_extension() {
    let out = patch_user(json!([
        {"op": "remove", "path": format!("{ENT}:department")},
        {"op": "remove", "path": format!("{ENT}:employeeNumber")},
        {"op": "remove", "path": format!("{ENT}:manager")}
    ]))
    .unwrap();
    assert!(!out.contains_key(ENT), "an emptied extension is dropped");
    let out = patch_user(json!([{"op": "remove", "path": ENT.to_lowercase()}])).unwrap();
    assert!(!out.contains_key(ENT));
}

#[test]
fn azure_remove_members_with_value_array() {
    let out = patch_group(json!([{"op": "Remove", "path": "members",
        "value": [{"value": "u-1"}, {"value": "u-3", "display": "ignored"}, {"value": "nobody"}]}]))
    .unwrap();
    assert_eq!(out["members"], json!([{"value": "u-2", "type": "User"}]));
    // members.value is caseExact: a different case names a different member.
    let out =
        patch_group(json!([{"op": "Remove", "path": "members", "value": [{"value": "U-2"}]}]))
            .unwrap();
    assert_eq!(out["members"].as_array().unwrap().len(), 3);
    // Without a value, all members go.
    let out = patch_group(json!([{"op": "Remove", "path": "members"}])).unwrap();
    assert!(!out.contains_key("members"));
    // A value without `value` matches on every given sub-attribute.
    let out =
        patch_user(json!([{"op": "remove", "path": "emails", "value": {"type": "HOME"}}])).unwrap();
    assert_eq!(emails(&out).len(), 1);
}

#[test]
fn remove_of_required_attribute_is_invalid_value() {
    let r = patch_user(json!([{"op": "remove", "path": "userName"}]));
    assert_eq!(scim_type(r), ScimType::InvalidValue);
    let r = patch_user(json!([{"op": "replace", "path": "USERNAME", "value": null}]));
    assert_eq!(scim_type(r), ScimType::InvalidValue);
    let r = patch_group(json!([{"op": "remove", "path": "displayName"}]));
    assert_eq!(scim_type(r), ScimType::InvalidValue);
}

#[test]
fn active_cannot_be_unassigned() {
    for ops in [
        json!([{"op": "remove", "path": "active"}]),
        json!([{"op": "Remove", "path": "urn:ietf:params:scim:schemas:core:2.0:User:Active"}]),
        json!([{"op": "replace", "path": "active", "value": null}]),
        json!([{"op": "replace", "value": {"active": null}}]),
    ] {
        assert_eq!(
            scim_type(patch_user(ops.clone())),
            ScimType::Mutability,
            "{ops}"
        );
    }
}

#[test]
fn remove_of_unassigned_attribute_is_a_no_op() {
    let out = patch_user(json!([
        {"op": "remove", "path": "nickName"},
        {"op": "remove", "path": "addresses[type eq \"work\"]"},
        {"op": "remove", "path": "ims.value"}
    ]))
    .unwrap();
    assert_eq!(out, user());
}
