//! Storage: every SQL statement lives under this module. One code path serves SQLite and
//! PostgreSQL through sqlx's `Any` driver with portable SQL (`$n` placeholders, integers for
//! timestamps and flags, TEXT for JSON); the DDL differs per backend and lives in
//! `migrations/sqlite` and `migrations/postgres`. See docs/architecture.md for why.

pub mod admin_federated;
pub mod admin_logins;
pub mod admin_sessions;
pub mod audit;
pub mod audit_chain;
pub mod console_queries;
pub mod due_work;
pub mod erasure;
pub mod groups;
pub mod guest_sync;
pub mod guests;
pub mod housekeeping;
pub mod import_staging;
pub mod imports;
pub mod invitations;
pub mod job_history;
pub mod job_runs;
pub mod keys;
pub mod listing;
pub mod mail_outbox;
pub mod mfa;
pub mod oauth;
pub mod outbox_gauges;
pub mod overrides;
pub mod ownership;
pub mod partner_admin;
pub mod partners;
pub mod passkeys;
pub mod rate_limits;
pub mod rule_sets;
pub mod scim_filter;
pub mod scim_rate_buckets;
pub mod sessions;
pub mod sql;
pub mod sync_console;
pub mod sync_outbox;
pub mod tokens;
pub mod users;
pub mod values;
pub mod work;

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Executor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::DatabaseSettings;

pub use sqlx::Error as DbError;

/// A transaction on either backend. A SQLite write transaction also holds the process's
/// writer turn (see [`Db::begin_write`]) until it ends.
pub struct Tx {
    inner: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<OwnedSemaphorePermit>,
}

impl Tx {
    pub async fn commit(self) -> Result<(), DbError> {
        self.inner.commit().await
    }

    pub async fn rollback(self) -> Result<(), DbError> {
        self.inner.rollback().await
    }
}

impl Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The connection pool and which backend it talks to.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    /// Where write transactions run. On SQLite a single connection: SQLite drops a
    /// connection's page cache whenever another connection has written since its last
    /// transaction, so writers taking turns on the ten pool connections each began with a
    /// cold cache and read their index pages back from the files (a profile of POST /Users
    /// showed the kernel's page copying ahead of SQLite itself). One writer keeps its cache.
    /// On PostgreSQL the same pool.
    write_pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer at a time. Writers wait for their turn here, in order, instead
    /// of in SQLite's busy handler, which sleeps with back-off (up to 100 ms a try) and so left
    /// the lock idle while 32 queued writers slept: POST /Users ran at about 330/s with a p99 of
    /// 0.7 s. `None` on PostgreSQL, where writers do not exclude each other.
    writers: Option<Arc<Semaphore>>,
    /// How long a writer waits for its turn: SQLite's busy timeout, the same bound as before
    /// (on PostgreSQL, the group commit's turn: the pool's acquire timeout).
    writer_wait: Duration,
    /// Units of work committed together (see [`work::GroupCommit`]).
    group: Arc<work::GroupCommit>,
}

