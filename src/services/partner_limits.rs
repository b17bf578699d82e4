//! A partner's quotas and allow-lists applied to the people it sends (`[[partner]]` keys
//! `allowed_email_domains`, `max_people`, `kept_attributes`): SCIM writes and CSV rows meet
//! them in `users`, before anything is written.

use serde_json::{Map, Value};

use super::ServiceError;
use crate::domain::Partner;
use crate::mapping::PartnerLimits;
use crate::scim_core::error::ScimError;
use crate::scim_core::minimise;
use crate::store::partners as partner_store;
use crate::store::users as user_store;
use crate::store::work::Work;

/// The domain of an address: what follows its last `@`, lower-cased.
fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

/// Every e-mail address of `doc` must be at one of the partner's allowed domains; otherwise
/// 400 `invalidValue` naming the domain (the address itself stays out of the message, which
/// is logged).
pub fn check_email_domains(
    limits: &PartnerLimits,
    partner: &Partner,
    doc: &Map<String, Value>,
) -> Result<(), ScimError> {
    let Some(allowed) = &limits.allowed_email_domains else {
        return Ok(());
    };
    let addresses = doc
        .get("emails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("value").and_then(Value::as_str));
    for address in addresses {
        let domain = domain_of(address);
        if domain.as_ref().is_some_and(|d| allowed.contains(d)) {
            continue;
        }
        let shown = domain.unwrap_or_else(|| "(none)".into());
        return Err(ScimError::invalid_value(format!(
            "e-mail domain \"{shown}\" is not one partner {} may invite (allowed_email_domains: {}); \
             nothing was written",
            partner.slug,
            allowed.join(", ")
        )));
    }
    Ok(())
}

/// Drop what the partner's `kept_attributes` does not list from a normalised document.
pub fn minimise(limits: &PartnerLimits, doc: &mut Map<String, Value>) {
    if let Some(paths) = &limits.kept_attributes {
        minimise::minimise(doc, &minimise::parse_all(paths));
    }
}

/// Whether one more active person fits the partner's `max_people`, decided in `w` with the
/// partner's row locked, so concurrent creates are counted one after the other.
///
/// Refused with 400 and no `scimType`: RFC 7644 §3.12 keeps 409 for a duplicate or a
/// version mismatch (clients such as Okta then look the person up as existing), 403 for
/// what the credentials may not do, and none of its `scimType` keywords names a quota.
pub(crate) async fn check_room(
    w: &mut Work,
    limits: &PartnerLimits,
    partner: &Partner,
) -> Result<(), ServiceError> {
    let Some(max) = limits.max_people else {
        return Ok(());
    };
    let conn = w.conn().await?;
    partner_store::lock(conn, &partner.id).await?;
    let active = user_store::count_active(conn, &partner.id).await?;
    if active < i64::from(max) {
        return Ok(());
    }
    Err(ScimError::new(
        400,
        None,
        format!(
            "partner {} already has {active} active people, its limit (max_people {max}); \
             this person was not created. Deactivate someone or ask the identity admins to \
             raise the limit",
            partner.slug
        ),
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::domain_of;

    #[test]
    fn the_domain_is_after_the_last_at_sign_lower_cased() {
        assert_eq!(
            domain_of("a@b@Acme.Example").as_deref(),
            Some("acme.example")
        );
        assert_eq!(domain_of("nobody"), None);
        assert_eq!(domain_of("x@"), None);
    }
}
