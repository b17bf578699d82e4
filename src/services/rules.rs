//! Rule sets over everyone: explain one person, dry-run a new rule set (what would change),
//! and reload (swap the rules, then re-evaluate every person). Scans page through people
//! per partner so memory stays flat however many there are.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::lifecycle::{self, decide, Cause, PersonView};
use super::{Actor, Deps, ServiceError};
use crate::domain::Partner;
use crate::mapping::{Explanation, Person, RuleSet};
use crate::store::audit::{self, AuditEntry};
use crate::store::groups as group_store;
use crate::store::guests::{self as guest_store, GrantRow, GuestRow};
use crate::store::users::{self as user_store, UserRow};
use crate::store::work::Work;
use crate::store::{partners as partner_store, DbError};

/// People per page of a scan.
const PAGE: i64 = 500;
/// Most per-person changes a diff lists (the counts cover everyone).
const MAX_LISTED: usize = 1000;

/// An unreadable document evaluates as empty here: the diff and the reload must go on for
/// everyone else, and reading the user through SCIM reports the corruption.
fn parse_doc(row: &UserRow) -> Map<String, Value> {
    super::stored::document(&row.doc, "user", &row.id).unwrap_or_default()
}

/// People with everything the rules and the diff need, loaded a page at a time.
pub(crate) struct PageData {
    pub users: Vec<(UserRow, Map<String, Value>)>,
    /// By user id: (group id, name).
    pub groups: HashMap<String, Vec<(String, String)>>,
    /// By user id.
    pub guests: HashMap<String, GuestRow>,
    /// By guest id.
    pub grants: HashMap<String, Vec<GrantRow>>,
}

impl PageData {
    /// What the rules see of a person of this page, and their guest record as stored.
    pub fn person<'a>(
        &'a self,
        u: &'a UserRow,
        doc: &'a Map<String, Value>,
    ) -> (PersonView<'a>, lifecycle::Prior) {
        let groups = self.groups.get(&u.id).map(Vec::as_slice).unwrap_or(&[]);
        let guest = self.guests.get(&u.id).cloned();
        let grants = guest
            .as_ref()
            .and_then(|g| self.grants.get(&g.id).cloned())
            .unwrap_or_default();
        let guest = guest.map(Box::new);
        (
            view(u, doc, groups),
            lifecycle::Prior::Loaded(guest, grants),
        )
    }
}

async fn load_page(
    conn: &mut sqlx::AnyConnection,
    partner: &Partner,
    after: Option<&(i64, String)>,
) -> Result<PageData, DbError> {
    let rows = user_store::page_after(conn, &partner.id, after, PAGE).await?;
    load_people(conn, rows).await
}

/// These people's groups, guest records and grants, in three queries.
pub(crate) async fn load_people(
    conn: &mut sqlx::AnyConnection,
    rows: Vec<UserRow>,
) -> Result<PageData, DbError> {
    let ids: Vec<&str> = rows.iter().map(|u| u.id.as_str()).collect();
    let mut groups: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (member, gid, name) in group_store::groups_of_users(conn, &ids).await? {
        groups.entry(member).or_default().push((gid, name));
    }
    let guests: HashMap<String, GuestRow> = guest_store::by_users(conn, &ids)
        .await?
        .into_iter()
        .map(|g| (g.user_id.clone(), g))
        .collect();
    let guest_ids: Vec<&str> = guests.values().map(|g| g.id.as_str()).collect();
    let mut grants: HashMap<String, Vec<GrantRow>> = HashMap::new();
    for g in guest_store::grants_of(conn, &guest_ids).await? {
        grants.entry(g.guest_id.clone()).or_default().push(g);
    }
    let users = rows
        .into_iter()
        .map(|u| {
            let doc = parse_doc(&u);
            (u, doc)
        })
        .collect();
    Ok(PageData {
        users,
        groups,
        guests,
        grants,
    })
}

fn view<'a>(
    u: &'a UserRow,
    doc: &'a Map<String, Value>,
    groups: &'a [(String, String)],
) -> PersonView<'a> {
    PersonView {
        user_id: &u.id,
        user_name: &u.user_name,
        active: u.active,
        email: u.primary_email.as_deref(),
        display_name: u.display_name.as_deref(),
        doc,
        groups,
    }
}

