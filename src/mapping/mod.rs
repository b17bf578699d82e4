//! Mapping rules: which of a partner's people become guests, with which app grants, until
//! when, and under which conditions (MFA, sponsor, invitation template and language). Rules
//! live in `mappings/*.toml` (format in `mappings/README.md`); [`load_dir`] reads and checks
//! them all, reporting every problem with its file and line, into a [`RuleSet`], and
//! [`RuleSet::evaluate`] / [`RuleSet::explain`] decide for one [`Person`]. Pure code: no
//! database, no HTTP, no clock (the caller passes the start of access).

mod condition;
mod entries;
mod evaluate;
mod load;
mod model;
mod raw;

pub use load::{is_plain_file_name, load_dir, load_sources, read_sources};
pub use model::{
    App, Approval, Check, DecidedGrant, Decision, EndSource, Explanation, GrantSpec, OidcClient,
    PartnerLimits, PartnerPolicy, Person, Rule, RuleExplanation, RuleSet, OIDC_SCOPES,
};

/// One problem in the rule files, e.g. `rules.toml:12: unknown app "ehr"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct MappingError {
    /// The file name (for a missing directory, the directory).
    pub file: String,
    /// 1-based line; 0 when the problem has no line (unreadable file or directory).
    pub line: usize,
    pub message: String,
}

impl RuleSet {
    /// No apps, partners or rules: nobody becomes a guest. Its fingerprint is that of an
    /// empty directory.
    pub fn empty() -> Self {
        Self {
            apps: Vec::new(),
            partners: Vec::new(),
            rules: Vec::new(),
            fingerprint: load::fingerprint(&[]),
            sources: Vec::new(),
        }
    }

    /// The app with this id.
    pub fn app(&self, id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.id == id)
    }

    /// The app registered as this OpenID Connect client.
    pub fn oidc_app(&self, client_id: &str) -> Option<&App> {
        self.apps
            .iter()
            .find(|a| a.oidc.as_ref().is_some_and(|c| c.client_id == client_id))
    }

    /// The partner's declared policy, or the defaults (auto approval, no cap, all apps, no
    /// MFA requirement) when it has no `[[partner]]` entry.
    pub fn policy(&self, partner_slug: &str) -> PartnerPolicy {
        self.declared_policy(partner_slug)
            .cloned()
            .unwrap_or_else(|| PartnerPolicy::default_for(partner_slug))
    }

    fn declared_policy(&self, partner_slug: &str) -> Option<&PartnerPolicy> {
        self.partners.iter().find(|p| p.slug == partner_slug)
    }

    /// Whether any rule depends on group memberships (a `groups` requirement, or a condition
    /// reading the `groups` attribute), so callers know to load them.
    pub fn uses_groups(&self) -> bool {
        self.rules.iter().any(|r| {
            r.groups.is_some() || r.condition.as_ref().is_some_and(condition::mentions_groups)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_displays_file_and_line() {
        let e = MappingError {
            file: "rules.toml".into(),
            line: 12,
            message: "unknown app \"ehr\"".into(),
        };
        assert_eq!(e.to_string(), "rules.toml:12: unknown app \"ehr\"");
    }

    #[test]
    fn empty_rule_set_decides_nothing() {
        let set = RuleSet::empty();
        assert!(set.app("x").is_none());
        assert_eq!(set.policy("acme"), PartnerPolicy::default_for("acme"));
        assert!(!set.uses_groups());
        assert_eq!(set.fingerprint, load_sources(&[]).unwrap().fingerprint);
    }
}
