//! What `serve` adds to the application: the signal handling a long-running process needs.

use std::path::PathBuf;

use crate::services::{self, Actor, Deps};

/// SIGHUP reloads the mapping rules (invalid rules are logged and the old ones stay).
pub(super) fn spawn_reload_on_sighup(deps: Deps, dir: PathBuf) {
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
