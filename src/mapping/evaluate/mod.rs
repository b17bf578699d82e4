//! Deciding for one person: which rules match, the grants they give after the partner's
//! policy, each grant's end and the bound that set it, MFA, sponsor, template, language and
//! approval ([`RuleSet::evaluate`]); and the same with the reasoning for every rule
//! ([`RuleSet::explain`]). Both run one code path so an explanation never disagrees with a
//! decision. The semantics are documented in `mappings/README.md`.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use super::condition;
use super::model::{
    Approval, Check, DecidedGrant, Decision, EndSource, Explanation, PartnerPolicy, Person, Rule,
    RuleExplanation, RuleSet,
};
use crate::scim_core::text::member_ci;
use person::{in_any_group, partner_end_date, partner_sponsor};

mod person;

impl RuleSet {
    /// What the rules decide for `person`.
    pub fn evaluate(&self, person: &Person<'_>) -> Decision {
        self.decide(person, None)
    }

    /// [`RuleSet::evaluate`] plus, for every rule in load order, how it fared.
    pub fn explain(&self, person: &Person<'_>) -> Explanation {
        let mut rules = Vec::with_capacity(self.rules.len());
        let decision = self.decide(person, Some(&mut rules));
        Explanation { rules, decision }
    }

    fn decide(
        &self,
        person: &Person<'_>,
        mut explanations: Option<&mut Vec<RuleExplanation>>,
    ) -> Decision {
        let policy = self.partners.iter().find(|p| p.slug == person.partner);
        let mut decision = Decision {
            grants: Vec::new(),
            matched_rules: Vec::new(),
            mfa_required: policy.is_some_and(|p| p.mfa),
            sponsor: None,
            sponsor_from: None,
            template: None,
            language: None,
            approval: policy.map_or(Approval::Auto, |p| p.approval),
        };
        let groups = match member_ci(person.user, "groups") {
            Some(Value::Array(groups)) => groups.as_slice(),
            _ => &[],
        };
        let bounds = Bounds {
            start: person.start,
            partner_end: partner_end_date(person.user),
            partner_max: policy
                .and_then(|p| p.max_access_days)
                .and_then(|days| add_days(person.start, days)),
        };
        for rule in &self.rules {
            let explaining = explanations.is_some();
            let applies = rule
                .partners
                .as_ref()
                .is_none_or(|slugs| slugs.iter().any(|s| s == person.partner));
            // Without an explanation to fill, stop at the first failed requirement.
            let in_groups = if applies || explaining {
                rule.groups
                    .as_ref()
                    .map(|wanted| in_any_group(groups, wanted))
            } else {
                None
            };
            let condition_matched = if (applies && in_groups != Some(false)) || explaining {
                rule.condition
                    .as_ref()
                    .map(|c| condition::holds(c, person.user))
            } else {
                None
            };
            let matched = applies && in_groups != Some(false) && condition_matched != Some(false);
            let first_grant = decision.grants.len();
            let mut dropped = Vec::new();
            if matched {
                apply(
                    rule,
                    policy,
                    &bounds,
                    &mut decision,
                    &mut dropped,
                    explaining,
                );
            }
            if let Some(out) = explanations.as_deref_mut() {
                let checks = rule.condition.as_ref().map_or_else(Vec::new, |c| {
                    condition::leaves(c)
                        .into_iter()
                        .map(|leaf| Check {
                            expression: condition::leaf_text(leaf),
                            result: condition::holds(leaf, person.user),
                        })
                        .collect()
                });
                out.push(RuleExplanation {
                    rule_id: rule.id.clone(),
                    file: rule.file.clone(),
                    line: rule.line,
                    applies_to_partner: applies,
                    in_groups,
                    condition: rule.condition_text.clone(),
                    condition_matched,
                    checks,
                    matched,
                    grants: decision.grants[first_grant..].to_vec(),
                    dropped,
                });
            }
        }
        // The person's own sponsor (sent by their partner, or typed by the admin who invited
        // them by hand) is more specific than a rule's default for everyone it matches.
        if let Some(own) = partner_sponsor(person.user) {
            decision.sponsor = Some(own);
            decision.sponsor_from = Some("sponsorEmail".into());
        }
        decision
    }
}

/// The bounds that do not depend on the rule.
struct Bounds {
    start: DateTime<Utc>,
    partner_end: Option<DateTime<Utc>>,
    partner_max: Option<DateTime<Utc>>,
}

impl Bounds {
    /// The earliest bound that applies to `rule`'s grants and which one it is; on a tie the
    /// first in the order rule duration, rule end date, partner end date, partner maximum.
    fn end_for(&self, rule: &Rule) -> (Option<DateTime<Utc>>, Option<EndSource>) {
        let candidates = [
            (
                rule.access_days.and_then(|d| add_days(self.start, d)),
                EndSource::RuleDuration,
            ),
            (rule.access_until, EndSource::RuleEndDate),
            (
                self.partner_end.filter(|_| rule.use_partner_end_date),
                EndSource::PartnerEndDate,
            ),
            (self.partner_max, EndSource::PartnerMaximum),
        ];
        let mut best: (Option<DateTime<Utc>>, Option<EndSource>) = (None, None);
        for (end, source) in candidates {
            if let Some(end) = end {
                if best.0.is_none_or(|b| end < b) {
                    best = (Some(end), Some(source));
                }
            }
        }
        best
    }
}

/// Adds a matched rule's contribution to the decision.
fn apply(
    rule: &Rule,
    policy: Option<&PartnerPolicy>,
    bounds: &Bounds,
    decision: &mut Decision,
    dropped: &mut Vec<String>,
    explaining: bool,
) {
    decision.matched_rules.push(rule.id.clone());
    decision.mfa_required |= rule.mfa == Some(true);
    if decision.sponsor.is_none() && rule.sponsor.is_some() {
        decision.sponsor.clone_from(&rule.sponsor);
        decision.sponsor_from = Some(format!("rule {}", rule.id));
    }
    first_set(&mut decision.template, &rule.template);
    first_set(&mut decision.language, &rule.language);
    let (valid_until, ends_by) = bounds.end_for(rule);
    for grant in &rule.grants {
        if let Some(policy) = policy.filter(|p| !p.allows_app(&grant.app)) {
            if explaining {
                dropped.push(format!(
                    "{} / {}: partner \"{}\" does not allow app \"{}\" (allowed_apps)",
                    grant.app, grant.role, policy.slug, grant.app
                ));
            }
            continue;
        }
        decision.grants.push(DecidedGrant {
            app: grant.app.clone(),
            role: grant.role.clone(),
            rule_id: rule.id.clone(),
            valid_until,
            ends_by,
        });
    }
}

fn first_set(slot: &mut Option<String>, value: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(value);
    }
}

fn add_days(start: DateTime<Utc>, days: u32) -> Option<DateTime<Utc>> {
    start.checked_add_signed(TimeDelta::days(days.into()))
}

#[cfg(test)]
mod tests;
