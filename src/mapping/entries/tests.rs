use super::conditions::content_offset;
use super::values::is_http_url;
use super::*;
use crate::mapping::load::tests::{errors, load, one_error, rule_error, APPS};
use crate::mapping::model::{Approval, GrantSpec};
use crate::scim_core::schema::ENTERPRISE_USER_SCHEMA;

#[test]
fn parses_every_key() {
    let set = load(&[
        ("a.toml", APPS),
        (
            "b.toml",
            r#"
[[app]]
id = "rota"
name = "Rota"
description = ""
launch_url = "http://rota.example:8080/x?y#z"
roles = ["viewer"]
icon = "https://rota.example/i.svg"

[[partner]]
slug = "st-mary"
max_access_days = 180
allowed_apps = ["ehr"]
approval = "admin"
mfa = true
mfa_email_fallback = true
max_deactivations_per_hour = 25
inactive_days = 30
inactive_remove_after_days = 14

[[partner]]
slug = "northside"

[[rule]]
id = "nurses"
description = "Nurses"
partners = ["st-mary", "other"]
condition = 'department eq "Cardiology" and title co "Nurse"'
groups = ["ICU Staff"]
grants = [ { app = "ehr", role = "reader" }, { app = "rota", role = "viewer" } ]
access_days = 90
access_until = 2027-06-30
use_partner_end_date = false
sponsor = "dr.grey@hospital.example"
mfa = true
template = "clinician"
language = "nl-BE"

[[rule]]
id = "minimal"
access_until = 2027-06-30T17:00:00+02:00

[[rule.grants]]
app = "ehr"
role = "clinician"
"#,
        ),
    ]);
    assert_eq!(set.apps.len(), 2);
    assert_eq!(
        set.apps[1].icon.as_deref(),
        Some("https://rota.example/i.svg")
    );
    assert_eq!(set.apps[0].roles, ["reader", "clinician"]);
    assert_eq!(
        set.partners[0],
        PartnerPolicy {
            slug: "st-mary".into(),
            max_access_days: Some(180),
            allowed_apps: Some(vec!["ehr".into()]),
            approval: Approval::Admin,
            mfa: true,
            mfa_email_fallback: true,
            mfa_passkey: false,
            max_deactivations_per_hour: Some(25),
            inactive_days: Some(30),
            inactive_remove_after_days: Some(14),
            limits: Default::default(),
        }
    );
    assert_eq!(set.partners[1], PartnerPolicy::default_for("northside"));
    let rule = &set.rules[0];
    assert_eq!(rule.id, "nurses");
    assert_eq!((rule.file.as_str(), rule.line), ("b.toml", 24));
    assert_eq!(
        rule.partners.as_deref(),
        Some(&["st-mary".to_string(), "other".into()][..])
    );
    assert_eq!(
        rule.condition_text.as_deref(),
        Some(r#"department eq "Cardiology" and title co "Nurse""#)
    );
    assert_eq!(
        rule.condition.as_ref().map(ToString::to_string).as_deref(),
        Some(&*format!(
            r#"{ENTERPRISE_USER_SCHEMA}:department eq "Cardiology" and title co "Nurse""#
        ))
    );
    assert_eq!(rule.groups.as_deref(), Some(&["ICU Staff".to_string()][..]));
    assert_eq!(rule.grants.len(), 2);
    assert_eq!(
        rule.grants[1],
        GrantSpec {
            app: "rota".into(),
            role: "viewer".into()
        }
    );
    assert_eq!(rule.access_days, Some(90));
    assert_eq!(
        rule.access_until.map(|t| t.to_rfc3339()).as_deref(),
        Some("2027-07-01T00:00:00+00:00")
    );
    assert!(!rule.use_partner_end_date);
    assert_eq!(rule.sponsor.as_deref(), Some("dr.grey@hospital.example"));
    assert_eq!(rule.mfa, Some(true));
    assert_eq!(rule.template.as_deref(), Some("clinician"));
    assert_eq!(rule.language.as_deref(), Some("nl-BE"));
    let minimal = &set.rules[1];
    assert!(minimal.use_partner_end_date);
    assert!(minimal.condition.is_none() && minimal.partners.is_none());
    assert_eq!(
        minimal.grants,
        [GrantSpec {
            app: "ehr".into(),
            role: "clinician".into()
        }]
    );
    assert_eq!(
        minimal.access_until.map(|t| t.to_rfc3339()).as_deref(),
        Some("2027-06-30T15:00:00+00:00")
    );
}

#[test]
fn toml_syntax_errors_have_their_line() {
    one_error(
        &[("bad.toml", "[[app]]\nid = \"x\"\nname = \n")],
        "bad.toml:3",
        "TOML syntax error",
    );
    one_error(
        &[("dup.toml", "[[rule]]\nid = \"a\"\nid = \"b\"\n")],
        "dup.toml:3",
        "duplicate key",
    );
}

#[test]
fn unknown_keys_are_errors_everywhere() {
    one_error(
        &[("t.toml", "\n\napps = []\n")],
        "t.toml:3",
        "unknown key `apps` at the top level",
    );
    rule_error(
        "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\nduration = 3\n",
        4,
        "unknown key `duration` in [[rule]]",
    );
    rule_error(
        "[[rule]]\nid = \"r\"\ngrants = [\n  { app = \"ehr\", role = \"reader\", until = 3 },\n]\n",
        4,
        "unknown key `until` in a grant",
    );
    rule_error(
        "[[partner]]\nslug = \"ab\"\nmax_days = 3\n",
        3,
        "unknown key `max_days` in [[partner]]",
    );
    one_error(
        &[("a.toml", &format!("{APPS}colour = \"red\"\n"))],
        "a.toml:8",
        "unknown key `colour` in [[app]]",
    );
    rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n[rule.extra]\nx = 1\n",
            4,
            "unknown key `extra` in [[rule]]",
        );
    // Implicit tables (dotted keys) have no span of their own.
    rule_error(
        "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\nlimits.days = 3\n",
        4,
        "unknown key `limits` in [[rule]]",
    );
    rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n[rule.a.b]\nx = 1\n",
            4,
            "unknown key `a` in [[rule]]",
        );
}

