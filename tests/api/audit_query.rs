//! The audit log's query API (`GET /api/v1/audit`: filters, keyset pages, bad queries
//! refused) and its CSV export (header, one properly quoted line per entry, streamed over
//! several pages).

use reqwest::StatusCode;
use serde_json::{json, Value};

use guestbridge::store::audit::{self, AuditEntry};
use guestbridge::store::work::Work;

use crate::audit_log::{admin_token, assert_verifies, chained_rows, real_actions};
use crate::both_backends;
use crate::helpers::{spawn, Backend, TestApp};
use crate::users_crud::clinician;

both_backends!(
    queries_filter_and_page_exactly,
    csv_export_has_a_header_and_one_quoted_line_per_entry,
);

pub async fn list(app: &TestApp, token: &str, query: &str) -> (StatusCode, Value) {
    let res = app
        .client
        .get(format!("{}/api/v1/audit?{query}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

fn ids_of(body: &Value) -> Vec<i64> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

async fn ids_where(app: &TestApp, condition: &str, args: &[&str]) -> Vec<i64> {
    let sql = format!("SELECT id FROM audit_log WHERE {condition} ORDER BY id DESC");
    let mut q = sqlx::query_scalar(&sql);
    for a in args {
        q = q.bind(*a);
    }
    q.fetch_all(app.deps.db.pool()).await.unwrap()
}

async fn queries_filter_and_page_exactly(backend: Backend) {
    let app = spawn(backend).await;
    real_actions(&app, "acme").await;
    let other = real_actions(&app, "beta").await;
    let user = other.create_user(&clinician("late@beta.example")).await;
    let token = admin_token(&app).await;

    let (status, body) = list(&app, &token, "limit=500").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let all = ids_where(&app, "1 = 1", &[]).await;
    assert_eq!(ids_of(&body), all);
    assert!(body["next_cursor"].is_null());

    // Pages of 3 walk the same entries, newest first, once each.
    let (mut walked, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let q = match &cursor {
            Some(c) => format!("limit=3&cursor={c}"),
            None => "limit=3".into(),
        };
        let (status, body) = list(&app, &token, &q).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        walked.extend(ids_of(&body));
        pages += 1;
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(walked, all);
    assert!(pages >= all.len() / 3);

    let beta: String = sqlx::query_scalar("SELECT id FROM partners WHERE slug = 'beta'")
        .fetch_one(app.deps.db.pool())
        .await
        .unwrap();
    let cases: Vec<(String, Vec<i64>)> = vec![
        (
            "action=user.created&partner=beta".into(),
            ids_where(
                &app,
                "action = 'user.created' AND partner_id = $1",
                &[&beta],
            )
            .await,
        ),
        (
            "actor=partner%3Aacme".into(),
            ids_where(&app, "actor = 'partner:acme'", &[]).await,
        ),
        (
            format!("target_type=user&target_id={user}"),
            ids_where(&app, "target_type = 'user' AND target_id = $1", &[&user]).await,
        ),
    ];
    for (q, expected) in cases {
        assert!(!expected.is_empty(), "{q}");
        let (status, body) = list(&app, &token, &q).await;
        assert_eq!(status, StatusCode::OK, "{q}: {body}");
        assert_eq!(ids_of(&body), expected, "{q}");
    }
    // The user's creation reads back with its userName, which the log itself does not hold.
    let (_, body) = list(
        &app,
        &token,
        &format!("target_id={user}&action=user.created"),
    )
    .await;
    assert_eq!(body["items"][0]["detail"]["userName"], "late@beta.example");

    // A time window: since is inclusive, until exclusive.
    let ats: Vec<i64> = sqlx::query_scalar("SELECT at FROM audit_log ORDER BY at")
        .fetch_all(app.deps.db.pool())
        .await
        .unwrap();
    let (from, to) = (ats[ats.len() / 4], ats[3 * ats.len() / 4]);
    let rfc = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let expected: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM audit_log WHERE at >= $1 AND at < $2 ORDER BY id DESC")
            .bind(from)
            .bind(to)
            .fetch_all(app.deps.db.pool())
            .await
            .unwrap();
    let (status, body) = list(
        &app,
        &token,
        &format!("since={}&until={}", rfc(from), rfc(to)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(ids_of(&body), expected);

    let count = chained_rows(&app).await;
    for bad in [
        "limit=0",
        "limit=501",
        "limit=many",
        "since=yesterday",
        "until=1700000000",
        "cursor=abc",
        "cursor=-4",
        "partner=nobody",
        "partner=NOT%20A%20SLUG",
        "colour=blue",
    ] {
        let (status, body) = list(&app, &token, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {body}"
        );
    }
    assert_eq!(chained_rows(&app).await, count, "bad queries wrote nothing");
    assert_eq!(
        app.get("/api/v1/audit").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn csv_export_has_a_header_and_one_quoted_line_per_entry(backend: Backend) {
    let app = spawn(backend).await;
    real_actions(&app, "acme").await;
    // More entries than one page of the export, with values that need quoting.
    let detail = json!({"note": "a, \"quoted\"\nline", "n": 1});
    let mut work = Work::begin(&app.deps.db);
    for i in 0..1203 {
        let target = format!("g{i}");
        audit::queue(
            &mut work,
            &AuditEntry {
                actor: "=cmd|' /C calc'!A0",
                partner_id: None,
                action: "test.bulk",
                target_type: "group",
                target_id: Some(&target),
                request_id: None,
                detail: detail.clone(),
            },
            1_800_000_000_000 + i,
        );
    }
    work.commit().await.unwrap();
    let token = admin_token(&app).await;
    let export = |q: &'static str| {
        let app = &app;
        let token = token.clone();
        async move {
            let res = app
                .client
                .get(format!("{}/api/v1/audit/export.csv?{q}", app.address))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(
                res.headers()["content-disposition"],
                "attachment; filename=\"audit.csv\""
            );
            assert!(res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv"));
            res.text().await.unwrap()
        }
    };
    let all = export("").await;
    let mut reader = csv::Reader::from_reader(all.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "id",
            "at",
            "actor",
            "partner_id",
            "action",
            "target_type",
            "target_id",
            "request_id",
            "detail"
        ]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let ids: Vec<i64> = records.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(ids, ids_where(&app, "1 = 1", &[]).await);

    let bulk = export("action=test.bulk").await;
    let mut reader = csv::Reader::from_reader(bulk.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1203);
    let newest = &records[0];
    assert_eq!(&newest[1], "2027-01-15T08:00:01.202Z");
    // A value a spreadsheet would run as a formula is defused with a leading quote.
    assert_eq!(&newest[2], "'=cmd|' /C calc'!A0");
    assert_eq!(&newest[6], "g1202");
    let read_back: Value = serde_json::from_str(&newest[8]).unwrap();
    assert_eq!(read_back, detail);
    assert_verifies(&app).await;
}
