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
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Print a new admin API bearer token (shown once; stored hashed).
    Token,
}

fn cli_actor() -> Actor {
    Actor {
        label: "cli".to_string(),
        request_id: None,
    }
}

async fn deps(settings: &Settings) -> anyhow::Result<Deps> {
    let db = Db::connect(&settings.database).await?;
    db.migrate().await?;
    Ok(Deps {
        db,
        clock: Arc::new(SystemClock),
    })
}

fn slug(s: &str) -> anyhow::Result<PartnerSlug> {
    Ok(PartnerSlug::parse(s)?)
}

fn service_error(err: ServiceError, what: &str) -> anyhow::Error {
    match err {
        ServiceError::NotFound => anyhow::anyhow!("{what} not found"),
        other => anyhow::Error::new(other),
    }
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
            let deps = deps(&settings).await?;
            let partner = services::partners::add_partner(&deps, &cli_actor(), &slug(&s)?, &name)
                .await
                .map_err(|e| service_error(e, "partner"))?;
            println!("partner {} added ({})", partner.slug, partner.name);
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Issue { slug: s },
        } => {
            let deps = deps(&settings).await?;
            let token = services::partners::issue_partner_token(&deps, &cli_actor(), &slug(&s)?)
                .await
                .map_err(|e| service_error(e, &format!("partner {s}")))?;
            println!("SCIM bearer token for partner {s} (shown once):");
            println!("{token}");
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::Token,
        } => {
            let deps = deps(&settings).await?;
            let token = services::partners::issue_admin_token(&deps, &cli_actor())
                .await
                .context("issuing admin token")?;
            println!("admin API bearer token (shown once):");
            println!("{token}");
            Ok(())
        }
    }
}
