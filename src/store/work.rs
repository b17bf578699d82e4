//! A write transaction that gathers the INSERTs of a unit of work and sends them as
//! multi-row statements. Provisioning one person writes about twenty rows (the user, its
//! leaf values, the guest, grants, invitation, mail, sync events, audit); one statement each
//! made the database round trip, not the work, the cost of every SCIM write and import row.
//!
//! Rows are queued with [`Work::queue`] and flushed, parents first, before anything else
//! touches the connection: [`Work::conn`] flushes, so every read sees the unit's own writes,
//! and [`Work::commit`] flushes. A constraint a queued row breaks is reported by the flush
//! (or the commit), not by `queue`.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::AnyConnection;
use std::sync::Arc;

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::sql::{Arg, Sql};
use super::{Backend, Db, DbError, Tx};

/// The tables whose rows can be queued, in flush order: a row's foreign keys point to tables
/// earlier in this list (or to rows written directly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Users,
    Values,
    Members,
    Guests,
    GuestChanges,
    GuestSync,
    Grants,
    Invitations,
    Mail,
    Sync,
    AuditSubjects,
    Audit,
}

impl Table {
    const ALL: [Table; 12] = [
        Table::Users,
        Table::Values,
        Table::Members,
        Table::Guests,
        Table::GuestChanges,
        Table::GuestSync,
        Table::Grants,
        Table::Invitations,
        Table::Mail,
        Table::Sync,
        Table::AuditSubjects,
        Table::Audit,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The INSERT head and how many values a row has.
    fn head(self) -> (&'static str, usize) {
        match self {
            Table::Users => (
                "INSERT INTO scim_users (id, partner_id, user_name, user_name_lower, external_id, active, \
                 display_name, primary_email_lower, doc, version, created_at, updated_at) VALUES ",
                12,
            ),
            Table::Values => (
                "INSERT INTO scim_values (resource_id, partner_id, path, elem, value, value_ci, num) VALUES ",
                7,
            ),
            Table::Members => (
                "INSERT INTO group_members (group_id, member_id, partner_id, member_type) VALUES ",
                4,
            ),
            Table::Guests => (
                "INSERT INTO guests (id, partner_id, user_id, user_name, email, display_name, state, \
                 approved, mfa_required, sponsor, template, language, access_until, invited_at, \
                 redeemed_at, created_at, updated_at, rules_fingerprint) VALUES ",
                18,
            ),
            // Written as an upsert so that many guests' changes go in one statement.
            Table::GuestChanges => Table::Guests.head(),
            Table::GuestSync => (
                "INSERT INTO guest_sync (guest_id, digest, version, updated_at) VALUES ",
                4,
            ),
            Table::Grants => (
                "INSERT INTO guest_grants (guest_id, app_id, role, rule_id, valid_from, valid_until, ends_by) VALUES ",
                7,
            ),
            Table::Invitations => (
                "INSERT INTO invitations (id, guest_id, token_hash, created_at, expires_at, used_at, \
                 revoked_at, reminders_sent, last_reminder_at, next_action_at) VALUES ",
                10,
            ),
            Table::Mail => (
                "INSERT INTO mail_outbox (id, kind, to_addr, subject, body_sealed, guest_id, \
                 idempotency_key, created_at, attempts, next_attempt_at) VALUES ",
                10,
            ),
            Table::Sync => (
                "INSERT INTO sync_outbox (id, target, guest_id, kind, payload, created_at, next_attempt_at) VALUES ",
                7,
            ),
            Table::AuditSubjects => (
                "INSERT INTO audit_subjects (ref, subject_id, data) VALUES ",
                3,
            ),
            Table::Audit => (
                "INSERT INTO audit_log (at, actor, partner_id, action, target_type, target_id, request_id, detail) VALUES ",
                8,
            ),
        }
    }

    fn tail(self) -> &'static str {
        match self {
            // A mail queued twice under one key is sent once.
            Table::Mail => " ON CONFLICT (idempotency_key) DO NOTHING",
            // Every column a guest's update may change (`guests::update`).
            Table::GuestChanges => {
                " ON CONFLICT (id) DO UPDATE SET user_name = excluded.user_name, \
                 email = excluded.email, display_name = excluded.display_name, \
                 state = excluded.state, approved = excluded.approved, \
                 mfa_required = excluded.mfa_required, sponsor = excluded.sponsor, \
                 template = excluded.template, language = excluded.language, \
                 access_until = excluded.access_until, invited_at = excluded.invited_at, \
                 redeemed_at = excluded.redeemed_at, updated_at = excluded.updated_at, \
                 rules_fingerprint = excluded.rules_fingerprint"
            }
            _ => "",
        }
    }
}

