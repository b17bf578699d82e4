//! Reading guests for admins: lists, one guest with grants and history.

use super::{Deps, ServiceError};
use crate::domain::{Partner, PartnerSlug};
use crate::store::audit::{self, AuditRecord};
use crate::store::guests::{self as guest_store, GrantRow, GuestFilter, GuestRow};
use crate::store::partners as partner_store;

/// A guest with its grants and audit history.
#[derive(Debug, Clone)]
pub struct GuestDetail {
    pub guest: GuestRow,
    pub partner: Partner,
    pub grants: Vec<GrantRow>,
    pub history: Vec<AuditRecord>,
    pub invitations: Vec<crate::store::invitations::InvitationRow>,
    /// The latest consent decision: (at, text version, accepted).
    pub consent: Option<(i64, String, bool)>,
    pub mfa_enrolled: bool,
}

/// Most history entries returned with a guest.
const HISTORY_LIMIT: i64 = 500;

/// List filters as an admin gives them.
#[derive(Debug, Clone, Default)]
pub struct GuestQuery {
    pub partner: Option<PartnerSlug>,
    pub state: Option<String>,
    pub app: Option<String>,
    pub after: Option<(i64, String)>,
    pub limit: i64,
    /// The caller's scope: only this partner's guests (a partner-admin).
    pub scope_partner_id: Option<String>,
    /// The caller's scope: only guests with this sponsor, lower-cased (a sponsor).
    pub sponsor: Option<String>,
}

pub async fn list(deps: &Deps, q: &GuestQuery) -> Result<(i64, Vec<GuestRow>), ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let partner_id = match &q.partner {
        Some(slug) => Some(
            partner_store::find_by_slug(&mut conn, slug)
                .await?
                .ok_or(ServiceError::NotFound)?
                .id,
        ),
        None => None,
    };
    let partner_id = match (partner_id, &q.scope_partner_id) {
        // A partner outside the scope shows nothing, like one without guests.
        (Some(asked), Some(scope)) if &asked != scope => return Ok((0, Vec::new())),
        (asked, scope) => asked.or_else(|| scope.clone()),
    };
    let filter = GuestFilter {
        sponsor: q.sponsor.clone(),
        partner_id,
        state: q.state.clone(),
        app: q.app.clone(),
    };
    Ok(guest_store::list(&mut conn, &filter, q.after.clone(), q.limit).await?)
}

pub async fn get(deps: &Deps, id: &str) -> Result<GuestDetail, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let guest = guest_store::get(&mut conn, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let partner = partner_store::list(&mut conn)
        .await?
        .into_iter()
        .find(|p| p.id == guest.partner_id)
        .ok_or_else(|| ServiceError::Corrupt(format!("guest {id} has no partner")))?;
    let grants = guest_store::grants(&mut conn, id).await?;
    let history = audit::for_target(&mut conn, "guest", id, HISTORY_LIMIT).await?;
    let invitations = crate::store::invitations::for_guest(&mut conn, id).await?;
    let consent = crate::store::invitations::latest_consent(&mut conn, id).await?;
    let mfa_enrolled = crate::store::mfa::get(&mut conn, id)
        .await?
        .is_some_and(|m| m.enrolled_at.is_some());
    Ok(GuestDetail {
        guest,
        partner,
        grants,
        history,
        invitations,
        consent,
        mfa_enrolled,
    })
}
