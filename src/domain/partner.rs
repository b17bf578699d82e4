//! Partner organisations: the tenants whose HR systems push people to us.

use std::fmt;

/// A partner's short, URL-safe name: 2–40 characters of `a-z`, `0-9` and `-`,
/// starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartnerSlug(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("partner slug {0:?} must be 2-40 characters of a-z, 0-9 and '-', starting with a letter")]
pub struct InvalidSlug(pub String);

impl PartnerSlug {
    pub fn parse(s: &str) -> Result<Self, InvalidSlug> {
        let ok = (2..=40).contains(&s.len())
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(PartnerSlug(s.to_string()))
        } else {
            Err(InvalidSlug(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartnerSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A registered partner organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    pub id: String,
    pub slug: PartnerSlug,
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_checked() {
        assert!(PartnerSlug::parse("acme").is_ok());
        assert!(PartnerSlug::parse("st-mary-2").is_ok());
        for bad in ["a", "Acme", "9lives", "acme_health", "", "a b"] {
            assert!(PartnerSlug::parse(bad).is_err(), "{bad}");
        }
    }
}
