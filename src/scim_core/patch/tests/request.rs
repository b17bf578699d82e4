//! Parsing PatchOp request bodies.

use super::*;

#[test]
fn parses_entra_request_shape() {
    let ops = parse_patch_request(
        &json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "ADD", "path": "emails[type eq \"work\"].value", "value": "x@y"},
                {"op": "Remove", "path": "members", "value": [{"value": "u-1"}]}
            ]
        }),
        10,
    )
    .unwrap();
    assert_eq!(ops.len(), 3);
    assert_eq!(ops[0].op, PatchOpKind::Replace);
    assert_eq!(ops[0].value, Some(json!("False")));
    assert_eq!(ops[1].op, PatchOpKind::Add);
    assert_eq!(ops[2].op, PatchOpKind::Remove);
    assert_eq!(ops[2].value, Some(json!([{"value": "u-1"}])));
}

#[test]
fn parses_lower_case_operations_key_and_empty_path() {
    let ops = parse_patch_request(
        &json!({"SCHEMAS": [PATCH_OP_SCHEMA.to_uppercase()],
                "operations": [{"OP": "replace", "Path": "", "Value": {"active": false}}]}),
        1,
    )
    .unwrap();
    assert_eq!(
        ops,
        vec![PatchOp {
            op: PatchOpKind::Replace,
            path: None,
            value: Some(json!({"active": false}))
        }]
    );
}

#[test]
fn rejects_malformed_requests() {
    let s = json!([PATCH_OP_SCHEMA]);
    let cases = [
        (json!([1]), ScimType::InvalidSyntax),
        (
            json!({"Operations": [{"op": "add", "value": {}}]}),
            ScimType::InvalidValue,
        ),
        (
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                   "Operations": [{"op": "add", "value": {}}]}),
            ScimType::InvalidValue,
        ),
        (json!({"schemas": s}), ScimType::InvalidSyntax),
        (
            json!({"schemas": s, "Operations": {}}),
            ScimType::InvalidSyntax,
        ),
        (
            json!({"schemas": s, "Operations": []}),
            ScimType::InvalidSyntax,
        ),
        (
            json!({"schemas": s, "Operations": ["add"]}),
            ScimType::InvalidSyntax,
        ),
        (
            json!({"schemas": s, "Operations": [{"path": "title"}]}),
            ScimType::InvalidSyntax,
        ),
        (
            json!({"schemas": s, "Operations": [{"op": 1}]}),
            ScimType::InvalidSyntax,
        ),
        (
            json!({"schemas": s, "Operations": [{"op": "add", "path": 7, "value": 1}]}),
            ScimType::InvalidSyntax,
        ),
        (
            json!({"schemas": s, "Operations": [{"op": "add", "path": "title"}]}),
            ScimType::InvalidValue,
        ),
        (
            json!({"schemas": s, "Operations": [{"op": "Replace"}]}),
            ScimType::InvalidValue,
        ),
    ];
    for (body, expected) in cases {
        let err = parse_patch_request(&body, 10).unwrap_err();
        assert_eq!(err.status, 400, "{body}");
        assert_eq!(err.scim_type, Some(expected), "{body}: {err}");
    }
}

#[test]
fn unknown_op_is_invalid_syntax_naming_it() {
    let err = parse_patch_request(
        &json!({"schemas": [PATCH_OP_SCHEMA],
                "Operations": [{"op": "add", "path": "title", "value": "x"}, {"op": "Merge", "value": {}}]}),
        10,
    )
    .unwrap_err();
    assert_eq!(err.scim_type, Some(ScimType::InvalidSyntax));
    assert!(err.detail.contains("\"Merge\""), "{err}");
    assert!(err.detail.contains("Operations[1]"), "{err}");
}

#[test]
fn bounds_the_number_of_operations() {
    let op = json!({"op": "replace", "path": "title", "value": "x"});
    let body = json!({"schemas": [PATCH_OP_SCHEMA], "Operations": [op.clone(), op.clone(), op]});
    assert_eq!(parse_patch_request(&body, 3).unwrap().len(), 3);
    let err = parse_patch_request(&body, 2).unwrap_err();
    assert_eq!(err.status, 413);
}
