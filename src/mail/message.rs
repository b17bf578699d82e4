//! The outgoing mail as the outbox stores it: plain data, already rendered, with the kind of
//! mail and the idempotency key that makes a retried delivery recognisable as the same message.

use serde::{Deserialize, Serialize};

/// One rendered mail waiting in (or taken from) the outbox.
///
/// The bodies hold one-time links and codes: never log `text` or `html`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingMail {
    /// Recipient address (`ann@acme.example` or `Ann Lee <ann@acme.example>`).
    pub to: String,
    /// Subject line, a single line.
    pub subject: String,
    /// The text/plain alternative.
    pub text: String,
    /// The text/html alternative.
    pub html: String,
    /// Template name that produced it (`invitation`, `otp_code`, ...); sent as `X-Guestbridge-Kind`.
    pub kind: String,
    /// Stable per logical mail (for example `invitation:{id}:{attempt}`); the `Message-ID` is
    /// derived from it, so it must not itself be a secret.
    pub idempotency_key: String,
}

impl std::fmt::Debug for OutgoingMail {
    /// Leaves the bodies out: they carry one-time links and codes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("kind", &self.kind)
            .field("idempotency_key", &self.idempotency_key)
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .field("html", &format_args!("<{} bytes>", self.html.len()))
            .finish()
    }
}
