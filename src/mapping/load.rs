//! Loading `mappings/*.toml` into a [`RuleSet`]: reading the directory, checking each file
//! (`entries.rs`), then the references between entries across files (ids unique, granted
//! apps and roles declared, `allowed_apps` declared), and fingerprinting the sources for
//! audit. Every problem is collected, each with its file and 1-based line, so `guestbridge
//! mappings check` can list them all at once.

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::entries::{AppDraft, Drafts, FileCtx, Origin};
use super::model::RuleSet;
use super::MappingError;

/// Reads every `*.toml` file directly in `dir` (sorted by file name; subdirectories and
/// names starting with `.` are ignored) and loads them with [`load_sources`]. A missing or
/// unreadable directory is an error; an empty one gives an empty [`RuleSet`].
pub fn load_dir(dir: &Path) -> Result<RuleSet, Vec<MappingError>> {
    load_sources(&read_sources(dir)?)
}

/// The rule files of `dir` as (file name, content) pairs, as [`load_dir`] reads them: what
/// a reload publishes to the other instances.
pub fn read_sources(dir: &Path) -> Result<Vec<(String, String)>, Vec<MappingError>> {
    let dir_error = |e: std::io::Error| {
        vec![MappingError {
            file: dir.display().to_string(),
            line: 0,
            message: format!("cannot read the mappings directory: {e}"),
        }]
    };
    let mut errors = Vec::new();
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_error)? {
        let entry = entry.map_err(dir_error)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            if !name.to_string_lossy().ends_with(".toml") {
                continue;
            }
            errors.push(MappingError {
                file: name.to_string_lossy().into_owned(),
                line: 0,
                message: "file name is not valid UTF-8".to_string(),
            });
            continue;
        };
        let path = entry.path();
        // `columns-*.toml` files are CSV column maps, read by the importer.
        if !name.ends_with(".toml")
            || name.starts_with('.')
            || name.starts_with("columns-")
            || !path.is_file()
        {
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(content) => sources.push((name.to_string(), content)),
            Err(e) => errors.push(MappingError {
                file: name.to_string(),
                line: 0,
                message: format!("cannot read the file: {e}"),
            }),
        }
    }
    if !errors.is_empty() {
        // Report the unreadable files together with what is wrong in the readable ones.
        if let Err(more) = load_sources(&sources) {
            errors.extend(more);
        }
        errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        return Err(errors);
    }
    sources.sort();
    Ok(sources)
}

/// Loads rule files given as (file name, content) pairs, in file-name order. Returns every
/// problem found, sorted by file and line, or the checked [`RuleSet`].
pub fn load_sources(sources: &[(String, String)]) -> Result<RuleSet, Vec<MappingError>> {
    let mut ordered: Vec<&(String, String)> = sources.iter().collect();
    ordered.sort();
    let mut errors = Vec::new();
    // Names come from a directory listing, but also from the stored rule set other instances
    // publish: a name that is a path would be one if anything ever wrote the files out.
    for (file, _) in &ordered {
        if !is_plain_file_name(file) {
            errors.push(MappingError {
                file: file.escape_default().to_string(),
                line: 0,
                message: "a rule file's name must be a plain name: no directories, no \"..\", no control characters".into(),
            });
        }
    }
    let mut drafts = Drafts::default();
    for (file, content) in &ordered {
        FileCtx::new(file, content, &mut errors).load_file(&mut drafts);
    }
    let mut set = drafts.link(&mut errors, fingerprint(&ordered));
    if errors.is_empty() {
        set.sources = ordered.into_iter().cloned().collect();
        Ok(set)
    } else {
        // Stable: problems on one line keep the order they were found in.
        errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Err(errors)
    }
}

/// A file name with no directory in it: not empty, no `/` or `\\`, no `..` anywhere, not
/// starting with `.` (hidden files are skipped on disk too), no control characters.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.contains("..")
        && !name.chars().any(char::is_control)
}

/// Hex SHA-256 over the (file name, content) pairs sorted by name, each part preceded by
/// its length in bytes as a little-endian u64 so that no two inputs collide.
pub(crate) fn fingerprint(sorted: &[&(String, String)]) -> String {
    let mut hasher = Sha256::new();
    for (name, content) in sorted {
        for part in [name, content] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
    }
    hex::encode(hasher.finalize())
}

