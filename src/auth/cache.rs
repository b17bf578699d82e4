//! Recently authenticated bearer tokens, so that a request with a known token needs no SQL.
//! Every statement on SQLite is a round trip to the connection's worker thread, and the
//! token look-up was one of three or four on every SCIM read (docs/performance.md).
//!
//! Entries are keyed by the token's hash, never the token, so the cache holds nothing a
//! memory dump could replay. Only successful look-ups are cached: an unknown or revoked
//! token always reaches the database, and a newly issued token works at once. Revoking
//! through this process drops the entry at once ([`TokenCache::forget`]); another instance
//! on the same database keeps accepting a revoked token until its entry expires, so for at
//! most [`TOKEN_CACHE_TTL_MS`].

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::Partner;

/// How long a cached authentication stands. This bounds how long another instance (or a
/// `guestbridge token revoke` run from the command line) takes to see a revocation, so it is
/// short; yet one look-up per token per 30 s is nothing next to a client's request rate.
pub const TOKEN_CACHE_TTL_MS: i64 = 30_000;

/// Most tokens held. Only valid tokens are cached, so this is only reached by an
/// installation with that many tokens in use at once; the cache then forgets the oldest.
pub const TOKEN_CACHE_CAPACITY: usize = 4_096;

/// Cached authentications of one kind of token, by token hash.
#[derive(Debug)]
pub struct TokenCache<V> {
    entries: Mutex<Entries<V>>,
    ttl_ms: i64,
    capacity: usize,
}

#[derive(Debug)]
struct Entries<V> {
    map: HashMap<String, (V, i64)>,
    /// Bumped by every [`TokenCache::forget`]. A look-up that read the database before a
    /// revocation committed must not put the token back afterwards, so an insert carries
    /// the generation seen before its query and is dropped if a forget came in between.
    generation: u64,
}

impl<V: Clone> TokenCache<V> {
    pub fn new(ttl_ms: i64, capacity: usize) -> Self {
        TokenCache {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                generation: 0,
            }),
            ttl_ms,
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<V>> {
        // A panic while holding the lock cannot leave the map inconsistent (every change is
        // one insert or remove), so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached value for this token hash, if cached less than the TTL before `now_ms`.
    /// A clock that went back counts as expired, so an entry never outlives its TTL.
    pub fn get(&self, hash: &str, now_ms: i64) -> Option<V> {
        let mut entries = self.lock();
        match entries.map.get(hash) {
            Some((v, at)) if now_ms >= *at && now_ms - at < self.ttl_ms => Some(v.clone()),
            Some(_) => {
                entries.map.remove(hash);
                None
            }
            None => None,
        }
    }

    /// The generation to pass to [`TokenCache::insert`], read before the database look-up.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Remember a successful authentication at `now_ms`, unless a token was forgotten since
    /// `generation` was read.
    pub fn insert(&self, hash: &str, value: V, now_ms: i64, generation: u64) {
        let mut entries = self.lock();
        if entries.generation != generation {
            return;
        }
        let map = &mut entries.map;
        if map.len() >= self.capacity && !map.contains_key(hash) {
            let ttl = self.ttl_ms;
            map.retain(|_, (_, at)| now_ms >= *at && now_ms - *at < ttl);
            if map.len() >= self.capacity {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(hash.to_string(), (value, now_ms));
    }

    /// Drop a token (it was revoked), so its next use goes to the database.
    pub fn forget(&self, hash: &str) {
        let mut entries = self.lock();
        entries.map.remove(hash);
        entries.generation += 1;
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The caches of one server process: partner tokens to their partner, admin tokens to their
/// principal (id, role and scope).
#[derive(Debug)]
pub struct AuthCache {
    pub partners: TokenCache<Partner>,
    pub admins: TokenCache<crate::domain::AdminPrincipal>,
}

impl Default for AuthCache {
    fn default() -> Self {
        AuthCache {
            partners: TokenCache::new(TOKEN_CACHE_TTL_MS, TOKEN_CACHE_CAPACITY),
            admins: TokenCache::new(TOKEN_CACHE_TTL_MS, TOKEN_CACHE_CAPACITY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_for_the_ttl_and_no_longer() {
        let cache = TokenCache::new(30_000, 10);
        cache.insert("h1", "p1".to_string(), 1_000, 0);
        assert_eq!(cache.get("h1", 1_000).as_deref(), Some("p1"));
        assert_eq!(cache.get("h1", 30_999).as_deref(), Some("p1"));
        assert_eq!(cache.get("h1", 31_000), None);
        // Expired entries are dropped when seen.
        assert!(cache.is_empty());
        // A clock that went back does not extend an entry.
        cache.insert("h2", "p2".to_string(), 50_000, 0);
        assert_eq!(cache.get("h2", 49_999), None);
        assert_eq!(cache.get("other", 50_000), None);
    }

    #[test]
    fn forget_drops_an_entry_at_once() {
        let cache = TokenCache::new(30_000, 10);
        cache.insert("h1", 1u8, 0, 0);
        cache.insert("h2", 2u8, 0, 0);
        cache.forget("h1");
        assert_eq!(cache.get("h1", 1), None);
        assert_eq!(cache.get("h2", 1), Some(2));
    }

    #[test]
    fn a_look_up_that_raced_a_revocation_is_not_cached() {
        let cache = TokenCache::new(30_000, 10);
        // A request reads the generation, then queries the database (token still valid)...
        let seen = cache.generation();
        // ...while the token is revoked and forgotten...
        cache.forget("h1");
        // ...so its late insert is dropped.
        cache.insert("h1", 1u8, 0, seen);
        assert_eq!(cache.get("h1", 1), None);
        cache.insert("h1", 1u8, 0, cache.generation());
        assert_eq!(cache.get("h1", 1), Some(1));
    }

    #[test]
    fn size_is_bounded_expired_first_then_oldest() {
        let cache = TokenCache::new(1_000, 3);
        cache.insert("a", 1, 0, 0);
        cache.insert("b", 2, 500, 0);
        cache.insert("c", 3, 900, 0);
        // "a" has expired by 1,200: it goes, the rest stay.
        cache.insert("d", 4, 1_200, 0);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("a", 1_200), None);
        assert_eq!(cache.get("b", 1_200), Some(2));
        // Nothing expired: the oldest ("b") makes room.
        cache.insert("e", 5, 1_300, 0);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("b", 1_300), None);
        assert_eq!(cache.get("c", 1_300), Some(3));
        assert_eq!(cache.get("e", 1_300), Some(5));
        // Refreshing a present key never evicts another.
        cache.insert("e", 6, 1_400, 0);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("d", 1_400), Some(4));
    }
}
