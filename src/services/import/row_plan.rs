//! What one valid row does to the partner's people, decided as a SCIM create or PUT would.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::staged_rows::StagedRow;
use super::ImportIssue;
use crate::domain::Partner;
use crate::import::{Column, ENTERPRISE_USER_SCHEMA, GUEST_SCHEMA};
use crate::mapping::PartnerLimits;
use crate::scim_core::resource::{self, WriteMode};
use crate::scim_core::schema::USER_RESOURCE;
use crate::services::partner_limits;
use crate::services::users::User;

/// Remove from `doc` what the given file columns set, so that an empty cell clears the
/// attribute and attributes of columns the file does not have are kept.
fn clear_columns(doc: &mut Map<String, Value>, columns: &HashSet<Column>) {
    let ext = |doc: &mut Map<String, Value>, urn: &str, key: &str| {
        if let Some(Value::Object(m)) = doc.get_mut(urn) {
            m.remove(key);
            if m.is_empty() {
                doc.remove(urn);
            }
        }
    };
    for c in columns {
        match c {
            Column::UserName | Column::Groups => {}
            Column::ExternalId => {
                doc.remove("externalId");
            }
            Column::GivenName | Column::FamilyName => {
                let key = if *c == Column::GivenName {
                    "givenName"
                } else {
                    "familyName"
                };
                if let Some(Value::Object(name)) = doc.get_mut("name") {
                    name.remove(key);
                    if name.is_empty() {
                        doc.remove("name");
                    }
                }
            }
            Column::DisplayName => {
                doc.remove("displayName");
            }
            Column::Email => {
                doc.remove("emails");
            }
            Column::Phone => {
                doc.remove("phoneNumbers");
            }
            Column::Title => {
                doc.remove("title");
            }
            Column::Active => {
                doc.remove("active");
            }
            Column::Department => ext(doc, ENTERPRISE_USER_SCHEMA, "department"),
            Column::EmployeeNumber => ext(doc, ENTERPRISE_USER_SCHEMA, "employeeNumber"),
            Column::AccessEndDate => ext(doc, GUEST_SCHEMA, "accessEndDate"),
            Column::SponsorEmail => ext(doc, GUEST_SCHEMA, "sponsorEmail"),
        }
    }
}

/// Deep-merge `new` into `base` (objects merge, everything else replaces).
fn merge(base: &mut Map<String, Value>, new: Map<String, Value>) {
    for (k, v) in new {
        match (base.get_mut(&k), v) {
            (Some(Value::Object(b)), Value::Object(n)) => merge(b, n),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

pub(super) fn changed_attributes(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) -> Vec<String> {
    let mut keys: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(old.keys().filter(|k| !new.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// What a valid row does to the partner's people.
pub(super) enum RowPlan {
    Create {
        doc: Map<String, Value>,
    },
    Update {
        current: Box<User>,
        doc: Map<String, Value>,
    },
    Same {
        current: Box<User>,
    },
}

/// Decide what a row does, with the same validation as a SCIM create, or a SCIM PUT of the
/// stored document with the file's columns replaced; e-mail addresses at domains the partner
/// may not invite make the row an error, as they make a SCIM write a 400.
pub(super) fn plan_row(
    row: &StagedRow,
    existing: Option<User>,
    columns: &HashSet<Column>,
    (partner, limits): (&Partner, &PartnerLimits),
) -> Result<RowPlan, ImportIssue> {
    let issue = |e: crate::scim_core::error::ScimError| ImportIssue {
        line: row.line,
        column: None,
        reason: e.detail,
    };
    let incoming =
        resource::normalize(&row.scim, &USER_RESOURCE, WriteMode::Create).map_err(issue)?;
    partner_limits::check_email_domains(limits, partner, &incoming).map_err(issue)?;
    let Some(current) = existing else {
        return Ok(RowPlan::Create { doc: incoming });
    };
    let mut doc = current.doc.clone();
    clear_columns(&mut doc, columns);
    merge(&mut doc, incoming);
    let mut doc = resource::normalize(
        &Value::Object(doc),
        &USER_RESOURCE,
        WriteMode::Replace {
            id: &current.row.id,
        },
    )
    .map_err(issue)?;
    doc.entry("active").or_insert(Value::Bool(true));
    // Compared as it would be stored, so that a column the partner's attributes do not keep
    // leaves a row unchanged rather than rewriting the person each import.
    partner_limits::minimise(limits, &mut doc);
    Ok(if doc == current.doc {
        RowPlan::Same {
            current: Box::new(current),
        }
    } else {
        RowPlan::Update {
            current: Box::new(current),
            doc,
        }
    })
}
