//! Imports are bounded in memory: a file of 1,500 bad rows keeps the first 1,000 errors and
//! counts the rest ("and 500 more"), and finished imports (applied, dry run, failed) leave
//! the instance's registry while their records stay in the database.

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{spawn, Backend, TestApp};

both_backends!(
    an_import_of_many_bad_rows_keeps_a_thousand_errors_and_a_count,
    finished_imports_leave_memory_and_keep_their_record,
);

const HEADER: &str = "userName,givenName,familyName,email\n";

async fn admin(app: &TestApp) -> String {
    app.partner("acme").await;
    guestbridge::services::partners::issue_admin_token(&app.deps, &crate::helpers::test_actor())
        .await
        .unwrap()
}

async fn upload(app: &TestApp, token: &str, csv: String, query: &str) -> String {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("roster.csv"),
    );
    let res = app
        .client
        .post(format!(
            "{}/api/v1/imports?partner=acme&{query}",
            app.address
        ))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    let accepted: Value = res.json().await.unwrap();
    accepted["id"].as_str().unwrap().to_string()
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/api/v1/{path}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn finished(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..1200 {
        let status: Value = get(app, token, &format!("imports/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if status["status"] != "running" {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("import {id} did not finish");
}

async fn an_import_of_many_bad_rows_keeps_a_thousand_errors_and_a_count(backend: Backend) {
    let app = spawn(backend).await;
    let token = admin(&app).await;
    let mut csv = HEADER.to_string();
    csv.push_str("ok@acme.example,Ok,Row,ok@acme.example\n");
    for i in 0..1500 {
        csv.push_str(&format!("bad{i}@acme.example,Bad,Row,not-an-email\n"));
    }
    let id = upload(&app, &token, csv, "mode=delta").await;
    let status = finished(&app, &token, &id).await;
    assert_eq!(status["status"], "finished", "{status}");
    assert_eq!(status["errors"], 1500);
    assert_eq!(status["created"], 1);
    let report = get(&app, &token, &format!("imports/{id}/errors.csv"))
        .await
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines.len(),
        1 + 1000 + 1,
        "header, 1,000 errors, the rest counted"
    );
    assert!(lines[1].starts_with("3,\"email\","), "{}", lines[1]);
    assert_eq!(lines[1001], ",,\"and 500 more\"");
}

async fn finished_imports_leave_memory_and_keep_their_record(backend: Backend) {
    let app = spawn(backend).await;
    let token = admin(&app).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let (csv, query) = match i % 3 {
            0 => (
                format!("{HEADER}p{i}@acme.example,P,Q,p{i}@acme.example\n"),
                "mode=delta",
            ),
            1 => (
                format!("{HEADER}d{i}@acme.example,D,Q,d{i}@acme.example\n"),
                "mode=delta&dry_run=true",
            ),
            // No userName column: the import fails before reading a row.
            _ => ("email\nx@acme.example\n".to_string(), "mode=delta"),
        };
        ids.push(upload(&app, &token, csv, query).await);
    }
    for (i, id) in ids.iter().enumerate() {
        let status = finished(&app, &token, id).await;
        let expected = if i % 3 == 2 { "failed" } else { "finished" };
        assert_eq!(status["status"], expected, "{status}");
        if i % 3 == 2 {
            assert!(
                status["error"].as_str().unwrap().contains("userName"),
                "{status}"
            );
        }
    }
    // The last task may still be between its record and leaving the registry.
    crate::helpers::eventually("the registry to empty", || async {
        let list: Value = get(&app, &token, "imports").await.json().await.unwrap();
        list["running"] == 0 && list["imports"].as_array().unwrap().len() == 12
    })
    .await;
}
