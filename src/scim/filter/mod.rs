//! SCIM filter expressions and PATCH paths: a parser for the filter grammar of
//! RFC 7644 §3.4.2.2 (Figure 1 ABNF) into a [`Filter`] AST, a parser for PATCH
//! operation paths (RFC 7644 §3.5.2, `PATH = attrPath / valuePath [subAttr]`),
//! canonical text rendering (`Display`), and an in-memory matcher that
//! evaluates a filter against one JSON object: a resource, or one element of a
//! multi-valued attribute as PATCH value-path filters need (RFC 7644
//! §3.5.2.1–3). The matcher is not meant for listing (RFC 7644 §3.4.2), which
//! is done by the store. Attribute names and operators are case-insensitive
//! (RFC 7644 §3.4.2.2, RFC 7643 §2.1); string comparisons honour `caseExact`
//! (RFC 7643 §2.2) through a callback. Parse errors carry a byte position and
//! map to the `invalidFilter` / `invalidPath` error types (RFC 7644 §3.12).
//! Nesting is limited to [`MAX_NESTING_DEPTH`] levels and the number of
//! `and`/`or` operators to [`MAX_LOGICAL_OPERATORS`], so hostile input yields
//! an error instead of exhausting the stack; the input length is bounded by
//! the caller.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use chrono::DateTime;
use serde_json::{Number, Value};

use crate::scim::error::ScimError;

/// Deepest allowed nesting of `(`…`)`, `not (`…`)` and `[`…`]`.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Most `and`/`or` operators one filter or path may contain. Chains are
/// parsed iteratively but produce a left-deep tree, which the matcher, `Drop`
/// and `Display` walk recursively; this bounds that depth.
pub const MAX_LOGICAL_OPERATORS: usize = 1000;

/// Core schemas whose attributes live at the top level of a resource.
const CORE_SCHEMAS: [&str; 2] = [
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:core:2.0:Group",
];

/// How much of an offending token an error message quotes.
const MAX_QUOTED_CHARS: usize = 40;

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
    fn from_keyword(word: &str) -> Option<Self> {
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

    fn is_ordering(self) -> bool {
        matches!(
            self,
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
        )
    }

    fn is_substring(self) -> bool {
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

/// Where and what went wrong: byte offset in the input and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub position: usize,
    pub message: String,
}

impl FilterError {
    pub fn new(position: usize, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }

    /// The error as a SCIM `invalidPath` error, for PATCH paths
    /// ([`parse_patch_path`]); `From<FilterError> for ScimError` gives
    /// `invalidFilter`.
    pub fn into_path_error(self) -> ScimError {
        ScimError::invalid_path(format!("invalid path {self}"))
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at position {}: {}", self.position, self.message)
    }
}

impl std::error::Error for FilterError {}

impl From<FilterError> for ScimError {
    fn from(e: FilterError) -> Self {
        ScimError::invalid_filter(format!("invalid filter {e}"))
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

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// A string literal including its quotes, not yet unescaped.
    Str(&'a str),
    /// Any other run of characters up to whitespace, a bracket, a
    /// parenthesis or a quote: attribute paths, keywords, operators,
    /// numbers, `true`/`false`/`null`, and `.subAttr` after `]`.
    Word(&'a str),
    End,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    tok: Tok<'a>,
    pos: usize,
    space_before: bool,
}

impl Token<'_> {
    /// How an error message names this token.
    fn describe(&self) -> String {
        match self.tok {
            Tok::LParen => "'('".to_string(),
            Tok::RParen => "')'".to_string(),
            Tok::LBracket => "'['".to_string(),
            Tok::RBracket => "']'".to_string(),
            Tok::Str(raw) => shorten(raw),
            Tok::Word(w) => format!("'{}'", shorten(w)),
            Tok::End => "end of input".to_string(),
        }
    }

    fn is_word(&self, keyword: &str) -> bool {
        matches!(self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(keyword))
    }
}

fn shorten(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_delimiter(b: u8) -> bool {
    is_space(b) || matches!(b, b'(' | b')' | b'[' | b']' | b'"')
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    peeked: Option<Token<'a>>,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            peeked: None,
        }
    }

    fn peek(&mut self) -> Result<Token<'a>, FilterError> {
        if let Some(token) = self.peeked {
            return Ok(token);
        }
        let token = self.scan()?;
        self.peeked = Some(token);
        Ok(token)
    }

    /// Un-read the token just read (at most one).
    fn push_back(&mut self, token: Token<'a>) {
        self.peeked = Some(token);
    }

    fn next_token(&mut self) -> Result<Token<'a>, FilterError> {
        match self.peeked.take() {
            Some(token) => Ok(token),
            None => self.scan(),
        }
    }

    fn scan(&mut self) -> Result<Token<'a>, FilterError> {
        let bytes = self.src.as_bytes();
        let ws_start = self.pos;
        while bytes.get(self.pos).copied().is_some_and(is_space) {
            self.pos += 1;
        }
        let pos = self.pos;
        let space_before = pos > ws_start;
        let Some(&first) = bytes.get(pos) else {
            return Ok(Token {
                tok: Tok::End,
                pos,
                space_before,
            });
        };
        let tok =
            match first {
                b'(' => Tok::LParen,
                b')' => Tok::RParen,
                b'[' => Tok::LBracket,
                b']' => Tok::RBracket,
                b'"' => {
                    let mut i = pos + 1;
                    loop {
                        match bytes.get(i) {
                            None => return Err(FilterError::new(
                                pos,
                                "unterminated string: expected a closing '\"', found end of input",
                            )),
                            Some(b'\\') => i += 2,
                            Some(b'"') => break,
                            Some(_) => i += 1,
                        }
                    }
                    // Both ends are ASCII quotes, hence char boundaries.
                    Tok::Str(&self.src[pos..=i])
                }
                _ => {
                    let mut i = pos;
                    while bytes.get(i).is_some_and(|&b| !is_delimiter(b)) {
                        i += 1;
                    }
                    // Ends at an ASCII delimiter or the end: a char boundary.
                    Tok::Word(&self.src[pos..i])
                }
            };
        self.pos = match tok {
            Tok::Str(s) | Tok::Word(s) => pos + s.len(),
            _ => pos + 1,
        };
        Ok(Token {
            tok,
            pos,
            space_before,
        })
    }
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

fn expected(what: &str, found: &Token<'_>) -> FilterError {
    FilterError::new(
        found.pos,
        format!("expected {what}, found {}", found.describe()),
    )
}

