//! Mail templates: built-in English defaults compiled into the binary, optionally overridden
//! per language and per partner from a folder (`<mappings_dir>/templates/`), rendered with
//! minijinja into a subject line, a text/plain body and an HTML body.
//!
//! Files are named `{name}.{lang}.subject.txt`, `{name}.{lang}.txt` and `{name}.{lang}.html`,
//! at the top of the folder (all partners) or in a `{partner}/` sub-folder. A file at the top
//! replaces the built-in file of the same name; every other `{name}.{lang}` set must be
//! complete (all three parts). Files starting with `_` are partials (the built-in ones are
//! `_layout.html` and `_macros.html`) and may be replaced or added; `.`-files and `README*`
//! are ignored. A set is chosen whole, first found of: partner + language, partner + `en`,
//! language, `en` (a regional language such as `fr-ca` also tries `fr` before `en`).
//! A rule's `template = "NAME"` picks the set `invitation-NAME` for its guests' invitations:
//! such sets may be added under any NAME (with the invitation's context), and need an `en`
//! set, the last fallback.
//!
//! HTML is autoescaped, text and subject are not; the subject is made a single line. An
//! undefined variable is an error when printed but may be tested with `{% if %}`. Loading
//! checks that every file parses and that every set renders with [`sample_context`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{context, AutoEscape, Environment, UndefinedBehavior, Value};
use serde_json::json;

use folder::{classify, read_overrides, FileName};

mod folder;

/// The mail templates the application renders, with the context each one receives:
///
/// - `invitation`: `guest_name`, `inviter` (host organisation), `partner_name`,
///   `apps` (`[{name, description}]`), `link`, `expires_at` (human text), `sponsor` (optional).
/// - `reminder`: as `invitation`, plus `reminder_number` (1, 2, ...).
/// - `signin_link`: `link`, `expires_minutes`.
/// - `otp_code`: `code`, `expires_minutes`.
/// - `declined_notice` (to the sponsor): `guest_name`, `partner_name`.
/// - `expiry_warning`: `guest_name`, `apps`, `ends_at` (human text), `sponsor` (optional).
/// - `lapsed_notice` (to the sponsor): `guest_name`, `partner_name`, `apps` (optional),
///   `ended_at` (optional, human text).
///
/// Every template also receives `lang`, the language of the set that was chosen.
pub const TEMPLATE_NAMES: &[&str] = &[
    "invitation",
    "reminder",
    "signin_link",
    "otp_code",
    "declined_notice",
    "expiry_warning",
    "lapsed_notice",
];

/// Files of a rule's own invitation text are named `invitation-NAME.LANG.*`, where NAME is the
/// rule's `template`; they are rendered with the invitation's context.
pub const VARIANT_PREFIX: &str = "invitation-";

/// The template set a rule's `template` names: its invitation variant (`invitation` itself
/// names the standard one).
pub fn invitation_variant(template: &str) -> String {
    if template == "invitation" {
        template.to_owned()
    } else {
        format!("{VARIANT_PREFIX}{template}")
    }
}

/// Language every template exists in, and the last fallback.
pub const DEFAULT_LANG: &str = "en";

macro_rules! builtin_files {
    ($($file:literal),* $(,)?) => {
        &[$(($file, include_str!(concat!("../default_templates/", $file)))),*]
    };
}

const BUILTIN_FILES: &[(&str, &str)] = builtin_files![
    "_layout.html",
    "_macros.html",
    "invitation.en.subject.txt",
    "invitation.en.txt",
    "invitation.en.html",
    "reminder.en.subject.txt",
    "reminder.en.txt",
    "reminder.en.html",
    "signin_link.en.subject.txt",
    "signin_link.en.txt",
    "signin_link.en.html",
    "otp_code.en.subject.txt",
    "otp_code.en.txt",
    "otp_code.en.html",
    "declined_notice.en.subject.txt",
    "declined_notice.en.txt",
    "declined_notice.en.html",
    "expiry_warning.en.subject.txt",
    "expiry_warning.en.txt",
    "expiry_warning.en.html",
    "lapsed_notice.en.subject.txt",
    "lapsed_notice.en.txt",
    "lapsed_notice.en.html",
];

/// A rendered mail, ready to be put in the outbox. Holds one-time links: never log it.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// One line, surrounding whitespace trimmed.
    pub subject: String,
    /// The text/plain alternative.
    pub text: String,
    /// The text/html alternative.
    pub html: String,
}

/// Why a mail could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// No template set for that name in any of the places looked at.
    #[error("no mail template {name:?}: looked for {}", looked_for.join(", "))]
    NotFound {
        name: String,
        /// The sets looked for, in order (`acme/invitation.fr.*`, ...).
        looked_for: Vec<String>,
    },
    /// The template failed while rendering (for example an undefined variable).
    #[error("mail template {file}: {message}")]
    Render { file: String, message: String },
}

