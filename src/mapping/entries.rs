//! Checking one rule file: TOML parsing with spans, then every key, type and value of each
//! `[[app]]`, `[[partner]]` and `[[rule]]` (unknown keys, wrong types, ids, slugs, URLs,
//! durations, dates, email, language tags, grants), each problem reported with its line and
//! all of them collected. Conditions are parsed and resolved against the User schema here,
//! once, so evaluation only matches. The result is a set of drafts whose references to one
//! another `load.rs` checks across files.

use std::ops::Range;

use chrono::{DateTime, NaiveDate, Utc};

use super::condition;
use super::model::{App, Approval, GrantSpec, PartnerPolicy, Rule};
use super::raw::{parse_document, Lines, Node, RawValue};
use super::MappingError;
use crate::scim::filter::parse_filter;

/// Longest duration a rule or partner may give, in days (about ten years).
pub(crate) const MAX_DAYS: i64 = 3650;

const APP_KEYS: &[&str] = &["id", "name", "description", "launch_url", "roles", "icon"];
const PARTNER_KEYS: &[&str] = &[
    "slug",
    "max_access_days",
    "allowed_apps",
    "approval",
    "mfa",
    "mfa_email_fallback",
    "max_deactivations_per_hour",
];
const RULE_KEYS: &[&str] = &[
    "id",
    "description",
    "partners",
    "condition",
    "groups",
    "grants",
    "access_days",
    "access_until",
    "use_partner_end_date",
    "sponsor",
    "mfa",
    "template",
    "language",
];
const GRANT_KEYS: &[&str] = &["app", "role"];

/// Where something was declared.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub(super) file: String,
    pub(super) line: usize,
}

impl Origin {
    pub(super) fn error(&self, message: String) -> MappingError {
        MappingError {
            file: self.file.clone(),
            line: self.line,
            message,
        }
    }
}

/// An entry as far as it parsed: fields that had errors keep their defaults, and the
/// identifier's origin is `None` when the identifier itself was missing or invalid, so that
/// references are still checked without cascading errors.
#[derive(Debug)]
pub(super) struct AppDraft {
    pub(super) app: App,
    pub(super) id_at: Option<Origin>,
    /// Whether `roles` parsed, so grants can be checked against them.
    pub(super) roles_known: bool,
}

#[derive(Debug)]
pub(super) struct PartnerDraft {
    pub(super) policy: PartnerPolicy,
    pub(super) slug_at: Option<Origin>,
    /// The line of each `allowed_apps` entry.
    pub(super) allowed_at: Vec<Origin>,
}

#[derive(Debug)]
pub(super) struct RuleDraft {
    pub(super) rule: Rule,
    pub(super) id_at: Option<Origin>,
    /// The line of each grant.
    pub(super) grants_at: Vec<Origin>,
}

/// Every entry, across all files, before references are checked.
#[derive(Debug, Default)]
pub(super) struct Drafts {
    pub(super) apps: Vec<AppDraft>,
    pub(super) partners: Vec<PartnerDraft>,
    pub(super) rules: Vec<RuleDraft>,
}

type Table = [(String, Node)];

/// One file being loaded: its text for line numbers and where its problems go.
pub(super) struct FileCtx<'a> {
    file: &'a str,
    content: &'a str,
    lines: Lines,
    errors: &'a mut Vec<MappingError>,
}

impl<'a> FileCtx<'a> {
    /// A file named `file` (its name in messages) with `content`; problems go to `errors`.
    pub(super) fn new(file: &'a str, content: &'a str, errors: &'a mut Vec<MappingError>) -> Self {
        Self {
            file,
            content,
            lines: Lines::new(content),
            errors,
        }
    }

    fn origin(&self, span: &Range<usize>) -> Origin {
        Origin {
            file: self.file.to_string(),
            line: self.lines.of(span),
        }
    }

    fn error(&mut self, span: &Range<usize>, message: String) {
        let line = self.lines.of(span);
        self.error_at_line(line, message);
    }

