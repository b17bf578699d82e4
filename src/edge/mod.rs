//! The edge of the service: which address a request comes from when a reverse proxy is in
//! front (trusted proxies), native TLS with certificate reload, and request spans that keep
//! secrets and personal data out of the logs.

pub mod client_addr;
pub mod root_span;
pub mod tls;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use client_addr::{client_ip, ForwardedHeader, TrustedProxies};

/// Settings of the edge, resolved and validated at start.
#[derive(Debug, Clone, Default)]
pub struct EdgeSettings {
    /// Proxies whose forwarding header is believed, and which header that is.
    pub proxies: TrustedProxies,
    /// Certificate and key files for native TLS; `None` serves plain HTTP.
    pub tls: Option<tls::TlsFiles>,
}

/// The edge keys of the `[http]` table of the settings file.
#[derive(Debug, Default)]
pub struct FileEdge {
    pub trusted_proxies: Option<Vec<String>>,
    pub forwarded_header: Option<String>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

const PROXIES: &str = "http.trusted_proxies (GUESTBRIDGE_TRUSTED_PROXIES)";
const HEADER: &str = "http.forwarded_header (GUESTBRIDGE_FORWARDED_HEADER)";
const CERT: &str = "http.tls_cert_file (GUESTBRIDGE_TLS_CERT_FILE)";
const KEY: &str = "http.tls_key_file (GUESTBRIDGE_TLS_KEY_FILE)";

impl EdgeSettings {
    /// The environment wins over the file; an error is the setting's name and the problem.
    pub fn resolve(
        f: FileEdge,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, (&'static str, String)> {
        let proxies: Vec<String> = match env.get("GUESTBRIDGE_TRUSTED_PROXIES") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            None => f.trusted_proxies.unwrap_or_default(),
        };
        let networks = client_addr::parse_networks(&proxies).map_err(|e| (PROXIES, e))?;
        let header = match env
            .get("GUESTBRIDGE_FORWARDED_HEADER")
            .cloned()
            .or(f.forwarded_header)
        {
            None => ForwardedHeader::XForwardedFor,
            Some(name) => ForwardedHeader::parse(&name).ok_or_else(|| {
                (
                    HEADER,
                    format!("{name:?} is neither x-forwarded-for nor forwarded"),
                )
            })?,
        };
        let cert = env
            .get("GUESTBRIDGE_TLS_CERT_FILE")
            .map(PathBuf::from)
            .or(f.tls_cert_file);
        let key = env
            .get("GUESTBRIDGE_TLS_KEY_FILE")
            .map(PathBuf::from)
            .or(f.tls_key_file);
        let tls = match (cert, key) {
            (None, None) => None,
            (Some(cert_file), Some(key_file)) => Some(tls::TlsFiles {
                cert_file,
                key_file,
            }),
            (Some(_), None) => return Err((KEY, "is needed when a certificate is set".into())),
            (None, Some(_)) => return Err((CERT, "is needed when a key is set".into())),
        };
        Ok(EdgeSettings {
            proxies: TrustedProxies::new(networks, header),
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bad_edge_settings_name_the_setting() {
        let (name, message) = EdgeSettings::resolve(
            FileEdge::default(),
            &env(&[("GUESTBRIDGE_TRUSTED_PROXIES", "10.0.0.0/8, nonsense")]),
        )
        .unwrap_err();
        assert!(name.contains("GUESTBRIDGE_TRUSTED_PROXIES") && message.contains("nonsense"));
        let (name, _) = EdgeSettings::resolve(
            FileEdge::default(),
            &env(&[("GUESTBRIDGE_FORWARDED_HEADER", "x-real-ip")]),
        )
        .unwrap_err();
        assert!(name.contains("forwarded_header"));
        let (name, _) = EdgeSettings::resolve(
            FileEdge::default(),
            &env(&[("GUESTBRIDGE_TLS_CERT_FILE", "cert.pem")]),
        )
        .unwrap_err();
        assert!(name.contains("tls_key_file"));
        let file = FileEdge {
            trusted_proxies: Some(vec!["192.168.0.0/16".into()]),
            forwarded_header: Some("Forwarded".into()),
            ..FileEdge::default()
        };
        let ok = EdgeSettings::resolve(file, &env(&[])).unwrap();
        assert!(!ok.proxies.is_empty() && ok.tls.is_none());
        assert_eq!(ok.proxies.header_name(), "forwarded");
    }
}
