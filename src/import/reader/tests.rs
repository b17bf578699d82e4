use super::*;
use crate::import::rows::{ENTERPRISE_USER_SCHEMA, GUEST_SCHEMA, MAX_FIELD_CHARS};
use crate::import::{parse_column_maps, RosterRow};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::io;

fn reader(data: &[u8]) -> RosterReader<&[u8]> {
    RosterReader::new(data, &ColumnMap::default(), None).unwrap()
}

fn read(data: &[u8]) -> Vec<RowResult> {
    reader(data).collect()
}

fn ok_rows(data: &[u8]) -> Vec<RosterRow> {
    read(data)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn errors(data: &[u8]) -> Vec<RowError> {
    read(data).into_iter().filter_map(Result::err).collect()
}

fn one_error(data: &[u8]) -> RowError {
    let errs = errors(data);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    errs.into_iter().next().unwrap()
}

fn header_error(data: &[u8], map: &ColumnMap) -> HeaderError {
    match RosterReader::new(data, map, None) {
        Err(e) => e,
        Ok(_) => panic!("expected a header error"),
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn northside() -> ColumnMap {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/columns-northside.toml"),
    )
    .unwrap();
    parse_column_maps(&text, "columns-northside.toml").unwrap()["northside"].clone()
}

// --- format variants -------------------------------------------------------------------

#[test]
fn reads_every_standard_column() {
    let data = "userName,externalId,givenName,familyName,displayName,email,phone,title,department,employeeNumber,active,accessEndDate,sponsorEmail,groups\n\
                ann@north.example,E1,Ann,Lee,Ann Lee,ann@north.example,+31 20 555,Nurse,Cardiology,0123,no,2025-12-31,host@hosp.example,Nurses; ICU ;nurses;;\n";
    let rows = ok_rows(data.as_bytes());
    assert_eq!(
        rows,
        vec![RosterRow {
            line: 2,
            user_name: "ann@north.example".into(),
            external_id: Some("E1".into()),
            given_name: Some("Ann".into()),
            family_name: Some("Lee".into()),
            display_name: Some("Ann Lee".into()),
            email: Some("ann@north.example".into()),
            phone: Some("+31 20 555".into()),
            title: Some("Nurse".into()),
            department: Some("Cardiology".into()),
            employee_number: Some("0123".into()),
            active: false,
            access_end: Some(utc("2026-01-01T00:00:00Z")),
            sponsor_email: Some("host@hosp.example".into()),
            groups: vec!["Nurses".into(), "ICU".into()],
        }]
    );
}

#[test]
fn only_user_name_is_required_and_empty_cells_are_none() {
    let rows = ok_rows(b"userName,email,active\nann,,\n bob ,  , YES \n");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].email, None);
    assert!(rows[0].active && rows[1].active);
    assert_eq!(rows[1].user_name, "bob");
    let rows = ok_rows(b"USERNAME\nann\n");
    assert_eq!(rows[0].user_name, "ann");
    assert!(rows[0].groups.is_empty());
}

#[test]
fn headers_are_case_insensitive_and_trimmed() {
    let mut r = reader(b" USERNAME ;\temail\t;DisplayName\nann;a@b.co;Ann\n");
    assert_eq!(r.columns(), ["userName", "email", "displayName"]);
    assert_eq!(r.headers(), ["USERNAME", "email", "DisplayName"]);
    assert_eq!(r.next().unwrap().unwrap().email.as_deref(), Some("a@b.co"));
}

#[test]
fn bom_and_no_bom_read_the_same() {
    let plain = b"userName,email\nann,ann@x.org\n".to_vec();
    let mut with_bom = dialect::UTF8_BOM.to_vec();
    with_bom.extend_from_slice(&plain);
    let a = reader(&plain);
    let b = reader(&with_bom);
    assert!(!a.had_bom() && b.had_bom());
    assert_eq!(b.columns(), ["userName", "email"]);
    assert_eq!(a.collect::<Vec<_>>(), b.collect::<Vec<_>>());
}

