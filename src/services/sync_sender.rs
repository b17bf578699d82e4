//! The sync worker: leases due outbox events (in order per guest and target), hands each to
//! its target's connector, and records the outcome: delivered; retried later with
//! exponential backoff and jitter (or when the target's `Retry-After` says); or, after the
//! attempt limit or a permanent refusal, a dead letter an admin can replay.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::claim_loop::{self, ClaimedQueue, Failed};
use super::{Deps, ServiceError};
use crate::connectors::build::Connectors;
use crate::connectors::{DeliveryError, GuestEvent};
use crate::store::sync_outbox::{self, SyncEvent};

#[derive(Debug, Clone, Copy)]
pub struct SyncPolicy {
    pub base_ms: u64,
    pub max_attempts: u32,
    /// How long a claimed event is held (see `SyncSettings::lease_ms`).
    pub lease_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncDelivery {
    pub delivered: u64,
    pub retrying: u64,
    pub dead: u64,
    /// Events whose lease had passed to another worker before their outcome was recorded.
    pub lost: u64,
}

const BATCH: i64 = 50;

fn backoff_ms(policy: SyncPolicy, attempts: i64, retry_after: Option<Duration>) -> i64 {
    if let Some(d) = retry_after {
        return i64::try_from(d.as_millis())
            .unwrap_or(i64::MAX)
            .min(3_600_000);
    }
    let exp = policy
        .base_ms
        .saturating_mul(1u64 << attempts.clamp(0, 16) as u32)
        .min(3_600_000);
    let jitter = rand::thread_rng().gen_range(0..=exp / 4);
    i64::try_from(exp + jitter).unwrap_or(i64::MAX)
}

/// The sync outbox as a [`ClaimedQueue`]: each event handed to its target's connector.
struct SyncQueue<'a> {
    deps: &'a Deps,
    connectors: &'a Connectors,
    policy: SyncPolicy,
}

impl ClaimedQueue for SyncQueue<'_> {
    type Item = SyncEvent;
    type Failure = DeliveryError;

    fn lease_ms(&self) -> u64 {
        self.policy.lease_ms
    }

    fn now(&self) -> i64 {
        crate::clock::to_millis(chrono::Utc::now())
    }

    async fn claim(
        &self,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Vec<SyncEvent>, ServiceError> {
        let mut conn = self.deps.db.pool().acquire().await?;
        Ok(sync_outbox::claim_due(&mut conn, owner, now, until, BATCH).await?)
    }

    async fn renew(&self, e: &SyncEvent, owner: &str, until: i64) -> Result<bool, ServiceError> {
        let mut conn = self.deps.db.pool().acquire().await?;
        let held = sync_outbox::renew(&mut conn, e.seq, owner, until).await?;
        if !held {
            tracing::warn!(target_name = %e.target, event = %e.id, "sync lease lost before delivery; left to its new holder");
        }
        Ok(held)
    }

    async fn deliver(&self, e: &SyncEvent, deadline: Duration) -> Result<(), DeliveryError> {
        match (
            self.connectors.get(&e.target),
            serde_json::from_str::<GuestEvent>(&e.payload),
        ) {
            (None, _) => Err(DeliveryError::Permanent {
                reason: format!("no target named {:?} is configured", e.target),
            }),
            (_, Err(err)) => Err(DeliveryError::Permanent {
                reason: format!("unreadable event: {err}"),
            }),
            (Some(c), Ok(event)) => match tokio::time::timeout(deadline, c.deliver(&event)).await {
                Ok(result) => result,
                Err(_) => Err(DeliveryError::transient(format!(
                    "delivery took longer than {} ms (half the lease)",
                    deadline.as_millis()
                ))),
            },
        }
    }

    async fn delivered(&self, e: &SyncEvent, owner: &str, now: i64) -> Result<bool, ServiceError> {
        let mut conn = self.deps.db.pool().acquire().await?;
        Ok(sync_outbox::mark_delivered(&mut conn, e.seq, owner, now).await?)
    }

    async fn failed(
        &self,
        e: &SyncEvent,
        owner: &str,
        now: i64,
        err: DeliveryError,
    ) -> Result<Failed, ServiceError> {
        let mut conn = self.deps.db.pool().acquire().await?;
        let attempts = e.attempts + 1;
        let dead = !err.is_transient() || attempts >= i64::from(self.policy.max_attempts);
        let next = now + backoff_ms(self.policy, e.attempts, err.retry_after());
        let recorded =
            sync_outbox::mark_failed(&mut conn, e.seq, owner, now, next, dead, &err.to_string())
                .await?;
        Ok(if !recorded {
            Failed::Lost
        } else if dead {
            tracing::error!(target_name = %e.target, event = %e.id, attempts, error = %err.log_reason(), "sync event dead-lettered");
            Failed::Dead
        } else {
            tracing::warn!(target_name = %e.target, event = %e.id, attempts, error = %err.log_reason(), "sync delivery failed; will retry");
            Failed::Retrying
        })
    }
}

/// Deliver every event due now, leased as [`claim_loop`] says (50 events, each a few
/// requests with their own time-outs, can outlast a lease).
pub async fn deliver_due(
    deps: &Deps,
    connectors: &Connectors,
    policy: SyncPolicy,
    owner: &str,
) -> Result<SyncDelivery, ServiceError> {
    let queue = SyncQueue {
        deps,
        connectors,
        policy,
    };
    let counts = claim_loop::drain(&queue, owner).await?;
    Ok(SyncDelivery {
        delivered: counts.delivered,
        retrying: counts.retrying,
        dead: counts.dead,
        lost: counts.lost,
    })
}

/// Run the worker for the life of the process: on every queued event and at least every `poll`.
pub fn spawn(
    deps: Deps,
    connectors: Arc<Connectors>,
    policy: SyncPolicy,
    poll: Duration,
) -> tokio::task::JoinHandle<()> {
    let owner = format!("sync:{}", uuid::Uuid::new_v4());
    tokio::spawn(async move {
        loop {
            if let Err(e) = deliver_due(&deps, &connectors, policy, &owner).await {
                tracing::error!(error = %e, "sync round failed");
            }
            let _ = tokio::time::timeout(poll, deps.portal.sync_queued.notified()).await;
        }
    })
}
