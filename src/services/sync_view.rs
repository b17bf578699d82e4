//! The outbound sync queue as the console's sync page shows it: every configured target's
//! counts and lag, and one page of dead letters.

use super::{Deps, ServiceError};
use crate::store::sync_console::{self, DeadLetter, TargetCounts};

/// Most dead letters on one page.
pub const MAX_DEAD_PAGE: i64 = 50;

/// One target's standing; `lag_ms` is the age of its oldest pending event.
#[derive(Debug, Clone)]
pub struct TargetView {
    pub counts: TargetCounts,
    pub lag_ms: Option<i64>,
}

/// A page of dead letters and the key the next page starts after.
#[derive(Debug, Clone)]
pub struct DeadPage {
    pub items: Vec<DeadLetter>,
    pub next: Option<String>,
}

/// A dead-letter cursor: `dead_at:id`, as `dead_letters` returns it.
fn parse_cursor(cursor: &str) -> Result<(i64, String), ServiceError> {
    let bad = || {
        ServiceError::Invalid(crate::scim_core::error::ScimError::invalid_value(
            "cursor is not one this page returned".to_string(),
        ))
    };
    let (at, id) = cursor.split_once(':').ok_or_else(bad)?;
    let at = at.parse::<i64>().map_err(|_| bad())?;
    if id.is_empty() || id.len() > 64 {
        return Err(bad());
    }
    Ok((at, id.to_string()))
}

/// Every configured target (also those with no events yet), in settings order, plus any
/// target that still has events but is no longer configured.
pub async fn targets(deps: &Deps) -> Result<Vec<TargetView>, ServiceError> {
    let mut conn = deps.db.pool().acquire().await?;
    let counts = sync_console::counts(&mut conn).await?;
    let now = deps.now_ms();
    let mut names: Vec<String> = deps.portal.sync_targets.clone();
    for c in &counts {
        if !names.contains(&c.target) {
            names.push(c.target.clone());
        }
    }
    Ok(names
        .into_iter()
        .map(|name| {
            let counts =
                counts
                    .iter()
                    .find(|c| c.target == name)
                    .cloned()
                    .unwrap_or(TargetCounts {
                        target: name,
                        ..TargetCounts::default()
                    });
            let lag_ms = counts.oldest_pending.map(|t| (now - t).max(0));
            TargetView { counts, lag_ms }
        })
        .collect())
}

/// Dead letters not yet replayed, newest first, `limit` (1 to 50) after `cursor`.
pub async fn dead_letters(
    deps: &Deps,
    cursor: Option<&str>,
    limit: i64,
) -> Result<DeadPage, ServiceError> {
    let limit = limit.clamp(1, MAX_DEAD_PAGE);
    let before = cursor.map(parse_cursor).transpose()?;
    let mut conn = deps.db.pool().acquire().await?;
    let items = sync_console::dead_page(
        &mut conn,
        before.as_ref().map(|(t, id)| (*t, id.as_str())),
        limit,
    )
    .await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|d| format!("{}:{}", d.dead_at, d.id)))
        .flatten();
    Ok(DeadPage { items, next })
}
