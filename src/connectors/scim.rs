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

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::Value;

use super::http;
use super::{BoxFuture, ConfigError, Connector, DeliveryError, GuestEvent, Intent};
use crate::store::ownership::OwnershipStore;

mod client;
mod converge;
pub mod reconcile;
mod wire;
pub use reconcile::{Action, ActionKind, DriftReport, Expected, ReconcilePlan, Unowned};
pub(crate) use wire::{group_names, DesiredUser, MembershipPlan};

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

    // Not `err(Display)`: the full reason quotes the target's reply, which may echo personal
    // data; the log gets the status and our own words only.
    #[tracing::instrument(skip_all, fields(connector = %self.name, event_id = %event.event_id, kind = event.kind.webhook_type()))]
    async fn push(&self, event: &GuestEvent) -> Result<(), DeliveryError> {
        let result = self.push_event(event).await;
        if let Err(err) = &result {
            tracing::warn!(error = %err.log_reason(), "delivery failed");
        }
        result
    }

    async fn push_event(&self, event: &GuestEvent) -> Result<(), DeliveryError> {
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

#[cfg(test)]
mod tests;
