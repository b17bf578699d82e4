//! Partner and admin bearer tokens, looked up by hash.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::{Db, DbError};
use crate::domain::{AdminPrincipal, AdminRole, Partner, PartnerSlug, PrincipalKind};

/// How stale `last_used_at` may get before a request refreshes it; saves a write per request.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// Record a token's use through the writer turn, as every write does: on the read pool it
/// raced the writer for SQLite's lock and failed after the busy timeout under a long write.
/// A use that cannot be recorded does not refuse the request; the next one records it.
async fn record_use(db: &Db, update: &'static str, id: &str, now_ms: i64) {
    let result = async {
        let mut tx = db.begin_write().await?;
        sqlx::query(update)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "recording a token's use failed");
    }
}

pub async fn insert_partner_token(
    conn: &mut AnyConnection,
    id: &str,
    partner_id: &str,
    token_hash: &str,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO partner_tokens (id, partner_id, token_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(partner_id)
    .bind(token_hash)
    .bind(now_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// A kind of bearer token: the table its tokens live in, which of them are usable and what
/// an authenticated one yields. Partner and admin tokens share the rest ([`authenticate`],
/// [`revoke`]): the look-up by hash, the use recorded at most once a granularity, the
/// revocation that hands back the hash.
pub trait TokenKind {
    /// What an authenticated token yields.
    type Holder;
    /// Whose tokens a revocation may name: a partner's id, or `()` for admin tokens.
    type Owner: ?Sized;
    /// `$1` the time of use, `$2` the token id.
    const RECORD_USE: &'static str;
    /// The unrevoked, usable token with this hash at `now_ms`, selecting `token_id`,
    /// `last_used_at` and what [`TokenKind::holder`] reads.
    fn lookup(token_hash: &str, now_ms: i64) -> AnyQuery<'_>;
    fn holder(row: &AnyRow) -> Result<Self::Holder, DbError>;
    /// Set `revoked_at` of the owner's unrevoked token `id`, returning its `token_hash`.
    fn revoke<'q>(owner: &'q Self::Owner, id: &'q str, now_ms: i64) -> AnyQuery<'q>;
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Partner (SCIM) tokens: they may expire, and yield their partner and expiry.
pub enum PartnerTokens {}

/// An authenticated partner token: its partner, and when it stops working.
#[derive(Debug, Clone)]
pub struct PartnerTokenAuth {
    pub partner: Partner,
    pub expires_at: Option<i64>,
}

impl TokenKind for PartnerTokens {
    type Holder = PartnerTokenAuth;
    type Owner = str;
    const RECORD_USE: &'static str = "UPDATE partner_tokens SET last_used_at = $1 WHERE id = $2";

    /// A disabled partner's tokens, and tokens past their end, are not usable.
    fn lookup(token_hash: &str, now_ms: i64) -> AnyQuery<'_> {
        sqlx::query(
            "SELECT t.id AS token_id, p.id, p.slug, p.name, t.last_used_at, t.expires_at
             FROM partner_tokens t JOIN partners p ON p.id = t.partner_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND p.disabled_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now_ms)
    }

    fn holder(row: &AnyRow) -> Result<PartnerTokenAuth, DbError> {
        let slug: String = row.try_get("slug")?;
        Ok(PartnerTokenAuth {
            partner: Partner {
                id: row.try_get("id")?,
                slug: PartnerSlug::parse(&slug).map_err(|e| DbError::Decode(Box::new(e)))?,
                name: row.try_get("name")?,
            },
            expires_at: row.try_get("expires_at")?,
        })
    }

    fn revoke<'q>(partner_id: &'q str, id: &'q str, now_ms: i64) -> AnyQuery<'q> {
        sqlx::query(
            "UPDATE partner_tokens SET revoked_at = $1
             WHERE partner_id = $2 AND id = $3 AND revoked_at IS NULL RETURNING token_hash",
        )
        .bind(now_ms)
        .bind(partner_id)
        .bind(id)
    }
}

/// Admin API tokens: they may expire, and yield their id and expiry.
pub enum AdminTokens {}

impl TokenKind for AdminTokens {
    type Holder = AdminTokenAuth;
    type Owner = ();
    const RECORD_USE: &'static str = "UPDATE admin_tokens SET last_used_at = $1 WHERE id = $2";

    fn lookup(token_hash: &str, now_ms: i64) -> AnyQuery<'_> {
        sqlx::query(
            "SELECT id AS token_id, last_used_at, expires_at, role, partner_id, sponsor_email
             FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now_ms)
    }

    fn holder(row: &AnyRow) -> Result<AdminTokenAuth, DbError> {
        let id: String = row.try_get("token_id")?;
        Ok(AdminTokenAuth {
            principal: principal(row, PrincipalKind::Token, &id)?,
            id,
            expires_at: row.try_get("expires_at")?,
        })
    }

    fn revoke<'q>(_: &'q (), id: &'q str, now_ms: i64) -> AnyQuery<'q> {
        sqlx::query(
            "UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL
             RETURNING token_hash",
        )
        .bind(now_ms)
        .bind(id)
    }
}

/// The principal stored in a row's `role`, `partner_id` and `sponsor_email` (admin tokens
/// and logins share the columns). A row whose scope does not fit its role is refused as
/// corrupt rather than read with more power than it was given.
pub(crate) fn principal(
    row: &AnyRow,
    kind: PrincipalKind,
    id: &str,
) -> Result<AdminPrincipal, DbError> {
    let corrupt = |m: String| DbError::Decode(m.into());
    let role: String = row.try_get("role")?;
    let role: AdminRole = role
        .parse()
        .map_err(|e: crate::domain::admin_role::UnknownRole| corrupt(e.to_string()))?;
    let scope = AdminPrincipal::scope_for(
        role,
        row.try_get("partner_id")?,
        row.try_get("sponsor_email")?,
    )
    .ok_or_else(|| {
        corrupt(format!(
            "admin principal {id}: scope does not fit role {role}"
        ))
    })?;
    Ok(AdminPrincipal {
        kind,
        id: id.to_string(),
        role,
        scope,
    })
}

/// The holder of the usable token of kind `K` with this hash; records the use.
pub async fn authenticate<K: TokenKind>(
    db: &Db,
    token_hash: &str,
    now_ms: i64,
) -> Result<Option<K::Holder>, DbError> {
    let row = K::lookup(token_hash, now_ms)
        .fetch_optional(db.pool())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let last_used: Option<i64> = row.try_get("last_used_at")?;
    if last_used.is_none_or(|t| now_ms - t >= LAST_USED_GRANULARITY_MS) {
        let token_id: String = row.try_get("token_id")?;
        record_use(db, K::RECORD_USE, &token_id, now_ms).await;
    }
    K::holder(&row).map(Some)
}

/// Revoke the owner's unrevoked token of kind `K`; its hash (to drop it from caches), or None
/// when the owner has no such unrevoked token.
pub async fn revoke<K: TokenKind>(
    conn: &mut AnyConnection,
    owner: &K::Owner,
    id: &str,
    now_ms: i64,
) -> Result<Option<String>, DbError> {
    K::revoke(owner, id, now_ms)
        .fetch_optional(conn)
        .await?
        .map(|row| row.try_get("token_hash"))
        .transpose()
}

/// A new admin token: who or what holds it, and when it stops working (None: never).
pub struct NewAdminToken<'a> {
    pub id: &'a str,
    pub token_hash: &'a str,
    pub name: &'a str,
    pub expires_at: Option<i64>,
    pub role: AdminRole,
    pub partner_id: Option<&'a str>,
    pub sponsor_email: Option<&'a str>,
}

pub async fn insert_admin_token(
    conn: &mut AnyConnection,
    token: &NewAdminToken<'_>,
    now_ms: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO admin_tokens (id, token_hash, name, expires_at, created_at, role, partner_id, sponsor_email)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(token.id)
    .bind(token.token_hash)
    .bind(token.name)
    .bind(token.expires_at)
    .bind(now_ms)
    .bind(token.role.as_str())
    .bind(token.partner_id)
    .bind(token.sponsor_email)
    .execute(conn)
    .await?;
    Ok(())
}

/// An admin token that authenticated: its id, when it expires and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTokenAuth {
    pub id: String,
    pub expires_at: Option<i64>,
    pub principal: AdminPrincipal,
}

