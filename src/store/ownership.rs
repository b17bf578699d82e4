//! Ownership of downstream objects: per sync target, the id of the object each guest is
//! there, because Guestbridge created it or adopted it. Connectors act only on these ids, so
//! a directory shared with staff accounts is safe from reconciliation and from a partner who
//! sends a staff member's address. The table is shared by every instance and outlives restarts.

use sqlx::{AnyConnection, Row};

use super::{Db, DbError};

/// One owned object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub guest_id: String,
    pub remote_id: String,
    /// True when the object existed before Guestbridge took it over.
    pub adopted: bool,
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Owned, DbError> {
    let adopted: i64 = r.try_get("adopted")?;
    Ok(Owned {
        guest_id: r.try_get("guest_id")?,
        remote_id: r.try_get("remote_id")?,
        adopted: adopted != 0,
    })
}

/// The object `guest_id` owns at `target`, if any.
pub async fn get(
    conn: &mut AnyConnection,
    target: &str,
    guest_id: &str,
) -> Result<Option<Owned>, DbError> {
    sqlx::query(
        "SELECT guest_id, remote_id, adopted FROM sync_owned WHERE target = $1 AND guest_id = $2",
    )
    .bind(target)
    .bind(guest_id)
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Record that `guest_id` is `remote_id` at `target` (replacing an earlier object). A unique
/// violation means another guest already owns `remote_id`.
pub async fn record(
    conn: &mut AnyConnection,
    target: &str,
    owned: &Owned,
    now: i64,
) -> Result<(), DbError> {
    // Re-recording the same object keeps how it was first obtained.
    sqlx::query(
        "INSERT INTO sync_owned (target, guest_id, remote_id, adopted, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (target, guest_id) DO UPDATE SET
            adopted = CASE WHEN sync_owned.remote_id = excluded.remote_id
                           THEN sync_owned.adopted ELSE excluded.adopted END,
            remote_id = excluded.remote_id,
            updated_at = excluded.updated_at",
    )
    .bind(target)
    .bind(&owned.guest_id)
    .bind(&owned.remote_id)
    .bind(i64::from(owned.adopted))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forget `guest_id`'s object at `target` when it is still `remote_id` (deleted there).
pub async fn forget(
    conn: &mut AnyConnection,
    target: &str,
    guest_id: &str,
    remote_id: &str,
) -> Result<(), DbError> {
    sqlx::query("DELETE FROM sync_owned WHERE target = $1 AND guest_id = $2 AND remote_id = $3")
        .bind(target)
        .bind(guest_id)
        .bind(remote_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Every object owned at `target`, by guest id.
pub async fn all(conn: &mut AnyConnection, target: &str) -> Result<Vec<Owned>, DbError> {
    sqlx::query(
        "SELECT guest_id, remote_id, adopted FROM sync_owned WHERE target = $1 ORDER BY guest_id",
    )
    .bind(target)
    .fetch_all(conn)
    .await?
    .iter()
    .map(from_row)
    .collect()
}

/// One target's ownership records, for a connector: the pool and the target's name.
#[derive(Debug, Clone)]
pub struct OwnershipStore {
    db: Db,
    target: String,
}

impl OwnershipStore {
    pub fn new(db: Db, target: impl Into<String>) -> Self {
        OwnershipStore {
            db,
            target: target.into(),
        }
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub async fn get(&self, guest_id: &str) -> Result<Option<Owned>, DbError> {
        let mut conn = self.db.pool().acquire().await?;
        get(&mut conn, &self.target, guest_id).await
    }

    pub async fn record(&self, owned: &Owned) -> Result<(), DbError> {
        let now = crate::clock::to_millis(chrono::Utc::now());
        let mut conn = self.db.pool().acquire().await?;
        record(&mut conn, &self.target, owned, now).await
    }

    pub async fn forget(&self, guest_id: &str, remote_id: &str) -> Result<(), DbError> {
        let mut conn = self.db.pool().acquire().await?;
        forget(&mut conn, &self.target, guest_id, remote_id).await
    }

    pub async fn all(&self) -> Result<Vec<Owned>, DbError> {
        let mut conn = self.db.pool().acquire().await?;
        all(&mut conn, &self.target).await
    }
}
