//! Recursive-descent parsing of filters and PATCH paths into the AST, with the nesting and
//! operator-count limits that keep hostile input off the stack.

use serde_json::Number;

use super::ast::{AttrPath, CompValue, CompareOp, Filter, PatchPath};
use super::error::FilterError;
use super::lexer::{is_space, Lexer, Tok, Token, MAX_QUOTED_CHARS};
use super::{MAX_LOGICAL_OPERATORS, MAX_NESTING_DEPTH};
use crate::scim_core::text::shorten;

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
                                    shorten(w, MAX_QUOTED_CHARS)
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
                &format!(
                    "a comparison operator or '[' after '{}'",
                    shorten(word, MAX_QUOTED_CHARS)
                ),
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
                        &format!(
                            "a comparison operator after '{}'",
                            shorten(word, MAX_QUOTED_CHARS)
                        ),
                        &token,
                    ));
                };
                let value = self.parse_comp_value(op, op_word)?;
                Ok(Filter::Compare { path, op, value })
            }
            _ => Err(expected(
                &format!(
                    "a comparison operator after '{}'",
                    shorten(word, MAX_QUOTED_CHARS)
                ),
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
                shorten(word, MAX_QUOTED_CHARS)
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
                    shorten(word, MAX_QUOTED_CHARS)
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
                shorten(uri.as_deref().unwrap_or_default(), MAX_QUOTED_CHARS)
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
                    format!(
                        "expected a sub-attribute name after '{}'",
                        shorten(rest, MAX_QUOTED_CHARS)
                    ),
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
                shorten(rest, MAX_QUOTED_CHARS)
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
                    shorten(name, MAX_QUOTED_CHARS)
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
            &format!(
                "'[' or end of path after '{}'",
                shorten(word, MAX_QUOTED_CHARS)
            ),
            &token,
        )),
    }
}
