//! Provisioning of a partner's people as SCIM Users. SCIM requests (and later CSV rows) go
//! through these functions: validation, uniqueness, storage, audit — one transaction each.

use serde_json::{json, Map, Value};

use super::listing::{self, ListParams, Page};
use super::{lifecycle, partner_limits, Actor, Deps, ServiceError};
use crate::domain::Partner;
use crate::mapping::PartnerLimits;
use crate::scim_core::patch::{self, PatchOp};
use crate::scim_core::resource::{self, WriteMode};
use crate::scim_core::schema::USER_RESOURCE;
use crate::store::audit::{self, AuditEntry};
use crate::store::groups as group_store;
use crate::store::is_unique_violation;
use crate::store::rate_limits;
use crate::store::scim_filter::FilterCompiler;
use crate::store::users::{self as user_store, UserRow};
use crate::store::work::Work;

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
    let doc = super::stored::document(&row.doc, "user", &row.id)?;
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

/// A normalised document as the partner's limits let it in: its e-mail domains checked,
/// defaults added, the attributes it does not keep dropped; with those limits.
fn admit(
    deps: &Deps,
    partner: &Partner,
    doc: Map<String, Value>,
) -> Result<(Map<String, Value>, PartnerLimits), ServiceError> {
    let limits = deps.rules().policy(partner.slug.as_str()).limits;
    partner_limits::check_email_domains(&limits, partner, &doc)?;
    let mut doc = with_defaults(doc);
    partner_limits::minimise(&limits, &mut doc);
    Ok((doc, limits))
}

fn is_active(doc: &Map<String, Value>) -> bool {
    doc.get("active").and_then(Value::as_bool).unwrap_or(true)
}