/// Most parameters in one statement (SQLite allows 32,766, PostgreSQL 65,535).
const MAX_PARAMS: usize = 4096;

/// Queued rows beyond which [`Work::flush_if_large`] flushes, bounding the memory held.
const FLUSH_AT: usize = 4096;

/// Statement sizes in rows: a flush of n rows is split into these, largest first, so that
/// only a handful of distinct statements exist per table and the prepared-statement cache
/// holds them.
const SIZES: [usize; 9] = [256, 128, 64, 32, 16, 8, 4, 2, 1];

/// The largest statement size for rows of `width` values.
fn rows_per_statement(width: usize, left: usize) -> usize {
    SIZES
        .iter()
        .copied()
        .find(|s| *s <= left && s * width <= MAX_PARAMS)
        .unwrap_or(1)
}

/// A multi-row INSERT of `args` (rows of `width` values). On SQLite the placeholders are
/// anonymous `?`: sqlx binds SQLite parameters by name, and SQLite finds a numbered
/// parameter's name by walking the list of names, so `$n` placeholders cost the square of
/// their number (28 % of an import's time at 4,352 parameters); `?` has no name to find.
fn statement(backend: Backend, head: &str, tail: &str, width: usize, args: Vec<Arg>) -> Sql {
    let rows = args.len() / width;
    let mut text = String::with_capacity(head.len() + tail.len() + args.len() * 6);
    text.push_str(head);
    let mut n = 0;
    for r in 0..rows {
        text.push_str(if r > 0 { ", (" } else { "(" });
        for c in 0..width {
            if c > 0 {
                text.push_str(", ");
            }
            n += 1;
            match backend {
                Backend::Sqlite => text.push('?'),
                Backend::Postgres => {
                    text.push('$');
                    text.push_str(&n.to_string());
                }
            }
        }
        text.push(')');
    }
    text.push_str(tail);
    Sql { text, args }
}

/// A unit of work: queued inserts and, once a statement needs it, a write transaction.
///
/// The transaction begins lazily, at the first statement that is not a queued insert
/// ([`Work::conn`], a flush). On SQLite that is when the unit takes the writer turn, so the
/// CPU work before it (rule evaluation, sealing mail) does not hold the write lock. A unit
/// that only queued rows (a SCIM create) never opens one of its own: at commit it joins the
/// other such units waiting for the turn, and one transaction writes them all
/// ([`GroupCommit`]).
pub struct Work {
    db: Db,
    tx: Option<Tx>,
    queued: Vec<Vec<Arg>>,
    rows: usize,
}

impl Work {
    /// Start a unit of work on `db`; its transaction begins at its first statement
    /// (see [`Db::begin_write`]), so starting one neither waits nor fails.
    pub fn begin(db: &Db) -> Work {
        Work::new(db, None)
    }

    /// Begin a long unit of work (see [`Db::begin_bulk_write`]).
    pub async fn begin_bulk(db: &Db) -> Result<Work, DbError> {
        Ok(Work::new(db, Some(db.begin_bulk_write().await?)))
    }

    /// A unit that only reads (a dry run's lookups), in a transaction on the read pool: it
    /// never takes the writer turn nor SQLite's write lock, so it blocks no writer.
    pub async fn begin_read(db: &Db) -> Result<Work, DbError> {
        let inner = db.pool().begin().await?;
        Ok(Work::new(db, Some(Tx { inner, _turn: None })))
    }

    /// A unit of work continuing in a transaction already begun.
    pub fn from_tx(tx: Tx, db: &Db) -> Work {
        Work::new(db, Some(tx))
    }

    fn new(db: &Db, tx: Option<Tx>) -> Work {
        Work {
            db: db.clone(),
            tx,
            queued: empty_queues(),
            rows: 0,
        }
    }

