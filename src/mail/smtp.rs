//! Delivers an [`OutgoingMail`] over SMTP with lettre, as a multipart/alternative message
//! (text and HTML) whose `Message-ID` is derived from the idempotency key, and says whether a
//! failure is worth retrying ([`SendError::Transient`]) or not ([`SendError::Permanent`]).
//!
//! The SMTP URL (`GUESTBRIDGE_SMTP_URL`):
//!
//! - `smtp://host[:port]` — plain SMTP, no TLS (port 25): for a relay on the same host or network.
//! - `smtp://host[:port]?tls=required` — STARTTLS, refused if the server does not offer it
//!   (port 587); `?tls=opportunistic` uses STARTTLS only when offered; `?tls=none` is plain.
//! - `smtps://host[:port]` — implicit TLS from the first byte (port 465).
//! - `user:password@` (percent-encoded) authenticates. With credentials, `smtp://` defaults to
//!   `tls=required` so that they never cross the network in the clear; `tls=opportunistic` is
//!   refused, and `tls=none` must be written out (a trusted local relay only).
//!
//! Server certificates are checked against the system's trust store. Neither the credentials
//! nor the bodies (one-time links and codes) are ever logged or put into an error.

use std::fmt;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use percent_encoding::percent_decode_str;
use url::Url;

use super::message::OutgoingMail;

/// Sender address when `GUESTBRIDGE_MAIL_FROM` is not set.
pub const DEFAULT_FROM: &str = "guestbridge@localhost";

/// How long one delivery (connect, dialogue, data) may take before it is abandoned.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const KIND_HEADER: HeaderName = HeaderName::new_from_ascii_str("X-Guestbridge-Kind");
/// RFC 3834: tells auto-responders (out-of-office) not to answer.
const AUTO_SUBMITTED: HeaderName = HeaderName::new_from_ascii_str("Auto-Submitted");

/// Transport security of the SMTP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text (`smtp://`, `?tls=none`).
    None,
    /// STARTTLS when the server offers it, plain text otherwise (`?tls=opportunistic`).
    Opportunistic,
    /// STARTTLS, or fail (`?tls=required`).
    StartTls,
    /// TLS from the start (`smtps://`).
    Implicit,
}

/// A bad SMTP URL or sender address; says what is wrong without repeating the URL (which may
/// hold a password).
#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    #[error("invalid SMTP URL: {0}")]
    Url(String),
    #[error("invalid sender address: {0}")]
    From(String),
}

/// Why a mail was not delivered, as the outbox worker needs it: retry later or give up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: connection refused or lost, time-out, TLS failure, a 4xx reply, or a
    /// problem with our own SMTP settings (authentication) that fixing them will cure.
    #[error("temporary mail delivery failure: {reason}")]
    Transient { code: Option<u16>, reason: String },
    /// Retrying will not help: a 5xx reply about the message or recipient, or an invalid
    /// recipient address.
    #[error("permanent mail delivery failure: {reason}")]
    Permanent { code: Option<u16>, reason: String },
}

impl SendError {
    /// Whether the outbox should try again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient { .. })
    }

    /// The SMTP reply code, when the failure was a reply.
    pub fn code(&self) -> Option<u16> {
        match self {
            SendError::Transient { code, .. } | SendError::Permanent { code, .. } => *code,
        }
    }
}

/// Sends mail through one SMTP server; one connection per message (no pool), so an outage
/// never leaves a stale connection behind. Cheap to clone.
#[derive(Clone)]
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    message_id_domain: String,
    /// `host:port (tls)` for logs: never the credentials.
    endpoint: String,
    /// Limit for one whole delivery (lettre's own time-out covers only the TCP connect).
    timeout: Duration,
}