impl Db {
    /// Open the pool; a SQLite file is created when missing.
    pub async fn connect(settings: &DatabaseSettings) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if settings.url.starts_with("sqlite:") {
            (Backend::Sqlite, sqlite_url_with_create(&settings.url))
        } else {
            (Backend::Postgres, settings.url.clone())
        };
        let options: AnyConnectOptions = url.parse().with_context(|| {
            "setting database.url (GUESTBRIDGE_DATABASE_URL) is not a valid database URL"
        })?;
        // sqlx warns of every statement over a second; on a loaded machine a migration or a
        // long import batch does that, and a command's stderr must stay its one-line reason.
        // `serve` logs at info, so an operator still sees them.
        let options = options.log_slow_statements(log::LevelFilter::Info, Duration::from_secs(1));
        let busy_timeout = settings.busy_timeout_ms;
        let pool = pool_options(backend, busy_timeout, settings.max_connections, false)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the {backend:?} database"))?;
        let write_pool = match backend {
            Backend::Sqlite => {
                pool_options(backend, busy_timeout, 1, true).connect_lazy_with(options)
            }
            Backend::Postgres => pool.clone(),
        };
        Ok(Db {
            pool,
            write_pool,
            backend,
            writers: (backend == Backend::Sqlite).then(|| Arc::new(Semaphore::new(1))),
            writer_wait: match backend {
                Backend::Sqlite => Duration::from_millis(busy_timeout),
                // A group commit's turn; as long as a wait for a pooled connection.
                Backend::Postgres => ACQUIRE_TIMEOUT,
            },
            group: Arc::default(),
        })
    }

    pub(crate) fn group_commit(&self) -> &work::GroupCommit {
        &self.group
    }

    /// Wait for this process's writer turn (SQLite only); `PoolTimedOut` after the busy timeout.
    pub(crate) async fn writer_turn(&self) -> Result<Option<OwnedSemaphorePermit>, DbError> {
        match &self.writers {
            Some(writers) => self.wait_turn(writers).await.map(Some),
            None => Ok(None),
        }
    }

    /// The one permit of `turns`, waited for at most `writer_wait`: `PoolTimedOut` after it.
    pub(crate) async fn wait_turn(
        &self,
        turns: &Arc<Semaphore>,
    ) -> Result<OwnedSemaphorePermit, DbError> {
        match tokio::time::timeout(self.writer_wait, turns.clone().acquire_owned()).await {
            Ok(Ok(turn)) => Ok(turn),
            Ok(Err(_closed)) => Err(DbError::PoolClosed),
            Err(_elapsed) => Err(DbError::PoolTimedOut),
        }
    }

    /// Apply pending migrations for this backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator
            .run(&self.pool)
            .await
            .context("applying database migrations")?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begin a transaction that will write. On SQLite it takes the write lock up front, so
    /// two writers queue on the busy timeout instead of failing on a stale snapshot.
    pub async fn begin_write(&self) -> Result<Tx, DbError> {
        let turn = self.writer_turn().await?;
        let mut tx = self.begin_in_turn().await?;
        tx._turn = turn;
        Ok(tx)
    }

    /// Begin a write transaction for a caller that already holds the writer turn.
    pub(crate) async fn begin_in_turn(&self) -> Result<Tx, DbError> {
        let inner = match self.backend {
            Backend::Sqlite => self.write_pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write_pool.begin().await?,
        };
        Ok(Tx { inner, _turn: None })
    }

    /// Begin a write transaction for one long unit of work (an import), on a connection of
    /// its own that is closed afterwards, not returned to the pool. On SQLite, measured on an
    /// import of 30,000 rows:
    /// - the page cache is widened so the indexes' pages stay in memory instead of spilling
    ///   to the WAL and being read back;
    /// - statement journals are kept in memory: SQLite copies each page a multi-row INSERT
    ///   changes to a statement journal, which past 64 KiB goes to a temporary file, and
    ///   those writes took a third of the import's time. (This must be set before the
    ///   transaction begins.)
    pub async fn begin_bulk_write(&self) -> Result<Tx, DbError> {
        let turn = self.writer_turn().await?;
        let mut conn = self.write_pool.acquire().await?;
        conn.close_on_drop();
        if self.backend == Backend::Postgres {
            let mut tx = sqlx::Transaction::begin(conn, None).await?;
            // The unit reads the tables it is filling, and the planner's statistics do not see
            // its uncommitted rows. After five executions of a prepared statement PostgreSQL
            // may settle on a generic plan costed for the tables as they were; for the chunk
            // lookup of an import that plan walked every row of the partner (0.45 s per lookup
            // at 30,000 imported rows, growing with each chunk). Plans made for each
            // execution's values use the userName index (about 1 ms).
            tx.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                .await?;
            return Ok(Tx {
                inner: tx,
                _turn: turn,
            });
        }
        // PRAGMA takes no parameters; the value is a constant.
        conn.execute(format!("PRAGMA cache_size = -{BULK_PAGE_CACHE_KIB}").as_str())
            .await?;
        conn.execute("PRAGMA temp_store = MEMORY").await?;
        Ok(Tx {
            inner: sqlx::Transaction::begin(conn, Some("BEGIN IMMEDIATE".into())).await?,
            _turn: turn,
        })
    }

    /// Refresh the planner's statistics of the tables a bulk unit filled (PostgreSQL; SQLite
    /// plans without them), so that reads right after an import do not plan for the tables
    /// as they were before it.
    pub async fn analyze_after_bulk(&self) -> Result<(), DbError> {
        if self.backend == Backend::Postgres {
            sqlx::query("ANALYZE scim_users, scim_values, guests, guest_grants, audit_log")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.write_pool.close().await;
    }
}

