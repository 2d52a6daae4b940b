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

/// Serves, to a handshake naming a server (SNI), the certificate last swapped in for that name
/// (exactly, or by a wildcard one label deep), and to any other the default certificate last
/// swapped in. Handshakes read them lock-free; open connections keep the key they negotiated
/// with, so a swap never drops them.
#[derive(Debug)]
pub struct SwappableResolver {
    current: ArcSwap<LoadedCert>,
    named: ArcSwap<Vec<Named>>,
    metrics: CertMetrics,
}

/// A certificate served for the names it was swapped in for.
#[derive(Debug)]
struct Named {
    names: Vec<String>,
    cert: Arc<LoadedCert>,
}

/// Whether the certificate name `pattern` (`host.example` or `*.example`) covers `server`.
fn covers(pattern: &str, server: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => server
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(parent)),
        None => pattern.eq_ignore_ascii_case(server),
    }
}

impl SwappableResolver {
    pub fn new(initial: LoadedCert, metrics: CertMetrics) -> Self {
        metrics.not_after_seconds.set(initial.not_after);
        Self {
            current: ArcSwap::from_pointee(initial),
            named: ArcSwap::from_pointee(Vec::new()),
            metrics,
        }
    }

    /// Replaces the default certificate.
    pub fn swap(&self, next: LoadedCert) {
        self.current.store(Arc::new(next));
        self.swapped();
    }

    /// Serves `next` for `names` (a certificate's names), in place of what was served for
    /// exactly those names.
    pub fn swap_named(&self, names: &[String], next: LoadedCert) {
        let next = Arc::new(next);
        self.named.rcu(|named| {
            let mut named: Vec<Named> = named
                .iter()
                .filter(|n| n.names != names)
                .map(|n| Named {
                    names: n.names.clone(),
                    cert: n.cert.clone(),
                })
                .collect();
            named.push(Named {
                names: names.to_vec(),
                cert: next.clone(),
            });
            named
        });
        self.swapped();
    }

    /// The gauge follows the certificate served that expires first.
    fn swapped(&self) {
        let first = self
            .served()
            .iter()
            .map(|(_, c)| c.not_after)
            .min()
            .unwrap_or_default();
        self.metrics.not_after_seconds.set(first);
        self.metrics.reloads.inc();
    }

    /// The default certificate.
    pub fn current(&self) -> Arc<LoadedCert> {
        self.current.load_full()
    }

    /// What is served for exactly `names`, if anything.
    pub fn named(&self, names: &[String]) -> Option<Arc<LoadedCert>> {
        self.named
            .load()
            .iter()
            .find(|n| n.names == names)
            .map(|n| n.cert.clone())
    }

    /// Every certificate served, by what it is served for: `served` (the default), then each
    /// served by name, as its names joined by commas.
    pub fn served(&self) -> Vec<(String, Arc<LoadedCert>)> {
        let mut served = vec![("served".to_owned(), self.current())];
        served.extend(
            self.named
                .load()
                .iter()
                .map(|n| (n.names.join(","), n.cert.clone())),
        );
        served
    }

    /// The certificate a handshake naming `server` gets.
    fn for_server(&self, server: Option<&str>) -> Arc<CertifiedKey> {
        let named = self.named.load();
        server
            .and_then(|server| {
                named
                    .iter()
                    .find(|n| n.names.iter().any(|p| covers(p, server)))
            })
            .map_or_else(|| self.current.load().key.clone(), |n| n.cert.key.clone())
    }

    pub fn metrics(&self) -> &CertMetrics {
        &self.metrics
    }
}

impl ResolvesServerCert for SwappableResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.for_server(hello.server_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(name: &str) -> LoadedCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        LoadedCert::from_der(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap()
    }

    #[test]
    fn the_server_name_chooses_the_certificate_and_the_rest_get_the_default() {
        let resolver = SwappableResolver::new(certificate("default.test"), CertMetrics::default());
        let default = resolver.current().key.clone();
        let one = vec!["a.test".to_owned(), "*.b.test".to_owned()];
        let two = vec!["c.test".to_owned()];
        resolver.swap_named(&one, certificate("a.test"));
        resolver.swap_named(&two, certificate("c.test"));
        let first = resolver.named(&one).unwrap().key.clone();
        let second = resolver.named(&two).unwrap().key.clone();
        let got = |server: Option<&str>| resolver.for_server(server);
        assert!(Arc::ptr_eq(&got(Some("a.test")), &first));
        assert!(Arc::ptr_eq(&got(Some("A.Test")), &first));
        assert!(Arc::ptr_eq(&got(Some("x.b.test")), &first));
        assert!(Arc::ptr_eq(&got(Some("c.test")), &second));
        for other in [Some("b.test"), Some("y.x.b.test"), Some("d.test"), None] {
            assert!(Arc::ptr_eq(&got(other), &default), "{other:?}");
        }
        // A renewal replaces the certificate of its names and leaves the others.
        resolver.swap_named(&one, certificate("a.test"));
        let renewed = resolver.named(&one).unwrap().key.clone();
        assert!(!Arc::ptr_eq(&renewed, &first));
        assert!(Arc::ptr_eq(&got(Some("a.test")), &renewed));
        assert!(Arc::ptr_eq(&got(Some("c.test")), &second));
        assert_eq!(resolver.served().len(), 3);
    }
}
