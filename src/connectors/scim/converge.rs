//! Converging one guest's user: create, adopt, update, deactivate or delete it, and bring
//! its memberships of prefixed groups to what its grants say. Every step is idempotent, so a
//! retried or replayed event leaves the target as one delivery does.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{json, Value};

use super::wire::{
    add_member_op, group_names, group_with_member, patch_request, remove_member_op, replace_op,
    strip_read_only, DesiredUser, MembershipPlan, GROUP_SCHEMA,
};
use super::{found, is_active, store_error, Capabilities, Found, Outcome, ScimConnector};
use crate::connectors::http::{self, path_segment};
use crate::connectors::{DeliveryError, GuestSnapshot, Intent};
use crate::store::ownership::Owned;

impl ScimConnector {
    /// Bring one guest's user to what `intent` says. `current` is the user's prefixed
    /// groups (name → id) when already known, else they are looked up.
    pub(super) async fn converge(
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
    pub(super) async fn deactivate(
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

    pub(super) async fn current_or_lookup(
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
    pub(super) async fn owned_user(&self, guest_id: &str) -> Result<Option<Found>, DeliveryError> {
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
    pub(super) async fn adopt(
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

    pub(super) async fn record(
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

    /// `POST /Users`; the user and whether this call created it. A `409` (the userName is
    /// taken) is fine when the holder has our externalId (created by a lost earlier try).
    pub(super) async fn create_user(
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
                "create user: HTTP 409: userName {:?} is taken at the target by a user without externalId {:?}: {}",
                desired.user_name,
                desired.external_id,
                http::snippet(&reply.body)
            )));
        }
        Err(reply.error().context("create user"))
    }

    /// Replace the attributes that differ; whether there were any.
    pub(super) async fn update_user(
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
    pub(super) async fn write_user(
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
    pub(super) async fn sync_memberships(
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

    pub(super) async fn change_membership(
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
    pub(super) async fn ensure_group(
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
}
