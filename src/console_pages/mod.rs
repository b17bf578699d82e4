//! The admin console's page templates and assets, compiled into the binary. Templates
//! extend `layout.html` and fill its `title` and `main` blocks; names ending in `.html` are
//! rendered with HTML autoescaping, so a hostile userName shows as text.

use std::sync::OnceLock;

use minijinja::Environment;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("layout.html")),
    ("dashboard.html", include_str!("dashboard.html")),
    ("guests.html", include_str!("guests.html")),
    ("guest.html", include_str!("guest.html")),
    ("not_found.html", include_str!("not_found.html")),
];

/// The console's stylesheet, served at `/admin/assets/console.css`.
pub const CONSOLE_CSS: &str = include_str!("console.css");
/// The guest page's action buttons, served at `/admin/assets/console.js`.
pub const CONSOLE_JS: &str = include_str!("console.js");

fn environment() -> Result<&'static Environment<'static>, minijinja::Error> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    if let Some(env) = ENV.get() {
        return Ok(env);
    }
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    Ok(ENV.get_or_init(|| env))
}

/// Render a console page with this context.
pub fn render(name: &str, ctx: &serde_json::Value) -> Result<String, minijinja::Error> {
    environment()?
        .get_template(name)?
        .render(minijinja::Value::from(minijinja::value::Serde(ctx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        let env = environment().unwrap();
        for (name, _) in TEMPLATES {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }
}
