//! Sending through `SmtpSender` to the test SMTP server and reading the message back; how
//! outages and refusals are classified for the outbox.

use std::time::Duration;

use guestbridge::mail::message::OutgoingMail;
use guestbridge::mail::smtp::{SendError, SmtpSender};
use guestbridge::mail::templates::{sample_context, Templates};

use crate::smtp::{SmtpMode, TestSmtp};

const WAIT: Duration = Duration::from_secs(10);
const FROM: &str = "Northside Guest Access <guest-access@northside.example>";

fn sender(url: &str) -> SmtpSender {
    SmtpSender::new(url, FROM, Duration::from_secs(5)).expect("sender")
}

fn plain_mail(key: &str) -> OutgoingMail {
    OutgoingMail {
        to: "ann@acme.example".into(),
        subject: "Hello".into(),
        text: "Open https://gb.example/signin/abc\n".into(),
        html: "<p><a href=\"https://gb.example/signin/abc\">Sign in</a></p>".into(),
        kind: "signin_link".into(),
        idempotency_key: key.into(),
    }
}

#[tokio::test]
async fn invitation_arrives_with_both_parts_and_an_intact_link() {
    let smtp = TestSmtp::start();
    let templates = Templates::load(None).expect("built-in templates");
    // Characters that quoted-printable must encode (=, &, ?) and a line past 76 characters.
    let link = "https://guestbridge.example/invite/Zm9vYmFyLWJhei1xdXV4LTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1Njc4OQ?lang=fr&x=a=b";
    let mut ctx = sample_context("invitation").unwrap();
    ctx["link"] = link.into();
    ctx["guest_name"] = "Zoë <script>alert(1)</script>".into();
    let rendered = templates
        .render("invitation", Some("acme"), Some("en"), &ctx)
        .unwrap();

    let mail = OutgoingMail {
        to: "Zoë Lee <zoe@acme.example>".into(),
        subject: rendered.subject.clone(),
        text: rendered.text.clone(),
        html: rendered.html.clone(),
        kind: "invitation".into(),
        idempotency_key: "invitation:7f3a:1".into(),
    };
    sender(&smtp.url).send(&mail).await.unwrap();

    let received = smtp.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.from, "guest-access@northside.example");
    assert_eq!(got.to, vec!["zoe@acme.example".to_string()]);
    assert_eq!(got.subject().as_deref(), Some(rendered.subject.as_str()));
    assert_eq!(
        got.message_id().as_deref(),
        Some("<invitation=3A7f3a=3A1@northside.example>")
    );
    assert_eq!(
        got.header("X-Guestbridge-Kind").as_deref(),
        Some("invitation")
    );
    assert_eq!(
        got.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert!(got.raw().contains("multipart/alternative"));

    let text = got.text_body().expect("text/plain part");
    assert_eq!(
        text.replace("\r\n", "\n").trim_end(),
        rendered.text.trim_end()
    );
    assert!(text.contains("Zoë <script>alert(1)</script>"));
    assert_eq!(
        got.find_link("https://guestbridge.example/invite/")
            .as_deref(),
        Some(link)
    );

    let html = got.html_body().expect("text/html part");
    assert!(
        html.contains("Zoë &lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"));
    assert!(html.contains("href=\"https:&#x2f;&#x2f;guestbridge.example&#x2f;invite&#x2f;"));
    // Long HTML lines make lettre pick quoted-printable for that part.
    assert!(got
        .raw()
        .contains("Content-Transfer-Encoding: quoted-printable"));
}

#[tokio::test]
async fn base64_bodies_decode_and_keep_the_link() {
    let smtp = TestSmtp::start();
    let link = "https://guestbridge.example/signin/q-_Z09az?next=%2Fapps";
    let mut mail = plain_mail("signin:1");
    // Mostly non-ASCII text: lettre chooses base64.
    mail.text = format!(
        "Γειά σας, Ζωή! Ανοίξτε αυτόν τον σύνδεσμο για να συνδεθείτε:\n{link}\nΕυχαριστούμε.\n"
    );
    mail.subject = "Σύνδεσμος σύνδεσης\nsecond line".replace('\n', " ");
    sender(&smtp.url).send(&mail).await.unwrap();

    let got = &smtp.wait_for(1, WAIT).await[0];
    assert!(
        got.raw().contains("Content-Transfer-Encoding: base64"),
        "{}",
        got.raw()
    );
    assert_eq!(
        got.find_link("https://guestbridge.example/signin/")
            .as_deref(),
        Some(link)
    );
    assert_eq!(
        got.subject().as_deref(),
        Some("Σύνδεσμος σύνδεσης second line")
    );
}

