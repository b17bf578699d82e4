//! One record to one row: the header layout says which value is which column, each value is
//! checked (length, line breaks, email syntax, dates, `active`), and a userName seen earlier
//! in the file is refused.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{
    clean_text, is_valid_email, parse_active, RosterRow, RowError, RowErrorKind, RowResult,
    MAX_FIELD_CHARS,
};
use crate::import::columns::{Column, HeaderRole};
use crate::import::dates;

/// A value quoted for a message, shortened when long.
pub(super) fn show(s: &str) -> String {
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
