//! Mapping-rule benchmarks. Per person: loads a rule set of 100 rules generated as TOML
//! (mixed partner lists, group requirements and conditions over core, enterprise and guest
//! attributes), then evaluates it 100,000 times for one realistic person and prints the mean
//! and 99th percentile time per evaluation; then the same for a worst case in which every
//! rule matches (target < 50 µs). Re-evaluation: seeds a generated roster of three partner
//! hospitals (10,000 people; 100,000 with `BENCH_FULL=1`; any number with `BENCH_PEOPLE`) with
//! their groups through the services, under the shipped rules, and times the dry-run diff of a
//! rule change (`services::rules::diff`) at 10 % of the people and at all of them, with the
//! process's peak memory during each diff (target < 10 s at 100,000, and flat memory). SQLite, and
//! PostgreSQL when GUESTBRIDGE_BENCH_POSTGRES_URL is set. `cargo bench --bench mapping`
//! prints the figures and writes target/bench/mapping.json.

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use common::roster::{Roster, GROUPS as ROSTER_GROUPS};
use common::{status_mib, thousands};
use guestbridge::domain::{Partner, PartnerSlug};
use guestbridge::mapping::{load_sources, Person, RuleSet};
use guestbridge::services::{self, Deps};
use serde_json::{json, Value};

const RULES: usize = 100;
const ITERATIONS: usize = 100_000;
const WARM_UP: usize = 10_000;
const TARGET_MICROS: f64 = 50.0;
/// Target for the dry-run re-evaluation of 100,000 people.
const TARGET_DIFF_SECONDS: f64 = 10.0;
/// The partner hospitals of the re-evaluation roster and their share of the people (%).
const PARTNERS: [(&str, &str, u64); 3] = [
    ("st-mary", "St Mary Hospital", 45),
    ("northside", "Northside Hospital", 35),
    ("riverside", "Riverside Clinic", 20),
];

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

/// The shipped rule files: `mappings/*.toml` as `mapping::load_dir` reads them (without
/// hidden files and the importer's `columns-*.toml`).
fn shipped_rules() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("mappings folder") {
        let path = entry.expect("mappings entry").path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.ends_with(".toml")
            && !name.starts_with('.')
            && !name.starts_with("columns-")
            && path.is_file()
        {
            files.push((name, std::fs::read_to_string(&path).expect("rule file")));
        }
    }
    files
}

/// The rule change whose effect the dry run measures: cardiology's rule widened to intensive
/// care, and a new rule granting the rota to the night shift group.
fn changed_rules() -> (Vec<(String, String)>, &'static str) {
    let mut files = shipped_rules();
    let mut widened = false;
    for (_, text) in &mut files {
        let from = r#"condition = 'department eq "Cardiology" and title co "Nurse"'"#;
        if text.contains(from) {
            *text = text.replace(
                from,
                r#"condition = '(department eq "Cardiology" or department eq "Intensive Care") and title co "Nurse"'"#,
            );
            widened = true;
        }
    }
    files.push((
        "zz-bench-change.toml".to_string(),
        "[[rule]]\nid = \"night-shift-rota\"\ngroups = [\"Night Shift\"]\n\
         grants = [{ app = \"shift-scheduling\", role = \"viewer\" }]\naccess_days = 60\n"
            .to_string(),
    ));
    let what = if widened {
        "cardiology-nurses widened to Intensive Care; new rule night-shift-rota by group"
    } else {
        "new rule night-shift-rota by group"
    };
    (files, what)
}

fn rules_from(files: &[(String, String)]) -> RuleSet {
    match load_sources(files) {
        Ok(set) => set,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
    }
}

/// One partner's roster as seeded so far: roster index → user id.
struct Seeded {
    partner: Partner,
    roster: Roster,
    share: u64,
    ids: Vec<String>,
}