#[tokio::test]
async fn server_down_is_transient_and_delivery_works_once_it_is_back() {
    let smtp = TestSmtp::start();
    let sender = sender(&smtp.url);
    smtp.stop();

    let err = sender.send(&plain_mail("k:1")).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.code(), None);

    smtp.start_again();
    sender.send(&plain_mail("k:1")).await.unwrap();
    assert_eq!(smtp.wait_for(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn mailbox_unavailable_is_permanent() {
    let smtp = TestSmtp::start();
    let sender = sender(&smtp.url);

    smtp.set_mode(SmtpMode::FailRcpt(550));
    let err = sender.send(&plain_mail("k:2")).await.unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Permanent {
                code: Some(550),
                ..
            }
        ),
        "{err}"
    );

    smtp.set_mode(SmtpMode::FailMailFrom(554));
    let err = sender.send(&plain_mail("k:2")).await.unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Permanent {
                code: Some(554),
                ..
            }
        ),
        "{err}"
    );
    assert!(smtp.received().is_empty());
}

#[tokio::test]
async fn four_hundreds_are_transient() {
    let smtp = TestSmtp::start();
    let sender = sender(&smtp.url);
    for (mode, code) in [
        (SmtpMode::FailMailFrom(451), 451),
        (SmtpMode::FailMailFrom(421), 421),
        (SmtpMode::FailRcpt(452), 452),
        (SmtpMode::FailData(451), 451),
    ] {
        smtp.set_mode(mode);
        let err = sender.send(&plain_mail("k:3")).await.unwrap_err();
        assert!(
            matches!(err, SendError::Transient { code: Some(c), .. } if c == code),
            "{mode:?}: {err}"
        );
    }
    assert!(smtp.received().is_empty());
}

#[tokio::test]
async fn fail_next_then_accept_delivers_exactly_once() {
    let smtp = TestSmtp::start();
    let sender = sender(&smtp.url);
    smtp.fail_next(2, SmtpMode::FailMailFrom(451));
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(sender.send(&plain_mail("k:4")).await.is_ok());
    }
    assert_eq!(outcomes, [false, false, true]);
    assert_eq!(smtp.mail_from_count(), 3);
    assert_eq!(smtp.wait_for(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn a_retry_after_an_ambiguous_failure_carries_the_same_message_id() {
    let smtp = TestSmtp::start();
    let sender = sender(&smtp.url);
    smtp.fail_next(1, SmtpMode::DropAfterData);

    let err = sender
        .send(&plain_mail("invitation:9:1"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    sender.send(&plain_mail("invitation:9:1")).await.unwrap();

    let received = smtp.wait_for(2, WAIT).await;
    assert_eq!(received[0].message_id(), received[1].message_id());
    assert_eq!(
        received[0].message_id().as_deref(),
        Some("<invitation=3A9=3A1@northside.example>")
    );
}

#[tokio::test]
async fn credentials_are_used_and_a_wrong_password_is_transient() {
    let smtp = TestSmtp::start_with_auth("relay-user", "s3cret");
    sender(&smtp.url).send(&plain_mail("k:5")).await.unwrap();
    assert_eq!(smtp.wait_for(1, WAIT).await.len(), 1);

    let wrong = smtp.url.replace("s3cret", "wrong");
    let err = sender(&wrong).send(&plain_mail("k:5")).await.unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Transient {
                code: Some(535),
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_transient() {
    // Bound but never accepting: the TCP handshake completes, the greeting never comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("smtp://{}", silent.local_addr().unwrap());
    let sender = SmtpSender::new(&url, FROM, Duration::from_millis(300)).unwrap();
    let started = std::time::Instant::now();
    let err = sender.send(&plain_mail("k:6")).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_invalid_recipient_is_permanent_without_contacting_the_server() {
    let smtp = TestSmtp::start();
    let mut mail = plain_mail("k:7");
    mail.to = "not an address".into();
    let err = sender(&smtp.url).send(&mail).await.unwrap_err();
    assert!(
        matches!(err, SendError::Permanent { code: None, .. }),
        "{err}"
    );
    assert_eq!(smtp.connections(), 0);
}