#[test]
fn wrong_types_are_errors() {
    rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\naccess_days = \"90\"\n",
            4,
            "`access_days` must be a whole number of days, found a string",
        );
    rule_error(
        "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\nmfa = \"yes\"\n",
        4,
        "`mfa` must be true or false, found a string",
    );
    rule_error(
        "[[rule]]\nid = 7\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n",
        2,
        "`id` must be a string, found an integer",
    );
    rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ngroups = [\n  \"a\",\n  2,\n]\n",
            6,
            "`groups` must be an array of strings, found an integer in it",
        );
    rule_error(
        "[[rule]]\nid = \"r\"\ngrants = [\"ehr\"]\n",
        3,
        "`grants` must be an array of tables",
    );
    rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\naccess_until = \"2027-06-30\"\n",
            4,
            "`access_until` must be a date such as 2027-06-30 (unquoted)",
        );
    rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\naccess_until = 2027-06-30T10:00:00\n",
            4,
            "which has no date or no offset",
        );
    rule_error(
        "[rule]\nid = \"r\"\n",
        1,
        "`rule` must be an array of tables ([[rule]]), found a table",
    );
    rule_error(
        "partner = [\"st-mary\"]\n",
        1,
        "each `partner` entry must be a table",
    );
    rule_error(
        "[[partner]]\nslug = \"ab\"\napproval = \"manual\"\n",
        3,
        "`approval` must be \"auto\" or \"admin\"",
    );
}

#[test]
fn missing_required_keys_are_errors() {
    rule_error(
        "\n[[rule]]\nid = \"r\"\n",
        2,
        "[[rule]] is missing the required key `grants`",
    );
    rule_error(
        "[[partner]]\nmfa = true\n",
        1,
        "[[partner]] is missing the required key `slug`",
    );
    rule_error(
        "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\" }]\n",
        3,
        "a grant is missing the required key `role`",
    );
    let errs = errors(&[("a.toml", "[[app]]\nid = \"x\"\n")]);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    for key in ["name", "description", "launch_url", "roles"] {
        assert!(
            errs.iter()
                .any(|e| e == &format!("a.toml:1: [[app]] is missing the required key `{key}`")),
            "{key}: {errs:#?}"
        );
    }
}

#[test]
fn invalid_conditions_point_at_their_line() {
    // Position mapped into a multi-line literal string.
    rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = '''\ntitle pr and\ndepartment eq \"x\" and\ntitle zz \"y\"'''\n",
            7,
            "invalid `condition` at position 41: expected a comparison operator after 'title', found 'zz'",
        );
    // With escapes the position cannot be mapped: the condition's line.
    rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = \"\"\"\ntitle eq \\\"x\\\" and\n(\"\"\"\n",
            4,
            "invalid `condition` at position",
        );
    rule_error(
        "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = ''\n",
        4,
        "empty filter",
    );
    rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = 'departement eq \"x\"'\n",
            4,
            "invalid `condition`: unknown attribute 'departement'",
        );
    rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = 'emails[kind eq \"work\"]'\n",
            4,
            "unknown attribute 'emails.kind'",
        );
    // In a multi-line condition, the line of the unknown attribute.
    rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = \"\"\"\ntitle pr\nand departement eq 'x'\n\"\"\"\n",
            6,
            "unknown attribute 'departement'",
        );
    // Written twice: the condition's first line.
    rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = '''\ntitle pr\nand (dept eq \"x\" or dept eq \"y\")'''\n",
            4,
            "unknown attribute 'dept'",
        );
}

