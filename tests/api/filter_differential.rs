//! Differential test of the filter → SQL compiler: random filters over a seeded population
//! of users, each run through `GET /Users?filter=` (the store's SQL) and through the
//! in-memory matcher `guestbridge::scim_core::filter::matches` over the same users' JSON; the
//! two must select the same users (RFC 7644 §3.4.2.2).
//!
//! Generation is a seeded loop (not proptest's runner, which cannot await): the same seed
//! gives the same users and filters on every run and on both backends, so a failure
//! reproduces. `FILTER_DIFF_SEED=<u64>` runs another population and filter sequence, and
//! `FILTER_DIFF_VERBOSE=1` prints examples of the excluded classes (with `--nocapture`).
//!
//! Known disagreements are either modelled (`model_user`, `model_filter`: the SQL must equal
//! the matcher run on the model) or, where the store is believed wrong, generated and run but
//! left out of the assertion (`Excluded`); the summary line counts both.

use std::collections::BTreeSet;

use guestbridge::scim_core::filter::{
    matches, parse_filter, AttrPath, CompValue, CompareOp, Filter,
};
use guestbridge::scim_core::schema::{AttrType, USER_RESOURCE};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::both_backends;
use crate::helpers::{spawn, url_encode, Backend, Scim};
use crate::users_crud::ENTERPRISE;

both_backends!(
    sql_filters_agree_with_the_in_memory_matcher,
    type_mismatched_filters_are_invalid_filter
);

const SEED: u64 = 0x5C1F_117E;
const USERS: usize = 25;
const FILTERS: usize = 400;
const MAX_DEPTH: u32 = 3;

const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GUEST: &str = "urn:guestbridge:params:scim:schemas:extension:guest:1.0:User";

// ---- the population --------------------------------------------------------------------

/// Small vocabularies, so that filters drawn from them hit; with mixed case, LIKE
/// metacharacters (`%`, `_`), a backslash and non-ASCII letters.
const GIVEN: &[&str] = &[
    "Ann",
    "ann",
    "Zoë",
    "ZOË",
    "Bob",
    "Élodie",
    "Lee_Ann",
    "50%",
    r"Back\slash",
    "straße",
];
const FAMILY: &[&str] = &[
    "Lee",
    "LEE",
    "Leeds",
    "Stone",
    "Zoë",
    "de_la_Cruz",
    "100%",
    r"O\Brien",
    "Müller",
];
const TITLES: &[&str] = &[
    "Staff Nurse",
    "staff nurse",
    "Nurse Practitioner",
    "Surgeon",
    "Head_of 50% Care",
    r"C:\Ward",
    "Zoë Lead",
    "ÉQUIPE",
    // Empty: present as a key, but not "a non-empty value" for `pr` (RFC 7644 §3.4.2.2).
    "",
];
const EXTERNAL_IDS: &[&str] = &["E-1", "e-1", "E-2", "x_1", "X%2", r"a\b", "Zoë-9", "ZOË-9"];
const LOCALS: &[&str] = &[
    "ann",
    "Ann.Lee",
    "zoë",
    "ZOË",
    "x_y",
    "50%off",
    r"back\slash",
    "bob",
];
const DOMAINS: &[&str] = &[
    "acme.example",
    "ACME.example",
    "partner.example",
    "zoë.example",
];
const EMAIL_TYPES: &[&str] = &["work", "home", "other"];
const EMPLOYEE_NUMBERS: &[&str] = &["1001", "1002", "0042", "A-7", "a-7", "9_9", "10%"];
const DEPARTMENTS: &[&str] = &[
    "Cardiology",
    "cardiology",
    "Surgery",
    "Zoë Ward",
    "ICU_2",
    r"R&D\Lab",
];
const ORGANIZATIONS: &[&str] = &["Acme Health", "acme health", "Zoë Clinic", "St_Mary%"];
/// Written in varied offsets and precisions; the server stores them as UTC milliseconds.
const END_DATES: &[&str] = &[
    "2025-01-01T00:00:00Z",
    "2025-06-30T23:59:59+02:00",
    "2025-06-30T21:59:59.500Z",
    "2026-12-31T12:00:00.123Z",
    "2024-02-29T08:30:00-05:00",
    "2024-02-29T13:30:00Z",
    "2030-01-01T00:00:00.001Z",
];

fn pick<'a>(rng: &mut StdRng, list: &[&'a str]) -> &'a str {
    list.choose(rng).copied().unwrap_or_default()
}

