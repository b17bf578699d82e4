//! Outgoing mail: templates, the SMTP sender and the message shape stored in the outbox.

pub mod message;
pub mod smtp;
pub mod templates;
