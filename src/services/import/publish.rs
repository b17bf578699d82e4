//! Publishing: applying the staged rows in chunks, and a full import's deactivation of the
//! people the file does not name (after its safety limit).

use std::io::Read;

use serde_json::Value;

use super::import_run::Run;
use super::staged_rows::StagedRow;
use super::writer_turns::{yield_writer, ChunkSizer};
use super::ImportError;
use crate::import::RosterReader;
use crate::services::{users, Deps, ServiceError};
use crate::store::import_staging as staging;
use crate::store::users as user_store;
use crate::store::work::Work;

/// Staged rows applied in one transaction at first, and people deactivated in one. Applying
/// a row writes about twenty rows and evaluates the rules; how long that takes depends on
/// the build, the machine and its load, so publishing then sizes its chunks by the time
/// the last one held the writer ([`ChunkSizer`]).
const PUBLISH_CHUNK: usize = 200;

/// Files of up to this many rows are published in one transaction, all or nothing even
/// against a crash while publishing, for a writer hold of about a second at most in a
/// release build; larger ones in [`PUBLISH_CHUNK`]s, so that no writer waits seconds.
const ONE_STEP_MAX: i64 = 10_000;

/// Apply the staged rows, each transaction taking its turn with the other writers; the
/// run's cursor moves in the transaction of the rows it covers.
pub(super) async fn publish(
    deps: &Deps,
    run: &mut Run<'_>,
    id: &str,
    staged: i64,
) -> Result<(), ImportError> {
    let one_step = staged <= ONE_STEP_MAX;
    let mut next: i64 = 0;
    let mut w = Work::begin(&deps.db);
    let mut since: Option<std::time::Instant> = None;
    let mut sizer = ChunkSizer::new(PUBLISH_CHUNK, 10, 5_000);
    loop {
        // Read before taking the writer turn, which the chunk then holds only to write.
        let json = staging::load(
            &mut *deps.db.pool().acquire().await?,
            id,
            next,
            sizer.size as i64,
        )
        .await?;
        if json.is_empty() {
            break;
        }
        let rows = json
            .iter()
            .map(|j| serde_json::from_str::<StagedRow>(j))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServiceError::Corrupt(format!("reading a staged row: {e}")))?;
        next += rows.len() as i64;
        let count = rows.len();
        if since.is_none() {
            w.conn().await?;
            since = Some(std::time::Instant::now());
        }
        run.chunk(&mut w, rows).await?;
        if !one_step {
            staging::set_state(w.conn().await?, id, staging::PUBLISHING, next).await?;
            std::mem::replace(&mut w, Work::begin(&deps.db))
                .commit()
                .await?;
            let held_since = since.take().unwrap_or_else(std::time::Instant::now);
            sizer.held(count, held_since.elapsed());
            run.report.writer_holds.publish(held_since);
        }
    }
    if let Some(since) = since {
        staging::set_state(w.conn().await?, id, staging::PUBLISHING, next).await?;
        w.commit().await?;
        run.report.writer_holds.publish(since);
        yield_writer(&run.deps.db, since).await;
    }
    Ok(())
}

/// The partner's active people the file does not name, who were there when the import
/// began; checked against the safety limit before anything is published.
pub(super) async fn missing_people<R: Read>(
    deps: &Deps,
    seen: &RosterReader<R>,
    run: &Run<'_>,
    started: i64,
) -> Result<Vec<String>, ImportError> {
    let partner = run.partner;
    let mut conn = deps.db.pool().acquire().await?;
    let active = user_store::count_active(&mut conn, &partner.id).await?;
    let mut missing = Vec::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = user_store::page_after(&mut conn, &partner.id, after.as_ref(), 500).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id.clone()));
        for row in page {
            if row.active && row.created_at <= started && !seen.saw(&row.user_name) {
                missing.push(row.user_name);
            }
        }
    }
    let would = missing.len() as u64;
    let share = if active > 0 {
        would as f64 / active as f64
    } else {
        0.0
    };
    let opts = run.opts;
    if would > 0 && share > opts.max_deactivate_share && !opts.force {
        return Err(ImportError::SafetyLimit {
            would,
            active,
            share: share * 100.0,
            limit: opts.max_deactivate_share * 100.0,
        });
    }
    Ok(missing)
}

/// Deactivate `missing` (or, in a dry run, count them), [`PUBLISH_CHUNK`] to a transaction;
/// each person is read again inside it, so a change made meanwhile is not overwritten.
pub(super) async fn deactivate_missing(
    run: &mut Run<'_>,
    missing: Vec<String>,
) -> Result<(), ImportError> {
    let partner = run.partner;
    for names in missing.chunks(PUBLISH_CHUNK) {
        if run.opts.dry_run {
            for name in names {
                run.change(None, name, "deactivated", vec!["active".into()]);
            }
            continue;
        }
        let mut w = Work::begin(&run.deps.db);
        w.conn().await?;
        let since = std::time::Instant::now();
        let mut current = users::find_many_in(&mut w, partner, names).await?;
        for name in names {
            let Some(user) = current.remove(&name.to_lowercase()) else {
                continue;
            };
            if !user.row.active {
                continue;
            }
            let mut doc = user.doc.clone();
            doc.insert("active".into(), Value::Bool(false));
            let via = run.via.clone();
            users::update_in(
                &mut w,
                run.deps,
                run.actor,
                partner,
                &user,
                doc,
                "user.deactivated_by_import",
                &via,
            )
            .await?;
            run.change(
                None,
                &user.row.user_name,
                "deactivated",
                vec!["active".into()],
            );
        }
        w.commit().await?;
        run.report.writer_holds.publish(since);
        yield_writer(&run.deps.db, since).await;
    }
    Ok(())
}
