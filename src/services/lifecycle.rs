//! From a partner's person to a guest: evaluate the mapping rules and apply the lifecycle.
//! `reconcile` runs inside the transaction of the change that triggered it (a SCIM write, an
//! import row, a rule reload), so a person and their guest state never disagree. Every
//! transition and grant change is audited with its cause and the rules involved.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{Actor, Deps, ServiceError};
use crate::clock::{from_millis, to_millis};
use crate::domain::lifecycle::{transition, Event, GuestState};
use crate::domain::Partner;
use crate::mapping::{Approval, Decision, Person, RuleSet};
use crate::store::audit::{self, AuditEntry};
use crate::store::guests::{self as guest_store, GrantRow, GuestRow};
use crate::store::work::Work;

/// What a person looks like to the rules: their SCIM document with `id` and `groups`.
pub struct PersonView<'a> {
    pub user_id: &'a str,
    pub user_name: &'a str,
    pub active: bool,
    pub email: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub doc: &'a Map<String, Value>,
    /// (group id, display name) of the person's groups.
    pub groups: &'a [(String, String)],
}

impl PersonView<'_> {
    fn json(&self) -> Value {
        let mut m = self.doc.clone();
        m.insert("id".into(), json!(self.user_id));
        if !self.groups.is_empty() {
            m.insert(
                "groups".into(),
                Value::Array(
                    self.groups
                        .iter()
                        .map(|(id, name)| json!({"value": id, "display": name}))
                        .collect(),
                ),
            );
        }
        Value::Object(m)
    }
}

/// Why a reconciliation happened, for the audit log: who acted and through what.
#[derive(Debug, Clone)]
pub struct Cause<'a> {
    pub actor: &'a Actor,
    /// `scim:user.patched`, `import:…`, `mappings:reload`, `job:expiry`.
    pub via: &'a str,
}

impl Cause<'_> {
    fn json(&self) -> Value {
        json!({"via": self.via, "actor": self.actor.label, "request_id": self.actor.request_id})
    }
}

/// What reconciliation changed for one person.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub guest_id: Option<String>,
    pub created: bool,
    pub from: Option<String>,
    pub to: Option<String>,
    pub grants_added: usize,
    pub grants_removed: usize,
    /// The guest record and its grants as they now stand (when there is a guest), so that
    /// what follows (invitation, sync event) need not read them back.
    pub guest: Option<GuestRow>,
    pub grants: Vec<GrantRow>,
}

impl Outcome {
    pub fn changed(&self) -> bool {
        self.created || self.from != self.to || self.grants_added > 0 || self.grants_removed > 0
    }
}

fn grant_key(g: &GrantRow) -> (String, String, String) {
    (g.app_id.clone(), g.role.clone(), g.rule_id.clone())
}

/// The grants a decision implies for a guest.
fn desired_grants(guest_id: &str, decision: &Decision, start: i64) -> Vec<GrantRow> {
    decision
        .grants
        .iter()
        .map(|g| GrantRow {
            guest_id: guest_id.to_string(),
            app_id: g.app.clone(),
            role: g.role.clone(),
            rule_id: g.rule_id.clone(),
            valid_from: start,
            valid_until: g.valid_until.map(to_millis),
            ends_by: g
                .ends_by
                .and_then(|e| serde_json::to_value(e).ok())
                .and_then(|v| v.as_str().map(str::to_string)),
        })
        .collect()
}

/// The lifecycle event a decision means for an existing guest.
fn event_for(
    person_active: bool,
    decision: &Decision,
    guest: &GuestRow,
    now: DateTime<Utc>,
) -> Event {
    if !person_active {
        return Event::Deactivate;
    }
    if !decision.is_guest() {
        return Event::GrantsGone;
    }
    let current = decision
        .grants
        .iter()
        .any(|g| g.valid_until.is_none_or(|u| u > now));
    if !current {
        return Event::Expire;
    }
    Event::Restore {
        redeemed: guest.redeemed_at.is_some(),
        approved: guest.approved,
    }
}

fn audit_guest(
    w: &mut Work,
    cause: &Cause<'_>,
    partner_id: &str,
    action: &str,
    guest_id: &str,
    mut detail: Value,
    now: i64,
) {
    detail["cause"] = cause.json();
    audit::queue(
        w,
        &AuditEntry {
            actor: &cause.actor.label,
            partner_id: Some(partner_id),
            action,
            target_type: "guest",
            target_id: Some(guest_id),
            request_id: cause.actor.request_id.as_deref(),
            detail,
        },
        now,
    );
}