    /// Queue one row of `table`; `row` holds its values in the column order of the table's head.
    pub fn queue(&mut self, table: Table, row: Vec<Arg>) {
        debug_assert_eq!(row.len(), table.head().1, "{table:?} row width");
        self.queued[table.index()].extend(row);
        self.rows += 1;
    }

    /// The connection, after the queued rows are written: for reads and for statements that
    /// are not plain inserts.
    pub async fn conn(&mut self) -> Result<&mut AnyConnection, DbError> {
        self.flush().await?;
        Ok(self.tx().await?)
    }

    async fn tx(&mut self) -> Result<&mut Tx, DbError> {
        let tx = self.take_tx().await?;
        Ok(self.tx.insert(tx))
    }

    /// The unit's transaction, begun now if it has none yet.
    async fn take_tx(&mut self) -> Result<Tx, DbError> {
        match self.tx.take() {
            Some(tx) => Ok(tx),
            None => self.db.begin_write().await,
        }
    }

    /// Write the queued rows, parents first.
    /// After an error the unit is incomplete (rows are lost): roll it back.
    pub async fn flush(&mut self) -> Result<(), DbError> {
        if self.rows == 0 {
            return Ok(());
        }
        self.rows = 0;
        let queued = std::mem::replace(&mut self.queued, empty_queues());
        let backend = self.db.backend();
        write_rows(self.tx().await?, backend, queued).await
    }

    /// Flush when many rows are queued; long units of work (imports) call it as they go.
    pub async fn flush_if_large(&mut self) -> Result<(), DbError> {
        if self.rows >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    pub async fn commit(mut self) -> Result<(), DbError> {
        if self.tx.is_none() {
            if self.rows == 0 {
                return Ok(());
            }
            return self.db.group_commit().commit(&self.db, self.queued).await;
        }
        self.flush().await?;
        self.take_tx().await?.commit().await
    }

    /// The transaction, with the queued rows written, for code that works on it directly.
    pub async fn into_tx(mut self) -> Result<Tx, DbError> {
        self.flush().await?;
        self.take_tx().await
    }

    /// Abandon the unit: nothing queued or written is kept.
    pub async fn rollback(self) -> Result<(), DbError> {
        match self.tx {
            Some(tx) => tx.rollback().await,
            None => Ok(()),
        }
    }
}

fn empty_queues() -> Vec<Vec<Arg>> {
    vec![Vec::new(); Table::ALL.len()]
}

/// Write queued rows (one list of values per table, in [`Table::ALL`] order) on `conn`.
async fn write_rows(
    conn: &mut AnyConnection,
    backend: Backend,
    queued: Vec<Vec<Arg>>,
) -> Result<(), DbError> {
    for (table, args) in Table::ALL.into_iter().zip(queued) {
        if args.is_empty() {
            continue;
        }
        let (mut head, mut width) = table.head();
        let mut args = args;
        // Audit rows are linked to a hash chain as they are written (one head per flush).
        if table == Table::Audit {
            args = super::audit_chain::link(conn, args).await?;
            (head, width) = (
                super::audit_chain::LINKED_HEAD,
                super::audit_chain::LINKED_WIDTH,
            );
        }
        let mut rows = args.into_iter();
        let mut left = rows.len() / width;
        while left > 0 {
            let n = rows_per_statement(width, left);
            let args: Vec<Arg> = rows.by_ref().take(n * width).collect();
            let sql = statement(backend, head, table.tail(), width, args);
            sql.query().execute(&mut *conn).await?;
            left -= n;
        }
    }
    Ok(())
}

/// Group commit. On SQLite, whose one writer at a time made each SCIM create pay a whole
/// transaction (BEGIN, a handful of statements, COMMIT: about 2.3 ms) in turn; on
/// PostgreSQL, where each of those statements is a network round trip. Units that only
/// queued inserts wait here; whoever gets the turn (SQLite's writer turn, or on PostgreSQL
/// the group's own) takes every unit waiting and writes them in one transaction, sharing its
/// statements and its commit.
///
/// A unit's rows are committed together with others, but its outcome is its own: when the
/// shared transaction fails (a unit's userName was taken, say) nothing of it is kept and each
/// unit is then committed alone, so only the unit at fault sees the error.
pub(crate) struct GroupCommit {
    waiting: std::sync::Mutex<Vec<Waiting>>,
    next_id: AtomicU64,
    /// The turn to write a batch where the database has no writer turn (PostgreSQL).
    leader: Arc<Semaphore>,
}

impl Default for GroupCommit {
    fn default() -> Self {
        GroupCommit {
            waiting: Default::default(),
            next_id: Default::default(),
            leader: Arc::new(Semaphore::new(1)),
        }
    }
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

struct Waiting {
    id: u64,
    queued: Vec<Vec<Arg>>,
    done: oneshot::Sender<Result<(), DbError>>,
}

/// Units written by one transaction at most; beyond it the rest wait for the next turn.
const GROUP_UNITS: usize = 128;

impl GroupCommit {
    async fn commit(&self, db: &Db, queued: Vec<Vec<Arg>>) -> Result<(), DbError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done, mut outcome) = oneshot::channel();
        self.waiting_list().push(Waiting { id, queued, done });
        let turn = tokio::select! {
            biased;
            result = &mut outcome => return received(result),
            turn = self.turn(db) => turn,
        };
        match turn {
            Ok(turn) => {
                let batch: Vec<Waiting> = {
                    let mut waiting = self.waiting_list();
                    let n = waiting.len().min(GROUP_UNITS);
                    waiting.drain(..n).collect()
                };
                // The batch is written by a task of its own: were this request cancelled (its
                // client gone), the other units' outcomes must still be decided and told. An
                // empty list means an earlier turn took this unit too.
                if !batch.is_empty() {
                    let db = db.clone();
                    tokio::spawn(async move {
                        commit_batch(&db, batch).await;
                        drop(turn);
                    });
                }
            }
            Err(e) => {
                let mut waiting = self.waiting_list();
                if let Some(at) = waiting.iter().position(|w| w.id == id) {
                    waiting.remove(at);
                    return Err(e);
                }
                // Another unit's turn took this one: its outcome is on the way.
            }
        }
        received(outcome.await)
    }

