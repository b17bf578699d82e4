//! Roster rows: decoding one CSV record into a typed [`RosterRow`] or a [`RowError`] that
//! names the line, the input column and the reason, and rendering a row as the SCIM User
//! document it stands for, so that an imported person is validated exactly like a SCIM
//! write (RFC 7643 §4.1 User, §4.3 Enterprise User, and Guestbridge's guest extension).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::columns::{Column, HeaderRole};
use super::dates;

/// The longest value accepted in a field, in characters (for `groups`: per group).
pub const MAX_FIELD_CHARS: usize = 1024;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER_SCHEMA: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GUEST_SCHEMA: &str = "urn:guestbridge:params:scim:schemas:extension:guest:1.0:User";

/// One valid roster row: a person as the partner describes them. Empty cells are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RosterRow {
    /// Physical line the record starts on (1-based; the header is line 1).
    pub line: u64,
    pub user_name: String,
    pub external_id: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
    pub department: Option<String>,
    pub employee_number: Option<String>,
    /// `true` when the cell is empty or the column absent.
    pub active: bool,
    /// When access ends; a date alone means the end of that day (UTC).
    pub access_end: Option<DateTime<Utc>>,
    pub sponsor_email: Option<String>,
    /// Group display names, in file order, without duplicates (case-insensitively).
    pub groups: Vec<String>,
}

impl RosterRow {
    /// The SCIM User document this row stands for: core, enterprise and guest extension
    /// attributes, empty ones omitted, extension URNs listed in `schemas` only when the
    /// extension has a value. `groups` is not part of it: in SCIM a user's groups are
    /// read-only and memberships are written on the Groups (RFC 7643 §4.1.2).
    pub fn to_scim(&self) -> Value {
        let mut doc = Map::new();
        let mut schemas = vec![Value::from(USER_SCHEMA)];
        doc.insert("userName".into(), Value::from(self.user_name.as_str()));
        if let Some(v) = &self.external_id {
            doc.insert("externalId".into(), Value::from(v.as_str()));
        }
        let mut name = Map::new();
        if let Some(v) = &self.given_name {
            name.insert("givenName".into(), Value::from(v.as_str()));
        }
        if let Some(v) = &self.family_name {
            name.insert("familyName".into(), Value::from(v.as_str()));
        }
        if !name.is_empty() {
            doc.insert("name".into(), Value::Object(name));
        }
        if let Some(v) = &self.display_name {
            doc.insert("displayName".into(), Value::from(v.as_str()));
        }
        if let Some(v) = &self.title {
            doc.insert("title".into(), Value::from(v.as_str()));
        }
        doc.insert("active".into(), Value::Bool(self.active));
        if let Some(v) = &self.email {
            doc.insert(
                "emails".into(),
                json!([{ "value": v, "type": "work", "primary": true }]),
            );
        }
        if let Some(v) = &self.phone {
            doc.insert(
                "phoneNumbers".into(),
                json!([{ "value": v, "type": "work" }]),
            );
        }
        let mut enterprise = Map::new();
        if let Some(v) = &self.employee_number {
            enterprise.insert("employeeNumber".into(), Value::from(v.as_str()));
        }
        if let Some(v) = &self.department {
            enterprise.insert("department".into(), Value::from(v.as_str()));
        }
        if !enterprise.is_empty() {
            schemas.push(Value::from(ENTERPRISE_USER_SCHEMA));
            doc.insert(ENTERPRISE_USER_SCHEMA.into(), Value::Object(enterprise));
        }
        let mut guest = Map::new();
        if let Some(v) = &self.sponsor_email {
            guest.insert("sponsorEmail".into(), Value::from(v.as_str()));
        }
        if let Some(t) = self.access_end {
            guest.insert(
                "accessEndDate".into(),
                Value::from(t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
            );
        }
        if !guest.is_empty() {
            schemas.push(Value::from(GUEST_SCHEMA));
            doc.insert(GUEST_SCHEMA.into(), Value::Object(guest));
        }
        let mut out = Map::new();
        out.insert("schemas".into(), Value::Array(schemas));
        out.extend(doc);
        Value::Object(out)
    }
}

/// What is wrong with a row; lets callers count and group errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum RowErrorKind {
    MissingUserName,
    InvalidEmail,
    InvalidDate,
    InvalidActive,
    TooLong,
    /// More fields than the header has columns, or a value under an empty header cell.
    ExtraFields,
    InvalidUtf8,
    /// A control character, or a line break in a single-line column.
    InvalidText,
    DuplicateUserName {
        first_line: u64,
    },
    /// A quote opened in this record is never closed: the rest of the file was read as
    /// part of it. Fatal, like `Unreadable`.
    UnclosedQuote,
    /// Reading stopped here (I/O error or an oversized record): the rest of the file was
    /// not read, so the import must not treat people absent from it as removed.
    Unreadable,
}

