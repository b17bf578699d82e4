//! Parsing filters and PATCH paths: grammar, canonical text, errors and limits.

use super::*;
use crate::scim_core::error::ScimError;

#[test]
fn parses_every_operator() {
    let ops = [
        ("eq", CompareOp::Eq),
        ("ne", CompareOp::Ne),
        ("co", CompareOp::Co),
        ("sw", CompareOp::Sw),
        ("ew", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("ge", CompareOp::Ge),
        ("lt", CompareOp::Lt),
        ("le", CompareOp::Le),
    ];
    for (word, op) in ops {
        assert_eq!(
            parse(&format!("userName {word} \"bjensen\"")),
            cmp("userName", op, s("bjensen"))
        );
        assert_eq!(
            parse(&format!("userName {} \"bjensen\"", word.to_uppercase())),
            cmp("userName", op, s("bjensen"))
        );
    }
    assert_eq!(parse("title pr"), pr("title"));
    assert_eq!(parse("title PR"), pr("title"));
}

#[test]
fn rfc_examples_parse() {
    let examples = [
        r#"userName Eq "john""#,
        r#"filter=userName Eq "john""#.trim_start_matches("filter="),
        r#"userName eq "bjensen""#,
        r#"name.familyName co "O'Malley""#,
        r#"userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        r#"title pr"#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"title pr and userType eq "Employee""#,
        r#"title pr or userType eq "Intern""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ];
    for e in examples {
        let f = parse(e);
        // Canonical text parses back to the same tree.
        assert_eq!(parse(&f.to_string()), f, "{e}");
    }
}

#[test]
fn precedence_and_associativity() {
    assert_eq!(
        parse("a pr or b pr and c pr"),
        or(pr("a"), and(pr("b"), pr("c")))
    );
    assert_eq!(
        parse("a pr and b pr or c pr"),
        or(and(pr("a"), pr("b")), pr("c"))
    );
    assert_eq!(
        parse("a pr and b pr and c pr"),
        and(and(pr("a"), pr("b")), pr("c"))
    );
    assert_eq!(
        parse("a pr or b pr or c pr"),
        or(or(pr("a"), pr("b")), pr("c"))
    );
    assert_eq!(
        parse("(a pr or b pr) and c pr"),
        and(or(pr("a"), pr("b")), pr("c"))
    );
    assert_eq!(
        parse("a pr and (b pr and c pr)"),
        and(pr("a"), and(pr("b"), pr("c")))
    );
    assert_eq!(parse("not (a pr) and b pr"), and(not(pr("a")), pr("b")));
    assert_eq!(
        parse("a pr OR not(b pr) AnD c pr"),
        or(pr("a"), and(not(pr("b")), pr("c")))
    );
    assert_eq!(parse("NOT   (  a pr  )"), not(pr("a")));
    assert_eq!(parse("((a pr))"), pr("a"));
    assert_eq!(parse("not (not (a pr))"), not(not(pr("a"))));
}

#[test]
fn display_is_canonical() {
    let f = parse(r#"A PR  AND  (b EQ "x" OR not(c.d GT 5))"#);
    assert_eq!(f.to_string(), r#"A pr and (b eq "x" or not (c.d gt 5))"#);
    assert_eq!(
        and(pr("a"), and(pr("b"), pr("c"))).to_string(),
        "a pr and (b pr and c pr)"
    );
    assert_eq!(
        and(or(pr("a"), pr("b")), pr("c")).to_string(),
        "(a pr or b pr) and c pr"
    );
    assert_eq!(
        or(and(pr("a"), pr("b")), pr("c")).to_string(),
        "a pr and b pr or c pr"
    );
}

#[test]
fn whitespace_is_flexible() {
    assert_eq!(
        parse("  \tuserName \t  eq   \"a\"  "),
        cmp("userName", CompareOp::Eq, s("a"))
    );
    assert_eq!(parse("(a pr)and(b pr)"), and(pr("a"), pr("b")));
}

#[test]
fn values() {
    assert_eq!(
        parse("a eq true"),
        cmp("a", CompareOp::Eq, CompValue::Bool(true))
    );
    assert_eq!(
        parse("a eq TRUE"),
        cmp("a", CompareOp::Eq, CompValue::Bool(true))
    );
    assert_eq!(
        parse("a eq False"),
        cmp("a", CompareOp::Eq, CompValue::Bool(false))
    );
    assert_eq!(parse("a eq NULL"), cmp("a", CompareOp::Eq, CompValue::Null));
    assert_eq!(parse("a ne null"), cmp("a", CompareOp::Ne, CompValue::Null));
    assert_eq!(parse("a eq 42"), cmp("a", CompareOp::Eq, num("42")));
    assert_eq!(parse("a gt -7"), cmp("a", CompareOp::Gt, num("-7")));
    assert_eq!(parse("a lt 3.25"), cmp("a", CompareOp::Lt, num("3.25")));
    assert_eq!(parse("a le 1e3"), cmp("a", CompareOp::Le, num("1000.0")));
    assert_eq!(
        parse("a ge -2.5E-2"),
        cmp("a", CompareOp::Ge, num("-0.025"))
    );
    assert_eq!(
        parse("a eq 18446744073709551615"),
        cmp("a", CompareOp::Eq, CompValue::Number(u64::MAX.into()))
    );
    assert_eq!(parse(r#"a eq """#), cmp("a", CompareOp::Eq, s("")));
    assert_eq!(parse(r#"a eq 5"#).to_string(), "a eq 5");
}

#[test]
fn string_escapes() {
    assert_eq!(
        parse(r#"a eq "say \"hi\" \\ \/ \n\t \u00e9\ud83d\ude00""#),
        cmp("a", CompareOp::Eq, s("say \"hi\" \\ / \n\t é😀"))
    );
    assert_eq!(
        parse(r#"a co "(not) [x] and or""#),
        cmp("a", CompareOp::Co, s("(not) [x] and or"))
    );
    assert_eq!(
        parse(r#"a eq "日本語""#),
        cmp("a", CompareOp::Eq, s("日本語"))
    );
    let f = parse(r#"a eq "q\"\\\u0001""#);
    assert_eq!(parse(&f.to_string()), f);
}

#[test]
fn attribute_paths() {
    assert_eq!(
        parse(r#"name.familyName eq "x""#),
        Filter::Compare {
            path: AttrPath::with_sub("name", "familyName"),
            op: CompareOp::Eq,
            value: s("x"),
        }
    );
    assert_eq!(
        parse(r#"members.$ref eq "x""#),
        Filter::Compare {
            path: AttrPath::with_sub("members", "$ref"),
            op: CompareOp::Eq,
            value: s("x"),
        }
    );
    assert_eq!(parse("$ref pr"), pr("$ref"));
    assert_eq!(parse("x-attr_2 pr"), pr("x-attr_2"));
    assert_eq!(
        parse(&format!("{ENTERPRISE}:manager.value pr")),
        Filter::Present(AttrPath {
            uri: Some(ENTERPRISE.to_string()),
            attr: "manager".into(),
            sub_attr: Some("value".into()),
        })
    );
    assert_eq!(
        parse(&format!("{ENTERPRISE}:employeeNumber eq \"1\"")),
        Filter::Compare {
            path: AttrPath {
                uri: Some(ENTERPRISE.to_string()),
                attr: "employeeNumber".into(),
                sub_attr: None,
            },
            op: CompareOp::Eq,
            value: s("1"),
        }
    );
    assert_eq!(
        parse("URN:ietf:params:scim:schemas:core:2.0:User:name.familyName pr"),
        Filter::Present(AttrPath {
            uri: Some("URN:ietf:params:scim:schemas:core:2.0:User".into()),
            attr: "name".into(),
            sub_attr: Some("familyName".into()),
        })
    );
}

#[test]
fn value_paths() {
    let f = parse(r#"emails[type eq "work" and value co "@x"]"#);
    assert_eq!(
        f,
        Filter::ValuePath {
            attr: AttrPath::new("emails"),
            filter: Box::new(and(
                cmp("type", CompareOp::Eq, s("work")),
                cmp("value", CompareOp::Co, s("@x"))
            )),
        }
    );
    assert_eq!(f.to_string(), r#"emails[type eq "work" and value co "@x"]"#);
    let f = parse(r#"emails[not (type eq "work") or (primary eq true)] and userName pr"#);
    assert_eq!(
        f,
        and(
            Filter::ValuePath {
                attr: AttrPath::new("emails"),
                filter: Box::new(or(
                    not(cmp("type", CompareOp::Eq, s("work"))),
                    cmp("primary", CompareOp::Eq, CompValue::Bool(true))
                )),
            },
            pr("userName")
        )
    );
    let f = parse(&format!("{ENTERPRISE}:things[value pr]"));
    assert_eq!(
        f,
        Filter::ValuePath {
            attr: AttrPath {
                uri: Some(ENTERPRISE.into()),
                attr: "things".into(),
                sub_attr: None
            },
            filter: Box::new(pr("value")),
        }
    );
}

#[test]
fn patch_paths() {
    let p = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
    assert_eq!(
        p,
        PatchPath {
            attr: AttrPath::new("emails"),
            value_filter: Some(cmp("type", CompareOp::Eq, s("work"))),
            sub_attr: Some("value".into()),
        }
    );
    assert_eq!(p.to_string(), r#"emails[type eq "work"].value"#);
    let p = parse_patch_path(r#"members[value eq "abc"]"#).unwrap();
    assert_eq!(p.attr, AttrPath::new("members"));
    assert_eq!(p.value_filter, Some(cmp("value", CompareOp::Eq, s("abc"))));
    assert_eq!(p.sub_attr, None);
    let p = parse_patch_path("name.familyName").unwrap();
    assert_eq!(
        p,
        PatchPath {
            attr: AttrPath::with_sub("name", "familyName"),
            value_filter: None,
            sub_attr: None
        }
    );
    let p = parse_patch_path(&format!("{ENTERPRISE}:manager.value")).unwrap();
    assert_eq!(p.attr.uri.as_deref(), Some(ENTERPRISE));
    assert_eq!(p.attr.attr, "manager");
    assert_eq!(p.attr.sub_attr.as_deref(), Some("value"));
    let p = parse_patch_path(" members ").unwrap();
    assert_eq!(p.attr, AttrPath::new("members"));
    let p = parse_patch_path(r#"members[value eq "a" or value eq "b"].$ref"#).unwrap();
    assert_eq!(p.sub_attr.as_deref(), Some("$ref"));
    // `not` is an ordinary name in path position.
    assert_eq!(parse_patch_path("not").unwrap().attr, AttrPath::new("not"));
}

#[test]
fn patch_path_errors() {
    let e = path_err("");
    assert_eq!(e.position, 0);
    let e = path_err(r#"emails[type eq "work"]value"#);
    assert_eq!(e.position, 22);
    let e = path_err(r#"emails[type eq "work"] .value"#);
    assert_eq!(e.position, 23);
    let e = path_err(r#"emails[type eq "work"]."#);
    assert_eq!(e.position, 23);
    let e = path_err(r#"emails[type eq "work"].value.x"#);
    assert_eq!(e.position, 28);
    let e = path_err(r#"emails[type eq "work"].value extra"#);
    assert_eq!(e.position, 29);
    let e = path_err(r#"emails.value[type eq "work"]"#);
    assert_eq!(e.position, 12);
    let e = path_err(r#"emails[type eq "work""#);
    assert_eq!(e.position, 21);
    let e = path_err(r#"emails[x[y pr]]"#);
    assert_eq!(e.position, 8);
    let e = path_err(r#"userName eq "x""#);
    assert_eq!(e.position, 9);
    assert!(e.message.contains("'[' or end of path"), "{e}");
    let e = path_err(r#"(emails)"#);
    assert_eq!(e.position, 0);
    let scim: ScimError = path_err("a b").into_path_error();
    assert_eq!(scim.status, 400);
    assert_eq!(
        scim.scim_type,
        Some(crate::scim_core::error::ScimType::InvalidPath)
    );
    assert!(scim.detail.starts_with("invalid path at position 2: "));
}

#[test]
fn error_display_and_scim_mapping() {
    let e = err(r#"userName eqq "a""#);
    assert_eq!(
        e.to_string(),
        "at position 9: expected a comparison operator after 'userName', found 'eqq'"
    );
    let scim: ScimError = e.into();
    assert_eq!(scim.status, 400);
    assert_eq!(
        scim.scim_type,
        Some(crate::scim_core::error::ScimType::InvalidFilter)
    );
    assert_eq!(
        scim.detail,
        "invalid filter at position 9: expected a comparison operator after 'userName', found 'eqq'"
    );
}

#[test]
fn error_positions() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "empty filter"),
        ("   ", 0, "empty filter"),
        (r#"userName eq "a" extra"#, 16, "expected 'and', 'or' or end of filter, found 'extra'"),
        (r#"userName eq "abc"#, 12, "unterminated string"),
        (r#"userName eq "abc\""#, 12, "unterminated string"),
        ("(userName pr", 12, "')' to close the '(' at position 0, found end of input"),
        ("((a pr) or (b pr)", 17, "')' to close the '(' at position 0"),
        ("userName pr)", 11, "unbalanced ')'"),
        ("userName pr]", 11, "unbalanced ']'"),
        (r#"emails[type eq "work""#, 21, "']' to close the '[' at position 6"),
        (r#"emails[type eq "work")"#, 21, "found ')'"),
        (r#"(emails[type eq "work"))"#, 22, "']' to close the '[' at position 7, found ')'"),
        (r#"(emails[type eq "work"]))"#, 24, "unbalanced ')'"),
        ("userName", 8, "expected a comparison operator or '[' after 'userName', found end of input"),
        ("userName eq", 11, "expected a value (quoted string, number, true, false or null) after 'eq', found end of input"),
        ("userName eq (", 12, "found '('"),
        ("userName gt true", 12, "'gt' needs a string, number or date-time value, found 'true'"),
        ("userName GE null", 12, "'GE' needs a string, number or date-time value"),
        ("userName lt false", 12, "needs a string, number or date-time"),
        ("userName le NULL", 12, "needs a string, number or date-time"),
        ("userName co 5", 12, "'co' needs a quoted string value, found '5'"),
        ("userName sw true", 12, "'sw' needs a quoted string value"),
        ("userName ew null", 12, "'ew' needs a quoted string value"),
        (r#"userName pr "x""#, 12, "expected 'and', 'or' or end of filter, found \"x\""),
        ("not userName pr", 4, "expected '(' after 'not', found 'userName'"),
        ("not", 3, "expected '(' after 'not', found end of input"),
        ("a pr and", 8, "expected an attribute path, 'not' or '(', found end of input"),
        ("a pr or or b pr", 8, "expected an attribute path, 'not' or '(', found 'or'"),
        ("a pr and and", 9, "expected an attribute path, 'not' or '(', found 'and'"),
        ("and pr", 0, "expected an attribute path, 'not' or '(', found 'and'"),
        ("()", 1, "expected an attribute path, 'not' or '(', found ')'"),
        (r#""a" eq "b""#, 0, "expected an attribute path, 'not' or '(', found \"a\""),
        (r#"emails[addr[x pr]]"#, 11, "nested value paths are not allowed"),
        (r#"emails[(addr[x pr])]"#, 12, "nested value paths"),
        (r#"emails.value[type pr]"#, 12, "not the sub-attribute path 'emails.value'"),
        ("1abc pr", 0, "attribute name must start with a letter, found '1'"),
        ("user!name pr", 4, "invalid character '!' in attribute name 'user!name'"),
        ("name.giv en pr", 9, "expected a comparison operator after 'name.giv', found 'en'"),
        ("name.given.x pr", 10, "only one level of sub-attribute"),
        ("name. pr", 5, "expected a sub-attribute name after 'name.'"),
        (".name pr", 0, "expected an attribute name before '.'"),
        ("name.1x pr", 5, "sub-attribute name must start with a letter"),
        ("foo:bar pr", 3, "invalid character ':'"),
        ("urn:foo pr", 0, "incomplete schema URN"),
        ("urn:a:b: pr", 8, "expected an attribute name after the schema URN 'urn:a:b:'"),
        (r#"a eq "a\qb""#, 8, "invalid string literal: invalid escape"),
        ("a eq \"tab\there\"", 9, "invalid string literal: control character"),
        (r#"a eq "\ud800""#, 12, "invalid string literal"),
    ];
    for (input, position, fragment) in cases {
        let e = err(input);
        assert_eq!(e.position, *position, "{input:?}: {e}");
        assert!(e.message.contains(fragment), "{input:?}: {e}");
        assert!(e.position <= input.len(), "{input:?}");
    }
}

#[test]
fn entra_sub_attribute_after_value_path_joins_the_filter() {
    assert_eq!(
        parse(r#"emails[type eq "work"].value eq "a@b""#),
        parse(r#"emails[type eq "work" and value eq "a@b"]"#)
    );
    assert!(parse_filter(r#"emails[type eq "work"].value.x eq "a""#).is_err());
    assert!(parse_filter(r#"emails[type eq "work"].value"#).is_err());
}

#[test]
fn unquoted_values_are_strings_as_entra_sends_them() {
    for (input, expected) in [
        ("externalId eq jyoung", "jyoung"),
        ("userName eq jyoung@contoso.com", "jyoung@contoso.com"),
        ("externalId eq 5b1e-77", "5b1e-77"),
        ("a eq 01", "01"),
        ("a eq 'x'", "'x'"),
    ] {
        match parse(input) {
            Filter::Compare { value, .. } => {
                assert_eq!(value, CompValue::Str(expected.into()), "{input}")
            }
            other => panic!("{input}: {other:?}"),
        }
    }
    assert_eq!(
        parse("a eq 12"),
        cmp("a", CompareOp::Eq, CompValue::Number(12.into()))
    );
}

#[test]
fn long_tokens_are_shortened_in_messages() {
    let long = "x".repeat(500);
    let e = err(&format!("a {long} 1"));
    assert!(e.message.len() < 120, "{}", e.message);
    assert!(e.message.contains('…'));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = "(".repeat(100_000) + "a pr" + &")".repeat(100_000);
    let e = err(&deep);
    assert_eq!(e.position, MAX_NESTING_DEPTH);
    assert!(e.message.contains("nesting"));

    let deep_not = "not (".repeat(10_000) + "a pr" + &")".repeat(10_000);
    let e = err(&deep_not);
    assert_eq!(e.position, MAX_NESTING_DEPTH * 5 + 4);

    let ok = "(".repeat(MAX_NESTING_DEPTH) + "a pr" + &")".repeat(MAX_NESTING_DEPTH);
    assert_eq!(parse(&ok), pr("a"));

    let inner = "(".repeat(MAX_NESTING_DEPTH) + "a pr" + &")".repeat(MAX_NESTING_DEPTH);
    let e = err(&format!("emails[{inner}]"));
    assert!(e.message.contains("nesting"), "{e}");

    let chain_ok = vec!["a pr"; MAX_LOGICAL_OPERATORS + 1].join(" or ");
    assert!(parse_filter(&chain_ok).is_ok());
    let chain = vec!["a pr"; MAX_LOGICAL_OPERATORS + 2].join(" and ");
    let e = err(&chain);
    assert!(e.message.contains("too many"), "{e}");
    let e = err(&("a pr".to_string() + &" or a pr".repeat(100_000)));
    assert!(e.message.contains("too many"), "{e}");
}

#[test]
fn limits_fit_a_small_thread_stack() {
    let run = || {
        // 62 parentheses + '[' + 'not (' = 64 levels.
        let nested = "(".repeat(MAX_NESTING_DEPTH - 2)
            + "emails[not (type pr)]"
            + &")".repeat(MAX_NESTING_DEPTH - 2);
        // 2 × 499 'and' + 1 'or' = 999 operators.
        let chain = vec![nested.as_str(); MAX_LOGICAL_OPERATORS / 2].join(" and ");
        let text = [chain.as_str(); 2].join(" or ");
        let f = match parse_filter(&text) {
            Ok(f) => f,
            Err(e) => panic!("{}: {}", e.position, e.message),
        };
        let again = parse_filter(&f.to_string());
        assert!(again.as_ref() == Ok(&f));
        let deeper = "(".repeat(MAX_NESTING_DEPTH - 1) + "emails[not (type pr)]";
        assert!(parse_filter(&deeper).is_err());
        matches(&f, &user(), &never_exact)
    };
    let handle = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(run)
        .unwrap();
    assert!(!handle.join().unwrap());
}
