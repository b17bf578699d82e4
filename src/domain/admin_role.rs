//! Who may do what in the admin API and console: a role, and for the narrow roles the scope
//! they are bound to. Tokens and logins carry the same principal, so one set of checks
//! serves scripts and people.

use std::fmt;
use std::str::FromStr;

/// An admin principal's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminRole {
    /// Everything.
    Admin,
    /// Reads everything (and exports the audit log); changes nothing.
    Auditor,
    /// One partner's guests, imports and partner tokens.
    PartnerAdmin,
    /// Reads and acts on (approve, re-invite) the guests whose sponsor they are.
    Sponsor,
}

impl AdminRole {
    pub const ALL: [AdminRole; 4] = [
        AdminRole::Admin,
        AdminRole::Auditor,
        AdminRole::PartnerAdmin,
        AdminRole::Sponsor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Admin => "admin",
            AdminRole::Auditor => "auditor",
            AdminRole::PartnerAdmin => "partner-admin",
            AdminRole::Sponsor => "sponsor",
        }
    }
}

impl fmt::Display for AdminRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role must be one of admin, auditor, partner-admin, sponsor (not {0:?})")]
pub struct UnknownRole(pub String);

impl FromStr for AdminRole {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AdminRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// What a principal is bound to beside its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminScope {
    /// Admin and auditor: every partner.
    Everything,
    /// Partner-admin: this partner's id.
    Partner(String),
    /// Sponsor: this sponsor e-mail, lower-cased.
    Sponsor(String),
}

/// How a principal authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    Token,
    Login,
}

/// An authenticated admin principal: its id (token or login id), role and scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPrincipal {
    pub kind: PrincipalKind,
    pub id: String,
    pub role: AdminRole,
    pub scope: AdminScope,
}

impl AdminPrincipal {
    /// The audit log's actor: the role and an id, never a name or an address
    /// (`admin:ID` for tokens as before, `admin:login:ID` for people).
    pub fn actor_label(&self) -> String {
        match self.kind {
            PrincipalKind::Token => format!("{}:{}", self.role, self.id),
            PrincipalKind::Login => format!("{}:login:{}", self.role, self.id),
        }
    }

    /// The scope a role requires, from what was stored with it; None when they do not fit
    /// (a partner-admin without a partner, a scope on a role that has none).
    pub fn scope_for(
        role: AdminRole,
        partner_id: Option<String>,
        sponsor_email: Option<String>,
    ) -> Option<AdminScope> {
        match (role, partner_id, sponsor_email) {
            (AdminRole::Admin | AdminRole::Auditor, None, None) => Some(AdminScope::Everything),
            (AdminRole::PartnerAdmin, Some(p), None) => Some(AdminScope::Partner(p)),
            (AdminRole::Sponsor, None, Some(s)) => Some(AdminScope::Sponsor(s.to_lowercase())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_scopes_fit_their_role() {
        for r in AdminRole::ALL {
            assert_eq!(r.as_str().parse::<AdminRole>(), Ok(r));
        }
        assert!("root".parse::<AdminRole>().is_err());
        assert_eq!(
            AdminPrincipal::scope_for(AdminRole::Sponsor, None, Some("A@B.example".into())),
            Some(AdminScope::Sponsor("a@b.example".into()))
        );
        assert_eq!(
            AdminPrincipal::scope_for(AdminRole::PartnerAdmin, None, None),
            None
        );
        assert_eq!(
            AdminPrincipal::scope_for(AdminRole::Admin, Some("p".into()), None),
            None
        );
    }
}
