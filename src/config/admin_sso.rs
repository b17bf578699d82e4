//! Console single sign-on through the organisation's OpenID Connect provider: the
//! `[admin_sso]` table and its `GUESTBRIDGE_ADMIN_OIDC_*` variables. Unset, the console has
//! only its local logins; set in part, start-up stops and names what is missing.

use std::collections::BTreeMap;
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::ConfigError;
use crate::domain::group_roles::GroupRole;

/// The `[admin_sso]` table of the file; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAdminSso {
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    /// `["gb-admins=admin", "acme-hr=partner-admin:acme"]`, or the same comma-separated.
    groups: Option<GroupsValue>,
    groups_claim: Option<String>,
    name: Option<String>,
    scopes: Option<String>,
    cache_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum GroupsValue {
    List(Vec<String>),
    Text(String),
}

/// Sign-in to the console through an OpenID Connect provider (authorization code + PKCE).
#[derive(Debug, Clone)]
pub struct AdminSsoSettings {
    /// The provider's issuer URL, exactly as its discovery document and ID tokens give it.
    pub issuer: String,
    /// This application's client id at the provider.
    pub client_id: String,
    /// The client secret (never printed).
    pub client_secret: SecretString,
    /// Allowed groups and the role each gives, in order: the first that matches decides.
    pub groups: Vec<GroupRole>,
    /// The ID token claim that lists the person's groups.
    pub groups_claim: String,
    /// The provider's name on the sign-in button ("Sign in with …").
    pub display_name: String,
    /// Scopes asked for (always including `openid`).
    pub scopes: String,
    /// How long the discovery document and the provider's keys are kept before refetching.
    pub cache_seconds: u64,
}

impl AdminSsoSettings {
    /// What the OpenID Connect client needs of these settings.
    pub fn client_settings(&self) -> crate::auth::oidc_client::ClientSettings {
        crate::auth::oidc_client::ClientSettings {
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            scopes: self.scopes.clone(),
            cache_ttl: std::time::Duration::from_secs(self.cache_seconds),
        }
    }
}

const SECTION: &str = "admin_sso";

fn invalid(key: &str, var: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: format!("{SECTION}.{key} (GUESTBRIDGE_ADMIN_OIDC_{var})"),
        message: message.into(),
    }
}

/// The provider must be reached over https, except on loopback (a provider on this machine
/// for development and tests), where nothing crosses a network.
fn check_issuer(issuer: &str) -> Result<String, ConfigError> {
    let bad = |m: &str| invalid("issuer", "ISSUER", format!("{issuer:?}: {m}"));
    let url = url::Url::parse(issuer).map_err(|e| bad(&e.to_string()))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(bad("must be an https:// URL (http:// only on loopback)")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("an issuer has no query or fragment"));
    }
    Ok(issuer.to_string())
}

