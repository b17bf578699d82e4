//! Console sign-in of a person the organisation's identity provider has vouched for: their
//! groups pick a role (first allowed group in the settings' order), their login is found or
//! made by issuer and subject and given that role, and they get the same console session a
//! password sign-in gives. Someone in no allowed group gets no session, and any session
//! they still had ends (their groups at the provider are the truth). Audited either way,
//! with the subject and role and never a token.

use serde_json::json;

use super::admin_auth::SESSION_ABSOLUTE_MS;
use super::{Actor, Deps, ServiceError};
use crate::auth::secrets::{hash_token, random_token};
use crate::domain::group_roles::{role_for_groups, GroupRole};
use crate::domain::AdminRole;
use crate::store::admin_federated::{self, FederatedLogin};
use crate::store::audit::{self, AuditEntry};
use crate::store::{self, admin_logins, admin_sessions, is_unique_violation};

/// Who the provider says signed in (from a validated ID token).
#[derive(Debug, Clone)]
pub struct FederatedIdentity {
    pub issuer: String,
    pub subject: String,
    /// What the console shows (preferred username, e-mail, name or subject).
    pub display_name: String,
    /// The e-mail address, when the provider verified it.
    pub verified_email: Option<String>,
    pub groups: Vec<String>,
}

/// The outcome of a federated sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsoSignIn {
    /// A new session: the cookie's secret, and the role it has.
    Session { secret: String, role: AdminRole },
    /// In none of the allowed groups.
    NoAllowedGroup,
    /// The group maps to a partner-admin of a partner that does not exist (yet).
    UnknownPartner(String),
    /// The group maps to the sponsor role, but the provider gave no verified e-mail.
    SponsorWithoutEmail,
    /// The login was disabled here (`admin disable-login`).
    Disabled,
}

/// How many groups an audit row lists (the claim can be long; the count is always there).
const AUDITED_GROUPS: usize = 20;

/// Sign in the person the provider vouched for, with the role their groups give.
#[tracing::instrument(skip_all, fields(subject = %who.subject), err(level = "info"))]
pub async fn sign_in(
    deps: &Deps,
    allowed: &[GroupRole],
    who: &FederatedIdentity,
    request_id: Option<String>,
) -> Result<SsoSignIn, ServiceError> {
    // A first sign-in racing another for the same subject loses the insert; once more then
    // finds the login the other made.
    match attempt(deps, allowed, who, request_id.clone()).await {
        Err(ServiceError::Db(e)) if is_unique_violation(&e) => {
            attempt(deps, allowed, who, request_id).await
        }
        other => other,
    }
}

async fn attempt(
    deps: &Deps,
    allowed: &[GroupRole],
    who: &FederatedIdentity,
    request_id: Option<String>,
) -> Result<SsoSignIn, ServiceError> {
    let now = deps.now_ms();
    let matched = role_for_groups(allowed, &who.groups);
    let partner_id = match matched.and_then(|m| m.partner.as_ref()) {
        Some(slug) => {
            let mut conn = deps.db.pool().acquire().await?;
            match store::partners::find_by_slug(&mut conn, slug).await? {
                Some(p) => Some(p.id),
                None => None,
            }
        }
        None => None,
    };
    let sponsor_email = who.verified_email.as_ref().map(|e| e.trim().to_lowercase());

    let mut tx = deps.db.begin_write().await?;
    let existing = admin_federated::by_subject(&mut tx, &who.issuer, &who.subject).await?;
    let refusal = match (matched, &existing) {
        (_, Some(l)) if l.disabled_at.is_some() => Some(SsoSignIn::Disabled),
        (None, _) => Some(SsoSignIn::NoAllowedGroup),
        (Some(m), _) if m.partner.is_some() && partner_id.is_none() => {
            Some(SsoSignIn::UnknownPartner(
                m.partner
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ))
        }
        (Some(m), _) if m.role == AdminRole::Sponsor && sponsor_email.is_none() => {
            Some(SsoSignIn::SponsorWithoutEmail)
        }
        _ => None,
    };
    let groups: Vec<&String> = who.groups.iter().take(AUDITED_GROUPS).collect();
    if let Some(refusal) = refusal {
        let reason = match &refusal {
            SsoSignIn::Disabled => "disabled",
            SsoSignIn::NoAllowedGroup => "no_allowed_group",
            SsoSignIn::UnknownPartner(_) => "unknown_partner",
            _ => "sponsor_without_verified_email",
        };
        let ended = match &existing {
            Some(l) => admin_sessions::end_all(&mut tx, &l.id, now).await?,
            None => 0,
        };
        audit::append(
            &mut tx,
            &AuditEntry {
                actor: "anonymous",
                partner_id: None,
                action: "admin.sso_sign_in_refused",
                target_type: "admin_login",
                target_id: existing.as_ref().map(|l| l.id.as_str()),
                request_id: request_id.as_deref(),
                detail: json!({
                    "reason": reason,
                    "issuer": who.issuer,
                    "subject": who.subject,
                    "groups": groups,
                    "group_count": who.groups.len(),
                    "sessions_ended": ended,
                }),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        return Ok(refusal);
    }
    let Some(matched) = matched else {
        return Ok(SsoSignIn::NoAllowedGroup);
    };
    let role = matched.role;
    let login = FederatedLogin {
        issuer: &who.issuer,
        subject: &who.subject,
        name: &who.display_name,
        role,
        partner_id: partner_id.as_deref(),
        sponsor_email: (role == AdminRole::Sponsor)
            .then_some(sponsor_email.as_deref())
            .flatten(),
    };
    let login_id = match &existing {
        Some(l) => {
            admin_federated::update(&mut tx, &l.id, &login, now).await?;
            l.id.clone()
        }
        None => {
            let id = uuid::Uuid::now_v7().to_string();
            admin_federated::insert(&mut tx, &id, &login, now).await?;
            id
        }
    };
    let secret = random_token(32);
    admin_sessions::insert(
        &mut tx,
        &uuid::Uuid::now_v7().to_string(),
        &login_id,
        &hash_token(&secret),
        now,
        now + SESSION_ABSOLUTE_MS,
    )
    .await?;
    admin_logins::record_sign_in(&mut tx, &login_id, now).await?;
    let principal = admin_logins::by_id(&mut tx, &login_id)
        .await?
        .ok_or(ServiceError::NotFound)?
        .principal;
    let actor = Actor {
        label: principal.actor_label(),
        request_id,
    };
    audit::append(
        &mut tx,
        &AuditEntry {
            actor: &actor.label,
            partner_id: partner_id.as_deref(),
            action: "admin.sso_sign_in",
            target_type: "admin_login",
            target_id: Some(&login_id),
            request_id: actor.request_id.as_deref(),
            detail: json!({
                "issuer": who.issuer,
                "subject": who.subject,
                "role": role.as_str(),
                "group": matched.group,
                "first_sign_in": existing.is_none(),
            }),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(SsoSignIn::Session { secret, role })
}
