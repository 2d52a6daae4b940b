use crate::TlsError;
use arc_swap::ArcSwap;
use prometheus_client::metrics::{counter::Counter, gauge::Gauge};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// A validated certificate chain with its key, plus what monitoring needs to know about it.
#[derive(Debug)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// Expiry of the leaf, in seconds since the Unix epoch.
    pub not_after: i64,
    /// SHA-256 of the leaf certificate's DER, colon-separated hex.
    pub fingerprint: String,
}

/// Metrics about the served certificate (TLS-2, TLS-4).
#[derive(Clone, Default, Debug)]
pub struct CertMetrics {
    pub not_after_seconds: Gauge,
    pub reload_failures: Counter,
    pub reloads: Counter,
}

/// Reads and validates a PEM certificate chain and private key: both must parse, the chain must
/// not be empty and the key must match the leaf. Nothing is swapped in unless all of that holds.
pub fn load_pair(cert_path: &Path, key_path: &Path) -> Result<LoadedCert, TlsError> {
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", cert_path.display())))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", key_path.display())))?;
    LoadedCert::from_der(chain, key)
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", cert_path.display())))
}

impl LoadedCert {
    /// A chain (leaf first) and its key, which must match the leaf.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let leaf = chain
            .first()
            .ok_or_else(|| TlsError::Invalid("no certificate".into()))?
            .clone();
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let certified = CertifiedKey::from_der(chain, key, &provider)
            .map_err(|e| TlsError::Invalid(format!("certificate and key do not match: {e}")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| TlsError::Invalid(e.to_string()))?;
        Ok(Self {
            key: Arc::new(certified),
            not_after: parsed.validity().not_after.timestamp(),
            fingerprint: fingerprint(leaf.as_ref()),
        })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

pub(crate) fn fingerprint(der: &[u8]) -> String {
    palisade_crypto::sha256(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Serves whichever certificate was swapped in last. Handshakes read it lock-free; open
/// connections keep the key they negotiated with, so a swap never drops them.
#[derive(Debug)]
pub struct SwappableResolver {
    current: ArcSwap<LoadedCert>,
    metrics: CertMetrics,
}

impl SwappableResolver {
    pub fn new(initial: LoadedCert, metrics: CertMetrics) -> Self {
        metrics.not_after_seconds.set(initial.not_after);
        Self {
            current: ArcSwap::from_pointee(initial),
            metrics,
        }
    }

    pub fn swap(&self, next: LoadedCert) {
        self.metrics.not_after_seconds.set(next.not_after);
        self.metrics.reloads.inc();
        self.current.store(Arc::new(next));
    }

    pub fn current(&self) -> Arc<LoadedCert> {
        self.current.load_full()
    }

    pub fn metrics(&self) -> &CertMetrics {
        &self.metrics
    }
}

impl ResolvesServerCert for SwappableResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().key.clone())
    }
}
