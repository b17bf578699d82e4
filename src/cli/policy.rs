//! `guestbridge policy preview`: the inactivity policy's plan, printed and changing nothing.
//! It is the plan the `deprovision` job acts on (`services::inactivity::plan`), so what is
//! listed as due is exactly what a run at that instant does.

use crate::clock::{from_millis, to_millis, to_rfc3339};
use crate::config::Settings;
use crate::services::inactivity::{self, Step};
use crate::services::Deps;

pub(super) async fn preview(
    deps: &Deps,
    settings: &Settings,
    partner: Option<&str>,
    now: Option<&str>,
    days: u32,
) -> anyhow::Result<()> {
    let now = match now {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| anyhow::anyhow!("--now {t:?} is not an RFC 3339 instant: {e}"))?
            .with_timezone(&chrono::Utc),
        None => chrono::Utc::now(),
    };
    if let Some(slug) = partner {
        let slug = crate::domain::PartnerSlug::parse(slug)
            .map_err(|e| anyhow::anyhow!("--partner: {e}"))?;
        crate::services::partners::find_partner(deps, &slug)
            .await
            .map_err(|_| anyhow::anyhow!("partner {slug} not found"))?;
    }
    let now_ms = to_millis(now);
    let until = now_ms + i64::from(days) * 86_400_000;
    let planned = inactivity::plan(deps, settings.jobs.inactivity_days, partner, until).await?;
    let mut tally = [[0usize; 2]; 2];
    for p in &planned {
        let due = p.due_at <= now_ms;
        tally[usize::from(!due)][usize::from(p.step == Step::Remove)] += 1;
        println!(
            "{} {} {} {} userName={} partner={} last_seen={}",
            to_rfc3339(from_millis(p.due_at)),
            if due { "due" } else { "upcoming" },
            p.step.as_str(),
            p.guest_id,
            p.user_name,
            p.partner,
            to_rfc3339(from_millis(p.last_seen_at)),
        );
    }
    println!(
        "at {}: due suspend={} remove={}; next {days} days suspend={} remove={}",
        to_rfc3339(now),
        tally[0][0],
        tally[0][1],
        tally[1][0],
        tally[1][1],
    );
    Ok(())
}