struct Parser<'a> {
    lex: Lexer<'a>,
    depth: usize,
    logical_ops: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Self {
            lex: Lexer::new(input),
            depth: 0,
            logical_ops: 0,
        }
    }

    fn enter(&mut self, pos: usize) -> Result<(), FilterError> {
        if self.depth >= MAX_NESTING_DEPTH {
            return Err(FilterError::new(
                pos,
                format!(
                    "nesting deeper than {MAX_NESTING_DEPTH} levels of parentheses or brackets"
                ),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn count_logical(&mut self, pos: usize) -> Result<(), FilterError> {
        self.logical_ops += 1;
        if self.logical_ops > MAX_LOGICAL_OPERATORS {
            return Err(FilterError::new(
                pos,
                format!("too many 'and'/'or' operators (at most {MAX_LOGICAL_OPERATORS})"),
            ));
        }
        Ok(())
    }

    /// `or` chain (lowest precedence, left-associative).
    fn parse_or(&mut self, in_value_path: bool) -> Result<Filter, FilterError> {
        let mut left = self.parse_and(in_value_path)?;
        loop {
            let token = self.lex.peek()?;
            if !token.is_word("or") {
                return Ok(left);
            }
            self.lex.next_token()?;
            self.count_logical(token.pos)?;
            let right = self.parse_and(in_value_path)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
    }

    /// `and` chain (binds tighter than `or`, left-associative).
    fn parse_and(&mut self, in_value_path: bool) -> Result<Filter, FilterError> {
        let mut left = self.parse_unary(in_value_path)?;
        loop {
            let token = self.lex.peek()?;
            if !token.is_word("and") {
                return Ok(left);
            }
            self.lex.next_token()?;
            self.count_logical(token.pos)?;
            let right = self.parse_unary(in_value_path)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
    }

    /// `not (…)`, `(…)`, or an attribute expression / value path.
    fn parse_unary(&mut self, in_value_path: bool) -> Result<Filter, FilterError> {
        let token = self.lex.next_token()?;
        match token.tok {
            Tok::LParen => self.parse_group(token.pos, in_value_path),
            Tok::Word(w) if w.eq_ignore_ascii_case("not") => {
                let open = self.lex.next_token()?;
                if open.tok != Tok::LParen {
                    return Err(expected("'(' after 'not'", &open));
                }
                let inner = self.parse_group(open.pos, in_value_path)?;
                Ok(Filter::Not(Box::new(inner)))
            }
            // `and`/`or` where an operand belongs is a missing operand, not
            // an attribute of that name.
            Tok::Word(w) if !(w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or")) => {
                self.parse_attr_expr(w, token.pos, in_value_path)
            }
            _ => Err(expected("an attribute path, 'not' or '('", &token)),
        }
    }

    /// The rest of a parenthesised group whose `(` is at `open`.
    fn parse_group(&mut self, open: usize, in_value_path: bool) -> Result<Filter, FilterError> {
        self.enter(open)?;
        let inner = self.parse_or(in_value_path)?;
        let close = self.lex.next_token()?;
        if close.tok != Tok::RParen {
            return Err(expected(
                &format!("'and', 'or' or ')' to close the '(' at position {open}"),
                &close,
            ));
        }
        self.depth -= 1;
        Ok(inner)
    }

    /// The rest of a value-path filter whose `[` is at `open`.
    fn parse_value_filter(&mut self, open: usize) -> Result<Filter, FilterError> {
        self.enter(open)?;
        let inner = self.parse_or(true)?;
        let close = self.lex.next_token()?;
        if close.tok != Tok::RBracket {
            return Err(expected(
                &format!("'and', 'or' or ']' to close the '[' at position {open}"),
                &close,
            ));
        }
        self.depth -= 1;
        Ok(inner)
    }

    fn parse_attr_expr(
        &mut self,
        word: &str,
        pos: usize,
        in_value_path: bool,
    ) -> Result<Filter, FilterError> {
        let path = parse_attr_path(word, pos)?;
        let token = self.lex.next_token()?;
        match token.tok {
            Tok::LBracket => {
                if in_value_path {
                    return Err(FilterError::new(
                        token.pos,
                        "nested value paths are not allowed: found '[' inside a value path filter",
                    ));
                }
                check_value_path_attr(&path, word, token.pos)?;
                let inner = self.parse_value_filter(token.pos)?;
                let after = self.lex.peek()?;
                let filter = match after.tok {
                    // Not in RFC 7644's filter grammar, but Entra ID matches users with
                    // `emails[type eq "work"].value eq "x"`: read it as
                    // `emails[type eq "work" and value eq "x"]`.
                    Tok::Word(w) if w.starts_with('.') => {
                        self.lex.next_token()?;
                        let sub_word = &w[1..];
                        let sub = parse_attr_path(sub_word, after.pos + 1)?;
                        if sub.uri.is_some() || sub.sub_attr.is_some() {
                            return Err(FilterError::new(
                                after.pos + 1,
                                format!(
                                    "expected a sub-attribute name after ']', found '{}'",
                                    shorten(w)
                                ),
                            ));
                        }
                        let comparison = self.parse_comparison(sub, sub_word)?;
                        Filter::And(Box::new(inner), Box::new(comparison))
                    }
                    _ => inner,
                };
                Ok(Filter::ValuePath {
                    attr: path,
                    filter: Box::new(filter),
                })
            }
            Tok::Word(_) => {
                self.lex.push_back(token);
                self.parse_comparison(path, word)
            }
            _ => Err(expected(
                &format!("a comparison operator or '[' after '{}'", shorten(word)),
                &token,
            )),
        }
    }

    /// `op value` or `pr` after an attribute path.
    fn parse_comparison(&mut self, path: AttrPath, word: &str) -> Result<Filter, FilterError> {
        let token = self.lex.next_token()?;
        match token.tok {
            Tok::Word(op_word) if op_word.eq_ignore_ascii_case("pr") => Ok(Filter::Present(path)),
            Tok::Word(op_word) => {
                let Some(op) = CompareOp::from_keyword(op_word) else {
                    return Err(expected(
                        &format!("a comparison operator after '{}'", shorten(word)),
                        &token,
                    ));
                };
                let value = self.parse_comp_value(op, op_word)?;
                Ok(Filter::Compare { path, op, value })
            }
            _ => Err(expected(
                &format!("a comparison operator after '{}'", shorten(word)),
                &token,
            )),
        }
    }

    fn parse_comp_value(&mut self, op: CompareOp, op_word: &str) -> Result<CompValue, FilterError> {
        let token = self.lex.next_token()?;
        let value = match token.tok {
            Tok::Str(raw) => CompValue::Str(parse_json_string(raw, token.pos)?),
            Tok::Word(w) => parse_literal(w, token.pos)?,
            _ => {
                return Err(expected(
                    &format!(
                        "a value (quoted string, number, true, false or null) after '{op_word}'"
                    ),
                    &token,
                ))
            }
        };
        let is_str = matches!(value, CompValue::Str(_));
        if op.is_ordering() && matches!(value, CompValue::Null | CompValue::Bool(_)) {
            return Err(FilterError::new(
                token.pos,
                format!(
                    "'{op_word}' needs a string, number or date-time value, found {}",
                    token.describe()
                ),
            ));
        }
        if op.is_substring() && !is_str {
            return Err(FilterError::new(
                token.pos,
                format!(
                    "'{op_word}' needs a quoted string value, found {}",
                    token.describe()
                ),
            ));
        }
        Ok(value)
    }
}

fn check_value_path_attr(path: &AttrPath, word: &str, pos: usize) -> Result<(), FilterError> {
    if path.sub_attr.is_some() {
        return Err(FilterError::new(
            pos,
            format!(
                "a value path filter '[' must follow a multi-valued attribute, not the sub-attribute path '{}'",
                shorten(word)
            ),
        ));
    }
    Ok(())
}

/// Unescapes a string token (with its quotes) as a JSON string. NUL is refused: SQLite ends
/// text at it, so `co "\u0000"` would compare with the empty string and match everyone.
fn parse_json_string(raw: &str, pos: usize) -> Result<String, FilterError> {
    let value = unescape_json_string(raw, pos)?;
    match value.find('\0') {
        Some(_) => Err(FilterError::new(
            pos,
            "invalid string literal: NUL (\\u0000) is not allowed",
        )),
        None => Ok(value),
    }
}

fn unescape_json_string(raw: &str, pos: usize) -> Result<String, FilterError> {
    serde_json::from_str::<String>(raw).map_err(|e| {
        let text = e.to_string();
        let reason = text.split(" at line ").next().unwrap_or(&text);
        let offset = if e.line() == 1 {
            e.column().saturating_sub(1).min(raw.len())
        } else {
            0
        };
        FilterError::new(pos + offset, format!("invalid string literal: {reason}"))
    })
}

/// `true` / `false` / `null` (any case), a JSON number, or else the bare word as a string:
/// Entra ID sends unquoted values (`externalId eq jyoung`, ids that start with digits), so an
/// unquoted token that is not a literal is taken as the string it spells.
fn parse_literal(word: &str, _pos: usize) -> Result<CompValue, FilterError> {
    if word.eq_ignore_ascii_case("true") {
        return Ok(CompValue::Bool(true));
    }
    if word.eq_ignore_ascii_case("false") {
        return Ok(CompValue::Bool(false));
    }
    if word.eq_ignore_ascii_case("null") {
        return Ok(CompValue::Null);
    }
    if word.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        if let Ok(n) = parse_json_number(word) {
            return Ok(CompValue::Number(n));
        }
    }
    Ok(CompValue::Str(word.to_string()))
}

/// A JSON number (RFC 8259 §6). Integers that fit become `i64`/`u64`,
/// everything else `f64` via the standard library, which rounds correctly
/// (serde_json's own float parser may be off by one ulp without its
/// `float_roundtrip` feature, which would break `Display` round trips).
fn parse_json_number(word: &str) -> Result<Number, &'static str> {
    let bytes = word.as_bytes();
    let mut i = usize::from(bytes.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let int_digits = digits(&mut i);
    if int_digits == 0 {
        return Err("expected a digit");
    }
    if int_digits > 1 && bytes.get(int_start) == Some(&b'0') {
        return Err("leading zeros are not allowed");
    }
    let mut integral = true;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        integral = false;
        if digits(&mut i) == 0 {
            return Err("expected a digit after '.'");
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        integral = false;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return Err("expected a digit in the exponent");
        }
    }
    if i != bytes.len() {
        return Err("unexpected characters after the number");
    }
    if integral {
        if let Ok(n) = word.parse::<u64>() {
            return Ok(n.into());
        }
        if let Ok(n) = word.parse::<i64>() {
            return Ok(n.into());
        }
    }
    word.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .ok_or("number out of range")
}

/// Parses `[URI ":"] ATTRNAME ["." ATTRNAME]`, `word` starting at byte `pos`.
/// A word starting with `urn:` (any case) is split at its last `:` into the
/// schema URN and the attribute part (URNs may contain dots, as in "2.0").
fn parse_attr_path(word: &str, pos: usize) -> Result<AttrPath, FilterError> {
    let is_urn = word
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
    let (uri, rest_offset) = match word.rfind(':') {
        Some(colon) if is_urn && colon > 3 => (Some(word[..colon].to_string()), colon + 1),
        Some(_) if is_urn => {
            return Err(FilterError::new(
                pos,
                format!(
                    "incomplete schema URN in '{}': expected 'urn:<namespace>:<attribute>'",
                    shorten(word)
                ),
            ))
        }
        _ => (None, 0),
    };
    let rest = &word[rest_offset..];
    let rest_pos = pos + rest_offset;
    if rest.is_empty() {
        return Err(FilterError::new(
            rest_pos,
            format!(
                "expected an attribute name after the schema URN '{}:'",
                shorten(uri.as_deref().unwrap_or_default())
            ),
        ));
    }
    let (attr, sub_attr) = match rest.find('.') {
        Some(dot) => {
            let sub = &rest[dot + 1..];
            let sub_pos = rest_pos + dot + 1;
            if sub.is_empty() {
                return Err(FilterError::new(
                    sub_pos,
                    format!("expected a sub-attribute name after '{}'", shorten(rest)),
                ));
            }
            validate_name(sub, sub_pos, "sub-attribute")?;
            (&rest[..dot], Some(sub.to_string()))
        }
        None => (rest, None),
    };
    if attr.is_empty() {
        return Err(FilterError::new(
            rest_pos,
            format!(
                "expected an attribute name before '.', found '{}'",
                shorten(rest)
            ),
        ));
    }
    validate_name(attr, rest_pos, "attribute")?;
    Ok(AttrPath {
        uri,
        attr: attr.to_string(),
        sub_attr,
    })
}

/// `ATTRNAME = ALPHA *(nameChar)`, `nameChar = "-" / "_" / DIGIT / ALPHA`, or `$ref`.
fn validate_name(name: &str, pos: usize, what: &str) -> Result<(), FilterError> {
    if name.eq_ignore_ascii_case("$ref") {
        return Ok(());
    }
    let mut chars = name.char_indices();
    if let Some((_, first)) = chars.next() {
        if !first.is_ascii_alphabetic() {
            return Err(FilterError::new(
                pos,
                format!("{what} name must start with a letter, found '{first}'"),
            ));
        }
    }
    for (i, c) in chars {
        if c == '.' {
            return Err(FilterError::new(
                pos + i,
                "only one level of sub-attribute is allowed, found a second '.'",
            ));
        }
        if !(c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(FilterError::new(
                pos + i,
                format!(
                    "invalid character '{c}' in {what} name '{}'; expected letters, digits, '-' or '_'",
                    shorten(name)
                ),
            ));
        }
    }
    Ok(())
}

/// Parses a SCIM filter (RFC 7644 §3.4.2.2).
pub fn parse_filter(input: &str) -> Result<Filter, FilterError> {
    if input.bytes().all(is_space) {
        return Err(FilterError::new(
            0,
            "empty filter: expected an attribute path, 'not' or '('",
        ));
    }
    let mut parser = Parser::new(input);
    let filter = parser.parse_or(false)?;
    let token = parser.lex.next_token()?;
    match token.tok {
        Tok::End => Ok(filter),
        Tok::RParen => Err(FilterError::new(
            token.pos,
            "unbalanced ')': no matching '('",
        )),
        Tok::RBracket => Err(FilterError::new(
            token.pos,
            "unbalanced ']': no matching '['",
        )),
        _ => Err(expected("'and', 'or' or end of filter", &token)),
    }
}

/// Parses a PATCH operation path (RFC 7644 §3.5.2):
/// `attrPath / valuePath [subAttr]`. Errors map to `invalidPath` through
/// [`FilterError::into_path_error`].
pub fn parse_patch_path(input: &str) -> Result<PatchPath, FilterError> {
    if input.bytes().all(is_space) {
        return Err(FilterError::new(
            0,
            "empty path: expected an attribute path",
        ));
    }
    let mut parser = Parser::new(input);
    let first = parser.lex.next_token()?;
    let Tok::Word(word) = first.tok else {
        return Err(expected("an attribute path", &first));
    };
    let attr = parse_attr_path(word, first.pos)?;
    let token = parser.lex.next_token()?;
    match token.tok {
        Tok::End => Ok(PatchPath {
            attr,
            value_filter: None,
            sub_attr: None,
        }),
        Tok::LBracket => {
            check_value_path_attr(&attr, word, token.pos)?;
            let filter = parser.parse_value_filter(token.pos)?;
            let after = parser.lex.next_token()?;
            let sub_attr = match after.tok {
                Tok::End => None,
                Tok::Word(w) if w.starts_with('.') && !after.space_before => {
                    let sub = &w[1..];
                    if sub.is_empty() {
                        return Err(FilterError::new(
                            after.pos + 1,
                            "expected a sub-attribute name after '.'",
                        ));
                    }
                    validate_name(sub, after.pos + 1, "sub-attribute")?;
                    let end = parser.lex.next_token()?;
                    if end.tok != Tok::End {
                        return Err(expected("end of path", &end));
                    }
                    Some(sub.to_string())
                }
                _ => {
                    return Err(expected(
                        "'.' and a sub-attribute name, or end of path, after ']'",
                        &after,
                    ))
                }
            };
            Ok(PatchPath {
                attr,
                value_filter: Some(filter),
                sub_attr,
            })
        }
        _ => Err(expected(
            &format!("'[' or end of path after '{}'", shorten(word)),
            &token,
        )),
    }
}

// ---------------------------------------------------------------------------
// Matcher
// ---------------------------------------------------------------------------

/// In-memory evaluation against one JSON object (a resource or one element of a multi-valued attribute).
/// `case_exact(path)` says whether string comparisons for that attribute are case-sensitive.
///
/// Inside a [`Filter::ValuePath`] the callback is given the absolute path
/// (`emails[type eq "x"]` asks about `emails.type`), with the value path's
/// URN; the inner filter is evaluated against each object element.
pub fn matches(filter: &Filter, object: &Value, case_exact: &dyn Fn(&AttrPath) -> bool) -> bool {
    match filter {
        Filter::Compare { path, op, value } => compare(object, path, *op, value, case_exact(path)),
        Filter::Present(path) => present(object, path),
        Filter::And(left, right) => {
            matches(left, object, case_exact) && matches(right, object, case_exact)
        }
        Filter::Or(left, right) => {
            matches(left, object, case_exact) || matches(right, object, case_exact)
        }
        Filter::Not(inner) => !matches(inner, object, case_exact),
        Filter::ValuePath { attr, filter } => {
            let Some(target) = lookup(object, attr) else {
                return false;
            };
            let absolute = |inner: &AttrPath| {
                case_exact(&AttrPath {
                    uri: attr.uri.clone(),
                    attr: attr.attr.clone(),
                    sub_attr: Some(inner.attr.clone()),
                })
            };
            match target {
                Value::Array(items) => items
                    .iter()
                    .any(|item| item.is_object() && matches(filter, item, &absolute)),
                Value::Object(_) => matches(filter, target, &absolute),
                _ => false,
            }
        }
    }
}

/// Object member by name, exact match first, then ASCII case-insensitive.
fn get_ci<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    let map = value.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The attribute's value (ignoring `sub_attr`): core-schema URNs address the
/// top level, other URNs the extension object stored under that URN.
fn top_value<'v>(object: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    let container = match &path.uri {
        Some(uri) if !CORE_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(uri)) => {
            get_ci(object, uri)?
        }
        _ => object,
    };
    get_ci(container, &path.attr)
}

