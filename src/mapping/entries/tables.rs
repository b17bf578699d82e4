//! The three kinds of entry: `[[app]]`, `[[partner]]` and `[[rule]]`, each key read into
//! its draft with the checks of its value, unknown and missing keys reported.

use std::ops::Range;

use crate::mapping::model::{App, Approval, OidcClient, PartnerPolicy, Rule, OIDC_SCOPES};
use crate::mapping::raw::{Node, RawValue};

use super::values::is_http_url;

use super::{AppDraft, FileCtx, PartnerDraft, RuleDraft, Table, APP_KEYS, PARTNER_KEYS, RULE_KEYS};

impl FileCtx<'_> {
    pub(super) fn app(&mut self, table: &Table, header: &Range<usize>) -> AppDraft {
        const WHAT: &str = "[[app]]";
        self.require(
            table,
            header,
            WHAT,
            &["id", "name", "description", "launch_url", "roles"],
        );
        let mut app = App {
            id: String::new(),
            name: String::new(),
            description: String::new(),
            launch_url: String::new(),
            roles: Vec::new(),
            icon: None,
            oidc: None,
        };
        let mut oidc = OidcDraft::default();
        let (mut id_at, mut roles_known) = (None, false);
        for (key, value) in table {
            match key.as_str() {
                "id" => {
                    if let Some(id) = self.app_id(key, value) {
                        app.id = id;
                        id_at = Some(self.origin(&value.span()));
                    }
                }
                "name" => set(&mut app.name, self.text(key, value)),
                "description" => set(&mut app.description, self.string(key, value)),
                "launch_url" => set(&mut app.launch_url, self.url(key, value)),
                "icon" => app.icon = self.url(key, value),
                "roles" => {
                    if let Some(roles) = self.roles(key, value) {
                        app.roles = roles;
                        roles_known = true;
                    }
                }
                "oidc_client_id" => {
                    oidc.at = Some(value.span());
                    oidc.client_id = self.app_id(key, value);
                }
                "oidc_redirect_uris" => oidc.redirect_uris = self.urls(key, value),
                "oidc_public" => oidc.public = self.boolean(key, value),
                "oidc_client_secret_sha256" => oidc.secret = self.sha256_hex(key, value),
                "oidc_scopes" => oidc.scopes = self.scopes(key, value),
                "oidc_initiate_login_uri" => oidc.initiate = self.url(key, value),
                "oidc_post_logout_redirect_uris" => oidc.post_logout = self.urls(key, value),
                other => self.unknown_key(WHAT, other, value, APP_KEYS),
            }
        }
        app.oidc = self.oidc_client(oidc, header);
        AppDraft {
            app,
            id_at,
            roles_known,
        }
    }

    pub(super) fn partner(&mut self, table: &Table, header: &Range<usize>) -> PartnerDraft {
        const WHAT: &str = "[[partner]]";
        self.require(table, header, WHAT, &["slug"]);
        let mut policy = PartnerPolicy::default_for("");
        let (mut slug_at, mut allowed_at) = (None, Vec::new());
        for (key, value) in table {
            match key.as_str() {
                "slug" => {
                    if let Some(slug) = self.slug(key, value) {
                        policy.slug = slug;
                        slug_at = Some(self.origin(&value.span()));
                    }
                }
                "max_access_days" => policy.max_access_days = self.days(key, value),
                "allowed_apps" => {
                    let items = self.list(key, value, |ctx, span, item| {
                        ctx.check_app_id("allowed_apps", span, item)
                    });
                    if let Some(items) = items {
                        allowed_at = items.iter().map(|(_, span)| self.origin(span)).collect();
                        policy.allowed_apps = Some(items.into_iter().map(|(s, _)| s).collect());
                    }
                }
                "approval" => match self.string(key, value).as_deref() {
                    Some("auto") => policy.approval = Approval::Auto,
                    Some("admin") => policy.approval = Approval::Admin,
                    Some(text) => self.error(
                        &value.span(),
                        format!("`approval` must be \"auto\" or \"admin\", found \"{text}\""),
                    ),
                    None => {}
                },
                "mfa" => match value.get_ref() {
                    // `mfa = "passkey"`: MFA, and only a passkey passes it.
                    RawValue::String(s) if s == "passkey" => {
                        policy.mfa = true;
                        policy.mfa_passkey = true;
                    }
                    RawValue::String(s) => self.error(
                        &value.span(),
                        format!("`mfa` must be true, false or \"passkey\", found \"{s}\""),
                    ),
                    _ => set(&mut policy.mfa, self.boolean(key, value)),
                },
                "mfa_email_fallback" => {
                    set(&mut policy.mfa_email_fallback, self.boolean(key, value))
                }
                "inactive_days" => policy.inactive_days = self.days(key, value),
                "inactive_remove_after_days" => {
                    policy.inactive_remove_after_days = self.days(key, value)
                }
                "max_deactivations_per_hour" => match value.get_ref() {
                    RawValue::Integer(n) if (1..=1_000_000).contains(n) => {
                        policy.max_deactivations_per_hour = u32::try_from(*n).ok();
                    }
                    RawValue::Integer(n) => self.error(
                        &value.span(),
                        format!("`{key}` must be from 1 to 1000000, found {n}"),
                    ),
                    _ => self.wrong_type(key, value, "a whole number"),
                },
                "allowed_email_domains" => {
                    policy.limits.allowed_email_domains = self.email_domains(key, value);
                }
                "max_people" => policy.limits.max_people = self.count(key, value, 10_000_000),
                "kept_attributes" => {
                    policy.limits.kept_attributes = self.kept_attributes(key, value);
                }
                "scim_requests_per_second" => {
                    policy.limits.scim_requests_per_second = self.count(key, value, 100_000);
                }
                "scim_burst" => policy.limits.scim_burst = self.count(key, value, 1_000_000),
                other => self.unknown_key(WHAT, other, value, PARTNER_KEYS),
            }
        }
        PartnerDraft {
            policy,
            slug_at,
            allowed_at,
        }
    }

    pub(super) fn rule(&mut self, table: &Table, header: &Range<usize>) -> RuleDraft {
        const WHAT: &str = "[[rule]]";
        self.require(table, header, WHAT, &["id", "grants"]);
        let mut rule = Rule {
            id: String::new(),
            description: None,
            partners: None,
            condition: None,
            condition_text: None,
            groups: None,
            grants: Vec::new(),
            access_days: None,
            access_until: None,
            use_partner_end_date: true,
            sponsor: None,
            mfa: None,
            template: None,
            language: None,
            file: self.file.to_string(),
            line: self.lines.of(header),
        };
        let (mut id_at, mut grants_at) = (None, Vec::new());
        for (key, value) in table {
            match key.as_str() {
                "id" => {
                    if let Some(id) = self.rule_id(key, value) {
                        rule.id = id;
                        id_at = Some(self.origin(&value.span()));
                    }
                }
                "description" => rule.description = self.string(key, value),
                "partners" => {
                    let items = self.list(key, value, |ctx, span, item| {
                        ctx.check_slug("partners", span, item)
                    });
                    rule.partners = items.map(|items| items.into_iter().map(|(s, _)| s).collect());
                }
                "condition" => {
                    if let Some((text, filter)) = self.condition(key, value) {
                        rule.condition_text = Some(text);
                        rule.condition = Some(filter);
                    }
                }
                "groups" => {
                    let items = self.list(key, value, |ctx, span, item| {
                        ctx.check_text("groups", span, item)
                    });
                    rule.groups = items.map(|items| items.into_iter().map(|(s, _)| s).collect());
                }
                "grants" => {
                    let grants = self.grants(key, value);
                    grants_at = grants.iter().map(|(_, span)| self.origin(span)).collect();
                    rule.grants = grants.into_iter().map(|(g, _)| g).collect();
                }
                "access_days" => rule.access_days = self.days(key, value),
                "access_until" => rule.access_until = self.end_date(key, value),
                "use_partner_end_date" => {
                    set(&mut rule.use_partner_end_date, self.boolean(key, value));
                }
                "sponsor" => rule.sponsor = self.email(key, value),
                "mfa" => rule.mfa = self.boolean(key, value),
                "template" => rule.template = self.template(key, value),
                "language" => rule.language = self.language(key, value),
                other => self.unknown_key(WHAT, other, value, RULE_KEYS),
            }
        }
        RuleDraft {
            rule,
            id_at,
            grants_at,
        }
    }
}

