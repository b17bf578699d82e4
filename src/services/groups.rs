//! Provisioning of a partner's SCIM Groups. Members must be users of the same partner;
//! membership changes are computed as a difference and written in batches, so a PATCH of
//! 10,000 members costs a few statements, not 10,000.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use super::listing::{self, ListParams, Page};
use super::{lifecycle, Actor, Deps, ServiceError};
use crate::domain::Partner;
use crate::scim_core::error::ScimError;
use crate::scim_core::patch::{self, PatchOp};
use crate::scim_core::resource::{self, WriteMode};
use crate::scim_core::schema::GROUP_RESOURCE;
use crate::store::audit::{self, AuditEntry};
use crate::store::groups::{self as group_store, GroupRow, Member};
use crate::store::guests as guest_store;
use crate::store::scim_filter::FilterCompiler;
use crate::store::users as user_store;
use crate::store::work::Work;
use crate::store::{is_unique_violation, Tx};

/// A stored group; `members` is loaded only when asked for.
#[derive(Debug, Clone)]
pub struct Group {
    pub row: GroupRow,
    pub doc: Map<String, Value>,
    pub members: Option<Vec<Member>>,
}

impl Group {
    pub fn etag(&self) -> String {
        super::users::etag(self.row.version)
    }
}

fn parse_doc(row: GroupRow) -> Result<Group, ServiceError> {
    let doc = super::stored::document(&row.doc, "group", &row.id)?;
    Ok(Group {
        row,
        doc,
        members: None,
    })
}

