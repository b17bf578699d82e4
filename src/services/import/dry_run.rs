//! A dry run's diff: the change each row would make, from what is stored, writing nothing.

use std::collections::HashSet;

use serde_json::Map;

use super::import_run::Run;
use super::row_plan::{changed_attributes, RowPlan};
use super::staged_rows::StagedRow;
use crate::services::users::User;

impl Run<'_> {
    /// Dry run: the change a row would make, from what is stored.
    pub(super) fn classify(
        &mut self,
        row: &StagedRow,
        plan: RowPlan,
        with_groups: bool,
        memberships: &[(String, String, String)],
    ) {
        let groups_change = |user: &User| {
            if !with_groups {
                return false;
            }
            let have: HashSet<String> = memberships
                .iter()
                .filter(|(member, _, _)| *member == user.row.id)
                .map(|(_, _, name)| name.to_lowercase())
                .collect();
            let want: HashSet<String> = row.groups.iter().map(|g| g.to_lowercase()).collect();
            have != want
        };
        match plan {
            RowPlan::Create { doc } => {
                let attributes = changed_attributes(&Map::new(), &doc);
                self.change(Some(row.line), &row.user_name, "created", attributes);
            }
            RowPlan::Update { current, doc } => {
                let mut attributes = changed_attributes(&current.doc, &doc);
                if groups_change(&current) {
                    attributes.push("groups".into());
                }
                self.change(Some(row.line), &row.user_name, "updated", attributes);
            }
            RowPlan::Same { current } if groups_change(&current) => {
                self.change(
                    Some(row.line),
                    &row.user_name,
                    "updated",
                    vec!["groups".into()],
                );
            }
            RowPlan::Same { .. } => self.report.unchanged += 1,
        }
    }
}
