//! CSV roster import through the command line: the contract's summary line, per-row errors,
//! delta and full modes, the safety limit, dry runs, idempotence and a killed import.

use std::process::{Command, Output};

use serde_json::json;

use crate::both_backends;
use crate::helpers::{fresh_database, read, settings_with_mappings, Backend, Scim};

const RULES: &str = r#"
[[app]]
id = "ehr-viewer"
name = "EHR Viewer"
description = ""
launch_url = "https://ehr.example/"
roles = ["reader"]

[[rule]]
id = "cardiology"
condition = 'department eq "Cardiology"'
grants = [{ app = "ehr-viewer", role = "reader" }]
"#;

struct Env {
    _dir: tempfile::TempDir,
    url: String,
    mappings: std::path::PathBuf,
    files: std::path::PathBuf,
}

async fn env(backend: Backend) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(backend, &dir).await;
    let mappings = dir.path().join("mappings");
    std::fs::create_dir_all(&mappings).unwrap();
    std::fs::write(mappings.join("rules.toml"), RULES).unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let e = Env {
        url,
        mappings,
        files,
        _dir: dir,
    };
    let out = e.run(&["partner", "add", "acme", "--name", "Acme Health"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    e
}

impl Env {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_guestbridge"));
        c.args(args)
            .env("GUESTBRIDGE_DATABASE_URL", &self.url)
            .env("GUESTBRIDGE_MAPPINGS", &self.mappings)
            .env_remove("RUST_LOG");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run guestbridge")
    }

    fn file(&self, name: &str, content: &str) -> String {
        let p = self.files.join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }

    fn import(&self, file: &str, extra: &[&str]) -> (bool, String, String) {
        let mut args = vec!["import", file, "--partner", "acme"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    async fn scim(&self) -> (Scim, tokio::task::JoinHandle<anyhow::Result<()>>) {
        let out = self.run(&["token", "issue", "acme"]);
        let token = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .to_string();
        let settings = settings_with_mappings(&self.url, &self.mappings);
        let app = guestbridge::startup::Application::build(
            settings,
            std::sync::Arc::new(guestbridge::clock::SystemClock),
        )
        .await
        .unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = tokio::spawn(app.run_until_stopped());
        (
            Scim {
                base,
                token,
                client: reqwest::Client::new(),
            },
            handle,
        )
    }
}

fn last(stdout: &str) -> &str {
    stdout.lines().last().unwrap_or_default()
}

const ROSTER: &str =
    "userName,givenName,familyName,email,title,department,active,accessEndDate,groups\n\
ann@acme.example,Ann,Lee,ann@acme.example,Staff Nurse,Cardiology,true,2027-06-30,Ward 7;ICU\n\
bob@acme.example,Bob,Stone,bob@acme.example,Surgeon,Surgery,yes,,\n\
cara@acme.example,Cara,Ng,not-an-email,Nurse,Cardiology,true,,\n\
dan@acme.example,Dan,Roe,dan@acme.example,Porter,Facilities,maybe,,\n\
eve@acme.example,Eve,Tan,eve@acme.example,\"Nurse,\nNights\",Cardiology,1,31/12/2027,\n";

both_backends!(
    delta_import_reports_rows_and_errors_and_is_idempotent,
    full_import_deactivates_missing_people_within_the_safety_limit,
    dry_run_writes_nothing,
    excel_exports_and_header_errors,
    a_killed_import_leaves_nothing_and_rerunning_completes_it,
);

async fn delta_import_reports_rows_and_errors_and_is_idempotent(backend: Backend) {
    let e = env(backend).await;
    let f = e.file("roster.csv", ROSTER);
    let (ok, out, err) = e.import(&f, &[]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        last(&out),
        "created=2 updated=0 deactivated=0 unchanged=0 errors=3",
        "{out}"
    );
    assert!(out.contains("line 4 column email:"), "{out}");
    assert!(out.contains("line 5 column active:"), "{out}");
    assert!(out.contains("line 6 column accessEndDate:"), "{out}");

    let (ok, out, _) = e.import(&f, &[]);
    assert!(ok);
    assert_eq!(
        last(&out),
        "created=0 updated=0 deactivated=0 unchanged=2 errors=3",
        "re-import: {out}"
    );

    let changed = ROSTER.replace("Surgeon,Surgery", "Chief Surgeon,Surgery");
    let f2 = e.file("roster2.csv", &changed);
    let (_, out, _) = e.import(&f2, &[]);
    assert_eq!(
        last(&out),
        "created=0 updated=1 deactivated=0 unchanged=1 errors=3",
        "{out}"
    );

    // Imported people are real SCIM users, with the guest extension and group memberships,
    // and the rules made ann a guest.
    let (scim, _h) = e.scim().await;
    let ann = scim.filter_users("userName eq \"ann@acme.example\"").await;
    let ann = &ann.body["Resources"][0];
    assert_eq!(ann["name"]["familyName"], "Lee");
    assert_eq!(
        ann["urn:guestbridge:params:scim:schemas:extension:guest:1.0:User"]["accessEndDate"],
        "2027-07-01T00:00:00.000Z"
    );
    let groups: Vec<&str> = ann["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["display"].as_str().unwrap())
        .collect();
    assert_eq!(groups, ["ICU", "Ward 7"]);
    let bob = scim.filter_users("userName eq \"bob@acme.example\"").await;
    assert_eq!(bob.body["Resources"][0]["title"], "Chief Surgeon");
    let settings = settings_with_mappings(&e.url, &e.mappings);
    let db = guestbridge::store::Db::connect(&settings.database)
        .await
        .unwrap();
    let guests: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM guests")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(guests, 1);
    let imports: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM imports")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(imports, 3);
}

async fn full_import_deactivates_missing_people_within_the_safety_limit(backend: Backend) {
    let e = env(backend).await;
    let mut roster = String::from("userName,department\n");
    for i in 0..20 {
        roster.push_str(&format!("p{i:02}@acme.example,Cardiology\n"));
    }
    let f = e.file("all.csv", &roster);
    assert!(e.import(&f, &[]).0);
    // Dropping 1 of 20 (5 %) is within the 10 % limit.
    let one_less: String = roster
        .lines()
        .filter(|l| !l.starts_with("p00@"))
        .map(|l| format!("{l}\n"))
        .collect();
    let f1 = e.file("one-less.csv", &one_less);
    let (ok, out, err) = e.import(&f1, &["--mode", "full"]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        last(&out),
        "created=0 updated=0 deactivated=1 unchanged=19 errors=0"
    );
    // Dropping 5 more (26 %) is refused, and nothing is changed.
    let many_less: String = one_less
        .lines()
        .filter(|l| {
            !(l.starts_with("p01@")
                || l.starts_with("p02@")
                || l.starts_with("p03@")
                || l.starts_with("p04@")
                || l.starts_with("p05@"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let f2 = e.file("many-less.csv", &many_less);
    let (ok, _, err) = e.import(&f2, &["--mode", "full"]);
    assert!(!ok);
    assert!(
        err.contains("safety limit") && err.trim().lines().count() == 1,
        "{err}"
    );
    let (ok, out, _) = e.import(&f2, &["--mode", "full", "--force"]);
    assert!(ok);
    assert_eq!(
        last(&out),
        "created=0 updated=0 deactivated=5 unchanged=14 errors=0"
    );
    let (scim, _h) = e.scim().await;
    let inactive = scim.filter_users("active eq false").await;
    assert_eq!(inactive.body["totalResults"], 6);
    // The guest of a deactivated person is suspended, with the import as the cause.
    let settings = settings_with_mappings(&e.url, &e.mappings);
    let db = guestbridge::store::Db::connect(&settings.database)
        .await
        .unwrap();
    let suspended: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM guests WHERE state = 'suspended:deactivated'")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(suspended, 6);
}

async fn dry_run_writes_nothing(backend: Backend) {
    let e = env(backend).await;
    let f = e.file("roster.csv", ROSTER);
    let (ok, out, _) = e.import(&f, &["--dry-run"]);
    assert!(ok);
    assert_eq!(
        last(&out),
        "created=2 updated=0 deactivated=0 unchanged=0 errors=3"
    );
    assert!(out.contains("created ann@acme.example ("), "{out}");
    assert!(out.contains("dry run: nothing was written"));
    let (scim, _h) = e.scim().await;
    let all = read(
        scim.client
            .get(format!("{}/scim/v2/Users", scim.base))
            .bearer_auth(&scim.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(all.body["totalResults"], 0);
    let (_, out, _) = e.import(&f, &[]);
    assert_eq!(
        last(&out),
        "created=2 updated=0 deactivated=0 unchanged=0 errors=3"
    );
}

async fn excel_exports_and_header_errors(backend: Backend) {
    let e = env(backend).await;
    let excel =
        "\u{feff}UserName;Email;EmployeeNumber\r\nann@acme.example;ann@acme.example;=\"0042\"\r\n";
    let f = e.file("excel.csv", excel);
    let (ok, out, err) = e.import(&f, &[]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        last(&out),
        "created=1 updated=0 deactivated=0 unchanged=0 errors=0"
    );
    let (scim, _h) = e.scim().await;
    let ann = scim.filter_users("userName eq \"ann@acme.example\"").await;
    assert_eq!(
        ann.body["Resources"][0]["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
            ["employeeNumber"],
        "0042"
    );

    let bad = e.file("bad.csv", "userName,shoeSize\nx@acme.example,42\n");
    let (ok, _, err) = e.import(&bad, &[]);
    assert!(!ok);
    assert!(err.contains("shoeSize"), "{err}");
    let none = e.file("none.csv", "givenName\nAnn\n");
    let (ok, _, err) = e.import(&none, &[]);
    assert!(!ok);
    assert!(err.contains("userName"), "{err}");
    let _ = json!(null);
}

async fn a_killed_import_leaves_nothing_and_rerunning_completes_it(backend: Backend) {
    let e = env(backend).await;
    let mut roster = String::from("userName,givenName,department\n");
    for i in 0..6000 {
        roster.push_str(&format!("person{i:05}@acme.example,P{i},Cardiology\n"));
    }
    let f = e.file("big.csv", &roster);
    let settings = settings_with_mappings(&e.url, &e.mappings);
    let db = guestbridge::store::Db::connect(&settings.database)
        .await
        .unwrap();
    let mut child = e
        .command(&["import", &f, "--partner", "acme"])
        .spawn()
        .unwrap();
    // Kill it while it works: after it has started writing but before it can finish.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let finished_early = child.try_wait().unwrap().is_some();
    let _ = child.kill();
    let _ = child.wait();
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scim_users")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(
        count == 0 || count == 6000,
        "an import is all or nothing, found {count}"
    );
    if !finished_early {
        assert_eq!(count, 0, "a killed import shows nothing");
    }
    let (ok, out, err) = e.import(&f, &[]);
    assert!(ok, "{out}{err}");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scim_users")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(count, 6000);
    let (_, out, _) = e.import(&f, &[]);
    assert_eq!(
        last(&out),
        "created=0 updated=0 deactivated=0 unchanged=6000 errors=0"
    );
}

both_backends!(admins_upload_rosters_and_download_error_reports);

async fn admins_upload_rosters_and_download_error_reports(backend: Backend) {
    let app = crate::helpers::spawn_with_rules(backend, &[("rules.toml", RULES)]).await;
    app.partner("acme").await;
    let token = guestbridge::services::partners::issue_admin_token(
        &app.deps,
        &crate::helpers::test_actor(),
    )
    .await
    .unwrap();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(ROSTER.as_bytes().to_vec()).file_name("roster.csv"),
    );
    let res = app
        .client
        .post(format!(
            "{}/api/v1/imports?partner=acme&mode=delta",
            app.address
        ))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    let accepted: serde_json::Value = res.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap().to_string();
    let mut status = serde_json::Value::Null;
    for _ in 0..600 {
        status = app
            .client
            .get(format!("{}/api/v1/imports/{id}", app.address))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status["status"], "finished", "{status}");
    assert_eq!(status["created"], 2);
    assert_eq!(status["errors"], 3);
    assert_eq!(status["file_name"], "roster.csv");
    assert_eq!(status["sha256"].as_str().unwrap().len(), 64);
    let report = app
        .client
        .get(format!("{}/api/v1/imports/{id}/errors.csv", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(report.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = report.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "line,column,reason");
    assert!(lines[1].starts_with("4,\"email\","), "{csv}");
    assert_eq!(lines.len(), 4);
    let list: serde_json::Value = app
        .client
        .get(format!("{}/api/v1/imports", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["imports"].as_array().unwrap().len(), 1);
    let unknown = app
        .client
        .post(format!("{}/api/v1/imports?partner=nobody", app.address))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().text("file", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}
