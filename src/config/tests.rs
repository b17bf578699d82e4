use super::*;
use std::path::Path;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_follow_the_contract() {
    let s = Settings::load(None, &env(&[])).unwrap();
    assert_eq!(s.database.url, "sqlite://guestbridge.db");
    assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.http.public_url, "http://127.0.0.1:8080");
    assert!(s.smtp_url.is_none());
    assert_eq!(s.mappings_dir, PathBuf::from("mappings"));
    assert!(s.jobs_enabled);
    assert_eq!(s.http.max_body_bytes, 1024 * 1024);
}

#[test]
fn environment_wins_over_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    std::fs::write(
        &path,
        "[database]\nurl = \"sqlite://file.db\"\n[http]\nlisten = \"0.0.0.0:9000\"\n",
    )
    .unwrap();
    let s = Settings::load(
        Some(&path),
        &env(&[("GUESTBRIDGE_DATABASE_URL", "postgres://h/db")]),
    )
    .unwrap();
    assert_eq!(s.database.url, "postgres://h/db");
    assert_eq!(s.http.listen.to_string(), "0.0.0.0:9000");
}

#[test]
fn bad_settings_name_the_setting() {
    let err = Settings::load(None, &env(&[("GUESTBRIDGE_LISTEN", "nowhere")])).unwrap_err();
    assert!(err.to_string().contains("GUESTBRIDGE_LISTEN"), "{err}");
    let err = Settings::load(None, &env(&[("GUESTBRIDGE_JOBS", "maybe")])).unwrap_err();
    assert!(err.to_string().contains("GUESTBRIDGE_JOBS"), "{err}");
    let err = Settings::load(None, &env(&[("GUESTBRIDGE_DATABASE_URL", "mysql://x")])).unwrap_err();
    assert!(err.to_string().contains("database.url"), "{err}");
    for memory in ["sqlite::memory:", "sqlite://file.db?mode=memory"] {
        let err = Settings::load(None, &env(&[("GUESTBRIDGE_DATABASE_URL", memory)])).unwrap_err();
        assert!(err.to_string().contains("in-memory"), "{err}");
    }
    let err =
        Settings::load(None, &env(&[("GUESTBRIDGE_SMTP_URL", "http://u:secret@x")])).unwrap_err();
    assert!(!err.to_string().contains("secret"), "{err}");
}

#[test]
fn the_shipped_example_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/guestbridge.example.toml");
    let s = Settings::load(Some(&path), &env(&[])).unwrap();
    assert_eq!(s.http.max_page_size, 1000);
}

#[test]
fn unknown_file_keys_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.toml");
    std::fs::write(&path, "[http]\nlisten_port = 1\n").unwrap();
    let err = Settings::load(Some(&path), &env(&[])).unwrap_err();
    assert!(err.to_string().contains("listen_port"), "{err}");
}
