//! Which console role a person signing in through the organisation's identity provider gets,
//! from the groups the provider says they are in. The settings list `group=role` pairs in
//! order; the first pair whose group the person is in decides, so an operator lists the
//! more powerful groups first. A partner-admin pair names its partner
//! (`acme-hr=partner-admin:acme`); a sponsor's scope is the person's verified e-mail.

use std::fmt;

use super::{AdminRole, PartnerSlug};

/// One allowed group and the role its members get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRole {
    /// The group as the provider names it in the groups claim (compared exactly).
    pub group: String,
    pub role: AdminRole,
    /// The partner a partner-admin group is bound to.
    pub partner: Option<PartnerSlug>,
}

impl fmt::Display for GroupRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.group, self.role)?;
        if let Some(p) = &self.partner {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

impl GroupRole {
    /// Parse one `group=role` or `group=partner-admin:SLUG` pair.
    pub fn parse(pair: &str) -> Result<Self, String> {
        let (group, role_text) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not group=role"))?;
        let group = group.trim();
        if group.is_empty() {
            return Err(format!("{pair:?} has no group name"));
        }
        let (role_text, partner) = match role_text.trim().split_once(':') {
            Some((r, p)) => (r, Some(p.trim())),
            None => (role_text.trim(), None),
        };
        let role: AdminRole = role_text.parse().map_err(|e| format!("{pair:?}: {e}"))?;
        let partner = match (role, partner) {
            (AdminRole::PartnerAdmin, Some(p)) => {
                Some(PartnerSlug::parse(p).map_err(|e| format!("{pair:?}: partner {p:?}: {e}"))?)
            }
            (AdminRole::PartnerAdmin, None) => {
                return Err(format!(
                    "{pair:?}: a partner-admin group names its partner (partner-admin:SLUG)"
                ))
            }
            (_, Some(_)) => {
                return Err(format!(
                    "{pair:?}: only partner-admin takes a partner (\":SLUG\")"
                ))
            }
            (_, None) => None,
        };
        Ok(GroupRole {
            group: group.to_string(),
            role,
            partner,
        })
    }

    /// Parse a comma-separated list of pairs; empty entries are ignored.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        text.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Self::parse)
            .collect()
    }
}

/// The first allowed group (in the settings' order) the person is in, if any.
pub fn role_for_groups<'a, S: AsRef<str>>(
    allowed: &'a [GroupRole],
    groups: &[S],
) -> Option<&'a GroupRole> {
    allowed
        .iter()
        .find(|a| groups.iter().any(|g| g.as_ref() == a.group))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_with_their_partner_and_round_trip() {
        let list = GroupRole::parse_list(
            "gb-admins=admin, gb-auditors=auditor,acme-hr=partner-admin:acme,gb-sponsors=sponsor,",
        )
        .unwrap();
        assert_eq!(list.len(), 4);
        assert_eq!(list[2].role, AdminRole::PartnerAdmin);
        assert_eq!(list[2].partner.as_ref().map(|p| p.as_str()), Some("acme"));
        assert_eq!(list[2].to_string(), "acme-hr=partner-admin:acme");
        assert_eq!(list[3].role, AdminRole::Sponsor);
    }

    #[test]
    fn bad_pairs_say_what_is_wrong() {
        for (text, expect) in [
            ("gb-admins", "not group=role"),
            ("=admin", "no group name"),
            ("x=root", "role must be one of"),
            ("x=partner-admin", "names its partner"),
            ("x=admin:acme", "only partner-admin"),
            ("x=partner-admin:Not A Slug", "partner"),
        ] {
            let err = GroupRole::parse(text).unwrap_err();
            assert!(err.contains(expect), "{text}: {err}");
        }
    }

    #[test]
    fn the_first_listed_group_the_person_is_in_decides() {
        let list = GroupRole::parse_list("gb-admins=admin,gb-auditors=auditor").unwrap();
        let both = ["gb-auditors", "gb-admins"];
        assert_eq!(
            role_for_groups(&list, &both).map(|g| g.role),
            Some(AdminRole::Admin)
        );
        assert_eq!(
            role_for_groups(&list, &["gb-auditors"]).map(|g| g.role),
            Some(AdminRole::Auditor)
        );
        // Exact names: no case folding, no prefix matching.
        assert!(role_for_groups(&list, &["GB-ADMINS", "gb-admins-x"]).is_none());
        assert!(role_for_groups::<&str>(&list, &[]).is_none());
    }
}