/// What a new rule set would change for one person.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PersonChange {
    pub partner: String,
    pub user_id: String,
    pub user_name: String,
    pub guest_id: Option<String>,
    /// `new_guest`, `loses_all_grants`, `grants_changed`.
    pub change: &'static str,
    pub grants_added: Vec<String>,
    pub grants_removed: Vec<String>,
}

/// The dry-run result of a rule change.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RuleDiff {
    pub people: u64,
    pub people_changed: u64,
    pub grants_added: u64,
    pub grants_removed: u64,
    pub new_guests: u64,
    pub guests_losing_all_grants: u64,
    pub changes: Vec<PersonChange>,
    pub truncated: bool,
}

fn grant_label(app: &str, role: &str, rule: &str) -> String {
    format!("{app}:{role} (rule {rule})")
}

/// What `rules` would change over all current people, compared with their stored grants.
pub async fn diff(deps: &Deps, rules: &RuleSet) -> Result<RuleDiff, ServiceError> {
    let now = deps.clock.now();
    let mut conn = deps.db.pool().acquire().await?;
    let mut out = RuleDiff::default();
    for partner in partner_store::list(&mut conn).await? {
        let mut after: Option<(i64, String)> = None;
        loop {
            let page = load_page(&mut conn, &partner, after.as_ref()).await?;
            let Some((last, _)) = page.users.last() else {
                break;
            };
            after = Some((last.created_at, last.id.clone()));
            for (u, doc) in &page.users {
                out.people += 1;
                let groups = page.groups.get(&u.id).map(Vec::as_slice).unwrap_or(&[]);
                let guest = page.guests.get(&u.id);
                let decision = decide(rules, now, &partner, &view(u, doc, groups), guest);
                let have: BTreeSet<String> = guest
                    .and_then(|g| page.grants.get(&g.id))
                    .map(|gs| {
                        gs.iter()
                            .map(|g| grant_label(&g.app_id, &g.role, &g.rule_id))
                            .collect()
                    })
                    .unwrap_or_default();
                // A person the partner deactivated gets no new guest record.
                let want: BTreeSet<String> = if guest.is_none() && !u.active {
                    BTreeSet::new()
                } else {
                    decision
                        .grants
                        .iter()
                        .map(|g| grant_label(&g.app, &g.role, &g.rule_id))
                        .collect()
                };
                if have == want {
                    continue;
                }
                let added: Vec<String> = want.difference(&have).cloned().collect();
                let removed: Vec<String> = have.difference(&want).cloned().collect();
                out.people_changed += 1;
                out.grants_added += added.len() as u64;
                out.grants_removed += removed.len() as u64;
                let change = if guest.is_none() {
                    out.new_guests += 1;
                    "new_guest"
                } else if want.is_empty() {
                    out.guests_losing_all_grants += 1;
                    "loses_all_grants"
                } else {
                    "grants_changed"
                };
                if out.changes.len() < MAX_LISTED {
                    out.changes.push(PersonChange {
                        partner: partner.slug.to_string(),
                        user_id: u.id.clone(),
                        user_name: u.user_name.clone(),
                        guest_id: guest.map(|g| g.id.clone()),
                        change,
                        grants_added: added,
                        grants_removed: removed,
                    });
                } else {
                    out.truncated = true;
                }
            }
        }
    }
    Ok(out)
}

/// Counts of a reload's re-evaluation.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReloadReport {
    pub fingerprint: String,
    pub people: u64,
    pub people_changed: u64,
}

