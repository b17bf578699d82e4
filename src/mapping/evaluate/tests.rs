use super::*;
use crate::mapping::{load_dir, load_sources};
use crate::scim_core::schema::{ENTERPRISE_USER_SCHEMA, GUEST_SCHEMA};
use proptest::prelude::*;
use serde_json::json;

const BASE: &str = r#"
[[app]]
id = "ehr"
name = "EHR"
description = "Record"
launch_url = "https://ehr.example/"
roles = ["reader", "clinician"]

[[app]]
id = "rota"
name = "Rota"
description = "Shifts"
launch_url = "https://rota.example/"
roles = ["viewer", "scheduler"]

[[app]]
id = "pacs"
name = "PACS"
description = "Images"
launch_url = "https://pacs.example/"
roles = ["viewer"]

[[partner]]
slug = "st-mary"
max_access_days = 180
mfa = true

[[partner]]
slug = "northside"
approval = "admin"
max_access_days = 365
allowed_apps = ["ehr", "rota"]
"#;

fn set(rules: &str) -> RuleSet {
    let sources = [
        ("a.toml".to_string(), BASE.to_string()),
        ("r.toml".to_string(), rules.to_string()),
    ];
    match load_sources(&sources) {
        Ok(set) => set,
        Err(errors) => panic!("{errors:#?}"),
    }
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const START: &str = "2026-01-01T00:00:00Z";

fn nurse() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA],
        "userName": "ann@stmary.example",
        "title": "Senior Nurse",
        "active": true,
        ENTERPRISE_USER_SCHEMA: {"department": "Cardiology", "employeeNumber": "E-1"},
        GUEST_SCHEMA: {"homeOrganization": "St Mary Hospital"},
        "groups": [{"value": "g1", "display": "ICU Staff"}]
    })
}

fn decide(set: &RuleSet, partner: &str, user: &Value) -> Decision {
    set.evaluate(&Person {
        partner,
        user,
        start: t(START),
    })
}

fn grants(d: &Decision) -> Vec<(String, String, String)> {
    d.grants
        .iter()
        .map(|g| (g.app.clone(), g.role.clone(), g.rule_id.clone()))
        .collect()
}

fn triple(app: &str, role: &str, rule: &str) -> (String, String, String) {
    (app.into(), role.into(), rule.into())
}

