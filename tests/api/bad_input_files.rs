//! Bad input in files: hostile CSV cells through the admin import API (dry run and apply),
//! the same strings in rule files through `guestbridge mappings check` and the reload API,
//! and `..` or a path wherever a file name comes from input. Each gets a row error with its
//! line, a clear error naming the file and line, or is taken verbatim where it is valid;
//! nothing is written by a failing file and the rules in force stay.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{spawn_with_rules, test_actor, url_encode, Backend, TestApp};
use crate::isolation_attacks::{backend_name, record_count};

both_backends!(
    csv_cells_get_a_row_error_or_are_taken_verbatim,
    rule_files_with_bad_input_name_file_and_line_and_keep_the_rules,
    file_names_from_input_are_plain_names,
);

const RULES: &str = "[[app]]\nid = \"ehr\"\nname = \"EHR\"\ndescription = \"\"\nlaunch_url = \"https://ehr.example/\"\nroles = [\"reader\"]\n\n[[rule]]\nid = \"everyone\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n";

/// Cells as bytes: valid text that must be taken as it is, and text that cannot be a name.
fn cells() -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut v: Vec<(&'static str, Vec<u8>, bool)> = vec![
        ("NUL", b"Ann\0Lee".to_vec(), false),
        (
            "CR/LF header",
            b"\"Ann\r\nBcc: x@evil.test\"".to_vec(),
            false,
        ),
        ("LF", b"\"Ann\nLee\"".to_vec(), false),
        ("tab", b"Ann\tLee".to_vec(), false),
        ("escape", b"Ann\x1b[31mLee".to_vec(), false),
        ("RTL override", "Ann\u{202e}eeL".as_bytes().to_vec(), true),
        (
            "RTL and LTR marks",
            "\u{200f}Ann\u{200e}".as_bytes().to_vec(),
            true,
        ),
        (
            "combining marks",
            "A\u{301}\u{301}\u{301}nn".as_bytes().to_vec(),
            true,
        ),
        ("SQL quote", b"O'Brien".to_vec(), true),
        (
            "SQL injection",
            b"'; DROP TABLE scim_users; --".to_vec(),
            true,
        ),
        ("SQL wildcards", b"100% _of_ \\it".to_vec(), true),
        ("quoted comma", b"\"Lee, Ann\"".to_vec(), true),
        ("emoji", "Ann \u{1F600}".as_bytes().to_vec(), true),
    ];
    v.push(("10 kB name", "x".repeat(10_000).into_bytes(), false));
    v
}

/// Bytes that make the whole file unreadable: a lone surrogate encoded as UTF-8, and bytes
/// that are no UTF-8 at all.
fn broken_cells() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("lone surrogate", b"Ann\xed\xa0\x80Lee".to_vec()),
        ("invalid UTF-8", b"Ann\xff\xfeLee".to_vec()),
    ]
}

async fn admin(app: &TestApp) -> String {
    guestbridge::services::partners::issue_admin_token(&app.deps, &test_actor())
        .await
        .unwrap()
}

