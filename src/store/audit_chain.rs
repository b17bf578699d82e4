//! The hash chains that make the audit log tamper-evident.
//!
//! Each row written since migration 21 is a link of one of [`CHAINS`] chains: `chain`, its
//! number `seq` in it (from 1), the previous link's hash `prev_hash` ([`GENESIS`] for the
//! first) and its own `hash`, the SHA-256 of [`canonical`]. A chain's last link is recorded
//! in `audit_chain_heads`, whose rows triggers let move forward only.
//!
//! Rows are linked when they are inserted ([`link`]): one head is locked and moved per batch
//! of rows, however many rows the batch holds. On PostgreSQL, writers each take a head no one
//! else holds (`FOR UPDATE SKIP LOCKED`), so concurrent transactions, even of several
//! instances, do not queue on one chain; only when every head is taken does a writer wait,
//! on chain 0 (a writer that already holds a head finds it again, so it never waits).
//! SQLite has one writer: it always takes chain 0.

use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use super::sql::Arg;
use super::DbError;

/// How many chains (head rows) the migration creates.
pub const CHAINS: i64 = 16;

/// The previous hash of a chain's first link.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Values of a queued audit row ([`super::work::Table::Audit`]).
pub(super) const ROW_WIDTH: usize = 8;

/// The INSERT head of linked rows, and their width: the queued values, then the link.
pub(super) const LINKED_HEAD: &str = "INSERT INTO audit_log (at, actor, partner_id, action, \
     target_type, target_id, request_id, detail, chain, seq, prev_hash, hash) VALUES ";
pub(super) const LINKED_WIDTH: usize = ROW_WIDTH + 4;

/// The stored fields a link's hash covers. `id` is not among them: it is assigned by the
/// insert, after the hash is computed.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub chain: i64,
    pub seq: i64,
    pub at: i64,
    pub actor: &'a str,
    pub partner_id: Option<&'a str>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
    /// The detail exactly as stored (with subject references, never personal values).
    pub detail: &'a str,
    pub prev_hash: &'a str,
}

/// The bytes a link's hash is taken over: `gb-audit-v1` then, in this order, chain, seq,
/// at, actor, partner_id, action, target_type, target_id, request_id, detail, prev_hash,
/// each as `LEN:BYTES` (LEN the decimal byte length of its UTF-8 text, integers in
/// decimal) or `~` for NULL. Lengths make it unambiguous whatever the values hold.
pub fn canonical(f: &Fields<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + f.detail.len());
    out.extend_from_slice(b"gb-audit-v1");
    let ints = [f.chain, f.seq, f.at].map(|i| i.to_string());
    let mut push = |v: Option<&str>| match v {
        Some(s) => {
            out.extend_from_slice(s.len().to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(s.as_bytes());
        }
        None => out.push(b'~'),
    };
    for i in &ints {
        push(Some(i));
    }
    for v in [
        Some(f.actor),
        f.partner_id,
        Some(f.action),
        Some(f.target_type),
        f.target_id,
        f.request_id,
        Some(f.detail),
        Some(f.prev_hash),
    ] {
        push(v);
    }
    out
}

/// The hash of a link, lowercase hex.
pub fn hash(f: &Fields<'_>) -> String {
    hex::encode(Sha256::digest(canonical(f)))
}

/// A chain's head: its last link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub chain: i64,
    pub seq: i64,
    pub hash: String,
}

fn head_from(row: &sqlx::any::AnyRow) -> Result<Head, DbError> {
    Ok(Head {
        chain: row.try_get("chain")?,
        seq: row.try_get("seq")?,
        hash: row.try_get("hash")?,
    })
}

fn is_postgres(conn: &AnyConnection) -> bool {
    conn.backend_name().eq_ignore_ascii_case("postgresql")
}

