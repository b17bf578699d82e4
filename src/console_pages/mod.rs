//! The admin console's page templates and assets, compiled into the binary (the frame's
//! styles inline; the tables' stylesheet and the action buttons' script served from this
//! origin, which is all the CSP allows) and rendered with autoescaping. `layout.html` is the frame
//! every console page extends: header with the signed-in name and role and a sign-out
//! button, the console's navigation, a skip link.

use std::sync::OnceLock;

use minijinja::Environment;

const PAGES: &[(&str, &str)] = &[
    ("layout.html", include_str!("layout.html")),
    ("login.html", include_str!("login.html")),
    ("setup.html", include_str!("setup.html")),
    ("message.html", include_str!("message.html")),
    ("home.html", include_str!("home.html")),
    ("landing.html", include_str!("landing.html")),
    ("dashboard.html", include_str!("dashboard.html")),
    ("guests.html", include_str!("guests.html")),
    ("guest.html", include_str!("guest.html")),
    ("not_found.html", include_str!("not_found.html")),
    ("jobs.html", include_str!("jobs.html")),
    ("job_runs.html", include_str!("job_runs.html")),
    ("sync.html", include_str!("sync.html")),
    ("audit.html", include_str!("audit.html")),
    ("guest_new.html", include_str!("guest_new.html")),
    ("imports.html", include_str!("imports.html")),
    ("import.html", include_str!("import.html")),
    ("partners.html", include_str!("partners.html")),
    ("partner.html", include_str!("partner.html")),
    ("mappings.html", include_str!("mappings.html")),
];

/// The console pages' stylesheet, served at `/admin/assets/console.css`.
pub const CONSOLE_CSS: &str = include_str!("console.css");
/// The guest page's action buttons, served at `/admin/assets/console.js`.
pub const CONSOLE_JS: &str = include_str!("console.js");

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in PAGES {
            // The templates are part of the binary; the test below renders each of them.
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("console template {name}: {e}"));
        }
        env
    })
}

/// Render a console page; a new page is one more line in `PAGES`.
pub fn render(name: &str, ctx: &serde_json::Value) -> Result<String, minijinja::Error> {
    env()
        .get_template(name)?
        .render(minijinja::Value::from(minijinja::value::Serde(ctx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_and_escapes() {
        let user = serde_json::json!({"name": "<b>Ann</b>", "role": "auditor"});
        // The pages over data (dashboard, guests, guest, not found) need their figures; the
        // console_pages integration tests render those from a real database.
        const OVER_DATA: &[&str] = &[
            "dashboard.html",
            "guests.html",
            "guest.html",
            "not_found.html",
            "import.html",
            "partner.html",
            "mappings.html",
        ];
        for (name, _) in PAGES.iter().filter(|(n, _)| !OVER_DATA.contains(n)) {
            let out = render(
                name,
                &serde_json::json!({"user": user, "csrf": "c", "heading": "h", "text": "t", "token": "t", "login_name": "n", "min_length": 12, "public_url": "https://gb.example", "organization": "Org", "role_text": "r", "active": "dashboard"}),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!out.contains("<b>Ann</b>"), "{name}");
        }
        let home = render("home.html", &serde_json::json!({"user": user, "csrf": "c", "role_text": "r", "active": "dashboard"})).unwrap();
        assert!(
            home.contains("Signed in as <strong>&lt;b&gt;Ann&lt;&#x2f;b&gt;</strong> (auditor)")
        );
        assert!(home.contains("aria-current=\"page\""));
        assert!(home.contains("href=\"#main\""));
    }
}
