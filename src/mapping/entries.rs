//! Checking one rule file: TOML parsing with spans, then every key, type and value of each
//! `[[app]]`, `[[partner]]` and `[[rule]]` (unknown keys, wrong types, ids, slugs, URLs,
//! durations, dates, email, language tags, grants), each problem reported with its line and
//! all of them collected. Conditions are parsed and resolved against the User schema here,
//! once, so evaluation only matches. The result is a set of drafts whose references to one
//! another `load.rs` checks across files.

use std::ops::Range;

use super::model::{App, PartnerPolicy, Rule};
use super::raw::{parse_document, Lines, Node, RawValue};
use super::MappingError;
mod conditions;
mod grants;
mod tables;
mod values;

/// Longest duration a rule or partner may give, in days (about ten years).
pub(crate) const MAX_DAYS: i64 = 3650;

const APP_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "launch_url",
    "roles",
    "icon",
    "oidc_client_id",
    "oidc_redirect_uris",
    "oidc_public",
    "oidc_client_secret_sha256",
    "oidc_scopes",
    "oidc_initiate_login_uri",
    "oidc_post_logout_redirect_uris",
];
const PARTNER_KEYS: &[&str] = &[
    "slug",
    "max_access_days",
    "allowed_apps",
    "approval",
    "mfa",
    "mfa_email_fallback",
    "max_deactivations_per_hour",
    "inactive_days",
    "inactive_remove_after_days",
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
}

#[cfg(test)]
mod tests;