/// Create people `seeded.ids.len()..upto` of each partner's roster through
/// `services::users::create` (rules evaluated, guests, grants and audit written), a few
/// creates in flight at a time.
async fn seed_people(deps: &Deps, partners: &mut [Seeded], total: u64) {
    const IN_FLIGHT: u64 = 4;
    for p in partners.iter_mut() {
        let upto = total * p.share / 100;
        let from = p.ids.len() as u64;
        let mut next = from;
        while next < upto {
            let batch_end = (next + 256).min(upto);
            let mut tasks = Vec::new();
            let chunk = (batch_end - next).div_ceil(IN_FLIGHT);
            let mut start = next;
            while start < batch_end {
                let end = (start + chunk).min(batch_end);
                let deps = deps.clone();
                let partner = p.partner.clone();
                let roster = p.roster.clone();
                tasks.push(tokio::spawn(async move {
                    let mut ids = Vec::new();
                    for i in start..end {
                        let user = services::users::create(
                            &deps,
                            &common::bench_actor(),
                            &partner,
                            &roster.person(i).body,
                        )
                        .await
                        .expect("create user");
                        ids.push(user.row.id);
                    }
                    ids
                }));
                start = end;
            }
            for t in tasks {
                p.ids.extend(t.await.expect("seeding task"));
            }
            next = batch_end;
        }
    }
}

/// Each partner's groups with the members its roster gives them (among the people seeded).
/// Groups are replaced whole (PUT semantics through the service), so a second call after
/// more people were seeded brings memberships up to date.
async fn seed_groups(
    deps: &Deps,
    partners: &[Seeded],
    groups: &mut BTreeMap<(String, String), String>,
) {
    for p in partners {
        let mut members: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for (i, id) in p.ids.iter().enumerate() {
            for g in p.roster.person(i as u64).groups {
                members.entry(g).or_default().push(json!({"value": id}));
            }
        }
        for (name, _) in ROSTER_GROUPS {
            let body = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": name,
                "members": members.remove(name).unwrap_or_default(),
            });
            let key = (p.partner.slug.to_string(), name.to_string());
            match groups.get(&key) {
                Some(id) => {
                    services::groups::replace(
                        deps,
                        &common::bench_actor(),
                        &p.partner,
                        id,
                        &body,
                        None,
                    )
                    .await
                    .expect("replace group");
                }
                None => {
                    let group =
                        services::groups::create(deps, &common::bench_actor(), &p.partner, &body)
                            .await
                            .expect("create group");
                    groups.insert(key, group.row.id);
                }
            }
        }
    }
}

/// A re-evaluation figure.
struct Reevaluation {
    backend: &'static str,
    people: u64,
    seconds: f64,
    rss_before_mib: f64,
    peak_delta_mib: f64,
    seed_seconds: f64,
    diff: services::rules::RuleDiff,
}

