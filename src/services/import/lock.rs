//! The import lock: one import at a time on a database, across processes, and the clean-up
//! of imports that died, which only the lock's holder may do.

use super::staged_rows::discard_in_chunks;
use super::{ImportError, ImportOptions};
use crate::services::Deps;
use crate::store::import_staging::{self as staging, ImportLock};

/// The import lock for an import, waited for; none for a dry run, which writes only its
/// record.
pub(super) async fn take_unless_dry_run(
    deps: &Deps,
    opts: &ImportOptions,
) -> Result<Option<ImportLock>, ImportError> {
    if opts.dry_run {
        return Ok(None);
    }
    let waiting = || tracing::info!("another import is running on this database; waiting");
    Ok(Some(ImportLock::acquire(&deps.db, &waiting).await?))
}

/// At server start: mark the SQLite file as served (a CLI import next to it then says to
/// submit through the server), and clean up the runs of imports that died, unless an import
/// in another process holds the lock (its run is alive; it cleans up itself).
pub async fn at_server_start(db: &crate::store::Db) -> Result<(), ImportError> {
    staging::mark_server(db).await?;
    if let Some(lock) = ImportLock::try_acquire(db).await? {
        discard_dead_runs(db).await?;
        drop(lock);
    }
    Ok(())
}

/// Runs left by imports that died. Called holding the import lock, so none is alive.
pub(super) async fn discard_dead_runs(db: &crate::store::Db) -> Result<(), ImportError> {
    let dead = staging::runs(&mut *db.pool().acquire().await?).await?;
    for run in dead {
        if run.state == staging::PUBLISHING && run.next_seq > 0 {
            // Chunks already committed stay (see docs/operations.md, "imports"): applying
            // the same file again is idempotent and completes the import.
            tracing::error!(
                import_id = %run.import_id,
                published_rows = run.next_seq,
                "an import died while publishing: the rows before this one are applied, the \
                 rest are not; run the same import again to complete it"
            );
        } else if run.state != staging::DONE {
            tracing::warn!(
                import_id = %run.import_id,
                state = %run.state,
                "dropping the staged rows of an import that did not finish; nothing of it was applied"
            );
        }
        discard_in_chunks(db, &run.import_id).await?;
    }
    Ok(())
}