/// Sets `slot` when `value` parsed.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// The `oidc_*` keys of an `[[app]]` as read, before they are checked together.
#[derive(Default)]
struct OidcDraft {
    at: Option<Range<usize>>,
    client_id: Option<String>,
    redirect_uris: Option<Vec<String>>,
    public: Option<bool>,
    secret: Option<String>,
    scopes: Option<Vec<String>>,
    initiate: Option<String>,
    post_logout: Option<Vec<String>>,
}

impl FileCtx<'_> {
    fn urls(&mut self, key: &str, value: &Node) -> Option<Vec<String>> {
        let items = self.list(key, value, |ctx, span, url| {
            if is_http_url(&url) && !url.contains('#') {
                Some(url)
            } else {
                ctx.error(
                    span,
                    format!("`{key}` \"{url}\" is not an http(s) URL without a fragment"),
                );
                None
            }
        })?;
        Some(items.into_iter().map(|(s, _)| s).collect())
    }

    fn scopes(&mut self, key: &str, value: &Node) -> Option<Vec<String>> {
        let items = self.list(key, value, |ctx, span, scope| {
            if OIDC_SCOPES.contains(&scope.as_str()) {
                Some(scope)
            } else {
                ctx.error(
                    span,
                    format!(
                        "`{key}` names \"{scope}\"; the scopes are {}",
                        OIDC_SCOPES.join(", ")
                    ),
                );
                None
            }
        })?;
        Some(items.into_iter().map(|(s, _)| s).collect())
    }

    fn sha256_hex(&mut self, key: &str, value: &Node) -> Option<String> {
        let s = self.string(key, value)?;
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Some(s.to_ascii_lowercase())
        } else {
            self.error(
                &value.span(),
                format!("`{key}` must be the 64 hex digits of the secret's SHA-256 (`printf %s \"$SECRET\" | sha256sum`)"),
            );
            None
        }
    }

    /// A client needs an id and redirect URIs, and a secret unless it is public; other
    /// `oidc_*` keys without `oidc_client_id` are an error, not silently ignored.
    fn oidc_client(&mut self, d: OidcDraft, header: &Range<usize>) -> Option<OidcClient> {
        let public = d.public.unwrap_or(false);
        let Some(client_id) = d.client_id else {
            let stray = d.redirect_uris.is_some()
                || d.public.is_some()
                || d.secret.is_some()
                || d.scopes.is_some()
                || d.initiate.is_some()
                || d.post_logout.is_some();
            if stray && d.at.is_none() {
                self.error(
                    header,
                    "[[app]] has oidc_* keys but no `oidc_client_id`".to_string(),
                );
            }
            return None;
        };
        let at = d.at.unwrap_or_else(|| header.clone());
        let Some(redirect_uris) = d.redirect_uris else {
            self.error(&at, "an OIDC app needs `oidc_redirect_uris`".to_string());
            return None;
        };
        if public && d.secret.is_some() {
            self.error(
                &at,
                "a public OIDC client (`oidc_public = true`) has no secret".to_string(),
            );
            return None;
        }
        if !public && d.secret.is_none() {
            self.error(
                &at,
                "a confidential OIDC client needs `oidc_client_secret_sha256` (or `oidc_public = true`)"
                    .to_string(),
            );
            return None;
        }
        let mut scopes = d
            .scopes
            .unwrap_or_else(|| OIDC_SCOPES.iter().map(|s| s.to_string()).collect());
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".to_string());
        }
        Some(OidcClient {
            client_id,
            redirect_uris,
            public,
            secret_sha256: d.secret,
            scopes,
            initiate_login_uri: d.initiate,
            post_logout_redirect_uris: d.post_logout.unwrap_or_default(),
        })
    }
}