fn person(rng: &mut StdRng, i: usize) -> Value {
    let mut u = Map::new();
    u.insert(
        "userName".into(),
        json!(format!("{}.{i}@{}", pick(rng, LOCALS), pick(rng, DOMAINS))),
    );
    if rng.gen_bool(0.7) {
        u.insert("externalId".into(), json!(pick(rng, EXTERNAL_IDS)));
    }
    match rng.gen_range(0..3) {
        0 => {
            u.insert("active".into(), json!(true));
        }
        1 => {
            u.insert("active".into(), json!(false));
        }
        _ => {}
    }
    if rng.gen_bool(0.7) {
        u.insert("title".into(), json!(pick(rng, TITLES)));
    }
    if rng.gen_bool(0.6) {
        let d = format!("{} {}", pick(rng, GIVEN), pick(rng, FAMILY));
        u.insert("displayName".into(), json!(d));
    }
    let mut name = Map::new();
    if rng.gen_bool(0.8) {
        name.insert("givenName".into(), json!(pick(rng, GIVEN)));
    }
    if rng.gen_bool(0.8) {
        name.insert("familyName".into(), json!(pick(rng, FAMILY)));
    }
    if !name.is_empty() {
        u.insert("name".into(), Value::Object(name));
    }
    let n_emails = rng.gen_range(0..=3);
    let primary_at = if rng.gen_bool(0.6) {
        Some(rng.gen_range(0..3))
    } else {
        None
    };
    let mut emails = Vec::new();
    for k in 0..n_emails {
        let mut e = Map::new();
        // Now and then an element without a value (only type/display), so that
        // `emails pr` and `emails[...]` see an element `emails.value` does not.
        if rng.gen_bool(0.92) {
            let value = format!("{}@{}", pick(rng, LOCALS), pick(rng, DOMAINS));
            e.insert("value".into(), json!(value));
        } else {
            e.insert("display".into(), json!(pick(rng, GIVEN)));
        }
        if rng.gen_bool(0.85) {
            e.insert("type".into(), json!(pick(rng, EMAIL_TYPES)));
        }
        if primary_at == Some(k) {
            e.insert("primary".into(), json!(true));
        } else if rng.gen_bool(0.3) {
            e.insert("primary".into(), json!(false));
        }
        emails.push(Value::Object(e));
    }
    if !emails.is_empty() {
        u.insert("emails".into(), Value::Array(emails));
    }
    let mut schemas = vec![json!(CORE)];
    let mut ent = Map::new();
    if rng.gen_bool(0.6) {
        ent.insert("employeeNumber".into(), json!(pick(rng, EMPLOYEE_NUMBERS)));
    }
    if rng.gen_bool(0.6) {
        ent.insert("department".into(), json!(pick(rng, DEPARTMENTS)));
    }
    if !ent.is_empty() {
        schemas.push(json!(ENTERPRISE));
        u.insert(ENTERPRISE.into(), Value::Object(ent));
    }
    let mut guest = Map::new();
    if rng.gen_bool(0.7) {
        guest.insert("accessEndDate".into(), json!(pick(rng, END_DATES)));
    }
    if rng.gen_bool(0.4) {
        guest.insert("homeOrganization".into(), json!(pick(rng, ORGANIZATIONS)));
    }
    if !guest.is_empty() {
        schemas.push(json!(GUEST));
        u.insert(GUEST.into(), Value::Object(guest));
    }
    u.insert("schemas".into(), Value::Array(schemas));
    Value::Object(u)
}

// ---- attributes filters talk about -----------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A string attribute: every operator, string values.
    Str,
    /// A boolean: eq/ne with true/false.
    Bool,
    /// A dateTime the client sets (accessEndDate): ordering on instants, substrings.
    Date,
    /// A server-set `meta` sub-attribute or `id`: eq/ne (and pr) only.
    Server,
    /// A complex attribute as a whole: pr, eq null, ne null.
    Complex,
    /// Not an attribute of the schema (or absent from every user): must match nothing.
    Unknown,
}

#[derive(Debug, Clone, Copy)]
struct Target {
    uri: Option<&'static str>,
    attr: &'static str,
    sub: Option<&'static str>,
    kind: Kind,
    weight: u32,
}