impl Drafts {
    /// Checks uniqueness and references across files and builds the set.
    fn link(self, errors: &mut Vec<MappingError>, fingerprint: String) -> RuleSet {
        let mut app_ids: HashMap<&str, (&Origin, &AppDraft)> = HashMap::new();
        for draft in &self.apps {
            let Some(at) = &draft.id_at else { continue };
            if let Some((first, _)) = app_ids.get(draft.app.id.as_str()) {
                errors.push(at.error(format!(
                    "duplicate app id \"{}\" (first declared at {}:{})",
                    draft.app.id, first.file, first.line
                )));
            } else {
                app_ids.insert(&draft.app.id, (at, draft));
            }
        }
        // A client id names one app: the token endpoint finds the app by it.
        let mut client_ids: HashMap<&str, &str> = HashMap::new();
        for draft in &self.apps {
            let (Some(at), Some(client)) = (&draft.id_at, &draft.app.oidc) else {
                continue;
            };
            if let Some(first) = client_ids.insert(&client.client_id, &draft.app.id) {
                errors.push(at.error(format!(
                    "OIDC client id \"{}\" is also app \"{first}\"'s",
                    client.client_id
                )));
            }
        }
        let mut slugs: HashMap<&str, &Origin> = HashMap::new();
        for draft in &self.partners {
            let slug = draft.policy.slug.as_str();
            if let Some(at) = &draft.slug_at {
                if let Some(first) = slugs.get(slug) {
                    errors.push(at.error(format!(
                        "duplicate partner \"{slug}\" (first declared at {}:{})",
                        first.file, first.line
                    )));
                } else {
                    slugs.insert(slug, at);
                }
            }
            let allowed = draft.policy.allowed_apps.iter().flatten();
            for (app, at) in allowed.zip(&draft.allowed_at) {
                if !app_ids.contains_key(app.as_str()) {
                    errors.push(at.error(format!(
                        "allowed_apps names the undeclared app \"{app}\"{}",
                        known_list("declared apps", app_ids.keys().copied())
                    )));
                }
            }
        }
        let mut rule_ids: HashMap<&str, &Origin> = HashMap::new();
        for draft in &self.rules {
            let id = draft.rule.id.as_str();
            if let Some(at) = &draft.id_at {
                if let Some(first) = rule_ids.get(id) {
                    errors.push(at.error(format!(
                        "duplicate rule id \"{id}\" (first declared at {}:{})",
                        first.file, first.line
                    )));
                } else {
                    rule_ids.insert(id, at);
                }
            }
            for (grant, at) in draft.rule.grants.iter().zip(&draft.grants_at) {
                match app_ids.get(grant.app.as_str()) {
                    None => errors.push(at.error(format!(
                        "grant names the undeclared app \"{}\"{}",
                        grant.app,
                        known_list("declared apps", app_ids.keys().copied())
                    ))),
                    Some((_, app)) if app.roles_known && !app.app.roles.contains(&grant.role) => {
                        errors.push(at.error(format!(
                            "app \"{}\" has no role \"{}\"{}",
                            grant.app,
                            grant.role,
                            known_list("its roles", app.app.roles.iter().map(String::as_str))
                        )))
                    }
                    Some(_) => {}
                }
            }
        }
        RuleSet {
            apps: self.apps.into_iter().map(|d| d.app).collect(),
            partners: self.partners.into_iter().map(|d| d.policy).collect(),
            rules: self.rules.into_iter().map(|d| d.rule).collect(),
            fingerprint,
            sources: Vec::new(),
        }
    }
}

/// `" (declared apps: a, b)"`, sorted, or nothing when there are none.
fn known_list<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.collect();
    if names.is_empty() {
        return format!(" (there are no {what})");
    }
    names.sort_unstable();
    format!(" ({what}: {})", names.join(", "))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mapping::Approval;

    pub(crate) const APPS: &str = r#"
