//! What the guest-facing services need beyond the database: the sealing key, mail
//! templates, the public URL and the host organisation's name, and a way to wake the mail
//! sender when something is queued.

use std::path::Path;

use anyhow::Context;

use crate::auth::secrets::SecretBox;
use crate::config::Settings;
use crate::mail::templates::{invitation_variant, Templates, DEFAULT_LANG};
use crate::mapping::RuleSet;

pub struct PortalEnv {
    pub secrets: SecretBox,
    pub templates: Templates,
    pub public_url: String,
    pub organization: String,
    pub invitation_days: u32,
    /// Days after an invitation until its first reminder is due.
    pub reminder_after_days: u32,
    /// Whether cookies must be Secure (the public URL is https).
    pub secure_cookies: bool,
    /// Names of the outbound sync targets (events are queued for each).
    pub sync_targets: Vec<String>,
    /// Signalled when a sync event is queued.
    pub sync_queued: tokio::sync::Notify,
    /// Signalled when mail is queued, so the sender does not wait for its next poll.
    pub mail_queued: tokio::sync::Notify,
}

impl std::fmt::Debug for PortalEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalEnv")
            .field("public_url", &self.public_url)
            .field("organization", &self.organization)
            .finish_non_exhaustive()
    }
}

impl PortalEnv {
    /// From the settings: the key from `portal.secret_key`, or the key file (created with a
    /// new random key on first start, readable by the owner only).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        use secrecy::ExposeSecret;
        let p = &settings.portal;
        let secrets = match &p.secret_key {
            Some(k) => SecretBox::from_setting(k.expose_secret())?,
            None => load_or_create_key(&p.secret_key_file)?,
        };
        let template_dir = settings.mappings_dir.join("templates");
        let templates = Templates::load(template_dir.is_dir().then_some(template_dir.as_path()))
            .map_err(|e| anyhow::anyhow!("invalid mail templates: {}", e.join("; ")))?;
        Ok(PortalEnv {
            secrets,
            templates,
            public_url: settings.http.public_url.clone(),
            organization: p.organization.clone(),
            invitation_days: p.invitation_days,
            reminder_after_days: settings.jobs.reminder_after_days,
            secure_cookies: settings.http.public_url.starts_with("https://"),
            mail_queued: tokio::sync::Notify::new(),
            sync_targets: settings
                .sync
                .targets
                .iter()
                .map(|t| t.name.clone())
                .collect(),
            sync_queued: tokio::sync::Notify::new(),
        })
    }
}

fn load_or_create_key(path: &Path) -> anyhow::Result<SecretBox> {
    if path.exists() {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the secret key file {}", path.display()))?;
        return SecretBox::from_setting(text.trim()).with_context(|| {
            format!(
                "setting portal.secret_key_file: {} does not hold a valid key",
                path.display()
            )
        });
    }
    let text = SecretBox::generate_key_text();
    write_private(path, &text)
        .with_context(|| format!("creating the secret key file {}", path.display()))?;
    tracing::warn!(file = %path.display(), "generated a new secret key; instances sharing a database must share it (GUESTBRIDGE_SECRET_KEY)");
    Ok(SecretBox::from_setting(&text)?)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Rules whose `template` no template set provides, one message each (`file:line: …`). A
/// variant needs its set in the fallback language, so that every guest the rule invites gets
/// it; partner and language sets are optional on top.
pub fn missing_invitation_variants(rules: &RuleSet, templates: &Templates) -> Vec<String> {
    rules
        .rules
        .iter()
        .filter_map(|rule| {
            let template = rule.template.as_deref()?;
            let set = invitation_variant(template);
            (!templates.has(&set, None, None)).then(|| {
                format!(
                    "{}:{}: rule {:?}: template {template:?} has no files: add \
                     templates/{set}.{DEFAULT_LANG}.subject.txt, .txt and .html",
                    rule.file, rule.line, rule.id
                )
            })
        })
        .collect()
}
