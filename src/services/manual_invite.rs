//! An administrator invites one person by hand: the person is created under their partner
//! exactly as the partner's SCIM client would create them (same document, same rules, same
//! invitation, audit and sync events), marked as created by an administrator. Bad input is
//! refused field by field before anything is written.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::grant_overrides::REVOKED;
use super::invitations::audit_entry;
use super::users::{insert_in, reconcile_user, Known};
use super::{Actor, Deps, ServiceError};
use crate::domain::{Partner, PartnerSlug};
use crate::scim_core::resource::{self, WriteMode};
use crate::scim_core::schema::{GUEST_SCHEMA, USER_RESOURCE, USER_SCHEMA};
use crate::store::guests::{self as guest_store, GuestRow};
use crate::store::work::Work;
use crate::store::{audit, is_unique_violation, overrides, partners as partner_store};

/// What an administrator fills in.
#[derive(Debug, Clone, Default)]
pub struct InviteRequest {
    pub partner: String,
    pub user_name: String,
    pub given_name: String,
    pub family_name: String,
    pub email: String,
    /// Only these of the apps the rules grant; `None`: all of them.
    pub apps: Option<Vec<String>>,
    /// The end of access the partner would send (`accessEndDate`).
    pub until: Option<DateTime<Utc>>,
    /// The sponsor's e-mail address (`sponsorEmail`).
    pub sponsor: Option<String>,
}

/// One field's problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("invalid fields")]
    Fields(Vec<FieldError>),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

