//! Provisioning of a partner's people as SCIM Users. SCIM requests (and later CSV rows) go
//! through these functions: validation, uniqueness, storage, audit — one transaction each.

use serde_json::{json, Map, Value};

use super::listing::{self, ListParams, Page};
use super::{lifecycle, Actor, Deps, ServiceError};
use crate::domain::Partner;
use crate::scim::patch::{self, PatchOp};
use crate::scim::resource::{self, WriteMode};
use crate::scim::schema::USER_RESOURCE;
use crate::store::audit::{self, AuditEntry};
use crate::store::groups as group_store;
use crate::store::scim_filter::FilterCompiler;
use crate::store::users::{self as user_store, UserRow};
use crate::store::{is_unique_violation, Tx};

/// A stored user with its parsed document.
#[derive(Debug, Clone)]
pub struct User {
    pub row: UserRow,
    pub doc: Map<String, Value>,
    /// Groups the user is a direct member of; filled by `attach_groups`.
    pub groups: Vec<GroupRef>,
}

/// A group as seen from a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: String,
    pub display: String,
}

impl User {
    /// The ETag value for this version (RFC 7644 §3.14).
    pub fn etag(&self) -> String {
        etag(self.row.version)
    }
}

pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

fn parse_doc(row: UserRow) -> Result<User, ServiceError> {
    let doc = match serde_json::from_str(&row.doc) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(ServiceError::Corrupt(format!(
                "user {} has an unreadable document",
                row.id
            )))
        }
    };
    Ok(User {
        row,
        doc,
        groups: Vec::new(),
    })
}

/// Server defaults for what a client left out: a person pushed without `active` is active,
/// and the representation says so, so that filters and responses agree.
fn with_defaults(mut doc: Map<String, Value>) -> Map<String, Value> {
    doc.entry("active").or_insert(Value::Bool(true));
    doc
}

