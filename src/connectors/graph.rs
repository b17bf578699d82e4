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
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::http::{self, path_segment, request_key, Reply, IDEMPOTENCY_KEY};
use super::{BoxFuture, ConfigError, Connector, DeliveryError, GuestEvent, GuestSnapshot, Intent};
use crate::store::ownership::{Owned, OwnershipStore};

/// Graph's v1.0 endpoint, the default `base_url`.
pub const DEFAULT_BASE_URL: &str = "https://graph.microsoft.com/v1.0";
/// The scope of a client-credentials token for Graph (the app's granted permissions).
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// A token is renewed this long before it expires (at most half its lifetime).
const TOKEN_MARGIN: Duration = Duration::from_secs(300);
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

struct CachedToken {
    access_token: String,
    renew_at: Instant,
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

    async fn get(&self, url: &str, query: &[(&str, String)]) -> Result<Reply, DeliveryError> {
        self.authorized(|token| {
            self.http
                .get(url)
                .query(query)
                .header(ACCEPT, "application/json")
                .header(AUTHORIZATION, format!("Bearer {token}"))
        })
        .await
    }

    /// A mutating request, with its idempotency key.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        event: &GuestEvent,
    ) -> Result<Reply, DeliveryError> {
        let bytes = match body {
            Some(body) => serde_json::to_vec(body)
                .map_err(|e| DeliveryError::permanent(format!("cannot encode request: {e}")))?,
            None => Vec::new(),
        };
        let key = request_key(&event.event_id, method.as_str(), url, &bytes);
        self.authorized(|token| {
            let mut request = self
                .http
                .request(method.clone(), url)
                .header(ACCEPT, "application/json")
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .header(IDEMPOTENCY_KEY, &key);
            if body.is_some() {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(bytes.clone());
            }
            request
        })
        .await
    }

    /// Send with the cached token; on `401` renew it once and repeat, then give up for now.
    async fn authorized<F>(&self, build: F) -> Result<Reply, DeliveryError>
    where
        F: Fn(&str) -> reqwest::RequestBuilder,
    {
        let token = self.access_token().await?;
        let reply = http::send(build(&token)).await?;
        if reply.status.as_u16() != 401 {
            return Ok(reply);
        }
        self.drop_token(&token).await;
        let token = self.access_token().await?;
        let reply = http::send(build(&token)).await?;
        if reply.status.as_u16() == 401 {
            return Err(DeliveryError::Transient {
                reason: format!(
                    "HTTP 401 with a fresh token: {}",
                    http::snippet(&reply.body)
                ),
                retry_after: http::retry_after(&reply.headers, chrono::Utc::now()),
            });
        }
        Ok(reply)
    }

    async fn access_token(&self) -> Result<String, DeliveryError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.renew_at) {
            return Ok(token.access_token.clone());
        }
        let token = self.fetch_token().await?;
        let access_token = token.access_token.clone();
        *cached = Some(token);
        Ok(access_token)
    }

    async fn drop_token(&self, used: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.access_token == used) {
            *cached = None;
        }
    }

    // Not `err(Display)`: the full reason may quote the target's reply, which can echo
    // personal data; the log gets the status and our own words only.
    #[tracing::instrument(skip_all, fields(connector = %self.name))]
    async fn fetch_token(&self) -> Result<CachedToken, DeliveryError> {
        let result = self.request_token().await;
        if let Err(err) = &result {
            tracing::warn!(error = %err.log_reason(), "token request failed");
        }
        result
    }

    async fn request_token(&self) -> Result<CachedToken, DeliveryError> {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("scope", GRAPH_SCOPE),
        ];
        let started = Instant::now();
        let reply = http::send(
            self.http
                .post(&self.token_url)
                .header(ACCEPT, "application/json")
                .form(&form),
        )
        .await
        .map_err(|e| e.context("token request"))?;
        if !reply.is_success() {
            return Err(token_error(&reply));
        }
        let parsed: TokenResponse = serde_json::from_slice(&reply.body).map_err(|e| {
            DeliveryError::transient(format!("token response is not a token ({e})"))
        })?;
        if !parsed.token_type.eq_ignore_ascii_case("bearer") || parsed.access_token.is_empty() {
            return Err(DeliveryError::permanent(format!(
                "token endpoint issued a {:?} token, not a bearer token",
                parsed.token_type
            )));
        }
        let lifetime = Duration::from_secs(parsed.expires_in);
        let margin = TOKEN_MARGIN.min(lifetime / 2);
        Ok(CachedToken {
            access_token: parsed.access_token,
            renew_at: started + lifetime - margin,
        })
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

#[derive(Deserialize)]
struct TokenResponse {
    token_type: String,
    access_token: String,
    /// Seconds; Entra ID sends a number (some servers a string, which is refused).
    expires_in: u64,
}