/// A write that makes an inactive person active again takes a place of `max_people`.
async fn check_reactivation(
    w: &mut Work,
    limits: &PartnerLimits,
    partner: &Partner,
    current: &User,
    doc: &Map<String, Value>,
) -> Result<(), ServiceError> {
    if !current.row.active && is_active(doc) {
        partner_limits::check_room(w, limits, partner).await?;
    }
    Ok(())
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

/// The values filters read from `scim_values`: not those of attributes kept in columns of
/// their own (userName, externalId, active), which filters read there; about a quarter fewer
/// rows to write per person.
fn leaves_of(doc: &Map<String, Value>) -> Vec<resource::LeafValue> {
    let mut leaves = resource::flatten(doc, &USER_RESOURCE);
    leaves.retain(|l| user_store::user_columns(&l.path, None).is_none());
    leaves
}

fn audit_user(
    w: &mut Work,
    actor: &Actor,
    partner: &Partner,
    action: &str,
    id: &str,
    detail: Value,
    now: i64,
) {
    audit::queue(
        w,
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
    );
}

fn uniqueness_error(user_name: &str) -> ServiceError {
    ServiceError::Conflict(format!(
        "userName {user_name:?} is already in use by this partner"
    ))
}

/// Create a user from a SCIM body.
#[tracing::instrument(skip_all, fields(partner = %partner.slug))]
pub async fn create(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    body: &Value,
) -> Result<User, ServiceError> {
    let doc = resource::normalize(body, &USER_RESOURCE, WriteMode::Create)?;
    let mut w = Work::begin(&deps.db);
    let created = match insert_in(&mut w, deps, actor, partner, doc, "scim:user.created", &[]).await
    {
        Ok(user) => w.commit().await.map(|_| user).map_err(ServiceError::from),
        Err(e) => {
            w.rollback().await?;
            Err(e)
        }
    };
    match created {
        Ok(user) => Ok(user),
        // The row is written with the rest of the unit, so a taken userName shows at commit.
        Err(ServiceError::Db(e)) if is_unique_violation(&e) => {
            // A client retrying a create after a timeout (Okta does) learns the existing id.
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

/// Insert a user from a normalised document within `w`: store, audit, evaluate the rules.
/// `groups` are the memberships (id, name) the caller gave the new user in `w`. The row is
/// queued with the unit's other rows, so a taken userName fails the flush or the commit as a
/// unique violation.
pub(crate) async fn insert_in(
    w: &mut Work,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    doc: Map<String, Value>,
    via: &str,
    groups: &[(String, String)],
) -> Result<User, ServiceError> {
    let (doc, limits) = admit(deps, partner, doc)?;
    if is_active(&doc) {
        partner_limits::check_room(w, &limits, partner).await?;
    }
    let id = crate::store::new_row_id();
    let now = deps.now_ms();
    let row = row_for(&id, partner, &doc, 1, now, now);
    let leaves = leaves_of(&doc);
    user_store::queue_insert(w, &row, &leaves);
    audit_user(
        w,
        actor,
        partner,
        "user.created",
        &id,
        json!({"userName": row.user_name, "active": row.active, "via": via}),
        now,
    );
    let person = Known::new_person(groups);
    reconcile_user(w, deps, actor, partner, &row, &doc, via, person).await?;
    Ok(User {
        row,
        doc,
        groups: Vec::new(),
    })
}

/// Replace an existing user's document within `tx`: store, audit, evaluate the rules.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn update_in(
    w: &mut Work,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    current: &User,
    doc: Map<String, Value>,
    action: &str,
    via: &str,
) -> Result<User, ServiceError> {
    let (doc, limits) = admit(deps, partner, doc)?;
    check_reactivation(w, &limits, partner, current, &doc).await?;
    let user = save(w, actor, partner, current, doc, action, deps.now_ms()).await?;
    reconcile_user(
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
    Ok(user)
}

/// A partner's users by userName within `w`, keyed by lower-cased userName.
pub(crate) async fn find_many_in(
    w: &mut Work,
    partner: &Partner,
    user_names: &[String],
) -> Result<std::collections::HashMap<String, User>, ServiceError> {
    let rows = user_store::by_user_names(w.conn().await?, &partner.id, user_names).await?;
    rows.into_iter()
        .map(|row| Ok((row.user_name.to_lowercase(), parse_doc(row)?)))
        .collect()
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

/// What the caller knows of a person about to be reconciled, so that it need not be read:
/// their groups, and what is known of their guest record.
#[derive(Debug, Clone)]
pub(crate) struct Known<'a> {
    /// The person's groups (id, name); None: read them.
    pub groups: Option<&'a [(String, String)]>,
    pub prior: lifecycle::Prior,
}

impl<'a> Known<'a> {
    /// Nothing: read the person's groups and guest record.
    pub const NOTHING: Known<'static> = Known {
        groups: None,
        prior: lifecycle::Prior::Unknown,
    };

    /// Created in this unit of work: these groups, and no guest record yet.
    pub fn new_person(groups: &'a [(String, String)]) -> Self {
        Known {
            groups: Some(groups),
            prior: lifecycle::Prior::NoGuest,
        }
    }

    /// Stored before this unit of work, with these groups; its guest record is read.
    pub fn existing(groups: &'a [(String, String)]) -> Self {
        Known {
            groups: Some(groups),
            prior: lifecycle::Prior::Unknown,
        }
    }
}

/// Re-evaluate the mapping rules for a person within the unit of work that changed them.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn reconcile_user(
    w: &mut Work,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    row: &UserRow,
    doc: &Map<String, Value>,
    via: &str,
    known: Known<'_>,
) -> Result<lifecycle::Outcome, ServiceError> {
    let read;
    let Known { groups, prior } = known;
    let groups = match groups {
        Some(groups) => groups,
        None => {
            read = group_store::groups_of_users(w.conn().await?, &[row.id.as_str()])
                .await?
                .into_iter()
                .map(|(_, id, name)| (id, name))
                .collect::<Vec<_>>();
            read.as_slice()
        }
    };
    let person = lifecycle::PersonView {
        user_id: &row.id,
        user_name: &row.user_name,
        active: row.active,
        email: row.primary_email.as_deref(),
        display_name: row.display_name.as_deref(),
        doc,
        groups,
    };
    let rules = super::rules_watch::in_force(w, deps).await?;
    let outcome = lifecycle::reconcile(
        w,
        &rules,
        deps.clock.now(),
        partner,
        &person,
        &lifecycle::Cause { actor, via },
        prior,
    )
    .await?;
    super::invitations::after_reconcile(w, deps, actor, partner, &outcome, doc).await?;
    Ok(outcome)
}

/// Check an `If-Match` precondition against the stored version.
fn check_if_match(if_match: Option<&str>, current: &User) -> Result<(), ServiceError> {
    super::check_if_match(if_match, &current.etag())
}

/// Store a changed document for an existing user, within the caller's transaction.
async fn save(
    w: &mut Work,
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
    let leaves = leaves_of(&doc);
    match user_store::update(w.conn().await?, &row, current.row.version, &leaves).await {
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
        w,
        actor,
        partner,
        action,
        &row.id,
        json!({"changed": changed, "active": row.active}),
        now,
    );
    Ok(User {
        row,
        doc,
        groups: Vec::new(),
    })
}

async fn load_for_write(w: &mut Work, partner: &Partner, id: &str) -> Result<User, ServiceError> {
    let row = user_store::get(w.conn().await?, &partner.id, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    parse_doc(row)
}

/// Replace a user with a full SCIM body (PUT).
#[tracing::instrument(skip_all, fields(partner = %partner.slug, id = %crate::telemetry::loggable_id(id)))]
pub async fn replace(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
) -> Result<User, ServiceError> {
    let (doc, limits) = admit(
        deps,
        partner,
        resource::normalize(body, &USER_RESOURCE, WriteMode::Replace { id })?,
    )?;
    let now = deps.now_ms();
    let mut w = Work::begin(&deps.db);
    let current = load_for_write(&mut w, partner, id).await?;
    check_if_match(if_match, &current)?;
    check_reactivation(&mut w, &limits, partner, &current, &doc).await?;
    let user = save(&mut w, actor, partner, &current, doc, "user.replaced", now).await?;
    if current.row.active && !user.row.active {
        w = count_deactivation(w, deps, actor, partner, id, now).await?;
    }
    reconcile_user(
        &mut w,
        deps,
        actor,
        partner,
        &user.row,
        &user.doc,
        "scim:user.replaced",
        Known::NOTHING,
    )
    .await?;
    w.commit().await?;
    Ok(user)
}

/// Apply PATCH operations atomically.
#[tracing::instrument(skip_all, fields(partner = %partner.slug, id = %crate::telemetry::loggable_id(id)))]
pub async fn patch(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    id: &str,
    ops: &[PatchOp],
    if_match: Option<&str>,
) -> Result<User, ServiceError> {
    let now = deps.now_ms();
    let mut w = Work::begin(&deps.db);
    let current = load_for_write(&mut w, partner, id).await?;
    check_if_match(if_match, &current)?;
    let patched = patch::apply_patch_with_id(&current.doc, ops, &USER_RESOURCE, id)?;
    let (doc, limits) = admit(
        deps,
        partner,
        resource::normalize(
            &Value::Object(patched),
            &USER_RESOURCE,
            WriteMode::Replace { id },
        )?,
    )?;
    if doc == current.doc {
        return Ok(current);
    }
    check_reactivation(&mut w, &limits, partner, &current, &doc).await?;
    let user = save(&mut w, actor, partner, &current, doc, "user.patched", now).await?;
    if current.row.active && !user.row.active {
        w = count_deactivation(w, deps, actor, partner, id, now).await?;
    }
    reconcile_user(
        &mut w,
        deps,
        actor,
        partner,
        &user.row,
        &user.doc,
        "scim:user.patched",
        Known::NOTHING,
    )
    .await?;
    w.commit().await?;
    Ok(user)
}

/// The window of a partner's deactivation count.
const HOUR_MS: i64 = 60 * 60 * 1000;

/// Count one deactivation (or deletion of an active person) against the partner's
/// `max_deactivations_per_hour`, in `w`, and hand `w` back. Past the limit, `w` is rolled back
/// (count included) and the refusal is audited and returned ([`refuse_deactivation`]).
async fn count_deactivation(
    mut w: Work,
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    user_id: &str,
    now: i64,
) -> Result<Work, ServiceError> {
    let Some(limit) = deps
        .rules()
        .policy(partner.slug.as_str())
        .max_deactivations_per_hour
    else {
        return Ok(w);
    };
    let key = format!("deactivations:{}", partner.id);
    let count = rate_limits::hit(w.conn().await?, &key, now, HOUR_MS).await?;
    if count <= i64::from(limit) {
        return Ok(w);
    }
    w.rollback().await?;
    Err(refuse_deactivation(deps, actor, partner, user_id, limit, now).await)
}

/// The refusal of a deactivation past the partner's limit, audited (after the refused unit
/// of work has ended, which on SQLite held the writer's turn).
async fn refuse_deactivation(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    user_id: &str,
    limit: u32,
    now: i64,
) -> ServiceError {
    tracing::warn!(partner = %partner.slug, limit, "deactivation refused: the partner's hourly limit is reached");
    let audited = async {
        let mut w = Work::begin(&deps.db);
        audit_user(
            &mut w,
            actor,
            partner,
            "user.deactivation_refused",
            user_id,
            json!({"max_deactivations_per_hour": limit}),
            now,
        );
        w.commit().await
    };
    if let Err(e) = audited.await {
        return e.into();
    }
    ServiceError::TooMany {
        message: format!(
            "partner {} has deactivated or deleted {limit} people in this hour, its limit \
             (max_deactivations_per_hour in the mapping rules); this person stays active. \
             Retry after the hour, or ask the identity admins to raise the limit",
            partner.slug
        ),
        // The count is kept per clock hour.
        retry_after_secs: u64::try_from(HOUR_MS - now.rem_euclid(HOUR_MS)).unwrap_or(0) / 1000 + 1,
    }
}

/// Delete a user.
#[tracing::instrument(skip_all, fields(partner = %partner.slug, id = %crate::telemetry::loggable_id(id)))]
pub async fn delete(
    deps: &Deps,
    actor: &Actor,
    partner: &Partner,
    id: &str,
    if_match: Option<&str>,
) -> Result<(), ServiceError> {
    let now = deps.now_ms();
    let mut w = Work::begin(&deps.db);
    let current = load_for_write(&mut w, partner, id).await?;
    check_if_match(if_match, &current)?;
    if current.row.active {
        w = count_deactivation(w, deps, actor, partner, id, now).await?;
    }
    let cause = lifecycle::Cause {
        actor,
        via: "scim:user.deleted",
    };
    lifecycle::remove_for_user(&mut w, deps, id, &cause).await?;
    if !user_store::delete(w.conn().await?, &partner.id, id).await? {
        return Err(ServiceError::NotFound);
    }
    audit_user(
        &mut w,
        actor,
        partner,
        "user.deleted",
        id,
        json!({"userName": current.row.user_name}),
        now,
    );
    w.commit().await?;
    Ok(())
}
