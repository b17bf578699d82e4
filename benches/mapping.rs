//! Mapping-rule evaluation micro-benchmark: loads a rule set of 100 rules generated as TOML
//! (mixed partner lists, group requirements and conditions over core, enterprise and guest
//! attributes), then evaluates it 100,000 times for one realistic person and prints the mean
//! and 99th percentile time per evaluation; then the same for a worst case in which every
//! rule matches. `cargo bench --bench mapping`; target < 50 µs.

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Utc};
use guestbridge::mapping::{load_sources, Person, RuleSet};
use serde_json::{json, Value};

const RULES: usize = 100;
const ITERATIONS: usize = 100_000;
const WARM_UP: usize = 10_000;
const TARGET_MICROS: f64 = 50.0;

const DEPARTMENTS: [&str; 10] = [
    "Cardiology",
    "Radiology",
    "Oncology",
    "Emergency",
    "Paediatrics",
    "Neurology",
    "Surgery",
    "Pharmacy",
    "Intensive Care",
    "Maternity",
];
const TITLES: [&str; 5] = [
    "Nurse",
    "Physician",
    "Radiographer",
    "Pharmacist",
    "Midwife",
];
const ORGANISATIONS: [&str; 4] = ["St Mary", "Northside", "Riverside", "Eastgate"];
const GROUPS: [&str; 8] = [
    "ICU Staff",
    "Night Shift",
    "Fire Wardens",
    "Cardiology Ward",
    "Theatre",
    "Students",
    "Locums",
    "Research",
];

/// Apps, two partner policies, and `RULES` rules: partner-specific and global, with
/// conditions over core, enterprise and guest attributes and group requirements, of which a
/// typical person matches a handful. With `every_rule_matches`, each rule has no partner
/// list, condition or group requirement instead (the worst case for building a decision).
fn rule_files(every_rule_matches: bool) -> Vec<(String, String)> {
    let mut apps = String::new();
    for a in 0..10 {
        apps.push_str(&format!(
            "[[app]]\nid = \"app-{a}\"\nname = \"App {a}\"\ndescription = \"Application {a}\"\nlaunch_url = \"https://app{a}.hospital.example/launch\"\nroles = [\"reader\", \"editor\"]\n\n"
        ));
    }
    let partners = "[[partner]]\nslug = \"st-mary\"\nmax_access_days = 180\nmfa = true\n\n\
                    [[partner]]\nslug = \"northside\"\napproval = \"admin\"\nmax_access_days = 365\nallowed_apps = [\"app-0\", \"app-1\", \"app-2\", \"app-3\"]\n";
    let mut rules = String::new();
    for i in 0..RULES {
        rules.push_str(&format!("[[rule]]\nid = \"rule-{i}\"\n"));
        if !every_rule_matches {
            match i % 5 {
                0 => rules.push_str("partners = [\"st-mary\"]\n"),
                1 => rules.push_str("partners = [\"northside\"]\n"),
                2 => rules.push_str("partners = [\"riverside\", \"eastgate\"]\n"),
                _ => {}
            }
            let department = DEPARTMENTS[i % DEPARTMENTS.len()];
            let title = TITLES[i % TITLES.len()];
            let organisation = ORGANISATIONS[i % ORGANISATIONS.len()];
            let condition = match i % 6 {
                0 => format!(r#"department eq "{department}" and title co "{title}""#),
                1 => format!(r#"title sw "Senior {title}" or employeeNumber eq "E-{i}""#),
                2 => format!(
                    r#"emails[type eq "work" and value ew "@{}.example"] and costCenter eq "CC-{}""#,
                    organisation.to_lowercase().replace(' ', ""),
                    i % 5
                ),
                3 => format!(
                    r#"homeOrganization co "{organisation}" and not (userType eq "Student")"#
                ),
                4 => format!(r#"name.familyName pr and division eq "Division {}""#, i % 7),
                _ => String::new(),
            };
            if condition.is_empty() {
                rules.push_str(&format!("groups = [\"{}\"]\n", GROUPS[i % GROUPS.len()]));
            } else {
                rules.push_str(&format!("condition = '{condition}'\n"));
            }
        }
        rules.push_str(&format!(
            "grants = [{{ app = \"app-{}\", role = \"reader\" }}, {{ app = \"app-{}\", role = \"editor\" }}]\n",
            i % 10,
            (i + 3) % 10
        ));
        if i % 3 == 0 {
            rules.push_str(&format!("access_days = {}\n", 30 + i));
        }
        if i % 8 == 0 {
            rules.push_str("sponsor = \"dr.grey@hospital.example\"\ntemplate = \"clinician\"\n");
        }
        rules.push('\n');
    }
    vec![
        ("apps.toml".to_string(), apps),
        ("partners.toml".to_string(), partners.to_string()),
        ("rules.toml".to_string(), rules),
    ]
}

fn person_json() -> Value {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            "urn:guestbridge:params:scim:schemas:extension:guest:1.0:User"
        ],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "E-12",
        "userName": "ann.lee@stmary.example",
        "name": {"givenName": "Ann", "familyName": "Lee", "formatted": "Ann Lee"},
        "displayName": "Ann Lee",
        "title": "Senior Nurse",
        "userType": "Employee",
        "preferredLanguage": "nl",
        "active": true,
        "emails": [
            {"value": "ann.lee@stmary.example", "type": "work", "primary": true},
            {"value": "ann@home.example", "type": "home"}
        ],
        "phoneNumbers": [{"value": "+31 20 555 0100", "type": "work"}],
        "groups": [
            {"value": "g1", "display": "Cardiology Ward"},
            {"value": "g2", "display": "Night Shift"},
            {"value": "g3", "display": "ICU Staff"},
            {"value": "g4", "display": "Fire Wardens"},
            {"value": "g5", "display": "Group 3"}
        ],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "E-12",
            "costCenter": "CC-2",
            "organization": "St Mary Hospital",
            "division": "Division 1",
            "department": "Cardiology",
            "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d", "displayName": "Dr Grey"}
        },
        "urn:guestbridge:params:scim:schemas:extension:guest:1.0:User": {
            "homeOrganization": "St Mary Hospital",
            "accessEndDate": "2026-12-31T00:00:00Z",
            "professionalRegistration": "BIG-19012345601",
            "sponsorEmail": "dr.grey@hospital.example"
        },
        "meta": {"resourceType": "User", "created": "2026-01-02T08:00:00Z", "lastModified": "2026-01-02T08:00:00Z"}
    })
}

