use super::decoder::show;
use super::*;

fn row() -> RosterRow {
    RosterRow {
        line: 2,
        user_name: "ann@northside.example".into(),
        external_id: None,
        given_name: None,
        family_name: None,
        display_name: None,
        email: None,
        phone: None,
        title: None,
        department: None,
        employee_number: None,
        active: true,
        access_end: None,
        sponsor_email: None,
        groups: vec![],
    }
}

#[test]
fn clean_text_trims_and_unwraps_excel_text_cells() {
    assert_eq!(clean_text("  ann "), "ann");
    assert_eq!(clean_text("=\"0123\""), "0123");
    assert_eq!(clean_text(" =\" 0123 \" "), "0123");
    assert_eq!(clean_text("=\"say \"\"hi\"\"\""), "say \"hi\"");
    assert_eq!(clean_text("=\"\""), "");
    assert_eq!(clean_text("=SUM(A1)"), "=SUM(A1)");
    assert_eq!(clean_text("=\"open"), "=\"open");
    assert_eq!(clean_text("\u{a0}x\u{a0}"), "x");
}

#[test]
fn email_syntax() {
    for ok in ["a@b.c", "ann.lee+x@north-side.example", "Ann@Example.ORG"] {
        assert!(is_valid_email(ok), "{ok}");
    }
    for bad in [
        "", "ann", "@b.c", "a@", "a@b", "a@@b.c", "a@b@c.d", "a b@c.d", "a@b.c ", "a@.b.c",
        "a@b..c", "a@b.c.",
    ] {
        assert!(!is_valid_email(bad), "{bad}");
    }
}

#[test]
fn active_values() {
    for (s, v) in [
        ("", true),
        ("TRUE", true),
        ("Yes", true),
        ("y", true),
        ("1", true),
        ("false", false),
        ("NO", false),
        ("n", false),
        ("0", false),
    ] {
        assert_eq!(parse_active(s), Some(v), "{s}");
    }
    for bad in ["maybe", "2", "ja", "t"] {
        assert_eq!(parse_active(bad), None);
    }
}

#[test]
fn to_scim_minimal_row() {
    assert_eq!(
        row().to_scim(),
        json!({
            "schemas": [USER_SCHEMA],
            "userName": "ann@northside.example",
            "active": true
        })
    );
}

#[test]
fn to_scim_full_row() {
    let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let r = RosterRow {
        external_id: Some("E-1".into()),
        given_name: Some("Ann".into()),
        family_name: Some("Lee".into()),
        display_name: Some("Ann Lee".into()),
        email: Some("ann@northside.example".into()),
        phone: Some("+31 20 555 0100".into()),
        title: Some("Nurse".into()),
        department: Some("Cardiology".into()),
        employee_number: Some("0123".into()),
        active: false,
        access_end: Some(t),
        sponsor_email: Some("host@hospital.example".into()),
        groups: vec!["Nurses".into()],
        ..row()
    };
    let doc = r.to_scim();
    assert_eq!(
        doc,
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GUEST_SCHEMA],
            "userName": "ann@northside.example",
            "externalId": "E-1",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "displayName": "Ann Lee",
            "title": "Nurse",
            "active": false,
            "emails": [{"value": "ann@northside.example", "type": "work", "primary": true}],
            "phoneNumbers": [{"value": "+31 20 555 0100", "type": "work"}],
            ENTERPRISE_USER_SCHEMA: {"employeeNumber": "0123", "department": "Cardiology"},
            GUEST_SCHEMA: {"sponsorEmail": "host@hospital.example", "accessEndDate": "2026-01-01T00:00:00.000Z"}
        })
    );
    assert!(doc.get("groups").is_none());
    // Key order is stable (preserve_order): schemas first.
    let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    assert_eq!(keys[0], "schemas");
}

#[test]
fn to_scim_keeps_milliseconds_and_only_the_extensions_used() {
    let t = DateTime::parse_from_rfc3339("2025-12-31T16:30:00.25+01:00")
        .unwrap()
        .with_timezone(&Utc);
    let doc = RosterRow {
        access_end: Some(t),
        given_name: Some("Ann".into()),
        ..row()
    }
    .to_scim();
    assert_eq!(doc["schemas"], json!([USER_SCHEMA, GUEST_SCHEMA]));
    assert_eq!(
        doc[GUEST_SCHEMA]["accessEndDate"],
        "2025-12-31T15:30:00.250Z"
    );
    assert_eq!(doc["name"], json!({"givenName": "Ann"}));
}

#[test]
fn row_error_display() {
    let e = RowError {
        line: 7,
        column: Some("E-mail".into()),
        reason: "bad".into(),
        kind: RowErrorKind::InvalidEmail,
        user_name: None,
    };
    assert_eq!(e.to_string(), "line 7, column \"E-mail\": bad");
    assert!(!e.is_fatal());
    assert_eq!(e.kind.code(), "invalid_email");
}

#[test]
fn long_values_are_shown_shortened() {
    let s = "x".repeat(100);
    let shown = show(&s);
    assert!(shown.ends_with('…') && shown.chars().count() < 70);
}