/// The value the whole path addresses, for single-valued complex attributes.
fn lookup<'v>(object: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    let value = top_value(object, path)?;
    match &path.sub_attr {
        Some(sub) => get_ci(value, sub),
        None => Some(value),
    }
}

/// The values a comparison looks at: for a multi-valued attribute every
/// element (its `sub_attr`, or its `value` member when the elements are
/// objects and no sub-attribute is named).
fn candidates<'v>(object: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let mut out = Vec::new();
    let Some(value) = top_value(object, path) else {
        return out;
    };
    let mut push = |v: &'v Value| match v {
        Value::Array(items) => out.extend(items.iter()),
        other => out.push(other),
    };
    match (&path.sub_attr, value) {
        (Some(sub), Value::Array(items)) => {
            items
                .iter()
                .filter_map(|item| get_ci(item, sub))
                .for_each(&mut push);
        }
        (Some(sub), _) => {
            if let Some(v) = get_ci(value, sub) {
                push(v);
            }
        }
        (None, Value::Array(items)) => {
            for item in items {
                if item.is_object() {
                    if let Some(v) = get_ci(item, "value") {
                        out.push(v);
                    }
                } else {
                    out.push(item);
                }
            }
        }
        (None, other) => out.push(other),
    }
    out
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

fn present(object: &Value, path: &AttrPath) -> bool {
    if path.sub_attr.is_none() {
        top_value(object, path).is_some_and(is_present)
    } else {
        candidates(object, path).into_iter().any(is_present)
    }
}