/// Seed the roster in two steps (10 % then all) and time the dry-run diff after each.
async fn reevaluation(backend: &'static str, database_url: &str, people: u64) -> Vec<Reevaluation> {
    let env: BTreeMap<String, String> = [
        ("GUESTBRIDGE_DATABASE_URL", database_url),
        (
            "GUESTBRIDGE_SECRET_KEY",
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings = guestbridge::config::Settings::load(None, &env).expect("settings");
    let db = guestbridge::store::Db::connect(&settings.database)
        .await
        .expect("database");
    db.migrate().await.expect("migrations");
    let deps = Deps::new(
        db.clone(),
        Arc::new(guestbridge::clock::SystemClock),
        rules_from(&shipped_rules()),
        guestbridge::services::portal_env::PortalEnv::from_settings(&settings).expect("portal"),
    );
    let seed: u64 = common::env_or("BENCH_SEED", 42);
    let mut partners = Vec::new();
    for (slug, name, share) in PARTNERS {
        let partner = services::partners::add_partner(
            &deps,
            &common::bench_actor(),
            &PartnerSlug::parse(slug).expect("slug"),
            name,
        )
        .await
        .expect("partner");
        partners.push(Seeded {
            partner,
            roster: Roster::new(seed, slug, name),
            share,
            ids: Vec::new(),
        });
    }
    let (new_files, _) = changed_rules();
    let new_rules = rules_from(&new_files);
    let mut groups = BTreeMap::new();
    let mut out = Vec::new();
    let mut steps = vec![people / 10, people];
    steps.dedup();
    for step in steps {
        let started = Instant::now();
        eprintln!("mapping[{backend}]: seeding to {} people", thousands(step));
        seed_people(&deps, &mut partners, step).await;
        seed_groups(&deps, &partners, &mut groups).await;
        let seed_seconds = started.elapsed().as_secs_f64();
        let rss_before = status_mib("self", "VmRSS").unwrap_or_default();
        common::reset_peak("self");
        let profile = common::Profile::start(
            &std::process::id().to_string(),
            &format!("mapping-{backend}-{step}-diff"),
        );
        let started = Instant::now();
        let diff = services::rules::diff(&deps, &new_rules)
            .await
            .expect("dry-run diff");
        let seconds = started.elapsed().as_secs_f64();
        profile.stop();
        let peak = status_mib("self", "VmHWM").unwrap_or_default();
        out.push(Reevaluation {
            backend,
            people: diff.people,
            seconds,
            rss_before_mib: rss_before,
            peak_delta_mib: (peak - rss_before).max(0.0),
            seed_seconds,
            diff,
        });
    }
    db.close().await;
    out
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

    let mut evaluations = vec![json!({
        "scenario": "evaluate 100 rules, one person", "mean_us": mean, "p99_us": p99,
        "target": format!("< {TARGET_MICROS} µs"), "met": mean < TARGET_MICROS,
    })];

    let set = load(true);
    let decision = set.evaluate(&person);
    let (mean, p99) = measure(&set, &person);
    println!(
        "mapping: evaluate {} rules, every rule matching: mean {mean:.2} µs, p99 {p99:.2} µs ({} grants)",
        set.rules.len(),
        decision.grants.len(),
    );
    evaluations.push(json!({
        "scenario": "evaluate 100 rules, every rule matching", "mean_us": mean, "p99_us": p99,
    }));

    let people: u64 = common::env_or(
        "BENCH_PEOPLE",
        if common::full() { 100_000 } else { 10_000 },
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let results = runtime.block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let sqlite = format!("sqlite://{}", dir.path().join("mapping.db").display());
        let mut results = reevaluation("sqlite", &sqlite, people).await;
        if let Some(base) = common::postgres_url() {
            let schema = common::PgSchema::create(&base, "gbbench_map").await;
            results.extend(reevaluation("postgres", &schema.url, people).await);
            schema.drop().await;
        }
        results
    });
    let (_, change) = changed_rules();
    println!("\nmapping: dry-run diff of a rule change ({change})");
    println!(
        "{:<8} {:>8} {:>9} {:>11} {:>11} {:>8} {:>10} {:>8} {:>9} {:>8}  target",
        "backend",
        "people",
        "diff s",
        "people/s",
        "RSS MiB",
        "peak +MiB",
        "changed",
        "new",
        "+grants",
        "-grants"
    );
    let mut reevaluations = Vec::new();
    for r in &results {
        let target = (r.people >= 100_000).then_some(r.seconds < TARGET_DIFF_SECONDS);
        println!(
            "{:<8} {:>8} {:>9.2} {:>11.0} {:>11.0} {:>8.1} {:>10} {:>8} {:>9} {:>8}  {}",
            r.backend,
            thousands(r.people),
            r.seconds,
            r.people as f64 / r.seconds,
            r.rss_before_mib,
            r.peak_delta_mib,
            r.diff.people_changed,
            r.diff.new_guests,
            r.diff.grants_added,
            r.diff.grants_removed,
            match target {
                Some(true) => format!("MET < {TARGET_DIFF_SECONDS} s"),
                Some(false) => format!("MISSED < {TARGET_DIFF_SECONDS} s"),
                None => String::new(),
            }
        );
        reevaluations.push(json!({
            "backend": r.backend,
            "people": r.people,
            "diff_seconds": r.seconds,
            "people_per_s": r.people as f64 / r.seconds,
            "rss_before_mib": r.rss_before_mib,
            "peak_delta_mib": r.peak_delta_mib,
            "seeding_seconds": r.seed_seconds,
            "people_changed": r.diff.people_changed,
            "new_guests": r.diff.new_guests,
            "guests_losing_all_grants": r.diff.guests_losing_all_grants,
            "grants_added": r.diff.grants_added,
            "grants_removed": r.diff.grants_removed,
            "target": target.map(|met| json!({"text": format!("< {TARGET_DIFF_SECONDS} s"), "met": met})),
        }));
    }
    let json = json!({
        "machine": common::machine(),
        "evaluation": evaluations,
        "rule_change": change,
        "reevaluation": reevaluations,
    });
    if let Some(path) = common::write_json("mapping", &json) {
        println!("\nwritten: {}", path.display());
    }
}
