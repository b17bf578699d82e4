//! The command line (see CONTRACT.md): each command calls the same services as the HTTP API.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::PartnerSlug;
use crate::services::{self, Actor, Deps, ServiceError};
use crate::startup::Application;
use crate::store::Db;

#[derive(Debug, Parser)]
#[command(
    name = "guestbridge",
    version,
    about = "SCIM 2.0 provisioning and sync bridge for B2B guest access"
)]
pub struct Cli {
    /// Settings file (TOML); GUESTBRIDGE_* environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve HTTP.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage partner organisations.
    Partner {
        #[command(subcommand)]
        command: PartnerCommand,
    },
    /// Manage partner SCIM tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage admin API access.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Act on one guest.
    Guest {
        #[command(subcommand)]
        command: GuestCommand,
    },
    /// Run or list the scheduled jobs.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Outbound sync: reconcile a target.
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Manage the app-launch signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Validate and compare mapping rules.
    Mappings {
        #[command(subcommand)]
        command: MappingsCommand,
    },
    /// Import a CSV roster for a partner (see mappings/README.md for the format).
    Import {
        /// The CSV file.
        file: PathBuf,
        /// The partner's slug.
        #[arg(long)]
        partner: String,
        /// Show what would change and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// `delta` creates and updates the rows given; `full` also deactivates people missing from the file.
        #[arg(long, value_enum, default_value = "delta")]
        mode: ModeArg,
        /// Let a full import deactivate more than the safety share of people.
        #[arg(long)]
        force: bool,
        /// Field delimiter (detected from the header when absent): ',', ';', 'tab' or '|'.
        #[arg(long)]
        delimiter: Option<String>,
        /// Submit the file to this running server's admin API (its base URL) rather than
        /// writing the database from this process; the admin token comes from
        /// GUESTBRIDGE_ADMIN_TOKEN.
        #[arg(long, env = "GUESTBRIDGE_SERVER_URL", value_name = "URL")]
        server: Option<String>,
    },
    /// Show what the rules decide for a partner's person, rule by rule.
    Explain {
        /// The partner's slug.
        partner: String,
        /// The person's SCIM userName.
        user_name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GuestCommand {
    /// Send a guest a new invitation (the old link stops working). A guest suspended as
    /// declined, lapsed or inactive is invited again.
    Reinvite {
        /// The guest's id.
        id: String,
    },
    /// The guest lost their authenticator: remove it and end their sessions; they set up a
    /// new one at their next sign-in.
    ResetMfa {
        /// The guest's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Run one job once (reminders, expiry, deprovision, outbox).
    Run {
        name: String,
        /// Run as if it were this instant (RFC 3339), to test or to catch up.
        #[arg(long)]
        now: Option<String>,
    },
    /// Show each job's schedule and last run.
    List,
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Compare a SCIM target with the guests decided here and repair the users Guestbridge
    /// owns there; users it does not own are listed, never changed.
    Reconcile {
        /// The target's name (`sync.targets`).
        target: String,
        /// Show what would be created, changed and deactivated; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Go ahead even when more users would be deactivated than the cap
        /// (5 % of the owned users or 50, whichever is larger).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Start signing app-launch tokens with a new key; the old key stays published until
    /// the tokens it signed have expired.
    Rotate,
    /// Re-encrypt every sealed secret (signing keys, TOTP seeds, queued mail) from the
    /// current key (GUESTBRIDGE_SECRET_KEY) to the key in the variable `--new-key-env`, in
    /// one transaction; refused, with nothing changed, if any value does not open. Stop the
    /// servers first and start them with the new key afterwards.
    Reseal {
        /// The environment variable holding the new key (64 hex characters).
        #[arg(long, default_value = "GUESTBRIDGE_NEW_SECRET_KEY")]
        new_key_env: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    Delta,
    Full,
}

#[derive(Debug, Subcommand)]
pub enum MappingsCommand {
    /// Validate rule files; errors name file and line.
    Check {
        /// Folder of rule files (default: the mappings_dir setting).
        dir: Option<PathBuf>,
    },
    /// Show what the rules in NEWDIR would change over all current people, without applying.
    Diff { new_dir: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum PartnerCommand {
    /// Register a partner organisation.
    Add {
        /// Short URL-safe name, e.g. acme.
        slug: String,
        /// Display name, e.g. "Acme Health".
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new SCIM bearer token for a partner (shown once; stored hashed).
    Issue { slug: String },
    /// List a partner's SCIM tokens: id, created, last used, revoked.
    List { slug: String },
    /// Revoke a partner's SCIM token by id. A running server stops accepting it within
    /// 30 seconds (its authentication cache); the admin API revokes at once.
    Revoke { slug: String, id: String },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Print a new admin API bearer token (shown once; stored hashed) and its id.
    Token {
        /// Who or what holds the token, shown by `admin list`.
        #[arg(long, default_value = crate::services::partners::DEFAULT_ADMIN_TOKEN_NAME)]
        name: String,
        /// Days until the token stops working (1 to 3650); without it, it never expires.
        #[arg(long, value_name = "DAYS")]
        expires: Option<u32>,
    },
    /// List admin API tokens: id, name, created, expires, last used, revoked (never secrets).
    List,
    /// Revoke an admin API token by id (the id is in the audit log as `admin:ID`).
    Revoke { id: String },
}

fn cli_actor() -> Actor {
    Actor {
        label: "cli".to_string(),
        request_id: None,
    }
}

/// Services without mapping rules, for commands that never evaluate them.
async fn base_deps(settings: &Settings) -> anyhow::Result<Deps> {
    let db = Db::connect(&settings.database).await?;
    db.migrate().await?;
    Ok(Deps::new(
        db,
        Arc::new(SystemClock),
        crate::mapping::RuleSet::empty(),
        crate::services::portal_env::PortalEnv::from_settings(settings)?,
    ))
}

async fn deps(settings: &Settings) -> anyhow::Result<Deps> {
    let db = Db::connect(&settings.database).await?;
    db.migrate().await?;
    let rules = crate::startup::load_rules(&settings.mappings_dir)?;
    let portal = crate::services::portal_env::PortalEnv::from_settings(settings)?;
    Ok(Deps::new(db, Arc::new(SystemClock), rules, portal))
}

fn slug(s: &str) -> anyhow::Result<PartnerSlug> {
    Ok(PartnerSlug::parse(s)?)
}

/// An instant as the listing commands print it: RFC 3339, or `-` for none.
fn cli_time(t: Option<i64>) -> String {
    t.map(|ms| crate::clock::to_rfc3339(crate::clock::from_millis(ms)))
        .unwrap_or_else(|| "-".into())
}

fn service_error(err: ServiceError, what: &str) -> anyhow::Error {
    match err {
        ServiceError::NotFound => anyhow::anyhow!("{what} not found"),
        other => anyhow::Error::new(other),
    }
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
    use crate::services::import_submit;
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

/// SIGHUP reloads the mapping rules (invalid rules are logged and the old ones stay).
fn spawn_reload_on_sighup(deps: Deps, dir: PathBuf) {
    tokio::spawn(async move {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; reload rules through the admin API");
            return;
        };
        while hangups.recv().await.is_some() {
            let actor = Actor {
                label: "signal:SIGHUP".into(),
                request_id: None,
            };
            match crate::mapping::load_dir(&dir) {
                Ok(rules) => match services::rules::reload(&deps, &actor, rules).await {
                    Ok(report) => {
                        tracing::info!(fingerprint = %report.fingerprint, people = report.people, changed = report.people_changed, "mapping rules reloaded")
                    }
                    Err(e) => tracing::error!(error = %e, "reloading mapping rules failed"),
                },
                Err(errors) => {
                    for e in errors {
                        tracing::error!(error = %e, "invalid mapping rule; the previous rules stay in force");
                    }
                }
            }
        }
    });
}

/// Run one command; the binary prints the error chain on one line and exits non-zero.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::from_env(cli.config.as_deref())?;
    crate::telemetry::init(
        settings.log_format,
        if matches!(cli.command, Command::Serve) {
            "info"
        } else {
            "warn"
        },
    );
    for variable in Settings::unknown_env_vars() {
        tracing::warn!(%variable, "unknown GUESTBRIDGE_ variable ignored");
    }
    match cli.command {
        Command::Serve => {
            let app = Application::build(settings.clone(), Arc::new(SystemClock)).await?;
            spawn_reload_on_sighup(app.deps(), settings.mappings_dir.clone());
            if let Some(cert) = app.tls_reloader() {
                crate::edge::tls::spawn_reload_on_sighup(cert);
            }
            tracing::info!(
                listen = %settings.http.listen,
                port = app.port(),
                database = if settings.database.url.starts_with("sqlite") { "sqlite" } else { "postgres" },
                "guestbridge serving"
            );
            app.run_until_stopped().await
        }
        Command::Migrate => {
            let db = Db::connect(&settings.database).await?;
            db.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Partner {
            command: PartnerCommand::Add { slug: s, name },
        } => {
            let deps = base_deps(&settings).await?;
            let partner = services::partners::add_partner(&deps, &cli_actor(), &slug(&s)?, &name)
                .await
                .map_err(|e| service_error(e, "partner"))?;
            println!("partner {} added ({})", partner.slug, partner.name);
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Issue { slug: s },
        } => {
            let deps = base_deps(&settings).await?;
            let (id, token) =
                services::partners::issue_partner_token_with_id(&deps, &cli_actor(), &slug(&s)?)
                    .await
                    .map_err(|e| service_error(e, &format!("partner {s}")))?;
            println!("SCIM bearer token {id} for partner {s} (shown once):");
            println!("{token}");
            Ok(())
        }
        Command::Token {
            command: TokenCommand::List { slug: s },
        } => {
            let deps = base_deps(&settings).await?;
            let tokens = services::partners::partner_tokens(&deps, &slug(&s)?)
                .await
                .map_err(|e| service_error(e, &format!("partner {s}")))?;
            let time = |t: Option<i64>| {
                t.map(|ms| crate::clock::to_rfc3339(crate::clock::from_millis(ms)))
                    .unwrap_or_else(|| "-".into())
            };
            for t in tokens {
                println!(
                    "{} created={} last_used={} revoked={}",
                    t.id,
                    time(Some(t.created_at)),
                    time(t.last_used_at),
                    time(t.revoked_at)
                );
            }
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Revoke { slug: s, id },
        } => {
            let deps = base_deps(&settings).await?;
            services::partners::revoke_partner_token(&deps, &cli_actor(), &slug(&s)?, &id)
                .await
                .map_err(|e| service_error(e, &format!("unrevoked token {id} of partner {s}")))?;
            println!("token {id} of partner {s} revoked");
            Ok(())
        }
        Command::Jobs {
            command: JobsCommand::Run { name, now },
        } => {
            let deps = deps(&settings).await?;
            let now = match now {
                Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
                    .map_err(|e| anyhow::anyhow!("--now {t:?} is not an RFC 3339 instant: {e}"))?
                    .with_timezone(&chrono::Utc),
                None => chrono::Utc::now(),
            };
            let smtp = crate::startup::smtp_sender(&settings)?;
            let instance = format!("cli:{}", std::process::id());
            let report =
                crate::jobs::run_once(&name, &deps, &settings, smtp.as_ref(), now, &instance)
                    .await?;
            if !report.ran {
                anyhow::bail!("job {name} is running on another instance; try again later");
            }
            let counts: Vec<String> = report
                .counts
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            println!(
                "job {name} at {}: {}",
                crate::clock::to_rfc3339(now),
                if counts.is_empty() {
                    "nothing due".to_string()
                } else {
                    counts.join(" ")
                }
            );
            Ok(())
        }
        Command::Jobs {
            command: JobsCommand::List,
        } => {
            let deps = base_deps(&settings).await?;
            let mut conn = deps.db.pool().acquire().await?;
            for (name, cron) in &settings.jobs.schedules {
                let last = crate::store::job_runs::last_run(&mut conn, name).await?;
                let last = match last {
                    Some((started, _, outcome, counts)) => format!(
                        "last {} {outcome} {counts}",
                        crate::clock::to_rfc3339(crate::clock::from_millis(started))
                    ),
                    None => "never run".to_string(),
                };
                println!("{name:<12} {cron:<18} {last}");
            }
            Ok(())
        }
        Command::Sync {
            command:
                SyncCommand::Reconcile {
                    target,
                    dry_run,
                    force,
                },
        } => {
            let deps = base_deps(&settings).await?;
            let options = services::reconcile::ReconcileOptions { dry_run, force };
            let expected = services::reconcile::expected_guests(&deps).await?;
            let outcome = services::reconcile::reconcile_target(
                &deps,
                &settings.sync,
                &cli_actor(),
                &target,
                &expected,
                options,
            )
            .await?;
            print_reconcile(&outcome);
            match outcome.refused {
                Some(reason) if !dry_run => anyhow::bail!("{reason}"),
                _ => Ok(()),
            }
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            let deps = base_deps(&settings).await?;
            let kid = services::signing::rotate(&deps)
                .await
                .context("rotating the signing key")?;
            println!("new signing key {kid}");
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Reseal { new_key_env },
        } => {
            let text = std::env::var(&new_key_env)
                .with_context(|| format!("{new_key_env} is not set (the new key)"))?;
            let new = crate::auth::secrets::SecretBox::from_setting(&text)
                .map_err(|e| anyhow::anyhow!("{new_key_env}: {e}"))?;
            let deps = base_deps(&settings).await?;
            let report = services::reseal::reseal(&deps.db, &deps.portal.secrets, &new)
                .await
                .context("resealing secrets")?;
            println!(
                "resealed {} signing key(s), {} TOTP seed(s), {} mail bod(ies); start every instance with the new key",
                report.signing_keys, report.totp_seeds, report.mail_bodies
            );
            Ok(())
        }
        Command::Mappings {
            command: MappingsCommand::Check { dir },
        } => {
            let dir = dir.unwrap_or_else(|| settings.mappings_dir.clone());
            match check_mappings(&dir) {
                Ok(rules) => {
                    println!(
                        "{}: {} apps, {} partner policies, {} rules; fingerprint {}",
                        dir.display(),
                        rules.apps.len(),
                        rules.partners.len(),
                        rules.rules.len(),
                        rules.fingerprint
                    );
                    Ok(())
                }
                Err(errors) => {
                    for e in &errors {
                        println!("{e}");
                    }
                    anyhow::bail!(
                        "{} error(s) in the mapping rules and mail templates in {}",
                        errors.len(),
                        dir.display()
                    )
                }
            }
        }
        Command::Mappings {
            command: MappingsCommand::Diff { new_dir },
        } => {
            let deps = deps(&settings).await?;
            let new = crate::startup::load_rules(&new_dir)?;
            let diff = services::rules::diff(&deps, &new)
                .await
                .context("comparing the rule sets")?;
            for c in &diff.changes {
                println!(
                    "{} {} {}: +[{}] -[{}]",
                    c.partner,
                    c.user_name,
                    c.change,
                    c.grants_added.join(", "),
                    c.grants_removed.join(", ")
                );
            }
            if diff.truncated {
                println!("(list truncated; the counts below cover everyone)");
            }
            println!(
                "people={} changed={} new_guests={} losing_all_grants={} grants_added={} grants_removed={}",
                diff.people, diff.people_changed, diff.new_guests, diff.guests_losing_all_grants, diff.grants_added, diff.grants_removed
            );
            Ok(())
        }
        Command::Import {
            file,
            partner,
            dry_run,
            mode,
            force,
            delimiter,
            server,
        } => {
            if let Some(url) = server {
                return import_through_server(
                    url, &file, &partner, mode, dry_run, force, delimiter,
                )
                .await;
            }
            let deps = deps(&settings).await?;
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
            let handle = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
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
        Command::Explain { partner, user_name } => {
            let deps = deps(&settings).await?;
            let partner = services::partners::find_partner(&deps, &slug(&partner)?)
                .await
                .map_err(|e| service_error(e, "partner"))?;
            let user_id = {
                let mut conn = deps.db.pool().acquire().await?;
                crate::store::users::id_by_user_name(&mut conn, &partner.id, &user_name)
                    .await?
                    .ok_or_else(|| {
                        anyhow::anyhow!("user {user_name} of partner {} not found", partner.slug)
                    })?
            };
            let explanation = services::rules::explain_user(&deps, &partner, &user_id)
                .await
                .map_err(|e| service_error(e, "user"))?;
            println!("{}", serde_json::to_string_pretty(&explanation)?);
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::Token { name, expires },
        } => {
            let deps = base_deps(&settings).await?;
            let issued =
                services::partners::issue_named_admin_token(&deps, &cli_actor(), &name, expires)
                    .await
                    .map_err(|e| anyhow::anyhow!("issuing admin token: {e}"))?;
            // The old first line began "admin API bearer token" and ended "(shown once):";
            // the id, name and expiry sit in between, the token alone stays the last line.
            println!(
                "admin API bearer token {} name={:?} expires={} (shown once):",
                issued.id,
                issued.name,
                cli_time(issued.expires_at)
            );
            println!("{}", issued.secret);
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::List,
        } => {
            let deps = base_deps(&settings).await?;
            let tokens = services::partners::admin_tokens(&deps)
                .await
                .context("listing admin tokens")?;
            for t in tokens {
                println!(
                    "{} name={:?} created={} expires={} last_used={} revoked={}",
                    t.id,
                    t.name,
                    cli_time(Some(t.created_at)),
                    cli_time(t.expires_at),
                    cli_time(t.last_used_at),
                    cli_time(t.revoked_at)
                );
            }
            Ok(())
        }
        Command::Guest {
            command: GuestCommand::Reinvite { id },
        } => {
            let deps = deps(&settings).await?;
            services::invitations::resend(&deps, &cli_actor(), &id)
                .await
                .map_err(|e| service_error(e, &format!("guest {id}")))?;
            println!("guest {id} invited");
            Ok(())
        }
        Command::Guest {
            command: GuestCommand::ResetMfa { id },
        } => {
            let deps = base_deps(&settings).await?;
            let reset = services::guest_mfa::reset_mfa(&deps, &cli_actor(), &id)
                .await
                .map_err(|e| service_error(e, &format!("guest {id}")))?;
            println!(
                "guest {id} mfa reset: was_enrolled={} sessions_ended={}",
                reset.was_enrolled, reset.sessions_ended
            );
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::Revoke { id },
        } => {
            let deps = base_deps(&settings).await?;
            services::partners::revoke_admin_token(&deps, &cli_actor(), &id)
                .await
                .map_err(|e| service_error(e, &format!("unrevoked admin token {id}")))?;
            println!("admin token {id} revoked");
            Ok(())
        }
    }
}

/// A reconciliation's plan or result, one line per user, the counts last.
fn print_reconcile(outcome: &services::reconcile::ReconcileOutcome) {
    let r = &outcome.report;
    for a in &r.actions {
        println!(
            "{} {} {}{}",
            a.action.as_str(),
            a.guest_id,
            a.remote_id.as_deref().unwrap_or("-"),
            if a.details.is_empty() {
                String::new()
            } else {
                format!(" ({})", a.details.join(", "))
            }
        );
    }
    for u in &r.unowned {
        println!(
            "unowned {} externalId={} userName={}",
            u.remote_id,
            u.external_id.as_deref().unwrap_or("-"),
            u.user_name.as_deref().unwrap_or("-")
        );
    }
    for (id, e) in &r.failures {
        println!("error {id}: {e}");
    }
    if let Some(reason) = &outcome.refused {
        println!("refused: {reason}");
    }
    if outcome.dry_run {
        println!("dry run: nothing was changed");
    }
    println!("{}", r.summary());
}

/// The rules in `dir`, and its mail templates (`dir/templates`), checked together: every
/// problem of either, and every rule whose `template` no template set provides.
fn check_mappings(dir: &std::path::Path) -> Result<crate::mapping::RuleSet, Vec<String>> {
    let rules = crate::mapping::load_dir(dir)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>());
    let template_dir = dir.join("templates");
    let templates = crate::mail::templates::Templates::load(
        template_dir.is_dir().then_some(template_dir.as_path()),
    );
    match (rules, templates) {
        (Ok(rules), Ok(templates)) => {
            let missing =
                crate::services::portal_env::missing_invitation_variants(&rules, &templates);
            if missing.is_empty() {
                Ok(rules)
            } else {
                Err(missing)
            }
        }
        (rules, templates) => {
            let mut errors = rules.err().unwrap_or_default();
            errors.extend(templates.err().unwrap_or_default());
            Err(errors)
        }
    }
}