impl RowErrorKind {
    /// A stable code for reports.
    pub fn code(&self) -> &'static str {
        match self {
            RowErrorKind::MissingUserName => "missing_user_name",
            RowErrorKind::InvalidEmail => "invalid_email",
            RowErrorKind::InvalidDate => "invalid_date",
            RowErrorKind::InvalidActive => "invalid_active",
            RowErrorKind::TooLong => "too_long",
            RowErrorKind::ExtraFields => "extra_fields",
            RowErrorKind::InvalidUtf8 => "invalid_utf8",
            RowErrorKind::InvalidText => "invalid_text",
            RowErrorKind::DuplicateUserName { .. } => "duplicate_user_name",
            RowErrorKind::UnclosedQuote => "unclosed_quote",
            RowErrorKind::Unreadable => "unreadable",
        }
    }
}

/// Why a row cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// Physical line the record starts on (1-based; the header is line 1).
    pub line: u64,
    /// The input header of the offending column, as written in the file.
    pub column: Option<String>,
    pub reason: String,
    pub kind: RowErrorKind,
    /// The row's userName when it could be read, so that a full import does not deactivate
    /// a person whose row merely had an error.
    pub user_name: Option<String>,
}

impl RowError {
    /// Whether the file could not be read to its end: the error is the last item, and rows
    /// after it are missing, so an import must not treat absent people as removed.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.kind,
            RowErrorKind::Unreadable | RowErrorKind::UnclosedQuote
        )
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(c) = &self.column {
            write!(f, ", column {c:?}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for RowError {}

/// What the roster reader yields for each non-blank record.
pub type RowResult = Result<RosterRow, RowError>;

/// A cell's text: surrounding whitespace trimmed and Excel's text-forcing `="0123"` unwrapped
/// (with its doubled quotes undone).
pub(crate) fn clean_text(s: &str) -> Cow<'_, str> {
    let t = s.trim();
    match t.strip_prefix("=\"").and_then(|r| r.strip_suffix('"')) {
        Some(inner) if inner.contains("\"\"") => {
            Cow::Owned(inner.replace("\"\"", "\"").trim().to_string())
        }
        Some(inner) => Cow::Borrowed(inner.trim()),
        None => Cow::Borrowed(t),
    }
}

/// Basic email syntax: one `@`, a non-empty local part, a domain of non-empty dot-separated
/// labels with at least one dot, no whitespace.
pub fn is_valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty())
        && !s.chars().any(char::is_whitespace)
}

/// `true/false`, `yes/no`, `y/n`, `1/0`, case-insensitively; empty means active.
pub fn parse_active(s: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["true", "yes", "y", "1"];
    const FALSE: [&str; 4] = ["false", "no", "n", "0"];
    if s.is_empty() || TRUE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|t| s.eq_ignore_ascii_case(t)) {
        Some(false)
    } else {
        None
    }
}

/// A value quoted for a message, shortened when long.
fn show(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX - 1).collect();
        format!("{head:?}…")
    }
}

