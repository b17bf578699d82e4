//! Authenticating and revoking bearer tokens of either kind (partner or admin) in one shape:
//! the cache in front of the look-up, and revocation with its audit entry and cache forget.

use serde_json::Value;

use super::{Actor, Deps, ServiceError};
use crate::auth::cache::TokenCache;
use crate::auth::tokens;
use crate::domain::{AdminPrincipal, Partner};
use crate::store::audit::{self, AuditEntry};
use crate::store::tokens::{
    AdminTokenAuth, AdminTokens, PartnerTokenAuth, PartnerTokens, TokenKind,
};

/// What the services add to a kind of token: the cache of its authentications and the names
/// its revocation is audited under.
pub(crate) trait CachedKind: TokenKind {
    /// What a caller learns of an authenticated token (and the cache holds).
    type Answer: Clone;
    const REVOKED_ACTION: &'static str;
    const TARGET_TYPE: &'static str;
    fn cache(deps: &Deps) -> &TokenCache<Self::Answer>;
    /// The answer for a holder, and whether it may be cached at `now_ms`.
    fn answer(holder: Self::Holder, now_ms: i64) -> (Self::Answer, bool);
}

impl CachedKind for PartnerTokens {
    type Answer = Partner;
    const REVOKED_ACTION: &'static str = "partner.token_revoked";
    const TARGET_TYPE: &'static str = "partner_token";

    fn cache(deps: &Deps) -> &TokenCache<Partner> {
        &deps.auth_cache.partners
    }

    /// Like admin tokens, one that expires within the cache's TTL is not cached.
    fn answer(auth: PartnerTokenAuth, now_ms: i64) -> (Partner, bool) {
        let cacheable = auth
            .expires_at
            .is_none_or(|at| at > now_ms + crate::auth::cache::TOKEN_CACHE_TTL_MS);
        (auth.partner, cacheable)
    }
}

impl CachedKind for AdminTokens {
    type Answer = AdminPrincipal;
    const REVOKED_ACTION: &'static str = "admin.token_revoked";
    const TARGET_TYPE: &'static str = "admin_token";

    fn cache(deps: &Deps) -> &TokenCache<AdminPrincipal> {
        &deps.auth_cache.admins
    }

    /// A token that expires within the cache's TTL is not cached, so that it is refused from
    /// the moment it expires, on every instance.
    fn answer(auth: AdminTokenAuth, now_ms: i64) -> (AdminPrincipal, bool) {
        let cacheable = auth
            .expires_at
            .is_none_or(|at| at > now_ms + crate::auth::cache::TOKEN_CACHE_TTL_MS);
        (auth.principal, cacheable)
    }
}

/// What a bearer token of kind `K` answers, if it is valid. A token this process has
/// authenticated within the cache's TTL needs no SQL (see `auth::cache`); so `last_used_at`
/// is refreshed when the entry is next looked up in the database, at most a TTL later than
/// without the cache.
pub(crate) async fn authenticate<K: CachedKind>(
    deps: &Deps,
    secret: &str,
) -> Result<Option<K::Answer>, ServiceError> {
    let hash = tokens::hash(secret);
    let now = deps.now_ms();
    let cache = K::cache(deps);
    if let Some(answer) = cache.get(&hash, now) {
        return Ok(Some(answer));
    }
    let generation = cache.generation();
    let Some(holder) = crate::store::tokens::authenticate::<K>(&deps.db, &hash, now).await? else {
        return Ok(None);
    };
    let (answer, cacheable) = K::answer(holder, now);
    if cacheable {
        cache.insert(&hash, answer.clone(), now, generation);
    }
    Ok(Some(answer))
}

/// Whose token a revocation names, as the audit log records it.
pub(crate) struct RevokeScope<'a, K: TokenKind + ?Sized> {
    pub owner: &'a K::Owner,
    pub partner_id: Option<&'a str>,
    pub detail: Value,
}

/// Revoke the owner's token `token_id` of kind `K`, audited in the same transaction. This
/// process stops accepting it at once; other instances within
/// `auth::cache::TOKEN_CACHE_TTL_MS`. NotFound when the owner has no such unrevoked token.
pub(crate) async fn revoke<K: CachedKind>(
    deps: &Deps,
    actor: &Actor,
    scope: RevokeScope<'_, K>,
    token_id: &str,
) -> Result<(), ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let hash = crate::store::tokens::revoke::<K>(&mut tx, scope.owner, token_id, now)
        .await?
        .ok_or(ServiceError::NotFound)?;
    audit::append(
        &mut tx,
        &AuditEntry {
            actor: &actor.label,
            partner_id: scope.partner_id,
            action: K::REVOKED_ACTION,
            target_type: K::TARGET_TYPE,
            target_id: Some(token_id),
            request_id: actor.request_id.as_deref(),
            detail: scope.detail,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    // After the commit, so that no look-up can read the token as valid after the forget.
    K::cache(deps).forget(&hash);
    Ok(())
}
