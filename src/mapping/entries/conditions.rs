//! A rule's `condition`: a SCIM filter, parsed and resolved against the User schema once,
//! its errors pointed at the line of the offending character where the literal allows.

use super::FileCtx;
use crate::mapping::condition;
use crate::mapping::raw::Node;
use crate::scim_core::filter::parse_filter;

impl FileCtx<'_> {
    /// Parses and resolves a condition; parser errors point at the offending character's
    /// line when the string has no escapes, else at the condition's first line.
    pub(super) fn condition(
        &mut self,
        key: &str,
        value: &Node,
    ) -> Option<(String, crate::scim_core::filter::Filter)> {
        let text = self.string(key, value)?;
        let span = value.span();
        let mut filter = match parse_filter(&text) {
            Ok(filter) => filter,
            Err(e) => {
                let raw = self.content.get(span.clone()).unwrap_or_default();
                let line = match content_offset(raw, &text) {
                    Some(offset) => self.lines.line(span.start + offset + e.position),
                    None => self.lines.of(&span),
                };
                self.error_at_line(line, format!("invalid `{key}` {e}"));
                return None;
            }
        };
        if let Err(unresolved) = condition::resolve(&mut filter) {
            // Point at the path's line when it occurs once in a literal without escapes.
            let raw = self.content.get(span.clone()).unwrap_or_default();
            let written = unresolved.written.as_str();
            let found = match (content_offset(raw, &text), text.matches(written).count()) {
                (Some(offset), 1) => text
                    .find(written)
                    .map(|at| self.lines.line(span.start + offset + at)),
                _ => None,
            };
            let line = found.unwrap_or_else(|| self.lines.of(&span));
            self.error_at_line(line, format!("invalid `{key}`: {}", unresolved.message));
            return None;
        }
        Some((text, filter))
    }
}

/// Where `value`'s text starts inside the TOML string literal `raw` (quotes included), when
/// the literal spells it without escapes, so that offsets in `value` map to the source.
pub(super) fn content_offset(raw: &str, value: &str) -> Option<usize> {
    let delimiter = ["'''", "\"\"\"", "'", "\""]
        .into_iter()
        .find(|d| raw.starts_with(d) && raw.ends_with(d) && raw.len() >= 2 * d.len())?;
    let inner = &raw[delimiter.len()..raw.len() - delimiter.len()];
    let trimmed = if delimiter.len() == 3 {
        // A newline right after the opening delimiter is not part of the string.
        inner
            .strip_prefix("\r\n")
            .or_else(|| inner.strip_prefix('\n'))
            .unwrap_or(inner)
    } else {
        inner
    };
    (trimmed == value).then(|| raw.len() - delimiter.len() - trimmed.len())
}
