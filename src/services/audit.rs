//! The audit log's use cases: checking its hash chains (`guestbridge audit verify`,
//! `GET /api/v1/audit/verify`), and querying and exporting it (`GET /api/v1/audit`,
//! `GET /api/v1/audit/export.csv`).

use serde::Serialize;

use super::{Deps, ServiceError};
use crate::domain::PartnerSlug;
use crate::scim_core::error::ScimError;
use crate::store::audit::{self, AuditFilter, AuditRecord};
use crate::store::audit_chain::{self, Head, Link, GENESIS};
use crate::store::Db;

/// Links read per statement while verifying: the walk holds one page, never the table.
const VERIFY_PAGE: i64 = 2000;

/// Largest page of the query API (and the export's page size).
pub const MAX_LIMIT: i64 = 500;
pub const DEFAULT_LIMIT: i64 = 100;

/// What is wrong with a chain, at its first bad row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Breach {
    /// The row's contents (or its link fields) do not hash to its stored hash, or its
    /// previous hash is not the hash of the link before it.
    Edited,
    /// Links are missing before this row: deleted.
    Missing,
    /// The row holds a link that belongs elsewhere in the chain.
    Reordered,
    /// The chain's recorded head is not its last row: rows at its end were deleted, or
    /// the head was changed.
    HeadMismatch,
}

impl Breach {
    pub fn as_str(self) -> &'static str {
        match self {
            Breach::Edited => "edited",
            Breach::Missing => "missing/deleted",
            Breach::Reordered => "reordered",
            Breach::HeadMismatch => "head mismatch",
        }
    }
}

/// The first bad row found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub chain: i64,
    /// The audit row's id (for a head mismatch: the chain's last row, if any).
    pub id: Option<i64>,
    pub seq: Option<i64>,
    pub kind: Breach,
    pub reason: String,
}

/// The outcome of a verify run.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    /// Chained rows checked.
    pub rows: i64,
    /// Chains that hold rows.
    pub chains: i64,
    /// Rows written before chaining, not checked.
    pub legacy: i64,
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// The line `guestbridge audit verify` prints.
    pub fn summary(&self) -> String {
        match &self.problem {
            None => format!(
                "audit verify: {} rows in {} chains ok ({} legacy rows unchained)",
                self.rows, self.chains, self.legacy
            ),
            Some(p) => format!(
                "audit verify: FAILED at {} (chain {}{}): {}: {}",
                p.id.map_or("the head".to_string(), |id| format!("row {id}")),
                p.chain,
                p.seq.map_or(String::new(), |s| format!(", seq {s}")),
                p.kind.as_str(),
                p.reason
            ),
        }
    }
}

/// Walk every chain in id order, a page at a time, recomputing each link's hash and
/// checking sequence continuity, and that the head is the chain's last row. Rows appended
/// while it runs (past the heads read at the start) are left for the next run.
pub async fn verify(db: &Db) -> Result<VerifyReport, ServiceError> {
    let mut conn = db.pool().acquire().await?;
    let heads = audit_chain::heads(&mut conn).await?;
    let legacy = audit_chain::legacy_rows(&mut conn).await?;
    let mut report = VerifyReport {
        ok: true,
        rows: 0,
        chains: 0,
        legacy,
        problem: None,
    };
    if let Some((id, chain)) = audit_chain::first_without_head(&mut conn).await? {
        report.ok = false;
        report.problem = Some(Problem {
            chain,
            id: Some(id),
            seq: None,
            kind: Breach::Edited,
            reason: format!("its chain {chain} has no head"),
        });
        return Ok(report);
    }
    for head in heads {
        let (rows, problem) = verify_chain(&mut conn, &head).await?;
        report.rows += rows;
        if rows > 0 || head.seq > 0 {
            report.chains += 1;
        }
        if problem.is_some() {
            report.ok = false;
            report.problem = problem;
            break;
        }
    }
    Ok(report)
}

