//! Reconciliation of one SCIM target, in two steps: [`ScimConnector::plan`] reads the target
//! and works out what would change; [`ScimConnector::apply`] does it. Between them the caller
//! can show the plan (a dry run) or refuse it (too many deactivations).
//!
//! Only users in this target's ownership records are changed: those of expected guests are
//! brought to what the guest's state says, those of guests no longer expected are
//! deactivated. A user that carries the externalId of an expected guest and no record is
//! adopted, as a delivery would. Every other user with an externalId, or in a prefixed group,
//! is listed as unowned and left alone: on a directory shared with staff, those are staff.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use super::{
    duplicate_external_id, found, group_names, is_active, store_error, Capabilities, DesiredUser,
    Found, MembershipPlan, Outcome, ScimConnector,
};
use crate::connectors::{DeliveryError, EventKind, GuestSnapshot, Intent};

/// What reconciliation compares the target with.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Every guest, as targets should see it.
    pub guests: Vec<GuestSnapshot>,
    /// Guests whose snapshot could not be read (guest id, why): their users are left alone.
    pub unreadable: Vec<(String, String)>,
}

/// What a reconciliation does to one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Create,
    Change,
    Deactivate,
    Delete,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Create => "create",
            ActionKind::Change => "change",
            ActionKind::Deactivate => "deactivate",
            ActionKind::Delete => "delete",
        }
    }
}

/// One planned change.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Action {
    pub action: ActionKind,
    pub guest_id: String,
    /// The target's user id (none before a creation).
    pub remote_id: Option<String>,
    /// What changes: attribute paths, `+group` / `-group`, `adopt`.
    pub details: Vec<String>,
}

/// A user that looks like Guestbridge's but is not in the ownership records.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Unowned {
    pub remote_id: String,
    pub external_id: Option<String>,
    pub user_name: Option<String>,
}

/// What [`ScimConnector::plan`] would do or [`ScimConnector::apply`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DriftReport {
    /// Expected guests that were missing and were created.
    pub created: usize,
    /// Owned users whose attributes or memberships were repaired.
    pub updated: usize,
    /// Owned users made inactive and taken out of the prefixed groups: those of guests no
    /// longer expected, and those of suspended or held guests that were active.
    pub deactivated: usize,
    /// Owned users of removed guests, deleted.
    pub deleted: usize,
    /// Owned users already as expected.
    pub unchanged: usize,
    /// Users that look like ours and are not ours: reported, never changed.
    pub unowned: Vec<Unowned>,
    /// The changes, user by user.
    pub actions: Vec<Action>,
    /// Guests (or owned users) that could not be reconciled for a permanent reason, and
    /// guests whose snapshot is unreadable; a transient failure stops the run instead.
    pub failures: Vec<(String, DeliveryError)>,
}

impl DriftReport {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Created => self.created += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Deactivated => self.deactivated += 1,
            Outcome::Deleted => self.deleted += 1,
            Outcome::Unchanged => self.unchanged += 1,
        }
    }

    /// Users this run takes access from: deactivated or deleted.
    pub fn removals(&self) -> usize {
        self.deactivated + self.deleted
    }

    /// `created=N changed=N deactivated=N deleted=N unchanged=N unowned=N errors=N`.
    pub fn summary(&self) -> String {
        format!(
            "created={} changed={} deactivated={} deleted={} unchanged={} unowned={} errors={}",
            self.created,
            self.updated,
            self.deactivated,
            self.deleted,
            self.unchanged,
            self.unowned.len(),
            self.failures.len()
        )
    }

    /// The report as the admin API shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "created": self.created,
            "changed": self.updated,
            "deactivated": self.deactivated,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "unowned_count": self.unowned.len(),
            "errors": self.failures.len(),
            "actions": self.actions,
            "unowned": self.unowned,
            "failures": self.failures.iter().map(|(id, e)| json!({"id": id, "reason": e.to_string()})).collect::<Vec<_>>(),
        })
    }
}

