//! Typed values of a rule file: strings, booleans, durations, lists, identifiers, slugs,
//! URLs, addresses, template names, language tags and end dates, each wrong one reported at
//! its line.

use std::ops::Range;

use chrono::{DateTime, NaiveDate, Utc};

use super::{FileCtx, MAX_DAYS};
use crate::mapping::raw::{Node, RawValue};

impl FileCtx<'_> {
    pub(super) fn wrong_type(&mut self, key: &str, value: &Node, expected: &str) {
        self.error(
            &value.span(),
            format!(
                "`{key}` must be {expected}, found {}",
                value.get_ref().type_name()
            ),
        );
    }

    pub(super) fn string(&mut self, key: &str, value: &Node) -> Option<String> {
        match value.get_ref() {
            RawValue::String(s) => Some(s.clone()),
            _ => {
                self.wrong_type(key, value, "a string");
                None
            }
        }
    }

    /// A string with something in it besides spaces.
    pub(super) fn text(&mut self, key: &str, value: &Node) -> Option<String> {
        let s = self.string(key, value)?;
        self.check_text(key, &value.span(), s)
    }

    pub(super) fn check_text(
        &mut self,
        key: &str,
        span: &Range<usize>,
        s: String,
    ) -> Option<String> {
        if s.trim().is_empty() {
            self.error(span, format!("`{key}` must not be empty"));
            return None;
        }
        Some(s)
    }

    pub(super) fn boolean(&mut self, key: &str, value: &Node) -> Option<bool> {
        match value.get_ref() {
            RawValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(key, value, "true or false");
                None
            }
        }
    }

    pub(super) fn days(&mut self, key: &str, value: &Node) -> Option<u32> {
        let RawValue::Integer(n) = value.get_ref() else {
            self.wrong_type(key, value, "a whole number of days");
            return None;
        };
        match u32::try_from(*n) {
            Ok(days) if (1..=MAX_DAYS).contains(n) => Some(days),
            _ => {
                self.error(
                    &value.span(),
                    format!("`{key}` must be from 1 to {MAX_DAYS} days, found {n}"),
                );
                None
            }
        }
    }

    /// A non-empty array of strings without repeats, each checked by `check`; items keep
    /// their spans.
    pub(super) fn list(
        &mut self,
        key: &str,
        value: &Node,
        mut check: impl FnMut(&mut Self, &Range<usize>, String) -> Option<String>,
    ) -> Option<Vec<(String, Range<usize>)>> {
        let RawValue::Array(items) = value.get_ref() else {
            self.wrong_type(key, value, "an array of strings");
            return None;
        };
        if items.is_empty() {
            self.error(
                &value.span(),
                format!("`{key}` must not be empty (leave the key out instead)"),
            );
            return None;
        }
        let mut out: Vec<(String, Range<usize>)> = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            let RawValue::String(s) = item.get_ref() else {
                self.error(
                    &item.span(),
                    format!(
                        "`{key}` must be an array of strings, found {} in it",
                        item.get_ref().type_name()
                    ),
                );
                ok = false;
                continue;
            };
            if out.iter().any(|(seen, _)| seen == s) {
                self.error(&item.span(), format!("`{key}` lists \"{s}\" twice"));
                ok = false;
                continue;
            }
            match check(self, &item.span(), s.clone()) {
                Some(s) => out.push((s, item.span())),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    pub(super) fn roles(&mut self, key: &str, value: &Node) -> Option<Vec<String>> {
        let items = self.list(key, value, |ctx, span, role| {
            ctx.check_text(key, span, role)
        })?;
        Some(items.into_iter().map(|(s, _)| s).collect())
    }

    pub(super) fn app_id(&mut self, key: &str, value: &Node) -> Option<String> {
        let s = self.string(key, value)?;
        self.check_app_id(key, &value.span(), s)
    }

    pub(super) fn check_app_id(
        &mut self,
        key: &str,
        span: &Range<usize>,
        s: String,
    ) -> Option<String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            self.error(
                span,
                format!("`{key}` \"{s}\" is not a valid app id: use 1 to 64 characters a-z, 0-9 and '-'"),
            );
            return None;
        }
        Some(s)
    }

    pub(super) fn rule_id(&mut self, key: &str, value: &Node) -> Option<String> {
        let s = self.string(key, value)?;
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if !ok {
            self.error(
                &value.span(),
                format!("`{key}` \"{s}\" is not a valid rule id: use 1 to 64 characters a-z, 0-9, '-', '_' and '.'"),
            );
            return None;
        }
        Some(s)
    }

    pub(super) fn slug(&mut self, key: &str, value: &Node) -> Option<String> {
        let s = self.string(key, value)?;
        self.check_slug(key, &value.span(), s)
    }

    /// The rule of `domain::PartnerSlug`: 2 to 40 characters a-z, 0-9 and '-', starting
    /// with a letter.
    pub(super) fn check_slug(
        &mut self,
        key: &str,
        span: &Range<usize>,
        s: String,
    ) -> Option<String> {
        let ok = (2..=40).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            self.error(
                span,
                format!("`{key}` \"{s}\" is not a valid partner slug: use 2 to 40 characters a-z, 0-9 and '-', starting with a letter"),
            );
            return None;
        }
        Some(s)
    }

    pub(super) fn url(&mut self, key: &str, value: &Node) -> Option<String> {
        let s = self.string(key, value)?;
        if !is_http_url(&s) {
            self.error(
                &value.span(),
                format!("`{key}` \"{s}\" is not an http(s) URL such as https://app.example/launch"),
            );
            return None;
        }
        Some(s)
    }

    pub(super) fn email(&mut self, key: &str, value: &Node) -> Option<String> {
        let s = self.string(key, value)?;
        let ok = match s.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains('@')
                    && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            None => false,
        };
        if !ok {
            self.error(
                &value.span(),
                format!("`{key}` \"{s}\" is not an email address"),
            );
            return None;
        }
        Some(s)
    }

    pub(super) fn template(&mut self, key: &str, value: &Node) -> Option<String> {
        let s = self.string(key, value)?;
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            // A template name becomes part of file names: `..` must not reach a directory.
            && !s.starts_with('.')
            && !s.contains("..");
        if !ok {
            self.error(
                &value.span(),
                format!("`{key}` \"{s}\" is not a valid template name: use 1 to 64 characters A-Z, a-z, 0-9, '-', '_' and '.', without '..' or a leading '.'"),
            );
            return None;
        }
        Some(s)
    }

    /// BCP 47-ish: a 2 to 8 letter primary subtag, then `-` subtags of 1 to 8 letters or
    /// digits (`nl`, `en-GB`, `zh-Hant-TW`).
    pub(super) fn language(&mut self, key: &str, value: &Node) -> Option<String> {
        let s = self.string(key, value)?;
        let mut parts = s.split('-');
        let primary_ok = parts.next().is_some_and(|p| {
            (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic())
        });
        let rest_ok = parts
            .all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
        if !(primary_ok && rest_ok) {
            self.error(
                &value.span(),
                format!("`{key}` \"{s}\" is not a language tag such as \"nl\" or \"en-GB\""),
            );
            return None;
        }
        Some(s)
    }

    /// A TOML local date (access ends at the end of that day, UTC, i.e. 00:00Z the next
    /// day) or an offset date-time.
    pub(super) fn end_date(&mut self, key: &str, value: &Node) -> Option<DateTime<Utc>> {
        const EXPECTED: &str = "a date such as 2027-06-30 (unquoted) or a date-time with offset such as 2027-06-30T17:00:00Z";
        let RawValue::Datetime(datetime) = value.get_ref() else {
            self.wrong_type(key, value, EXPECTED);
            return None;
        };
        let end = match (datetime.date, datetime.time, datetime.offset) {
            (Some(date), None, None) => {
                NaiveDate::from_ymd_opt(date.year.into(), date.month.into(), date.day.into())
                    .and_then(|d| d.succ_opt())
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc())
            }
            (Some(_), Some(_), Some(_)) => DateTime::parse_from_rfc3339(&datetime.to_string())
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            _ => {
                self.error(
                    &value.span(),
                    format!("`{key}` must be {EXPECTED}, found {datetime}, which has no date or no offset"),
                );
                return None;
            }
        };
        if end.is_none() {
            self.error(&value.span(), format!("`{key}` {datetime} is out of range"));
        }
        end
    }
}

/// `http://` or `https://`, a host (letters, digits, '.', '-', or a bracketed IPv6
/// address), an optional port, then an optional path, query or fragment; no spaces or
/// control characters.
pub(super) fn is_http_url(s: &str) -> bool {
    let lower = s.get(..8).map(str::to_ascii_lowercase).unwrap_or_default();
    let rest = if lower.starts_with("https://") {
        &s[8..]
    } else if lower.starts_with("http://") {
        &s[7..]
    } else {
        return false;
    };
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let (host, port) = match authority.rfind(':') {
        Some(colon) if !authority.ends_with(']') => {
            (&authority[..colon], Some(&authority[colon + 1..]))
        }
        _ => (authority, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !v6.is_empty()
            && v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty()
            && !host.starts_with(['.', '-'])
            && !host.ends_with('-')
            && !host.contains("..")
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    };
    port_ok && host_ok
}