/// An admin token as an admin sees it: never the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTokenInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub role: String,
    pub partner_id: Option<String>,
}

/// Whether any admin token was ever issued (`serve` tells a fresh install how to begin).
pub async fn any_admin_token(conn: &mut AnyConnection) -> Result<bool, DbError> {
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM admin_tokens WHERE revoked_at IS NULL")
        .fetch_one(conn)
        .await?
        .try_get(0)?;
    Ok(n > 0)
}

/// Every admin token, oldest first.
pub async fn admin_tokens(conn: &mut AnyConnection) -> Result<Vec<AdminTokenInfo>, DbError> {
    let rows = sqlx::query(
        "SELECT id, name, created_at, expires_at, last_used_at, revoked_at, role, partner_id
         FROM admin_tokens ORDER BY created_at, id",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AdminTokenInfo {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                last_used_at: r.try_get("last_used_at")?,
                revoked_at: r.try_get("revoked_at")?,
                role: r.try_get("role")?,
                partner_id: r.try_get("partner_id")?,
            })
        })
        .collect()
}

/// A partner token as an admin sees it: never the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A partner's tokens, oldest first.
pub async fn partner_tokens(
    conn: &mut AnyConnection,
    partner_id: &str,
) -> Result<Vec<TokenInfo>, DbError> {
    let rows = sqlx::query(
        "SELECT id, created_at, last_used_at, revoked_at FROM partner_tokens
         WHERE partner_id = $1 ORDER BY created_at, id",
    )
    .bind(partner_id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TokenInfo {
                id: r.try_get("id")?,
                created_at: r.try_get("created_at")?,
                last_used_at: r.try_get("last_used_at")?,
                revoked_at: r.try_get("revoked_at")?,
            })
        })
        .collect()
}
