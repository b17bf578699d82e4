//! Realistic, reproducible rosters of a partner hospital's people for the benchmarks: names,
//! departments, titles, cost centres, e-mail and phone, the enterprise and Guestbridge guest
//! extensions, and group memberships. Person `i` of a roster depends only on the seed, the
//! partner and `i`, so any person can be regenerated on demand (a load generator picks a
//! random existing `userName` without keeping a list) and two runs with the same seed send
//! the same data.

use serde_json::{json, Value};

/// SplitMix64: tiny, fast and stable across crate versions, so figures stay comparable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// Pick by weight: `(item, weight)`.
    pub fn weighted<'a>(&mut self, items: &[(&'a str, u64)]) -> &'a str {
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.below(total);
        for (item, w) in items {
            if x < *w {
                return item;
            }
            x -= w;
        }
        items[items.len() - 1].0
    }
}

const GIVEN: [&str; 48] = [
    "Ann", "Bram", "Chloe", "Daan", "Emma", "Finn", "Grace", "Hugo", "Isla", "Jasper", "Kim",
    "Lars", "Mila", "Noah", "Olivia", "Pieter", "Quinn", "Ruth", "Sem", "Tess", "Umar", "Vera",
    "Wim", "Xander", "Yara", "Zoe", "Amira", "Bas", "Carmen", "Dirk", "Eva", "Fatima", "Gijs",
    "Hanna", "Ivo", "Julia", "Koen", "Lotte", "Mohamed", "Nina", "Oscar", "Priya", "Rik", "Sara",
    "Tom", "Ilse", "Wouter", "Liam",
];
const FAMILY: [&str; 48] = [
    "Lee",
    "de Vries",
    "Jansen",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "de Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "van Dijk",
    "Dekker",
    "Brouwer",
    "de Wit",
    "Dijkstra",
    "Smits",
    "de Graaf",
    "van der Meer",
    "Kok",
    "Jacobs",
    "Haan",
    "Vermeulen",
    "van den Berg",
    "van der Linden",
    "Schouten",
    "Willems",
    "Hoekstra",
    "Koster",
    "Prins",
    "Huisman",
    "Peeters",
    "Kuipers",
    "Postma",
    "Verhoeven",
    "Maas",
    "Evers",
    "Koning",
    "O'Brien",
    "Murphy",
    "Okafor",
    "Nguyen",
    "Kowalski",
    "García",
    "Öztürk",
];
/// Departments with how common they are in a hospital's staff.
pub const DEPARTMENTS: [(&str, u64); 14] = [
    ("Cardiology", 9),
    ("Radiology", 7),
    ("Oncology", 7),
    ("Emergency", 10),
    ("Paediatrics", 7),
    ("Neurology", 5),
    ("Surgery", 10),
    ("Pharmacy", 4),
    ("Intensive Care", 8),
    ("Maternity", 6),
    ("Orthopaedics", 6),
    ("Geriatrics", 6),
    ("Laboratory", 5),
    ("Administration", 10),
];
/// Titles with how common they are.
pub const TITLES: [(&str, u64); 14] = [
    ("Nurse", 22),
    ("Senior Nurse", 8),
    ("Nurse Practitioner", 3),
    ("Healthcare Assistant", 10),
    ("Physician", 8),
    ("Consultant", 5),
    ("Registrar", 5),
    ("Radiographer", 4),
    ("Pharmacist", 3),
    ("Midwife", 3),
    ("Physiotherapist", 4),
    ("Laboratory Technician", 4),
    ("Student Nurse", 6),
    ("Ward Clerk", 5),
];
/// The groups a partner pushes; membership odds in percent.
pub const GROUPS: [(&str, u64); 8] = [
    ("ICU Staff", 6),
    ("Night Shift", 20),
    ("Fire Wardens", 3),
    ("Cardiology Ward", 5),
    ("Theatre", 7),
    ("Students", 5),
    ("Locums", 4),
    ("Research", 2),
];
const LANGUAGES: [&str; 4] = ["nl", "en", "en", "nl"];

/// One partner's people.
#[derive(Debug, Clone)]
pub struct Roster {
    seed: u64,
    /// The partner's slug, also used as its mail domain (`st-mary` → `stmary.example`).
    pub partner: String,
    pub organization: String,
    domain: String,
}

/// A generated person: the SCIM body to POST and the groups they belong to.
#[derive(Debug, Clone)]
pub struct Person {
    pub index: u64,
    pub user_name: String,
    pub body: Value,
    pub groups: Vec<&'static str>,
}

