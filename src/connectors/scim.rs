//! The SCIM 2.0 target connector: guests as Users of a downstream SCIM server (RFC 7643
//! §4.1, RFC 7644 §3) with its own bearer token, app grants as memberships of Groups named
//! `{group_prefix}{app}:{role}`. The downstream server may be another Guestbridge (its
//! `/scim/v2` with a partner token), or a directory shared with the host's own staff.
//!
//! - Which user a guest is comes from this target's ownership records
//!   ([`crate::store::ownership`]): the id of the user Guestbridge created, or adopted. The
//!   user is read by that id (`GET /Users/{id}`), so a changed externalId does not lose it.
//! - Without a record, an enable or hold may adopt the one user whose `externalId` is the
//!   guest's id (`externalId eq "<guest_id>"`, RFC 7644 §3.4.2.2; several are refused), so a
//!   retry or a replay never creates a second user. Suspensions and removals act only on
//!   recorded users: without a record there is nothing of ours to suspend.
//! - Enable (`active`, `invited`) and hold (`pending_approval`): `POST /Users` if absent
//!   (userName = the email, else the partner's userName; `active` only when enabled; the new
//!   id is recorded), else the attributes that differ are replaced (`PATCH`, or a `PUT` of the
//!   fetched user with them changed when the target's `/ServiceProviderConfig` says
//!   `patch.supported: false`). Then memberships: the user is added to the groups of its
//!   grants (found by `displayName eq`, created if absent) and removed from every other group
//!   whose name has the prefix; a held user is in none.
//! - Suspend: `active: false` and out of every prefixed group; an absent user stays absent.
//! - Remove: `DELETE /Users/{id}` and the record is dropped; absent or `404` is success.
//! - Reconciliation ([`reconcile`]) plans, then applies, and changes only recorded users.
//!
//! The ServiceProviderConfig (RFC 7643 §5) is read once per connector: without
//! `filter.supported` look-ups list all users or groups and match here, and pages are at
//! most `filter.maxResults`. Bulk is not used: one guest's change is a few requests.
//! Grants' `valid_until` is not pushed: Guestbridge removes the grant when it ends.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, PoisonError};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::http::{self, path_segment, request_key, Reply, IDEMPOTENCY_KEY};
use super::{BoxFuture, ConfigError, Connector, DeliveryError, GuestEvent, GuestSnapshot, Intent};
use crate::store::ownership::{Owned, OwnershipStore};

pub mod reconcile;
pub use reconcile::{Action, ActionKind, DriftReport, Expected, ReconcilePlan, Unowned};

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const SCIM_JSON: &str = "application/scim+json";
/// Largest page asked for (lower if the target's `filter.maxResults` says so).
const PAGE_SIZE: usize = 100;
/// A list longer than this many pages is refused rather than followed for ever.
const MAX_PAGES: usize = 10_000;

fn default_group_prefix() -> String {
    "gb-".to_string()
}

/// A downstream SCIM server and how grants are named there.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimTarget {
    /// The SCIM base URL, e.g. `https://other.example/scim/v2`.
    pub base_url: String,
    /// The bearer token the target issued to us; never logged.
    pub bearer_token: String,
    /// Groups whose displayName starts with this are Guestbridge's to manage (not empty).
    #[serde(default = "default_group_prefix")]
    pub group_prefix: String,
}

impl fmt::Debug for ScimTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScimTarget")
            .field("base_url", &self.base_url)
            .field("bearer_token", &"[redacted]")
            .field("group_prefix", &self.group_prefix)
            .finish()
    }
}

/// What the target's ServiceProviderConfig lets us use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// `patch.supported`: PATCH, else PUT of the whole resource.
    pub patch: bool,
    /// `filter.supported`: filtered look-ups, else listing and matching here.
    pub filter: bool,
    /// The page size asked for.
    pub page_size: usize,
}

impl Capabilities {
    /// What a target without a ServiceProviderConfig is assumed to do: only the basics.
    pub const MINIMAL: Capabilities = Capabilities {
        patch: false,
        filter: false,
        page_size: PAGE_SIZE,
    };

    /// From a ServiceProviderConfig (RFC 7643 §5); a missing feature is unsupported.
    pub fn from_config(config: &Value) -> Self {
        let max = config["filter"]["maxResults"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0);
        Capabilities {
            patch: config["patch"]["supported"].as_bool().unwrap_or(false),
            filter: config["filter"]["supported"].as_bool().unwrap_or(false),
            page_size: max.map_or(PAGE_SIZE, |m| m.min(PAGE_SIZE)),
        }
    }
}

/// Pushes guests to one SCIM 2.0 server.
pub struct ScimConnector {
    name: String,
    base: String,
    token: String,
    prefix: String,
    http: reqwest::Client,
    capabilities: tokio::sync::OnceCell<Capabilities>,
    /// Group displayName → id, as found or created.
    group_ids: Mutex<HashMap<String, String>>,
    /// Which user each guest is at this target (the only users this connector changes).
    owned: OwnershipStore,
}

impl fmt::Debug for ScimConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScimConnector")
            .field("name", &self.name)
            .field("base", &self.base)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// What converging one user did (or would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Created,
    Updated,
    /// Active before, inactive (and out of our groups) after.
    Deactivated,
    Deleted,
    Unchanged,
}

/// A user as found: its id and document.
#[derive(Debug, Clone)]
struct Found {
    id: String,
    doc: Value,
}

