//! Roster columns: the standard columns a roster may carry, and per-partner column maps
//! (`mappings/columns-<partner>.toml`) for rosters exported with other headers.
//!
//! A header cell names a standard column case-insensitively, ignoring surrounding spaces. A
//! column map renames a partner's headers to standard columns, lists headers to ignore, and
//! may fix the delimiter and add date formats. A header is resolved in this order: the map's
//! renames, the map's ignore list, the standard names; anything else is an unknown column.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::dates;
use super::dialect::delimiter_name;
use super::rows::clean_text;

/// A standard roster column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    UserName,
    ExternalId,
    GivenName,
    FamilyName,
    DisplayName,
    Email,
    Phone,
    Title,
    Department,
    EmployeeNumber,
    Active,
    AccessEndDate,
    SponsorEmail,
    Groups,
}

impl Column {
    /// Every standard column, in documentation order.
    pub const ALL: [Column; 14] = [
        Column::UserName,
        Column::ExternalId,
        Column::GivenName,
        Column::FamilyName,
        Column::DisplayName,
        Column::Email,
        Column::Phone,
        Column::Title,
        Column::Department,
        Column::EmployeeNumber,
        Column::Active,
        Column::AccessEndDate,
        Column::SponsorEmail,
        Column::Groups,
    ];

