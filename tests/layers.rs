//! The module picture stays a stack: each top-level module of `src/` may use only modules
//! below it. A `use crate::x` (or any `crate::x::` path) outside test code that points
//! sideways or up fails here, naming the file and the line, so a cycle cannot creep back in.

use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up; a module may use those of a lower rank only.
const RANKS: &[(&str, u32)] = &[
    ("clock", 0),
    ("domain", 0),
    ("telemetry", 0),
    ("mail", 0),
    ("import", 0),
    ("portal_pages", 0),
    ("console_pages", 0),
    ("auth", 1),
    ("scim_core", 1),
    ("edge", 1),
    ("mapping", 2),
    ("config", 2),
    ("store", 3),
    ("connectors", 4),
    ("services", 5),
    ("jobs", 6),
    ("request_metrics", 6),
    ("app_state", 7),
    ("admin", 8),
    ("portal", 8),
    ("scim", 8),
    ("health", 8),
    ("metrics", 8),
    // The console pages authenticate with the admin API's extractor, so they sit above it.
    ("console", 9),
    ("startup", 10),
    ("cli", 11),
];

fn rank(module: &str) -> Option<u32> {
    RANKS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            // Test modules beside their code may use anything.
            if name != "tests" {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" {
            out.push(path);
        }
    }
}

/// The top-level module names a line uses through `crate::`.
fn used_modules(line: &str) -> Vec<&str> {
    line.match_indices("crate::")
        .filter(|(at, _)| {
            // `guestbridge::crate::` cannot occur; a preceding identifier char means a
            // different path (e.g. `mycrate::`).
            !line[..*at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
        .map(|(at, _)| {
            let rest = &line[at + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

#[test]
fn every_module_uses_only_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a name")
            .trim_end_matches(".rs");
        if matches!(top, "lib" | "main") {
            continue;
        }
        let Some(own) = rank(top) else {
            problems.push(format!(
                "{}: module `{top}` has no rank in RANKS",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read file");
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            if line.trim_start().starts_with("//") {
                continue;
            }
            for used in used_modules(line) {
                if used == top {
                    continue;
                }
                match rank(used) {
                    Some(r) if r < own => {}
                    Some(r) => problems.push(format!(
                        "{}:{}: `{top}` (rank {own}) uses `{used}` (rank {r})",
                        rel.display(),
                        n + 1
                    )),
                    None => problems.push(format!(
                        "{}:{}: `{used}` has no rank in RANKS",
                        rel.display(),
                        n + 1
                    )),
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "arrows that do not point down:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_a_use_and_ignores_lookalikes() {
    assert_eq!(used_modules("use crate::store::guests;"), ["store"]);
    assert_eq!(
        used_modules("let x = crate::services::sync::emit(a, crate::clock::now());"),
        ["services", "clock"]
    );
    assert!(used_modules("use mycrate::store;").is_empty());
}