/// Columns whose values may span lines (free text); all others must be on one line.
fn allows_line_breaks(c: Column) -> bool {
    matches!(
        c,
        Column::GivenName
            | Column::FamilyName
            | Column::DisplayName
            | Column::Title
            | Column::Department
    )
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// A 64-bit fingerprint of a lower-cased userName, kept with its first line instead of the
/// name itself: 12 bytes per entry and no heap allocation per name, so a 1,000,000-row file's
/// duplicate check needs about 26 MB. SipHash with fixed keys (`DefaultHasher::new()`), so
/// equal names agree within the process. The chance that two different names of a
/// million-row file share a fingerprint is about 3 in 100,000,000; the effect would be one row
/// reported as a duplicate (with both line numbers, so it can be checked), never a lost row.
fn fingerprint(lower: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    lower.hash(&mut h);
    h.finish()
}

fn char_count_over(s: &str, max: usize) -> Option<usize> {
    // Byte length bounds the character count from above: skip counting for short values.
    if s.len() <= max {
        return None;
    }
    let n = s.chars().count();
    (n > max).then_some(n)
}

/// Decodes records into rows for one file: the header layout, the accepted date formats and
/// a fingerprint of each lower-cased userName seen so far (with the line it first appeared on).
pub(crate) struct RowDecoder {
    roles: Vec<HeaderRole>,
    headers: Vec<String>,
    user_name_index: Option<usize>,
    date_formats: Vec<String>,
    /// Fingerprint → first line (lines past 4,294,967,295 are recorded as that).
    seen: HashMap<u64, u32>,
}

/// The first problem found in a row.
struct Problem {
    index: Option<usize>,
    kind: RowErrorKind,
    reason: String,
}

#[derive(Default)]
struct Values {
    text: [Option<String>; Column::ALL.len()],
    active: Option<bool>,
    access_end: Option<DateTime<Utc>>,
    groups: Vec<String>,
}

impl Values {
    fn take(&mut self, c: Column) -> Option<String> {
        self.text[c as usize].take()
    }
}

impl RowDecoder {
    pub(crate) fn new(
        roles: Vec<HeaderRole>,
        headers: Vec<String>,
        date_formats: Vec<String>,
    ) -> Self {
        let user_name_index = roles
            .iter()
            .position(|r| *r == HeaderRole::Column(Column::UserName));
        Self {
            roles,
            headers,
            user_name_index,
            date_formats,
            seen: HashMap::new(),
        }
    }

    /// Whether a row with this userName (compared case-insensitively) was decoded.
    pub(crate) fn saw(&self, user_name: &str) -> bool {
        self.seen
            .contains_key(&fingerprint(&user_name.to_lowercase()))
    }

    /// Decodes one record of `len` fields starting on `line`; `None` for a blank row.
    pub(crate) fn decode<'a>(
        &mut self,
        line: u64,
        len: usize,
        field: impl Fn(usize) -> &'a [u8],
    ) -> Option<RowResult> {
        if (0..len).all(|i| is_blank(field(i))) {
            // Blank rows (also Excel's rows of empty cells) carry no person.
            return None;
        }
        let mut problem: Option<Problem> = None;
        let mut note = |p: Problem| {
            if problem.is_none() {
                problem = Some(p);
            }
        };
        let width = self.roles.len();
        if let Some(last) = (width..len).rev().find(|&i| !is_blank(field(i))) {
            note(Problem {
                index: None,
                kind: RowErrorKind::ExtraFields,
                reason: format!(
                    "the row has {} fields but the header has {width} columns",
                    last + 1
                ),
            });
        }

        let mut values = Values::default();
        for (i, role) in self.roles.iter().enumerate() {
            let raw = field(i);
            let column = match *role {
                HeaderRole::Column(c) => c,
                HeaderRole::Ignored | HeaderRole::Unknown => continue,
                HeaderRole::Unnamed => {
                    if !is_blank(raw) {
                        note(Problem {
                            index: None,
                            kind: RowErrorKind::ExtraFields,
                            reason: format!(
                                "field {} has a value but its column has no header",
                                i + 1
                            ),
                        });
                    }
                    continue;
                }
            };
            let text = match std::str::from_utf8(raw) {
                Ok(s) => clean_text(s),
                Err(e) => {
                    note(Problem {
                        index: Some(i),
                        kind: RowErrorKind::InvalidUtf8,
                        reason: format!(
                            "the value is not valid UTF-8 (at byte {}); save the file as \"CSV UTF-8\"",
                            e.valid_up_to() + 1
                        ),
                    });
                    continue;
                }
            };
            match self.check_value(column, &text, &mut values) {
                Ok(()) => {
                    if !text.is_empty()
                        && !matches!(
                            column,
                            Column::Active | Column::AccessEndDate | Column::Groups
                        )
                    {
                        values.text[column as usize] = Some(text.into_owned());
                    }
                }
                Err((kind, reason)) => note(Problem {
                    index: Some(i),
                    kind,
                    reason,
                }),
            }
        }

        let user_name = values.text[Column::UserName as usize].clone();
        match &user_name {
            None => note(Problem {
                index: self.user_name_index,
                kind: RowErrorKind::MissingUserName,
                reason: "userName is empty; every row needs one".into(),
            }),
            Some(name) => {
                let key = fingerprint(&name.to_lowercase());
                match self.seen.get(&key) {
                    Some(&first_line) => note(Problem {
                        index: self.user_name_index,
                        kind: RowErrorKind::DuplicateUserName {
                            first_line: u64::from(first_line),
                        },
                        reason: format!(
                            "userName {} already appears on line {first_line} (userNames compare case-insensitively)",
                            show(name)
                        ),
                    }),
                    None => {
                        self.seen.insert(key, u32::try_from(line).unwrap_or(u32::MAX));
                    }
                }
            }
        }

        if let Some(p) = problem {
            return Some(Err(RowError {
                line,
                column: p.index.and_then(|i| self.headers.get(i).cloned()),
                reason: p.reason,
                kind: p.kind,
                user_name,
            }));
        }
        Some(Ok(RosterRow {
            line,
            user_name: values.take(Column::UserName).unwrap_or_default(),
            external_id: values.take(Column::ExternalId),
            given_name: values.take(Column::GivenName),
            family_name: values.take(Column::FamilyName),
            display_name: values.take(Column::DisplayName),
            email: values.take(Column::Email),
            phone: values.take(Column::Phone),
            title: values.take(Column::Title),
            department: values.take(Column::Department),
            employee_number: values.take(Column::EmployeeNumber),
            active: values.active.unwrap_or(true),
            access_end: values.access_end,
            sponsor_email: values.take(Column::SponsorEmail),
            groups: values.groups,
        }))
    }

    /// Checks one cleaned value of `column`, storing typed values in `values`.
    fn check_value(
        &self,
        column: Column,
        text: &str,
        values: &mut Values,
    ) -> Result<(), (RowErrorKind, String)> {
        let multi_line = allows_line_breaks(column);
        if let Some(ch) = text
            .chars()
            .find(|&ch| ch.is_control() && !(multi_line && matches!(ch, '\n' | '\r' | '\t')))
        {
            let reason = if matches!(ch, '\n' | '\r') {
                format!("{column} must be on one line")
            } else {
                format!(
                    "the value contains the control character U+{:04X}",
                    ch as u32
                )
            };
            return Err((RowErrorKind::InvalidText, reason));
        }
        if column != Column::Groups {
            if let Some(n) = char_count_over(text, MAX_FIELD_CHARS) {
                let hint = if text.contains('\n') {
                    " (a quote that is never closed makes a field swallow the lines after it)"
                } else {
                    ""
                };
                return Err((
                    RowErrorKind::TooLong,
                    format!("the value is {n} characters long; at most {MAX_FIELD_CHARS} are allowed{hint}"),
                ));
            }
        }
        match column {
            Column::Email | Column::SponsorEmail if !text.is_empty() && !is_valid_email(text) => Err((
                RowErrorKind::InvalidEmail,
                format!("{} is not a valid email address (expected name@example.org)", show(text)),
            )),
            Column::Active => match parse_active(text) {
                Some(b) => {
                    values.active = Some(b);
                    Ok(())
                }
                None => Err((
                    RowErrorKind::InvalidActive,
                    format!(
                        "{} is not a valid active value (use true/false, yes/no, y/n or 1/0; empty means true)",
                        show(text)
                    ),
                )),
            },
            Column::AccessEndDate if !text.is_empty() => {
                match dates::parse_access_end(text, &self.date_formats) {
                    Some(t) => {
                        values.access_end = Some(t);
                        Ok(())
                    }
                    None => Err((
                        RowErrorKind::InvalidDate,
                        format!(
                            "{} is not a valid date (accepted: {})",
                            show(text),
                            dates::describe_formats(&self.date_formats)
                        ),
                    )),
                }
            }
            Column::Groups => {
                for group in text.split(';').map(str::trim).filter(|g| !g.is_empty()) {
                    if let Some(n) = char_count_over(group, MAX_FIELD_CHARS) {
                        return Err((
                            RowErrorKind::TooLong,
                            format!("a group name is {n} characters long; at most {MAX_FIELD_CHARS} are allowed"),
                        ));
                    }
                    let lower = group.to_lowercase();
                    if !values.groups.iter().any(|g| g.to_lowercase() == lower) {
                        values.groups.push(group.to_string());
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
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
}