/// The indexed columns derived from a normalised document.
fn row_for(
    id: &str,
    partner: &Partner,
    doc: &Map<String, Value>,
    version: i64,
    created_at: i64,
    now: i64,
) -> UserRow {
    let user_name = doc
        .get("userName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let emails = doc.get("emails").and_then(Value::as_array);
    let primary_email = emails
        .and_then(|list| {
            list.iter()
                .find(|e| e.get("primary") == Some(&Value::Bool(true)))
                .or_else(|| list.first())
        })
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .map(str::to_string);
    UserRow {
        id: id.to_string(),
        partner_id: partner.id.clone(),
        user_name,
        external_id: doc
            .get("externalId")
            .and_then(Value::as_str)
            .map(str::to_string),
        // RFC 7643 leaves `active` open when absent; a person pushed without it is active.
        active: doc.get("active").and_then(Value::as_bool).unwrap_or(true),
        display_name: doc
            .get("displayName")
            .and_then(Value::as_str)
            .map(str::to_string),
        primary_email,
        doc: Value::Object(doc.clone()).to_string(),
        version,
        created_at,
        updated_at: now,
    }
}

async fn audit_user(
    tx: &mut Tx,
    actor: &Actor,
    partner: &Partner,
    action: &str,
    id: &str,
    detail: Value,
    now: i64,
) -> Result<(), ServiceError> {
    audit::append(
        tx,
        &AuditEntry {
            actor: &actor.label,
            partner_id: Some(&partner.id),
            action,
            target_type: "user",
            target_id: Some(id),
            request_id: actor.request_id.as_deref(),
            detail,
        },
        now,
    )
    .await?;
    Ok(())
}

fn uniqueness_error(user_name: &str) -> ServiceError {
    ServiceError::Conflict(format!(
        "userName {user_name:?} is already in use by this partner"
    ))
}

/// Create a user from a SCIM body.
#[tracing::instrument(skip_all, fields(partner = %partner.slug), err(level = "info"))]
pub async fn create(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    body: &Value,
) -> Result<User, ServiceError> {
    let doc = resource::normalize(body, &USER_RESOURCE, WriteMode::Create)?;
    let mut tx = deps.db.begin_write().await?;
    match insert_in(&mut tx, deps, actor, partner, doc, "scim:user.created").await {
        Ok(user) => {
            tx.commit().await?;
            Ok(user)
        }
        Err(ServiceError::Conflict(_)) => {
            // A client retrying a create after a timeout (Okta does) learns the existing id.
            tx.rollback().await?;
            let user_name = body
                .get("userName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut conn = deps.db.pool().acquire().await?;
            let existing = user_store::id_by_user_name(&mut conn, &partner.id, user_name).await?;
            Err(ServiceError::Conflict(match existing {
                Some(existing) => format!(
                    "userName {user_name:?} is already in use by this partner: existing resource id {existing}"
                ),
                None => format!("userName {user_name:?} is already in use by this partner"),
            }))
        }
        Err(e) => Err(e),
    }
}

/// Insert a user from a normalised document within `tx`: store, audit, evaluate the rules.
/// A taken userName is `Conflict`; the caller decides what that does to its transaction.
pub(crate) async fn insert_in(
    tx: &mut Tx,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    doc: Map<String, Value>,
    via: &str,
) -> Result<User, ServiceError> {
    let doc = with_defaults(doc);
    let id = uuid::Uuid::new_v4().to_string();
    let now = deps.now_ms();
    let row = row_for(&id, partner, &doc, 1, now, now);
    let leaves = resource::flatten(&doc, &USER_RESOURCE);
    if let Err(e) = user_store::insert(tx, &row, &leaves).await {
        return Err(if is_unique_violation(&e) {
            uniqueness_error(&row.user_name)
        } else {
            e.into()
        });
    }
    audit_user(
        tx,
        actor,
        partner,
        "user.created",
        &id,
        json!({"userName": row.user_name, "active": row.active, "via": via}),
        now,
    )
    .await?;
    reconcile_user(tx, deps, actor, partner, &row, &doc, via).await?;
    Ok(User {
        row,
        doc,
        groups: Vec::new(),
    })
}

/// Replace an existing user's document within `tx`: store, audit, evaluate the rules.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn update_in(
    tx: &mut Tx,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    current: &User,
    doc: Map<String, Value>,
    action: &str,
    via: &str,
) -> Result<User, ServiceError> {
    let doc = with_defaults(doc);
    let user = save(tx, actor, partner, current, doc, action, deps.now_ms()).await?;
    reconcile_user(tx, deps, actor, partner, &user.row, &user.doc, via).await?;
    Ok(user)
}

/// A partner's user by userName within `tx`.
pub(crate) async fn find_in(
    tx: &mut Tx,
    partner: &Partner,
    user_name: &str,
) -> Result<Option<User>, ServiceError> {
    let Some(id) = user_store::id_by_user_name(tx, &partner.id, user_name).await? else {
        return Ok(None);
    };
    match user_store::get(tx, &partner.id, &id).await? {
        Some(row) => Ok(Some(parse_doc(row)?)),
        None => Ok(None),
    }
}

/// A partner's user; with `groups`, its `groups` too, read in the same statement.
pub async fn get(
    deps: &Deps,
    partner: &Partner,
    id: &str,
    groups: bool,
) -> Result<User, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    if !groups {
        let row = user_store::get(&mut conn, &partner.id, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        return parse_doc(row);
    }
    let row = user_store::get_with_groups(&mut conn, &partner.id, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    drop(conn);
    let mut users = with_packed_groups(vec![row])?;
    if users.1 {
        attach_groups(deps, &mut users.0).await?;
    }
    Ok(users.0.remove(0))
}

/// Parse rows read with their packed groups; the flag says some groups could not be
/// unpacked, so the caller must read them with [`attach_groups`].
fn with_packed_groups(
    rows: Vec<user_store::UserRowWithGroups>,
) -> Result<(Vec<User>, bool), ServiceError> {
    let mut unreadable = false;
    let mut users = Vec::with_capacity(rows.len());
    for (row, packed) in rows {
        let mut user = parse_doc(row)?;
        match packed.as_deref().map(user_store::unpack_groups) {
            None => {}
            Some(Some(groups)) => {
                user.groups = groups
                    .into_iter()
                    .map(|(id, display)| GroupRef { id, display })
                    .collect();
            }
            Some(None) => unreadable = true,
        }
        users.push(user);
    }
    Ok((users, unreadable))
}

/// One page of users; with `groups`, each with its `groups`, read in the page's statement.
pub async fn list(
    deps: &Deps,
    partner: &Partner,
    params: &ListParams,
    groups: bool,
) -> Result<Page<User>, ServiceError> {
    let compiler = FilterCompiler {
        rt: &USER_RESOURCE,
        columns: user_store::user_columns,
        partner_id: &partner.id,
    };
    let query = listing::store_query(params, &compiler)?;
    let mut conn = deps.db.pool().acquire().await?;
    let (total, users) = if groups {
        let (total, rows) =
            user_store::list_with_groups(&mut conn, &partner.id, query.clone()).await?;
        drop(conn);
        let (mut users, unreadable) = with_packed_groups(rows)?;
        if unreadable {
            attach_groups(deps, &mut users).await?;
        }
        (total, users)
    } else {
        let (total, rows) = user_store::list(&mut conn, &partner.id, query.clone()).await?;
        let users = rows
            .into_iter()
            .map(parse_doc)
            .collect::<Result<Vec<_>, _>>()?;
        (total, users)
    };
    Ok(listing::page(params, &query, total, users, |u| {
        (u.row.created_at, u.row.id.clone())
    }))
}

/// Fill in each user's read-only `groups` (RFC 7643 §4.1.2), derived from memberships.
pub async fn attach_groups(deps: &Deps, users: &mut [User]) -> Result<(), ServiceError> {
    if users.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = users.iter().map(|u| u.row.id.as_str()).collect();
    let mut conn = deps.db.pool().acquire().await?;
    let memberships = group_store::groups_of_users(&mut conn, &ids).await?;
    for user in users.iter_mut() {
        user.groups = memberships
            .iter()
            .filter(|(member, _, _)| *member == user.row.id)
            .map(|(_, id, name)| GroupRef {
                id: id.clone(),
                display: name.clone(),
            })
            .collect();
    }
    Ok(())
}

/// Re-evaluate the mapping rules for a person within the transaction that changed them.
pub(crate) async fn reconcile_user(
    tx: &mut Tx,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    row: &UserRow,
    doc: &Map<String, Value>,
    via: &str,
) -> Result<lifecycle::Outcome, ServiceError> {
    let groups: Vec<(String, String)> = group_store::groups_of_users(tx, &[row.id.as_str()])
        .await?
        .into_iter()
        .map(|(_, id, name)| (id, name))
        .collect();
    let person = lifecycle::PersonView {
        user_id: &row.id,
        user_name: &row.user_name,
        active: row.active,
        email: row.primary_email.as_deref(),
        display_name: row.display_name.as_deref(),
        doc,
        groups: &groups,
    };
    let outcome = lifecycle::reconcile(
        tx,
        &deps.rules(),
        deps.clock.now(),
        partner,
        &person,
        &lifecycle::Cause { actor, via },
    )
    .await?;
    super::invitations::after_reconcile(tx, deps, actor, partner, &outcome).await?;
    Ok(outcome)
}

/// Re-evaluate a person by id (after a group membership change), within `tx`.
pub(crate) async fn reconcile_user_by_id(
    tx: &mut Tx,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    id: &str,
    via: &str,
) -> Result<(), ServiceError> {
    if let Some(row) = user_store::get(tx, &partner.id, id).await? {
        let user = parse_doc(row)?;
        reconcile_user(tx, deps, actor, partner, &user.row, &user.doc, via).await?;
    }
    Ok(())
}

/// Check an `If-Match` precondition against the stored version.
fn check_if_match(if_match: Option<&str>, current: &User) -> Result<(), ServiceError> {
    super::check_if_match(if_match, &current.etag())
}

/// Store a changed document for an existing user, within the caller's transaction.
async fn save(
    tx: &mut Tx,
    actor: &Actor,
    partner: &Partner,
    current: &User,
    doc: Map<String, Value>,
    action: &str,
    now: i64,
) -> Result<User, ServiceError> {
    let row = row_for(
        &current.row.id,
        partner,
        &doc,
        current.row.version + 1,
        current.row.created_at,
        now,
    );
    let leaves = resource::flatten(&doc, &USER_RESOURCE);
    match user_store::update(tx, &row, current.row.version, &leaves).await {
        Ok(true) => {}
        Ok(false) => return Err(ServiceError::PreconditionFailed(current.etag())),
        Err(e) if is_unique_violation(&e) => return Err(uniqueness_error(&row.user_name)),
        Err(e) => return Err(e.into()),
    }
    let changed: Vec<&String> = doc
        .iter()
        .filter(|(k, v)| current.doc.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .chain(current.doc.keys().filter(|k| !doc.contains_key(*k)))
        .collect();
    audit_user(
        tx,
        actor,
        partner,
        action,
        &row.id,
        json!({"changed": changed, "active": row.active}),
        now,
    )
    .await?;
    Ok(User {
        row,
        doc,
        groups: Vec::new(),
    })
}

async fn load_for_write(tx: &mut Tx, partner: &Partner, id: &str) -> Result<User, ServiceError> {
    let row = user_store::get(tx, &partner.id, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    parse_doc(row)
}

/// Replace a user with a full SCIM body (PUT).
#[tracing::instrument(skip_all, fields(partner = %partner.slug, id = %id), err(level = "info"))]
pub async fn replace(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Result<User, ServiceError> {
    let doc = with_defaults(resource::normalize(
        body,
        &USER_RESOURCE,
        WriteMode::Replace { id },
    )?);
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let current = load_for_write(&mut tx, partner, id).await?;
    check_if_match(if_match, &current)?;
    let user = save(&mut tx, actor, partner, &current, doc, "user.replaced", now).await?;
    reconcile_user(
        &mut tx,
        deps,
        actor,
        partner,
        &user.row,
        &user.doc,
        "scim:user.replaced",
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Apply PATCH operations atomically.
#[tracing::instrument(skip_all, fields(partner = %partner.slug, id = %id), err(level = "info"))]
pub async fn patch(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    id: &str,
    ops: &[PatchOp],
    if_match: Option<&str>,
) -> Result<User, ServiceError> {
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    let current = load_for_write(&mut tx, partner, id).await?;
    check_if_match(if_match, &current)?;
    let patched = patch::apply_patch_with_id(&current.doc, ops, &USER_RESOURCE, id)?;
    let doc = with_defaults(resource::normalize(
        &Value::Object(patched),
        &USER_RESOURCE,
        WriteMode::Replace { id },
    )?);
    if doc == current.doc {
        return Ok(current);
    }
    let user = save(&mut tx, actor, partner, &current, doc, "user.patched", now).await?;
    reconcile_user(
        &mut tx,
        deps,
        actor,
        partner,
        &user.row,
        &user.doc,
        "scim:user.patched",
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Delete a user.
#[tracing::instrument(skip_all, fields(partner = %partner.slug, id = %id), err(level = "info"))]
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
    let cause = lifecycle::Cause {
        actor,
        via: "scim:user.deleted",
    };
    if let Some(guest_id) =
        lifecycle::remove_for_user(&mut tx, deps.clock.now(), id, &cause).await?
    {
        super::sync::emit(&mut tx, deps, &guest_id).await?;
    }
    if !user_store::delete(&mut tx, &partner.id, id).await? {
        return Err(ServiceError::NotFound);
    }
    audit_user(
        &mut tx,
        actor,
        partner,
        "user.deleted",
        id,
        json!({"userName": current.row.user_name}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