fn load(every_rule_matches: bool) -> RuleSet {
    match load_sources(&rule_files(every_rule_matches)) {
        Ok(set) => set,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
    }
}

/// Mean and 99th percentile of one evaluation, in µs.
fn measure(set: &RuleSet, person: &Person<'_>) -> (f64, f64) {
    for _ in 0..WARM_UP {
        black_box(set.evaluate(black_box(person)));
    }
    let mut nanos = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let t = Instant::now();
        black_box(set.evaluate(black_box(person)));
        nanos.push(t.elapsed().as_nanos() as f64);
    }
    nanos.sort_by(f64::total_cmp);
    let mean = nanos.iter().sum::<f64>() / nanos.len() as f64 / 1000.0;
    let p99 = nanos[nanos.len() * 99 / 100] / 1000.0;
    (mean, p99)
}

fn main() {
    let user = person_json();
    let start: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let person = Person {
        partner: "st-mary",
        user: &user,
        start,
    };

    let set = load(false);
    let decision = set.evaluate(&person);
    let (mean, p99) = measure(&set, &person);
    println!(
        "mapping: evaluate {} rules: mean {mean:.2} µs, p99 {p99:.2} µs (target < {TARGET_MICROS} µs; {} rules matched, {} grants; {ITERATIONS} evaluations)",
        set.rules.len(),
        decision.matched_rules.len(),
        decision.grants.len(),
    );

    let set = load(true);
    let decision = set.evaluate(&person);
    let (mean, p99) = measure(&set, &person);
    println!(
        "mapping: evaluate {} rules, every rule matching: mean {mean:.2} µs, p99 {p99:.2} µs ({} grants)",
        set.rules.len(),
        decision.grants.len(),
    );
}
