//! An administrator's word on one app of a guest (extend it to a date, revoke it now) is kept
//! on the guest's grant rows of that app, as the bound that ends them (`ends_by`), so that
//! every later decision of the rules (a SCIM write, a rule reload, a group change) reads it
//! with the grants it already loads and keeps it instead of undoing it. No extra query runs
//! on the write path for it.

use std::collections::BTreeMap;

use crate::clock::from_millis;
use crate::mapping::Decision;
use crate::store::guests::GrantRow;

/// `ends_by` of grants an administrator extended to their `valid_until`.
pub const EXTENDED: &str = "admin_extension";
/// `ends_by` of grants an administrator revoked at their `valid_until`.
pub const REVOKED: &str = "admin_revocation";

/// An administrator's override of one app: its end and which kind it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Override {
    pub until: Option<i64>,
    pub marker: &'static str,
}

/// The overrides recorded on a guest's grants, by app.
pub fn recorded(grants: &[GrantRow]) -> BTreeMap<String, Override> {
    let mut out = BTreeMap::new();
    for g in grants {
        let marker = match g.ends_by.as_deref() {
            Some(EXTENDED) => EXTENDED,
            Some(REVOKED) => REVOKED,
            _ => continue,
        };
        out.insert(
            g.app_id.clone(),
            Override {
                until: g.valid_until,
                marker,
            },
        );
    }
    out
}

/// Make the rules' decision honour the overrides recorded on `grants`: every grant of an
/// overridden app ends where the administrator said (including a grant a new rule adds for
/// that app). Returns the overrides applied, for [`mark`].
pub fn respect(decision: &mut Decision, grants: &[GrantRow]) -> BTreeMap<String, Override> {
    let overrides = recorded(grants);
    if overrides.is_empty() {
        return overrides;
    }
    for g in &mut decision.grants {
        if let Some(o) = overrides.get(&g.app) {
            g.valid_until = o.until.map(from_millis);
            g.ends_by = None;
        }
    }
    overrides
}

/// Record on the grants about to be written which bound ends them: the administrator's.
pub fn mark(desired: &mut [GrantRow], overrides: &BTreeMap<String, Override>) {
    for g in desired {
        if let Some(o) = overrides.get(&g.app_id) {
            g.valid_until = o.until;
            g.ends_by = Some(o.marker.to_string());
        }
    }
}