/// Resolve the SSO settings: the environment wins over the file; None when neither sets
/// an issuer or a client id.
pub(super) fn resolve(
    file: Option<FileAdminSso>,
    env: &BTreeMap<String, String>,
) -> Result<Option<AdminSsoSettings>, ConfigError> {
    let f = file.unwrap_or_default();
    let var = |name: &str| {
        env.get(&format!("GUESTBRIDGE_ADMIN_OIDC_{name}"))
            .cloned()
            .filter(|v| !v.trim().is_empty())
    };
    let issuer = var("ISSUER").or(f.issuer);
    let client_id = var("CLIENT_ID").or(f.client_id);
    let secret_file = var("CLIENT_SECRET_FILE")
        .map(PathBuf::from)
        .or(f.client_secret_file);
    let secret = var("CLIENT_SECRET").or(f.client_secret);
    let groups_text = var("GROUPS");
    let configured_groups = groups_text.is_some() || f.groups.is_some();
    if issuer.is_none()
        && client_id.is_none()
        && secret.is_none()
        && secret_file.is_none()
        && !configured_groups
    {
        return Ok(None);
    }
    let issuer = check_issuer(
        issuer
            .as_deref()
            .ok_or_else(|| invalid("issuer", "ISSUER", "SSO needs the provider's issuer URL"))?,
    )?;
    let client_id = client_id
        .map(|c| c.trim().to_string())
        .ok_or_else(|| invalid("client_id", "CLIENT_ID", "SSO needs a client id"))?;
    let client_secret = match (secret, secret_file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "client_secret",
                "CLIENT_SECRET",
                "set the client secret or a file holding it, not both",
            ))
        }
        (Some(s), None) => s,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| {
                invalid(
                    "client_secret_file",
                    "CLIENT_SECRET_FILE",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?
            .trim()
            .to_string(),
        (None, None) => {
            return Err(invalid(
                "client_secret",
                "CLIENT_SECRET",
                "SSO needs the client secret (or client_secret_file)",
            ))
        }
    };
    if client_secret.is_empty() {
        // The value is not echoed: it is a secret.
        return Err(invalid("client_secret", "CLIENT_SECRET", "is empty"));
    }
    let groups = match (groups_text, f.groups) {
        (Some(text), _) | (None, Some(GroupsValue::Text(text))) => GroupRole::parse_list(&text),
        (None, Some(GroupsValue::List(list))) => list
            .iter()
            .map(|p| GroupRole::parse(p))
            .collect::<Result<Vec<_>, _>>(),
        (None, None) => Ok(Vec::new()),
    }
    .map_err(|m| invalid("groups", "GROUPS", m))?;
    if groups.is_empty() {
        return Err(invalid(
            "groups",
            "GROUPS",
            "list the allowed groups and their roles, e.g. gb-admins=admin,gb-auditors=auditor",
        ));
    }
    let groups_claim = var("GROUPS_CLAIM")
        .or(f.groups_claim)
        .unwrap_or_else(|| "groups".to_string());
    let scopes = var("SCOPES")
        .or(f.scopes)
        .unwrap_or_else(|| "openid email profile".to_string());
    if !scopes.split_whitespace().any(|s| s == "openid") {
        return Err(invalid("scopes", "SCOPES", "must include openid"));
    }
    let display_name = var("NAME").or(f.name).unwrap_or_else(|| {
        url::Url::parse(&issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| issuer.clone())
    });
    let cache_seconds = f.cache_seconds.unwrap_or(3600);
    if !(10..=86_400).contains(&cache_seconds) {
        return Err(ConfigError::Invalid {
            name: format!("{SECTION}.cache_seconds"),
            message: "must be between 10 and 86400".into(),
        });
    }
    Ok(Some(AdminSsoSettings {
        issuer,
        client_id,
        client_secret: SecretString::from(client_secret),
        groups,
        groups_claim,
        display_name,
        scopes,
        cache_seconds,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const FULL: &[(&str, &str)] = &[
        ("GUESTBRIDGE_ADMIN_OIDC_ISSUER", "https://id.example.com"),
        ("GUESTBRIDGE_ADMIN_OIDC_CLIENT_ID", "guestbridge"),
        ("GUESTBRIDGE_ADMIN_OIDC_CLIENT_SECRET", "hunter2-hunter2"),
        (
            "GUESTBRIDGE_ADMIN_OIDC_GROUPS",
            "gb-admins=admin,acme-hr=partner-admin:acme",
        ),
    ];

    #[test]
    fn unset_means_no_sso_and_full_settings_resolve() {
        assert!(resolve(None, &env(&[])).unwrap().is_none());
        let s = resolve(None, &env(FULL)).unwrap().unwrap();
        assert_eq!(s.issuer, "https://id.example.com");
        assert_eq!(s.groups.len(), 2);
        assert_eq!(s.groups_claim, "groups");
        assert_eq!(s.display_name, "id.example.com");
        assert_eq!(s.client_secret.expose_secret(), "hunter2-hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn the_secret_comes_from_a_file_and_the_file_table_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "from-a-file\n").unwrap();
        let file: FileAdminSso = toml::from_str(&format!(
            "issuer = \"http://127.0.0.1:9\"\nclient_id = \"gb\"\nclient_secret_file = {:?}\ngroups = [\"a=admin\", \"b=sponsor\"]\nname = \"Contoso ID\"\n",
            secret.display().to_string()
        ))
        .unwrap();
        let s = resolve(Some(file), &env(&[])).unwrap().unwrap();
        assert_eq!(s.client_secret.expose_secret(), "from-a-file");
        assert_eq!(s.groups[1].role, crate::domain::AdminRole::Sponsor);
        assert_eq!(s.display_name, "Contoso ID");
    }

    #[test]
    fn bad_settings_name_the_setting_and_never_the_secret() {
        let with = |k: &str, v: &str| {
            let mut e = env(FULL);
            e.insert(k.to_string(), v.to_string());
            e
        };
        for (k, v, expect) in [
            (
                "GUESTBRIDGE_ADMIN_OIDC_ISSUER",
                "http://id.example.com",
                "ISSUER",
            ),
            ("GUESTBRIDGE_ADMIN_OIDC_ISSUER", "not a url", "ISSUER"),
            ("GUESTBRIDGE_ADMIN_OIDC_GROUPS", "gb-admins=root", "GROUPS"),
            ("GUESTBRIDGE_ADMIN_OIDC_GROUPS", " , ", "GROUPS"),
            ("GUESTBRIDGE_ADMIN_OIDC_SCOPES", "email", "SCOPES"),
            (
                "GUESTBRIDGE_ADMIN_OIDC_CLIENT_SECRET_FILE",
                "/x",
                "CLIENT_SECRET",
            ),
        ] {
            let err = resolve(None, &with(k, v)).unwrap_err().to_string();
            assert!(err.contains(expect), "{k}={v}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        let mut partial = env(FULL);
        partial.remove("GUESTBRIDGE_ADMIN_OIDC_CLIENT_ID");
        let err = resolve(None, &partial).unwrap_err().to_string();
        assert!(err.contains("CLIENT_ID"), "{err}");
    }
}