/// What is known of a person's guest record before reconciling them.
#[derive(Debug, Clone)]
pub enum Prior {
    /// Created in this unit of work: no guest record yet.
    NoGuest,
    /// Unknown: read it.
    Unknown,
    /// Loaded by the caller (with others, in one query): the guest record and its grants.
    Loaded(Option<Box<GuestRow>>, Vec<GrantRow>),
}

/// Evaluate the rules for one person and bring their guest record in line, in `w`.
pub async fn reconcile(
    w: &mut Work,
    rules: &RuleSet,
    now: DateTime<Utc>,
    partner: &Partner,
    person: &PersonView<'_>,
    cause: &Cause<'_>,
    prior: Prior,
) -> Result<Outcome, ServiceError> {
    let (existing, existing_grants) = match prior {
        Prior::NoGuest => (None, Vec::new()),
        Prior::Loaded(guest, grants) => (guest.map(|g| *g), grants),
        Prior::Unknown => {
            let conn = w.conn().await?;
            // Locked: a job, an admin action or another instance's write of this person
            // waits for this decision instead of overwriting it (or being overwritten).
            let existing = guest_store::find_by_user_locked(&mut *conn, person.user_id).await?;
            let grants = match &existing {
                Some(g) => guest_store::grants(conn, &g.id).await?,
                None => Vec::new(),
            };
            (existing, grants)
        }
    };
    apply(
        w,
        rules,
        now,
        partner,
        person,
        existing,
        existing_grants,
        cause,
    )
    .await
}

/// The decision for a person given their guest record (if any).
pub fn decide(
    rules: &RuleSet,
    now: DateTime<Utc>,
    partner: &Partner,
    person: &PersonView<'_>,
    guest: Option<&GuestRow>,
) -> Decision {
    let start = guest
        .and_then(|g| g.invited_at.or(Some(g.created_at)))
        .map(from_millis)
        .unwrap_or(now);
    let json = person.json();
    rules.evaluate(&Person {
        partner: partner.slug.as_str(),
        user: &json,
        start,
    })
}