/// The three files of a template set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    const ALL: [Part; 3] = [Part::Subject, Part::Text, Part::Html];

    fn suffix(self) -> &'static str {
        match self {
            Part::Subject => "subject.txt",
            Part::Text => "txt",
            Part::Html => "html",
        }
    }
}

/// A `{prefix}{name}.{lang}` set; `prefix` is `""` or `"{partner}/"`.
type SetKey = (String, String, String);

/// The loaded templates. Cheap to share behind an `Arc`; rendering takes `&self`.
pub struct Templates {
    env: Environment<'static>,
    /// Template name in the environment → the file it came from, for messages.
    files: BTreeMap<String, String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("templates", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Templates {
    /// The built-in templates, then the overrides found in `dir` (the templates folder itself,
    /// for example `mappings/templates`; a folder that does not exist means no overrides).
    ///
    /// Every problem is reported, each as `file: message` or `file:line: message`.
    pub fn load(dir: Option<&Path>) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let mut templates = Templates {
            env: new_environment(),
            files: BTreeMap::new(),
        };
        // Files that did not parse; trial renders would only repeat their errors.
        let mut broken: BTreeSet<String> = BTreeSet::new();
        let mut sets: BTreeSet<SetKey> = BTreeSet::new();

        for (file, source) in BUILTIN_FILES {
            let display = format!("built-in {file}");
            match classify(file) {
                Ok(FileName::Part { name, lang, .. }) => {
                    sets.insert((String::new(), name, lang));
                }
                Ok(FileName::Partial) => {}
                Err(message) => errors.push(format!("{display}: {message}")),
            }
            templates.add(
                file.to_string(),
                display,
                source.to_string(),
                &mut broken,
                &mut errors,
            );
        }

        if let Some(dir) = dir {
            let mut seen: BTreeMap<String, String> = BTreeMap::new();
            for (canonical, display, source, set) in read_overrides(dir, &mut errors) {
                if let Some(first) = seen.get(&canonical) {
                    errors.push(format!("{display}: the same template as {first}"));
                    continue;
                }
                seen.insert(canonical.clone(), display.clone());
                if let Some(set) = set {
                    sets.insert(set);
                }
                templates.add(canonical, display, source, &mut broken, &mut errors);
            }
        }

        for (prefix, name, lang) in &sets {
            let missing: Vec<String> = Part::ALL
                .iter()
                .map(|part| format!("{prefix}{name}.{lang}.{}", part.suffix()))
                .filter(|file| !templates.files.contains_key(file))
                .collect();
            if !missing.is_empty() {
                let location = dir.map_or_else(String::new, |d| format!("{}/", d.display()));
                errors.push(format!(
                    "{location}{prefix}{name}.{lang}.*: incomplete template set, missing {} \
                     (a set needs .subject.txt, .txt and .html)",
                    missing.join(", ")
                ));
                continue;
            }
            if !broken.is_empty() {
                continue;
            }
            let ctx = sample_context(name).unwrap_or(serde_json::Value::Null);
            match templates.render_set(prefix, name, lang, &ctx) {
                Ok(_) => {}
                Err(TemplateError::Render { file, message }) => {
                    errors.push(format!("{file}: {message}"));
                }
                Err(err) => errors.push(err.to_string()),
            }
        }

        if errors.is_empty() {
            Ok(templates)
        } else {
            Err(errors)
        }
    }

    /// Adds one template under its canonical name; a parse error is recorded with the file.
    fn add(
        &mut self,
        canonical: String,
        display: String,
        source: String,
        broken: &mut BTreeSet<String>,
        errors: &mut Vec<String>,
    ) {
        if let Err(err) = self.env.add_template_owned(canonical.clone(), source) {
            errors.push(describe_error(&display, &err));
            broken.insert(canonical.clone());
        }
        self.files.insert(canonical, display);
    }

    /// Renders template `name` for a partner (its slug) and a language (`fr`, `fr-CA`, ...),
    /// falling back as the module documentation says.
    pub fn render(
        &self,
        name: &str,
        partner: Option<&str>,
        lang: Option<&str>,
        ctx: &serde_json::Value,
    ) -> Result<RenderedMail, TemplateError> {
        let (prefix, lang) = self.find_set(name, partner, lang)?;
        self.render_set(&prefix, name, &lang, ctx)
    }

    /// Whether `render` would find a set named `name` for this partner and language.
    pub fn has(&self, name: &str, partner: Option<&str>, lang: Option<&str>) -> bool {
        self.find_set(name, partner, lang).is_ok()
    }

    /// The (folder prefix, language) of the set `render` uses: the first candidate present.
    fn find_set(
        &self,
        name: &str,
        partner: Option<&str>,
        lang: Option<&str>,
    ) -> Result<(String, String), TemplateError> {
        let mut looked_for = Vec::new();
        for (prefix, lang) in candidates(partner, lang) {
            let subject = format!("{prefix}{name}.{lang}.{}", Part::Subject.suffix());
            if self.files.contains_key(&subject) {
                return Ok((prefix, lang));
            }
            looked_for.push(format!("{prefix}{name}.{lang}.*"));
        }
        Err(TemplateError::NotFound {
            name: name.to_owned(),
            looked_for,
        })
    }

    fn render_set(
        &self,
        prefix: &str,
        name: &str,
        lang: &str,
        ctx: &serde_json::Value,
    ) -> Result<RenderedMail, TemplateError> {
        let ctx = context! { lang => lang, ..Value::from(Serde(ctx)) };
        let render = |part: Part| -> Result<String, TemplateError> {
            let canonical = format!("{prefix}{name}.{lang}.{}", part.suffix());
            let template = self
                .env
                .get_template(&canonical)
                .map_err(|err| self.render_error(&canonical, &err))?;
            template
                .render(&ctx)
                .map_err(|err| self.render_error(&canonical, &err))
        };
        let subject = render(Part::Subject)?;
        Ok(RenderedMail {
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: render(Part::Text)?,
            html: render(Part::Html)?,
        })
    }

    /// Names the file where the error happened (which may be a partial) and the line.
    fn render_error(&self, canonical: &str, err: &minijinja::Error) -> TemplateError {
        let name = err.name().unwrap_or(canonical);
        let file = self.files.get(name).map_or(name, String::as_str);
        let file = match err.line() {
            Some(line) => format!("{file}:{line}"),
            None => file.to_owned(),
        };
        TemplateError::Render {
            file,
            message: error_message(err),
        }
    }
}

/// A context with every variable template `name` receives, with made-up values; used to check
/// overrides when loading, and handy for previews and tests.
pub fn sample_context(name: &str) -> Option<serde_json::Value> {
    let name = if name.starts_with(VARIANT_PREFIX) {
        "invitation"
    } else {
        name
    };
    let apps = json!([
        {"name": "Radiology Viewer", "description": "Read imaging reports and images."},
        {"name": "Shift Planner", "description": "See and swap your shifts."}
    ]);
    let ctx = match name {
        "invitation" => json!({
            "guest_name": "Ann Lee", "inviter": "Northside Hospitals", "partner_name": "Acme Health",
            "apps": apps, "link": "https://guestbridge.example/invite/SAMPLE",
            "expires_at": "15 March 2026", "sponsor": "Dr Sam Patel"
        }),
        "reminder" => json!({
            "guest_name": "Ann Lee", "inviter": "Northside Hospitals", "partner_name": "Acme Health",
            "apps": apps, "link": "https://guestbridge.example/invite/SAMPLE",
            "expires_at": "15 March 2026", "sponsor": "Dr Sam Patel", "reminder_number": 2
        }),
        "signin_link" => json!({
            "link": "https://guestbridge.example/signin/SAMPLE", "expires_minutes": 15
        }),
        "otp_code" => json!({"code": "123456", "expires_minutes": 10}),
        "declined_notice" => json!({"guest_name": "Ann Lee", "partner_name": "Acme Health"}),
        "expiry_warning" => json!({
            "guest_name": "Ann Lee", "apps": apps, "ends_at": "31 March 2026",
            "sponsor": "Dr Sam Patel"
        }),
        "lapsed_notice" => json!({
            "guest_name": "Ann Lee", "partner_name": "Acme Health", "apps": apps,
            "ended_at": "31 March 2026"
        }),
        _ => return None,
    };
    Some(ctx)
}

fn new_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    // Block tags on their own lines leave no blank lines or indentation in the text parts.
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env
}