/// A token endpoint error: the OAuth `error` code says whether settings are wrong
/// (`invalid_client`, `unauthorized_client`, `invalid_scope`: permanent) or not.
fn token_error(reply: &Reply) -> DeliveryError {
    let code = serde_json::from_slice::<Value>(&reply.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string));
    let err = reply.error();
    match (err, code) {
        (DeliveryError::Permanent { .. }, Some(code)) => DeliveryError::permanent(format!(
            "token request refused (HTTP {}): {code}",
            reply.status.as_u16()
        )),
        (err, _) => err.context("token request"),
    }
}

/// The address to invite: the email, else a user name that is an address.
fn invitation_address(guest: &GuestSnapshot) -> Option<&str> {
    guest
        .email
        .as_deref()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| Some(guest.user_name.as_str()).filter(|u| u.contains('@')))
}

/// The display name: given, else given and family names, else the user name.
fn display_name(guest: &GuestSnapshot) -> String {
    if let Some(name) = guest
        .display_name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
    {
        return name.to_string();
    }
    let parts: Vec<&str> = [guest.given_name.as_deref(), guest.family_name.as_deref()]
        .into_iter()
        .flatten()
        .filter(|p| !p.trim().is_empty())
        .collect();
    if parts.is_empty() {
        guest.user_name.clone()
    } else {
        parts.join(" ")
    }
}

/// The `POST /invitations` body (Graph v1.0 invitation resource).
fn invitation_body(guest: &GuestSnapshot, email: &str, redirect_url: &str) -> Value {
    json!({
        "invitedUserEmailAddress": email,
        "invitedUserDisplayName": display_name(guest),
        "inviteRedirectUrl": redirect_url,
        "sendInvitationMessage": false,
    })
}

/// The `$ref` body adding a directory object to a group.
fn member_ref(base: &str, user_id: &str) -> Value {
    json!({ "@odata.id": format!("{base}/directoryObjects/{}", path_segment(user_id)) })
}

/// Guest users with this address; OData string literal: single quotes doubled.
fn guest_mail_filter(email: &str) -> String {
    format!(
        "mail eq '{}' and userType eq 'Guest'",
        email.replace('\'', "''")
    )
}

/// A user with the guest's address that is not a guest (a member of the tenant's staff).
fn member_conflict(email: &str, user_type: &str) -> DeliveryError {
    DeliveryError::permanent(format!(
        "a {} account already uses mail {email}; not adopting",
        user_type.to_lowercase()
    ))
}

fn store_error(err: crate::store::DbError, user_id: &str) -> DeliveryError {
    if crate::store::is_unique_violation(&err) {
        DeliveryError::permanent(format!(
            "user {user_id} is already another guest's; not taking it over"
        ))
    } else {
        DeliveryError::transient(format!("ownership records: {err}"))
    }
}

/// Graph answers a second add with 400 "One or more added object references already exist".
fn already_member(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains("already exist")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest() -> GuestSnapshot {
        GuestSnapshot {
            guest_id: "g1".into(),
            partner: "acme".into(),
            user_name: "A123".into(),
            email: Some("o'neil@acme.example".into()),
            display_name: None,
            given_name: Some("Ann".into()),
            family_name: Some("O'Neil".into()),
            state: "active".into(),
            grants: vec![],
            version: 1,
        }
    }

    #[test]
    fn invitation_body_has_the_documented_fields() {
        let body = invitation_body(&guest(), "o'neil@acme.example", "https://apps.example/");
        assert_eq!(
            body,
            json!({
                "invitedUserEmailAddress": "o'neil@acme.example",
                "invitedUserDisplayName": "Ann O'Neil",
                "inviteRedirectUrl": "https://apps.example/",
                "sendInvitationMessage": false,
            })
        );
    }

    #[test]
    fn addresses_and_names_fall_back() {
        let mut g = guest();
        g.email = None;
        assert_eq!(invitation_address(&g), None);
        g.user_name = "ann@acme.example".into();
        assert_eq!(invitation_address(&g), Some("ann@acme.example"));
        g.given_name = None;
        g.family_name = None;
        assert_eq!(display_name(&g), "ann@acme.example");
        g.display_name = Some("Dr Ann".into());
        assert_eq!(display_name(&g), "Dr Ann");
    }

    #[test]
    fn mail_filter_escapes_quotes() {
        assert_eq!(
            guest_mail_filter("o'neil@x"),
            "mail eq 'o''neil@x' and userType eq 'Guest'"
        );
    }

    #[tokio::test]
    async fn debug_hides_the_client_secret() {
        let (_dir, db) = crate::store::test_db().await;
        let target = GraphTarget {
            base_url: default_base_url(),
            token_url: "https://login.example/t/oauth2/v2.0/token".into(),
            client_id: "cid".into(),
            client_secret: "very-secret".into(),
            redirect_url: "https://apps.example".into(),
            group_ids: HashMap::new(),
        };
        assert!(!format!("{target:?}").contains("very-secret"));
        let connector = GraphConnector::new("graph", target, db).unwrap();
        assert!(!format!("{connector:?}").contains("very-secret"));
    }
}
