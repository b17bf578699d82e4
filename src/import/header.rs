//! The header row of a roster: each input header resolved through the partner's column map
//! to the standard column it stands for, and every problem with the set (unknown, duplicate,
//! missing columns) reported at once, so one correction fixes the file.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};

use super::columns::{Column, ColumnMap, HeaderRole};
use super::records::RecordReader;
use super::rows::clean_text;

/// Why a roster cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("could not read the file: {0}")]
    Io(#[from] io::Error),
    #[error("the file is empty: its first row must be a header naming the columns")]
    Empty,
    #[error("the file is UTF-16 encoded; save it as \"CSV UTF-8\" and import it again")]
    Utf16,
    #[error("the header row is not valid UTF-8 (column {column}); save the file as \"CSV UTF-8\"")]
    InvalidUtf8 { column: usize },
    #[error("the header row is too long: {0}")]
    TooLarge(String),
    #[error("a quote in the header row is never closed")]
    UnclosedQuote,
    #[error("delimiter {0:?} is not supported (use ',', ';', tab or '|')")]
    Delimiter(char),
    #[error("{}", ColumnProblems { unknown, duplicate, missing })]
    Columns {
        /// Headers that name no standard column and are not ignored, as written.
        unknown: Vec<String>,
        /// Standard columns given by more than one header.
        duplicate: Vec<DuplicateColumn>,
        /// Required standard columns that no header gives.
        missing: Vec<String>,
    },
}

/// A standard column that more than one input header stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateColumn {
    pub column: String,
    /// The input headers, as written.
    pub headers: Vec<String>,
}

struct ColumnProblems<'a> {
    unknown: &'a [String],
    duplicate: &'a [DuplicateColumn],
    missing: &'a [String],
}

impl fmt::Display for ColumnProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted = |names: &[String]| {
            names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.unknown.is_empty() {
            parts.push(format!(
                "unknown column{} {} (the standard columns are {}; other headers need a rename \
                 or an `ignore` entry in the partner's column map)",
                if self.unknown.len() > 1 { "s" } else { "" },
                quoted(self.unknown),
                Column::list()
            ));
        }
        for d in self.duplicate {
            parts.push(format!(
                "column {} is given more than once: {}",
                d.column,
                quoted(&d.headers)
            ));
        }
        for m in self.missing {
            parts.push(format!("required column {m} is missing"));
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// The header row as read: the input headers as written (trimmed) and what each stands for.
pub(super) struct Header {
    pub headers: Vec<String>,
    pub roles: Vec<HeaderRole>,
}

impl Header {
    /// The standard column each input column stands for, or `""` if it is ignored or has no
    /// header.
    pub fn columns(&self) -> Vec<String> {
        self.roles
            .iter()
            .map(|r| match r {
                HeaderRole::Column(c) => c.name().to_string(),
                _ => String::new(),
            })
            .collect()
    }
}

/// Resolve the record `records` has just read as the header row.
pub(super) fn resolve<R: Read>(
    records: &RecordReader<R>,
    map: &ColumnMap,
) -> Result<Header, HeaderError> {
    let mut headers = Vec::with_capacity(records.len());
    let mut roles = Vec::with_capacity(records.len());
    let mut by_column: BTreeMap<Column, Vec<String>> = BTreeMap::new();
    let mut unknown: Vec<String> = Vec::new();
    for i in 0..records.len() {
        let text = std::str::from_utf8(records.field(i))
            .map_err(|_| HeaderError::InvalidUtf8 { column: i + 1 })?;
        let name = clean_text(text).into_owned();
        let role = map.resolve(&name);
        match role {
            HeaderRole::Column(c) => by_column.entry(c).or_default().push(name.clone()),
            HeaderRole::Unknown => {
                if !unknown.contains(&name) {
                    unknown.push(name.clone());
                }
            }
            HeaderRole::Ignored | HeaderRole::Unnamed => {}
        }
        headers.push(name);
        roles.push(role);
    }
    let duplicate: Vec<DuplicateColumn> = by_column
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(c, names)| DuplicateColumn {
            column: c.name().to_string(),
            headers: names.clone(),
        })
        .collect();
    let missing: Vec<String> = Column::ALL
        .into_iter()
        .filter(|c| c.is_required() && !by_column.contains_key(c))
        .map(|c| c.name().to_string())
        .collect();
    if !unknown.is_empty() || !duplicate.is_empty() || !missing.is_empty() {
        return Err(HeaderError::Columns {
            unknown,
            duplicate,
            missing,
        });
    }
    Ok(Header { headers, roles })
}
