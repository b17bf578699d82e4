//! A write transaction that gathers the INSERTs of a unit of work and sends them as
//! multi-row statements. Provisioning one person writes about twenty rows (the user, its
//! leaf values, the guest, grants, invitation, mail, sync events, audit); one statement each
//! made the database round trip, not the work, the cost of every SCIM write and import row.
//!
//! Rows are queued with [`Work::queue`] and flushed, parents first, before anything else
//! touches the connection: [`Work::conn`] flushes, so every read sees the unit's own writes,
//! and [`Work::commit`] flushes. A constraint a queued row breaks is reported by the flush
//! (or the commit), not by `queue`.

use sqlx::AnyConnection;

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
    Grants,
    Invitations,
    Mail,
    Sync,
    Audit,
}

impl Table {
    const ALL: [Table; 10] = [
        Table::Users,
        Table::Values,
        Table::Members,
        Table::Guests,
        Table::GuestChanges,
        Table::Grants,
        Table::Invitations,
        Table::Mail,
        Table::Sync,
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
                 redeemed_at, created_at, updated_at) VALUES ",
                17,
            ),
            // Written as an upsert so that many guests' changes go in one statement.
            Table::GuestChanges => Table::Guests.head(),
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
                 redeemed_at = excluded.redeemed_at, updated_at = excluded.updated_at"
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

/// A write transaction with queued inserts.
pub struct Work {
    tx: Tx,
    backend: Backend,
    queued: Vec<Vec<Arg>>,
    rows: usize,
}

impl Work {
    /// Begin a write transaction (see [`Db::begin_write`]).
    pub async fn begin(db: &Db) -> Result<Work, DbError> {
        Ok(Work::from_tx(db.begin_write().await?, db.backend()))
    }

    /// Begin a long unit of work (see [`Db::begin_bulk_write`]).
    pub async fn begin_bulk(db: &Db) -> Result<Work, DbError> {
        Ok(Work::from_tx(db.begin_bulk_write().await?, db.backend()))
    }

    pub fn from_tx(tx: Tx, backend: Backend) -> Work {
        Work {
            tx,
            backend,
            queued: vec![Vec::new(); Table::ALL.len()],
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
        Ok(&mut self.tx)
    }

    /// Write the queued rows, parents first.
    /// After an error the unit is incomplete (rows are lost): roll it back.
    pub async fn flush(&mut self) -> Result<(), DbError> {
        if self.rows == 0 {
            return Ok(());
        }
        self.rows = 0;
        let queued = std::mem::replace(&mut self.queued, vec![Vec::new(); Table::ALL.len()]);
        for (table, args) in Table::ALL.into_iter().zip(queued) {
            if args.is_empty() {
                continue;
            }
            let (head, width) = table.head();
            let mut rows = args.into_iter();
            let mut left = rows.len() / width;
            while left > 0 {
                let n = rows_per_statement(width, left);
                let args: Vec<Arg> = rows.by_ref().take(n * width).collect();
                let sql = statement(self.backend, head, table.tail(), width, args);
                sql.query().execute(&mut *self.tx).await?;
                left -= n;
            }
        }
        Ok(())
    }

    /// Flush when many rows are queued; long units of work (imports) call it as they go.
    pub async fn flush_if_large(&mut self) -> Result<(), DbError> {
        if self.rows >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    pub async fn commit(mut self) -> Result<(), DbError> {
        self.flush().await?;
        self.tx.commit().await
    }

    /// The transaction, with the queued rows written, for code that works on it directly.
    pub async fn into_tx(mut self) -> Result<Tx, DbError> {
        self.flush().await?;
        Ok(self.tx)
    }

    /// Abandon the unit: nothing queued or written is kept.
    pub async fn rollback(self) -> Result<(), DbError> {
        self.tx.rollback().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