    /// The standard header name.
    pub fn name(self) -> &'static str {
        match self {
            Column::UserName => "userName",
            Column::ExternalId => "externalId",
            Column::GivenName => "givenName",
            Column::FamilyName => "familyName",
            Column::DisplayName => "displayName",
            Column::Email => "email",
            Column::Phone => "phone",
            Column::Title => "title",
            Column::Department => "department",
            Column::EmployeeNumber => "employeeNumber",
            Column::Active => "active",
            Column::AccessEndDate => "accessEndDate",
            Column::SponsorEmail => "sponsorEmail",
            Column::Groups => "groups",
        }
    }

    /// The standard column with this name, case-insensitively, ignoring surrounding spaces.
    pub fn from_name(name: &str) -> Option<Column> {
        let name = name.trim();
        Column::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// Whether the column is required in every roster.
    pub fn is_required(self) -> bool {
        self == Column::UserName
    }

    /// The standard names, comma-separated, for messages.
    pub fn list() -> String {
        Column::ALL.map(Column::name).join(", ")
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an input header stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderRole {
    Column(Column),
    /// Listed under `ignore`: the column's values are not read at all.
    Ignored,
    /// An empty header cell (Excel's trailing empty columns): values under it must be empty.
    Unnamed,
    Unknown,
}

/// How a partner's roster headers map onto the standard columns. `ColumnMap::default()`
/// accepts the standard headers only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap {
    delimiter: Option<u8>,
    date_formats: Vec<String>,
    /// Lower-cased, cleaned header → standard column.
    renames: HashMap<String, Column>,
    /// Lower-cased, cleaned headers.
    ignore: Vec<String>,
}

impl ColumnMap {
    /// The delimiter the partner's files always use, if the map fixes one.
    pub fn delimiter(&self) -> Option<u8> {
        self.delimiter
    }

    /// Extra date formats (chrono syntax) accepted besides ISO 8601.
    pub fn date_formats(&self) -> &[String] {
        &self.date_formats
    }

    /// Fixes the delimiter: `,`, `;`, tab or `|`.
    pub fn with_delimiter(mut self, delimiter: u8) -> Result<Self, String> {
        if !ALLOWED_DELIMITERS.contains(&delimiter) {
            return Err(format!(
                "delimiter {} is not supported (use \",\", \";\", \"\\t\" or \"|\")",
                delimiter_name(delimiter)
            ));
        }
        self.delimiter = Some(delimiter);
        Ok(self)
    }

    /// Accepts dates in one more chrono format, such as `%d/%m/%Y`.
    pub fn with_date_format(mut self, format: &str) -> Result<Self, String> {
        dates::validate_format(format)?;
        self.date_formats.push(format.to_string());
        Ok(self)
    }

    /// Reads the partner's header `header` as the standard column `column`.
    pub fn with_rename(mut self, header: &str, column: Column) -> Result<Self, String> {
        let key = header_key(header);
        if key.is_empty() {
            return Err("a mapped header must not be empty".into());
        }
        if self.ignore.contains(&key) {
            return Err(format!("header {header:?} is both mapped and ignored"));
        }
        if self.renames.insert(key, column).is_some() {
            return Err(format!("header {header:?} is mapped twice"));
        }
        Ok(self)
    }

    /// Ignores the partner's header `header` and its values.
    pub fn with_ignored(mut self, header: &str) -> Result<Self, String> {
        let key = header_key(header);
        if key.is_empty() {
            return Err("an ignored header must not be empty".into());
        }
        if self.renames.contains_key(&key) {
            return Err(format!("header {header:?} is both mapped and ignored"));
        }
        if !self.ignore.contains(&key) {
            self.ignore.push(key);
        }
        Ok(self)
    }

    /// What an input header stands for under this map.
    pub fn resolve(&self, header: &str) -> HeaderRole {
        let key = header_key(header);
        if key.is_empty() {
            return HeaderRole::Unnamed;
        }
        if let Some(c) = self.renames.get(&key) {
            return HeaderRole::Column(*c);
        }
        if self.ignore.contains(&key) {
            return HeaderRole::Ignored;
        }
        match Column::from_name(&key) {
            Some(c) => HeaderRole::Column(c),
            None => HeaderRole::Unknown,
        }
    }

    /// Whether the map renames any header (used to phrase header errors).
    pub fn has_renames(&self) -> bool {
        !self.renames.is_empty()
    }
}

const ALLOWED_DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Headers compare after trimming, unwrapping Excel's `="…"` and lower-casing.
fn header_key(header: &str) -> String {
    clean_text(header).to_lowercase()
}

/// Partner slugs follow the partner registry's rule: 2–40 of `a-z`, `0-9`, `-`, starting
/// with a letter.
fn is_valid_slug(s: &str) -> bool {
    (2..=40).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    columns: BTreeMap<Spanned<String>, PartnerDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerDoc {
    delimiter: Option<Spanned<String>>,
    #[serde(default)]
    date_formats: Vec<Spanned<String>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    #[serde(default)]
    map: BTreeMap<Spanned<String>, Spanned<String>>,
}

/// One column map as found in a file, with where it was defined.
struct Found {
    slug: String,
    line: usize,
    map: ColumnMap,
}

/// Parses the text of one `columns-*.toml` file; `file` is how errors name it.
fn parse_file(text: &str, file: &str) -> Result<Vec<Found>, Vec<String>> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let doc: FileDoc = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(s.start));
        vec![format!("{file}:{line}: {}", e.message().trim_end())]
    })?;
    if doc.columns.is_empty() {
        return Err(vec![format!(
            "{file}:1: no column map: expected a [columns.<partner>] table"
        )]);
    }
    let mut errors = Vec::new();
    let mut found = Vec::new();
    for (slug, partner) in doc.columns {
        let slug_line = line_of(slug.span().start);
        let mut err = |span: std::ops::Range<usize>, message: String| {
            errors.push((line_of(span.start), message));
        };
        if !is_valid_slug(slug.get_ref()) {
            err(
                slug.span(),
                format!(
                    "{:?} is not a partner slug (2-40 of a-z, 0-9 and '-', starting with a letter)",
                    slug.get_ref()
                ),
            );
        }
        let mut map = ColumnMap::default();
        if let Some(d) = partner.delimiter {
            match parse_delimiter(d.get_ref()) {
                Some(byte) => match map.clone().with_delimiter(byte) {
                    Ok(m) => map = m,
                    Err(e) => err(d.span(), e),
                },
                None => err(
                    d.span(),
                    format!(
                        "delimiter {:?} is not supported (use \",\", \";\", \"\\t\" or \"|\")",
                        d.get_ref()
                    ),
                ),
            }
        }
        for f in partner.date_formats {
            match map.clone().with_date_format(f.get_ref()) {
                Ok(m) => map = m,
                Err(e) => err(f.span(), e),
            }
        }
        for (header, target) in partner.map {
            let Some(column) = Column::from_name(target.get_ref()) else {
                err(
                    target.span(),
                    format!(
                        "{:?} is not a standard column (expected one of {})",
                        target.get_ref(),
                        Column::list()
                    ),
                );
                continue;
            };
            match map.clone().with_rename(header.get_ref(), column) {
                Ok(m) => map = m,
                Err(e) => err(
                    header.span(),
                    format!("{e} (headers compare case-insensitively)"),
                ),
            }
        }
        for header in partner.ignore {
            match map.clone().with_ignored(header.get_ref()) {
                Ok(m) => map = m,
                Err(e) => err(header.span(), e),
            }
        }
        found.push(Found {
            slug: slug.into_inner(),
            line: slug_line,
            map,
        });
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        errors.sort_by_key(|(line, _)| *line);
        Err(errors
            .into_iter()
            .map(|(line, message)| format!("{file}:{line}: {message}"))
            .collect())
    }
}

