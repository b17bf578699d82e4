//! Values of a partner's quotas and allow-lists: e-mail domains, kept attributes and counts.

use std::ops::Range;

use super::FileCtx;
use crate::mapping::raw::{Node, RawValue};
use crate::scim_core::minimise::KeptPath;

impl FileCtx<'_> {
    /// A whole number from 1 to `max`.
    pub(super) fn count(&mut self, key: &str, value: &Node, max: i64) -> Option<u32> {
        match value.get_ref() {
            RawValue::Integer(n) if (1..=max).contains(n) => u32::try_from(*n).ok(),
            RawValue::Integer(n) => {
                self.error(
                    &value.span(),
                    format!("`{key}` must be from 1 to {max}, found {n}"),
                );
                None
            }
            _ => {
                self.wrong_type(key, value, "a whole number");
                None
            }
        }
    }

    /// A list of e-mail domains, lower-cased.
    pub(super) fn email_domains(&mut self, key: &str, value: &Node) -> Option<Vec<String>> {
        let items = self.list(key, value, |ctx, span, s| ctx.check_domain(key, span, s))?;
        Some(items.into_iter().map(|(s, _)| s).collect())
    }

    fn check_domain(&mut self, key: &str, span: &Range<usize>, s: String) -> Option<String> {
        let domain = s.to_ascii_lowercase();
        let ok = domain.contains('.')
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !ok {
            self.error(
                span,
                format!("`{key}`: \"{s}\" is not a domain name (such as \"acme.example\")"),
            );
            return None;
        }
        Some(domain)
    }

    /// A list of User attribute paths, spelled as the schema spells them.
    pub(super) fn kept_attributes(&mut self, key: &str, value: &Node) -> Option<Vec<String>> {
        let items = self.list(key, value, |ctx, span, s| match KeptPath::parse(&s) {
            Ok(path) => Some(path.canonical()),
            Err(reason) => {
                ctx.error(span, format!("`{key}`: {reason}"));
                None
            }
        })?;
        Some(items.into_iter().map(|(s, _)| s).collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::mapping::load::tests::{load, rule_error};
    use crate::mapping::PartnerLimits;

    #[test]
    fn reads_quotas_and_allow_lists() {
        let set = load(&[(
            "p.toml",
            "[[partner]]\nslug = \"acme\"\nallowed_email_domains = [\"Acme.Example\"]\n\
             max_people = 40\nkept_attributes = [\"USERNAME\", \"name.givenname\", \"emails\"]\n\
             scim_requests_per_second = 5\nscim_burst = 10\n",
        )]);
        assert_eq!(
            set.policy("acme").limits,
            PartnerLimits {
                allowed_email_domains: Some(vec!["acme.example".into()]),
                max_people: Some(40),
                kept_attributes: Some(vec![
                    "userName".into(),
                    "name.givenName".into(),
                    "emails".into()
                ]),
                scim_requests_per_second: Some(5),
                scim_burst: Some(10),
            }
        );
    }

    #[test]
    fn reports_wrong_values_at_their_line() {
        let p = "[[partner]]\nslug = \"ab\"\n";
        rule_error(
            &format!("{p}allowed_email_domains = [\"acme\"]\n"),
            3,
            "\"acme\" is not a domain name",
        );
        rule_error(
            &format!("{p}max_people = 0\n"),
            3,
            "`max_people` must be from 1",
        );
        rule_error(
            &format!("{p}kept_attributes = [\"shoeSize\"]\n"),
            3,
            "\"shoeSize\" is not a User attribute",
        );
        rule_error(
            &format!("{p}scim_requests_per_second = \"fast\"\n"),
            3,
            "`scim_requests_per_second` must be a whole number",
        );
    }
}