#[test]
fn detects_each_delimiter() {
    for (data, d) in [
        (&b"userName,displayName\nann,\"Lee; Ann\"\n"[..], b','),
        (b"userName;displayName\nann;\"Lee, Ann\"\n", b';'),
        (b"userName\tdisplayName\nann\tLee, Ann; the second\n", b'\t'),
    ] {
        let mut r = reader(data);
        assert_eq!(r.dialect().delimiter, d);
        let row = r.next().unwrap().unwrap();
        assert_eq!(row.user_name, "ann");
        assert!(row.display_name.unwrap().starts_with("Lee"));
    }
}

#[test]
fn explicit_delimiter_wins_over_map_and_detection() {
    let data = b"userName;displayName\nann;\"Lee, Ann\"\n";
    let mut r = reader(data);
    assert_eq!(r.dialect().delimiter, b';');
    assert_eq!(
        r.next().unwrap().unwrap().display_name.as_deref(),
        Some("Lee, Ann")
    );
    // The map's comma beats detection: the whole header is then one unknown column ...
    let comma = ColumnMap::default().with_delimiter(b',').unwrap();
    let e = RosterReader::new(&data[..], &comma, None).err().unwrap();
    assert!(e.to_string().contains("\"userName;displayName\""), "{e}");
    // ... and the caller's delimiter beats the map.
    let mut r = RosterReader::new(&data[..], &comma, Some(b';')).unwrap();
    assert_eq!(
        r.next().unwrap().unwrap().display_name.as_deref(),
        Some("Lee, Ann")
    );
    let e = header_error(b"userName|email\nann|a@b.co\n", &ColumnMap::default());
    assert!(e.to_string().contains("\"userName|email\""), "{e}");
    let mut r = RosterReader::new(
        &b"userName|email\nann|a@b.co\n"[..],
        &ColumnMap::default(),
        Some(b'|'),
    )
    .unwrap();
    assert_eq!(r.next().unwrap().unwrap().email.as_deref(), Some("a@b.co"));
    assert!(matches!(
        RosterReader::new(&data[..], &ColumnMap::default(), Some(b'"')),
        Err(HeaderError::Delimiter('"'))
    ));
}

#[test]
fn map_delimiter_is_used_without_detection() {
    let map = ColumnMap::default().with_delimiter(b'\t').unwrap();
    // The header alone would be detected as comma-separated.
    let mut r = RosterReader::new(&b"userName\n\"Lee, Ann\"\n"[..], &map, None).unwrap();
    assert_eq!(r.dialect().delimiter, b'\t');
    assert_eq!(r.next().unwrap().unwrap().user_name, "Lee, Ann");
}

#[test]
fn quoted_fields_span_lines_and_errors_name_the_starting_line() {
    let data = b"userName,displayName,email\n\
                 ann,\"Ann\nLee\",ann@x.org\n\
                 bob,\"Bob \"\"the builder\"\"\nSmith\n\",bad-email\n\
                 cat,Cat,cat@x.org\n\
                 ,\"no\nname\",x@y.org\n";
    let results = read(data);
    assert_eq!(results.len(), 4);
    let ann = results[0].as_ref().unwrap();
    assert_eq!(
        (ann.line, ann.display_name.as_deref()),
        (2, Some("Ann\nLee"))
    );
    let bob = results[1].as_ref().unwrap_err();
    assert_eq!(bob.line, 4);
    assert_eq!(bob.column.as_deref(), Some("email"));
    assert_eq!(bob.kind, RowErrorKind::InvalidEmail);
    assert_eq!(bob.user_name.as_deref(), Some("bob"));
    let cat = results[2].as_ref().unwrap();
    assert_eq!(cat.line, 7);
    let nameless = results[3].as_ref().unwrap_err();
    assert_eq!(
        (nameless.line, nameless.kind.clone()),
        (8, RowErrorKind::MissingUserName)
    );
    assert_eq!(nameless.column.as_deref(), Some("userName"));
}

#[test]
fn crlf_lines_and_blank_lines_keep_line_numbers_right() {
    let data =
        b"userName,email\r\nann,ann@x.org\r\n\r\n\r\nbob,nope\r\n,\r\n ; \r\ncat,\"c\r\nat\"\r\n";
    let results = read(data);
    let lines: Vec<u64> = results
        .iter()
        .map(|r| match r {
            Ok(row) => row.line,
            Err(e) => e.line,
        })
        .collect();
    // Line 5 bob (after two blank lines), ",": blank row skipped; " ; " is one field.
    assert_eq!(lines, vec![2, 5, 7, 8]);
    assert_eq!(
        results[1].as_ref().unwrap_err().kind,
        RowErrorKind::InvalidEmail
    );
    // " ; " is a userName "; " on line 7 — fine as a value; cat's email spans two lines.
    assert_eq!(
        results[3].as_ref().unwrap_err().kind,
        RowErrorKind::InvalidText
    );
}