#[allow(clippy::too_many_arguments)]
async fn apply(
    w: &mut Work,
    rules: &RuleSet,
    now: DateTime<Utc>,
    partner: &Partner,
    person: &PersonView<'_>,
    existing: Option<GuestRow>,
    existing_grants: Vec<GrantRow>,
    cause: &Cause<'_>,
) -> Result<Outcome, ServiceError> {
    let now_ms = to_millis(now);
    let mut decision = decide(rules, now, partner, person, existing.as_ref());
    // An administrator's extension or revocation outlasts the rules' next decision.
    let overrides = super::grant_overrides::respect(&mut decision, &existing_grants);
    let rules_json = json!(decision.matched_rules);
    let Some(mut guest) = existing else {
        if !decision.is_guest() || !person.active {
            return Ok(Outcome::default());
        }
        let (state, approved) = match decision.approval {
            Approval::Auto => (GuestState::Invited, true),
            Approval::Admin => (GuestState::PendingApproval, false),
        };
        let guest = GuestRow {
            id: crate::store::new_row_id(),
            partner_id: partner.id.clone(),
            user_id: person.user_id.to_string(),
            user_name: person.user_name.to_string(),
            email: person.email.map(str::to_string),
            display_name: person.display_name.map(str::to_string),
            state: state.to_string(),
            approved,
            mfa_required: decision.mfa_required,
            sponsor: decision.sponsor.clone(),
            template: decision.template.clone(),
            language: decision.language.clone(),
            access_until: decision.access_until().map(to_millis),
            invited_at: approved.then_some(now_ms),
            redeemed_at: None,
            created_at: now_ms,
            updated_at: now_ms,
            rules_fingerprint: Some(rules.fingerprint.clone()),
        };
        guest_store::queue_insert(w, &guest);
        audit_guest(
            w,
            cause,
            &partner.id,
            "guest.created",
            &guest.id,
            json!({"rules_fingerprint": rules.fingerprint, "state": guest.state, "rules": rules_json}),
            now_ms,
        );
        let grants = desired_grants(&guest.id, &decision, now_ms);
        for g in &grants {
            guest_store::queue_grant(w, g);
            audit_guest(
                w,
                cause,
                &partner.id,
                "grant.added",
                &guest.id,
                json!({"rules_fingerprint": rules.fingerprint, "app": g.app_id, "role": g.role, "rule": g.rule_id, "valid_until": g.valid_until}),
                now_ms,
            );
        }
        return Ok(Outcome {
            guest_id: Some(guest.id.clone()),
            created: true,
            from: None,
            to: Some(guest.state.clone()),
            grants_added: grants.len(),
            grants_removed: 0,
            guest: Some(guest),
            grants,
        });
    };
    let old_state: GuestState =
        guest
            .state
            .parse()
            .map_err(|e: crate::domain::lifecycle::UnknownState| {
                ServiceError::Corrupt(e.to_string())
            })?;
    if old_state == GuestState::Removed {
        return Ok(Outcome {
            guest_id: Some(guest.id.clone()),
            guest: Some(guest),
            grants: existing_grants,
            ..Outcome::default()
        });
    }
    let start = guest.invited_at.unwrap_or(guest.created_at);
    let mut desired = desired_grants(&guest.id, &decision, start);
    super::grant_overrides::mark(&mut desired, &overrides);
    let have: HashMap<_, &GrantRow> = existing_grants.iter().map(|g| (grant_key(g), g)).collect();
    let want: HashSet<_> = desired.iter().map(grant_key).collect();
    let mut outcome = Outcome {
        guest_id: Some(guest.id.clone()),
        from: Some(guest.state.clone()),
        ..Outcome::default()
    };
    for g in &existing_grants {
        if !want.contains(&grant_key(g)) {
            guest_store::delete_grant(w.conn().await?, g).await?;
            outcome.grants_removed += 1;
            audit_guest(
                w,
                cause,
                &partner.id,
                "grant.removed",
                &guest.id,
                json!({"rules_fingerprint": rules.fingerprint, "app": g.app_id, "role": g.role, "rule": g.rule_id}),
                now_ms,
            );
        }
    }
    for g in &desired {
        match have.get(&grant_key(g)) {
            None => {
                guest_store::queue_grant(w, g);
                outcome.grants_added += 1;
                audit_guest(
                    w,
                    cause,
                    &partner.id,
                    "grant.added",
                    &guest.id,
                    json!({"rules_fingerprint": rules.fingerprint, "app": g.app_id, "role": g.role, "rule": g.rule_id, "valid_until": g.valid_until}),
                    now_ms,
                );
            }
            Some(old) if old.valid_until != g.valid_until => {
                guest_store::update_grant_window(w.conn().await?, g).await?;
                audit_guest(
                    w,
                    cause,
                    &partner.id,
                    "grant.window_changed",
                    &guest.id,
                    json!({"rules_fingerprint": rules.fingerprint, "app": g.app_id, "role": g.role, "rule": g.rule_id, "from": old.valid_until, "to": g.valid_until}),
                    now_ms,
                );
            }
            Some(_) => {}
        }
    }
    let event = event_for(person.active, &decision, &guest, now);
    // An event that does not apply (a declined guest granted again) leaves the state alone;
    // such guests need an admin to re-invite them.
    let new_state = transition(old_state, event).unwrap_or(old_state);
    if new_state == GuestState::Invited && guest.invited_at.is_none() {
        guest.invited_at = Some(now_ms);
    }
    let updated = GuestRow {
        user_name: person.user_name.to_string(),
        email: person.email.map(str::to_string),
        display_name: person.display_name.map(str::to_string),
        state: new_state.to_string(),
        mfa_required: decision.mfa_required,
        sponsor: decision.sponsor.clone(),
        template: decision.template.clone(),
        language: decision.language.clone(),
        access_until: decision.access_until().map(to_millis),
        updated_at: now_ms,
        rules_fingerprint: Some(rules.fingerprint.clone()),
        ..guest.clone()
    };
    if new_state != old_state {
        audit_guest(
            w,
            cause,
            &partner.id,
            "guest.state_changed",
            &guest.id,
            json!({"rules_fingerprint": rules.fingerprint, "from": old_state.to_string(), "to": new_state.to_string(), "event": format!("{event:?}"), "rules": rules_json}),
            now_ms,
        );
    }
    if updated != guest || outcome.grants_added > 0 || outcome.grants_removed > 0 {
        guest_store::queue_update(w, &updated);
    }
    outcome.to = Some(updated.state.clone());
    outcome.guest = Some(updated);
    // The grants now held: the desired ones, with the kept ones' windows as written above.
    outcome.grants = desired;
    Ok(outcome)
}