/// Split the member ids off a normalised document; only users may be members.
fn take_members(doc: &mut Map<String, Value>) -> Result<Vec<String>, ServiceError> {
    let Some(Value::Array(list)) = doc.remove("members") else {
        return Ok(Vec::new());
    };
    let mut seen = HashSet::with_capacity(list.len());
    let mut ids = Vec::with_capacity(list.len());
    for m in list {
        if let Some(t) = m.get("type").and_then(Value::as_str) {
            if !t.eq_ignore_ascii_case("User") {
                return Err(ScimError::invalid_value(format!(
                    "only users can be members of a group, not {t:?}"
                ))
                .into());
            }
        }
        let id = m.get("value").and_then(Value::as_str).ok_or_else(|| {
            ScimError::invalid_value("every member needs a 'value' (the user's id)")
        })?;
        if seen.insert(id.to_string()) {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

/// Fail with invalidValue unless every id is a user of this partner.
async fn check_members(tx: &mut Tx, partner: &Partner, ids: &[&str]) -> Result<(), ServiceError> {
    if ids.is_empty() {
        return Ok(());
    }
    let found: HashSet<String> = group_store::existing_users(tx, &partner.id, ids)
        .await?
        .into_iter()
        .collect();
    let missing: Vec<&&str> = ids
        .iter()
        .filter(|id| !found.contains(**id))
        .take(5)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ScimError::invalid_value(format!(
            "members must be users of this partner; unknown: {}",
            missing
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into())
    }
}

fn row_for(
    id: &str,
    partner: &Partner,
    doc: &Map<String, Value>,
    version: i64,
    created_at: i64,
    now: i64,
) -> GroupRow {
    GroupRow {
        id: id.to_string(),
        partner_id: partner.id.clone(),
        display_name: doc
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        external_id: doc
            .get("externalId")
            .and_then(Value::as_str)
            .map(str::to_string),
        doc: Value::Object(doc.clone()).to_string(),
        version,
        created_at,
        updated_at: now,
    }
}

fn group_entry<'a>(
    actor: &'a Actor,
    partner: &'a Partner,
    action: &'a str,
    id: &'a str,
    detail: Value,
) -> AuditEntry<'a> {
    AuditEntry {
        actor: &actor.label,
        partner_id: Some(&partner.id),
        action,
        target_type: "group",
        target_id: Some(id),
        request_id: actor.request_id.as_deref(),
        detail,
    }
}

async fn audit_group(
    tx: &mut Tx,
    actor: &Actor,
    partner: &Partner,
    action: &str,
    id: &str,
    detail: Value,
    now: i64,
) -> Result<(), ServiceError> {
    audit::append(tx, &group_entry(actor, partner, action, id, detail), now).await?;
    Ok(())
}

async fn conflict(deps: &Deps, tx: Tx, partner: &Partner, display_name: &str) -> ServiceError {
    if let Err(e) = tx.rollback().await {
        return e.into();
    }
    let existing = match deps.db.pool().acquire().await {
        Ok(mut conn) => group_store::id_by_display_name(&mut conn, &partner.id, display_name)
            .await
            .ok()
            .flatten(),
        Err(e) => return e.into(),
    };
    ServiceError::Conflict(match existing {
        Some(id) => format!("displayName {display_name:?} is already used by group {id}"),
        None => format!("displayName {display_name:?} is already used by another group"),
    })
}

#[tracing::instrument(skip_all, fields(partner = %partner.slug))]
pub async fn create(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    body: &Value,
) -> Result<Group, ServiceError> {
    let mut doc = resource::normalize(body, &GROUP_RESOURCE, WriteMode::Create)?;
    let members = take_members(&mut doc)?;
    let id = crate::store::new_row_id();
    let now = deps.now_ms();
    let row = row_for(&id, partner, &doc, 1, now, now);
    let leaves = resource::flatten(&doc, &GROUP_RESOURCE);
    let member_refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let mut tx = deps.db.begin_write().await?;
    check_members(&mut tx, partner, &member_refs).await?;
    if let Err(e) = group_store::insert(&mut tx, &row, &leaves).await {
        if is_unique_violation(&e) {
            return Err(conflict(deps, tx, partner, &row.display_name).await);
        }
        return Err(e.into());
    }
    group_store::add_members(&mut tx, &partner.id, &id, &member_refs).await?;
    audit_group(
        &mut tx,
        actor,
        partner,
        "group.created",
        &id,
        json!({"displayName": row.display_name, "members": members.len()}),
        now,
    )
    .await?;
    let tx =
        reconcile_members(tx, deps, actor, partner, &member_refs, "scim:group.created").await?;
    tx.commit().await?;
    Ok(Group {
        row,
        doc,
        members: None,
    })
}

/// Re-evaluate people whose group memberships changed, when any rule looks at groups.
async fn reconcile_members(
    tx: Tx,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    user_ids: &[&str],
    via: &str,
) -> Result<Tx, ServiceError> {
    if user_ids.is_empty() {
        return Ok(tx);
    }
    let mut w = Work::from_tx(tx, &deps.db);
    // Locked before the rules in force are read (see `rules_watch::in_force`) and before the
    // people are, so a concurrent write of one of them waits for this decision or this one
    // decides on what it wrote, and a reload through another instance is not missed.
    guest_store::lock_people(w.conn().await?, &partner.id, user_ids).await?;
    let rules = super::rules_watch::in_force(&mut w, deps).await?;
    if !rules.uses_groups() {
        return Ok(w.into_tx().await?);
    }
    let cause = lifecycle::Cause { actor, via };
    // A page of people at a time: their records in four queries, their changes queued.
    for page in user_ids.chunks(500) {
        let rows = user_store::by_ids(w.conn().await?, &partner.id, page).await?;
        let people = super::rules::load_people(w.conn().await?, rows).await?;
        for (u, doc) in &people.users {
            let (person, prior) = people.person(u, doc);
            let now = deps.clock.now();
            let outcome =
                lifecycle::reconcile(&mut w, &rules, now, partner, &person, &cause, prior).await?;
            super::invitations::after_reconcile(&mut w, deps, actor, partner, &outcome, doc)
                .await?;
        }
        w.flush_if_large().await?;
    }
    Ok(w.into_tx().await?)
}

/// Load members' display names into groups (for responses that include `members`), in one
/// statement for a page of groups.
pub async fn attach_members(deps: &Deps, groups: &mut [Group]) -> Result<(), ServiceError> {
    if groups.is_empty() {
        return Ok(());
    }
    let mut conn = deps.db.pool().acquire().await?;
    let ids: Vec<&str> = groups.iter().map(|g| g.row.id.as_str()).collect();
    let mut members = group_store::members_of_groups(&mut conn, &ids).await?;
    for g in groups.iter_mut() {
        g.members = Some(members.remove(&g.row.id).unwrap_or_default());
    }
    Ok(())
}

pub async fn get(deps: &Deps, partner: &Partner, id: &str) -> Result<Group, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let row = group_store::get(&mut conn, &partner.id, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    parse_doc(row)
}

pub async fn list(
    deps: &Deps,
    partner: &Partner,
    params: &ListParams,
) -> Result<Page<Group>, ServiceError> {
    let compiler = FilterCompiler {
        rt: &GROUP_RESOURCE,
        columns: group_store::group_columns,
        partner_id: &partner.id,
    };
    let query = listing::store_query(params, &compiler)?;
    let mut conn = deps.db.pool().acquire().await?;
    let (total, rows) = group_store::list(&mut conn, &partner.id, query.clone()).await?;
    let groups = rows
        .into_iter()
        .map(parse_doc)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(listing::page(params, &query, total, groups, |g| {
        (g.row.created_at, g.row.id.clone())
    }))
}

fn check_if_match(if_match: Option<&str>, current: &Group) -> Result<(), ServiceError> {
    super::check_if_match(if_match, &current.etag())
}

async fn load_for_write(tx: &mut Tx, partner: &Partner, id: &str) -> Result<Group, ServiceError> {
    let row = group_store::get_locked(tx, &partner.id, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    parse_doc(row)
}

/// A group before and after a write.
struct Change<'a> {
    current: Group,
    current_members: &'a [String],
    doc: Map<String, Value>,
    members: &'a [String],
    action: &'a str,
}

/// Write a new document and member set for an existing group.
async fn save(
    deps: &Deps,
    mut tx: Tx,
    actor: &Actor,
    partner: &Partner,
    change: Change<'_>,
) -> Result<Group, ServiceError> {
    let Change {
        current,
        current_members,
        doc,
        members,
        action,
    } = change;
    let now = deps.now_ms();
    let before: HashSet<&str> = current_members.iter().map(String::as_str).collect();
    let after: HashSet<&str> = members.iter().map(String::as_str).collect();
    let added: Vec<&str> = members
        .iter()
        .map(String::as_str)
        .filter(|m| !before.contains(m))
        .collect();
    let removed: Vec<&str> = current_members
        .iter()
        .map(String::as_str)
        .filter(|m| !after.contains(m))
        .collect();
    if doc == current.doc && added.is_empty() && removed.is_empty() {
        return Ok(current);
    }
    check_members(&mut tx, partner, &added).await?;
    let row = row_for(
        &current.row.id,
        partner,
        &doc,
        current.row.version + 1,
        current.row.created_at,
        now,
    );
    let leaves = (doc != current.doc).then(|| resource::flatten(&doc, &GROUP_RESOURCE));
    match group_store::update(&mut tx, &row, current.row.version, leaves.as_deref()).await {
        Ok(true) => {}
        Ok(false) => return Err(ServiceError::PreconditionFailed(current.etag())),
        Err(e) if is_unique_violation(&e) => {
            return Err(conflict(deps, tx, partner, &row.display_name).await)
        }
        Err(e) => return Err(e.into()),
    }
    group_store::remove_members(&mut tx, &row.id, &removed).await?;
    group_store::add_members(&mut tx, &partner.id, &row.id, &added).await?;
    audit_group(
        &mut tx,
        actor,
        partner,
        action,
        &row.id,
        json!({"displayName": row.display_name, "membersAdded": added.len(), "membersRemoved": removed.len()}),
        now,
    )
    .await?;
    // A renamed group can change what rules on group names decide for every member.
    let affected: Vec<&str> = if row.display_name != current.row.display_name {
        before.union(&after).copied().collect()
    } else {
        added.iter().chain(removed.iter()).copied().collect()
    };
    let via = format!("scim:{action}");
    let tx = reconcile_members(tx, deps, actor, partner, &affected, &via).await?;
    tx.commit().await?;
    Ok(Group {
        row,
        doc,
        members: None,
    })
}

#[tracing::instrument(skip_all, fields(partner = %partner.slug, id = %crate::telemetry::loggable_id(id)))]
pub async fn replace(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Result<Group, ServiceError> {
    let mut doc = resource::normalize(body, &GROUP_RESOURCE, WriteMode::Replace { id })?;
    let members = take_members(&mut doc)?;
    let mut tx = deps.db.begin_write().await?;
    let current = load_for_write(&mut tx, partner, id).await?;
    check_if_match(if_match, &current)?;
    let current_members = group_store::member_ids(&mut tx, id).await?;
    save(
        deps,
        tx,
        actor,
        partner,
        Change {
            current,
            current_members: &current_members,
            doc,
            members: &members,
            action: "group.replaced",
        },
    )
    .await
}

#[tracing::instrument(skip_all, fields(partner = %partner.slug, id = %crate::telemetry::loggable_id(id)))]
pub async fn patch(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    id: &str,
    ops: &[PatchOp],
    if_match: Option<&str>,
) -> Result<Group, ServiceError> {
    let mut tx = deps.db.begin_write().await?;
    let current = load_for_write(&mut tx, partner, id).await?;
    check_if_match(if_match, &current)?;
    let current_members = group_store::member_ids(&mut tx, id).await?;
    let mut full = current.doc.clone();
    if !current_members.is_empty() {
        full.insert(
            "members".into(),
            Value::Array(
                current_members
                    .iter()
                    .map(|m| json!({"value": m}))
                    .collect(),
            ),
        );
    }
    let patched = patch::apply_patch_with_id(&full, ops, &GROUP_RESOURCE, id)?;
    let mut doc = resource::normalize(
        &Value::Object(patched),
        &GROUP_RESOURCE,
        WriteMode::Replace { id },
    )?;
    let members = take_members(&mut doc)?;
    save(
        deps,
        tx,
        actor,
        partner,
        Change {
            current,
            current_members: &current_members,
            doc,
            members: &members,
            action: "group.patched",
        },
    )
    .await
}

#[tracing::instrument(skip_all, fields(partner = %partner.slug, id = %crate::telemetry::loggable_id(id)))]
pub async fn delete(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    id: &str,
    if_match: Option<&str>,
) -> Result<(), ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let current = load_for_write(&mut tx, partner, id).await?;
    check_if_match(if_match, &current)?;
    let former = group_store::member_ids(&mut tx, id).await?;
    if !group_store::delete(&mut tx, &partner.id, id).await? {
        return Err(ServiceError::NotFound);
    }
    let former: Vec<&str> = former.iter().map(String::as_str).collect();
    let mut tx = reconcile_members(tx, deps, actor, partner, &former, "scim:group.deleted").await?;
    audit_group(
        &mut tx,
        actor,
        partner,
        "group.deleted",
        id,
        json!({"displayName": current.row.display_name}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A group by display name (case-insensitive), created when the partner has none yet; `known`
/// caches groups by lower-cased name for a long unit of work (an import).
async fn resolve_group(
    w: &mut Work,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    name: &str,
    known: &mut HashMap<String, (String, String)>,
    via: &str,
) -> Result<(String, String), ServiceError> {
    let lower = name.to_lowercase();
    if let Some(g) = known.get(&lower) {
        return Ok(g.clone());
    }
    let group = match group_store::id_by_display_name(w.conn().await?, &partner.id, name).await? {
        Some(id) => (id, name.to_string()),
        None => {
            let now = deps.now_ms();
            let mut doc = Map::new();
            doc.insert("displayName".into(), Value::String(name.to_string()));
            let id = crate::store::new_row_id();
            let row = row_for(&id, partner, &doc, 1, now, now);
            let leaves = resource::flatten(&doc, &GROUP_RESOURCE);
            group_store::insert(w.conn().await?, &row, &leaves).await?;
            let detail = json!({"displayName": name, "via": via});
            let entry = group_entry(actor, partner, "group.created", &id, detail);
            audit::queue(w, &entry, now);
            (id, name.to_string())
        }
    };
    known.insert(lower, group.clone());
    Ok(group)
}

/// The groups (id, name) of these display names, created where missing, in display order.
pub(crate) async fn resolve_groups(
    w: &mut Work,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    names: &[String],
    known: &mut HashMap<String, (String, String)>,
    via: &str,
) -> Result<Vec<(String, String)>, ServiceError> {
    let mut groups = Vec::with_capacity(names.len());
    for name in names {
        let g = resolve_group(w, deps, actor, partner, name, known, via).await?;
        if !groups.iter().any(|(id, _): &(String, String)| *id == g.0) {
            groups.push(g);
        }
    }
    sort_by_name(&mut groups);
    Ok(groups)
}

fn sort_by_name(groups: &mut [(String, String)]) {
    groups.sort_by(|a, b| {
        a.1.to_lowercase()
            .cmp(&b.1.to_lowercase())
            .then(a.0.cmp(&b.0))
    });
}

/// Queue `user_id`'s membership of each group, audited.
pub(crate) fn queue_memberships(
    w: &mut Work,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    user_id: &str,
    groups: &[(String, String)],
    via: &str,
) {
    let now = deps.now_ms();
    for (gid, _) in groups {
        group_store::queue_member(w, &partner.id, gid, user_id);
        let detail = json!({"member": user_id, "via": via});
        let entry = group_entry(actor, partner, "group.member_added", gid, detail);
        audit::queue(w, &entry, now);
    }
}

/// Make an existing user's group memberships exactly `names` (display names,
/// case-insensitive), creating groups that do not exist yet; within `w`. Returns whether
/// anything changed and the user's groups (id, name).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn set_user_groups_in(
    w: &mut Work,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    user_id: &str,
    names: &[String],
    known: &mut HashMap<String, (String, String)>,
    via: &str,
) -> Result<(bool, Vec<(String, String)>), ServiceError> {
    let now = deps.now_ms();
    let current: Vec<(String, String)> = group_store::groups_of_users(w.conn().await?, &[user_id])
        .await?
        .into_iter()
        .map(|(_, id, name)| (id, name))
        .collect();
    let wanted: HashSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
    let mut changed = false;
    let mut now_in = Vec::new();
    for (gid, name) in current {
        if wanted.contains(&name.to_lowercase()) {
            now_in.push((gid, name));
            continue;
        }
        group_store::remove_members(w.conn().await?, &gid, &[user_id]).await?;
        let detail = json!({"member": user_id, "via": via});
        let entry = group_entry(actor, partner, "group.member_removed", &gid, detail);
        audit::queue(w, &entry, now);
        changed = true;
    }
    let mut added = Vec::new();
    for name in names {
        let lower = name.to_lowercase();
        if now_in.iter().any(|(_, n)| n.to_lowercase() == lower) {
            continue;
        }
        let g = resolve_group(w, deps, actor, partner, name, known, via).await?;
        added.push(g.clone());
        now_in.push(g);
    }
    queue_memberships(w, deps, actor, partner, user_id, &added, via);
    changed |= !added.is_empty();
    sort_by_name(&mut now_in);
    Ok((changed, now_in))
}
