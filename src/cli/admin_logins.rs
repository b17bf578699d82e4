//! `guestbridge admin create-login` and `disable-login`, and what `serve` tells a fresh
//! install at start.

use super::{base_deps, cli_actor, cli_time, role_grant, service_error, RoleArgs};
use crate::config::Settings;
use crate::services::{self, Deps};

pub(super) async fn create(settings: &Settings, name: &str, role: &RoleArgs) -> anyhow::Result<()> {
    let grant = role_grant(role)?;
    let deps = base_deps(settings).await?;
    let created = services::admin_auth::create_login(&deps, &cli_actor(), name, &grant)
        .await
        .map_err(|e| anyhow::anyhow!("creating the login: {e}"))?;
    // The link alone is the last line, as the token is for `admin token`.
    println!(
        "login {} role={} created; open this link once to set its password (expires {}):",
        created.id,
        grant.role,
        cli_time(Some(created.expires_at))
    );
    println!(
        "{}/admin/setup/{}",
        deps.portal.public_url.trim_end_matches('/'),
        created.setup_secret
    );
    Ok(())
}

pub(super) async fn disable(settings: &Settings, name: &str) -> anyhow::Result<()> {
    let deps = base_deps(settings).await?;
    let ended = services::admin_auth::disable_login(&deps, &cli_actor(), name)
        .await
        .map_err(|e| service_error(e, "login"))?;
    println!("login disabled: sessions_ended={ended}");
    Ok(())
}

/// Printed by `serve` at start: where the console is, and on a fresh install how to get in.
pub(super) async fn announce(deps: &Deps) {
    let base = deps.portal.public_url.trim_end_matches('/');
    println!("Admin console: {base}/admin");
    match services::admin_auth::first_run(deps).await {
        Ok(true) => println!(
            "No admin login or token exists yet. Create the first login with:\n  guestbridge admin create-login NAME\nand open the link it prints."
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "cannot tell whether an admin login exists"),
    }
}
