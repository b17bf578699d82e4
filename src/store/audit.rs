//! The append-only audit log (UPDATE, DELETE and TRUNCATE are refused by triggers; each row
//! is a link of a hash chain, see [`super::audit_chain`]).
//!
//! The log must outlive the people it mentions, so what names a person (userName, name,
//! e-mail) is not written into `audit_log`: each such value moves to a row of
//! `audit_subjects` keyed by an opaque reference, and the detail keeps `{"subject_ref": REF}`
//! in its place. Erasure deletes the subject's rows ([`erase_subjects`]); the entries stay,
//! and read back with [`ERASED`] where the value was.

use serde_json::{Map, Value};
use sqlx::AnyConnection;

use super::sql::Arg;
use super::work::{Table, Work};
use super::DbError;

/// One audited change.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// Who: `partner:SLUG`, `admin:TOKEN_ID`, `cli`, `job:NAME`.
    pub actor: &'a str,
    pub partner_id: Option<&'a str>,
    /// What, as `noun.verb`: `user.created`, `partner.token_issued`.
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    /// Context without secrets.
    pub detail: Value,
}

/// What an erased person's values read back as.
pub const ERASED: &str = "erased subject";

/// Detail keys that name the person when the entry is about a user or a guest. A group's
/// `displayName` names the group, not a person, so only these target types are split.
const PERSONAL_KEYS: [&str; 9] = [
    "userName",
    "user_name",
    "displayName",
    "display_name",
    "name",
    "givenName",
    "familyName",
    "email",
    "emails",
];

fn is_about_a_person(target_type: &str) -> bool {
    matches!(target_type, "user" | "guest")
}

/// The personal values of an entry, moved out of its detail.
struct Subject {
    reference: String,
    subject_id: String,
    data: String,
}

/// The detail as the log stores it, and the subject row holding what was taken out of it.
fn split(entry: &AuditEntry<'_>) -> (Value, Option<Subject>) {
    let (Some(subject_id), Value::Object(detail)) = (entry.target_id, &entry.detail) else {
        return (entry.detail.clone(), None);
    };
    if !is_about_a_person(entry.target_type) {
        return (entry.detail.clone(), None);
    }
    let mut kept = Map::new();
    let mut personal = Map::new();
    let reference = super::new_row_id();
    for (k, v) in detail {
        if PERSONAL_KEYS.contains(&k.as_str()) && !v.is_null() {
            personal.insert(k.clone(), v.clone());
            kept.insert(k.clone(), serde_json::json!({ "subject_ref": reference }));
        } else {
            kept.insert(k.clone(), v.clone());
        }
    }
    if personal.is_empty() {
        return (entry.detail.clone(), None);
    }
    let subject = Subject {
        reference,
        subject_id: subject_id.to_string(),
        data: Value::Object(personal).to_string(),
    };
    (Value::Object(kept), Some(subject))
}

pub async fn append(
    conn: &mut AnyConnection,
    entry: &AuditEntry<'_>,
    now_ms: i64,
) -> Result<(), DbError> {
    log(entry);
    let (detail, subject) = split(entry);
    if let Some(s) = subject {
        sqlx::query("INSERT INTO audit_subjects (ref, subject_id, data) VALUES ($1, $2, $3)")
            .bind(s.reference)
            .bind(s.subject_id)
            .bind(s.data)
            .execute(&mut *conn)
            .await?;
    }
    let linked = super::audit_chain::link(&mut *conn, row(entry, detail, now_ms)).await?;
    let placeholders: Vec<String> = (1..=linked.len()).map(|i| format!("${i}")).collect();
    let sql = super::sql::Sql {
        text: format!(
            "{}({})",
            super::audit_chain::LINKED_HEAD,
            placeholders.join(", ")
        ),
        args: linked,
    };
    sql.query().execute(conn).await?;
    Ok(())
}

/// The values of an audit row in the column order of [`Table::Audit`].
fn row(entry: &AuditEntry<'_>, detail: Value, now_ms: i64) -> Vec<Arg> {
    vec![
        Arg::Int(now_ms),
        Arg::text(entry.actor),
        Arg::opt_text(entry.partner_id),
        Arg::text(entry.action),
        Arg::text(entry.target_type),
        Arg::opt_text(entry.target_id),
        Arg::opt_text(entry.request_id),
        Arg::Text(detail.to_string()),
    ]
}

/// Queue an audit row in `work` (written with the unit's other rows).
pub fn queue(work: &mut Work, entry: &AuditEntry<'_>, now_ms: i64) {
    log(entry);
    let (detail, subject) = split(entry);
    if let Some(s) = subject {
        work.queue(
            Table::AuditSubjects,
            vec![
                Arg::Text(s.reference),
                Arg::Text(s.subject_id),
                Arg::Text(s.data),
            ],
        );
    }
    work.queue(Table::Audit, row(entry, detail, now_ms));
}

fn log(entry: &AuditEntry<'_>) {
    tracing::info!(
        target: "audit",
        actor = entry.actor,
        action = entry.action,
        target_type = entry.target_type,
        target_id = entry.target_id,
        request_id = entry.request_id,
    );
}

