//! Partners as administrators manage them: pages of partners with their policy and counts,
//! disabling and enabling a partner (its SCIM tokens refused meanwhile), and partner tokens
//! with a name and an optional end.

use serde_json::json;

use super::{Actor, Deps, ServiceError};
use crate::auth::tokens;
use crate::domain::{Partner, PartnerSlug};
use crate::scim_core::error::ScimError;
use crate::store::audit::{self, AuditEntry};
pub use crate::store::partner_admin::PartnerSummary;
use crate::store::partner_admin::{self as store, NewPartnerToken};

/// Longest partner token name, and the longest lifetime one may be given.
const MAX_TOKEN_NAME: usize = 100;
pub const MAX_TOKEN_DAYS: u32 = 3650;

/// A page of partners in slug order after `after`.
pub async fn page(
    deps: &Deps,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<PartnerSummary>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(store::page(&mut conn, deps.now_ms(), after, limit).await?)
}

pub async fn get(deps: &Deps, slug: &PartnerSlug) -> Result<PartnerSummary, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    store::by_slug(&mut conn, deps.now_ms(), slug)
        .await?
        .ok_or(ServiceError::NotFound)
}

/// Disable (`true`) or enable a partner, audited. A disabled partner's tokens are refused at
/// once on this instance and within the authentication cache's TTL on others.
pub async fn set_disabled(
    deps: &Deps,
    actor: &Actor,
    slug: &PartnerSlug,
    disabled: bool,
) -> Result<PartnerSummary, ServiceError> {
    let partner = super::partners::find_partner(deps, slug).await?;
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let changed = store::set_disabled(&mut tx, &partner.id, disabled.then_some(now)).await?;
    if !changed {
        return Err(ServiceError::Conflict(format!(
            "partner {slug} is already {}",
            if disabled { "disabled" } else { "enabled" }
        )));
    }
    let hashes = store::token_hashes(&mut tx, &partner.id).await?;
    audit::append(
        &mut tx,
        &AuditEntry {
            actor: &actor.label,
            partner_id: Some(&partner.id),
            action: if disabled {
                "partner.disabled"
            } else {
                "partner.enabled"
            },
            target_type: "partner",
            target_id: Some(&partner.id),
            request_id: actor.request_id.as_deref(),
            detail: json!({"slug": slug.as_str()}),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    // After the commit, so that no look-up reads a token as valid after the forget.
    if disabled {
        for hash in &hashes {
            deps.auth_cache.partners.forget(hash);
        }
    }
    get(deps, slug).await
}

/// A newly issued partner token; the secret is shown once and stored only hashed.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub id: String,
    pub name: String,
    pub expires_at: Option<i64>,
    pub secret: String,
}

/// Issue a SCIM token for a partner with a name and, if given, a lifetime in days.
pub async fn issue_token(
    deps: &Deps,
    actor: &Actor,
    slug: &PartnerSlug,
    name: Option<&str>,
    expires_days: Option<u32>,
) -> Result<IssuedToken, ServiceError> {
    let name = name.map(str::trim).unwrap_or("unnamed");
    if name.is_empty()
        || name.chars().count() > MAX_TOKEN_NAME
        || name.chars().any(char::is_control)
    {
        return Err(ScimError::invalid_value(format!(
            "name is 1 to {MAX_TOKEN_NAME} characters without control characters"
        ))
        .into());
    }
    if expires_days.is_some_and(|d| d == 0 || d > MAX_TOKEN_DAYS) {
        return Err(
            ScimError::invalid_value(format!("expires_days is 1 to {MAX_TOKEN_DAYS}")).into(),
        );
    }
    let partner: Partner = super::partners::find_partner(deps, slug).await?;
    let token = tokens::generate(tokens::PARTNER_PREFIX);
    let id = uuid::Uuid::new_v4().to_string();
    let now = deps.now_ms();
    let expires_at = expires_days.map(|d| now + i64::from(d) * 86_400_000);
    let mut tx = deps.db.begin_write().await?;
    let new = NewPartnerToken {
        id: &id,
        partner_id: &partner.id,
        token_hash: &token.hash,
        name,
        expires_at,
    };
    store::insert_named_token(&mut tx, &new, now).await?;
    audit::append(
        &mut tx,
        &AuditEntry {
            actor: &actor.label,
            partner_id: Some(&partner.id),
            action: "partner.token_issued",
            target_type: "partner_token",
            target_id: Some(&id),
            request_id: actor.request_id.as_deref(),
            detail: json!({"partner": slug.as_str(), "name": name, "expires_at": expires_at}),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(IssuedToken {
        id,
        name: name.to_string(),
        expires_at,
        secret: token.secret,
    })
}

/// A partner's tokens with their names and ends, newest first (never a secret).
pub async fn tokens(
    deps: &Deps,
    partner_id: &str,
) -> Result<Vec<store::PartnerTokenRow>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(store::tokens(&mut conn, partner_id).await?)
}

/// Longest partner name.
const MAX_PARTNER_NAME: usize = 200;

/// A partner's display name, trimmed: 1 to 200 characters without control characters.
pub fn partner_name(name: &str) -> Result<&str, ServiceError> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_PARTNER_NAME
        || name.chars().any(char::is_control)
    {
        return Err(ServiceError::Invalid(ScimError::invalid_value(format!(
            "name must be 1 to {MAX_PARTNER_NAME} characters without control characters"
        ))));
    }
    Ok(name)
}

/// Rename a partner (the name invitations and the console show), audited with the old and
/// new name; the same name again changes nothing and writes no entry.
pub async fn rename(
    deps: &Deps,
    actor: &Actor,
    slug: &PartnerSlug,
    name: &str,
) -> Result<PartnerSummary, ServiceError> {
    let name = partner_name(name)?;
    let partner = super::partners::find_partner(deps, slug).await?;
    if partner.name == name {
        return get(deps, slug).await;
    }
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    if !store::set_name(&mut tx, &partner.id, name).await? {
        return Err(ServiceError::NotFound);
    }
    audit::append(
        &mut tx,
        &AuditEntry {
            actor: &actor.label,
            partner_id: Some(&partner.id),
            action: "partner.renamed",
            target_type: "partner",
            target_id: Some(&partner.id),
            request_id: actor.request_id.as_deref(),
            detail: json!({"slug": slug.as_str(), "from": partner.name, "to": name}),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    get(deps, slug).await
}

#[cfg(test)]
mod tests {
    use super::partner_name;

    #[test]
    fn a_partner_name_is_trimmed_and_bounded_without_control_characters() {
        assert_eq!(partner_name("  Acme Health ").unwrap(), "Acme Health");
        assert_eq!(partner_name(&"é".repeat(200)).unwrap().chars().count(), 200);
        for bad in ["", "   ", "line\nbreak", "tab\there", &"x".repeat(201)] {
            assert!(partner_name(bad).is_err(), "{bad:?}");
        }
    }
}
