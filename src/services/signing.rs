//! App-launch signing keys: generated on first start, stored sealed, rotated on demand with
//! retired keys still published until the tokens they signed have expired.

use super::{Deps, ServiceError};
use crate::auth::jwt::published_key_lifetime;
use crate::auth::keys::{self, SigningKey};
use crate::clock::{from_millis, to_millis};
use crate::store::keys::{self as key_store, KeyRow};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

async fn load(deps: &Deps) -> Result<Vec<SigningKey>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    key_store::all(&mut conn)
        .await?
        .into_iter()
        .map(|row| {
            let private = deps
                .portal
                .secrets
                .open(&row.private_sealed, row.kid.as_bytes())
                .map_err(|e| ServiceError::Corrupt(format!("signing key {}: {e} (is GUESTBRIDGE_SECRET_KEY the one it was sealed with?)", row.kid)))?;
            let public = URL_SAFE_NO_PAD
                .decode(&row.public_raw)
                .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
            Ok(SigningKey {
                kid: row.kid,
                private_pkcs8_der: private,
                public_raw: public,
                created_at: from_millis(row.created_at),
                retired_at: row.retired_at.map(from_millis),
            })
        })
        .collect()
}

async fn store_new(deps: &Deps, key: &SigningKey) -> Result<(), ServiceError> {
    let sealed = deps
        .portal
        .secrets
        .seal(&key.private_pkcs8_der, key.kid.as_bytes())
        .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    let mut tx = deps.db.begin_write().await?;
    key_store::insert(
        &mut tx,
        &KeyRow {
            kid: key.kid.clone(),
            private_sealed: sealed,
            public_raw: URL_SAFE_NO_PAD.encode(&key.public_raw),
            created_at: to_millis(key.created_at),
            retired_at: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Make sure an active key exists (first start).
pub async fn ensure_key(deps: &Deps) -> Result<(), ServiceError> {
    if keys::active(&load(deps).await?).is_none() {
        let key = SigningKey::generate(deps.clock.now())
            .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
        store_new(deps, &key).await?;
    }
    Ok(())
}

pub async fn active_key(deps: &Deps) -> Result<SigningKey, ServiceError> {
    keys::active(&load(deps).await?)
        .cloned()
        .ok_or_else(|| ServiceError::Corrupt("no active signing key".into()))
}

/// The published keys (JWKS).
pub async fn jwks(deps: &Deps) -> Result<serde_json::Value, ServiceError> {
    Ok(keys::jwks(
        &load(deps).await?,
        deps.clock.now(),
        published_key_lifetime(),
    ))
}

/// Retire the active key and start signing with a new one; returns the new kid.
pub async fn rotate(deps: &Deps) -> Result<String, ServiceError> {
    let now = deps.clock.now();
    let key = SigningKey::generate(now).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    {
        let mut tx = deps.db.begin_write().await?;
        key_store::retire_active(&mut tx, to_millis(now)).await?;
        tx.commit().await?;
    }
    store_new(deps, &key).await?;
    Ok(key.kid)
}
