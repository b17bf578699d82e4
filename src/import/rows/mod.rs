//! Roster rows: decoding one CSV record into a typed [`RosterRow`] or a [`RowError`] that
//! names the line, the input column and the reason, and rendering a row as the SCIM User
//! document it stands for, so that an imported person is validated exactly like a SCIM
//! write (RFC 7643 §4.1 User, §4.3 Enterprise User, and Guestbridge's guest extension).

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

pub(crate) use decoder::RowDecoder;

mod decoder;

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

#[cfg(test)]
mod tests;
