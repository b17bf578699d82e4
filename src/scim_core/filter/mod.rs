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

mod ast;
mod error;
mod lexer;
mod matcher;
mod parser;

pub use ast::{AttrPath, CompValue, CompareOp, Filter, PatchPath};
pub use error::FilterError;
pub use matcher::matches;
pub use parser::{parse_filter, parse_patch_path};

/// Deepest allowed nesting of `(`…`)`, `not (`…`)` and `[`…`]`.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Most `and`/`or` operators one filter or path may contain. Chains are
/// parsed iteratively but produce a left-deep tree, which the matcher, `Drop`
/// and `Display` walk recursively; this bounds that depth.
pub const MAX_LOGICAL_OPERATORS: usize = 1000;

#[cfg(test)]
mod tests;
