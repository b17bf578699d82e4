//! A real SMTP server for the integration tests: RFC 5321 over TCP on a random loopback port.
//! The protocol (EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, VRFY, QUIT,
//! AUTH PLAIN/LOGIN) is the `mailin` crate's state machine; this file only does the socket I/O,
//! on its own thread and runtime so that any test (async or not) can use it. It keeps what it
//! receives, can be stopped and started again on the same port, and can fail on purpose
//! (4xx/5xx at MAIL FROM, RCPT TO or end of DATA, or a dropped connection after DATA) so that
//! tests can check retries and dead-lettering.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use mailin::{response, AuthMechanism, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};

/// How the server answers, from the next command on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpMode {
    /// Accept and keep every message.
    Accept,
    /// Answer MAIL FROM with this code (421 also closes the connection; 451; 550 ...).
    FailMailFrom(u16),
    /// Answer every RCPT TO with this code (550: no such mailbox).
    FailRcpt(u16),
    /// Receive the whole message, then answer the final `.` with this code and keep nothing.
    FailData(u16),
    /// Receive and keep the message, then close the connection without answering the final
    /// `.`: the sender cannot know whether it was delivered (the ambiguous failure).
    DropAfterData,
}

/// A message as the server received it.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// MAIL FROM address.
    pub from: String,
    /// RCPT TO addresses.
    pub to: Vec<String>,
    /// The DATA, dot-unstuffed, CRLF line ends.
    pub data: Vec<u8>,
}

impl ReceivedMail {
    fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("received data is not a parsable message")
    }

    /// The raw message as text (lossy).
    pub fn raw(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The decoded Subject.
    pub fn subject(&self) -> Option<String> {
        self.parsed().subject().map(str::to_owned)
    }

    /// The Message-ID with its angle brackets (`<id@domain>`).
    pub fn message_id(&self) -> Option<String> {
        self.parsed().message_id().map(|id| format!("<{id}>"))
    }

    /// A top-level header's value, unfolded and trimmed (`X-Guestbridge-Kind`).
    pub fn header(&self, name: &str) -> Option<String> {
        let parsed = self.parsed();
        parsed
            .header_raw(name)
            .map(|v| v.replace("\r\n", "").replace('\n', "").trim().to_owned())
    }

    /// The decoded text/plain part (quoted-printable or base64 undone), not a conversion of
    /// the HTML.
    pub fn text_body(&self) -> Option<String> {
        self.parsed()
            .parts
            .iter()
            .find_map(|part| match &part.body {
                mail_parser::PartType::Text(text) => Some(text.to_string()),
                _ => None,
            })
    }

    /// The decoded text/html part.
    pub fn html_body(&self) -> Option<String> {
        self.parsed()
            .parts
            .iter()
            .find_map(|part| match &part.body {
                mail_parser::PartType::Html(html) => Some(html.to_string()),
                _ => None,
            })
    }

    /// The first link in the text part that starts with `prefix`, up to the first space,
    /// quote or angle bracket (a sentence's final `.` or `,` is not part of it).
    pub fn find_link(&self, prefix: &str) -> Option<String> {
        let text = self.text_body()?;
        let start = text.find(prefix)?;
        let link: String = text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && !matches!(c, '<' | '>' | '"' | '\'' | ')'))
            .collect();
        Some(link.trim_end_matches(['.', ',', ';', ':']).to_owned())
    }
}

struct State {
    mode: SmtpMode,
    /// Failures left before going back to [`SmtpMode::Accept`]; `None`: no limit.
    failures_left: Option<usize>,
    received: Vec<ReceivedMail>,
    mail_from_count: usize,
    connections: usize,
}

struct Shared {
    state: Mutex<State>,
    notify: Notify,
    /// `(user, password)` required by AUTH, if any.
    auth: Option<(String, String)>,
    /// Milliseconds the server waits before each reply (a slow server).
    reply_delay_ms: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The failure code for this stage, if the mode says so (counting it down).
    fn failure(&self, stage: fn(SmtpMode) -> Option<u16>) -> Option<u16> {
        let mut state = self.lock();
        let code = stage(state.mode)?;
        if let Some(left) = state.failures_left.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                state.mode = SmtpMode::Accept;
                state.failures_left = None;
            }
        }
        Some(code)
    }

    fn store(&self, mail: ReceivedMail) {
        register_mail_secrets(&mail);
        self.lock().received.push(mail);
        self.notify.notify_waiters();
    }
}