#[test]
fn excel_export_bom_semicolons_crlf_trailing_columns_and_text_cells() {
    // What Excel's "CSV UTF-8" export of a Dutch-locale sheet looks like: BOM, semicolons,
    // CRLF, empty columns to the right of the data, ="…" text cells, and empty rows below.
    let mut data = dialect::UTF8_BOM.to_vec();
    data.extend_from_slice(
        "userName;employeeNumber;phone;displayName;;\r\n\
         ann;=\"0123\";=\"0031205550100\";Ann;;\r\n\
         bob;\"=\"\"0456\"\"\";;Bob;;;;\r\n\
         ;;;;;\r\n\
         ;;;;;\r\n"
            .as_bytes(),
    );
    let mut r = reader(&data);
    assert_eq!(
        r.columns(),
        ["userName", "employeeNumber", "phone", "displayName", "", ""]
    );
    let rows: Vec<RosterRow> = r.by_ref().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].employee_number.as_deref(), Some("0123"));
    assert_eq!(rows[0].phone.as_deref(), Some("0031205550100"));
    assert_eq!(rows[1].employee_number.as_deref(), Some("0456"));
    assert_eq!(rows[1].line, 3);
}

#[test]
fn rows_shorter_than_the_header_are_padded() {
    let rows = ok_rows(b"userName,email,title\nann\nbob,bob@x.org\n");
    assert_eq!(rows[0].email, None);
    assert_eq!(rows[1].email.as_deref(), Some("bob@x.org"));
}

// --- row errors --------------------------------------------------------------------------

#[test]
fn missing_user_name() {
    let e = one_error(b"email,userName\nann@x.org,\nbob@x.org,bob\n");
    assert_eq!((e.line, e.kind.clone()), (2, RowErrorKind::MissingUserName));
    assert_eq!(e.column.as_deref(), Some("userName"));
    assert_eq!(e.user_name, None);
    let e = one_error(b"email,userName\nann@x.org,=\"\"\n");
    assert_eq!(e.kind, RowErrorKind::MissingUserName);
}

#[test]
fn invalid_email_and_sponsor_email() {
    let e = one_error(b"userName,email\nann,ann@localhost\n");
    assert_eq!(e.kind, RowErrorKind::InvalidEmail);
    assert_eq!(e.column.as_deref(), Some("email"));
    assert!(
        e.reason
            .contains("\"ann@localhost\" is not a valid email address"),
        "{}",
        e.reason
    );
    let e = one_error(b"userName,sponsorEmail\nann,host at hosp.example\n");
    assert_eq!(e.column.as_deref(), Some("sponsorEmail"));
    assert_eq!(e.kind, RowErrorKind::InvalidEmail);
}

#[test]
fn invalid_date_names_the_accepted_formats() {
    let e = one_error(b"userName,accessEndDate\nann,31/12/2025\n");
    assert_eq!((e.line, e.kind.clone()), (2, RowErrorKind::InvalidDate));
    assert_eq!(e.column.as_deref(), Some("accessEndDate"));
    assert!(e.reason.contains("\"31/12/2025\" is not a valid date"));
    assert!(e.reason.contains("YYYY-MM-DD"), "{}", e.reason);
    assert!(e.reason.contains("RFC 3339"), "{}", e.reason);

    let map = northside();
    let errs: Vec<RowError> =
        RosterReader::new(&b"Login;End date\nann;2025/12/31\n"[..], &map, None)
            .unwrap()
            .filter_map(Result::err)
            .collect();
    assert_eq!(errs[0].column.as_deref(), Some("End date"));
    assert!(errs[0].reason.contains("%d/%m/%Y"), "{}", errs[0].reason);
}