impl ScimConnector {
    /// `db` holds the ownership records of this target (by `name`).
    pub fn new(
        name: impl Into<String>,
        target: ScimTarget,
        db: crate::store::Db,
    ) -> Result<Self, ConfigError> {
        let name = name.into();
        let base = http::base_url("base_url", &target.base_url)?;
        http::non_empty("bearer_token", &target.bearer_token)?;
        // An empty prefix would put every group of the target under our management.
        http::non_empty("group_prefix", &target.group_prefix)?;
        Ok(ScimConnector {
            owned: OwnershipStore::new(db, name.clone()),
            name,
            base,
            token: target.bearer_token,
            prefix: target.group_prefix,
            http: http::client()?,
            capabilities: tokio::sync::OnceCell::new(),
            group_ids: Mutex::new(HashMap::new()),
        })
    }

    /// The target's capabilities, read from `/ServiceProviderConfig` on first use; a target
    /// without one (404) gets [`Capabilities::MINIMAL`]; other failures are not cached.
    pub async fn capabilities(&self) -> Result<Capabilities, DeliveryError> {
        self.capabilities
            .get_or_try_init(|| async {
                let url = format!("{}/ServiceProviderConfig", self.base);
                let reply = self.get(&url, &[]).await?;
                if reply.status.as_u16() == 404 {
                    tracing::warn!(connector = %self.name, "no ServiceProviderConfig; using PUT and unfiltered lists");
                    return Ok(Capabilities::MINIMAL);
                }
                if !reply.is_success() {
                    return Err(reply.error().context("ServiceProviderConfig"));
                }
                Ok(Capabilities::from_config(&reply.json()?))
            })
            .await
            .copied()
    }

    #[tracing::instrument(skip_all, fields(connector = %self.name, event_id = %event.event_id, kind = event.kind.webhook_type()), err(level = "warn", Display))]
    async fn push(&self, event: &GuestEvent) -> Result<(), DeliveryError> {
        let caps = self.capabilities().await?;
        let guest_id = &event.guest.guest_id;
        let intent = event.guest.intent(event.kind);
        let mut existing = self.owned_user(guest_id).await?;
        // Only a user that is to have or await access may be taken over; suspensions and
        // removals touch nothing this target's records do not name.
        if existing.is_none() && matches!(intent, Intent::Enable | Intent::Hold) {
            existing = self.adopt(&caps, guest_id).await?;
        }
        self.converge(&caps, &event.event_id, &event.guest, intent, existing, None)
            .await
            .map(|_| ())
    }

    /// Bring one guest's user to what `intent` says. `current` is the user's prefixed
    /// groups (name → id) when already known, else they are looked up.
    async fn converge(
        &self,
        caps: &Capabilities,
        key: &str,
        guest: &GuestSnapshot,
        intent: Intent,
        existing: Option<Found>,
        current: Option<BTreeMap<String, String>>,
    ) -> Result<Outcome, DeliveryError> {
        match (intent, existing) {
            (Intent::Remove, None) | (Intent::Suspend, None) => Ok(Outcome::Unchanged),
            (Intent::Remove, Some(user)) => {
                let url = self.user_url(&user.id);
                let reply = self.mutate(Method::DELETE, &url, None, key).await?;
                if reply.is_success() || reply.status.as_u16() == 404 {
                    self.owned
                        .forget(&guest.guest_id, &user.id)
                        .await
                        .map_err(|e| store_error(e, &user.id))?;
                    Ok(Outcome::Deleted)
                } else {
                    Err(reply.error().context("delete user"))
                }
            }
            (Intent::Suspend, Some(user)) => {
                let current = self.current_or_lookup(caps, &user.id, current).await?;
                let was_active = is_active(&user.doc);
                Ok(match self.deactivate(caps, key, &user, &current).await? {
                    true if was_active => Outcome::Deactivated,
                    true => Outcome::Updated,
                    false => Outcome::Unchanged,
                })
            }
            (Intent::Enable | Intent::Hold, existing) => {
                let desired = DesiredUser::from_snapshot(guest, intent == Intent::Enable);
                let wanted = if intent == Intent::Enable {
                    group_names(&self.prefix, guest)
                } else {
                    BTreeSet::new()
                };
                let was_active = existing.as_ref().is_some_and(|u| is_active(&u.doc));
                let (user, mut outcome, current) = match existing {
                    None => match self.create_user(caps, key, &desired).await? {
                        (user, true) => (user, Outcome::Created, Some(BTreeMap::new())),
                        // Created meanwhile (a concurrent or earlier lost attempt).
                        (user, false) => (user, Outcome::Unchanged, None),
                    },
                    Some(user) => (user, Outcome::Unchanged, current),
                };
                if outcome != Outcome::Created
                    && self.update_user(caps, key, &user, &desired).await?
                {
                    outcome = Outcome::Updated;
                }
                let current = self.current_or_lookup(caps, &user.id, current).await?;
                if self
                    .sync_memberships(caps, key, &user.id, &wanted, &current)
                    .await?
                    && outcome == Outcome::Unchanged
                {
                    outcome = Outcome::Updated;
                }
                if outcome == Outcome::Updated && was_active && !desired.active {
                    outcome = Outcome::Deactivated;
                }
                Ok(outcome)
            }
        }
    }

