//! Native TLS for a deployment without a reverse proxy (SCIM clients such as Entra only
//! speak HTTPS). The certificate is read from PEM files and can be replaced while running:
//! `reload` (called on SIGHUP) reads the files again and swaps the certificate for new
//! handshakes; a file that does not load leaves the previous certificate in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where the certificate chain and its private key are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The certificate in force, swapped whole on reload.
pub struct ReloadableCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableCert")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(files: &TlsFiles, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let chain = read_chain(&files.cert_file).with_context(|| {
        format!(
            "setting http.tls_cert_file (GUESTBRIDGE_TLS_CERT_FILE): {}",
            files.cert_file.display()
        )
    })?;
    // The key file's content is never part of an error message.
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| {
        anyhow::anyhow!(
            "setting http.tls_key_file (GUESTBRIDGE_TLS_KEY_FILE): {}: no PEM private key ({})",
            files.key_file.display(),
            pem_problem(&e)
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        anyhow::anyhow!(
            "settings http.tls_cert_file and http.tls_key_file: {} and {} do not make a usable certificate: {e}",
            files.cert_file.display(),
            files.key_file.display()
        )
    })
}

fn read_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow::anyhow!("{}", pem_problem(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{}", pem_problem(&e)))?;
    anyhow::ensure!(!chain.is_empty(), "no PEM certificate in the file");
    Ok(chain)
}

fn pem_problem(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        rustls_pki_types::pem::Error::NoItemsFound => "nothing found".into(),
        _ => "not valid PEM".into(),
    }
}

impl ReloadableCert {
    /// Load the files; an error names the setting and the file.
    pub fn load(files: &TlsFiles) -> anyhow::Result<Arc<Self>> {
        let provider = provider();
        let key = load(files, &provider)?;
        Ok(Arc::new(ReloadableCert {
            files: files.clone(),
            provider,
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Read the files again and serve the new certificate to new connections.
    pub fn reload(&self) -> anyhow::Result<()> {
        let key = load(&self.files, &self.provider)?;
        *self
            .current
            .write()
            .map_err(|_| anyhow::anyhow!("certificate lock poisoned"))? = Arc::new(key);
        Ok(())
    }

    /// The rustls configuration serving this certificate (ALPN is set by actix-web).
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<rustls::ServerConfig> {
        Ok(
            rustls::ServerConfig::builder_with_provider(self.provider.clone())
                .with_safe_default_protocol_versions()
                .context("TLS protocol versions")?
                .with_no_client_auth()
                .with_cert_resolver(self.clone()),
        )
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|k| k.clone())
    }
}

/// SIGHUP re-reads the certificate files, beside the rule reload that listens for it too.
pub fn spawn_reload_on_sighup(cert: Arc<ReloadableCert>) {
    tokio::spawn(async move {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP; the TLS certificate reloads on restart");
            return;
        };
        while hangups.recv().await.is_some() {
            match cert.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "reloading the TLS certificate failed; the previous one stays in force")
                }
            }
        }
    });
}
