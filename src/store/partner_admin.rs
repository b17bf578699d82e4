//! What administrators see and change of partners beyond `partners.rs`: whether a partner
//! is disabled, a page of partners with their token and people counts, token hashes to
//! forget from the authentication cache.

use sqlx::{AnyConnection, Row};

use super::DbError;
use crate::domain::{Partner, PartnerSlug};

/// A partner as the admin API lists it.
#[derive(Debug, Clone)]
pub struct PartnerSummary {
    pub partner: Partner,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    /// Unrevoked tokens that have not expired.
    pub tokens: i64,
    /// SCIM users (people) the partner has sent.
    pub people: i64,
    pub guests: i64,
}

const SUMMARY: &str = "SELECT p.id, p.slug, p.name, p.created_at, p.disabled_at,
    (SELECT COUNT(*) FROM partner_tokens t WHERE t.partner_id = p.id AND t.revoked_at IS NULL
        AND (t.expires_at IS NULL OR t.expires_at > $1)) AS tokens,
    (SELECT COUNT(*) FROM scim_users u WHERE u.partner_id = p.id) AS people,
    (SELECT COUNT(*) FROM guests g WHERE g.partner_id = p.id) AS guests
    FROM partners p";

fn summary(r: &sqlx::any::AnyRow) -> Result<PartnerSummary, DbError> {
    let slug: String = r.try_get("slug")?;
    Ok(PartnerSummary {
        partner: Partner {
            id: r.try_get("id")?,
            slug: PartnerSlug::parse(&slug).map_err(|e| DbError::Decode(Box::new(e)))?,
            name: r.try_get("name")?,
        },
        created_at: r.try_get("created_at")?,
        disabled_at: r.try_get("disabled_at")?,
        tokens: r.try_get("tokens")?,
        people: r.try_get("people")?,
        guests: r.try_get("guests")?,
    })
}

/// Partners in slug order after `after` (keyset), at most `limit`.
pub async fn page(
    conn: &mut AnyConnection,
    now_ms: i64,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<PartnerSummary>, DbError> {
    let rows = sqlx::query(&format!(
        "{SUMMARY} WHERE p.slug > $2 ORDER BY p.slug LIMIT $3"
    ))
    .bind(now_ms)
    .bind(after.unwrap_or(""))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter().map(summary).collect()
}

pub async fn by_slug(
    conn: &mut AnyConnection,
    now_ms: i64,
    slug: &PartnerSlug,
) -> Result<Option<PartnerSummary>, DbError> {
    sqlx::query(&format!("{SUMMARY} WHERE p.slug = $2"))
        .bind(now_ms)
        .bind(slug.as_str())
        .fetch_optional(conn)
        .await?
        .map(|r| summary(&r))
        .transpose()
}

/// Set or clear `disabled_at`; false when the partner is already so.
pub async fn set_disabled(
    conn: &mut AnyConnection,
    partner_id: &str,
    disabled_at: Option<i64>,
) -> Result<bool, DbError> {
    let done =
        match disabled_at {
            Some(at) => {
                sqlx::query(
                    "UPDATE partners SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL",
                )
                .bind(at)
                .bind(partner_id)
                .execute(conn)
                .await?
            }
            None => sqlx::query(
                "UPDATE partners SET disabled_at = NULL WHERE id = $1 AND disabled_at IS NOT NULL",
            )
            .bind(partner_id)
            .execute(conn)
            .await?,
        };
    Ok(done.rows_affected() == 1)
}

/// The hashes of a partner's tokens (to drop them from the authentication cache).
pub async fn token_hashes(
    conn: &mut AnyConnection,
    partner_id: &str,
) -> Result<Vec<String>, DbError> {
    let rows = sqlx::query("SELECT token_hash FROM partner_tokens WHERE partner_id = $1")
        .bind(partner_id)
        .fetch_all(conn)
        .await?;
    rows.iter().map(|r| r.try_get("token_hash")).collect()
}

/// A new partner token with a name and an optional end.
pub async fn insert_named_token(
    conn: &mut AnyConnection,
    t: &NewPartnerToken<'_>,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO partner_tokens (id, partner_id, token_hash, created_at, name, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(t.id)
    .bind(t.partner_id)
    .bind(t.token_hash)
    .bind(now_ms)
    .bind(t.name)
    .bind(t.expires_at)
    .execute(conn)
    .await?;
    Ok(())
}

pub struct NewPartnerToken<'a> {
    pub id: &'a str,
    pub partner_id: &'a str,
    pub token_hash: &'a str,
    pub name: &'a str,
    pub expires_at: Option<i64>,
}

/// A partner token as the console lists it: name, end and use; never the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerTokenRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A partner's tokens, newest first.
pub async fn tokens(
    conn: &mut AnyConnection,
    partner_id: &str,
) -> Result<Vec<PartnerTokenRow>, DbError> {
    let rows = sqlx::query(
        "SELECT id, name, created_at, expires_at, last_used_at, revoked_at FROM partner_tokens
         WHERE partner_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(partner_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PartnerTokenRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                last_used_at: r.try_get("last_used_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}

/// Set a partner's display name; false when no such partner.
pub async fn set_name(
    conn: &mut AnyConnection,
    partner_id: &str,
    name: &str,
) -> Result<bool, DbError> {
    let done = sqlx::query("UPDATE partners SET name = $1 WHERE id = $2")
        .bind(name)
        .bind(partner_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