/// One step of a plan.
#[derive(Debug, Clone)]
enum Step {
    /// Bring an expected guest's user to its intent (`adopt`: record it first).
    Converge {
        guest: Box<GuestSnapshot>,
        intent: Intent,
        existing: Option<Found>,
        current: BTreeMap<String, String>,
        adopt: bool,
    },
    /// Deactivate the owned user of a guest no longer expected.
    Deactivate {
        guest_id: String,
        user: Found,
        current: BTreeMap<String, String>,
    },
}

/// What reconciling would do, read from the target; [`ScimConnector::apply`] carries it out.
#[derive(Debug, Clone)]
pub struct ReconcilePlan {
    caps: Capabilities,
    /// Users in the ownership records when the plan was made.
    pub owned: usize,
    steps: Vec<Step>,
    /// The planned counts and changes.
    pub report: DriftReport,
}

impl ReconcilePlan {
    /// The most users one run may take access from without being forced: 5 % of the owned
    /// users or 50, whichever is larger.
    pub fn cap(&self) -> usize {
        self.owned.div_ceil(20).max(50)
    }
}

impl ScimConnector {
    /// Read the target and work out what reconciling it with `expected` would change.
    #[tracing::instrument(skip_all, fields(connector = %self.name, expected = expected.guests.len()))]
    pub async fn plan(&self, expected: &Expected) -> Result<ReconcilePlan, DeliveryError> {
        let result = self.read_plan(expected).await;
        if let Err(err) = &result {
            tracing::error!(error = %err.log_reason(), "reconcile plan failed");
        }
        result
    }

