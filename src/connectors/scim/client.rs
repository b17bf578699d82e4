//! Reading and writing the target: authenticated requests (with an idempotency key on every
//! write), paged lists, look-ups of users and groups, and the cache of group ids.

use std::collections::{BTreeMap, HashMap};
use std::sync::PoisonError;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde_json::Value;

use super::wire::{filter_literal, members, ListPage, SCIM_JSON};
use super::{duplicate_external_id, found, Capabilities, Found, ScimConnector, MAX_PAGES};
use crate::connectors::http::{self, path_segment, request_key, Reply, IDEMPOTENCY_KEY};
use crate::connectors::DeliveryError;

impl ScimConnector {
    /// `GET /Users/{id}`; `None` on 404.
    pub(super) async fn get_user(&self, id: &str) -> Result<Option<Found>, DeliveryError> {
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
    pub(super) async fn find_user(
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

    pub(super) async fn find_group(
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
    pub(super) async fn groups_of(
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
    pub(super) async fn prefixed_memberships(
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
    pub(super) async fn list_all(
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

    pub(super) fn cached_group(&self, name: &str) -> Option<String> {
        self.group_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub(super) fn cache_group(&self, name: &str, id: &str) {
        self.group_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), id.to_string());
    }

    pub(super) fn forget_group(&self, name: &str) {
        self.group_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    pub(super) async fn get(
        &self,
        url: &str,
        query: &[(&str, String)],
    ) -> Result<Reply, DeliveryError> {
        http::send(
            self.http
                .get(url)
                .query(query)
                .header(ACCEPT, "application/scim+json, application/json")
                .header(AUTHORIZATION, format!("Bearer {}", self.token)),
        )
        .await
    }

    pub(super) async fn mutate(
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