fn text_ok(s: &str, max: usize) -> bool {
    let s = s.trim();
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

fn email_ok(s: &str) -> bool {
    let s = s.trim();
    match s.split_once('@') {
        Some((local, domain)) => {
            text_ok(s, 254)
                && !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

/// Every problem of a request against the partners and the apps that exist.
fn check(req: &InviteRequest, known_apps: &[String], now: DateTime<Utc>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut bad = |field: &'static str, message: String| errors.push(FieldError { field, message });
    if PartnerSlug::parse(&req.partner).is_err() {
        bad("partner", "a partner slug is required".into());
    }
    if !text_ok(&req.user_name, 256) {
        bad(
            "userName",
            "1 to 256 characters without control characters".into(),
        );
    }
    if !text_ok(&req.given_name, 200) {
        bad(
            "givenName",
            "1 to 200 characters without control characters".into(),
        );
    }
    if !text_ok(&req.family_name, 200) {
        bad(
            "familyName",
            "1 to 200 characters without control characters".into(),
        );
    }
    if !email_ok(&req.email) {
        bad("email", "an e-mail address is required".into());
    }
    if let Some(apps) = &req.apps {
        if apps.is_empty() {
            bad("apps", "list at least one app, or leave apps out".into());
        }
        for app in apps {
            if !known_apps.iter().any(|a| a == app) {
                bad("apps", format!("unknown app {app:?}"));
            }
        }
    }
    if req.until.is_some_and(|u| u <= now) {
        bad("until", "must be in the future".into());
    }
    if req.sponsor.as_deref().is_some_and(|s| !email_ok(s)) {
        bad("sponsor", "must be an e-mail address".into());
    }
    errors
}

/// The SCIM document the partner's client would have sent.
fn document(req: &InviteRequest) -> Value {
    let (given, family) = (req.given_name.trim(), req.family_name.trim());
    let mut doc = json!({
        "schemas": [USER_SCHEMA],
        "userName": req.user_name.trim(),
        "name": {"givenName": given, "familyName": family},
        "displayName": format!("{given} {family}"),
        "emails": [{"value": req.email.trim(), "type": "work", "primary": true}],
        "active": true,
    });
    let mut ext = Map::new();
    if let Some(until) = req.until {
        ext.insert(
            "accessEndDate".into(),
            json!(crate::clock::to_rfc3339(until)),
        );
    }
    if let Some(sponsor) = &req.sponsor {
        ext.insert("sponsorEmail".into(), json!(sponsor.trim()));
    }
    if !ext.is_empty() {
        doc["schemas"] = json!([USER_SCHEMA, GUEST_SCHEMA]);
        doc[GUEST_SCHEMA] = Value::Object(ext);
    }
    doc
}

fn taken(e: ServiceError, user_name: &str) -> ServiceError {
    match e {
        ServiceError::Db(e) if is_unique_violation(&e) => ServiceError::Conflict(format!(
            "userName {user_name:?} is already in use by this partner"
        )),
        other => other,
    }
}

/// Invite a person by hand; answers their guest record and partner.
pub async fn invite(
    deps: &Deps,
    actor: &Actor,
    req: &InviteRequest,
) -> Result<(GuestRow, Partner), InviteError> {
    let now = deps.clock.now();
    let rules = deps.rules();
    let app_ids: Vec<String> = rules.apps.iter().map(|a| a.id.clone()).collect();
    let mut errors = check(req, &app_ids, now);
    let partner = match PartnerSlug::parse(&req.partner) {
        Ok(slug) => {
            let mut conn = deps.db.pool().acquire().await.map_err(ServiceError::from)?;
            let found = partner_store::find_by_slug(&mut conn, &slug)
                .await
                .map_err(ServiceError::from)?;
            if found.is_none() {
                errors.push(FieldError {
                    field: "partner",
                    message: format!("no partner {slug}"),
                });
            }
            found
        }
        Err(_) => None,
    };
    let body = document(req);
    let doc = match resource::normalize(&body, &USER_RESOURCE, WriteMode::Create) {
        Ok(doc) => Some(doc),
        Err(e) => {
            errors.push(FieldError {
                field: "person",
                message: e.detail,
            });
            None
        }
    };
    let (Some(partner), Some(doc), true) = (partner, doc, errors.is_empty()) else {
        return Err(InviteError::Fields(errors));
    };
    let user_name = req.user_name.trim();
    let mut w = Work::begin(&deps.db);
    let result = create(&mut w, deps, actor, &partner, doc, req).await;
    match result {
        Ok(guest) => {
            w.commit().await.map_err(|e| taken(e.into(), user_name))?;
            Ok((guest, partner))
        }
        Err(e) => {
            w.rollback().await.map_err(ServiceError::from)?;
            Err(match e {
                InviteError::Service(e) => InviteError::Service(taken(e, user_name)),
                fields => fields,
            })
        }
    }
}

async fn create(
    w: &mut Work,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    doc: Map<String, Value>,
    req: &InviteRequest,
) -> Result<GuestRow, InviteError> {
    let via = "admin:invite";
    let user = insert_in(w, deps, actor, partner, doc, via, &[]).await?;
    let now = deps.now_ms();
    let conn = w.conn().await.map_err(ServiceError::from)?;
    overrides::record_admin_created(conn, &user.row.id, &partner.id, &actor.label, now)
        .await
        .map_err(ServiceError::from)?;
    let Some(guest) = guest_store::find_by_user(conn, &user.row.id)
        .await
        .map_err(ServiceError::from)?
    else {
        return Err(InviteError::Service(ServiceError::Conflict(
            "the mapping rules grant this person nothing, so there is no one to invite".into(),
        )));
    };
    let Some(wanted) = &req.apps else {
        return Ok(guest);
    };
    let grants = guest_store::grants(conn, &guest.id)
        .await
        .map_err(ServiceError::from)?;
    let missing: Vec<FieldError> = wanted
        .iter()
        .filter(|app| !grants.iter().any(|g| &g.app_id == *app))
        .map(|app| FieldError {
            field: "apps",
            message: format!("the mapping rules do not grant {app:?} to this person"),
        })
        .collect();
    if !missing.is_empty() {
        return Err(InviteError::Fields(missing));
    }
    let mut extra: Vec<&str> = grants
        .iter()
        .map(|g| g.app_id.as_str())
        .filter(|app| !wanted.iter().any(|w| w == app))
        .collect();
    extra.dedup();
    if extra.is_empty() {
        return Ok(guest);
    }
    // Apps the rules grant beyond those asked for are revoked as an administrator revokes
    // them, so no later decision of the rules grants them again.
    for app in &extra {
        overrides::set_app_end(conn, &guest.id, app, now, REVOKED, Some(now))
            .await
            .map_err(ServiceError::from)?;
        let detail = json!({"app": app, "cause": {"via": via, "actor": actor.label, "request_id": actor.request_id}});
        audit::append(
            conn,
            &audit_entry(actor, &guest, "grant.revoked", detail),
            now,
        )
        .await
        .map_err(ServiceError::from)?;
    }
    let outcome = reconcile_user(
        w,
        deps,
        actor,
        partner,
        &user.row,
        &user.doc,
        via,
        Known::NOTHING,
    )
    .await?;
    Ok(outcome.guest.unwrap_or(guest))
}