    async fn read_plan(&self, expected: &Expected) -> Result<ReconcilePlan, DeliveryError> {
        let caps = self.capabilities().await?;
        let owned = self
            .owned
            .all()
            .await
            .map_err(|e| store_error(e, "(all)"))?;
        let filter = caps.filter.then(|| "externalId pr".to_string());
        let mut listed: HashMap<String, Value> = HashMap::new();
        let mut by_external_id: HashMap<String, Vec<String>> = HashMap::new();
        for doc in self.list_all(&caps, "Users", filter, &[]).await? {
            let (Some(ext), Some(id)) = (doc["externalId"].as_str(), doc["id"].as_str()) else {
                continue;
            };
            by_external_id
                .entry(ext.to_string())
                .or_default()
                .push(id.to_string());
            listed.insert(id.to_string(), doc);
        }
        let mut memberships = self.prefixed_memberships(&caps).await?;

        let record_of: HashMap<&str, &str> = owned
            .iter()
            .map(|o| (o.guest_id.as_str(), o.remote_id.as_str()))
            .collect();
        let owned_ids: BTreeSet<&str> = owned.iter().map(|o| o.remote_id.as_str()).collect();
        let mut ours: BTreeSet<String> = owned_ids.iter().map(|s| s.to_string()).collect();
        let mut plan = ReconcilePlan {
            caps,
            owned: owned.len(),
            steps: Vec::new(),
            report: DriftReport::default(),
        };

        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for guest in &expected.guests {
            seen.insert(&guest.guest_id);
            let intent = guest.intent(EventKind::GuestUpserted);
            let (existing, adopt) = match record_of.get(guest.guest_id.as_str()) {
                Some(remote_id) => (self.owned_doc(&listed, remote_id).await?, false),
                None => {
                    let free: Vec<&String> = by_external_id
                        .get(&guest.guest_id)
                        .into_iter()
                        .flatten()
                        .filter(|id| !owned_ids.contains(id.as_str()))
                        .collect();
                    match free.as_slice() {
                        [] => (None, false),
                        // Only a guest that is to have or await access takes a user over.
                        [id] if matches!(intent, Intent::Enable | Intent::Hold) => {
                            ours.insert(id.to_string());
                            (Some(found(listed[id.as_str()].clone())?), true)
                        }
                        [_] => (None, false),
                        _ => {
                            plan.report.failures.push((
                                guest.guest_id.clone(),
                                duplicate_external_id(&guest.guest_id),
                            ));
                            continue;
                        }
                    }
                }
            };
            let current = existing
                .as_ref()
                .and_then(|u| memberships.remove(&u.id))
                .unwrap_or_default();
            let (outcome, mut details) = self.planned(guest, intent, existing.as_ref(), &current);
            if adopt {
                details.insert(0, "adopt".into());
            }
            plan.note(
                outcome,
                &guest.guest_id,
                existing.as_ref().map(|u| u.id.clone()),
                details,
            );
            plan.steps.push(Step::Converge {
                guest: Box::new(guest.clone()),
                intent,
                existing,
                current,
                adopt,
            });
        }

        let unreadable: BTreeSet<&str> = expected
            .unreadable
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        for (guest_id, why) in &expected.unreadable {
            plan.report.failures.push((
                guest_id.clone(),
                DeliveryError::permanent(format!(
                    "the guest's snapshot is unreadable ({why}); its user is left as it is"
                )),
            ));
        }
        for record in &owned {
            let guest_id = record.guest_id.as_str();
            if seen.contains(guest_id) || unreadable.contains(guest_id) {
                continue;
            }
            let Some(user) = self.owned_doc(&listed, &record.remote_id).await? else {
                continue;
            };
            let current = memberships.remove(&user.id).unwrap_or_default();
            let mut details = Vec::new();
            if is_active(&user.doc) {
                details.push("active=false".to_string());
            }
            details.extend(current.keys().map(|g| format!("-{g}")));
            let outcome = if details.is_empty() {
                Outcome::Unchanged
            } else {
                Outcome::Deactivated
            };
            plan.note(outcome, guest_id, Some(user.id.clone()), details);
            plan.steps.push(Step::Deactivate {
                guest_id: guest_id.to_string(),
                user,
                current,
            });
        }

        let mut unowned: BTreeMap<String, Unowned> = BTreeMap::new();
        for (id, doc) in &listed {
            if !ours.contains(id) {
                unowned.insert(id.clone(), unowned_of(id, Some(doc)));
            }
        }
        for id in memberships.keys() {
            if !ours.contains(id) && !unowned.contains_key(id) {
                unowned.insert(id.clone(), unowned_of(id, None));
            }
        }
        plan.report.unowned = unowned.into_values().collect();
        if !plan.report.unowned.is_empty() {
            tracing::warn!(connector = %self.name, unowned = plan.report.unowned.len(), "users that look like Guestbridge's are not in its records; left alone");
        }
        Ok(plan)
    }

    /// Carry out `plan`; the report counts what was done.
    #[tracing::instrument(skip_all, fields(connector = %self.name, steps = plan.steps.len()))]
    pub async fn apply(&self, plan: ReconcilePlan) -> Result<DriftReport, DeliveryError> {
        let result = self.carry_out(plan).await;
        if let Err(err) = &result {
            tracing::error!(error = %err.log_reason(), "reconcile apply failed");
        }
        result
    }

    async fn carry_out(&self, plan: ReconcilePlan) -> Result<DriftReport, DeliveryError> {
        let key = format!("reconcile-{}", chrono::Utc::now().timestamp_millis());
        let caps = plan.caps;
        let mut report = DriftReport {
            unowned: plan.report.unowned,
            actions: plan.report.actions,
            failures: plan.report.failures,
            ..DriftReport::default()
        };
        for step in plan.steps {
            let (id, result) = match step {
                Step::Converge {
                    guest,
                    intent,
                    existing,
                    current,
                    adopt,
                } => {
                    let result = async {
                        if let (true, Some(user)) = (adopt, &existing) {
                            self.record(&guest.guest_id, &user.id, true).await?;
                        }
                        self.converge(&caps, &key, &guest, intent, existing, Some(current))
                            .await
                    }
                    .await;
                    (guest.guest_id, result)
                }
                Step::Deactivate {
                    guest_id,
                    user,
                    current,
                } => {
                    let was_active = is_active(&user.doc);
                    let result =
                        self.deactivate(&caps, &key, &user, &current)
                            .await
                            .map(|changed| match changed {
                                true if was_active => Outcome::Deactivated,
                                true => Outcome::Updated,
                                false => Outcome::Unchanged,
                            });
                    (guest_id, result)
                }
            };
            match result {
                Ok(outcome) => report.count(outcome),
                Err(err) if err.is_transient() => return Err(err),
                Err(err) => report.failures.push((id, err)),
            }
        }
        Ok(report)
    }

