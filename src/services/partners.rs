//! Partner organisations and their credentials.

use serde_json::json;

use super::bearer_tokens::{self, RevokeScope};
use super::{Actor, Deps, ServiceError};
use crate::auth::tokens;
use crate::domain::{Partner, PartnerSlug};
use crate::store::audit::{self, AuditEntry};
use crate::store::tokens::{AdminTokens, PartnerTokens};
use crate::store::{self, is_unique_violation};

/// Register a partner organisation.
#[tracing::instrument(skip_all, fields(slug = %slug), err(level = "info"))]
pub async fn add_partner(
    deps: &Deps,
    actor: &Actor,
    slug: &PartnerSlug,
    name: &str,
) -> Result<Partner, ServiceError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ServiceError::Conflict(
            "partner name must be 1-200 characters".into(),
        ));
    }
    let partner = Partner {
        id: uuid::Uuid::new_v4().to_string(),
        slug: slug.clone(),
        name: name.to_string(),
    };
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    if let Err(e) = store::partners::insert(&mut tx, &partner, now).await {
        return Err(if is_unique_violation(&e) {
            ServiceError::Conflict(format!("partner {slug} already exists"))
        } else {
            e.into()
        });
    }
    audit::append(
        &mut tx,
        &AuditEntry {
            actor: &actor.label,
            partner_id: Some(&partner.id),
            action: "partner.created",
            target_type: "partner",
            target_id: Some(&partner.id),
            request_id: actor.request_id.as_deref(),
            detail: json!({"slug": slug.as_str(), "name": partner.name}),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(partner)
}

pub async fn find_partner(deps: &Deps, slug: &PartnerSlug) -> Result<Partner, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    store::partners::find_by_slug(&mut conn, slug)
        .await?
        .ok_or(ServiceError::NotFound)
}

/// Issue a SCIM bearer token for a partner; the secret is returned once and stored hashed.
#[tracing::instrument(skip_all, fields(slug = %slug), err(level = "info"))]
pub async fn issue_partner_token(
    deps: &Deps,
    actor: &Actor,
    slug: &PartnerSlug,
) -> Result<String, ServiceError> {
    Ok(issue_partner_token_with_id(deps, actor, slug).await?.1)
}

/// [`issue_partner_token`], also returning the token's id (what revocation names): (id, secret).
pub async fn issue_partner_token_with_id(
    deps: &Deps,
    actor: &Actor,
    slug: &PartnerSlug,
) -> Result<(String, String), ServiceError> {
    let partner = find_partner(deps, slug).await?;
    let token = tokens::generate(tokens::PARTNER_PREFIX);
    let token_id = uuid::Uuid::new_v4().to_string();
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    store::tokens::insert_partner_token(&mut tx, &token_id, &partner.id, &token.hash, now).await?;
    audit::append(
        &mut tx,
        &AuditEntry {
            actor: &actor.label,
            partner_id: Some(&partner.id),
            action: "partner.token_issued",
            target_type: "partner_token",
            target_id: Some(&token_id),
            request_id: actor.request_id.as_deref(),
            detail: json!({"partner": slug.as_str()}),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((token_id, token.secret))
}

/// Issue an admin API bearer token named "unnamed" that never expires (what `admin token`
/// without options always did).
pub async fn issue_admin_token(deps: &Deps, actor: &Actor) -> Result<String, ServiceError> {
    let issued = issue_named_admin_token(deps, actor, DEFAULT_ADMIN_TOKEN_NAME, None).await?;
    Ok(issued.secret)
}

/// The name of an admin token issued without one.
pub const DEFAULT_ADMIN_TOKEN_NAME: &str = "unnamed";

/// Longest admin token name, and the longest lifetime one may be given.
const MAX_ADMIN_TOKEN_NAME: usize = 100;
pub const MAX_ADMIN_TOKEN_DAYS: u32 = 3650;

/// A newly issued admin token; the secret is shown once and stored only hashed.
#[derive(Debug, Clone)]
pub struct IssuedAdminToken {
    pub id: String,
    pub name: String,
    pub expires_at: Option<i64>,
    pub secret: String,
}

/// Issue an admin API bearer token with a name and, if given, a lifetime in days.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn issue_named_admin_token(
    deps: &Deps,
    actor: &Actor,
    name: &str,
    expires_days: Option<u32>,
) -> Result<IssuedAdminToken, ServiceError> {
    let grant = super::admin_auth::RoleGrant::admin();
    issue_admin_token_with_role(deps, actor, name, expires_days, &grant).await
}

/// Issue an admin API bearer token with a name, a lifetime and a role (with its partner or
/// sponsor scope).
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn issue_admin_token_with_role(
    deps: &Deps,
    actor: &Actor,
    name: &str,
    expires_days: Option<u32>,
    grant: &super::admin_auth::RoleGrant,
) -> Result<IssuedAdminToken, ServiceError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_ADMIN_TOKEN_NAME
        || name.chars().any(char::is_control)
    {
        return Err(crate::scim_core::error::ScimError::invalid_value(format!(
            "an admin token name is 1 to {MAX_ADMIN_TOKEN_NAME} characters without control characters"
        ))
        .into());
    }
    if expires_days.is_some_and(|d| d == 0 || d > MAX_ADMIN_TOKEN_DAYS) {
        return Err(crate::scim_core::error::ScimError::invalid_value(format!(
            "an admin token expires after 1 to {MAX_ADMIN_TOKEN_DAYS} days"
        ))
        .into());
    }
    let resolved = super::admin_auth::resolve_grant(deps, grant).await?;
    let token = tokens::generate(tokens::ADMIN_PREFIX);
    let token_id = uuid::Uuid::new_v4().to_string();
    let now = deps.now_ms();
    let expires_at = expires_days.map(|d| now + i64::from(d) * 86_400_000);
    let mut tx = deps.db.begin_write().await?;
    let new = store::tokens::NewAdminToken {
        id: &token_id,
        token_hash: &token.hash,
        name,
        expires_at,
        role: resolved.role,
        partner_id: resolved.partner_id.as_deref(),
        sponsor_email: resolved.sponsor_email.as_deref(),
    };
    store::tokens::insert_admin_token(&mut tx, &new, now).await?;
    audit::append(
        &mut tx,
        &AuditEntry {
            actor: &actor.label,
            partner_id: resolved.partner_id.as_deref(),
            action: "admin.token_issued",
            target_type: "admin_token",
            target_id: Some(&token_id),
            request_id: actor.request_id.as_deref(),
            detail: json!({"name": name, "expires_at": expires_at, "role": resolved.role.as_str()}),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedAdminToken {
        id: token_id,
        name: name.to_string(),
        expires_at,
        secret: token.secret,
    })
}

/// Every partner, for listings.
pub async fn list_partners(deps: &Deps) -> Result<Vec<Partner>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(store::partners::list(&mut conn).await?)
}

