//! HTTPS without a terminating proxy (`serve --tls-cert FILE --tls-key
//! FILE`): identity providers such as Entra ID refuse plain HTTP. The
//! certificate and key are read again on SIGHUP, so that a renewed
//! certificate is served without a restart; a file that does not load then
//! is logged and the certificate in use is kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context as _, Result};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate files and the configuration loaded from them last.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Loads the certificate chain and private key (PEM): a file that
    /// cannot be read, holds no certificate or key, or a key that does not
    /// match the certificate is an error naming the file.
    pub fn load(cert: &Path, key: &Path) -> Result<Self> {
        let config = config(cert, key)?;
        Ok(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(config),
        })
    }

    /// The configuration a new connection gets.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        tokio_rustls::TlsAcceptor::from(config)
    }

    /// Reads the files again; connections accepted from now on use them.
    /// On an error the certificate in use stays.
    pub fn reload(&self) -> Result<()> {
        let config = config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }

    /// Reloads on every SIGHUP until the process exits.
    #[cfg(unix)]
    pub async fn reload_on_sighup(self: Arc<Self>) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP: the certificate is never reloaded");
                return;
            }
        };
        while hup.recv().await.is_some() {
            match self.reload() {
                Ok(()) => tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded"),
                Err(e) => tracing::error!(
                    error = format!("{e:#}"),
                    "TLS certificate not reloaded; the previous one stays in use"
                ),
            }
        }
    }
}

fn config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("not valid PEM ({e})"))
        .with_context(|| format!("reading the TLS certificate {}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "the TLS certificate file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            cert.display()
        );
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("not valid PEM, or no key in it ({e})"))
        .with_context(|| {
            format!(
                "reading the TLS private key {} (PEM: PKCS#8, PKCS#1 or SEC1)",
                key.display()
            )
        })?;
    // `ring` builds with a C compiler alone; its lack of post-quantum key
    // exchange is what the deprecation is about.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .with_context(|| {
            format!(
                "the TLS key {} does not go with the certificate {}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
