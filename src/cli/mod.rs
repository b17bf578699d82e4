//! The command line (see CONTRACT.md): each command calls the same services as the HTTP API.

use std::sync::Arc;

use anyhow::Context;

use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::PartnerSlug;
use crate::services::{self, Actor, Deps, ServiceError};
use crate::startup::Application;
use crate::store::Db;

mod admin_logins;
mod args;
mod audit;
mod demo;
mod import;
pub mod import_submit;
mod policy;
mod serve;

pub use args::*;
use serve::spawn_reload_on_sighup;

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

/// A role from the command line's options.
fn role_grant(args: &args::RoleArgs) -> anyhow::Result<services::admin_auth::RoleGrant> {
    Ok(services::admin_auth::RoleGrant {
        role: args.role.parse()?,
        partner: args.partner.as_deref().map(slug).transpose()?,
        sponsor: args.sponsor.clone(),
    })
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

/// Run one command; the binary prints the error chain on one line and exits non-zero.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::from_env(cli.config.as_deref())?;
    crate::telemetry::init(
        settings.log_format,
        if matches!(cli.command, Command::Serve { .. }) {
            "info"
        } else {
            "warn"
        },
    );
    for variable in Settings::unknown_env_vars() {
        tracing::warn!(%variable, "unknown GUESTBRIDGE_ variable ignored");
    }
    match cli.command {
        Command::Serve { demo: seed_demo } => {
            if seed_demo {
                let deps = deps(&settings).await?;
                let report = demo::seed(&deps, &settings).await?;
                tracing::info!(
                    people = report.people,
                    already_seeded = report.already_seeded,
                    "demo data"
                );
                deps.db.close().await;
            }
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
            admin_logins::announce(&app.deps()).await;
            app.run_until_stopped().await
        }
        Command::Demo => {
            let deps = deps(&settings).await?;
            let report = demo::seed(&deps, &settings).await?;
            if report.already_seeded {
                println!("the demo is already seeded; nothing changed");
            } else {
                println!(
                    "demo seeded: {} people, {} guests ({} approved, {} deactivated); expiry job: {}",
                    report.people, report.guests, report.approved, report.deactivated, report.expiry
                );
            }
            Ok(())
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
            import::run(
                &settings,
                import::ImportArgs {
                    file,
                    partner,
                    dry_run,
                    mode,
                    force,
                    delimiter,
                    server,
                },
            )
            .await
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => audit::verify(&settings).await,
        Command::Policy {
            command: PolicyCommand::Preview { partner, now, days },
        } => {
            let deps = deps(&settings).await?;
            policy::preview(&deps, &settings, partner.as_deref(), now.as_deref(), days).await
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
            command:
                AdminCommand::Token {
                    name,
                    expires,
                    role,
                },
        } => {
            let grant = role_grant(&role)?;
            let deps = base_deps(&settings).await?;
            let issued = services::partners::issue_admin_token_with_role(
                &deps,
                &cli_actor(),
                &name,
                expires,
                &grant,
            )
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
            command: AdminCommand::CreateLogin { name, role },
        } => admin_logins::create(&settings, &name, &role).await,
        Command::Admin {
            command: AdminCommand::DisableLogin { name },
        } => admin_logins::disable(&settings, &name).await,
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
                "guest {id} mfa reset: was_enrolled={} sessions_ended={} passkeys_removed={}",
                reset.was_enrolled, reset.sessions_ended, reset.passkeys_removed
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