const fn t(
    uri: Option<&'static str>,
    attr: &'static str,
    sub: Option<&'static str>,
    kind: Kind,
    weight: u32,
) -> Target {
    Target {
        uri,
        attr,
        sub,
        kind,
        weight,
    }
}

const TARGETS: &[Target] = &[
    t(None, "userName", None, Kind::Str, 6),
    t(Some(CORE), "userName", None, Kind::Str, 1),
    t(None, "externalId", None, Kind::Str, 5),
    t(None, "displayName", None, Kind::Str, 4),
    t(None, "title", None, Kind::Str, 5),
    t(None, "name", Some("givenName"), Kind::Str, 4),
    t(None, "name", Some("familyName"), Kind::Str, 4),
    t(Some(CORE), "name", Some("familyName"), Kind::Str, 1),
    t(None, "name", Some("formatted"), Kind::Str, 1),
    t(None, "nickName", None, Kind::Str, 1),
    t(None, "emails", None, Kind::Str, 4),
    t(None, "emails", Some("value"), Kind::Str, 5),
    t(None, "emails", Some("type"), Kind::Str, 3),
    t(None, "emails", Some("display"), Kind::Str, 1),
    t(None, "emails", Some("primary"), Kind::Bool, 3),
    t(None, "active", None, Kind::Bool, 5),
    t(Some(ENTERPRISE), "employeeNumber", None, Kind::Str, 4),
    t(Some(ENTERPRISE), "department", None, Kind::Str, 4),
    t(Some(ENTERPRISE), "manager", Some("value"), Kind::Str, 1),
    t(Some(GUEST), "accessEndDate", None, Kind::Date, 6),
    t(Some(GUEST), "homeOrganization", None, Kind::Str, 2),
    t(None, "id", None, Kind::Server, 2),
    t(None, "meta", Some("created"), Kind::Server, 1),
    t(None, "meta", Some("lastModified"), Kind::Server, 1),
    t(None, "meta", Some("resourceType"), Kind::Server, 1),
    t(None, "meta", Some("version"), Kind::Server, 1),
    t(None, "schemas", None, Kind::Server, 1),
    t(None, "name", None, Kind::Complex, 2),
    t(None, "emails", None, Kind::Complex, 1),
    t(Some(ENTERPRISE), "manager", None, Kind::Complex, 1),
    t(None, "meta", None, Kind::Complex, 1),
    t(None, "favouriteColour", None, Kind::Unknown, 1),
    t(None, "name", Some("nickname"), Kind::Unknown, 1),
    t(None, "employeeNumber", None, Kind::Unknown, 1),
    t(Some(ENTERPRISE), "userName", None, Kind::Unknown, 1),
];

/// Sub-attributes inside `emails[...]`, `name[...]` and `manager[...]`, as absolute targets.
const EMAIL_INNER: &[Target] = &[
    t(None, "emails", Some("value"), Kind::Str, 5),
    t(None, "emails", Some("type"), Kind::Str, 4),
    t(None, "emails", Some("display"), Kind::Str, 1),
    t(None, "emails", Some("primary"), Kind::Bool, 3),
    t(None, "emails", Some("colour"), Kind::Unknown, 1),
];
const NAME_INNER: &[Target] = &[
    t(None, "name", Some("givenName"), Kind::Str, 3),
    t(None, "name", Some("familyName"), Kind::Str, 3),
    t(None, "name", Some("formatted"), Kind::Str, 1),
];
const MANAGER_INNER: &[Target] = &[
    t(Some(ENTERPRISE), "manager", Some("value"), Kind::Str, 1),
    t(
        Some(ENTERPRISE),
        "manager",
        Some("displayName"),
        Kind::Str,
        1,
    ),
];

fn weighted<'a>(rng: &mut StdRng, list: &'a [Target]) -> &'a Target {
    let total: u32 = list.iter().map(|t| t.weight).sum();
    let mut n = rng.gen_range(0..total);
    for t in list {
        if n < t.weight {
            return t;
        }
        n -= t.weight;
    }
    &list[0]
}

/// The caseExact flag of an attribute path as the schema defines it (false if unknown);
/// a multi-valued complex attribute without a sub-attribute stands for its `value`.
fn case_exact(p: &AttrPath) -> bool {
    let Some((_, def)) = USER_RESOURCE.resolve(p.uri.as_deref(), &p.attr) else {
        return false;
    };
    match &p.sub_attr {
        Some(sub) => def.sub_attribute(sub).is_some_and(|d| d.case_exact),
        None if def.ty == AttrType::Complex && def.multi_valued => {
            def.sub_attribute("value").is_some_and(|d| d.case_exact)
        }
        None => def.case_exact,
    }
}

