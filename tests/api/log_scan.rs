//! The log scan: every log line the application writes during the integration suite is
//! formatted as production would format it (text, with the fields of its spans) and checked
//! for secrets and personal data. A line fails when it holds a value the helpers registered
//! (tokens they were issued, links and codes from mail, cookies) — also when the value is
//! registered after the line was written — or anything shaped like our secrets (`gbp_`/`gba_`
//! tokens, random base64url, base32 TOTP secrets) or an e-mail address. Violations fail the
//! next test that checks (`check`, called by the helpers after each response and when a
//! `TestApp` is dropped). Lines go to a sink, so test output is unchanged.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// As verbose as the application gets (our crate at TRACE, libraries at DEBUG), without the
/// test code itself (its stand-in servers print what they receive) and per-byte I/O noise.
const FILTER: &str = "debug,guestbridge=trace,tracing_actix_web=trace,api=off,mailin=off,\
    mio=info,want=info,hyper=info,hyper_util=info,h2=info,rustls=info,tokio_util=info";

/// Where the count is written, since the test harness has no end-of-run hook.
const COUNT_FILE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/log-scan.count");

/// Addresses that are the bridge's own, not a person's.
const OWN_ADDRESSES: &[&str] = &["guestbridge@localhost"];

static LINES: AtomicU64 = AtomicU64::new(0);

#[derive(Default)]
struct Registry {
    secrets: HashSet<String>,
    /// Every word seen in a line, with the first line it was seen in, so that a secret
    /// registered later is still found.
    seen: HashMap<String, String>,
    violations: Vec<String>,
}

static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Install the scanning subscriber once per test process.
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let scan = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| LineSink(Vec::new()));
        let shown = std::env::var("TEST_LOG")
            .is_ok()
            .then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr));
        let _ = tracing_subscriber::registry()
            .with(EnvFilter::new(FILTER))
            .with(scan)
            .with(shown)
            .try_init();
    });
}

/// A value no log line may hold (shorter values would match by chance).
pub fn register_secret(secret: &str) {
    let secret = secret.trim();
    if secret.len() < 6 {
        return;
    }
    let mut reg = registry();
    if let Some(line) = reg.seen.get(secret).cloned() {
        reg.violations
            .push(format!("a secret registered later was logged: {line}"));
    }
    reg.secrets.insert(secret.to_string());
}

/// Fail the calling test with the violations found since the last check.
pub fn check() {
    let _ = std::fs::write(COUNT_FILE, LINES.load(Ordering::Relaxed).to_string());
    let found = std::mem::take(&mut registry().violations);
    if !found.is_empty() && !std::thread::panicking() {
        panic!(
            "{} log line(s) hold secrets or personal data:\n{}",
            found.len(),
            found.join("\n")
        );
    }
}

struct LineSink(Vec<u8>);

impl Write for LineSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineSink {
    fn drop(&mut self) {
        for line in String::from_utf8_lossy(&self.0).lines() {
            scan(line);
        }
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_email_char(c: char) -> bool {
    is_token_char(c) || matches!(c, '.' | '+' | '@')
}

/// Why a word looks like one of our secrets, if it does.
fn secret_shape(word: &str) -> Option<&'static str> {
    if (word.starts_with("gbp_") || word.starts_with("gba_")) && word.len() >= 40 {
        return Some("a bearer token");
    }
    let upper = word.chars().any(|c| c.is_ascii_uppercase());
    let lower = word.chars().any(|c| c.is_ascii_lowercase());
    let digit = word.chars().any(|c| c.is_ascii_digit());
    if word.len() >= 22 && upper && lower && digit {
        return Some("random base64url (a link secret or session id)");
    }
    if word.len() >= 26
        && upper
        && !lower
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
    {
        return Some("a base32 TOTP secret");
    }
    None
}

fn looks_like_email(word: &str) -> bool {
    let Some((local, domain)) = word.split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
}

fn scan(line: &str) {
    LINES.fetch_add(1, Ordering::Relaxed);
    let decoded = percent_encoding::percent_decode_str(line)
        .decode_utf8_lossy()
        .into_owned();
    let mut problems = Vec::new();
    let mut words = Vec::new();
    for text in [line, decoded.as_str()] {
        for word in text.split(|c| !is_token_char(c)).filter(|w| w.len() >= 6) {
            if let Some(shape) = secret_shape(word) {
                problems.push(format!("{shape} {word:?}"));
            }
            words.push(word.to_string());
        }
        for word in text.split(|c| !is_email_char(c)) {
            let word = word.trim_matches('.').to_ascii_lowercase();
            if looks_like_email(&word) && !OWN_ADDRESSES.contains(&word.as_str()) {
                problems.push(format!("an e-mail address {word:?}"));
            }
        }
    }
    let mut reg = registry();
    for word in words {
        if reg.secrets.contains(&word) {
            problems.push(format!("a registered secret {word:?}"));
        }
        reg.seen.entry(word).or_insert_with(|| line.to_string());
    }
    if !problems.is_empty() {
        problems.dedup();
        reg.violations
            .push(format!("{}\n    in: {line}", problems.join(", ")));
    }
}
