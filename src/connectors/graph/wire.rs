//! The request bodies, filters and reply readings of Graph's users, invitations and groups.

use serde_json::{json, Value};

use crate::connectors::http::path_segment;
use crate::connectors::{DeliveryError, GuestSnapshot};

/// The address to invite: the email, else a user name that is an address.
pub(super) fn invitation_address(guest: &GuestSnapshot) -> Option<&str> {
    guest
        .email
        .as_deref()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| Some(guest.user_name.as_str()).filter(|u| u.contains('@')))
}

/// The display name: given, else given and family names, else the user name.
pub(super) fn display_name(guest: &GuestSnapshot) -> String {
    if let Some(name) = guest
        .display_name
        .as_deref()
        .filter(|n| !n.trim().is_empty())
    {
        return name.to_string();
    }
    let parts: Vec<&str> = [guest.given_name.as_deref(), guest.family_name.as_deref()]
        .into_iter()
        .flatten()
        .filter(|p| !p.trim().is_empty())
        .collect();
    if parts.is_empty() {
        guest.user_name.clone()
    } else {
        parts.join(" ")
    }
}

/// The `POST /invitations` body (Graph v1.0 invitation resource).
pub(super) fn invitation_body(guest: &GuestSnapshot, email: &str, redirect_url: &str) -> Value {
    json!({
        "invitedUserEmailAddress": email,
        "invitedUserDisplayName": display_name(guest),
        "inviteRedirectUrl": redirect_url,
        "sendInvitationMessage": false,
    })
}

/// The `$ref` body adding a directory object to a group.
pub(super) fn member_ref(base: &str, user_id: &str) -> Value {
    json!({ "@odata.id": format!("{base}/directoryObjects/{}", path_segment(user_id)) })
}

/// Guest users with this address; OData string literal: single quotes doubled.
pub(super) fn guest_mail_filter(email: &str) -> String {
    format!(
        "mail eq '{}' and userType eq 'Guest'",
        email.replace('\'', "''")
    )
}

/// A user with the guest's address that is not a guest (a member of the tenant's staff).
pub(super) fn member_conflict(email: &str, user_type: &str) -> DeliveryError {
    DeliveryError::permanent(format!(
        "a {} account already uses mail {email}; not adopting",
        user_type.to_lowercase()
    ))
}

pub(super) fn store_error(err: crate::store::DbError, user_id: &str) -> DeliveryError {
    if crate::store::is_unique_violation(&err) {
        DeliveryError::permanent(format!(
            "user {user_id} is already another guest's; not taking it over"
        ))
    } else {
        DeliveryError::transient(format!("ownership records: {err}"))
    }
}

/// Graph answers a second add with 400 "One or more added object references already exist".
pub(super) fn already_member(body: &[u8]) -> bool {
    String::from_utf8_lossy(body).contains("already exist")
}
