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
pub use policy::{AlpnChallenges, ServerConfigs, failure_reason};
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
    /// TLS endpoints (`host:port`) whose certificates are watched besides the served one (TLS-4).
    pub monitor: Vec<String>,
    /// How often the served certificate and the endpoints are looked at.
    pub monitor_interval_seconds: u64,
    /// Days before expiry at which a warning is raised (a log line, a metric, the webhooks),
    /// once per certificate and threshold.
    pub expiry_warning_days: Vec<u32>,
    /// Within this many days of its expiry, the served certificate makes `/readyz` degraded.
    pub expiry_degraded_days: u32,
    /// Receivers of the warnings, as Standard Webhooks signed with their secret.
    pub expiry_webhooks: Vec<ExpiryWebhook>,
    /// Certificates obtained and renewed from an ACME CA (TLS-3), instead of files.
    pub acme: Option<AcmeSettings>,
}

/// `[tls.acme]`: the CAs, who we are to them, the names and how they are proved.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeSettings {
    /// The directory URL of the CA asked first (`https://acme-v02.api.letsencrypt.org/directory`).
    #[serde(default)]
    pub directory: Option<String>,
    /// Its external account binding, for CAs that require one (RFC 8555 §7.3.4).
    #[serde(default)]
    pub eab: Option<ExternalAccountBinding>,
    /// CAs asked in turn after `directory` when an order fails (or alone, without it).
    #[serde(default)]
    pub issuers: Vec<AcmeIssuer>,
    /// `mailto:` addresses the CA may write to.
    #[serde(default)]
    pub contact: Vec<String>,
    /// The DNS names of the certificate ordered.
    pub identifiers: Vec<String>,
    /// More certificates, each a list of DNS names: ordered, stored and renewed on their own,
    /// and each served to the handshakes that name one of its names (SNI).
    #[serde(default)]
    pub more_certificates: Vec<Vec<String>>,
    /// How control of the names is proved: `http-01` (served by the plain-HTTP listener on
    /// port 80 of every node), `tls-alpn-01` (answered by the HTTPS listener on port 443) or
    /// `dns-01` (through `dns_hook`).
    #[serde(default)]
    pub challenge: AcmeChallenge,
    /// For `dns-01`: run as `HOOK set|clear <record name> <value>`; it must publish (remove)
    /// the TXT record before it exits.
    #[serde(default)]
    pub dns_hook: Option<PathBuf>,
    /// How often a node looks whether the certificate is due for renewal.
    #[serde(default = "AcmeSettings::default_check_seconds")]
    pub check_seconds: u64,
}

/// An ACME CA: its directory and, if it requires one, the external account binding it issued.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeIssuer {
    pub directory: String,
    #[serde(default)]
    pub eab: Option<ExternalAccountBinding>,
}

/// The key id and MAC key a CA gives for binding a new ACME account to an account of its own.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalAccountBinding {
    pub kid: String,
    /// base64url, as CAs hand it out.
    pub hmac_key: palisade_crypto::Secret<String>,
}

impl ExternalAccountBinding {
    /// The MAC key's bytes.
    pub fn key(&self) -> Result<Vec<u8>, String> {
        let text = self.hmac_key.expose().trim_end_matches('=');
        data_encoding::BASE64URL_NOPAD
            .decode(text.as_bytes())
            .ok()
            .filter(|key| !key.is_empty())
            .ok_or_else(|| format!("tls.acme: the EAB key of {} is not base64url", self.kid))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AcmeChallenge {
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    #[serde(rename = "dns-01")]
    Dns01,
}

impl AcmeSettings {
    fn default_check_seconds() -> u64 {
        600
    }

    /// The CAs in the order they are asked.
    pub fn issuers(&self) -> Vec<AcmeIssuer> {
        let first = self.directory.iter().map(|directory| AcmeIssuer {
            directory: directory.clone(),
            eab: self.eab.clone(),
        });
        first.chain(self.issuers.iter().cloned()).collect()
    }

    /// One setting per certificate: `identifiers`, then each of `more_certificates`.
    pub fn certificates(&self) -> Vec<AcmeSettings> {
        let one = |identifiers: &Vec<String>| AcmeSettings {
            identifiers: identifiers.clone(),
            more_certificates: Vec::new(),
            ..self.clone()
        };
        std::iter::once(&self.identifiers)
            .chain(&self.more_certificates)
            .map(one)
            .collect()
    }

    /// The key the certificate is stored under: its names, in order.
    pub fn name(&self) -> String {
        let mut names = self.identifiers.clone();
        names.sort();
        names.join(",")
    }

    fn validate(&self) -> Result<(), String> {
        if self.directory.is_none() && self.eab.is_some() {
            return Err("tls.acme.eab belongs to tls.acme.directory, which is not set".into());
        }
        let issuers = self.issuers();
        if issuers.is_empty() {
            return Err("tls.acme needs a directory (or issuers)".into());
        }
        for issuer in &issuers {
            if !issuer.directory.starts_with("https://") {
                return Err(format!(
                    "tls.acme: the directory {} is not an https URL",
                    issuer.directory
                ));
            }
            if let Some(eab) = &issuer.eab {
                eab.key()?;
            }
        }
        if self.identifiers.is_empty() || self.more_certificates.iter().any(Vec::is_empty) {
            return Err(
                "tls.acme.identifiers (and each of more_certificates) must name at least one DNS name"
                    .into(),
            );
        }
        if self.challenge == AcmeChallenge::Dns01 && self.dns_hook.is_none() {
            return Err("tls.acme.challenge dns-01 needs tls.acme.dns_hook".into());
        }
        if self.check_seconds == 0 {
            return Err("tls.acme.check_seconds must be positive".into());
        }
        Ok(())
    }
}

/// A receiver of certificate expiry warnings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpiryWebhook {
    pub url: String,
    /// `whsec_…`: the receiver checks `webhook-signature` with it.
    pub secret: palisade_crypto::Secret<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            reload_interval_seconds: 60,
            monitor: Vec::new(),
            monitor_interval_seconds: 3600,
            expiry_warning_days: vec![30, 14, 7, 3, 1],
            expiry_degraded_days: 7,
            expiry_webhooks: Vec::new(),
            acme: None,
        }
    }
}

impl TlsSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("tls.cert_file and tls.key_file must be set together".into());
        }
        if self.reload_interval_seconds == 0 || self.monitor_interval_seconds == 0 {
            return Err(
                "tls.reload_interval_seconds and tls.monitor_interval_seconds must be positive"
                    .into(),
            );
        }
        for endpoint in &self.monitor {
            split_endpoint(endpoint)?;
        }
        if let Some(acme) = &self.acme {
            if self.cert_file.is_some() {
                return Err("tls.acme and tls.cert_file exclude each other".into());
            }
            acme.validate()?;
        }
        for hook in &self.expiry_webhooks {
            if !hook.url.starts_with("https://") && !hook.url.starts_with("http://") {
                return Err(format!(
                    "tls.expiry_webhooks: {} is not an http(s) URL",
                    hook.url
                ));
            }
            palisade_crypto::webhook::WebhookSecret::parse(hook.secret.expose())
                .map_err(|e| format!("tls.expiry_webhooks {}: {e}", hook.url))?;
        }
        Ok(())
    }
}

/// `host:port` (`[v6]:port` for an IPv6 address) as a host and a port.
pub fn split_endpoint(endpoint: &str) -> Result<(String, u16), String> {
    let bad = || format!("tls.monitor: `{endpoint}` is not host:port");
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
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
