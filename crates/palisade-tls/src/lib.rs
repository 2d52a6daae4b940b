//! Transport security (TLS-1, TLS-2): a rustls server configuration on aws-lc-rs, a certificate
//! resolver whose key pair can be swapped atomically while connections stay open, a reloader that
//! watches certificate files, and the development certificate of the embedded default.
// Library code handles every failure; tests and examples may unwrap.
#![warn(clippy::unwrap_used)]

pub mod ca;
mod dev_cert;
mod policy;
mod reload;
mod resolver;

pub use dev_cert::{DevCertificate, Generated, ensure_dev_certificate};
pub use policy::{ServerConfigs, failure_reason};
pub use reload::{CertFiles, reload};
pub use resolver::{CertMetrics, LoadedCert, SwappableResolver, load_pair};

use std::path::PathBuf;

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