    fn error_at_line(&mut self, line: usize, message: String) {
        self.errors.push(MappingError {
            file: self.file.to_string(),
            line,
            message,
        });
    }

    /// Parses and checks the file, adding its entries to `drafts`.
    pub(super) fn load_file(&mut self, drafts: &mut Drafts) {
        let document = match parse_document(self.content) {
            Ok(document) => document,
            Err(e) => {
                let line = e.span().map_or(0, |span| self.lines.of(&span));
                let message = e.message().trim_end().replace('\n', "; ");
                self.error_at_line(line, format!("TOML syntax error: {message}"));
                return;
            }
        };
        for (key, value) in &document {
            let kind = match key.as_str() {
                "app" | "partner" | "rule" => key.as_str(),
                other => {
                    self.error(
                        &value.span(),
                        format!(
                            "unknown key `{other}` at the top level; expected [[app]], [[partner]] or [[rule]]"
                        ),
                    );
                    continue;
                }
            };
            let RawValue::Array(entries) = value.get_ref() else {
                self.error(
                    &value.span(),
                    format!(
                        "`{kind}` must be an array of tables ([[{kind}]]), found {}",
                        value.get_ref().type_name()
                    ),
                );
                continue;
            };
            for entry in entries {
                let RawValue::Table(table) = entry.get_ref() else {
                    self.error(
                        &entry.span(),
                        format!(
                            "each `{kind}` entry must be a table ([[{kind}]]), found {}",
                            entry.get_ref().type_name()
                        ),
                    );
                    continue;
                };
                let header = entry.span();
                match kind {
                    "app" => drafts.apps.push(self.app(table, &header)),
                    "partner" => drafts.partners.push(self.partner(table, &header)),
                    _ => drafts.rules.push(self.rule(table, &header)),
                }
            }
        }
    }

    /// Reports keys a table must have but lacks.
    fn require(&mut self, table: &Table, header: &Range<usize>, what: &str, keys: &[&str]) {
        for key in keys {
            if !table.iter().any(|(k, _)| k == key) {
                self.error(
                    header,
                    format!("{what} is missing the required key `{key}`"),
                );
            }
        }
    }

    fn unknown_key(&mut self, what: &str, key: &str, value: &Node, known: &[&str]) {
        self.error(
            &value.span(),
            format!(
                "unknown key `{key}` in {what}; expected one of: {}",
                known.join(", ")
            ),
        );
    }

    fn app(&mut self, table: &Table, header: &Range<usize>) -> AppDraft {
        const WHAT: &str = "[[app]]";
        self.require(
            table,
            header,
            WHAT,
            &["id", "name", "description", "launch_url", "roles"],
        );
        let mut app = App {
            id: String::new(),
            name: String::new(),
            description: String::new(),
            launch_url: String::new(),
            roles: Vec::new(),
            icon: None,
        };
        let (mut id_at, mut roles_known) = (None, false);
        for (key, value) in table {
            match key.as_str() {
                "id" => {
                    if let Some(id) = self.app_id(key, value) {
                        app.id = id;
                        id_at = Some(self.origin(&value.span()));
                    }
                }
                "name" => set(&mut app.name, self.text(key, value)),
                "description" => set(&mut app.description, self.string(key, value)),
                "launch_url" => set(&mut app.launch_url, self.url(key, value)),
                "icon" => app.icon = self.url(key, value),
                "roles" => {
                    if let Some(roles) = self.roles(key, value) {
                        app.roles = roles;
                        roles_known = true;
                    }
                }
                other => self.unknown_key(WHAT, other, value, APP_KEYS),
            }
        }
        AppDraft {
            app,
            id_at,
            roles_known,
        }
    }

