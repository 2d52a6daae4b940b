//! Who is on the other end of an mTLS connection. The handshake proves possession of the
//! certificate's key and, for an SVID, its chain to the internal CA; rustls checks no identity,
//! so [`PeerVerifier::identify`] reads the SPIFFE ID once per connection and [`AllowList`]
//! decides which workloads each group of routes admits.

use super::authority::{CaError, check_svid};
use super::spiffe::{SpiffeId, TrustDomain};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::collections::BTreeMap;
use std::sync::Arc;
use x509_parser::prelude::*;

/// A verified client certificate, as the routes see it.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// base64url SHA-256 of the DER (RFC 8705's `x5t#S256`).
    pub thumbprint: String,
    /// The SPIFFE ID, when the certificate is an SVID of the internal CA.
    pub svid: Option<SpiffeId>,
}

/// Verifies client certificates: SVIDs chaining to the internal CA and, when asked for (RFC
/// 8705 `self_signed_tls_client_auth`), self-signed certificates that a registered client
/// names by thumbprint. Either way the handshake's signature proves the peer holds the key; a
/// self-signed certificate is an identity only where a route accepts its thumbprint.
#[derive(Debug)]
pub struct PeerVerifier {
    chained: Arc<dyn ClientCertVerifier>,
    self_signed: bool,
}

impl PeerVerifier {
    pub fn new(ca: &CertificateDer<'static>, self_signed: bool) -> Result<Self, CaError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone())
            .map_err(|e| CaError::Stored(e.to_string()))?;
        let chained = WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .map_err(|e| CaError::Stored(e.to_string()))?;
        Ok(Self {
            chained,
            self_signed,
        })
    }

    /// What a certificate chain the handshake accepted proves. The handshake admitted it
    /// either as chaining to the CA or as self-signed, and only a certificate issued to itself
    /// can be the latter, so the chain is not verified a second time: a certificate whose
    /// issuer is not its subject is an SVID of the CA if its names say so.
    pub fn identify(&self, chain: &[CertificateDer<'_>]) -> Option<PeerCertificate> {
        let leaf = chain.first()?;
        let self_issued = X509Certificate::from_der(leaf)
            .map(|(_, cert)| cert.subject() == cert.issuer())
            .unwrap_or(true);
        Some(PeerCertificate {
            thumbprint: data_encoding::BASE64URL_NOPAD.encode(&palisade_crypto::sha256(leaf)),
            svid: (!self_issued).then(|| check_svid(leaf).ok()).flatten(),
        })
    }
}

/// A certificate that signs itself and is within its validity period.
fn is_current_self_signed(der: &[u8], now: UnixTime) -> bool {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return false;
    };
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    cert.subject() == cert.issuer()
        && cert.verify_signature(None).is_ok()
        && cert.validity().not_before.timestamp() <= now
        && now <= cert.validity().not_after.timestamp()
}

impl ClientCertVerifier for PeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chained.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self
            .chained
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(verified) => Ok(verified),
            Err(_) if self.self_signed && is_current_self_signed(end_entity, now) => {
                Ok(ClientCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chained.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chained.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chained.supported_verify_schemes()
    }
}

/// One entry of an allow-list: a SPIFFE ID, or every id under a path (`spiffe://td/svc/*`, or
/// `spiffe://td/*` for the whole trust domain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdPattern {
    Exact(SpiffeId),
    Under {
        trust_domain: TrustDomain,
        path: String,
    },
}

impl IdPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(prefix) = text.strip_suffix("/*") else {
            return SpiffeId::parse(text)
                .map(Self::Exact)
                .map_err(|e| format!("{text}: {e}"));
        };
        let domain_only = prefix
            .strip_prefix("spiffe://")
            .is_some_and(|rest| !rest.contains('/'));
        if domain_only {
            let domain = TrustDomain::parse(&prefix["spiffe://".len()..])
                .map_err(|e| format!("{text}: {e}"))?;
            return Ok(Self::Under {
                trust_domain: domain,
                path: String::new(),
            });
        }
        let id = SpiffeId::parse(prefix).map_err(|e| format!("{text}: {e}"))?;
        Ok(Self::Under {
            trust_domain: id.trust_domain().clone(),
            path: id.path().to_owned(),
        })
    }

    pub fn matches(&self, id: &SpiffeId) -> bool {
        match self {
            Self::Exact(exact) => exact == id,
            Self::Under { trust_domain, path } => {
                id.trust_domain() == trust_domain
                    && id
                        .path()
                        .strip_prefix(path.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for IdPattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        super::spiffe::parsed(deserializer, Self::parse)
    }
}

impl serde::Serialize for IdPattern {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Exact(id) => serializer.collect_str(id),
            Self::Under { trust_domain, path } => {
                serializer.collect_str(&format_args!("spiffe://{trust_domain}{path}/*"))
            }
        }
    }
}

/// For each group of routes, the workloads it admits; a group not listed admits none.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct AllowList(BTreeMap<String, Vec<IdPattern>>);

impl AllowList {
    pub fn permits(&self, group: &str, id: &SpiffeId) -> bool {
        self.0
            .get(group)
            .is_some_and(|patterns| patterns.iter().any(|p| p.matches(id)))
    }

    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_an_id_or_the_ids_below_a_path() {
        let id = |s| SpiffeId::parse(s).unwrap();
        let exact = IdPattern::parse("spiffe://td/svc/ingest").unwrap();
        assert!(exact.matches(&id("spiffe://td/svc/ingest")));
        assert!(!exact.matches(&id("spiffe://td/svc/ingest2")));
        let under = IdPattern::parse("spiffe://td/svc/*").unwrap();
        assert!(under.matches(&id("spiffe://td/svc/ingest")));
        assert!(under.matches(&id("spiffe://td/svc/a/b")));
        assert!(!under.matches(&id("spiffe://td/svcx/a")));
        assert!(!under.matches(&id("spiffe://other/svc/a")));
        let domain = IdPattern::parse("spiffe://td/*").unwrap();
        assert!(domain.matches(&id("spiffe://td/anything")));
        assert!(!domain.matches(&id("spiffe://td2/anything")));
        assert!(IdPattern::parse("spiffe://TD/*").is_err());
        assert!(IdPattern::parse("spiffe://td/a/../*").is_err());
        assert_eq!(
            serde_json::to_string(&under).unwrap(),
            "\"spiffe://td/svc/*\""
        );
    }
}
