//! Transport security (TLS-1, TLS-2): a rustls server configuration on aws-lc-rs, a certificate
//! resolver whose key pair can be swapped atomically while connections stay open, a reloader that
//! watches certificate files, and the development certificate of the embedded default.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

mod dev_cert;
mod reload;
mod resolver;

pub use dev_cert::{DevCertificate, Generated, ensure_dev_certificate};
pub use reload::{CertFiles, reload};
pub use resolver::{CertMetrics, LoadedCert, SwappableResolver, load_pair};

use rustls::ServerConfig;
use std::path::PathBuf;
use std::sync::Arc;

/// `[tls]` settings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain; with `key_file`, replaces the development certificate and is
    /// reloaded when it changes.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub reload_interval_seconds: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            reload_interval_seconds: 60,
        }
    }
}

impl TlsSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("tls.cert_file and tls.key_file must be set together".into());
        }
        if self.reload_interval_seconds == 0 {
            return Err("tls.reload_interval_seconds must be positive".into());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Installs aws-lc-rs as the process-wide rustls provider. Called first thing in `main` and in
/// every test binary; a second call is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The server configuration: TLS 1.3 and 1.2 only, the provider's AEAD suites with forward
/// secrecy (rustls implements no CBC, RC4 or static-RSA suite at all), X25519MLKEM768 hybrid key
/// exchange preferred, ALPN for HTTP/2 and HTTP/1.1.
pub fn server_config(resolver: Arc<SwappableResolver>) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