/// Lock a head for this transaction (see the module comment for which).
async fn lock_head(conn: &mut AnyConnection) -> Result<Head, DbError> {
    if !is_postgres(conn) {
        let row =
            sqlx::query("SELECT chain, seq, hash FROM audit_chain_heads ORDER BY chain LIMIT 1")
                .fetch_one(&mut *conn)
                .await?;
        return head_from(&row);
    }
    let free = sqlx::query(
        "SELECT chain, seq, hash FROM audit_chain_heads ORDER BY chain LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let row =
        match free {
            Some(row) => row,
            None => sqlx::query(
                "SELECT chain, seq, hash FROM audit_chain_heads ORDER BY chain LIMIT 1 FOR UPDATE",
            )
            .fetch_one(&mut *conn)
            .await?,
        };
    head_from(&row)
}

fn text(arg: &Arg) -> Option<&str> {
    match arg {
        Arg::Text(s) => Some(s),
        _ => None,
    }
}

/// Link queued audit rows (each [`ROW_WIDTH`] values) to a chain, in order, moving its head
/// once: the rows come back [`LINKED_WIDTH`] wide, for [`LINKED_HEAD`]. The caller inserts
/// them in this order, in this transaction.
pub(super) async fn link(conn: &mut AnyConnection, rows: Vec<Arg>) -> Result<Vec<Arg>, DbError> {
    let mut head = lock_head(conn).await?;
    let mut out = Vec::with_capacity(rows.len() / ROW_WIDTH * LINKED_WIDTH);
    for row in rows.chunks(ROW_WIDTH) {
        let at = match row[0] {
            Arg::Int(at) => at,
            _ => 0,
        };
        let seq = head.seq + 1;
        let fields = Fields {
            chain: head.chain,
            seq,
            at,
            actor: text(&row[1]).unwrap_or_default(),
            partner_id: text(&row[2]),
            action: text(&row[3]).unwrap_or_default(),
            target_type: text(&row[4]).unwrap_or_default(),
            target_id: text(&row[5]),
            request_id: text(&row[6]),
            detail: text(&row[7]).unwrap_or_default(),
            prev_hash: &head.hash,
        };
        let hash = hash(&fields);
        out.extend(row.iter().cloned());
        out.extend([
            Arg::Int(head.chain),
            Arg::Int(seq),
            Arg::Text(std::mem::take(&mut head.hash)),
            Arg::Text(hash.clone()),
        ]);
        head.seq = seq;
        head.hash = hash;
    }
    sqlx::query("UPDATE audit_chain_heads SET seq = $1, hash = $2 WHERE chain = $3")
        .bind(head.seq)
        .bind(&head.hash)
        .bind(head.chain)
        .execute(&mut *conn)
        .await?;
    Ok(out)
}

/// Every chain's head, by chain.
pub async fn heads(conn: &mut AnyConnection) -> Result<Vec<Head>, DbError> {
    sqlx::query("SELECT chain, seq, hash FROM audit_chain_heads ORDER BY chain")
        .fetch_all(conn)
        .await?
        .iter()
        .map(head_from)
        .collect()
}

/// A stored link, as verify reads it.
#[derive(Debug, Clone)]
pub struct Link {
    pub id: i64,
    pub chain: i64,
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub partner_id: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Link {
    pub fn fields(&self) -> Fields<'_> {
        Fields {
            chain: self.chain,
            seq: self.seq,
            at: self.at,
            actor: &self.actor,
            partner_id: self.partner_id.as_deref(),
            action: &self.action,
            target_type: &self.target_type,
            target_id: self.target_id.as_deref(),
            request_id: self.request_id.as_deref(),
            detail: &self.detail,
            prev_hash: &self.prev_hash,
        }
    }
}

/// The links of `chain` after row `after_id`, in id order, at most `limit`.
pub async fn links_after(
    conn: &mut AnyConnection,
    chain: i64,
    after_id: i64,
    limit: i64,
) -> Result<Vec<Link>, DbError> {
    let rows = sqlx::query(
        "SELECT id, chain, seq, at, actor, partner_id, action, target_type, target_id, request_id, \
         detail, prev_hash, hash FROM audit_log WHERE chain = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(chain)
    .bind(after_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Link {
                id: r.try_get("id")?,
                chain: r.try_get("chain")?,
                seq: r.try_get::<Option<i64>, _>("seq")?.unwrap_or(0),
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                partner_id: r.try_get("partner_id")?,
                action: r.try_get("action")?,
                target_type: r.try_get("target_type")?,
                target_id: r.try_get("target_id")?,
                request_id: r.try_get("request_id")?,
                detail: r.try_get("detail")?,
                prev_hash: r
                    .try_get::<Option<String>, _>("prev_hash")?
                    .unwrap_or_default(),
                hash: r.try_get::<Option<String>, _>("hash")?.unwrap_or_default(),
            })
        })
        .collect()
}

/// The id of link `seq` of `chain`, if a row holds it.
pub async fn id_of_seq(
    conn: &mut AnyConnection,
    chain: i64,
    seq: i64,
) -> Result<Option<i64>, DbError> {
    sqlx::query_scalar("SELECT id FROM audit_log WHERE chain = $1 AND seq = $2 ORDER BY id LIMIT 1")
        .bind(chain)
        .bind(seq)
        .fetch_optional(conn)
        .await
}

/// The first chained row whose chain has no head (moved off its chain, or forged).
pub async fn first_without_head(conn: &mut AnyConnection) -> Result<Option<(i64, i64)>, DbError> {
    let row = sqlx::query(
        "SELECT id, chain FROM audit_log a WHERE chain IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM audit_chain_heads h WHERE h.chain = a.chain) \
         ORDER BY id LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    row.map(|r| Ok((r.try_get("id")?, r.try_get("chain")?)))
        .transpose()
}

/// Rows written before the chains existed.
pub async fn legacy_rows(conn: &mut AnyConnection) -> Result<i64, DbError> {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE chain IS NULL")
        .fetch_one(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(detail: &'a str, target_id: Option<&'a str>) -> Fields<'a> {
        Fields {
            chain: 3,
            seq: 7,
            at: 1_700_000_000_000,
            actor: "partner:acme",
            partner_id: None,
            action: "user.created",
            target_type: "user",
            target_id,
            request_id: None,
            detail,
            prev_hash: GENESIS,
        }
    }

    #[test]
    fn the_encoding_is_length_prefixed_and_tells_null_from_empty() {
        let f = fields("{}", Some(""));
        let text = String::from_utf8(canonical(&f)).unwrap();
        assert_eq!(
            text,
            format!(
                "gb-audit-v11:31:713:170000000000012:partner:acme~12:user.created4:user0:~2:{{}}64:{GENESIS}"
            )
        );
        assert_ne!(hash(&f), hash(&fields("{}", None)));
        // Moving a byte from one field to the next changes the hash.
        let a = Fields {
            actor: "ab",
            action: "c",
            ..f
        };
        let b = Fields {
            actor: "a",
            action: "bc",
            ..f
        };
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&f).len(), 64);
    }
}