impl fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSender")
            .field("endpoint", &self.endpoint)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// Builds a sender from the SMTP URL and the sender address (`guestbridge@example.org` or
    /// `Northside Guest Access <guestbridge@example.org>`). Does not connect.
    pub fn new(url: &str, from: &str, timeout: Duration) -> Result<Self, SmtpConfigError> {
        let from: Mailbox = from
            .parse()
            .map_err(|err| SmtpConfigError::From(format!("{err}")))?;
        let settings = parse_url(url)?;

        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .timeout(Some(timeout));
        let tls_parameters = || {
            TlsParameters::new(settings.host.clone())
                .map_err(|err| SmtpConfigError::Url(format!("TLS set-up failed: {err}")))
        };
        builder = match settings.tls {
            TlsMode::None => builder.tls(Tls::None),
            TlsMode::Opportunistic => builder.tls(Tls::Opportunistic(tls_parameters()?)),
            TlsMode::StartTls => builder.tls(Tls::Required(tls_parameters()?)),
            TlsMode::Implicit => builder.tls(Tls::Wrapper(tls_parameters()?)),
        };
        if let Some(credentials) = settings.credentials {
            builder = builder.credentials(credentials);
        }

        Ok(SmtpSender {
            transport: builder.build(),
            message_id_domain: from.email.domain().to_owned(),
            from,
            endpoint: format!("{}:{} ({:?})", settings.host, settings.port, settings.tls),
            timeout,
        })
    }

    /// `host:port (tls mode)`, safe to log.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Delivers one mail within the time-out given to [`SmtpSender::new`]. A failure after
    /// the server received the data but before it confirmed (a lost connection, the time-out)
    /// is reported as transient; the retry carries the same `Message-ID`.
    #[tracing::instrument(
        skip_all,
        fields(kind = %mail.kind, idempotency_key = %mail.idempotency_key, smtp = %self.endpoint),
        err(Display, level = "warn")
    )]
    pub async fn send(&self, mail: &OutgoingMail) -> Result<(), SendError> {
        let message = self.build_message(mail)?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(classify(&err)),
            Err(_) => Err(SendError::Transient {
                code: None,
                reason: format!("no answer within {:?}", self.timeout),
            }),
        }
    }

    /// The MIME message for `mail`, as it will be sent.
    pub fn build_message(&self, mail: &OutgoingMail) -> Result<Message, SendError> {
        let to: Mailbox = mail.to.parse().map_err(|err| SendError::Permanent {
            code: None,
            reason: format!("invalid recipient address: {err}"),
        })?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(single_line(&mail.subject))
            .message_id(Some(message_id(
                &mail.idempotency_key,
                &self.message_id_domain,
            )))
            .raw_header(HeaderValue::new(KIND_HEADER, header_token(&mail.kind)))
            .raw_header(HeaderValue::new(
                AUTO_SUBMITTED,
                "auto-generated".to_owned(),
            ))
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                mail.html.clone(),
            ))
            .map_err(|err| SendError::Permanent {
                code: None,
                reason: format!("cannot build the message: {err}"),
            })
    }
}

/// `<{key}@{domain}>`, with every byte of the key outside `A-Z a-z 0-9 - _` written as `=XX`:
/// one key gives one id, and distinct keys distinct ids.
pub fn message_id(idempotency_key: &str, domain: &str) -> String {
    let mut local = String::with_capacity(idempotency_key.len() + 8);
    for byte in idempotency_key.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            local.push(char::from(byte));
        } else {
            local.push_str(&format!("={byte:02X}"));
        }
    }
    if local.is_empty() {
        local.push_str("=00");
    }
    format!("<{local}@{domain}>")
}

