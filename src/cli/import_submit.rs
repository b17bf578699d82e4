//! `guestbridge import --server URL`: hand the file to the running server's admin API
//! (`/api/v1/imports`) instead of writing the database from a second process. The server
//! orders the import's chunks with its own writers in one queue; a second process on a
//! SQLite file could only contend for SQLite's lock, whose busy handler starves writers.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

/// How the CLI reaches the server; the token is an admin API token.
pub struct Server {
    pub url: String,
    pub token: String,
}

/// What the server asked for; `partner` is a slug, `mode` `delta` or `full`.
pub struct Submission<'a> {
    pub file: &'a Path,
    pub partner: &'a str,
    pub mode: &'a str,
    pub dry_run: bool,
    pub force: bool,
}

/// The finished import as the server recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub id: String,
    pub created: i64,
    pub updated: i64,
    pub deactivated: i64,
    pub unchanged: i64,
    pub errors: i64,
}

impl Outcome {
    /// The CLI's last line (CONTRACT.md), the same as for a local import.
    pub fn summary(&self) -> String {
        format!(
            "created={} updated={} deactivated={} unchanged={} errors={}",
            self.created, self.updated, self.deactivated, self.unchanged, self.errors
        )
    }
}

const POLL: Duration = Duration::from_millis(250);
const UPLOAD_CHUNK: usize = 64 * 1024;

/// Upload the file (streamed, never held whole), then poll until the server finished it;
/// `progress(rows)` is called with the rows the server has read so far.
pub async fn submit(
    server: &Server,
    what: &Submission<'_>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> anyhow::Result<Outcome> {
    let base = server.url.trim_end_matches('/');
    let client = reqwest::Client::new();
    let file = std::fs::File::open(what.file)
        .with_context(|| format!("cannot open {}", what.file.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let name = what
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "roster.csv".into());
    let part = reqwest::multipart::Part::stream_with_length(file_body(file), len)
        .file_name(name)
        .mime_str("text/csv")?;
    let form = reqwest::multipart::Form::new().part("file", part);
    let res = client
        .post(format!("{base}/api/v1/imports"))
        .bearer_auth(&server.token)
        .query(&[
            ("partner", what.partner),
            ("mode", what.mode),
            ("dry_run", if what.dry_run { "true" } else { "false" }),
            ("force", if what.force { "true" } else { "false" }),
        ])
        .multipart(form)
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {base}"))?;
    let accepted = json_or_reason(res, "uploading the file").await?;
    let id = accepted["id"]
        .as_str()
        .context("the server's reply names no import id")?
        .to_string();
    loop {
        let res = client
            .get(format!("{base}/api/v1/imports/{id}"))
            .bearer_auth(&server.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the server at {base}"))?;
        let body = json_or_reason(res, "asking for the import's progress").await?;
        match body["status"].as_str() {
            Some("running") => progress(body["rows"].as_u64().unwrap_or(0)),
            Some("finished") => {
                let n = |k: &str| body[k].as_i64().unwrap_or(0);
                return Ok(Outcome {
                    id,
                    created: n("created"),
                    updated: n("updated"),
                    deactivated: n("deactivated"),
                    unchanged: n("unchanged"),
                    errors: n("errors"),
                });
            }
            Some("failed") => anyhow::bail!(
                "the server's import failed: {}",
                body["error"].as_str().unwrap_or("no reason given")
            ),
            other => anyhow::bail!("the server reports the import as {other:?}"),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The per-row error report of a finished import (CSV, as `errors.csv` serves it).
pub async fn error_report(server: &Server, id: &str) -> anyhow::Result<String> {
    let base = server.url.trim_end_matches('/');
    let res = reqwest::Client::new()
        .get(format!("{base}/api/v1/imports/{id}/errors.csv"))
        .bearer_auth(&server.token)
        .send()
        .await?;
    if !res.status().is_success() {
        anyhow::bail!("the server answered {} for the error report", res.status());
    }
    Ok(res.text().await?)
}

/// The file as a stream of chunks: a blocking read of 64 KiB at a time is fine in the CLI,
/// whose runtime does nothing else meanwhile.
fn file_body(file: std::fs::File) -> reqwest::Body {
    let chunks = futures_util::stream::unfold(Some(file), |state| async move {
        let mut file = state?;
        let mut buf = vec![0u8; UPLOAD_CHUNK];
        match file.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    reqwest::Body::wrap_stream(chunks)
}

/// The reply's JSON, or the server's own reason as the error (admin errors carry `error`
/// or `detail`); the token is never part of it.
async fn json_or_reason(res: reqwest::Response, doing: &str) -> anyhow::Result<Value> {
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let reason = ["error", "detail", "message"]
        .iter()
        .find_map(|k| body[*k].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(200).collect());
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        anyhow::bail!(
            "{doing}: the server refused the admin token (GUESTBRIDGE_ADMIN_TOKEN): {status}"
        );
    }
    anyhow::bail!("{doing}: the server answered {status}: {reason}")
}
