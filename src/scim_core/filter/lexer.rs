//! Tokens of the filter grammar (RFC 7644 §3.4.2.2), scanned lazily with one token of push-back.

use super::error::FilterError;
use crate::scim_core::text::shorten;

/// How much of an offending token an error message quotes.
pub(super) const MAX_QUOTED_CHARS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok<'a> {
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
pub(super) struct Token<'a> {
    pub(super) tok: Tok<'a>,
    pub(super) pos: usize,
    pub(super) space_before: bool,
}

impl Token<'_> {
    /// How an error message names this token.
    pub(super) fn describe(&self) -> String {
        match self.tok {
            Tok::LParen => "'('".to_string(),
            Tok::RParen => "')'".to_string(),
            Tok::LBracket => "'['".to_string(),
            Tok::RBracket => "']'".to_string(),
            Tok::Str(raw) => shorten(raw, MAX_QUOTED_CHARS),
            Tok::Word(w) => format!("'{}'", shorten(w, MAX_QUOTED_CHARS)),
            Tok::End => "end of input".to_string(),
        }
    }

    pub(super) fn is_word(&self, keyword: &str) -> bool {
        matches!(self.tok, Tok::Word(w) if w.eq_ignore_ascii_case(keyword))
    }
}

pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_delimiter(b: u8) -> bool {
    is_space(b) || matches!(b, b'(' | b')' | b'[' | b']' | b'"')
}

pub(super) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    peeked: Option<Token<'a>>,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(src: &'a str) -> Self {
        Self {
            src,
            pos: 0,
            peeked: None,
        }
    }

    pub(super) fn peek(&mut self) -> Result<Token<'a>, FilterError> {
        if let Some(token) = self.peeked {
            return Ok(token);
        }
        let token = self.scan()?;
        self.peeked = Some(token);
        Ok(token)
    }

    /// Un-read the token just read (at most one).
    pub(super) fn push_back(&mut self, token: Token<'a>) {
        self.peeked = Some(token);
    }

    pub(super) fn next_token(&mut self) -> Result<Token<'a>, FilterError> {
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
