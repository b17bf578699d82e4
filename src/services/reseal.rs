//! Re-encrypting every sealed secret under a new key (`guestbridge keys reseal`): signing
//! keys, TOTP seeds and queued mail bodies, each bound to the same row as before. All or
//! nothing: one transaction, and the first value that does not open under the old key
//! stops it before anything is written, so a wrong old key never leaves the database half
//! under one key and half under another.

use serde::Serialize;
use sqlx::Row;

use crate::auth::secrets::SecretBox;
use crate::store::{Db, DbError, Tx};

/// How many values of each kind were re-encrypted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResealReport {
    pub signing_keys: u64,
    pub totp_seeds: u64,
    pub mail_bodies: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    #[error("the new key is the same as the old key")]
    SameKey,
    /// Names the row, never the value.
    #[error("{what} {id} does not open under the current key ({reason}); nothing was changed")]
    DoesNotOpen {
        what: &'static str,
        id: String,
        reason: String,
    },
    #[error("{0}")]
    Seal(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// A column of sealed values: the table, its key column (also the associated data the value
/// is bound to, except for mail, bound to its idempotency key), and what the report calls it.
struct Sealed {
    what: &'static str,
    table: &'static str,
    id: &'static str,
    aad: &'static str,
    column: &'static str,
}

const SEALED: [Sealed; 3] = [
    Sealed {
        what: "signing key",
        table: "signing_keys",
        id: "kid",
        aad: "kid",
        column: "private_sealed",
    },
    Sealed {
        what: "TOTP seed of guest",
        table: "guest_mfa",
        id: "guest_id",
        aad: "guest_id",
        column: "totp_secret_sealed",
    },
    Sealed {
        what: "mail",
        table: "mail_outbox",
        id: "id",
        aad: "idempotency_key",
        column: "body_sealed",
    },
];

/// Re-encrypt every sealed value from `old` to `new` in one transaction.
pub async fn reseal(
    db: &Db,
    old: &SecretBox,
    new: &SecretBox,
) -> Result<ResealReport, ResealError> {
    if old.derive_key("reseal-check") == new.derive_key("reseal-check") {
        return Err(ResealError::SameKey);
    }
    let mut tx = db.begin_write().await?;
    let mut counts = [0u64; 3];
    for (kind, count) in SEALED.iter().zip(counts.iter_mut()) {
        *count = reseal_column(&mut tx, kind, old, new).await?;
    }
    tx.commit().await?;
    let [signing_keys, totp_seeds, mail_bodies] = counts;
    Ok(ResealReport {
        signing_keys,
        totp_seeds,
        mail_bodies,
    })
}

async fn reseal_column(
    tx: &mut Tx,
    kind: &Sealed,
    old: &SecretBox,
    new: &SecretBox,
) -> Result<u64, ResealError> {
    let Sealed {
        what,
        table,
        id,
        aad,
        column,
    } = kind;
    let lock = crate::store::for_update(tx);
    let rows = sqlx::query(&format!(
        "SELECT {id} AS id, {aad} AS aad, {column} AS sealed FROM {table} \
         WHERE {column} IS NOT NULL ORDER BY {id}{lock}"
    ))
    .fetch_all(&mut **tx)
    .await?;
    let mut resealed = Vec::with_capacity(rows.len());
    for r in &rows {
        let row_id: String = r.try_get("id")?;
        let bound: String = r.try_get("aad")?;
        let sealed: String = r.try_get("sealed")?;
        let plain = old
            .open(&sealed, bound.as_bytes())
            .map_err(|e| ResealError::DoesNotOpen {
                what,
                id: row_id.clone(),
                reason: e.to_string(),
            })?;
        let again = new
            .seal(&plain, bound.as_bytes())
            .map_err(|e| ResealError::Seal(e.to_string()))?;
        resealed.push((row_id, again));
    }
    for (row_id, again) in &resealed {
        sqlx::query(&format!("UPDATE {table} SET {column} = $1 WHERE {id} = $2"))
            .bind(again)
            .bind(row_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(resealed.len() as u64)
}
