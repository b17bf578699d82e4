//! Queue mail in the caller's transaction: seal the template and its context (they carry
//! one-time links), write the outbox row. Delivery renders and sends it later
//! (`services::mail_sender`).

use serde_json::{json, Value};

use super::{Deps, ServiceError};
use crate::mail::templates::RenderedMail;
use crate::store::mail_outbox::{self, QueuedMail};
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

/// Seal what a mail needs until it is sent: its template and their context. Rendering waits
/// for delivery, so a queued invitation costs its context (about 0.5 KB) instead of its text
/// and HTML (about 4 KB), and a write that invites thousands of people renders nothing.
fn seal(deps: &Deps, req: &MailRequest<'_>) -> Result<QueuedMail, ServiceError> {
    let body = json!({
        "template": req.template, "partner": req.partner, "language": req.language,
        "context": req.context,
    })
    .to_string();
    let sealed = deps
        .portal
        .secrets
        .seal(body.as_bytes(), req.idempotency_key.as_bytes())
        .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    Ok(QueuedMail {
        id: crate::store::new_row_id(),
        kind: req.template.to_string(),
        to_addr: req.to.to_string(),
        // Known once rendered, at delivery.
        subject: String::new(),
        body_sealed: Some(sealed),
        guest_id: req.guest_id.map(str::to_string),
        idempotency_key: req.idempotency_key.clone(),
        attempts: 0,
    })
}

/// A queued mail ready to send: its subject, text and HTML, rendered now from the sealed
/// template and context (or, for mail queued rendered by earlier versions, as stored).
pub fn open(deps: &Deps, m: &QueuedMail) -> Result<RenderedMail, String> {
    let Some(sealed) = m.body_sealed.as_deref() else {
        return Err("the mail has no body (already sent and erased?)".into());
    };
    let body = deps
        .portal
        .secrets
        .open(sealed, m.idempotency_key.as_bytes())
        .map_err(|e| e.to_string())?;
    let parts: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    if let Some(template) = parts["template"].as_str() {
        return deps
            .portal
            .templates
            .render(
                template,
                parts["partner"].as_str(),
                parts["language"].as_str(),
                &parts["context"],
            )
            .map_err(|e| e.to_string());
    }
    Ok(RenderedMail {
        subject: m.subject.clone(),
        text: parts["text"].as_str().unwrap_or_default().to_string(),
        html: parts["html"].as_str().unwrap_or_default().to_string(),
    })
}

/// Delivery runs on the wall clock even when a job runs at another instant.
fn due_now() -> i64 {
    crate::clock::to_millis(chrono::Utc::now())
}

/// Queue in the caller's transaction; false when a mail with this idempotency key is
/// already queued.
pub async fn queue(tx: &mut Tx, deps: &Deps, req: MailRequest<'_>) -> Result<bool, ServiceError> {
    let mail = seal(deps, &req)?;
    let queued = mail_outbox::enqueue(tx, &mail, deps.now_ms(), due_now()).await?;
    if queued {
        // Never the body: it holds one-time links and codes.
        tracing::info!(kind = req.template, guest = req.guest_id, "mail queued");
    }
    deps.portal.mail_queued.notify_one();
    Ok(queued)
}

/// Queue in `w`, for a mail whose idempotency key is new (it names a new row).
pub fn queue_new(w: &mut Work, deps: &Deps, req: MailRequest<'_>) -> Result<(), ServiceError> {
    let mail = seal(deps, &req)?;
    mail_outbox::queue(w, &mail, deps.now_ms(), due_now());
    tracing::info!(kind = req.template, guest = req.guest_id, "mail queued");
    deps.portal.mail_queued.notify_one();
    Ok(())
}
