//! The guest portal's page templates, compiled into the binary and rendered with autoescaping.
//! A leaf: the shared application state holds them, and the portal handlers render them.

use minijinja::Environment;

pub struct Pages {
    env: Environment<'static>,
}

const PAGES: &[(&str, &str)] = &[
    ("layout.html", include_str!("layout.html")),
    ("invite.html", include_str!("invite.html")),
    ("message.html", include_str!("message.html")),
    ("mfa_setup.html", include_str!("mfa_setup.html")),
    ("mfa_verify.html", include_str!("mfa_verify.html")),
    ("apps.html", include_str!("apps.html")),
    ("signin.html", include_str!("signin.html")),
    ("signin_link.html", include_str!("signin_link.html")),
    ("passkeys.html", include_str!("passkeys.html")),
];

impl Pages {
    pub fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        for (name, source) in PAGES {
            env.add_template(name, source)?;
        }
        Ok(Pages { env })
    }

    /// Render a page; `organization` is available to every page.
    pub fn render(
        &self,
        name: &str,
        organization: &str,
        mut ctx: serde_json::Value,
    ) -> Result<String, minijinja::Error> {
        if let Some(obj) = ctx.as_object_mut() {
            obj.insert(
                "organization".into(),
                serde_json::Value::String(organization.to_string()),
            );
        }
        self.env
            .get_template(name)?
            .render(minijinja::Value::from(minijinja::value::Serde(&ctx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_and_escapes() {
        let pages = Pages::new().unwrap();
        let out = pages
            .render(
                "invite.html",
                "St Elsewhere",
                serde_json::json!({"token": "t", "guest_name": "<script>x</script>", "partner_name": "P", "apps": [], "shared": [], "csrf": "c", "consent_version": "v", "sponsor_text": "s"}),
            )
            .unwrap();
        assert!(out.contains("&lt;script&gt;"));
        assert!(out.contains("St Elsewhere invites you"));
        for name in [
            "message.html",
            "mfa_setup.html",
            "mfa_verify.html",
            "apps.html",
            "signin.html",
            "signin_link.html",
        ] {
            assert!(
                pages
                    .render(name, "Org", serde_json::json!({"csrf": "c"}))
                    .is_ok(),
                "{name}"
            );
        }
    }
}
