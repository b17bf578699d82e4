//! Property tests: canonical text round-trips, the parser never panics, the matcher is total.

use super::*;
use proptest::prelude::*;
use serde_json::Number;

fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => "[a-zA-Z][a-zA-Z0-9_-]{0,8}".prop_filter("keywords are not names", |s| {
            !["not", "and", "or"].iter().any(|k| s.eq_ignore_ascii_case(k))
        }),
        1 => Just("$ref".to_string()),
    ]
}

fn path_strategy(allow_sub: bool) -> impl Strategy<Value = AttrPath> {
    let uri = prop_oneof![
        6 => Just(None),
        1 => Just(Some(ENTERPRISE.to_string())),
        1 => Just(Some("urn:ietf:params:scim:schemas:core:2.0:User".to_string())),
        1 => "urn:[a-z]{1,5}(:[a-zA-Z0-9.]{1,5}){0,3}".prop_map(Some),
    ];
    let sub = if allow_sub {
        proptest::option::of(name_strategy()).boxed()
    } else {
        Just(None).boxed()
    };
    (uri, name_strategy(), sub).prop_map(|(uri, attr, sub_attr)| AttrPath {
        uri,
        attr,
        sub_attr,
    })
}

fn number_strategy() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>().prop_filter_map("finite", Number::from_f64),
    ]
}

fn compare_strategy() -> impl Strategy<Value = Filter> {
    let ops = prop_oneof![
        Just(CompareOp::Eq),
        Just(CompareOp::Ne),
        Just(CompareOp::Co),
        Just(CompareOp::Sw),
        Just(CompareOp::Ew),
        Just(CompareOp::Gt),
        Just(CompareOp::Ge),
        Just(CompareOp::Lt),
        Just(CompareOp::Le),
    ];
    let values = prop_oneof![
        Just(CompValue::Null),
        any::<bool>().prop_map(CompValue::Bool),
        number_strategy().prop_map(CompValue::Number),
        any::<String>().prop_map(CompValue::Str),
    ];
    (path_strategy(true), ops, values).prop_map(|(path, op, value)| {
        // Keep only combinations the grammar accepts.
        let value = match (&value, op) {
            (CompValue::Str(_), _) => value,
            (CompValue::Number(_), o) if !o.is_substring() => value,
            (CompValue::Null | CompValue::Bool(_), CompareOp::Eq | CompareOp::Ne) => value,
            _ => CompValue::Str(value.to_string()),
        };
        Filter::Compare { path, op, value }
    })
}

fn leaf_strategy() -> impl Strategy<Value = Filter> {
    prop_oneof![
        3 => compare_strategy(),
        1 => path_strategy(true).prop_map(Filter::Present),
    ]
}

fn combine(inner: BoxedStrategy<Filter>) -> BoxedStrategy<Filter> {
    prop_oneof![
        (inner.clone(), inner.clone()).prop_map(|(a, b)| and(a, b)),
        (inner.clone(), inner.clone()).prop_map(|(a, b)| or(a, b)),
        inner.prop_map(not),
    ]
    .boxed()
}

fn inner_filter_strategy() -> BoxedStrategy<Filter> {
    leaf_strategy()
        .boxed()
        .prop_recursive(4, 24, 2, combine)
        .boxed()
}

fn filter_strategy() -> BoxedStrategy<Filter> {
    let value_path =
        (path_strategy(false), inner_filter_strategy()).prop_map(|(attr, f)| Filter::ValuePath {
            attr,
            filter: Box::new(f),
        });
    prop_oneof![3 => leaf_strategy(), 1 => value_path]
        .boxed()
        .prop_recursive(4, 32, 2, combine)
        .boxed()
}

proptest! {
    #[test]
    fn display_round_trips(filter in filter_strategy()) {
        let text = filter.to_string();
        let parsed = parse_filter(&text);
        prop_assert_eq!(parsed, Ok(filter), "{}", text);
    }

    #[test]
    fn patch_path_round_trips(
        attr in path_strategy(false),
        filter in proptest::option::of(inner_filter_strategy()),
        sub in proptest::option::of(name_strategy()),
    ) {
        let path = match filter {
            Some(f) => PatchPath { attr, value_filter: Some(f), sub_attr: sub },
            None => PatchPath { attr, value_filter: None, sub_attr: None },
        };
        let text = path.to_string();
        prop_assert_eq!(parse_patch_path(&text), Ok(path), "{}", text);
    }

    #[test]
    fn parse_never_panics(input in any::<String>()) {
        let _ = parse_filter(&input);
        let _ = parse_patch_path(&input);
    }

    #[test]
    fn parse_never_panics_on_filter_like_text(
        input in r#"[a-zA-Z0-9 ()\[\]"\\.:$_é-]{0,60}|((not|and|or|pr|eq|co|gt|urn:a:b|\(|\)|\[|\]|"x"|"|\\|1e5|-|\.| ){0,25})"#
    ) {
        match parse_filter(&input) {
            Ok(f) => prop_assert_eq!(parse_filter(&f.to_string()), Ok(f)),
            Err(e) => prop_assert!(e.position <= input.len()),
        }
        match parse_patch_path(&input) {
            Ok(p) => prop_assert_eq!(parse_patch_path(&p.to_string()), Ok(p)),
            Err(e) => prop_assert!(e.position <= input.len()),
        }
    }

    #[test]
    fn matcher_is_total_and_not_negates(filter in filter_strategy()) {
        let u = user();
        let m = matches(&filter, &u, &never_exact);
        prop_assert_eq!(matches(&Filter::Not(Box::new(filter)), &u, &never_exact), !m);
    }
}
