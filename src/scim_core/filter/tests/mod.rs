//! Shared builders and fixtures for the filter tests.

use super::*;
use serde_json::{json, Value};

mod matching;
mod parsing;
mod properties;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn parse(s: &str) -> Filter {
    match parse_filter(s) {
        Ok(f) => f,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

fn err(s: &str) -> FilterError {
    match parse_filter(s) {
        Ok(f) => panic!("{s:?} should not parse, got {f:?}"),
        Err(e) => e,
    }
}

fn path_err(s: &str) -> FilterError {
    match parse_patch_path(s) {
        Ok(p) => panic!("{s:?} should not parse, got {p:?}"),
        Err(e) => e,
    }
}

fn cmp(attr: &str, op: CompareOp, value: CompValue) -> Filter {
    Filter::Compare {
        path: AttrPath::new(attr),
        op,
        value,
    }
}

fn s(v: &str) -> CompValue {
    CompValue::Str(v.to_string())
}

fn pr(attr: &str) -> Filter {
    Filter::Present(AttrPath::new(attr))
}

fn and(a: Filter, b: Filter) -> Filter {
    Filter::And(Box::new(a), Box::new(b))
}

fn or(a: Filter, b: Filter) -> Filter {
    Filter::Or(Box::new(a), Box::new(b))
}

fn not(a: Filter) -> Filter {
    Filter::Not(Box::new(a))
}

fn num(n: &str) -> CompValue {
    CompValue::Number(n.parse().unwrap())
}

fn user() -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            ENTERPRISE
        ],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "userName": "bjensen@example.com",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "displayName": "Babs Jensen",
        "nickName": "",
        "title": null,
        "active": true,
        "loginCount": 42,
        "score": 3.5,
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "phoneNumbers": [],
        "x509Certificates": [{}],
        ENTERPRISE: {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "manager": {
                "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d"
            }
        },
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z"
        }
    })
}

fn never_exact(_: &AttrPath) -> bool {
    false
}

fn eval(filter: &str, object: &Value) -> bool {
    matches(&parse(filter), object, &never_exact)
}

fn check(object: &Value, cases: &[(&str, bool)]) {
    for (filter, expected) in cases {
        assert_eq!(eval(filter, object), *expected, "{filter}");
        let negated = format!("not ({filter})");
        assert_eq!(eval(&negated, object), !*expected, "{negated}");
    }
}