/// The string values a user holds at a target (for drawing filter values that hit).
fn values_at(user: &Value, t: &Target) -> Vec<String> {
    let container = match t.uri {
        Some(u) if u != CORE => user.get(u),
        _ => Some(user),
    };
    let Some(v) = container.and_then(|c| c.get(t.attr)) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .filter_map(|item| match (t.sub, item) {
            (Some(s), Value::Object(o)) => o.get(s),
            (None, Value::Object(o)) => o.get("value"),
            (None, other) => Some(other),
            _ => None,
        })
        .filter_map(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        })
        .collect()
}

fn collect_strings(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                if k != "id" && k != "meta" && k != "schemas" {
                    collect_strings(x, out);
                }
            }
        }
        _ => {}
    }
}

// ---- filter generation -----------------------------------------------------------------

struct Gen<'a> {
    rng: StdRng,
    users: &'a [Value],
    pool: Vec<String>,
}

const SPECIALS: &[&str] = &["%", "_", r"\", "Zoë", "zoë", "ZOË", "ë", "Ë", "ß", "é", "@"];

impl Gen<'_> {
    fn path(&mut self, t: &Target) -> AttrPath {
        let uri = t.uri.map(|u| self.recase_ascii(u, 0.15));
        let attr = self.recase_ascii(t.attr, 0.15);
        let sub_attr = t.sub.map(|s| self.recase_ascii(s, 0.15));
        AttrPath {
            uri,
            attr,
            sub_attr,
        }
    }

    /// Now and then the name in another ASCII case: names are case-insensitive.
    fn recase_ascii(&mut self, s: &str, p: f64) -> String {
        if self.rng.gen_bool(p) {
            if self.rng.gen_bool(0.5) {
                s.to_ascii_uppercase()
            } else {
                s.to_ascii_lowercase()
            }
        } else {
            s.to_string()
        }
    }

    fn recase(&mut self, s: &str) -> String {
        match self.rng.gen_range(0..4) {
            0 => s.to_uppercase(),
            1 => s.to_lowercase(),
            _ => s
                .chars()
                .map(|c| {
                    if self.rng.gen_bool(0.5) {
                        c.to_uppercase().collect::<String>()
                    } else {
                        c.to_lowercase().collect::<String>()
                    }
                })
                .collect(),
        }
    }

    fn existing(&mut self, t: &Target) -> Option<String> {
        let all: Vec<String> = self.users.iter().flat_map(|u| values_at(u, t)).collect();
        all.choose(&mut self.rng).cloned()
    }

    fn base_string(&mut self, t: &Target) -> String {
        let roll = self.rng.gen_range(0..10);
        let existing = if roll < 6 { self.existing(t) } else { None };
        match existing {
            Some(s) => s,
            None if roll < 9 => self.pool.choose(&mut self.rng).cloned().unwrap_or_default(),
            None => pick(&mut self.rng, SPECIALS).to_string(),
        }
    }

    /// A part of `s` suited to `op`: prefix for sw, suffix for ew, any run for co.
    fn part(&mut self, s: &str, op: CompareOp) -> String {
        let chars: Vec<char> = s.chars().collect();
        if chars.is_empty() {
            return String::new();
        }
        let len = self.rng.gen_range(1..=chars.len().min(6));
        let start = match op {
            CompareOp::Sw => 0,
            CompareOp::Ew => chars.len() - len,
            _ => self.rng.gen_range(0..=chars.len() - len),
        };
        chars[start..start + len].iter().collect()
    }

    fn string_value(&mut self, t: &Target, op: CompareOp) -> String {
        let base = self.base_string(t);
        let mut s = match op {
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew if self.rng.gen_bool(0.8) => {
                self.part(&base, op)
            }
            CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
                if self.rng.gen_bool(0.3) =>
            {
                self.part(&base, CompareOp::Sw)
            }
            _ => base,
        };
        if self.rng.gen_bool(0.35) {
            s = self.recase(&s);
        }
        s
    }

    fn date_value(&mut self, op: CompareOp) -> String {
        let t = t(Some(GUEST), "accessEndDate", None, Kind::Date, 1);
        if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
            let base = self
                .existing(&t)
                .unwrap_or_else(|| "2025-01-01T00:00:00.000Z".into());
            if self.rng.gen_bool(0.1) {
                // A whole dateTime in another offset, as a substring operand.
                return in_other_offset(&base);
            }
            let s = self.part(&base, op);
            return if self.rng.gen_bool(0.3) {
                self.recase(&s)
            } else {
                s
            };
        }
        let stored = self.existing(&t);
        match (self.rng.gen_range(0..11), stored) {
            (0..=3, Some(s)) => s,
            (4..=5, Some(s)) => shift_date(&s, &mut self.rng),
            (6, Some(s)) => in_other_offset(&s),
            // Finer than the stored millisecond precision.
            (7, Some(s)) => s.replacen('Z', "4Z", 1),
            _ => pick(&mut self.rng, END_DATES).to_string(),
        }
    }

    fn op(&mut self) -> CompareOp {
        *[
            CompareOp::Eq,
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Ew,
            CompareOp::Gt,
            CompareOp::Ge,
            CompareOp::Lt,
            CompareOp::Le,
        ]
        .choose(&mut self.rng)
        .unwrap_or(&CompareOp::Eq)
    }

    fn leaf(&mut self, t: &Target, path: AttrPath) -> Filter {
        if self.rng.gen_bool(0.12) && t.kind != Kind::Complex {
            return Filter::Present(path);
        }
        let (op, value) = match t.kind {
            Kind::Str | Kind::Unknown => {
                let op = self.op();
                let value = match self.rng.gen_range(0..100) {
                    0..=5 if matches!(op, CompareOp::Eq | CompareOp::Ne) => CompValue::Null,
                    6..=8 if !is_substring(op) => {
                        CompValue::Number(self.rng.gen_range(0..1200_u64).into())
                    }
                    9..=10 if matches!(op, CompareOp::Eq | CompareOp::Ne) => {
                        CompValue::Bool(self.rng.gen_bool(0.5))
                    }
                    _ => CompValue::Str(self.string_value(t, op)),
                };
                (op, value)
            }
            Kind::Bool => {
                let op = if self.rng.gen_bool(0.7) {
                    CompareOp::Eq
                } else {
                    CompareOp::Ne
                };
                let b = self.rng.gen_bool(0.5);
                let value = match self.rng.gen_range(0..10) {
                    0 => CompValue::Null,
                    1 => CompValue::Str(if b { "True".into() } else { "FALSE".into() }),
                    _ => CompValue::Bool(b),
                };
                (op, value)
            }
            Kind::Date => {
                let op = self.op();
                let value =
                    if self.rng.gen_bool(0.06) && matches!(op, CompareOp::Eq | CompareOp::Ne) {
                        CompValue::Null
                    } else {
                        CompValue::Str(self.date_value(op))
                    };
                (op, value)
            }
            Kind::Server => {
                let op = if self.rng.gen_bool(0.75) {
                    CompareOp::Eq
                } else {
                    CompareOp::Ne
                };
                let mut s = self.server_value(t);
                if self.rng.gen_bool(0.2) {
                    s = s.to_uppercase();
                }
                (op, CompValue::Str(s))
            }
            Kind::Complex => {
                return match self.rng.gen_range(0..4) {
                    0 => Filter::Compare {
                        path,
                        op: CompareOp::Eq,
                        value: CompValue::Null,
                    },
                    1 => Filter::Compare {
                        path,
                        op: CompareOp::Ne,
                        value: CompValue::Null,
                    },
                    _ => Filter::Present(path),
                }
            }
        };
        Filter::Compare { path, op, value }
    }

    fn server_value(&mut self, t: &Target) -> String {
        let user = self
            .users
            .choose(&mut self.rng)
            .cloned()
            .unwrap_or_default();
        match (t.attr, t.sub) {
            ("id", _) => user["id"].as_str().unwrap_or_default().to_string(),
            ("schemas", _) => pick(&mut self.rng, &[CORE, ENTERPRISE, GUEST, "urn:other"]).into(),
            ("meta", Some("resourceType")) => pick(&mut self.rng, &["User", "Group"]).into(),
            ("meta", Some(sub)) => {
                let s = user["meta"][sub].as_str().unwrap_or_default().to_string();
                if matches!(sub, "created" | "lastModified") && self.rng.gen_bool(0.3) {
                    in_other_offset(&s)
                } else {
                    s
                }
            }
            _ => String::new(),
        }
    }

    fn filter(&mut self, depth: u32, in_value_path: Option<&'static [Target]>) -> Filter {
        if depth < MAX_DEPTH && self.rng.gen_bool(0.45) {
            return match self.rng.gen_range(0..10) {
                0..=3 => Filter::And(
                    Box::new(self.filter(depth + 1, in_value_path)),
                    Box::new(self.filter(depth + 1, in_value_path)),
                ),
                4..=6 => Filter::Or(
                    Box::new(self.filter(depth + 1, in_value_path)),
                    Box::new(self.filter(depth + 1, in_value_path)),
                ),
                _ => Filter::Not(Box::new(self.filter(depth + 1, in_value_path))),
            };
        }
        match in_value_path {
            Some(inner) => {
                let t = *weighted(&mut self.rng, inner);
                let attr = self.recase_ascii(t.sub.unwrap_or_default(), 0.15);
                self.leaf(&t, AttrPath::new(attr))
            }
            None if self.rng.gen_bool(0.2) => self.value_path(depth),
            None => {
                let t = *weighted(&mut self.rng, TARGETS);
                let path = self.path(&t);
                self.leaf(&t, path)
            }
        }
    }

    fn value_path(&mut self, depth: u32) -> Filter {
        let (attr, inner): (AttrPath, &'static [Target]) = match self.rng.gen_range(0..10) {
            0..=6 => (
                self.path(&t(None, "emails", None, Kind::Str, 1)),
                EMAIL_INNER,
            ),
            7..=8 => (self.path(&t(None, "name", None, Kind::Str, 1)), NAME_INNER),
            _ => (
                self.path(&t(Some(ENTERPRISE), "manager", None, Kind::Str, 1)),
                MANAGER_INNER,
            ),
        };
        Filter::ValuePath {
            attr,
            filter: Box::new(self.filter(depth + 1, Some(inner))),
        }
    }
}

