//! `guestbridge import`: in this process under the database's import lock, or submitted to a
//! running server (`--server`), whose writer queue then orders it with its SCIM writes.

use anyhow::Context;

use super::{cli_actor, deps, service_error, slug, ModeArg};
use crate::config::Settings;
use crate::services;

/// The options of `guestbridge import`, as parsed.
pub(super) struct ImportArgs {
    pub file: std::path::PathBuf,
    pub partner: String,
    pub dry_run: bool,
    pub mode: ModeArg,
    pub force: bool,
    pub delimiter: Option<String>,
    pub server: Option<String>,
}

pub(super) async fn run(settings: &Settings, args: ImportArgs) -> anyhow::Result<()> {
    let ImportArgs {
        file,
        partner,
        dry_run,
        mode,
        force,
        delimiter,
        server,
    } = args;
    if let Some(url) = server {
        return import_through_server(url, &file, &partner, mode, dry_run, force, delimiter).await;
    }
    let deps = deps(settings).await?;
    let partner = services::partners::find_partner(&deps, &slug(&partner)?)
        .await
        .map_err(|e| service_error(e, "partner"))?;
    let delimiter = match delimiter.as_deref() {
        None => None,
        Some("tab") | Some("\\t") => Some(b'\t'),
        Some(d) if d.len() == 1 => Some(d.as_bytes()[0]),
        Some(d) => anyhow::bail!("--delimiter {d:?} must be one character or 'tab'"),
    };
    let maps = if settings.mappings_dir.exists() {
        crate::import::load_column_maps(&settings.mappings_dir)
            .map_err(|e| anyhow::anyhow!("invalid column maps: {}", e.join("; ")))?
    } else {
        Default::default()
    };
    let map = maps.get(partner.slug.as_str()).cloned().unwrap_or_default();
    let handle =
        std::fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
    let size = handle.metadata().map(|m| m.len()).unwrap_or(0);
    let input = std::io::BufReader::with_capacity(64 * 1024, handle);
    let bar = progress_bar(size);
    let counter = bar.clone();
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let opts = services::import::ImportOptions {
        mode: match mode {
            ModeArg::Delta => services::import::ImportMode::Delta,
            ModeArg::Full => services::import::ImportMode::Full,
        },
        dry_run,
        force,
        max_deactivate_share: 0.10,
        delimiter,
        file_name: name,
        id: None,
    };
    let actor = cli_actor();
    if !dry_run && crate::store::import_staging::server_is_using(&deps.db).await? {
        eprintln!(
            "a `guestbridge serve` is using this SQLite database: its SCIM writes may \
                 wait behind this import; pass --server URL (or GUESTBRIDGE_SERVER_URL) and \
                 GUESTBRIDGE_ADMIN_TOKEN to let the server run it in turn with its writers"
        );
    }
    // A server on this database imports under the same lock; waiting for it here,
    // rather than writing next to it, keeps either from stalling the other's writers.
    let lock = if dry_run {
        None
    } else {
        let waiting = || {
            eprintln!(
                "another import is running on this database (a server or another \
                     `guestbridge import`); waiting for it to finish"
            )
        };
        Some(crate::store::import_staging::ImportLock::acquire(&deps.db, &waiting).await?)
    };
    let report = services::import::run_locked(
        lock,
        &deps,
        &actor,
        &partner,
        input,
        &map,
        &opts,
        &move |rows, bytes| {
            if let Some(b) = &counter {
                show_progress(b, rows, bytes);
            }
        },
    )
    .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let report = report?;
    for e in &report.errors {
        println!(
            "line {}{}: {}",
            e.line,
            e.column
                .as_deref()
                .map(|c| format!(" column {c}"))
                .unwrap_or_default(),
            e.reason
        );
    }
    if report.errors_not_listed() > 0 {
        println!("and {} more", report.errors_not_listed());
    }
    if dry_run {
        for c in &report.changes {
            println!(
                "{} {}{}",
                c.action,
                c.user_name,
                if c.attributes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", c.attributes.join(", "))
                }
            );
        }
        println!("dry run: nothing was written");
    }
    println!("{}", report.summary());
    Ok(())
}

/// `guestbridge import --server URL`: the server runs the import; the last line is the
/// same as for a local one.
async fn import_through_server(
    url: String,
    file: &std::path::Path,
    partner: &str,
    mode: ModeArg,
    dry_run: bool,
    force: bool,
    delimiter: Option<String>,
) -> anyhow::Result<()> {
    use super::import_submit;
    if delimiter.is_some() {
        anyhow::bail!("--delimiter cannot be sent with --server: the server detects the delimiter from the header");
    }
    let token = std::env::var("GUESTBRIDGE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .context(
            "--server needs an admin token in GUESTBRIDGE_ADMIN_TOKEN (`guestbridge admin token`)",
        )?;
    let server = import_submit::Server {
        url,
        token: token.trim().to_string(),
    };
    slug(partner)?;
    let what = import_submit::Submission {
        file,
        partner,
        mode: match mode {
            ModeArg::Delta => "delta",
            ModeArg::Full => "full",
        },
        dry_run,
        force,
    };
    let bar = progress_bar(0);
    let counter = bar.clone();
    let outcome = import_submit::submit(&server, &what, &move |rows| {
        if let Some(b) = &counter {
            show_progress(b, rows, 0);
        }
    })
    .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let outcome = outcome?;
    if outcome.errors > 0 {
        match import_submit::error_report(&server, &outcome.id).await {
            Ok(report) => print!("{report}"),
            Err(e) => eprintln!("cannot fetch the row errors: {e}"),
        }
    }
    if dry_run {
        println!("dry run: nothing was written");
    }
    println!("{}", outcome.summary());
    Ok(())
}

/// A progress bar (rows, rows/s) when stderr is a terminal; nothing otherwise, so scripts
/// see only the summary line.
/// On a terminal, a bar over the file's bytes (which gives the ETA) with rows and rows/s.
fn progress_bar(file_size: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(file_size.max(1));
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {percent:>3}% {msg} ({elapsed}, ETA {eta})",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// Show `rows` read and `bytes` of the file consumed (0: unknown, keep the position).
fn show_progress(bar: &indicatif::ProgressBar, rows: u64, bytes: u64) {
    if bytes > 0 {
        bar.set_position(bytes);
    }
    let seconds = bar.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        rows as f64 / seconds
    } else {
        0.0
    };
    bar.set_message(format!("{rows} rows, {rate:.0} rows/s"));
}