impl Roster {
    pub fn new(seed: u64, partner: &str, organization: &str) -> Self {
        Roster {
            seed,
            partner: partner.to_string(),
            organization: organization.to_string(),
            domain: format!("{}.example", partner.replace('-', "")),
        }
    }

    fn rng(&self, index: u64) -> Rng {
        let mut h = Rng::new(self.seed);
        for b in self.partner.bytes() {
            h = Rng::new(h.next_u64() ^ u64::from(b));
        }
        Rng::new(h.next_u64() ^ index.wrapping_mul(0xA076_1D64_78BD_642F))
    }

    fn names(&self, rng: &mut Rng) -> (&'static str, &'static str) {
        (rng.pick(&GIVEN), rng.pick(&FAMILY))
    }

    /// The `userName` of person `index`, without building the whole person.
    pub fn user_name(&self, index: u64) -> String {
        let mut rng = self.rng(index);
        let (given, family) = self.names(&mut rng);
        self.user_name_of(given, family, index)
    }

    fn user_name_of(&self, given: &str, family: &str, index: u64) -> String {
        let family: String = family
            .chars()
            .filter(char::is_ascii_alphabetic)
            .collect::<String>()
            .to_lowercase();
        format!("{}.{family}.{index}@{}", given.to_lowercase(), self.domain)
    }

    /// Person `index` of this roster.
    pub fn person(&self, index: u64) -> Person {
        let mut rng = self.rng(index);
        let (given, family) = self.names(&mut rng);
        let user_name = self.user_name_of(given, family, index);
        let department = rng.weighted(&DEPARTMENTS);
        let title = rng.weighted(&TITLES);
        let active = rng.chance(97);
        let mut emails = vec![json!({"value": user_name, "type": "work", "primary": true})];
        if rng.chance(30) {
            emails.push(json!({
                "value": format!("{}{}@mail.example", given.to_lowercase(), rng.below(1000)),
                "type": "home"
            }));
        }
        let mut guest = serde_json::Map::new();
        guest.insert("homeOrganization".into(), json!(self.organization));
        if rng.chance(70) {
            guest.insert(
                "professionalRegistration".into(),
                json!(format!("BIG-{:011}", rng.below(100_000_000_000))),
            );
        }
        if rng.chance(30) {
            guest.insert(
                "accessEndDate".into(),
                json!(format!(
                    "{}-{:02}-{:02}T00:00:00Z",
                    2026 + rng.below(2),
                    1 + rng.below(12),
                    1 + rng.below(28)
                )),
            );
        }
        if rng.chance(20) {
            guest.insert(
                "sponsorEmail".into(),
                json!(format!(
                    "{}@hospital.example",
                    rng.pick(&GIVEN).to_lowercase()
                )),
            );
        }
        let groups: Vec<&'static str> = GROUPS
            .iter()
            .filter(|(_, odds)| rng.chance(*odds))
            .map(|(g, _)| *g)
            .collect();
        let body = json!({
            "schemas": [
                "urn:ietf:params:scim:schemas:core:2.0:User",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
                "urn:guestbridge:params:scim:schemas:extension:guest:1.0:User"
            ],
            "userName": user_name,
            "externalId": format!("{}-{index:07}", self.partner.to_uppercase()),
            "name": {
                "givenName": given,
                "familyName": family,
                "formatted": format!("{given} {family}")
            },
            "displayName": format!("{given} {family}"),
            "title": title,
            "userType": if title == "Student Nurse" { "Student" } else { "Employee" },
            "preferredLanguage": rng.pick(&LANGUAGES),
            "active": active,
            "emails": emails,
            "phoneNumbers": [{
                "value": format!("+31 20 {:03} {:04}", rng.below(1000), rng.below(10_000)),
                "type": "work"
            }],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": format!("E-{index}"),
                "costCenter": format!("CC-{}", rng.below(40)),
                "organization": self.organization,
                "division": format!("Division {}", rng.below(7)),
                "department": department
            },
            "urn:guestbridge:params:scim:schemas:extension:guest:1.0:User": guest
        });
        Person {
            index,
            user_name,
            body,
            groups,
        }
    }

    /// The indexes in `0..people` of the members of `group`, in order.
    pub fn members_of(&self, group: &str, people: u64) -> Vec<u64> {
        (0..people)
            .filter(|i| self.person(*i).groups.contains(&group))
            .collect()
    }
}
