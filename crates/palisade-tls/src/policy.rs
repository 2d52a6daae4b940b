//! The server's TLS policy (TLS-1): TLS 1.3 and 1.2 only, the provider's AEAD suites with
//! forward secrecy (rustls implements no CBC, RC4 or static-RSA suite at all), and the server's
//! order of preference — the X25519MLKEM768 hybrid first — whatever order the client offers.
//!
//! rustls follows the client's order among the key-exchange groups a configuration offers, so
//! a client listing P-256 before the hybrid group would get P-256. The server therefore keeps
//! one configuration per group and, once it has read the ClientHello, answers with the
//! configuration of the first group of its own order that the client supports (a key share for
//! it is then asked for with a HelloRetryRequest if the client sent none). Cipher suites follow
//! the server's order too.

use crate::ca::{PeerCertificate, PeerVerifier};
use crate::{SwappableResolver, TlsError};
use rustls::pki_types::CertificateDer;
use rustls::server::ClientHello;
use rustls::sign::CertifiedKey;
use rustls::{NamedGroup, PeerIncompatible, ServerConfig};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The ALPN protocol of ACME's tls-alpn-01 validation (RFC 8737 §6.2).
const ACME_TLS: &[u8] = b"acme-tls/1";

/// Answers to ACME tls-alpn-01 challenges (RFC 8737): the certificate, carrying the
/// `acmeIdentifier` extension, to present for a name being validated, if one is.
pub trait AlpnChallenges: Send + Sync + 'static {
    fn certificate<'a>(
        &'a self,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<Arc<CertifiedKey>>> + Send + 'a>>;
}

/// The server's configurations, one per key-exchange group, in the server's order.
pub struct ServerConfigs {
    by_group: Vec<(NamedGroup, Arc<ServerConfig>)>,
    peers: Option<Arc<PeerVerifier>>,
    challenges: Option<Arc<dyn AlpnChallenges>>,
}

impl ServerConfigs {
    /// The public listener's: no client certificates.
    pub fn new(resolver: Arc<SwappableResolver>) -> Result<Self, TlsError> {
        Self::build(resolver, None)
    }

    /// An mTLS listener's: every client presents a certificate `peers` accepts.
    pub fn mutual(
        resolver: Arc<SwappableResolver>,
        peers: Arc<PeerVerifier>,
    ) -> Result<Self, TlsError> {
        Self::build(resolver, Some(peers))
    }

    fn build(
        resolver: Arc<SwappableResolver>,
        peers: Option<Arc<PeerVerifier>>,
    ) -> Result<Self, TlsError> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let by_group = provider
            .kx_groups
            .iter()
            .map(|group| {
                let mut only = provider.clone();
                only.kx_groups = vec![*group];
                let config = ServerConfig::builder_with_provider(Arc::new(only))
                    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
                    .map_err(|e| TlsError::Invalid(e.to_string()))?;
                let config = match &peers {
                    Some(peers) => config.with_client_cert_verifier(peers.clone()),
                    None => config.with_no_client_auth(),
                };
                let mut config = config.with_cert_resolver(resolver.clone());
                config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                config.ignore_client_order = true;
                Ok((group.name(), Arc::new(config)))
            })
            .collect::<Result<Vec<_>, TlsError>>()?;
        if by_group.is_empty() {
            return Err(TlsError::Invalid(
                "the crypto provider has no key exchange".into(),
            ));
        }
        Ok(Self {
            by_group,
            peers,
            challenges: None,
        })
    }

    /// Answers tls-alpn-01 validations from `challenges`.
    pub fn with_alpn_challenges(mut self, challenges: Arc<dyn AlpnChallenges>) -> Self {
        self.challenges = Some(challenges);
        self
    }

    /// The name an ACME validation asks about: a ClientHello offering `acme-tls/1` and nothing
    /// else (RFC 8737 §3), on a listener that answers challenges.
    pub fn validation_of(&self, hello: &ClientHello<'_>) -> Option<String> {
        self.challenges.as_ref()?;
        let mut offered = hello.alpn()?;
        let only_acme = offered.next() == Some(ACME_TLS) && offered.next().is_none();
        only_acme
            .then(|| hello.server_name().map(str::to_owned))
            .flatten()
    }

    /// The configuration answering the validation of `name` with its challenge certificate, if
    /// a challenge for it is pending; the connection ends after the handshake.
    pub async fn validation_config(&self, name: &str) -> Option<Arc<ServerConfig>> {
        let key = self.challenges.as_ref()?.certificate(name).await?;
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)));
        config.alpn_protocols = vec![ACME_TLS.to_vec()];
        Some(Arc::new(config))
    }

    /// Who the client is, on an mTLS listener: read once per connection from the certificates
    /// its handshake presented.
    pub fn peer(&self, presented: Option<&[CertificateDer<'_>]>) -> Option<PeerCertificate> {
        self.peers.as_ref()?.identify(presented?)
    }

    /// The configuration for a client: that of the server's most preferred group the client
    /// supports, else the first (whose handshake then fails for want of a common group).
    pub fn for_hello(&self, hello: &ClientHello<'_>) -> Arc<ServerConfig> {
        let offered = hello.named_groups().unwrap_or_default();
        self.by_group
            .iter()
            .find(|(group, _)| offered.contains(group))
            .unwrap_or(&self.by_group[0])
            .1
            .clone()
    }
}

/// Why a handshake failed, as a metric label: a small fixed set, never text from the peer.
pub fn failure_reason(error: &std::io::Error) -> &'static str {
    use PeerIncompatible as P;
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::PeerIncompatible(p)) => match p {
            // Every TLS 1.2 and 1.3 client sends `signature_algorithms`; a ClientHello without
            // it comes from TLS 1.1 or older.
            P::SupportedVersionsExtensionRequired
            | P::SignatureAlgorithmsExtensionRequired
            | P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled
            | P::ServerDoesNotSupportTls12Or13 => "unsupported_protocol",
            P::NoCipherSuitesInCommon => "no_shared_cipher_suite",
            P::NoKxGroupsInCommon | P::NamedGroupsExtensionRequired => "no_shared_group",
            P::NoSignatureSchemesInCommon => "no_shared_signature_scheme",
            _ => "peer_incompatible",
        },
        Some(rustls::Error::AlertReceived(_)) => "alert_received",
        Some(rustls::Error::InvalidMessage(_) | rustls::Error::PeerMisbehaved(_)) => {
            "invalid_message"
        }
        Some(_) => "other",
        None => "connection",
    }
}
