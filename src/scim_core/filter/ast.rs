//! The filter and PATCH path AST (RFC 7644 §3.4.2.2, §3.5.2) and its canonical text.

use std::fmt;

/// An attribute path (RFC 7644 §3.4.2.2 `attrPath = [URI ":"] ATTRNAME *1subAttr`).
#[derive(Debug, Clone, PartialEq)]
pub struct AttrPath {
    /// Schema URN prefix if given, e.g. "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User" (as written, no trailing colon)
    pub uri: Option<String>,
    /// attribute name as written (case preserved; comparisons are case-insensitive elsewhere)
    pub attr: String,
    pub sub_attr: Option<String>,
}

impl AttrPath {
    /// A plain attribute name without URN or sub-attribute.
    pub fn new(attr: impl Into<String>) -> Self {
        Self {
            uri: None,
            attr: attr.into(),
            sub_attr: None,
        }
    }

    /// `attr.sub_attr` without URN.
    pub fn with_sub(attr: impl Into<String>, sub_attr: impl Into<String>) -> Self {
        Self {
            uri: None,
            attr: attr.into(),
            sub_attr: Some(sub_attr.into()),
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        f.write_str(&self.attr)?;
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// Comparison operators of RFC 7644 §3.4.2.2, Table 3 (`pr` is [`Filter::Present`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    /// The operator keyword in canonical (lower) case.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    /// Case-insensitive keyword lookup.
    pub(super) fn from_keyword(word: &str) -> Option<Self> {
        const ALL: [CompareOp; 9] = [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ];
        ALL.into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }

    pub(super) fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }

    pub(super) fn is_substring(self) -> bool {
        matches!(self, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A comparison value (RFC 7644 §3.4.2.2 `compValue`).
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    Str(String),
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::Str(s) => {
                let quoted = serde_json::to_string(s).map_err(|_| fmt::Error)?;
                f.write_str(&quoted)
            }
        }
    }
}

/// A parsed filter (RFC 7644 §3.4.2.2 `FILTER`).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: CompValue,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `emails[type eq "work" and value co "@x"]`: `attr` has no sub_attr; the inner filter's paths are relative to each element (their `attr` is the sub-attribute name, e.g. "type").
    ValuePath {
        attr: AttrPath,
        filter: Box<Filter>,
    },
}

/// Canonical filter text: lower-case keywords, single spaces, JSON-encoded
/// strings, and parentheses only where precedence or left-associativity
/// needs them. Parsing the output gives back an equal [`Filter`] as long as
/// the tree stays within the parser's limits.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {op} {value}"),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(left, right) => {
                write_operand(f, left, matches!(**left, Filter::Or(..)))?;
                f.write_str(" and ")?;
                write_operand(
                    f,
                    right,
                    matches!(**right, Filter::And(..) | Filter::Or(..)),
                )
            }
            Filter::Or(left, right) => {
                write_operand(f, left, false)?;
                f.write_str(" or ")?;
                write_operand(f, right, matches!(**right, Filter::Or(..)))
            }
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { attr, filter } => write!(f, "{attr}[{filter}]"),
        }
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, operand: &Filter, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({operand})")
    } else {
        write!(f, "{operand}")
    }
}

/// PATCH path (RFC 7644 §3.5.2): attrPath, or valuePath with optional ".subAttr", e.g. `emails[type eq "work"].value`, `members[value eq "abc"]`, `name.familyName`, `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute; carries its own `sub_attr` for plain paths such as
    /// `name.familyName` (never together with `value_filter`).
    pub attr: AttrPath,
    /// The `[…]` filter; its paths are relative to each element.
    pub value_filter: Option<Filter>,
    /// The `.subAttr` written after `]`.
    pub sub_attr: Option<String>,
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.attr)?;
        if let Some(filter) = &self.value_filter {
            write!(f, "[{filter}]")?;
        }
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}