/// How many links of the chain were checked, and its first problem.
async fn verify_chain(
    conn: &mut sqlx::AnyConnection,
    head: &Head,
) -> Result<(i64, Option<Problem>), ServiceError> {
    let problem = |link: &Link, kind, reason: String| Problem {
        chain: head.chain,
        id: Some(link.id),
        seq: Some(link.seq),
        kind,
        reason,
    };
    let mut expected = 1;
    let mut prev = GENESIS.to_string();
    let mut last_id = None;
    let mut after = 0;
    'pages: loop {
        let links = audit_chain::links_after(conn, head.chain, after, VERIFY_PAGE).await?;
        let Some(end) = links.last() else { break };
        after = end.id;
        for link in &links {
            if link.seq > head.seq && link.seq >= expected {
                // Appended after the head was read.
                break 'pages;
            }
            if link.seq != expected {
                let elsewhere = audit_chain::id_of_seq(conn, head.chain, expected).await?;
                let p = if link.seq > expected && elsewhere.is_none() {
                    problem(
                        link,
                        Breach::Missing,
                        format!(
                            "links {expected}..{} are missing before this row",
                            link.seq - 1
                        ),
                    )
                } else {
                    problem(
                        link,
                        Breach::Reordered,
                        format!("holds link {} where link {expected} belongs", link.seq),
                    )
                };
                return Ok((expected - 1, Some(p)));
            }
            if link.prev_hash != prev {
                let reason = "its previous hash is not the hash of the link before it".into();
                return Ok((expected - 1, Some(problem(link, Breach::Edited, reason))));
            }
            if audit_chain::hash(&link.fields()) != link.hash {
                let reason = "its contents do not match its hash".into();
                return Ok((expected - 1, Some(problem(link, Breach::Edited, reason))));
            }
            prev.clone_from(&link.hash);
            last_id = Some(link.id);
            expected += 1;
        }
    }
    let checked = expected - 1;
    if checked != head.seq || prev != head.hash {
        let reason = if checked != head.seq {
            format!(
                "the head is link {}, the chain ends at link {checked}",
                head.seq
            )
        } else {
            "the head's hash is not the last link's".to_string()
        };
        let p = Problem {
            chain: head.chain,
            id: last_id,
            seq: Some(checked),
            kind: Breach::HeadMismatch,
            reason,
        };
        return Ok((checked, Some(p)));
    }
    Ok((checked, None))
}

/// A query of the log as the API receives it (all optional).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// The partner's slug.
    pub partner: Option<String>,
    /// RFC 3339; entries at or after it.
    pub since: Option<String>,
    /// RFC 3339; entries before it.
    pub until: Option<String>,
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn invalid(detail: String) -> ServiceError {
    ServiceError::Invalid(ScimError::invalid_value(detail))
}

fn instant(name: &str, value: &str) -> Result<i64, ServiceError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            invalid(format!(
                "{name} must be an RFC 3339 instant, such as 2026-11-26T12:00:00Z"
            ))
        })
}

/// A checked query: the store's filter, the cursor and the page size.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub filter: AuditFilter,
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Check a query (bad values are refused, naming the parameter) and resolve the partner.
pub async fn resolve(deps: &Deps, q: &AuditQuery) -> Result<Resolved, ServiceError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let before_id = match &q.cursor {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| invalid("cursor is not one this API returned".into()))?,
        ),
    };
    let partner_id = match &q.partner {
        None => None,
        Some(slug) => {
            let slug = PartnerSlug::parse(slug)
                .map_err(|_| invalid("partner is not a valid partner slug".into()))?;
            match super::partners::find_partner(deps, &slug).await {
                Ok(p) => Some(p.id),
                Err(ServiceError::NotFound) => return Err(invalid("no such partner".into())),
                Err(e) => return Err(e),
            }
        }
    };
    let since_ms = q
        .since
        .as_deref()
        .map(|v| instant("since", v))
        .transpose()?;
    let until_ms = q
        .until
        .as_deref()
        .map(|v| instant("until", v))
        .transpose()?;
    let filter = AuditFilter {
        actor: q.actor.clone(),
        action: q.action.clone(),
        target_type: q.target_type.clone(),
        target_id: q.target_id.clone(),
        partner_id,
        since_ms,
        until_ms,
    };
    Ok(Resolved {
        filter,
        before_id,
        limit,
    })
}

/// One page of entries, newest first, and the cursor of the next page (none at the end).
pub async fn page(
    db: &Db,
    query: &Resolved,
) -> Result<(Vec<AuditRecord>, Option<String>), ServiceError> {
    let mut conn = db.pool().acquire().await?;
    let records = audit::page(&mut conn, &query.filter, query.before_id, query.limit).await?;
    let next = (records.len() as i64 == query.limit)
        .then(|| records.last().map(|r| r.id.to_string()))
        .flatten();
    Ok((records, next))
}

/// The export's columns.
pub const CSV_HEADER: &str =
    "id,at,actor,partner_id,action,target_type,target_id,request_id,detail\r\n";

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break. A value a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a leading `'`.
fn csv_field(out: &mut String, value: &str) {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quoted = formula || value.contains([',', '"', '\n', '\r']);
    if quoted {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    if quoted {
        out.push('"');
    }
}

/// The CSV lines of these entries.
pub fn csv_lines(records: &[AuditRecord]) -> String {
    let mut out = String::new();
    for r in records {
        let at = crate::clock::to_rfc3339(crate::clock::from_millis(r.at));
        let detail = r.detail.to_string();
        let fields = [
            r.id.to_string(),
            at,
            r.actor.clone(),
            r.partner_id.clone().unwrap_or_default(),
            r.action.clone(),
            r.target_type.clone(),
            r.target_id.clone().unwrap_or_default(),
            r.request_id.clone().unwrap_or_default(),
            detail,
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            csv_field(&mut out, f);
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        let mut s = String::new();
        for v in ["plain", "a,b", "say \"hi\"", "two\nlines", "=SUM(A1)", ""] {
            csv_field(&mut s, v);
            s.push('|');
        }
        assert_eq!(
            s,
            "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"|\"'=SUM(A1)\"||"
        );
    }
}
