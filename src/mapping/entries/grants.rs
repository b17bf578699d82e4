//! The `grants` of a rule: inline tables of an app and a role.

use std::ops::Range;

use super::{FileCtx, GRANT_KEYS};
use crate::mapping::model::GrantSpec;
use crate::mapping::raw::{Node, RawValue};

impl FileCtx<'_> {
    /// The grants that parsed, with their spans; the others are reported.
    pub(super) fn grants(&mut self, key: &str, value: &Node) -> Vec<(GrantSpec, Range<usize>)> {
        const EXPECTED: &str =
            "an array of tables such as [{ app = \"ehr-viewer\", role = \"reader\" }]";
        let RawValue::Array(items) = value.get_ref() else {
            self.wrong_type(key, value, EXPECTED);
            return Vec::new();
        };
        if items.is_empty() {
            self.error(
                &value.span(),
                format!("`{key}` must not be empty: a rule grants at least one app role"),
            );
        }
        let mut out: Vec<(GrantSpec, Range<usize>)> = Vec::with_capacity(items.len());
        for item in items {
            let RawValue::Table(table) = item.get_ref() else {
                self.error(
                    &item.span(),
                    format!(
                        "`{key}` must be {EXPECTED}, found {} in it",
                        item.get_ref().type_name()
                    ),
                );
                continue;
            };
            self.require(table, &item.span(), "a grant", GRANT_KEYS);
            let (mut app, mut role) = (None, None);
            for (k, v) in table {
                match k.as_str() {
                    "app" => app = self.app_id(k, v),
                    "role" => role = self.text(k, v),
                    other => self.unknown_key("a grant", other, v, GRANT_KEYS),
                }
            }
            let (Some(app), Some(role)) = (app, role) else {
                continue;
            };
            let grant = GrantSpec { app, role };
            if out.iter().any(|(g, _)| *g == grant) {
                self.error(
                    &item.span(),
                    format!("`{key}` lists {} / {} twice", grant.app, grant.role),
                );
                continue;
            }
            out.push((grant, item.span()));
        }
        out
    }
}
