//! The internal certificate authority (TLS-5): one self-signed root per trust domain that
//! signs X.509-SVIDs (the SPIFFE X509-SVID standard) for Palisade's nodes and for services.
//!
//! The root is name-constrained: it may certify DNS names inside its trust domain and no IP
//! address at all, so its key vouches for nothing on the public web even if a client trusts it
//! as a general root. The trust domain is not written as a URI name constraint, because
//! rustls-webpki (like much else) fails closed on those; Palisade checks the SPIFFE ID of every
//! leaf itself instead ([`check_svid`], and the issuance functions here).

use super::spiffe::{SpiffeId, SpiffeIdError, TrustDomain};
use ::time::{Duration, OffsetDateTime};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, CidrSubnet, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("the certificate signing request is malformed or its signature does not verify")]
    Csr,
    #[error("the key is not accepted: {0}")]
    Key(&'static str),
    #[error("{0} is outside the trust domain {1}")]
    OutsideTrustDomain(String, String),
    #[error("the stored CA is unusable: {0}")]
    Stored(String),
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("not an X.509-SVID: {0}")]
    NotSvid(&'static str),
    #[error("not an X.509-SVID: {0}")]
    SpiffeId(#[from] SpiffeIdError),
}

/// When a certificate is valid. Issuance takes it from the caller, so a test can make an
/// expired certificate with the same code that makes a current one.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// Valid from a minute ago (clocks differ a little between hosts) for `lifetime`.
    pub fn from_now(lifetime: Duration) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::minutes(1),
            not_after: now + lifetime,
        }
    }
}

/// An issued X.509-SVID.
#[derive(Debug, Clone)]
pub struct IssuedSvid {
    pub id: SpiffeId,
    pub certificate: CertificateDer<'static>,
    /// The serial number, lowercase hex.
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
}

/// A CA able to sign: its certificate and its key.
pub struct Authority {
    trust_domain: TrustDomain,
    certificate: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    not_after: i64,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("trust_domain", &self.trust_domain)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// A new root for `trust_domain` with a new P-256 key. Returns the key as PKCS#8 for the
    /// caller to seal and store.
    pub fn create(
        trust_domain: TrustDomain,
        validity: Validity,
    ) -> Result<(Self, PrivatePkcs8KeyDer<'static>), CaError> {
        let key = KeyPair::generate().map_err(sign_error)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(sign_error)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: vec![GeneralSubtree::DnsName(trust_domain.as_str().to_owned())],
            excluded_subtrees: vec![
                GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])),
                GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])),
            ],
        });
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Palisade");
        params.distinguished_name.push(
            DnType::CommonName,
            format!("Palisade internal CA {trust_domain}"),
        );
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let certificate = params.self_signed(&key).map_err(sign_error)?;
        let pkcs8 = PrivatePkcs8KeyDer::from(key.serialize_der());
        let authority = Self {
            trust_domain,
            certificate: certificate.der().clone(),
            issuer: Issuer::new(params, key),
            not_after: validity.not_after.unix_timestamp(),
        };
        Ok((authority, pkcs8))
    }

    /// The CA as stored: its certificate and its (unsealed) key, which must belong together.
    pub fn open(
        trust_domain: TrustDomain,
        certificate: CertificateDer<'static>,
        key: &PrivatePkcs8KeyDer<'_>,
    ) -> Result<Self, CaError> {
        let key = KeyPair::try_from(key).map_err(|e| CaError::Stored(e.to_string()))?;
        let (_, parsed) =
            X509Certificate::from_der(&certificate).map_err(|e| CaError::Stored(e.to_string()))?;
        if parsed.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
        {
            return Err(CaError::Stored(
                "the key does not belong to the certificate".into(),
            ));
        }
        let not_after = parsed.validity().not_after.timestamp();
        let issuer = Issuer::from_ca_cert_der(&certificate, key)
            .map_err(|e| CaError::Stored(e.to_string()))?;
        Ok(Self {
            trust_domain,
            certificate,
            issuer,
            not_after,
        })
    }

    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// Signs an SVID for `id` over the public key of a certificate signing request. Only the
    /// key is taken from the request: the names, usages and lifetime are the CA's decision.
    pub fn sign_request(
        &self,
        request: &CertificateRequest,
        id: &SpiffeId,
        dns_names: &[String],
        validity: Validity,
    ) -> Result<IssuedSvid, CaError> {
        self.sign(&request.0.public_key, id, dns_names, validity)
    }

    /// An SVID with a new P-256 key, for Palisade's own node identity.
    pub fn issue(
        &self,
        id: &SpiffeId,
        dns_names: &[String],
        validity: Validity,
    ) -> Result<(IssuedSvid, PrivatePkcs8KeyDer<'static>), CaError> {
        let key = KeyPair::generate().map_err(sign_error)?;
        let svid = self.sign(&key, id, dns_names, validity)?;
        Ok((svid, PrivatePkcs8KeyDer::from(key.serialize_der())))
    }

    fn sign(
        &self,
        public_key: &impl rcgen::PublicKeyData,
        id: &SpiffeId,
        dns_names: &[String],
        validity: Validity,
    ) -> Result<IssuedSvid, CaError> {
        if id.trust_domain() != &self.trust_domain {
            return Err(CaError::OutsideTrustDomain(
                id.to_string(),
                self.trust_domain.to_string(),
            ));
        }
        let domain = self.trust_domain.as_str();
        let mut sans = vec![SanType::URI(id.to_string().try_into().map_err(sign_error)?)];
        for name in dns_names {
            let inside = name == domain
                || name
                    .strip_suffix(domain)
                    .is_some_and(|head| head.ends_with('.'));
            if !inside {
                return Err(CaError::OutsideTrustDomain(name.clone(), domain.to_owned()));
            }
            sans.push(SanType::DnsName(
                name.clone().try_into().map_err(sign_error)?,
            ));
        }
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Palisade");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let serial = random_serial();
        params.serial_number = Some(serial.clone());
        params.not_before = validity.not_before;
        params.not_after = validity
            .not_after
            .min(OffsetDateTime::from_unix_timestamp(self.not_after).map_err(sign_error)?);
        let certificate = params
            .signed_by(public_key, &self.issuer)
            .map_err(sign_error)?;
        Ok(IssuedSvid {
            id: id.clone(),
            certificate: certificate.der().clone(),
            serial: data_encoding::HEXLOWER.encode(serial.as_ref()),
            not_before: params.not_before.unix_timestamp(),
            not_after: params.not_after.unix_timestamp(),
        })
    }
}

