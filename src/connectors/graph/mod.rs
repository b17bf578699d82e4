//! The Microsoft Graph connector: guests as B2B guest users of an Entra ID tenant, app
//! grants as memberships of configured groups.
//!
//! - Access token: OAuth 2.0 client credentials (RFC 6749 §4.4) at the tenant's v2.0 token
//!   endpoint, scope `https://graph.microsoft.com/.default`; cached until shortly before
//!   `expires_in` runs out, one request at a time. A `401` from Graph drops the token and
//!   the request is repeated once with a new one, then it is transient.
//! - Enable (`active`, `invited`): `POST /invitations` (`sendInvitationMessage: false`:
//!   Guestbridge sends its own mail), which answers with the existing user when the address
//!   was invited before, so it is also the look-up; `PATCH /users/{id}` with
//!   `accountEnabled: true` (undoes a suspension) and `displayName` (an invitation does not
//!   rename an existing user); then memberships: the groups of the guest's grants
//!   (`group_ids`, keyed `"{app}:{role}"`) are added (`POST /groups/{id}/members/$ref`;
//!   "already exist" is success), configured groups not granted are removed (`DELETE
//!   /groups/{id}/members/{user}/$ref`; `404` is success), from `GET /users/{id}/memberOf`.
//!   Grants without a configured group are not pushed. Groups not in `group_ids` are never
//!   touched.
//! - Suspend (and `pending_approval`, which is not invited): out of every configured group,
//!   `accountEnabled: false`.
//! - Remove: `DELETE /users/{id}`; `404` is success.
//!
//! Which Graph user a guest is comes from this target's ownership records
//! ([`crate::store::ownership`], shared by instances, kept across restarts): the user an
//! invitation created, or an existing guest user adopted. A partner chooses the address it
//! sends, so an address alone never leads to a member of the tenant:
//! - a recorded id is used first (`GET /users/{id}` checks it still exists and is a guest);
//! - without one, `GET /users?$filter=mail eq '…' and userType eq 'Guest'` (B2B guests carry
//!   the invited address in `mail`) may adopt exactly one hit whose `userType` is `Guest`;
//!   several are a permanent error;
//! - otherwise an enable invites, and the invited user is checked too: Graph answers an
//!   invitation of an address already in the tenant with that user, and a member so found
//!   is a permanent error naming the conflict, never recorded or changed.
//!
//! A guest with no record and no adoptable guest user was never invited: there is nothing
//! to suspend or remove. A changed email address is a new invitation, so a new guest user;
//! the old user, being ours, is suspended first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::{self, path_segment};
use super::{BoxFuture, ConfigError, Connector, DeliveryError, GuestEvent, GuestSnapshot, Intent};
use crate::store::ownership::{Owned, OwnershipStore};
use client::CachedToken;
use wire::{
    already_member, display_name, guest_mail_filter, invitation_address, invitation_body,
    member_conflict, member_ref, store_error,
};

mod client;
mod wire;

/// Graph's v1.0 endpoint, the default `base_url`.
pub const DEFAULT_BASE_URL: &str = "https://graph.microsoft.com/v1.0";
/// The scope of a client-credentials token for Graph (the app's granted permissions).
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// `memberOf` pages followed at most (100 groups a page by default).
const MAX_PAGES: usize = 50;

fn default_base_url() -> String {
    DEFAULT_BASE_URL.to_string()
}

/// The tenant, the app registration that acts on it and the groups that stand for grants.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphTarget {
    /// Graph's base URL (`https://graph.microsoft.com/v1.0` unless a national cloud).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
    pub token_url: String,
    /// The app registration's client id (needs User.Invite.All, User.ReadWrite.All,
    /// GroupMember.ReadWrite.All as application permissions).
    pub client_id: String,
    /// Its client secret; never logged.
    pub client_secret: String,
    /// Where a guest lands after redeeming the invitation (`inviteRedirectUrl`).
    pub redirect_url: String,
    /// `"{app}:{role}"` → the Graph group id whose members get that grant.
    #[serde(default)]
    pub group_ids: HashMap<String, String>,
}

impl fmt::Debug for GraphTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphTarget")
            .field("base_url", &self.base_url)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("redirect_url", &self.redirect_url)
            .field("group_ids", &self.group_ids)
            .finish()
    }
}

/// Pushes guests to one Entra ID tenant through Microsoft Graph.
pub struct GraphConnector {
    name: String,
    base: String,
    token_url: String,
    client_id: String,
    client_secret: String,
    redirect_url: String,
    /// `"{app}:{role}"` → group id.
    group_ids: BTreeMap<String, String>,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    /// Which user each guest is in this tenant (the only users this connector changes).
    owned: OwnershipStore,
}