/// A subject on one line whatever the template or the names in it gave: lettre would encode
/// a line break rather than send it, but the header must not depend on that.
fn single_line(value: &str) -> String {
    value
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Header values we generate ourselves keep to a safe alphabet.
fn header_token(value: &str) -> String {
    let token: String = value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
        .collect();
    if token.is_empty() {
        "unknown".to_owned()
    } else {
        token
    }
}

/// SMTP replies about our own authentication: a settings problem, not the message's.
const AUTH_CODES: [u16; 4] = [530, 534, 535, 538];

fn classify(err: &lettre::transport::smtp::Error) -> SendError {
    let code = err.status().map(u16::from);
    let reason = err.to_string();
    if err.is_permanent() && !code.is_some_and(|c| AUTH_CODES.contains(&c)) {
        SendError::Permanent { code, reason }
    } else {
        // 4xx replies, refused or broken connections, time-outs, TLS and protocol trouble:
        // delivery may work later, and the outbox must not lose the mail meanwhile.
        SendError::Transient { code, reason }
    }
}

struct UrlSettings {
    host: String,
    port: u16,
    tls: TlsMode,
    credentials: Option<Credentials>,
}

fn parse_url(raw: &str) -> Result<UrlSettings, SmtpConfigError> {
    let bad = |message: &str| SmtpConfigError::Url(message.to_owned());
    let url = Url::parse(raw).map_err(|err| SmtpConfigError::Url(err.to_string()))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if !(url.path().is_empty() || url.path() == "/") || url.fragment().is_some() {
        return Err(bad(
            "expected smtp://[user:password@]host[:port][?tls=…] with no path",
        ));
    }

    let mut tls_param = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "tls" if tls_param.is_none() => tls_param = Some(value.into_owned()),
            "tls" => return Err(bad("tls is given twice")),
            other => return Err(SmtpConfigError::Url(format!("unknown parameter {other:?}"))),
        }
    }

    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (_, None) => return Err(bad("a user name needs a password (user:password@host)")),
        (user, Some(password)) => {
            let decode = |s: &str| {
                percent_decode_str(s)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| bad("user name or password is not valid percent-encoded UTF-8"))
            };
            Some(Credentials::new(decode(user)?, decode(password)?))
        }
    };

    let tls = match (url.scheme(), tls_param.as_deref()) {
        ("smtp", None) if credentials.is_some() => TlsMode::StartTls,
        ("smtp", None | Some("none")) => TlsMode::None,
        ("smtp", Some("opportunistic")) if credentials.is_some() => {
            return Err(bad(
                "tls=opportunistic could send the credentials in the clear; use tls=required or smtps://",
            ))
        }
        ("smtp", Some("opportunistic")) => TlsMode::Opportunistic,
        ("smtp", Some("required")) => TlsMode::StartTls,
        ("smtp", Some(_)) => return Err(bad("tls must be none, opportunistic or required")),
        ("smtps", None) => TlsMode::Implicit,
        ("smtps", Some(_)) => return Err(bad("smtps:// always uses TLS; drop the tls parameter")),
        (scheme, _) => {
            return Err(SmtpConfigError::Url(format!(
                "unknown scheme {scheme:?} (expected smtp or smtps)"
            )))
        }
    };
    let default_port = match tls {
        TlsMode::None | TlsMode::Opportunistic => 25,
        TlsMode::StartTls => 587,
        TlsMode::Implicit => 465,
    };

    Ok(UrlSettings {
        host,
        port: url.port().unwrap_or(default_port),
        tls,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        let s = parse_url("smtp://relay.local").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("relay.local", 25, TlsMode::None)
        );
        assert!(s.credentials.is_none());

        let s = parse_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((s.port, s.tls), (2525, TlsMode::None));

        let s = parse_url("smtp://u%40x:p%3Aw@mail.example").unwrap();
        assert_eq!((s.port, s.tls), (587, TlsMode::StartTls));
        assert!(s.credentials.is_some());

        let s = parse_url("smtp://u:p@127.0.0.1:2525?tls=none").unwrap();
        assert_eq!(s.tls, TlsMode::None);

        let s = parse_url("smtp://mail.example?tls=opportunistic").unwrap();
        assert_eq!((s.port, s.tls), (25, TlsMode::Opportunistic));

        let s = parse_url("smtps://u:p@mail.example").unwrap();
        assert_eq!((s.port, s.tls), (465, TlsMode::Implicit));

        let s = parse_url("smtp://[::1]:2525").unwrap();
        assert_eq!(s.host, "::1");
    }

    #[test]
    fn bad_urls_do_not_echo_the_password() {
        for url in [
            "http://u:secretpw@mail.example",
            "smtp://u:secretpw@mail.example?tls=opportunistic",
            "smtp://u:secretpw@mail.example?tls=maybe",
            "smtp://u:secretpw@mail.example?foo=1",
            "smtp://u:secretpw@mail.example/path",
            "smtps://u:secretpw@mail.example?tls=none",
            "smtp://user@mail.example",
            "smtp://",
            "not a url secretpw",
        ] {
            let err = parse_url(url)
                .err()
                .unwrap_or_else(|| panic!("{url} accepted"));
            assert!(!err.to_string().contains("secretpw"), "{err}");
        }
    }

    #[test]
    fn message_ids_are_stable_and_distinct() {
        assert_eq!(
            message_id("invitation:42:1", "x.org"),
            "<invitation=3A42=3A1@x.org>"
        );
        assert_eq!(
            message_id("invitation:42:1", "x.org"),
            message_id("invitation:42:1", "x.org")
        );
        assert_ne!(message_id("a=3A", "x"), message_id("a:", "x"));
        assert_eq!(message_id("", "x"), "<=00@x>");
    }

    #[test]
    fn sender_debug_hides_credentials() {
        let sender = SmtpSender::new(
            "smtps://user:secretpw@mail.example",
            DEFAULT_FROM,
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        let shown = format!("{sender:?}");
        assert!(!shown.contains("secretpw"), "{shown}");
        assert!(shown.contains("mail.example:465"), "{shown}");
    }

    #[test]
    fn message_has_alternatives_id_and_kind() {
        let sender = SmtpSender::new(
            "smtp://127.0.0.1:25",
            "Northside <guest-access@northside.example>",
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        let mail = OutgoingMail {
            to: "Ann Lee <ann@acme.example>".into(),
            subject: "Hello".into(),
            text: "text body".into(),
            html: "<p>html body</p>".into(),
            kind: "invitation\r\nBcc: evil@x".into(),
            idempotency_key: "inv:1".into(),
        };
        let raw = String::from_utf8(sender.build_message(&mail).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("Message-ID: <inv=3A1@northside.example>"),
            "{raw}"
        );
        assert!(
            raw.contains("X-Guestbridge-Kind: invitationBccevilx"),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(!raw.contains("\nBcc:"), "{raw}");

        let bad = OutgoingMail {
            to: "not an address".into(),
            ..mail.clone()
        };
        assert!(matches!(
            sender.build_message(&bad),
            Err(SendError::Permanent { code: None, .. })
        ));
    }

    #[test]
    fn line_breaks_never_reach_a_header() {
        let sender = SmtpSender::new(
            "smtp://127.0.0.1:25",
            "Northside <guest-access@northside.example>",
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        let mail = OutgoingMail {
            to: "dr.grey@hospital.example".into(),
            subject: "Bob\r\nBcc: x@evil.test\r\n\r\nbody (Globex) declined\u{85}X-Evil: 1".into(),
            text: "text body".into(),
            html: "<p>html body</p>".into(),
            kind: "declined_notice".into(),
            idempotency_key: "declined:1".into(),
        };
        let raw = String::from_utf8(sender.build_message(&mail).unwrap().formatted()).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap();
        for line in head.split("\r\n") {
            assert!(
                !line.starts_with("Bcc:") && !line.starts_with("X-Evil:"),
                "{raw}"
            );
        }
        assert!(
            head.contains("Subject: Bob Bcc: x@evil.test body (Globex) declined X-Evil: 1"),
            "{raw}"
        );

        for to in [
            "ann@acme.example\r\nBcc: x@evil.test",
            "Ann\r\nBcc: x@evil.test <ann@acme.example>",
        ] {
            let bad = OutgoingMail {
                to: to.into(),
                ..mail.clone()
            };
            assert!(
                matches!(
                    sender.build_message(&bad),
                    Err(SendError::Permanent { code: None, .. })
                ),
                "{to:?}"
            );
        }
    }
}
