//! The one shape of our queue workers (the mail sender, the sync worker): claim due items
//! under a lease, renew each item's lease just before delivering it, cut a delivery off at
//! half the lease, and record the outcome only while the lease is still ours. What is
//! claimed, how it is delivered and how outcomes are written is the queue's.
//!
//! A batch may take longer than its lease (each item a request with its own time-out), which
//! is why leases are renewed per item: an item is never being delivered by a worker that no
//! longer holds it. Had this worker stalled past the lease anyway, the renewal fails and it
//! leaves the item, and the rest of its batch, to the worker now holding them.

use std::future::Future;
use std::time::Duration;

use super::ServiceError;

/// What became of one failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failed {
    /// To be tried again later.
    Retrying,
    /// A dead letter: permanent, or out of attempts.
    Dead,
    /// The lease had passed to another worker; nothing was recorded.
    Lost,
}

/// What a round did, counted the same way for every queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub delivered: u64,
    pub retrying: u64,
    pub dead: u64,
    pub lost: u64,
}

/// A leased queue and how its items are delivered.
pub(crate) trait ClaimedQueue {
    type Item;
    /// Why a delivery did not happen (stored with the item, e.g. as its last error).
    type Failure;

    /// How long a claim holds an item, in ms.
    fn lease_ms(&self) -> u64;

    /// The queue's clock, in ms.
    fn now(&self) -> i64;

    /// Claim the items due at `now`, held by `owner` until `until`.
    fn claim(
        &self,
        owner: &str,
        now: i64,
        until: i64,
    ) -> impl Future<Output = Result<Vec<Self::Item>, ServiceError>> + Send;

    /// Extend the lease of an item `owner` still holds; false when it has passed on.
    fn renew(
        &self,
        item: &Self::Item,
        owner: &str,
        until: i64,
    ) -> impl Future<Output = Result<bool, ServiceError>> + Send;

    /// Deliver one item, giving up after `deadline`.
    fn deliver(
        &self,
        item: &Self::Item,
        deadline: Duration,
    ) -> impl Future<Output = Result<(), Self::Failure>> + Send;

    /// Record a delivery; false when the lease had passed on.
    fn delivered(
        &self,
        item: &Self::Item,
        owner: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, ServiceError>> + Send;

    /// Record a failure: retry later or dead-letter it.
    fn failed(
        &self,
        item: &Self::Item,
        owner: &str,
        now: i64,
        failure: Self::Failure,
    ) -> impl Future<Output = Result<Failed, ServiceError>> + Send;
}

/// Deliver every item due now.
pub(crate) async fn drain<Q: ClaimedQueue>(queue: &Q, owner: &str) -> Result<Counts, ServiceError> {
    let mut counts = Counts::default();
    let lease_ms = i64::try_from(queue.lease_ms()).unwrap_or(i64::MAX);
    let deadline = Duration::from_millis(queue.lease_ms() / 2);
    loop {
        let now = queue.now();
        let batch = queue.claim(owner, now, now + lease_ms).await?;
        if batch.is_empty() {
            return Ok(counts);
        }
        for item in batch {
            let now = queue.now();
            if !queue.renew(&item, owner, now + lease_ms).await? {
                counts.lost += 1;
                continue;
            }
            let result = queue.deliver(&item, deadline).await;
            let now = queue.now();
            match result {
                Ok(()) => {
                    if queue.delivered(&item, owner, now).await? {
                        counts.delivered += 1;
                    } else {
                        counts.lost += 1;
                    }
                }
                Err(failure) => match queue.failed(&item, owner, now, failure).await? {
                    Failed::Retrying => counts.retrying += 1,
                    Failed::Dead => counts.dead += 1,
                    Failed::Lost => counts.lost += 1,
                },
            }
        }
    }
}