/// How long a request waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The pool options of either backend; `writer` is SQLite's one write connection.
fn pool_options(backend: Backend, busy_timeout: u64, max: u32, writer: bool) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // No ping before handing out a connection: on SQLite it is one more round trip to
        // the connection's worker thread on every acquire (a large share of a read's cost),
        // and a dead connection fails the request's own query just as visibly.
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers proceed during a write; LIKE is made case-sensitive so
                    // that caseExact attributes compare the same way as on PostgreSQL.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute(format!("PRAGMA busy_timeout = {busy_timeout}").as_str())
                        .await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA case_sensitive_like = ON").await?;
                    if writer {
                        // The writer's cache holds the indexes every write touches; statement
                        // journals of multi-row INSERTs stay in memory (see begin_bulk_write).
                        conn.execute(
                            format!("PRAGMA cache_size = -{WRITER_PAGE_CACHE_KIB}").as_str(),
                        )
                        .await?;
                        conn.execute("PRAGMA temp_store = MEMORY").await?;
                        conn.execute(
                            format!("PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}")
                                .as_str(),
                        )
                        .await?;
                    }
                }
                Ok(())
            })
        })
}

/// WAL pages after which SQLite's writer itself copies the WAL back into the database (a
/// checkpoint, on the committing request's time). The default, 1,000 pages, checkpointed
/// every few group commits and copied the same hot index pages back each time. A checkpointer
/// task of its own (PASSIVE, every second) was tried too: on 2 cores it took CPU from the
/// requests and POST /Users was no faster.
const WRITER_CHECKPOINT_PAGES: u32 = 8192;

/// The page cache of SQLite's write connection, in KiB (SQLite's default is 2 MB).
const WRITER_PAGE_CACHE_KIB: u32 = 16 * 1024;

/// The page cache of a connection tuned for bulk writes, in KiB (SQLite's default is 2 MB).
/// 512 MB was no faster than 64 MB on 30,000 rows, and 64 MB took a 1,000,000-row import to
/// 142 MiB peak, near its 150 MB budget (docs/performance.md has the figures at 32 MB).
const BULK_PAGE_CACHE_KIB: u32 = 32 * 1024;

fn sqlite_url_with_create(url: &str) -> String {
    if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// A new row id (also the SCIM `id` of users and groups): a UUID whose leading bits are the
/// time (version 7), so rows created together sit together in the primary-key indexes and a
/// write appends to a few pages instead of dirtying a random page of every such index. The
/// creation time it reveals is already in `meta.created`; 74 bits stay random.
pub fn new_row_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What ends a SELECT of rows this transaction is about to change: ` FOR UPDATE` on
/// PostgreSQL, so the rows stay locked until it ends and a concurrent decision waits for this
/// one; nothing on SQLite, whose write transaction holds the whole database already.
pub(crate) fn for_update(conn: &AnyConnection) -> &'static str {
    if conn.backend_name() == "PostgreSQL" {
        " FOR UPDATE"
    } else {
        ""
    }
}

/// How a queue claim picks its rows: `WITH picked AS {materialized} (SELECT … {lock})`. On
/// PostgreSQL the rows it picks are locked and rows another claimer has locked are passed
/// over, so concurrent instances claim different work instead of queueing on the same rows
/// and coming away empty. The pick is a materialised CTE because a locking subquery inside
/// `IN (…)` may be rescanned per outer row, and each rescan, skipping the rows this very
/// statement has just updated, would claim the next batch too. Nothing on SQLite, where one
/// writer claims at a time.
pub(crate) fn claim_pick(conn: &AnyConnection, table: &str) -> (&'static str, String) {
    if conn.backend_name() == "PostgreSQL" {
        (
            " MATERIALIZED",
            format!(" FOR UPDATE OF {table} SKIP LOCKED"),
        )
    } else {
        ("", String::new())
    }
}

/// True when the error is a violated unique constraint, on either backend.
pub fn is_unique_violation(err: &DbError) -> bool {
    err.as_database_error()
        .map(|e| e.is_unique_violation())
        .unwrap_or(false)
}

/// A migrated SQLite database in a temporary folder, for unit tests that need a `Db`.
#[cfg(test)]
pub(crate) async fn test_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let db = Db::connect(&DatabaseSettings {
        url: format!("sqlite://{}", dir.path().join("test.db").display()),
        max_connections: 2,
        busy_timeout_ms: 1000,
    })
    .await
    .expect("a test database");
    db.migrate().await.expect("migrations");
    (dir, db)
}
