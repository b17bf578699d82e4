//! `guestbridge demo`: seeds an empty database so a newcomer sees a living console: the two
//! partners of the shipped `mappings/`, and a few hundred people sent through the same SCIM
//! service path partners use, so guests, grants, invitations and audit entries are real.
//! States vary: invited, awaiting approval (Northside approves by hand), approved,
//! deactivated (suspended), and past their partner's end date (the expiry job suspends
//! them); some grants end within 90 days. A second run finds the partners and changes
//! nothing.

use serde_json::{json, Value};

use crate::config::Settings;
use crate::domain::{Partner, PartnerSlug};
use crate::scim_core::schema::GUEST_SCHEMA;
use crate::services::{self, Actor, Deps};

const CORE: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// People per partner: St Mary's, then Northside.
const PEOPLE: [(&str, &str, usize); 2] = [
    ("st-mary", "St Mary's Hospital", 200),
    ("northside", "Northside Hospital", 100),
];
const GIVEN: &[&str] = &[
    "Ann", "Bram", "Chloe", "Daan", "Emma", "Finn", "Greta", "Hugo", "Iris", "Jonas", "Katja",
    "Lars", "Mila", "Noah", "Olga", "Pim", "Rosa", "Sven", "Tess", "Vera",
];
const FAMILY: &[&str] = &[
    "de Vries", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "Mulder", "Bos", "Vos", "Peters",
    "Hendriks", "Dekker", "Brouwer", "Dijkstra", "Kok",
];
/// (title, department): the shipped rules grant each something, except porters.
const ROLES: &[(&str, &str)] = &[
    ("Staff Nurse", "Cardiology"),
    ("Physician", "Internal Medicine"),
    ("Consultant", "Oncology"),
    ("Radiographer", "Radiology"),
    ("Staff Nurse", "Cardiology"),
    ("Porter", "Facilities"),
];

/// What a run did.
#[derive(Debug, Default)]
pub struct DemoReport {
    pub already_seeded: bool,
    pub people: usize,
    pub guests: usize,
    pub approved: usize,
    pub deactivated: usize,
    /// What the expiry job did to the people whose end date had passed.
    pub expiry: String,
}

fn actor() -> Actor {
    Actor {
        label: "cli:demo".into(),
        request_id: None,
    }
}

fn person(i: usize, partner: &str, now: chrono::DateTime<chrono::Utc>) -> Value {
    let given = GIVEN[i % GIVEN.len()];
    let family = FAMILY[(i / GIVEN.len() + i) % FAMILY.len()];
    let (title, department) = ROLES[i % ROLES.len()];
    let login = format!(
        "{}.{}{i}",
        given.to_lowercase(),
        family.to_lowercase().replace(' ', "")
    );
    let mut doc = json!({
        "schemas": [CORE, ENTERPRISE, GUEST_SCHEMA],
        "userName": format!("{login}@{partner}.example"),
        "name": {"givenName": given, "familyName": family},
        "displayName": format!("{given} {family}"),
        "title": title,
        "emails": [{"value": format!("{login}@{partner}.example"), "type": "work", "primary": true}],
        ENTERPRISE: {"department": department, "employeeNumber": format!("{:05}", 10_000 + i)},
    });
    // Every 13th person's contract already ended (the expiry job will act on it); every
    // 7th ends within the next weeks, so the dashboard's chart has something to show.
    let end = if i % 13 == 5 {
        Some(now - chrono::Duration::days(2))
    } else if i % 7 == 1 {
        Some(now + chrono::Duration::days(10 + (i as i64 * 11) % 70))
    } else {
        None
    };
    if let Some(end) = end {
        doc[GUEST_SCHEMA] = json!({"accessEndDate": crate::clock::to_rfc3339(end)});
    }
    doc
}

/// Seed the demo; on a database that already has partners, change nothing.
pub async fn seed(deps: &Deps, settings: &Settings) -> anyhow::Result<DemoReport> {
    let existing = services::partners::list_partners(deps).await?;
    if !existing.is_empty() {
        let demo = PEOPLE
            .iter()
            .all(|(slug, _, _)| existing.iter().any(|p| p.slug.as_str() == *slug));
        anyhow::ensure!(
            demo,
            "the database already has partners; `demo` seeds only an empty database"
        );
        return Ok(DemoReport {
            already_seeded: true,
            ..Default::default()
        });
    }
    let now = deps.clock.now();
    let mut report = DemoReport::default();
    for (slug, name, count) in PEOPLE {
        let slug = PartnerSlug::parse(slug)?;
        let partner: Partner = services::partners::add_partner(deps, &actor(), &slug, name).await?;
        for i in 0..count {
            let doc = person(i, slug.as_str(), now);
            let user = services::users::create(deps, &actor(), &partner, &doc).await?;
            report.people += 1;
            let guest = {
                let mut conn = deps.db.pool().acquire().await?;
                crate::store::guests::find_by_user(&mut conn, &user.row.id).await?
            };
            let Some(guest) = guest else { continue };
            report.guests += 1;
            // Northside approves by hand: approve two in three, leave the rest waiting.
            if guest.state == "pending_approval" && i % 3 != 0 {
                services::lifecycle::approve(deps, &actor(), &guest.id).await?;
                report.approved += 1;
            }
            if i % 10 == 3 {
                let mut off = doc.clone();
                off["active"] = json!(false);
                services::users::replace(deps, &actor(), &partner, &user.row.id, &off, None)
                    .await?;
                report.deactivated += 1;
            }
        }
    }
    let expiry = crate::jobs::run_once("expiry", deps, settings, None, now, "demo").await?;
    report.expiry = format!("{:?}", expiry.counts);
    Ok(report)
}