[[app]]
id = "ehr"
name = "EHR"
description = "Record"
launch_url = "https://ehr.example/launch"
roles = ["reader", "clinician"]
"#;

    pub(crate) fn sources(files: &[(&str, &str)]) -> Vec<(String, String)> {
        files
            .iter()
            .map(|(n, c)| (n.to_string(), c.to_string()))
            .collect()
    }

    pub(crate) fn load(files: &[(&str, &str)]) -> RuleSet {
        match load_sources(&sources(files)) {
            Ok(set) => set,
            Err(errors) => panic!("should load: {errors:#?}"),
        }
    }

    /// Every error as `file:line: message`.
    pub(crate) fn errors(files: &[(&str, &str)]) -> Vec<String> {
        match load_sources(&sources(files)) {
            Ok(_) => panic!("should not load"),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// Asserts exactly one error, at `at` (`file:line`), containing `needle`.
    pub(crate) fn one_error(files: &[(&str, &str)], at: &str, needle: &str) {
        let errors = errors(files);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].starts_with(&format!("{at}: ")) && errors[0].contains(needle),
            "expected {at}: …{needle}…, got {}",
            errors[0]
        );
    }

    /// A rules file with APPS in `a.toml` beside it.
    pub(crate) fn rule_error(rules: &str, line: usize, needle: &str) {
        one_error(
            &[("a.toml", APPS), ("r.toml", rules)],
            &format!("r.toml:{line}"),
            needle,
        );
    }

    #[test]
    fn file_names_that_are_paths_are_refused() {
        let rules = "[[app]]\nid = \"a\"\nname = \"A\"\ndescription = \"\"\nlaunch_url = \"https://a.example/\"\nroles = [\"r\"]\n";
        for name in [
            "../rules.toml",
            "/etc/rules.toml",
            "a/b.toml",
            "..\\x.toml",
            ".hidden.toml",
            "x\n.toml",
            "a..b.toml",
            "",
        ] {
            let errors = load_sources(&[(name.to_string(), rules.to_string())]).unwrap_err();
            assert!(
                errors
                    .iter()
                    .any(|e| e.line == 0 && e.message.contains("plain name")),
                "{name:?}: {errors:?}"
            );
        }
        assert!(load_sources(&[("rules.toml".to_string(), rules.to_string())]).is_ok());
    }

    #[test]
    fn files_load_in_name_order_whatever_the_input_order() {
        let rule = |id: &str| {
            format!("[[rule]]\nid = \"{id}\"\ngrants = [{{ app = \"ehr\", role = \"reader\" }}]\n")
        };
        let set = load(&[
            ("z.toml", &rule("z")),
            ("m.toml", &rule("m")),
            ("a.toml", APPS),
        ]);
        let ids: Vec<&str> = set.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["m", "z"]);
    }

    #[test]
    fn duplicate_ids_name_the_first_declaration() {
        let rule = "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n";
        let errs = errors(&[
            ("a.toml", APPS),
            ("b.toml", &format!("\n{APPS}")),
            (
                "c.toml",
                &format!("{rule}{rule}[[partner]]\nslug = \"ab\"\n[[partner]]\nslug = \"ab\"\n"),
            ),
        ]);
        assert_eq!(
            errs,
            [
                "b.toml:4: duplicate app id \"ehr\" (first declared at a.toml:3)",
                "c.toml:5: duplicate rule id \"r\" (first declared at c.toml:2)",
                "c.toml:10: duplicate partner \"ab\" (first declared at c.toml:8)",
            ]
        );
    }

    #[test]
    fn references_must_be_declared() {
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [\n  { app = \"ehr\", role = \"reader\" },\n  { app = \"pacs\", role = \"viewer\" },\n]\n",
            5,
            "grant names the undeclared app \"pacs\" (declared apps: ehr)",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [\n  { app = \"ehr\", role = \"admin\" },\n]\n",
            4,
            "app \"ehr\" has no role \"admin\" (its roles: clinician, reader)",
        );
        rule_error(
            "[[partner]]\nslug = \"ab\"\nallowed_apps = [\n  \"ehr\",\n  \"pacs\",\n]\n",
            5,
            "allowed_apps names the undeclared app \"pacs\"",
        );
        one_error(
            &[(
                "r.toml",
                "[[rule]]\nid = \"r\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n",
            )],
            "r.toml:3",
            "(there are no declared apps)",
        );
        rule_error(
            "[[rule]]\nid = \"r\"\ngrants = [\n  { app = \"ehr\", role = \"reader\" },\n  { app = \"ehr\", role = \"reader\" },\n]\n",
            5,
            "`grants` lists ehr / reader twice",
        );
    }

    #[test]
    fn collects_every_error_across_files_in_order() {
        let errs = errors(&[
            ("b.toml", "[[rule]]\nid = \"r\"\ngrants = [{ app = \"nope\", role = \"x\" }]\naccess_days = 0\n"),
            ("a.toml", "[[app]]\nid = \"x\"\nname = \"X\"\ndescription = \"\"\nlaunch_url = \"nope\"\nroles = [\"r\"]\nwat = 1\n"),
            ("c.toml", "[[rule\n"),
        ]);
        assert_eq!(errs.len(), 5, "{errs:#?}");
        assert!(errs[0].starts_with("a.toml:5: `launch_url`"), "{errs:#?}");
        assert!(
            errs[1].starts_with("a.toml:7: unknown key `wat`"),
            "{errs:#?}"
        );
        assert!(
            errs[2].starts_with("b.toml:3: grant names the undeclared app \"nope\""),
            "{errs:#?}"
        );
        assert!(errs[3].starts_with("b.toml:4: `access_days`"), "{errs:#?}");
        assert!(
            errs[4].starts_with("c.toml:1: TOML syntax error"),
            "{errs:#?}"
        );
    }

    #[test]
    fn fingerprint_is_stable_and_order_independent() {
        let a = ("a.toml".to_string(), APPS.to_string());
        let b = ("b.toml".to_string(), "# nothing\n".to_string());
        let one = load_sources(&[a.clone(), b.clone()]).unwrap().fingerprint;
        let two = load_sources(&[b.clone(), a.clone()]).unwrap().fingerprint;
        assert_eq!(one, two);
        assert_eq!(one.len(), 64);
        assert!(one.bytes().all(|c| c.is_ascii_hexdigit()));
        // Same bytes, different split between name and content: different fingerprint.
        let shifted = load_sources(&[("a.tom".to_string(), format!("l{APPS}")), b.clone()]);
        assert!(shifted.is_err() || shifted.unwrap().fingerprint != one);
        let changed = load_sources(&[
            a.clone(),
            ("b.toml".to_string(), "# nothing \n".to_string()),
        ])
        .unwrap()
        .fingerprint;
        assert_ne!(changed, one);
        let renamed = load_sources(&[a, ("c.toml".to_string(), "# nothing\n".to_string())])
            .unwrap()
            .fingerprint;
        assert_ne!(renamed, one);
        // Known value: SHA-256 of nothing.
        assert_eq!(
            RuleSet::empty().fingerprint,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn load_dir_reads_toml_files_only_and_reports_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let empty = load_dir(dir.path()).unwrap();
        assert!(empty.apps.is_empty() && empty.rules.is_empty());
        assert_eq!(empty.fingerprint, RuleSet::empty().fingerprint);

        std::fs::write(dir.path().join("apps.toml"), APPS).unwrap();
        std::fs::write(dir.path().join("notes.md"), "not toml [[").unwrap();
        std::fs::write(dir.path().join(".hidden.toml"), "[[").unwrap();
        std::fs::create_dir(dir.path().join("old.toml")).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub").join("x.toml"), "[[").unwrap();
        let set = load_dir(dir.path()).unwrap();
        assert_eq!(set.apps.len(), 1);
        assert_eq!(
            set.fingerprint,
            load_sources(&[("apps.toml".to_string(), APPS.to_string())])
                .unwrap()
                .fingerprint
        );

        std::fs::write(dir.path().join("rules.toml"), "[[rule]]\nid = 3\n").unwrap();
        let errs: Vec<String> = load_dir(dir.path())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            [
                "rules.toml:1: [[rule]] is missing the required key `grants`",
                "rules.toml:2: `id` must be a string, found an integer",
            ]
        );

        let missing = dir.path().join("nope");
        let errs = load_dir(&missing).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 0);
        assert_eq!(errs[0].file, missing.display().to_string());
        assert!(errs[0]
            .message
            .contains("cannot read the mappings directory"));
    }

    #[test]
    fn sample_mappings_load_cleanly() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/mappings"));
        let set = match load_dir(dir) {
            Ok(set) => set,
            Err(errors) => panic!(
                "{}",
                errors.iter().map(|e| format!("{e}\n")).collect::<String>()
            ),
        };
        let apps: Vec<&str> = set.apps.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(apps, ["ehr-viewer", "shift-scheduling", "imaging-viewer"]);
        let st_mary = set.policy("st-mary");
        assert_eq!(
            (st_mary.approval, st_mary.max_access_days, st_mary.mfa),
            (Approval::Auto, Some(180), true)
        );
        let northside = set.policy("northside");
        assert_eq!(
            (northside.approval, northside.max_access_days),
            (Approval::Admin, Some(365))
        );
        assert!(!northside.allows_app("imaging-viewer"));
        assert!(set.rules.len() >= 4);
        assert!(set.uses_groups());
        assert!(set.rules.iter().all(|r| r.file == "rules.toml"));
    }
}