fn is_substring(op: CompareOp) -> bool {
    matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
}

/// The same instant written with a +02:00 offset.
fn in_other_offset(s: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => {
            let off = chrono::FixedOffset::east_opt(2 * 3600).expect("offset");
            t.with_timezone(&off)
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
        }
        Err(_) => s.to_string(),
    }
}

/// A nearby instant: ±1 ms or ±1 s.
fn shift_date(s: &str, rng: &mut StdRng) -> String {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => {
            let ms = *[-1000_i64, -1, 1, 1000].choose(rng).unwrap_or(&1);
            (t + chrono::Duration::milliseconds(ms))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        }
        Err(_) => s.to_string(),
    }
}

// ---- known disagreements ------------------------------------------------------------------
//
// Where the store deliberately differs from the matcher, the matcher is run on a *model* of
// what the store does (`model_user`, `model_filter`) and the SQL must equal that model. Where
// the store is wrong (or the two disagree and the fix is pending), filters of that class are
// still generated and run (the SQL must at least answer), but a disagreement is only counted
// (`Excluded`), not asserted. Every class is listed in the run's summary line.

/// Disagreements modelled by rewriting the matcher's input; the SQL must match the model.
///
/// - active-default: a user created without `active` is stored with the `active` column 1
///   (services/users.rs: "a person pushed without it is active") but its representation has
///   no `active`. The SQL therefore answers `active eq true`, `active pr` for such users, and
///   `active eq null` / `active ne true` not; the model gives such users `"active": true`.
/// - schemas-unknown: `schemas` is not an attribute of the schema definitions, so the compiler
///   treats it as unknown (matches nothing), while the matcher reads the `schemas` array of
///   the representation. The model drops `schemas`.
/// - meta-not-indexed: `meta.resourceType`, `meta.location` and `meta.version` are defined
///   but neither columns nor indexed leaves, so the SQL never finds them. The model keeps only
///   `meta.created` / `meta.lastModified`.
/// - number-as-text: a number literal against a string attribute (`displayName gt 600`,
///   `externalId eq 12345` as Entra sends it unquoted) is compared by the SQL as the text
///   "600", but by the matcher never matches. The model writes the number as a string.
fn model_user(user: &Value) -> Value {
    let mut u = user.clone();
    if let Some(o) = u.as_object_mut() {
        o.entry("active").or_insert(Value::Bool(true));
        o.remove("schemas");
        if let Some(Value::Object(meta)) = o.get_mut("meta") {
            meta.retain(|k, _| k == "created" || k == "lastModified");
        }
    }
    u
}