/// Link secrets and codes a mail carries, and its recipients, must never be logged.
fn register_mail_secrets(mail: &ReceivedMail) {
    let text = mail.text_body().unwrap_or_else(|| mail.raw());
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
        let code = word.len() == 6 && word.chars().all(|c| c.is_ascii_digit());
        if code || (word.len() >= 16 && word.chars().any(|c| c.is_ascii_digit())) {
            crate::log_scan::register_secret(word);
        }
    }
    for to in &mail.to {
        crate::log_scan::register_secret(to);
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

/// The test SMTP server. Stops when dropped.
pub struct TestSmtp {
    /// `smtp://127.0.0.1:PORT` (with `user:password@` and `?tls=none` when started with AUTH).
    pub url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

impl TestSmtp {
    /// Starts a server on a random loopback port that accepts everything.
    pub fn start() -> TestSmtp {
        Self::start_inner(None)
    }

    /// Starts a server that requires AUTH (PLAIN or LOGIN, allowed without TLS here).
    pub fn start_with_auth(user: &str, password: &str) -> TestSmtp {
        Self::start_inner(Some((user.to_owned(), password.to_owned())))
    }

    fn start_inner(auth: Option<(String, String)>) -> TestSmtp {
        let listener = StdTcpListener::bind("127.0.0.1:0").expect("bind test SMTP port");
        let addr = listener.local_addr().expect("test SMTP address");
        let url = match &auth {
            None => format!("smtp://{addr}"),
            Some((user, password)) => format!("smtp://{user}:{password}@{addr}?tls=none"),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mode: SmtpMode::Accept,
                failures_left: None,
                received: Vec::new(),
                mail_from_count: 0,
                connections: 0,
            }),
            notify: Notify::new(),
            auth,
            reply_delay_ms: std::sync::atomic::AtomicU64::new(0),
        });
        let server = TestSmtp {
            url,
            addr,
            shared,
            running: Mutex::new(None),
        };
        server.spawn(listener);
        server
    }

    /// Wait this long before every reply from now on (a slow server).
    pub fn set_reply_delay(&self, delay: Duration) {
        self.shared.reply_delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            Ordering::SeqCst,
        );
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the port and every open connection: senders now get "connection refused".
    pub fn stop(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(running) = running {
            let _ = running.stop.send(());
            let _ = running.thread.join();
        }
    }

    /// Listens again on the same port, keeping what was received so far.
    pub fn start_again(&self) {
        if self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return;
        }
        let mut tries = 0;
        let listener = loop {
            match StdTcpListener::bind(self.addr) {
                Ok(listener) => break listener,
                Err(err) if tries < 50 => {
                    tries += 1;
                    let _ = err;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => panic!("cannot listen again on {}: {err}", self.addr),
            }
        };
        self.spawn(listener);
    }

    /// Answers as `mode` says from now on.
    pub fn set_mode(&self, mode: SmtpMode) {
        let mut state = self.shared.lock();
        state.mode = mode;
        state.failures_left = None;
    }

    /// Fails `times` transactions as `mode` says, then accepts again.
    pub fn fail_next(&self, times: usize, mode: SmtpMode) {
        let mut state = self.shared.lock();
        if times == 0 {
            state.mode = SmtpMode::Accept;
            state.failures_left = None;
        } else {
            state.mode = mode;
            state.failures_left = Some(times);
        }
    }

    /// Waits until at least `n` messages have arrived and returns all of them, in order.
    /// Panics after `timeout` with the number that did arrive.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = {
                let state = self.shared.lock();
                if state.received.len() >= n {
                    return state.received.clone();
                }
                state.received.len()
            };
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("expected {n} mail(s) within {timeout:?}, received {got}");
            }
        }
    }

    /// What has arrived so far, without waiting.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.shared.lock().received.clone()
    }

    /// Forgets what has arrived.
    pub fn clear(&self) {
        self.shared.lock().received.clear();
    }

    /// How many MAIL FROM commands arrived (delivery attempts that got that far).
    pub fn mail_from_count(&self) -> usize {
        self.shared.lock().mail_from_count
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }

    fn spawn(&self, listener: StdTcpListener) {
        listener
            .set_nonblocking(true)
            .expect("non-blocking test SMTP listener");
        let (stop, mut stopped) = oneshot::channel::<()>();
        let shared = Arc::clone(&self.shared);
        let thread = std::thread::Builder::new()
            .name(format!("test-smtp-{}", self.addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("test SMTP runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("test SMTP listener");
                    let mut connections = tokio::task::JoinSet::new();
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            accepted = listener.accept() => {
                                if let Ok((stream, peer)) = accepted {
                                    shared.lock().connections += 1;
                                    connections.spawn(serve_connection(
                                        stream,
                                        peer.ip(),
                                        Arc::clone(&shared),
                                    ));
                                }
                            }
                            // Reap finished sessions so the set does not grow.
                            Some(_) = connections.join_next(), if !connections.is_empty() => {}
                        }
                    }
                    drop(listener);
                    connections.shutdown().await;
                });
            })
            .expect("test SMTP thread");
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(Running { stop, thread });
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One SMTP session: lines in, `mailin` decides, responses out.
async fn serve_connection(stream: TcpStream, peer: IpAddr, shared: Arc<Shared>) {
    let drop_connection = Arc::new(AtomicBool::new(false));
    let close_after_reply = Arc::new(AtomicBool::new(false));
    let handler = ConnectionHandler {
        shared: Arc::clone(&shared),
        from: String::new(),
        to: Vec::new(),
        data: Vec::new(),
        drop_connection: Arc::clone(&drop_connection),
        close_after_reply: Arc::clone(&close_after_reply),
    };
    let mut builder = SessionBuilder::new("guestbridge-test-smtp");
    if shared.auth.is_some() {
        builder
            .enable_auth(AuthMechanism::Plain)
            .enable_auth(AuthMechanism::Login)
            .insecure_enable_plaintext_auth();
    }
    let mut session = builder.build(peer, handler);

    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    if write_response(&mut write, &session.greeting())
        .await
        .is_err()
    {
        return;
    }
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = session.process(&line);
        if drop_connection.load(Ordering::SeqCst) {
            return;
        }
        match response.action {
            mailin::Action::NoReply => {}
            mailin::Action::Reply => {
                let delay = shared.reply_delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if write_response(&mut write, &response).await.is_err()
                    || close_after_reply.load(Ordering::SeqCst)
                {
                    return;
                }
            }
            mailin::Action::Close | mailin::Action::UpgradeTls => {
                let _ = write_response(&mut write, &response).await;
                return;
            }
        }
    }
}