fn compare(object: &Value, path: &AttrPath, op: CompareOp, value: &CompValue, exact: bool) -> bool {
    let values = candidates(object, path);
    match (op, value) {
        // `eq null` is absence and `ne null` presence, judged as `pr` judges.
        (CompareOp::Eq, CompValue::Null) => !present(object, path),
        (CompareOp::Ne, CompValue::Null) => present(object, path),
        (CompareOp::Ne, _) => !values
            .iter()
            .any(|v| compare_one(v, CompareOp::Eq, value, exact)),
        _ => values.iter().any(|v| compare_one(v, op, value, exact)),
    }
}

fn ordering_matches(op: CompareOp, ordering: Option<Ordering>) -> bool {
    matches!(
        (op, ordering),
        (
            CompareOp::Eq | CompareOp::Ge | CompareOp::Le,
            Some(Ordering::Equal)
        ) | (CompareOp::Gt | CompareOp::Ge, Some(Ordering::Greater))
            | (CompareOp::Lt | CompareOp::Le, Some(Ordering::Less))
    )
}

fn bool_from_str(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// One resource value against the filter value (`op` is never `Ne` here).
fn compare_one(actual: &Value, op: CompareOp, expected: &CompValue, exact: bool) -> bool {
    match expected {
        CompValue::Null => false,
        CompValue::Bool(b) => {
            let actual = match actual {
                Value::Bool(a) => Some(*a),
                Value::String(s) => bool_from_str(s),
                _ => None,
            };
            op == CompareOp::Eq && actual == Some(*b)
        }
        CompValue::Number(n) => match (actual, n.as_f64()) {
            (Value::Number(a), Some(b)) => {
                ordering_matches(op, a.as_f64().and_then(|a| a.partial_cmp(&b)))
            }
            _ => false,
        },
        CompValue::Str(s) => match actual {
            Value::String(a) => compare_str(a, op, s, exact),
            Value::Bool(a) => op == CompareOp::Eq && bool_from_str(s) == Some(*a),
            _ => false,
        },
    }
}

fn compare_str(actual: &str, op: CompareOp, expected: &str, exact: bool) -> bool {
    if op == CompareOp::Eq || op.is_ordering() {
        if let (Ok(a), Ok(b)) = (
            DateTime::parse_from_rfc3339(actual),
            DateTime::parse_from_rfc3339(expected),
        ) {
            return ordering_matches(op, Some(a.cmp(&b)));
        }
    }
    let (a, b): (Cow<'_, str>, Cow<'_, str>) = if exact {
        (Cow::Borrowed(actual), Cow::Borrowed(expected))
    } else {
        (
            Cow::Owned(actual.to_lowercase()),
            Cow::Owned(expected.to_lowercase()),
        )
    };
    match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        CompareOp::Co => a.contains(b.as_ref()),
        CompareOp::Sw => a.starts_with(b.as_ref()),
        CompareOp::Ew => a.ends_with(b.as_ref()),
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le => {
            ordering_matches(op, Some(a.cmp(&b)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::cell::RefCell;

    const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn parse(s: &str) -> Filter {
        match parse_filter(s) {
            Ok(f) => f,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn err(s: &str) -> FilterError {
        match parse_filter(s) {
            Ok(f) => panic!("{s:?} should not parse, got {f:?}"),
            Err(e) => e,
        }
    }

    fn path_err(s: &str) -> FilterError {
        match parse_patch_path(s) {
            Ok(p) => panic!("{s:?} should not parse, got {p:?}"),
            Err(e) => e,
        }
    }

    fn cmp(attr: &str, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare {
            path: AttrPath::new(attr),
            op,
            value,
        }
    }

    fn s(v: &str) -> CompValue {
        CompValue::Str(v.to_string())
    }

    fn pr(attr: &str) -> Filter {
        Filter::Present(AttrPath::new(attr))
    }

    fn and(a: Filter, b: Filter) -> Filter {
        Filter::And(Box::new(a), Box::new(b))
    }

    fn or(a: Filter, b: Filter) -> Filter {
        Filter::Or(Box::new(a), Box::new(b))
    }

    fn not(a: Filter) -> Filter {
        Filter::Not(Box::new(a))
    }

    fn num(n: &str) -> CompValue {
        CompValue::Number(n.parse().unwrap())
    }

    // ---- parsing ---------------------------------------------------------

    #[test]
    fn parses_every_operator() {
        let ops = [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ];
        for (word, op) in ops {
            assert_eq!(
                parse(&format!("userName {word} \"bjensen\"")),
                cmp("userName", op, s("bjensen"))
            );
            assert_eq!(
                parse(&format!("userName {} \"bjensen\"", word.to_uppercase())),
                cmp("userName", op, s("bjensen"))
            );
        }
        assert_eq!(parse("title pr"), pr("title"));
        assert_eq!(parse("title PR"), pr("title"));
    }

    #[test]
    fn rfc_examples_parse() {
        let examples = [
            r#"userName Eq "john""#,
            r#"filter=userName Eq "john""#.trim_start_matches("filter="),
            r#"userName eq "bjensen""#,
            r#"name.familyName co "O'Malley""#,
            r#"userName sw "J""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            r#"title pr"#,
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"title pr or userType eq "Intern""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
        ];
        for e in examples {
            let f = parse(e);
            // Canonical text parses back to the same tree.
            assert_eq!(parse(&f.to_string()), f, "{e}");
        }
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(
            parse("a pr or b pr and c pr"),
            or(pr("a"), and(pr("b"), pr("c")))
        );
        assert_eq!(
            parse("a pr and b pr or c pr"),
            or(and(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("a pr and b pr and c pr"),
            and(and(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("a pr or b pr or c pr"),
            or(or(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("(a pr or b pr) and c pr"),
            and(or(pr("a"), pr("b")), pr("c"))
        );
        assert_eq!(
            parse("a pr and (b pr and c pr)"),
            and(pr("a"), and(pr("b"), pr("c")))
        );
        assert_eq!(parse("not (a pr) and b pr"), and(not(pr("a")), pr("b")));
        assert_eq!(
            parse("a pr OR not(b pr) AnD c pr"),
            or(pr("a"), and(not(pr("b")), pr("c")))
        );
        assert_eq!(parse("NOT   (  a pr  )"), not(pr("a")));
        assert_eq!(parse("((a pr))"), pr("a"));
        assert_eq!(parse("not (not (a pr))"), not(not(pr("a"))));
    }

    #[test]
    fn display_is_canonical() {
        let f = parse(r#"A PR  AND  (b EQ "x" OR not(c.d GT 5))"#);
        assert_eq!(f.to_string(), r#"A pr and (b eq "x" or not (c.d gt 5))"#);
        assert_eq!(
            and(pr("a"), and(pr("b"), pr("c"))).to_string(),
            "a pr and (b pr and c pr)"
        );
        assert_eq!(
            and(or(pr("a"), pr("b")), pr("c")).to_string(),
            "(a pr or b pr) and c pr"
        );
        assert_eq!(
            or(and(pr("a"), pr("b")), pr("c")).to_string(),
            "a pr and b pr or c pr"
        );
    }

    #[test]
    fn whitespace_is_flexible() {
        assert_eq!(
            parse("  \tuserName \t  eq   \"a\"  "),
            cmp("userName", CompareOp::Eq, s("a"))
        );
        assert_eq!(parse("(a pr)and(b pr)"), and(pr("a"), pr("b")));
    }

    #[test]
    fn values() {
        assert_eq!(
            parse("a eq true"),
            cmp("a", CompareOp::Eq, CompValue::Bool(true))
        );
        assert_eq!(
            parse("a eq TRUE"),
            cmp("a", CompareOp::Eq, CompValue::Bool(true))
        );
        assert_eq!(
            parse("a eq False"),
            cmp("a", CompareOp::Eq, CompValue::Bool(false))
        );
        assert_eq!(parse("a eq NULL"), cmp("a", CompareOp::Eq, CompValue::Null));
        assert_eq!(parse("a ne null"), cmp("a", CompareOp::Ne, CompValue::Null));
        assert_eq!(parse("a eq 42"), cmp("a", CompareOp::Eq, num("42")));
        assert_eq!(parse("a gt -7"), cmp("a", CompareOp::Gt, num("-7")));
        assert_eq!(parse("a lt 3.25"), cmp("a", CompareOp::Lt, num("3.25")));
        assert_eq!(parse("a le 1e3"), cmp("a", CompareOp::Le, num("1000.0")));
        assert_eq!(
            parse("a ge -2.5E-2"),
            cmp("a", CompareOp::Ge, num("-0.025"))
        );
        assert_eq!(
            parse("a eq 18446744073709551615"),
            cmp("a", CompareOp::Eq, CompValue::Number(u64::MAX.into()))
        );
        assert_eq!(parse(r#"a eq """#), cmp("a", CompareOp::Eq, s("")));
        assert_eq!(parse(r#"a eq 5"#).to_string(), "a eq 5");
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            parse(r#"a eq "say \"hi\" \\ \/ \n\t \u00e9\ud83d\ude00""#),
            cmp("a", CompareOp::Eq, s("say \"hi\" \\ / \n\t é😀"))
        );
        assert_eq!(
            parse(r#"a co "(not) [x] and or""#),
            cmp("a", CompareOp::Co, s("(not) [x] and or"))
        );
        assert_eq!(
            parse(r#"a eq "日本語""#),
            cmp("a", CompareOp::Eq, s("日本語"))
        );
        let f = parse(r#"a eq "q\"\\\u0001""#);
        assert_eq!(parse(&f.to_string()), f);
    }

    #[test]
    fn attribute_paths() {
        assert_eq!(
            parse(r#"name.familyName eq "x""#),
            Filter::Compare {
                path: AttrPath::with_sub("name", "familyName"),
                op: CompareOp::Eq,
                value: s("x"),
            }
        );
        assert_eq!(
            parse(r#"members.$ref eq "x""#),
            Filter::Compare {
                path: AttrPath::with_sub("members", "$ref"),
                op: CompareOp::Eq,
                value: s("x"),
            }
        );
        assert_eq!(parse("$ref pr"), pr("$ref"));
        assert_eq!(parse("x-attr_2 pr"), pr("x-attr_2"));
        assert_eq!(
            parse(&format!("{ENTERPRISE}:manager.value pr")),
            Filter::Present(AttrPath {
                uri: Some(ENTERPRISE.to_string()),
                attr: "manager".into(),
                sub_attr: Some("value".into()),
            })
        );
        assert_eq!(
            parse(&format!("{ENTERPRISE}:employeeNumber eq \"1\"")),
            Filter::Compare {
                path: AttrPath {
                    uri: Some(ENTERPRISE.to_string()),
                    attr: "employeeNumber".into(),
                    sub_attr: None,
                },
                op: CompareOp::Eq,
                value: s("1"),
            }
        );
        assert_eq!(
            parse("URN:ietf:params:scim:schemas:core:2.0:User:name.familyName pr"),
            Filter::Present(AttrPath {
                uri: Some("URN:ietf:params:scim:schemas:core:2.0:User".into()),
                attr: "name".into(),
                sub_attr: Some("familyName".into()),
            })
        );
    }

    #[test]
    fn value_paths() {
        let f = parse(r#"emails[type eq "work" and value co "@x"]"#);
        assert_eq!(
            f,
            Filter::ValuePath {
                attr: AttrPath::new("emails"),
                filter: Box::new(and(
                    cmp("type", CompareOp::Eq, s("work")),
                    cmp("value", CompareOp::Co, s("@x"))
                )),
            }
        );
        assert_eq!(f.to_string(), r#"emails[type eq "work" and value co "@x"]"#);
        let f = parse(r#"emails[not (type eq "work") or (primary eq true)] and userName pr"#);
        assert_eq!(
            f,
            and(
                Filter::ValuePath {
                    attr: AttrPath::new("emails"),
                    filter: Box::new(or(
                        not(cmp("type", CompareOp::Eq, s("work"))),
                        cmp("primary", CompareOp::Eq, CompValue::Bool(true))
                    )),
                },
                pr("userName")
            )
        );
        let f = parse(&format!("{ENTERPRISE}:things[value pr]"));
        assert_eq!(
            f,
            Filter::ValuePath {
                attr: AttrPath {
                    uri: Some(ENTERPRISE.into()),
                    attr: "things".into(),
                    sub_attr: None
                },
                filter: Box::new(pr("value")),
            }
        );
    }

    #[test]
    fn patch_paths() {
        let p = parse_patch_path(r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(
            p,
            PatchPath {
                attr: AttrPath::new("emails"),
                value_filter: Some(cmp("type", CompareOp::Eq, s("work"))),
                sub_attr: Some("value".into()),
            }
        );
        assert_eq!(p.to_string(), r#"emails[type eq "work"].value"#);
        let p = parse_patch_path(r#"members[value eq "abc"]"#).unwrap();
        assert_eq!(p.attr, AttrPath::new("members"));
        assert_eq!(p.value_filter, Some(cmp("value", CompareOp::Eq, s("abc"))));
        assert_eq!(p.sub_attr, None);
        let p = parse_patch_path("name.familyName").unwrap();
        assert_eq!(
            p,
            PatchPath {
                attr: AttrPath::with_sub("name", "familyName"),
                value_filter: None,
                sub_attr: None
            }
        );
        let p = parse_patch_path(&format!("{ENTERPRISE}:manager.value")).unwrap();
        assert_eq!(p.attr.uri.as_deref(), Some(ENTERPRISE));
        assert_eq!(p.attr.attr, "manager");
        assert_eq!(p.attr.sub_attr.as_deref(), Some("value"));
        let p = parse_patch_path(" members ").unwrap();
        assert_eq!(p.attr, AttrPath::new("members"));
        let p = parse_patch_path(r#"members[value eq "a" or value eq "b"].$ref"#).unwrap();
        assert_eq!(p.sub_attr.as_deref(), Some("$ref"));
        // `not` is an ordinary name in path position.
        assert_eq!(parse_patch_path("not").unwrap().attr, AttrPath::new("not"));
    }

    #[test]
    fn patch_path_errors() {
        let e = path_err("");
        assert_eq!(e.position, 0);
        let e = path_err(r#"emails[type eq "work"]value"#);
        assert_eq!(e.position, 22);
        let e = path_err(r#"emails[type eq "work"] .value"#);
        assert_eq!(e.position, 23);
        let e = path_err(r#"emails[type eq "work"]."#);
        assert_eq!(e.position, 23);
        let e = path_err(r#"emails[type eq "work"].value.x"#);
        assert_eq!(e.position, 28);
        let e = path_err(r#"emails[type eq "work"].value extra"#);
        assert_eq!(e.position, 29);
        let e = path_err(r#"emails.value[type eq "work"]"#);
        assert_eq!(e.position, 12);
        let e = path_err(r#"emails[type eq "work""#);
        assert_eq!(e.position, 21);
        let e = path_err(r#"emails[x[y pr]]"#);
        assert_eq!(e.position, 8);
        let e = path_err(r#"userName eq "x""#);
        assert_eq!(e.position, 9);
        assert!(e.message.contains("'[' or end of path"), "{e}");
        let e = path_err(r#"(emails)"#);
        assert_eq!(e.position, 0);
        let scim: ScimError = path_err("a b").into_path_error();
        assert_eq!(scim.status, 400);
        assert_eq!(
            scim.scim_type,
            Some(crate::scim::error::ScimType::InvalidPath)
        );
        assert!(scim.detail.starts_with("invalid path at position 2: "));
    }

    #[test]
    fn error_display_and_scim_mapping() {
        let e = err(r#"userName eqq "a""#);
        assert_eq!(
            e.to_string(),
            "at position 9: expected a comparison operator after 'userName', found 'eqq'"
        );
        let scim: ScimError = e.into();
        assert_eq!(scim.status, 400);
        assert_eq!(
            scim.scim_type,
            Some(crate::scim::error::ScimType::InvalidFilter)
        );
        assert_eq!(
            scim.detail,
            "invalid filter at position 9: expected a comparison operator after 'userName', found 'eqq'"
        );
    }

    #[test]
    fn error_positions() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "empty filter"),
            ("   ", 0, "empty filter"),
            (r#"userName eq "a" extra"#, 16, "expected 'and', 'or' or end of filter, found 'extra'"),
            (r#"userName eq "abc"#, 12, "unterminated string"),
            (r#"userName eq "abc\""#, 12, "unterminated string"),
            ("(userName pr", 12, "')' to close the '(' at position 0, found end of input"),
            ("((a pr) or (b pr)", 17, "')' to close the '(' at position 0"),
            ("userName pr)", 11, "unbalanced ')'"),
            ("userName pr]", 11, "unbalanced ']'"),
            (r#"emails[type eq "work""#, 21, "']' to close the '[' at position 6"),
            (r#"emails[type eq "work")"#, 21, "found ')'"),
            (r#"(emails[type eq "work"))"#, 22, "']' to close the '[' at position 7, found ')'"),
            (r#"(emails[type eq "work"]))"#, 24, "unbalanced ')'"),
            ("userName", 8, "expected a comparison operator or '[' after 'userName', found end of input"),
            ("userName eq", 11, "expected a value (quoted string, number, true, false or null) after 'eq', found end of input"),
            ("userName eq (", 12, "found '('"),
            ("userName gt true", 12, "'gt' needs a string, number or date-time value, found 'true'"),
            ("userName GE null", 12, "'GE' needs a string, number or date-time value"),
            ("userName lt false", 12, "needs a string, number or date-time"),
            ("userName le NULL", 12, "needs a string, number or date-time"),
            ("userName co 5", 12, "'co' needs a quoted string value, found '5'"),
            ("userName sw true", 12, "'sw' needs a quoted string value"),
            ("userName ew null", 12, "'ew' needs a quoted string value"),
            (r#"userName pr "x""#, 12, "expected 'and', 'or' or end of filter, found \"x\""),
            ("not userName pr", 4, "expected '(' after 'not', found 'userName'"),
            ("not", 3, "expected '(' after 'not', found end of input"),
            ("a pr and", 8, "expected an attribute path, 'not' or '(', found end of input"),
            ("a pr or or b pr", 8, "expected an attribute path, 'not' or '(', found 'or'"),
            ("a pr and and", 9, "expected an attribute path, 'not' or '(', found 'and'"),
            ("and pr", 0, "expected an attribute path, 'not' or '(', found 'and'"),
            ("()", 1, "expected an attribute path, 'not' or '(', found ')'"),
            (r#""a" eq "b""#, 0, "expected an attribute path, 'not' or '(', found \"a\""),
            (r#"emails[addr[x pr]]"#, 11, "nested value paths are not allowed"),
            (r#"emails[(addr[x pr])]"#, 12, "nested value paths"),
            (r#"emails.value[type pr]"#, 12, "not the sub-attribute path 'emails.value'"),
            ("1abc pr", 0, "attribute name must start with a letter, found '1'"),
            ("user!name pr", 4, "invalid character '!' in attribute name 'user!name'"),
            ("name.giv en pr", 9, "expected a comparison operator after 'name.giv', found 'en'"),
            ("name.given.x pr", 10, "only one level of sub-attribute"),
            ("name. pr", 5, "expected a sub-attribute name after 'name.'"),
            (".name pr", 0, "expected an attribute name before '.'"),
            ("name.1x pr", 5, "sub-attribute name must start with a letter"),
            ("foo:bar pr", 3, "invalid character ':'"),
            ("urn:foo pr", 0, "incomplete schema URN"),
            ("urn:a:b: pr", 8, "expected an attribute name after the schema URN 'urn:a:b:'"),
            (r#"a eq "a\qb""#, 8, "invalid string literal: invalid escape"),
            ("a eq \"tab\there\"", 9, "invalid string literal: control character"),
            (r#"a eq "\ud800""#, 12, "invalid string literal"),
        ];
        for (input, position, fragment) in cases {
            let e = err(input);
            assert_eq!(e.position, *position, "{input:?}: {e}");
            assert!(e.message.contains(fragment), "{input:?}: {e}");
            assert!(e.position <= input.len(), "{input:?}");
        }
    }

    #[test]
    fn entra_sub_attribute_after_value_path_joins_the_filter() {
        assert_eq!(
            parse(r#"emails[type eq "work"].value eq "a@b""#),
            parse(r#"emails[type eq "work" and value eq "a@b"]"#)
        );
        assert!(parse_filter(r#"emails[type eq "work"].value.x eq "a""#).is_err());
        assert!(parse_filter(r#"emails[type eq "work"].value"#).is_err());
    }

    #[test]
    fn unquoted_values_are_strings_as_entra_sends_them() {
        for (input, expected) in [
            ("externalId eq jyoung", "jyoung"),
            ("userName eq jyoung@contoso.com", "jyoung@contoso.com"),
            ("externalId eq 5b1e-77", "5b1e-77"),
            ("a eq 01", "01"),
            ("a eq 'x'", "'x'"),
        ] {
            match parse(input) {
                Filter::Compare { value, .. } => {
                    assert_eq!(value, CompValue::Str(expected.into()), "{input}")
                }
                other => panic!("{input}: {other:?}"),
            }
        }
        assert_eq!(
            parse("a eq 12"),
            cmp("a", CompareOp::Eq, CompValue::Number(12.into()))
        );
    }

    #[test]
    fn long_tokens_are_shortened_in_messages() {
        let long = "x".repeat(500);
        let e = err(&format!("a {long} 1"));
        assert!(e.message.len() < 120, "{}", e.message);
        assert!(e.message.contains('…'));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "(".repeat(100_000) + "a pr" + &")".repeat(100_000);
        let e = err(&deep);
        assert_eq!(e.position, MAX_NESTING_DEPTH);
        assert!(e.message.contains("nesting"));

        let deep_not = "not (".repeat(10_000) + "a pr" + &")".repeat(10_000);
        let e = err(&deep_not);
        assert_eq!(e.position, MAX_NESTING_DEPTH * 5 + 4);

        let ok = "(".repeat(MAX_NESTING_DEPTH) + "a pr" + &")".repeat(MAX_NESTING_DEPTH);
        assert_eq!(parse(&ok), pr("a"));

        let inner = "(".repeat(MAX_NESTING_DEPTH) + "a pr" + &")".repeat(MAX_NESTING_DEPTH);
        let e = err(&format!("emails[{inner}]"));
        assert!(e.message.contains("nesting"), "{e}");

        let chain_ok = vec!["a pr"; MAX_LOGICAL_OPERATORS + 1].join(" or ");
        assert!(parse_filter(&chain_ok).is_ok());
        let chain = vec!["a pr"; MAX_LOGICAL_OPERATORS + 2].join(" and ");
        let e = err(&chain);
        assert!(e.message.contains("too many"), "{e}");
        let e = err(&("a pr".to_string() + &" or a pr".repeat(100_000)));
        assert!(e.message.contains("too many"), "{e}");
    }

    #[test]
    fn limits_fit_a_small_thread_stack() {
        let run = || {
            // 62 parentheses + '[' + 'not (' = 64 levels.
            let nested = "(".repeat(MAX_NESTING_DEPTH - 2)
                + "emails[not (type pr)]"
                + &")".repeat(MAX_NESTING_DEPTH - 2);
            // 2 × 499 'and' + 1 'or' = 999 operators.
            let chain = vec![nested.as_str(); MAX_LOGICAL_OPERATORS / 2].join(" and ");
            let text = [chain.as_str(); 2].join(" or ");
            let f = match parse_filter(&text) {
                Ok(f) => f,
                Err(e) => panic!("{}: {}", e.position, e.message),
            };
            let again = parse_filter(&f.to_string());
            assert!(again.as_ref() == Ok(&f));
            let deeper = "(".repeat(MAX_NESTING_DEPTH - 1) + "emails[not (type pr)]";
            assert!(parse_filter(&deeper).is_err());
            matches(&f, &user(), &never_exact)
        };
        let handle = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(run)
            .unwrap();
        assert!(!handle.join().unwrap());
    }

    // ---- matcher ---------------------------------------------------------

    fn user() -> Value {
        json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                ENTERPRISE
            ],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "userName": "bjensen@example.com",
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "displayName": "Babs Jensen",
            "nickName": "",
            "title": null,
            "active": true,
            "loginCount": 42,
            "score": 3.5,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "phoneNumbers": [],
            "x509Certificates": [{}],
            ENTERPRISE: {
                "employeeNumber": "701984",
                "costCenter": "4130",
                "manager": {
                    "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                    "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d"
                }
            },
            "meta": {
                "resourceType": "User",
                "created": "2010-01-23T04:56:22Z",
                "lastModified": "2011-05-13T04:42:34Z"
            }
        })
    }

    fn never_exact(_: &AttrPath) -> bool {
        false
    }

    fn eval(filter: &str, object: &Value) -> bool {
        matches(&parse(filter), object, &never_exact)
    }

    fn check(object: &Value, cases: &[(&str, bool)]) {
        for (filter, expected) in cases {
            assert_eq!(eval(filter, object), *expected, "{filter}");
            let negated = format!("not ({filter})");
            assert_eq!(eval(&negated, object), !*expected, "{negated}");
        }
    }

    #[test]
    fn matches_strings() {
        check(
            &user(),
            &[
                (r#"userName eq "BJensen@Example.com""#, true),
                (r#"USERNAME eq "bjensen@example.com""#, true),
                (r#"userName eq "bjensen""#, false),
                (r#"userName ne "bjensen""#, true),
                (r#"userName ne "BJENSEN@example.com""#, false),
                (r#"userName co "@EXAMPLE""#, true),
                (r#"userName co "@other""#, false),
                (r#"userName sw "BJ""#, true),
                (r#"userName sw "jensen""#, false),
                (r#"userName ew ".COM""#, true),
                (r#"userName ew ".org""#, false),
                (r#"userName gt "a""#, true),
                (r#"userName gt "c""#, false),
                (r#"userName ge "BJENSEN@example.com""#, true),
                (r#"userName lt "c""#, true),
                (r#"userName le "b""#, false),
                (r#"name.familyName eq "jensen""#, true),
                (r#"Name.FamilyName eq "JENSEN""#, true),
                (r#"name.givenName sw "Bar" and name.familyName pr"#, true),
                (r#"name.middleName eq "x""#, false),
                (r#"displayName co "babs" or userName eq "nobody""#, true),
                (r#"displayName co "nobody" or userName eq "nobody""#, false),
            ],
        );
    }

    #[test]
    fn matches_case_exact() {
        let u = user();
        let exact_user_name = |p: &AttrPath| p.attr.eq_ignore_ascii_case("userName");
        let f = parse(r#"userName eq "BJensen@Example.com""#);
        assert!(!matches(&f, &u, &exact_user_name));
        let f = parse(r#"userName eq "bjensen@example.com""#);
        assert!(matches(&f, &u, &exact_user_name));
        let f = parse(r#"displayName co "BABS""#);
        assert!(matches(&f, &u, &exact_user_name));
        // Unicode lowercase.
        let o = json!({"displayName": "ÉLODIE Straße"});
        assert!(!eval(r#"displayName eq "élodie STRASSE""#, &o));
        assert!(eval(r#"displayName eq "élodie straße""#, &o));
        assert!(eval(r#"displayName sw "ÉL""#, &o));
    }

    #[test]
    fn matches_multi_valued() {
        check(
            &user(),
            &[
                (r#"emails co "jensen.org""#, true),
                (r#"emails eq "BJENSEN@example.com""#, true),
                (r#"emails co "nowhere""#, false),
                (r#"emails.value ew "@jensen.org""#, true),
                (r#"emails.type eq "home""#, true),
                (r#"emails.type eq "other""#, false),
                (r#"emails.type ne "work""#, false),
                (r#"emails.type ne "other""#, true),
                (r#"emails.primary eq true"#, true),
                (r#"emails.primary pr"#, true),
                (r#"emails.display pr"#, false),
                (
                    r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:user""#,
                    true,
                ),
                (&format!("schemas eq \"{ENTERPRISE}\""), true),
                (r#"schemas eq "urn:other""#, false),
            ],
        );
    }

    #[test]
    fn matches_value_paths() {
        check(
            &user(),
            &[
                (
                    r#"emails[type eq "work" and value co "@example.com"]"#,
                    true,
                ),
                (
                    r#"emails[type eq "home" and value co "@example.com"]"#,
                    false,
                ),
                (r#"emails[type eq "home" and primary eq true]"#, false),
                (r#"emails[primary eq true]"#, true),
                (r#"emails[not (primary pr)]"#, true),
                (r#"emails[type eq "home" or type eq "other"]"#, true),
                (r#"emails[type pr] and userName pr"#, true),
                (
                    r#"emails[type eq "other"] or name[familyName eq "jensen"]"#,
                    true,
                ),
                (r#"phoneNumbers[type pr]"#, false),
                (r#"missing[type pr]"#, false),
                (r#"userName[value pr]"#, false),
                (
                    &format!("{ENTERPRISE}:manager[value sw \"26118915\"]"),
                    true,
                ),
            ],
        );
    }

    #[test]
    fn value_path_case_exact_gets_absolute_path() {
        let u = user();
        let seen = RefCell::new(Vec::new());
        let exact = |p: &AttrPath| {
            seen.borrow_mut().push(p.clone());
            p.attr == "emails" && p.sub_attr.as_deref() == Some("type")
        };
        assert!(!matches(&parse(r#"emails[type eq "WORK"]"#), &u, &exact));
        assert!(matches(&parse(r#"emails[type eq "work"]"#), &u, &exact));
        assert!(matches(
            &parse(r#"emails[value eq "BJENSEN@example.com"]"#),
            &u,
            &exact
        ));
        assert_eq!(seen.borrow()[0], AttrPath::with_sub("emails", "type"));
    }

    #[test]
    fn matches_extension_and_core_urns() {
        check(
            &user(),
            &[
                (&format!("{ENTERPRISE}:employeeNumber eq \"701984\""), true),
                (&format!("{ENTERPRISE}:employeeNumber eq \"1\""), false),
                (
                    "URN:IETF:params:scim:schemas:extension:enterprise:2.0:user:EMPLOYEENUMBER sw \"70\"",
                    true,
                ),
                (&format!("{ENTERPRISE}:manager.value pr"), true),
                (&format!("{ENTERPRISE}:manager.$ref co \"../Users/\""), true),
                (&format!("{ENTERPRISE}:manager pr"), true),
                (&format!("{ENTERPRISE}:division pr"), false),
                // Extension attributes are not found at the top level.
                ("employeeNumber pr", false),
                // An extension URN does not see core attributes.
                (&format!("{ENTERPRISE}:userName pr"), false),
                ("urn:ietf:params:scim:schemas:core:2.0:User:name.familyName eq \"Jensen\"", true),
                ("urn:ietf:params:scim:schemas:core:2.0:User:userName pr", true),
                ("urn:ietf:params:scim:schemas:core:2.0:Group:userName pr", true),
            ],
        );
    }

    #[test]
    fn matches_booleans() {
        let u = user();
        check(
            &u,
            &[
                ("active eq true", true),
                ("active eq TRUE", true),
                ("active eq false", false),
                ("active ne false", true),
                ("active ne true", false),
                (r#"active eq "true""#, true),
                ("active pr", true),
            ],
        );
        for (stored, t, f) in [
            ("True", true, false),
            ("FALSE", false, true),
            ("yes", false, false),
        ] {
            let o = json!({"active": stored});
            assert_eq!(eval("active eq true", &o), t, "{stored}");
            assert_eq!(eval("active eq false", &o), f, "{stored}");
        }
        // A number is not a boolean.
        assert!(!eval("active eq true", &json!({"active": 1})));
    }

    #[test]
    fn matches_numbers() {
        check(
            &user(),
            &[
                ("loginCount eq 42", true),
                ("loginCount eq 42.0", true),
                ("loginCount eq 4.2e1", true),
                ("loginCount ne 42", false),
                ("loginCount gt 40", true),
                ("loginCount gt 42", false),
                ("loginCount ge 42", true),
                ("loginCount lt 42", false),
                ("loginCount le 42", true),
                ("loginCount lt -1", false),
                ("score ge 3.5", true),
                ("score gt 3.49", true),
                ("score lt 3.5", false),
                // Numbers and strings do not compare.
                ("userName gt 0", false),
                (r#"loginCount eq "42""#, false),
            ],
        );
    }

    #[test]
    fn matches_date_times() {
        check(
            &user(),
            &[
                (r#"meta.lastModified gt "2011-05-13T04:42:33Z""#, true),
                (r#"meta.lastModified gt "2011-05-13T04:42:34Z""#, false),
                (r#"meta.lastModified gt "2011-05-13T06:42:34+02:00""#, false),
                (r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#, true),
                (r#"meta.lastModified eq "2011-05-13T04:42:34.000Z""#, true),
                (r#"meta.lastModified ge "2011-05-13T06:42:34+02:00""#, true),
                (r#"meta.lastModified le "2011-05-13T06:42:34+02:00""#, true),
                (r#"meta.lastModified lt "2012-01-01T00:00:00Z""#, true),
                (r#"meta.lastModified lt "2011-05-13T05:00:00+01:00""#, false),
                (r#"meta.created lt "2011-05-13T04:42:34Z""#, true),
                (r#"meta.lastModified sw "2011-05""#, true),
                // Not a date-time: compared as strings.
                (r#"meta.lastModified gt "2011""#, true),
            ],
        );
    }

    #[test]
    fn matches_presence_and_null() {
        check(
            &user(),
            &[
                ("userName pr", true),
                ("nickName pr", false),
                ("title pr", false),
                ("phoneNumbers pr", false),
                ("emails pr", true),
                ("name pr", true),
                ("missing pr", false),
                ("x509Certificates pr", true),
                ("x509Certificates.value pr", false),
                ("title eq null", true),
                ("missing eq null", true),
                ("nickName eq null", true),
                ("userName eq null", false),
                ("userName ne null", true),
                ("title ne null", false),
                ("missing ne null", false),
                (r#"missing ne "x""#, true),
                (r#"missing eq "x""#, false),
                (r#"missing gt "x""#, false),
                ("emails.display eq null", true),
                ("emails.value eq null", false),
            ],
        );
        let o = json!({"obj": {}, "zero": 0, "f": false});
        assert!(!eval("obj pr", &o));
        assert!(eval("zero pr", &o));
        assert!(eval("f pr", &o));
    }

    #[test]
    fn matches_group_members() {
        let group = json!({
            "displayName": "Tour Guides",
            "members": [
                {"value": "2819c223", "$ref": "https://example.com/v2/Users/2819c223", "display": "Babs Jensen"},
                {"value": "902c246b", "$ref": "https://example.com/v2/Users/902c246b", "display": "Mandy Pepperidge"}
            ]
        });
        check(
            &group,
            &[
                (r#"members[value eq "902c246b"]"#, true),
                (r#"members[value eq "nope"]"#, false),
                (r#"members.$ref ew "/902c246b""#, true),
                (r#"members eq "2819C223""#, true),
                (
                    r#"members[display sw "babs" and value eq "2819c223"]"#,
                    true,
                ),
            ],
        );
    }

    // ---- properties ------------------------------------------------------

    fn name_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            9 => "[a-zA-Z][a-zA-Z0-9_-]{0,8}".prop_filter("keywords are not names", |s| {
                !["not", "and", "or"].iter().any(|k| s.eq_ignore_ascii_case(k))
            }),
            1 => Just("$ref".to_string()),
        ]
    }

    fn path_strategy(allow_sub: bool) -> impl Strategy<Value = AttrPath> {
        let uri = prop_oneof![
            6 => Just(None),
            1 => Just(Some(ENTERPRISE.to_string())),
            1 => Just(Some("urn:ietf:params:scim:schemas:core:2.0:User".to_string())),
            1 => "urn:[a-z]{1,5}(:[a-zA-Z0-9.]{1,5}){0,3}".prop_map(Some),
        ];
        let sub = if allow_sub {
            proptest::option::of(name_strategy()).boxed()
        } else {
            Just(None).boxed()
        };
        (uri, name_strategy(), sub).prop_map(|(uri, attr, sub_attr)| AttrPath {
            uri,
            attr,
            sub_attr,
        })
    }

    fn number_strategy() -> impl Strategy<Value = Number> {
        prop_oneof![
            any::<i64>().prop_map(Number::from),
            any::<u64>().prop_map(Number::from),
            any::<f64>().prop_filter_map("finite", Number::from_f64),
        ]
    }

    fn compare_strategy() -> impl Strategy<Value = Filter> {
        let ops = prop_oneof![
            Just(CompareOp::Eq),
            Just(CompareOp::Ne),
            Just(CompareOp::Co),
            Just(CompareOp::Sw),
            Just(CompareOp::Ew),
            Just(CompareOp::Gt),
            Just(CompareOp::Ge),
            Just(CompareOp::Lt),
            Just(CompareOp::Le),
        ];
        let values = prop_oneof![
            Just(CompValue::Null),
            any::<bool>().prop_map(CompValue::Bool),
            number_strategy().prop_map(CompValue::Number),
            any::<String>().prop_map(CompValue::Str),
        ];
        (path_strategy(true), ops, values).prop_map(|(path, op, value)| {
            // Keep only combinations the grammar accepts.
            let value = match (&value, op) {
                (CompValue::Str(_), _) => value,
                (CompValue::Number(_), o) if !o.is_substring() => value,
                (CompValue::Null | CompValue::Bool(_), CompareOp::Eq | CompareOp::Ne) => value,
                _ => CompValue::Str(value.to_string()),
            };
            Filter::Compare { path, op, value }
        })
    }

    fn leaf_strategy() -> impl Strategy<Value = Filter> {
        prop_oneof![
            3 => compare_strategy(),
            1 => path_strategy(true).prop_map(Filter::Present),
        ]
    }

    fn combine(inner: BoxedStrategy<Filter>) -> BoxedStrategy<Filter> {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| and(a, b)),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| or(a, b)),
            inner.prop_map(not),
        ]
        .boxed()
    }

    fn inner_filter_strategy() -> BoxedStrategy<Filter> {
        leaf_strategy()
            .boxed()
            .prop_recursive(4, 24, 2, combine)
            .boxed()
    }

    fn filter_strategy() -> BoxedStrategy<Filter> {
        let value_path = (path_strategy(false), inner_filter_strategy()).prop_map(|(attr, f)| {
            Filter::ValuePath {
                attr,
                filter: Box::new(f),
            }
        });
        prop_oneof![3 => leaf_strategy(), 1 => value_path]
            .boxed()
            .prop_recursive(4, 32, 2, combine)
            .boxed()
    }

    proptest! {
        #[test]
        fn display_round_trips(filter in filter_strategy()) {
            let text = filter.to_string();
            let parsed = parse_filter(&text);
            prop_assert_eq!(parsed, Ok(filter), "{}", text);
        }

        #[test]
        fn patch_path_round_trips(
            attr in path_strategy(false),
            filter in proptest::option::of(inner_filter_strategy()),
            sub in proptest::option::of(name_strategy()),
        ) {
            let path = match filter {
                Some(f) => PatchPath { attr, value_filter: Some(f), sub_attr: sub },
                None => PatchPath { attr, value_filter: None, sub_attr: None },
            };
            let text = path.to_string();
            prop_assert_eq!(parse_patch_path(&text), Ok(path), "{}", text);
        }

        #[test]
        fn parse_never_panics(input in any::<String>()) {
            let _ = parse_filter(&input);
            let _ = parse_patch_path(&input);
        }

        #[test]
        fn parse_never_panics_on_filter_like_text(
            input in r#"[a-zA-Z0-9 ()\[\]"\\.:$_é-]{0,60}|((not|and|or|pr|eq|co|gt|urn:a:b|\(|\)|\[|\]|"x"|"|\\|1e5|-|\.| ){0,25})"#
        ) {
            match parse_filter(&input) {
                Ok(f) => prop_assert_eq!(parse_filter(&f.to_string()), Ok(f)),
                Err(e) => prop_assert!(e.position <= input.len()),
            }
            match parse_patch_path(&input) {
                Ok(p) => prop_assert_eq!(parse_patch_path(&p.to_string()), Ok(p)),
                Err(e) => prop_assert!(e.position <= input.len()),
            }
        }

        #[test]
        fn matcher_is_total_and_not_negates(filter in filter_strategy()) {
            let u = user();
            let m = matches(&filter, &u, &never_exact);
            prop_assert_eq!(matches(&Filter::Not(Box::new(filter)), &u, &never_exact), !m);
        }
    }
}