#[test]
fn grants_unite_one_per_app_role_and_rule() {
    let set = set(r#"
[[rule]]
id = "everyone"
grants = [{ app = "ehr", role = "reader" }]

[[rule]]
id = "nurses"
condition = 'title co "nurse"'
grants = [{ app = "ehr", role = "reader" }, { app = "rota", role = "viewer" }]

[[rule]]
id = "physicians"
condition = 'title co "physician"'
grants = [{ app = "ehr", role = "clinician" }]
"#);
    let d = decide(&set, "acme", &nurse());
    assert_eq!(d.matched_rules, ["everyone", "nurses"]);
    assert_eq!(
        grants(&d),
        [
            triple("ehr", "reader", "everyone"),
            triple("ehr", "reader", "nurses"),
            triple("rota", "viewer", "nurses"),
        ]
    );
    assert!(d.is_guest());
    let nobody = set.rules.iter().skip(1).cloned().collect();
    let set = RuleSet {
        rules: nobody,
        ..set
    };
    let d = decide(&set, "acme", &json!({"userName": "x", "title": "Porter"}));
    assert!(!d.is_guest());
    assert!(d.matched_rules.is_empty());
    assert_eq!(d.access_until(), None);
}

#[test]
fn each_grant_ends_at_its_earliest_bound() {
    let set = set(r#"
[[rule]]
id = "duration"
access_days = 30
grants = [{ app = "ehr", role = "reader" }]

[[rule]]
id = "end-date"
access_days = 30
access_until = 2026-01-15
grants = [{ app = "rota", role = "viewer" }]

[[rule]]
id = "open"
grants = [{ app = "pacs", role = "viewer" }]

[[rule]]
id = "ignores-partner-date"
use_partner_end_date = false
access_days = 60
grants = [{ app = "ehr", role = "clinician" }]
"#);
    let end = |d: &Decision, rule: &str| {
        let g = d.grants.iter().find(|g| g.rule_id == rule).unwrap();
        (g.valid_until, g.ends_by)
    };
    // No partner policy, no partner date.
    let d = decide(&set, "acme", &nurse());
    assert_eq!(
        end(&d, "duration"),
        (
            Some(t("2026-01-31T00:00:00Z")),
            Some(EndSource::RuleDuration)
        )
    );
    assert_eq!(
        end(&d, "end-date"),
        (
            Some(t("2026-01-16T00:00:00Z")),
            Some(EndSource::RuleEndDate)
        )
    );
    assert_eq!(end(&d, "open"), (None, None));
    assert_eq!(d.access_until(), None, "an unbounded grant means no end");

    // The partner's maximum caps the unbounded grant (st-mary: 180 days).
    let d = decide(&set, "st-mary", &nurse());
    assert_eq!(
        end(&d, "open"),
        (
            Some(t("2026-06-30T00:00:00Z")),
            Some(EndSource::PartnerMaximum)
        )
    );
    assert_eq!(end(&d, "duration").1, Some(EndSource::RuleDuration));
    assert_eq!(d.access_until(), Some(t("2026-06-30T00:00:00Z")));

    // The partner-sent end date wins where it is earliest, unless the rule ignores it.
    let mut user = nurse();
    user[GUEST_SCHEMA]["accessEndDate"] = json!("2026-01-10T12:00:00+01:00");
    let d = decide(&set, "st-mary", &user);
    for rule in ["duration", "end-date", "open"] {
        assert_eq!(
            end(&d, rule),
            (
                Some(t("2026-01-10T11:00:00Z")),
                Some(EndSource::PartnerEndDate)
            ),
            "{rule}"
        );
    }
    assert_eq!(
        end(&d, "ignores-partner-date"),
        (
            Some(t("2026-03-02T00:00:00Z")),
            Some(EndSource::RuleDuration)
        )
    );
    assert_eq!(d.access_until(), Some(t("2026-03-02T00:00:00Z")));

    // A plain date is the end of that day; nonsense is ignored.
    user[GUEST_SCHEMA]["accessEndDate"] = json!("2026-01-20");
    let d = decide(&set, "acme", &user);
    assert_eq!(
        end(&d, "open"),
        (
            Some(t("2026-01-21T00:00:00Z")),
            Some(EndSource::PartnerEndDate)
        )
    );
    user[GUEST_SCHEMA]["accessEndDate"] = json!("soon");
    let d = decide(&set, "acme", &user);
    assert_eq!(end(&d, "open"), (None, None));
}

#[test]
fn ties_go_to_the_first_bound_in_order() {
    let set = set(r#"
[[rule]]
id = "same-as-cap"
access_days = 180
access_until = 2026-06-29
grants = [{ app = "ehr", role = "reader" }]
"#);
    let d = decide(&set, "st-mary", &nurse());
    assert_eq!(d.grants[0].valid_until, Some(t("2026-06-30T00:00:00Z")));
    assert_eq!(d.grants[0].ends_by, Some(EndSource::RuleDuration));
}

#[test]
fn partner_allowed_apps_drop_grants_and_explain_why() {
    let set = set(r#"
[[rule]]
id = "imaging"
grants = [{ app = "pacs", role = "viewer" }, { app = "ehr", role = "reader" }]
"#);
    let user = nurse();
    let person = Person {
        partner: "northside",
        user: &user,
        start: t(START),
    };
    let e = set.explain(&person);
    assert_eq!(grants(&e.decision), [triple("ehr", "reader", "imaging")]);
    assert_eq!(e.decision.matched_rules, ["imaging"]);
    assert_eq!(e.rules[0].grants, e.decision.grants);
    assert_eq!(
        e.rules[0].dropped,
        ["pacs / viewer: partner \"northside\" does not allow app \"pacs\" (allowed_apps)"]
    );
    assert_eq!(e.decision.approval, Approval::Admin);
    // Other partners keep it.
    assert_eq!(decide(&set, "st-mary", &user).grants.len(), 2);
    assert_eq!(decide(&set, "st-mary", &user).approval, Approval::Auto);
}

#[test]
fn strictest_mfa_wins() {
    let set = set(r#"
[[rule]]
id = "no-mfa"
mfa = false
grants = [{ app = "ehr", role = "reader" }]

[[rule]]
id = "physicians-mfa"
condition = 'title co "physician"'
mfa = true
grants = [{ app = "ehr", role = "clinician" }]
"#);
    let nurse = nurse();
    let physician = json!({"userName": "p", "title": "Physician"});
    assert!(!decide(&set, "acme", &nurse).mfa_required);
    assert!(decide(&set, "acme", &physician).mfa_required);
    // The partner requires it whatever the rules say.
    assert!(decide(&set, "st-mary", &nurse).mfa_required);
    assert!(!decide(&set, "northside", &nurse).mfa_required);
}

#[test]
fn sponsor_template_and_language_come_from_the_first_matched_rule_that_sets_them() {
    let set = set(r#"
[[rule]]
id = "not-matching"
condition = 'title eq "Porter"'
sponsor = "porters@hospital.example"
template = "porter"
language = "fr"
grants = [{ app = "ehr", role = "reader" }]

[[rule]]
id = "first"
template = "clinician"
grants = [{ app = "ehr", role = "reader" }]

[[rule]]
id = "second"
sponsor = "dr.grey@hospital.example"
template = "other"
language = "nl"
grants = [{ app = "rota", role = "viewer" }]

[[rule]]
id = "third"
sponsor = "dr.house@hospital.example"
language = "en"
grants = [{ app = "rota", role = "viewer" }]
"#);
    let d = decide(&set, "acme", &nurse());
    assert_eq!(d.matched_rules, ["first", "second", "third"]);
    assert_eq!(d.sponsor.as_deref(), Some("dr.grey@hospital.example"));
    assert_eq!(d.sponsor_from.as_deref(), Some("rule second"));
    assert_eq!(d.template.as_deref(), Some("clinician"));
    assert_eq!(d.language.as_deref(), Some("nl"));
}

#[test]
fn a_persons_own_sponsor_wins_over_the_rules_default() {
    let set = set(r#"
[[rule]]
id = "everyone"
sponsor = "dr.grey@hospital.example"
grants = [{ app = "ehr", role = "reader" }]
"#);
    let mut person = nurse();
    person[GUEST_SCHEMA] = serde_json::json!({"sponsorEmail": " Host@Hospital.example "});
    let d = decide(&set, "acme", &person);
    assert_eq!(d.sponsor.as_deref(), Some("Host@Hospital.example"));
    assert_eq!(d.sponsor_from.as_deref(), Some("sponsorEmail"));
    // Something that is not an address is not a sponsor: the rule's default stands.
    person[GUEST_SCHEMA] = serde_json::json!({"sponsorEmail": "the ward office"});
    let d = decide(&set, "acme", &person);
    assert_eq!(d.sponsor.as_deref(), Some("dr.grey@hospital.example"));
}

#[test]
fn partner_lists_restrict_rules() {
    let set = set(r#"
[[rule]]
id = "st-mary-only"
partners = ["st-mary", "acme"]
grants = [{ app = "ehr", role = "reader" }]
"#);
    assert!(decide(&set, "st-mary", &nurse()).is_guest());
    assert!(decide(&set, "acme", &nurse()).is_guest());
    assert!(!decide(&set, "northside", &nurse()).is_guest());
}

#[test]
fn groups_requirement_matches_display_names_case_insensitively() {
    let set = set(r#"
[[rule]]
id = "icu"
groups = ["icu staff", "Équipe Nuit"]
grants = [{ app = "rota", role = "scheduler" }]
"#);
    assert!(set.uses_groups());
    assert!(decide(&set, "acme", &nurse()).is_guest());
    let night = json!({"userName": "n", "groups": [{"value": "g9", "display": "ÉQUIPE NUIT"}]});
    assert!(decide(&set, "acme", &night).is_guest());
    let other = json!({"userName": "o", "groups": [{"value": "icu staff", "display": "Porters"}]});
    assert!(!decide(&set, "acme", &other).is_guest());
    let none = json!({"userName": "o"});
    assert!(!decide(&set, "acme", &none).is_guest());
}

#[test]
fn conditions_read_unqualified_extension_attributes() {
    let set = set(r#"
[[rule]]
id = "cardiology"
condition = 'department eq "cardiology" and employeeNumber sw "E-" and homeOrganization co "st mary"'
grants = [{ app = "ehr", role = "reader" }]

[[rule]]
id = "groups-in-condition"
condition = 'groups[display eq "icu staff"]'
grants = [{ app = "rota", role = "viewer" }]
"#);
    assert!(set.uses_groups());
    let d = decide(&set, "acme", &nurse());
    assert_eq!(d.matched_rules, ["cardiology", "groups-in-condition"]);
    // A top-level "department" is not the enterprise attribute.
    let wrong_place = json!({"userName": "x", "department": "Cardiology", "employeeNumber": "E-1"});
    assert!(decide(&set, "acme", &wrong_place).matched_rules.is_empty());
}

#[test]
fn inactive_people_are_evaluated_normally() {
    let set = set(r#"
[[rule]]
id = "nurses"
condition = 'title co "nurse"'
grants = [{ app = "ehr", role = "reader" }]
"#);
    let mut user = nurse();
    user["active"] = json!(false);
    assert_eq!(decide(&set, "acme", &user).matched_rules, ["nurses"]);
}

#[test]
fn explain_lists_every_rule_with_its_checks() {
    let set = set(r#"
[[rule]]
id = "cardiology-nurses"
condition = 'DEPARTMENT eq "Cardiology" and (title co "Nurse" or not (title co "Senior"))'
grants = [{ app = "ehr", role = "reader" }]
access_days = 90

[[rule]]
id = "northside-icu"
partners = ["northside"]
groups = ["ICU Staff"]
condition = 'emails[type eq "work"]'
grants = [{ app = "rota", role = "viewer" }]

[[rule]]
id = "everyone"
grants = [{ app = "pacs", role = "viewer" }]
"#);
    let user = nurse();
    let person = Person {
        partner: "st-mary",
        user: &user,
        start: t(START),
    };
    let e = set.explain(&person);
    assert_eq!(e.decision, set.evaluate(&person));
    assert_eq!(e.rules.len(), 3);

    let r = &e.rules[0];
    assert_eq!(
        (r.rule_id.as_str(), r.file.as_str(), r.line),
        ("cardiology-nurses", "r.toml", 2)
    );
    assert!(r.applies_to_partner && r.matched);
    assert_eq!(r.in_groups, None);
    assert_eq!(
        r.condition.as_deref(),
        Some(r#"DEPARTMENT eq "Cardiology" and (title co "Nurse" or not (title co "Senior"))"#)
    );
    assert_eq!(r.condition_matched, Some(true));
    let checks: Vec<(&str, bool)> = r
        .checks
        .iter()
        .map(|c| (c.expression.as_str(), c.result))
        .collect();
    assert_eq!(
        checks,
        [
            (r#"department eq "Cardiology""#, true),
            (r#"title co "Nurse""#, true),
            (r#"title co "Senior""#, true),
        ]
    );
    assert_eq!(r.grants.len(), 1);
    assert_eq!(r.grants[0].ends_by, Some(EndSource::RuleDuration));

    // Not for this partner: still explained in full, but not matched.
    let r = &e.rules[1];
    assert!(!r.applies_to_partner && !r.matched);
    assert_eq!(r.in_groups, Some(true));
    assert_eq!(r.condition_matched, Some(false));
    assert_eq!(
        r.checks,
        [Check {
            expression: r#"emails[type eq "work"]"#.into(),
            result: false
        }]
    );
    assert!(r.grants.is_empty() && r.dropped.is_empty());

    let r = &e.rules[2];
    assert!(r.matched);
    assert_eq!((r.condition.as_deref(), r.condition_matched), (None, None));
    assert!(r.checks.is_empty());
    assert_eq!(r.grants[0].ends_by, Some(EndSource::PartnerMaximum));

    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["decision"]["approval"], "auto");
    assert_eq!(json["decision"]["grants"][0]["ends_by"], "rule_duration");
    assert_eq!(
        json["decision"]["grants"][0]["valid_until"],
        "2026-04-01T00:00:00Z"
    );
    assert_eq!(json["decision"]["grants"][1]["ends_by"], "partner_maximum");
    assert_eq!(json["rules"][1]["in_groups"], true);
    assert_eq!(
        json["rules"][0]["checks"][0]["expression"],
        r#"department eq "Cardiology""#
    );
    assert_eq!(json["decision"]["mfa_required"], true);
}

#[test]
fn sample_mappings_decide_the_clinician_scenario() {
    let set = load_dir(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/mappings"
    )))
    .unwrap();
    // A St Mary cardiology nurse in the ICU group.
    let user = nurse();
    let d = decide(&set, "st-mary", &user);
    assert_eq!(d.matched_rules, ["cardiology-nurses", "icu-rota"]);
    assert_eq!(
        grants(&d),
        [
            triple("ehr-viewer", "reader", "cardiology-nurses"),
            triple("shift-scheduling", "viewer", "cardiology-nurses"),
            triple("shift-scheduling", "scheduler", "icu-rota"),
        ]
    );
    assert!(d.mfa_required, "St Mary requires MFA");
    assert_eq!(d.sponsor.as_deref(), Some("dr.grey@hospital.example"));
    assert_eq!(
        d.template, None,
        "the shipped rules use the standard invitation"
    );
    assert_eq!(d.approval, Approval::Auto);
    assert_eq!(d.grants[0].valid_until, Some(t("2026-04-01T00:00:00Z")));
    // The ICU pilot ends 2027-06-30 but St Mary caps at 180 days.
    assert_eq!(d.grants[2].ends_by, Some(EndSource::PartnerMaximum));

    // A Northside physician: imaging is not allowed for Northside.
    let physician = json!({"userName": "p@northside.example", "title": "Consultant Physician"});
    let e = set.explain(&Person {
        partner: "northside",
        user: &physician,
        start: t(START),
    });
    assert_eq!(
        grants(&e.decision),
        [triple("ehr-viewer", "clinician", "physicians")]
    );
    assert_eq!(e.rules[1].dropped.len(), 1);
    assert!(e.decision.mfa_required, "the physicians rule requires MFA");
    assert_eq!(e.decision.approval, Approval::Admin);

    // A St Mary radiographer with a registration and a partner-sent end date.
    let radiographer = json!({
        "userName": "r@stmary.example",
        "preferredLanguage": "nl",
        ENTERPRISE_USER_SCHEMA: {"department": "Radiology"},
        GUEST_SCHEMA: {"professionalRegistration": "BIG-123", "accessEndDate": "2026-03-31"}
    });
    let d = decide(&set, "st-mary", &radiographer);
    assert_eq!(
        d.matched_rules,
        ["st-mary-radiology", "registered-professionals"]
    );
    assert_eq!(d.language.as_deref(), Some("nl"));
    assert_eq!(
        (d.grants[0].valid_until, d.grants[0].ends_by),
        (
            Some(t("2026-04-01T00:00:00Z")),
            Some(EndSource::PartnerEndDate)
        )
    );
    // registered-professionals ignores the partner date: 365 days, capped at 180.
    assert_eq!(d.grants[1].ends_by, Some(EndSource::PartnerMaximum));
}

fn person_strategy() -> impl Strategy<Value = (String, Value)> {
    let partner = prop_oneof![Just("st-mary"), Just("northside"), Just("acme")];
    let department = prop_oneof![Just("Cardiology"), Just("Radiology"), Just("ICU")];
    let title = prop_oneof![Just("Nurse"), Just("Physician"), Just("Porter")];
    let groups = proptest::collection::vec(prop_oneof![Just("ICU Staff"), Just("Porters")], 0..3);
    let end = proptest::option::of(0u32..400);
    (partner, department, title, groups, end, any::<bool>()).prop_map(
            |(partner, department, title, groups, end, active)| {
                let mut user = json!({
                    "userName": "x",
                    "title": title,
                    "active": active,
                    ENTERPRISE_USER_SCHEMA: {"department": department},
                    "groups": groups.iter().map(|g| json!({"value": g, "display": g})).collect::<Vec<_>>(),
                });
                if let Some(days) = end {
                    let date = t(START) + TimeDelta::days(days.into());
                    user[GUEST_SCHEMA] = json!({"accessEndDate": date.to_rfc3339()});
                }
                (partner.to_string(), user)
            },
        )
}

proptest! {
    #[test]
    fn explain_agrees_with_evaluate_and_policy_holds((partner, user) in person_strategy()) {
        let set = load_dir(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/mappings"))).unwrap();
        let person = Person { partner: &partner, user: &user, start: t(START) };
        let e = set.explain(&person);
        let d = set.evaluate(&person);
        prop_assert_eq!(&e.decision, &d);
        let policy = set.policy(&partner);
        let matched: Vec<&str> = e.rules.iter().filter(|r| r.matched).map(|r| r.rule_id.as_str()).collect();
        prop_assert_eq!(matched, d.matched_rules.iter().map(String::as_str).collect::<Vec<_>>());
        for g in &d.grants {
            prop_assert!(policy.allows_app(&g.app));
            if let Some(days) = policy.max_access_days {
                let cap = t(START) + TimeDelta::days(days.into());
                prop_assert!(g.valid_until.is_some_and(|v| v <= cap));
            }
        }
        prop_assert!(d.mfa_required || !policy.mfa);
    }
}
