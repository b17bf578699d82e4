//! readOnly, immutable and required attributes.

use super::*;

#[test]
fn read_only_attributes_cannot_be_targeted() {
    for op in ["add", "replace", "remove"] {
        for path in [
            "id",
            "meta",
            "meta.lastModified",
            "groups",
            "groups[value eq \"g-1\"]",
            format!("{ENT}:manager.displayName").as_str(),
        ] {
            let r = patch_user(json!([{"op": op, "path": path, "value": "x"}]));
            assert_eq!(scim_type(r), ScimType::Mutability, "{op} {path}");
        }
    }
    let r = patch_group(
        json!([{"op": "replace", "path": "members[value eq \"u-1\"].display", "value": "x"}]),
    );
    assert_eq!(scim_type(r), ScimType::Mutability);
}

#[test]
fn id_and_meta_in_pathless_values_are_mutability_errors() {
    for value in [
        json!({"id": "other", "title": "x"}),
        json!({"meta": {"version": "W/\"1\""}}),
        json!({"groups": [{"value": "g-1"}]}),
    ] {
        for op in ["add", "replace"] {
            let r = patch_user(json!([{"op": op, "value": value}]));
            assert_eq!(scim_type(r), ScimType::Mutability, "{op} {value}");
        }
    }
}

#[test]
fn okta_group_rename_with_own_id_is_accepted_with_apply_patch_with_id() {
    let ops = request(
        json!([{"op": "replace", "value": {"id": "grp-1", "displayName": "Ward 8 nurses"}}]),
    );
    let out = apply_patch_with_id(&group(), &ops, &GROUP_RESOURCE, "grp-1").unwrap();
    assert_eq!(out["displayName"], "Ward 8 nurses");
    let err = apply_patch_with_id(&group(), &ops, &GROUP_RESOURCE, "grp-2").unwrap_err();
    assert_eq!(err.scim_type, Some(ScimType::Mutability));
    let err = apply_patch(&group(), &ops, &GROUP_RESOURCE).unwrap_err();
    assert_eq!(err.scim_type, Some(ScimType::Mutability));
}

#[test]
fn immutable_sub_attributes_may_be_set_but_not_changed() {
    // Adding new members (with their immutable `value`) is fine.
    patch_group(
        json!([{"op": "add", "path": "members", "value": [{"value": "u-7", "type": "User"}]}]),
    )
    .unwrap();
    // Setting an immutable sub-attribute that has no value yet is fine; the same value too.
    patch_group(json!([{"op": "add", "path": "members[value eq \"u-3\"].type", "value": "User"}]))
        .unwrap();
    patch_group(
        json!([{"op": "replace", "path": "members[value eq \"u-2\"].type", "value": "User"}]),
    )
    .unwrap();
    // Changing or removing a set immutable sub-attribute is not.
    for op in [
        json!({"op": "replace", "path": "members[value eq \"u-1\"].value", "value": "u-9"}),
        json!({"op": "add", "path": "members[value eq \"u-2\"].type", "value": "Group"}),
        json!({"op": "replace", "path": "members[value eq \"u-2\"]", "value": {"value": "u-8"}}),
        json!({"op": "replace", "path": "members[value eq \"u-2\"]", "value": {"value": "u-2"}}),
        json!({"op": "remove", "path": "members.value"}),
        json!({"op": "remove", "path": "members[value eq \"u-2\"].type"}),
    ] {
        let r = patch_group(json!([op.clone()]));
        assert_eq!(scim_type(r), ScimType::Mutability, "{op}");
    }
    // Re-adding an existing member keeps its immutable sub-attributes.
    let out = patch_group(json!([{"op": "add", "path": "members",
        "value": [{"value": "u-2", "type": "Group", "$ref": "../Users/u-2"}]}]))
    .unwrap();
    assert_eq!(
        out["members"][1],
        json!({"value": "u-2", "type": "User", "$ref": "../Users/u-2"})
    );
    // Removing whole members and replacing the whole list stay allowed.
    patch_group(json!([{"op": "remove", "path": "members[value eq \"u-2\"]"}])).unwrap();
    patch_group(json!([{"op": "replace", "path": "members", "value": [{"value": "u-5"}]}]))
        .unwrap();
}
