//! The templates folder: what a file name denotes (a partial, or one part of a
//! `{name}.{lang}` set) and the override files read from it, a partner's in its sub-folder.

use std::path::Path;

use super::{valid_lang, valid_partner, Part, SetKey, TEMPLATE_NAMES, VARIANT_PREFIX};

/// What a file name in the templates folder denotes.
pub(super) enum FileName {
    /// `_something.html`: included or extended by other templates.
    Partial,
    /// One part of a `{name}.{lang}` set, with the name and lower-cased language.
    Part {
        name: String,
        lang: String,
        part: Part,
    },
}

/// Parses a file name of the templates folder.
pub(super) fn classify(file: &str) -> Result<FileName, String> {
    if file.starts_with('_') {
        return if file.ends_with(".html") || file.ends_with(".txt") {
            Ok(FileName::Partial)
        } else {
            Err("a partial must end in .html or .txt".to_owned())
        };
    }
    let (stem, part) = if let Some(stem) = file.strip_suffix(".subject.txt") {
        (stem, Part::Subject)
    } else if let Some(stem) = file.strip_suffix(".txt") {
        (stem, Part::Text)
    } else if let Some(stem) = file.strip_suffix(".html") {
        (stem, Part::Html)
    } else {
        return Err(
            "expected {name}.{lang}.subject.txt, {name}.{lang}.txt or {name}.{lang}.html"
                .to_owned(),
        );
    };
    let Some((name, lang)) = stem.rsplit_once('.') else {
        return Err(
            "missing language: expected {name}.{lang}.… (for example invitation.en.html)"
                .to_owned(),
        );
    };
    let variant = name
        .strip_prefix(VARIANT_PREFIX)
        .is_some_and(|v| !v.is_empty());
    if !TEMPLATE_NAMES.contains(&name) && !variant {
        return Err(format!(
            "unknown template name {name:?}; known: {}, and {VARIANT_PREFIX}NAME for the \
             invitation of rules with template = \"NAME\"",
            TEMPLATE_NAMES.join(", ")
        ));
    }
    let lang = lang.to_ascii_lowercase();
    if !valid_lang(&lang) {
        return Err(format!(
            "invalid language {lang:?} (expected a tag such as en, fr or pt-br)"
        ));
    }
    Ok(FileName::Part {
        name: name.to_owned(),
        lang,
        part,
    })
}

/// Reads the overrides folder: (canonical name, display path, source, set it belongs to).
pub(super) fn read_overrides(
    dir: &Path,
    errors: &mut Vec<String>,
) -> Vec<(String, String, String, Option<SetKey>)> {
    let mut out = Vec::new();
    if !dir.exists() {
        return out;
    }
    if !dir.is_dir() {
        errors.push(format!("{}: not a folder", dir.display()));
        return out;
    }
    for (path, entry_name) in sorted_entries(dir, errors) {
        if ignored(&entry_name) {
            continue;
        }
        if path.is_dir() {
            if !valid_partner(&entry_name) {
                errors.push(format!(
                    "{}: a sub-folder must be named after a partner slug (a-z, 0-9, -)",
                    path.display()
                ));
                continue;
            }
            for (file_path, file_name) in sorted_entries(&path, errors) {
                if ignored(&file_name) {
                    continue;
                }
                if file_path.is_dir() {
                    errors.push(format!(
                        "{}: unexpected folder (partner folders hold files only)",
                        file_path.display()
                    ));
                    continue;
                }
                let prefix = format!("{entry_name}/");
                if let Some(item) = read_one(&file_path, &prefix, &file_name, errors) {
                    out.push(item);
                }
            }
        } else if let Some(item) = read_one(&path, "", &entry_name, errors) {
            out.push(item);
        }
    }
    out
}

fn read_one(
    path: &Path,
    prefix: &str,
    file_name: &str,
    errors: &mut Vec<String>,
) -> Option<(String, String, String, Option<SetKey>)> {
    let display = path.display().to_string();
    let (canonical, set) = match classify(file_name) {
        Ok(FileName::Partial) => (format!("{prefix}{file_name}"), None),
        Ok(FileName::Part { name, lang, part }) => (
            format!("{prefix}{name}.{lang}.{}", part.suffix()),
            Some((prefix.to_owned(), name, lang)),
        ),
        Err(message) => {
            errors.push(format!("{display}: {message}"));
            return None;
        }
    };
    match std::fs::read_to_string(path) {
        Ok(source) => Some((canonical, display, source, set)),
        Err(err) => {
            errors.push(format!("{display}: cannot read: {err}"));
            None
        }
    }
}

fn sorted_entries(dir: &Path, errors: &mut Vec<String>) -> Vec<(std::path::PathBuf, String)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            errors.push(format!("{}: cannot read folder: {err}", dir.display()));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let path = entry.path();
                match entry.file_name().into_string() {
                    Ok(name) => out.push((path, name)),
                    Err(_) => errors.push(format!("{}: file name is not UTF-8", path.display())),
                }
            }
            Err(err) => errors.push(format!("{}: cannot read folder: {err}", dir.display())),
        }
    }
    out.sort();
    out
}

fn ignored(name: &str) -> bool {
    name.starts_with('.') || name.starts_with("README")
}
