//! The in-memory matcher against a user document.

use super::*;
use serde_json::json;
use std::cell::RefCell;

#[test]
fn matches_strings() {
    check(
        &user(),
        &[
            (r#"userName eq "BJensen@Example.com""#, true),
            (r#"USERNAME eq "bjensen@example.com""#, true),
            (r#"userName eq "bjensen""#, false),
            (r#"userName ne "bjensen""#, true),
            (r#"userName ne "BJENSEN@example.com""#, false),
            (r#"userName co "@EXAMPLE""#, true),
            (r#"userName co "@other""#, false),
            (r#"userName sw "BJ""#, true),
            (r#"userName sw "jensen""#, false),
            (r#"userName ew ".COM""#, true),
            (r#"userName ew ".org""#, false),
            (r#"userName gt "a""#, true),
            (r#"userName gt "c""#, false),
            (r#"userName ge "BJENSEN@example.com""#, true),
            (r#"userName lt "c""#, true),
            (r#"userName le "b""#, false),
            (r#"name.familyName eq "jensen""#, true),
            (r#"Name.FamilyName eq "JENSEN""#, true),
            (r#"name.givenName sw "Bar" and name.familyName pr"#, true),
            (r#"name.middleName eq "x""#, false),
            (r#"displayName co "babs" or userName eq "nobody""#, true),
            (r#"displayName co "nobody" or userName eq "nobody""#, false),
        ],
    );
}

#[test]
fn matches_case_exact() {
    let u = user();
    let exact_user_name = |p: &AttrPath| p.attr.eq_ignore_ascii_case("userName");
    let f = parse(r#"userName eq "BJensen@Example.com""#);
    assert!(!matches(&f, &u, &exact_user_name));
    let f = parse(r#"userName eq "bjensen@example.com""#);
    assert!(matches(&f, &u, &exact_user_name));
    let f = parse(r#"displayName co "BABS""#);
    assert!(matches(&f, &u, &exact_user_name));
    // Unicode lowercase.
    let o = json!({"displayName": "ÉLODIE Straße"});
    assert!(!eval(r#"displayName eq "élodie STRASSE""#, &o));
    assert!(eval(r#"displayName eq "élodie straße""#, &o));
    assert!(eval(r#"displayName sw "ÉL""#, &o));
}

#[test]
fn matches_multi_valued() {
    check(
        &user(),
        &[
            (r#"emails co "jensen.org""#, true),
            (r#"emails eq "BJENSEN@example.com""#, true),
            (r#"emails co "nowhere""#, false),
            (r#"emails.value ew "@jensen.org""#, true),
            (r#"emails.type eq "home""#, true),
            (r#"emails.type eq "other""#, false),
            (r#"emails.type ne "work""#, false),
            (r#"emails.type ne "other""#, true),
            (r#"emails.primary eq true"#, true),
            (r#"emails.primary pr"#, true),
            (r#"emails.display pr"#, false),
            (
                r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:user""#,
                true,
            ),
            (&format!("schemas eq \"{ENTERPRISE}\""), true),
            (r#"schemas eq "urn:other""#, false),
        ],
    );
}

#[test]
fn matches_value_paths() {
    check(
        &user(),
        &[
            (
                r#"emails[type eq "work" and value co "@example.com"]"#,
                true,
            ),
            (
                r#"emails[type eq "home" and value co "@example.com"]"#,
                false,
            ),
            (r#"emails[type eq "home" and primary eq true]"#, false),
            (r#"emails[primary eq true]"#, true),
            (r#"emails[not (primary pr)]"#, true),
            (r#"emails[type eq "home" or type eq "other"]"#, true),
            (r#"emails[type pr] and userName pr"#, true),
            (
                r#"emails[type eq "other"] or name[familyName eq "jensen"]"#,
                true,
            ),
            (r#"phoneNumbers[type pr]"#, false),
            (r#"missing[type pr]"#, false),
            (r#"userName[value pr]"#, false),
            (
                &format!("{ENTERPRISE}:manager[value sw \"26118915\"]"),
                true,
            ),
        ],
    );
}

#[test]
fn value_path_case_exact_gets_absolute_path() {
    let u = user();
    let seen = RefCell::new(Vec::new());
    let exact = |p: &AttrPath| {
        seen.borrow_mut().push(p.clone());
        p.attr == "emails" && p.sub_attr.as_deref() == Some("type")
    };
    assert!(!matches(&parse(r#"emails[type eq "WORK"]"#), &u, &exact));
    assert!(matches(&parse(r#"emails[type eq "work"]"#), &u, &exact));
    assert!(matches(
        &parse(r#"emails[value eq "BJENSEN@example.com"]"#),
        &u,
        &exact
    ));
    assert_eq!(seen.borrow()[0], AttrPath::with_sub("emails", "type"));
}

#[test]
fn matches_extension_and_core_urns() {
    check(
        &user(),
        &[
            (&format!("{ENTERPRISE}:employeeNumber eq \"701984\""), true),
            (&format!("{ENTERPRISE}:employeeNumber eq \"1\""), false),
            (
                "URN:IETF:params:scim:schemas:extension:enterprise:2.0:user:EMPLOYEENUMBER sw \"70\"",
                true,
            ),
            (&format!("{ENTERPRISE}:manager.value pr"), true),
            (&format!("{ENTERPRISE}:manager.$ref co \"../Users/\""), true),
            (&format!("{ENTERPRISE}:manager pr"), true),
            (&format!("{ENTERPRISE}:division pr"), false),
            // Extension attributes are not found at the top level.
            ("employeeNumber pr", false),
            // An extension URN does not see core attributes.
            (&format!("{ENTERPRISE}:userName pr"), false),
            ("urn:ietf:params:scim:schemas:core:2.0:User:name.familyName eq \"Jensen\"", true),
            ("urn:ietf:params:scim:schemas:core:2.0:User:userName pr", true),
            ("urn:ietf:params:scim:schemas:core:2.0:Group:userName pr", true),
        ],
    );
}

#[test]
fn matches_booleans() {
    let u = user();
    check(
        &u,
        &[
            ("active eq true", true),
            ("active eq TRUE", true),
            ("active eq false", false),
            ("active ne false", true),
            ("active ne true", false),
            (r#"active eq "true""#, true),
            ("active pr", true),
        ],
    );
    for (stored, t, f) in [
        ("True", true, false),
        ("FALSE", false, true),
        ("yes", false, false),
    ] {
        let o = json!({"active": stored});
        assert_eq!(eval("active eq true", &o), t, "{stored}");
        assert_eq!(eval("active eq false", &o), f, "{stored}");
    }
    // A number is not a boolean.
    assert!(!eval("active eq true", &json!({"active": 1})));
}

#[test]
fn matches_numbers() {
    check(
        &user(),
        &[
            ("loginCount eq 42", true),
            ("loginCount eq 42.0", true),
            ("loginCount eq 4.2e1", true),
            ("loginCount ne 42", false),
            ("loginCount gt 40", true),
            ("loginCount gt 42", false),
            ("loginCount ge 42", true),
            ("loginCount lt 42", false),
            ("loginCount le 42", true),
            ("loginCount lt -1", false),
            ("score ge 3.5", true),
            ("score gt 3.49", true),
            ("score lt 3.5", false),
            // Numbers and strings do not compare.
            ("userName gt 0", false),
            (r#"loginCount eq "42""#, false),
        ],
    );
}

#[test]
fn matches_date_times() {
    check(
        &user(),
        &[
            (r#"meta.lastModified gt "2011-05-13T04:42:33Z""#, true),
            (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
            (r#"meta.lastModified gt "2011-05-13T06:42:34+02:00""#, false),
            (r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#, true),
            (r#"meta.lastModified eq "2011-05-13T04:42:34.000Z""#, true),
            (r#"meta.lastModified ge "2011-05-13T06:42:34+02:00""#, true),
            (r#"meta.lastModified le "2011-05-13T06:42:34+02:00""#, true),
            (r#"meta.lastModified lt "2012-01-01T00:00:00Z""#, true),
            (r#"meta.lastModified lt "2011-05-13T05:00:00+01:00""#, false),
            (r#"meta.created lt "2011-05-13T04:42:34Z""#, true),
            (r#"meta.lastModified sw "2011-05""#, true),
            // Not a date-time: compared as strings.
            (r#"meta.lastModified gt "2011""#, true),
        ],
    );
}

#[test]
fn matches_presence_and_null() {
    check(
        &user(),
        &[
            ("userName pr", true),
            ("nickName pr", false),
            ("title pr", false),
            ("phoneNumbers pr", false),
            ("emails pr", true),
            ("name pr", true),
            ("missing pr", false),
            ("x509Certificates pr", true),
            ("x509Certificates.value pr", false),
            ("title eq null", true),
            ("missing eq null", true),
            ("nickName eq null", true),
            ("userName eq null", false),
            ("userName ne null", true),
            ("title ne null", false),
            ("missing ne null", false),
            (r#"missing ne "x""#, true),
            (r#"missing eq "x""#, false),
            (r#"missing gt "x""#, false),
            ("emails.display eq null", true),
            ("emails.value eq null", false),
        ],
    );
    let o = json!({"obj": {}, "zero": 0, "f": false});
    assert!(!eval("obj pr", &o));
    assert!(eval("zero pr", &o));
    assert!(eval("f pr", &o));
}

#[test]
fn matches_group_members() {
    let group = json!({
        "displayName": "Tour Guides",
        "members": [
            {"value": "2819c223", "$ref": "https://example.com/v2/Users/2819c223", "display": "Babs Jensen"},
            {"value": "902c246b", "$ref": "https://example.com/v2/Users/902c246b", "display": "Mandy Pepperidge"}
        ]
    });
    check(
        &group,
        &[
            (r#"members[value eq "902c246b"]"#, true),
            (r#"members[value eq "nope"]"#, false),
            (r#"members.$ref ew "/902c246b""#, true),
            (r#"members eq "2819C223""#, true),
            (
                r#"members[display sw "babs" and value eq "2819c223"]"#,
                true,
            ),
        ],
    );
}