/// The partner deleted the person: the guest is removed and loses every grant, open
/// invitations and portal sessions end, and the sync targets are told.
pub async fn remove_for_user(
    w: &mut Work,
    deps: &Deps,
    user_id: &str,
    cause: &Cause<'_>,
) -> Result<Option<String>, ServiceError> {
    let now = deps.clock.now();
    let Some(guest) = guest_store::find_by_user_locked(w.conn().await?, user_id).await? else {
        return Ok(None);
    };
    let now_ms = to_millis(now);
    let old_state: GuestState =
        guest
            .state
            .parse()
            .map_err(|e: crate::domain::lifecycle::UnknownState| {
                ServiceError::Corrupt(e.to_string())
            })?;
    for g in guest_store::grants(w.conn().await?, &guest.id).await? {
        guest_store::delete_grant(w.conn().await?, &g).await?;
        audit_guest(
            w,
            cause,
            &guest.partner_id,
            "grant.removed",
            &guest.id,
            json!({"app": g.app_id, "role": g.role, "rule": g.rule_id}),
            now_ms,
        );
    }
    if old_state != GuestState::Removed {
        let new_state = transition(old_state, Event::Remove).unwrap_or(GuestState::Removed);
        guest_store::update(
            w.conn().await?,
            &GuestRow {
                state: new_state.to_string(),
                access_until: None,
                updated_at: now_ms,
                ..guest.clone()
            },
        )
        .await?;
        audit_guest(
            w,
            cause,
            &guest.partner_id,
            "guest.state_changed",
            &guest.id,
            json!({"from": old_state.to_string(), "to": new_state.to_string(), "event": "Remove"}),
            now_ms,
        );
    }
    let conn = w.conn().await?;
    super::access::end_access(&mut *conn, &guest.id, now_ms).await?;
    super::sync::emit(conn, deps, &guest.id).await?;
    Ok(Some(guest.id))
}

/// An admin approves a guest waiting for approval: the guest is invited.
pub async fn approve(deps: &Deps, actor: &Actor, guest_id: &str) -> Result<GuestRow, ServiceError> {
    let now = deps.clock.now();
    let now_ms = to_millis(now);
    let mut w = Work::begin(&deps.db);
    // Locked: a concurrent reconcile (a deactivation on another instance) must not be
    // overwritten by this approval's copy of the row.
    let guest = guest_store::get_locked(w.conn().await?, guest_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let old = super::stored::guest_state(&guest)?;
    let new = transition(old, Event::Approve).map_err(|e| ServiceError::Conflict(e.to_string()))?;
    let updated = GuestRow {
        state: new.to_string(),
        approved: true,
        invited_at: guest.invited_at.or(Some(now_ms)),
        updated_at: now_ms,
        ..guest.clone()
    };
    guest_store::update(w.conn().await?, &updated).await?;
    let cause = Cause {
        actor,
        via: "admin:approve",
    };
    audit_guest(
        &mut w,
        &cause,
        &guest.partner_id,
        "guest.state_changed",
        guest_id,
        json!({"from": old.to_string(), "to": new.to_string(), "event": "Approve"}),
        now_ms,
    );
    if old != new {
        let partner = super::invitations::partner_of(w.conn().await?, &updated).await?;
        let grants = guest_store::grants(w.conn().await?, guest_id).await?;
        super::invitations::issue(&mut w, deps, actor, &updated, &grants, &partner).await?;
        super::sync::emit(w.conn().await?, deps, guest_id).await?;
    }
    w.commit().await?;
    Ok(updated)
}

/// Shared handle on the loaded rule set; a reload swaps it.
pub type SharedRules = Arc<std::sync::RwLock<Arc<RuleSet>>>;

/// The rule set in force now.
pub fn current_rules(rules: &SharedRules) -> Arc<RuleSet> {
    match rules.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}