/// Number of audit rows for a target (used by tests and the admin API).
pub async fn count_for_target(
    conn: &mut AnyConnection,
    target_type: &str,
    target_id: &str,
) -> Result<i64, DbError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE target_type = $1 AND target_id = $2")
        .bind(target_type)
        .bind(target_id)
        .fetch_one(conn)
        .await
}

/// One audit row, as read back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditRecord {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub partner_id: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub detail: serde_json::Value,
}

const RECORD_COLUMNS: &str =
    "id, at, actor, partner_id, action, target_type, target_id, request_id, detail";

fn record(r: &sqlx::any::AnyRow) -> Result<AuditRecord, DbError> {
    use sqlx::Row;
    let detail: String = r.try_get("detail")?;
    Ok(AuditRecord {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
        partner_id: r.try_get("partner_id")?,
        action: r.try_get("action")?,
        target_type: r.try_get("target_type")?,
        target_id: r.try_get("target_id")?,
        request_id: r.try_get("request_id")?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
    })
}

/// The history of one target, oldest first (bounded).
pub async fn for_target(
    conn: &mut AnyConnection,
    target_type: &str,
    target_id: &str,
    limit: i64,
) -> Result<Vec<AuditRecord>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {RECORD_COLUMNS} FROM audit_log
         WHERE target_type = $1 AND target_id = $2 ORDER BY id LIMIT $3"
    ))
    .bind(target_type)
    .bind(target_id)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut records = rows
        .iter()
        .map(record)
        .collect::<Result<Vec<_>, DbError>>()?;
    resolve_subjects(conn, &mut records).await?;
    Ok(records)
}

/// Which entries a query of the log wants; every field set narrows it.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub partner_id: Option<String>,
    /// `at` at or after (milliseconds).
    pub since_ms: Option<i64>,
    /// `at` before (milliseconds, exclusive).
    pub until_ms: Option<i64>,
}

/// One page of entries matching `filter`, newest (highest id) first, below `before_id`
/// when given (keyset paging), personal values resolved.
pub async fn page(
    conn: &mut AnyConnection,
    filter: &AuditFilter,
    before_id: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditRecord>, DbError> {
    let mut sql = super::sql::Sql::new(format!(
        "SELECT {RECORD_COLUMNS} FROM audit_log WHERE 1 = 1"
    ));
    let texts = [
        ("actor", &filter.actor),
        ("action", &filter.action),
        ("target_type", &filter.target_type),
        ("target_id", &filter.target_id),
        ("partner_id", &filter.partner_id),
    ];
    for (column, value) in texts {
        if let Some(v) = value {
            sql.push(&format!(" AND {column} = "))
                .bind(Arg::Text(v.clone()));
        }
    }
    if let Some(t) = filter.since_ms {
        sql.push(" AND at >= ").bind(Arg::Int(t));
    }
    if let Some(t) = filter.until_ms {
        sql.push(" AND at < ").bind(Arg::Int(t));
    }
    if let Some(id) = before_id {
        sql.push(" AND id < ").bind(Arg::Int(id));
    }
    sql.push(" ORDER BY id DESC LIMIT ").bind(Arg::Int(limit));
    let rows = sql.query().fetch_all(&mut *conn).await?;
    let mut records = rows
        .iter()
        .map(record)
        .collect::<Result<Vec<_>, DbError>>()?;
    resolve_subjects(conn, &mut records).await?;
    Ok(records)
}

fn subject_ref(v: &Value) -> Option<&str> {
    match v {
        Value::Object(m) if m.len() == 1 => m.get("subject_ref").and_then(Value::as_str),
        _ => None,
    }
}

/// Put each entry's personal values back where their reference stands, or [`ERASED`] when
/// the subject was erased.
pub async fn resolve_subjects(
    conn: &mut AnyConnection,
    records: &mut [AuditRecord],
) -> Result<(), DbError> {
    use sqlx::Row;
    let refs: Vec<String> = records
        .iter()
        .filter_map(|r| r.detail.as_object())
        .flat_map(|d| d.values().filter_map(subject_ref))
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut found: std::collections::HashMap<String, Map<String, Value>> = Default::default();
    for chunk in refs.chunks(500) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT ref, data FROM audit_subjects WHERE ref IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q.bind(r);
        }
        for row in q.fetch_all(&mut *conn).await? {
            let data: String = row.try_get("data")?;
            if let Ok(Value::Object(m)) = serde_json::from_str(&data) {
                found.insert(row.try_get("ref")?, m);
            }
        }
    }
    for record in records.iter_mut() {
        let Some(detail) = record.detail.as_object_mut() else {
            continue;
        };
        for (k, v) in detail.iter_mut() {
            let Some(reference) = subject_ref(v) else {
                continue;
            };
            let value = found.get(reference).and_then(|m| m.get(k)).cloned();
            *v = value.unwrap_or_else(|| Value::String(ERASED.into()));
        }
    }
    Ok(())
}

/// Delete the personal values of these subjects (SCIM user and guest ids); their audit
/// entries read back with [`ERASED`] from then on. How many values went.
pub async fn erase_subjects(
    conn: &mut AnyConnection,
    subject_ids: &[&str],
) -> Result<u64, DbError> {
    let mut n = 0;
    for id in subject_ids {
        n += sqlx::query("DELETE FROM audit_subjects WHERE subject_id = $1")
            .bind(*id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(n)
}
