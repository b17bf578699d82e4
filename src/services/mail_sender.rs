//! The mail sender: takes due mail from the outbox under a lease (so several instances never
//! send the same mail at once), delivers it over SMTP, and on failure retries with
//! exponential backoff and jitter until the attempt limit makes it a dead letter.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::claim_loop::{self, ClaimedQueue, Failed};
use super::{Deps, ServiceError};
use crate::mail::message::OutgoingMail;
use crate::mail::smtp::{SendError, SmtpSender};
use crate::store::mail_outbox::{self, QueuedMail};

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

/// A failure as logs may carry it. An SMTP reply's text often quotes the recipient
/// (`550 <ann@example.org>: no such user`) and logs hold no personal data, so a reply gives
/// its code only; our own reasons (time-outs, refused connections, unrenderable mail) are
/// kept. The full reason stays in the outbox row.
fn log_reason(e: &SendError) -> String {
    match e.code() {
        Some(code) if e.is_transient() => {
            format!("temporary mail delivery failure: SMTP {code} (reply left out of the log)")
        }
        Some(code) => {
            format!("permanent mail delivery failure: SMTP {code} (reply left out of the log)")
        }
        None => e.to_string(),
    }
}

/// The mail outbox as a [`ClaimedQueue`]: delivered over SMTP.
struct MailQueue<'a> {
    deps: &'a Deps,
    sender: &'a SmtpSender,
    policy: RetryPolicy,
}

impl ClaimedQueue for MailQueue<'_> {
    type Item = QueuedMail;
    type Failure = SendError;

    fn lease_ms(&self) -> u64 {
        self.policy.lease_ms
    }

    fn now(&self) -> i64 {
        self.deps.now_ms()
    }

    async fn claim(
        &self,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<Vec<QueuedMail>, ServiceError> {
        let mut conn = self.deps.db.pool().acquire().await?;
        Ok(mail_outbox::claim_due(&mut conn, owner, now, until, BATCH).await?)
    }

    async fn renew(&self, m: &QueuedMail, owner: &str, until: i64) -> Result<bool, ServiceError> {
        let mut conn = self.deps.db.pool().acquire().await?;
        let held = mail_outbox::renew(&mut conn, &m.id, owner, until).await?;
        if !held {
            tracing::warn!(kind = %m.kind, mail = %m.id, "mail lease lost before sending; left to its new holder");
        }
        Ok(held)
    }

    async fn deliver(&self, m: &QueuedMail, deadline: Duration) -> Result<(), SendError> {
        let rendered = match super::mailer::open(self.deps, m) {
            Ok(rendered) => rendered,
            // A mail that cannot be rendered never will be: a dead letter at once.
            Err(reason) => {
                return Err(SendError::Permanent {
                    code: None,
                    reason: format!("cannot render the mail: {reason}"),
                })
            }
        };
        let mail = OutgoingMail {
            to: m.to_addr.clone(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            kind: m.kind.clone(),
            idempotency_key: m.idempotency_key.clone(),
        };
        match tokio::time::timeout(deadline, self.sender.send(&mail)).await {
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

    async fn delivered(
        &self,
        m: &QueuedMail,
        _owner: &str,
        now: i64,
    ) -> Result<bool, ServiceError> {
        let mut conn = self.deps.db.pool().acquire().await?;
        // Recorded whoever holds the lease now: it was sent, and must not be sent again.
        mail_outbox::mark_sent(&mut conn, &m.id, now).await?;
        tracing::info!(kind = %m.kind, mail = %m.id, "mail delivered");
        Ok(true)
    }

    async fn failed(
        &self,
        m: &QueuedMail,
        owner: &str,
        now: i64,
        e: SendError,
    ) -> Result<Failed, ServiceError> {
        let mut conn = self.deps.db.pool().acquire().await?;
        let attempts = m.attempts + 1;
        let give_up = matches!(e, SendError::Permanent { .. })
            || attempts >= i64::from(self.policy.max_attempts);
        mail_outbox::mark_failed(
            &mut conn,
            &m.id,
            owner,
            now,
            now + backoff_ms(self.policy, m.attempts),
            give_up,
            &e.to_string(),
        )
        .await?;
        Ok(if give_up {
            tracing::error!(kind = %m.kind, mail = %m.id, attempts, error = %log_reason(&e), "mail given up");
            Failed::Dead
        } else {
            tracing::warn!(kind = %m.kind, mail = %m.id, attempts, error = %log_reason(&e), "mail delivery failed; will retry");
            Failed::Retrying
        })
    }
}

/// Deliver every mail due now; returns what happened. Leased as [`claim_loop`] says: a batch
/// of 20 mails, each with a 30 s SMTP time-out, can outlast any lease, and a mail whose lease
/// passed to another sender is left to it instead of being sent twice.
pub async fn deliver_due(
    deps: &Deps,
    sender: &SmtpSender,
    policy: RetryPolicy,
    owner: &str,
) -> Result<Delivery, ServiceError> {
    let queue = MailQueue {
        deps,
        sender,
        policy,
    };
    let counts = claim_loop::drain(&queue, owner).await?;
    Ok(Delivery {
        sent: counts.delivered,
        retrying: counts.retrying,
        given_up: counts.dead,
        lost: counts.lost,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_failures_keep_smtp_codes_and_drop_reply_text() {
        let reply = SendError::Permanent {
            code: Some(550),
            reason: "permanent error (550): 5.1.1 <ann@acme.example>: no such user".into(),
        };
        assert!(reply.to_string().contains("ann@acme.example"));
        assert_eq!(
            log_reason(&reply),
            "permanent mail delivery failure: SMTP 550 (reply left out of the log)"
        );
        let ours = SendError::Transient {
            code: None,
            reason: "no answer within 30s".into(),
        };
        assert_eq!(log_reason(&ours), ours.to_string());
    }
}