    /// An owned user's document: from the listing, else fetched (its externalId may have
    /// been changed or removed at the target). A user gone from the target is forgotten.
    async fn owned_doc(
        &self,
        listed: &HashMap<String, Value>,
        remote_id: &str,
    ) -> Result<Option<Found>, DeliveryError> {
        if let Some(doc) = listed.get(remote_id) {
            return found(doc.clone()).map(Some);
        }
        self.get_user(remote_id).await
    }

    /// What converging would do to one expected guest's user, and the changes as details.
    fn planned(
        &self,
        guest: &GuestSnapshot,
        intent: Intent,
        existing: Option<&Found>,
        current: &BTreeMap<String, String>,
    ) -> (Outcome, Vec<String>) {
        let removals = || current.keys().map(|g| format!("-{g}")).collect::<Vec<_>>();
        match (intent, existing) {
            (Intent::Remove | Intent::Suspend, None) => (Outcome::Unchanged, vec![]),
            (Intent::Remove, Some(_)) => (Outcome::Deleted, vec![]),
            (Intent::Suspend, Some(user)) => {
                let mut details = removals();
                if is_active(&user.doc) {
                    details.insert(0, "active=false".into());
                    (Outcome::Deactivated, details)
                } else if details.is_empty() {
                    (Outcome::Unchanged, details)
                } else {
                    (Outcome::Updated, details)
                }
            }
            (Intent::Enable | Intent::Hold, existing) => {
                let desired = DesiredUser::from_snapshot(guest, intent == Intent::Enable);
                let wanted = if intent == Intent::Enable {
                    group_names(&self.prefix, guest)
                } else {
                    BTreeSet::new()
                };
                let Some(user) = existing else {
                    let mut details = vec![format!("userName={}", desired.user_name)];
                    details.extend(wanted.iter().map(|g| format!("+{g}")));
                    return (Outcome::Created, details);
                };
                let mut details: Vec<String> = desired
                    .patch_ops(&user.doc)
                    .iter()
                    .filter_map(|op| op["path"].as_str().map(str::to_string))
                    .collect();
                let memberships = MembershipPlan::new(&wanted, current);
                details.extend(memberships.add.iter().map(|g| format!("+{g}")));
                details.extend(memberships.remove.iter().map(|(g, _)| format!("-{g}")));
                let outcome = if details.is_empty() {
                    Outcome::Unchanged
                } else if is_active(&user.doc) && !desired.active {
                    Outcome::Deactivated
                } else {
                    Outcome::Updated
                };
                (outcome, details)
            }
        }
    }
}

impl ReconcilePlan {
    fn note(
        &mut self,
        outcome: Outcome,
        guest_id: &str,
        remote_id: Option<String>,
        details: Vec<String>,
    ) {
        self.report.count(outcome);
        let action = match outcome {
            Outcome::Created => ActionKind::Create,
            Outcome::Updated => ActionKind::Change,
            Outcome::Deactivated => ActionKind::Deactivate,
            Outcome::Deleted => ActionKind::Delete,
            Outcome::Unchanged => return,
        };
        self.report.actions.push(Action {
            action,
            guest_id: guest_id.to_string(),
            remote_id,
            details,
        });
    }
}

fn unowned_of(id: &str, doc: Option<&Value>) -> Unowned {
    Unowned {
        remote_id: id.to_string(),
        external_id: doc.and_then(|d| d["externalId"].as_str().map(str::to_string)),
        user_name: doc.and_then(|d| d["userName"].as_str().map(str::to_string)),
    }
}