#[test]
fn content_offsets_only_for_unescaped_literals() {
    assert_eq!(content_offset("'a b'", "a b"), Some(1));
    assert_eq!(content_offset("\"a b\"", "a b"), Some(1));
    assert_eq!(content_offset("'''\na b'''", "a b"), Some(4));
    assert_eq!(content_offset("\"\"\"\r\na\"\"\"", "a"), Some(5));
    assert_eq!(content_offset("\"a\\\"b\"", "a\"b"), None);
    assert_eq!(content_offset("x", "x"), None);
}

#[test]
fn invalid_values_are_errors() {
    let grant = "grants = [{ app = \"ehr\", role = \"reader\" }]\n";
    for (extra, needle) in [
        (
            "access_days = 0",
            "`access_days` must be from 1 to 3650 days, found 0",
        ),
        ("access_days = 3651", "from 1 to 3650 days, found 3651"),
        ("access_days = -5", "found -5"),
        ("language = \"dutch_x\"", "not a language tag"),
        ("language = \"nl-\"", "not a language tag"),
        ("language = \"n\"", "not a language tag"),
        ("language = \"en_GB\"", "not a language tag"),
        ("sponsor = \"dr.grey\"", "not an email address"),
        ("template = \"my template\"", "not a valid template name"),
        ("template = \"..\"", "not a valid template name"),
        ("template = \"../invitation\"", "not a valid template name"),
        ("template = \".hidden\"", "not a valid template name"),
        ("partners = [\"St-Mary\"]", "not a valid partner slug"),
        ("partners = []", "`partners` must not be empty"),
        ("groups = [\" \"]", "`groups` must not be empty"),
        ("groups = [\"a\", \"a\"]", "`groups` lists \"a\" twice"),
        ("description = 3", "`description` must be a string"),
        ("access_until = 10:00:00", "which has no date or no offset"),
    ] {
        rule_error(
            &format!("[[rule]]\nid = \"r\"\n{grant}{extra}\n"),
            4,
            needle,
        );
    }
    rule_error(
        "[[rule]]\nid = \"R 1\"\n{grant}\n"
            .replace("{grant}", grant)
            .as_str(),
        2,
        "not a valid rule id",
    );
    rule_error(
        "[[rule]]\nid = \"r\"\ngrants = []\n",
        3,
        "`grants` must not be empty",
    );
    rule_error(
        "[[partner]]\nslug = \"1st\"\n",
        2,
        "not a valid partner slug",
    );
    rule_error(
        "[[partner]]\nslug = \"ab\"\nmax_access_days = 0\n",
        3,
        "`max_access_days` must be from 1 to 3650 days",
    );
    rule_error(
        "[[partner]]\nslug = \"ab\"\nmax_access_days = 4000\n",
        3,
        "found 4000",
    );
    rule_error(
        "[[partner]]\nslug = \"ab\"\nallowed_apps = [\"EHR\"]\n",
        3,
        "not a valid app id",
    );
    rule_error(
        "[[partner]]\nslug = \"ab\"\nmfa_email_fallback = \"yes\"\n",
        3,
        "`mfa_email_fallback` must be true or false",
    );
    rule_error(
        "[[partner]]\nslug = \"ab\"\nmax_deactivations_per_hour = 0\n",
        3,
        "`max_deactivations_per_hour` must be from 1 to 1000000, found 0",
    );
    rule_error(
        "[[partner]]\nslug = \"ab\"\nmax_deactivations_per_hour = \"lots\"\n",
        3,
        "max_deactivations_per_hour",
    );
    for (key, value, needle) in [
        (
            "launch_url",
            "ftp://ehr.example/",
            "`launch_url` \"ftp://ehr.example/\" is not an http(s) URL",
        ),
        ("launch_url", "https://", "is not an http(s) URL"),
        (
            "launch_url",
            "https://ehr example/",
            "is not an http(s) URL",
        ),
        (
            "launch_url",
            "https://ehr.example:80a/",
            "is not an http(s) URL",
        ),
        (
            "icon",
            "/static/icon.svg",
            "`icon` \"/static/icon.svg\" is not an http(s) URL",
        ),
        ("id", "EHR", "not a valid app id"),
        ("roles", "[]", "`roles` must not be empty"),
        ("roles", "[\"a\", \"a\"]", "`roles` lists \"a\" twice"),
        ("name", " ", "`name` must not be empty"),
    ] {
        let value = if value.starts_with('[') {
            value.to_string()
        } else {
            format!("\"{value}\"")
        };
        let app = "[[app]]\nid = \"x\"\nname = \"X\"\ndescription = \"\"\nlaunch_url = \"https://x.example\"\nroles = [\"r\"]\n"
            .lines()
            .filter(|l| !l.starts_with(&format!("{key} =")))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        let app = format!("{app}{key} = {value}\n");
        let line = app.lines().count();
        one_error(&[("a.toml", &app)], &format!("a.toml:{line}"), needle);
    }
}