impl fmt::Debug for GraphConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphConnector")
            .field("name", &self.name)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl GraphConnector {
    /// `db` holds the ownership records of this target (by `name`).
    pub fn new(
        name: impl Into<String>,
        target: GraphTarget,
        db: crate::store::Db,
    ) -> Result<Self, ConfigError> {
        let name = name.into();
        let base = http::base_url("base_url", &target.base_url)?;
        let token_url = http::base_url("token_url", &target.token_url)?;
        http::base_url("redirect_url", &target.redirect_url)?;
        http::non_empty("client_id", &target.client_id)?;
        http::non_empty("client_secret", &target.client_secret)?;
        for group in target.group_ids.values() {
            http::non_empty("group_ids", group)?;
        }
        Ok(GraphConnector {
            owned: OwnershipStore::new(db, name.clone()),
            name,
            base,
            token_url,
            client_id: target.client_id,
            client_secret: target.client_secret,
            redirect_url: target.redirect_url,
            group_ids: target.group_ids.into_iter().collect(),
            http: http::client()?,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// The Graph user id recorded for a guest.
    pub async fn user_id_of(&self, guest_id: &str) -> Result<Option<String>, DeliveryError> {
        Ok(self
            .owned
            .get(guest_id)
            .await
            .map_err(|e| store_error(e, guest_id))?
            .map(|o| o.remote_id))
    }

    async fn record(
        &self,
        guest_id: &str,
        user_id: &str,
        adopted: bool,
    ) -> Result<(), DeliveryError> {
        let owned = Owned {
            guest_id: guest_id.to_string(),
            remote_id: user_id.to_string(),
            adopted,
        };
        self.owned
            .record(&owned)
            .await
            .map_err(|e| store_error(e, user_id))
    }

    async fn forget(&self, guest_id: &str, user_id: &str) -> Result<(), DeliveryError> {
        self.owned
            .forget(guest_id, user_id)
            .await
            .map_err(|e| store_error(e, user_id))
    }

    // Not `err(Display)`: the full reason may quote the target's reply, which can echo
    // personal data; the log gets the status and our own words only.
    #[tracing::instrument(skip_all, fields(connector = %self.name, event_id = %event.event_id, kind = event.kind.webhook_type()))]
    async fn push(&self, event: &GuestEvent) -> Result<(), DeliveryError> {
        let result = self.push_event(event).await;
        if let Err(err) = &result {
            tracing::warn!(error = %err.log_reason(), "delivery failed");
        }
        result
    }

    async fn push_event(&self, event: &GuestEvent) -> Result<(), DeliveryError> {
        let guest = &event.guest;
        match guest.intent(event.kind) {
            Intent::Enable => self.enable(event).await,
            Intent::Hold | Intent::Suspend => {
                let Some(user_id) = self.find_user(guest).await? else {
                    return Ok(());
                };
                self.suspend(event, &user_id).await
            }
            Intent::Remove => {
                let Some(user_id) = self.find_user(guest).await? else {
                    return Ok(());
                };
                let url = format!("{}/users/{}", self.base, path_segment(&user_id));
                let reply = self.call(Method::DELETE, &url, None, event).await?;
                if !(reply.is_success() || reply.status.as_u16() == 404) {
                    return Err(reply.error().context("delete user"));
                }
                self.forget(&guest.guest_id, &user_id).await
            }
        }
    }

    async fn enable(&self, event: &GuestEvent) -> Result<(), DeliveryError> {
        let guest = &event.guest;
        let user_id = match self.find_user(guest).await? {
            Some(id) => id,
            None => self.invite(event).await?,
        };
        let update = json!({ "accountEnabled": true, "displayName": display_name(guest) });
        if !self.update_user(event, &user_id, &update).await? {
            self.forget(&guest.guest_id, &user_id).await?;
            return Err(DeliveryError::transient(
                "the invited user is not found yet",
            ));
        }
        let wanted: BTreeSet<&str> = guest
            .grant_keys()
            .iter()
            .filter_map(|key| self.group_ids.get(key).map(String::as_str))
            .collect();
        let current = self
            .configured_groups_of(&user_id)
            .await?
            .ok_or_else(|| DeliveryError::transient("the invited user is not found yet"))?;
        for group in wanted.iter().filter(|g| !current.contains(**g)) {
            self.add_member(event, group, &user_id).await?;
        }
        for group in current.iter().filter(|g| !wanted.contains(g.as_str())) {
            self.remove_member(event, group, &user_id).await?;
        }
        Ok(())
    }

    async fn suspend(&self, event: &GuestEvent, user_id: &str) -> Result<(), DeliveryError> {
        let found = match self.configured_groups_of(user_id).await? {
            Some(groups) => {
                for group in groups {
                    self.remove_member(event, &group, user_id).await?;
                }
                self.update_user(event, user_id, &json!({ "accountEnabled": false }))
                    .await?
            }
            None => false,
        };
        if !found {
            // Deleted in the tenant meanwhile (a stale record): nothing to suspend.
            self.forget(&event.guest.guest_id, user_id).await?;
        }
        Ok(())
    }

    /// `POST /invitations`; the invited (or already existing) user's id.
    async fn invite(&self, event: &GuestEvent) -> Result<String, DeliveryError> {
        let guest = &event.guest;
        let email = invitation_address(guest)
            .ok_or_else(|| DeliveryError::permanent("the guest has no email address to invite"))?;
        let body = invitation_body(guest, email, &self.redirect_url);
        let url = format!("{}/invitations", self.base);
        let reply = self.call(Method::POST, &url, Some(&body), event).await?;
        if !reply.is_success() {
            return Err(reply.error().context("invitation"));
        }
        let id = reply.json()?["invitedUser"]["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                DeliveryError::transient("invitation response carries no invitedUser.id")
            })?;
        // Graph answers with whoever already has the address, member or not.
        match self.user_type(&id).await? {
            Some(t) if t == "Guest" => {}
            Some(t) => return Err(member_conflict(email, &t)),
            None => {
                return Err(DeliveryError::transient(
                    "the invited user is not found yet",
                ))
            }
        }
        self.record(&guest.guest_id, &id, false).await?;
        Ok(id)
    }

    /// The guest's Graph user id: recorded, else an existing guest user with the guest's
    /// address, adopted; `None` if neither. A recorded user whose address is no longer the
    /// guest's is suspended and let go (an enable invites the new address).
    async fn find_user(&self, guest: &GuestSnapshot) -> Result<Option<String>, DeliveryError> {
        let email = invitation_address(guest);
        if let Some(id) = self.user_id_of(&guest.guest_id).await? {
            match self.user_mail(&id).await? {
                None => self.forget(&guest.guest_id, &id).await?,
                Some(mail) => match email {
                    Some(email) if !mail.eq_ignore_ascii_case(email) => {
                        self.retire(guest, &id).await?;
                    }
                    _ => return Ok(Some(id)),
                },
            }
        }
        let Some(email) = email else {
            return Ok(None);
        };
        let url = format!("{}/users", self.base);
        let query = [
            ("$filter", guest_mail_filter(email)),
            ("$select", "id,userType,mail".to_string()),
        ];
        let reply = self.get(&url, &query).await?;
        if !reply.is_success() {
            return Err(reply.error().context("find guest user by mail"));
        }
        let body = reply.json()?;
        let users: Vec<&Value> = body["value"].as_array().into_iter().flatten().collect();
        // The filter asks for guests; the answer is checked too.
        if let Some(other) = users
            .iter()
            .find(|u| u["userType"].as_str() != Some("Guest"))
        {
            return Err(member_conflict(
                email,
                other["userType"].as_str().unwrap_or("unknown"),
            ));
        }
        let id = match users.as_slice() {
            [] => return Ok(None),
            [user] => user["id"]
                .as_str()
                .filter(|id| !id.is_empty())
                .map(str::to_string)
                .ok_or_else(|| DeliveryError::transient("a user without id"))?,
            _ => {
                return Err(DeliveryError::permanent(format!(
                    "{} guest accounts use mail {email}; not adopting any",
                    users.len()
                )))
            }
        };
        self.record(&guest.guest_id, &id, true).await?;
        tracing::info!(connector = %self.name, guest_id = %guest.guest_id, user_id = %id, "adopted an existing guest user by mail");
        Ok(Some(id))
    }

    /// Our user of a guest whose address changed: out of our groups, disabled, forgotten.
    async fn retire(&self, guest: &GuestSnapshot, user_id: &str) -> Result<(), DeliveryError> {
        let event = GuestEvent {
            event_id: format!("retire-{}-{user_id}", guest.guest_id),
            kind: super::EventKind::GuestSuspended,
            occurred_at: chrono::Utc::now(),
            guest: guest.clone(),
        };
        self.suspend(&event, user_id).await?;
        self.forget(&guest.guest_id, user_id).await
    }

    /// `GET /users/{id}?$select=…`; `None` on 404.
    async fn user_property(
        &self,
        user_id: &str,
        property: &str,
    ) -> Result<Option<Value>, DeliveryError> {
        let url = format!("{}/users/{}", self.base, path_segment(user_id));
        let reply = self
            .get(&url, &[("$select", format!("id,{property}"))])
            .await?;
        if reply.status.as_u16() == 404 {
            return Ok(None);
        }
        if !reply.is_success() {
            return Err(reply.error().context("get user"));
        }
        Ok(Some(reply.json()?[property].clone()))
    }

    async fn user_type(&self, user_id: &str) -> Result<Option<String>, DeliveryError> {
        Ok(self
            .user_property(user_id, "userType")
            .await?
            .map(|t| t.as_str().unwrap_or("unknown").to_string()))
    }

    async fn user_mail(&self, user_id: &str) -> Result<Option<String>, DeliveryError> {
        Ok(self
            .user_property(user_id, "mail")
            .await?
            .map(|m| m.as_str().unwrap_or_default().to_string()))
    }

    /// The configured groups the user is a direct member of; `None` if there is no such user.
    async fn configured_groups_of(
        &self,
        user_id: &str,
    ) -> Result<Option<BTreeSet<String>>, DeliveryError> {
        let configured: BTreeSet<&str> = self.group_ids.values().map(String::as_str).collect();
        let mut found = BTreeSet::new();
        if configured.is_empty() {
            return Ok(Some(found));
        }
        let first = format!("{}/users/{}/memberOf", self.base, path_segment(user_id));
        let mut next = Some((first, vec![("$select", "id".to_string())]));
        let mut pages = 0;
        while let Some((url, query)) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(DeliveryError::transient("memberOf: too many pages"));
            }
            let reply = self.get(&url, &query).await?;
            if reply.status.as_u16() == 404 && pages == 1 {
                return Ok(None);
            }
            if !reply.is_success() {
                return Err(reply.error().context("memberOf"));
            }
            let page = reply.json()?;
            for object in page["value"].as_array().into_iter().flatten() {
                if let Some(id) = object["id"].as_str().filter(|id| configured.contains(id)) {
                    found.insert(id.to_string());
                }
            }
            if let Some(link) = page["@odata.nextLink"].as_str() {
                // The token goes only to the configured Graph endpoint.
                if !link.starts_with(&format!("{}/", self.base)) {
                    return Err(DeliveryError::permanent(
                        "memberOf: @odata.nextLink points outside base_url",
                    ));
                }
                next = Some((link.to_string(), Vec::new()));
            }
        }
        Ok(Some(found))
    }

    async fn add_member(
        &self,
        event: &GuestEvent,
        group_id: &str,
        user_id: &str,
    ) -> Result<(), DeliveryError> {
        let url = format!(
            "{}/groups/{}/members/$ref",
            self.base,
            path_segment(group_id)
        );
        let body = member_ref(&self.base, user_id);
        let reply = self.call(Method::POST, &url, Some(&body), event).await?;
        if reply.is_success() || (reply.status.as_u16() == 400 && already_member(&reply.body)) {
            Ok(())
        } else {
            Err(reply.error().context("add group member"))
        }
    }

    async fn remove_member(
        &self,
        event: &GuestEvent,
        group_id: &str,
        user_id: &str,
    ) -> Result<(), DeliveryError> {
        let url = format!(
            "{}/groups/{}/members/{}/$ref",
            self.base,
            path_segment(group_id),
            path_segment(user_id)
        );
        let reply = self.call(Method::DELETE, &url, None, event).await?;
        if reply.is_success() || reply.status.as_u16() == 404 {
            Ok(())
        } else {
            Err(reply.error().context("remove group member"))
        }
    }

    /// `PATCH /users/{id}`; `false` if there is no such user.
    async fn update_user(
        &self,
        event: &GuestEvent,
        user_id: &str,
        body: &Value,
    ) -> Result<bool, DeliveryError> {
        let url = format!("{}/users/{}", self.base, path_segment(user_id));
        let reply = self.call(Method::PATCH, &url, Some(body), event).await?;
        if reply.is_success() {
            Ok(true)
        } else if reply.status.as_u16() == 404 {
            Ok(false)
        } else {
            Err(reply.error().context("update user"))
        }
    }
}

impl Connector for GraphConnector {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(&'a self, event: &'a GuestEvent) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(self.push(event))
    }
}

#[cfg(test)]
mod tests;