#[test]
fn dates_iso_rfc3339_and_end_of_day() {
    let rows = ok_rows(
        b"userName,accessEndDate\na,2025-12-31\nb,2025-12-31T17:00:00+02:00\nc,\nd,=\"2025-06-30\"\n",
    );
    assert_eq!(rows[0].access_end, Some(utc("2026-01-01T00:00:00Z")));
    assert_eq!(rows[1].access_end, Some(utc("2025-12-31T15:00:00Z")));
    assert_eq!(rows[2].access_end, None);
    assert_eq!(rows[3].access_end, Some(utc("2025-07-01T00:00:00Z")));
}

#[test]
fn invalid_active() {
    let e = one_error(b"userName,active\nann,maybe\nbob,N\n");
    assert_eq!(
        (e.kind.clone(), e.column.as_deref()),
        (RowErrorKind::InvalidActive, Some("active"))
    );
    assert!(e.reason.contains("yes/no"));
    assert!(!ok_rows(b"userName,active\nbob,N\n")[0].active);
}

#[test]
fn field_over_the_limit() {
    let long = "x".repeat(MAX_FIELD_CHARS + 1);
    let exact = "é".repeat(MAX_FIELD_CHARS);
    let data = format!(
        "userName,title,groups\nann,{long},\nbob,{exact},\"a;{long}\"\ncat,{exact},{exact}\n"
    );
    let errs = errors(data.as_bytes());
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!(
        (errs[0].line, errs[0].kind.clone()),
        (2, RowErrorKind::TooLong)
    );
    assert_eq!(errs[0].column.as_deref(), Some("title"));
    assert!(
        errs[0].reason.contains("1025 characters"),
        "{}",
        errs[0].reason
    );
    assert_eq!(
        (errs[1].line, errs[1].column.as_deref()),
        (3, Some("groups"))
    );
}

#[test]
fn more_fields_than_the_header() {
    let e = one_error(b"userName,email\nann,a@b.co,extra\nbob,b@b.co,,, ,\n");
    assert_eq!(
        (e.line, e.kind.clone(), e.column.clone()),
        (2, RowErrorKind::ExtraFields, None)
    );
    assert!(
        e.reason.contains("3 fields but the header has 2 columns"),
        "{}",
        e.reason
    );
    assert_eq!(e.user_name.as_deref(), Some("ann"));
    // A value under an empty header cell (a trailing column Excel left unnamed).
    let e = one_error(b"userName,,\nann,,x\nbob,,\n");
    assert_eq!(e.kind, RowErrorKind::ExtraFields);
    assert!(e.reason.contains("field 3"), "{}", e.reason);
}

#[test]
fn invalid_utf8_is_a_row_error() {
    let e = one_error(b"userName,displayName\nann,Ann \xE9t\xE9\nbob,Bob\n");
    assert_eq!((e.line, e.kind.clone()), (2, RowErrorKind::InvalidUtf8));
    assert_eq!(e.column.as_deref(), Some("displayName"));
    assert_eq!(e.user_name.as_deref(), Some("ann"));
    assert!(e.reason.contains("CSV UTF-8"));
    // In the userName itself: no userName to report, and nothing registered.
    let results = read(b"userName\n\xFFann\nann\n");
    assert_eq!(
        results[0].as_ref().unwrap_err().kind,
        RowErrorKind::InvalidUtf8
    );
    assert!(results[1].is_ok());
}

#[test]
fn control_characters_and_line_breaks_in_single_line_columns() {
    let e = one_error(b"userName,title\n\"ann\nlee\",x\n");
    assert_eq!(
        (e.kind.clone(), e.column.as_deref()),
        (RowErrorKind::InvalidText, Some("userName"))
    );
    assert!(e.reason.contains("one line"));
    let e = one_error(b"userName,title\nann,a\x07b\n");
    assert!(e.reason.contains("U+0007"), "{}", e.reason);
    let rows = ok_rows(b"userName,title\nann,\"Head of\r\nNursing\"\n");
    assert_eq!(rows[0].title.as_deref(), Some("Head of\r\nNursing"));
}

