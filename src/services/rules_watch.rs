//! The rule set in force is shared by every instance on one database: a reload publishes it
//! (`store::rule_sets`), and each instance watches for a new one (PostgreSQL `LISTEN` on
//! `guestbridge_rules` to hear of it at once, polling of the fingerprint on both backends in
//! case a notification is missed) and swaps to the stored files, not its own disk.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Deps, ServiceError};
use crate::mapping::RuleSet;
use crate::store::work::Work;
use crate::store::{rule_sets, Backend, DbError};

/// The PostgreSQL notification channel; the payload is the new fingerprint.
pub const CHANNEL: &str = "guestbridge_rules";

/// Store `rules` (their source files) and set them in force for every instance, telling the
/// others on PostgreSQL (delivered when this commits).
pub async fn publish(deps: &Deps, by: &str, rules: &RuleSet) -> Result<(), ServiceError> {
    let files = files_json(&rules.sources);
    let now = deps.now_ms();
    let mut tx = deps.db.begin_write().await?;
    rule_sets::save(&mut tx, &rules.fingerprint, &files, by, now).await?;
    rule_sets::set_in_force(&mut tx, &rules.fingerprint, now).await?;
    if deps.db.backend() == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&rules.fingerprint)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Make `rules` the ones this instance decides with.
pub fn swap(deps: &Deps, rules: Arc<RuleSet>) {
    let mut guard = match deps.rules.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    *guard = rules;
}

fn files_json(sources: &[(String, String)]) -> String {
    let map: BTreeMap<&str, &str> = sources
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_str()))
        .collect();
    serde_json::Value::from(
        map.into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(v)))
            .collect::<serde_json::Map<_, _>>(),
    )
    .to_string()
}

/// The rules to decide with in `w`, read after the person's row is locked: if another
/// instance set new rules in force since the watcher last looked, these are swapped in now.
/// A reload sets its rules in force before re-evaluating anyone, so a decision made here
/// either sees them or is made before the reload re-evaluates (and re-decides) the person.
pub async fn in_force(w: &mut Work, deps: &Deps) -> Result<Arc<RuleSet>, ServiceError> {
    let local = deps.rules();
    let conn = w.conn().await?;
    match rule_sets::in_force(conn).await? {
        Some(f) if f != local.fingerprint => match stored(conn, &f).await? {
            Some(rules) => {
                let rules = Arc::new(rules);
                swap(deps, rules.clone());
                Ok(rules)
            }
            None => Ok(local),
        },
        _ => Ok(local),
    }
}

/// The stored rule set `fingerprint`, loaded as the files on disk would be.
async fn stored(
    conn: &mut sqlx::AnyConnection,
    fingerprint: &str,
) -> Result<Option<RuleSet>, ServiceError> {
    let Some(files) = rule_sets::files(conn, fingerprint).await? else {
        return Ok(None);
    };
    let map: BTreeMap<String, String> = serde_json::from_str(&files)
        .map_err(|e| ServiceError::Corrupt(format!("stored rule set {fingerprint}: {e}")))?;
    let sources: Vec<(String, String)> = map.into_iter().collect();
    crate::mapping::load_sources(&sources)
        .map(Some)
        .map_err(|errors| {
            ServiceError::Corrupt(format!(
                "stored rule set {fingerprint} does not load: {} error(s)",
                errors.len()
            ))
        })
}

/// At start: with no rule set in force yet (a fresh database), this instance's files become
/// it. Otherwise the one in force stays, even if this instance's files differ: new instances
/// of a rolling upgrade must not flip the rules of the old ones; a reload publishes them.
pub async fn adopt_at_start(deps: &Deps) -> Result<(), ServiceError> {
    let local = deps.rules();
    let mut tx = deps.db.begin_write().await?;
    let now = deps.now_ms();
    let in_force = match rule_sets::in_force(&mut tx).await? {
        Some(f) => f,
        None => {
            rule_sets::save(
                &mut tx,
                &local.fingerprint,
                &files_json(&local.sources),
                "start",
                now,
            )
            .await?;
            rule_sets::set_in_force_if_none(&mut tx, &local.fingerprint, now).await?;
            tx.commit().await?;
            tracing::info!(fingerprint = %local.fingerprint, "mapping rules published: none were in force");
            return Ok(());
        }
    };
    tx.commit().await?;
    if in_force != local.fingerprint {
        tracing::warn!(
            disk = %local.fingerprint,
            in_force = %in_force,
            "the mapping rules on disk differ from the rules in force on this database; the rules in force stay until a reload publishes the files on disk"
        );
        follow(deps).await?;
    }
    Ok(())
}

/// Swap to the rule set in force if it is not the one this instance has; true if swapped.
pub async fn follow(deps: &Deps) -> Result<bool, ServiceError> {
    let in_force = {
        let mut conn = deps.db.pool().acquire().await?;
        rule_sets::in_force(&mut conn).await?
    };
    let Some(fingerprint) = in_force else {
        return Ok(false);
    };
    if fingerprint == deps.rules().fingerprint {
        return Ok(false);
    }
    let stored = {
        let mut conn = deps.db.pool().acquire().await?;
        stored(&mut conn, &fingerprint).await?
    };
    let Some(rules) = stored else {
        return Ok(false);
    };
    swap(deps, Arc::new(rules));
    tracing::info!(%fingerprint, "mapping rules in force changed on another instance: swapped");
    Ok(true)
}

/// Watch for rule sets set in force by other instances, every `poll` and, on PostgreSQL, as
/// soon as a notification arrives.
pub fn spawn(deps: Deps, database_url: String, poll: Duration) {
    tokio::spawn(async move {
        let mut listener = listen(&deps, &database_url).await;
        let mut ticks = tokio::time::interval(poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            match listener.as_mut() {
                Some(l) => {
                    tokio::select! {
                        _ = ticks.tick() => {}
                        got = l.recv() => if let Err(e) = got {
                            tracing::warn!(error = %e, "listening for rule changes failed; polling only");
                            listener = None;
                        },
                    }
                }
                None => {
                    ticks.tick().await;
                }
            }
            if deps.db.pool().is_closed() {
                return;
            }
            if let Err(e) = follow(&deps).await {
                tracing::warn!(error = %e, "checking the mapping rules in force failed");
            }
        }
    });
}

async fn listen(deps: &Deps, database_url: &str) -> Option<sqlx::postgres::PgListener> {
    if deps.db.backend() != Backend::Postgres {
        return None;
    }
    let attempt = async {
        let mut l = sqlx::postgres::PgListener::connect(database_url).await?;
        l.listen(CHANNEL).await?;
        Ok::<_, DbError>(l)
    };
    match attempt.await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for rule changes; polling only");
            None
        }
    }
}
