//! Partner organisations and their credentials.

use serde_json::json;

use super::{Actor, Deps, ServiceError};
use crate::auth::tokens;
use crate::domain::{Partner, PartnerSlug};
use crate::store::audit::{self, AuditEntry};
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
    Ok(token.secret)
}

/// Issue an admin API bearer token.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn issue_admin_token(deps: &Deps, actor: &Actor) -> Result<String, ServiceError> {
    let token = tokens::generate(tokens::ADMIN_PREFIX);
    let token_id = uuid::Uuid::new_v4().to_string();
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    store::tokens::insert_admin_token(&mut tx, &token_id, &token.hash, now).await?;
    audit::append(
        &mut tx,
        &AuditEntry {
            actor: &actor.label,
            partner_id: None,
            action: "admin.token_issued",
            target_type: "admin_token",
            target_id: Some(&token_id),
            request_id: actor.request_id.as_deref(),
            detail: json!({}),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(token.secret)
}

/// The partner a SCIM bearer token belongs to, if it is valid.
pub async fn authenticate_partner(
    deps: &Deps,
    secret: &str,
) -> Result<Option<Partner>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(
        store::tokens::authenticate_partner(&mut conn, &tokens::hash(secret), deps.now_ms())
            .await?,
    )
}

/// The admin token id for a bearer token, if it is valid.
pub async fn authenticate_admin(deps: &Deps, secret: &str) -> Result<Option<String>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    Ok(store::tokens::authenticate_admin(&mut conn, &tokens::hash(secret), deps.now_ms()).await?)
}