#[test]
fn duplicate_user_names_name_the_first_line() {
    let data =
        b"userName,email\nann@x.org,\nbob,\"b\nb@x.org\"\nANN@X.ORG,\nBob,b@x.org\nann@x.org,\n";
    let results = read(data);
    assert!(results[0].is_ok());
    // bob's row is invalid (line break in email) but its userName still counts.
    assert_eq!(
        results[1].as_ref().unwrap_err().kind,
        RowErrorKind::InvalidText
    );
    let e = results[2].as_ref().unwrap_err();
    assert_eq!(e.line, 5);
    assert_eq!(e.kind, RowErrorKind::DuplicateUserName { first_line: 2 });
    assert_eq!(e.column.as_deref(), Some("userName"));
    assert!(
        e.reason.contains("already appears on line 2"),
        "{}",
        e.reason
    );
    assert_eq!(e.user_name.as_deref(), Some("ANN@X.ORG"));
    assert_eq!(
        results[3].as_ref().unwrap_err().kind,
        RowErrorKind::DuplicateUserName { first_line: 3 }
    );
    assert_eq!(
        results[4].as_ref().unwrap_err().kind,
        RowErrorKind::DuplicateUserName { first_line: 2 }
    );
}

#[test]
fn the_first_problem_in_column_order_is_reported() {
    let e = one_error(b"userName,active,email\nann,perhaps,nope\n");
    assert_eq!(e.kind, RowErrorKind::InvalidActive);
}

// --- fatal errors ------------------------------------------------------------------------

#[test]
fn an_unclosed_quote_is_reported_at_its_line() {
    let small = b"userName,title\nann,x\nbob,\"never closed\ncat,y\ndan,z\n";
    let results = read(small);
    assert_eq!(results.len(), 2);
    let e = results[1].as_ref().unwrap_err();
    assert_eq!((e.line, e.kind.clone()), (3, RowErrorKind::UnclosedQuote));
    assert!(e.is_fatal());
    assert!(e.reason.contains("never closed"), "{}", e.reason);
    assert!(matches!(
        header_error(b"userName,\"title\nann,x\n", &ColumnMap::default()),
        HeaderError::UnclosedQuote
    ));

    let mut big = b"userName,title\nann,x\nbob,\"never closed\n".to_vec();
    for i in 0..40_000 {
        big.extend_from_slice(format!("user{i},some title here\n").as_bytes());
    }
    let results = read(&big);
    assert_eq!(results.len(), 2);
    let e = results[1].as_ref().unwrap_err();
    assert!(e.is_fatal());
    assert_eq!(e.line, 3);
    assert!(e.reason.contains("never closed"), "{}", e.reason);
}

#[test]
fn an_io_error_ends_the_rows_with_a_fatal_error() {
    struct Failing<'a>(&'a [u8]);
    impl Read for Failing<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("disk on fire"));
            }
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let r = RosterReader::new(
        Failing(b"userName\nann\nbob\n"),
        &ColumnMap::default(),
        None,
    )
    .unwrap();
    let results: Vec<RowResult> = r.collect();
    assert_eq!(results.len(), 3);
    let e = results[2].as_ref().unwrap_err();
    assert!(e.is_fatal() && e.reason.contains("disk on fire"));
    assert_eq!(e.line, 4);
}

// --- column maps -------------------------------------------------------------------------