    fn partner(&mut self, table: &Table, header: &Range<usize>) -> PartnerDraft {
        const WHAT: &str = "[[partner]]";
        self.require(table, header, WHAT, &["slug"]);
        let mut policy = PartnerPolicy::default_for("");
        let (mut slug_at, mut allowed_at) = (None, Vec::new());
        for (key, value) in table {
            match key.as_str() {
                "slug" => {
                    if let Some(slug) = self.slug(key, value) {
                        policy.slug = slug;
                        slug_at = Some(self.origin(&value.span()));
                    }
                }
                "max_access_days" => policy.max_access_days = self.days(key, value),
                "allowed_apps" => {
                    let items = self.list(key, value, |ctx, span, item| {
                        ctx.check_app_id("allowed_apps", span, item)
                    });
                    if let Some(items) = items {
                        allowed_at = items.iter().map(|(_, span)| self.origin(span)).collect();
                        policy.allowed_apps = Some(items.into_iter().map(|(s, _)| s).collect());
                    }
                }
                "approval" => match self.string(key, value).as_deref() {
                    Some("auto") => policy.approval = Approval::Auto,
                    Some("admin") => policy.approval = Approval::Admin,
                    Some(text) => self.error(
                        &value.span(),
                        format!("`approval` must be \"auto\" or \"admin\", found \"{text}\""),
                    ),
                    None => {}
                },
                "mfa" => set(&mut policy.mfa, self.boolean(key, value)),
                "mfa_email_fallback" => {
                    set(&mut policy.mfa_email_fallback, self.boolean(key, value))
                }
                "max_deactivations_per_hour" => match value.get_ref() {
                    RawValue::Integer(n) if (1..=1_000_000).contains(n) => {
                        policy.max_deactivations_per_hour = u32::try_from(*n).ok();
                    }
                    RawValue::Integer(n) => self.error(
                        &value.span(),
                        format!("`{key}` must be from 1 to 1000000, found {n}"),
                    ),
                    _ => self.wrong_type(key, value, "a whole number"),
                },
                other => self.unknown_key(WHAT, other, value, PARTNER_KEYS),
            }
        }
        PartnerDraft {
            policy,
            slug_at,
            allowed_at,
        }
    }

    fn rule(&mut self, table: &Table, header: &Range<usize>) -> RuleDraft {
        const WHAT: &str = "[[rule]]";
        self.require(table, header, WHAT, &["id", "grants"]);
        let mut rule = Rule {
            id: String::new(),
            description: None,
            partners: None,
            condition: None,
            condition_text: None,
            groups: None,
            grants: Vec::new(),
            access_days: None,
            access_until: None,
            use_partner_end_date: true,
            sponsor: None,
            mfa: None,
            template: None,
            language: None,
            file: self.file.to_string(),
            line: self.lines.of(header),
        };
        let (mut id_at, mut grants_at) = (None, Vec::new());
        for (key, value) in table {
            match key.as_str() {
                "id" => {
                    if let Some(id) = self.rule_id(key, value) {
                        rule.id = id;
                        id_at = Some(self.origin(&value.span()));
                    }
                }
                "description" => rule.description = self.string(key, value),
                "partners" => {
                    let items = self.list(key, value, |ctx, span, item| {
                        ctx.check_slug("partners", span, item)
                    });
                    rule.partners = items.map(|items| items.into_iter().map(|(s, _)| s).collect());
                }
                "condition" => {
                    if let Some((text, filter)) = self.condition(key, value) {
                        rule.condition_text = Some(text);
                        rule.condition = Some(filter);
                    }
                }
                "groups" => {
                    let items = self.list(key, value, |ctx, span, item| {
                        ctx.check_text("groups", span, item)
                    });
                    rule.groups = items.map(|items| items.into_iter().map(|(s, _)| s).collect());
                }
                "grants" => {
                    let grants = self.grants(key, value);
                    grants_at = grants.iter().map(|(_, span)| self.origin(span)).collect();
                    rule.grants = grants.into_iter().map(|(g, _)| g).collect();
                }
                "access_days" => rule.access_days = self.days(key, value),
                "access_until" => rule.access_until = self.end_date(key, value),
                "use_partner_end_date" => {
                    set(&mut rule.use_partner_end_date, self.boolean(key, value));
                }
                "sponsor" => rule.sponsor = self.email(key, value),
                "mfa" => rule.mfa = self.boolean(key, value),
                "template" => rule.template = self.template(key, value),
                "language" => rule.language = self.language(key, value),
                other => self.unknown_key(WHAT, other, value, RULE_KEYS),
            }
        }
        RuleDraft {
            rule,
            id_at,
            grants_at,
        }
    }