fn parse_delimiter(s: &str) -> Option<u8> {
    match s {
        "," | "comma" => Some(b','),
        ";" | "semicolon" => Some(b';'),
        "\t" | "tab" => Some(b'\t'),
        "|" | "pipe" => Some(b'|'),
        _ => None,
    }
}

/// Parses column maps from TOML text (the content of one `columns-*.toml` file); errors are
/// `file:line: message`.
pub fn parse_column_maps(
    text: &str,
    file: &str,
) -> Result<HashMap<String, ColumnMap>, Vec<String>> {
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    for f in parse_file(text, file)? {
        if out.insert(f.slug.clone(), f.map).is_some() {
            errors.push(format!(
                "{file}:{}: column map for partner {:?} defined twice",
                f.line, f.slug
            ));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Loads every `columns-*.toml` file in `dir` (the mapping-rules loader skips these files).
/// Returns the column map of each partner slug, or every error as `file:line: message`. A
/// partner without a map uses `ColumnMap::default()`.
pub fn load_column_maps(dir: &Path) -> Result<HashMap<String, ColumnMap>, Vec<String>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| vec![format!("{}:0: cannot read the folder: {e}", dir.display())])?;
    let mut files = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| vec![format!("{}:0: cannot read the folder: {e}", dir.display())])?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_column_map_file(&name) && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();

    let mut maps: HashMap<String, ColumnMap> = HashMap::new();
    let mut defined_at: HashMap<String, String> = HashMap::new();
    let mut errors = Vec::new();
    for path in files {
        let file = path.display().to_string();
        let text = match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                Err(_) => {
                    errors.push(format!("{file}:1: the file is not valid UTF-8"));
                    continue;
                }
            },
            Err(e) => {
                errors.push(format!("{file}:0: cannot read the file: {e}"));
                continue;
            }
        };
        match parse_file(&text, &file) {
            Ok(found) => {
                for f in found {
                    let here = format!("{file}:{}", f.line);
                    if let Some(first) = defined_at.get(&f.slug) {
                        errors.push(format!(
                            "{here}: column map for partner {:?} is already defined at {first}",
                            f.slug
                        ));
                        continue;
                    }
                    defined_at.insert(f.slug.clone(), here);
                    maps.insert(f.slug, f.map);
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(maps)
    } else {
        Err(errors)
    }
}

/// Whether a file name is a column map's: `columns-*.toml`.
pub fn is_column_map_file(name: &str) -> bool {
    name.starts_with("columns-") && name.ends_with(".toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NORTHSIDE: &str = r#"
[columns.northside]
delimiter = ";"
date_formats = ["%d/%m/%Y"]
ignore = ["Cost centre"]

[columns.northside.map]
"Login" = "userName"
"First name" = "givenName"
"Surname" = "familyName"
"E-mail" = "email"
"Afdeling" = "department"
"End date" = "accessEndDate"
"#;

    #[test]
    fn standard_names_are_case_insensitive() {
        assert_eq!(Column::from_name(" USERNAME "), Some(Column::UserName));
        assert_eq!(
            Column::from_name("accessenddate"),
            Some(Column::AccessEndDate)
        );
        assert_eq!(Column::from_name("user name"), None);
        for c in Column::ALL {
            assert_eq!(Column::from_name(c.name()), Some(c));
        }
    }

    #[test]
    fn default_map_resolves_standard_headers_only() {
        let m = ColumnMap::default();
        assert_eq!(m.resolve(" Email "), HeaderRole::Column(Column::Email));
        assert_eq!(
            m.resolve("=\"userName\""),
            HeaderRole::Column(Column::UserName)
        );
        assert_eq!(m.resolve("Login"), HeaderRole::Unknown);
        assert_eq!(m.resolve("  "), HeaderRole::Unnamed);
        assert_eq!(m.delimiter(), None);
    }

    #[test]
    fn parses_the_northside_example() {
        let maps = parse_column_maps(NORTHSIDE, "columns-northside.toml").unwrap();
        let m = &maps["northside"];
        assert_eq!(m.delimiter(), Some(b';'));
        assert_eq!(m.date_formats(), ["%d/%m/%Y"]);
        assert_eq!(m.resolve("login"), HeaderRole::Column(Column::UserName));
        assert_eq!(m.resolve(" E-MAIL "), HeaderRole::Column(Column::Email));
        assert_eq!(m.resolve("cost centre"), HeaderRole::Ignored);
        // Standard names keep working next to the renames.
        assert_eq!(m.resolve("phone"), HeaderRole::Column(Column::Phone));
        assert_eq!(m.resolve("Kostenplaats"), HeaderRole::Unknown);
    }

    #[test]
    fn the_shipped_example_file_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
        let maps = load_column_maps(&dir).unwrap();
        assert!(maps.contains_key("northside"), "{:?}", maps.keys());
    }

    #[test]
    fn errors_name_file_and_line() {
        let text = r#"[columns.northside]
delimiter = "::"
date_formats = ["%d/%m", "%d/%m/%Y"]
ignore = ["Login"]

[columns.northside.map]
"Login" = "userName"
"Mail" = "emailAddress"
"#;
        let errors = parse_column_maps(text, "columns-x.toml").unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(
            errors[0].starts_with("columns-x.toml:2: delimiter \"::\""),
            "{errors:#?}"
        );
        assert!(errors[1].starts_with("columns-x.toml:3: date format \"%d/%m\""));
        assert!(
            errors[2].starts_with("columns-x.toml:4: header \"Login\" is both mapped and ignored")
        );
        assert!(
            errors[3].starts_with("columns-x.toml:8: \"emailAddress\" is not a standard column")
        );
    }

    #[test]
    fn syntax_and_unknown_keys_are_errors_with_lines() {
        let errors =
            parse_column_maps("[columns.a1]\n\nseparator = \";\"\n", "f.toml").unwrap_err();
        assert!(
            errors[0].starts_with("f.toml:3: unknown field `separator`"),
            "{errors:?}"
        );
        let errors = parse_column_maps("[columns.ok]\nmap = { \"a\" = \n", "f.toml").unwrap_err();
        assert!(errors[0].starts_with("f.toml:2:"), "{errors:?}");
        let errors = parse_column_maps("# nothing\n", "f.toml").unwrap_err();
        assert!(errors[0].contains("no column map"), "{errors:?}");
        let errors = parse_column_maps("[columns.North_Side]\n", "f.toml").unwrap_err();
        assert!(errors[0].starts_with("f.toml:1: \"North_Side\" is not a partner slug"));
    }

    #[test]
    fn headers_mapped_twice_case_insensitively_are_refused() {
        let text = "[columns.acme.map]\n\"Login\" = \"userName\"\n\"LOGIN\" = \"email\"\n";
        let errors = parse_column_maps(text, "f.toml").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("mapped twice"), "{errors:?}");
    }

    #[test]
    fn loads_only_column_files_and_refuses_a_partner_defined_twice() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.toml"), "this is not = [valid").unwrap();
        std::fs::write(
            dir.path().join("columns-a.toml"),
            "[columns.acme]\ndelimiter = \"tab\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("columns-b.toml"), "\n[columns.beta]\n").unwrap();
        let maps = load_column_maps(dir.path()).unwrap();
        assert_eq!(maps.len(), 2);
        assert_eq!(maps["acme"].delimiter(), Some(b'\t'));

        std::fs::write(dir.path().join("columns-c.toml"), "\n\n[columns.acme]\n").unwrap();
        let errors = load_column_maps(dir.path()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0]
            .contains("columns-c.toml:3: column map for partner \"acme\" is already defined at"));
        assert!(errors[0].ends_with("columns-a.toml:1"), "{errors:?}");

        assert!(load_column_maps(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn two_headers_may_map_to_one_column_and_standard_names_may_be_ignored() {
        let text = "[columns.acme]\nignore = [\"Phone\"]\n[columns.acme.map]\n\"Login\" = \"userName\"\n\"Username\" = \"userName\"\n";
        let m = &parse_column_maps(text, "f.toml").unwrap()["acme"];
        assert_eq!(m.resolve("login"), HeaderRole::Column(Column::UserName));
        assert_eq!(m.resolve("USERNAME"), HeaderRole::Column(Column::UserName));
        assert_eq!(m.resolve("phone"), HeaderRole::Ignored);
    }

    #[test]
    fn builder_checks_its_input() {
        assert!(ColumnMap::default().with_delimiter(b':').is_err());
        assert!(ColumnMap::default().with_date_format("%Q").is_err());
        let m = ColumnMap::default()
            .with_rename("Login", Column::UserName)
            .unwrap();
        assert!(m.clone().with_ignored(" login ").is_err());
        assert!(m.with_rename("", Column::Email).is_err());
    }
}
