//! One import run's state, and applying a chunk of rows to the partner's people.

use std::collections::{HashMap, HashSet};

use serde_json::Map;

use super::row_plan::{changed_attributes, plan_row, RowPlan};
use super::staged_rows::StagedRow;
use super::{ImportChange, ImportError, ImportIssue, ImportOptions, ImportReport};
use super::{MAX_KEPT_ERRORS, MAX_LISTED};
use crate::domain::Partner;
use crate::import::Column;
use crate::services::{groups, partner_limits, users, Actor, Deps};
use crate::store::groups as group_store;
use crate::store::work::Work;

/// What one import run has seen and decided so far.
pub(super) struct Run<'a> {
    pub(super) deps: &'a Deps,
    pub(super) actor: &'a Actor,
    pub(super) partner: &'a Partner,
    pub(super) opts: &'a ImportOptions,
    pub(super) via: String,
    pub(super) columns: HashSet<Column>,
    pub(super) groups: HashMap<String, (String, String)>,
    pub(super) report: ImportReport,
}

impl Run<'_> {
    pub(super) fn error(&mut self, issue: ImportIssue) {
        self.report.error_count += 1;
        if self.report.errors.len() < MAX_KEPT_ERRORS {
            self.report.errors.push(issue);
        }
    }

    pub(super) fn change(
        &mut self,
        line: Option<u64>,
        user_name: &str,
        action: &'static str,
        attributes: Vec<String>,
    ) {
        match action {
            "created" => self.report.created += 1,
            "updated" => self.report.updated += 1,
            _ => self.report.deactivated += 1,
        }
        if self.report.changes.len() < MAX_LISTED {
            self.report.changes.push(ImportChange {
                line,
                user_name: user_name.to_string(),
                action,
                attributes,
            });
        } else {
            self.report.changes_truncated = true;
        }
    }

    /// Look up a chunk's people, then apply (or, in a dry run, only classify) each row.
    pub(super) async fn chunk(
        &mut self,
        w: &mut Work,
        rows: Vec<StagedRow>,
    ) -> Result<(), ImportError> {
        let names: Vec<String> = rows.iter().map(|r| r.user_name.clone()).collect();
        let mut existing = users::find_many_in(w, self.partner, &names).await?;
        let with_groups = self.columns.contains(&Column::Groups);
        let memberships = if self.opts.dry_run && with_groups {
            let ids: Vec<&str> = existing.values().map(|u| u.row.id.as_str()).collect();
            group_store::groups_of_users(w.conn().await?, &ids).await?
        } else {
            Vec::new()
        };
        let limits = self.deps.rules().policy(self.partner.slug.as_str()).limits;
        for row in rows {
            let current = existing.remove(&row.user_name.to_lowercase());
            let plan = match plan_row(&row, current, &self.columns, (self.partner, &limits)) {
                Ok(plan) => plan,
                Err(issue) => {
                    self.error(issue);
                    continue;
                }
            };
            if self.opts.dry_run {
                self.classify(&row, plan, with_groups, &memberships);
            } else {
                self.apply(w, &row, plan, with_groups).await?;
            }
        }
        Ok(())
    }

    /// Apply a row through the paths SCIM writes take.
    async fn apply(
        &mut self,
        w: &mut Work,
        row: &StagedRow,
        plan: RowPlan,
        with_groups: bool,
    ) -> Result<(), ImportError> {
        let (deps, actor, partner) = (self.deps, self.actor, self.partner);
        let via = self.via.clone();
        match plan {
            RowPlan::Create { doc } => {
                // A row past the partner's `max_people` is that row's error, not the run's;
                // checked before its groups are made.
                let limits = deps.rules().policy(partner.slug.as_str()).limits;
                if doc.get("active") != Some(&serde_json::Value::Bool(false)) {
                    match partner_limits::check_room(w, &limits, partner).await {
                        Ok(()) => {}
                        Err(crate::services::ServiceError::Invalid(e)) => {
                            self.error(ImportIssue {
                                line: row.line,
                                column: None,
                                reason: e.detail,
                            });
                            return Ok(());
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                let attributes = changed_attributes(&Map::new(), &doc);
                let groups = if with_groups && !row.groups.is_empty() {
                    groups::resolve_groups(
                        w,
                        deps,
                        actor,
                        partner,
                        &row.groups,
                        &mut self.groups,
                        &via,
                    )
                    .await?
                } else {
                    Vec::new()
                };
                let user = users::insert_in(w, deps, actor, partner, doc, &via, &groups).await?;
                groups::queue_memberships(w, deps, actor, partner, &user.row.id, &groups, &via);
                self.change(Some(row.line), &row.user_name, "created", attributes);
            }
            RowPlan::Update { current, doc } => {
                let mut attributes = changed_attributes(&current.doc, &doc);
                if with_groups {
                    let (changed, _) = groups::set_user_groups_in(
                        w,
                        deps,
                        actor,
                        partner,
                        &current.row.id,
                        &row.groups,
                        &mut self.groups,
                        &via,
                    )
                    .await?;
                    if changed {
                        attributes.push("groups".into());
                    }
                }
                users::update_in(
                    w,
                    deps,
                    actor,
                    partner,
                    &current,
                    doc,
                    "user.imported",
                    &via,
                )
                .await?;
                self.change(Some(row.line), &row.user_name, "updated", attributes);
            }
            RowPlan::Same { current } => {
                let changed = with_groups && {
                    let (changed, groups) = groups::set_user_groups_in(
                        w,
                        deps,
                        actor,
                        partner,
                        &current.row.id,
                        &row.groups,
                        &mut self.groups,
                        &via,
                    )
                    .await?;
                    if changed {
                        let known = users::Known::existing(&groups);
                        users::reconcile_user(
                            w,
                            deps,
                            actor,
                            partner,
                            &current.row,
                            &current.doc,
                            &via,
                            known,
                        )
                        .await?;
                    }
                    changed
                };
                if changed {
                    self.change(
                        Some(row.line),
                        &row.user_name,
                        "updated",
                        vec!["groups".into()],
                    );
                } else {
                    self.report.unchanged += 1;
                }
            }
        }
        w.flush_if_large().await?;
        Ok(())
    }
}
