//! Reading a watched endpoint's certificate: a TCP connection under the egress policy, a TLS
//! handshake that completes whatever the chain (an expired or untrusted certificate is exactly
//! what must be reported), then the chain checked against the system's roots separately.

use palisade_http::egress::Egress;
use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::Arc;
use std::time::Duration;

/// What an endpoint presented.
#[derive(Debug)]
pub(crate) struct Observed {
    pub not_after: i64,
    pub fingerprint: String,
    /// Whether the chain verifies for the name against the system's roots.
    pub trusted: bool,
}

/// Completes the handshake with any certificate, checking only that the server holds its key
/// (the handshake's signature); trust is judged afterwards, so that a bad chain is reported
/// rather than hidden behind a failed connection.
#[derive(Debug)]
struct Inspect(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for Inspect {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// How endpoints are reached and judged.
pub(crate) struct Inspector {
    config: Arc<rustls::ClientConfig>,
    verifier: Arc<WebPkiServerVerifier>,
    egress: Egress,
}

impl Inspector {
    pub(crate) fn new(egress: Egress) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A root the verifier cannot use is skipped, as every TLS client does.
            let _ = roots.add(cert);
        }
        let verifier = WebPkiServerVerifier::builder(Arc::new(roots))
            .build()
            .map_err(|e| e.to_string())?;
        let config = rustls::ClientConfig::builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Inspect(verifier.clone())))
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
            verifier,
            egress,
        })
    }

    pub(crate) async fn observe(&self, host: &str, port: u16) -> Result<Observed, String> {
        let handshake = async {
            let tcp = self
                .egress
                .connect(host, port)
                .await
                .map_err(|e| e.to_string())?;
            let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(self.config.clone())
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            let chain: Vec<CertificateDer<'static>> = tls
                .get_ref()
                .1
                .peer_certificates()
                .unwrap_or_default()
                .iter()
                .map(|c| c.clone().into_owned())
                .collect();
            Ok::<_, String>((name, chain))
        };
        let (name, chain) = tokio::time::timeout(Duration::from_secs(10), handshake)
            .await
            .map_err(|_| "timed out".to_owned())??;
        let (leaf, intermediates) = chain.split_first().ok_or("no certificate")?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(leaf).map_err(|e| format!("certificate: {e}"))?;
        let trusted = self
            .verifier
            .verify_server_cert(leaf, intermediates, &name, &[], UnixTime::now())
            .is_ok();
        Ok(Observed {
            not_after: parsed.validity().not_after.timestamp(),
            fingerprint: palisade_crypto::sha256_hex(leaf),
            trusted,
        })
    }
}