async fn upload(app: &TestApp, token: &str, csv: Vec<u8>, name: &str, dry_run: bool) -> Value {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv).file_name(name.to_string()),
    );
    let res = app
        .client
        .post(format!(
            "{}/api/v1/imports?partner=acme&mode=delta&dry_run={dry_run}",
            app.address
        ))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202, "{}", res.text().await.unwrap());
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Generous: CI runs the whole suite at once on two cores.
    for _ in 0..1200 {
        let res = app
            .client
            .get(format!("{}/api/v1/imports/{id}", app.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "import {id} vanished");
        let status: Value = res.json().await.unwrap();
        if status["status"] != "running" {
            let errors = app
                .client
                .get(format!("{}/api/v1/imports/{id}/errors.csv", app.address))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            return serde_json::json!({"status": status, "errors_csv": errors});
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("import {id} did not finish");
}

async fn users(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM scim_users")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap()
}

async fn csv_cells_get_a_row_error_or_are_taken_verbatim(backend: Backend) {
    let app = spawn_with_rules(backend, &[("rules.toml", RULES)]).await;
    let (_, acme) = app.partner("acme").await;
    let token = admin(&app).await;
    let mut tried = 0usize;
    let mut failures: Vec<String> = Vec::new();
    for (i, (what, cell, valid)) in cells().into_iter().enumerate() {
        let good = format!("good{i}@acme.example");
        let odd = format!("odd{i}@acme.example");
        let mut csv = b"userName,givenName,familyName,email\n".to_vec();
        csv.extend_from_slice(format!("{good},Good,Row,{good}\n{odd},").as_bytes());
        csv.extend_from_slice(&cell);
        csv.extend_from_slice(format!(",Lee,{odd}\n").as_bytes());
        for dry_run in [true, false] {
            tried += 1;
            let before = users(&app).await;
            let got = upload(&app, &token, csv.clone(), "roster.csv", dry_run).await;
            let status = &got["status"];
            let report = got["errors_csv"].as_str().unwrap_or_default().to_string();
            let written = users(&app).await - before;
            let expected_errors = if valid { 0 } else { 1 };
            let expected_written = match (dry_run, valid) {
                (true, _) => 0,
                (false, true) => 2,
                (false, false) => 1,
            };
            let line_ok = valid || report.lines().nth(1).is_some_and(|l| l.starts_with("3,"));
            if status["status"] != "finished"
                || status["errors"] != expected_errors
                || written != expected_written
                || !line_ok
            {
                failures.push(format!(
                    "{what} (dry run {dry_run}): {status} {report} wrote {written}"
                ));
            }
        }
        if valid {
            let found = acme
                .get(&format!(
                    "/Users?filter={}",
                    url_encode(&format!("userName eq \"{odd}\""))
                ))
                .await;
            let given = found.body["Resources"][0]["name"]["givenName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let expected = String::from_utf8(cell.clone()).unwrap();
            let expected = expected
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or(&expected)
                .to_string();
            if given != expected {
                failures.push(format!("{what}: stored {given:?}, sent {expected:?}"));
            }
        }
    }
    for (i, (what, cell)) in broken_cells().into_iter().enumerate() {
        let mut csv = b"userName,givenName,familyName,email\n".to_vec();
        csv.extend_from_slice(
            format!("fine{i}@acme.example,Fine,Row,fine{i}@acme.example\nbroken{i}@acme.example,")
                .as_bytes(),
        );
        csv.extend_from_slice(&cell);
        csv.extend_from_slice(format!(",Lee,broken{i}@acme.example\n").as_bytes());
        for dry_run in [true, false] {
            tried += 1;
            let before = users(&app).await;
            let got = upload(&app, &token, csv.clone(), "roster.csv", dry_run).await;
            let written = users(&app).await - before;
            let status = &got["status"];
            let report = got["errors_csv"].as_str().unwrap_or_default();
            // Either the file fails as a whole, writing nothing, or the row is refused with
            // its line; never a replacement character stored for a name.
            let whole_file = status["status"] == "failed" && written == 0;
            let row = status["status"] == "finished"
                && status["errors"] == 1
                && report.lines().nth(1).is_some_and(|l| l.starts_with("3,"))
                && written == if dry_run { 0 } else { 1 };
            if !(whole_file || row) {
                failures.push(format!(
                    "{what} (dry run {dry_run}): {status} {report} wrote {written}"
                ));
            }
        }
    }
    let line = format!("inputs={tried} failures={}", failures.len());
    eprintln!("bad input ({}, csv): {line}", backend_name(backend));
    record_count(
        "bad-input.count",
        &format!("csv.{}", backend_name(backend)),
        &line,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

async fn fingerprint(app: &TestApp, token: &str) -> String {
    let v: Value = app
        .client
        .get(format!("{}/api/v1/mappings", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["fingerprint"].as_str().unwrap().to_string()
}

async fn reload(app: &TestApp, token: &str) -> (u16, Value) {
    let res = app
        .client
        .post(format!("{}/api/v1/mappings/reload", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A rule file whose line 9 carries `value` in the place `slot` names.
fn rule_file(slot: &str, value: &[u8]) -> Vec<u8> {
    let mut out = RULES.as_bytes()[..RULES.find("[[rule]]").unwrap()].to_vec();
    out.extend_from_slice(b"[[rule]]\n");
    let (before, after): (&[u8], &[u8]) = match slot {
        "id" => (
            b"id = \"",
            b"\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n",
        ),
        "condition" => (
            b"condition = 'givenName eq \"",
            b"\"'\nid = \"odd\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n",
        ),
        "sponsor" => (
            b"sponsor = \"",
            b"\"\nid = \"odd\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n",
        ),
        _ => (
            b"template = \"",
            b"\"\nid = \"odd\"\ngrants = [{ app = \"ehr\", role = \"reader\" }]\n",
        ),
    };
    out.extend_from_slice(before);
    out.extend_from_slice(value);
    out.extend_from_slice(after);
    out
}

async fn rule_files_with_bad_input_name_file_and_line_and_keep_the_rules(backend: Backend) {
    let app = spawn_with_rules(backend, &[("rules.toml", RULES)]).await;
    let token = admin(&app).await;
    let in_force = fingerprint(&app, &token).await;
    let mut values: Vec<(&str, Vec<u8>)> = vec![
        ("raw NUL", b"a\0b".to_vec()),
        ("escaped NUL", b"a\\u0000b".to_vec()),
        ("raw CR/LF", b"a\r\nBcc: x@evil.test".to_vec()),
        ("escaped CR/LF", b"a\\r\\nBcc: x@evil.test".to_vec()),
        ("RTL override", "a\u{202e}b".as_bytes().to_vec()),
        ("combining marks", "e\u{301}\u{301}".as_bytes().to_vec()),
        ("lone surrogate bytes", b"a\xed\xa0\x80b".to_vec()),
        ("invalid UTF-8", b"a\xff\xfeb".to_vec()),
        ("escaped lone surrogate", b"a\\ud800b".to_vec()),
        ("SQL", b"'; DROP TABLE guests; --".to_vec()),
        ("dot dot", b"../../etc/passwd".to_vec()),
    ];
    values.push(("10 kB", "x".repeat(10_000).into_bytes()));
    let mut tried = 0usize;
    let mut failures: Vec<String> = Vec::new();
    for (what, value) in &values {
        for slot in ["id", "condition", "sponsor", "template"] {
            let file = rule_file(slot, value);
            std::fs::write(app.mappings.join("rules.toml"), &file).unwrap();
            tried += 1;
            let check = Command::new(env!("CARGO_BIN_EXE_guestbridge"))
                .args(["mappings", "check", app.mappings.to_str().unwrap()])
                .env("GUESTBRIDGE_DATABASE_URL", &app.database_url)
                .env_remove("RUST_LOG")
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&check.stdout).to_string()
                + &String::from_utf8_lossy(&check.stderr);
            let (status, body) = reload(&app, &token).await;
            let now = fingerprint(&app, &token).await;
            if check.status.success() {
                // Taken as valid (a name with an RTL mark is a name): the reload agrees;
                // the next case starts from the original rules again.
                if status != 200 {
                    failures.push(format!(
                        "{what} in {slot}: check passed, reload {status} {body}"
                    ));
                }
                std::fs::write(app.mappings.join("rules.toml"), RULES).unwrap();
                let (back, body) = reload(&app, &token).await;
                assert_eq!(back, 200, "{body}");
                continue;
            }
            // Line 9 holds the value (line 0: the file as a whole, for bytes that are no text).
            let named = out.lines().any(|l| {
                l.starts_with("rules.toml:9:")
                    || l.starts_with("rules.toml:0:")
                    || l.starts_with("rules.toml: ")
            });
            let api_named = body["errors"].as_array().is_some_and(|errors| {
                !errors.is_empty()
                    && errors.iter().all(|e| e["file"] == "rules.toml")
                    && errors.iter().any(|e| e["line"] == 9 || e["line"] == 0)
            });
            if !named
                || status != 422
                || !api_named
                || now != in_force
                || check.status.code() == Some(101)
            {
                failures.push(format!(
                    "{what} in {slot}: check said {out:?}; reload {status} {body}; in force {now} (was {in_force})"
                ));
            }
        }
    }
    std::fs::write(app.mappings.join("rules.toml"), RULES).unwrap();
    let line = format!("inputs={tried} failures={}", failures.len());
    eprintln!("bad input ({}, rule files): {line}", backend_name(backend));
    record_count(
        "bad-input.count",
        &format!("rules.{}", backend_name(backend)),
        &line,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

async fn file_names_from_input_are_plain_names(backend: Backend) {
    let app = spawn_with_rules(backend, &[("rules.toml", RULES)]).await;
    app.partner("acme").await;
    let token = admin(&app).await;
    let imports_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM imports")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    // The upload's file name is stored and shown: a path is refused before anything runs.
    for name in [
        "../roster.csv",
        "../../etc/passwd",
        "/etc/passwd",
        "C:\\roster.csv",
        "a/../../b.csv",
        "..",
        "roster\r\n.csv",
    ] {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(
                b"userName,email\nann@acme.example,ann@acme.example\n".to_vec(),
            )
            .file_name(name.to_string()),
        );
        let res = app
            .client
            .post(format!("{}/api/v1/imports?partner=acme", app.address))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        assert_eq!(status, 400, "{name:?}: {body}");
        // A line break already breaks the multipart header itself.
        assert!(
            body.contains("plain name") || name.contains('\n'),
            "{name:?}: {body}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let imports_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM imports")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    assert_eq!(imports_before, imports_after);
    assert_eq!(users(&app).await, 0);

    // A template named by a rule is part of file names: `..` is an error at its line.
    let in_force = fingerprint(&app, &token).await;
    for template in ["..", "../invitation", ".hidden", "a..b"] {
        std::fs::write(
            app.mappings.join("rules.toml"),
            rule_file("template", template.as_bytes()),
        )
        .unwrap();
        let (status, body) = reload(&app, &token).await;
        assert_eq!(status, 422, "{template}: {body}");
        let errors = body["errors"].as_array().unwrap();
        assert!(
            errors.iter().any(|e| e["file"] == "rules.toml"
                && e["line"] == 9
                && e["message"].as_str().unwrap().contains("template name")),
            "{template}: {body}"
        );
        assert_eq!(fingerprint(&app, &token).await, in_force);
    }
    std::fs::write(app.mappings.join("rules.toml"), RULES).unwrap();

    // Rule file names published in the stored rule set: a stored name that is a path does
    // not load (the unit tests of mapping::load cover every shape).
    let bad =
        guestbridge::mapping::load_sources(&[("../rules.toml".to_string(), RULES.to_string())])
            .unwrap_err();
    assert!(
        bad.iter().any(|e| e.message.contains("plain name")),
        "{bad:?}"
    );
    record_count(
        "bad-input.count",
        &format!("names.{}", backend_name(backend)),
        "inputs=12 failures=0",
    );
}