/// The (prefix, language) pairs to try, in order, without repeats.
fn candidates(partner: Option<&str>, lang: Option<&str>) -> Vec<(String, String)> {
    let mut langs: Vec<String> = Vec::new();
    if let Some(lang) = lang.map(|l| l.trim().to_ascii_lowercase().replace('_', "-")) {
        if valid_lang(&lang) {
            if let Some((primary, _)) = lang.split_once('-') {
                langs.push(lang.clone());
                langs.push(primary.to_owned());
            } else {
                langs.push(lang);
            }
        }
    }
    langs.push(DEFAULT_LANG.to_owned());
    langs.dedup();

    let mut prefixes = Vec::new();
    if let Some(partner) = partner.filter(|p| valid_partner(p)) {
        prefixes.push(format!("{partner}/"));
    }
    prefixes.push(String::new());

    let mut out: Vec<(String, String)> = Vec::new();
    for prefix in &prefixes {
        for lang in &langs {
            let pair = (prefix.clone(), lang.clone());
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
    }
    out
}

fn valid_lang(lang: &str) -> bool {
    let mut subtags = lang.split('-');
    let primary_ok = subtags
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase()));
    primary_ok
        && subtags
            .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn valid_partner(slug: &str) -> bool {
    !slug.is_empty()
        && !slug.starts_with('-')
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn describe_error(display: &str, err: &minijinja::Error) -> String {
    match err.line() {
        Some(line) => format!("{display}:{line}: {}", error_message(err)),
        None => format!("{display}: {}", error_message(err)),
    }
}

fn error_message(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    }
}

#[cfg(test)]
mod tests;
