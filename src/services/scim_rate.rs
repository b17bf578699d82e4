//! A partner's SCIM request rate (`scim_requests_per_second`, `scim_burst`): a token bucket
//! per partner, refilled continuously at the rate and holding at most the burst. On SQLite
//! (one instance) the buckets live in this process's memory; on PostgreSQL they are rows
//! every instance updates atomically (`store::scim_rate_buckets`), so that replicas share one
//! budget. Time is the wall clock, not the service clock (which tests may stop): the budget
//! is about real load.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{Deps, ServiceError};
use crate::domain::Partner;
use crate::store::scim_rate_buckets;
use crate::store::Backend;

/// This process's buckets (SQLite), by partner id: tokens and when they were counted.
#[derive(Debug, Default)]
pub struct LocalBuckets(Mutex<HashMap<String, (f64, Instant)>>);

impl LocalBuckets {
    /// Refill and take a token; the tokens left after, and whether one was taken.
    fn take(&self, key: &str, rate: f64, burst: f64, now: Instant) -> (bool, f64) {
        let mut buckets = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((burst, now));
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *tokens = (*tokens + elapsed * rate).min(burst);
        *at = now;
        let admitted = *tokens >= 1.0;
        if admitted {
            *tokens -= 1.0;
        }
        (admitted, *tokens)
    }
}

/// Seconds until the bucket holds a whole token again (at least 1: `Retry-After` counts
/// whole seconds).
fn retry_after_secs(tokens: f64, rate: f64) -> u64 {
    let wait = ((1.0 - tokens).max(0.0) / rate).ceil();
    if wait.is_finite() && wait >= 1.0 {
        wait as u64
    } else {
        1
    }
}

/// Let one SCIM request of `partner` through its rate, or refuse it (429 with
/// `Retry-After`) when its bucket is empty. Partners without a rate always pass.
pub async fn admit(deps: &Deps, partner: &Partner) -> Result<(), ServiceError> {
    let limits = deps.rules().policy(partner.slug.as_str()).limits;
    let Some(rate) = limits.scim_requests_per_second else {
        return Ok(());
    };
    let rate = f64::from(rate);
    let burst = f64::from(limits.scim_burst.unwrap_or(rate as u32)).max(1.0);
    let (admitted, tokens) = match deps.db.backend() {
        Backend::Sqlite => deps
            .scim_rate
            .take(&partner.id, rate, burst, Instant::now()),
        Backend::Postgres => {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            let mut conn = deps.db.pool().acquire().await?;
            let taken =
                scim_rate_buckets::take(&mut conn, &partner.id, now_ms, rate, burst).await?;
            (taken.admitted, taken.tokens)
        }
    };
    if admitted {
        return Ok(());
    }
    Err(ServiceError::TooMany {
        message: format!(
            "partner {} is sending more than its {rate} SCIM requests per second \
             (scim_requests_per_second in the mapping rules); retry after the Retry-After seconds",
            partner.slug
        ),
        retry_after_secs: retry_after_secs(tokens, rate),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{retry_after_secs, LocalBuckets};

    #[test]
    fn a_bucket_lets_the_burst_through_then_the_rate() {
        let b = LocalBuckets::default();
        let t0 = std::time::Instant::now();
        let taken = (0..5).filter(|_| b.take("p", 2.0, 3.0, t0).0).count();
        assert_eq!(taken, 3);
        // Half a second at 2 a second is one more token, and no more.
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.take("p", 2.0, 3.0, t1).0);
        assert!(!b.take("p", 2.0, 3.0, t1).0);
        // Another partner has its own bucket.
        assert!(b.take("q", 2.0, 3.0, t1).0);
    }

    #[test]
    fn retry_after_is_whole_seconds_until_a_token() {
        assert_eq!(retry_after_secs(0.0, 2.0), 1);
        assert_eq!(retry_after_secs(0.0, 0.25), 4);
    }
}