    /// `active: false` and out of every prefixed group; whether anything changed.
    async fn deactivate(
        &self,
        caps: &Capabilities,
        key: &str,
        user: &Found,
        current: &BTreeMap<String, String>,
    ) -> Result<bool, DeliveryError> {
        let mut changed = false;
        if user.doc["active"].as_bool().unwrap_or(true) {
            let ops = vec![replace_op("active", json!(false))];
            let mut put = user.doc.clone();
            if let Some(doc) = put.as_object_mut() {
                strip_read_only(doc);
                doc.insert("active".into(), json!(false));
            }
            self.write_user(caps, key, &user.id, ops, put).await?;
            changed = true;
        }
        let removed = self
            .sync_memberships(caps, key, &user.id, &BTreeSet::new(), current)
            .await?;
        Ok(changed || removed)
    }

    async fn current_or_lookup(
        &self,
        caps: &Capabilities,
        user_id: &str,
        current: Option<BTreeMap<String, String>>,
    ) -> Result<BTreeMap<String, String>, DeliveryError> {
        match current {
            Some(current) => Ok(current),
            None => self.groups_of(caps, user_id).await,
        }
    }

    /// The user this target's records say `guest_id` is; a record of a user deleted at the
    /// target meanwhile is dropped.
    async fn owned_user(&self, guest_id: &str) -> Result<Option<Found>, DeliveryError> {
        let Some(owned) = self
            .owned
            .get(guest_id)
            .await
            .map_err(|e| store_error(e, guest_id))?
        else {
            return Ok(None);
        };
        let found = self.get_user(&owned.remote_id).await?;
        if found.is_none() {
            self.owned
                .forget(guest_id, &owned.remote_id)
                .await
                .map_err(|e| store_error(e, &owned.remote_id))?;
        }
        Ok(found)
    }

    /// Take over the one user whose externalId is the guest's id (created by an earlier
    /// Guestbridge, or before records were kept); several are refused.
    async fn adopt(
        &self,
        caps: &Capabilities,
        guest_id: &str,
    ) -> Result<Option<Found>, DeliveryError> {
        let Some(user) = self.find_user(caps, guest_id).await? else {
            return Ok(None);
        };
        self.record(guest_id, &user.id, true).await?;
        tracing::info!(connector = %self.name, guest_id, remote_id = %user.id, "adopted an existing user by externalId");
        Ok(Some(user))
    }

    async fn record(
        &self,
        guest_id: &str,
        remote_id: &str,
        adopted: bool,
    ) -> Result<(), DeliveryError> {
        let owned = Owned {
            guest_id: guest_id.to_string(),
            remote_id: remote_id.to_string(),
            adopted,
        };
        self.owned
            .record(&owned)
            .await
            .map_err(|e| store_error(e, remote_id))
    }

    /// `GET /Users/{id}`; `None` on 404.
    async fn get_user(&self, id: &str) -> Result<Option<Found>, DeliveryError> {
        let reply = self.get(&self.user_url(id), &[]).await?;
        if reply.status.as_u16() == 404 {
            return Ok(None);
        }
        if !reply.is_success() {
            return Err(reply.error().context("get user"));
        }
        Ok(Some(found(reply.json()?)?))
    }

    /// The user whose externalId is `external_id`, if any.
    async fn find_user(
        &self,
        caps: &Capabilities,
        external_id: &str,
    ) -> Result<Option<Found>, DeliveryError> {
        let matches: Vec<Value> = if caps.filter {
            let filter = format!("externalId eq {}", filter_literal(external_id));
            self.list_all(caps, "Users", Some(filter), &[]).await?
        } else {
            self.list_all(caps, "Users", None, &[]).await?
        }
        .into_iter()
        .filter(|doc| doc["externalId"].as_str() == Some(external_id))
        .collect();
        match matches.as_slice() {
            [] => Ok(None),
            [doc] => Ok(Some(found(doc.clone())?)),
            _ => Err(duplicate_external_id(external_id)),
        }
    }

    /// `POST /Users`; the user and whether this call created it. A `409` (the userName is
    /// taken) is fine when the holder has our externalId (created by a lost earlier try).
    async fn create_user(
        &self,
        caps: &Capabilities,
        key: &str,
        desired: &DesiredUser,
    ) -> Result<(Found, bool), DeliveryError> {
        let url = format!("{}/Users", self.base);
        let body = desired.resource();
        let reply = self.mutate(Method::POST, &url, Some(&body), key).await?;
        if reply.is_success() {
            let user = found(reply.json()?)?;
            self.record(&desired.external_id, &user.id, false).await?;
            return Ok((user, true));
        }
        if reply.status.as_u16() == 409 {
            if let Some(user) = self.find_user(caps, &desired.external_id).await? {
                self.record(&desired.external_id, &user.id, true).await?;
                return Ok((user, false));
            }
            return Err(DeliveryError::permanent(format!(
                "create user: userName {:?} is taken at the target by a user without externalId {:?}: {}",
                desired.user_name,
                desired.external_id,
                http::snippet(&reply.body)
            )));
        }
        Err(reply.error().context("create user"))
    }

    /// Replace the attributes that differ; whether there were any.
    async fn update_user(
        &self,
        caps: &Capabilities,
        key: &str,
        user: &Found,
        desired: &DesiredUser,
    ) -> Result<bool, DeliveryError> {
        let ops = desired.patch_ops(&user.doc);
        if ops.is_empty() {
            return Ok(false);
        }
        let put = desired.apply(&user.doc);
        self.write_user(caps, key, &user.id, ops, put).await?;
        Ok(true)
    }