/// Every admin token (ids, names and use, never secrets), oldest first.
pub async fn admin_tokens(deps: &Deps) -> Result<Vec<store::tokens::AdminTokenInfo>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(store::tokens::admin_tokens(&mut conn).await?)
}

/// The partner a SCIM bearer token belongs to, if it is valid (cached: see
/// [`bearer_tokens::authenticate`]).
pub async fn authenticate_partner(
    deps: &Deps,
    secret: &str,
) -> Result<Option<Partner>, ServiceError> {
    bearer_tokens::authenticate::<PartnerTokens>(deps, secret).await
}

/// The admin token id for a bearer token, if it is valid; cached like partner tokens.
pub async fn authenticate_admin(deps: &Deps, secret: &str) -> Result<Option<String>, ServiceError> {
    Ok(authenticate_admin_principal(deps, secret)
        .await?
        .map(|p| p.id))
}

/// The principal (token id, role, scope) of a valid admin bearer token; cached.
pub async fn authenticate_admin_principal(
    deps: &Deps,
    secret: &str,
) -> Result<Option<crate::domain::AdminPrincipal>, ServiceError> {
    bearer_tokens::authenticate::<AdminTokens>(deps, secret).await
}

/// A partner's SCIM tokens (ids and use, never secrets), oldest first.
pub async fn partner_tokens(
    deps: &Deps,
    slug: &PartnerSlug,
) -> Result<Vec<store::tokens::TokenInfo>, ServiceError> {
    let partner = find_partner(deps, slug).await?;
    let mut conn = deps.db.pool().acquire().await?;
    Ok(store::tokens::partner_tokens(&mut conn, &partner.id).await?)
}

/// Revoke a partner's SCIM token by id (see [`bearer_tokens::revoke`]). NotFound when the
/// partner has no such unrevoked token.
#[tracing::instrument(skip_all, fields(slug = %slug, token_id = %token_id), err(level = "info"))]
pub async fn revoke_partner_token(
    deps: &Deps,
    actor: &Actor,
    slug: &PartnerSlug,
    token_id: &str,
) -> Result<(), ServiceError> {
    let partner = find_partner(deps, slug).await?;
    let scope = RevokeScope::<PartnerTokens> {
        owner: &partner.id,
        partner_id: Some(&partner.id),
        detail: json!({"partner": slug.as_str()}),
    };
    bearer_tokens::revoke(deps, actor, scope, token_id).await
}

/// Revoke an admin API token by id (an admin may revoke their own). NotFound when there is
/// no such unrevoked token.
#[tracing::instrument(skip_all, fields(token_id = %token_id), err(level = "info"))]
pub async fn revoke_admin_token(
    deps: &Deps,
    actor: &Actor,
    token_id: &str,
) -> Result<(), ServiceError> {
    let scope = RevokeScope::<AdminTokens> {
        owner: &(),
        partner_id: None,
        detail: json!({}),
    };
    bearer_tokens::revoke(deps, actor, scope, token_id).await
}