#[test]
fn urls_are_checked() {
    for ok in [
        "https://ehr.example",
        "HTTPS://ehr.example/launch?x=1#y",
        "http://localhost:8080/",
        "http://[::1]:8080/x",
        "https://10.0.0.1/",
    ] {
        assert!(is_http_url(ok), "{ok}");
    }
    for bad in [
        "ehr.example",
        "https:/ehr.example",
        "https://-ehr.example/",
        "https://ehr..example/",
        "https://ehr.example:/",
        "https://user@ehr.example/",
        "https://ehr.example/a b",
        "javascript:alert(1)",
        "https://[]/",
    ] {
        assert!(!is_http_url(bad), "{bad}");
    }
}

#[test]
fn oidc_clients_are_checked() {
    let app = |id: &str, extra: &str| {
        format!("[[app]]\nid = \"{id}\"\nname = \"A\"\ndescription = \"\"\nlaunch_url = \"https://a.example/\"\nroles = [\"r\"]\n{extra}")
    };
    let secret = "oidc_client_secret_sha256 = \"bd9f67fb8fbe0da945ea3d65c6196e84fea3cfa0b92e3a5fc070234bd27b92e2\"\n";
    let good = app(
        "a",
        &format!("oidc_client_id = \"a-client\"\noidc_redirect_uris = [\"https://a.example/cb\"]\n{secret}"),
    );
    let set = load(&[("a.toml", &good)]);
    let client = set.app("a").unwrap().oidc.clone().expect("a client");
    assert!(!client.public);
    assert!(client.scopes.contains(&"openid".to_string()));
    assert_eq!(set.oidc_app("a-client").map(|a| a.id.as_str()), Some("a"));

    let cases: Vec<(String, &str)> = vec![
        ("oidc_client_id = \"c\"\n".into(), "needs `oidc_redirect_uris`"),
        (
            "oidc_client_id = \"c\"\noidc_redirect_uris = [\"https://a.example/cb\"]\n".into(),
            "needs `oidc_client_secret_sha256`",
        ),
        (
            format!("oidc_client_id = \"c\"\noidc_public = true\noidc_redirect_uris = [\"https://a.example/cb\"]\n{secret}"),
            "has no secret",
        ),
        (
            "oidc_client_id = \"c\"\noidc_public = true\noidc_redirect_uris = [\"https://a.example/cb#x\"]\n".into(),
            "without a fragment",
        ),
        (
            "oidc_client_id = \"c\"\noidc_public = true\noidc_redirect_uris = [\"https://a.example/cb\"]\noidc_scopes = [\"admin\"]\n".into(),
            "the scopes are",
        ),
        ("oidc_client_secret_sha256 = \"nope\"\n".into(), "64 hex digits"),
        ("oidc_public = true\n".into(), "no `oidc_client_id`"),
    ];
    for (extra, want) in cases {
        let errors = errors(&[("a.toml", &app("a", &extra))]);
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{extra}: {errors:#?}"
        );
    }
    // One client id, one app.
    let twice = format!("{good}\n{}", good.replace("id = \"a\"", "id = \"b\""));
    let errors = errors(&[("a.toml", &twice)]);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("OIDC client id \"a-client\" is also app \"a\"'s")),
        "{errors:#?}"
    );
}

#[test]
fn partner_mfa_may_require_a_passkey() {
    let set = load(&[(
        "a.toml",
        "[[partner]]\nslug = \"acme\"\nmfa = \"passkey\"\n\n[[partner]]\nslug = \"globex\"\nmfa = true\n",
    )]);
    assert!(set.partners[0].mfa && set.partners[0].mfa_passkey);
    assert!(set.partners[1].mfa && !set.partners[1].mfa_passkey);
    one_error(
        &[(
            "a.toml",
            "[[partner]]\nslug = \"acme\"\nmfa = \"webauthn\"\n",
        )],
        "a.toml:3",
        "`mfa` must be true, false or \"passkey\", found \"webauthn\"",
    );
}