    /// PATCH with `ops`, or PUT `put` where the target has no PATCH.
    async fn write_user(
        &self,
        caps: &Capabilities,
        key: &str,
        user_id: &str,
        ops: Vec<Value>,
        put: Value,
    ) -> Result<(), DeliveryError> {
        let url = self.user_url(user_id);
        let reply = if caps.patch {
            self.mutate(Method::PATCH, &url, Some(&patch_request(ops)), key)
                .await?
        } else {
            self.mutate(Method::PUT, &url, Some(&put), key).await?
        };
        if reply.is_success() {
            Ok(())
        } else {
            Err(reply.error().context("update user"))
        }
    }

    /// Add the user to `wanted` groups it is not in, remove it from the prefixed groups in
    /// `current` (name → id) it should not be in; whether anything changed.
    async fn sync_memberships(
        &self,
        caps: &Capabilities,
        key: &str,
        user_id: &str,
        wanted: &BTreeSet<String>,
        current: &BTreeMap<String, String>,
    ) -> Result<bool, DeliveryError> {
        let plan = MembershipPlan::new(wanted, current);
        for name in &plan.add {
            let group_id = self.ensure_group(caps, key, name).await?;
            self.change_membership(caps, key, name, &group_id, user_id, true)
                .await?;
        }
        for (name, group_id) in &plan.remove {
            self.change_membership(caps, key, name, group_id, user_id, false)
                .await?;
        }
        Ok(!plan.is_empty())
    }

    async fn change_membership(
        &self,
        caps: &Capabilities,
        key: &str,
        name: &str,
        group_id: &str,
        user_id: &str,
        add: bool,
    ) -> Result<(), DeliveryError> {
        let url = format!("{}/Groups/{}", self.base, path_segment(group_id));
        let reply = if caps.patch {
            let op = if add {
                add_member_op(user_id)
            } else {
                remove_member_op(user_id)
            };
            self.mutate(Method::PATCH, &url, Some(&patch_request(vec![op])), key)
                .await?
        } else {
            let reply = self.get(&url, &[]).await?;
            if reply.is_success() {
                let body = group_with_member(&reply.json()?, user_id, add);
                self.mutate(Method::PUT, &url, Some(&body), key).await?
            } else {
                reply
            }
        };
        if reply.is_success() {
            return Ok(());
        }
        if reply.status.as_u16() == 404 {
            // Deleted at the target since we cached it: find or create it again next time.
            self.forget_group(name);
            if !add {
                return Ok(());
            }
            return Err(DeliveryError::transient(format!(
                "group {name:?} vanished at the target"
            )));
        }
        Err(reply.error().context(if add {
            "add group member"
        } else {
            "remove group member"
        }))
    }

    /// The id of the group `name`: cached, found by `displayName eq`, or created.
    async fn ensure_group(
        &self,
        caps: &Capabilities,
        key: &str,
        name: &str,
    ) -> Result<String, DeliveryError> {
        if let Some(id) = self.cached_group(name) {
            return Ok(id);
        }
        if let Some(id) = self.find_group(caps, name).await? {
            self.cache_group(name, &id);
            return Ok(id);
        }
        let url = format!("{}/Groups", self.base);
        let body = json!({ "schemas": [GROUP_SCHEMA], "displayName": name });
        let reply = self.mutate(Method::POST, &url, Some(&body), key).await?;
        let id = if reply.is_success() {
            found(reply.json()?)?.id
        } else if reply.status.as_u16() == 409 {
            self.find_group(caps, name)
                .await?
                .ok_or_else(|| reply.error().context("create group"))?
        } else {
            return Err(reply.error().context("create group"));
        };
        self.cache_group(name, &id);
        Ok(id)
    }

    async fn find_group(
        &self,
        caps: &Capabilities,
        name: &str,
    ) -> Result<Option<String>, DeliveryError> {
        let filter = caps
            .filter
            .then(|| format!("displayName eq {}", filter_literal(name)));
        let groups = self
            .list_all(caps, "Groups", filter, &[("excludedAttributes", "members")])
            .await?;
        Ok(groups
            .iter()
            .find(|g| g["displayName"].as_str() == Some(name))
            .and_then(|g| g["id"].as_str())
            .map(str::to_string))
    }