fn model_filter(filter: &Filter) -> Filter {
    match filter {
        Filter::Compare {
            path,
            op,
            value: CompValue::Number(n),
        } => Filter::Compare {
            path: path.clone(),
            op: *op,
            value: CompValue::Str(n.to_string()),
        },
        Filter::Compare { .. } | Filter::Present(_) => filter.clone(),
        Filter::And(a, b) => Filter::And(Box::new(model_filter(a)), Box::new(model_filter(b))),
        Filter::Or(a, b) => Filter::Or(Box::new(model_filter(a)), Box::new(model_filter(b))),
        Filter::Not(a) => Filter::Not(Box::new(model_filter(a))),
        Filter::ValuePath { attr, filter } => Filter::ValuePath {
            attr: attr.clone(),
            filter: Box::new(model_filter(filter)),
        },
    }
}

/// Disagreements where the SQL is (believed) wrong; see the report for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Excluded {
    /// A dateTime operand finer than milliseconds (`accessEndDate eq
    /// "2025-06-30T21:59:59.5004Z"`): the compiler truncates the operand to the stored
    /// millisecond precision, so eq/ge/le match a value 0.4 ms away and ne/gt/lt do not;
    /// the matcher compares the exact instants.
    DateTimeSubMillisecond,
    /// co/sw/ew on a dateTime: the SQL compares the stored UTC text case-sensitively (`v.value`,
    /// so "00z" never matches "…00Z" although accessEndDate is not caseExact) and first
    /// rewrites an operand that is a whole dateTime to UTC (`sw "2025-06-30T23:59:59+02:00"`
    /// matches "2025-06-30T21:59:59.000Z"); the matcher compares the raw text
    /// case-insensitively.
    DateTimeSubstring,
}

