//! Rows of an import on their way in, and the lock that lets one import at a time run
//! against a database, across processes (a CLI import next to a server).
//!
//! An import stages what it read in short transactions, then publishes it chunk by chunk;
//! the run's state says how far it got. Runs found here by the holder of the import lock
//! belong to imports that died (the lock is the operating system's or PostgreSQL's and goes
//! with the process), so the holder discards them.

use std::time::Duration;

use sqlx::{AnyConnection, ConnectOptions, Row};

use super::{Backend, Db, DbError};

/// The run has staged rows, and nothing of it is published.
pub const STAGING: &str = "staging";
/// The run passed its checks and is being published.
pub const PUBLISHING: &str = "publishing";

pub async fn begin_run(
    conn: &mut AnyConnection,
    import_id: &str,
    partner_id: &str,
    started_at: i64,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO import_staging_runs (import_id, partner_id, state, started_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(import_id)
    .bind(partner_id)
    .bind(STAGING)
    .bind(started_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stage `rows` (serialised rows) from sequence number `first`.
pub async fn stage(
    conn: &mut AnyConnection,
    import_id: &str,
    first: i64,
    rows: &[String],
) -> Result<(), DbError> {
    for (i, row) in rows.iter().enumerate() {
        sqlx::query("INSERT INTO import_staging (import_id, seq, row_json) VALUES ($1, $2, $3)")
            .bind(import_id)
            .bind(first + i as i64)
            .bind(row.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Up to `limit` staged rows from sequence number `from`, in order.
pub async fn load(
    conn: &mut AnyConnection,
    import_id: &str,
    from: i64,
    limit: i64,
) -> Result<Vec<String>, DbError> {
    sqlx::query_scalar(
        "SELECT row_json FROM import_staging WHERE import_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3",
    )
    .bind(import_id)
    .bind(from)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Record how far publishing got, in the transaction that published up to there.
pub async fn set_state(
    conn: &mut AnyConnection,
    import_id: &str,
    state: &str,
    next_seq: i64,
) -> Result<(), DbError> {
    sqlx::query("UPDATE import_staging_runs SET state = $1, next_seq = $2 WHERE import_id = $3")
        .bind(state)
        .bind(next_seq)
        .bind(import_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The run is published and recorded (`imports`); only its staged rows remain to drop.
pub const DONE: &str = "done";

/// Drop the staged rows with sequence numbers in `[from, to)`; the caller sizes the range
/// so that one delete holds the writer briefly.
pub async fn discard_range(
    conn: &mut AnyConnection,
    import_id: &str,
    from: i64,
    to: i64,
) -> Result<u64, DbError> {
    let done =
        sqlx::query("DELETE FROM import_staging WHERE import_id = $1 AND seq >= $2 AND seq < $3")
            .bind(import_id)
            .bind(from)
            .bind(to)
            .execute(conn)
            .await?;
    Ok(done.rows_affected())
}

/// The highest sequence number staged for a run (-1 for none).
pub async fn last_seq(conn: &mut AnyConnection, import_id: &str) -> Result<i64, DbError> {
    sqlx::query_scalar("SELECT COALESCE(MAX(seq), -1) FROM import_staging WHERE import_id = $1")
        .bind(import_id)
        .fetch_one(conn)
        .await
}

/// Forget a run and its rows.
pub async fn discard(conn: &mut AnyConnection, import_id: &str) -> Result<(), DbError> {
    sqlx::query("DELETE FROM import_staging WHERE import_id = $1")
        .bind(import_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM import_staging_runs WHERE import_id = $1")
        .bind(import_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A run left by an import that died, and its state when it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadRun {
    pub import_id: String,
    pub state: String,
    pub next_seq: i64,
}

/// Every run present; called by the holder of the import lock, so every one is dead.
pub async fn runs(conn: &mut AnyConnection) -> Result<Vec<DeadRun>, DbError> {
    let rows = sqlx::query("SELECT import_id, state, next_seq FROM import_staging_runs")
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(DeadRun {
                import_id: r.try_get("import_id")?,
                state: r.try_get("state")?,
                next_seq: r.try_get("next_seq")?,
            })
        })
        .collect()
}

/// PostgreSQL advisory lock class of imports ("gbim"); the other key is the schema's, so
/// that instances of separate schemas on one server do not wait for each other.
const PG_LOCK_CLASS: i32 = 0x6762_696d;

/// How often a waiting import tries the lock again.
const RETRY: Duration = Duration::from_millis(200);

/// One import at a time on this database, across processes: a file lock next to a SQLite
/// file, a session advisory lock on PostgreSQL. Both end with the process that holds them,
/// kill -9 included.
pub struct ImportLock {
    _file: Option<std::fs::File>,
    _conn: Option<AnyConnection>,
}

impl ImportLock {
    /// The lock if no other import holds it now (a server starting next to a CLI import).
    pub async fn try_acquire(db: &Db) -> Result<Option<Self>, DbError> {
        match db.backend() {
            Backend::Sqlite => {
                let file = open_lock_file(&sqlite_lock_path(db).await?)?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(ImportLock {
                        _file: Some(file),
                        _conn: None,
                    })),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => Err(DbError::Io(e)),
                }
            }
            Backend::Postgres => {
                let mut conn = db.pool().connect_options().connect().await?;
                let got: bool = sqlx::query_scalar(
                    "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))",
                )
                .bind(PG_LOCK_CLASS)
                .fetch_one(&mut conn)
                .await?;
                Ok(got.then_some(ImportLock {
                    _file: None,
                    _conn: Some(conn),
                }))
            }
        }
    }

    /// Wait for the lock; `waiting` is called once if another import holds it.
    pub async fn acquire(db: &Db, waiting: &(dyn Fn() + Send + Sync)) -> Result<Self, DbError> {
        let mut told = false;
        match db.backend() {
            Backend::Sqlite => {
                let file = open_lock_file(&sqlite_lock_path(db).await?)?;
                loop {
                    match file.try_lock() {
                        Ok(()) => {
                            return Ok(ImportLock {
                                _file: Some(file),
                                _conn: None,
                            })
                        }
                        Err(std::fs::TryLockError::WouldBlock) => {}
                        Err(std::fs::TryLockError::Error(e)) => return Err(DbError::Io(e)),
                    }
                    if !std::mem::replace(&mut told, true) {
                        waiting();
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
            Backend::Postgres => {
                // The lock is the session's, held for the whole import: on a connection of its
                // own, not one of the pool's, which the import and the requests need.
                let mut conn = db.pool().connect_options().connect().await?;
                loop {
                    let got: bool = sqlx::query_scalar(
                        "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))",
                    )
                    .bind(PG_LOCK_CLASS)
                    .fetch_one(&mut conn)
                    .await?;
                    if got {
                        return Ok(ImportLock {
                            _file: None,
                            _conn: Some(conn),
                        });
                    }
                    if !std::mem::replace(&mut told, true) {
                        waiting();
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}

/// `<database file>.import-lock`, found from the database itself so every process opening
/// the same file, by whatever URL, finds the same lock.
async fn sqlite_lock_path(db: &Db) -> Result<std::path::PathBuf, DbError> {
    let file: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(db.pool())
            .await?;
    if file.is_empty() {
        // An in-memory database lives in this process alone: a lock of the process will do.
        let name = format!("guestbridge-{}.import-lock", std::process::id());
        return Ok(std::env::temp_dir().join(name));
    }
    Ok(std::path::PathBuf::from(format!("{file}.import-lock")))
}

fn open_lock_file(path: &std::path::Path) -> Result<std::fs::File, DbError> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(DbError::Io)
}

/// `<database file>.server-lock`, held shared by every server on a SQLite file for its
/// lifetime; the operating system drops it with the process, kill -9 included.
async fn sqlite_server_mark_path(db: &Db) -> Result<std::path::PathBuf, DbError> {
    let lock = sqlite_lock_path(db).await?;
    Ok(lock.with_extension("server-lock"))
}

/// The marks this process holds, one per database file: kept open for the life of the
/// process, as a server's own life is.
static SERVER_MARKS: std::sync::Mutex<Vec<(std::path::PathBuf, std::fs::File)>> =
    std::sync::Mutex::new(Vec::new());

/// Say, for as long as this process lives, that a server uses this SQLite file, so that a
/// `guestbridge import` started next to it can tell the operator to submit through it.
pub async fn mark_server(db: &Db) -> Result<(), DbError> {
    if db.backend() != Backend::Sqlite {
        return Ok(());
    }
    let path = sqlite_server_mark_path(db).await?;
    let mut marks = SERVER_MARKS.lock().unwrap_or_else(|p| p.into_inner());
    if marks.iter().any(|(p, _)| p == &path) {
        return Ok(());
    }
    let file = open_lock_file(&path)?;
    match file.try_lock_shared() {
        Ok(()) => {}
        // Only an exclusive holder blocks a shared lock: a CLI checking at this instant.
        Err(std::fs::TryLockError::WouldBlock) => file.lock_shared().map_err(DbError::Io)?,
        Err(std::fs::TryLockError::Error(e)) => return Err(DbError::Io(e)),
    }
    marks.push((path, file));
    Ok(())
}

/// Whether a server (another process, or this one) holds the server mark of this SQLite
/// file; always false on PostgreSQL, where imports and servers' writers do take turns.
pub async fn server_is_using(db: &Db) -> Result<bool, DbError> {
    if db.backend() != Backend::Sqlite {
        return Ok(false);
    }
    let file = open_lock_file(&sqlite_server_mark_path(db).await?)?;
    match file.try_lock() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(DbError::Io(e)),
    }
}