/// 128 random bits, positive (RFC 5280 §4.1.2.2 allows up to 20 octets).
fn random_serial() -> SerialNumber {
    let mut bytes = palisade_crypto::random_bytes::<16>();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn sign_error(e: impl std::fmt::Display) -> CaError {
    CaError::Sign(e.to_string())
}

/// A certificate signing request the CA would sign: well formed, its signature verifying
/// (proof that the requester holds the key), and a key an SVID may carry.
pub struct CertificateRequest(CertificateSigningRequestParams);

impl CertificateRequest {
    pub fn parse(csr_der: &[u8]) -> Result<Self, CaError> {
        check_request_key(csr_der)?;
        CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr_der))
            .map(Self)
            .map_err(|_| CaError::Csr)
    }
}

/// The keys an SVID may carry: P-256, P-384, Ed25519, or RSA of at least 2048 bits.
fn check_request_key(csr_der: &[u8]) -> Result<(), CaError> {
    use x509_parser::public_key::PublicKey;
    let (_, csr) = X509CertificationRequest::from_der(csr_der).map_err(|_| CaError::Csr)?;
    let spki = &csr.certification_request_info.subject_pki;
    match spki.parsed().map_err(|_| CaError::Csr)? {
        PublicKey::RSA(rsa) if rsa.key_size() >= 2048 => Ok(()),
        PublicKey::RSA(_) => Err(CaError::Key("RSA keys must have at least 2048 bits")),
        PublicKey::EC(_) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            let allowed = [
                x509_parser::oid_registry::OID_EC_P256,
                x509_parser::oid_registry::OID_NIST_EC_P384,
            ];
            match curve {
                Some(curve) if allowed.contains(&curve) => Ok(()),
                _ => Err(CaError::Key("EC keys must be on P-256 or P-384")),
            }
        }
        _ if spki.algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ED25519 => Ok(()),
        _ => Err(CaError::Key("only EC, Ed25519 and RSA keys are accepted")),
    }
}

/// The SPIFFE ID of a leaf certificate, if it is an X.509-SVID: exactly one URI SAN holding a
/// workload's SPIFFE ID, not a CA, and a key usage that includes digital signatures and
/// excludes certificate and CRL signing (X509-SVID §4.3, §5.2). Path validation is the
/// verifier's; this is what rustls does not check.
pub fn check_svid(der: &[u8]) -> Result<SpiffeId, CaError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| CaError::NotSvid("malformed"))?;
    if cert.is_ca() {
        return Err(CaError::NotSvid("the certificate is a CA"));
    }
    match cert.key_usage() {
        Ok(Some(usage)) => {
            if !usage.value.digital_signature() {
                return Err(CaError::NotSvid("the key usage lacks digitalSignature"));
            }
            if usage.value.key_cert_sign() || usage.value.crl_sign() {
                return Err(CaError::NotSvid(
                    "the key usage allows signing certificates",
                ));
            }
        }
        _ => return Err(CaError::NotSvid("no key usage")),
    }
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => &san.value.general_names,
        _ => return Err(CaError::NotSvid("no subject alternative name")),
    };
    let mut uris = names.iter().filter_map(|name| match name {
        GeneralName::URI(uri) => Some(*uri),
        _ => None,
    });
    match (uris.next(), uris.next()) {
        (Some(uri), None) => Ok(SpiffeId::parse(uri)?),
        (None, _) => Err(CaError::NotSvid("no URI SAN")),
        (Some(_), Some(_)) => Err(CaError::NotSvid("more than one URI SAN")),
    }
}