fn is_access_end_date(p: &AttrPath) -> bool {
    p.uri
        .as_deref()
        .is_some_and(|u| u.eq_ignore_ascii_case(GUEST))
        && p.attr.eq_ignore_ascii_case("accessEndDate")
        && p.sub_attr.is_none()
}

/// More than three fractional-second digits.
fn sub_millisecond(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
        && s.split_once('.')
            .is_some_and(|(_, frac)| frac.chars().take_while(char::is_ascii_digit).count() > 3)
}

/// Which excluded classes a filter touches; `in_value_path` whether it is inside `[...]` (paths relative to the element).
fn excluded_classes(filter: &Filter, in_value_path: bool, out: &mut BTreeSet<Excluded>) {
    match filter {
        Filter::Compare { path, op, value } => {
            if let (true, CompValue::Str(v)) = (!in_value_path && is_access_end_date(path), value) {
                if is_substring(*op) {
                    if chrono::DateTime::parse_from_rfc3339(v).is_ok()
                        || v.chars().any(|c| c.is_ascii_lowercase())
                    {
                        out.insert(Excluded::DateTimeSubstring);
                    }
                } else if sub_millisecond(v) {
                    out.insert(Excluded::DateTimeSubMillisecond);
                }
            }
        }
        Filter::Present(_) => {}
        Filter::And(a, b) | Filter::Or(a, b) => {
            excluded_classes(a, in_value_path, out);
            excluded_classes(b, in_value_path, out);
        }
        Filter::Not(a) => excluded_classes(a, in_value_path, out),
        Filter::ValuePath { filter, .. } => excluded_classes(filter, true, out),
    }
}

// ---- the test ----------------------------------------------------------------------------

