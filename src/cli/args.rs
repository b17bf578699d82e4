//! The command line's shape (clap): every command, subcommand and option, as CONTRACT.md
//! lists them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    Serve {
        /// Seed an empty database first, as `guestbridge demo` does.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending migrations and exit.
    Migrate,
    /// Seed an empty database with two partners and a few hundred people (a demo console).
    Demo,
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
    /// The inactive-guest policy: who would be suspended or removed, and when.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
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
    /// Check the audit log's hash chains.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
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
pub enum PolicyCommand {
    /// List who the inactivity policy suspends or removes, changing nothing: what a
    /// `deprovision` run at NOW does (`due`), then what falls due in the next DAYS.
    Preview {
        /// Only this partner's guests.
        #[arg(long)]
        partner: Option<String>,
        /// As if it were this instant (RFC 3339).
        #[arg(long)]
        now: Option<String>,
        /// How far ahead to list upcoming steps.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=3650))]
        days: u32,
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
        #[command(flatten)]
        role: RoleArgs,
    },
    /// Create a console login and print its one-time setup link (valid 24 hours).
    CreateLogin {
        /// The name the person signs in with.
        name: String,
        #[command(flatten)]
        role: RoleArgs,
    },
    /// Disable a console login; its sessions end at once.
    DisableLogin { name: String },
    /// List admin API tokens: id, name, created, expires, last used, revoked (never secrets).
    List,
    /// Revoke an admin API token by id (the id is in the audit log as `admin:ID`).
    Revoke { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every chained audit row's hash and check each chain's order and head;
    /// exits non-zero naming the first bad row.
    Verify,
}

/// The role given to an admin token or login.
#[derive(Debug, clap::Args)]
pub struct RoleArgs {
    /// admin (everything), auditor (read-only), partner-admin (one partner) or sponsor
    /// (the guests they sponsor).
    #[arg(long, default_value = "admin", value_name = "ROLE")]
    pub role: String,
    /// The partner of a partner-admin.
    #[arg(long, value_name = "SLUG")]
    pub partner: Option<String>,
    /// The sponsor e-mail of a sponsor, as the mapping rules set it on guests.
    #[arg(long, value_name = "EMAIL")]
    pub sponsor: Option<String>,
}
