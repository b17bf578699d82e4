//! What the rules read from the person's SCIM user beyond conditions: the partner-sent end
//! of access and group display names, both matched as SCIM matches names and values.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::scim_core::schema::GUEST_SCHEMA;
use crate::scim_core::text::member_ci;

/// The partner-sent end of access: the guest extension's `accessEndDate`, an RFC 3339
/// date-time, or a plain date meaning the end of that day, UTC. Anything else is ignored.
pub(super) fn partner_end_date(user: &Value) -> Option<DateTime<Utc>> {
    let text = member_ci(member_ci(user, GUEST_SCHEMA)?, "accessEndDate")?.as_str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()?
        .succ_opt()?
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
}

/// The person's own sponsor, the guest extension's `sponsorEmail`, when it looks like an
/// address.
pub(super) fn partner_sponsor(user: &Value) -> Option<String> {
    let text = member_ci(member_ci(user, GUEST_SCHEMA)?, "sponsorEmail")?
        .as_str()?
        .trim();
    let (local, domain) = text.split_once('@')?;
    (!local.is_empty() && domain.contains('.') && !text.contains(char::is_whitespace))
        .then(|| text.to_string())
}

/// Whether one of the user's `groups` has a `display` equal to one of `wanted`, ignoring
/// case.
pub(super) fn in_any_group(groups: &[Value], wanted: &[String]) -> bool {
    groups.iter().any(|g| {
        member_ci(g, "display")
            .and_then(Value::as_str)
            .is_some_and(|display| wanted.iter().any(|w| eq_ignore_case(display, w)))
    })
}

/// Unicode case-insensitive equality without allocating.
fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
        || (!(a.is_ascii() && b.is_ascii())
            && a.chars()
                .flat_map(char::to_lowercase)
                .eq(b.chars().flat_map(char::to_lowercase)))
}