async fn list_ids(scim: &Scim, filter: &str) -> Result<BTreeSet<String>, String> {
    let res = scim
        .get(&format!("/Users?filter={}&count=1000", url_encode(filter)))
        .await;
    if res.status.as_u16() != 200 {
        return Err(format!("HTTP {}: {}", res.status, res.body));
    }
    let ids: BTreeSet<String> = res.body["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(res.body["totalResults"], ids.len(), "{filter}");
    Ok(ids)
}

fn ids_matching(users: &[Value], filter: &Filter) -> BTreeSet<String> {
    users
        .iter()
        .filter(|u| matches(filter, u, &case_exact))
        .map(|u| u["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn describe(
    text: &str,
    users: &[Value],
    got: &Result<BTreeSet<String>, String>,
    want: &BTreeSet<String>,
) -> String {
    let got = match got {
        Ok(got) => got,
        Err(e) => {
            return format!(
                "filter: {text}\n  SQL failed: {e}\n  model matches {} users\n",
                want.len()
            )
        }
    };
    let mut report = format!(
        "filter: {text}\n  SQL only: {:?}\n  model only: {:?}\n",
        got.difference(want).collect::<Vec<_>>(),
        want.difference(got).collect::<Vec<_>>()
    );
    let differing = users.iter().filter(|u| {
        let id = u["id"].as_str().unwrap_or_default();
        got.contains(id) != want.contains(id)
    });
    for u in differing.take(2) {
        report.push_str(&format!("  user: {u}\n"));
    }
    report
}

async fn sql_filters_agree_with_the_in_memory_matcher(backend: Backend) {
    let started = std::time::Instant::now();
    let seed = std::env::var("FILTER_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..USERS {
        scim.create_user(&person(&mut rng, i)).await;
    }
    let all = scim.get("/Users?count=1000").await;
    assert_eq!(all.status.as_u16(), 200, "{}", all.body);
    let users: Vec<Value> = all.body["Resources"].as_array().expect("Resources").clone();
    assert_eq!(users.len(), USERS);
    let modelled: Vec<Value> = users.iter().map(model_user).collect();

    let mut pool = BTreeSet::new();
    users.iter().for_each(|u| collect_strings(u, &mut pool));
    let mut gen = Gen {
        rng,
        users: &users,
        pool: pool.into_iter().collect(),
    };

    let mut failures = Vec::new();
    let mut selective = 0;
    let mut modelled_differences = 0;
    let mut excluded: std::collections::BTreeMap<Excluded, (usize, usize)> = Default::default();
    let mut excluded_examples = Vec::new();
    for _ in 0..FILTERS {
        let filter = gen.filter(0, None);
        let text = filter.to_string();
        assert_eq!(parse_filter(&text).as_ref(), Ok(&filter), "{text}");
        let raw = ids_matching(&users, &filter);
        let want = ids_matching(&modelled, &model_filter(&filter));
        if raw != want {
            modelled_differences += 1;
        }
        let got = list_ids(&scim, &text).await;
        let mut classes = BTreeSet::new();
        excluded_classes(&filter, false, &mut classes);
        for c in &classes {
            excluded.entry(*c).or_default().0 += 1;
        }
        if got.as_ref() == Ok(&want) {
            if !want.is_empty() && want.len() < USERS {
                selective += 1;
            }
            continue;
        }
        if classes.is_empty() {
            failures.push(describe(&text, &users, &got, &want));
        } else {
            for c in &classes {
                excluded.entry(*c).or_default().1 += 1;
            }
            if excluded_examples.len() < 12 {
                excluded_examples
                    .push(format!("{classes:?} {}", describe(&text, &[], &got, &want)));
            }
        }
    }
    eprintln!(
        "{backend:?} seed {seed}: {FILTERS} filters in {:?}; {selective} agreeing filters selected \
         some but not all users; {modelled_differences} filters where the raw matcher differs \
         from the model of known store choices; excluded classes (filters touching, of which \
         disagreeing): {excluded:?}; {} unexplained disagreements",
        started.elapsed(),
        failures.len(),
    );
    if std::env::var("FILTER_DIFF_VERBOSE").is_ok() {
        eprintln!("{}", excluded_examples.join("\n"));
    }
    assert!(
        failures.is_empty(),
        "{} of {FILTERS} filters disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Comparisons that do not fit the attribute's type are refused as invalidFilter
/// (RFC 7644 §3.4.2.2, §3.12), so the differential test does not generate them.
async fn type_mismatched_filters_are_invalid_filter(backend: Backend) {
    let app = spawn(backend).await;
    let (_, scim) = app.partner("acme").await;
    let end = format!("{GUEST}:accessEndDate");
    for bad in [
        "active gt true".to_string(),
        "active le false".to_string(),
        "emails.primary lt true".to_string(),
        "emails[primary ge false]".to_string(),
        r#"active eq "yes""#.to_string(),
        "meta.created co \"2025\"".to_string(),
        format!(r#"{end} gt "next week""#),
        format!(r#"{end} eq "2025-13-01T00:00:00Z""#),
    ] {
        let res = scim.filter_users(&bad).await;
        assert_eq!(res.status.as_u16(), 400, "{bad}: {}", res.body);
        res.assert_scim_error(400, Some("invalidFilter"));
    }
}
