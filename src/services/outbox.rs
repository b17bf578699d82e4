//! The mail sender: takes due mail from the outbox under a lease (so several instances never
//! send the same mail at once), delivers it over SMTP, and on failure retries with
//! exponential backoff and jitter until the attempt limit makes it a dead letter.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::{Deps, ServiceError};
use crate::mail::message::OutgoingMail;
use crate::mail::smtp::{SendError, SmtpSender};
use crate::store::outbox;

/// How a delivery round went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: u64,
    pub retrying: u64,
    pub given_up: u64,
    /// Mails whose lease had passed to another sender before they were sent.
    pub lost: u64,
}

/// Retry policy.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base_ms: u64,
    pub max_attempts: u32,
    /// How long a claimed mail is held (see `PortalSettings::mail_lease_ms`).
    pub lease_ms: u64,
}

/// Mails taken per claim.
const BATCH: i64 = 20;

fn backoff_ms(policy: RetryPolicy, attempts: i64) -> i64 {
    let exp = policy
        .base_ms
        .saturating_mul(1u64 << attempts.clamp(0, 16) as u32)
        .min(3_600_000);
    let jitter = rand::thread_rng().gen_range(0..=exp / 5);
    i64::try_from(exp + jitter).unwrap_or(i64::MAX)
}

/// Deliver every mail due now; returns what happened.
///
/// A batch of 20 mails, each with a 30 s SMTP time-out, can outlast any lease, so each mail's
/// lease is renewed just before it is sent and a send is cut off at half the lease: a mail is
/// only ever being sent by the sender holding it, and one whose lease passed to another
/// sender (this one stalled) is left to that sender instead of being sent twice.
pub async fn deliver_due(
    deps: &Deps,
    sender: &SmtpSender,
    policy: RetryPolicy,
    owner: &str,
) -> Result<Delivery, ServiceError> {
    let mut report = Delivery::default();
    let lease_ms = i64::try_from(policy.lease_ms).unwrap_or(i64::MAX);
    let deadline = Duration::from_millis(policy.lease_ms / 2);
    loop {
        let now = deps.now_ms();
        let batch = {
            let mut conn = deps.db.pool().acquire().await?;
            outbox::claim_due(&mut conn, owner, now, now + lease_ms, BATCH).await?
        };
        if batch.is_empty() {
            return Ok(report);
        }
        for m in batch {
            {
                let now = deps.now_ms();
                let mut conn = deps.db.pool().acquire().await?;
                if !outbox::renew(&mut conn, &m.id, owner, now + lease_ms).await? {
                    tracing::warn!(kind = %m.kind, mail = %m.id, "mail lease lost before sending; left to its new holder");
                    report.lost += 1;
                    continue;
                }
            }
            let result = match super::mailer::open(deps, &m) {
                Ok(rendered) => {
                    let mail = OutgoingMail {
                        to: m.to_addr.clone(),
                        subject: rendered.subject,
                        text: rendered.text,
                        html: rendered.html,
                        kind: m.kind.clone(),
                        idempotency_key: m.idempotency_key.clone(),
                    };
                    match tokio::time::timeout(deadline, sender.send(&mail)).await {
                        Ok(sent) => sent,
                        Err(_) => Err(SendError::Transient {
                            code: None,
                            reason: format!(
                                "sending took longer than {} ms (half the lease)",
                                deadline.as_millis()
                            ),
                        }),
                    }
                }
                // A mail that cannot be rendered never will be: a dead letter at once.
                Err(reason) => Err(SendError::Permanent {
                    code: None,
                    reason: format!("cannot render the mail: {reason}"),
                }),
            };
            let now = deps.now_ms();
            let mut conn = deps.db.pool().acquire().await?;
            match result {
                Ok(()) => {
                    // Recorded whoever holds the lease now: it was sent, and must not be sent again.
                    outbox::mark_sent(&mut conn, &m.id, now).await?;
                    tracing::info!(kind = %m.kind, mail = %m.id, "mail delivered");
                    report.sent += 1;
                }
                Err(e) => {
                    let attempts = m.attempts + 1;
                    let give_up = matches!(e, SendError::Permanent { .. })
                        || attempts >= i64::from(policy.max_attempts);
                    outbox::mark_failed(
                        &mut conn,
                        &m.id,
                        owner,
                        now,
                        now + backoff_ms(policy, m.attempts),
                        give_up,
                        &e.to_string(),
                    )
                    .await?;
                    if give_up {
                        tracing::error!(kind = %m.kind, mail = %m.id, attempts, error = %e, "mail given up");
                        report.given_up += 1;
                    } else {
                        tracing::warn!(kind = %m.kind, mail = %m.id, attempts, error = %e, "mail delivery failed; will retry");
                        report.retrying += 1;
                    }
                }
            }
        }
    }
}

/// Run the sender until the process stops: on every queued mail and at least every `poll`.
pub fn spawn(
    deps: Deps,
    sender: Arc<SmtpSender>,
    policy: RetryPolicy,
    poll: Duration,
) -> tokio::task::JoinHandle<()> {
    let owner = format!("sender:{}", uuid::Uuid::new_v4());
    tokio::spawn(async move {
        loop {
            if let Err(e) = deliver_due(&deps, &sender, policy, &owner).await {
                tracing::error!(error = %e, "mail sender round failed");
            }
            let _ = tokio::time::timeout(poll, deps.portal.mail_queued.notified()).await;
        }
    })
}
