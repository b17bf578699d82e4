//! Header rows that cannot be read or name the wrong columns.

use super::*;
use crate::import::DuplicateColumn;

#[test]
fn unknown_columns_are_listed_by_name() {
    let e = header_error(
        b"userName,Kostenplaats,email,Notes,Kostenplaats\n",
        &ColumnMap::default(),
    );
    match &e {
        HeaderError::Columns {
            unknown,
            duplicate,
            missing,
        } => {
            assert_eq!(unknown, &["Kostenplaats", "Notes"]);
            assert!(duplicate.is_empty() && missing.is_empty());
        }
        other => panic!("{other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.starts_with("unknown columns \"Kostenplaats\", \"Notes\""),
        "{msg}"
    );
    assert!(msg.contains("ignore"), "{msg}");
}

#[test]
fn duplicate_columns_are_refused() {
    let e = header_error(b"userName,Email,EMAIL \n", &ColumnMap::default());
    let HeaderError::Columns { duplicate, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(
        duplicate,
        &[DuplicateColumn {
            column: "email".into(),
            headers: vec!["Email".into(), "EMAIL".into()]
        }]
    );
    // A renamed header and the standard one standing for the same column.
    let e = header_error(b"Login;userName\n", &northside());
    assert!(
        e.to_string()
            .contains("column userName is given more than once: \"Login\", \"userName\""),
        "{e}"
    );
}

#[test]
fn missing_user_name_column() {
    let e = header_error(b"email,displayName\na@b.co,A\n", &ColumnMap::default());
    let HeaderError::Columns {
        missing, unknown, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(missing, &["userName"]);
    assert!(unknown.is_empty());
    assert_eq!(e.to_string(), "required column userName is missing");
    // All problems at once.
    let e = header_error(b"email,email,foo\n", &ColumnMap::default());
    let msg = e.to_string();
    assert!(
        msg.contains("\"foo\"") && msg.contains("more than once") && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn unreadable_headers() {
    let map = ColumnMap::default();
    assert!(matches!(header_error(b"", &map), HeaderError::Empty));
    assert!(matches!(
        header_error(b"\xEF\xBB\xBF\r\n\r\n", &map),
        HeaderError::Empty
    ));
    assert!(matches!(
        header_error(b"\xFF\xFEu\0s\0", &map),
        HeaderError::Utf16
    ));
    assert!(matches!(
        header_error(b"userName,\xFFx\n", &map),
        HeaderError::InvalidUtf8 { column: 2 }
    ));
    // A header-only file has no rows.
    assert_eq!(read(b"userName\r\n").len(), 0);
    // Leading blank lines: the header is where it is.
    let mut r = reader(b"\n\nuserName\nann\n");
    assert_eq!(r.header_line(), 3);
    assert_eq!(r.next().unwrap().unwrap().line, 4);
}
