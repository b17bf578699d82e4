//! The types of the mapping rules: what `mappings/*.toml` declares once loaded and checked
//! ([`RuleSet`], [`App`], [`PartnerPolicy`], [`Rule`], [`GrantSpec`]), the person a rule set
//! is evaluated for ([`Person`]), and what evaluation decides and explains ([`Decision`],
//! [`DecidedGrant`], [`Explanation`]). Loading lives in `load.rs`, evaluation in
//! `evaluate/`; these types carry no behaviour beyond small accessors.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::scim_core::filter::Filter;

/// Every app, partner policy and rule of a mappings directory, in load order (file name,
/// then position in the file).
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub apps: Vec<App>,
    pub partners: Vec<PartnerPolicy>,
    pub rules: Vec<Rule>,
    /// Hex SHA-256 over the sorted (file name, content) pairs the set was loaded from, for
    /// audit: equal fingerprints mean byte-identical rule files.
    pub fingerprint: String,
    /// The (file name, content) pairs it was loaded from, sorted by name: what a reload
    /// publishes for the other instances to load.
    pub sources: Vec<(String, String)>,
}

/// An application guests can be granted, shown on their access panel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct App {
    pub id: String,
    pub name: String,
    pub description: String,
    pub launch_url: String,
    pub roles: Vec<String>,
    pub icon: Option<String>,
    /// Set when the app signs guests in with OpenID Connect.
    pub oidc: Option<OidcClient>,
}

/// An app's OpenID Connect client registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OidcClient {
    pub client_id: String,
    /// Compared exactly, character for character (OAuth 2.0 Security BCP).
    pub redirect_uris: Vec<String>,
    /// A public client (a single-page or native app) has no secret and must use PKCE.
    pub public: bool,
    /// Hex SHA-256 of a confidential client's secret: the secret itself is never in a file.
    #[serde(skip_serializing)]
    pub secret_sha256: Option<String>,
    pub scopes: Vec<String>,
    /// Where the access panel's launch button starts the app's own OIDC login.
    pub initiate_login_uri: Option<String>,
    pub post_logout_redirect_uris: Vec<String>,
}

/// The scopes a client may ask for when its file names none.
pub const OIDC_SCOPES: &[&str] = &["openid", "email", "profile", "roles", "offline_access"];

/// Whether a partner's new guests are invited at once or wait for an administrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// Invite at once.
    #[default]
    Auto,
    /// Pending until an administrator approves.
    Admin,
}

impl Approval {
    /// The keyword used in rule files and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Approval::Auto => "auto",
            Approval::Admin => "admin",
        }
    }
}

/// What the host organisation allows one partner's guests, whatever the rules say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartnerPolicy {
    pub slug: String,
    /// Longest any grant may last, counted from the start of access.
    pub max_access_days: Option<u32>,
    /// Apps this partner's guests may get; `None` means every app.
    pub allowed_apps: Option<Vec<String>>,
    pub approval: Approval,
    /// Every guest of this partner must use multi-factor authentication.
    pub mfa: bool,
    /// Whether an e-mailed code may stand in for the authenticator app. Even then it is
    /// refused in a session that began from an e-mailed link, where the mailbox would be both
    /// factors. Off by default.
    pub mfa_email_fallback: bool,
    /// `mfa = "passkey"`: only a passkey passes MFA (the authenticator app's code does not).
    pub mfa_passkey: bool,
    /// Most people this partner's SCIM client may deactivate or delete in an hour; past it,
    /// such requests are refused (429) until the hour has passed or the limit is raised, so
    /// that a misconfigured HR feed cannot remove every guest's access at once. `None`: no
    /// limit.
    pub max_deactivations_per_hour: Option<u32>,
    /// Days without activity (portal sign-in, OIDC tokens, forward-auth) before an active
    /// guest is suspended as inactive; `None`: the `inactivity_days` setting.
    pub inactive_days: Option<u32>,
    /// Days a guest suspended as inactive stays so before removal; `None`: never removed.
    pub inactive_remove_after_days: Option<u32>,
    /// What this partner may send us and how fast (quotas and allow-lists).
    pub limits: PartnerLimits,
}

/// A partner's quotas and allow-lists (`None`: no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PartnerLimits {
    /// Lower-cased domains every e-mail address of this partner's people must be at (exact
    /// match: a subdomain is another domain).
    pub allowed_email_domains: Option<Vec<String>>,
    /// Most active people this partner may have; a create beyond it is refused.
    pub max_people: Option<u32>,
    /// The attributes kept from this partner's writes (data minimisation), as SCIM paths
    /// (`emails`, `name.givenName`, `URN:attr`); the identifying ones are always kept.
    pub kept_attributes: Option<Vec<String>>,
    /// SCIM requests per second this partner may send (token bucket refill rate).
    pub scim_requests_per_second: Option<u32>,
    /// Requests the bucket holds (sent at once after a quiet spell); the rate when unset.
    pub scim_burst: Option<u32>,
}