async fn write_response(
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    response: &Response,
) -> std::io::Result<()> {
    write.write_all(&response.buffer()?).await?;
    write.flush().await
}

struct ConnectionHandler {
    shared: Arc<Shared>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
    drop_connection: Arc<AtomicBool>,
    /// mailin stays in the DATA state after a failed end of data (so a following QUIT would
    /// be taken as message text); the server closes the connection after that reply instead.
    close_after_reply: Arc<AtomicBool>,
}

fn reply(code: u16) -> Response {
    let text = match code {
        421 => "4.3.2 Test server: service not available, closing connection",
        400..=499 => "4.3.0 Test server: temporary failure, try again later",
        550 => "5.1.1 Test server: mailbox unavailable",
        _ => "5.0.0 Test server: permanent failure",
    };
    Response::custom(code, text.to_owned())
}

impl Handler for ConnectionHandler {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, from: &str) -> Response {
        self.shared.lock().mail_from_count += 1;
        if let Some(code) = self.shared.failure(|mode| match mode {
            SmtpMode::FailMailFrom(code) => Some(code),
            _ => None,
        }) {
            return reply(code);
        }
        self.from = from.to_owned();
        self.to.clear();
        self.data.clear();
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if let Some(code) = self.shared.failure(|mode| match mode {
            SmtpMode::FailRcpt(code) => Some(code),
            _ => None,
        }) {
            return reply(code);
        }
        self.to.push(to.to_owned());
        response::OK
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = ReceivedMail {
            from: std::mem::take(&mut self.from),
            to: std::mem::take(&mut self.to),
            data: std::mem::take(&mut self.data),
        };
        if let Some(code) = self.shared.failure(|mode| match mode {
            SmtpMode::FailData(code) => Some(code),
            _ => None,
        }) {
            self.close_after_reply.store(true, Ordering::SeqCst);
            return reply(code);
        }
        let drop_after = self.shared.failure(|mode| match mode {
            SmtpMode::DropAfterData => Some(0),
            _ => None,
        });
        self.shared.store(mail);
        if drop_after.is_some() {
            self.drop_connection.store(true, Ordering::SeqCst);
        }
        response::OK
    }

    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.check_auth(user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.check_auth(user, password)
    }
}

impl ConnectionHandler {
    fn check_auth(&self, user: &str, password: &str) -> Response {
        match &self.shared.auth {
            Some((u, p)) if u == user && p == password => response::AUTH_OK,
            _ => response::INVALID_CREDENTIALS,
        }
    }
}
