//! What each admin role may do (`Need`) and which rows its scope shows: the checks every
//! admin API handler makes through `AdminCaller`, kept apart from how principals sign in.

use crate::domain::{AdminPrincipal, AdminRole, AdminScope};

/// What a role may do, beside the rows its scope lets it see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Read what the scope shows (every role).
    Read,
    /// Read partner-level data: imports, partner tokens (not sponsors).
    ReadPartner,
    /// Read what belongs to no partner: rules, sync queues, admin tokens (admin, auditor).
    ReadEverything,
    /// Approve and re-invite a visible guest (admin, partner-admin, sponsor).
    ActOnGuests,
    /// Other changes to a visible guest: void an invitation, reset MFA (admin, partner-admin).
    ManageGuests,
    /// Import rosters and revoke partner tokens of the scope's partner (admin, partner-admin).
    ManagePartner,
    /// Export the audit log (admin, auditor).
    AuditExport,
    /// Everything else that changes something: rules, sync, admin tokens (admin only).
    Write,
}

/// Whether the role may do what is needed (scope is checked separately).
pub fn allows(role: AdminRole, need: Need) -> bool {
    use AdminRole::*;
    match need {
        Need::Read => true,
        Need::ReadPartner => matches!(role, Admin | Auditor | PartnerAdmin),
        Need::ReadEverything | Need::AuditExport => matches!(role, Admin | Auditor),
        Need::ActOnGuests => matches!(role, Admin | PartnerAdmin | Sponsor),
        Need::ManageGuests | Need::ManagePartner => matches!(role, Admin | PartnerAdmin),
        Need::Write => role == Admin,
    }
}

/// Whether the principal's scope covers this partner's rows.
pub fn covers_partner(p: &AdminPrincipal, partner_id: &str) -> bool {
    match &p.scope {
        AdminScope::Everything => true,
        AdminScope::Partner(id) => id == partner_id,
        AdminScope::Sponsor(_) => false,
    }
}

/// Whether the principal's scope shows a guest of this partner with this sponsor.
pub fn sees_guest(p: &AdminPrincipal, partner_id: &str, sponsor: Option<&str>) -> bool {
    match &p.scope {
        AdminScope::Sponsor(email) => sponsor.is_some_and(|s| s.eq_ignore_ascii_case(email)),
        _ => covers_partner(p, partner_id),
    }
}