#[test]
fn column_map_renames_ignores_and_reads_dates() {
    let data = b"Login;Personnel no.;First name;Surname;E-mail;Afdeling;End date;Cost centre;Teams;phone\r\n\
                ann@north.example;=\"007\";Ann;Lee;ann@north.example;Cardiologie;31/12/2025;\xFF garbage;ICU;+31 1\r\n\
                bob@north.example;;Bob;;bob@north.example;;2025-06-30;;;\r\n\
                cat@north.example;;;;;;15-01-2026;;;\r\n";
    let mut r = RosterReader::new(&data[..], &northside(), None).unwrap();
    assert_eq!(r.dialect().delimiter, b';');
    assert_eq!(
        r.columns(),
        [
            "userName",
            "employeeNumber",
            "givenName",
            "familyName",
            "email",
            "department",
            "accessEndDate",
            "",
            "groups",
            "phone"
        ]
    );
    let rows: Vec<RosterRow> = r
        .by_ref()
        .map(|x| x.unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(rows[0].user_name, "ann@north.example");
    assert_eq!(rows[0].employee_number.as_deref(), Some("007"));
    assert_eq!(rows[0].department.as_deref(), Some("Cardiologie"));
    assert_eq!(rows[0].access_end, Some(utc("2026-01-01T00:00:00Z")));
    assert_eq!(rows[0].groups, ["ICU"]);
    assert_eq!(rows[0].phone.as_deref(), Some("+31 1"));
    assert_eq!(rows[1].access_end, Some(utc("2025-07-01T00:00:00Z")));
    assert_eq!(rows[2].access_end, Some(utc("2026-01-16T00:00:00Z")));
}

#[test]
fn column_map_errors_name_the_partners_header() {
    let data = b"Login;E-mail\nann;not-an-email\n";
    let e: Vec<RowError> = RosterReader::new(&data[..], &northside(), None)
        .unwrap()
        .filter_map(Result::err)
        .collect();
    assert_eq!(e[0].column.as_deref(), Some("E-mail"));
    // Without the map the same headers are unknown.
    let he = header_error(data, &ColumnMap::default());
    assert!(he.to_string().contains("\"Login\", \"E-mail\""), "{he}");
}

// --- SCIM ----------------------------------------------------------------------------------

#[test]
fn a_parsed_row_becomes_the_scim_user_document() {
    let rows = ok_rows(
        b"userName,givenName,email,department,employeeNumber,accessEndDate,sponsorEmail,active,groups\n\
          ann@x.org,Ann,ann@x.org,Cardio,=\"0123\",2025-12-31,host@h.org,0,A;B\n",
    );
    assert_eq!(
        rows[0].to_scim(),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA, GUEST_SCHEMA],
            "userName": "ann@x.org",
            "name": {"givenName": "Ann"},
            "active": false,
            "emails": [{"value": "ann@x.org", "type": "work", "primary": true}],
            ENTERPRISE_USER_SCHEMA: {"employeeNumber": "0123", "department": "Cardio"},
            GUEST_SCHEMA: {"sponsorEmail": "host@h.org", "accessEndDate": "2026-01-01T00:00:00.000Z"}
        })
    );
}

#[test]
fn progress_counts_bytes() {
    let data = b"\xEF\xBB\xBFuserName\nann\nbob\n";
    let mut r = reader(data);
    r.next();
    assert!(r.bytes_read() > 3);
    r.by_ref().for_each(drop);
    assert_eq!(r.bytes_read(), data.len() as u64);
}

// --- throughput ----------------------------------------------------------------------------

/// Rough throughput and peak memory: `cargo test --release -- --ignored --nocapture
/// throughput` (set ROSTER_ROWS to change the row count; default 200,000).
#[test]
#[ignore]
fn throughput() {
    use std::io::{BufWriter, Seek, Write};
    let n: usize = std::env::var("ROSTER_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut file = tempfile::tempfile().unwrap();
    {
        let mut w = BufWriter::new(&mut file);
        w.write_all(b"\xEF\xBB\xBFuserName;externalId;givenName;familyName;displayName;email;phone;title;department;employeeNumber;active;accessEndDate;sponsorEmail;groups\r\n").unwrap();
        for i in 0..n {
            write!(
                w,
                "person{i}@northside.example;E{i};Given{i};Family{i};\"Family{i}, Given{i}\";person{i}@northside.example;+31 20 555 {i:04};Nurse;Cardiology;=\"{i:07}\";yes;2026-06-30;host{}@hospital.example;\"Nurses;ICU\"\r\n",
                i % 100
            )
            .unwrap();
        }
        w.flush().unwrap();
    }
    let size = file.stream_position().unwrap();
    file.rewind().unwrap();
    let start = std::time::Instant::now();
    let reader = RosterReader::new(
        std::io::BufReader::with_capacity(0, file),
        &ColumnMap::default(),
        None,
    )
    .unwrap();
    let (mut ok, mut bad) = (0usize, 0usize);
    for r in reader {
        match r {
            Ok(_) => ok += 1,
            Err(e) => {
                if bad == 0 {
                    println!("first error: {e}");
                }
                bad += 1
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!((ok, bad), (n, 0));
    let peak = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(str::to_string)
        })
        .unwrap_or_default();
    println!(
        "{n} rows ({:.1} MB) in {secs:.2} s: {:.0} rows/s, {:.1} MB/s; {peak}",
        size as f64 / 1e6,
        n as f64 / secs,
        size as f64 / 1e6 / secs
    );
}

mod header;
mod props;
