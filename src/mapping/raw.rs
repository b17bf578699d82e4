//! A TOML document as a tree in which every value keeps its byte span, so that loading can
//! report every problem of a rule file with its line instead of stopping at the first
//! mismatch, as deserialising straight into typed structs would. Built with `toml`'s own
//! deserializer, which hands out spans the way `toml::Spanned` receives them; datetimes
//! arrive as their RFC 3339-like text.

use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// The key under which `toml`'s deserializer hands out a datetime (toml_datetime's private
/// field name, stable across the 0.6 line).
const DATETIME_KEY: &str = "$__toml_private_datetime";

/// The struct and field names through which `toml`'s deserializer hands out a value's span
/// (serde_spanned 0.6, which `toml::Spanned` is). Spelled out rather than using
/// `toml::Spanned` because that fails on tables without a span (implicit tables such as
/// `a` in `a.b = 1`), which [`Node`] accepts.
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];

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

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor)
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor).map(|n| n.value)
    }
}

/// Visits a spanned value (a map of the three span fields), or a value without a span.
struct NodeVisitor;

impl NodeVisitor {
    fn bare<E>(value: RawValue) -> Result<Node, E> {
        Ok(Node {
            span: value.covering_span(),
            value,
        })
    }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Self::bare(RawValue::Boolean(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Self::bare(RawValue::Integer(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        let v = i64::try_from(v).map_err(|_| E::custom("integer out of range"))?;
        Self::bare(RawValue::Integer(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Self::bare(RawValue::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Self::bare(RawValue::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Self::bare(RawValue::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Self::bare(RawValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        let mut span: (Option<usize>, Option<usize>) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            if entries.is_empty() {
                match key.as_str() {
                    SPANNED_START => {
                        span.0 = Some(map.next_value()?);
                        continue;
                    }
                    SPANNED_END => {
                        span.1 = Some(map.next_value()?);
                        continue;
                    }
                    SPANNED_VALUE => {
                        let value = map.next_value::<RawValue>()?;
                        let span = match span {
                            (Some(start), Some(end)) => start..end,
                            _ => value.covering_span(),
                        };
                        return Ok(Node { span, value });
                    }
                    DATETIME_KEY => {
                        let text: String = map.next_value()?;
                        let datetime = text
                            .parse::<toml::value::Datetime>()
                            .map_err(de::Error::custom)?;
                        return Self::bare(RawValue::Datetime(datetime));
                    }
                    _ => {}
                }
            }
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Self::bare(RawValue::Table(entries))
    }
}

/// Parses a whole document into its top-level table.
pub(crate) fn parse_document(content: &str) -> Result<Vec<(String, Node)>, toml::de::Error> {
    match toml::from_str::<RawValue>(content)? {
        RawValue::Table(entries) => Ok(entries),
        // A document is always a table; anything else cannot come out of the parser.
        other => Err(de::Error::custom(format!(
            "expected a table at the top level, found {}",
            other.type_name()
        ))),
    }
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
