//! Logging: a tracing subscriber writing to stderr (stdout is reserved for command output
//! such as issued tokens), as text or JSON lines.

use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::EnvFilter;

/// Install the global subscriber once; later calls (tests) are ignored. `RUST_LOG` overrides
/// the default level.
/// How log lines are written; the setting `log_format` chooses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr.with_max_level(tracing::Level::TRACE));
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// A resource id as logs may show it: ids we issue (UUIDs, slugs) as they are, anything else a
/// client put in a URL in their place (an e-mail address, a name) as `…`, since a client that
/// sends a userName where an id belongs would otherwise write it into every line of the request.
pub fn loggable_id(id: &str) -> &str {
    let issued_shape = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if issued_shape {
        id
    } else {
        "…"
    }
}