    // ---- typed values ------------------------------------------------------------------

    fn wrong_type(&mut self, key: &str, value: &Node, expected: &str) {
        self.error(
            &value.span(),
            format!(
                "`{key}` must be {expected}, found {}",
                value.get_ref().type_name()
            ),
        );
    }

    fn string(&mut self, key: &str, value: &Node) -> Option<String> {
        match value.get_ref() {
            RawValue::String(s) => Some(s.clone()),
            _ => {
                self.wrong_type(key, value, "a string");
                None
            }
        }
    }

    /// A string with something in it besides spaces.
    fn text(&mut self, key: &str, value: &Node) -> Option<String> {
        let s = self.string(key, value)?;
        self.check_text(key, &value.span(), s)
    }

    fn check_text(&mut self, key: &str, span: &Range<usize>, s: String) -> Option<String> {
        if s.trim().is_empty() {
            self.error(span, format!("`{key}` must not be empty"));
            return None;
        }
        Some(s)
    }

    fn boolean(&mut self, key: &str, value: &Node) -> Option<bool> {
        match value.get_ref() {
            RawValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(key, value, "true or false");
                None
            }
        }
    }

    fn days(&mut self, key: &str, value: &Node) -> Option<u32> {
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
    fn list(
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

    fn roles(&mut self, key: &str, value: &Node) -> Option<Vec<String>> {
        let items = self.list(key, value, |ctx, span, role| {
            ctx.check_text(key, span, role)
        })?;
        Some(items.into_iter().map(|(s, _)| s).collect())
    }

    fn app_id(&mut self, key: &str, value: &Node) -> Option<String> {
        let s = self.string(key, value)?;
        self.check_app_id(key, &value.span(), s)
    }

    fn check_app_id(&mut self, key: &str, span: &Range<usize>, s: String) -> Option<String> {
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

    fn rule_id(&mut self, key: &str, value: &Node) -> Option<String> {
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

    fn slug(&mut self, key: &str, value: &Node) -> Option<String> {
        let s = self.string(key, value)?;
        self.check_slug(key, &value.span(), s)
    }

    /// The rule of `domain::PartnerSlug`: 2 to 40 characters a-z, 0-9 and '-', starting
    /// with a letter.
    fn check_slug(&mut self, key: &str, span: &Range<usize>, s: String) -> Option<String> {
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

    fn url(&mut self, key: &str, value: &Node) -> Option<String> {
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

    fn email(&mut self, key: &str, value: &Node) -> Option<String> {
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

    fn template(&mut self, key: &str, value: &Node) -> Option<String> {
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
    fn language(&mut self, key: &str, value: &Node) -> Option<String> {
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
    fn end_date(&mut self, key: &str, value: &Node) -> Option<DateTime<Utc>> {
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

    /// The grants that parsed, with their spans; the others are reported.
    fn grants(&mut self, key: &str, value: &Node) -> Vec<(GrantSpec, Range<usize>)> {
        const EXPECTED: &str =
            "an array of tables such as [{ app = \"ehr-viewer\", role = \"reader\" }]";
        let RawValue::Array(items) = value.get_ref() else {
            self.wrong_type(key, value, EXPECTED);
            return Vec::new();
        };
        if items.is_empty() {
            self.error(
                &value.span(),
                format!("`{key}` must not be empty: a rule grants at least one app role"),
            );
        }
        let mut out: Vec<(GrantSpec, Range<usize>)> = Vec::with_capacity(items.len());
        for item in items {
            let RawValue::Table(table) = item.get_ref() else {
                self.error(
                    &item.span(),
                    format!(
                        "`{key}` must be {EXPECTED}, found {} in it",
                        item.get_ref().type_name()
                    ),
                );
                continue;
            };
            self.require(table, &item.span(), "a grant", GRANT_KEYS);
            let (mut app, mut role) = (None, None);
            for (k, v) in table {
                match k.as_str() {
                    "app" => app = self.app_id(k, v),
                    "role" => role = self.text(k, v),
                    other => self.unknown_key("a grant", other, v, GRANT_KEYS),
                }
            }
            let (Some(app), Some(role)) = (app, role) else {
                continue;
            };
            let grant = GrantSpec { app, role };
            if out.iter().any(|(g, _)| *g == grant) {
                self.error(
                    &item.span(),
                    format!("`{key}` lists {} / {} twice", grant.app, grant.role),
                );
                continue;
            }
            out.push((grant, item.span()));
        }
        out
    }

    /// Parses and resolves a condition; parser errors point at the offending character's
    /// line when the string has no escapes, else at the condition's first line.
    fn condition(
        &mut self,
        key: &str,
        value: &Node,
    ) -> Option<(String, crate::scim::filter::Filter)> {
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

/// Sets `slot` when `value` parsed.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// Where `value`'s text starts inside the TOML string literal `raw` (quotes included), when
/// the literal spells it without escapes, so that offsets in `value` map to the source.
fn content_offset(raw: &str, value: &str) -> Option<usize> {
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

/// `http://` or `https://`, a host (letters, digits, '.', '-', or a bracketed IPv6
/// address), an optional port, then an optional path, query or fragment; no spaces or
/// control characters.
fn is_http_url(s: &str) -> bool {
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
#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::load::tests::{errors, load, one_error, rule_error, APPS};
    use crate::scim::schema::ENTERPRISE_USER_SCHEMA;

    #[test]
    fn parses_every_key() {
        let set = load(&[
            ("a.toml", APPS),
            (
                "b.toml",
                r#"
[[app]]
id = "rota"
name = "Rota"
description = ""
launch_url = "http://rota.example:8080/x?y#z"
roles = ["viewer"]
icon = "https://rota.example/i.svg"

[[partner]]
slug = "st-mary"
max_access_days = 180
allowed_apps = ["ehr"]
approval = "admin"
mfa = true
mfa_email_fallback = true
max_deactivations_per_hour = 25

[[partner]]
slug = "northside"

[[rule]]
id = "nurses"
description = "Nurses"
partners = ["st-mary", "other"]
condition = 'department eq "Cardiology" and title co "Nurse"'
groups = ["ICU Staff"]
grants = [ { app = "ehr", role = "reader" }, { app = "rota", role = "viewer" } ]
access_days = 90
access_until = 2027-06-30
use_partner_end_date = false
sponsor = "dr.grey@hospital.example"
mfa = true
template = "clinician"
language = "nl-BE"

[[rule]]
id = "minimal"
access_until = 2027-06-30T17:00:00+02:00

[[rule.grants]]
app = "ehr"
role = "clinician"
"#,
            ),
        ]);
        assert_eq!(set.apps.len(), 2);
        assert_eq!(
            set.apps[1].icon.as_deref(),
            Some("https://rota.example/i.svg")
        );
        assert_eq!(set.apps[0].roles, ["reader", "clinician"]);
        assert_eq!(
            set.partners[0],
            PartnerPolicy {
                slug: "st-mary".into(),
                max_access_days: Some(180),
                allowed_apps: Some(vec!["ehr".into()]),
                approval: Approval::Admin,
                mfa: true,
                mfa_email_fallback: true,
                max_deactivations_per_hour: Some(25),
            }
        );
        assert_eq!(set.partners[1], PartnerPolicy::default_for("northside"));
        let rule = &set.rules[0];
        assert_eq!(rule.id, "nurses");
        assert_eq!((rule.file.as_str(), rule.line), ("b.toml", 22));
        assert_eq!(
            rule.partners.as_deref(),
            Some(&["st-mary".to_string(), "other".into()][..])
        );
        assert_eq!(
            rule.condition_text.as_deref(),
            Some(r#"department eq "Cardiology" and title co "Nurse""#)
        );
        assert_eq!(
            rule.condition.as_ref().map(ToString::to_string).as_deref(),
            Some(&*format!(
                r#"{ENTERPRISE_USER_SCHEMA}:department eq "Cardiology" and title co "Nurse""#
            ))
        );
        assert_eq!(rule.groups.as_deref(), Some(&["ICU Staff".to_string()][..]));
        assert_eq!(rule.grants.len(), 2);
        assert_eq!(
            rule.grants[1],
            GrantSpec {
                app: "rota".into(),
                role: "viewer".into()
            }
        );
        assert_eq!(rule.access_days, Some(90));
        assert_eq!(
            rule.access_until.map(|t| t.to_rfc3339()).as_deref(),
            Some("2027-07-01T00:00:00+00:00")
        );
        assert!(!rule.use_partner_end_date);
        assert_eq!(rule.sponsor.as_deref(), Some("dr.grey@hospital.example"));
        assert_eq!(rule.mfa, Some(true));
        assert_eq!(rule.template.as_deref(), Some("clinician"));
        assert_eq!(rule.language.as_deref(), Some("nl-BE"));
        let minimal = &set.rules[1];
        assert!(minimal.use_partner_end_date);
        assert!(minimal.condition.is_none() && minimal.partners.is_none());
        assert_eq!(
            minimal.grants,
            [GrantSpec {
                app: "ehr".into(),
                role: "clinician".into()
            }]
        );
        assert_eq!(
            minimal.access_until.map(|t| t.to_rfc3339()).as_deref(),
            Some("2027-06-30T15:00:00+00:00")
        );
    }

    #[test]
    fn toml_syntax_errors_have_their_line() {
        one_error(
            &[("bad.toml", "[[app]]\nid = \"x\"\nname = \n")],
            "bad.toml:3",
            "TOML syntax error",
        );
        one_error(
            &[("dup.toml", "[[rule]]\nid = \"a\"\nid = \"b\"\n")],
            "dup.toml:3",
            "duplicate key",
        );
    }

    #[test]
    fn unknown_keys_are_errors_everywhere() {
        one_error(
            &[("t.toml", "\n\napps = []\n")],
            "t.toml:3",
            "unknown key `apps` at the top level",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\nduration = 3\n",
            4,
            "unknown key `duration` in [[rule]]",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [\n  { app = \"ehr\", role = \"reader\", until = 3 },\n]\n",
            4,
            "unknown key `until` in a grant",
        );
        rule_error(
            "[[partner]]\nslug = \"ab\"\nmax_days = 3\n",
            3,
            "unknown key `max_days` in [[partner]]",
        );
        one_error(
            &[("a.toml", &format!("{APPS}colour = \"red\"\n"))],
            "a.toml:8",
            "unknown key `colour` in [[app]]",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n[rule.extra]\nx = 1\n",
            4,
            "unknown key `extra` in [[rule]]",
        );
        // Implicit tables (dotted keys) have no span of their own.
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\nlimits.days = 3\n",
            4,
            "unknown key `limits` in [[rule]]",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n[rule.a.b]\nx = 1\n",
            4,
            "unknown key `a` in [[rule]]",
        );
    }

    #[test]
    fn wrong_types_are_errors() {
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\naccess_days = \"90\"\n",
            4,
            "`access_days` must be a whole number of days, found a string",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\nmfa = \"yes\"\n",
            4,
            "`mfa` must be true or false, found a string",
        );
        rule_error(
            "[[rule]]\nid = 7\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n",
            2,
            "`id` must be a string, found an integer",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ngroups = [\n  \"a\",\n  2,\n]\n",
            6,
            "`groups` must be an array of strings, found an integer in it",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [\"ehr\"]\n",
            3,
            "`grants` must be an array of tables",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\naccess_until = \"2027-06-30\"\n",
            4,
            "`access_until` must be a date such as 2027-06-30 (unquoted)",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\naccess_until = 2027-06-30T10:00:00\n",
            4,
            "which has no date or no offset",
        );
        rule_error(
            "[rule]\nid = \"r\"\n",
            1,
            "`rule` must be an array of tables ([[rule]]), found a table",
        );
        rule_error(
            "partner = [\"st-mary\"]\n",
            1,
            "each `partner` entry must be a table",
        );
        rule_error(
            "[[partner]]\nslug = \"ab\"\napproval = \"manual\"\n",
            3,
            "`approval` must be \"auto\" or \"admin\"",
        );
    }

    #[test]
    fn missing_required_keys_are_errors() {
        rule_error(
            "\n[[rule]]\nid = \"r\"\n",
            2,
            "[[rule]] is missing the required key `grants`",
        );
        rule_error(
            "[[partner]]\nmfa = true\n",
            1,
            "[[partner]] is missing the required key `slug`",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\" }]\n",
            3,
            "a grant is missing the required key `role`",
        );
        let errs = errors(&[("a.toml", "[[app]]\nid = \"x\"\n")]);
        assert_eq!(errs.len(), 4, "{errs:#?}");
        for key in ["name", "description", "launch_url", "roles"] {
            assert!(
                errs.iter().any(|e| e == &format!("a.toml:1: [[app]] is missing the required key `{key}`")),
                "{key}: {errs:#?}"
            );
        }
    }

    #[test]
    fn invalid_conditions_point_at_their_line() {
        // Position mapped into a multi-line literal string.
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = '''\ntitle pr and\ndepartment eq \"x\" and\ntitle zz \"y\"'''\n",
            7,
            "invalid `condition` at position 41: expected a comparison operator after 'title', found 'zz'",
        );
        // With escapes the position cannot be mapped: the condition's line.
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = \"\"\"\ntitle eq \\\"x\\\" and\n(\"\"\"\n",
            4,
            "invalid `condition` at position",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = ''\n",
            4,
            "empty filter",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = 'departement eq \"x\"'\n",
            4,
            "invalid `condition`: unknown attribute 'departement'",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = 'emails[kind eq \"work\"]'\n",
            4,
            "unknown attribute 'emails.kind'",
        );
        // In a multi-line condition, the line of the unknown attribute.
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = \"\"\"\ntitle pr\nand departement eq 'x'\n\"\"\"\n",
            6,
            "unknown attribute 'departement'",
        );
        // Written twice: the condition's first line.
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\ncondition = '''\ntitle pr\nand (dept eq \"x\" or dept eq \"y\")'''\n",
            4,
            "unknown attribute 'dept'",
        );
    }

    #[test]
    fn content_offsets_only_for_unescaped_literals() {
        assert_eq!(content_offset("'a b'", "a b"), Some(1));
        assert_eq!(content_offset("\"a b\"", "a b"), Some(1));
        assert_eq!(content_offset("'''\na b'''", "a b"), Some(4));
        assert_eq!(content_offset("\"\"\"\r\na\"\"\"", "a"), Some(5));
        assert_eq!(content_offset("\"a\\\"b\"", "a\"b"), None);
        assert_eq!(content_offset("x", "x"), None);
    }

    #[test]
    fn invalid_values_are_errors() {
        let grant = "grants = [{ app = \"ehr\", role = \"reader\" }]\n";
        for (extra, needle) in [
            (
                "access_days = 0",
                "`access_days` must be from 1 to 3650 days, found 0",
            ),
            ("access_days = 3651", "from 1 to 3650 days, found 3651"),
            ("access_days = -5", "found -5"),
            ("language = \"dutch_x\"", "not a language tag"),
            ("language = \"nl-\"", "not a language tag"),
            ("language = \"n\"", "not a language tag"),
            ("language = \"en_GB\"", "not a language tag"),
            ("sponsor = \"dr.grey\"", "not an email address"),
            ("template = \"my template\"", "not a valid template name"),
            ("template = \"..\"", "not a valid template name"),
            ("template = \"../invitation\"", "not a valid template name"),
            ("template = \".hidden\"", "not a valid template name"),
            ("partners = [\"St-Mary\"]", "not a valid partner slug"),
            ("partners = []", "`partners` must not be empty"),
            ("groups = [\" \"]", "`groups` must not be empty"),
            ("groups = [\"a\", \"a\"]", "`groups` lists \"a\" twice"),
            ("description = 3", "`description` must be a string"),
            ("access_until = 10:00:00", "which has no date or no offset"),
        ] {
            rule_error(
                &format!("[[rule]]\nid = \"r\"\n{grant}{extra}\n"),
                4,
                needle,
            );
        }
        rule_error(
            "[[rule]]\nid = \"R 1\"\n{grant}\n"
                .replace("{grant}", grant)
                .as_str(),
            2,
            "not a valid rule id",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = []\n",
            3,
            "`grants` must not be empty",
        );
        rule_error(
            "[[partner]]\nslug = \"1st\"\n",
            2,
            "not a valid partner slug",
        );
        rule_error(
            "[[partner]]\nslug = \"ab\"\nmax_access_days = 0\n",
            3,
            "`max_access_days` must be from 1 to 3650 days",
        );
        rule_error(
            "[[partner]]\nslug = \"ab\"\nmax_access_days = 4000\n",
            3,
            "found 4000",
        );
        rule_error(
            "[[partner]]\nslug = \"ab\"\nallowed_apps = [\"EHR\"]\n",
            3,
            "not a valid app id",
        );
        rule_error(
            "[[partner]]\nslug = \"ab\"\nmfa_email_fallback = \"yes\"\n",
            3,
            "`mfa_email_fallback` must be true or false",
        );
        rule_error(
            "[[partner]]\nslug = \"ab\"\nmax_deactivations_per_hour = 0\n",
            3,
            "`max_deactivations_per_hour` must be from 1 to 1000000, found 0",
        );
        rule_error(
            "[[partner]]\nslug = \"ab\"\nmax_deactivations_per_hour = \"lots\"\n",
            3,
            "max_deactivations_per_hour",
        );
        for (key, value, needle) in [
            (
                "launch_url",
                "ftp://ehr.example/",
                "`launch_url` \"ftp://ehr.example/\" is not an http(s) URL",
            ),
            ("launch_url", "https://", "is not an http(s) URL"),
            (
                "launch_url",
                "https://ehr example/",
                "is not an http(s) URL",
            ),
            (
                "launch_url",
                "https://ehr.example:80a/",
                "is not an http(s) URL",
            ),
            (
                "icon",
                "/static/icon.svg",
                "`icon` \"/static/icon.svg\" is not an http(s) URL",
            ),
            ("id", "EHR", "not a valid app id"),
            ("roles", "[]", "`roles` must not be empty"),
            ("roles", "[\"a\", \"a\"]", "`roles` lists \"a\" twice"),
            ("name", " ", "`name` must not be empty"),
        ] {
            let value = if value.starts_with('[') {
                value.to_string()
            } else {
                format!("\"{value}\"")
            };
            let app = "[[app]]\nid = \"x\"\nname = \"X\"\ndescription = \"\"\nlaunch_url = \"https://x.example\"\nroles = [\"r\"]\n"
            .lines()
            .filter(|l| !l.starts_with(&format!("{key} =")))
            .map(|l| format!("{l}\n"))
            .collect::<String>();
            let app = format!("{app}{key} = {value}\n");
            let line = app.lines().count();
            one_error(&[("a.toml", &app)], &format!("a.toml:{line}"), needle);
        }
    }

    #[test]
    fn urls_are_checked() {
        for ok in [
            "https://ehr.example",
            "HTTPS://ehr.example/launch?x=1#y",
            "http://localhost:8080/",
            "http://[::1]:8080/x",
            "https://10.0.0.1/",
        ] {
            assert!(is_http_url(ok), "{ok}");
        }
        for bad in [
            "ehr.example",
            "https:/ehr.example",
            "https://-ehr.example/",
            "https://ehr..example/",
            "https://ehr.example:/",
            "https://user@ehr.example/",
            "https://ehr.example/a b",
            "javascript:alert(1)",
            "https://[]/",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }
}