impl PartnerPolicy {
    /// The policy of a partner that has no `[[partner]]` entry: auto approval, no cap, all
    /// apps, no MFA requirement.
    pub fn default_for(slug: &str) -> Self {
        Self {
            slug: slug.to_string(),
            max_access_days: None,
            allowed_apps: None,
            approval: Approval::Auto,
            mfa: false,
            mfa_email_fallback: false,
            mfa_passkey: false,
            max_deactivations_per_hour: None,
            inactive_days: None,
            inactive_remove_after_days: None,
            limits: PartnerLimits::default(),
        }
    }

    /// Whether guests of this partner may be granted `app`.
    pub fn allows_app(&self, app: &str) -> bool {
        self.allowed_apps
            .as_ref()
            .is_none_or(|apps| apps.iter().any(|a| a == app))
    }
}

/// One `[[rule]]`: who it applies to and what it grants.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: Option<String>,
    /// Partner slugs the rule applies to; `None` means every partner.
    pub partners: Option<Vec<String>>,
    /// The condition with every attribute path resolved against the User schema: unqualified
    /// extension attributes carry their extension URN and names have their schema spelling.
    pub condition: Option<Filter>,
    /// The condition as written in the file.
    pub condition_text: Option<String>,
    /// Group display names, one of which the person must be a member of (case-insensitive).
    pub groups: Option<Vec<String>>,
    pub grants: Vec<GrantSpec>,
    pub access_days: Option<u32>,
    /// End of access: a date in the file means the end of that day, UTC.
    pub access_until: Option<DateTime<Utc>>,
    pub use_partner_end_date: bool,
    pub sponsor: Option<String>,
    pub mfa: Option<bool>,
    pub template: Option<String>,
    pub language: Option<String>,
    /// File name the rule was loaded from.
    pub file: String,
    /// 1-based line of the rule's `[[rule]]` header.
    pub line: usize,
}

/// One app role a rule grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantSpec {
    pub app: String,
    pub role: String,
}

/// The person a rule set is evaluated for.
#[derive(Debug, Clone, Copy)]
pub struct Person<'a> {
    /// The partner's slug.
    pub partner: &'a str,
    /// The SCIM User JSON, including the optional `groups` (`[{"value", "display"}]`) and
    /// extensions under their URN keys.
    pub user: &'a serde_json::Value,
    /// When access starts: the invitation time, or now for a new guest.
    pub start: DateTime<Utc>,
}

/// One app role granted by one rule, with its end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecidedGrant {
    pub app: String,
    pub role: String,
    pub rule_id: String,
    /// `None`: no bound applies.
    pub valid_until: Option<DateTime<Utc>>,
    /// Which bound set `valid_until`.
    pub ends_by: Option<EndSource>,
}

/// The bound that ends a grant (the earliest of those that apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndSource {
    /// The rule's `access_days` from the start of access.
    RuleDuration,
    /// The rule's `access_until`.
    RuleEndDate,
    /// The partner-sent `accessEndDate` of the guest extension.
    PartnerEndDate,
    /// The partner policy's `max_access_days` from the start of access.
    PartnerMaximum,
}

/// What the rules decide for one person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// One entry per (app, role, rule), in rule order then grant order.
    pub grants: Vec<DecidedGrant>,
    /// Ids of the rules that matched, in load order.
    pub matched_rules: Vec<String>,
    pub mfa_required: bool,
    pub sponsor: Option<String>,
    /// Where the sponsor came from: `sponsorEmail` (the person's own) or `rule ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sponsor_from: Option<String>,
    pub template: Option<String>,
    pub language: Option<String>,
    pub approval: Approval,
}

impl Decision {
    /// The latest grant end; `None` when there are no grants or any grant is unbounded.
    pub fn access_until(&self) -> Option<DateTime<Utc>> {
        let mut latest: Option<DateTime<Utc>> = None;
        for grant in &self.grants {
            let end = grant.valid_until?;
            latest = Some(latest.map_or(end, |l| l.max(end)));
        }
        latest
    }

    /// Whether the person gets any grant, i.e. should be a guest.
    pub fn is_guest(&self) -> bool {
        !self.grants.is_empty()
    }
}

/// A decision with the reasoning for every rule, for `mappings explain` and the admin UI.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub rules: Vec<RuleExplanation>,
    pub decision: Decision,
}

/// How one rule fared for the person.
#[derive(Debug, Clone, Serialize)]
pub struct RuleExplanation {
    pub rule_id: String,
    pub file: String,
    pub line: usize,
    /// The rule's partner list includes the person's partner (or is absent).
    pub applies_to_partner: bool,
    /// `None` when the rule has no `groups` requirement.
    pub in_groups: Option<bool>,
    /// The condition as written; `None` when the rule has none.
    pub condition: Option<String>,
    /// `None` when the rule has no condition.
    pub condition_matched: Option<bool>,
    /// Each comparison of the condition (a comparison, `pr`, or a whole value path such as
    /// `emails[type eq "work"]`), in canonical text, and whether it held on its own (a
    /// comparison under `not` shows its own result, before negation).
    pub checks: Vec<Check>,
    pub matched: bool,
    /// What the rule contributes to the decision, after the partner policy (empty when the
    /// rule did not match).
    pub grants: Vec<DecidedGrant>,
    /// Grants removed by the partner's `allowed_apps`, each with the reason.
    pub dropped: Vec<String>,
}

/// One comparison of a condition and whether it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub expression: String,
    pub result: bool,
}
