//! Path resolution: case, canonical output, and invalid or misused paths.

use super::*;
use std::collections::HashSet;

#[test]
fn paths_are_case_insensitive_and_output_is_canonical() {
    let out = patch_user(json!([
        {"op": "replace", "path": "Emails[Type eq \"WORK\"].Value", "value": "a@acme.example"},
        {"op": "replace", "path": "NAME.givenname", "value": "Anne"},
        {"op": "add", "path": "NICKNAME", "value": "Annie"},
        {"op": "add", "path": "URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER:COSTCENTER", "value": "C"},
        {"op": "add", "path": "Emails", "value": [{"Value": "b@acme.example", "TYPE": "other"}]}
    ]))
    .unwrap();
    assert_eq!(emails(&out)[0]["value"], "a@acme.example");
    assert_eq!(out["name"]["givenName"], "Anne");
    assert_eq!(out["nickName"], "Annie");
    assert_eq!(out[ENT]["costCenter"], "C");
    assert_eq!(
        emails(&out)[2],
        json!({"value": "b@acme.example", "type": "other"})
    );
    let keys: Vec<String> = out.keys().map(|k| k.to_lowercase()).collect();
    let unique: HashSet<&String> = keys.iter().collect();
    assert_eq!(
        keys.len(),
        unique.len(),
        "no keys differing only in case: {keys:?}"
    );
}

#[test]
fn filters_honour_case_exact() {
    // emails.type is not caseExact: "WORK" matched above. members.value is caseExact.
    let r = patch_group(
        json!([{"op": "replace", "path": "members[value eq \"U-1\"].type", "value": "User"}]),
    );
    assert_eq!(scim_type(r), ScimType::NoTarget);
    let out = patch_group(
        json!([{"op": "add", "path": "members[value eq \"u-1\"].type", "value": "User"}]),
    )
    .unwrap();
    assert_eq!(out["members"][0], json!({"value": "u-1", "type": "User"}));
}

#[test]
fn unknown_attributes_in_paths_are_invalid_path() {
    for path in [
        "nickname2",
        "name.nickName",
        "emails[type eq \"work\"].label",
        "emails[kind eq \"work\"].value",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:shoeSize",
        "urn:example:unknown:2.0:User:department",
        "members",
    ] {
        let r = patch_user(json!([{"op": "replace", "path": path, "value": "x"}]));
        let err = r.unwrap_err();
        assert_eq!(err.scim_type, Some(ScimType::InvalidPath), "{path}: {err}");
        assert!(err.detail.contains(path), "{path}: {err}");
    }
}

#[test]
fn misused_paths_are_invalid_path() {
    for path in [
        "title.value",
        "name[givenName eq \"Ann\"]",
        "title[value eq \"x\"]",
    ] {
        let r = patch_user(json!([{"op": "replace", "path": path, "value": "x"}]));
        assert_eq!(scim_type(r), ScimType::InvalidPath, "{path}");
    }
}

#[test]
fn malformed_paths_are_invalid_path_with_position() {
    for (path, position) in [
        ("emails[type eq \"work\"", "at position 6"),
        ("name..givenName", "at position 5"),
        ("emails[type eq \"work\"] .value", "at position 23"),
    ] {
        for op in ["add", "replace", "remove"] {
            let r = patch_user(json!([{"op": op, "path": path, "value": "x"}]));
            let err = r.unwrap_err();
            assert_eq!(err.scim_type, Some(ScimType::InvalidPath), "{path}: {err}");
            assert!(err.detail.contains(path), "{err}");
            assert!(err.detail.contains(position), "{err}");
        }
    }
}
