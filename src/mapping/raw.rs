//! A TOML document as a tree in which every value keeps its byte span, so that loading can
//! report every problem of a rule file with its line instead of stopping at the first
//! mismatch, as deserialising straight into typed structs would. Read from `toml_edit`'s
//! parsed document, whose items carry their spans through its public API (the same parser
//! and spans `toml` uses), so nothing depends on serde's private field names.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Value};

/// A value and the bytes of the document it came from. A table that has no span of its own
/// (an implicit table) gets the span covering its entries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    span: Range<usize>,
    value: RawValue,
}

impl Node {
    pub(crate) fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    pub(crate) fn get_ref(&self) -> &RawValue {
        &self.value
    }
}

/// A TOML value whose parts keep their spans.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawValue {
    String(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    /// Any TOML date, time or datetime, as written (normalised by `toml_datetime`).
    Datetime(toml::value::Datetime),
    Array(Vec<Node>),
    /// Keys in document order.
    Table(Vec<(String, Node)>),
}

impl RawValue {
    /// How messages name this value's type.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            RawValue::String(_) => "a string",
            RawValue::Integer(_) => "an integer",
            RawValue::Float(_) => "a float",
            RawValue::Boolean(_) => "a boolean",
            RawValue::Datetime(_) => "a date/time",
            RawValue::Array(_) => "an array",
            RawValue::Table(_) => "a table",
        }
    }

    /// The span covering a value's parts, for a value that came without one.
    fn covering_span(&self) -> Range<usize> {
        let spans: Vec<Range<usize>> = match self {
            RawValue::Array(items) => items.iter().map(Node::span).collect(),
            RawValue::Table(entries) => entries.iter().map(|(_, n)| n.span()).collect(),
            _ => Vec::new(),
        };
        let start = spans.iter().map(|s| s.start).min().unwrap_or(0);
        let end = spans.iter().map(|s| s.end).max().unwrap_or(start);
        start..end
    }
}

fn node(span: Option<Range<usize>>, value: RawValue) -> Node {
    Node {
        span: span.unwrap_or_else(|| value.covering_span()),
        value,
    }
}

fn item_node(item: &Item) -> Node {
    match item {
        Item::Value(value) => value_node(value),
        Item::Table(table) => node(table.span(), RawValue::Table(table_entries(table))),
        Item::ArrayOfTables(tables) => node(
            tables.span(),
            RawValue::Array(
                tables
                    .iter()
                    .map(|t| node(t.span(), RawValue::Table(table_entries(t))))
                    .collect(),
            ),
        ),
        // The parser never leaves an empty slot in a document.
        Item::None => node(None, RawValue::Table(Vec::new())),
    }
}

fn table_entries(table: &toml_edit::Table) -> Vec<(String, Node)> {
    table
        .iter()
        .map(|(key, item)| (key.to_string(), item_node(item)))
        .collect()
}

fn value_node(value: &Value) -> Node {
    let raw = match value {
        Value::String(v) => RawValue::String(v.value().clone()),
        Value::Integer(v) => RawValue::Integer(*v.value()),
        Value::Float(v) => RawValue::Float(*v.value()),
        Value::Boolean(v) => RawValue::Boolean(*v.value()),
        Value::Datetime(v) => RawValue::Datetime(*v.value()),
        Value::Array(items) => RawValue::Array(items.iter().map(value_node).collect()),
        Value::InlineTable(table) => RawValue::Table(
            table
                .iter()
                .map(|(key, v)| (key.to_string(), value_node(v)))
                .collect(),
        ),
    };
    node(value.span(), raw)
}

/// Parses a whole document into its top-level table.
pub(crate) fn parse_document(content: &str) -> Result<Vec<(String, Node)>, toml_edit::TomlError> {
    let document = ImDocument::parse(content)?;
    Ok(table_entries(document.as_table()))
}

/// Maps byte offsets of one file to 1-based line numbers.
#[derive(Debug)]
pub(crate) struct Lines {
    /// Byte offset of the start of every line after the first.
    starts: Vec<usize>,
}

impl Lines {
    pub(crate) fn new(content: &str) -> Self {
        Self {
            starts: content
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1)
                .collect(),
        }
    }

    /// The 1-based line holding byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset) + 1
    }

    /// The line a span starts on.
    pub(crate) fn of(&self, span: &Range<usize>) -> usize {
        self.line(span.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_spans_of_nested_values_and_datetimes() {
        let src = "[[rule]]\nid = \"a\"\ngrants = [\n  { app = \"x\", role = \"r\" },\n]\nuntil = 2027-06-30\n";
        let doc = parse_document(src).unwrap();
        let lines = Lines::new(src);
        assert_eq!(doc[0].0, "rule");
        let RawValue::Array(rules) = doc[0].1.get_ref() else {
            panic!("array expected")
        };
        assert_eq!(lines.of(&rules[0].span()), 1);
        let RawValue::Table(rule) = rules[0].get_ref() else {
            panic!("table expected")
        };
        assert_eq!(rule[0].0, "id");
        assert_eq!(lines.of(&rule[0].1.span()), 2);
        let RawValue::Array(grants) = rule[1].1.get_ref() else {
            panic!("array expected")
        };
        assert_eq!(lines.of(&grants[0].span()), 4);
        let RawValue::Datetime(until) = rule[2].1.get_ref() else {
            panic!("datetime expected")
        };
        assert_eq!(until.to_string(), "2027-06-30");
        assert_eq!(lines.of(&rule[2].1.span()), 6);
    }

    #[test]
    fn implicit_tables_get_the_span_of_their_entries() {
        let src = "[[rule]]\nid = \"a\"\ngrants.app = \"x\"\n[rule.x.y]\nz = 1\n";
        let doc = parse_document(src).unwrap();
        let lines = Lines::new(src);
        let RawValue::Array(rules) = doc[0].1.get_ref() else {
            panic!("array expected")
        };
        let RawValue::Table(rule) = rules[0].get_ref() else {
            panic!("table expected")
        };
        let found: Vec<(&str, usize)> = rule
            .iter()
            .map(|(k, v)| (k.as_str(), lines.of(&v.span())))
            .collect();
        assert_eq!(found, [("id", 2), ("grants", 3), ("x", 4)]);
    }

    #[test]
    fn lines_count_from_one() {
        let lines = Lines::new("a\nbc\n\nd");
        assert_eq!(lines.line(0), 1);
        assert_eq!(lines.line(1), 1);
        assert_eq!(lines.line(2), 2);
        assert_eq!(lines.line(5), 3);
        assert_eq!(lines.line(6), 4);
        assert_eq!(lines.line(99), 4);
    }
}
