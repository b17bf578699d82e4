//! Queue mail in the caller's transaction: render the template, seal the body (it carries
//! one-time links), write the outbox row. Delivery happens later (`services::outbox`).

use serde_json::{json, Value};

use super::{Deps, ServiceError};
use crate::store::outbox::{self, QueuedMail};
use crate::store::work::Work;
use crate::store::Tx;

/// What to send, before rendering.
pub struct MailRequest<'a> {
    pub to: &'a str,
    /// Template name (`invitation`, `signin_link`, …).
    pub template: &'a str,
    pub partner: Option<&'a str>,
    pub language: Option<&'a str>,
    pub context: Value,
    /// One per logical mail: a second request with the same key is ignored.
    pub idempotency_key: String,
    pub guest_id: Option<&'a str>,
}

/// Render and seal a mail.
fn render(deps: &Deps, req: &MailRequest<'_>) -> Result<QueuedMail, ServiceError> {
    let rendered = deps
        .portal
        .templates
        .render(req.template, req.partner, req.language, &req.context)
        .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    let body = json!({"text": rendered.text, "html": rendered.html}).to_string();
    let sealed = deps
        .portal
        .secrets
        .seal(body.as_bytes(), req.idempotency_key.as_bytes())
        .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    Ok(QueuedMail {
        id: uuid::Uuid::new_v4().to_string(),
        kind: req.template.to_string(),
        to_addr: req.to.to_string(),
        subject: rendered.subject,
        body_sealed: Some(sealed),
        guest_id: req.guest_id.map(str::to_string),
        idempotency_key: req.idempotency_key.clone(),
        attempts: 0,
    })
}

/// Delivery runs on the wall clock even when a job runs at another instant.
fn due_now() -> i64 {
    crate::clock::to_millis(chrono::Utc::now())
}

/// Render and queue; false when a mail with this idempotency key is already queued.
pub async fn queue(tx: &mut Tx, deps: &Deps, req: MailRequest<'_>) -> Result<bool, ServiceError> {
    let mail = render(deps, &req)?;
    let queued = outbox::enqueue(tx, &mail, deps.now_ms(), due_now()).await?;
    if queued {
        // Never the body: it holds one-time links and codes.
        tracing::info!(kind = req.template, guest = req.guest_id, "mail queued");
    }
    deps.portal.mail_queued.notify_one();
    Ok(queued)
}

/// Render and queue in `w`, for a mail whose idempotency key is new (it names a new row).
pub fn queue_new(w: &mut Work, deps: &Deps, req: MailRequest<'_>) -> Result<(), ServiceError> {
    let mail = render(deps, &req)?;
    outbox::queue(w, &mail, deps.now_ms(), due_now());
    tracing::info!(kind = req.template, guest = req.guest_id, "mail queued");
    deps.portal.mail_queued.notify_one();
    Ok(())
}