    /// SQLite's writer turn, or the group's own where writers run concurrently.
    async fn turn(&self, db: &Db) -> Result<OwnedSemaphorePermit, DbError> {
        match db.writer_turn().await? {
            Some(turn) => Ok(turn),
            None => db.wait_turn(&self.leader).await,
        }
    }

    fn waiting_list(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        // The list is only pushed to and drained; a panic elsewhere cannot leave it torn.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn received(result: Result<Result<(), DbError>, oneshot::error::RecvError>) -> Result<(), DbError> {
    result.unwrap_or(Err(DbError::WorkerCrashed))
}

/// Commit `batch` in one transaction, or each unit alone when that fails; tell each its outcome.
async fn commit_batch(db: &Db, batch: Vec<Waiting>) {
    let started = std::time::Instant::now();
    let units = batch.len();
    if units > 1 {
        let mut merged = empty_queues();
        for unit in &batch {
            for (all, rows) in merged.iter_mut().zip(&unit.queued) {
                all.extend(rows.iter().cloned());
            }
        }
        let values: usize = merged.iter().map(Vec::len).sum();
        if commit_alone(db, merged).await.is_ok() {
            for unit in batch {
                let _ = unit.done.send(Ok(()));
            }
            tracing::debug!(
                units,
                values,
                ms = started.elapsed().as_secs_f64() * 1e3,
                "group commit"
            );
            return;
        }
    }
    for unit in batch {
        let result = commit_alone(db, unit.queued).await;
        // A unit whose request was cancelled no longer listens; its rows are written anyway.
        let _ = unit.done.send(result);
    }
}

/// One transaction writing `queued`; the caller holds the writer turn.
async fn commit_alone(db: &Db, queued: Vec<Vec<Arg>>) -> Result<(), DbError> {
    let mut tx = db.begin_in_turn().await?;
    match write_rows(&mut tx, db.backend(), queued).await {
        Ok(()) => tx.commit().await,
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sqlite_db(dir: &tempfile::TempDir) -> Db {
        let db = Db::connect(&crate::config::DatabaseSettings {
            url: format!("sqlite://{}", dir.path().join("work.db").display()),
            max_connections: 4,
            busy_timeout_ms: 5000,
        })
        .await
        .unwrap();
        db.migrate().await.unwrap();
        db
    }

    fn audit_row(action: &str) -> Vec<Arg> {
        vec![
            Arg::Int(1),
            Arg::text("test"),
            Arg::NullText,
            Arg::text(action),
            Arg::text("user"),
            Arg::NullText,
            Arg::NullText,
            Arg::text("{}"),
        ]
    }

    async fn actions(db: &Db) -> Vec<String> {
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY action")
            .fetch_all(db.pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_failing_unit_of_a_group_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_db(&dir).await;
        let mut batch = Vec::new();
        let mut outcomes = Vec::new();
        for (id, action) in ["first", "broken", "third"].into_iter().enumerate() {
            let mut queued = empty_queues();
            queued[Table::Audit.index()] = audit_row(action);
            if action == "broken" {
                // A grant of a guest that does not exist breaks its foreign key.
                queued[Table::Grants.index()] = vec![
                    Arg::text("no-such-guest"),
                    Arg::text("app"),
                    Arg::text("role"),
                    Arg::text("rule"),
                    Arg::Int(0),
                    Arg::NullInt,
                    Arg::NullText,
                ];
            }
            let (done, outcome) = oneshot::channel();
            batch.push(Waiting {
                id: id as u64,
                queued,
                done,
            });
            outcomes.push(outcome);
        }
        commit_batch(&db, batch).await;
        let results: Vec<bool> = outcomes_ok(outcomes).await;
        assert_eq!(results, [true, false, true]);
        assert_eq!(actions(&db).await, ["first", "third"]);
    }

    async fn outcomes_ok(outcomes: Vec<oneshot::Receiver<Result<(), DbError>>>) -> Vec<bool> {
        let mut ok = Vec::new();
        for outcome in outcomes {
            ok.push(outcome.await.unwrap().is_ok());
        }
        ok
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_units_are_all_committed_and_a_lazy_unit_reads_its_own_rows() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_db(&dir).await;
        let mut tasks = Vec::new();
        for i in 0..64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut w = Work::begin(&db);
                w.queue(Table::Audit, audit_row(&format!("a{i:02}")));
                w.commit().await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let expected: Vec<String> = (0..64).map(|i| format!("a{i:02}")).collect();
        assert_eq!(actions(&db).await, expected);

        let mut w = Work::begin(&db);
        w.queue(Table::Audit, audit_row("zz"));
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(w.conn().await.unwrap())
            .await
            .unwrap();
        assert_eq!(n, 65);
        w.rollback().await.unwrap();
        assert_eq!(actions(&db).await.len(), 64);
    }

    #[test]
    fn statements_stay_small_and_few() {
        for width in [4, 7, 8, 10, 12, 17] {
            for n in 1..=1000usize {
                let (mut left, mut statements) = (n, 0);
                while left > 0 {
                    let rows = rows_per_statement(width, left);
                    assert!(rows * width <= MAX_PARAMS || rows == 1);
                    left -= rows;
                    statements += 1;
                }
                let largest = rows_per_statement(width, usize::MAX);
                assert!(largest * 2 * width > MAX_PARAMS || largest == SIZES[0]);
                assert!(
                    statements <= n / largest + SIZES.len(),
                    "{width} x {n}: {statements}"
                );
            }
        }
    }

    #[test]
    fn statements_number_their_parameters_on_postgres_only() {
        let args = vec![Arg::Int(1), Arg::Int(2), Arg::Int(3), Arg::Int(4)];
        let pg = statement(
            Backend::Postgres,
            "INSERT INTO t (a, b) VALUES ",
            "",
            2,
            args.clone(),
        );
        assert_eq!(pg.text, "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)");
        let lite = statement(
            Backend::Sqlite,
            "INSERT INTO t (a, b) VALUES ",
            " X",
            2,
            args,
        );
        assert_eq!(lite.text, "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) X");
        assert_eq!(lite.args.len(), 4);
    }

    #[test]
    fn every_table_is_flushed_after_its_parents() {
        let pos = |t: Table| {
            Table::ALL
                .iter()
                .position(|x| *x == t)
                .unwrap_or(usize::MAX)
        };
        assert!(pos(Table::Users) < pos(Table::Values));
        assert!(pos(Table::Guests) < pos(Table::Grants));
        assert!(pos(Table::Guests) < pos(Table::GuestChanges));
        assert!(pos(Table::Guests) < pos(Table::Invitations));
        for (i, t) in Table::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
    }
}