    /// The prefixed groups the user is a member of (name → id).
    async fn groups_of(
        &self,
        caps: &Capabilities,
        user_id: &str,
    ) -> Result<BTreeMap<String, String>, DeliveryError> {
        let groups = if caps.filter {
            let filter = format!(
                "displayName sw {} and members.value eq {}",
                filter_literal(&self.prefix),
                filter_literal(user_id)
            );
            self.list_all(
                caps,
                "Groups",
                Some(filter),
                &[("attributes", "displayName")],
            )
            .await?
        } else {
            self.list_all(caps, "Groups", None, &[])
                .await?
                .into_iter()
                .filter(|g| members(g).any(|m| m == user_id))
                .collect()
        };
        let mut out = BTreeMap::new();
        for group in groups {
            if let (Some(name), Some(id)) = (group["displayName"].as_str(), group["id"].as_str()) {
                if name.starts_with(&self.prefix) {
                    self.cache_group(name, id);
                    out.insert(name.to_string(), id.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Every prefixed group's members: user id → (group name → group id).
    async fn prefixed_memberships(
        &self,
        caps: &Capabilities,
    ) -> Result<HashMap<String, BTreeMap<String, String>>, DeliveryError> {
        let filter = caps
            .filter
            .then(|| format!("displayName sw {}", filter_literal(&self.prefix)));
        let mut out: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        for group in self.list_all(caps, "Groups", filter, &[]).await? {
            let (Some(name), Some(id)) = (group["displayName"].as_str(), group["id"].as_str())
            else {
                continue;
            };
            if !name.starts_with(&self.prefix) {
                continue;
            }
            self.cache_group(name, id);
            for member in members(&group) {
                out.entry(member.to_string())
                    .or_default()
                    .insert(name.to_string(), id.to_string());
            }
        }
        Ok(out)
    }

    /// All resources of a list, page by page (RFC 7644 §3.4.2.4, `startIndex`/`count`).
    async fn list_all(
        &self,
        caps: &Capabilities,
        resource: &str,
        filter: Option<String>,
        extra: &[(&str, &str)],
    ) -> Result<Vec<Value>, DeliveryError> {
        let url = format!("{}/{resource}", self.base);
        let mut out = Vec::new();
        let mut start = 1usize;
        for _ in 0..MAX_PAGES {
            let mut query: Vec<(&str, String)> = vec![
                ("startIndex", start.to_string()),
                ("count", caps.page_size.to_string()),
            ];
            if let Some(filter) = &filter {
                query.push(("filter", filter.clone()));
            }
            query.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
            let reply = self.get(&url, &query).await?;
            if !reply.is_success() {
                return Err(reply.error().context(&format!("list {resource}")));
            }
            let page = ListPage::parse(&reply.json()?);
            let got = page.resources.len();
            out.extend(page.resources);
            start += got;
            if got == 0 || page.total.is_none_or(|total| out.len() >= total) {
                return Ok(out);
            }
        }
        Err(DeliveryError::transient(format!(
            "list {resource}: more than {MAX_PAGES} pages"
        )))
    }

    pub(crate) fn user_url(&self, id: &str) -> String {
        format!("{}/Users/{}", self.base, path_segment(id))
    }

    fn cached_group(&self, name: &str) -> Option<String> {
        self.group_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn cache_group(&self, name: &str, id: &str) {
        self.group_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), id.to_string());
    }

    fn forget_group(&self, name: &str) {
        self.group_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    async fn get(&self, url: &str, query: &[(&str, String)]) -> Result<Reply, DeliveryError> {
        http::send(
            self.http
                .get(url)
                .query(query)
                .header(ACCEPT, "application/scim+json, application/json")
                .header(AUTHORIZATION, format!("Bearer {}", self.token)),
        )
        .await
    }

    async fn mutate(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        key: &str,
    ) -> Result<Reply, DeliveryError> {
        let bytes = match body {
            Some(body) => serde_json::to_vec(body)
                .map_err(|e| DeliveryError::permanent(format!("cannot encode request: {e}")))?,
            None => Vec::new(),
        };
        let mut request = self
            .http
            .request(method.clone(), url)
            .header(ACCEPT, "application/scim+json, application/json")
            .header(AUTHORIZATION, format!("Bearer {}", self.token))
            .header(
                IDEMPOTENCY_KEY,
                request_key(key, method.as_str(), url, &bytes),
            );
        if body.is_some() {
            request = request.header(CONTENT_TYPE, SCIM_JSON).body(bytes);
        }
        http::send(request).await
    }
}

impl Connector for ScimConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(&'a self, event: &'a GuestEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(self.push(event))
    }
}

fn found(doc: Value) -> Result<Found, DeliveryError> {
    let id = doc["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| DeliveryError::transient("the target returned a resource without id"))?;
    Ok(Found { id, doc })
}

/// Whether a SCIM user is active (absent `active` counts as active).
fn is_active(doc: &Value) -> bool {
    doc["active"].as_bool().unwrap_or(true)
}

fn store_error(err: crate::store::DbError, remote_id: &str) -> DeliveryError {
    if crate::store::is_unique_violation(&err) {
        DeliveryError::permanent(format!(
            "user {remote_id:?} at the target is already another guest's; not taking it over"
        ))
    } else {
        DeliveryError::transient(format!("ownership records: {err}"))
    }
}

fn duplicate_external_id(external_id: &str) -> DeliveryError {
    DeliveryError::permanent(format!(
        "several users at the target carry externalId {external_id:?}"
    ))
}

/// One page of a ListResponse (RFC 7644 §3.4.2).
struct ListPage {
    resources: Vec<Value>,
    total: Option<usize>,
}

impl ListPage {
    fn parse(page: &Value) -> Self {
        ListPage {
            resources: page["Resources"].as_array().cloned().unwrap_or_default(),
            total: page["totalResults"]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok()),
        }
    }
}

/// The user as the target should hold it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DesiredUser {
    pub user_name: String,
    pub external_id: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub email: Option<String>,
    pub active: bool,
}

fn non_blank(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl DesiredUser {
    pub(crate) fn from_snapshot(guest: &GuestSnapshot, active: bool) -> Self {
        let email = non_blank(&guest.email);
        DesiredUser {
            user_name: email.clone().unwrap_or_else(|| guest.user_name.clone()),
            external_id: guest.guest_id.clone(),
            display_name: non_blank(&guest.display_name),
            given_name: non_blank(&guest.given_name),
            family_name: non_blank(&guest.family_name),
            email,
            active,
        }
    }

    /// The `POST /Users` body.
    pub(crate) fn resource(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("schemas".into(), json!([USER_SCHEMA]));
        doc.insert("userName".into(), json!(self.user_name));
        doc.insert("externalId".into(), json!(self.external_id));
        if let Some(display) = &self.display_name {
            doc.insert("displayName".into(), json!(display));
        }
        let mut name = Map::new();
        if let Some(given) = &self.given_name {
            name.insert("givenName".into(), json!(given));
        }
        if let Some(family) = &self.family_name {
            name.insert("familyName".into(), json!(family));
        }
        if !name.is_empty() {
            doc.insert("name".into(), Value::Object(name));
        }
        if let Some(email) = &self.email {
            doc.insert("emails".into(), emails_value(email));
        }
        doc.insert("active".into(), json!(self.active));
        Value::Object(doc)
    }

    /// PATCH operations (RFC 7644 §3.5.2) turning `existing` into this user; empty when
    /// nothing we manage differs. userName and emails compare case-insensitively (RFC 7643
    /// §4.1.1, §4.1.2: caseExact false).
    pub(crate) fn patch_ops(&self, existing: &Value) -> Vec<Value> {
        let mut ops = Vec::new();
        let same_user_name = existing["userName"]
            .as_str()
            .is_some_and(|u| u.to_lowercase() == self.user_name.to_lowercase());
        if !same_user_name {
            ops.push(replace_op("userName", json!(self.user_name)));
        }
        if existing["externalId"].as_str() != Some(self.external_id.as_str()) {
            ops.push(replace_op("externalId", json!(self.external_id)));
        }
        optional_op(
            &mut ops,
            "displayName",
            &existing["displayName"],
            &self.display_name,
        );
        optional_op(
            &mut ops,
            "name.givenName",
            &existing["name"]["givenName"],
            &self.given_name,
        );
        optional_op(
            &mut ops,
            "name.familyName",
            &existing["name"]["familyName"],
            &self.family_name,
        );
        match (primary_email(existing), &self.email) {
            (Some(have), Some(want)) if have.to_lowercase() == want.to_lowercase() => {}
            (_, Some(want)) => ops.push(replace_op("emails", emails_value(want))),
            (Some(_), None) => ops.push(json!({ "op": "remove", "path": "emails" })),
            (None, None) => {}
        }
        if existing["active"].as_bool().unwrap_or(true) != self.active {
            ops.push(replace_op("active", json!(self.active)));
        }
        ops
    }

    /// The `PUT /Users/{id}` body: `existing` (less its read-only parts) with what we manage
    /// replaced, so attributes set by others survive.
    pub(crate) fn apply(&self, existing: &Value) -> Value {
        let mut doc = existing.as_object().cloned().unwrap_or_default();
        strip_read_only(&mut doc);
        if !doc.contains_key("schemas") {
            doc.insert("schemas".into(), json!([USER_SCHEMA]));
        }
        doc.insert("userName".into(), json!(self.user_name));
        doc.insert("externalId".into(), json!(self.external_id));
        set_or_remove(&mut doc, "displayName", &self.display_name);
        let mut name = doc
            .get("name")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        set_or_remove(&mut name, "givenName", &self.given_name);
        set_or_remove(&mut name, "familyName", &self.family_name);
        if name.is_empty() {
            doc.remove("name");
        } else {
            doc.insert("name".into(), Value::Object(name));
        }
        match (primary_email(existing), &self.email) {
            (Some(have), Some(want)) if have.to_lowercase() == want.to_lowercase() => {}
            (_, Some(want)) => {
                doc.insert("emails".into(), emails_value(want));
            }
            (_, None) => {
                doc.remove("emails");
            }
        }
        doc.insert("active".into(), json!(self.active));
        Value::Object(doc)
    }
}

/// Which memberships to add (group names) and remove (name, id).
#[derive(Debug, PartialEq)]
pub(crate) struct MembershipPlan {
    pub add: Vec<String>,
    pub remove: Vec<(String, String)>,
}

impl MembershipPlan {
    pub(crate) fn new(wanted: &BTreeSet<String>, current: &BTreeMap<String, String>) -> Self {
        MembershipPlan {
            add: wanted
                .iter()
                .filter(|name| !current.contains_key(*name))
                .cloned()
                .collect(),
            remove: current
                .iter()
                .filter(|(name, _)| !wanted.contains(*name))
                .map(|(name, id)| (name.clone(), id.clone()))
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// The group names a guest's grants call for: `{prefix}{app}:{role}`.
pub(crate) fn group_names(prefix: &str, guest: &GuestSnapshot) -> BTreeSet<String> {
    guest
        .grant_keys()
        .into_iter()
        .map(|key| format!("{prefix}{key}"))
        .collect()
}

/// A filter comparison value: a JSON string (RFC 7644 §3.4.2.2), quotes and backslashes
/// escaped.
pub(crate) fn filter_literal(value: &str) -> String {
    Value::String(value.to_string()).to_string()
}

fn patch_request(ops: Vec<Value>) -> Value {
    json!({ "schemas": [PATCH_SCHEMA], "Operations": ops })
}

fn replace_op(path: &str, value: Value) -> Value {
    json!({ "op": "replace", "path": path, "value": value })
}

fn add_member_op(user_id: &str) -> Value {
    json!({ "op": "add", "path": "members", "value": [{ "value": user_id }] })
}

fn remove_member_op(user_id: &str) -> Value {
    json!({ "op": "remove", "path": format!("members[value eq {}]", filter_literal(user_id)) })
}

/// Replace when `want` differs, remove when we want none and the target has one.
fn optional_op(ops: &mut Vec<Value>, path: &str, have: &Value, want: &Option<String>) {
    match (have.as_str(), want) {
        (Some(have), Some(want)) if have == want => {}
        (_, Some(want)) => ops.push(replace_op(path, json!(want))),
        (Some(_), None) => ops.push(json!({ "op": "remove", "path": path })),
        (None, None) => {}
    }
}

fn set_or_remove(doc: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    match value {
        Some(value) => {
            doc.insert(key.to_string(), json!(value));
        }
        None => {
            doc.remove(key);
        }
    }
}

fn emails_value(email: &str) -> Value {
    json!([{ "value": email, "type": "work", "primary": true }])
}

/// The primary email, else the first.
fn primary_email(user: &Value) -> Option<&str> {
    let emails = user["emails"].as_array()?;
    emails
        .iter()
        .find(|e| e["primary"].as_bool() == Some(true))
        .or_else(|| emails.first())
        .and_then(|e| e["value"].as_str())
}

/// Attributes a client does not send back (RFC 7643 §2.2 mutability readOnly).
fn strip_read_only(doc: &mut Map<String, Value>) {
    doc.remove("meta");
    doc.remove("groups");
}

fn members(group: &Value) -> impl Iterator<Item = &str> {
    group["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["value"].as_str())
}

/// The `PUT /Groups/{id}` body of `group` with `user_id` added or removed.
fn group_with_member(group: &Value, user_id: &str, add: bool) -> Value {
    let mut doc = group.as_object().cloned().unwrap_or_default();
    strip_read_only(&mut doc);
    let mut list: Vec<Value> = doc
        .get("members")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["value"].as_str() != Some(user_id))
        .map(|m| json!({ "value": m["value"] }))
        .collect();
    if add {
        list.push(json!({ "value": user_id }));
    }
    doc.insert("members".into(), Value::Array(list));
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::GrantSnapshot;

    fn guest() -> GuestSnapshot {
        GuestSnapshot {
            guest_id: "g-1".into(),
            partner: "acme".into(),
            user_name: "A123".into(),
            email: Some("Ann@Acme.example".into()),
            display_name: Some("Ann Lee".into()),
            given_name: Some("Ann".into()),
            family_name: Some("Lee".into()),
            state: "active".into(),
            version: 1,
            grants: vec![
                GrantSnapshot {
                    app: "ehr".into(),
                    role: "reader".into(),
                    valid_until: None,
                },
                GrantSnapshot {
                    app: "pacs".into(),
                    role: "viewer".into(),
                    valid_until: None,
                },
                GrantSnapshot {
                    app: "ehr".into(),
                    role: "reader".into(),
                    valid_until: None,
                },
            ],
        }
    }

    fn desired() -> DesiredUser {
        DesiredUser::from_snapshot(&guest(), true)
    }

    #[test]
    fn create_body_carries_external_id_name_emails_and_active() {
        assert_eq!(
            desired().resource(),
            json!({
                "schemas": [USER_SCHEMA],
                "userName": "Ann@Acme.example",
                "externalId": "g-1",
                "displayName": "Ann Lee",
                "name": {"givenName": "Ann", "familyName": "Lee"},
                "emails": [{"value": "Ann@Acme.example", "type": "work", "primary": true}],
                "active": true,
            })
        );
    }

    #[test]
    fn user_name_falls_back_to_the_partners_and_blanks_are_absent() {
        let mut g = guest();
        g.email = Some("  ".into());
        g.display_name = None;
        g.given_name = Some(String::new());
        g.family_name = None;
        let body = DesiredUser::from_snapshot(&g, false).resource();
        assert_eq!(
            body,
            json!({
                "schemas": [USER_SCHEMA],
                "userName": "A123",
                "externalId": "g-1",
                "active": false,
            })
        );
    }

    #[test]
    fn no_ops_when_the_target_already_agrees() {
        let existing = json!({
            "id": "u1",
            "userName": "ann@acme.example",
            "externalId": "g-1",
            "displayName": "Ann Lee",
            "name": {"givenName": "Ann", "familyName": "Lee", "formatted": "Ann Lee"},
            "emails": [
                {"value": "other@x.example", "type": "home"},
                {"value": "ANN@acme.example", "type": "work", "primary": true}
            ],
            "active": true,
            "title": "Nurse",
            "meta": {"resourceType": "User"}
        });
        assert!(desired().patch_ops(&existing).is_empty());
    }

    #[test]
    fn ops_replace_only_what_differs_and_remove_what_we_no_longer_have() {
        let existing = json!({
            "id": "u1",
            "userName": "old@acme.example",
            "externalId": "g-1",
            "displayName": "Ann Lee",
            "nickName": "A",
            "name": {"givenName": "Anne"},
            "emails": [{"value": "old@acme.example"}],
            "active": false
        });
        let mut want = desired();
        want.display_name = None;
        assert_eq!(
            want.patch_ops(&existing),
            vec![
                json!({"op": "replace", "path": "userName", "value": "Ann@Acme.example"}),
                json!({"op": "remove", "path": "displayName"}),
                json!({"op": "replace", "path": "name.givenName", "value": "Ann"}),
                json!({"op": "replace", "path": "name.familyName", "value": "Lee"}),
                json!({"op": "replace", "path": "emails", "value": [
                    {"value": "Ann@Acme.example", "type": "work", "primary": true}
                ]}),
                json!({"op": "replace", "path": "active", "value": true}),
            ]
        );
    }

    #[test]
    fn missing_active_counts_as_active_and_missing_email_is_removed() {
        let mut want = desired();
        want.email = None;
        want.user_name = "A123".into();
        let existing = json!({
            "userName": "a123", "externalId": "g-1", "displayName": "Ann Lee",
            "name": {"givenName": "Ann", "familyName": "Lee"},
            "emails": [{"value": "x@y"}]
        });
        assert_eq!(
            want.patch_ops(&existing),
            vec![json!({"op": "remove", "path": "emails"})]
        );
    }

    #[test]
    fn put_body_keeps_foreign_attributes_and_drops_read_only_ones() {
        let existing = json!({
            "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "id": "u1",
            "userName": "old@acme.example",
            "externalId": "g-1",
            "title": "Nurse",
            "name": {"givenName": "Anne", "middleName": "B"},
            "emails": [{"value": "old@acme.example"}],
            "groups": [{"value": "grp"}],
            "meta": {"version": "W/\"1\""},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "ICU"},
            "active": true
        });
        let mut want = desired();
        want.active = false;
        want.display_name = None;
        let put = want.apply(&existing);
        assert_eq!(
            put,
            json!({
                "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "id": "u1",
                "userName": "Ann@Acme.example",
                "externalId": "g-1",
                "title": "Nurse",
                "name": {"givenName": "Ann", "middleName": "B", "familyName": "Lee"},
                "emails": [{"value": "Ann@Acme.example", "type": "work", "primary": true}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "ICU"},
                "active": false
            })
        );
        // Applying again changes nothing PATCH would change.
        assert!(want.patch_ops(&put).is_empty());
    }

    #[test]
    fn group_names_are_prefixed_and_deduplicated() {
        let names: Vec<String> = group_names("gb-", &guest()).into_iter().collect();
        assert_eq!(names, vec!["gb-ehr:reader", "gb-pacs:viewer"]);
    }

    #[test]
    fn membership_plan_adds_missing_and_removes_extra_prefixed_groups() {
        let wanted: BTreeSet<String> = ["gb-ehr:reader", "gb-pacs:viewer"]
            .into_iter()
            .map(String::from)
            .collect();
        let current: BTreeMap<String, String> = [("gb-ehr:reader", "1"), ("gb-lab:tech", "3")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let plan = MembershipPlan::new(&wanted, &current);
        assert_eq!(plan.add, vec!["gb-pacs:viewer".to_string()]);
        assert_eq!(
            plan.remove,
            vec![("gb-lab:tech".to_string(), "3".to_string())]
        );
        assert!(MembershipPlan::new(&wanted, &current).add.len() == 1);
        let same = MembershipPlan::new(&BTreeSet::new(), &BTreeMap::new());
        assert!(same.is_empty());
    }

    #[test]
    fn filter_literals_escape_quotes_and_backslashes() {
        assert_eq!(filter_literal("g-1"), "\"g-1\"");
        assert_eq!(filter_literal("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            remove_member_op("u\"1"),
            json!({"op": "remove", "path": "members[value eq \"u\\\"1\"]"})
        );
    }

    #[test]
    fn member_operations_have_the_rfc_shapes() {
        assert_eq!(
            patch_request(vec![add_member_op("u1")]),
            json!({
                "schemas": [PATCH_SCHEMA],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": "u1"}]}]
            })
        );
        let group = json!({
            "schemas": [GROUP_SCHEMA], "id": "g", "displayName": "gb-a:b",
            "members": [{"value": "u0", "display": "Zed", "$ref": "https://x/Users/u0"}],
            "meta": {}
        });
        assert_eq!(
            group_with_member(&group, "u1", true)["members"],
            json!([{"value": "u0"}, {"value": "u1"}])
        );
        assert_eq!(group_with_member(&group, "u0", false)["members"], json!([]));
        assert!(group_with_member(&group, "u1", true).get("meta").is_none());
    }

    #[test]
    fn capabilities_follow_the_service_provider_config() {
        let gb = json!({
            "patch": {"supported": true},
            "bulk": {"supported": true, "maxOperations": 1000},
            "filter": {"supported": true, "maxResults": 1000}
        });
        assert_eq!(
            Capabilities::from_config(&gb),
            Capabilities {
                patch: true,
                filter: true,
                page_size: 100
            }
        );
        let small =
            json!({"patch": {"supported": false}, "filter": {"supported": true, "maxResults": 20}});
        assert_eq!(
            Capabilities::from_config(&small),
            Capabilities {
                patch: false,
                filter: true,
                page_size: 20
            }
        );
        assert_eq!(Capabilities::from_config(&json!({})), Capabilities::MINIMAL);
    }

    #[test]
    fn list_pages_tolerate_missing_resources() {
        let page = ListPage::parse(&json!({"totalResults": 0}));
        assert!(page.resources.is_empty());
        assert_eq!(page.total, Some(0));
    }

    #[tokio::test]
    async fn debug_hides_the_token() {
        let (_dir, db) = crate::store::test_db().await;
        let target = ScimTarget {
            base_url: "https://x.example/scim/v2".into(),
            bearer_token: "tok-secret".into(),
            group_prefix: "gb-".into(),
        };
        assert!(!format!("{target:?}").contains("tok-secret"));
        let connector = ScimConnector::new("scim", target, db.clone()).unwrap();
        assert!(!format!("{connector:?}").contains("tok-secret"));
        let empty_prefix = ScimTarget {
            base_url: "https://x.example/scim/v2".into(),
            bearer_token: "t".into(),
            group_prefix: String::new(),
        };
        assert!(ScimConnector::new("scim", empty_prefix, db).is_err());
    }
}