/// Make `rules` the rule set in force for every instance on this
/// database and re-evaluate everyone under it. The scan only finds who to re-evaluate; each
/// person is decided in their own transaction from what it re-reads with them locked, so a
/// concurrent SCIM write (a deactivation) is never overwritten with a stale view.
pub async fn reload(
    deps: &Deps,
    actor: &Actor,
    rules: RuleSet,
) -> Result<ReloadReport, ServiceError> {
    for problem in super::portal_env::missing_invitation_variants(&rules, &deps.portal.templates) {
        tracing::warn!(%problem, "mapping rule names a missing mail template; its guests get the standard invitation");
    }
    let rules = Arc::new(rules);
    super::rules_watch::publish(deps, &actor.label, &rules).await?;
    super::rules_watch::swap(deps, rules.clone());
    let mut report = ReloadReport {
        fingerprint: rules.fingerprint.clone(),
        ..ReloadReport::default()
    };
    let cause = Cause {
        actor,
        via: "mappings:reload",
    };
    let partners = {
        let mut conn = deps.db.pool().acquire().await?;
        partner_store::list(&mut conn).await?
    };
    for partner in partners {
        let mut after: Option<(i64, String)> = None;
        loop {
            let ids = {
                let mut conn = deps.db.pool().acquire().await?;
                user_store::page_after(&mut conn, &partner.id, after.as_ref(), PAGE).await?
            };
            let Some(last) = ids.last() else {
                break;
            };
            after = Some((last.created_at, last.id.clone()));
            for u in &ids {
                if let Some(changed) = reevaluate(deps, &rules, &partner, &u.id, &cause).await? {
                    report.people += 1;
                    if changed {
                        report.people_changed += 1;
                    }
                }
            }
        }
    }
    let mut tx = deps.db.begin_write().await?;
    audit::append(
        &mut tx,
        &AuditEntry {
            actor: &actor.label,
            partner_id: None,
            action: "mappings.reloaded",
            target_type: "mappings",
            target_id: Some(&report.fingerprint),
            request_id: actor.request_id.as_deref(),
            detail: json!({"rules": rules.rules.len(), "apps": rules.apps.len(), "people": report.people, "people_changed": report.people_changed}),
        },
        deps.now_ms(),
    )
    .await?;
    tx.commit().await?;
    Ok(report)
}

/// One person under `rules`, in one transaction: the user row locked first (the row a SCIM
/// write updates first, so both take locks in the same order), then their guest; groups and
/// grants read after the locks. `None` when the person was deleted since the scan, else
/// whether anything changed.
async fn reevaluate(
    deps: &Deps,
    rules: &RuleSet,
    partner: &Partner,
    user_id: &str,
    cause: &Cause<'_>,
) -> Result<Option<bool>, ServiceError> {
    let mut w = Work::begin(&deps.db);
    let conn = w.conn().await?;
    let Some(u) = user_store::get_locked(conn, &partner.id, user_id).await? else {
        w.rollback().await?;
        return Ok(None);
    };
    let groups: Vec<(String, String)> = group_store::groups_of_users(conn, &[u.id.as_str()])
        .await?
        .into_iter()
        .map(|(_, id, name)| (id, name))
        .collect();
    let guest = guest_store::find_by_user_locked(conn, &u.id).await?;
    let grants = match &guest {
        Some(g) => guest_store::grants(conn, &g.id).await?,
        None => Vec::new(),
    };
    let doc = parse_doc(&u);
    let prior = lifecycle::Prior::Loaded(guest.map(Box::new), grants);
    let outcome = lifecycle::reconcile(
        &mut w,
        rules,
        deps.clock.now(),
        partner,
        &view(&u, &doc, &groups),
        cause,
        prior,
    )
    .await?;
    super::invitations::after_reconcile(&mut w, deps, cause.actor, partner, &outcome, &doc).await?;
    w.commit().await?;
    Ok(Some(outcome.changed()))
}

/// Explain what the rules in force decide for a partner's person.
pub async fn explain_user(
    deps: &Deps,
    partner: &Partner,
    user_id: &str,
) -> Result<Explanation, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let row = user_store::get(&mut conn, &partner.id, user_id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let doc = parse_doc(&row);
    let groups: Vec<(String, String)> = group_store::groups_of_users(&mut conn, &[row.id.as_str()])
        .await?
        .into_iter()
        .map(|(_, id, name)| (id, name))
        .collect();
    let guest = guest_store::find_by_user(&mut conn, &row.id).await?;
    let start = guest
        .as_ref()
        .map(|g| crate::clock::from_millis(g.invited_at.unwrap_or(g.created_at)))
        .unwrap_or_else(|| deps.clock.now());
    let json = {
        let mut m = doc.clone();
        m.insert("id".into(), json!(row.id));
        if !groups.is_empty() {
            m.insert(
                "groups".into(),
                Value::Array(
                    groups
                        .iter()
                        .map(|(id, n)| json!({"value": id, "display": n}))
                        .collect(),
                ),
            );
        }
        Value::Object(m)
    };
    Ok(deps.rules().explain(&Person {
        partner: partner.slug.as_str(),
        user: &json,
        start,
    }))
}
